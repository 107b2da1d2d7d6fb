"""Prepared inputs (``segloss_jax/_src/inputs.py``): targets, validity masks, the one
activation pass and its log-probabilities, precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.experimental import checkify
from jax.test_util import check_grads

from segloss_jax._src import inputs


def test_one_hot_and_binary_foreground():
    labels = jnp.array([[0, 2, 1, 255]])
    np.testing.assert_array_equal(
        inputs.one_hot_target(labels, 3, jnp.float32),
        [[[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]]],
    )
    np.testing.assert_array_equal(inputs.one_hot_target(labels, 1, jnp.float32)[..., 0],
                                  [[0, 0, 1, 0]])


def test_validity_mask_combines_where_and_ignore_index():
    labels = jnp.array([[0, 255, 1, 2]])
    where = jnp.array([[True, True, False, True]])
    valid = inputs.validity_mask((1, 4), labels=labels, where=where, ignore_index=255)
    np.testing.assert_array_equal(valid, [[True, False, False, True]])
    # `where` broadcasts from a per-image mask.
    valid = inputs.validity_mask((2, 3), where=jnp.array([[True], [False]]))
    np.testing.assert_array_equal(valid, [[True] * 3, [False] * 3])


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", None])
def test_activate_is_stable_and_consistent(activation):
    x = jnp.array([[[-1e4, 0.0, 1e4], [-30.0, 2.0, 30.0]]])
    if activation is None:
        x = jax.nn.sigmoid(x)
    inp = inputs.Inputs(x, None, None, None, activation)
    p, log_p = inp.probs, inp.log_probs
    assert np.all(np.isfinite(log_p))
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-6, atol=1e-30)
    if activation == "softmax":
        np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
        # log-partition: log Σ exp(x), against a float64 NumPy reference.
        expected = ref.log_sum_exp(np.asarray(x, np.float64))[..., 0]
        assert inp.lse.shape == expected.shape
        np.testing.assert_allclose(inp.lse, expected, rtol=1e-6)
    else:
        log_1mp = inp.log_1m_probs
        assert np.all(np.isfinite(log_1mp))
        # exp(log(1 - p)) is more accurate than 1 - p in float32; compare with σ(-x).
        one_minus_p = 1 - x if activation is None else jax.nn.sigmoid(-x)
        np.testing.assert_allclose(np.exp(log_1mp), one_minus_p, rtol=1e-5, atol=1e-30)


def test_low_precision_upcast():
    x = jnp.ones((1, 2, 3), jnp.bfloat16)
    prep = inputs.prepare(x, jnp.zeros((1, 2), jnp.int32), activation="softmax")
    assert prep.probs.dtype == jnp.float32 and prep.log_probs.dtype == jnp.float32
    with jax.enable_x64(True):
        prep = inputs.prepare(jnp.ones((1, 2, 3), jnp.float64), jnp.zeros((1, 2), jnp.int32),
                              activation="softmax")
        assert prep.probs.dtype == jnp.float64


def test_sigmoid_fields_are_accurate_everywhere():
    # p, 1 - p and softplus against float64 references, relative accuracy at both tails
    # (1 - p is not formed by cancellation), and their derivatives σ(1 - σ), -σ(1 - σ), σ.
    x = np.array([-1e30, -50.0, -1.0, 0.0, 1e-3, 3.0, 50.0, 1e4], np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        p, q = ref.sigmoid(x64), ref.sigmoid(-x64)
        softplus = np.maximum(x64, 0) + np.log1p(np.exp(-np.abs(x64)))
    fields = ("probs", "one_minus_probs", "softplus")
    for name, expected, slope in zip(fields, (p, q, softplus), (p * q, -p * q, p), strict=True):
        np.testing.assert_allclose(getattr(inputs.Inputs(x, None, None, None, "sigmoid"), name),
                                   expected, rtol=1e-6, atol=0)
        got = jax.jit(jax.vmap(jax.grad(lambda z, name=name: getattr(
            inputs.Inputs(z, None, None, None, "sigmoid"), name))))(x)
        # atol: σ(50)(1 - σ(50)) ≈ 2e-22 rounds to 0 in float32 through σ(50) = 1.
        np.testing.assert_allclose(got, slope, rtol=1e-6, atol=1e-20)
    with jax.enable_x64(True):
        for name in fields:  # jitted: a few programs instead of many eager operations
            check_grads(jax.jit(lambda z, name=name: getattr(
                inputs.Inputs(z, None, None, None, "sigmoid"), name)),
                (jnp.array([-3.0, -0.2, 0.0, 0.7, 5.0], jnp.float64),), order=2)


def test_softmax_fields_have_second_derivatives():
    # The class maximum is held constant (stop_gradient); softmax is invariant to that shift,
    # so first and second derivatives are those of the plain formulas.
    with jax.enable_x64(True):
        x = jnp.array([[[-3.0, 0.2, 1.5], [4.0, 4.0, -0.7]]], jnp.float64)
        for name in ("probs", "lse", "log_probs"):
            check_grads(jax.jit(lambda z, name=name: getattr(
                inputs.Inputs(z, None, None, None, "softmax"), name)), (x,), order=2)


@pytest.mark.parametrize("num_classes, highest", [(1, 1), (3, 2)])
def test_label_range_under_checkify(num_classes, highest):
    """One class (sigmoid) takes labels {0, 1}; C classes take [0, C); excluded pixels may
    hold anything. Every loss reads its labels through this check."""
    def check(labels, valid):
        inputs.check_label_values(labels, num_classes, valid, "int")

    checked = jax.jit(checkify.checkify(check))
    valid = jnp.array([[True, True, False]])
    checked(jnp.array([[0, highest, 99]]), valid)[0].throw()  # in range, or excluded
    for bad in (highest + 1, -1):
        err, _ = checked(jnp.array([[0, bad, 0]]), valid)
        with pytest.raises(checkify.JaxRuntimeError, match=rf"\[0, {highest}\]"):
            err.throw()
