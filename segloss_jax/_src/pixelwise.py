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

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import checks
from segloss_jax._src.inputs import Prepared, log_sigmoid_pair, prepare
from segloss_jax._src.reduce import reduce_pixels, safe_pow
from segloss_jax._src.registry import register

_BINARY = ("sigmoid", None)


def _binary_log_probs(logits: jax.Array, prep: Prepared, activation: str | None):
    """``(log p, log(1 - p))`` per element; from the logits when ``sigmoid``."""
    if activation == "sigmoid":
        return log_sigmoid_pair(logits.astype(prep.probs.dtype))
    return prep.log_probs, prep.log_1m_probs


def _binary_ce(logits, prep: Prepared, activation, pos_weight=None, neg_weight=None):
    """Per-element ``-(w⁺ g log p + w⁻ (1 - g) log(1 - p))`` (weights default to 1)."""
    target = prep.target
    if activation != "sigmoid":
        pos = target if pos_weight is None else pos_weight * target
        neg = 1 - target if neg_weight is None else neg_weight * (1 - target)
        return -(pos * prep.log_probs + neg * prep.log_1m_probs)
    # With log p = x - softplus(x) and log(1 - p) = -softplus(x) the loss is
    # (w⁺ g + w⁻ (1 - g)) softplus(x) - w⁺ g x: one softplus, and for unit
    # weights simply softplus(x) - g x (about 2x faster fwd+bwd than optax's form).
    x = logits.astype(prep.probs.dtype)
    softplus = jax.nn.softplus(x)
    if pos_weight is None and neg_weight is None:
        return softplus - target * x
    pos = target if pos_weight is None else pos_weight * target
    neg = 1 - target if neg_weight is None else neg_weight * (1 - target)
    return (pos + neg) * softplus - pos * x


def _channel_values(value, prep: Prepared, name: str) -> jax.Array:
    """A scalar or ``[C]`` hyperparameter as ``[1, ..., 1, C]``, broadcasting over pixels
    (explicitly: the tests run with rank promotion disabled)."""
    value = jnp.asarray(value, prep.probs.dtype)
    if value.ndim == 0:
        value = jnp.broadcast_to(value, (prep.num_classes,))
    checks.check_class_weights(value, prep.num_classes, name=name)
    return value.reshape((1,) * (prep.probs.ndim - 1) + (prep.num_classes,))


def _weights(class_weights, prep: Prepared) -> jax.Array:
    """``class_weights`` as ``[1, ..., 1, C]`` (ones when ``None``)."""
    if class_weights is None:
        class_weights = 1.0
    return _channel_values(class_weights, prep, "class_weights")


def _common_checks(num_classes: int, reduction: str, class_weights) -> None:
    checks.check_choice("reduction", reduction, checks.REDUCTIONS)
    checks.check_class_weights(class_weights, num_classes)


