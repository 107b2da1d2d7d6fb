r"""Distance maps of masks, as the losses weighted by them compute them.

The pixel-wise :func:`~segloss_jax.distance_weighted_cross_entropy` and the
boundary losses (:mod:`segloss_jax._src.boundary`) share this machinery.

Data flow. A loss checks and prepares its inputs once (:func:`prepare_inputs`:
one activation, shared by the masks and the loss terms), then hands the
prepared arrays to compiled stages: masks (:func:`threshold_masks`: ``g > 0.5`` of the
target and, where a loss needs one, ``p > 0.5`` of the prediction: the strict
threshold of the conventions page) -> distance maps (:func:`maps`, one batched
exact transform of :mod:`segloss_jax._src.distance` over images and classes at
once, no Python loop over either) -> the loss's own terms. The maps carry no
gradient, so a loss weighted by them is a weighted pixel term whose weights
are constants for ``grad``. Called eagerly, each stage is one compiled program
(:func:`~segloss_jax._src.kernel.kernel`) and the maps' program depends only
on the mask shape, so changing a loss option does not recompile the transform;
under an outer ``jit`` the stages are inlined into one program.

Maps are computed on ``[..., B, C', *spatial]`` (spatial axes trailing, as
:func:`~segloss_jax._src.distance.batched_edt` wants), for the kept channels
``first:`` only; the class axis is moved there from channels-last.

Excluded pixels (``where``, ``ignore_index``) are "don't care" for the maps,
as positions outside the array are: they are neither foreground nor
background, so a distance is measured from a valid pixel to the nearest
*valid* pixel of the other side. A mask with no boundary among the valid
pixels (no valid foreground or no valid background) has no distance map: the
maps are 0 there, as MONAI's Hausdorff loss has it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from segloss_jax._src import backend, checks
from segloss_jax._src.distance import batched_edt
from segloss_jax._src.inputs import Inputs, prepare
from segloss_jax._src.kernel import kernel
from segloss_jax._src.sampling import Sampling, join_sampling, sampling_args
from segloss_jax._src.windows import contour, spatial_axes

__all__: list[str] = []


def prepare_inputs(
    logits, labels, *, activation, where, ignore_index, reduction, allowed, pixel_weights=None
) -> Inputs:
    """The one check-and-prepare of a loss call (the activation is computed on use, once)."""
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, allowed_activations=allowed,
                  pixel_weights=pixel_weights)
    checks.check_reduction(reduction)
    return inp


# --- stage 1: masks ----------------------------------------------------------------------


def channels_first(x: jax.Array) -> jax.Array:
    """``[B, *spatial, C]`` -> ``[B, C, *spatial]``."""
    return jnp.moveaxis(x, -1, 1)


def channels_last(x: jax.Array) -> jax.Array:
    """``[B, C, *spatial]`` -> ``[B, *spatial, C]``."""
    return jnp.moveaxis(x, 1, -1)


def kept(x: jax.Array, first: int) -> jax.Array:
    """``[B, *spatial, C]`` -> the kept channels, ``[B, C', *spatial]``."""
    return channels_first(x[..., first:])


def threshold_masks(inp: Inputs, first: int, kind: str):
    """Bool masks of the kept channels and the validity mask, of equal rank.

    ``kind``: ``"target"`` -> ``g > 0.5`` and ``"pred"`` -> ``p > 0.5``, both
    ``[B, C', *spatial]``; ``"pred_target"`` -> ``[p > 0.5, g > 0.5]`` and
    ``"target_complement"`` -> ``[g > 0.5, g <= 0.5]``, both ``[2, B, C', *spatial]``.
    Only ``"pred"`` and ``"pred_target"`` read the probabilities.
    """
    probs = inp.probs if kind.startswith("pred") else None
    return _threshold(inp.target, probs, inp.valid, first=first, kind=kind)


@kernel
def _threshold(target, probs, valid, *, first, kind):
    valid = valid[:, None]
    if kind == "pred":
        return kept(probs, first) > 0.5, valid
    fg = kept(target, first) > 0.5
    if kind == "target":
        return fg, valid
    if kind == "pred_target":
        return jnp.stack([kept(probs, first) > 0.5, fg]), valid[None]
    return jnp.stack([fg, ~fg]), valid[None]


# --- stage 2: distance maps --------------------------------------------------------------


def _edt(masks: jax.Array, *, spatial_ndim: int, sampling: Sampling) -> jax.Array:
    """:func:`~segloss_jax._src.distance.batched_edt` of the whole batch of masks, or
    ``lax.map`` over chunks of it where :func:`~segloss_jax._src.backend.edt_chunk`
    asks for them."""
    spatial = masks.shape[masks.ndim - spatial_ndim :]
    lead = masks.shape[: masks.ndim - spatial_ndim]
    count, size = math.prod(lead), math.prod(spatial)
    per_chunk = backend.edt_chunk(size)
    if per_chunk is None or count <= per_chunk:
        return batched_edt(masks, spatial_ndim=spatial_ndim, sampling=sampling)
    flat = masks.reshape((count, *spatial))
    pad = -count % per_chunk  # all-background masks: zeros, at no extra cost
    flat = jnp.pad(flat, [(0, pad)] + [(0, 0)] * spatial_ndim)
    chunks = flat.reshape((-1, per_chunk, *spatial))
    out = lax.map(lambda c: batched_edt(c, spatial_ndim=spatial_ndim, sampling=sampling), chunks)
    return out.reshape((-1, *spatial))[:count].reshape(masks.shape)


def _sides(masks: jax.Array, valid: jax.Array, spatial_ndim: int):
    """``(has valid foreground, has valid background)`` per mask, keeping dims."""
    axes = spatial_axes(masks.ndim, spatial_ndim)
    has_fg = jnp.any(masks & valid, axis=axes, keepdims=True)
    has_bg = jnp.any(~masks & valid, axis=axes, keepdims=True)
    return has_fg, has_bg


def _inside_outside(masks, valid, spatial_ndim, sampling):
    """Distances from each element to the nearest valid element of the other side.

    ``inside`` is ``edt(m ∨ X)`` (at a valid foreground element, the distance to
    the nearest valid background element), ``outside`` is ``edt(¬m ∨ X)``, with
    ``X`` the excluded pixels: both from one batched transform.
    """
    excluded = ~valid
    both = jnp.stack([masks | excluded, ~masks | excluded])
    dist = _edt(both, spatial_ndim=spatial_ndim, sampling=sampling)
    return dist[0], dist[1]


@kernel
def unsigned_map(masks, valid, traced_sampling, *, spatial_ndim, static_sampling, wide):
    """MONAI's distance field ``edt(m) + edt(¬m)``, 0 for a mask without boundary."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    inside, outside = _inside_outside(masks, valid, spatial_ndim, sampling)
    has_fg, has_bg = _sides(masks, valid, spatial_ndim)
    return jnp.where(has_fg & has_bg, inside + outside, 0)


@kernel
def signed_map(masks, valid, traced_sampling, *, spatial_ndim, static_sampling, wide):
    """:func:`~segloss_jax._src.distance.signed_distance` among the valid pixels."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    inside, outside = _inside_outside(masks, valid, spatial_ndim, sampling)
    spacing = jnp.asarray(1.0 if sampling is None else sampling, inside.dtype)
    delta = jnp.min(jnp.broadcast_to(spacing, (spatial_ndim,)))  # the finest grid step
    phi = jnp.where(masks, delta - inside, outside)
    has_fg, has_bg = _sides(masks, valid, spatial_ndim)
    return jnp.where(has_fg & has_bg, phi, 0)


@kernel
def penalty_map(
    regions, valid, max_distance, traced_sampling, *, spatial_ndim, static_sampling, wide
):
    """Φ of :func:`~segloss_jax.distance_weighted_cross_entropy` inside each region,
    0 elsewhere."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    depth = _edt(regions | ~valid, spatial_ndim=spatial_ndim, sampling=sampling)
    inside = regions & valid
    axes = spatial_axes(regions.ndim, spatial_ndim)
    has_fg, has_bg = _sides(regions, valid, spatial_ndim)
    d_min = jnp.min(jnp.where(inside, depth, jnp.inf), axis=axes, keepdims=True)
    d_min = jnp.where(has_fg, d_min, 0)
    d_max = jnp.max(jnp.where(inside, depth, 0), axis=axes, keepdims=True)
    below = depth - d_min
    if max_distance is None:
        span = d_max - d_min
        # Equal depths (a one-pixel-wide region): every pixel is boundary.
        phi = jnp.where(span > 0, 1 - below / jnp.where(span > 0, span, 1), 1)
    else:
        phi = jnp.clip(1 - below / jnp.asarray(max_distance, depth.dtype), 0, 1)
    return jnp.where(inside & has_bg, phi, 0)


# Contours (of the shape-aware loss) treat the image border and excluded pixels as
# "don't care".


@kernel
def contour_field(masks, valid, traced_sampling, *, spatial_ndim, static_sampling, wide):
    """Distance to the target contour of ``masks = g > 0.5``; 0 in a unit without one."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    target = contour(masks, spatial_ndim, valid=valid, border_outside=False)
    to_target = _edt(~target, spatial_ndim=spatial_ndim, sampling=sampling)
    has_contour = jnp.any(target, axis=spatial_axes(target.ndim, spatial_ndim), keepdims=True)
    return jnp.where(has_contour, to_target, 0)


def maps(stage, masks, valid, *args, inp: Inputs, sampling: Sampling):
    """Runs a map stage on masks from :func:`threshold_masks`.

    The result carries no gradient: it is computed from bool masks, through the
    transform's ``stop_gradient``. Float64 inputs get float64 maps: here ``wide``
    follows the loss's compute dtype, not :func:`~segloss_jax._src.sampling.sampling_args`'s
    rule (a float64 spacing), so that the maps match the probabilities they weight.
    """
    return stage(masks, valid, *args, spatial_ndim=inp.x.ndim - 2,
                 **{**sampling_args(sampling), "wide": inp.dtype == jnp.float64})


# --- the target's maps: in the graph, or ahead of time ----------------------------------


# The stage computing the target's map of each loss that weights with one.
_TARGET_STAGES = {"hausdorff_dt": unsigned_map, "boundary": signed_map,
                  "shape_aware": contour_field}


def target_field(inp: Inputs, loss: str, target_distance, *, first: int, sampling: Sampling,
                 max_distance=None) -> jax.Array:
    """The target's map that ``loss`` weights with, ``[B, C', *spatial]``.

    ``loss``: ``"hausdorff_dt"``, ``"boundary"``, ``"shape_aware"`` or
    ``"distance_weighted_cross_entropy"``. ``target_distance`` (channels last,
    from :func:`~segloss_jax.target_distance_map`) is used when given, so a
    training step pays only for the prediction's maps.
    """
    if target_distance is not None:
        checks.check_distance_map("target_distance", target_distance, tuple(inp.x.shape))
        given = jnp.asarray(target_distance).astype(inp.dtype)
        return kept(lax.stop_gradient(given), first)
    if loss == "distance_weighted_cross_entropy":
        # Sigmoid: Φ of each channel's mask and of its complement (disjoint supports).
        kind = "target" if inp.activation == "softmax" else "target_complement"
        regions, valid = threshold_masks(inp, first, kind)
        phi = maps(penalty_map, regions, valid, max_distance, inp=inp, sampling=sampling)
        return phi if phi.ndim == inp.x.ndim else phi[0] + phi[1]
    target, valid = threshold_masks(inp, first, "target")
    return maps(_TARGET_STAGES[loss], target, valid, inp=inp, sampling=sampling)
