"""Top-k and Poly-1 losses against the float64 NumPy references of ``reference.py``."""

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
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads
from test_pixelwise import f64, random_case

import segloss_jax as sl


def ignored_case(seed, shape=(2, 6, 5), c=3, fraction=0.3):
    """Logits and labels with a share of pixels set to 255, unevenly over the images."""
    x, labels = random_case(seed, shape=shape, c=c)
    rng = np.random.default_rng(seed + 100)
    ignored = rng.random(shape) < fraction * np.linspace(1.5, 0.5, shape[0])[:, None, None]
    return x, np.where(ignored, 255, labels)


def ce_per_pixel(x, labels, weights=1.0, smoothing=0.0):
    c = x.shape[-1]
    return ref.ce(ref.softmax(x), ref.one_hot(labels, c), weights, smoothing)


# ------------------------------------------------------------------------------ top-k


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("k,pq", [(0.1, (1, 10)), (0.37, (37, 100)), (1.0, (1, 1))])
def test_topk_matches_reference_with_ignored_pixels(per_image, k, pq):
    x, labels = ignored_case(0)
    valid = labels != 255
    expected, share = ref.topk_mean(ce_per_pixel(x, labels), valid, pq, per_image)

    def reductions(z, y):  # one compilation for the three reductions
        return [sl.topk_cross_entropy(z, y, k=k, per_image=per_image, ignore_index=255,
                                      reduction=r) for r in ("mean", "none", "sum")]

    with jax.enable_x64(True):
        got, none, total = map(np.asarray, jax.jit(reductions)(jnp.asarray(x),
                                                               jnp.asarray(labels)))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(none, np.where(valid, share * ce_per_pixel(x, labels), 0),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(total, none.sum(), rtol=1e-12)


def test_topk_class_weights_smoothing_where_and_dense_labels():
    x, labels = random_case(1, shape=(2, 7, 4), c=4)
    rng = np.random.default_rng(1)
    where = rng.random(labels.shape) > 0.25
    w = np.array([0.5, 1.0, 2.0, 3.0])
    loss = ce_per_pixel(x, labels, w, 0.1)
    expected, _ = ref.topk_mean(loss, where, (1, 4), per_image=True)
    got = f64(sl.topk_cross_entropy, x, labels, k=0.25, per_image=True, class_weights=w,
              label_smoothing=0.1, where=where)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    dense = f64(sl.topk_cross_entropy, x, ref.one_hot(labels, 4), k=0.25, per_image=True,
                class_weights=w, label_smoothing=0.1, where=where)
    np.testing.assert_allclose(dense, expected, rtol=1e-12)


def test_topk_ties_share_the_last_slots():
    # 12 pixels, 9 of them identical: k = 0.5 keeps the 3 worst and 3 of the 9 tied ones.
    x = np.zeros((1, 12, 2))
    x[0, :3, 1] = [4.0, 3.0, 2.0]  # label 0, so these are the hardest pixels
    labels = np.zeros((1, 12), np.int64)
    loss = ce_per_pixel(x, labels)
    expected = (loss[0, :3].sum() + 3 * np.log(2)) / 6
    got = f64(sl.topk_cross_entropy, x, labels, k=0.5)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, ref.topk_mean(loss, np.ones((1, 12), bool), (1, 2))[0],
                               rtol=1e-12)
    grad = f64(lambda z, y: jax.grad(lambda v: sl.topk_cross_entropy(v, y, k=0.5))(z),
               x, labels)
    tied = grad[0, 3:]
    np.testing.assert_allclose(tied, np.broadcast_to(tied[0], tied.shape), rtol=1e-12)
    # Each tied pixel carries 3/9 of a selected pixel's gradient: d CE / d x = (p - g) / 6.
    np.testing.assert_allclose(tied[0], np.array([-0.5, 0.5]) / 6 * (3 / 9), rtol=1e-12)


