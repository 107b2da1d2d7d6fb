r"""Pixel-wise (distribution-based) losses: cross-entropy variants and focal loss.

Each loss is a sum over pixels of a per-pixel term, so it is as cheap as one
pass over the logits. Softmax losses give one value per pixel
(``[B, *spatial]``), sigmoid losses one per element (``[B, *spatial, C]``);
``reduction="mean"`` averages over the valid pixels (softmax) or valid elements
(sigmoid), and class or positive weights scale terms without changing that
denominator. Empty masks need no convention here: a pixel-wise loss is defined
for any target, and a batch with no valid pixel has loss 0.

:func:`distance_weighted_cross_entropy` weights each term by a distance map of
the target, computed in the graph (or ahead of time) by
:mod:`segloss_jax._src.distance_maps`, which the boundary losses share; the map
is a constant for ``grad``.
"""

from __future__ import annotations

from collections.abc import Hashable

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import checks
from segloss_jax._src.distance_maps import channels_last, prepare_inputs, target_field
from segloss_jax._src.inputs import Inputs, prepare
from segloss_jax._src.reduce import reduce_pixels, safe_pow
from segloss_jax._src.registry import register
from segloss_jax._src.sampling import Sampling
from segloss_jax._src.stats import sum_across
from segloss_jax._src.types import (
    AnyActivation,
    ArrayLike,
    AxisName,
    LogitActivation,
    Reduction,
    SigmoidActivation,
    SoftmaxActivation,
    activations_of,
)

__all__ = [
    "binary_cross_entropy",
    "weighted_cross_entropy",
    "balanced_cross_entropy",
    "cross_entropy",
    "focal_loss",
    "distance_weighted_cross_entropy",
    "poly_cross_entropy",
    "poly_focal_loss",
]

_BINARY = activations_of(SigmoidActivation)


def binary_ce(inp: Inputs, pos_weight=None, neg_weight=None, target=None) -> jax.Array:
    """Per-element ``-(w⁺ g log p + w⁻ (1 - g) log(1 - p))``, ``[B, *spatial, C]``.

    Weights default to 1; the target ``g`` to ``inp.target``. For sigmoid, with
    ``log p = x - softplus(x)`` and
    ``log(1 - p) = -softplus(x)``, this is ``(w⁺ g + w⁻ (1 - g)) softplus(x) - w⁺ g x``:
    one softplus, finite for every finite logit, and for unit weights simply
    ``softplus(x) - g x`` (faster than optax's form, see benchmarks/RESULTS.md).
    """
    g = inp.target if target is None else target
    if inp.activation == "sigmoid" and pos_weight is None and neg_weight is None:
        return inp.softplus - g * inp.x
    pos = g if pos_weight is None else pos_weight * g
    neg = 1 - g if neg_weight is None else neg_weight * (1 - g)
    if inp.activation == "sigmoid":
        return (pos + neg) * inp.softplus - pos * inp.x
    return -(pos * inp.log_probs + neg * inp.log_1m_probs)


def categorical_ce(inp: Inputs, weighted_target: jax.Array, *, unit_mass: bool = False):
    """Per-pixel ``-Σ_c t_c log p_c`` for (weighted) targets ``t``, ``[B, *spatial]``.

    For softmax it is ``lse·Σ_c t_c - Σ_c t_c x_c``: autodiff of this form is one
    fused pass (faster fwd+bwd than through ``log_softmax``). ``unit_mass``: the
    caller knows ``Σ_c t_c = 1`` at valid pixels (unweighted one-hot targets),
    which saves a reduction.
    """
    if inp.activation == "softmax":
        mass = 1.0 if unit_mass else jnp.sum(weighted_target, axis=-1)
        return inp.lse * mass - jnp.sum(weighted_target * inp.x, axis=-1)
    return -jnp.sum(weighted_target * inp.log_probs, axis=-1)


