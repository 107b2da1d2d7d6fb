"""Soft confusion statistics per unit: the engine of every region loss.

With probabilities ``p`` and dense targets ``g`` (``[B, *spatial, C]``) and the
validity mask ``m`` (``[B, *spatial]``), a *unit* is (image ``b``, class ``c``)
when ``per_image=True`` and class ``c`` over the whole batch otherwise:

.. math::

   tp = \\sum m\\,p\\,g, \\qquad fp = \\sum m\\,p\\,(1-g), \\qquad fn = \\sum m\\,(1-p)\\,g.

With ``axis_name`` (and ``per_image=False``) the sums are ``psum``-ed over the
mapped axis, so under ``shard_map``/``pmap`` every device sees the statistics
of the concatenated global batch.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Confusion(NamedTuple):
    tp: jax.Array  # [B, C] (per image) or [C]
    fp: jax.Array
    fn: jax.Array

    @property
    def target_sum(self) -> jax.Array:
        """``Σ g`` per unit; a class is present in a unit when it is positive."""
        return self.tp + self.fn

    @property
    def pred_sum(self) -> jax.Array:
        """``Σ p`` per unit."""
        return self.tp + self.fp


def reduce_axes(ndim: int, per_image: bool) -> tuple[int, ...]:
    """Axes of a ``[B, *spatial, C]`` array summed into a unit."""
    return tuple(range(1 if per_image else 0, ndim - 1))


def unit_sums(
    *values: jax.Array, valid: jax.Array, per_image: bool, axis_name: str | None = None
) -> tuple[jax.Array, ...]:
    """Sums each ``[B, *spatial, C]`` value over the valid pixels of every unit.

    Returns arrays of shape ``[B, C]`` (``per_image``) or ``[C]``. Invalid pixels are
    selected away (not multiplied by zero), so non-finite values there cannot
    leak into the sums or their gradients.
    """
    mask = valid[..., None]
    sums = tuple(
        jnp.sum(jnp.where(mask, v, 0), axis=reduce_axes(v.ndim, per_image)) for v in values
    )
    if axis_name is not None and not per_image:
        sums = jax.lax.psum(sums, axis_name)
    return sums


def confusion(
    probs: jax.Array,
    target: jax.Array,
    valid: jax.Array,
    *,
    per_image: bool,
    axis_name: str | None = None,
) -> Confusion:
    """Soft ``tp, fp, fn`` per unit (see the module docstring)."""
    tp, sum_p, sum_g = unit_sums(
        probs * target, probs, target, valid=valid, per_image=per_image, axis_name=axis_name
    )
    # fp and fn by difference: one pass over the pixels instead of three.
    return Confusion(tp, sum_p - tp, sum_g - tp)