@pytest.mark.parametrize("per_image", [False, True])
def test_topk_k_one_is_cross_entropy(per_image):
    x, labels = ignored_case(2)
    a = f64(sl.topk_cross_entropy, x, labels, k=1.0, per_image=per_image, ignore_index=255)
    b = f64(sl.cross_entropy, x, labels, ignore_index=255)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_topk_counts_are_exact_fractions():
    # 0.1 · 30 is 3.0000000000000004 in floating point: three pixels, not four.
    x, labels = random_case(3, shape=(1, 6, 5), c=3)
    loss = ce_per_pixel(x, labels)
    got = f64(sl.topk_cross_entropy, x, labels, k=0.1)
    np.testing.assert_allclose(got, np.sort(loss.ravel())[::-1][:3].mean(), rtol=1e-12)
    got = f64(sl.topk_cross_entropy, x, labels, k=0.11)  # 3.3 pixels: 4
    np.testing.assert_allclose(got, np.sort(loss.ravel())[::-1][:4].mean(), rtol=1e-12)


def test_topk_jit_with_any_number_of_ignored_pixels_compiles_once():
    traces = []

    @jax.jit
    def f(x, y):
        traces.append(None)
        return sl.topk_cross_entropy(x, y, k=0.2, ignore_index=255)

    for seed, fraction in enumerate([0.0, 0.3, 0.6, 1.0]):
        x, labels = ignored_case(seed, fraction=fraction)
        expected, _ = ref.topk_mean(ce_per_pixel(x, labels), labels != 255, (1, 5))
        np.testing.assert_allclose(f(jnp.asarray(x, jnp.float32), jnp.asarray(labels)),
                                   expected, rtol=1e-5, atol=1e-7)
    assert len(traces) == 1


def test_topk_all_pixels_excluded_gives_zero():
    x, labels = random_case(4)
    value, grad = jax.jit(jax.value_and_grad(
        lambda z: sl.topk_cross_entropy(z, jnp.asarray(labels), where=False)))(jnp.asarray(x))
    assert value == 0 and not np.any(np.asarray(grad))


@pytest.mark.parametrize("k", [0.0, -0.1, 1.5])
def test_topk_rejects_k_outside_unit_interval(k):
    x, labels = random_case(5)
    # Checked while the call is traced: under jit they raise before anything is compiled.
    with pytest.raises(ValueError, match=r"`k` must lie in \(0, 1\]"):
        jax.jit(lambda x, y: sl.topk_cross_entropy(x, y, k=k))(jnp.asarray(x), jnp.asarray(labels))
    with pytest.raises(TypeError, match="`k` must be a number"):
        jax.jit(lambda k: sl.topk_cross_entropy(jnp.asarray(x), jnp.asarray(labels), k=k))(0.5)
    with pytest.raises(ValueError, match="softmax"):
        jax.jit(sl.topk_cross_entropy)(jnp.asarray(x[..., :1]), jnp.asarray(labels % 2))


@pytest.mark.parametrize("per_image", [False, True])
def test_topk_gradients_match_finite_differences(per_image):
    x, labels = ignored_case(6, shape=(2, 4, 3))
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda z: sl.topk_cross_entropy(
            z, jnp.asarray(labels), k=0.3, per_image=per_image, ignore_index=255)),
            (jnp.asarray(x),), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
def test_topk_under_shard_map_is_the_global_selection(per_image):
    mesh = Mesh(np.array(jax.devices()[:4]), ("d",))
    x, labels = ignored_case(7, shape=(8, 5, 4))
    x, labels = jnp.asarray(x, jnp.float32), jnp.asarray(labels)

    def loss(z, y, **kw):
        return sl.topk_cross_entropy(z, y, k=0.15, per_image=per_image, ignore_index=255, **kw)

    sharded = jax.shard_map(lambda z, y: loss(z, y, axis_name="d"), mesh=mesh,
                            in_specs=(P("d"), P("d")), out_specs=P())
    # One compiled program: the single-device loss and the sharded one.
    (want, want_grad), (got, got_grad) = jax.jit(lambda z, y: (
        jax.value_and_grad(loss)(z, y), jax.value_and_grad(sharded)(z, y)))(x, labels)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-8)
    expected, _ = ref.topk_mean(ce_per_pixel(np.asarray(x, np.float64), np.asarray(labels)),
                                np.asarray(labels) != 255, (3, 20), per_image)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@functools.cache
