"""Pixel-wise losses against the float64 NumPy references of ``reference.py``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import segloss_jax as sl

# --------------------------------------------------------------------------- helpers


def random_case(seed, shape=(2, 5, 4), c=3, scale=3.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=scale, size=(*shape, c))
    labels = rng.integers(0, max(c, 2), size=shape)
    return x, labels


def f64(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in float64, compiled once (faster than op-by-op)."""
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in args]
        return np.asarray(jax.jit(lambda *a: fn(*a, **kwargs))(*args))


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("pos_weight", [None, 2.5])
def test_binary_cross_entropy_matches_reference(c, pos_weight):
    x, labels = random_case(0, c=c)
    g = ref.one_hot(labels, c)
    expected = ref.bce(ref.sigmoid(x), g, 1.0 if pos_weight is None else pos_weight).mean()
    got = f64(sl.binary_cross_entropy, x, labels, pos_weight=pos_weight)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_binary_cross_entropy_soft_labels_class_weights_and_mask():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3, 2)) * 4
    g = rng.random((2, 4, 3, 2))
    valid = rng.random((2, 4, 3)) > 0.3
    w = np.array([0.5, 2.0])
    expected = ref.pixel_mean(ref.bce(ref.sigmoid(x), g) * w, valid)
    got = f64(sl.binary_cross_entropy, x, g, class_weights=w, where=valid)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_binary_cross_entropy_matches_optax():
    x, labels = random_case(2, c=1)
    g = ref.one_hot(labels, 1)
    expected, got = jax.jit(lambda x, g, y: (  # one compiled program
        optax.losses.sigmoid_binary_cross_entropy(x, g).mean(), sl.binary_cross_entropy(x, y)))(
        jnp.asarray(x, jnp.float32), jnp.asarray(g, jnp.float32), jnp.asarray(labels))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_binary_cross_entropy_probabilities():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.99, size=(2, 6, 1))
    g = (rng.random((2, 6, 1)) > 0.5).astype(np.float64)
    expected = (-(g * np.log(p) + (1 - g) * np.log(1 - p))).mean()
    got = f64(sl.binary_cross_entropy, p, g, activation=None)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_binary_cross_entropy_gradient_at_zero_logit():
    # d/dx BCE = sigmoid(x) - g; x = 0 exactly is where the stable form has its kinks.
    x = jnp.zeros((1, 2, 1))
    labels = jnp.array([[1, 0]])
    grad = jax.jit(jax.grad(lambda l: sl.binary_cross_entropy(l, labels, reduction="sum")))(x)
    np.testing.assert_allclose(grad[0, :, 0], [-0.5, 0.5], rtol=1e-6)


def test_weighted_cross_entropy_is_bce_with_pos_weight():
    x, labels = random_case(4, c=1)
    g = ref.one_hot(labels, 1)
    got = f64(sl.weighted_cross_entropy, x, labels, beta=3.0)
    np.testing.assert_allclose(got, ref.bce(ref.sigmoid(x), g, 3.0).mean(), rtol=1e-12)


@pytest.mark.parametrize("beta", [None, 0.8])
def test_balanced_cross_entropy_matches_reference(beta):
    x, labels = random_case(5, c=1)
    valid = np.random.default_rng(6).random(labels.shape) > 0.2
    g = ref.one_hot(labels, 1)
    b = 1 - g[valid].mean() if beta is None else beta
    expected = ref.pixel_mean(ref.bce(ref.sigmoid(x), g, b, 1 - b), valid)
    got = f64(sl.balanced_cross_entropy, x, labels, beta=beta, where=valid)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_reference(smoothing):
    x, labels = random_case(7, c=4)
    w = np.array([0.2, 1.0, 3.0, 0.5])
    valid = labels != 2
    expected = ref.pixel_mean(ref.ce(ref.softmax(x), ref.one_hot(labels, 4), w, smoothing), valid)
    got = f64(sl.cross_entropy, x, labels, class_weights=w, label_smoothing=smoothing,
              ignore_index=2)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_cross_entropy_dense_labels_equal_integer_labels():
    x, labels = random_case(8, c=5)
    dense = ref.one_hot(labels, 5)
    np.testing.assert_allclose(f64(sl.cross_entropy, x, dense), f64(sl.cross_entropy, x, labels),
                               rtol=1e-12)