@register()
def binary_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, pos_weight: chex.Numeric | None = None,
    label_smoothing: float = 0.0,
    activation: SigmoidActivation = "sigmoid", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: Hashable | None = None, reduction: str = "mean",
) -> jax.Array:
    r"""Binary (sigmoid) cross-entropy from logits, per element.

    .. math::

       \ell = -w_c \left[ w^{+}\, g \log \sigma(x) + (1 - g) \log(1 - \sigma(x)) \right]

    with :math:`x` the logit, :math:`g \in [0, 1]` the target (label-smoothed to
    :math:`(1 - \varepsilon) g + \varepsilon / 2` by ``label_smoothing``
    :math:`\varepsilon`), :math:`w^{+}` the ``pos_weight`` and :math:`w_c` the class
    weight of the channel. It is computed
    as :math:`(w^{+} g + 1 - g)\,\mathrm{softplus}(x) - w^{+} g\, x` (using
    :math:`\log\sigma(x) = x - \mathrm{softplus}(x)` and
    :math:`\log(1 - \sigma(x)) = -\mathrm{softplus}(x)`), finite for every finite
    logit. Each channel is an independent binary problem (binary segmentation with
    ``C == 1``, multi-label with ``C > 1``).

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` (``C == 1``: 0/1 foreground; ``C > 1``:
        class indices, one-hot encoded) or dense ``[B, *spatial, C]`` in ``[0, 1]``.
      pos_weight: scalar or ``[C]`` factor of the positive term (``None``: 1).
      label_smoothing: :math:`\varepsilon \in [0, 1]`: targets move to
        :math:`\varepsilon / 2` and :math:`1 - \varepsilon / 2`.
      activation: ``"sigmoid"`` or ``None`` (inputs are probabilities; logs are
        clamped at the smallest normal float, like PyTorch's ``BCELoss``).
      class_weights: optional ``[C]`` non-negative per-channel weights.
      where: optional bool ``[B, *spatial]``; ``False`` pixels contribute nothing.
      ignore_index: integer label value treated as ``where=False``.
      pixel_weights: optional ``[B, *spatial]`` (broadcastable) non-negative weight
        of each valid pixel's term; no gradient (:doc:`/conventions`).
      normalize_weights: ``"mean"`` divides by the sum of the valid weights
        instead of the number of valid pixels (elements).
      axis_name: mapped axis (``shard_map``/``pmap``) over which sums and counts
        are taken: the mean of the global batch (:doc:`/conventions`).
      reduction: ``"mean"`` over valid elements, ``"sum"`` or ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial, C]`` for ``reduction="none"`` (0 at excluded
      pixels). Float32 (float64 for float64 inputs).

    Matches ``torch.nn.BCEWithLogitsLoss(pos_weight=...)`` and
    ``optax.losses.sigmoid_binary_cross_entropy`` (mean over elements). smp's
    ``SoftBCEWithLogitsLoss(smooth_factor=s)`` smooths to :math:`s` and :math:`1 - s`:
    ``label_smoothing=2 * s``, and it divides by every element, ignored ones too
    (``reduction="sum"`` divided by ``logits.size`` reproduces it).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0], [-1.0]]])  # [B=1, W=2, C=1]
      >>> labels = jnp.array([[1, 0]])
      >>> print(f"{sl.binary_cross_entropy(logits, labels):.4f}")
      0.2201

    References:
      Jadon, "A survey of loss functions for semantic segmentation", CIBCB 2020.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, pixel_weights=pixel_weights,
                  allowed_activations=_BINARY)
    checks.check_reduction(reduction)
    if pos_weight is not None:
        pos_weight = inp.per_class(pos_weight, "pos_weight", scalar=True)
    loss = binary_ce(inp, pos_weight, target=smoothed_binary_target(inp.target, label_smoothing))
    if class_weights is not None:
        loss = loss * inp.per_class(class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name, weights=inp.weights,
                         normalize=normalize_weights)


@register()
def weighted_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, beta: chex.Numeric,
    activation: SigmoidActivation = "sigmoid", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: Hashable | None = None, reduction: str = "mean",
) -> jax.Array:
    r"""Weighted cross-entropy: binary cross-entropy with positives weighted by ``beta``.

    .. math::

       \ell = -\left[ \beta\, g \log p + (1 - g) \log(1 - p) \right]

    ``beta > 1`` reduces false negatives, ``beta < 1`` false positives. This is
    :func:`binary_cross_entropy` with ``pos_weight=beta``; it is a binary (per
    channel) loss, so ``activation`` is ``"sigmoid"`` or ``None``. For a
    class-weighted softmax cross-entropy use :func:`cross_entropy` with
    ``class_weights``.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      beta: scalar or ``[C]`` non-negative weight of the positive term.
      activation: ``"sigmoid"`` or ``None``.
      class_weights: as for :func:`binary_cross_entropy`; so are ``where``,
        ``ignore_index``, ``pixel_weights``, ``normalize_weights``, ``axis_name``
        and ``reduction``.

    Returns:
      A scalar, or ``[B, *spatial, C]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0], [-1.0]]])
      >>> labels = jnp.array([[1, 0]])
      >>> print(f"{sl.weighted_cross_entropy(logits, labels, beta=2.0):.4f}")
      0.2836

    References:
      Pihur, Datta & Datta, "Weighted rank aggregation of cluster validation
      measures", Bioinformatics 2007; Jadon, "A survey of loss functions for
      semantic segmentation", CIBCB 2020.
    """
    return binary_cross_entropy(
        logits, labels, pos_weight=beta, activation=activation, class_weights=class_weights,
        where=where, ignore_index=ignore_index, pixel_weights=pixel_weights,
        normalize_weights=normalize_weights, axis_name=axis_name, reduction=reduction)


@register()
def balanced_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, beta: chex.Numeric | None = None,
    activation: SigmoidActivation = "sigmoid", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: Hashable | None = None, reduction: str = "mean",
) -> jax.Array:
    r"""Balanced cross-entropy: positives weighted by ``beta``, negatives by ``1 - beta``.

    .. math::

       \ell = -\left[ \beta\, g \log p + (1 - \beta)(1 - g) \log(1 - p) \right],
       \qquad \beta = 1 - \frac{\sum_{i \in V} g_{i,c}}{|V|} \text{ by default}

    With ``beta=None`` it is computed per channel from the targets over the valid
    pixels :math:`V` of the batch (no gradient), so the rarer side of each
    channel gets the larger weight.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      beta: scalar or ``[C]`` in ``[0, 1]``, or ``None`` (from the targets;
        ``0.5`` when no pixel is valid).
      activation: ``"sigmoid"`` or ``None``.
      class_weights: optional ``[C]`` per-channel weights.
      where, ignore_index, pixel_weights, normalize_weights, axis_name, reduction: as
        :func:`binary_cross_entropy`.

    Returns:
      A scalar, or ``[B, *spatial, C]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0], [-1.0], [-3.0], [0.5]]])
      >>> labels = jnp.array([[1, 0, 0, 0]])
      >>> print(f"{sl.balanced_cross_entropy(logits, labels):.4f}")
      0.1073

    References:
      Xie & Tu, "Holistically-nested edge detection", ICCV 2015; Jadon, "A survey
      of loss functions for semantic segmentation", CIBCB 2020.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, pixel_weights=pixel_weights,
                  allowed_activations=_BINARY)
    checks.check_reduction(reduction)
    loss = balanced_ce(inp, beta, axis_name)
    if class_weights is not None:
        loss = loss * inp.per_class(class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name, weights=inp.weights,
                         normalize=normalize_weights)