def _topk_and_mean(k, per_image):
    """One compiled program per (k, per_image): the mean CE and the top-k at k and k / 2."""
    def run(z, y):
        topk = functools.partial(sl.topk_cross_entropy, z, y, per_image=per_image,
                                 ignore_index=255)
        return sl.cross_entropy(z, y, ignore_index=255), topk(k=k), topk(k=k / 2)

    return jax.jit(run)


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), k=st.sampled_from([0.2, 0.6]), per_image=st.booleans())
def test_property_topk_bounds(seed, k, per_image):
    """The hardest pixels' mean lies between the mean CE and the largest CE, and grows
    as k shrinks."""
    x, labels = ignored_case(seed, shape=(2, 5, 4))
    z, y = jnp.asarray(x, jnp.float32), jnp.asarray(labels)
    mean, value, smaller_k = map(float, _topk_and_mean(k, per_image)(z, y))
    worst = ce_per_pixel(x, labels)[labels != 255].max()
    tol = 1e-5 * max(1.0, worst)
    if per_image:
        # Pooled over images, the mean of each image's top pixels may fall below the
        # batch mean, but never below the smallest image mean.
        means = [ce_per_pixel(x[b], labels[b])[labels[b] != 255].mean() for b in range(2)]
        assert min(means) - tol <= value <= worst + tol
    else:
        assert mean - tol <= value <= worst + tol
        assert smaller_k >= value - tol


# ------------------------------------------------------------------------------ Poly-1


@pytest.mark.parametrize("epsilon", [1.0, -1.0, 2.5])
def test_poly_cross_entropy_matches_reference(epsilon):
    x, labels = ignored_case(8)
    valid = labels != 255
    p, g = ref.softmax(x), ref.one_hot(labels, 3)
    expected = ref.pixel_mean(ref.poly1_ce(p, g, epsilon), valid)
    got = f64(sl.poly_cross_entropy, x, labels, epsilon=epsilon, ignore_index=255)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_poly_cross_entropy_class_weights_and_smoothing():
    x, labels = random_case(9, c=4)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    g = (1 - 0.2) * ref.one_hot(labels, 4) + 0.2 / 4
    expected = ref.poly1_ce(ref.softmax(x), g, 2.0, w).mean()
    got = f64(sl.poly_cross_entropy, x, labels, epsilon=2.0, class_weights=w,
              label_smoothing=0.2)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@jax.jit
def _optax_and_ours(x, g):  # one program for both cases (same shapes and dtypes)
    return (optax.losses.poly_loss_cross_entropy(x, g, epsilon=1.5),
            sl.poly_cross_entropy(x, g, epsilon=1.5, reduction="none"))


@pytest.mark.parametrize("soft", [False, True])
def test_poly_cross_entropy_matches_optax_per_pixel(soft):
    x, labels = random_case(10, c=3)
    g = ref.one_hot(labels, 3)
    if soft:
        g = ref.softmax(np.random.default_rng(10).normal(size=g.shape))
    x32, g32 = jnp.asarray(x, jnp.float32), jnp.asarray(g, jnp.float32)
    theirs, ours = _optax_and_ours(x32, g32)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25, np.array([0.2, 0.3, 0.5])])
def test_poly_focal_softmax_matches_reference(gamma, alpha):
    x, labels = ignored_case(11)
    valid = labels != 255
    a = np.ones(3) if alpha is None else (
        np.array([1 - alpha, alpha, alpha]) if np.ndim(alpha) == 0 else np.array(alpha))
    w = np.array([1.0, 2.0, 0.5])
    loss = ref.poly1_focal_softmax(ref.softmax(x), ref.one_hot(labels, 3), 1.5, gamma, a, w)
    got = f64(sl.poly_focal_loss, x, labels, epsilon=1.5, gamma=gamma, alpha=alpha,
              class_weights=w, ignore_index=255)
    np.testing.assert_allclose(got, ref.pixel_mean(loss, valid), rtol=1e-12)
    soft = ref.softmax(np.random.default_rng(11).normal(size=x.shape))
    loss = ref.poly1_focal_softmax(ref.softmax(x), soft, 1.5, gamma, a, w)
    got = f64(sl.poly_focal_loss, x, soft, epsilon=1.5, gamma=gamma, alpha=alpha,
              class_weights=w)
    np.testing.assert_allclose(got, loss.mean(), rtol=1e-12)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_poly_focal_sigmoid_matches_reference(c, alpha):
    x, labels = random_case(12, c=c)
    g = ref.one_hot(labels, c)
    expected = ref.poly1_focal_sigmoid(ref.sigmoid(x), g, 2.0, 2.0, alpha).mean()
    got = f64(sl.poly_focal_loss, x, labels, epsilon=2.0, alpha=alpha, activation="sigmoid")
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    none = f64(sl.poly_focal_loss, x, labels, epsilon=2.0, alpha=alpha, activation="sigmoid",
               reduction="none")
    assert none.shape == x.shape
    probs = f64(sl.poly_focal_loss, ref.sigmoid(x), labels, epsilon=2.0, alpha=alpha,
                activation=None)
    np.testing.assert_allclose(probs, expected, rtol=1e-10)