def test_cross_entropy_matches_optax_and_torch_formula():
    x, labels = random_case(9, c=3)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(labels)
    expected, got = jax.jit(lambda x, y: (  # one compiled program
        optax.losses.softmax_cross_entropy_with_integer_labels(x, y).mean(),
        sl.cross_entropy(x, y)))(xj, yj)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_cross_entropy_hand_worked():
    # One pixel, logits (0, ln 3): p = (1/4, 3/4); label 1 -> -log(3/4).
    logits = jnp.array([[[0.0, np.log(3.0)]]])
    plain, smoothed = jax.jit(lambda x, y: (  # one compiled program
        sl.cross_entropy(x, y), sl.cross_entropy(x, y, label_smoothing=0.5)))(
        logits, jnp.array([[1]]))
    np.testing.assert_allclose(plain, -np.log(0.75), rtol=1e-6)
    # Label smoothing 0.5 over 2 classes: targets (1/4, 3/4).
    expected = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    np.testing.assert_allclose(smoothed, expected, rtol=1e-6)


FOCAL_GAMMAS = (0.0, 0.5, 2.0)


@functools.cache
def _focal_softmax_values(alpha):
    """The float64 focal loss of case 10 for every gamma (static), one program per alpha."""
    x, labels = random_case(10, c=3)
    arg = np.array([0.1, 0.6, 0.3]) if alpha == "array" else alpha
    values = f64(lambda x, y: [sl.focal_loss(x, y, gamma=gamma, alpha=arg)
                               for gamma in FOCAL_GAMMAS], x, labels)
    return dict(zip(FOCAL_GAMMAS, values, strict=True))


@pytest.mark.parametrize("alpha", [None, 0.25, "array"])
@pytest.mark.parametrize("gamma", FOCAL_GAMMAS)
def test_focal_softmax_matches_reference(gamma, alpha):
    x, labels = random_case(10, c=3)
    if alpha is None:
        alpha_vec = np.ones(3)
    elif alpha == "array":
        alpha_vec = np.array([0.1, 0.6, 0.3])
    else:
        alpha_vec = np.array([1 - alpha, alpha, alpha])
    expected = ref.focal_softmax(ref.softmax(x), ref.one_hot(labels, 3), gamma, alpha_vec).mean()
    got = _focal_softmax_values(alpha)[gamma]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_sigmoid_matches_reference_and_optax(gamma, alpha):
    x, labels = random_case(11, c=2)
    g = ref.one_hot(labels, 2)
    expected = ref.focal_sigmoid(ref.sigmoid(x), g, gamma, alpha).mean()
    got = f64(sl.focal_loss, x, labels, gamma=gamma, alpha=alpha, activation="sigmoid")
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    peer, got32 = jax.jit(lambda x, g, y: (  # one compiled program
        optax.losses.sigmoid_focal_loss(x, g, alpha=alpha, gamma=gamma).mean(),
        sl.focal_loss(x, y, gamma=gamma, alpha=alpha, activation="sigmoid")))(
        jnp.asarray(x, jnp.float32), jnp.asarray(g, jnp.float32), jnp.asarray(labels))
    np.testing.assert_allclose(got32, peer, rtol=1e-5)


def test_focal_gamma_zero_is_cross_entropy():
    x, labels = random_case(12, c=4)
    x1, labels1 = random_case(13, c=1)
    # One compiled program for the four losses.
    focal, ce, focal1, bce = f64(lambda x, y, x1, y1: [
        sl.focal_loss(x, y, gamma=0.0), sl.cross_entropy(x, y),
        sl.focal_loss(x1, y1, gamma=0.0, activation="sigmoid"),
        sl.binary_cross_entropy(x1, y1)], x, labels, x1, labels1)
    np.testing.assert_allclose(focal, ce, rtol=1e-12)
    np.testing.assert_allclose(focal1, bce, rtol=1e-12)


def test_focal_small_gamma_gradient_finite_at_certainty():
    # (1 - p)^0.5 has an infinite derivative at p = 1; the loss must not turn it into NaN.
    logits = jnp.array([[[60.0, -60.0], [-60.0, 60.0]]])
    labels = jnp.array([[0, 1]])
    grad = jax.jit(jax.grad(lambda l: sl.focal_loss(l, labels, gamma=0.5)))(logits)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_reductions(reduction):
    x, labels = random_case(14, c=3)
    valid = labels != 0
    per_pixel = ref.ce(ref.softmax(x), ref.one_hot(labels, 3)) * valid
    got = f64(sl.cross_entropy, x, labels, where=valid, reduction=reduction)
    np.testing.assert_allclose(got, per_pixel.sum() if reduction == "sum" else per_pixel,
                               rtol=1e-12)
    x1, labels1 = random_case(15, c=2)
    got = f64(sl.binary_cross_entropy, x1, labels1, reduction="none")
    assert got.shape == x1.shape


