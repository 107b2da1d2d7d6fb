"""Lovász losses against the Lovász extension computed from its definition.

The float64 NumPy reference (``reference.lovasz_extension``) never sorts with a
tie rule: it uses the threshold (Choquet) form of the Lovász extension of the
Jaccard loss of the set of mispredicted pixels. Units, class selection and means
follow the peers' procedure (flatten, drop excluded pixels, one binary problem
per class, mean of the per-image means). Gradients are compared with autodiff
through a naive JAX implementation (stable argsort, gather, cumulative sums)
written here.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from jax._src import core as jax_core
from jax.test_util import check_grads
from test_pixelwise import traced

import segloss_jax as sl

# ----------------------------------------------------------- naive JAX (for gradients)


def naive_lovasz(e, g):
    """Lovász extension by autodiff-able ops: stable argsort, gather, cumulative sums."""
    order = jnp.argsort(-e, stable=True)
    e_sorted, g_sorted = e[order], jnp.asarray(g)[order].astype(e.dtype)
    total = jnp.sum(g_sorted)
    jaccard = 1 - (total - jnp.cumsum(g_sorted)) / (total + jnp.cumsum(1 - g_sorted))
    steps = jnp.concatenate([jaccard[:1], jnp.diff(jaccard)])
    return jnp.dot(e_sorted, steps)


def naive_lovasz_softmax(x, labels, valid, *, per_image, activation="softmax"):
    """Mean over present classes (per image, then over images), valid pixels only."""
    b, c = x.shape[0], x.shape[-1]
    p = {"softmax": lambda a: jax.nn.softmax(a, -1), "sigmoid": jax.nn.sigmoid,
         None: lambda a: a}[activation](x).reshape(b, -1, c)
    g = ref.binary_target(np.asarray(labels), c).reshape(b, -1, c)
    valid = np.asarray(valid).reshape(b, -1)
    groups = [[i] for i in range(b)] if per_image else [list(range(b))]
    means = []
    for images in groups:
        m = valid[images]
        losses = []
        for k in range(c):
            gk = g[images][:, :, k][m]
            if gk.any():
                pk = p[np.array(images)][:, :, k][m]
                losses.append(naive_lovasz(jnp.abs(gk - pk), gk))
        means.append(sum(losses) / len(losses))
    return sum(means) / len(means)


# --------------------------------------------------------------------------- helpers


def random_case(seed, shape=(2, 5, 4), c=3, scale=2.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=scale, size=(*shape, c)).astype(dtype)
    labels = rng.integers(0, max(c, 2), size=shape)
    return x, labels


def f64(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in float64, compiled once."""
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in args]
        return np.asarray(jax.jit(lambda *a: fn(*a, **kwargs))(*args))


def f32(fn, *args, **kwargs):
    args = [jnp.asarray(a) for a in args]
    return np.asarray(jax.jit(lambda *a: fn(*a, **kwargs))(*args))


# ------------------------------------------------------------------- definition values


def test_reference_is_the_jaccard_loss_on_binary_errors():
    # The Lovász extension agrees with the set function on indicator vectors.
    rng = np.random.default_rng(0)
    g = rng.random(20) < 0.4
    mistakes = rng.random(20) < 0.3
    assert ref.lovasz_extension(mistakes.astype(float), g) == pytest.approx(
        ref.jaccard_set_loss(mistakes, g))


@pytest.mark.parametrize("shape", [(2, 9), (2, 5, 4), (2, 3, 3, 4)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("per_image", [False, True])
def test_softmax_values_match_definition(shape, per_image):
    x, labels = random_case(1, shape=shape)
    expected = ref.lovasz_softmax(x, labels, per_image=per_image)
    got = f32(sl.lovasz_softmax_loss, x, labels, per_image=per_image)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    got64 = f64(sl.lovasz_softmax_loss, x.astype(np.float64), labels, per_image=per_image)
    np.testing.assert_allclose(got64, expected, rtol=1e-12)


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), per_image=st.booleans(),
       classes=st.sampled_from(["present", "all"]), include_background=st.booleans(),
       activation=st.sampled_from(["softmax", "sigmoid"]), reduction=st.sampled_from(
           ["mean", "sum", "none"]))
