"""The XLA:CPU forms of ``backend``: the plain form on every other backend, the same
values on the CPU.

For a GPU or TPU default backend, each primitive traces to exactly the jaxpr of its
plain form, the distance transform is one batched transform, and the losses built on
them carry none of the CPU structure (class slices, row groups). On the CPU the
tuned forms give the values and gradients of the plain ones (float64, to rounding).
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import segloss_jax as sl
from segloss_jax._src import backend, distance, distance_maps


@pytest.fixture
def platform(monkeypatch):
    """``set(name)`` makes ``name`` the default backend seen by the next trace."""

    def set_platform(name: str) -> None:
        monkeypatch.setattr(jax, "default_backend", lambda: name)
        jax.clear_caches()  # jitted inner passes would reuse a trace of the other form

    yield set_platform
    jax.clear_caches()


def _jaxpr(fn, *args) -> str:
    return str(jax.make_jaxpr(fn)(*args))


def _primitives(jaxpr, found=None) -> collections.Counter:
    """Primitive names in a closed jaxpr and every jaxpr nested in it, counted."""
    found = collections.Counter() if found is None else found
    for eqn in jaxpr.eqns:
        found[eqn.primitive.name] += 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _primitives(inner, found)
    return found


X = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
VALID = np.random.default_rng(1).random((2, 5, 6)) > 0.3

# Each primitive with its plain form.
PRIMITIVES = {
    "class_sum": (backend.class_sum, lambda x: jnp.sum(x, axis=-1, keepdims=True)),
    "class_max": (backend.class_max, lambda x: jnp.max(x, axis=-1, keepdims=True)),
}


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("other", ["gpu", "tpu"])
def test_primitives_trace_to_the_plain_form_off_cpu(name, other, platform):
    tuned, plain = PRIMITIVES[name]
    for classes in (2, 5, 8, 9):
        x = np.zeros((2, 3, classes), np.float32)
        platform(other)
        assert _jaxpr(tuned, x) == _jaxpr(plain, x)
        platform("cpu")  # another program up to 8 classes (the test can fail)
        assert (_jaxpr(tuned, x) == _jaxpr(plain, x)) == (classes > 8)
    platform(other)
    assert backend.lovasz_row_groups(15) == [slice(0, 15)]
    assert backend.edt_chunk(30) is None


@pytest.mark.parametrize("other", ["gpu", "tpu"])
def test_distance_transform_off_cpu_is_one_batched_transform(other, platform, monkeypatch):
    monkeypatch.setattr(backend, "_EDT_CHUNK", 5 * 30)  # chunks of 5 masks on the CPU
    masks = np.random.default_rng(4).random((2, 3, 2, 6, 5)) < 0.5

    def edt(m):
        return distance_maps._edt(m, spatial_ndim=2, sampling=(1.0, 0.5))

    def whole(m):
        return distance.batched_edt(m, spatial_ndim=2, sampling=(1.0, 0.5))

    platform(other)
    assert _jaxpr(edt, masks) == _jaxpr(whole, masks)
    platform("cpu")
    assert backend.edt_chunk(30) == 5
    assert _jaxpr(edt, masks) != _jaxpr(whole, masks)
    np.testing.assert_array_equal(edt(masks), whole(masks))


@pytest.mark.parametrize("name", PRIMITIVES)
def test_cpu_forms_equal_the_plain_forms(name, platform):
    tuned, plain = PRIMITIVES[name]
    platform("cpu")
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        for classes in (1, 2, 3, 5, 8, 9):
            x = jnp.asarray(rng.normal(size=(4, 7, classes)))
            # The same sum in another order: equal to rounding.
            np.testing.assert_allclose(tuned(x), plain(x), rtol=1e-15, atol=1e-15)
            grads = [jax.grad(lambda z, f=f: jnp.sum(jnp.sin(f(z))))(x) for f in (tuned, plain)]
            np.testing.assert_allclose(grads[0], grads[1], rtol=1e-15, atol=1e-15)


def test_lovasz_row_groups(monkeypatch, platform):
    platform("cpu")
    monkeypatch.setattr(backend.os, "cpu_count", lambda: 4)
    monkeypatch.delattr(backend.os, "sched_getaffinity", raising=False)
    assert [(g.start, g.stop) for g in backend.lovasz_row_groups(15)] == [
        (0, 3), (3, 7), (7, 11), (11, 15)]
    assert len(backend.lovasz_row_groups(2)) == 2  # never more groups than rows
    monkeypatch.setattr(backend.os, "cpu_count", lambda: 1)
    assert backend.lovasz_row_groups(15) == [slice(0, 15)]


LABELS = np.random.default_rng(2).integers(0, 3, size=X.shape[:-1])
LOSSES = {
    "dice": lambda x: sl.dice_loss(x, LABELS),
    "dice per image": lambda x: sl.dice_loss(x, LABELS, per_image=True, where=VALID),
    "dice_ce": lambda x: sl.dice_ce_loss(x, LABELS, where=VALID),
    "lovasz_softmax": lambda x: sl.lovasz_softmax_loss(x, LABELS, per_image=True),
}


@pytest.mark.parametrize("name", LOSSES)
def test_losses_off_cpu_carry_no_cpu_structure(name, platform, monkeypatch):
    monkeypatch.setattr(backend.os, "cpu_count", lambda: 4)
    monkeypatch.delattr(backend.os, "sched_getaffinity", raising=False)
    loss = jax.value_and_grad(LOSSES[name])
    found = {}
    for form in ("cpu", "gpu"):
        platform(form)
        found[form] = _primitives(jax.make_jaxpr(loss)(X).jaxpr)
    cpu, plain = found["cpu"], found["gpu"]
    if name == "lovasz_softmax":  # one batched sort, not one per group of rows
        assert plain["sort"] == 1 and cpu["sort"] == 4
    else:  # no class slices (a class-axis tree)
        assert plain["slice"] == 0 and cpu["slice"] > 0


@pytest.mark.parametrize("name", LOSSES)
def test_loss_values_and_gradients_equal_in_both_forms(name, platform, monkeypatch):
    monkeypatch.setattr(backend.os, "cpu_count", lambda: 4)
    monkeypatch.delattr(backend.os, "sched_getaffinity", raising=False)
    results = []
    with jax.enable_x64(True):
        for form in ("cpu", "gpu"):
            platform(form)
            results.append(jax.jit(jax.value_and_grad(LOSSES[name]))(jnp.asarray(X, jnp.float64)))
    (value, grad), (plain_value, plain_grad) = results
    np.testing.assert_allclose(value, plain_value, rtol=1e-14)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-12, atol=1e-16)
