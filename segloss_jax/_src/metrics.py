r"""Evaluation metrics from hard predictions.

Contract: predictions and labels are integer class indices of the same shape
(``[B, *spatial]``, or any shape: every element is one pixel); masks for the
distance metrics are ``[*spatial]`` (1 to 3 axes, ``vmap`` for batches). Every
function is pure, jit-able with a static ``num_classes`` and carries no
gradient. Counts are exact integers; scores are float32 (float64 under x64).

* :func:`confusion_matrix` counts (target, prediction) pairs; :func:`iou_score`
  and :func:`dice_score` turn it into per-class scores, NaN for a class absent
  from both prediction and target; :func:`mean_score` averages them ignoring NaN.
* :class:`ConfusionMatrixMetric` accumulates the confusion matrix over a
  validation set (and across devices), so the scores are those of the whole set,
  not a mean of batch means.
* :func:`hausdorff_distance` and :func:`average_surface_distance` compare the
  surfaces of two binary masks, built on
  :func:`~segloss_jax._src.distance.distance_transform_edt`;
  :func:`surface_dice` counts the surface elements within a tolerance of the
  other surface.
* :func:`calibration_error` bins pixel confidences (ECE, MCE) of class
  probabilities; :class:`CalibrationErrorMetric` accumulates its bins over a
  data set.
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.experimental import checkify

from segloss_jax._src import checks
from segloss_jax._src.distance import distance_transform_edt
from segloss_jax._src.inputs import validity_mask
from segloss_jax._src.morphology import (
    Sampling,
    contour,
    is_float64,
    join_sampling,
    split_sampling,
)

# --------------------------------------------------------------------------- checks


def float_dtype() -> jnp.dtype:
    """float32, or float64 when x64 is enabled."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _check_num_classes(num_classes) -> None:
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


def _check_int(x: chex.Array, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.dtype != jnp.bool_ and not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"`{name}` must hold integer class indices (or bool), got dtype {x.dtype}; take "
            f"`jnp.argmax(logits, axis=-1)` of the logits for hard predictions.")
    return x


def check_labels(labels: chex.Array, num_classes: int, where, ignore_index) -> jax.Array:
    """Static checks of hard labels and their options; returns ``labels`` as an array."""
    _check_num_classes(num_classes)
    labels = _check_int(labels, "labels")
    checks.check_ignore_index(ignore_index, "int")
    checks.check_where(where, labels.shape)
    return labels


def counted(labels: jax.Array, num_classes: int, where, ignore_index,
            name: str = "labels") -> tuple[jax.Array, jax.Array]:
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


# --------------------------------------------------------------------------- confusion matrix


def confusion_matrix(
    pred_labels: chex.Array,
    labels: chex.Array,
    num_classes: int,
    *,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Confusion matrix of hard predictions: rows are target classes, columns predictions.

    .. math::

       M_{tp} = \#\{ i \in V : y_i = t,\ \hat y_i = p \}

    over the valid pixels :math:`V` (``where`` is ``True``, the label is not
    ``ignore_index``). The diagonal holds the true positives; row :math:`t`
    sums to the number of pixels of class :math:`t`, column :math:`p` to the
    number predicted as :math:`p`. A pixel whose label or prediction lies
    outside ``[0, C)`` is not counted (under ``checkify`` it is reported).

    Built with one ``bincount`` of ``y·C + ŷ``, which never builds a
    ``[pixels, C]`` array (against a one-hot matrix product: see
    benchmarks/RESULTS.md).
    Counts are int32: exact for fewer than 2³¹ pixels per call; use
    :class:`ConfusionMatrixMetric` to accumulate more.

    Args:
      pred_labels: integer (or bool) predicted classes, ``[B, *spatial]`` (any
        shape: every element is a pixel), e.g. ``jnp.argmax(logits, -1)``.
      labels: integer target classes of the same shape.
      num_classes: number of classes ``C >= 2`` (a Python int: static under ``jit``).
      where: optional bool or integer mask broadcastable to the shape of
        ``labels``; pixels where it is ``False`` (0) are not counted.
      ignore_index: label value whose pixels are not counted.

    Returns:
      ``[C, C]`` int32 counts, ``[target, prediction]``.

    Matches ``sklearn.metrics.confusion_matrix(labels, pred, labels=range(C))``
    and torchmetrics ``MulticlassConfusionMatrix(ignore_index=...)`` (rows =
    targets).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 2, 2, 255]])
      >>> pred = jnp.array([[0, 1, 1, 2, 0, 1]])
      >>> print(sl.confusion_matrix(pred, labels, 3, ignore_index=255))
      [[1 1 0]
       [0 1 0]
       [1 0 1]]
    """
    labels = check_labels(labels, num_classes, where, ignore_index)
    pred_labels = _check_int(pred_labels, "pred_labels")
    if pred_labels.shape != labels.shape:
        raise ValueError(
            f"`pred_labels` has shape {pred_labels.shape} but `labels` has shape "
            f"{labels.shape}; both are class indices per pixel and must match.")
    return _count_pairs(pred_labels, labels, where, num_classes=num_classes,
                        ignore_index=ignore_index)


# One compiled program per shape: eagerly, each of the dozen small ops would compile alone.
@functools.partial(jax.jit, static_argnames=("num_classes", "ignore_index"))
def _count_pairs(pred, labels, where, *, num_classes, ignore_index):
    """The ``[C, C]`` counts of :func:`confusion_matrix`."""
    labels, valid = counted(labels, num_classes, where, ignore_index)
    pred, valid_pred = counted(pred, num_classes, valid, None, "pred_labels")
    size = num_classes * num_classes
    # Pixels that do not count go to an extra bin, dropped afterwards.
    index = jnp.where(valid & valid_pred, labels * num_classes + pred, size)
    counts = jnp.bincount(index.ravel(), length=size + 1)[:size]
    return counts.astype(jnp.int32).reshape(num_classes, num_classes)


def _tp_fp_fn(confusion: chex.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``tp, fp, fn`` per class (float) of ``[..., C, C]`` counts, rows = targets."""
    confusion = jnp.asarray(confusion)
    if confusion.ndim < 2 or confusion.shape[-1] != confusion.shape[-2]:
        raise ValueError(
            f"`confusion` must have shape [..., C, C], got {confusion.shape}.")
    m = confusion.astype(float_dtype())
    tp = jnp.diagonal(m, axis1=-2, axis2=-1)
    return tp, jnp.sum(m, axis=-2) - tp, jnp.sum(m, axis=-1) - tp


