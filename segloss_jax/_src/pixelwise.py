r"""Pixel-wise (distribution-based) losses: cross-entropy variants and focal loss.

Each loss is a sum over pixels of a per-pixel term, so it is as cheap as one
pass over the logits. Softmax losses give one value per pixel
(``[B, *spatial]``), sigmoid losses one per element (``[B, *spatial, C]``);
``reduction="mean"`` averages over the valid pixels (softmax) or valid elements
(sigmoid), and class or positive weights scale terms without changing that
denominator. Empty masks need no convention here: a pixel-wise loss is defined
for any target, and a batch with no valid pixel has loss 0.
"""

from __future__ import annotations

from collections.abc import Hashable

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import checks
from segloss_jax._src.inputs import Inputs, prepare
from segloss_jax._src.reduce import reduce_pixels, safe_pow
from segloss_jax._src.registry import register
from segloss_jax._src.stats import sum_across

_BINARY = ("sigmoid", None)


def binary_ce(inp: Inputs, pos_weight=None, neg_weight=None) -> jax.Array:
    """Per-element ``-(w⁺ g log p + w⁻ (1 - g) log(1 - p))``, ``[B, *spatial, C]``.

    Weights default to 1. For sigmoid, with ``log p = x - softplus(x)`` and
    ``log(1 - p) = -softplus(x)``, this is ``(w⁺ g + w⁻ (1 - g)) softplus(x) - w⁺ g x``:
    one softplus, finite for every finite logit, and for unit weights simply
    ``softplus(x) - g x`` (faster than optax's form, see benchmarks/RESULTS.md).
    """
    g = inp.target
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


def _check_reduction(reduction: str) -> None:
    checks.check_choice("reduction", reduction, checks.REDUCTIONS)


@register(activations=_BINARY)
def binary_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, pos_weight: chex.Numeric | None = None,
    activation: str | None = "sigmoid", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
    axis_name: Hashable | None = None, reduction: str = "mean",
) -> jax.Array:
    r"""Binary (sigmoid) cross-entropy from logits, per element.

    .. math::

       \ell = -w_c \left[ w^{+}\, g \log \sigma(x) + (1 - g) \log(1 - \sigma(x)) \right]

    with :math:`x` the logit, :math:`g \in [0, 1]` the target, :math:`w^{+}` the
    ``pos_weight`` and :math:`w_c` the class weight of the channel. It is computed
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
      activation: ``"sigmoid"`` or ``None`` (inputs are probabilities; logs are
        clamped at the smallest normal float, like PyTorch's ``BCELoss``).
      class_weights: optional ``[C]`` non-negative per-channel weights.
      where: optional bool ``[B, *spatial]``; ``False`` pixels contribute nothing.
      ignore_index: integer label value treated as ``where=False``.
      axis_name: mapped axis (``shard_map``/``pmap``) over which sums and counts
        are taken: the mean of the global batch (:doc:`/conventions`).
      reduction: ``"mean"`` over valid elements, ``"sum"`` or ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial, C]`` for ``reduction="none"`` (0 at excluded
      pixels). Float32 (float64 for float64 inputs).

    Matches ``torch.nn.BCEWithLogitsLoss(pos_weight=...)`` and
    ``optax.losses.sigmoid_binary_cross_entropy`` (mean over elements).

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
                  ignore_index=ignore_index, allowed_activations=_BINARY)
    _check_reduction(reduction)
    if pos_weight is not None:
        pos_weight = inp.per_class(pos_weight, "pos_weight", scalar=True)
    loss = binary_ce(inp, pos_weight)
    if class_weights is not None:
        loss = loss * inp.per_class(class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name)


@register(activations=_BINARY)
def weighted_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, beta: chex.Numeric,
    activation: str | None = "sigmoid", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
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
      class_weights, where, ignore_index, axis_name, reduction: as for
        :func:`binary_cross_entropy`.

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
        where=where, ignore_index=ignore_index, axis_name=axis_name, reduction=reduction)


@register(activations=_BINARY)
def balanced_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, beta: chex.Numeric | None = None,
    activation: str | None = "sigmoid", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
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
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      axis_name: mapped axis (``shard_map``/``pmap``) over which sums and counts
        are taken: the mean of the global batch (:doc:`/conventions`).
      reduction: ``"mean"`` over valid elements, ``"sum"`` or ``"none"``.

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
                  ignore_index=ignore_index, allowed_activations=_BINARY)
    _check_reduction(reduction)
    loss = balanced_ce(inp, beta, axis_name)
    if class_weights is not None:
        loss = loss * inp.per_class(class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name)


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


@register(activations=("softmax", None))
def cross_entropy(
    logits: chex.Array, labels: chex.Array, *, label_smoothing: float = 0.0,
    activation: str | None = "softmax", class_weights: chex.Array | None = None,
    where: chex.Array | None = None, ignore_index: int | None = None,
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
                  ignore_index=ignore_index, allowed_activations=("softmax", None))
    _check_reduction(reduction)
    checks.check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    target = inp.target
    if label_smoothing:
        target = (1 - label_smoothing) * target + label_smoothing / inp.num_classes
    loss = categorical_ce(inp, inp.per_class(class_weights) * target,
                          unit_mass=class_weights is None and inp.labels is not None)
    return reduce_pixels(loss, inp.valid, reduction, axis_name)


@register(activations=("softmax", "sigmoid", None))
def focal_loss(
    logits: chex.Array, labels: chex.Array, *, gamma: chex.Numeric = 2.0,
    alpha: chex.Numeric | chex.Array | None = None, activation: str | None = "softmax",
    class_weights: chex.Array | None = None, where: chex.Array | None = None,
    ignore_index: int | None = None,
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
    # Sigmoid focal reads p, 1 - p and softplus(x): all from one exp.
    inp = prepare(logits, labels, activation=activation, where=where, ignore_index=ignore_index,
                  fused=activation == "sigmoid")
    _check_reduction(reduction)
    checks.check_nonnegative("gamma", gamma)
    loss = focal_terms(inp, gamma, alpha, class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name)


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