def test_all_pixels_excluded_gives_zero_and_zero_gradient():
    x, labels = random_case(16, c=3)
    where = np.zeros(labels.shape, bool)
    for loss in (sl.cross_entropy, sl.focal_loss):
        value, grad = jax.jit(jax.value_and_grad(
            lambda l, loss=loss: loss(l, labels, where=where)))(jnp.asarray(x, jnp.float32))
        assert value == 0 and np.all(grad == 0)


# ------------------------------------------------------------------------ gradients


@pytest.mark.parametrize(
    "fn,kwargs,c",
    [
        (sl.binary_cross_entropy, {"pos_weight": 2.0}, 1),
        (sl.balanced_cross_entropy, {}, 1),
        (sl.cross_entropy, {"label_smoothing": 0.1}, 3),
        (sl.focal_loss, {"gamma": 2.0, "alpha": 0.25}, 3),
        (sl.focal_loss, {"gamma": 1.5, "activation": "sigmoid"}, 2),
    ],
)
def test_gradients_match_finite_differences(fn, kwargs, c):
    x, labels = random_case(17, shape=(2, 3, 3), c=c, scale=1.5)
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda l: fn(l, jnp.asarray(labels), **kwargs)), (jnp.asarray(x),),
                    order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_target():
    x, labels = random_case(18, c=3)
    grad = f64(lambda l: jax.grad(lambda z: sl.cross_entropy(z, jnp.asarray(labels),
                                                              reduction="sum"))(l), x)
    np.testing.assert_allclose(grad, ref.softmax(x) - ref.one_hot(labels, 3), atol=1e-12)


# ------------------------------------------------------------------ property tests


@settings(max_examples=8)
@given(
    spatial=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    c=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_property_shapes_and_references(spatial, c, seed):
    rng = np.random.default_rng(seed)
    shape = (2, *spatial)
    x = rng.normal(scale=3, size=(*shape, c))
    labels = rng.integers(0, max(c, 2), size=shape)
    g = ref.one_hot(labels, c)
    p, q = ref.sigmoid(x), ref.softmax(x)

    def losses(x, y):  # one compiled program per example
        sigmoid = [sl.binary_cross_entropy(x, y), sl.focal_loss(x, y, activation="sigmoid")]
        return sigmoid + ([sl.cross_entropy(x, y), sl.focal_loss(x, y)] if c > 1 else [])

    values = f64(losses, x, labels)
    np.testing.assert_allclose(values[0], ref.bce(p, g).mean(), rtol=1e-10)
    np.testing.assert_allclose(values[1], ref.focal_sigmoid(p, g, 2.0).mean(), rtol=1e-10)
    if c > 1:
        np.testing.assert_allclose(values[2], ref.ce(q, g).mean(), rtol=1e-10)
        np.testing.assert_allclose(values[3], ref.focal_softmax(q, g, 2.0, 1.0).mean(),
                                   rtol=1e-10)


# ------------------------------------------------------------------------ bad input


def traced(fn, x, labels, **kwargs):
    """``fn(x, labels, **kwargs)`` under jit: a bad option raises while the call is traced,
    before anything is compiled (called eagerly, a loss may compile its operations one by
    one before it reaches the check)."""
    return jax.jit(lambda a, b: fn(a, b, **kwargs))(x, labels)


def test_weighted_cross_entropy_rejects_softmax():
    x, labels = random_case(19, c=3)
    with pytest.raises(ValueError, match="activation"):
        traced(sl.weighted_cross_entropy, jnp.asarray(x), jnp.asarray(labels), beta=2.0,
               activation="softmax")


def test_bad_hyperparameters():
    x, labels = random_case(20, c=3)
    x, labels = jnp.asarray(x), jnp.asarray(labels)
    with pytest.raises(ValueError, match="label_smoothing"):
        traced(sl.cross_entropy, x, labels, label_smoothing=1.5)
    with pytest.raises(ValueError, match="alpha"):
        traced(sl.focal_loss, x, labels, alpha=jnp.ones(4))
    with pytest.raises(ValueError, match="beta"):
        traced(sl.balanced_cross_entropy, x, labels, beta=1.5, activation="sigmoid")
    with pytest.raises(ValueError, match="ignore_index"):
        traced(sl.cross_entropy, x, jax.nn.one_hot(labels, 3), ignore_index=0)
    with pytest.raises(TypeError, match="where"):
        traced(sl.cross_entropy, x, labels, where=jnp.ones(labels.shape))
    with pytest.raises(ValueError, match="where"):
        traced(sl.cross_entropy, x, labels, where=jnp.ones((3, 3), bool))
    with pytest.raises(TypeError, match="labels"):
        traced(sl.cross_entropy, x, labels.astype(jnp.float32))
