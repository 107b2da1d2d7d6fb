"""Tests for the soft skeleton and the clDice losses (``segloss_jax._src.topology``).

Values are checked against the float64 NumPy references of ``reference.py``
(``soft_skeleton`` from Shit et al.'s Algorithm 1 on ``scipy.ndimage`` grey
morphology, ``cldice_loss`` from the paper's formula); gradients against plain
autodiff of the same formula (the unrolled loop below, every step kept) and
finite differences.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads
from test_windows import autodiff_dilate, autodiff_erode, check_grads_jitted

import segloss_jax as sl
from segloss_jax._src.topology import soft_skeleton

SPATIAL = {"1d": (11,), "2d": (7, 8), "3d": (5, 6, 4)}


def _case(spatial, num_classes, seed=0, batch=2):
    """Random logits and integer labels in which every class occurs."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(batch, *spatial, num_classes))
    labels = rng.integers(0, max(num_classes, 2), size=(batch, *spatial))
    labels.reshape(batch, -1)[:, : max(num_classes, 2)] = np.arange(max(num_classes, 2))
    return logits, labels


def _plain_skeleton(x, spatial_ndim, iterations):
    """The soft skeleton unrolled, on ``lax.reduce_window`` minima and maxima,
    differentiated by plain autodiff."""

    def opening(v):
        return autodiff_dilate(autodiff_erode(v, spatial_ndim), spatial_ndim)

    skel = jax.nn.relu(x - opening(x))
    for _ in range(iterations):
        x = autodiff_erode(x, spatial_ndim)
        delta = jax.nn.relu(x - opening(x))
        skel = skel + jax.nn.relu(delta - skel * delta)
    return skel


def _plain_cldice(logits, labels, iterations, valid):
    """``cldice_loss(activation="sigmoid")`` for ``C == 1``, batch unit, smooth (1, 1)."""
    mask = valid[..., None]
    p = jnp.where(mask, jax.nn.sigmoid(logits), 0.0)
    g = jnp.where(mask, (labels == 1)[..., None].astype(p.dtype), 0.0)
    nd = p.ndim - 2
    skel_p = _plain_skeleton(p[..., 0], nd, iterations)[..., None]
    skel_g = _plain_skeleton(g[..., 0], nd, iterations)[..., None]
    t_prec = (jnp.sum(skel_p * g) + 1) / (jnp.sum(skel_p) + 1)
    t_sens = (jnp.sum(skel_g * p) + 1) / (jnp.sum(skel_g) + 1)
    return 1 - 2 * t_prec * t_sens / (t_prec + t_sens)


# ------------------------------------------------------------------------- soft skeleton


@pytest.mark.parametrize("iterations", [0, 1, 4])
@pytest.mark.parametrize("spatial", SPATIAL.values(), ids=SPATIAL.keys())
def test_soft_skeleton_matches_reference(spatial, iterations):
    x = np.random.default_rng(len(spatial)).random((2, 3, *spatial))  # two batch axes
    with jax.enable_x64(True):
        got = soft_skeleton(jnp.asarray(x), len(spatial), iterations)
        assert got.dtype == jnp.float64 and got.shape == x.shape
        np.testing.assert_allclose(got, ref.soft_skeleton(x, len(spatial), iterations),
                                   rtol=0, atol=1e-14)


def test_soft_skeleton_of_a_bar_is_its_centre_line():
    bar = np.zeros((1, 9, 12))
    bar[0, 3:6, 2:10] = 1.0  # 3 pixels thick
    skel = np.asarray(soft_skeleton(jnp.asarray(bar), 2, 2))
    np.testing.assert_array_equal(skel, ref.soft_skeleton(bar, 2, 2))
    assert skel[0, 4, 3:9].min() == 1.0  # the centre row, away from the ends
    assert np.all(skel[0, [3, 5], 3:9] == 0)  # the rows beside it are peeled away
    line = np.zeros((1, 9, 12))
    line[0, 4, 1:11] = 1.0  # one pixel thick: its own skeleton
    np.testing.assert_array_equal(soft_skeleton(jnp.asarray(line), 2, 3), line)


