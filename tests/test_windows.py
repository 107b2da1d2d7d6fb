"""Tests for the windowed operations of ``segloss_jax._src.windows``.

Linear filters are checked against ``scipy.ndimage.correlate1d`` in float64
(``mode="mirror"`` is PyTorch's ``"reflect"``), their backward pass by the
adjoint identity ``<F x, y> = <x, Fᵀ y>`` and finite differences. Grey-level
erosion and dilation are checked against the float64 ``scipy.ndimage``
references of ``reference.py``: erosion is ``grey_erosion`` with the cross
(plus-shaped) footprint, dilation ``grey_dilation`` with the full ``3^d`` box, both with
``mode="nearest"`` (a replicated border value is already in the window, so it
never wins) and, to show that the border is neutral, with a constant border
that cannot win either; their gradients against autodiff of ``lax.reduce_window``
(ties included) and finite differences. Contours are checked on hand-worked masks
and against ``binary_erosion``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from jax import lax
from jax.test_util import check_grads
from scipy.integrate import quad

from segloss_jax._src.windows import (
    _window,
    box_taps,
    contour,
    dilate,
    erf_taps,
    erode,
    filter_matrix,
    gaussian_taps,
    linear_filter,
    opening,
    spatial_axes,
)

SHAPES = [(9,), (7, 8), (5, 6, 4)]
IDS = ["1d", "2d", "3d"]


def _cross(ndim):
    return ndi.generate_binary_structure(ndim, 1)


def autodiff_erode(x, spatial_ndim):
    """Erosion as ``lax.reduce_window`` minima, one window per axis, for plain autodiff."""
    axes = spatial_axes(x.ndim, spatial_ndim)
    return functools.reduce(jnp.minimum, [_window(x, lax.min, (a,)) for a in axes])


def autodiff_dilate(x, spatial_ndim):
    """Dilation as one ``lax.reduce_window`` maximum over the ``3^d`` box, for plain autodiff."""
    return _window(x, lax.max, spatial_axes(x.ndim, spatial_ndim))


def check_grads_jitted(f, args, order, **kwargs):
    """``check_grads(f, args, order, modes=["rev"], **kwargs)`` with each order's function
    jitted: the same checks (the VJP of ``f``, then of ``x ↦ vjp(f, x)(f(x))``, as
    ``check_grads`` recurses), each evaluated by one compiled program instead of eagerly."""
    f = jax.jit(f)
    check_grads(f, args, order=1, modes=["rev"], **kwargs)
    if order > 1:

        def f_vjp(*args):
            out, vjp = jax.vjp(f, *args)
            return vjp(out)

        check_grads_jitted(f_vjp, args, order - 1, **kwargs)


# ------------------------------------------------------------------------------- taps


def test_taps():
    g = gaussian_taps(5, 1.5)
    expected = np.exp(-np.arange(-2, 3) ** 2 / (2 * 1.5**2))
    np.testing.assert_allclose(g, expected / expected.sum(), rtol=1e-15)
    np.testing.assert_array_equal(box_taps(4), [0.25] * 4)
    # The erf kernel: the Gaussian's mass on each pixel [j - 1/2, j + 1/2], |j| <= 4σ.
    sigma = 0.8
    k = erf_taps(sigma)
    assert len(k) == 2 * int(4 * sigma + 0.5) + 1 == 7
    j = np.arange(-3, 4)
    mass = [quad(lambda t: np.exp(-t**2 / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi)),
                 a - 0.5, a + 0.5)[0] for a in j]
    np.testing.assert_allclose(k, mass, rtol=1e-12)
    assert k.sum() < 1  # not normalised
    assert len(erf_taps(0.05)) == 3  # radius int(max(4σ, 1/2) + 1/2) = 1


def test_filter_matrix_hand_worked():
    # Taps (a, b, c) on 4 samples: reflect mirrors x[-1] = x[1] and x[4] = x[2].
    a, b, c = 1.0, 10.0, 100.0
    np.testing.assert_array_equal(filter_matrix((a, b, c), 4, "reflect"), [
        [b, a + c, 0, 0], [a, b, c, 0], [0, a, b, c], [0, 0, a + c, b]])
    np.testing.assert_array_equal(filter_matrix((a, b, c), 4, "zero"), [
        [b, c, 0, 0], [a, b, c, 0], [0, a, b, c], [0, 0, a, b]])


# ------------------------------------------------------------------------ linear filters

# (leading shape, filtered shape): short axes (at most 4r, the whole-matrix path) and
# long ones (sums of shifted slices inside, corner blocks at the ends).
FILTER_CASES = [((2,), (9,)), ((2,), (40,)), ((1,), (7, 30)), ((2,), (23, 5, 17)),
                ((), (7, 26, 21))]
TAPS = {"gaussian": gaussian_taps(7, 1.5), "box": box_taps(5), "erf": erf_taps(0.8),
        "skew": np.array([0.3, -1.0, 2.0, 0.5, 0.1])}


def _scipy_filter(x, taps, axes, padding):
    for axis in axes:
        x = ndi.correlate1d(x, taps, axis=axis, mode="mirror" if padding == "reflect"
                            else "constant", origin=0)
    return x


@functools.cache
def _filtered_and_adjoints(lead, spatial, padding):
    """``F x`` and ``Fᵀ y`` in float64 for every kernel of ``TAPS``: one program per
    (shape, padding)."""

    def apply(x, y):
        out = {}
        for name, taps in TAPS.items():
            got, vjp = jax.vjp(lambda v, t=taps: linear_filter(v, t, axes, padding=padding), x)
            out[name] = got, vjp(y)[0]
        return out

    rng = np.random.default_rng(len(spatial))
    x, y = rng.normal(size=(2, *lead, *spatial))
    axes = tuple(range(len(lead), len(lead) + len(spatial)))
    with jax.enable_x64(True):
        out = jax.jit(apply)(jnp.asarray(x), jnp.asarray(y))
    return x, y, axes, {k: tuple(map(np.asarray, v)) for k, v in out.items()}


@pytest.mark.parametrize("padding", ["reflect", "zero"])
@pytest.mark.parametrize("name", TAPS)
@pytest.mark.parametrize("lead,spatial", FILTER_CASES)
def test_linear_filter_matches_scipy_and_is_its_adjoint(lead, spatial, name, padding):
    taps = TAPS[name]
    x, y, axes, out = _filtered_and_adjoints(lead, spatial, padding)
    got, adjoint = out[name]
    with jax.enable_x64(True):
        np.testing.assert_allclose(got, _scipy_filter(x, taps, axes, padding),
                                   rtol=1e-12, atol=1e-13)
        # <F x, y> = <x, Fᵀ y>; and Fᵀ y is the transposed matrix applied along each axis.
        np.testing.assert_allclose(np.vdot(got, y), np.vdot(x, adjoint), rtol=1e-12)
        expected = y
        for axis in axes:
            matrix = filter_matrix(taps, y.shape[axis], padding)
            expected = np.moveaxis(np.tensordot(matrix.T, np.moveaxis(expected, axis, 0),
                                                axes=1), 0, axis)
        np.testing.assert_allclose(adjoint, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("padding", ["reflect", "zero"])
def test_linear_filter_check_grads(padding):
    x = np.random.default_rng(0).normal(size=(2, 13, 6, 3))
    with jax.enable_x64(True):
        for taps, axes in ((TAPS["gaussian"], (1,)), (TAPS["erf"], (1, 2)),
                           (TAPS["skew"], (1, 2, 3))):
            check_grads_jitted(lambda v, t=taps, a=axes: linear_filter(v, t, a, padding=padding),
                               (jnp.asarray(x),), order=2)


def test_linear_filter_dtypes_axes_jit_vmap():
    x = np.random.default_rng(1).normal(size=(3, 12, 11)).astype(np.float32)
    taps = gaussian_taps(5, 1.0)
    expected = _scipy_filter(x.astype(np.float64), taps, (1, 2), "reflect")
    got, grad = jax.jit(lambda v: (  # one program for the value and the gradient
        linear_filter(v, taps, (-2, -1)),
        jax.grad(lambda v: jnp.sum(linear_filter(v, taps, (1, 2))))(v)))(
        jnp.asarray(x, jnp.bfloat16))
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), expected, atol=0.05)
    assert grad.dtype == jnp.bfloat16
    f = jax.jit(lambda v: linear_filter(v, taps, (1, 2), padding="zero"))
    np.testing.assert_allclose(jax.vmap(f)(x[:, None])[:, 0], f(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f(x), _scipy_filter(x.astype(np.float64), taps, (1, 2), "zero"),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(linear_filter(x, [1.0], (1, 2)), x)  # one tap of 1


def test_linear_filter_errors():
    x = jnp.zeros((2, 5, 6))
    with pytest.raises(ValueError, match="odd length"):
        linear_filter(x, [0.5, 0.5], (1,))
    with pytest.raises(ValueError, match="`padding` must be one of"):
        linear_filter(x, [1.0], (1,), padding="same")
    for axes in ((), (1, 1), (1, -2), (3,), (0, 1, 2, 0)):
        with pytest.raises(ValueError, match="`axes` must be 1 to 3 distinct axes"):
            linear_filter(x, [1.0], axes)
    with pytest.raises(ValueError, match=r"longer than 5, got sizes \(5, 6\)"):
        linear_filter(x, gaussian_taps(11, 2.0), (1, 2))
    assert linear_filter(x, gaussian_taps(11, 2.0), (1, 2), padding="zero").shape == x.shape


# --------------------------------------------------------------------- erosion and dilation


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_erode_and_dilate_match_scipy_float64(shape):
    rng = np.random.default_rng(len(shape))
    x = rng.normal(size=(2, 3, *shape))  # two leading batch axes
    nd = len(shape)
    with jax.enable_x64(True):
        eroded, dilated = erode(jnp.asarray(x), nd), dilate(jnp.asarray(x), nd)
        assert eroded.dtype == dilated.dtype == jnp.float64
        np.testing.assert_array_equal(eroded, ref.grey_erosion(x, nd))
        np.testing.assert_array_equal(dilated, ref.grey_dilation(x, nd))
        # The border is neutral: the same as a constant border that never wins.
        np.testing.assert_array_equal(eroded, ref.grey_erosion(x, nd, mode="constant"))
        np.testing.assert_array_equal(dilated, ref.grey_dilation(x, nd, mode="constant"))
        expected = ref.grey_dilation(ref.grey_erosion(x, nd), nd)
        np.testing.assert_array_equal(opening(jnp.asarray(x), nd), expected)


def test_erosion_is_the_min_of_one_window_per_axis():
    # The cross, not the box: a diagonal neighbour does not take part.
    x = np.full((3, 3), 5.0)
    x[0, 0] = 1.0
    np.testing.assert_array_equal(
        erode(jnp.asarray(x), 2), [[1, 1, 5], [1, 5, 5], [5, 5, 5]])
    np.testing.assert_array_equal(
        dilate(jnp.asarray(-x), 2), [[-1, -1, -5], [-1, -1, -5], [-5, -5, -5]])
    # 1D by hand; the ends see only their one neighbour.
    np.testing.assert_array_equal(erode(jnp.array([3, 1, 4, 1, 5, 9, 2]), 1),
                                  [1, 1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(dilate(jnp.array([3, 1, 4, 1, 5, 9, 2]), 1),
                                  [3, 4, 4, 5, 9, 9, 9])


def test_spatial_ndim_leaves_leading_axes_alone():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 6)).astype(np.float32)
    # spatial_ndim=2: the first axis is a batch, never mixed.
    np.testing.assert_array_equal(erode(x, 2), ref.grey_erosion(x, 2))
    np.testing.assert_array_equal(dilate(x, 1), ref.grey_dilation(x, 1))


@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16, np.int32, np.uint8, np.bool_])
def test_dtypes_are_kept(dtype):
    rng = np.random.default_rng(2)
    values = (rng.random((6, 7)) * 50).astype(np.float32)
    x = values > 25 if dtype == np.bool_ else values.astype(dtype)
    for fn, reference in ((erode, ref.grey_erosion), (dilate, ref.grey_dilation)):
        out = fn(jnp.asarray(x), 2)
        assert out.dtype == jnp.asarray(x).dtype
        expected = reference(np.asarray(x, np.float64), 2)
        np.testing.assert_array_equal(np.asarray(out, np.float64), expected)


def test_bool_erosion_is_binary_erosion_with_a_neutral_border():
    mask = np.random.default_rng(4).random((6, 7)) < 0.7
    np.testing.assert_array_equal(erode(jnp.asarray(mask), 2),
                                  ndi.binary_erosion(mask, _cross(2), border_value=1))


def test_gradients_jit_and_vmap():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.permutation(30).reshape(5, 6) / 7.0)  # distinct values
        for fn in (erode, dilate, opening):
            check_grads_jitted(lambda y, fn=fn: fn(y, 2), (x,), order=2)
        # Each output is one input: the gradient of the sum counts the windows won.
        grad = jax.jit(jax.grad(lambda y: erode(y, 2).sum()))(x)
        assert float(grad.sum()) == x.size
        batch = jnp.stack([x, -x])
        np.testing.assert_array_equal(jax.jit(dilate, static_argnums=1)(batch, 2),
                                      jax.jit(jax.vmap(lambda y: dilate(y, 2)))(batch))
        with pytest.raises(TypeError, match="forward-mode"):
            jax.jvp(lambda y: erode(y, 2), (x,), (x,))


def test_gradient_goes_to_the_winner():
    x = jnp.array([[4.0, 1.0, 5.0],
                   [3.0, 9.0, 2.0],
                   [6.0, 8.0, 7.0]])
    onehot = np.zeros((3, 3))
    onehot[1, 1] = 1.0
    corner = np.zeros((3, 3))
    corner[2, 0] = 1.0

    @jax.jit  # one program for the five gradients
    def grads(x, ties_max, ties_min):
        return (jax.grad(lambda v: jnp.sum(erode(v, 2) * onehot))(x),
                jax.grad(lambda v: jnp.sum(dilate(v, 2) * onehot))(x),
                jax.grad(lambda v: jnp.sum(dilate(v, 2) * corner))(x),
                jax.grad(lambda v: dilate(v, 1)[1])(ties_max),
                jax.grad(lambda v: erode(v, 1)[1])(ties_min))

    erode_at, dilate_at, dilate_corner, ties_max, ties_min = grads(
        x, jnp.array([2.0, 2.0, 2.0]), jnp.array([3.0, 1.0, 1.0]))
    # erode at (1, 1): min(9, 1, 8, 3, 2) = 1 at (0, 1); dilate at (1, 1): 9 itself.
    np.testing.assert_array_equal(erode_at, jnp.zeros((3, 3)).at[0, 1].set(1))
    np.testing.assert_array_equal(dilate_at, onehot)
    # dilate at (2, 0): max over rows 1-2, columns 0-1 = 9 at (1, 1).
    np.testing.assert_array_equal(dilate_corner, onehot)
    # Ties: the first of the window in index order (as reduce_window's gradient).
    np.testing.assert_array_equal(ties_max, [1, 0, 0])
    np.testing.assert_array_equal(ties_min, [0, 1, 0])


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_gradients_equal_autodiff_of_reduce_window(shape, ties):
    rng = np.random.default_rng(len(shape) + 20)
    full = (2, *shape)
    x = rng.integers(0, 3, size=full).astype(float) if ties else rng.normal(size=full)
    w = rng.normal(size=full)
    nd = len(shape)
    pairs = [(erode, autodiff_erode), (dilate, autodiff_dilate),
             (opening, lambda v, d: autodiff_dilate(autodiff_erode(v, d), d))]

    @jax.jit  # one program for the three pairs
    def both(x, w):
        return [(jax.value_and_grad(lambda v, f=ours: jnp.sum(f(v, nd) * w))(x),
                 jax.value_and_grad(lambda v, f=plain: jnp.sum(f(v, nd) * w))(x))
                for ours, plain in pairs]

    with jax.enable_x64(True):
        for (value, grad), (want, want_grad) in both(x, w):
            np.testing.assert_allclose(value, want, rtol=1e-14)
            np.testing.assert_allclose(grad, want_grad, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_pooling_check_grads_without_ties(shape):
    x = np.random.default_rng(len(shape) + 30).normal(size=(2, *shape))
    with jax.enable_x64(True):
        for fn in (erode, dilate, opening):
            check_grads(jax.jit(lambda v, fn=fn: fn(v, len(shape))), (jnp.asarray(x),),
                        order=1, modes=["rev"])


def test_pooling_bfloat16():
    x = np.random.default_rng(5).permutation(42).reshape(6, 7).astype(np.float32)
    @jax.jit  # one program for both operations
    def outs_and_grads(x16, x32):
        results = []
        for fn in (erode, dilate):
            out, vjp = jax.vjp(lambda v, fn=fn: fn(v, 2), x16)
            results.append((out, vjp(jnp.ones_like(out))[0],
                            jax.grad(lambda v, fn=fn: jnp.sum(fn(v, 2)))(x32)))
        return results

    results = outs_and_grads(jnp.asarray(x, jnp.bfloat16), jnp.asarray(x))
    for reference, (out, grad, want) in zip((ref.grey_erosion, ref.grey_dilation), results,
                                            strict=True):
        assert out.dtype == grad.dtype == jnp.bfloat16  # small integers: exact in bfloat16
        np.testing.assert_array_equal(np.asarray(out, np.float64), reference(x, 2))
        np.testing.assert_array_equal(np.asarray(grad, np.float32), want)


def test_spatial_ndim_errors():
    for bad in (0, 4):
        with pytest.raises(ValueError, match="spatial_ndim"):
            erode(jnp.zeros((2, 3, 4, 5, 6)), bad)
    with pytest.raises(ValueError, match=r"`spatial_ndim` must be 1 to 3 .*\(4, 5\)"):
        dilate(jnp.zeros((4, 5)), 3)
    with pytest.raises(ValueError, match="masks"):
        contour(jnp.zeros((4,), bool), 2)
    assert spatial_axes(5, 3) == (2, 3, 4)
    assert spatial_axes(2, 1) == (1,)


# ------------------------------------------------------------------------------- contours


def test_contour_hand_worked_1d():
    m = jnp.array([1, 1, 0, 1, 1, 1], bool)
    # Beyond the border is outside: both ends are contour.
    np.testing.assert_array_equal(contour(m, 1), [1, 1, 0, 1, 0, 1])
    # Beyond the border is "don't care": only the pixels beside the gap.
    np.testing.assert_array_equal(contour(m, 1, border_outside=False), [0, 1, 0, 1, 0, 0])
    # The gap excluded: it is "don't care" too, so it makes no contour.
    valid = jnp.array([1, 1, 0, 1, 1, 1], bool)
    np.testing.assert_array_equal(contour(m, 1, valid=valid), [1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(
        contour(m, 1, valid=valid, border_outside=False), [0, 0, 0, 0, 0, 0])
    # An excluded mask pixel is never contour.
    valid = jnp.array([0, 1, 1, 1, 1, 1], bool)
    np.testing.assert_array_equal(contour(m, 1, valid=valid), [0, 1, 0, 1, 0, 1])


def test_contour_hand_worked_2d():
    m = np.zeros((4, 4), bool)
    m[:3, :3] = True  # a 3x3 block in the top-left corner
    np.testing.assert_array_equal(
        contour(jnp.asarray(m), 2),
        [[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(
        contour(jnp.asarray(m), 2, border_outside=False),
        [[0, 0, 1, 0], [0, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]])
    # Face neighbours only: the pixel diagonal to the hole is not contour.
    m = np.ones((3, 3), bool)
    m[0, 0] = False
    np.testing.assert_array_equal(
        contour(jnp.asarray(m), 2, border_outside=False),
        [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_contour_hand_worked_3d():
    full = jnp.ones((3, 3, 3), bool)
    assert not contour(full, 3, border_outside=False).any()
    surface = np.ones((3, 3, 3), bool)
    surface[1, 1, 1] = False
    np.testing.assert_array_equal(contour(full, 3), surface)
    dot = jnp.zeros((3, 3, 3), bool).at[1, 1, 1].set(True)
    np.testing.assert_array_equal(contour(dot, 3, border_outside=False), dot)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_contour_matches_scipy_erosion(shape):
    rng = np.random.default_rng(len(shape) + 10)
    nd = len(shape)
    masks = rng.random((2, *shape)) < 0.6
    valid = rng.random((2, *shape)) < 0.8
    cross = _cross(nd)
    # Surface: m & ~binary_erosion(m) with scipy's defaults (border_value=0).
    expected = ref.map_images(lambda m: m & ~ndi.binary_erosion(m, cross), masks, nd)
    np.testing.assert_array_equal(contour(masks, nd), expected)
    # Don't-care border and excluded pixels.
    grown = masks | ~valid
    expected = masks & valid & ref.map_images(
        lambda g: ~ndi.binary_erosion(g, cross, border_value=1), grown, nd)
    np.testing.assert_array_equal(
        contour(masks, nd, valid=valid, border_outside=False), expected)
