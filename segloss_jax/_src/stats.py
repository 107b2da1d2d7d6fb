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


def _sum_units(v: jax.Array, per_image: bool) -> jax.Array:
    """``jnp.sum(v, reduce_axes(v.ndim, per_image))``, in two stages.

    First over the leading pixel axes, with the last spatial axis and the class
    axis flattened into one wide minor axis, then over the last spatial axis.
    Same sum; XLA:CPU vectorises a reduction into a wide minor axis much better
    than one into a short class axis (measured about 2x faster fwd+bwd for a
    Dice loss at ``[8, 256, 256, 4]``), and the partial sums are more accurate.
    """
    width, num_classes = v.shape[-2], v.shape[-1]
    if per_image:
        partial = jnp.sum(v.reshape(v.shape[0], -1, width * num_classes), axis=1)
        return jnp.sum(partial.reshape(v.shape[0], width, num_classes), axis=1)
    # The batch axis stays its own axis: merging it would break a sharded batch
    # under explicit-axes meshes.
    partial = jnp.sum(v.reshape(v.shape[0], -1, width * num_classes), axis=(0, 1))
    return jnp.sum(partial.reshape(width, num_classes), axis=0)


def unit_sums(
    *values: jax.Array, valid: jax.Array, per_image: bool, axis_name: str | None = None
) -> tuple[jax.Array, ...]:
    """Sums each ``[B, *spatial, C]`` value over the valid pixels of every unit.

    Returns arrays of shape ``[B, C]`` (``per_image``) or ``[C]``. Invalid pixels are
    selected away (not multiplied by zero), so non-finite values there cannot
    leak into the sums or their gradients.
    """
    mask = valid[..., None]
    sums = tuple(_sum_units(jnp.where(mask, v, 0), per_image) for v in values)
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
