r"""Boundary losses: pixel terms weighted by distances to the target or predicted boundary.

Data flow. A loss checks and prepares its inputs once
(:func:`~segloss_jax._src.inputs.prepare`: one activation, shared by the
masks and the loss terms), then hands the prepared arrays to compiled stages:
masks (``g > 0.5`` of the target and, where a loss needs one, ``p > 0.5`` of
the prediction: the strict threshold of the conventions page) -> distance maps (one
batched exact transform of :mod:`segloss_jax._src.distance` over images and
classes at once, no Python loop over either) -> the per-unit loss (the
cross-entropies weight :mod:`~segloss_jax._src.pixelwise`'s terms instead).
The maps carry no gradient, so every loss here is a weighted pixel term whose
weights are constants for ``grad``. Called eagerly, each stage is one
compiled program and the maps' program depends only on the mask shape, so
changing a loss option does not recompile the transform; under an outer
``jit`` the stages are inlined into one program.

Keywords shared by the losses here (beyond :doc:`/conventions`):

* ``where``/``ignore_index``: excluded pixels are "don't care" for the
  distance maps, as positions outside the array are: they are neither
  foreground nor background, so a distance is measured from a valid pixel to
  the nearest *valid* pixel of the other side, and an excluded band around an
  object (e.g. the 255-labelled outlines of PASCAL VOC) is not mistaken for
  its boundary. Nothing computed here depends on the labels or logits at
  excluded pixels, and they contribute nothing to any sum or mean.
* ``sampling``: the voxel spacing, one float for all axes or one per spatial
  axis; distances are in its units. Python and NumPy values are checked when
  the loss is traced, JAX arrays may be traced (no recompilation per value).
* ``class_weights``: ``[C]`` non-negative weights (a list, tuple or array).
* ``target_distance``: the target's map computed ahead by
  :func:`target_distance_map` (``[B, *spatial, C]``, same keywords), e.g. in the
  data pipeline; the loss then computes only the prediction's map, if any. The
  value is the same as without it.

A mask with no boundary among the valid pixels (no valid foreground or no
valid background) has no distance map: the losses use 0 there, as MONAI does
for the Hausdorff loss.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax import lax

from segloss_jax._src import checks
from segloss_jax._src.distance import batched_edt
from segloss_jax._src.inputs import Inputs, prepare
from segloss_jax._src.pixelwise import binary_ce, categorical_ce
from segloss_jax._src.reduce import kept_units, reduce_pixels, reduce_units, safe_div
from segloss_jax._src.registry import loss_name, register
from segloss_jax._src.sampling import Sampling, join_sampling, split_sampling
from segloss_jax._src.stats import sum_across
from segloss_jax._src.types import ACTIVATIONS, AnyActivation, LogitActivation, activations_of
from segloss_jax._src.windows import contour, spatial_axes

__all__ = [
    "target_distance_map",
    "hausdorff_dt_loss",
    "boundary_loss",
    "shape_aware_loss",
    "distance_weighted_cross_entropy",
]

_CE_ACTIVATIONS = activations_of(LogitActivation)


def _kernel(fn):
    """Compiles a stage as one program; its keyword-only parameters are static.

    Run eagerly op by op, a loss around the distance transform compiles dozens
    of small programs on its first call, several times slower than one program
    per stage (see benchmarks/RESULTS.md); under an outer ``jit`` this is
    simply inlined.
    """
    params = inspect.signature(fn).parameters.values()
    return jax.jit(fn, static_argnames=[p.name for p in params if p.kind is p.KEYWORD_ONLY])


def _prepare(
    logits, labels, *, activation, where, ignore_index, reduction, allowed, fused=False
) -> Inputs:
    """The one check-and-prepare of a loss call (the activation is computed on use, once).

    ``fused``: the loss reads several activation fields (e.g. the probabilities
    for a mask and the log-partition for a cross-entropy), which then share one ``exp``.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, allowed_activations=allowed, fused=fused)
    checks.check_reduction(reduction)
    return inp


def _first_kept(num_classes: int, include_background: bool) -> int:
    """Index of the first channel that counts (channel 0 is dropped only when C > 1)."""
    return 0 if include_background or num_classes == 1 else 1


# --- stage 1: masks ----------------------------------------------------------------------
# Maps are computed on [..., B, C, *spatial] (spatial axes trailing, as batched_edt
# wants); the class axis is moved there from channels-last.


