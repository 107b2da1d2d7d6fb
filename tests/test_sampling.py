"""Tests for the ``sampling=`` helpers of ``segloss_jax._src.sampling``.

The checks of the spacing's value and shape run through the distance transform
(tests/test_distance.py); here, how a spacing is split into a static and a
traced part and joined again, and when it asks for float64 distances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from segloss_jax._src.sampling import (
    is_float64,
    join_sampling,
    result_dtype,
    sampling_args,
    split_sampling,
)


def test_split_sampling_host_values_static_arrays_traced():
    traced = jnp.array([1.0, 2.0])
    mixed = [jnp.float32(1.0), 2.0]
    cases = [
        (None, (None, None)),
        (2, (2.0, None)),
        (0.5, (0.5, None)),
        (np.float32(0.5), (0.5, None)),
        ((1, 2.5), ((1.0, 2.5), None)),
        ([1.0, np.float64(2.0)], ((1.0, 2.0), None)),
        (np.array([1.0, 2.0]), ((1.0, 2.0), None)),
        (np.array(3.0), (3.0, None)),
    ]
    for sampling, expected in cases:
        static, dynamic = split_sampling(sampling)
        assert (static, dynamic) == expected, sampling
        assert all(isinstance(s, float) for s in np.atleast_1d(static or ()))
        hash(static)  # a static jit argument
    assert split_sampling(traced)[0] is None and split_sampling(traced)[1] is traced
    assert split_sampling(mixed) == (None, mixed)


def test_join_sampling_and_float64():
    assert join_sampling((1.0, 2.0), None) == (1.0, 2.0)
    traced = jnp.array([0.5, 1.0])
    assert join_sampling(None, traced) is traced
    assert join_sampling(None, None) is None
    with jax.enable_x64(True):
        wide = join_sampling(None, None, wide=True)
        assert wide.dtype == jnp.float64 and float(wide) == 1.0
        assert join_sampling((1.0, 2.0), None, wide=True).dtype == jnp.float64
        assert is_float64(np.array([1.0, 2.0]))
        assert is_float64(jnp.array([1.0, 2.0], jnp.float64))
        assert not is_float64((1.0, 2.0)) and not is_float64(np.float32(1.0))
    assert not is_float64(np.array([1.0, 2.0]))  # x64 off: no float64 anywhere


def test_sampling_args_and_result_dtype():
    traced = jnp.array([0.5, 1.0])
    assert sampling_args((1, 2)) == {
        "traced_sampling": None, "static_sampling": (1.0, 2.0), "wide": False}
    assert sampling_args(traced)["traced_sampling"] is traced
    mask = jnp.zeros((3, 4), bool)
    assert result_dtype(mask, None) == jnp.float32
    assert result_dtype(mask.astype(jnp.bfloat16), None) == jnp.float32
    with jax.enable_x64(True):
        assert sampling_args(np.array([1.0, 2.0]))["wide"]
        assert result_dtype(mask, np.array([1.0, 2.0])) == jnp.float64
        assert result_dtype(mask.astype(jnp.float64), (1.0, 2.0)) == jnp.float64
        assert result_dtype(mask, (1.0, 2.0)) == jnp.float32
