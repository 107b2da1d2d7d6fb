"""Tests for the windowed operations of ``segloss_jax._src.windows``.

Grey-level erosion and dilation are checked against the float64 ``scipy.ndimage``
references of ``reference.py``: erosion is ``grey_erosion`` with the cross
(plus-shaped) footprint, dilation ``grey_dilation`` with the full ``3^d`` box, both with
``mode="nearest"`` (a replicated border value is already in the window, so it
never wins) and, to show that the border is neutral, with a constant border
that cannot win either. Contours are checked on hand-worked masks and against
``binary_erosion``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from jax.test_util import check_grads

from segloss_jax._src.windows import contour, dilate, erode, opening, spatial_axes

SHAPES = [(9,), (7, 8), (5, 6, 4)]
IDS = ["1d", "2d", "3d"]


def _cross(ndim):
    return ndi.generate_binary_structure(ndim, 1)


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
            check_grads(lambda y, fn=fn: fn(y, 2), (x,), order=1, modes=["fwd", "rev"])
        # Each output is one input: the gradient of the sum counts the windows won.
        grad = jax.grad(lambda y: erode(y, 2).sum())(x)
        assert float(grad.sum()) == x.size
        batch = jnp.stack([x, -x])
        np.testing.assert_array_equal(jax.jit(dilate, static_argnums=1)(batch, 2),
                                      jax.vmap(lambda y: dilate(y, 2))(batch))


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
