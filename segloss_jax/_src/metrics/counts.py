r"""Exact counting shared by the metrics: label checks, the pixels that count, and
the streaming counter.

* :func:`check_labels`, :func:`check_int` and :func:`check_num_classes` are the
  static checks of hard labels and their options; :func:`counted` gives the int32
  labels and the mask of pixels that count (the losses' validity rule).
* :func:`float_dtype` is the dtype of the scores: float32, or float64 under x64.
* The streaming counter holds each count as ``high·2³⁰ + low`` in two int32 arrays,
  exact up to 2⁶¹ (a single int32 would overflow after 2.1·10⁹):
  :func:`zero_counts` makes an empty one, :func:`add_counts` adds int32 counts
  below 2³¹ (a batch, or the ``low`` part of another counter) and
  :func:`count_values` reads the totals as floats. Both streaming metrics
  (:class:`~segloss_jax.ConfusionMatrixMetric`,
  :class:`~segloss_jax.CalibrationErrorMetric`) keep their counts in it.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from jax.experimental import checkify

from segloss_jax._src import checks
from segloss_jax._src.inputs import validity_mask

__all__ = [
    "add_counts",
    "check_int",
    "check_labels",
    "check_num_classes",
    "count_values",
    "counted",
    "float_dtype",
    "ratio_or_nan",
    "zero_counts",
]


def float_dtype() -> jnp.dtype:
    """float32, or float64 when x64 is enabled."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def ratio_or_nan(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den``, NaN where ``den`` is 0 (an undefined score)."""
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1), jnp.nan)


# --------------------------------------------------------------------------- checks


def check_num_classes(num_classes: Any) -> None:
    """``num_classes`` is a Python int ``>= 2``."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool):
        raise TypeError(
            f"`num_classes` must be a Python int (it fixes the output shape, so it is static "
            f"under jit), got {num_classes!r}."
        )
    if num_classes < 2:
        raise ValueError(
            f"`num_classes` must be at least 2, got {num_classes}; for a binary mask use "
            f"num_classes=2 (background, foreground)."
        )


def check_int(x: chex.Array, name: str) -> jax.Array:
    """``x`` as an array of integer (or bool) class indices."""
    x = jnp.asarray(x)
    if x.dtype != jnp.bool_ and not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"`{name}` must hold integer class indices (or bool), got dtype {x.dtype}; take "
            f"`jnp.argmax(logits, axis=-1)` of the logits for hard predictions.")
    return x


def check_labels(labels: chex.Array, num_classes: int, where: chex.Array | None,
                 ignore_index: int | None) -> jax.Array:
    """Static checks of hard labels and their options; returns ``labels`` as an array."""
    check_num_classes(num_classes)
    labels = check_int(labels, "labels")
    checks.check_ignore_index(ignore_index, "int")
    checks.check_where(where, labels.shape)
    return labels


def counted(labels: jax.Array, num_classes: int, where: chex.Array | None,
            ignore_index: int | None, name: str = "labels") -> tuple[jax.Array, jax.Array]:
    """int32 labels and the mask of pixels that count (``where`` non-zero, not
    ``ignore_index``, in range), by the losses' validity rule
    (:func:`~segloss_jax._src.inputs.validity_mask`).

    A value out of ``[0, C)`` at a pixel that should count is reported under
    ``checkify`` (like the losses' label check) and otherwise not counted.
    """
    # int32 so that `label * num_classes + pred` cannot overflow a narrow dtype.
    labels = labels.astype(jnp.int32)
    valid = validity_mask(labels.shape, labels=labels, where=where, ignore_index=ignore_index)
    in_range = (labels >= 0) & (labels < num_classes)
    checkify.debug_check(
        jnp.all(in_range | ~valid),
        f"`{name}` must lie in [0, {num_classes - 1}] (or equal `ignore_index`); found a "
        f"value outside it, which is not counted.")
    return labels, valid & in_range


# --------------------------------------------------------------------------- streaming counter

_LOW_BITS = 30
_LOW_MASK = (1 << _LOW_BITS) - 1


def zero_counts(shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """``(high, low)`` of an empty counter of ``shape``."""
    zeros = jnp.zeros(shape, jnp.int32)
    return zeros, zeros


def add_counts(high: jax.Array, low: jax.Array,
               more: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(high, low)`` of the counter ``high·2³⁰ + low`` plus ``more``.

    ``more`` holds non-negative int32 counts below 2³¹: a batch, or the ``low`` of
    another counter (whose ``high`` the caller adds to ``high``). Since ``low < 2³⁰``
    the sum fits in uint32; its whole multiples of 2³⁰ move into ``high``.
    """
    total = low.astype(jnp.uint32) + more.astype(jnp.uint32)
    return (high + (total >> _LOW_BITS).astype(jnp.int32),
            (total & _LOW_MASK).astype(jnp.int32))


def count_values(high: jax.Array, low: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """The counts ``high·2³⁰ + low`` as ``dtype`` (float32: exact below 2²⁴, then to
    6·10⁻⁸ relative)."""
    return high.astype(dtype) * (1 << _LOW_BITS) + low.astype(dtype)
