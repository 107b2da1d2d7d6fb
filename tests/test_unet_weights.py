"""``unet_weight_map`` against scipy's distance transforms looped over the instances
(``reference.unet_weight_map``), in 2D and 3D, with its jit and error behaviour."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from jax.experimental import checkify

import segloss_jax as sl


def _instances(shape, seed=0):
    """Labelled smoothed-noise blobs with non-consecutive ids; the last image has one
    instance (no border term), the one before none."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.int32)
    for b in range(shape[0]):
        blobs = ndi.gaussian_filter(rng.normal(size=shape[1:]), 1.5) > 0.25
        labels, n = ndi.label(blobs)
        out[b] = np.where(labels > 0, labels * 3 + 7, 0)
    if shape[0] > 2:
        out[-2] = 0
        out[-1] = np.where(out[-1] > 0, 5, 0)
    return out


@pytest.mark.parametrize("kwargs", [{}, {"w0": 5.0, "sigma": 2.0, "class_weights": (0.5, 2.0)},
                                    {"class_weights": "balanced", "sampling": (1.0, 1.5)},
                                    {"sigma": 1.0, "sampling": (1.0, 0.7)}])
def test_matches_scipy_2d(kwargs):
    instances = _instances((4, 24, 20))
    got = sl.unet_weight_map(instances, **kwargs)
    want = ref.unet_weight_map(instances, **kwargs)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_matches_scipy_3d_under_jit():
    instances = _instances((2, 8, 10, 9), seed=1)
    k = max(len(np.unique(im[im > 0])) for im in instances)
    got = jax.jit(lambda i: sl.unet_weight_map(i, sigma=2.0, sampling=(2.0, 1.0, 1.0),
                                               max_instances=k))(instances)
    want = ref.unet_weight_map(instances, sigma=2.0, sampling=(2.0, 1.0, 1.0))
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_transform_within_reach_is_exact_there():
    """The truncated transform behind small σ: scipy's distances wherever they are within
    the reach along each axis, larger than the reach elsewhere."""
    from segloss_jax._src.distance import batched_edt_within

    masks = _instances((2, 40, 36), seed=2) == 0  # distances to the nearest instance
    assert not masks.all(axis=(1, 2)).any()
    got = np.asarray(batched_edt_within(masks, spatial_ndim=2, reach=(5, 5)))
    want = np.stack([ndi.distance_transform_edt(m) for m in masks])
    near = want <= 5
    np.testing.assert_allclose(got[near], want[near], rtol=1e-6)
    assert np.all(got[~near] > 5)


def test_too_many_instances_reported_under_checkify():
    instances = _instances((2, 24, 20))
    checked = checkify.checkify(jax.jit(lambda i: sl.unet_weight_map(i, max_instances=2)),
                                errors=checkify.user_checks)
    err, _ = checked(instances)
    with pytest.raises(checkify.JaxRuntimeError, match="max_instances"):
        err.throw()


@pytest.mark.parametrize("call,exc,match", [
    (lambda i: sl.unet_weight_map(i.astype(np.float32)), TypeError, "integer"),
    (lambda i: sl.unet_weight_map(i, class_weights="inverse"), ValueError, "class_weights"),
    (lambda i: sl.unet_weight_map(i, class_weights=(1.0, 2.0, 3.0)), ValueError, "class_weights"),
    (lambda i: sl.unet_weight_map(i, sigma=0.0), ValueError, "sigma"),
    (lambda i: jax.jit(sl.unet_weight_map)(i), TypeError, "max_instances"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_instances((2, 8, 8)))
