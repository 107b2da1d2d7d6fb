"""Tests for the exact skeletons (``segloss_jax._src.skeletonize``), Skeleton Recall's target
and the bit planes they are computed on.

``skeletonize`` must equal ``skimage.morphology.skeletonize`` element for element: it is
compared with scikit-image on random and structured masks in 2D (Zhang, and Lee as one
plane) and 3D (Lee). Each shape is compiled once (``jit(vmap(...))`` over a stack of
masks). ``skeleton_target`` is compared with nnU-Net's recipe (``reference.skeleton_target``:
scikit-image's skeleton, scipy's dilation).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from skimage.morphology import skeletonize as skimage_skeletonize
from xla_options import jit_default_emitters

import segloss_jax as sl
from segloss_jax._src import bitplanes
from segloss_jax._src.skeletonize import _ZHANG_REMOVE, _ZHANG_TABLE, _evaluate


def _blobs(rng, shape, sigma, level):
    return ndi.gaussian_filter(rng.normal(size=shape), sigma) > level


def _masks_2d(shape, seed=0):
    """Structured and random 2D masks: empty, full, single pixels, lines, bars, rings,
    a cross, touching borders, a checkerboard, noise and smoothed-noise blobs."""
    h, w = shape
    rng = np.random.default_rng(seed)
    masks = {"empty": np.zeros(shape, bool), "full": np.ones(shape, bool)}
    one = np.zeros(shape, bool)
    one[h // 2, w // 2] = True
    masks["pixel"] = one
    corner = np.zeros(shape, bool)
    corner[0, -1] = True
    masks["corner pixel"] = corner
    rows, cols = np.indices(shape)
    masks["row"] = rows == h // 2
    masks["column"] = cols == w // 3
    masks["diagonal"] = rows == cols
    masks["bar"] = (abs(rows - h // 2) <= 1) & (cols > 1) & (cols < w - 2)
    masks["bar on the border"] = rows < 3
    radius = np.hypot(rows - h / 2, cols - w / 2)
    masks["ring"] = (radius > 2) & (radius < 5)
    masks["disk"] = radius < min(h, w) / 2.5
    masks["cross"] = (abs(rows - h // 2) <= 1) | (abs(cols - w // 2) <= 1)
    masks["checkerboard"] = (rows + cols) % 2 == 0
    masks["L"] = ((rows > h - 4) & (cols < w - 2)) | ((cols < 3) & (rows > 1))
    masks["holes"] = (rows % 4 != 1) | (cols % 4 != 1)
    for p in (0.3, 0.5, 0.7):
        masks[f"noise {p}"] = rng.random(shape) < p
    for i, (sigma, level) in enumerate([(1.0, 0.0), (1.5, -0.2), (2.0, 0.1), (1.2, -0.4),
                                        (2.5, 0.0), (1.0, 0.3)]):
        masks[f"blobs {i}"] = _blobs(rng, shape, sigma, level)
    return masks


def _masks_3d(shape, seed=0):
    """Structured and random 3D masks: empty, full, a voxel, lines along each axis, a
    plate, a box, a hollow box, a tube, touching borders, noise and blobs."""
    rng = np.random.default_rng(seed)
    d, h, w = shape
    z, y, x = np.indices(shape)
    masks = {"empty": np.zeros(shape, bool), "full": np.ones(shape, bool)}
    masks["voxel"] = (z == d // 2) & (y == h // 2) & (x == w // 2)
    masks["line z"] = (y == h // 2) & (x == w // 2)
    masks["line x"] = (z == d // 2) & (y == 1)
    masks["plate"] = z == d // 2
    masks["box"] = (z > 0) & (z < d - 1) & (y > 1) & (y < h - 1) & (x > 0) & (x < w - 2)
    masks["hollow box"] = masks["box"] & ~((z > 1) & (z < d - 2) & (y > 2) & (y < h - 2)
                                           & (x > 1) & (x < w - 3))
    radius = np.hypot(y - h / 2, x - w / 2)
    masks["tube"] = (radius > 1.5) & (radius < 3.5)
    masks["on the border"] = (z < 2) | (x > w - 3)
    masks["diagonal cubes"] = ((z < 3) & (y < 3) & (x < 3)) | ((z >= 3) & (y >= 3) & (x >= 3)
                                                              & (z < 6) & (y < 6) & (x < 6))
    for p in (0.3, 0.5, 0.7):
        masks[f"noise {p}"] = rng.random(shape) < p
    for i, (sigma, level) in enumerate([(1.0, 0.0), (1.2, -0.3), (1.5, 0.0), (1.0, 0.4),
                                        (2.0, -0.1), (0.8, -0.2)]):
        masks[f"blobs {i}"] = _blobs(rng, shape, sigma, level)
    return masks


@functools.cache
def _batched(method, jit=jax.jit):
    return jit(jax.vmap(functools.partial(sl.skeletonize, method=method)))


def _assert_equal_to_scikit_image(masks, method, jit=jax.jit):
    names = list(masks)
    ours = np.asarray(_batched(method, jit)(np.stack([masks[n] for n in names])))
    for name, skeleton in zip(names, ours, strict=True):
        expected = skimage_skeletonize(masks[name], method=method)
        np.testing.assert_array_equal(skeleton, expected, err_msg=name)


@pytest.mark.parametrize("shape", [(12, 15), (6, 70)])  # (6, 70): three words per row
def test_zhang_equals_scikit_image(shape):
    _assert_equal_to_scikit_image(_masks_2d(shape), None)


def test_lee_on_a_2d_image_equals_scikit_image():
    _assert_equal_to_scikit_image(_masks_2d((12, 15), seed=1), "lee")


def test_lee_3d_equals_scikit_image():
    _assert_equal_to_scikit_image(_masks_3d((7, 8, 9)), None, jit_default_emitters)


def test_skeletons_thin_and_keep_topology():
    masks = _masks_2d((12, 15))
    skeletons = np.asarray(_batched(None)(np.stack(list(masks.values()))))
    for (name, mask), skeleton in zip(masks.items(), skeletons, strict=True):
        assert not np.any(skeleton & ~mask), name  # inside the mask
        # as many 8-connected components as the mask
        eight = np.ones((3, 3))
        assert ndi.label(skeleton, eight)[1] == ndi.label(mask, eight)[1], name
    assert not skeletons[list(masks).index("empty")].any()


def test_nonzero_is_foreground_and_jit_equals_eager():
    rng = np.random.default_rng(3)
    mask = _blobs(rng, (9, 11), 1.2, 0.0)
    values = np.where(mask, rng.choice([-2, 1, 7], size=mask.shape), 0).astype(np.int32)
    expected = skimage_skeletonize(mask)
    np.testing.assert_array_equal(sl.skeletonize(values), expected)  # eager
    np.testing.assert_array_equal(jax.jit(sl.skeletonize)(values.astype(np.float32)), expected)
    out = sl.skeletonize(jnp.asarray(mask))
    assert out.dtype == jnp.bool_ and out.shape == mask.shape


@pytest.mark.parametrize("mask, kwargs, match", [
    (np.ones(5), {}, "2D .* or 3D"),
    (np.ones((2, 3, 4, 5)), {}, "2D .* or 3D"),
    (np.ones((4, 4)), {"method": "medial"}, "`method`"),
    (np.ones((4, 4, 4)), {"method": "zhang"}, "zhang.*2D"),
])
def test_bad_input(mask, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sl.skeletonize(mask, **kwargs)


def test_zhang_decision_diagrams_are_the_table():
    codes = np.arange(256)

    @jax.jit  # one program for both diagrams
    def removed(bits):
        planes = [bitplanes.pack(bits[i]) for i in range(8)]
        return [bitplanes.unpack(_evaluate(diagram, planes), 256) for diagram in _ZHANG_REMOVE]

    bits = jnp.asarray([(codes >> i) & 1 == 1 for i in range(8)])
    for k, got in zip((1, 2), removed(bits), strict=True):
        np.testing.assert_array_equal(got, (_ZHANG_TABLE == k) | (_ZHANG_TABLE == 3))


def test_zhang_table_differs_from_the_paper_in_25_entries():
    """Zhang & Suen's conditions: 2 ≤ B ≤ 6 neighbours, A = 1 background-to-foreground
    transition around the pixel, and P2·P4·P6 = P4·P6·P8 = 0 (sub-iteration 1) or
    P2·P4·P8 = P2·P6·P8 = 0 (sub-iteration 2); P2 = N, then clockwise."""
    differ = 0
    for code in range(256):
        nw, n, ne, e, se, s, sw, w = ((code >> i) & 1 for i in range(8))
        ring = [n, ne, e, se, s, sw, w, nw, n]
        transitions = sum(a == 0 and b == 1 for a, b in zip(ring[:-1], ring[1:], strict=True))
        base = 2 <= sum(ring[:8]) <= 6 and transitions == 1
        paper = (base and n * e * s == 0 and e * s * w == 0,
                 base and n * e * w == 0 and n * s * w == 0)
        table = (_ZHANG_TABLE[code] in (1, 3), _ZHANG_TABLE[code] in (2, 3))
        differ += paper != table
    assert differ == 25


def test_bitplanes_round_trip_and_shifts():
    rng = np.random.default_rng(4)
    image = rng.random((3, 5, 70)) < 0.5
    offsets = [(0, 0, 1), (1, -1, -1), (-2, 0, 33), (0, 1, -40), (0, 0, 64), (0, 0, -69)]

    @jax.jit  # one program for every operation below
    def run(image):
        planes = bitplanes.pack(image)
        return (planes, bitplanes.unpack(planes, 70), bitplanes.count(planes),
                [bitplanes.unpack(bitplanes.shift(planes, o), 70) for o in offsets])

    planes, unpacked, count, shifts = run(jnp.asarray(image))
    assert planes.shape == (3, 3, 5)  # ceil(70 / 32) words first
    np.testing.assert_array_equal(unpacked, image)
    assert int(count) == image.sum()
    for offset, shifted in zip(offsets, shifts, strict=True):
        expected = np.zeros_like(image)
        pairs = list(zip(offset, image.shape, strict=True))
        src = tuple(slice(max(o, 0), n + min(o, 0)) for o, n in pairs)
        dst = tuple(slice(max(-o, 0), n + min(-o, 0)) for o, n in pairs)
        expected[dst] = image[src]  # element i holds element i + offset
        np.testing.assert_array_equal(shifted, expected, err_msg=str(offset))


# --------------------------------------------------------------------------- skeleton_target


def _labels(shape, seed, num_classes=3, ignore=None):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for c in range(1, num_classes):
        labels[_blobs(rng, shape, 1.5, 0.4)] = c
    if ignore is not None:
        labels[rng.random(shape) < 0.05] = ignore
    labels[0] = 0  # an empty image
    return labels


@pytest.mark.parametrize("shape, tube", [((3, 12, 15), True), ((3, 12, 15), False),
                                         ((2, 7, 8, 9), True)])
def test_skeleton_target_equals_nnunet_recipe(shape, tube):
    labels = _labels(shape, seed=len(shape), ignore=9)
    out = jit_default_emitters(functools.partial(sl.skeleton_target, tube=tube))(labels)
    np.testing.assert_array_equal(out, ref.skeleton_target(labels, tube=tube))
    assert not np.any(out[0])  # empty image: zeros
    assert np.any(out == 9)  # the ignore label counts as foreground


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.bool_])
def test_skeleton_target_keeps_the_dtype(dtype):
    labels = _labels((2, 9, 10), seed=5, num_classes=2).astype(dtype)
    out = sl.skeleton_target(labels)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, ref.skeleton_target(labels))


def test_skeleton_target_bad_input():
    with pytest.raises(TypeError, match="`labels` must hold integer"):
        sl.skeleton_target(np.ones((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"`labels` must be \[B, H, W\]"):
        sl.skeleton_target(np.ones((4, 4), np.int32))
    with pytest.raises(TypeError, match="tube"):
        sl.skeleton_target(np.ones((1, 4, 4), np.int32), tube=1)
