"""Sums per unit over the valid pixels: the statistics every region loss is built from.

With probabilities ``p`` and dense targets ``g`` (``[B, *spatial, C]``) and the
validity mask ``m`` (``[B, *spatial]``), a *unit* is (image ``b``, class ``c``)
when ``per_image=True`` and class ``c`` over the whole batch otherwise:

.. math::

   S = \\sum_{i} m_i\\, v_i \\quad \\text{per unit, for each per-pixel value } v
   \\ (\\text{e.g. } p g,\\ p,\\ g).

With ``axis_name`` (and ``per_image=False``) the sums are ``psum``-ed over the
mapped axis, so under ``shard_map``/``pmap`` every device sees the statistics
of the concatenated global batch.
"""

from __future__ import annotations

from collections.abc import Hashable

import jax
import jax.numpy as jnp


def sum_across(values, axis_name: Hashable | None):
    """Sums or counts (any pytree) added up over the mapped axis ``axis_name``.

    Every sum, count and mean a loss takes over the batch goes through here, so
    that under ``shard_map``/``pmap`` with ``axis_name`` it is the statistic of
    the concatenated global batch, the same on every device (and its gradient,
    transposed by JAX, reaches each device's own pixels). Without ``axis_name``
    the values are returned as they are.
    """
    return values if axis_name is None else jax.lax.psum(values, axis_name)


def max_across(values, axis_name: Hashable | None):
    """Maxima (any pytree) taken over the mapped axis ``axis_name`` as well: the
    maximum of the global batch, the same on every device (no gradient is meant to
    flow through it). Without ``axis_name`` the values are returned as they are."""
    return values if axis_name is None else jax.lax.pmax(values, axis_name)


def _sum_units(v: jax.Array, per_image: bool) -> jax.Array:
    """The sum of ``v`` over the pixel axes of each unit, in two stages.

    First over the leading pixel axes, with the last spatial axis and the class
    axis flattened into one wide minor axis, then over the last spatial axis.
    Same sum; XLA:CPU vectorises a reduction into a wide minor axis much better
    than one into a short class axis (see benchmarks/RESULTS.md), and the
    partial sums are more accurate.
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
    return sums if per_image else sum_across(sums, axis_name)
