"""Reductions: pixel-wise means over valid pixels, and class/unit selection for
region losses (``include_background``, ``classes``, ``class_weights``)."""

from __future__ import annotations

from collections.abc import Hashable

import jax
import jax.numpy as jnp

from segloss_jax._src import checks
from segloss_jax._src.stats import sum_across
from segloss_jax._src.types import AxisName


def safe_div(num: jax.Array, den: jax.Array, fallback: float = 0.0) -> jax.Array:
    """``num / den`` where ``den != 0``, else ``fallback``, with a zero (not NaN)
    gradient at ``den == 0`` (the double-``where`` pattern)."""
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1), fallback)


def safe_pow(base: jax.Array, gamma) -> jax.Array:
    """``base ** gamma`` for ``base >= 0``, with ``0 ** 0 = 1`` and a finite (zero)
    gradient at ``base = 0`` also for ``gamma < 1``."""
    positive = base > 0
    powered = jnp.where(positive, base, 1) ** gamma
    return jnp.where(positive, powered, jnp.where(jnp.asarray(gamma) == 0, 1.0, 0.0))


def weighted_terms(
    loss: jax.Array, valid: jax.Array, weights: jax.Array | None = None,
    normalize: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """The terms ``w_i·L_i`` of a pixel-wise loss (0 at invalid positions) and the
    denominator of their mean (a local count, not yet summed across devices).

    The one place where per-pixel weights act, for the pixel-wise losses and the
    pixel terms of the compounds alike.

    Args:
      loss: ``[B, *spatial]`` (one value per pixel) or ``[B, *spatial, C]`` (one per
        element, for sigmoid losses).
      valid: ``[B, *spatial]`` bool.
      weights: ``[B, *spatial]`` per-pixel weights, 0 at invalid pixels
        (:func:`~segloss_jax._src.inputs.pixel_weight_map`), or ``None`` (all 1).
      normalize: the denominator is ``Σ_valid w`` (each pixel's weight counted once
        per element) instead of the number of valid pixels/elements.
    """
    checks.check_bool("normalize_weights", normalize)
    per_element = loss.ndim != valid.ndim
    mask = valid[..., None] if per_element else valid
    if weights is not None:
        w = weights[..., None] if per_element else weights
        loss = loss * w
    loss = jnp.where(mask, loss, 0)
    counted = mask if weights is None or not normalize else w
    count = jnp.sum(jnp.broadcast_to(counted, loss.shape), dtype=loss.dtype)
    return loss, count


def reduce_pixels(
    loss: jax.Array, valid: jax.Array, reduction: str, axis_name: Hashable | None = None,
    *, weights: jax.Array | None = None, normalize: bool = False,
) -> jax.Array:
    """Reduces a pixel-wise loss over valid pixels (or valid elements).

    Args:
      loss: ``[B, *spatial]`` (one value per pixel) or ``[B, *spatial, C]`` (one per
        element, for sigmoid losses).
      valid: ``[B, *spatial]`` bool.
      reduction: ``"mean"`` over valid pixels/elements (0 when there is none),
        ``"sum"``, or ``"none"`` (the loss, 0 at invalid positions).
      axis_name: mapped axis over which the sum and the count are taken
        (:func:`~segloss_jax._src.stats.sum_across`): the global mean.
      weights, normalize: per-pixel weights and the denominator of the mean, as
        :func:`weighted_terms`.
    """
    loss, count = weighted_terms(loss, valid, weights, normalize)
    if reduction == "none":
        return loss
    total = jnp.sum(loss)
    if reduction == "sum":
        return sum_across(total, axis_name)
    total, count = sum_across((total, count), axis_name)
    return safe_div(total, count)


def kept_units(target_sum: jax.Array, *, include_background: bool, classes: str) -> jax.Array:
    """Bool mask (shape of ``target_sum``, ``[..., C]``) of the units that count.

    ``include_background=False`` drops channel 0 when ``C > 1`` (with ``C == 1`` the
    channel is the foreground); ``classes="present"`` keeps only units whose target
    has positive mass.
    """
    num_classes = target_sum.shape[-1]
    keep = jnp.ones(target_sum.shape, dtype=bool)
    if not include_background and num_classes > 1:
        keep = keep & jnp.broadcast_to(jnp.arange(num_classes) > 0, keep.shape)
    if classes == "present":
        keep = keep & (target_sum > 0)
    return keep


def reduce_units(
    loss: jax.Array,
    keep: jax.Array,
    *,
    reduction: str,
    class_weights: jax.Array | None = None,
    axis_name: AxisName = None,
) -> jax.Array:
    """Reduces a per-unit loss, ``[B, C]`` (per image) or ``[C]``.

    ``"none"`` returns every unit (0 where not kept); ``"sum"`` is ``Σ w_c L`` over
    kept units; ``"mean"`` is the weighted mean ``Σ w_c L / Σ w_c`` over the kept
    classes -- for ``[B, C]`` first within each image, then over the images that
    kept at least one class (0 when none did). With ``axis_name`` and a per-image
    loss, the mean over images is taken across the mapped axis too.
    """
    loss = jnp.where(keep, loss, 0)
    if reduction == "none":
        return loss
    weights = (
        jnp.ones_like(loss)
        if class_weights is None
        else jnp.broadcast_to(jnp.asarray(class_weights, loss.dtype), loss.shape)
    )
    weights = jnp.where(keep, weights, 0)
    if reduction == "sum":
        total = jnp.sum(weights * loss)
        return sum_across(total, axis_name) if loss.ndim == 2 else total
    per_unit_mean = safe_div(jnp.sum(weights * loss, -1), jnp.sum(weights, -1))
    if loss.ndim == 1:
        return per_unit_mean
    image_kept = jnp.any(keep, axis=-1)
    total = jnp.sum(jnp.where(image_kept, per_unit_mean, 0))
    count = jnp.sum(image_kept, dtype=loss.dtype)
    total, count = sum_across((total, count), axis_name)
    return safe_div(total, count)