def balanced_ce(inp: Inputs, beta, axis_name: Hashable | None = None) -> jax.Array:
    """Per-element ``-(β g log p + (1 - β)(1 - g) log(1 - p))``; ``β = None``: from the
    targets of the (global, with ``axis_name``) batch."""
    if beta is None:
        # 1 - (fraction of positives) per channel over the valid pixels; no gradient.
        valid = inp.valid[..., None]
        axes = tuple(range(inp.x.ndim - 1))
        positives = jnp.sum(jnp.where(valid, inp.target, 0), axis=axes)
        count = jnp.sum(valid, axis=axes, dtype=inp.dtype)
        positives, count = sum_across((positives, count), axis_name)
        beta = jax.lax.stop_gradient(
            jnp.where(count > 0, 1 - positives / jnp.maximum(count, 1), 0.5))
    else:
        checks.check_in_range("beta", beta, 0.0, 1.0)
    beta = inp.per_class(beta, "beta", scalar=True)
    return binary_ce(inp, beta, 1 - beta)


def smoothed_binary_target(target: jax.Array, label_smoothing) -> jax.Array:
    """``(1 - ε) g + ε / 2``, the smoothed target of a binary cross-entropy."""
    checks.check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    if isinstance(label_smoothing, (int, float)) and not label_smoothing:
        return target
    return (1 - label_smoothing) * target + label_smoothing / 2