def _ratio_or_nan(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den``, NaN where ``den`` is 0 (an undefined score)."""
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1), jnp.nan)


def iou_from_confusion(confusion: chex.Array) -> jax.Array:
    r"""Per-class IoU (Jaccard index) of a confusion matrix, NaN for an absent class.

    .. math::

       \mathrm{IoU}_c = \frac{tp_c}{tp_c + fp_c + fn_c}

    with :math:`tp_c = M_{cc}`, :math:`fp_c = \sum_t M_{tc} - tp_c`,
    :math:`fn_c = \sum_p M_{cp} - tp_c`. A class absent from both prediction
    and target (``0/0``) is NaN: undefined, not perfect and not wrong. Average
    with :func:`mean_score`, which skips NaN.

    Args:
      confusion: ``[..., C, C]`` counts, rows = targets (:func:`confusion_matrix`).

    Returns:
      ``[..., C]`` float32 scores in ``[0, 1]`` or NaN.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> print(sl.iou_from_confusion(jnp.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])))
      [0.75       0.6666667        nan]
    """
    tp, fp, fn = _tp_fp_fn(confusion)
    return _ratio_or_nan(tp, tp + fp + fn)


def dice_from_confusion(confusion: chex.Array) -> jax.Array:
    r"""Per-class Dice (F1) of a confusion matrix, NaN for an absent class.

    .. math::

       \mathrm{Dice}_c = \frac{2\,tp_c}{2\,tp_c + fp_c + fn_c}
                       = \frac{2\,\mathrm{IoU}_c}{1 + \mathrm{IoU}_c}

    Symbols as in :func:`iou_from_confusion`; NaN where the denominator is 0.

    Args:
      confusion: ``[..., C, C]`` counts, rows = targets.

    Returns:
      ``[..., C]`` float32 scores in ``[0, 1]`` or NaN.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> print(sl.dice_from_confusion(jnp.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])))
      [0.85714287 0.8               nan]
    """
    tp, fp, fn = _tp_fp_fn(confusion)
    return _ratio_or_nan(2 * tp, 2 * tp + fp + fn)


def iou_score(
    pred_labels: chex.Array,
    labels: chex.Array,
    num_classes: int,
    *,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Per-class IoU (Jaccard index) of hard predictions over all valid pixels.

    .. math::

       \mathrm{IoU}_c = \frac{|\hat Y_c \cap Y_c|}{|\hat Y_c \cup Y_c|}
                      = \frac{tp_c}{tp_c + fp_c + fn_c}

    with :math:`\hat Y_c`, :math:`Y_c` the valid pixels predicted as / labelled
    :math:`c`, pooled over the whole batch. NaN for a class absent from both
    prediction and target. For per-image scores, ``vmap`` it over the batch.
    :func:`iou_from_confusion` of :func:`confusion_matrix`.

    Args:
      pred_labels: integer predicted classes ``[B, *spatial]``.
      labels: integer target classes, same shape.
      num_classes: number of classes ``C >= 2`` (static).
      where: optional bool or integer mask (non-zero = counted), broadcastable
        to ``labels``.
      ignore_index: label value whose pixels do not count.

    Returns:
      ``[C]`` float32 scores in ``[0, 1]``, NaN for an absent class.

    Matches torchmetrics ``MulticlassJaccardIndex(average=None)`` (which
    reports 0 rather than NaN for an absent class) and MONAI ``MeanIoU`` on the
    one-hot masks with ``ignore_empty=True``, ``reduction="mean_batch"``
    applied to a batch of one.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1]])
      >>> pred = jnp.array([[0, 1, 1, 1]])
      >>> print(sl.iou_score(pred, labels, 3))
      [0.5       0.6666667       nan]

    References:
      Jaccard, "The distribution of the flora in the alpine zone", New
      Phytologist 1912; Everingham et al., "The PASCAL visual object classes
      (VOC) challenge", IJCV 2010.
    """
    cm = confusion_matrix(pred_labels, labels, num_classes, where=where,
                          ignore_index=ignore_index)
    return iou_from_confusion(cm)