def test_poly_focal_special_cases():
    x, labels = random_case(13)
    y = jnp.asarray(labels)
    z = jnp.asarray(x, jnp.float32)

    @jax.jit  # one compiled program for the three pairs
    def pairs(z, y):
        return [(sl.poly_focal_loss(z, y, epsilon=0.0, gamma=1.5), sl.focal_loss(z, y, gamma=1.5)),
                (sl.poly_focal_loss(z, y, epsilon=0.7, gamma=0.0),
                 sl.poly_cross_entropy(z, y, epsilon=0.7)),
                (sl.poly_cross_entropy(z, y, epsilon=0.0), sl.cross_entropy(z, y))]

    for got, want in pairs(z, y):
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("fn,kwargs,c", [
    (sl.poly_cross_entropy, {"epsilon": 2.0, "label_smoothing": 0.1}, 3),
    (sl.poly_focal_loss, {"epsilon": 1.0, "gamma": 2.0, "alpha": 0.25}, 3),
    (sl.poly_focal_loss, {"epsilon": 1.0, "activation": "sigmoid", "alpha": 0.25}, 1),
])
def test_poly_gradients_match_finite_differences(fn, kwargs, c):
    x, labels = random_case(14, shape=(1, 4, 3), c=c)
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda z: fn(z, jnp.asarray(labels), **kwargs)), (jnp.asarray(x),),
                    order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_poly_perfect_prediction_is_zero():
    labels = np.random.default_rng(15).integers(0, 3, size=(2, 4, 4))
    x = jnp.asarray(30.0 * ref.one_hot(labels, 3), jnp.float32)
    y = jnp.asarray(labels)

    @jax.jit  # one compiled program for the four losses
    def values(x, y):
        return (sl.poly_cross_entropy(x, y), sl.poly_focal_loss(x, y),
                sl.poly_focal_loss(x[..., :1] * 0 + 30 * (2 * (y[..., None] == 1) - 1),
                                   (y == 1).astype(jnp.int32), activation="sigmoid"),
                sl.topk_cross_entropy(x, y))

    for value in values(x, y):
        assert 0 <= float(value) < 1e-6


@jax.jit
def _poly_bounds(z, y, epsilon, gamma):
    """CE, Poly-1, focal and Poly-1 focal, compiled once for every example (traced ε, γ)."""
    return (sl.cross_entropy(z, y), sl.poly_cross_entropy(z, y, epsilon=epsilon),
            sl.focal_loss(z, y, gamma=gamma),
            sl.poly_focal_loss(z, y, epsilon=epsilon, gamma=gamma))


@given(seed=st.integers(0, 2**16), epsilon=st.floats(0.0, 3.0), gamma=st.floats(0.0, 3.0))
def test_property_poly_bounds(seed, epsilon, gamma):
    """ε ≥ 0 adds a non-negative term in [0, ε]: CE ≤ Poly-1 ≤ CE + ε, likewise for focal."""
    x, labels = random_case(seed, shape=(1, 4, 4))
    z, y = jnp.asarray(x, jnp.float32), jnp.asarray(labels)
    ce, poly, focal, poly_focal = map(float, _poly_bounds(z, y, epsilon, gamma))
    assert ce - 1e-5 <= poly <= ce + epsilon + 1e-5
    assert focal - 1e-5 <= poly_focal <= focal + epsilon + 1e-5
