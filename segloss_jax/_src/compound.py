r"""Compound losses: a region term plus a pixel-wise term, and :func:`combine`.

Each compound prepares its inputs once and activates the logits once: the
region term (the Dice engine) and the pixel-wise term (cross-entropy, focal or
balanced cross-entropy) read the same probabilities and log-probabilities, so
they inherit the stability, masking and gradients of the standalone losses.
Keywords are routed as the conventions page says: the shared ones
(``activation``, ``ignore_index``, ``where``, ``class_weights``) go to every
term; the region ones (``smooth``, ``per_image``, ``include_background``,
``classes``, ``squared``) to the region term only; ``pixel_weights`` and
``normalize_weights`` to the pixel-wise term only; ``axis_name`` to both. Every compound
returns a scalar (each term reduced with ``"mean"``).

The pixel-wise term follows the activation: ``"softmax"`` uses the categorical
cross-entropy, ``"sigmoid"`` the binary one per channel; with ``None``
(probabilities) ``C > 1`` is taken as exclusive classes and ``C == 1`` as binary.
With ``axis_name`` both terms are global: the region sums and the pixel-wise
mean are taken over the concatenated batch of every device, so the value is the
same on every device and equals the single-device value.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from segloss_jax._src import checks, inputs, reduce
from segloss_jax._src.engine import (
    Params,
    PixelTerm,
    RegionOptions,
    Sums,
    ratio,
    region_loss,
)
from segloss_jax._src.inputs import Inputs
from segloss_jax._src.pixelwise import (
    balanced_ce,
    binary_ce,
    categorical_ce,
    focal_terms,
    smoothed_binary_target,
)
from segloss_jax._src.region.overlap import (
    TP,
    GDLWeighting,
    dice_sums,
    dice_units,
    generalized_dice_units,
)
from segloss_jax._src.registry import register
from segloss_jax._src.types import (
    AnyActivation,
    ArrayLike,
    AxisName,
    ClassMode,
    Scalar,
    Smooth,
)

__all__ = ["dice_ce_loss", "dice_focal_loss", "generalized_dice_focal_loss", "combo_loss",
           "exp_log_loss", "unified_focal_loss"]


def _is_binary(inp: Inputs) -> bool:
    """Whether the pixel-wise term is the binary (per-channel) cross-entropy."""
    return inp.activation == "sigmoid" or (inp.activation is None and inp.num_classes == 1)


def _with_dice(inp: Inputs, options: RegionOptions, squared: bool, pixel: PixelTerm,
               params: dict[str, Any]) -> jax.Array:
    """``pixel.combine(dice, mean of pixel.values, params)``: the Dice term and a pixel-wise
    term in one sweep and one fused backward pass (the region engine's custom VJP)."""
    return region_loss(inp, options, sums=dice_sums(squared), params=params, pixel=pixel,
                       unit_loss=lambda s, params: dice_units(s, params, squared=squared))


def _mix(region: str, pixel: str) -> Callable[[jax.Array, jax.Array, Params], jax.Array]:
    """The compound ``params[region] · region term + params[pixel] · pixel term``."""
    return lambda region_term, pixel_term, params: (params[region] * region_term
                                                    + params[pixel] * pixel_term)


def _set(**values: Any) -> dict[str, Any]:
    """The hyperparameters that are set (they become arrays of the op: may be traced)."""
    return {name: value for name, value in values.items() if value is not None}


def _cross_entropy_term(inp: Inputs, class_weights, label_smoothing=None) -> jax.Array:
    """Per-element binary or per-pixel categorical cross-entropy, weighted by class, on
    targets smoothed by ``label_smoothing`` (``ε/2`` binary, ``ε/C`` categorical)."""
    weights = inp.per_class(class_weights)
    if _is_binary(inp):
        target = None if label_smoothing is None else smoothed_binary_target(
            inp.target, label_smoothing)
        return weights * binary_ce(inp, target=target)
    target = inp.target
    if label_smoothing is not None:
        target = (1 - label_smoothing) * target + label_smoothing / inp.num_classes
    # Smoothing keeps Σ_c target_c = 1 at the pixels of integer labels.
    return categorical_ce(inp, weights * target,
                          unit_mass=class_weights is None and inp.labels is not None)


@register()
def dice_ce_loss(
    logits: ArrayLike, labels: ArrayLike, *, lambda_dice: Scalar = 1.0, lambda_ce: Scalar = 1.0,
    label_smoothing: float = 0.0,
    squared: bool = False, activation: AnyActivation = "softmax", smooth: Smooth = 1e-5,
    per_image: bool = False, include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: AxisName = None,
) -> jax.Array:
    r"""Dice plus cross-entropy: the nnU-Net / MONAI default for segmentation.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{dice}} + \lambda_{\mathrm{ce}}\, L_{\mathrm{ce}}

    with :math:`L_{\mathrm{dice}}` = :func:`~segloss_jax.dice_loss` (class mean of
    :math:`1 - (2tp + s)/(2tp + fp + fn + s)`) and :math:`L_{\mathrm{ce}}` the mean
    over valid pixels of :func:`~segloss_jax.cross_entropy` (softmax) or over
    valid elements of :func:`~segloss_jax.binary_cross_entropy` (sigmoid).

    Empty masks: as :func:`~segloss_jax.dice_loss` for the Dice term; the
    cross-entropy needs none.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, as :doc:`/conventions` describes; ``activation``,
    ``class_weights``, ``ignore_index``, ``where`` and ``axis_name`` apply to
    both terms, the others to the region term; ``pixel_weights`` and
    ``normalize_weights`` weigh the pixel-wise term only, as in
    :func:`~segloss_jax.cross_entropy`.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      lambda_dice: weight :math:`\lambda_{\mathrm{dice}} \ge 0` of the Dice term.
      lambda_ce: weight :math:`\lambda_{\mathrm{ce}} \ge 0` of the cross-entropy.
      label_smoothing: :math:`\varepsilon \in [0, 1]`, for the cross-entropy term
        only: its targets are :math:`(1 - \varepsilon) g + \varepsilon / C` (over all
        :math:`C` classes, whatever ``include_background``; binary:
        :math:`+ \varepsilon / 2`); the Dice term keeps the raw targets.
      squared: Dice with :math:`\sum p^2 + \sum g^2` in the denominator.

    Returns:
      A float32 scalar (float64 for float64 inputs).

    MONAI's ``DiceCELoss(softmax=True, label_smoothing=ε, batch=b)`` is
    ``dice_ce_loss(label_smoothing=ε, per_image=not b)`` (MONAI ignores ``ε`` for
    one channel).

    Matches MONAI ``DiceCELoss(softmax=True, to_onehot_y=True, batch=b,
    lambda_dice=a, lambda_ce=c)`` (``smooth_nr = smooth_dr = 1e-5``, no
    ``weight``) with ``dice_ce_loss(per_image=not b, lambda_dice=a,
    lambda_ce=c)``; note MONAI's default ``batch=False`` is ``per_image=True``.
    With ``include_background=False`` both drop class 0 from the Dice term only.
    ``sigmoid=True`` corresponds to ``activation="sigmoid"`` (binary CE).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])  # [B=1, W=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.dice_ce_loss(logits, labels):.4f}")
      0.8102

    References:
      Isensee et al., "nnU-Net: a self-configuring method for deep learning-based
      biomedical image segmentation", Nature Methods 2021; Milletari, Navab &
      Ahmadi, "V-Net", 3DV 2016.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name)
    checks.check_nonnegative("lambda_dice", lambda_dice)
    checks.check_nonnegative("lambda_ce", lambda_ce)
    checks.check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    inp = options.prepare(logits, labels, pixel_weights=pixel_weights)
    cross_entropy = PixelTerm(
        values=lambda i, params: _cross_entropy_term(i, params.get("class_weights"),
                                                     params.get("label_smoothing")),
        combine=_mix("lambda_dice", "lambda_ce"), normalize=normalize_weights)
    smoothing = None if isinstance(label_smoothing, (int, float)) and not label_smoothing \
        else label_smoothing
    return _with_dice(inp, options, squared, cross_entropy,
                      _set(lambda_dice=lambda_dice, lambda_ce=lambda_ce, label_smoothing=smoothing))


@register()
def dice_focal_loss(
    logits: ArrayLike, labels: ArrayLike, *, lambda_dice: Scalar = 1.0, lambda_focal: Scalar = 1.0,
    gamma: Scalar = 2.0, alpha: Scalar | ArrayLike | None = None, squared: bool = False,
    activation: AnyActivation = "softmax", smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: AxisName = None,
) -> jax.Array:
    r"""Dice plus focal loss.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{dice}}
         + \lambda_{\mathrm{focal}}\, L_{\mathrm{focal}}

    with :math:`L_{\mathrm{dice}}` = :func:`~segloss_jax.dice_loss` and
    :math:`L_{\mathrm{focal}}` = :func:`~segloss_jax.focal_loss` (``gamma``,
    ``alpha``; softmax: :math:`-\sum_c \alpha_c g_c (1-p_c)^\gamma \log p_c` per
    pixel, sigmoid: per element), each reduced with ``"mean"``.
    ``gamma=0`` and ``alpha=None`` give :func:`dice_ce_loss`.

    Empty masks: as :func:`~segloss_jax.dice_loss` for the Dice term.

    Shared keywords: as :func:`~segloss_jax.dice_ce_loss` says (which apply to both
    terms, which to one).

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      lambda_dice: weight of the Dice term, ``>= 0``.
      lambda_focal: weight of the focal term, ``>= 0``.
      gamma: focusing parameter :math:`\gamma \ge 0` (focal term).
      alpha: focal class/positive weighting, as in :func:`~segloss_jax.focal_loss`.
      squared: Dice with :math:`\sum p^2 + \sum g^2` in the denominator.

    Returns:
      A float32 scalar (float64 for float64 inputs).

    With ``activation="sigmoid"`` and ``include_background=True`` matches MONAI
    ``DiceFocalLoss(sigmoid=True, gamma=γ, batch=b, lambda_dice=a,
    lambda_focal=f)`` as ``dice_focal_loss(activation="sigmoid", per_image=not b,
    ...)`` (both focal terms average over all elements); MONAI's
    ``include_background=False`` also drops channel 0 from its focal term.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.dice_focal_loss(logits, labels):.4f}")
      0.4728

    References:
      Zhu et al., "AnatomyNet: deep learning for fast and fully automated
      whole-volume segmentation of head and neck anatomy", Medical Physics 2019;
      Lin et al., "Focal loss for dense object detection", ICCV 2017.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name)
    checks.check_nonnegative("lambda_dice", lambda_dice)
    checks.check_nonnegative("lambda_focal", lambda_focal)
    checks.check_nonnegative("gamma", gamma)
    inp = options.prepare(logits, labels, pixel_weights=pixel_weights)
    _check_focal_alpha(inp, alpha)
    focal = PixelTerm(
        values=lambda i, params: focal_terms(i, params["gamma"], params.get("alpha"),
                                             params.get("class_weights")),
        combine=_mix("lambda_dice", "lambda_focal"), normalize=normalize_weights)
    return _with_dice(inp, options, squared, focal, _set(
        lambda_dice=lambda_dice, lambda_focal=lambda_focal, gamma=gamma, alpha=alpha))


