r"""Calibration of pixel-wise class probabilities.

Contract: probabilities are floating ``[B, *spatial, C]`` (``C == 1`` is binary),
labels integer class indices ``[B, *spatial]``. Every function is pure, jit-able
with a static ``num_bins`` and carries no gradient.

* :func:`calibration_error` bins pixel confidences (ECE, MCE) of class
  probabilities; :class:`CalibrationErrorMetric` accumulates its bins over a
  data set, with exact counts.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import checks
from segloss_jax._src.kernel import kernel
from segloss_jax._src.metrics.counts import (
    add_counts,
    check_int,
    count_values,
    counted,
    float_dtype,
    ratio_or_nan,
    zero_counts,
)

__all__ = ["CalibrationErrorMetric", "calibration_error"]


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
    labels = check_int(labels, "labels")
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
        return ratio_or_nan(jnp.sum(gap), jnp.sum(count))
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
@kernel
def _calibration(probs, labels, where, *, num_bins, norm, ignore_index, axis_name):
    bins = _calibration_bins(probs, labels, where, num_bins=num_bins,
                             ignore_index=ignore_index, axis_name=axis_name)
    return _calibration_from_bins(*bins, norm)


_calibration_sums = kernel(_calibration_bins)


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
        return cls(*zero_counts((2, num_bins)), jnp.zeros(num_bins, float_dtype()))

    def update(
        self,
        probs: chex.Array,
        labels: chex.Array,
        *,
        where: chex.Array | None = None,
        ignore_index: int | None = None,
        axis_name: str | None = None,
    ) -> CalibrationErrorMetric:
        """Adds a batch's per-bin sums (arguments as :func:`calibration_error`, whose
        ``axis_name`` makes every device add those of the global batch)."""
        probs, labels = _check_calibration_inputs(probs, labels, where, ignore_index)
        counts, confidences = _calibration_sums(probs, labels, where, num_bins=self.num_bins,
                                                ignore_index=ignore_index, axis_name=axis_name)
        high, low = add_counts(self.high, self.low, counts)
        return CalibrationErrorMetric(
            high, low, self.confidence + confidences.astype(self.confidence.dtype))

    def merge(self, other: CalibrationErrorMetric) -> CalibrationErrorMetric:
        """The state of both data sets (e.g. from two hosts)."""
        high, low = add_counts(self.high + other.high, self.low, other.low)
        return CalibrationErrorMetric(high, low, self.confidence + other.confidence)

    @property
    def num_bins(self) -> int:
        return self.confidence.shape[-1]

    def counts(self) -> jax.Array:
        """``[2, n]`` pixel and correct counts per bin, as floats."""
        return count_values(self.high, self.low, self.confidence.dtype)

    def compute(self) -> dict[str, jax.Array]:
        """Errors of everything seen, and the reliability diagram.

        Returns:
          ``{"ece": [], "mce": [], "count": [n], "confidence": [n],
          "accuracy": [n]}``: the expected and maximum calibration errors (NaN
          before any pixel), and per bin its pixel count, mean confidence and
          accuracy (NaN for an empty bin).
        """
        return _calibration_report(self)


@kernel
def _calibration_report(state: CalibrationErrorMetric) -> dict[str, jax.Array]:
    """:meth:`CalibrationErrorMetric.compute`, as one compiled program."""
    counts = state.counts()
    count, correct = counts
    return {"ece": _calibration_from_bins(counts, state.confidence, "l1"),
            "mce": _calibration_from_bins(counts, state.confidence, "max"),
            "count": count, "confidence": ratio_or_nan(state.confidence, count),
            "accuracy": ratio_or_nan(correct, count)}
