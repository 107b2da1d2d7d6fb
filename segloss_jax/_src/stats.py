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


def unit_sums(
    *values: jax.Array, valid: jax.Array, per_image: bool, axis_name: Hashable | None = None
) -> tuple[jax.Array, ...]:
    """Sums each ``[B, *spatial, C]`` value over the valid pixels of every unit.

    Returns arrays of shape ``[B, C]`` (``per_image``) or ``[C]``. Invalid pixels are
    selected away (not multiplied by zero), so non-finite values there cannot
    leak into the sums or their gradients.
    """
    mask = valid[..., None]
    pixel_axes = tuple(range(1 if per_image else 0, valid.ndim))
    sums = tuple(jnp.sum(jnp.where(mask, v, 0), axis=pixel_axes) for v in values)
    return sums if per_image else sum_across(sums, axis_name)