def _channels_first(x: jax.Array) -> jax.Array:
    """``[B, *spatial, C]`` -> ``[B, C, *spatial]``."""
    return jnp.moveaxis(x, -1, 1)


def _channels_last(x: jax.Array) -> jax.Array:
    """``[B, C, *spatial]`` -> ``[B, *spatial, C]``."""
    return jnp.moveaxis(x, 1, -1)


def _kept(x: jax.Array, first: int) -> jax.Array:
    """``[B, *spatial, C]`` -> the kept channels, ``[B, C', *spatial]``."""
    return _channels_first(x[..., first:])


def _masks(inp: Inputs, first: int, kind: str):
    """Bool masks of the kept channels and the validity mask, of equal rank.

    ``kind``: ``"target"`` -> ``g > 0.5`` and ``"pred"`` -> ``p > 0.5``, both
    ``[B, C', *spatial]``; ``"pred_target"`` -> ``[p > 0.5, g > 0.5]`` and
    ``"target_complement"`` -> ``[g > 0.5, g <= 0.5]``, both ``[2, B, C', *spatial]``.
    Only ``"pred"`` and ``"pred_target"`` read the probabilities.
    """
    probs = inp.probs if kind.startswith("pred") else None
    return _threshold(inp.target, probs, inp.valid, first=first, kind=kind)


@_kernel
def _threshold(target, probs, valid, *, first, kind):
    valid = valid[:, None]
    if kind == "pred":
        return _kept(probs, first) > 0.5, valid
    fg = _kept(target, first) > 0.5
    if kind == "target":
        return fg, valid
    if kind == "pred_target":
        return jnp.stack([_kept(probs, first) > 0.5, fg]), valid[None]
    return jnp.stack([fg, ~fg]), valid[None]


# --- stage 2: distance maps --------------------------------------------------------------


# Elements per chunk of masks on CPU: about 4 MB of float32, which stays in cache.
_CPU_CHUNK = 1 << 20


