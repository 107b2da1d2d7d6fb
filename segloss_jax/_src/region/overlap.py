r"""Region losses from the soft counts tp, fp, fn (and tn): Dice, Jaccard, Tversky and
their relatives, the generalized Dice and the Matthews correlation.

Each loss here is its per-unit formula, written as in its paper, above the
public function that names the sums it needs. :mod:`segloss_jax._src.engine`
computes those sums over the valid pixels of every unit (image and class with
``per_image=True``, class over the batch otherwise), selects and reduces the
units, and gives every loss the same fused backward pass (a
``jax.custom_vjp``): one elementwise pass over the pixels from
:math:`\partial L/\partial S` through the activation's Jacobian.

In the formulas :math:`p` are the probabilities, :math:`g` the dense target,
:math:`tp = \sum pg`, :math:`fp = \sum p(1-g)`, :math:`fn = \sum (1-p)g` over
the valid pixels of a unit, and :math:`(s_n, s_d)` the ``smooth`` pair; the
keywords shared by every region loss are described once, on the conventions
page.
"""

from __future__ import annotations

import typing
from typing import Literal

import jax
import jax.numpy as jnp

from segloss_jax._src import checks, reduce
from segloss_jax._src.engine import Params, RegionOptions, Sums, ratio, region_loss
from segloss_jax._src.inputs import safe_log
from segloss_jax._src.registry import register
from segloss_jax._src.types import (
    AnyActivation,
    ArrayLike,
    AxisName,
    ClassMode,
    Reduction,
    Scalar,
    Smooth,
)

__all__ = [
    "dice_loss",
    "jaccard_loss",
    "tversky_loss",
    "focal_tversky_loss",
    "sensitivity_specificity_loss",
    "log_cosh_dice_loss",
    "generalized_dice_loss",
    "mcc_loss",
]

TP = ("tp", "sum_p", "sum_g")  # the sums of tp, fp, fn


def dice_coefficient(s: Sums, params: Params, *, squared: bool = False) -> jax.Array:
    """``(2tp + s_n)/(2tp + fp + fn + s_d)``, or ``Σp² + Σg²`` below with ``squared``."""
    if squared:
        return ratio(2 * s.tp, s.sum_p2 + s.sum_g2, params)
    return ratio(2 * s.tp, 2 * s.tp + s.fp + s.fn, params)


def dice_units(s: Sums, params: Params, *, squared: bool = False, log: bool = False) -> jax.Array:
    score = dice_coefficient(s, params, squared=squared)
    # -log is clamped at the smallest normal float: finite for a zero score.
    return -safe_log(score) if log else 1 - score


def dice_sums(squared: bool) -> tuple[str, ...]:
    return ("tp", "sum_g", "sum_p2", "sum_g2") if squared else TP


