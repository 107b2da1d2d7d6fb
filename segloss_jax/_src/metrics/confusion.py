r"""Confusion matrix and the scores made from it.

Contract: predictions and labels are integer class indices of the same shape
(``[B, *spatial]``, or any shape: every element is one pixel). Every function is
pure, jit-able with a static ``num_classes`` and carries no gradient. Counts are
exact integers; scores are float32 (float64 under x64).

* :func:`confusion_matrix` counts (target, prediction) pairs; :func:`iou_score`
  and :func:`dice_score` turn it into per-class scores, NaN for a class absent
  from both prediction and target; :func:`mean_score` averages them ignoring NaN.
* :class:`ConfusionMatrixMetric` accumulates the confusion matrix over a
  validation set (and across devices), so the scores are those of the whole set,
  not a mean of batch means.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src.kernel import kernel
from segloss_jax._src.metrics.counts import (
    add_counts,
    check_int,
    check_labels,
    check_num_classes,
    count_values,
    counted,
    float_dtype,
    ratio_or_nan,
    zero_counts,
)

__all__ = [
    "ConfusionMatrixMetric",
    "confusion_matrix",
    "dice_from_confusion",
    "dice_score",
    "iou_from_confusion",
    "iou_score",
    "mean_score",
]

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
    pred_labels = check_int(pred_labels, "pred_labels")
    if pred_labels.shape != labels.shape:
        raise ValueError(
            f"`pred_labels` has shape {pred_labels.shape} but `labels` has shape "
            f"{labels.shape}; both are class indices per pixel and must match.")
    return _count_pairs(pred_labels, labels, where, num_classes=num_classes,
                        ignore_index=ignore_index)


# One compiled program per shape: eagerly, each of the dozen small ops would compile alone.
@kernel
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
    return ratio_or_nan(tp, tp + fp + fn)


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
    return ratio_or_nan(2 * tp, 2 * tp + fp + fn)


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
    return ratio_or_nan(total, jnp.sum(defined, axis=-1, dtype=total.dtype))


# --------------------------------------------------------------------------- streaming


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
        check_num_classes(num_classes)
        return cls(*zero_counts((num_classes, num_classes)))

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
        return ConfusionMatrixMetric(*add_counts(self.high, self.low, batch))

    def merge(self, other: ConfusionMatrixMetric) -> ConfusionMatrixMetric:
        """The state of both data sets (e.g. from two hosts)."""
        return ConfusionMatrixMetric(*add_counts(self.high + other.high, self.low, other.low))

    @property
    def num_classes(self) -> int:
        return self.low.shape[-1]

    def counts(self) -> jax.Array:
        """``[C, C]`` counts as floats (float32: exact below 2²⁴, then to 6·10⁻⁸ relative)."""
        return count_values(self.high, self.low, float_dtype())

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
        accuracy = ratio_or_nan(jnp.trace(counts), jnp.sum(counts))
        return {"iou": iou, "dice": dice, "mean_iou": mean_score(iou),
                "mean_dice": mean_score(dice), "accuracy": accuracy}
