r"""The voxel spacing option, ``sampling=``: what it may be and how it reaches a compiled stage.

``sampling`` is the spacing of the grid in each spatial axis: ``None`` (1
everywhere), one positive float for every axis, or one per axis; a host value
(Python or NumPy numbers) or a JAX array.

* :func:`split_sampling`, :func:`join_sampling`, :func:`sampling_args`: the one
  rule for passing ``sampling`` into a compiled stage: known host values stay
  static, so the distance transform checks them at trace time; JAX arrays are
  traced, so a new spacing does not recompile.
* :func:`is_float64`, :func:`result_dtype`: float64 distances only on request
  (x64 enabled and a float64 spacing or mask).
* :func:`checked_spacing`: ``sampling`` as a per-axis array, checked at trace time.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TypeGuard

import jax
import jax.numpy as jnp
import numpy as np

Sampling = float | Sequence[float] | jax.Array | None


def _is_host_number(x: object) -> TypeGuard[numbers.Real]:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def split_sampling(sampling: Sampling) -> tuple[Sampling, Sampling]:
    """``(static, traced)`` parts of ``sampling``, exactly one of them not ``None``
    (unless ``sampling`` is).

    Host values (a Python or NumPy number, a sequence of them, a NumPy array of at
    most one axis) become static Python floats: hashable, and checked by value
    when the transform is traced. Anything else (JAX arrays, sequences holding
    them) is traced. Rejoin the parts with :func:`join_sampling`.
    """
    if isinstance(sampling, (np.ndarray, np.generic)) and np.ndim(sampling) <= 1:
        sampling = np.asarray(sampling).tolist()
    if sampling is None:
        return None, None
    if _is_host_number(sampling):
        return float(sampling), None
    if isinstance(sampling, (tuple, list)) and all(map(_is_host_number, sampling)):
        return tuple(float(x) for x in sampling), None
    return None, sampling


def join_sampling(static: Sampling, traced: Sampling, wide: bool = False) -> Sampling:
    """The spacing from its two parts; as a float64 array when ``wide`` (for float64 maps)."""
    sampling = static if traced is None else traced
    if wide:
        return jnp.asarray(1.0 if sampling is None else sampling, jnp.float64)
    return sampling


def _x64() -> bool:
    return bool(jax.config.read("jax_enable_x64"))


def is_float64(sampling: Sampling) -> bool:
    """Whether ``sampling`` asks for float64 distances (a float64 array, x64 enabled)."""
    dtype = getattr(sampling, "dtype", None)
    return _x64() and dtype == jnp.float64


def sampling_args(sampling: Sampling) -> dict:
    """Keywords ``traced_sampling``, ``static_sampling`` and ``wide`` for a jitted stage.

    The stage rejoins them with :func:`join_sampling`; ``wide`` (float64
    distances) follows :func:`is_float64`.
    """
    static, traced = split_sampling(sampling)
    return {"traced_sampling": traced, "static_sampling": static, "wide": is_float64(sampling)}


def result_dtype(mask: jax.Array, sampling: Sampling) -> jnp.dtype:
    """float64 only on request (x64 on and a float64 mask or spacing); otherwise float32.

    bf16 and f16 masks give float32.
    """
    wide = is_float64(sampling) or (mask.dtype == jnp.float64 and _x64())
    return jnp.dtype(jnp.float64 if wide else jnp.float32)


def checked_spacing(sampling: Sampling, masks: jax.Array, spatial_ndim: int) -> jax.Array:
    """``sampling`` as a ``[spatial_ndim]`` array of :func:`result_dtype`, checked at trace time.

    ``masks`` is ``[..., *spatial]`` with ``1 <= spatial_ndim <= masks.ndim``.
    """
    spatial = masks.shape[masks.ndim - spatial_ndim :]
    dtype = result_dtype(masks, sampling)
    if sampling is None:
        return jnp.ones((spatial_ndim,), dtype)
    values = jnp.asarray(sampling, dtype)
    if values.ndim > 1 or (values.ndim == 1 and values.shape[0] != spatial_ndim):
        raise ValueError(
            f"`sampling` must be a float or a sequence of {spatial_ndim} floats (one per axis "
            f"of a mask with spatial shape {spatial}); got shape {values.shape}."
        )
    try:
        host = np.asarray(sampling, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        host = None  # traced: only the shape can be checked
    if host is not None and not np.all(np.isfinite(host) & (host > 0)):
        raise ValueError(f"`sampling` must be positive and finite; got {sampling!r}.")
    return jnp.broadcast_to(values, (spatial_ndim,))