@register()
def dice_loss(
    logits: ArrayLike, labels: ArrayLike, *, squared: bool = False, log: bool = False,
    activation: AnyActivation = "softmax", smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Soft Dice loss (Milletari et al.), per class and per image or per batch.

    .. math::

       L = 1 - \frac{2\,tp + s_n}{2\,tp + fp + fn + s_d}
         = 1 - \frac{2 \sum p g + s_n}{\sum p + \sum g + s_d}

    ``squared=True`` uses :math:`\sum p^2 + \sum g^2` as the denominator (V-Net);
    ``log=True`` returns :math:`-\log` of the score instead of :math:`1 -` score
    (clamped at the smallest normal float, so finite at a zero score).

    :math:`p` are the probabilities, :math:`g` the dense target, sums run over
    the valid pixels of a unit (class :math:`c` over the batch, or image
    :math:`b` and class :math:`c` with ``per_image=True``), :math:`tp = \sum pg`,
    :math:`fp = \sum p(1-g)`, :math:`fn = \sum (1-p)g`, and
    :math:`(s_n, s_d)` the ``smooth`` pair. With soft targets the plain Dice is
    not minimised at :math:`p = g`; use :func:`dice_semimetric_loss` for them.

    Empty masks: with ``classes="all"`` a class absent from a unit scores
    :math:`s_n / (\sum p + s_d)` (loss near 1 unless nothing is predicted); a
    unit with no valid pixel scores :math:`s_n / s_d`; a zero denominator after
    smoothing scores 1 (loss 0) with zero gradient. ``classes="present"`` drops
    absent classes from the average instead.

    The gradient is a ``jax.custom_vjp`` shared by all region losses: one fused
    elementwise pass over the pixels (see the module docstring).

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` class indices (``C == 1``: 0/1 foreground)
        or dense ``[B, *spatial, C]`` targets in ``[0, 1]``; no gradient.
      squared: square :math:`p` and :math:`g` in the denominator.
      log: return :math:`-\log(\text{score})`.

    Returns:
      A scalar, or for ``reduction="none"`` the loss of every unit, ``[B, C]``
      (``per_image=True``) or ``[C]``, 0 for dropped units. Float32 (float64
      for float64 inputs).

    Peers, configured alike (all classes present, or with the conventions
    above): MONAI ``DiceLoss(softmax=True, to_onehot_y=True, batch=b,
    smooth_nr=a, smooth_dr=d, squared_pred=q, include_background=i)`` is
    ``dice_loss(per_image=not b, smooth=(a, d), squared=q, include_background=i)``.
    segmentation_models_pytorch ``DiceLoss("multiclass", smooth=s, log_loss=l)``
    adds ``s`` to numerator and denominator, clamps the denominator at ``eps``
    and zeroes absent classes before a mean over all ``C``: it is
    ``dice_loss(smooth=s, log=l, classes="present", reduction="sum") / C``
    (and ``dice_loss(smooth=s, log=l)`` when every class is present).
    kornia ``dice_loss(average="macro", eps=e)`` is
    ``dice_loss(per_image=True, smooth=(0, e))``; its ``"micro"`` average pools
    the classes into one score per image and has no equivalent here.
    optax ``dice_loss(smooth=s)`` (α = β = 0.5) is
    ``dice_loss(per_image=True, smooth=2 * s, reduction="none").mean(-1)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])  # [B=1, W=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.dice_loss(logits, labels):.4f}")
      0.3388
      >>> print(sl.dice_loss(logits, labels, reduction="none").round(4))  # per class
      [0.3645 0.3131]

    References:
      Milletari, Navab & Ahmadi, "V-Net: Fully convolutional neural networks for
      volumetric medical image segmentation", 3DV 2016; Sudre et al.,
      "Generalised Dice overlap as a deep learning loss function for highly
      unbalanced segmentations", DLMIA 2017.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=dice_sums(squared),
                       unit_loss=lambda s, params: dice_units(s, params, squared=squared, log=log))


def jaccard_units(s: Sums, params: Params) -> jax.Array:
    return 1 - ratio(s.tp, s.tp + s.fp + s.fn, params)


@register()
def jaccard_loss(
    logits: ArrayLike, labels: ArrayLike, *, activation: AnyActivation = "softmax",
    smooth: Smooth = 1e-5, per_image: bool = False, include_background: bool = True,
    classes: ClassMode = "all", class_weights: ArrayLike | None = None,
    ignore_index: int | None = None, where: ArrayLike | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Soft Jaccard (IoU) loss, with a one-pass custom backward.

    .. math::

       L = 1 - \frac{tp + s_n}{tp + fp + fn + s_d}
         = 1 - \frac{\sum p g + s_n}{\sum p + \sum g - \sum p g + s_d}

    Symbols, units and empty-mask conventions as in :func:`dice_loss`:
    :math:`tp = \sum pg`, :math:`fp = \sum p(1-g)`, :math:`fn = \sum (1-p)g` over
    the valid pixels of a unit, :math:`(s_n, s_d)` the ``smooth`` pair; an
    absent class scores :math:`s_n / (\sum p + s_d)` with ``classes="all"``; a
    zero smoothed denominator scores 1 with zero gradient. For soft targets use
    :func:`jaccard_metric_loss`.

    The gradient is a ``jax.custom_vjp``: the forward pass saves the
    probabilities and the ``[B, C]`` sums; the backward pass takes
    :math:`\partial L/\partial(tp, \sum p)` from the small per-unit formula and
    forms :math:`\partial L / \partial x` in one fused elementwise pass through the
    activation's Jacobian. It equals autodiff of the formula (tested to 1e-6 in
    float64) at a fraction of the time and memory (``benchmarks/bench_region.py``).

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets;
        no gradient.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: segmentation_models_pytorch ``JaccardLoss("multiclass", smooth=s)``
    (``s`` on both sides, denominator clamped at ``eps``, absent classes zeroed
    before a mean over all ``C``) is
    ``jaccard_loss(smooth=s, classes="present", reduction="sum") / C``, and
    ``jaccard_loss(smooth=s)`` when every class is present. MONAI
    ``DiceLoss(jaccard=True, smooth_nr=a, smooth_dr=d, batch=b)`` computes
    :math:`1 - (2tp + a)/(2(tp + fp + fn) + d)`, which is
    ``jaccard_loss(per_image=not b, smooth=(a / 2, d / 2))``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.jaccard_loss(logits, labels):.4f}")
      0.5056

    References:
      Rahman & Wang, "Optimizing intersection-over-union in deep neural networks
      for image segmentation", ISVC 2016; Berman, Rannen Triki & Blaschko,
      "The Lovász-softmax loss", CVPR 2018.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=TP, unit_loss=jaccard_units)


def tversky_index(s: Sums, params: Params) -> jax.Array:
    return ratio(s.tp, s.tp + params["alpha"] * s.fp + params["beta"] * s.fn, params)


@register()
def tversky_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha: Scalar = 0.3, beta: Scalar = 0.7,
    activation: AnyActivation = "softmax", smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Tversky loss: Dice with separate weights on false positives and negatives.

    .. math::

       L = 1 - TI, \qquad TI = \frac{tp + s_n}{tp + \alpha\, fp + \beta\, fn + s_d}

    :math:`\alpha` weighs false positives, :math:`\beta` false negatives;
    :math:`\alpha = \beta = 0.5` is :func:`dice_loss`, :math:`\alpha = \beta = 1`
    is :func:`jaccard_loss`, and :math:`\beta > \alpha` favours recall (the paper
    uses :math:`\alpha = 0.3, \beta = 0.7`). Symbols, units and empty-mask
    conventions as in :func:`dice_loss`; :math:`fp = \sum p(1-g)` and
    :math:`fn = \sum (1-p)g` are exact for soft targets too.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      alpha: non-negative weight of false positives.
      beta: non-negative weight of false negatives.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: MONAI ``TverskyLoss(alpha=a, beta=b, smooth_nr=n, smooth_dr=d,
    batch=t, softmax=True, to_onehot_y=True)`` is
    ``tversky_loss(alpha=a, beta=b, smooth=(n, d), per_image=not t)``.
    segmentation_models_pytorch ``TverskyLoss("multiclass", alpha=a, beta=b,
    smooth=s)`` (absent classes zeroed before a mean over all ``C``) is
    ``tversky_loss(alpha=a, beta=b, smooth=s, classes="present", reduction="sum") / C``.
    optax ``dice_loss(alpha=a, beta=b, smooth=s)`` is
    ``tversky_loss(alpha=a, beta=b, smooth=s, per_image=True,
    reduction="none").mean(-1)``. kornia's ``tversky_loss`` pools the classes of
    an image into one score and has no equivalent here.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.tversky_loss(logits, labels, alpha=0.3, beta=0.7):.4f}")
      0.3290

    References:
      Salehi, Erdogmus & Gholipour, "Tversky loss function for image segmentation
      using 3D fully convolutional deep networks", MLMI 2017.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    checks.check_nonnegative("alpha", alpha)
    checks.check_nonnegative("beta", beta)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=TP, params={"alpha": alpha, "beta": beta},
                       unit_loss=lambda s, params: 1 - tversky_index(s, params))


def focal_tversky_units(s: Sums, params: Params) -> jax.Array:
    # Clamped at 0: with s_num > s_den the index may exceed 1.
    base = jnp.maximum(1 - tversky_index(s, params), 0)
    return reduce.safe_pow(base, params["gamma"])  # finite gradient at base == 0


@register()
def focal_tversky_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha: Scalar = 0.3, beta: Scalar = 0.7,
    gamma: Scalar = 0.75, activation: AnyActivation = "softmax", smooth: Smooth = 1e-5,
    per_image: bool = False, include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Focal Tversky loss: the Tversky loss of each unit raised to a power.

    .. math::

       L = (1 - TI)^{\gamma}, \qquad TI = \frac{tp + s_n}{tp + \alpha\, fp + \beta\, fn + s_d}

    applied per unit before the class mean. Abraham & Khan write the exponent as
    :math:`1/\gamma` with :math:`\gamma = 4/3`; here ``gamma`` is the exponent
    itself (default 0.75, as in the authors' code). :math:`\gamma = 1` is
    :func:`tversky_loss`; :math:`\gamma < 1` raises the loss, and its gradient,
    of units that are nearly right (small :math:`1 - TI`) relative to poor ones,
    :math:`\gamma > 1` does the opposite. :math:`1 - TI` is clamped at 0 and the
    gradient there is 0 (finite also for :math:`\gamma < 1`). Symbols and
    conventions as in :func:`tversky_loss` and :func:`dice_loss`.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      alpha: non-negative weight of false positives.
      beta: non-negative weight of false negatives.
      gamma: non-negative exponent.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: the authors' Keras code (binary, every pixel of the batch pooled,
    0.7 on false negatives, exponent 0.75, smooth 1) is
    ``focal_tversky_loss(activation="sigmoid", alpha=0.3, beta=0.7, gamma=0.75,
    smooth=1.0)`` with ``C == 1``. segmentation_models_pytorch's
    ``FocalTverskyLoss`` computes :math:`1 - (1 - TI)^{\gamma}` and then raises
    the class mean to :math:`\gamma` again, a different quantity.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.focal_tversky_loss(logits, labels):.4f}")
      0.4336

    References:
      Abraham & Khan, "A novel focal Tversky loss function with improved
      attention U-Net for lesion segmentation", ISBI 2019.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        checks.check_nonnegative(name, value)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=TP, unit_loss=focal_tversky_units,
                       params={"alpha": alpha, "beta": beta, "gamma": gamma})


def sensitivity_specificity_units(s: Sums, params: Params) -> jax.Array:
    # Error rates, so only the denominators are smoothed (a smoothed numerator
    # would penalise a perfect prediction); an empty denominator means no error.
    negatives = s.count - s.sum_g
    sensitivity_err = reduce.safe_div(s.sens_err, s.sum_g + params["s_den"])
    specificity_err = reduce.safe_div(s.spec_err, negatives + params["s_den"])
    return params["r"] * sensitivity_err + (1 - params["r"]) * specificity_err


@register()
def sensitivity_specificity_loss(
    logits: ArrayLike, labels: ArrayLike, *, r: Scalar = 0.05,
    activation: AnyActivation = "softmax", smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Sensitivity-specificity loss: squared errors on positives and negatives.

    .. math::

       L = r\, \frac{\sum (g - p)^2\, g}{\sum g + s_d}
         + (1 - r)\, \frac{\sum (g - p)^2 (1 - g)}{\sum (1 - g) + s_d}

    The first term is a soft miss rate (1 − sensitivity), the second a soft
    false-alarm rate (1 − specificity); :math:`r` trades them off (Brosch et al.
    use a small :math:`r`, 0.05, because the negatives vastly outnumber the
    positives). The terms are error rates, so only the denominator smoothing
    :math:`s_d` is used (a smoothed numerator would penalise a perfect
    prediction); a term whose smoothed denominator is 0 (no positive, or no
    negative, pixel and ``s_d = 0``) is 0. Sums run over the valid pixels of a
    unit, as in :func:`dice_loss`; the loss is 0 exactly when :math:`p = g`.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      r: weight of the sensitivity term, in ``[0, 1]``.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: none of segmentation_models_pytorch, MONAI or kornia provides it;
    NiftyNet's ``sensitivity_specificity_loss`` computes the same per class of
    the batch (``per_image=False``) with ``r=0.05`` and ``s_d = 1e-5``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.sensitivity_specificity_loss(logits, labels):.4f}")
      0.1221

    References:
      Brosch et al., "Deep convolutional encoder networks for multiple sclerosis
      lesion segmentation", MICCAI 2015.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    checks.check_in_range("r", r, 0.0, 1.0)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=("sens_err", "spec_err", "sum_g", "count"),
                       unit_loss=sensitivity_specificity_units, params={"r": r})


def log_cosh_dice_units(s: Sums, params: Params) -> jax.Array:
    # The Dice loss lies in [0, 1] (a little beyond with unequal smooths): cosh cannot overflow.
    return jnp.log(jnp.cosh(1 - dice_coefficient(s, params)))


@register()
def log_cosh_dice_loss(
    logits: ArrayLike, labels: ArrayLike, *, activation: AnyActivation = "softmax",
    smooth: Smooth = 1e-5, per_image: bool = False, include_background: bool = True,
    classes: ClassMode = "all", class_weights: ArrayLike | None = None,
    ignore_index: int | None = None, where: ArrayLike | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Log-cosh Dice loss: :math:`\log\cosh` of the Dice loss of each unit.

    .. math::

       L = \log\cosh\left(1 - \frac{2\,tp + s_n}{2\,tp + fp + fn + s_d}\right)

    :math:`\log\cosh x \approx x^2/2` for small :math:`x`: a smooth, bounded
    (:math:`\le \log\cosh 1 \approx 0.434`) version of the Dice loss. Applied per
    unit, then reduced; Jadon applies it to the already averaged Dice loss,
    which is the same for a single unit (e.g. ``C == 1`` with
    ``per_image=False``).
    Symbols, units and empty-mask conventions as in :func:`dice_loss`.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: none of segmentation_models_pytorch, MONAI or kornia provides it.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.log_cosh_dice_loss(logits, labels):.4f}")
      0.0566

    References:
      Jadon, "A survey of loss functions for semantic segmentation", CIBCB 2020.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=TP, unit_loss=log_cosh_dice_units)


GDLWeighting = Literal["square", "simple", "uniform"]


def generalized_dice_weights(sum_g: jax.Array, keep: jax.Array, weighting: str) -> jax.Array:
    """``w_c = 1/(Σg_c)^2``, ``1/Σg_c`` or ``1`` over the kept classes, 0 elsewhere.

    A kept class whose weight is infinite (absent from the unit) gets the largest
    finite weight of the unit (MONAI's convention); if there is none, every
    weight is 0.
    """
    if weighting == "square":
        raw = 1 / jnp.square(sum_g)
    elif weighting == "simple":
        raw = 1 / sum_g
    else:
        raw = jnp.ones_like(sum_g)
    finite = jnp.isfinite(raw) & keep
    largest = jnp.max(jnp.where(finite, raw, 0), axis=-1, keepdims=True)
    return jnp.where(keep, jnp.where(finite, raw, largest), 0)


def generalized_dice_units(s: Sums, params: Params, keep: jax.Array, *,
                           weighting: str) -> jax.Array:
    """One loss per unit of classes, ``[B]`` or ``[]``."""
    w = generalized_dice_weights(jax.lax.stop_gradient(s.sum_g), keep, weighting)
    if "class_weights" in params:
        w = w * jnp.broadcast_to(params["class_weights"], w.shape)
    score = ratio(2 * jnp.sum(w * s.tp, -1), jnp.sum(w * (2 * s.tp + s.fp + s.fn), -1), params)
    return 1 - score


@register()
def generalized_dice_loss(
    logits: ArrayLike, labels: ArrayLike, *, weighting: GDLWeighting = "square",
    activation: AnyActivation = "softmax", smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Generalized Dice loss (Sudre et al.): one Dice over all classes, reweighted.

    .. math::

       L = 1 - \frac{2 \sum_c w_c\, tp_c + s_n}{\sum_c w_c\,(2\,tp_c + fp_c + fn_c) + s_d},
       \qquad w_c = \frac{1}{(\sum g_c)^2}\ (\texttt{"square"}),\
       \frac{1}{\sum g_c}\ (\texttt{"simple"}),\ 1\ (\texttt{"uniform"})

    One loss per unit of classes: per image (``per_image=True``) or for the
    batch. The weights come from the target only (no gradient). A kept class
    absent from the unit (infinite weight) gets the largest finite weight of the
    unit (MONAI's convention); when no kept class has a finite weight, every
    weight is 0 and the loss is :math:`1 - s_n/s_d` (see :doc:`/conventions`), 0 with equal
    smooths. ``include_background=False`` and ``classes="present"`` remove
    classes from the sums (weight 0); a unit with no kept class leaves the mean.
    ``class_weights`` multiply :math:`w_c`. Symbols as in :func:`dice_loss`.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      weighting: ``"square"`` (default), ``"simple"`` or ``"uniform"``.

    Returns:
      A scalar, or for ``reduction="none"`` ``[B]`` (``per_image=True``) or
      ``[]``.

    Peers: MONAI ``GeneralizedDiceLoss(w_type=t, smooth_nr=a, smooth_dr=d,
    batch=b, include_background=i, softmax=True, to_onehot_y=True)`` is
    ``generalized_dice_loss(weighting=t, smooth=(a, d), per_image=not b,
    include_background=i)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.generalized_dice_loss(logits, labels):.4f}")
      0.3529

    References:
      Sudre, Li, Vercauteren, Ourselin & Cardoso, "Generalised Dice overlap as a
      deep learning loss function for highly unbalanced segmentations", DLMIA 2017;
      Crum, Camara & Hill, "Generalized overlap measures", IEEE TMI 2006.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    checks.check_choice("weighting", weighting, typing.get_args(GDLWeighting))
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=TP, pooled=True,
                       unit_loss=lambda s, params, keep: generalized_dice_units(
                           s, params, keep, weighting=weighting))


def mcc_units(s: Sums, params: Params) -> jax.Array:
    """``1 − MCC`` per unit; 0 where ``fp = fn = 0``."""
    fp, fn = s.fp, s.fn
    numerator = s.tp * s.tn - fp * fn + params["s_num"]
    # |tp·tn − fp·fn| ≤ sqrt(...) for non-negative counts, so |MCC| ≤ 1 with s_num = 0.
    squared = (s.tp + fp) * (s.tp + fn) * (s.tn + fp) * (s.tn + fn) + params["s_den"]
    # A zero denominator scores 1 with zero gradient: the root is taken of a positive
    # number only, so its derivative stays finite (the double-where pattern).
    positive = squared > 0
    mcc = jnp.where(positive, numerator / jnp.sqrt(jnp.where(positive, squared, 1)), 1.0)
    # fp = fn = 0 is a perfect unit, whose product vanishes when tp = 0 or tn = 0.
    return jnp.where((fp == 0) & (fn == 0), 0.0, 1 - mcc)


@register()
def mcc_loss(
    logits: ArrayLike, labels: ArrayLike, *, activation: AnyActivation = "softmax",
    smooth: Smooth = (0.0, 1e-5), per_image: bool = False, include_background: bool = True,
    classes: ClassMode = "all", class_weights: ArrayLike | None = None,
    ignore_index: int | None = None, where: ArrayLike | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Matthews correlation coefficient loss (Abhishek & Hamarneh): one minus the soft MCC.

    .. math::

       L = 1 - \frac{tp \cdot tn - fp \cdot fn + s_n}
                    {\sqrt{(tp + fp)(tp + fn)(tn + fp)(tn + fn) + s_d}}

    with the soft confusion counts of a unit, :math:`tp = \sum pg`,
    :math:`fp = \sum p(1-g)`, :math:`fn = \sum (1-p)g` and
    :math:`tn = \sum (1-p)(1-g)` over its valid pixels, and :math:`(s_n, s_d)`
    the ``smooth`` pair (default ``(0.0, 1e-5)``; :math:`s_d` sits under the root,
    as in MONAI). Unlike Dice and Tversky, MCC counts the true negatives, so the
    background of a unit is part of its score; the correlation lies in
    :math:`[-1, 1]`, the loss in :math:`[0, 2]` (with :math:`s_n = 0`).

    Empty masks: a unit with :math:`fp = fn = 0` (perfect, also when it has no
    valid pixel or the class is absent and nothing is predicted) has loss 0 with
    zero gradient (MONAI's ``MCCLoss`` convention: the product in the
    denominator vanishes there). A class absent from a unit but predicted scores
    :math:`s_n/\sqrt{s_d}` (loss 1 with the defaults); a zero denominator after
    smoothing (:math:`s_d = 0`) scores 1 with zero gradient (see
    :doc:`/conventions`). ``classes="present"`` drops absent classes instead.

    The gradient is the ``jax.custom_vjp`` shared by the region losses (one
    fused elementwise pass; see :func:`dice_loss`).

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: MONAI ``MCCLoss(softmax=True, to_onehot_y=True, batch=b,
    smooth_nr=a, smooth_dr=d, include_background=i, reduction="mean")`` is
    ``mcc_loss(per_image=not b, smooth=(a, d), include_background=i)``
    (``sigmoid=True`` is ``activation="sigmoid"``); MONAI's ``reduction="none"``
    is ``[B, C]`` (or ``[C]``) like ours.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])  # [B=1, W=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.mcc_loss(logits, labels):.4f}")
      0.5829

    References:
      Abhishek & Hamarneh, "Matthews correlation coefficient loss for deep
      convolutional networks: application to skin lesion segmentation", ISBI 2021.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=(*TP, "count"), unit_loss=mcc_units)