def dice_score(
    pred_labels: chex.Array,
    labels: chex.Array,
    num_classes: int,
    *,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Per-class Dice coefficient (F1) of hard predictions over all valid pixels.

    .. math::

       \mathrm{Dice}_c = \frac{2\,|\hat Y_c \cap Y_c|}{|\hat Y_c| + |Y_c|}
                       = \frac{2\,tp_c}{2\,tp_c + fp_c + fn_c}

    Symbols as in :func:`iou_score`. NaN for a class absent from both
    prediction and target. :func:`dice_from_confusion` of :func:`confusion_matrix`.

    Args:
      pred_labels: integer predicted classes ``[B, *spatial]``.
      labels: integer target classes, same shape.
      num_classes: number of classes ``C >= 2`` (static).
      where: optional bool or integer mask (non-zero = counted), broadcastable
        to ``labels``.
      ignore_index: label value whose pixels do not count.

    Returns:
      ``[C]`` float32 scores in ``[0, 1]``, NaN for an absent class.

    Matches MONAI ``DiceMetric(include_background=True, ignore_empty=False)``
    on one batch pooled into one image, except that MONAI reports 1 (not NaN)
    for a class absent from both; torchmetrics ``DiceScore(average=None)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([[0, 0, 1, 1]])
      >>> pred = jnp.array([[0, 1, 1, 1]])
      >>> print(sl.dice_score(pred, labels, 3))
      [0.6666667 0.8             nan]

    References:
      Dice, "Measures of the amount of ecologic association between species",
      Ecology 1945; Sørensen 1948.
    """
    cm = confusion_matrix(pred_labels, labels, num_classes, where=where,
                          ignore_index=ignore_index)
    return dice_from_confusion(cm)


def mean_score(scores: chex.Array, *, include_background: bool = True) -> jax.Array:
    r"""Mean of per-class scores over the classes where they are defined (not NaN).

    .. math::

       \bar s = \frac{1}{|K|} \sum_{c \in K} s_c, \qquad K = \{c : s_c \ne \mathrm{NaN}\}

    So the mean IoU of a batch skips the classes that occur in neither
    prediction nor target. NaN when no class is defined.

    Args:
      scores: ``[..., C]`` per-class scores (:func:`iou_score`, :func:`dice_score`,
        or per image ``[B, C]``).
      include_background: ``False`` leaves class 0 out of the mean.

    Returns:
      ``[...]`` float means (a scalar for ``[C]``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> scores = jnp.array([0.5, 1.0, jnp.nan])
      >>> print(sl.mean_score(scores), sl.mean_score(scores, include_background=False))
      0.75 1.0
    """
    scores = jnp.asarray(scores)
    if scores.ndim < 1:
        raise ValueError(f"`scores` must have a class axis [..., C], got shape {scores.shape}.")
    if not include_background:
        scores = scores[..., 1:]
    defined = ~jnp.isnan(scores)
    total = jnp.sum(jnp.where(defined, scores, 0), axis=-1)
    return _ratio_or_nan(total, jnp.sum(defined, axis=-1, dtype=total.dtype))


# --------------------------------------------------------------------------- streaming

_LOW_BITS = 30
_LOW_MASK = (1 << _LOW_BITS) - 1


def _carry(high: jax.Array, low: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Moves whole multiples of 2³⁰ from ``low`` (uint32) into ``high`` (int32)."""
    return (high + (low >> _LOW_BITS).astype(jnp.int32),
            (low & _LOW_MASK).astype(jnp.int32))


class ConfusionMatrixMetric(NamedTuple):
    r"""Streaming confusion matrix: exact per-class IoU and Dice over a whole data set.

    A pure pytree state (use it inside ``jit``, ``lax.scan``, ``shard_map``):
    ``init`` makes an empty one, ``update`` adds a batch's
    :func:`confusion_matrix`, ``compute`` gives the scores of everything seen.
    Because counts (not scores) are summed, the result equals
    :func:`iou_score` / :func:`dice_score` of the concatenated data set exactly;
    a mean of batch scores would weigh small batches and empty classes wrongly.

    Each count is held as ``high·2³⁰ + low`` in two int32 arrays, so totals stay
    exact up to 2⁶¹ pixels per cell (a single int32 would overflow after 2.1·10⁹,
    about 20 CT volumes of 512×512×300). One ``update`` adds fewer than 2³¹ pixels.

    Attributes:
      high: ``[C, C]`` int32, multiples of 2³⁰ in the counts.
      low: ``[C, C]`` int32 in ``[0, 2³⁰)``, the rest.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> state = sl.ConfusionMatrixMetric.init(3)
      >>> update = jax.jit(sl.ConfusionMatrixMetric.update, static_argnames="ignore_index")
      >>> state = update(state, jnp.array([[0, 1, 1]]), jnp.array([[0, 1, 2]]))
      >>> state = update(state, jnp.array([[2, 2, 0]]), jnp.array([[2, 2, 255]]),
      ...                ignore_index=255)
      >>> print(state.compute()["iou"])
      [1.        0.5       0.6666667]
    """

    high: jax.Array
    low: jax.Array

    @classmethod
    def init(cls, num_classes: int) -> ConfusionMatrixMetric:
        """An empty state for ``num_classes`` classes (a Python int)."""
        _check_num_classes(num_classes)
        zeros = jnp.zeros((num_classes, num_classes), jnp.int32)
        return cls(zeros, zeros)

    @property
    def num_classes(self) -> int:
        return self.low.shape[-1]

    def update(
        self,
        pred_labels: chex.Array,
        labels: chex.Array,
        *,
        where: chex.Array | None = None,
        ignore_index: int | None = None,
        axis_name: str | None = None,
    ) -> ConfusionMatrixMetric:
        """Adds a batch (arguments as :func:`confusion_matrix`).

        With ``axis_name`` (inside ``shard_map``/``pmap``) the batch counts are
        ``psum``-ed over that mapped axis first, so every device holds the
        state of the global batch.
        """
        batch = confusion_matrix(pred_labels, labels, self.num_classes, where=where,
                                 ignore_index=ignore_index)
        if axis_name is not None:
            batch = jax.lax.psum(batch, axis_name)
        # low < 2^30 and batch < 2^31: the sum fits in uint32.
        return ConfusionMatrixMetric(*_carry(
            self.high, self.low.astype(jnp.uint32) + batch.astype(jnp.uint32)))

    def merge(self, other: ConfusionMatrixMetric) -> ConfusionMatrixMetric:
        """The state of both data sets (e.g. from two hosts)."""
        return ConfusionMatrixMetric(*_carry(
            self.high + other.high, self.low.astype(jnp.uint32) + other.low.astype(jnp.uint32)))

    def counts(self) -> jax.Array:
        """``[C, C]`` counts as floats (float32: exact below 2²⁴, then to 6·10⁻⁸ relative)."""
        dtype = float_dtype()
        return self.high.astype(dtype) * (1 << _LOW_BITS) + self.low.astype(dtype)

    def compute(self) -> dict[str, jax.Array]:
        """Scores of everything seen.

        Returns:
          ``{"iou": [C], "dice": [C], "mean_iou": [], "mean_dice": [],
          "accuracy": []}``: per-class scores (NaN for a class never seen in
          prediction or target), their NaN-skipping means over all classes
          (:func:`mean_score`; call it yourself for other choices), and the
          pixel accuracy ``Σ tp / Σ M`` (NaN before any pixel).
        """
        counts = self.counts()
        iou, dice = iou_from_confusion(counts), dice_from_confusion(counts)
        accuracy = _ratio_or_nan(jnp.trace(counts), jnp.sum(counts))
        return {"iou": iou, "dice": dice, "mean_iou": mean_score(iou),
                "mean_dice": mean_score(dice), "accuracy": accuracy}


# --------------------------------------------------------------------------- surface distances


def _check_masks(pred_mask: chex.Array, mask: chex.Array) -> tuple[jax.Array, jax.Array]:
    pred_mask, mask = jnp.asarray(pred_mask), jnp.asarray(mask)
    if pred_mask.shape != mask.shape:
        raise ValueError(
            f"`pred_mask` has shape {pred_mask.shape} but `mask` has shape {mask.shape}; "
            f"they must match.")
    if not 1 <= mask.ndim <= 3:
        raise ValueError(
            f"`mask` must be one mask [*spatial] with 1 to 3 axes, got shape {mask.shape}; "
            f"vmap over batch and class axes (see the examples).")
    return pred_mask.astype(bool), mask.astype(bool)


def _sampling_args(sampling: Sampling) -> dict:
    """``sampling`` for :func:`_surface_metric`: float64 distances for float64 spacing."""
    static, traced = split_sampling(sampling)
    return {"traced_sampling": traced, "static_sampling": static, "wide": is_float64(sampling)}


def _directed_distances(pred_mask, mask, sampling):
    """Surfaces of both masks and, on each, the distance to the other's surface.

    A surface is :func:`~segloss_jax._src.morphology.contour` with the image
    border outside the mask: ``m & ~scipy.ndimage.binary_erosion(m)``.
    """
    surf_p, surf_g = (contour(m, m.ndim, border_outside=True) for m in (pred_mask, mask))
    # One batched transform: distance to the nearest surface element of g, then of p.
    edt = jax.vmap(lambda m: distance_transform_edt(m, sampling=sampling))
    to_g, to_p = edt(jnp.stack([~surf_g, ~surf_p]))
    return surf_p, surf_g, to_g, to_p


# Compiled as one program: run eagerly op by op, the transform's loops would be
# re-traced at every call (see benchmarks/RESULTS.md).
@functools.partial(jax.jit, static_argnames=("static_sampling", "wide", "use_max", "symmetric"))
def _surface_metric(pred_mask, mask, percentile, traced_sampling, *, static_sampling, wide,
                    use_max, symmetric):
    """Hausdorff (``symmetric is None``) or average surface distance."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    surf_p, surf_g, to_g, to_p = _directed_distances(pred_mask, mask, sampling)
    n_p, n_g = jnp.sum(surf_p), jnp.sum(surf_g)
    if symmetric is None:
        q = 100 if use_max else percentile
        # Both directions in one batched selection loop.
        directed = jax.vmap(_masked_percentile, in_axes=(0, 0, None))(
            jnp.stack([to_g, to_p]), jnp.stack([surf_p, surf_g]), q)
        value = jnp.max(directed)
    else:
        total = jnp.sum(jnp.where(surf_p, to_g, 0))
        count = n_p
        if symmetric:
            total = total + jnp.sum(jnp.where(surf_g, to_p, 0))
            count = count + n_g
        value = total / jnp.maximum(count, 1).astype(total.dtype)
    return _empty_convention(value, n_p, n_g)


def _empty_convention(value, n_p, n_g):
    """NaN when both surfaces are empty, ``inf`` when exactly one is."""
    value = jnp.where((n_p > 0) & (n_g > 0), value, jnp.inf)
    return jnp.where((n_p == 0) & (n_g == 0), jnp.nan, value)


def _masked_percentile(values: jax.Array, keep: jax.Array, q) -> jax.Array:
    """``np.percentile(values[keep], q)`` (linear interpolation) with static shapes.

    ``values`` are non-negative (distances). The two order statistics the
    interpolation needs are found by bisection on the float bit patterns, which
    order like the values for non-negative floats: 31 masked counts over the
    array (63 for float64), each one fused pass, instead of a sort (faster on
    CPU: see benchmarks/RESULTS.md).
    """
    if isinstance(q, numbers.Real) and q == 100:
        return jnp.max(jnp.where(keep, values, -jnp.inf))
    n = jnp.sum(keep)
    pos = jnp.asarray(q, values.dtype) / 100 * (jnp.maximum(n, 1) - 1).astype(values.dtype)
    below = jnp.floor(pos)
    rank = below.astype(jnp.int32)
    v_lo = _order_statistic(values, keep, rank)
    # The next order statistic: v_lo again if it repeats, else the next larger value.
    repeats = jnp.sum(keep & (values <= v_lo)) >= rank + 2
    v_hi = jnp.where(repeats, v_lo, jnp.min(jnp.where(keep & (values > v_lo), values, jnp.inf)))
    v_hi = jnp.where(rank + 1 < n, v_hi, v_lo)
    return v_lo + (pos - below) * (v_hi - v_lo)


def _order_statistic(values: jax.Array, keep: jax.Array, rank: jax.Array) -> jax.Array:
    """The ``rank``-th smallest (0-based) of ``values[keep]``, for non-negative values."""
    int_type = jnp.int64 if values.dtype == jnp.float64 else jnp.int32
    bits = jax.lax.bitcast_convert_type(values, int_type)
    bits = jnp.where(keep, bits, jnp.iinfo(int_type).max)

    def halve(_, bounds):
        lo, hi = bounds  # the answer's bit pattern lies in [lo, hi]
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(bits <= mid) >= rank + 1
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    top = jnp.max(jnp.where(keep, bits, 0))
    steps = 8 * values.dtype.itemsize - 1
    # The lower bound starts from `top` (zero), so that inside shard_map the loop carry
    # varies over the same mesh axes as the data.
    _, found = jax.lax.fori_loop(0, steps, halve, (jnp.zeros_like(top), top))
    return jax.lax.bitcast_convert_type(found, values.dtype)


def hausdorff_distance(
    pred_mask: chex.Array,
    mask: chex.Array,
    *,
    percentile: float = 100.0,
    sampling: Sampling = None,
) -> jax.Array:
    r"""Hausdorff distance between the surfaces of two binary masks (HD, HD95, ...).

    .. math::

       \mathrm{HD}_q(A, B) = \max\Big( P_q\{ d(a, \partial B) : a \in \partial A \},\;
                                      P_q\{ d(b, \partial A) : b \in \partial B \} \Big)

    with :math:`\partial A` the surface of mask :math:`A`, :math:`d(x, \partial B)`
    the Euclidean distance (in units of ``sampling``) from :math:`x` to the nearest
    element of :math:`\partial B`, and :math:`P_q` the :math:`q`-th percentile
    (``np.percentile``'s linear interpolation, found by bisection rather than a
    sort). ``percentile=100`` is the classic Hausdorff distance (the larger
    directed maximum), ``95`` the robust HD95.

    The surface of a mask is its elements with at least one face neighbour
    (4-connectivity in 2D, 6 in 3D) outside the mask; outside the array counts as
    outside, so mask elements on the image border are surface
    (``m & ~scipy.ndimage.binary_erosion(m)`` with its default cross structure and
    ``border_value=0``). Distances come from
    :func:`~segloss_jax._src.distance.distance_transform_edt` of each surface's
    complement; the percentile selects among the surface entries of the
    fixed-size map, so shapes are static and it runs under ``jit``.

    Empty masks: NaN when both masks are empty (nothing to compare), ``inf`` when
    exactly one is.

    Args:
      pred_mask: ``[*spatial]`` predicted mask (1 to 3 axes; nonzero = foreground).
        ``vmap`` over batch and class axes.
      mask: ``[*spatial]`` target mask.
      percentile: :math:`q \in [0, 100]`; 100 (a static value) takes the maximum
        without sorting.
      sampling: voxel spacing, one float for all axes or one per axis.

    Returns:
      A float32 scalar.

    Matches MONAI ``compute_hausdorff_distance(percentile=q, directed=False)``
    (``HausdorffDistanceMetric``) on one-hot masks, including its empty-mask
    conventions (NaN when both are empty, ``inf`` when one is). medpy's ``hd95``
    takes the percentile of both directed sets pooled, which can differ for
    ``q < 100``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> a = jnp.zeros((6, 6), bool).at[1:3, 1:3].set(True)
      >>> b = jnp.zeros((6, 6), bool).at[1:3, 1:5].set(True)
      >>> print(sl.hausdorff_distance(a, b), sl.hausdorff_distance(a, b, sampling=(1.0, 0.5)))
      2.0 1.0
      >>> batch = jnp.stack([a, b])  # vmap for a batch of mask pairs
      >>> print(jax.vmap(sl.hausdorff_distance)(batch, batch[::-1]))
      [2. 2.]

    References:
      Huttenlocher, Klanderman & Rucklidge, "Comparing images using the Hausdorff
      distance", IEEE TPAMI 1993; Taha & Hanbury, "Metrics for evaluating 3D
      medical image segmentation: analysis, selection, and tool", BMC Medical
      Imaging 2015.
    """
    pred_mask, mask = _check_masks(pred_mask, mask)
    checks.check_in_range("percentile", percentile, 0.0, 100.0)
    use_max = isinstance(percentile, numbers.Real) and percentile == 100
    return _surface_metric(pred_mask, mask, jnp.asarray(percentile, jnp.float32),
                           use_max=use_max, symmetric=None, **_sampling_args(sampling))


def average_surface_distance(
    pred_mask: chex.Array,
    mask: chex.Array,
    *,
    symmetric: bool = True,
    sampling: Sampling = None,
) -> jax.Array:
    r"""Average distance between the surfaces of two binary masks.

    Symmetric (the ASSD of segmentation challenges):

    .. math::

       \mathrm{ASSD}(A, B) = \frac{\sum_{a \in \partial A} d(a, \partial B)
                                  + \sum_{b \in \partial B} d(b, \partial A)}
                                 {|\partial A| + |\partial B|}

    and with ``symmetric=False`` the directed mean from the prediction,
    :math:`\frac{1}{|\partial A|}\sum_{a \in \partial A} d(a, \partial B)`.
    Surfaces and distances as in :func:`hausdorff_distance`, with ``A`` the
    prediction and ``B`` the target.

    Empty masks: NaN when both masks are empty, ``inf`` when exactly one is.

    Args:
      pred_mask: ``[*spatial]`` predicted mask (1 to 3 axes; nonzero = foreground).
      mask: ``[*spatial]`` target mask.
      symmetric: average over both surfaces (default) or over the prediction's.
      sampling: voxel spacing, one float for all axes or one per axis.

    Returns:
      A float32 scalar.

    Matches MONAI ``compute_average_surface_distance(symmetric=...)``
    (``SurfaceDistanceMetric``), including its empty-mask conventions; note
    MONAI's default is ``symmetric=False``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> a = jnp.zeros((6, 6), bool).at[1:3, 1:3].set(True)
      >>> b = jnp.zeros((6, 6), bool).at[1:3, 1:5].set(True)
      >>> print(sl.average_surface_distance(a, b))
      0.5
      >>> print(sl.average_surface_distance(a, b, symmetric=False))
      0.0

    References:
      Heimann et al., "Comparison and evaluation of methods for liver
      segmentation from CT datasets", IEEE TMI 2009; Taha & Hanbury, BMC Medical
      Imaging 2015.
    """
    pred_mask, mask = _check_masks(pred_mask, mask)
    return _surface_metric(pred_mask, mask, None, use_max=False, symmetric=bool(symmetric),
                           **_sampling_args(sampling))



# Compiled as one program, like `_surface_metric`.
@functools.partial(jax.jit, static_argnames=("static_sampling", "wide"))
def _surface_dice(pred_mask, mask, tolerance, traced_sampling, *, static_sampling, wide):
    """Normalized surface Dice of two masks (see :func:`surface_dice`)."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    surf_p, surf_g, to_g, to_p = _directed_distances(pred_mask, mask, sampling)
    n_p, n_g = jnp.sum(surf_p), jnp.sum(surf_g)
    tau = jnp.asarray(tolerance, to_g.dtype)
    # |S_p ∩ N_τ(S_g)| + |S_g ∩ N_τ(S_p)|: surface elements within τ of the other surface.
    close = jnp.sum(surf_p & (to_g <= tau)) + jnp.sum(surf_g & (to_p <= tau))
    value = close.astype(to_g.dtype) / jnp.maximum(n_p + n_g, 1).astype(to_g.dtype)
    value = jnp.where((n_p > 0) & (n_g > 0), value, 0)  # one surface empty: nothing matches
    return jnp.where((n_p == 0) & (n_g == 0), jnp.nan, value)


def surface_dice(
    pred_mask: chex.Array,
    mask: chex.Array,
    *,
    tolerance: float,
    sampling: Sampling = None,
) -> jax.Array:
    r"""Normalized surface Dice (NSD) of two binary masks at tolerance :math:`\tau`.

    .. math::

       \mathrm{NSD}_\tau(A, B) = \frac{|\partial A \cap N_\tau(\partial B)|
                                      + |\partial B \cap N_\tau(\partial A)|}
                                     {|\partial A| + |\partial B|}

    with :math:`\partial A` the surface of mask :math:`A` (the prediction),
    :math:`\partial B` that of :math:`B` (the target), :math:`|\cdot|` a number
    of surface elements, and :math:`N_\tau(\partial B) = \{x : d(x, \partial B)
    \le \tau\}` the elements within distance :math:`\tau` (in units of
    ``sampling``) of the other surface. It is the fraction of both surfaces
    that lies within the tolerance of the other one, in ``[0, 1]``.

    Surfaces and distances are those of :func:`hausdorff_distance`: mask elements
    with a face neighbour (4-connectivity in 2D, 6 in 3D) outside the mask, the
    outside of the array counting as outside (``m & ~scipy.ndimage.binary_erosion(m)``
    with ``border_value=0``); :math:`d` from
    :func:`~segloss_jax._src.distance.distance_transform_edt` of the other
    surface's complement, with ``sampling``. A distance exactly :math:`\tau`
    counts.

    Empty masks: NaN when both surfaces are empty (nothing to compare), 0 when
    exactly one is.

    Args:
      pred_mask: ``[*spatial]`` predicted mask (1 to 3 axes; nonzero = foreground,
        bool or 0/1 integers). ``vmap`` over batch and class axes.
      mask: ``[*spatial]`` target mask.
      tolerance: :math:`\tau \ge 0`, the accepted distance in units of ``sampling``
        (a float or a traced scalar).
      sampling: voxel spacing, one float for all axes or one per axis.

    Returns:
      A float32 scalar in ``[0, 1]``, or NaN (float64 for float64 ``sampling``
      under x64).

    Raises:
      ValueError: the masks' shapes differ or have more than 3 axes, ``tolerance``
        is negative (when known at trace time), or ``sampling`` is invalid.

    Matches MONAI ``compute_surface_dice(class_thresholds=[τ], spacing=...,
    use_subvoxels=False)`` (``SurfaceDiceMetric``) on the one-hot channel of a
    class, including its empty conventions (NaN, 0): MONAI takes the surface as
    ``binary_erosion(m) ^ m`` with scipy's default cross structure after
    cropping to the foreground with a margin of 1, padding with background
    where the margin leaves the image, so its surface is this one. MONAI drops
    the background channel by default (``include_background=False``); here you
    choose the masks. The DeepMind ``surface-distance`` package (and MONAI with
    ``use_subvoxels=True``) measures surfaces by surfel areas on the grid
    between voxels and weighs each surfel by its area, so its values differ from
    these element counts, most for coarse or anisotropic grids.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> a = jnp.zeros((6, 6), bool).at[1:3, 1:3].set(True)
      >>> b = jnp.zeros((6, 6), bool).at[1:3, 1:5].set(True)
      >>> print(sl.surface_dice(a, b, tolerance=0.0), sl.surface_dice(a, b, tolerance=1.0))
      0.6666667 0.8333333
      >>> print(sl.surface_dice(a, b, tolerance=2.0))
      1.0
      >>> batch = jnp.stack([a, b])  # vmap for a batch of mask pairs
      >>> print(jax.vmap(lambda p, g: sl.surface_dice(p, g, tolerance=1.0))(batch, batch))
      [1. 1.]

    References:
      Nikolov et al., "Clinically applicable segmentation of head and neck anatomy
      for radiotherapy: deep learning algorithm development and validation
      study", Journal of Medical Internet Research 2021 (arXiv:1809.04430).
    """
    pred_mask, mask = _check_masks(pred_mask, mask)
    checks.check_nonnegative("tolerance", tolerance)
    return _surface_dice(pred_mask, mask, tolerance, **_sampling_args(sampling))


# --------------------------------------------------------------------------- calibration

CALIBRATION_NORMS = ("l1", "max")


def _check_num_bins(num_bins) -> None:
    if not isinstance(num_bins, numbers.Integral) or isinstance(num_bins, bool):
        raise TypeError(
            f"`num_bins` must be a Python int (it fixes the number of bins, static under "
            f"jit), got {num_bins!r}.")
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be at least 1, got {num_bins}.")


def _check_calibration_inputs(probs, labels, where, ignore_index) -> tuple[jax.Array, jax.Array]:
    probs, labels = jnp.asarray(probs), jnp.asarray(labels)
    checks.check_logits(probs, name="probs")
    labels = _check_int(labels, "labels")
    if labels.shape != probs.shape[:-1]:
        raise ValueError(
            f"`labels` has shape {labels.shape} but `probs` has shape {probs.shape}; integer "
            f"labels must have shape [B, *spatial] = {probs.shape[:-1]}.")
    checks.check_ignore_index(ignore_index, "int")
    checks.check_where(where, labels.shape)
    return probs, labels


def _calibration_bins(probs, labels, where, *, num_bins, ignore_index, axis_name):
    """Per bin: ``[2, n]`` int32 counts (pixels, correct predictions) and ``[n]`` sums of
    confidences."""
    dtype = jnp.promote_types(probs.dtype, jnp.float32)
    probs = probs.astype(dtype)
    if probs.shape[-1] == 1:  # binary: the two classes [1 − p, p]
        p = probs[..., 0]
        confidence, pred = jnp.maximum(p, 1 - p), (p > 0.5).astype(jnp.int32)
    else:
        confidence, pred = jnp.max(probs, axis=-1), jnp.argmax(probs, axis=-1)
    labels, valid = counted(labels, max(probs.shape[-1], 2), where, ignore_index)
    # Bin k holds (e_k, e_{k+1}], e_k = k/n in `dtype`; the first bin also holds 0: the bin
    # index is the number of inner edges strictly below the confidence.
    edges = jnp.arange(1, num_bins, dtype=dtype) / num_bins
    index = jnp.searchsorted(edges, confidence, side="left")
    index = jnp.where(valid, index, num_bins).ravel()  # excluded pixels: a dropped extra bin
    ones_correct = jnp.stack([jnp.ones_like(pred), pred == labels], -1).astype(jnp.int32)
    counts = jax.ops.segment_sum(ones_correct.reshape(-1, 2), index, num_segments=num_bins + 1)
    confidences = jax.ops.segment_sum(confidence.ravel(), index, num_segments=num_bins + 1)
    counts, confidences = counts[:num_bins].T, confidences[:num_bins]
    if axis_name is not None:
        counts, confidences = jax.lax.psum((counts, confidences), axis_name)
    return counts, confidences


def _calibration_from_bins(counts, confidences, norm):
    r"""ECE (``"l1"``) or MCE (``"max"``) from per-bin sums; NaN when every bin is empty.

    ``counts`` ``[2, n]``: pixels and correct predictions per bin; ``confidences`` ``[n]``
    their summed confidences. A bin's weighted gap
    :math:`|B_k|\,|\mathrm{conf}(B_k) - \mathrm{acc}(B_k)| = |\sum c_i - \#\mathrm{correct}|`.
    """
    count, correct = counts.astype(confidences.dtype)
    gap = jnp.abs(confidences - correct)
    if norm == "l1":
        return _ratio_or_nan(jnp.sum(gap), jnp.sum(count))
    per_bin = jnp.where(count > 0, gap / jnp.maximum(count, 1), -jnp.inf)
    return jnp.where(jnp.any(count > 0), jnp.max(per_bin), jnp.nan)


def calibration_error(
    probs: chex.Array,
    labels: chex.Array,
    *,
    num_bins: int = 15,
    norm: str = "l1",
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    axis_name: str | None = None,
) -> jax.Array:
    r"""Top-label calibration error of pixel-wise class probabilities (ECE, MCE).

    .. math::

       \mathrm{ECE} = \sum_{k=0}^{n-1} \frac{|B_k|}{|V|}
                      \big|\mathrm{conf}(B_k) - \mathrm{acc}(B_k)\big|, \qquad
       \mathrm{MCE} = \max_{k : |B_k| > 0} \big|\mathrm{conf}(B_k) - \mathrm{acc}(B_k)\big|

    over the valid pixels :math:`V` (``where`` is ``True``, the label is not
    ``ignore_index``), pooled over the whole batch. A pixel's confidence is its
    largest class probability :math:`c_i = \max_c p_{i,c}`, its prediction
    :math:`\hat y_i = \arg\max_c p_{i,c}` (the first class on ties);
    :math:`B_k` holds the pixels with :math:`c_i \in (k/n, (k+1)/n]`
    (:math:`[0, 1/n]` for :math:`k = 0`),
    :math:`\mathrm{conf}(B_k)` is their mean confidence and
    :math:`\mathrm{acc}(B_k)` the fraction with :math:`\hat y_i = y_i`. The bin
    edges are :math:`k/n` rounded to the compute dtype; a confidence equal to an
    edge goes to the lower bin. ``norm="l1"`` weighs the bins by their pixel
    counts (ECE), ``"max"`` takes the worst non-empty bin (MCE).

    ``C == 1`` is binary: ``probs[..., 0]`` is the foreground probability
    :math:`p`, the classes are :math:`[1 - p, p]`, so the confidence is
    :math:`\max(p, 1 - p)` and the prediction :math:`p > 0.5`; labels are 0/1.
    ``probs`` are probabilities (apply the softmax or sigmoid first); they are
    not checked to sum to 1. Labels are integer class indices only (for dense
    one-hot targets pass ``jnp.argmax(labels, -1)``): the accuracy of a soft
    target is not defined. A label outside ``[0, C)`` at a valid pixel is
    reported under ``checkify`` and otherwise not counted.

    No valid pixel: NaN (undefined), for both norms.

    Args:
      probs: floating class probabilities ``[B, *spatial, C]`` (1 to 3 spatial axes).
      labels: integer class indices ``[B, *spatial]``.
      num_bins: number of equal-width bins ``n >= 1`` (a Python int: static).
      norm: ``"l1"`` (expected calibration error) or ``"max"`` (maximum).
      where: optional bool or integer mask broadcastable to ``labels``; pixels
        where it is ``False`` (0) do not count.
      ignore_index: label value whose pixels do not count.
      axis_name: inside ``shard_map``/``pmap``, the mapped batch axis: the bin
        sums are ``psum``-ed over it, so every device gets the value of the global
        batch.

    Returns:
      A float32 scalar in ``[0, 1]`` (float64 for float64 ``probs``), or NaN.

    Raises:
      TypeError: ``probs`` is not floating, ``labels`` not integer, ``num_bins``
        not an int.
      ValueError: shapes do not match, ``num_bins < 1`` or an unknown ``norm``.

    MONAI's ``CalibrationErrorMetric`` is class-wise: it bins each channel's
    probability against that channel's one-hot target, per image and channel,
    then averages. Fed the maps of this function, the confidence
    ``max(probs, -1)`` as ``y_pred`` and the correctness ``argmax(probs, -1) ==
    labels`` as ``y``, with the valid pixels of the batch as one image
    (``[1, 1, N]``), ``num_bins=n``, ``right=False`` (its bins are then
    ``(e_k, e_{k+1}]`` with edges ``k(1 + ε)/n``, ``ε`` the float32 epsilon) and
    ``calibration_reduction="expected"`` / ``"maximum"``, it gives this value.
    Its ``"average"`` (unweighted mean over bins) has no equivalent here.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> probs = jnp.array([[[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]])
      >>> labels = jnp.array([[0, 1, 1, 1]])
      >>> print(sl.calibration_error(probs, labels, num_bins=5))
      0.25
      >>> print(round(float(sl.calibration_error(probs, labels, num_bins=5, norm="max")), 4))
      0.4

    References:
      Naeini, Cooper & Hauskrecht, "Obtaining well calibrated probabilities using
      Bayesian binning", AAAI 2015; Guo et al., "On calibration of modern neural
      networks", ICML 2017.
    """
    _check_num_bins(num_bins)
    checks.check_choice("norm", norm, CALIBRATION_NORMS)
    probs, labels = _check_calibration_inputs(probs, labels, where, ignore_index)
    return _calibration(probs, labels, where, num_bins=int(num_bins), norm=norm,
                        ignore_index=ignore_index, axis_name=axis_name)


# One compiled program per shape and option set.
@functools.partial(jax.jit, static_argnames=("num_bins", "norm", "ignore_index", "axis_name"))
def _calibration(probs, labels, where, *, num_bins, norm, ignore_index, axis_name):
    bins = _calibration_bins(probs, labels, where, num_bins=num_bins,
                             ignore_index=ignore_index, axis_name=axis_name)
    return _calibration_from_bins(*bins, norm)


_calibration_sums = jax.jit(_calibration_bins,
                            static_argnames=("num_bins", "ignore_index", "axis_name"))


class CalibrationErrorMetric(NamedTuple):
    r"""Streaming calibration error: exact ECE and MCE over a whole data set.

    A pure pytree state like :class:`ConfusionMatrixMetric`: ``init`` makes an
    empty one, ``update`` adds a batch's per-bin sums (pixels, correct
    predictions, confidences; definitions as in :func:`calibration_error`),
    ``merge`` adds two states, ``compute`` gives the errors of everything seen.
    Because sums (not errors) are accumulated, the result equals
    :func:`calibration_error` of the concatenated data set.

    Pixel and correct counts are held as ``high·2³⁰ + low`` in two int32
    arrays (exact up to 2⁶¹ per bin); the confidence sums are float32 (float64
    under x64). One ``update`` adds fewer than 2³¹ pixels.

    Attributes:
      high: ``[2, n]`` int32, multiples of 2³⁰ in the counts (row 0: pixels,
        row 1: correct predictions).
      low: ``[2, n]`` int32 in ``[0, 2³⁰)``, the rest.
      confidence: ``[n]`` float, the sum of the confidences of each bin.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> state = sl.CalibrationErrorMetric.init(5)
      >>> state = state.update(jnp.array([[[0.9, 0.1], [0.8, 0.2]]]), jnp.array([[0, 1]]))
      >>> state = state.update(jnp.array([[[0.3, 0.7], [0.4, 0.6]]]), jnp.array([[1, 1]]))
      >>> print(state.compute()["ece"])
      0.25
    """

    high: jax.Array
    low: jax.Array
    confidence: jax.Array

    @classmethod
    def init(cls, num_bins: int = 15) -> CalibrationErrorMetric:
        """An empty state with ``num_bins`` equal-width bins (a Python int)."""
        _check_num_bins(num_bins)
        zeros = jnp.zeros((2, num_bins), jnp.int32)
        return cls(zeros, zeros, jnp.zeros(num_bins, float_dtype()))

    @property
    def num_bins(self) -> int:
        return self.confidence.shape[-1]

    def update(
        self,
        probs: chex.Array,
        labels: chex.Array,
        *,
        where: chex.Array | None = None,
        ignore_index: int | None = None,
        axis_name: str | None = None,
    ) -> CalibrationErrorMetric:
        """Adds a batch (arguments as :func:`calibration_error`).

        With ``axis_name`` (inside ``shard_map``/``pmap``) the batch sums are
        ``psum``-ed over that mapped axis first, so every device holds the
        state of the global batch.
        """
        probs, labels = _check_calibration_inputs(probs, labels, where, ignore_index)
        counts, confidences = _calibration_sums(probs, labels, where, num_bins=self.num_bins,
                                                ignore_index=ignore_index, axis_name=axis_name)
        high, low = _carry(self.high, self.low.astype(jnp.uint32) + counts.astype(jnp.uint32))
        return CalibrationErrorMetric(
            high, low, self.confidence + confidences.astype(self.confidence.dtype))

    def merge(self, other: CalibrationErrorMetric) -> CalibrationErrorMetric:
        """The state of both data sets (e.g. from two hosts)."""
        high, low = _carry(self.high + other.high,
                           self.low.astype(jnp.uint32) + other.low.astype(jnp.uint32))
        return CalibrationErrorMetric(high, low, self.confidence + other.confidence)

    def counts(self) -> jax.Array:
        """``[2, n]`` pixel and correct counts per bin, as floats."""
        dtype = self.confidence.dtype
        return self.high.astype(dtype) * (1 << _LOW_BITS) + self.low.astype(dtype)

    def compute(self) -> dict[str, jax.Array]:
        """Errors of everything seen, and the reliability diagram.

        Returns:
          ``{"ece": [], "mce": [], "count": [n], "confidence": [n],
          "accuracy": [n]}``: the expected and maximum calibration errors (NaN
          before any pixel), and per bin its pixel count, mean confidence and
          accuracy (NaN for an empty bin).
        """
        return _calibration_report(self)


@jax.jit
def _calibration_report(state: CalibrationErrorMetric) -> dict[str, jax.Array]:
    """:meth:`CalibrationErrorMetric.compute`, as one compiled program."""
    counts = state.counts()
    count, correct = counts
    return {"ece": _calibration_from_bins(counts, state.confidence, "l1"),
            "mce": _calibration_from_bins(counts, state.confidence, "max"),
            "count": count, "confidence": _ratio_or_nan(state.confidence, count),
            "accuracy": _ratio_or_nan(correct, count)}