@register()
def cross_entropy(
    logits: chex.Array, labels: chex.Array, *, label_smoothing: float = 0.0,
    activation: SoftmaxActivation = "softmax", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: Hashable | None = None, reduction: str = "mean",
) -> jax.Array:
    r"""Softmax cross-entropy with integer or dense (soft) labels.

    .. math::

       \ell = -\sum_c w_c\, \tilde g_c \log p_c, \qquad
       \tilde g = (1 - \varepsilon)\, g + \varepsilon / C

    with :math:`p = \mathrm{softmax}(x)` (``log_softmax`` is used, never
    ``log(p)``), :math:`\varepsilon` the ``label_smoothing`` and :math:`w_c` the class
    weights. Integer labels are one-hot encoded by comparison, not gathered, which
    keeps the backward pass a plain elementwise product.

    ``reduction="mean"`` divides by the number of valid pixels, also with
    ``class_weights``; PyTorch's ``CrossEntropyLoss(weight=w)`` divides by
    ``Σ w[y]`` instead (``reduction="sum"`` divided by that sum reproduces it).

    Args:
      logits: ``[B, *spatial, C]`` logits, ``C >= 2`` (probabilities if
        ``activation=None``).
      labels: integer ``[B, *spatial]`` class indices or dense ``[B, *spatial, C]``.
      label_smoothing: :math:`\varepsilon \in [0, 1]`.
      activation: ``"softmax"`` or ``None``.
      class_weights: optional ``[C]`` non-negative weights.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      pixel_weights: optional ``[B, *spatial]`` (broadcastable) non-negative weight
        of each valid pixel's term; no gradient (:doc:`/conventions`).
      normalize_weights: ``"mean"`` divides by the sum of the valid weights
        instead of the number of valid pixels (elements).
      axis_name: mapped axis (``shard_map``/``pmap``) over which sums and counts
        are taken: the mean of the global batch (:doc:`/conventions`).
      reduction: ``"mean"`` over valid pixels, ``"sum"`` or ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial]`` for ``reduction="none"``.

    Matches ``torch.nn.CrossEntropyLoss(ignore_index=..., label_smoothing=...)``
    (without ``weight``) and ``optax.losses.softmax_cross_entropy_with_integer_labels``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])  # [1, 2, 3]
      >>> labels = jnp.array([[0, 1]])
      >>> print(f"{sl.cross_entropy(logits, labels):.4f}")
      0.3606

    References:
      Long, Shelhamer & Darrell, "Fully convolutional networks for semantic
      segmentation", CVPR 2015; Szegedy et al., "Rethinking the Inception
      architecture" (label smoothing), CVPR 2016.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, pixel_weights=pixel_weights,
                  allowed_activations=activations_of(SoftmaxActivation))
    checks.check_reduction(reduction)
    target = smoothed_target(inp, label_smoothing, class_weights)
    loss = categorical_ce(inp, target,
                          unit_mass=class_weights is None and inp.labels is not None)
    return reduce_pixels(loss, inp.valid, reduction, axis_name, weights=inp.weights,
                         normalize=normalize_weights)


def smoothed_target(inp: Inputs, label_smoothing, class_weights) -> jax.Array:
    """``w_c ((1 - ε) g_c + ε / C)``, the weighted, smoothed target of a softmax CE."""
    checks.check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    target = inp.target
    if label_smoothing:
        target = (1 - label_smoothing) * target + label_smoothing / inp.num_classes
    return inp.per_class(class_weights) * target


@register()
def focal_loss(
    logits: chex.Array, labels: chex.Array, *, gamma: chex.Numeric = 2.0,
    alpha: chex.Numeric | chex.Array | None = None, activation: AnyActivation = "softmax",
    class_weights: chex.Array | None = None, where: chex.Array | None = None,
    ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: Hashable | None = None, reduction: str = "mean",
) -> jax.Array:
    r"""Focal loss: cross-entropy down-weighting well-classified pixels.

    Softmax (``C >= 2``, one value per pixel):

    .. math::

       \ell = -\sum_c \alpha_c\, w_c\, g_c\, (1 - p_c)^{\gamma} \log p_c

    Sigmoid (one value per element, :math:`p_t = p g + (1 - p)(1 - g)`):

    .. math::

       \ell = -\alpha_t\, w_c\, (1 - p_t)^{\gamma}
              \left[ g \log p + (1 - g) \log(1 - p) \right],
       \qquad \alpha_t = \alpha g + (1 - \alpha)(1 - g)

    ``gamma=0`` (and ``alpha=None``) gives :func:`cross_entropy` (softmax) or
    :func:`binary_cross_entropy` (sigmoid). :math:`1 - p_c` is computed as
    ``-expm1(log p_c)`` and :math:`1 - p_t` as :math:`p(1-g) + (1-p)g` from both
    sigmoids, so neither cancels; :math:`(1-p)^\gamma` has a finite gradient at
    ``p = 1`` also for ``gamma < 1``.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      gamma: focusing parameter :math:`\gamma \ge 0`.
      alpha: sigmoid: scalar weight of positives (``None``: no weighting);
        softmax: ``[C]`` class factors, a scalar meaning ``[1 - α, α, …, α]``
        (background against foreground), ``None`` meaning 1.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``
        (probabilities, treated per channel as with sigmoid).
      class_weights: optional ``[C]`` weights, multiplied with ``alpha``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      pixel_weights: optional ``[B, *spatial]`` (broadcastable) non-negative weight
        of each valid pixel's term; no gradient (:doc:`/conventions`).
      normalize_weights: ``"mean"`` divides by the sum of the valid weights
        instead of the number of valid pixels (elements).
      axis_name: mapped axis (``shard_map``/``pmap``) over which sums and counts
        are taken: the mean of the global batch (:doc:`/conventions`).
      reduction: ``"mean"`` over valid pixels (softmax) or elements (sigmoid),
        ``"sum"`` or ``"none"``.

    Returns:
      A scalar; ``reduction="none"`` gives ``[B, *spatial]`` (softmax) or
      ``[B, *spatial, C]`` (sigmoid).

    Sigmoid matches ``torchvision.ops.sigmoid_focal_loss`` and
    ``optax.losses.sigmoid_focal_loss`` (with ``reduction="mean"``); softmax
    matches MONAI ``FocalLoss(use_softmax=True)`` up to its reduction.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1]])
      >>> print(f"{sl.focal_loss(logits, labels, gamma=2.0):.4f}")
      0.0516

    References:
      Lin, Goyal, Girshick, He & Dollár, "Focal loss for dense object detection",
      ICCV 2017.
    """
    inp = prepare(logits, labels, activation=activation, where=where, ignore_index=ignore_index,
                  pixel_weights=pixel_weights)
    checks.check_reduction(reduction)
    checks.check_nonnegative("gamma", gamma)
    loss = focal_terms(inp, gamma, alpha, class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name, weights=inp.weights,
                         normalize=normalize_weights)


def focal_terms(inp: Inputs, gamma, alpha, class_weights) -> jax.Array:
    """The focal loss per pixel (softmax, ``[B, *spatial]``) or element (``[B, *spatial, C]``)."""
    weights = inp.per_class(class_weights)
    g = inp.target
    if inp.activation == "softmax":
        if alpha is not None:
            if jnp.ndim(alpha) == 0 and not isinstance(alpha, (list, tuple)):
                # A scalar α weighs the background 1 - α and every other class α.
                checks.check_in_range("alpha", alpha, 0.0, 1.0)
                alpha = jnp.where(jnp.arange(inp.num_classes) == 0, 1 - alpha, alpha)
            weights = weights * inp.per_class(alpha, "alpha")
        if inp.labels is not None:
            # One-hot target: only the labelled class contributes, so work with the
            # per-pixel log p_y = x_y - lse (x_y by a one-hot product, not a gather).
            log_py = jnp.sum(g * inp.x, axis=-1) - inp.lse
            unweighted = class_weights is None and alpha is None
            weight_y = 1.0 if unweighted else jnp.sum(weights * g, axis=-1)
            # 1 - p_y as -expm1(log p_y): no cancellation near p_y = 1.
            return -weight_y * safe_pow(-jnp.expm1(log_py), gamma) * log_py
        focal = safe_pow(-jnp.expm1(inp.log_probs), gamma) * inp.log_probs
        return -jnp.sum(weights * g * focal, axis=-1)
    # 1 - p_t = p(1 - g) + (1 - p)g, from both probabilities: no cancellation.
    one_minus_pt = inp.probs * (1 - g) + inp.one_minus_probs * g
    loss = safe_pow(one_minus_pt, gamma) * binary_ce(inp)
    if alpha is not None:
        checks.check_in_range("alpha", alpha, 0.0, 1.0)
        loss = loss * (alpha * g + (1 - alpha) * (1 - g))
    return loss * weights


@register()
def distance_weighted_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    max_distance: float | None = None,
    activation: LogitActivation = "softmax",
    class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    ignore_index: int | None = None,
    sampling: Sampling = None,
    target_distance: ArrayLike | None = None,
    pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False,
    axis_name: AxisName = None,
    reduction: Reduction = "mean",
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
        for :func:`~segloss_jax.shape_aware_loss`; the weights do not change the
        denominator of the mean.
      pixel_weights, normalize_weights, axis_name, reduction: as for
        :func:`~segloss_jax.shape_aware_loss`.

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
    inp = prepare_inputs(logits, labels, activation=activation, where=where,
                         ignore_index=ignore_index, reduction=reduction,
                         allowed=activations_of(LogitActivation), pixel_weights=pixel_weights)
    weights = inp.per_class(class_weights)
    if max_distance is not None:
        checks.check_positive("max_distance", max_distance)
    phi = target_field(inp, "distance_weighted_cross_entropy", target_distance, first=0,
                       sampling=sampling, max_distance=max_distance)
    return weighted_ce(inp, phi, weights, reduction, axis_name, normalize_weights)


def weighted_ce(inp: Inputs, term: jax.Array, class_weights, reduction: str,
                axis_name: Hashable | None, normalize_weights: bool = False) -> jax.Array:
    """Cross-entropy weighted by ``w_c (1 + term)``, reduced over valid pixels.

    ``class_weights`` is ``[1, ..., 1, C]`` (:meth:`~segloss_jax._src.inputs.Inputs.per_class`).

    ``term`` is one value per unit (``[B, C]``) or per element (``[B, C, *spatial]``).
    Softmax: ``-Σ_c W_c g_c log p_c`` per pixel; sigmoid:
    ``W`` times the binary cross-entropy, per element; the pixel weights of ``inp``
    and ``normalize_weights`` as :func:`~segloss_jax._src.reduce.reduce_pixels`.
    """
    if term.ndim == 2:
        term = term.reshape(term.shape[:1] + (1,) * (inp.x.ndim - 2) + term.shape[1:])
    else:
        term = channels_last(term)
    weights = (1 + term.astype(inp.dtype)) * class_weights
    if inp.activation == "softmax":
        loss = categorical_ce(inp, weights * inp.target)
    else:
        loss = weights * binary_ce(inp)
    return reduce_pixels(loss, inp.valid, reduction, axis_name, weights=inp.weights,
                         normalize=normalize_weights)


@register()
def poly_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, epsilon: chex.Numeric = 1.0,
    label_smoothing: float = 0.0, activation: SoftmaxActivation = "softmax",
    class_weights: chex.Array | None = None, where: chex.Array | None = None,
    ignore_index: int | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: Hashable | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Poly-1 cross-entropy: CE plus :math:`\varepsilon` times the first polynomial term.

    .. math::

       \ell = \sum_c w_c\, \tilde g_c \left[ -\log p_c + \epsilon\, (1 - p_c) \right]
            = \mathrm{CE} + \epsilon\, (1 - p_t) \ \text{ (one-hot, } w = 1),
       \qquad p_t = \sum_c g_c\, p_c

    with :math:`p = \mathrm{softmax}(x)`, :math:`\tilde g` the (label-smoothed) target
    and :math:`w_c` the class weights, which scale both terms. Written per class, the
    poly term is :math:`\sum_c \tilde g_c (1 - p_c)`, which is :math:`1 - p_t` for any
    target summing to 1 (one-hot, smoothed, soft) and is what optax computes for
    any dense target. :math:`\epsilon = -1` removes the first-order term of the CE's
    Taylor expansion; the paper tunes :math:`\epsilon \in [-1, \infty)`.

    Args:
      logits: ``[B, *spatial, C]`` logits, ``C >= 2`` (probabilities if
        ``activation=None``).
      labels: integer ``[B, *spatial]`` class indices or dense ``[B, *spatial, C]``.
      epsilon: the coefficient :math:`\epsilon` of :math:`(1 - p_t)`.
      label_smoothing: :math:`\varepsilon \in [0, 1]`, as :func:`cross_entropy`.
      activation: ``"softmax"`` or ``None``.
      class_weights: optional ``[C]`` non-negative weights of both terms.
      where, ignore_index, pixel_weights, normalize_weights, axis_name, reduction: as
        :func:`cross_entropy`.

    Returns:
      A scalar, or ``[B, *spatial]`` for ``reduction="none"``.

    Per pixel it equals ``optax.losses.poly_loss_cross_entropy(x, g, epsilon)``
    (``reduction="none"``, dense ``g``; the mean of it for ``"mean"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1]])
      >>> print(f"{sl.poly_cross_entropy(logits, labels, epsilon=1.0):.4f}")
      0.6507

    References:
      Leng, Xu, Tan, Zhang, Sun, Li, Zhou & Wang, "PolyLoss: a polynomial expansion
      perspective of classification loss functions", ICLR 2022.
    """
    # One-hot targets (integer labels, no smoothing): the poly term needs only p_y, so
    # both terms read the log-partition alone; otherwise the poly term reads the
    # probabilities.
    one_hot = (activation == "softmax" and not label_smoothing
               and not jnp.issubdtype(jnp.result_type(labels), jnp.floating))
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, pixel_weights=pixel_weights,
                  allowed_activations=activations_of(SoftmaxActivation))
    checks.check_reduction(reduction)
    target = smoothed_target(inp, label_smoothing, class_weights)
    ce = categorical_ce(inp, target, unit_mass=class_weights is None and inp.labels is not None)
    if one_hot:
        # Σ_c w_c g_c (1 − p_c) = w_y (1 − p_y), 1 − p_y = −expm1(log p_y): no cancellation.
        log_py = jnp.sum(inp.target * inp.x, axis=-1) - inp.lse
        poly = jnp.sum(target, axis=-1) * -jnp.expm1(log_py)
    else:
        poly = jnp.sum(target * inp.one_minus_probs, axis=-1)
    return reduce_pixels(ce + epsilon * poly, inp.valid, reduction, axis_name,
                         weights=inp.weights, normalize=normalize_weights)