def test_softmax_options_match_definition(seed, per_image, classes, include_background,
                                          activation, reduction):
    x, labels = random_case(seed, shape=(3, 4, 3), c=3)
    rng = np.random.default_rng(seed)
    labels[1] = 0  # classes absent from image 1
    valid = rng.random(labels.shape) < 0.8
    valid[2] = False  # an image without valid pixels
    weights = rng.uniform(0.5, 2.0, size=3)
    kwargs = dict(per_image=per_image, classes=classes, include_background=include_background,
                  activation=activation, reduction=reduction)
    expected = ref.lovasz_softmax(x, labels, class_weights=weights, valid=valid, **kwargs)
    got = f32(lambda a, y, w, v: sl.lovasz_softmax_loss(a, y, class_weights=w, where=v, **kwargs),
              x, labels, weights, valid)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_ignore_index_equals_where():
    x, labels = random_case(3)
    ignored = np.random.default_rng(3).random(labels.shape) < 0.3
    expected = ref.lovasz_softmax(x, labels, valid=~ignored, per_image=True)
    got = f32(sl.lovasz_softmax_loss, x, np.where(ignored, 255, labels), per_image=True,
              ignore_index=255)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_probabilities_input_and_binary_predictions_give_the_jaccard_loss():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=(2, 6, 5))
    pred = rng.integers(0, 3, size=(2, 6, 5))
    probs = np.eye(3, dtype=np.float32)[pred]  # hard predictions as probabilities
    jaccard = []
    for k in range(3):
        g, y = labels == k, pred == k
        jaccard.append(1 - np.sum(g & y) / np.sum(g | y))
    got = f32(sl.lovasz_softmax_loss, probs, labels, activation=None, classes="all")
    np.testing.assert_allclose(got, np.mean(jaccard), rtol=1e-6)
    perfect = f32(sl.lovasz_softmax_loss, np.eye(3, dtype=np.float32)[labels], labels,
                  activation=None)
    assert perfect == 0.0


def test_dense_labels_are_binarised():
    x, labels = random_case(5)
    onehot = np.eye(3, dtype=np.float32)[labels]
    smoothed = 0.9 * onehot + 0.1 / 3
    expected, got_onehot, got_smoothed = f32(lambda a, y, o, s: [
        sl.lovasz_softmax_loss(a, y), sl.lovasz_softmax_loss(a, o),
        sl.lovasz_softmax_loss(a, s)], x, labels, onehot, smoothed)  # one compiled program
    np.testing.assert_allclose(got_onehot, expected, rtol=1e-6)
    np.testing.assert_allclose(got_smoothed, expected, rtol=1e-6)


def test_absent_class_with_all_is_the_largest_probability():
    x, _ = random_case(6, shape=(1, 8))
    labels = np.zeros((1, 8), int)  # classes 1 and 2 absent
    per_class = f32(sl.lovasz_softmax_loss, x, labels, classes="all", reduction="none")
    p = ref.probs(x.astype(np.float64), "softmax")[0]
    np.testing.assert_allclose(per_class[1:], p[:, 1:].max(0), rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 9), (2, 5, 4), (2, 3, 3, 4)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("per_image", [False, True])
def test_hinge_values_match_definition(shape, per_image):
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, 2, size=shape)
    labels[0] = 0  # an image without foreground still counts
    expected = ref.lovasz_hinge(x, labels, per_image=per_image)
    # Channel-less logits and logits with a channel axis, in one compiled program.
    for got in f32(lambda a, y: [sl.lovasz_hinge_loss(a, y, per_image=per_image),
                                 sl.lovasz_hinge_loss(a[..., None], y, per_image=per_image)],
                   x, labels):
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    got64 = f64(sl.lovasz_hinge_loss, x.astype(np.float64), labels, per_image=per_image)
    np.testing.assert_allclose(got64, expected, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("per_image", [False, True])
def test_hinge_masks_and_reductions(per_image, reduction):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    labels = rng.integers(0, 2, size=(3, 5, 4))
    ignored = rng.random(labels.shape) < 0.3
    ignored[1] = True  # an image without valid pixels leaves the mean
    expected = ref.lovasz_hinge(x, labels, valid=~ignored, per_image=per_image,
                               reduction=reduction)
    dense = labels[..., None].astype(np.float32)
    # Ignored labels, and dense labels with `where`, in one compiled program.
    ignored_got, dense_got = f32(
        lambda a, y, d, v: [sl.lovasz_hinge_loss(a, y, per_image=per_image, ignore_index=255,
                                                 reduction=reduction),
                            sl.lovasz_hinge_loss(a[..., None], d, where=v, per_image=per_image,
                                                 reduction=reduction)],
        x, np.where(ignored, 255, labels), dense, ~ignored)
    np.testing.assert_allclose(ignored_got, expected, rtol=1e-5)
    assert ignored_got.shape == ((3,) if per_image and reduction == "none" else ())
    np.testing.assert_allclose(dense_got, expected, rtol=1e-5)


def test_hinge_perfect_margin_is_zero():
    labels = np.random.default_rng(9).integers(0, 2, size=(2, 4, 4))
    x = np.where(labels == 1, 1.5, -1.5).astype(np.float32)
    assert f32(sl.lovasz_hinge_loss, x, labels) == 0.0


# ------------------------------------------------------------------------- gradients


def grad64(fn, x):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.grad(fn))(jnp.asarray(x, jnp.float64)))