@register()
def generalized_dice_focal_loss(
    logits: ArrayLike, labels: ArrayLike, *, lambda_gdl: Scalar = 1.0,
    lambda_focal: Scalar = 1.0, gamma: Scalar = 2.0, weighting: GDLWeighting = "square",
    focal_activation: AnyActivation = None, activation: AnyActivation = "softmax",
    smooth: Smooth = 1e-5, per_image: bool = False, include_background: bool = True,
    classes: ClassMode = "all", class_weights: ArrayLike | None = None,
    ignore_index: int | None = None, where: ArrayLike | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Generalized Dice plus focal loss, as MONAI's ``GeneralizedDiceFocalLoss``.

    .. math::

       L = \lambda_{\mathrm{gdl}}\, L_{\mathrm{GDL}}
         + \lambda_{\mathrm{focal}}\, L_{\mathrm{focal}}

    with :math:`L_{\mathrm{GDL}}` = :func:`~segloss_jax.generalized_dice_loss`
    (Sudre et al.'s pooled score, ``weighting``, its mean over the units) and
    :math:`L_{\mathrm{focal}}` = :func:`~segloss_jax.focal_loss` (``gamma``, no
    ``alpha``) reduced with ``"mean"``, both in one sweep with one fused backward
    pass (as :func:`dice_focal_loss`). ``focal_activation`` chooses the focal term's
    activation: ``None`` uses ``activation``; ``"sigmoid"`` a per-channel sigmoid of
    the logits against the one-hot target, the mean over valid elements (MONAI's
    choice, also with ``softmax=True``); ``"softmax"`` the categorical focal loss.

    Keyword routing: the region keywords (``smooth``, ``per_image``,
    ``include_background``, ``classes``) go to the generalized Dice term;
    ``include_background=False`` also drops channel 0 from the focal term (its
    element, or its class term; the mean of a sigmoid focal term then runs over the
    other channels' elements). ``class_weights`` weigh the focal term only
    (MONAI's ``weight``), not the generalized Dice weights; ``pixel_weights`` and
    ``normalize_weights`` weigh the focal term only, as in
    :func:`~segloss_jax.cross_entropy`. ``activation``, ``ignore_index``,
    ``where`` and ``axis_name`` apply to both terms.

    Empty masks: as :func:`~segloss_jax.generalized_dice_loss` for its term; the
    focal term needs none.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      lambda_gdl: weight of the generalized Dice term, ``>= 0``.
      lambda_focal: weight of the focal term, ``>= 0``.
      gamma: focusing parameter :math:`\gamma \ge 0` of the focal term.
      weighting: ``"square"`` (default), ``"simple"`` or ``"uniform"`` (MONAI's
        ``w_type``).
      focal_activation: ``None``, ``"sigmoid"`` or ``"softmax"``, see above.

    Returns:
      A float32 scalar (float64 for float64 inputs).

    MONAI ``GeneralizedDiceFocalLoss(softmax=True, to_onehot_y=True, batch=b,
    w_type=t, gamma=γ, weight=w, lambda_gdl=a, lambda_focal=f)`` is
    ``generalized_dice_focal_loss(activation="softmax", focal_activation="sigmoid",
    per_image=not b, weighting=t, gamma=γ, class_weights=w, lambda_gdl=a,
    lambda_focal=f)`` (MONAI's default ``batch=False`` is ``per_image=True``). Its
    ``reduction="sum"`` adds the per-image generalized Dice losses and the
    spatial means of the focal term over images and kept channels: with ``B``
    images and ``C'`` kept channels, ``lambda_gdl=a·B`` (``per_image=True``) and
    ``lambda_focal=f·B·C'`` here.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.generalized_dice_focal_loss(logits, labels):.4f}")
      0.4869

    References:
      Sudre, Li, Vercauteren, Ourselin & Cardoso, "Generalised Dice overlap as a
      deep learning loss function for highly unbalanced segmentations", DLMIA 2017;
      Lin et al., "Focal loss for dense object detection", ICCV 2017.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            ignore_index=ignore_index, where=where, axis_name=axis_name)
    checks.check_nonnegative("lambda_gdl", lambda_gdl)
    checks.check_nonnegative("lambda_focal", lambda_focal)
    checks.check_nonnegative("gamma", gamma)
    checks.check_choice("weighting", weighting, typing.get_args(GDLWeighting))
    checks.check_choice("focal_activation", focal_activation, (None, "sigmoid", "softmax"))
    inp = options.prepare(logits, labels, pixel_weights=pixel_weights)
    checks.check_class_weights(class_weights, inp.num_classes)
    focal_act = inp.activation if focal_activation is None else focal_activation
    checks.check_activation(focal_act, inp.num_classes)
    drop_background = not include_background and inp.num_classes > 1

    def focal(i: Inputs, params: Params) -> jax.Array:
        if focal_act != i.activation:
            i = Inputs(i.x, i.target, i.valid, i.labels, focal_act)
        weights = params.get("focal_weights")
        if drop_background:
            keep = (jnp.arange(i.num_classes) > 0).astype(i.dtype)
            weights = keep if weights is None else weights * keep
        terms = focal_terms(i, params["gamma"], None, weights)
        # Sigmoid terms are per element: the mean runs over the kept channels only.
        return terms[..., 1:] if drop_background and terms.ndim == i.x.ndim else terms

    focal_term = PixelTerm(values=focal, combine=_mix("lambda_gdl", "lambda_focal"),
                           normalize=normalize_weights)
    return region_loss(inp, options, sums=TP, pooled=True, pixel=focal_term,
                       unit_loss=lambda s, params, keep: generalized_dice_units(
                           s, params, keep, weighting=weighting),
                       params=_set(lambda_gdl=lambda_gdl, lambda_focal=lambda_focal,
                                   gamma=gamma, focal_weights=class_weights))


def _check_focal_alpha(inp: Inputs, alpha) -> None:
    """``alpha`` of the focal term: a scalar in [0, 1], or (softmax) one weight per class.
    Checked here, where it is still a Python or NumPy value when the user gave one."""
    if alpha is None:
        return
    if inp.activation == "softmax" and (np.ndim(alpha) > 0 or isinstance(alpha, (list, tuple))):
        checks.check_class_vector(alpha, inp.num_classes, "alpha")
    else:
        checks.check_in_range("alpha", alpha, 0.0, 1.0)


@register()
def combo_loss(
    logits: ArrayLike, labels: ArrayLike, *, lambda_ce: Scalar = 0.5,
    lambda_dice: Scalar = 0.5, beta: Scalar = 0.5, activation: AnyActivation = "softmax",
    smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: AxisName = None,
) -> jax.Array:
    r"""Combo loss (Taghanaki et al.): a false-negative-weighted cross-entropy plus Dice.

    .. math::

       L = \lambda_{\mathrm{ce}}\, L_{\mathrm{mbce}} + \lambda_{\mathrm{dice}}\, L_{\mathrm{dice}},
       \qquad
       L_{\mathrm{mbce}} = -\frac{1}{|V|\,C} \sum_{i \in V} \sum_c
           \left[ \beta\, g_{ic} \log p_{ic} + (1 - \beta)(1 - g_{ic}) \log(1 - p_{ic}) \right]

    :math:`L_{\mathrm{mbce}}` is the paper's modified binary cross-entropy, each
    channel a binary problem (:func:`~segloss_jax.balanced_cross_entropy` with
    ``beta``; with softmax it is taken on the softmax probabilities, with the
    logs clamped at the smallest normal float). :math:`\beta > 0.5` penalises
    false negatives more, :math:`\beta < 0.5` false positives. :math:`L_{\mathrm{dice}}`
    is :func:`~segloss_jax.dice_loss`, :math:`1 -` the class-mean Dice.

    The paper writes :math:`\alpha L_{\mathrm{mbce}} - (1 - \alpha)\sum_{k=1}^{K}
    \mathrm{DSC}_k`: its :math:`\alpha` is ``lambda_ce=a, lambda_dice=1 - a`` (the
    defaults are the paper's :math:`\alpha = 0.5`). Here the Dice term is
    :math:`1 -` the *mean* over classes: identical for one class up to the constant
    :math:`\lambda_{\mathrm{dice}}` (same gradients; the loss stays non-negative),
    and for :math:`K` classes it is the paper's Dice weight divided by :math:`K`,
    which keeps the weights meaning the same whatever the number of classes. (The paper's printed
    :math:`\beta(t_i - \ln p_i)` is read as :math:`\beta\, t_i \ln p_i`, the form
    its text describes; the authors' code weighs the negative term by
    :math:`\beta(1 - \beta)` through a misplaced parenthesis.)

    Empty masks: as :func:`~segloss_jax.dice_loss` for the Dice term.

    Shared keywords: as :func:`~segloss_jax.dice_ce_loss` says (which apply to both
    terms, which to one).

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      lambda_ce: weight :math:`\lambda_{\mathrm{ce}} \ge 0` of the cross-entropy term.
      lambda_dice: weight :math:`\lambda_{\mathrm{dice}} \ge 0` of the Dice term.
      beta: :math:`\beta \in [0, 1]`, the weight of false negatives in it.

    Returns:
      A float32 scalar (float64 for float64 inputs).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.combo_loss(logits, labels, beta=0.7):.4f}")
      0.2873

    References:
      Taghanaki et al., "Combo loss: handling input and output imbalance in
      multi-organ segmentation", Computerized Medical Imaging and Graphics 75,
      2019 (arXiv:1805.02798).
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name)
    checks.check_nonnegative("lambda_ce", lambda_ce)
    checks.check_nonnegative("lambda_dice", lambda_dice)
    inp = options.prepare(logits, labels, pixel_weights=pixel_weights)
    if beta is not None:
        checks.check_in_range("beta", beta, 0.0, 1.0)

    def modified_bce(i: Inputs, params: Params) -> jax.Array:
        # Per channel; with softmax it reads the softmax probabilities (logs clamped,
        # as for probability inputs).
        if i.activation == "softmax":
            i = Inputs(i.probs, i.target, i.valid, i.labels, None)
        weights = i.per_class(params.get("class_weights"))
        return balanced_ce(i, params.get("beta"), options.axis_name) * weights

    combo = PixelTerm(values=modified_bce, combine=_mix("lambda_dice", "lambda_ce"),
                      normalize=normalize_weights)
    return _with_dice(inp, options, False, combo,
                      _set(lambda_ce=lambda_ce, lambda_dice=lambda_dice, beta=beta))


@register()
def exp_log_loss(
    logits: ArrayLike, labels: ArrayLike, *, lambda_dice: Scalar = 0.8, lambda_ce: Scalar = 0.2,
    gamma: Scalar = 0.3, activation: AnyActivation = "softmax", smooth: Smooth = 1e-5,
    per_image: bool = False, include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: AxisName = None,
) -> jax.Array:
    r"""Exponential logarithmic loss (Wong et al.): powers of log-Dice and of cross-entropy.

    .. math::

       L = w_{\mathrm{dice}}\, \mathbb{E}_c\!\left[ (-\ln \mathrm{Dice}_c)^{\gamma} \right]
         + w_{\mathrm{ce}}\, \mathbb{E}_{i \in V}\!\left[ w_{l_i} (-\ln p_{i, l_i})^{\gamma} \right]

    with :math:`\mathrm{Dice}_c = (2tp_c + s)/(2tp_c + fp_c + fn_c + s)` the soft
    Dice of each unit (:func:`~segloss_jax.dice_loss` with ``log=True`` gives
    :math:`-\ln \mathrm{Dice}_c`), the first mean over the kept classes (weighted
    by ``class_weights``, as every region loss), :math:`l_i` the label of pixel
    :math:`i` and :math:`w_l` its class weight (1 without ``class_weights``).
    :math:`\gamma < 1` sharpens the loss near a perfect score, where plain Dice
    and cross-entropy flatten out. For dense (soft) labels the cross term is
    :math:`(\sum_c w_c g_c)\,(-\sum_c g_c \ln p_c)^\gamma`; with
    ``activation="sigmoid"`` it is :math:`w_c\,\mathrm{bce}^\gamma` per element.
    Both powers have a finite (zero) gradient at 0.

    The paper weights only the cross term by :math:`w_l = ((\sum_k f_k)/f_l)^{0.5}`
    (:math:`f_k` the label frequencies): pass
    ``class_weights=sl.inverse_frequency_weights(labels, C, power=0.5)`` for
    those weights up to a common factor; as every shared keyword (the conventions page)
    they then weight the Dice mean too. The paper's Dice smoothing is
    :math:`\varepsilon = 1` (``smooth=1.0``).

    Empty masks: as :func:`~segloss_jax.dice_loss`; the log is clamped, so a zero
    Dice gives a large finite loss.

    Shared keywords: as :func:`~segloss_jax.dice_ce_loss` says (which apply to both
    terms, which to one).

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      lambda_dice: weight of the Dice term, ``>= 0`` (the paper's :math:`w_{\mathrm{dice}}`).
      lambda_ce: weight of the cross term, ``>= 0`` (the paper's :math:`w_{\mathrm{cross}}`).
      gamma: exponent :math:`\gamma \ge 0` of both terms.

    Returns:
      A float32 scalar (float64 for float64 inputs).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.exp_log_loss(logits, labels):.4f}")
      0.7628

    References:
      Wong, Moradi, Tang & Syeda-Mahmood, "3D segmentation with exponential
      logarithmic loss for highly unbalanced object sizes", MICCAI 2018.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name)
    checks.check_nonnegative("lambda_dice", lambda_dice)
    checks.check_nonnegative("lambda_ce", lambda_ce)
    checks.check_nonnegative("gamma", gamma)
    inp = options.prepare(logits, labels, pixel_weights=pixel_weights)

    def cross(i: Inputs, params: Params) -> jax.Array:
        # w_l (-ln p_l)^γ per pixel (binary: w_c per element).
        weights = i.per_class(params.get("class_weights"))
        if _is_binary(i):
            return weights * reduce.safe_pow(binary_ce(i), params["gamma"])
        ce = categorical_ce(i, i.target, unit_mass=i.labels is not None)
        return jnp.sum(weights * i.target, axis=-1) * reduce.safe_pow(ce, params["gamma"])

    exp_log = PixelTerm(values=cross, combine=_mix("lambda_dice", "lambda_ce"),
                        normalize=normalize_weights)
    # (-ln Dice)^γ per unit, reduced over the kept units like dice_loss.
    return region_loss(
        inp, options, sums=TP,
        params=_set(gamma=gamma, lambda_dice=lambda_dice, lambda_ce=lambda_ce),
        unit_loss=lambda s, params: reduce.safe_pow(dice_units(s, params, log=True),
                                                    params["gamma"]),
        pixel=exp_log)


def _background_foreground(inp: Inputs, options: RegionOptions) -> tuple[Inputs, RegionOptions]:
    """A binary input (``C == 1``) as the two classes ``[1 − p, p]``, background first.

    A sigmoid of ``x`` is the softmax of ``[0, x]``: the view has those logits, so the
    region engine's softmax backward is exact for it, and takes its probabilities and
    log-probabilities from the one sigmoid pass (``1 − p`` without cancellation). With
    probabilities in (``activation=None``) the view holds ``[1 − p, p]``. A
    ``class_weights`` ``[w]`` weighs the foreground: ``[1, w]``.
    """
    x, g = inp.x, inp.target
    target = jnp.concatenate([1 - g, g], axis=-1)
    if inp.activation == "sigmoid":
        view = Inputs(jnp.concatenate([jnp.zeros_like(x), x], axis=-1), target, inp.valid,
                      inp.labels, "softmax", weights=inp.weights)
        view.probs = jnp.concatenate([inp.one_minus_probs, inp.probs], axis=-1)
        view.log_probs = jnp.concatenate([inp.log_1m_probs, inp.log_probs], axis=-1)
        view.lse = inp.softplus[..., 0]  # log(1 + e^x), the log-partition of [0, x]
    else:
        view = Inputs(jnp.concatenate([1 - x, x], axis=-1), target, inp.valid, inp.labels, None,
                      weights=inp.weights)
    if options.class_weights is not None:
        foreground = inputs.class_vector(options.class_weights, 1, "class_weights", inp.dtype)
        options = options._replace(
            class_weights=jnp.concatenate([jnp.ones_like(foreground), foreground]))
    return view, options


def asymmetric_focal_terms(inp: Inputs, delta, gamma, class_weights) -> jax.Array:
    """``−(1−δ)(1 − p_0)^γ g_0 log p_0 − Σ_{c≥1} δ g_c log p_c`` per pixel, ``[B, *spatial]``
    (each class term times its class weight)."""
    log_p = inp.log_probs
    # (1 − p_0)^γ as (−expm1(log p_0))^γ: no cancellation near p_0 = 1.
    background = (1 - delta) * reduce.safe_pow(-jnp.expm1(log_p[..., :1]), gamma)
    is_background = (jnp.arange(inp.num_classes) == 0).reshape(
        (1,) * (log_p.ndim - 1) + (inp.num_classes,))
    factor = jnp.where(is_background, background, delta)
    return -jnp.sum(inp.per_class(class_weights) * factor * inp.target * log_p, axis=-1)


def asymmetric_focal_tversky_units(s: Sums, params: Params) -> jax.Array:
    """``1 − mTI_0`` for the background unit, ``(1 − mTI_c)^{1−γ}`` for the others."""
    mti = ratio(s.tp, s.tp + params["delta"] * s.fn + (1 - params["delta"]) * s.fp, params)
    is_background = jnp.broadcast_to(jnp.arange(mti.shape[-1]) == 0, mti.shape)
    # Clamped at 0 before the power: with s_num > s_den the index may exceed 1.
    enhanced = reduce.safe_pow(jnp.maximum(1 - mti, 0), 1 - params["gamma"])
    return jnp.where(is_background, 1 - mti, enhanced)


@register()
def unified_focal_loss(
    logits: ArrayLike, labels: ArrayLike, *, lambda_focal: Scalar = 0.5,
    lambda_focal_tversky: Scalar = 0.5, delta: Scalar = 0.6,
    gamma: Scalar = 0.5, activation: AnyActivation = "softmax", smooth: Smooth = 1e-5,
    per_image: bool = False, include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: AxisName = None,
) -> jax.Array:
    r"""Asymmetric unified focal loss (Yeung et al.): a focal and a focal Tversky term.

    .. math::

       L = \lambda_{\mathrm{F}}\, L_{\mathrm{maF}} + \lambda_{\mathrm{FT}}\, L_{\mathrm{maFT}}

    .. math::

       L_{\mathrm{maF}} = \frac{1}{|V|} \sum_{i \in V} \Big[
           -(1 - \delta)\,(1 - p_{i0})^{\gamma}\, g_{i0} \log p_{i0}
           - \delta \sum_{c \ge 1} g_{ic} \log p_{ic} \Big]

    .. math::

       L_{\mathrm{maFT}} = \operatorname{mean}_{\text{units}} \begin{cases}
           1 - \mathrm{mTI}_0 & \text{background (class 0)} \\
           (1 - \mathrm{mTI}_c)^{1 - \gamma} & c \ge 1
       \end{cases}, \qquad
       \mathrm{mTI}_c = \frac{tp_c + s_n}{tp_c + \delta\, fn_c + (1 - \delta)\, fp_c + s_d}

    Class 0 is the background: its focal term is modulated (easy background
    pixels are down-weighted) and its Tversky term is not raised to a power,
    while the rarer classes keep their full cross-entropy and have their Tversky
    term enhanced by :math:`1 - \gamma < 1`. :math:`\delta` weighs false
    negatives (and the foreground in the focal term) against false positives
    (and the background), :math:`\lambda_{\mathrm{F}}, \lambda_{\mathrm{FT}}` the two
    terms (the paper's :math:`\lambda` is ``lambda_focal=l, lambda_focal_tversky=1 - l``).
    :math:`V` are the valid pixels; :math:`tp, fp, fn` the soft counts of a unit, as in
    :func:`~segloss_jax.dice_loss`. The log-probabilities come from the logits
    (``log_softmax``/``log_sigmoid``, no clamping; with ``activation=None`` the
    logs of the probabilities are clamped at the smallest normal float).
    ``C == 1`` with ``activation="sigmoid"`` (or ``None``) means the two
    channels :math:`[1 - p, p]`, background and foreground; ``"sigmoid"`` with
    ``C > 1`` is a ``ValueError`` (the classes here are exclusive).

    Empty masks: as :func:`~segloss_jax.tversky_loss` for the Tversky term; the
    focal term needs none.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, as :doc:`/conventions` describes; ``activation``,
    ``class_weights`` (a factor on each class term of both), ``ignore_index``,
    ``where`` and ``axis_name`` apply to both terms (``pixel_weights`` and
    ``normalize_weights`` to the focal term only), the others to the Tversky
    term (``include_background=False`` drops its background unit, also the
    ``1 − p`` channel when ``C == 1``, where ``class_weights`` ``[w]`` weighs the
    foreground and the background weighs 1).

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      lambda_focal: weight :math:`\lambda_{\mathrm{F}} \ge 0` of the focal term.
      lambda_focal_tversky: weight :math:`\lambda_{\mathrm{FT}} \ge 0` of the focal Tversky term.
      delta: :math:`\delta \in [0, 1]`.
      gamma: :math:`\gamma \in [0, 1]` (:math:`1 - \gamma` must not be negative).

    Returns:
      A float32 scalar (float64 for float64 inputs).

    Peers: MONAI's ``AsymmetricUnifiedFocalLoss(weight=w, delta=d, gamma=γ)``
    (binary; probabilities in, clamped to ``[1e-7, 1 − 1e-7]``, its focal term
    averaged over the two channels as well, i.e. divided by 2) equals
    ``unified_focal_loss(p, y, activation=None, lambda_focal=w / 2,
    lambda_focal_tversky=1 − w, delta=d, gamma=γ, per_image=True, smooth=1e-7)``
    on probabilities ``p``
    (``C == 1`` or ``C == 2``). MONAI's defaults are ``delta=0.7``; the paper's,
    and ours, ``0.6``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{sl.unified_focal_loss(logits, labels):.4f}")
      0.3601

    References:
      Yeung, Sala, Schönlieb & Rundo, "Unified focal loss: generalising Dice and
      cross entropy-based losses to handle class imbalanced medical image
      segmentation", Computerized Medical Imaging and Graphics 95, 2022.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name)
    checks.check_nonnegative("lambda_focal", lambda_focal)
    checks.check_nonnegative("lambda_focal_tversky", lambda_focal_tversky)
    checks.check_in_range("delta", delta, 0.0, 1.0)
    checks.check_in_range("gamma", gamma, 0.0, 1.0)
    inp = options.prepare(logits, labels, pixel_weights=pixel_weights)
    if inp.num_classes == 1:
        inp, options = _background_foreground(inp, options)
    elif inp.activation == "sigmoid":
        raise ValueError(
            "unified_focal_loss takes `activation='sigmoid'` for binary segmentation (C == 1) "
            f"only; `logits` has C = {inp.num_classes} exclusive classes, class 0 the "
            "background: use `activation='softmax'`.")
    focal = PixelTerm(
        values=lambda i, params: asymmetric_focal_terms(i, params["delta"], params["gamma"],
                                                   params.get("class_weights")),
        combine=_mix("lambda_focal_tversky", "lambda_focal"), normalize=normalize_weights)
    return region_loss(inp, options, sums=TP, unit_loss=asymmetric_focal_tversky_units,
                       params=_set(
                           delta=delta, gamma=gamma, lambda_focal=lambda_focal,
                           lambda_focal_tversky=lambda_focal_tversky), pixel=focal)
