"""Structural losses (``ssim_loss``, ``structural_similarity_loss``) against the float64
NumPy references of ``reference.py``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import segloss_jax as sl


def case(seed, shape=(2, 7, 6), c=3, scale=2.0, activation="softmax"):
    """Logits, integer labels, probabilities and the dense target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=scale, size=(*shape, c))
    labels = rng.integers(0, max(c, 2), size=shape)
    return x, labels, ref.probs(x, activation), ref.one_hot(labels, c)


def f64(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in float64, compiled once."""
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in args]
        return np.asarray(jax.jit(lambda *a: fn(*a, **kwargs))(*args))


ACTIVATIONS = [("softmax", 3), ("sigmoid", 1), ("sigmoid", 2)]
SHAPES = [(2, 7, 6), (1, 5, 6, 4)]  # 2D and 3D


# --------------------------------------------------------------------------- SSIM


# (shape, activation, C, window_size, sigma): 2D and 3D, each activation, three windows.
SSIM_CASES = [
    (SHAPES[0], "softmax", 3, 3, 1.5),
    (SHAPES[0], "sigmoid", 2, 5, 0.8),
    (SHAPES[1], "sigmoid", 1, 3, 1.5),
    (SHAPES[1], "softmax", 3, 1, 1.5),
]


@pytest.mark.parametrize("shape,activation,c,window_size,sigma", SSIM_CASES)
def test_ssim_matches_reference(shape, activation, c, window_size, sigma):
    x, labels, p, g = case(0, shape, c, activation=activation)
    valid = np.ones(shape, bool)
    expected = ref.ssim_loss(p, g, valid, window_size, sigma)
    got = f64(sl.ssim_loss, x, labels, activation=activation, window_size=window_size,
              sigma=sigma)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_ssim_default_window_on_a_larger_image():
    x, labels, p, g = case(1, (1, 12, 13), 2)
    expected = ref.ssim_loss(p, g, np.ones((1, 12, 13), bool), 11, 1.5)
    np.testing.assert_allclose(f64(sl.ssim_loss, x, labels), expected, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_ssim_where_ignore_index_class_weights_soft_labels(shape):
    x, labels, p, g = case(2, shape, 3)
    rng = np.random.default_rng(3)
    valid = rng.random(shape) > 0.3
    w = np.array([0.5, 1.0, 2.0])
    expected = ref.ssim_loss(p, g, valid, 3, 1.5, w)
    got_where = f64(sl.ssim_loss, x, labels, where=valid, window_size=3, class_weights=w)
    ignored = np.where(valid, labels, 255)
    got_ignore = f64(sl.ssim_loss, x, ignored, ignore_index=255, window_size=3,
                     class_weights=w)
    np.testing.assert_allclose(got_where, expected, rtol=1e-10)
    np.testing.assert_allclose(got_ignore, expected, rtol=1e-10)
    soft = rng.dirichlet(np.ones(3), size=shape)
    expected = ref.ssim_loss(p, soft, valid, 3, 1.5)
    got = f64(sl.ssim_loss, x, soft, where=valid, window_size=3)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_ssim_reductions():
    x, labels, p, g = case(4, (2, 6, 5), 3)
    valid = np.random.default_rng(5).random((2, 6, 5)) > 0.2
    per_element = (1 - ref.ssim_map(*np.where(valid[..., None], (p, g), 0), 3)) * valid[..., None]
    none = f64(sl.ssim_loss, x, labels, where=valid, window_size=3, reduction="none")
    np.testing.assert_allclose(none, per_element, rtol=1e-10, atol=1e-14)
    total = f64(sl.ssim_loss, x, labels, where=valid, window_size=3, reduction="sum")
    np.testing.assert_allclose(total, per_element.sum(), rtol=1e-10)


def test_ssim_gradients_match_finite_differences():
    x, labels, _, _ = case(6, (1, 5, 4), 3)
    with jax.enable_x64(True):
        f = jax.jit(lambda z: sl.ssim_loss(z, jnp.asarray(labels), window_size=3))
        check_grads(f, (jnp.asarray(x),), order=1, modes=["rev"])
        x3, labels3, _, _ = case(7, (1, 3, 4, 3), 1, activation="sigmoid")
        f3 = jax.jit(lambda z: sl.ssim_loss(z, jnp.asarray(labels3), activation="sigmoid",
                                            window_size=3))
        check_grads(f3, (jnp.asarray(x3),), order=1, modes=["rev"])


def _plain_window_mean(x, window_size, sigma):
    """``w ∗ x`` over the spatial axes of ``[B, *spatial, C]`` as reflect padding and a
    weighted sum of shifted slices, for plain autodiff."""
    w = ref.gaussian_window(window_size, sigma)
    r = window_size // 2
    for axis in range(1, x.ndim - 1):
        widths = [(r, r) if a == axis else (0, 0) for a in range(x.ndim)]
        padded = jnp.pad(x, widths, mode="reflect")
        n = x.shape[axis]
        x = sum(float(t) * jax.lax.slice_in_dim(padded, k, k + n, axis=axis)
                for k, t in enumerate(w))
    return x


@pytest.mark.parametrize("shape,activation,c,window_size", [
    ((2, 13, 12), "softmax", 3, 11), ((1, 6, 7, 5), "sigmoid", 2, 3)])
def test_ssim_gradient_equals_autodiff_of_the_plain_formula(shape, activation, c, window_size):
    x, labels, _, _ = case(8, shape, c, activation=activation)
    valid = np.random.default_rng(9).random(shape) > 0.2

    def plain(z):
        p = jax.nn.softmax(z) if activation == "softmax" else jax.nn.sigmoid(z)
        g = jnp.asarray(ref.one_hot(labels, c), p.dtype)
        keep = jnp.asarray(valid)[..., None]
        p, g = jnp.where(keep, p, 0), jnp.where(keep, g, 0)

        def mean(v):
            return _plain_window_mean(v, window_size, 1.5)

        mu_p, mu_g = mean(p), mean(g)
        var_p, var_g, cov = mean(p * p) - mu_p**2, mean(g * g) - mu_g**2, mean(p * g) - mu_p * mu_g
        c1, c2 = 0.01**2, 0.03**2
        ssim = ((2 * mu_p * mu_g + c1) * (2 * cov + c2)
                / ((mu_p**2 + mu_g**2 + c1) * (var_p + var_g + c2)))
        return jnp.sum((1 - ssim) * keep) / (jnp.sum(keep) * c)

    def ours(v):
        return sl.ssim_loss(v, jnp.asarray(labels), activation=activation,
                            window_size=window_size, where=jnp.asarray(valid))

    with jax.enable_x64(True):  # one program for both: compiling dominates
        (value, grad), (want, want_grad) = jax.jit(
            lambda z: (jax.value_and_grad(ours)(z), jax.value_and_grad(plain)(z)))(jnp.asarray(x))
        np.testing.assert_allclose(value, want, rtol=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- SSL


# (shape, activation, C, beta, window_size, sigma).
SSL_CASES = [
    (SHAPES[0], "softmax", 3, 0.1, 3, 1.5),
    (SHAPES[0], "sigmoid", 2, 0.5, 5, 1.0),
    (SHAPES[1], "sigmoid", 1, 0.1, 3, 1.5),
    (SHAPES[1], "softmax", 3, 0.5, 5, 1.0),
]


@pytest.mark.parametrize("shape,activation,c,beta,window_size,sigma", SSL_CASES)
def test_structural_similarity_matches_reference(shape, activation, c, beta, window_size,
                                                  sigma):
    x, labels, p, g = case(10, shape, c, activation=activation)
    expected, _, _ = ref.structural_similarity_loss(p, g, np.ones(shape, bool), activation,
                                                    beta, window_size, sigma)
    got = f64(sl.structural_similarity_loss, x, labels, activation=activation, beta=beta,
              window_size=window_size, sigma=sigma)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_structural_similarity_where_ignore_index_class_weights(shape):
    x, labels, p, g = case(11, shape, 3)
    valid = np.random.default_rng(12).random(shape) > 0.3
    w = np.array([2.0, 1.0, 0.5])
    expected, _, _ = ref.structural_similarity_loss(p, g, valid, "softmax", class_weights=w)
    got_where = f64(sl.structural_similarity_loss, x, labels, where=valid, class_weights=w)
    got_ignore = f64(sl.structural_similarity_loss, x, np.where(valid, labels, 255),
                     ignore_index=255, class_weights=w)
    np.testing.assert_allclose(got_where, expected, rtol=1e-10)
    np.testing.assert_allclose(got_ignore, expected, rtol=1e-10)


def test_structural_similarity_reductions():
    x, labels, p, g = case(13, (2, 6, 5), 2, activation="sigmoid")
    _, weight, _ = ref.structural_similarity_loss(p, g, np.ones((2, 6, 5), bool), "sigmoid")
    terms = weight * ref.bce(p, g)
    none = f64(sl.structural_similarity_loss, x, labels, activation="sigmoid",
               reduction="none")
    np.testing.assert_allclose(none, terms, rtol=1e-9, atol=1e-14)
    total = f64(sl.structural_similarity_loss, x, labels, activation="sigmoid",
                reduction="sum")
    np.testing.assert_allclose(total, terms.sum(), rtol=1e-9)


@pytest.mark.parametrize("activation,c", ACTIVATIONS)
def test_structural_similarity_gradient_has_e_and_f_as_constants(activation, c):
    """The gradient is ``Σ (e f / M) ∇ℓ_ce``: softmax ``(e f / M)_c g_c (p_k − δ_ck)``
    summed over ``c``, sigmoid ``(e f / M)(p − g)``."""
    shape = (2, 6, 5)
    x, labels, p, g = case(14, shape, c, activation=activation)
    _, weight, m = ref.structural_similarity_loss(p, g, np.ones(shape, bool), activation)
    weight = weight / m
    if activation == "softmax":
        wg = weight * g
        expected = wg.sum(-1, keepdims=True) * p - wg
    else:
        expected = weight * (p - g)
    with jax.enable_x64(True):
        got = jax.jit(jax.grad(lambda z: sl.structural_similarity_loss(
            z, jnp.asarray(labels), activation=activation)))(jnp.asarray(x))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-14)


def test_structural_similarity_axis_name_takes_the_global_maximum():
    x, labels, p, g = case(15, (4, 6, 5), 3)
    expected, _, _ = ref.structural_similarity_loss(p, g, np.ones((4, 6, 5), bool), "softmax")
    with jax.enable_x64(True):
        got = jax.jit(jax.vmap(
            lambda a, b: sl.structural_similarity_loss(a[None], b[None], axis_name="i"),
            axis_name="i"))(jnp.asarray(x), jnp.asarray(labels))
    np.testing.assert_allclose(got, np.full(4, expected), rtol=1e-10)


@pytest.mark.parametrize("activation,c", ACTIVATIONS)
def test_structural_similarity_beta_zero_keeps_every_nonzero_error(activation, c):
    """``beta = 0``: the mean of ``e·ℓ_ce`` over the positions with ``e > 0``; under
    softmax the positions are the target class of each valid pixel."""
    shape = (2, 7, 6)
    x, labels, p, g = case(21, shape, c, activation=activation)
    valid = np.random.default_rng(22).random(shape) > 0.2
    e = ref.structural_error(p, g, valid)
    if activation == "softmax":
        term, positions = -np.log(p), (g == 1) & valid[..., None]
    else:
        term, positions = ref.bce(p, g), np.broadcast_to(valid[..., None], e.shape)
    hard = positions & (e > 0)
    assert hard.sum() > positions.sum() // 2  # most positions have an error
    expected = (e * term)[hard].sum() / hard.sum()
    got = f64(sl.structural_similarity_loss, x, labels, where=valid, activation=activation,
              beta=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("activation,c", ACTIVATIONS)
def test_structural_similarity_beta_near_one_keeps_the_worst_position(activation, c):
    shape = (2, 7, 6)
    x, labels, p, g = case(24, shape, c, activation=activation)
    e = ref.structural_error(p, g, np.ones(shape, bool))
    if activation == "softmax":  # the worst among the target classes, where the term
        assert g[np.unravel_index(np.argmax(e), e.shape)] == 0  # is not 0 for every p
        term, e = -np.log(p), np.where(g == 1, e, 0.0)
    else:
        term = ref.bce(p, g)
    worst = np.unravel_index(np.argmax(e), e.shape)
    beta = 1 - 1e-9
    assert np.sum(e > beta * e[worst]) == 1  # one worst position
    kwargs = {"activation": activation, "beta": beta}
    none = f64(sl.structural_similarity_loss, x, labels, reduction="none", **kwargs)
    expected = np.zeros(e.shape)
    expected[worst] = e[worst] * term[worst]
    np.testing.assert_allclose(none, expected, rtol=1e-10, atol=0)
    mean = f64(sl.structural_similarity_loss, x, labels, **kwargs)
    np.testing.assert_allclose(mean, e[worst] * term[worst], rtol=1e-10)  # M = 1
    assert mean > 0


@pytest.mark.parametrize("c", [2, 4])
def test_structural_similarity_softmax_counts_the_target_classes(c):
    """Under softmax ``M`` counts one position per valid pixel (its target class), not
    one per channel: with every error non-zero, ``M`` is the number of valid pixels and
    the loss is ``C`` times the mean over every (pixel, class) pair."""
    shape = (2, 7, 6)
    x, labels, p, g = case(24 + c, shape, c)
    e = ref.structural_error(p, g, np.ones(shape, bool))
    assert np.all(e > 0)
    terms = np.where(g == 1, e * -np.log(p), 0.0)  # the other channels' terms are 0
    expected = terms.sum() / np.prod(shape)
    got = f64(sl.structural_similarity_loss, x, labels, beta=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    per_channel_count = terms.sum() / e.size
    np.testing.assert_allclose(got / per_channel_count, c, rtol=1e-12)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", ["ssim_loss", "structural_similarity_loss"])
@pytest.mark.parametrize("shape", SHAPES)
def test_perfect_prediction_gives_zero(name, shape):
    _, labels, _, g = case(16, shape, 3)
    kwargs = {"window_size": 3} if name == "ssim_loss" else {}
    loss = jax.jit(lambda p, y: getattr(sl, name)(p, y, activation=None, **kwargs))(
        jnp.asarray(g, jnp.float32), jnp.asarray(labels))
    np.testing.assert_allclose(loss, 0.0, atol=1e-6)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), c=st.integers(1, 3), window=st.sampled_from([1, 3, 5]))
def test_bounds_and_identity(seed, c, window):
    """``0 ≤ ssim_loss ≤ 2`` (SSIM ∈ [−1, 1]); ``ssim_loss(p, p) = 0``, also for soft
    targets; the structural loss is non-negative and 0 for ``p = g``."""
    rng = np.random.default_rng(seed)
    p = jnp.asarray(rng.dirichlet(np.ones(max(c, 2)), size=(2, 5, 6))[..., :c], jnp.float32)
    g = jnp.asarray(rng.random((2, 5, 6, c)), jnp.float32)
    ssim, ssim_gg, ssl, ssl_gg = map(float, _bounds(p, g, window))
    assert -1e-6 <= ssim <= 2 + 1e-6
    assert abs(ssim_gg) < 1e-6
    assert ssl >= 0 and np.isfinite(ssl)
    assert ssl_gg == 0.0


@functools.partial(jax.jit, static_argnums=2)
def _bounds(p, g, window):
    """``ssim_loss(p, g)``, ``ssim_loss(g, g)`` and the same for the structural loss: one
    program per (C, window)."""
    return tuple(fn(a, g, activation=None, window_size=window)
                 for fn in (sl.ssim_loss, sl.structural_similarity_loss) for a in (p, g))


@pytest.mark.parametrize("name", ["ssim_loss", "structural_similarity_loss"])
def test_jit_vmap_grad_3d(name):
    x, labels, _, _ = case(17, (2, 4, 5, 6), 3)
    x, labels = jnp.asarray(x, jnp.float32), jnp.asarray(labels)
    fn = getattr(sl, name)
    value = jax.jit(lambda a, b: fn(a, b, window_size=3))
    per_image = jax.jit(jax.vmap(lambda a, b: value(a[None], b[None])))(x, labels)
    looped = [value(x[i:i + 1], labels[i:i + 1]) for i in range(2)]
    np.testing.assert_allclose(per_image, looped, rtol=1e-5)
    if name == "ssim_loss":  # equal-size images: the batch mean is the mean of images
        np.testing.assert_allclose(value(x, labels), np.mean(looped), rtol=1e-5)
    grad = jax.jit(jax.grad(lambda a: value(a, labels)))(x)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["ssim_loss", "structural_similarity_loss"])
@pytest.mark.parametrize("kwargs,exc,match", [
    ({"window_size": 4}, ValueError, r"`window_size` must be an odd int >= 1, got 4"),
    ({"window_size": 0}, ValueError, r"`window_size` must be an odd int >= 1"),
    ({"window_size": 3.0}, ValueError, r"`window_size` must be an odd int"),
    ({"window_size": 13}, ValueError, r"`window_size` = 13 needs every spatial size to "
                                      r"exceed window_size // 2 = 6.*\(7, 6\)"),
    ({"sigma": 0.0}, ValueError, r"`sigma` must be positive"),
    ({"sigma": -1.0}, ValueError, r"`sigma` must be positive"),
])
def test_bad_window(name, kwargs, exc, match):
    x, labels, _, _ = case(18)
    with pytest.raises(exc, match=match):
        getattr(sl, name)(jnp.asarray(x), jnp.asarray(labels), **kwargs)


def test_traced_sigma_is_a_type_error():
    x, labels, _, _ = case(19)
    with pytest.raises(TypeError, match="`sigma` must be a Python number"):
        jax.jit(lambda s: sl.ssim_loss(jnp.asarray(x), jnp.asarray(labels), sigma=s))(1.5)


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_bad_beta(beta):
    x, labels, _, _ = case(20)
    with pytest.raises(ValueError, match=r"`beta` must lie in \[0.0, 1.0\) \(at 1 no error "
                                         r"exceeds .*no position would be selected"):
        sl.structural_similarity_loss(jnp.asarray(x), jnp.asarray(labels), beta=beta)


# --------------------------------------------------------------------------- NACL


# (shape, kernel, kernel_size, sigma, distance): 1D, 2D and 3D, both kernels and distances.
NACL_CASES = [
    ((2, 9), "mean", 5, 1.0, "l1"),
    ((2, 7, 6), "mean", 3, 1.0, "l1"),
    ((2, 7, 6), "gaussian", 3, 0.8, "l2"),
    ((1, 5, 6, 4), "mean", 3, 1.0, "l2"),
    ((1, 5, 6, 4), "gaussian", 3, 0.5, "l1"),
]


@pytest.mark.parametrize("shape,kernel,kernel_size,sigma,distance", NACL_CASES)
def test_nacl_matches_reference(shape, kernel, kernel_size, sigma, distance):
    x, labels, _, _ = case(21, shape, 3)
    rng = np.random.default_rng(22)
    valid = rng.random(shape) > 0.25
    kw = {"kernel": kernel, "kernel_size": kernel_size, "sigma": sigma, "distance": distance}
    w = np.array([0.5, 1.0, 2.0])
    expected = ref.nacl_loss(x, labels, np.ones(shape, bool), alpha=0.3, **kw)
    np.testing.assert_allclose(f64(sl.nacl_loss, x, labels, alpha=0.3, **kw), expected,
                               rtol=1e-10)
    expected = ref.nacl_loss(x, labels, valid, class_weights=w, **kw)
    got = f64(sl.nacl_loss, x, np.where(valid, labels, 255), ignore_index=255,
              class_weights=w, **kw)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(f64(sl.nacl_loss, x, labels, where=valid, class_weights=w, **kw),
                               expected, rtol=1e-10)


def test_nacl_soft_labels_and_reductions():
    x, labels, _, _ = case(23, (2, 6, 5), 3)
    soft = np.random.default_rng(24).dirichlet(np.ones(3), size=(2, 6, 5))
    valid = np.ones((2, 6, 5), bool)
    np.testing.assert_allclose(f64(sl.nacl_loss, x, soft), ref.nacl_loss(x, soft, valid),
                               rtol=1e-10)
    per_pixel = f64(sl.nacl_loss, x, labels, reduction="none")
    assert per_pixel.shape == (2, 6, 5)
    np.testing.assert_allclose(per_pixel.mean(), ref.nacl_loss(x, labels, valid), rtol=1e-10)
    np.testing.assert_allclose(f64(sl.nacl_loss, x, labels, reduction="sum"), per_pixel.sum(),
                               rtol=1e-10)


def test_nacl_gradients():
    x, labels, _, _ = case(25, (1, 5, 4), 3)
    with jax.enable_x64(True):
        for distance in ("l1", "l2"):
            check_grads(jax.jit(lambda z, d=distance: sl.nacl_loss(
                z, jnp.asarray(labels), distance=d, alpha=0.5)),
                        (jnp.asarray(x),), order=2, modes=["rev"])


def test_nacl_l1_gradient_is_zero_at_a_tie():
    """Where a logit equals the local class share, the penalty's derivative is 0:
    the gradient is the cross-entropy's alone."""
    labels = jnp.zeros((1, 5, 5), jnp.int32)  # u = 1 for class 0 inside, 0 for class 1
    x = jnp.zeros((1, 5, 5, 2)).at[..., 0].set(1.0)
    grad, ce_grad = jax.jit(lambda z: (jax.grad(lambda z: sl.nacl_loss(z, labels, alpha=1.0))(z),
                                       jax.grad(lambda z: sl.cross_entropy(z, labels))(z)))(x)
    np.testing.assert_allclose(grad[0, 2, 2], ce_grad[0, 2, 2], atol=1e-7)


def test_nacl_equals_monai():
    torch = pytest.importorskip("torch", reason="torch is not installed (the `peers` extra)")
    monai_losses = pytest.importorskip("monai.losses", reason="MONAI is not installed")
    if not hasattr(monai_losses, "NACLLoss"):
        pytest.skip("this MONAI has no NACLLoss (added in MONAI 1.4)")
    for shape, kernel, kernel_size, sigma, distance in NACL_CASES[1:]:
        x, labels, _, _ = case(26, shape, 4)
        peer = monai_losses.NACLLoss(classes=4, dim=len(shape) - 1, kernel_size=kernel_size,
                                     kernel_ops=kernel, distance_type=distance, alpha=0.2,
                                     sigma=sigma)
        expected = peer(torch.as_tensor(np.moveaxis(x, -1, 1), dtype=torch.float32),
                        torch.as_tensor(labels, dtype=torch.int64))
        got = jax.jit(functools.partial(  # one program, not many eager operations
            sl.nacl_loss, alpha=0.2, kernel=kernel, kernel_size=kernel_size, sigma=sigma,
            distance=distance))(jnp.asarray(x, jnp.float32), jnp.asarray(labels))
        np.testing.assert_allclose(got, expected.item(), rtol=1e-5)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"kernel_size": 4}, ValueError, r"`kernel_size` must be an odd int >= 1, got 4"),
    ({"kernel": "box"}, ValueError, r"`kernel` must be one of \('mean', 'gaussian'\), got 'box'"),
    ({"distance": "l3"}, ValueError, r"`distance` must be one of \('l1', 'l2'\)"),
    ({"kernel": "gaussian", "sigma": 0.0}, ValueError, r"`sigma` must be positive"),
    ({"alpha": -1.0}, ValueError, r"`alpha` must be non-negative"),
    ({"activation": "sigmoid"}, ValueError, r"`activation` must be one of \('softmax',\)"),
])
def test_nacl_bad_arguments(kwargs, exc, match):
    x, labels, _, _ = case(27)
    with pytest.raises(exc, match=match):
        sl.nacl_loss(jnp.asarray(x), jnp.asarray(labels), **kwargs)