def _edt(masks: jax.Array, *, spatial_ndim: int, sampling: Sampling) -> jax.Array:
    """:func:`~segloss_jax._src.distance.batched_edt`, in cache-sized chunks on CPU.

    Each step of the transform streams the whole batch through memory, so a
    large batch of masks is memory-bound on CPU; ``lax.map`` over chunks of
    about 2²⁰ elements keeps the working set in cache (faster on large
    batches: see benchmarks/RESULTS.md). Other backends get the whole batch at
    once, which they parallelise.
    """
    spatial = masks.shape[masks.ndim - spatial_ndim :]
    lead = masks.shape[: masks.ndim - spatial_ndim]
    count, size = math.prod(lead), math.prod(spatial)
    per_chunk = max(1, _CPU_CHUNK // size)
    if jax.default_backend() != "cpu" or count <= per_chunk:
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


@_kernel
def _unsigned_map(masks, valid, traced_sampling, *, spatial_ndim, static_sampling, wide):
    """MONAI's distance field ``edt(m) + edt(¬m)``, 0 for a mask without boundary."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    inside, outside = _inside_outside(masks, valid, spatial_ndim, sampling)
    has_fg, has_bg = _sides(masks, valid, spatial_ndim)
    return jnp.where(has_fg & has_bg, inside + outside, 0)


@_kernel
def _signed_map(masks, valid, traced_sampling, *, spatial_ndim, static_sampling, wide):
    """:func:`~segloss_jax._src.distance.signed_distance` among the valid pixels."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    inside, outside = _inside_outside(masks, valid, spatial_ndim, sampling)
    spacing = jnp.asarray(1.0 if sampling is None else sampling, inside.dtype)
    delta = jnp.min(jnp.broadcast_to(spacing, (spatial_ndim,)))  # the finest grid step
    phi = jnp.where(masks, delta - inside, outside)
    has_fg, has_bg = _sides(masks, valid, spatial_ndim)
    return jnp.where(has_fg & has_bg, phi, 0)


@_kernel
def _penalty_map(
    regions, valid, max_distance, traced_sampling, *, spatial_ndim, static_sampling, wide
):
    """Φ of :func:`distance_weighted_cross_entropy` inside each region, 0 elsewhere."""
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


# Contours (of shape_aware_loss) treat the image border and excluded pixels as "don't care".


@_kernel
def _contour_field(masks, valid, traced_sampling, *, spatial_ndim, static_sampling, wide):
    """Distance to the target contour of ``masks = g > 0.5``; 0 in a unit without one."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    target = contour(masks, spatial_ndim, valid=valid, border_outside=False)
    to_target = _edt(~target, spatial_ndim=spatial_ndim, sampling=sampling)
    has_contour = jnp.any(target, axis=spatial_axes(target.ndim, spatial_ndim), keepdims=True)
    return jnp.where(has_contour, to_target, 0)


@_kernel
def _contour_mean(pred_masks, valid, field, *, spatial_ndim):
    """``E`` of :func:`shape_aware_loss`, ``[B, C]``: the mean of the target's contour
    ``field`` over the predicted contour (0 when that is empty)."""
    pred = contour(pred_masks, spatial_ndim, valid=valid, border_outside=False)
    axes = spatial_axes(pred.ndim, spatial_ndim)
    total = jnp.sum(jnp.where(pred, field, 0), axis=axes)
    return safe_div(total, jnp.sum(pred, axis=axes, dtype=total.dtype))


def _maps(stage, masks, valid, *args, inp: Inputs, sampling: Sampling):
    """Runs a map stage on masks from :func:`_masks`.

    The result carries no gradient: it is computed from bool masks, through the
    transform's ``stop_gradient``. Float64 inputs get float64 maps.
    """
    static, traced = split_sampling(sampling)
    return stage(masks, valid, *args, traced, spatial_ndim=inp.x.ndim - 2,
                 static_sampling=static, wide=inp.dtype == jnp.float64)


# --- the target's maps: in the graph, or ahead of time ----------------------------------


def _target_field(inp: Inputs, loss: str, target_distance, *, first: int, sampling: Sampling,
                  max_distance=None) -> jax.Array:
    """The target's map that ``loss`` weights with, ``[B, C', *spatial]``.

    ``target_distance`` (channels last, from :func:`target_distance_map`) is used
    when given, so a training step pays only for the prediction's maps.
    """
    if target_distance is not None:
        checks.check_distance_map("target_distance", target_distance, tuple(inp.x.shape))
        given = jnp.asarray(target_distance).astype(inp.dtype)
        return _kept(lax.stop_gradient(given), first)
    if loss == "distance_weighted_cross_entropy":
        # Sigmoid: Φ of each channel's mask and of its complement (disjoint supports).
        kind = "target" if inp.activation == "softmax" else "target_complement"
        masks, valid = _masks(inp, first, kind)
        phi = _maps(_penalty_map, masks, valid, max_distance, inp=inp, sampling=sampling)
        return phi if phi.ndim == inp.x.ndim else phi[0] + phi[1]
    stage = {"hausdorff_dt": _unsigned_map, "boundary": _signed_map,
             "shape_aware": _contour_field}[loss]
    masks, valid = _masks(inp, first, "target")
    return _maps(stage, masks, valid, inp=inp, sampling=sampling)


_MAPPED_LOSSES = ("hausdorff_dt", "boundary", "shape_aware", "distance_weighted_cross_entropy")


def target_distance_map(
    loss: str | Callable,
    labels: chex.Array,
    *,
    num_classes: int | None = None,
    activation: AnyActivation = "softmax",
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    sampling: Sampling = None,
    max_distance: float | None = None,
    dtype=jnp.float32,
) -> jax.Array:
    r"""The target's distance map of a boundary loss, computed ahead of the training step.

    Each boundary loss computes a map of the target (the labels) and one of the
    prediction. The target's map depends only on the labels, so it can be
    computed once, in the data pipeline, and passed to the loss as
    ``target_distance=``; the loss then computes only the prediction's map
    (``hausdorff_dt_loss``, ``shape_aware_loss``) or none at all
    (``boundary_loss``, ``distance_weighted_cross_entropy``). The value is the
    one the loss computes in its own graph for the same keywords:

    * ``hausdorff_dt``: the unsigned field :math:`d_m = \mathrm{edt}(m) + \mathrm{edt}(\lnot m)`;
    * ``boundary``: the signed distance :math:`\phi_G`;
    * ``shape_aware``: the distance to the target contour (0 in a unit without one);
    * ``distance_weighted_cross_entropy``: the penalty :math:`\Phi` (with
      ``activation="sigmoid"``, that of the mask plus that of its complement).

    Every channel is returned; a loss that drops the background ignores channel 0.
    Pass the loss the same ``where``, ``ignore_index``, ``sampling`` and
    ``max_distance`` (excluded pixels are "don't care" for the maps).

    Args:
      loss: the loss, as a function or a registry name: ``"hausdorff_dt"``,
        ``"boundary"``, ``"shape_aware"`` or ``"distance_weighted_cross_entropy"``.
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      num_classes: ``C``; required with integer labels (``1`` for a binary mask).
      activation: the loss's activation (it decides the regions of
        ``distance_weighted_cross_entropy`` and which class counts for ``C == 1``).
      where, ignore_index, sampling, max_distance: as for the loss.
      dtype: of the maps (float32; float64 for a float64 loss).

    Returns:
      ``[B, *spatial, C]``, channels last like the logits.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1, 1, 0]])
      >>> phi = sl.target_distance_map("boundary", labels, num_classes=2)
      >>> print(phi[0, :, 1])
      [ 2.  1.  0. -1.  0.  1.]
      >>> p = jnp.array([[0.1, 0.6, 0.8, 0.9, 0.4, 0.2]])
      >>> logits = jnp.log(jnp.stack([1 - p, p], axis=-1))
      >>> print(f"{sl.boundary_loss(logits, labels, target_distance=phi):.4f}")
      0.0167
    """
    name = loss if isinstance(loss, str) else loss_name(loss)
    checks.check_choice("loss", name, _MAPPED_LOSSES)
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        num_classes = labels.shape[-1] if num_classes is None else num_classes
        pixel_shape = labels.shape[:-1]
    elif num_classes is None:
        raise ValueError(
            "`num_classes` is required with integer labels, e.g. "
            "`target_distance_map(loss, labels, num_classes=logits.shape[-1])`.")
    else:
        pixel_shape = labels.shape
    allowed = _CE_ACTIVATIONS if name in ("shape_aware", "distance_weighted_cross_entropy") \
        else ACTIVATIONS
    # The logits only give the shape: the maps never read them.
    inp = prepare(jnp.zeros((*pixel_shape, num_classes), dtype), labels, activation=activation,
                  where=where, ignore_index=ignore_index, allowed_activations=allowed)
    if max_distance is not None:
        checks.check_positive("max_distance", max_distance)
    return _channels_last(_target_field(inp, name, None, first=0, sampling=sampling,
                                        max_distance=max_distance))


# --- stage 3: the losses -----------------------------------------------------------------


class _Units(NamedTuple):
    """Static options of a per-unit (image, class) loss."""

    first: int
    include_background: bool
    per_image: bool
    axis_name: str | None
    reduction: str


def _reduce_units(values, valid, class_weights, units: _Units) -> jax.Array:
    """Mean of ``[B, C', *spatial]`` values over the valid pixels of each unit, then
    the reduction over units (see the conventions page), a dropped background put back
    as 0."""
    axes = tuple(range(2, values.ndim))
    valid = valid[:, None]
    total = jnp.sum(jnp.where(valid, values, 0), axis=axes)
    count = jnp.sum(valid, axis=axes, dtype=values.dtype)  # [B, 1]
    if not units.per_image:
        total, count = jnp.sum(total, axis=0), jnp.sum(count, axis=0)
        total, count = sum_across((total, count), units.axis_name)
    loss = safe_div(total, count)
    if units.first:
        loss = jnp.concatenate([jnp.zeros_like(loss[..., :1]), loss], axis=-1)
    keep = kept_units(jnp.ones(loss.shape, loss.dtype),
                      include_background=units.include_background, classes="all")
    return reduce_units(loss, keep, reduction=units.reduction, class_weights=class_weights,
                        axis_name=units.axis_name)


@_kernel
def _hausdorff_units(probs, target, valid, fields, alpha, class_weights, *, units):
    weight = jnp.power(fields[0], alpha) + jnp.power(fields[1], alpha)
    error = jnp.square(_kept(probs, units.first) - _kept(target, units.first))
    return _reduce_units(error * weight, valid, class_weights, units)


@_kernel
def _boundary_units(probs, valid, phi, class_weights, *, units):
    return _reduce_units(phi * _kept(probs, units.first), valid, class_weights, units)


def _weighted_ce(inp: Inputs, term: jax.Array, class_weights, reduction: str,
                 axis_name: Hashable | None) -> jax.Array:
    """Cross-entropy weighted by ``w_c (1 + term)``, reduced over valid pixels.

    ``class_weights`` is ``[1, ..., 1, C]`` (:meth:`~segloss_jax._src.inputs.Inputs.per_class`).

    ``term`` is one value per unit (``[B, C]``) or per element (``[B, C, *spatial]``).
    Softmax: ``-Σ_c W_c g_c log p_c`` per pixel; sigmoid:
    ``W`` times the binary cross-entropy, per element.
    """
    if term.ndim == 2:
        term = term.reshape(term.shape[:1] + (1,) * (inp.x.ndim - 2) + term.shape[1:])
    else:
        term = _channels_last(term)
    weights = (1 + term.astype(inp.dtype)) * class_weights
    if inp.activation == "softmax":
        loss = categorical_ce(inp, weights * inp.target)
    else:
        loss = weights * binary_ce(inp)
    return reduce_pixels(loss, inp.valid, reduction, axis_name)


# --- public losses -----------------------------------------------------------------------

@register()
def hausdorff_dt_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    alpha: float = 2.0,
    activation: AnyActivation = "softmax",
    include_background: bool = False,
    per_image: bool = True,
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    sampling: Sampling = None,
    target_distance: chex.Array | None = None,
    axis_name: str | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Hausdorff distance loss from distance transforms (Karimi & Salcudean).

    .. math::

       L_{b,c} = \frac{1}{|V_b|} \sum_{i \in V_b} (p_i - g_i)^2
                 \left( d_{\hat m}(i)^{\alpha} + d_{m}(i)^{\alpha} \right),
       \qquad d_m = \mathrm{edt}(m) + \mathrm{edt}(\lnot m)

    per unit (image :math:`b`, class :math:`c`), with :math:`p`, :math:`g` the
    probabilities and targets of the class, :math:`V_b` the valid pixels of the
    image, :math:`m = g > 0.5` the target mask and :math:`\hat m = p > 0.5` the
    predicted one. :math:`d_m(i)` is the distance from pixel :math:`i` to the
    nearest pixel on the other side of :math:`m`'s boundary (so at least one
    grid step), in units of ``sampling``. A mask with no boundary (all empty or
    all full over the valid pixels) has :math:`d_m = 0` (MONAI's convention).
    The maps carry no gradient: the gradient is that of the weighted squared
    error, and :math:`\hat m` only changes where some :math:`p` crosses 0.5.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets;
        the target mask is ``g > 0.5``.
      alpha: exponent :math:`\alpha \ge 0` of the distances.
      include_background: keep channel 0 (default ``False``, as MONAI; with
        ``C == 1`` the channel is the foreground and always kept).
      per_image: one unit per (image, class) (default, MONAI ``batch=False``);
        ``False`` averages each class over all valid pixels of the batch
        (MONAI ``batch=True``; the maps are still per image).
      axis_name: with ``per_image=False``, sums are ``psum``-ed over this mapped
        axis; with ``per_image=True``, the mean over images is.
      activation, class_weights, where, ignore_index, sampling, target_distance, reduction: as
        for every boundary loss (:doc:`/conventions`; excluded pixels count for
        nothing in the mean and are "don't care" for the maps).

    Returns:
      A scalar; ``reduction="none"`` gives ``[B, C]`` (``per_image``) or ``[C]``,
      0 for a dropped background. Float32 (float64 for float64 inputs).

    Matches MONAI ``HausdorffDTLoss(alpha=α, include_background=...,
    to_onehot_y=True, softmax=True, batch=not per_image, reduction=...)``
    (``sigmoid=True`` for ``activation="sigmoid"``, neither for ``None``) when
    ``where``, ``ignore_index``, ``class_weights`` and ``sampling`` are unset;
    MONAI's ``reduction="none"`` is ``[B, C', 1, 1]`` over the kept channels only.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1, 1, 0]])  # [B=1, W=6]
      >>> p = jnp.array([[0.1, 0.6, 0.8, 0.9, 0.4, 0.2]])  # foreground probability
      >>> logits = jnp.log(jnp.stack([1 - p, p], axis=-1))
      >>> print(f"{sl.hausdorff_dt_loss(logits, labels):.4f}")
      0.3233

    References:
      Karimi & Salcudean, `Reducing the Hausdorff distance in medical image
      segmentation with convolutional neural networks
      <https://arxiv.org/abs/1904.10030>`_, IEEE TMI 2020.
    """
    inp = _prepare(logits, labels, activation=activation, where=where,
                   ignore_index=ignore_index, reduction=reduction, allowed=ACTIVATIONS)
    weights = inp.per_class(class_weights).reshape(-1)
    checks.check_nonnegative("alpha", alpha)
    units = _Units(_first_kept(inp.num_classes, include_background), include_background,
                   per_image, axis_name, reduction)
    if target_distance is None:  # one transform for both masks: [2, B, C', *spatial]
        masks, valid = _masks(inp, units.first, "pred_target")
        fields = _maps(_unsigned_map, masks, valid, inp=inp, sampling=sampling)
    else:
        masks, valid = _masks(inp, units.first, "pred")
        fields = (_maps(_unsigned_map, masks, valid, inp=inp, sampling=sampling),
                  _target_field(inp, "hausdorff_dt", target_distance, first=units.first,
                                sampling=sampling))
    return _hausdorff_units(inp.probs, inp.target, inp.valid, fields, alpha, weights,
                            units=units)


@register()
def boundary_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    activation: AnyActivation = "softmax",
    include_background: bool = False,
    per_image: bool = True,
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    sampling: Sampling = None,
    target_distance: chex.Array | None = None,
    axis_name: str | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Boundary (surface) loss of Kervadec et al.: probabilities against the signed distance.

    .. math::

       L_{b,c} = \frac{1}{|V_b|} \sum_{i \in V_b} \phi_G(i)\, p_i,
       \qquad \phi_G(i) = \begin{cases}
           D_{\bar m}(i) & i \notin m \\ -\big(D_m(i) - \delta\big) & i \in m
       \end{cases}

    per unit (image :math:`b`, class :math:`c`), with :math:`m = g > 0.5` the
    target mask, :math:`D_m` the distance to the nearest valid pixel outside
    :math:`m` (``edt``), :math:`D_{\bar m}` to the nearest valid pixel of
    :math:`m`, and :math:`\delta` the smallest spacing: :math:`\phi_G` is
    :func:`~segloss_jax.signed_distance` (negative inside, 0 on the inner
    boundary, positive outside). A mask without boundary (all empty or all full
    over the valid pixels) has :math:`\phi_G = 0`. The loss is linear in
    :math:`p`; it is minimised (negative) by :math:`p = m` and is meant to be
    added to a region loss (Kervadec et al. use Dice/GDL :math:`+\ \lambda L_B`
    with :math:`\lambda` increased during training).

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      include_background: keep channel 0. Default ``False``: Kervadec et al.'s
        reference code applies the loss to the foreground classes only
        (``idc=[1]`` for binary problems).
      per_image: units per (image, class) (default) or per class over the batch;
        without ``where``/``ignore_index`` both give the same ``"mean"``.
      activation, class_weights, where, ignore_index, sampling, target_distance: as
        for :func:`hausdorff_dt_loss`.
      axis_name, reduction: as for :func:`hausdorff_dt_loss`.

    Returns:
      A scalar; ``reduction="none"`` gives ``[B, C]`` (``per_image``) or ``[C]``,
      0 for a dropped background. Float32 (float64 for float64 inputs).

    Matches the reference ``SurfaceLoss(idc=[1, …, C-1])`` on softmax
    probabilities with ``one_hot2dist`` maps (Kervadec et al.'s code,
    ``boundary-loss`` repository) for unit spacing and no exclusions; on a full
    mask their map is scipy's distance to an arbitrary outside point, here 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1, 1, 0]])  # phi_G = [2, 1, 0, -1, 0, 1]
      >>> p = jnp.array([[0.1, 0.6, 0.8, 0.9, 0.4, 0.2]])
      >>> logits = jnp.log(jnp.stack([1 - p, p], axis=-1))
      >>> print(f"{sl.boundary_loss(logits, labels):.4f}")
      0.0167

    References:
      Kervadec, Bouchtiba, Desrosiers, Granger, Dolz & Ben Ayed, `Boundary loss
      for highly unbalanced segmentation <https://doi.org/10.1016/j.media.2020.101851>`_,
      MIDL 2019; Medical Image Analysis 2021.
    """
    inp = _prepare(logits, labels, activation=activation, where=where,
                   ignore_index=ignore_index, reduction=reduction, allowed=ACTIVATIONS)
    weights = inp.per_class(class_weights).reshape(-1)
    units = _Units(_first_kept(inp.num_classes, include_background), include_background,
                   per_image, axis_name, reduction)
    phi = _target_field(inp, "boundary", target_distance, first=units.first, sampling=sampling)
    return _boundary_units(inp.probs, inp.valid, phi, weights, units=units)


@register()
def shape_aware_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    activation: LogitActivation = "softmax",
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    sampling: Sampling = None,
    target_distance: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Shape-aware loss: cross-entropy weighted by the predicted-to-target contour distance.

    .. math::

       \ell_i = -\sum_c w_c\, (1 + E_{b,c})\, g_{i,c} \log p_{i,c},
       \qquad E_{b,c} = \frac{1}{|\hat C_{b,c}|} \sum_{x \in \hat C_{b,c}}
                        d\big(x, C_{b,c}\big)

    (softmax; with ``"sigmoid"`` each element's binary cross-entropy is
    weighted by :math:`w_c (1 + E_{b,c})`). :math:`E_{b,c}` is Jadon's
    :math:`E = D(\hat C, C_{GT})`: the average Euclidean distance (in units of
    ``sampling``) from the points of the predicted contour :math:`\hat C` of
    class :math:`c` in image :math:`b` to the nearest point of the target
    contour :math:`C`, one constant per unit (no gradient). This is Jadon's
    :math:`L = -\sum_i CE - \sum_i E_i\, CE` with the cross-entropy written
    non-negative: CE everywhere, plus CE scaled by how far the predicted
    outline lies from the true one. Hayder et al. compute :math:`E` per object
    instance; here a unit is (image, class), the semantic-segmentation reading
    of the survey, and every class counts (it is a cross-entropy, so there is
    no ``include_background``).

    Contours: the target mask is :math:`g > 0.5`, the predicted one
    :math:`p > 0.5`; a contour is the mask pixels with a face neighbour
    (4-connectivity in 2D, 6 in 3D) that is valid and outside the mask.
    Neighbours outside the array or excluded do not make a contour, so a mask
    covering every valid pixel has none. A unit whose predicted or target
    contour is empty has :math:`E = 0` (plain cross-entropy).

    Args:
      logits: ``[B, *spatial, C]`` logits.
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      activation: ``"softmax"`` (default, ``C >= 2``) or ``"sigmoid"``.
      class_weights, where, ignore_index, sampling, target_distance: as for
        :func:`hausdorff_dt_loss`; :math:`w_c` are the class weights.
      axis_name: mapped axis over which the mean's sum and count are taken
        (the global mean under ``shard_map``, :doc:`/conventions`).
      reduction: ``"mean"`` over valid pixels (softmax) or elements (sigmoid),
        ``"sum"`` or ``"none"`` (``[B, *spatial]`` softmax, ``[B, *spatial, C]``
        sigmoid), as for :func:`~segloss_jax.cross_entropy`.

    Returns:
      A scalar, or the per-pixel/per-element loss for ``reduction="none"``.

    With a perfect prediction :math:`E = 0` and the loss is
    :func:`~segloss_jax.cross_entropy` (or :func:`~segloss_jax.binary_cross_entropy`).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1, 1, 0]])
      >>> p = jnp.array([[0.1, 0.6, 0.8, 0.9, 0.4, 0.2]])
      >>> logits = jnp.log(jnp.stack([1 - p, p], axis=-1))
      >>> print(f"{sl.shape_aware_loss(logits, labels):.4f}")
      0.8299

    References:
      Hayder, He & Salzmann, `Boundary-aware instance segmentation
      <https://arxiv.org/abs/1612.03129>`_, CVPR 2017 (the shape-aware loss);
      Jadon, `A survey of loss functions for semantic segmentation
      <https://arxiv.org/abs/2006.14822>`_, CIBCB 2020 (§ "Shape-aware loss",
      the formulation implemented here).
    """
    inp = _prepare(logits, labels, activation=activation, where=where,
                   ignore_index=ignore_index, reduction=reduction, allowed=_CE_ACTIVATIONS,
                   fused=True)  # the probabilities (mask) and the cross-entropy
    weights = inp.per_class(class_weights)
    field = _target_field(inp, "shape_aware", target_distance, first=0, sampling=sampling)
    masks, valid = _masks(inp, 0, "pred")
    shape_term = _contour_mean(masks, valid, field, spatial_ndim=inp.x.ndim - 2)
    return _weighted_ce(inp, shape_term, weights, reduction, axis_name)


@register()
def distance_weighted_cross_entropy(
    logits: chex.Array,
    labels: chex.Array,
    *,
    max_distance: float | None = None,
    activation: LogitActivation = "softmax",
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    sampling: Sampling = None,
    target_distance: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Cross-entropy weighted by ``1 + Φ``, Φ an inverted distance map of the target.

    .. math::

       \ell_i = -\sum_c w_c\, \big(1 + \Phi_c(i)\big)\, g_{i,c} \log p_{i,c},
       \qquad \Phi_c(i) = 1 - \frac{D_c(i) - D_c^{\min}}{D_c^{\max} - D_c^{\min}}
       \quad (i \in R_c)

    (softmax; with ``"sigmoid"`` each element's binary cross-entropy is
    weighted by :math:`w_c (1 + \Phi_c(i))`). :math:`R_c` is a region of the
    target and :math:`D_c(i)` the distance from pixel :math:`i` of the region to
    the nearest valid pixel outside it (``edt``, units of ``sampling``);
    :math:`D_c^{\min}, D_c^{\max}` are its extremes over the region in the
    image. So :math:`\Phi` is 1 on the region's innermost boundary layer and
    falls linearly to 0 at its deepest pixel: the weight is 2 at the boundaries
    and 1 far from them, on both sides of every boundary. Regions: softmax, the
    mask :math:`g_c > 0.5` of each class (each pixel is weighted by the map of
    its own class); sigmoid, per channel both the mask :math:`g_c > 0.5` and its
    complement, normalised separately.

    This is the map of Ma et al.'s reproduction of Caliva et al. (the
    distance transform of each side of the ground truth, inverted as
    ``max − D`` and divided by its maximum, ``compute_edts_forPenalizedLoss``),
    applied as Caliva et al.'s :math:`(1 + \Phi) \odot` CE. Conventions where
    that code divides by zero: a region whose pixels are all equally deep
    (:math:`D^{\max} = D^{\min}`, e.g. a one-pixel-wide line) is all boundary,
    :math:`\Phi = 1`; a region without boundary (it covers every valid pixel of
    the image) has :math:`\Phi = 0`.

    Args:
      logits: ``[B, *spatial, C]`` logits.
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      max_distance: ``None`` (default) normalises per region as above; a
        positive float instead clips a fixed band,
        :math:`\Phi = \max\big(0, 1 - (D - D^{\min}) / \text{max\_distance}\big)`,
        the same for small and large objects.
      activation, class_weights, where, ignore_index, sampling, target_distance: as
        for :func:`shape_aware_loss`; the weights do not change the denominator of the mean.
      axis_name, reduction: as for :func:`shape_aware_loss`.

    Returns:
      A scalar, or the per-pixel/per-element loss for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1, 1, 0]])  # Phi = [0, 1, 1, 0, 1, 1]
      >>> p = jnp.array([[0.1, 0.6, 0.8, 0.9, 0.4, 0.2]])
      >>> logits = jnp.log(jnp.stack([1 - p, p], axis=-1))
      >>> print(f"{sl.distance_weighted_cross_entropy(logits, labels):.4f}")
      0.7947

    References:
      Caliva, Iriondo, Martinez, Majumdar & Pedoia, `Distance map loss penalty
      term for semantic segmentation <https://arxiv.org/abs/1908.03679>`_, MIDL
      2019; Ma et al., `How distance transform maps boost segmentation CNNs: an
      empirical study <http://proceedings.mlr.press/v121/ma20b.html>`_, MIDL 2020.
    """
    inp = _prepare(logits, labels, activation=activation, where=where,
                   ignore_index=ignore_index, reduction=reduction, allowed=_CE_ACTIVATIONS)
    weights = inp.per_class(class_weights)
    if max_distance is not None:
        checks.check_positive("max_distance", max_distance)
    phi = _target_field(inp, "distance_weighted_cross_entropy", target_distance, first=0,
                        sampling=sampling, max_distance=max_distance)
    return _weighted_ce(inp, phi, weights, reduction, axis_name)
