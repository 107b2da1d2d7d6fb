r"""Boundary losses: pixel terms weighted by distances to the target or predicted boundary.

Each loss here weights a pixel term by distance maps of the target and, for
some, of the prediction (:mod:`segloss_jax._src.distance_maps`: masks ->
maps, each stage one compiled program when called eagerly). The maps carry no
gradient, so every loss here is a weighted pixel term whose weights are
constants for ``grad``. :func:`hausdorff_dt_loss` and :func:`boundary_loss`
are per-unit losses: a mean over the valid pixels of each unit (image and
class, or class over the batch), then the reduction of every region loss
(:func:`~segloss_jax._src.engine.reduce_region`); the maps are computed for the
kept channels only, a dropped background is 0. :func:`shape_aware_loss` weights
the cross-entropy of :mod:`~segloss_jax._src.pixelwise`, as
:func:`~segloss_jax.distance_weighted_cross_entropy` (a pixel-wise loss) does.

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

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from segloss_jax._src import checks
from segloss_jax._src.distance_maps import (
    channels_last,
    kept,
    maps,
    prepare_inputs,
    target_field,
    threshold_masks,
    unsigned_map,
)
from segloss_jax._src.engine import Params, RegionOptions, reduce_region, region_params
from segloss_jax._src.inputs import Inputs, prepare
from segloss_jax._src.kernel import kernel
from segloss_jax._src.pixelwise import weighted_ce
from segloss_jax._src.reduce import reduce_pixels, safe_div
from segloss_jax._src.registry import loss_name, register
from segloss_jax._src.sampling import Sampling
from segloss_jax._src.stats import unit_sums
from segloss_jax._src.types import (
    ACTIVATIONS,
    AnyActivation,
    ArrayLike,
    AxisName,
    LogitActivation,
    Reduction,
    Scalar,
    activations_of,
)
from segloss_jax._src.windows import contour, cross_sum, spatial_axes

__all__ = [
    "target_distance_map",
    "hausdorff_dt_loss",
    "log_hausdorff_dt_loss",
    "hausdorff_er_loss",
    "boundary_loss",
    "shape_aware_loss",
]


# --- the target's maps, ahead of time ----------------------------------------------------


_MAPPED_LOSSES = ("hausdorff_dt", "boundary", "shape_aware", "distance_weighted_cross_entropy")


def target_distance_map(
    loss: str | Callable,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    activation: AnyActivation = "softmax",
    where: ArrayLike | None = None,
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
    weights_ce = name in ("shape_aware", "distance_weighted_cross_entropy")
    allowed = activations_of(LogitActivation) if weights_ce else ACTIVATIONS
    # The logits only give the shape: the maps never read them.
    inp = prepare(jnp.zeros((*pixel_shape, num_classes), dtype), labels, activation=activation,
                  where=where, ignore_index=ignore_index, allowed_activations=allowed)
    if max_distance is not None:
        checks.check_positive("max_distance", max_distance)
    return channels_last(target_field(inp, name, None, first=0, sampling=sampling,
                                      max_distance=max_distance))


# --- per-unit losses: means over each unit's valid pixels, reduced by the engine --------


def _first_kept(num_classes: int, include_background: bool) -> int:
    """Index of the first channel that counts (channel 0 is dropped only when C > 1):
    the maps are computed for the channels ``first:`` only."""
    return 0 if include_background or num_classes == 1 else 1


def _unit_options(inp: Inputs, own: dict[str, Any], **keywords) -> tuple[RegionOptions, Params]:
    """The :class:`~segloss_jax._src.engine.RegionOptions` of a per-unit loss (from its
    keywords; every unit counts, ``classes="all"``) and its parameters
    (:func:`~segloss_jax._src.engine.region_params`: the loss's ``own``, the class
    weights). The options returned leave the class weights (an array) to the
    parameters, so that they can be a static argument of the compiled stage."""
    options = RegionOptions(classes="all", **keywords)
    return options._replace(class_weights=None), region_params(inp, options, own)


def _unit_means(values, valid, first: int, params: Params, options: RegionOptions) -> jax.Array:
    """The loss of every unit, the mean of the kept channels' ``[B, *spatial, C']``
    values over its valid pixels (a dropped background put back as 0), reduced by
    :func:`~segloss_jax._src.engine.reduce_region`."""
    total, count = unit_sums(values, jnp.ones_like(values[..., :1]), valid=valid,
                             per_image=options.per_image, axis_name=options.axis_name)
    loss = safe_div(total, count)
    if first:
        loss = jnp.concatenate([jnp.zeros_like(loss[..., :1]), loss], axis=-1)
    # classes="all": the target mass (second argument) is not read, only its shape.
    return reduce_region(loss, loss, options, params)


@kernel
def _hausdorff_units(probs, target, valid, fields, params, *, options):
    first = _first_kept(probs.shape[-1], options.include_background)
    weight = jnp.power(fields[0], params["alpha"]) + jnp.power(fields[1], params["alpha"])
    error = jnp.square(probs[..., first:] - target[..., first:])
    return _unit_means(error * channels_last(weight), valid, first, params, options)


@kernel
def _boundary_units(probs, valid, phi, params, *, options):
    first = _first_kept(probs.shape[-1], options.include_background)
    return _unit_means(channels_last(phi) * probs[..., first:], valid, first, params,
                       options)


@kernel
def _contour_mean(pred_masks, valid, field, *, spatial_ndim):
    """``E`` of :func:`shape_aware_loss`, ``[B, C]``: the mean of the target's contour
    ``field`` over the predicted contour (0 when that is empty)."""
    pred = contour(pred_masks, spatial_ndim, valid=valid, border_outside=False)
    axes = spatial_axes(pred.ndim, spatial_ndim)
    total = jnp.sum(jnp.where(pred, field, 0), axis=axes)
    return safe_div(total, jnp.sum(pred, axis=axes, dtype=total.dtype))


def _extremes(thresholded, valid, axes):
    """The minimum and maximum of ``T`` over each unit's valid elements, ``[B, C', 1, ...]``
    (one pass; a unit without valid elements gets ``min > max``: nothing is normalised)."""
    largest = jnp.finfo(thresholded.dtype).max
    low = jnp.min(jnp.where(valid, thresholded, largest), axis=axes, keepdims=True)
    return low, jnp.max(jnp.where(valid, thresholded, 0), axis=axes, keepdims=True)


def _normalised(blurred, valid, low, high):
    """``(T, E_i)``: ``D_i`` thresholded at ½, then min-max normalised where the unit's
    maximum exceeds its minimum, 0 at excluded elements."""
    thresholded = jnp.where(blurred >= 0.5, blurred - 0.5, 0)
    span = high - low
    scaled = (thresholded - low) / jnp.where(span > 0, span, 1)
    return thresholded, jnp.where(valid, jnp.where(span > 0, scaled, thresholded), 0)


def _erosions(error, valid, alpha, spatial_ndim, iterations):
    """``(Σ_i i^α E_i, (D_i, min_i, max_i) for i = 1 … K)``."""
    axes = spatial_axes(error.ndim, spatial_ndim)

    def step(carry, i):
        eroded, total = carry
        blurred = cross_sum(eroded, spatial_ndim) / (2 * spatial_ndim + 1)
        low, high = _extremes(jnp.where(blurred >= 0.5, blurred - 0.5, 0), valid, axes)
        eroded = _normalised(blurred, valid, low, high)[1]
        return (eroded, total + jnp.power(i, alpha) * eroded), (blurred, low, high)

    steps = jnp.arange(1, iterations + 1, dtype=error.dtype)
    (_, total), saved = lax.scan(step, (error, jnp.zeros_like(error)), steps)
    return total, saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _eroded_errors(error, valid, alpha, spatial_ndim, iterations):
    """Σ_i i^α E_i of :func:`hausdorff_er_loss`, ``[B, C', *spatial]``; ``error`` is E_0
    (0 at excluded elements), ``valid`` ``[B, 1, *spatial]``.

    Backward pass by hand, step by step in reverse from the saved ``D_i`` and extremes:
    two fused passes per step (the normalisation's per-unit sums, then the threshold and
    the self-adjoint cross); autodiff of the loop costs several times more. Ties at the
    minimum or maximum share its cotangent equally (autodiff of ``jnp.min``/``max``,
    and torch's ``amax``, as kornia). ``alpha`` gets no gradient.
    """
    return _erosions(error, valid, alpha, spatial_ndim, iterations)[0]


def _eroded_errors_fwd(error, valid, alpha, spatial_ndim, iterations):
    total, saved = _erosions(error, valid, alpha, spatial_ndim, iterations)
    return total, (valid, alpha, saved)


def _eroded_errors_bwd(spatial_ndim, iterations, residuals, ct_total):
    valid, alpha, saved = residuals
    axes = spatial_axes(ct_total.ndim, spatial_ndim)

    def step(ct_eroded, inputs):  # the cotangent of E_i in, that of E_{i-1} out
        (blurred, low, high), i = inputs
        thresholded, eroded = _normalised(blurred, valid, low, high)
        ct = jnp.where(valid, ct_eroded + jnp.power(i, alpha) * ct_total, 0)
        # N = (T − lo)/(hi − lo): ∂N/∂lo = (N − 1)/span, ∂N/∂hi = −N/span, shared by ties.
        at_low, at_high = valid & (thresholded == low), valid & (thresholded == high)
        span = jnp.where(high > low, high - low, 1)
        ct_low = jnp.sum(ct * (eroded - 1), axis=axes, keepdims=True) / span
        ct_high = -jnp.sum(ct * eroded, axis=axes, keepdims=True) / span
        ct_low = ct_low / jnp.maximum(jnp.sum(at_low, axis=axes, keepdims=True), 1)
        ct_high = ct_high / jnp.maximum(jnp.sum(at_high, axis=axes, keepdims=True), 1)
        scaled = ct / span + jnp.where(at_low, ct_low, 0) + jnp.where(at_high, ct_high, 0)
        ct = jnp.where(high > low, scaled, ct)
        ct = jnp.where(blurred >= 0.5, ct, 0) / (2 * spatial_ndim + 1)
        return cross_sum(ct, spatial_ndim), None

    steps = jnp.arange(1, iterations + 1, dtype=ct_total.dtype)
    ct_error, _ = lax.scan(step, jnp.zeros_like(ct_total), (saved, steps), reverse=True)
    return ct_error, None, None  # alpha: a hyperparameter, no gradient


_eroded_errors.defvjp(_eroded_errors_fwd, _eroded_errors_bwd)


# --- public losses -----------------------------------------------------------------------

@register()
def hausdorff_dt_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha: Scalar = 2.0,
    activation: AnyActivation = "softmax", include_background: bool = False,
    per_image: bool = True, class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None, ignore_index: int | None = None,
    sampling: Sampling = None, target_distance: ArrayLike | None = None,
    axis_name: AxisName = None, reduction: Reduction = "mean",
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
    inp = prepare_inputs(logits, labels, activation=activation, where=where,
                         ignore_index=ignore_index, reduction=reduction, allowed=ACTIVATIONS)
    options, params = _unit_options(inp, {"alpha": alpha}, per_image=per_image,
                                    include_background=include_background,
                                    class_weights=class_weights, axis_name=axis_name,
                                    reduction=reduction)
    checks.check_nonnegative("alpha", alpha)
    first = _first_kept(inp.num_classes, include_background)
    if target_distance is None:  # one transform for both masks: [2, B, C', *spatial]
        masks, valid = threshold_masks(inp, first, "pred_target")
        fields = maps(unsigned_map, masks, valid, inp=inp, sampling=sampling)
    else:
        masks, valid = threshold_masks(inp, first, "pred")
        fields = (maps(unsigned_map, masks, valid, inp=inp, sampling=sampling),
                  target_field(inp, "hausdorff_dt", target_distance, first=first,
                               sampling=sampling))
    return _hausdorff_units(inp.probs, inp.target, inp.valid, fields, params, options=options)


@register()
def log_hausdorff_dt_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha: Scalar = 2.0,
    activation: AnyActivation = "softmax", include_background: bool = False,
    per_image: bool = True, class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None, ignore_index: int | None = None,
    sampling: Sampling = None, target_distance: ArrayLike | None = None,
    axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""The logarithm of the Hausdorff distance loss: :math:`\log(1 + L_{\mathrm{HD}})`.

    .. math::

       L = \log\big(1 + L_{\mathrm{HD}}\big)

    with :math:`L_{\mathrm{HD}}` = :func:`hausdorff_dt_loss` with the same
    keywords and defaults, taken after its reduction (``reduction="none"``: per
    unit, 0 for a dropped background). The logarithm damps the loss while the
    distances are large (early in training) and leaves it nearly unchanged once
    they are small; its gradient is that of :math:`L_{\mathrm{HD}}` divided by
    :math:`1 + L_{\mathrm{HD}}`.

    Args:
      logits: as for :func:`hausdorff_dt_loss`; and so is every other argument
        (``labels``, ``alpha``, ``activation``, ``include_background``,
        ``per_image``, ``class_weights``, ``where``, ``ignore_index``,
        ``sampling``, ``target_distance``, ``axis_name``, ``reduction``) and
        their defaults.

    Returns:
      As :func:`hausdorff_dt_loss`: a scalar, or ``[B, C]`` (``per_image``) or
      ``[C]`` for ``reduction="none"``.

    MONAI ``LogHausdorffDTLoss(alpha=α, include_background=..., to_onehot_y=True,
    softmax=True, batch=b, reduction=r)`` (``log(loss + 1)`` after the reduction)
    is ``log_hausdorff_dt_loss(alpha=α, per_image=not b, reduction=r)``, as for
    :func:`hausdorff_dt_loss`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1, 1, 0]])
      >>> p = jnp.array([[0.1, 0.6, 0.8, 0.9, 0.4, 0.2]])
      >>> logits = jnp.log(jnp.stack([1 - p, p], axis=-1))
      >>> print(f"{sl.log_hausdorff_dt_loss(logits, labels):.4f}")  # log(1 + 0.3233)
      0.2801

    References:
      Karimi & Salcudean, `Reducing the Hausdorff distance in medical image
      segmentation with convolutional neural networks
      <https://arxiv.org/abs/1904.10030>`_, IEEE TMI 2020; MONAI's ``LogHausdorffDTLoss``.
    """
    return jnp.log1p(hausdorff_dt_loss(
        logits, labels, alpha=alpha, activation=activation,
        include_background=include_background, per_image=per_image,
        class_weights=class_weights, where=where, ignore_index=ignore_index,
        sampling=sampling, target_distance=target_distance, axis_name=axis_name,
        reduction=reduction))


@kernel
def _hausdorff_er(probs, target, valid, alpha, *, first, iterations, reduction, axis_name):
    """:func:`hausdorff_er_loss` from the probabilities and targets ``[B, *spatial, C]``."""
    mask = valid[:, None]
    error = jnp.where(mask, kept(jnp.square(probs - target), first), 0)
    total = channels_last(_eroded_errors(error, mask, alpha, probs.ndim - 2, iterations))
    if reduction == "none" and first:  # the dropped background, as 0
        total = jnp.concatenate([jnp.zeros_like(total[..., :1]), total], axis=-1)
    return reduce_pixels(total, valid, reduction, axis_name)


@register()
def hausdorff_er_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha: Scalar = 2.0, iterations: int = 10,
    activation: AnyActivation = "softmax", include_background: bool = True,
    where: ArrayLike | None = None, ignore_index: int | None = None,
    axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Erosion-based Hausdorff loss (Karimi & Salcudean), as kornia computes it.

    .. math::

       E_0 = (p - g)^2, \qquad
       D_i = \tfrac{1}{2d + 1}\, B \star E_{i-1}, \qquad
       E_i = \mathrm{norm}\big(\max(D_i - \tfrac12, 0)\big), \qquad
       L = \operatorname{mean}\ \sum_{i=1}^{K} i^{\alpha} E_i

    per image and class, with :math:`p`, :math:`g` the probabilities and the
    target, :math:`B \star` the sum over each element's cross (itself and its
    :math:`2d` face neighbours, zero outside the image), the threshold kept
    with :math:`D_i = \tfrac12` (gradient 1 there), and :math:`\mathrm{norm}`
    the min–max normalisation over the unit's valid elements when their maximum
    exceeds their minimum (unchanged otherwise). Each step erodes the error map
    by one pixel: errors that survive many erosions lie deep inside a wrongly
    labelled region, far from the boundary, and weigh :math:`i^\alpha`; the
    mean runs over the valid elements and the kept classes. The value is a
    unitless surrogate of the Hausdorff distance, not a distance. 1 to 3
    spatial axes.

    Excluded elements (``where``, ``ignore_index``) are 0 in every :math:`E_i`
    (as outside the image) and count in no minimum, maximum or mean. A unit
    whose error map is constant (e.g. a perfect prediction) is not normalised.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets; no gradient.
      alpha: exponent :math:`\alpha \ge 0` of the weight :math:`i^\alpha` of step :math:`i`
        (it may be traced; it has no gradient).
      iterations: number :math:`K \ge 0` of erosions (a Python int).
      include_background: keep channel 0 (default ``True``: kornia scores every
        channel; with ``C == 1`` the channel is the foreground and always kept).
      activation, where, ignore_index, axis_name, reduction: as :doc:`/conventions`
        describes; ``"mean"`` is over the valid elements of the kept channels (with
        ``axis_name``, of every device), ``"sum"`` their sum.

    Returns:
      A scalar, or for ``reduction="none"`` the map :math:`\sum_i i^\alpha E_i`,
      ``[B, *spatial, C]`` (0 at excluded elements and in a dropped background).
      Float32 (float64 for float64 inputs).

    kornia ``HausdorffERLoss(alpha=α, k=K)(softmax(x), y)`` (``[B, C, H, W]``
    probabilities and ``[B, 1, H, W]`` labels) and ``HausdorffERLoss3D`` are
    ``hausdorff_er_loss(x, y, alpha=α, iterations=K)``; kornia's
    ``reduction="none"`` is ``(C, B, 1, *spatial)``, here channels last.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.zeros((1, 8, 8), jnp.int32).at[0, 2:6, 2:6].set(1)
      >>> logits = 3.0 * (2.0 * labels - 1.0)[..., None]  # ±3, [B=1, 8, 8, C=1]
      >>> @jax.jit
      ... def loss(x):
      ...     return sl.hausdorff_er_loss(x, labels, activation="sigmoid", iterations=3)
      >>> far = logits.at[0, 0:3, 5:8, 0].set(3.0)  # a false positive away from the square
      >>> print(f"{loss(logits):.4f} {loss(far):.4f}")  # small errors erode away
      0.0000 0.0416

    References:
      Karimi & Salcudean, `Reducing the Hausdorff distance in medical image
      segmentation with convolutional neural networks
      <https://arxiv.org/abs/1904.10030>`_, IEEE TMI 2020; kornia's
      ``HausdorffERLoss`` (after github.com/PatRyg99/HausdorffLoss).
    """
    inp = prepare_inputs(logits, labels, activation=activation, where=where,
                         ignore_index=ignore_index, reduction=reduction, allowed=ACTIVATIONS)
    checks.check_bool("include_background", include_background)
    checks.check_nonnegative("alpha", alpha)
    checks.check_count("iterations", iterations)
    first = _first_kept(inp.num_classes, include_background)
    return _hausdorff_er(inp.probs, inp.target, inp.valid, jnp.asarray(alpha, inp.dtype),
                         first=first, iterations=iterations, reduction=reduction,
                         axis_name=axis_name)


@register()
def boundary_loss(
    logits: ArrayLike, labels: ArrayLike, *, activation: AnyActivation = "softmax",
    include_background: bool = False, per_image: bool = True,
    class_weights: ArrayLike | None = None, where: ArrayLike | None = None,
    ignore_index: int | None = None, sampling: Sampling = None,
    target_distance: ArrayLike | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
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
    inp = prepare_inputs(logits, labels, activation=activation, where=where,
                         ignore_index=ignore_index, reduction=reduction, allowed=ACTIVATIONS)
    options, params = _unit_options(inp, {}, per_image=per_image,
                                    include_background=include_background,
                                    class_weights=class_weights, axis_name=axis_name,
                                    reduction=reduction)
    first = _first_kept(inp.num_classes, include_background)
    phi = target_field(inp, "boundary", target_distance, first=first, sampling=sampling)
    return _boundary_units(inp.probs, inp.valid, phi, params, options=options)


@register()
def shape_aware_loss(
    logits: ArrayLike, labels: ArrayLike, *, activation: LogitActivation = "softmax",
    class_weights: ArrayLike | None = None, where: ArrayLike | None = None,
    ignore_index: int | None = None, sampling: Sampling = None,
    target_distance: ArrayLike | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: AxisName = None,
    reduction: Reduction = "mean",
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
      pixel_weights: optional ``[B, *spatial]`` (broadcastable) non-negative weight
        of each valid pixel's term; no gradient (:doc:`/conventions`).
      normalize_weights: ``"mean"`` divides by the sum of the valid weights
        instead of the number of valid pixels (elements).
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
    inp = prepare_inputs(logits, labels, activation=activation, where=where,
                         ignore_index=ignore_index, reduction=reduction,
                         allowed=activations_of(LogitActivation), pixel_weights=pixel_weights)
    weights = inp.per_class(class_weights)
    field = target_field(inp, "shape_aware", target_distance, first=0, sampling=sampling)
    masks, valid = threshold_masks(inp, 0, "pred")
    shape_term = _contour_mean(masks, valid, field, spatial_ndim=inp.x.ndim - 2)
    return weighted_ce(inp, shape_term, weights, reduction, axis_name, normalize_weights)
