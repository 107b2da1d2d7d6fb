"""Tests for the in-graph Euclidean distance transforms.

Golden values come from ``scipy.ndimage.distance_transform_edt`` in float64 and
Kervadec et al.'s ``one_hot2dist`` (``reference.py``). The transforms inside
``shard_map`` and ``pmap`` are tested in ``test_distributed.py``.
Arrays are small and reuse a few shapes, so compiled functions are shared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi

from segloss_jax._src import distance

edt = distance.distance_transform_edt
signed = distance.signed_distance
edt_jit = jax.jit(edt)

SHAPES = [(17,), (9, 12), (6, 7, 5)]


def _masks(shape: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """Random masks of several densities, each with at least one zero."""
    rng = np.random.default_rng(seed)
    out = []
    for p in (0.3, 0.7, 0.95):
        m = rng.random(shape) < p
        m.flat[rng.integers(m.size)] = False
        out.append(m)
    return out


def _assert_close(actual, desired) -> None:
    np.testing.assert_allclose(np.asarray(actual), desired, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("sampling", [None, 0.5, "per-axis"])
def test_edt_matches_scipy(shape, sampling):
    if sampling == "per-axis":
        sampling = tuple(np.linspace(0.4, 2.5, len(shape)))
    for m in _masks(shape):
        expected = ndi.distance_transform_edt(m, sampling=sampling)
        _assert_close(edt(m, sampling=sampling), expected)


def test_traced_sampling_matches_scipy():
    m = _masks((9, 12))[1]
    sampling = jnp.array([1.7, 0.3])
    expected = ndi.distance_transform_edt(m, sampling=(1.7, 0.3))
    _assert_close(jax.jit(lambda m, s: edt(m, sampling=s))(m, sampling), expected)


def test_thin_structures():
    line = np.zeros((9, 12), bool)
    line[4, :] = True  # a one-pixel foreground line
    _assert_close(edt(line), ndi.distance_transform_edt(line))
    _assert_close(edt(line), line.astype(float))
    gap = ~line  # a one-pixel background line: distances grow away from it
    _assert_close(edt(gap), ndi.distance_transform_edt(gap))
    diagonal = ~np.eye(9, dtype=bool)
    _assert_close(edt(diagonal), ndi.distance_transform_edt(diagonal))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_single_zero(shape):
    m = np.ones(shape, bool)
    m[tuple(n - 2 for n in shape)] = False
    _assert_close(edt(m), ndi.distance_transform_edt(m))
    _assert_close(edt(m, sampling=0.25), ndi.distance_transform_edt(m, sampling=0.25))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_all_zeros(shape):
    out = edt(np.zeros(shape, np.int32))
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out), 0.0)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("sampling", [None, "per-axis"])
def test_no_zero_is_padded_with_background(shape, sampling):
    # Convention: the array is treated as surrounded by background.
    sampling = None if sampling is None else tuple(np.linspace(0.5, 2.0, len(shape)))
    padded = np.pad(np.ones(shape, bool), 1)
    expected = ndi.distance_transform_edt(padded, sampling=sampling)[(slice(1, -1),) * len(shape)]
    out = edt(np.ones(shape, np.float32), sampling=sampling)
    _assert_close(out, expected)
    assert np.all(np.isfinite(np.asarray(out)))


def test_dtypes_and_nonzero_semantics():
    m = _masks((9, 12))[1]
    expected = ndi.distance_transform_edt(m)
    values = np.where(m, -2.5, 0.0)  # any nonzero value is foreground
    for x in (m, m.astype(np.int32), values.astype(np.float32), jnp.asarray(values, jnp.bfloat16)):
        out = edt(x)
        assert out.dtype == jnp.float32
        _assert_close(out, expected)


def test_float64_under_x64():
    m = _masks((9, 12))[0]
    with jax.enable_x64(True):
        assert edt(m.astype(np.float64)).dtype == jnp.float64
        assert edt(m, sampling=np.array([1.0, 2.0])).dtype == jnp.float64
        assert edt(m, sampling=2.0).dtype == jnp.float32


def test_strict_dtype_promotion():
    m = _masks((6, 7, 5))[1]
    with jax.numpy_dtype_promotion("strict"):
        _assert_close(edt(m, sampling=(1.0, 2.0, 0.5)), ndi.distance_transform_edt(m, (1, 2, 0.5)))
        _assert_close(signed(m), ref.one_hot2dist(m))


def test_jit_equals_eager():
    for m in _masks((6, 7, 5)):
        np.testing.assert_array_equal(np.asarray(edt_jit(m)), np.asarray(edt(m)))


def test_vmap_and_batched_equal_loop():
    masks = np.stack(_masks((9, 12)) + [np.zeros((9, 12), bool), np.ones((9, 12), bool)])
    loop = np.stack([np.asarray(edt(m)) for m in masks])
    np.testing.assert_allclose(np.asarray(jax.vmap(edt)(masks)), loop, rtol=1e-6)
    batched = distance.batched_edt(masks.reshape(5, 1, 9, 12), spatial_ndim=2)
    np.testing.assert_allclose(np.asarray(batched), loop.reshape(5, 1, 9, 12), rtol=1e-6)

    loop = np.stack([np.asarray(signed(m)) for m in masks])
    np.testing.assert_allclose(np.asarray(jax.vmap(signed)(masks)), loop, rtol=1e-6)
    batched = distance.batched_signed_distance(masks, spatial_ndim=2)
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-6)


def test_no_host_callback():
    m = jnp.zeros((6, 7, 5), bool)
    for fn in (edt, signed):
        jaxpr = str(jax.make_jaxpr(jax.jit(lambda m, fn=fn: fn(m, sampling=(1.0, 2.0, 0.5))))(m))
        assert "callback" not in jaxpr


def test_no_gradient():
    m = jnp.asarray(_masks((9, 12))[1], jnp.float32)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(edt(x)) + jnp.sum(signed(x))))(m)
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_signed_distance_matches_kervadec(shape):
    for m in _masks(shape, seed=1):
        _assert_close(signed(m), ref.one_hot2dist(m))
        # Kervadec's reference subtracts 1 whatever the spacing: equal when min spacing is 1.
        sampling = tuple(np.linspace(1.0, 2.0, len(shape)))
        _assert_close(signed(m, sampling=sampling), ref.one_hot2dist(m, sampling))


def test_signed_distance_signs_and_zero_level():
    m = np.zeros((9, 12), bool)
    m[2:7, 3:10] = True
    for sampling in (None, 0.25, (0.5, 3.0)):
        phi = np.asarray(signed(m, sampling=sampling))
        assert np.all(phi[~m] > 0)
        assert np.all(phi[m] <= 0)
        step = 1.0 if sampling is None else np.min(sampling)
        inside = ndi.distance_transform_edt(m, sampling=sampling)
        np.testing.assert_array_equal(phi == 0, m & np.isclose(inside, step))
    phi = np.asarray(signed(m))
    assert phi[2, 5] == 0 and phi[3, 5] == -1 and phi[1, 5] == 1


@pytest.mark.parametrize("value", [0, 1])
def test_signed_distance_without_boundary_is_zero(value):
    phi = signed(np.full((9, 12), value, np.int32), sampling=(0.5, 2.0))
    np.testing.assert_array_equal(np.asarray(phi), 0.0)


@pytest.mark.parametrize("fn", [edt, signed])
def test_errors(fn):
    with pytest.raises(ValueError, match=r"`mask` must have 1 to 3 spatial axes.*\(\)"):
        fn(jnp.zeros(()))
    with pytest.raises(ValueError, match=r"`mask` .*\(2, 3, 4, 5\) \(rank 4\)"):
        fn(jnp.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"`sampling` must be a float or a sequence of 2"):
        fn(jnp.zeros((3, 4)), sampling=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"`sampling` must be a float or a sequence of 2"):
        fn(jnp.zeros((3, 4)), sampling=[[1.0, 1.0]])
    for bad in (0.0, (1.0, -2.0), float("inf")):
        with pytest.raises(ValueError, match=r"`sampling` must be positive and finite"):
            fn(jnp.zeros((3, 4)), sampling=bad)


def test_batched_spatial_ndim_error():
    with pytest.raises(ValueError, match=r"`spatial_ndim` must be 1 to 3 .*\(2, 3\)"):
        distance.batched_edt(jnp.zeros((2, 3)), spatial_ndim=3)
