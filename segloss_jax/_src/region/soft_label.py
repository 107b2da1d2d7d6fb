r"""Soft-label-correct region losses (Wang & Blaschko): the Jaccard metric and Dice
semimetric losses, zero exactly when the probabilities equal the (soft) targets.

They take the L1 intersection :math:`I = (\sum p + \sum g - \sum |p - g|)/2` in
place of :math:`tp`; for hard labels they equal the plain Jaccard and Dice losses
(:mod:`segloss_jax._src.region.overlap`), values and gradients. The engine
(:mod:`segloss_jax._src.engine`) forms the sums and the fused backward pass.
"""

from __future__ import annotations

import jax

from segloss_jax._src.engine import Params, RegionOptions, Sums, ratio, region_loss
from segloss_jax._src.region.overlap import TP
from segloss_jax._src.registry import register
from segloss_jax._src.types import (
    AnyActivation,
    ArrayLike,
    AxisName,
    ClassMode,
    Reduction,
    Smooth,
)

__all__ = ["jaccard_metric_loss", "dice_semimetric_loss"]


def l1_intersection(s: Sums) -> jax.Array:
    """Wang & Blaschko's ``I = (Σp + Σg − Σ|p − g|) / 2``.

    For hard labels it equals ``Σpg``, which integer labels use directly (their
    sums are ``tp, Σp, Σg``: one pass less, and the same gradient).
    """
    if "tp" in s:
        return s.tp
    return (s.sum_p + s.sum_g - s.l1) / 2


def soft_label_sums(inp) -> tuple[str, ...]:
    """``Σ|p − g|`` for dense (possibly soft) labels, ``tp`` for integer labels."""
    return TP if inp.labels is not None else ("sum_p", "sum_g", "l1")


def jaccard_metric_units(s: Sums, params: Params) -> jax.Array:
    intersection = l1_intersection(s)
    return 1 - ratio(intersection, s.sum_p + s.sum_g - intersection, params)


@register()
def jaccard_metric_loss(
    logits: ArrayLike, labels: ArrayLike, *, activation: AnyActivation = "softmax",
    smooth: Smooth = 1e-5, per_image: bool = False, include_background: bool = True,
    classes: ClassMode = "all", class_weights: ArrayLike | None = None,
    ignore_index: int | None = None, where: ArrayLike | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Jaccard metric loss (Wang & Blaschko): soft Jaccard correct for soft labels.

    .. math::

       L = 1 - \frac{I + s_n}{\sum p + \sum g - I + s_d}, \qquad
       I = \frac{\sum p + \sum g - \sum |p - g|}{2}

    The plain soft Jaccard uses :math:`I = \sum p g`, which for a soft target is
    not minimised at :math:`p = g` (with :math:`g = 0.5` it pushes :math:`p` to
    1), so label smoothing or distilled targets bias it. With the L1 intersection
    the loss (with equal smooths) is 0 exactly when :math:`p = g`, for any
    :math:`g \in [0, 1]`, and is a metric in :math:`(p, g)`. For hard labels
    :math:`I = \sum pg` and this equals :func:`jaccard_loss`, values and
    gradients (integer labels, always hard, use :math:`\sum pg` directly).
    Symbols, units and conventions as in :func:`dice_loss`;
    :math:`\partial |p - g| / \partial p` at :math:`p = g` is taken as
    :math:`1 - 2g`.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense (soft) ``[B, *spatial, C]``.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: MONAI ``DiceLoss(jaccard=True, soft_label=True, smooth_nr=a,
    smooth_dr=d, batch=b)`` is ``jaccard_metric_loss(per_image=not b,
    smooth=(a / 2, d / 2))``; recent segmentation_models_pytorch ``JaccardLoss``
    also forms its intersection this way.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> probs = jnp.array([[[0.9, 0.1], [0.3, 0.7]]])  # activation=None
      >>> soft = jnp.array([[[0.9, 0.1], [0.3, 0.7]]])   # soft target equal to probs
      >>> print(f"{sl.jaccard_metric_loss(probs, soft, activation=None):.4f}")
      0.0000
      >>> print(f"{sl.jaccard_loss(probs, soft, activation=None):.4f}")
      0.4727

    References:
      Wang, Ning & Blaschko, "Jaccard metric losses: Optimizing the Jaccard index
      with soft labels", NeurIPS 2023.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=soft_label_sums(inp), unit_loss=jaccard_metric_units)


def dice_semimetric_units(s: Sums, params: Params) -> jax.Array:
    return 1 - ratio(2 * l1_intersection(s), s.sum_p + s.sum_g, params)


@register()
def dice_semimetric_loss(
    logits: ArrayLike, labels: ArrayLike, *, activation: AnyActivation = "softmax",
    smooth: Smooth = 1e-5, per_image: bool = False, include_background: bool = True,
    classes: ClassMode = "all", class_weights: ArrayLike | None = None,
    ignore_index: int | None = None, where: ArrayLike | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Dice semimetric loss (Wang & Blaschko): soft Dice correct for soft labels.

    .. math::

       L = 1 - \frac{2I + s_n}{\sum p + \sum g + s_d}, \qquad
       I = \frac{\sum p + \sum g - \sum |p - g|}{2}

    i.e. :math:`L = (\sum |p - g| + s_d - s_n)/(\sum p + \sum g + s_d)`. The plain
    soft Dice (:func:`dice_loss`) uses :math:`I = \sum pg`; for a soft target
    :math:`g` it is not minimised at :math:`p = g` (with :math:`g = 0.5` it pushes
    :math:`p` to 1), so label smoothing or distilled targets bias it. This loss
    (with equal smooths) is 0 exactly when :math:`p = g`, for any
    :math:`g \in [0, 1]`, and for hard labels equals :func:`dice_loss`, values
    and gradients (integer labels, always hard, use :math:`\sum pg` directly).
    Symbols, conventions and the slope of :math:`|p - g|` at :math:`p = g` as in
    :func:`jaccard_metric_loss`.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense (soft) ``[B, *spatial, C]``.

    Returns:
      A scalar, or ``[B, C]`` / ``[C]`` for ``reduction="none"``.

    Peers: MONAI ``DiceLoss(soft_label=True, smooth_nr=a, smooth_dr=d, batch=b)``
    is ``dice_semimetric_loss(per_image=not b, smooth=(a, d))``; recent
    segmentation_models_pytorch ``DiceLoss`` also forms its intersection this way.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> probs = jnp.array([[[0.9, 0.1], [0.3, 0.7]]])  # activation=None
      >>> soft = jnp.array([[[0.9, 0.1], [0.3, 0.7]]])   # soft target equal to probs
      >>> print(f"{sl.dice_semimetric_loss(probs, soft, activation=None):.4f}")
      0.0000
      >>> print(f"{sl.dice_loss(probs, soft, activation=None):.4f}")
      0.3125

    References:
      Wang, Popordanoska, Bertels, Lemmens & Blaschko, "Dice semimetric losses:
      Optimizing the Dice score with soft labels", MICCAI 2023.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    return region_loss(inp, options, sums=soft_label_sums(inp), unit_loss=dice_semimetric_units)