@pytest.mark.parametrize("per_image", [False, True])
def test_softmax_gradient_equals_naive_autodiff(per_image):
    x, labels = random_case(10, shape=(2, 4, 5))
    valid = np.random.default_rng(10).random(labels.shape) < 0.8
    ours = grad64(lambda a: sl.lovasz_softmax_loss(a, labels, where=jnp.asarray(valid),
                                                   per_image=per_image), x)
    naive = grad64(lambda a: naive_lovasz_softmax(a, labels, valid, per_image=per_image), x)
    np.testing.assert_allclose(ours, naive, rtol=1e-9, atol=1e-12)
    # The float32 (packed-key) path agrees too.
    ours32 = np.asarray(jax.jit(jax.grad(lambda a: sl.lovasz_softmax_loss(
        a, labels, where=jnp.asarray(valid), per_image=per_image)))(jnp.asarray(x)))
    np.testing.assert_allclose(ours32, naive, rtol=1e-4, atol=1e-6)
    assert np.all(ours32[~valid] == 0)


def test_ties_follow_the_stable_order():
    # Probabilities (and hinge margins) from a few exactly representable values: many
    # pixels share an error, also across labels (|1 - 0.75| == |0 - 0.25|).
    rng = np.random.default_rng(11)
    probs = rng.choice([0.25, 0.5, 0.75], size=(2, 6, 5, 3))
    labels = rng.integers(0, 3, size=(2, 6, 5))
    valid = np.ones(labels.shape, bool)
    for per_image in (False, True):
        ours = np.asarray(jax.jit(jax.grad(lambda a, pi=per_image: sl.lovasz_softmax_loss(
            a, labels, per_image=pi, activation=None)))(jnp.asarray(probs, jnp.float32)))
        naive = grad64(lambda a, pi=per_image: naive_lovasz_softmax(
            a, labels, valid, per_image=pi, activation=None), probs)
        np.testing.assert_allclose(ours, naive, rtol=1e-5, atol=1e-7)
    x = rng.integers(-2, 3, size=(2, 5, 4)).astype(np.float32)
    binary = labels[:, :5, :4] % 2
    ours = np.asarray(jax.jit(jax.grad(lambda a: sl.lovasz_hinge_loss(a, binary, per_image=False)))(
        jnp.asarray(x)))
    s = np.where(binary == 1, 1.0, -1.0).ravel()
    naive = grad64(lambda a: naive_lovasz(jax.nn.relu(1 - a.ravel() * s), binary.ravel() == 1),
                   x)
    np.testing.assert_allclose(ours, naive, rtol=1e-5, atol=1e-7)


def test_hinge_gradient_equals_naive_autodiff():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 5, 4))
    labels = rng.integers(0, 2, size=(2, 5, 4))

    def naive(a):
        s = jnp.where(labels == 1, 1.0, -1.0).reshape(2, -1)
        e = jax.nn.relu(1 - a.reshape(2, -1) * s)
        return (naive_lovasz(e[0], labels[0].ravel() == 1)
                + naive_lovasz(e[1], labels[1].ravel() == 1)) / 2

    ours = grad64(lambda a: sl.lovasz_hinge_loss(a, labels), x)
    np.testing.assert_allclose(ours, grad64(naive, x), rtol=1e-9, atol=1e-12)


