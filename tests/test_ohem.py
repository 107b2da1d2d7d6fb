"""``ohem_cross_entropy`` against HRNet's formula (``reference.ohem_cross_entropy``), the
mmseg and BiSeNet mappings, its edge cases and ``axis_name``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

import segloss_jax as sl

IGNORE = 255
SHAPE = (2, 6, 5)


def _case(seed=0, c=4, scale=2.0, ignored=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=scale, size=(*SHAPE, c))
    labels = rng.integers(0, c, size=SHAPE)
    labels.reshape(-1)[rng.choice(labels.size, ignored, replace=False)] = IGNORE
    return x, labels


@functools.cache
def _ohem64(thresh, min_kept, weighted, reduction="mean"):
    kw = {"class_weights": (0.5, 2.0, 1.0, 3.0)} if weighted else {}
    return jax.jit(lambda x, y: sl.ohem_cross_entropy(
        x, y, thresh=thresh, min_kept=min_kept, ignore_index=IGNORE, reduction=reduction,
        **kw))


@pytest.mark.parametrize("thresh,min_kept,weighted", [
    (0.0, 7, False), (0.3, 0, True), (0.7, 1, False), (0.7, 7, True), (0.7, 10_000, False),
    (1.0, 7, True)])
def test_matches_hrnet(thresh, min_kept, weighted):
    x, labels = _case(int(thresh * 10) + min_kept % 5)
    valid = labels != IGNORE
    cw = (0.5, 2.0, 1.0, 3.0) if weighted else None
    with jax.enable_x64(True):
        got = _ohem64(thresh, min_kept, weighted)(jnp.asarray(x), jnp.asarray(labels))
    want = ref.ohem_cross_entropy(x, labels, valid, thresh, min_kept, cw)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_none_and_sum_hold_the_kept_terms():
    x, labels = _case(3)
    valid = labels != IGNORE
    with jax.enable_x64(True):
        none = np.asarray(_ohem64(0.5, 9, False, "none")(jnp.asarray(x), jnp.asarray(labels)))
        total = _ohem64(0.5, 9, False, "sum")(jnp.asarray(x), jnp.asarray(labels))
    ce = ref.ce(ref.softmax(x), ref.one_hot(np.where(valid, labels, 0), 4))
    p = np.exp(-ce)
    m = max(int((p[valid] < 0.5).sum()), min(9, int(valid.sum()) - 1))
    kept = valid & (ce >= np.sort(ce[valid])[::-1][m - 1])
    np.testing.assert_allclose(none, np.where(kept, ce, 0), rtol=1e-12)
    np.testing.assert_allclose(total, ce[kept].sum(), rtol=1e-12)


def test_ranked_by_log_probability_not_probability():
    """Every label probability rounds to 1 in float32; the least confident pixel is kept."""
    x = jnp.array([[[20.0, 0.0], [25.0, 0.0], [30.0, 0.0]]])
    labels = jnp.array([[0, 0, 0]])
    grad = jax.jit(jax.grad(lambda x: sl.ohem_cross_entropy(x, labels, thresh=0.5,
                                                            min_kept=1)))(x)
    # d CE / d x_1 = p_1 = σ(−margin) at the one kept pixel, 0 elsewhere.
    np.testing.assert_allclose(grad[0, :, 1], [np.exp(-20.0), 0.0, 0.0], rtol=1e-5)


@pytest.mark.parametrize("labels", [np.full((1, 3), IGNORE), np.array([[0, IGNORE, IGNORE]])])
def test_nothing_kept_is_zero_with_zero_gradient(labels):
    """Nothing valid, or one valid pixel above the threshold (m = min(k, n − 1) = 0)."""
    x = jnp.array([[[3.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    value, grad = jax.jit(jax.value_and_grad(lambda x: sl.ohem_cross_entropy(
        x, jnp.asarray(labels), thresh=0.7, min_kept=5, ignore_index=IGNORE)))(x)
    assert value == 0.0 and np.all(np.asarray(grad) == 0)


def test_ties_share_the_slots_left():
    x = jnp.array([[[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [2.0, 0.0]]])
    labels = jnp.array([[0, 0, 0, 0]])
    none = jax.jit(lambda x, y: sl.ohem_cross_entropy(x, y, thresh=0.0, min_kept=2,
                                                      reduction="none"))(x, labels)
    ce = np.log1p(np.e)
    np.testing.assert_allclose(none[0, :3], [2 * ce / 3] * 3, rtol=1e-6)
    assert none[0, 3] == 0


def _mmseg(x, labels, thresh, min_kept):
    """mmseg's ``OHEMPixelSampler.sample`` (with thresh) + ``CrossEntropyLoss`` mean over
    all pixels, in NumPy float64."""
    b = labels.shape[0]
    valid = labels != IGNORE
    p = ref.softmax(x)
    seg_prob = np.take_along_axis(p, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    sort_prob = np.sort(seg_prob[valid])
    batch_kept = min_kept * b
    threshold = max(sort_prob[min(batch_kept, sort_prob.size - 1)], thresh)
    weight = valid & (seg_prob < threshold)
    ce = -np.log(seg_prob)
    return np.where(weight, ce, 0).sum() / labels.size


def test_mmseg_and_bisenet_mappings():
    x, labels = _case(5)
    valid = labels != IGNORE
    b, pixels = SHAPE[0], SHAPE[1] * SHAPE[2]
    with jax.enable_x64(True):
        total = np.asarray(_ohem64(0.6, 4 * b, False, "sum")(jnp.asarray(x), jnp.asarray(labels)))
        n_min = int(valid.sum()) // 16
        bisenet = np.asarray(_ohem64(0.6, n_min, False)(jnp.asarray(x), jnp.asarray(labels)))
    np.testing.assert_allclose(total / (b * pixels), _mmseg(x, labels, 0.6, 4), rtol=1e-12)
    # BiSeNet's OhemCELoss: CE > −log τ, at least n_min = n_valid // 16 (top-k otherwise).
    ce = ref.ce(ref.softmax(x), ref.one_hot(np.where(valid, labels, 0), 4))[valid]
    hard = np.sort(ce)[::-1]
    kept = hard[hard > -np.log(0.6)]
    want = kept.mean() if kept.size >= n_min else hard[:n_min].mean()
    np.testing.assert_allclose(bisenet, want, rtol=1e-12)


def test_gradient_matches_finite_differences():
    x, labels = _case(6)
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda x: sl.ohem_cross_entropy(
            x, jnp.asarray(labels), thresh=0.6, min_kept=10, ignore_index=IGNORE,
            class_weights=[1.0, 2.0, 0.5, 1.0], pixel_weights=jnp.linspace(0, 2, 5))),
            (jnp.asarray(x),), order=1, modes=["rev"], eps=1e-4)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"thresh": 1.5}, ValueError, "thresh"),
    ({"thresh": jnp.array(0.5)}, TypeError, "thresh"),
    ({"min_kept": -1}, ValueError, "min_kept"),
    ({"min_kept": 2.5}, TypeError, "min_kept"),
])
def test_bad_options(kwargs, exc, match):
    x, labels = _case(0)
    with pytest.raises(exc, match=match):  # raised while tracing, before any compilation
        jax.jit(lambda x, y: sl.ohem_cross_entropy(x, y, ignore_index=IGNORE, **kwargs))(
            jnp.asarray(x), jnp.asarray(labels))


def test_axis_name_selects_over_the_global_batch():
    devices = 8
    if jax.device_count() < devices:
        pytest.skip(f"needs {devices} devices")
    mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(devices, 4, 3, 3)) * 2, jnp.float32)
    labels = rng.integers(0, 3, size=(devices, 4, 3))
    labels[:3].reshape(3, -1)[:, :7] = IGNORE  # uneven shards
    labels = jnp.asarray(labels)
    fn = functools.partial(sl.ohem_cross_entropy, thresh=0.5, min_kept=30, ignore_index=IGNORE)

    def global_loss(x):
        return jax.shard_map(lambda x, y: fn(x, y, axis_name="data"), mesh=mesh,
                             in_specs=(P("data"),) * 2, out_specs=P())(x, labels)

    # One compiled program: the single-device loss and the sharded one.
    (want, want_grad), (got, grad) = jax.jit(lambda x: (
        jax.value_and_grad(lambda x: fn(x, labels))(x), jax.value_and_grad(global_loss)(x)))(x)
    np.testing.assert_allclose(got, want, rtol=2e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=2e-5, atol=1e-7)