@settings(max_examples=8)
@given(st.integers(0, 2**31 - 1), st.integers(0, 4), st.sampled_from([1, 2, 3]))
def test_soft_skeleton_properties(seed, iterations, spatial_ndim):
    """Within ``[0, x]``, and binary (a subset of the input) for binary input."""
    rng = np.random.default_rng(seed)
    shape = (2, *[5, 6, 4][:spatial_ndim])
    x = rng.random(shape) ** rng.uniform(0.3, 3.0)
    skel = np.asarray(soft_skeleton(jnp.asarray(x, jnp.float32), spatial_ndim, iterations))
    assert np.all(skel >= 0) and np.all(skel <= x + 1e-6)
    binary = (rng.random(shape) < 0.6).astype(np.float32)
    skel = np.asarray(soft_skeleton(jnp.asarray(binary), spatial_ndim, iterations))
    assert set(np.unique(skel)) <= {0.0, 1.0} and np.all(skel <= binary)


# ------------------------------------------------------------------------------- values


@functools.cache
def _both_losses(act, spatial, c):
    """Both losses of ``test_value_matches_reference`` in float64, in one program."""
    logits, labels = _case(spatial, c)

    def both(x, y):
        return {"cldice_loss": sl.cldice_loss(x, y, activation=act, iterations=2),
                "dice_cldice_loss": sl.dice_cldice_loss(x, y, activation=act, iterations=2,
                                                        lambda_dice=0.7, lambda_cldice=0.3)}

    with jax.enable_x64(True):
        return jax.jit(both)(jnp.asarray(logits), jnp.asarray(labels))


@pytest.mark.parametrize("spatial", SPATIAL.values(), ids=SPATIAL.keys())
@pytest.mark.parametrize("act,c", [("softmax", 3), ("sigmoid", 1)])
@pytest.mark.parametrize("name", ["cldice_loss", "dice_cldice_loss"])
def test_value_matches_reference(name, act, c, spatial):
    logits, labels = _case(spatial, c)
    hyper = ({"lambda_dice": 0.7, "lambda_cldice": 0.3} if name == "dice_cldice_loss"
             else {})
    with jax.enable_x64(True):
        got = _both_losses(act, spatial, c)[name]
        expected = ref.cldice_loss(logits, labels, activation=act, iterations=2, **hyper)
        np.testing.assert_allclose(got, expected, rtol=1e-10)


KEYWORD_CASES = [
    {"per_image": True},
    {"per_image": True, "reduction": "none", "smooth": (0.5, 2.0)},
    {"reduction": "none", "include_background": False, "ignore_index": 2},
    {"per_image": True, "classes": "present", "class_weights": [1.0, 2.0, 0.5],
     "reduction": "sum"},
    {"where": "mask", "iterations": 0},
    {"where": "mask", "ignore_index": 2, "per_image": True, "iterations": 5},
]


@pytest.mark.parametrize("kwargs", KEYWORD_CASES)
@pytest.mark.parametrize("name", ["cldice_loss", "dice_cldice_loss"])
def test_keywords_match_reference(name, kwargs):
    logits, labels = _case((6, 7), 3, seed=3)
    labels[0, :2] = 2  # ignored with ignore_index=2
    labels[1] = np.where(labels[1] == 1, 0, labels[1])  # class 1 absent from image 1
    kwargs = dict(kwargs)
    if kwargs.get("where") == "mask":
        kwargs["where"] = np.random.default_rng(4).random(labels.shape) > 0.3
    hyper = ({"lambda_dice": 0.4, "lambda_cldice": 0.6} if name == "dice_cldice_loss"
             else {})
    with jax.enable_x64(True):
        got = getattr(sl, name)(jnp.asarray(logits), jnp.asarray(labels), **kwargs, **hyper)
        expected = ref.cldice_loss(logits, labels, **kwargs, **hyper)
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


