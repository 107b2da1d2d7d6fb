"""The shared core: label forms, validity masks, probabilities, confusion statistics,
reductions and the registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec
from jax.test_util import check_grads

import segloss_jax as sl
from segloss_jax._src import checks, inputs, reduce, stats
from segloss_jax._src.engine import Sums

# ------------------------------------------------------------------ label forms


def test_label_form_by_dtype_and_rank():
    shape = (2, 4, 4, 3)
    assert checks.label_form(jnp.zeros((2, 4, 4), jnp.int32), shape) == "int"
    assert checks.label_form(jnp.zeros((2, 4, 4), bool), shape) == "int"
    assert checks.label_form(jnp.zeros(shape, jnp.float32), shape) == "dense"
    assert checks.label_form(jnp.zeros(shape, bool), shape) == "dense"
    # A dense target whose values happen to be integral is still dense (no guessing).
    assert checks.label_form(jnp.ones(shape, jnp.float32), shape) == "dense"


@pytest.mark.parametrize(
    "labels,exc,match",
    [
        (np.zeros((2, 4, 4, 3), np.int32), TypeError, "dense targets and must be floating"),
        (np.zeros((2, 4, 4), np.float32), TypeError, "must be integer"),
        (np.zeros((2, 4, 4, 2), np.float32), ValueError, "2 classes"),
        (np.zeros((2, 4, 5), np.int32), ValueError, r"expected \(2, 4, 4\)"),
        (np.zeros((2, 4, 4), np.complex64), TypeError, "dtype complex64"),
    ],
)
def test_label_form_errors(labels, exc, match):
    with pytest.raises(exc, match=match):
        checks.label_form(jnp.asarray(labels), (2, 4, 4, 3))


def test_check_logits_messages():
    with pytest.raises(TypeError, match="`logits` must be a floating array.*int32"):
        checks.check_logits(jnp.zeros((1, 2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3\) \(rank 2\)"):
        checks.check_logits(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="rank 6"):
        checks.check_logits(jnp.zeros((1, 2, 2, 2, 2, 3)))


# --------------------------------------------------------------- normalisation


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
        x64 = np.asarray(x, np.float64)
        ref_lse = x64.max(-1, keepdims=True) + np.log(
            np.exp(x64 - x64.max(-1, keepdims=True)).sum(-1, keepdims=True))
        np.testing.assert_allclose(inp.lse, ref_lse, rtol=1e-6)
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


def test_sigmoid_parts_values_and_gradients_everywhere():
    x = jnp.array([-1e30, -50.0, -1.0, 0.0, 1e-3, 3.0, 1e4])
    refs = (jax.nn.sigmoid, lambda z: jax.nn.sigmoid(-z), jax.nn.softplus)
    for i, ref in enumerate(refs):
        # atol: jax.nn.sigmoid rounds σ(50)(1 - σ(50)) ≈ 2e-22 to 0; sigmoid_parts does not.
        np.testing.assert_allclose(inputs.sigmoid_parts(x)[i], jax.vmap(ref)(x),
                                   rtol=1e-6, atol=1e-20)
        got = jax.vmap(jax.grad(lambda z, i=i: inputs.sigmoid_parts(z)[i]))(x)
        np.testing.assert_allclose(got, jax.vmap(jax.grad(ref))(x), rtol=1e-6, atol=1e-20)
    # Exact at x = 0 (σ' = 1/4, softplus' = 1/2), and against finite differences.
    np.testing.assert_allclose(jax.grad(lambda z: inputs.sigmoid_parts(z)[2])(0.0), 0.5)
    with jax.enable_x64(True):
        for i in range(3):
            check_grads(lambda z, i=i: inputs.sigmoid_parts(z)[i],
                        (jnp.array([-3.0, -0.2, 0.0, 0.7, 5.0], jnp.float64),), order=2)


# ------------------------------------------------------------- soft counts per unit


def soft_counts(p, g, valid, per_image, axis_name=None):
    """``(tp, fp, fn)`` per unit, as the region engine forms them from the unit sums."""
    tp, sum_p, sum_g = stats.unit_sums(p * g, p, g, valid=valid, per_image=per_image,
                                       axis_name=axis_name)
    s = Sums({"tp": tp, "sum_p": sum_p, "sum_g": sum_g})
    return s.tp, s.fp, s.fn


def np_soft_counts(p, g, valid, per_image):
    m = valid[..., None].astype(np.float64)
    axes = tuple(range(1 if per_image else 0, p.ndim - 1))
    tp = (p * g * m).sum(axes)
    fp = (p * (1 - g) * m).sum(axes)
    fn = ((1 - p) * g * m).sum(axes)
    return tp, fp, fn


def random_probs(seed, shape=(4, 5, 3), c=3):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(c), size=shape)
    g = np.eye(c)[rng.integers(0, c, size=shape)]
    valid = rng.random(shape) > 0.25
    return p, g, valid


@pytest.mark.parametrize("per_image", [True, False])
def test_soft_counts_match_reference(per_image):
    p, g, valid = random_probs(0)
    with jax.enable_x64(True):
        got = soft_counts(jnp.asarray(p), jnp.asarray(g), jnp.asarray(valid), per_image)
        expected = np_soft_counts(p, g, valid, per_image)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        assert got[0].shape == ((4, 3) if per_image else (3,))


def test_unit_sums_ignore_non_finite_values_at_invalid_pixels():
    p, g, valid = random_probs(1)
    p = np.where(valid[..., None], p, np.nan)
    got = soft_counts(jnp.asarray(p), jnp.asarray(g), jnp.asarray(valid), per_image=False)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in got)


def test_unit_sums_psum_over_devices_equals_global():
    devices = np.array(jax.devices()[:4])
    mesh = Mesh(devices, ("data",))
    p, g, valid = random_probs(2, shape=(8, 5, 3))

    def local(p, g, valid):
        return soft_counts(p, g, valid, per_image=False, axis_name="data")

    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=PartitionSpec("data"),
                                    out_specs=PartitionSpec()))
    got = sharded(jnp.asarray(p, jnp.float32), jnp.asarray(g, jnp.float32), jnp.asarray(valid))
    expected = np_soft_counts(p, g, valid, per_image=False)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)


# ------------------------------------------------------------------ reductions


def test_safe_div_value_and_gradient():
    np.testing.assert_allclose(reduce.safe_div(jnp.array(3.0), jnp.array(2.0)), 1.5)
    assert reduce.safe_div(jnp.array(3.0), jnp.array(0.0), 7.0) == 7.0
    grad = jax.grad(lambda n, d: reduce.safe_div(n, d, 1.0), argnums=(0, 1))(0.0, 0.0)
    assert grad == (0.0, 0.0)


def test_reduce_pixels():
    loss = jnp.array([[1.0, 2.0, 3.0]])
    valid = jnp.array([[True, False, True]])
    assert reduce.reduce_pixels(loss, valid, "mean") == 2.0
    assert reduce.reduce_pixels(loss, valid, "sum") == 4.0
    np.testing.assert_array_equal(reduce.reduce_pixels(loss, valid, "none"), [[1, 0, 3]])
    # Per-element losses average over valid elements.
    elementwise = jnp.ones((1, 3, 2))
    assert reduce.reduce_pixels(elementwise, valid, "mean") == 1.0
    assert reduce.reduce_pixels(elementwise, valid, "sum") == 4.0
    assert reduce.reduce_pixels(loss, jnp.zeros_like(valid), "mean") == 0.0


def test_kept_units():
    target_sum = jnp.array([[5.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    keep = reduce.kept_units(target_sum, include_background=False, classes="present")
    np.testing.assert_array_equal(keep, [[False, False, True], [False, False, False]])
    keep = reduce.kept_units(target_sum, include_background=True, classes="all")
    assert np.all(keep)
    # With one channel the channel is the foreground and is never dropped.
    keep = reduce.kept_units(jnp.array([0.0]), include_background=False, classes="all")
    np.testing.assert_array_equal(keep, [True])


def test_reduce_units_hand_worked():
    loss = jnp.array([[0.2, 0.4, 0.6], [0.1, 0.3, 0.5]])
    keep = jnp.array([[True, False, True], [False, False, False]])
    w = jnp.array([1.0, 2.0, 3.0])
    # Image 0: (1*0.2 + 3*0.6) / 4 = 0.5; image 1 kept nothing and leaves the mean.
    np.testing.assert_allclose(reduce.reduce_units(loss, keep, reduction="mean",
                                                   class_weights=w), 0.5)
    np.testing.assert_allclose(reduce.reduce_units(loss, keep, reduction="sum",
                                                   class_weights=w), 2.0)
    np.testing.assert_allclose(reduce.reduce_units(loss, keep, reduction="none"),
                               [[0.2, 0, 0.6], [0, 0, 0]])
    # Batch units [C]: weighted mean over kept classes.
    np.testing.assert_allclose(reduce.reduce_units(loss[0], keep[0], reduction="mean"), 0.4)
    # Nothing kept anywhere: 0, with zero gradient.
    none = jnp.zeros_like(keep)
    value, grad = jax.value_and_grad(
        lambda l: reduce.reduce_units(l, none, reduction="mean"))(loss)
    assert value == 0 and np.all(grad == 0)


def test_reduce_units_per_image_mean_across_devices():
    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    rng = np.random.default_rng(3)
    loss = rng.random((8, 3))
    keep = rng.random((8, 3)) > 0.4
    keep[0] = False

    def local(l, k):
        return reduce.reduce_units(l, k, reduction="mean", axis_name="data")

    got = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=PartitionSpec("data"),
                                out_specs=PartitionSpec()))(
        jnp.asarray(loss, jnp.float32), jnp.asarray(keep))
    expected = reduce.reduce_units(jnp.asarray(loss, jnp.float32), jnp.asarray(keep),
                                   reduction="mean")
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# -------------------------------------------------------------------- registry


def test_registry_round_trip_and_errors():
    names = sl.list_losses()
    assert names == tuple(sorted(names))
    for name in names:
        fn = sl.get_loss(name)
        assert fn.__name__ in (name, f"{name}_loss")
        assert getattr(sl, fn.__name__) is fn
    with pytest.raises(KeyError, match="Did you mean 'cross_entropy'"):
        sl.get_loss("cross_entopy")
    with pytest.raises(KeyError, match="Unknown loss 'zzz'"):
        sl.get_loss("zzz")