def test_check_grads():
    x, labels = random_case(13, shape=(2, 3, 4))
    with jax.enable_x64(True):
        x = jnp.asarray(x, jnp.float64)
        binary = (labels > 0).astype(np.int32)
        for fn in [
            lambda a: sl.lovasz_softmax_loss(a, labels, per_image=True),
            lambda a: sl.lovasz_softmax_loss(a, labels, activation="sigmoid", classes="all"),
            lambda a: sl.lovasz_hinge_loss(a[..., :1], binary, per_image=False),
        ]:
            check_grads(jax.jit(fn), (x,), order=1, modes=["rev"])


def test_empty_units_leave_the_mean_with_zero_gradient():
    x, labels = random_case(14, shape=(2, 4, 4))
    where = np.ones(labels.shape, bool)
    where[0] = False
    fn = jax.jit(jax.value_and_grad(lambda a, v: sl.lovasz_softmax_loss(a, labels, where=v,
                                                                        per_image=True)))
    value, grad = fn(jnp.asarray(x), jnp.asarray(where))
    alone = f32(sl.lovasz_softmax_loss, x[1:], labels[1:], per_image=True)
    np.testing.assert_allclose(value, alone, rtol=1e-6)
    assert np.all(np.asarray(grad)[0] == 0)
    value, grad = fn(jnp.asarray(x), jnp.zeros(labels.shape, bool))
    assert value == 0.0 and np.all(np.asarray(grad) == 0)
    none = f32(sl.lovasz_softmax_loss, x, labels, where=np.zeros(labels.shape, bool),
               reduction="none")
    assert none.shape == (3,) and np.all(none == 0)
    hinge = jax.jit(jax.value_and_grad(lambda a: sl.lovasz_hinge_loss(
        a, labels > 0, where=jnp.zeros(labels.shape, bool))))
    value, grad = hinge(jnp.asarray(x[..., 0]))
    assert value == 0.0 and np.all(np.asarray(grad) == 0)


def _sorted_elements(jaxpr) -> int:
    """Elements sorted by ``sort`` equations, sub-jaxprs included."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "sort":
            total += math.prod(eqn.outvars[0].aval.shape)
        for sub in jax_core.jaxprs_in_params(eqn.params):
            total += _sorted_elements(sub)
    return total


def test_one_sort_in_the_gradient():
    # Each unit is sorted once, forward and backward together (on CPU the units are
    # split into groups sorted concurrently, so count sorted elements, not sorts).
    x, labels = random_case(15)

    def count(fn, a):
        return _sorted_elements(jax.make_jaxpr(jax.grad(fn))(jnp.asarray(a)).jaxpr)

    for per_image in (False, True):
        assert count(lambda a, pi=per_image: sl.lovasz_softmax_loss(a, labels, per_image=pi),
                     x) == x.size
    assert count(lambda a: sl.lovasz_hinge_loss(a, labels > 0), x[..., :1]) == x[..., 0].size


# ------------------------------------------------------------------------- bad inputs


def test_bad_inputs():
    x, labels = random_case(16)

    with pytest.raises(ValueError, match="classes"):
        traced(sl.lovasz_softmax_loss, x, labels, classes="some")
    with pytest.raises(ValueError, match="binary"):
        traced(sl.lovasz_hinge_loss, x, labels)
    with pytest.raises(ValueError, match="labels"):
        traced(sl.lovasz_hinge_loss, x[..., 0], labels[0])
    with pytest.raises(TypeError, match="activation"):
        traced(sl.lovasz_hinge_loss, x[..., :1], labels > 0, activation="sigmoid")


# ------------------------------------------------------------------------------ peers


def test_matches_segmentation_models_pytorch():
    torch = pytest.importorskip("torch")
    smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")
    x, labels = random_case(17, shape=(2, 6, 5), c=4)
    labels[0, 0, :2] = 255
    for per_image in (False, True):
        peer = smp_losses.LovaszLoss(mode="multiclass", per_image=per_image, ignore_index=255)
        expected = peer(torch.tensor(np.moveaxis(x, -1, 1)), torch.tensor(labels)).item()
        got = f32(sl.lovasz_softmax_loss, x, labels, per_image=per_image, ignore_index=255)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        binary = np.where(labels == 255, 255, labels % 2)
        peer = smp_losses.LovaszLoss(mode="binary", per_image=per_image, ignore_index=255)
        expected = peer(torch.tensor(x[None, ..., 0].swapaxes(0, 1)),
                        torch.tensor(binary[:, None])).item()
        got = f32(sl.lovasz_hinge_loss, x[..., 0], binary, per_image=per_image,
                  ignore_index=255)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