def test_dice_cldice_ends_are_its_terms():
    logits, labels = _case((6, 7), 3, seed=5)
    x, y = jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
    kw = {"per_image": True, "ignore_index": 2}
    np.testing.assert_allclose(sl.dice_cldice_loss(x, y, lambda_dice=1.0, lambda_cldice=0.0, **kw),
                               sl.dice_loss(x, y, smooth=(1.0, 1.0), **kw), rtol=1e-6)
    np.testing.assert_allclose(sl.dice_cldice_loss(x, y, lambda_dice=0.0, lambda_cldice=1.0, **kw),
                               sl.cldice_loss(x, y, **kw), rtol=1e-6)


@pytest.mark.parametrize("spatial", SPATIAL.values(), ids=SPATIAL.keys())
def test_perfect_prediction_of_a_thin_structure_is_zero(spatial):
    labels = np.zeros((1, *spatial), np.int32)
    labels[(0, *(s // 2 for s in spatial[:-1]), slice(1, -1))] = 1  # a line along the last axis
    probs = labels[..., None].astype(np.float32)
    two_channels = np.concatenate([1 - probs, probs], -1)
    broken = probs.copy()
    broken[(0, *(s // 2 for s in spatial[:-1]), spatial[-1] // 2, 0)] = 0.0
    cases = [(None, probs, {}), ("sigmoid", np.where(probs > 0, 50.0, -50.0), {}),
             (None, two_channels, {"include_background": False})]
    names = ("cldice_loss", "dice_cldice_loss")

    @jax.jit  # one program for every loss below
    def losses(xs, broken, labels):
        perfect = [getattr(sl, name)(x, labels, activation=act, **kw)
                   for (act, _, kw), x in zip(cases, xs, strict=True) for name in names]
        return perfect, sl.cldice_loss(broken, labels, activation=None)

    perfect, gap = losses([jnp.asarray(x) for _, x, _ in cases], jnp.asarray(broken),
                          jnp.asarray(labels))
    for loss, (act, name) in zip(perfect, [(a, n) for a, _, _ in cases for n in names],
                                 strict=True):
        assert abs(float(loss)) < 1e-7, (name, act)
    if len(spatial) == 1:
        return  # in 1D a segment longer than 2·iterations + 1 has an empty skeleton
    # A gap in the line is penalised.
    assert float(gap) > 0.05


@settings(max_examples=6)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.integers(0, 3))
def test_loss_in_unit_interval(seed, per_image, iterations):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.random((2, 5, 6, 2)) ** rng.uniform(0.2, 4.0), jnp.float32)
    labels = jnp.asarray(rng.random((2, 5, 6, 2)) < rng.random(), jnp.float32)  # multi-label
    for name in ("cldice_loss", "dice_cldice_loss"):
        loss = getattr(sl, name)(x, labels, activation=None, per_image=per_image,
                                 iterations=iterations, reduction="none", smooth=(0.0, 1e-6))
        assert np.all(np.asarray(loss) >= -1e-6) and np.all(np.asarray(loss) <= 1 + 1e-6)


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("spatial", [(9,), (6, 7)], ids=["1d", "2d"])
def test_gradient_equals_plain_autodiff(spatial):
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2.0, size=(2, *spatial, 1))
    labels = rng.integers(0, 2, size=(2, *spatial))
    valid = rng.random(labels.shape) > 0.2
    with jax.enable_x64(True):
        x, y, m = jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(valid)
        v = jnp.asarray(rng.normal(size=logits.shape))

        # Two iterations: steps before and after the loop's first; the unrolled plain
        # program (compiling dominates) grows with each.
        def ours(x):
            return sl.cldice_loss(x, y, activation="sigmoid", iterations=2, where=m)

        def plain(x):
            return _plain_cldice(x, y, 2, m)

        def hvp(f, x):
            return jax.jvp(jax.grad(f), (x,), (v,))[1]

        @jax.jit  # one program: values, gradients and Hessian-vector products of both
        def everything(x):
            return [(*jax.value_and_grad(f)(x), hvp(f, x)) for f in (ours, plain)]

        (value, grad, ours_hvp), (plain_value, plain_grad, plain_hvp) = everything(x)
        np.testing.assert_allclose(value, plain_value, rtol=1e-13)
        np.testing.assert_allclose(grad, plain_grad, rtol=1e-12, atol=1e-15)
        assert np.all(np.asarray(grad)[~valid] == 0)
        # Second order through the rematerialised steps too.
        np.testing.assert_allclose(ours_hvp, plain_hvp, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["cldice_loss", "dice_cldice_loss"])
def test_check_grads(name):
    logits, labels = _case((5, 6), 3, seed=9)
    labels[0, 0, :2] = 2
    with jax.enable_x64(True):
        for kwargs in ({"ignore_index": 2, "per_image": True},
                       {"activation": "sigmoid", "classes": "present", "iterations": 2}):

            def f(x, kwargs=kwargs):
                return getattr(sl, name)(x, jnp.asarray(labels), **kwargs)

            check_grads(jax.jit(f), (jnp.asarray(logits),), order=1, modes=("rev",), eps=1e-6)


def test_soft_skeleton_check_grads():
    x = np.random.default_rng(11).random((1, 5, 4))
    with jax.enable_x64(True):
        w = jnp.asarray(np.random.default_rng(12).normal(size=x.shape))
        check_grads_jitted(lambda x: jnp.sum(w * soft_skeleton(x, 2, 2)), (jnp.asarray(x),),
                           order=2, eps=1e-6)


# ------------------------------------------------------------------------- distributed


def test_per_image_under_shard_map_is_the_global_mean():
    devices = 4
    if jax.device_count() < devices:
        pytest.skip(f"needs {devices} devices")
    mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    logits, labels = _case((6, 5), 3, seed=13, batch=devices)
    labels[:, 0, 0] = 255
    x, y = jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
    for per_image in (True,):
        kw = {"ignore_index": 255, "per_image": per_image, "include_background": False}
        want, want_grad = jax.jit(jax.value_and_grad(
            lambda x, kw=kw: sl.dice_cldice_loss(x, y, **kw)))(x)
        local = jax.shard_map(lambda x, y, kw=kw: sl.dice_cldice_loss(x, y, axis_name="data", **kw),
                              mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P())
        got, got_grad = jax.jit(jax.value_and_grad(local))(x, y)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["cldice_loss", "dice_cldice_loss"])
def test_bad_iterations(name):
    logits, labels = _case((5, 6), 3)
    x, y = jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
    with pytest.raises(ValueError, match="`iterations` must be a non-negative int, got -1"):
        getattr(sl, name)(x, y, iterations=-1)
    for bad in (2.0, True, jnp.asarray(2), "3"):
        with pytest.raises(TypeError, match="`iterations` must be a non-negative int"):
            getattr(sl, name)(x, y, iterations=bad)
    assert np.isfinite(getattr(sl, name)(x, y, iterations=np.int64(2)))


@pytest.mark.parametrize("name", ["lambda_dice", "lambda_cldice"])
def test_negative_term_weight(name):
    logits, labels = _case((5, 6), 3)
    with pytest.raises(ValueError, match=f"`{name}` must be non-negative"):
        sl.dice_cldice_loss(jnp.asarray(logits), jnp.asarray(labels), **{name: -0.1})


def test_soft_skeleton_bad_spatial_ndim():
    with pytest.raises(ValueError, match="spatial_ndim"):
        soft_skeleton(jnp.ones((2, 3)), 4, 1)
