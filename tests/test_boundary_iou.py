"""Tests for ``boundary_iou`` (Cheng et al., CVPR 2021).

Against the reference written from the definition (``reference.boundary_iou``: the mask
elements with a background element, the frame beyond the border included, in their
``(2k+1)^d`` window) and, independently, ``scipy.ndimage.binary_erosion`` with the square
(cube) and ``border_value=0``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi

import segloss_jax as sl
from segloss_jax._src import bitplanes
from segloss_jax._src.metrics.boundary import band_width, inner_band


def _pairs(shape, count, seed=0):
    """Pairs of smoothed-noise masks, with empty and full ones among them."""
    rng = np.random.default_rng(seed)
    pairs = [(ndi.gaussian_filter(rng.normal(size=shape), 2.0) > level,
              ndi.gaussian_filter(rng.normal(size=shape), 2.0) > level)
             for level in np.linspace(-0.3, 0.3, count)]
    empty, full = np.zeros(shape, bool), np.ones(shape, bool)
    return [*pairs, (empty, pairs[0][1]), (full, pairs[1][1]), (full, full)]


def _scipy_band(mask, k):
    square = np.ones((2 * k + 1,) * mask.ndim, bool)
    return mask & ~ndi.binary_erosion(mask, structure=square, border_value=0)


@pytest.mark.parametrize("shape, kwargs", [
    ((40, 50), {}), ((40, 50), {"dilation_ratio": 0.1}), ((37, 70), {"dilation": 3}),
    ((9, 12, 40), {}), ((9, 12, 40), {"dilation": 2}),
])
def test_equals_reference(shape, kwargs):
    pairs = _pairs(shape, 6)
    preds, masks = (np.stack(m) for m in zip(*pairs, strict=True))
    values = jax.jit(jax.vmap(functools.partial(sl.boundary_iou, **kwargs)))(preds, masks)
    expected = [ref.boundary_iou(p, g, **kwargs) for p, g in pairs]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    k = ref.band_width(shape, **kwargs)
    for p, _ in pairs:  # the band is scipy's erosion with the square, border_value=0
        band = bitplanes.unpack(inner_band(bitplanes.pack(jnp.asarray(p)), k), shape[-1])
        np.testing.assert_array_equal(band, _scipy_band(p, k))
        np.testing.assert_array_equal(band, ref.boundary_band(p, k))


def test_empty_masks():
    empty = np.zeros((8, 8), bool)
    square = empty.copy()
    square[2:6, 2:6] = True
    assert np.isnan(sl.boundary_iou(empty, empty))
    assert sl.boundary_iou(square, empty) == 0 and sl.boundary_iou(empty, square) == 0
    assert sl.boundary_iou(square, square) == 1


def test_hand_worked_example():
    """Two 6 x 6 squares one column apart: with k = 1 each band is the 20-element ring,
    10 shared (the top and bottom rows' common 5 each); with k = 2, 32 each, 24 shared."""
    g = np.zeros((10, 10), bool)
    g[2:8, 2:8] = True
    p = np.roll(g, 1, axis=1)
    np.testing.assert_allclose(sl.boundary_iou(p, g, dilation=1), 10 / 30)
    np.testing.assert_allclose(sl.boundary_iou(p, g, dilation=2), 24 / 40)
    # Non-zero integers are foreground.
    np.testing.assert_allclose(sl.boundary_iou(p * 3, g.astype(np.int32) * -1, dilation=1),
                               10 / 30)


def test_band_width_rounds_half_to_even():
    assert band_width((30, 40), 0.05, None) == 2  # 0.05 · 50 = 2.5 -> 2
    assert band_width((30, 40), 0.07, None) == 4  # 3.5 (and a little) -> 4
    assert band_width((30, 40), 0.001, None) == 1  # at least 1
    assert band_width((30, 40), 0.02, 5) == 5
    assert band_width((2, 3, 6), 0.5, None) == 4  # 0.5 · 7 = 3.5 -> 4
    assert ref.band_width((30, 40), 0.05) == 2


def test_bad_input():
    a = np.zeros((6, 6), bool)
    with pytest.raises(ValueError, match="must match"):
        sl.boundary_iou(a, a[:, :-1])
    with pytest.raises(ValueError, match=r"\[H, W\] or \[D, H, W\]"):
        sl.boundary_iou(a[0], a[0])
    with pytest.raises(ValueError, match="`dilation` must be a positive int"):
        sl.boundary_iou(a, a, dilation=0)
    with pytest.raises(ValueError, match="dilation_ratio"):
        sl.boundary_iou(a, a, dilation_ratio=-0.1)
    with pytest.raises(TypeError, match="dilation_ratio"):
        sl.boundary_iou(a, a, dilation_ratio=jnp.asarray(0.1))