@register(activations=_BINARY)
def binary_cross_entropy(
    logits: chex.Array,
    labels: chex.Array,
    *,
    pos_weight: chex.Numeric | None = None,
    activation: str | None = "sigmoid",
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
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
    prep = prepare(
        logits,
        labels,
        activation=activation,
        where=where,
        ignore_index=ignore_index,
        allowed_activations=_BINARY,
    )
    num_classes = prep.num_classes
    _common_checks(num_classes, reduction, class_weights)
    if pos_weight is not None:
        checks.check_nonnegative("pos_weight", pos_weight)
        pos_weight = _channel_values(pos_weight, prep, "pos_weight")
    loss = _binary_ce(logits, prep, activation, pos_weight)
    if class_weights is not None:
        loss = loss * _weights(class_weights, prep)
    return reduce_pixels(loss, prep.valid, reduction)


@register(activations=_BINARY)
def weighted_cross_entropy(
    logits: chex.Array,
    labels: chex.Array,
    *,
    beta: chex.Numeric,
    activation: str | None = "sigmoid",
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
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
      class_weights: optional ``[C]`` per-channel weights.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      reduction: ``"mean"`` over valid elements, ``"sum"`` or ``"none"``.

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
        logits,
        labels,
        pos_weight=beta,
        activation=activation,
        class_weights=class_weights,
        where=where,
        ignore_index=ignore_index,
        reduction=reduction,
    )


@register(activations=_BINARY)
def balanced_cross_entropy(
    logits: chex.Array,
    labels: chex.Array,
    *,
    beta: chex.Numeric | None = None,
    activation: str | None = "sigmoid",
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
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
    prep = prepare(
        logits,
        labels,
        activation=activation,
        where=where,
        ignore_index=ignore_index,
        allowed_activations=_BINARY,
    )
    num_classes, dtype = prep.num_classes, prep.probs.dtype
    _common_checks(num_classes, reduction, class_weights)
    if beta is None:
        valid = prep.valid[..., None]
        axes = tuple(range(prep.target.ndim - 1))
        positives = jnp.sum(jnp.where(valid, prep.target, 0), axis=axes)
        count = jnp.sum(valid, axis=axes, dtype=dtype)
        beta = jax.lax.stop_gradient(
            jnp.where(count > 0, 1 - positives / jnp.maximum(count, 1), 0.5)
        )
    else:
        checks.check_in_range("beta", beta, 0.0, 1.0)
    beta = _channel_values(beta, prep, "beta")
    loss = _binary_ce(logits, prep, activation, beta, 1 - beta)
    if class_weights is not None:
        loss = loss * _weights(class_weights, prep)
    return reduce_pixels(loss, prep.valid, reduction)


@register(activations=("softmax", None))
def cross_entropy(
    logits: chex.Array,
    labels: chex.Array,
    *,
    label_smoothing: float = 0.0,
    activation: str | None = "softmax",
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
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
    prep = prepare(
        logits,
        labels,
        activation=activation,
        where=where,
        ignore_index=ignore_index,
        allowed_activations=("softmax", None),
    )
    num_classes = prep.num_classes
    _common_checks(num_classes, reduction, class_weights)
    checks.check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    target = prep.target
    if label_smoothing:
        target = (1 - label_smoothing) * target + label_smoothing / num_classes
    weighted_target = _weights(class_weights, prep) * target
    if activation == "softmax":
        # -Σ w t (x - lse) = lse Σ w t - Σ w t x: autodiff of this form is one fused
        # pass (measured ~2x faster fwd+bwd on XLA:CPU than through log_softmax).
        x = logits.astype(prep.probs.dtype)
        lse = jax.nn.logsumexp(x, axis=-1)
        # Σ_c t_c = 1 for unweighted integer labels: skip a reduction.
        unit_mass = class_weights is None and prep.labels is not None
        mass = 1.0 if unit_mass else jnp.sum(weighted_target, axis=-1)
        loss = lse * mass - jnp.sum(weighted_target * x, axis=-1)
    else:
        loss = -jnp.sum(weighted_target * prep.log_probs, axis=-1)
    return reduce_pixels(loss, prep.valid, reduction)


@register(activations=("softmax", "sigmoid", None))
def focal_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    gamma: chex.Numeric = 2.0,
    alpha: chex.Numeric | chex.Array | None = None,
    activation: str | None = "softmax",
    class_weights: chex.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
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
    prep = prepare(logits, labels, activation=activation, where=where, ignore_index=ignore_index)
    num_classes, dtype = prep.num_classes, prep.probs.dtype
    _common_checks(num_classes, reduction, class_weights)
    checks.check_nonnegative("gamma", gamma)
    weights = _weights(class_weights, prep)
    target = prep.target
    if activation == "softmax":
        if alpha is not None:
            checks.check_nonnegative("alpha", alpha)
            alpha = jnp.asarray(alpha, dtype)
            if alpha.ndim == 0:
                alpha = jnp.where(jnp.arange(num_classes) == 0, 1 - alpha, alpha)
            weights = weights * _channel_values(alpha, prep, "alpha")
        if prep.labels is not None:
            # One-hot target: only the labelled class contributes, so work with the
            # per-pixel log p_y = x_y - lse (x_y by a one-hot product, not a gather).
            x = logits.astype(dtype)
            log_py = jnp.sum(target * x, axis=-1) - jax.nn.logsumexp(x, axis=-1)
            unweighted = class_weights is None and alpha is None
            weight_y = 1.0 if unweighted else jnp.sum(weights * target, axis=-1)
            loss = -weight_y * safe_pow(-jnp.expm1(log_py), gamma) * log_py
        else:
            one_minus_p = -jnp.expm1(prep.log_probs)
            focal = safe_pow(one_minus_p, gamma) * prep.log_probs
            loss = -jnp.sum(weights * target * focal, axis=-1)
        return reduce_pixels(loss, prep.valid, reduction)

    log_p, log_1mp = _binary_log_probs(logits, prep, activation)
    p, one_minus_p = jnp.exp(log_p), jnp.exp(log_1mp)
    one_minus_pt = p * (1 - target) + one_minus_p * target
    loss = safe_pow(one_minus_pt, gamma) * _binary_ce(logits, prep, activation)
    if alpha is not None:
        checks.check_in_range("alpha", alpha, 0.0, 1.0)
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return reduce_pixels(loss * weights, prep.valid, reduction)