@register()
def poly_focal_loss(
    logits: chex.Array, labels: chex.Array, *, epsilon: chex.Numeric = 1.0,
    gamma: chex.Numeric = 2.0, alpha: chex.Numeric | chex.Array | None = None,
    activation: AnyActivation = "softmax", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: Hashable | None = None, reduction: str = "mean",
) -> jax.Array:
    r"""Poly-1 focal loss: focal loss plus :math:`\epsilon (1 - p_t)^{\gamma + 1}`.

    .. math::

       \ell = \mathrm{FL}_{\gamma, \alpha} + \epsilon\, w_c\, (1 - p_t)^{\gamma + 1}

    with :math:`\mathrm{FL}` the :func:`focal_loss` (same ``gamma``, ``alpha``,
    ``activation``) and :math:`w_c` the class weight. Sigmoid (per element):
    :math:`p_t = p g + (1 - p)(1 - g)`, as in the paper's code. Softmax (per pixel):
    with integer labels :math:`p_t = p_y`; dense targets give
    :math:`\sum_c w_c\, g_c (1 - p_c)^{\gamma + 1}`, which is the above for one-hot
    targets and, with ``gamma=0``, the poly term of :func:`poly_cross_entropy`. The
    poly term is not ``alpha``-weighted (the paper's form); ``class_weights`` scale
    both terms. :math:`1 - p` is computed without cancellation, as in the focal loss.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      epsilon: the coefficient :math:`\epsilon` of the poly term.
      gamma: focusing parameter :math:`\gamma \ge 0`.
      alpha: as :func:`focal_loss` (focal term only).
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``
        (probabilities, treated per channel as with sigmoid).
      class_weights: optional ``[C]`` weights of both terms.
      where, ignore_index, pixel_weights, normalize_weights, axis_name, reduction: as
        :func:`focal_loss`.

    Returns:
      A scalar; ``reduction="none"`` gives ``[B, *spatial]`` (softmax) or
      ``[B, *spatial, C]`` (sigmoid).

    ``epsilon=0`` is :func:`focal_loss`. Sigmoid, per element, it is the paper's
    ``poly1_focal_loss`` (``FL + ε(1 − p_t)^{γ+1}`` with torchvision's focal loss).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1]])
      >>> print(f"{sl.poly_focal_loss(logits, labels, epsilon=1.0):.4f}")
      0.0916

    References:
      Leng, Xu, Tan, Zhang, Sun, Li, Zhou & Wang, "PolyLoss: a polynomial expansion
      perspective of classification loss functions", ICLR 2022; Lin, Goyal,
      Girshick, He & Dollár, "Focal loss for dense object detection", ICCV 2017.
    """
    inp = prepare(logits, labels, activation=activation, where=where, ignore_index=ignore_index,
                  pixel_weights=pixel_weights)
    checks.check_reduction(reduction)
    checks.check_nonnegative("gamma", gamma)
    loss = focal_terms(inp, gamma, alpha, class_weights) + epsilon * poly_terms(
        inp, gamma + 1, class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name, weights=inp.weights,
                         normalize=normalize_weights)


def poly_terms(inp: Inputs, power, class_weights) -> jax.Array:
    """``w (1 - p_t)^power`` per pixel (softmax) or element (sigmoid, probabilities)."""
    weights = inp.per_class(class_weights)
    g = inp.target
    if inp.activation == "softmax":
        if inp.labels is not None:
            # 1 - p_y as -expm1(log p_y), log p_y = x_y - lse (the focal term's form).
            log_py = jnp.sum(g * inp.x, axis=-1) - inp.lse
            weight_y = 1.0 if class_weights is None else jnp.sum(weights * g, axis=-1)
            return weight_y * safe_pow(-jnp.expm1(log_py), power)
        return jnp.sum(weights * g * safe_pow(-jnp.expm1(inp.log_probs), power), axis=-1)
    one_minus_pt = inp.probs * (1 - g) + inp.one_minus_probs * g
    return weights * safe_pow(one_minus_pt, power)
