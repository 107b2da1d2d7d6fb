"""``rmi_loss`` against the float64 NumPy reference of ``reference.py`` (written from the
formula of ZJULearning/RMI's ``RMILoss``) and, where torch is installed, against the
port of that code in ``benchmarks/rmi_torch.py``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import segloss_jax as sl

ALPHA = 5e-4


def case(seed, shape=(2, 13, 11), c=3, ignored=0.15):
    """Logits, integer labels with some 255 (ignored) and one out-of-range label, and a
    ``where`` mask."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(*shape, c))
    labels = rng.integers(0, max(c, 2), size=shape)
    labels = np.where(rng.random(shape) < ignored, 255, labels)
    where = rng.random(shape) > 0.1
    return x, labels, where


@functools.cache
def _f64(kwargs):
    return jax.jit(lambda x, y, w: sl.rmi_loss(x, y, where=w, ignore_index=255, **dict(kwargs)))


def f64(x, labels, where, **kwargs):
    """``rmi_loss`` in float64, one compilation per keyword set."""
    with jax.enable_x64(True):
        return float(_f64(tuple(sorted(kwargs.items())))(jnp.asarray(x), jnp.asarray(labels),
                                                         jnp.asarray(where)))


# Every option of the reference: pooling, pixel terms, mixing, classes, radius, C == 1.
OPTIONS = [
    {},
    {"pool": "avg_exclusive", "pool_size": 2, "radius": 2, "pixel_loss": None},
    {"pool": "interp", "pool_size": 2, "include_background": False},
    {"pool": None, "radius": 4, "pixel_loss": "ce", "mix": "add", "weight": 0.3},
    {"pool": "avg", "pool_size": 4, "radius": 2},  # NVIDIA's RMILoss pooling
]


@pytest.mark.parametrize("kwargs", OPTIONS, ids=lambda k: ",".join(f"{a}={b}" for a, b in
                                                                   k.items()) or "defaults")
def test_matches_reference(kwargs):
    x, labels, where = case(0)
    labels[1, 3, :3] = 7  # out of [0, C): excluded, as the reference's `labels < C`
    valid = where & (labels != 255)
    expected = ref.rmi_loss(x, labels, valid, **kwargs)
    np.testing.assert_allclose(f64(x, labels, where, **kwargs), expected, rtol=1e-10)


def test_binary_channel():
    x, labels, where = case(1, c=1)
    valid = where & (labels != 255)
    expected = ref.rmi_loss(x, labels, valid)
    np.testing.assert_allclose(f64(x, labels, where), expected, rtol=1e-10)


def test_dense_one_hot_labels_equal_integer_labels():
    x, labels, _ = case(2, ignored=0.0)
    dense = np.eye(3)[labels]
    fn = jax.jit(sl.rmi_loss)
    np.testing.assert_allclose(fn(jnp.asarray(x, jnp.float32), jnp.asarray(dense, jnp.float32)),
                               fn(jnp.asarray(x, jnp.float32), jnp.asarray(labels)), rtol=1e-6)


def test_gradients():
    x, labels, _ = case(3, shape=(1, 9, 8), c=2, ignored=0.1)
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda z: sl.rmi_loss(z, jnp.asarray(labels), pool="avg",
                                                  pool_size=2, ignore_index=255)),
                    (jnp.asarray(x),), order=1, modes=["rev"])


def test_constant_class_contributes_a_constant_with_zero_gradient():
    """A class constant over every image has ``A = 0``: ``log(√α + 1e-8)`` each, no
    gradient, whatever the logits; so the loss is negative."""
    x, _, _ = case(4, shape=(2, 9, 9), c=2)
    labels = jnp.zeros((2, 9, 9), jnp.int32)  # class 0 everywhere, class 1 nowhere
    value, grad = jax.jit(jax.value_and_grad(
        lambda z: sl.rmi_loss(z, labels, pixel_loss=None)))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(value, 2 * np.log(np.sqrt(ALPHA) + 1e-8), rtol=1e-6)
    assert value < 0
    np.testing.assert_array_equal(grad, 0.0)


def test_float32_stays_close_to_float64():
    """The posterior covariance as a sum of squares: float32 follows float64 also for a
    nearly perfect prediction, where the reference's formula in float32 fails."""
    rng = np.random.default_rng(5)
    labels = (np.add.outer(np.arange(40), np.arange(40)) // 9 % 3)[None].repeat(2, 0)
    labels[1] = labels[1].T
    x = (6.0 * (2 * np.eye(3)[labels] - 1) + rng.normal(size=(2, 40, 40, 3))).astype(np.float32)
    fn = jax.value_and_grad(lambda z: sl.rmi_loss(z, jnp.asarray(labels)))
    v32, g32 = jax.jit(fn)(jnp.asarray(x))
    with jax.enable_x64(True):
        v64, g64 = map(np.asarray, jax.jit(fn)(jnp.asarray(x, jnp.float64)))
    assert abs(float(v32) - v64) < 1e-5
    assert np.abs(np.asarray(g32, np.float64) - g64).max() < 1e-4 * np.abs(g64).max()


@pytest.mark.parametrize("pixel_loss", ["ce"])  # "bce": the registry's distributed test
def test_axis_name_gives_the_global_batch(pixel_loss):
    x, labels, _ = case(6, shape=(4, 10, 9))
    x, labels = jnp.asarray(x, jnp.float32), jnp.asarray(labels)
    kwargs = {"pixel_loss": pixel_loss, "ignore_index": 255, "pool_size": 2, "radius": 2}
    full = jax.jit(lambda a, b: sl.rmi_loss(a, b, **kwargs))(x, labels)
    mapped = jax.jit(jax.vmap(lambda a, b: sl.rmi_loss(a[None], b[None], axis_name="i", **kwargs),
                              axis_name="i"))(x, labels)
    np.testing.assert_allclose(mapped, np.full(4, full), rtol=1e-5)


def test_equals_the_torch_port():
    torch = pytest.importorskip("torch", reason="torch is not installed (the `peers` extra)")
    from benchmarks.rmi_torch import RMILoss

    x, labels, _ = case(7, shape=(2, 16, 15), c=4)
    xt, yt = torch.as_tensor(np.moveaxis(x, -1, 1)).float(), torch.as_tensor(labels)
    x = jnp.asarray(x, jnp.float32)
    for way, pool, size, radius, mix in [(0, "max", 3, 3, "convex"), (2, "interp", 4, 2, "add")]:
        peer = RMILoss(num_classes=4, rmi_radius=radius, rmi_pool_way=way, rmi_pool_size=size,
                       rmi_pool_stride=size, loss_weight_lambda=0.4,
                       lambda_way=int(mix == "convex"))
        ours = jax.jit(functools.partial(sl.rmi_loss, pool=pool, pool_size=size, radius=radius,
                                         mix=mix, weight=0.4, ignore_index=255))
        np.testing.assert_allclose(ours(x, labels), peer(xt, yt).item(), rtol=1e-5, atol=1e-6)
        if way == 0:  # the reference's softmax cross-entropy variant
            ce = jax.jit(lambda a, b: sl.rmi_loss(a, b, pixel_loss="ce", weight=0.4,
                                                  ignore_index=255))
            np.testing.assert_allclose(ce(x, labels), peer.forward_softmax_sigmoid(xt, yt).item(),
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"pool_size": 5}, ValueError, r"pooled map is 3 × 3 .*smaller than `radius` = 4"),
    ({"pool": "min"}, ValueError, r"`pool` must be one of \('max', 'avg', 'avg_exclusive', "
                                  r"'interp', None\), got 'min'"),
    ({"mix": "sum"}, ValueError, r"`mix` must be one of \('convex', 'add'\)"),
    ({"pixel_loss": "focal"}, ValueError, r"`pixel_loss` must be one of"),
    ({"radius": 0}, ValueError, r"`radius` must be a positive int, got 0"),
    ({"radius": 2.0}, TypeError, r"`radius` must be a non-negative int"),
    ({"weight": 1.5}, ValueError, r"`weight` must lie in \[0.0, 1.0\]"),
    ({"reduction": "sum"}, ValueError, r"`reduction` must be one of \('mean',\)"),
    ({"include_background": 0}, TypeError, r"`include_background` must be a bool"),
])
def test_bad_arguments(kwargs, exc, match):
    x, labels, _ = case(8, shape=(1, 13, 11), ignored=0.0)
    kwargs = {"radius": 4, **kwargs} if "pool_size" in kwargs else kwargs
    with pytest.raises(exc, match=match):
        sl.rmi_loss(jnp.asarray(x), jnp.asarray(labels), **kwargs)


def test_ce_needs_two_classes_and_rmi_is_2d():
    x, labels, _ = case(9, c=1, ignored=0.0)
    with pytest.raises(ValueError, match=r"`pixel_loss='ce'` .*needs C >= 2"):
        sl.rmi_loss(jnp.asarray(x), jnp.asarray(labels), pixel_loss="ce")
    with pytest.raises(ValueError, match=r"`rmi_loss` is 2D.*got shape \(1, 4, 5, 6, 2\)"):
        sl.rmi_loss(jnp.zeros((1, 4, 5, 6, 2)), jnp.zeros((1, 4, 5, 6), jnp.int32))
