r"""Region losses: Dice, Jaccard, Tversky and their relatives.

Every loss here is a function of a few sums per *unit* (image ``b`` and class
``c`` with ``per_image=True``, class ``c`` over the batch otherwise), each sum
taken over the valid pixels of the unit:

.. math::

   S_k = \sum_{i \in V} f_k(p_i, g_i),
   \qquad f_k \in \{\, p g,\ p,\ g,\ p^2,\ g^2,\ |p - g|,\ (g - p)^2 g,\ \dots \}

with :math:`p` the probabilities and :math:`g` the dense target. The loss is
:math:`L(S)`, a few lines per loss that read like the paper (``_dice``,
``_jaccard``, ... below), followed by the shared class selection and reduction
(:func:`segloss_jax._src.reduce.kept_units`, :func:`~segloss_jax._src.reduce.reduce_units`).

Gradient. By the chain rule, at pixel :math:`i` of unit :math:`u`

.. math::

   \frac{\partial L}{\partial p_i} = \sum_k \frac{\partial L}{\partial S_{k,u}}\,
   \frac{\partial f_k}{\partial p}(p_i, g_i),

a per-unit scalar times a per-pixel elementwise term. So all losses share one
``jax.custom_vjp`` (:func:`_region_op`): the forward pass computes the
probabilities, the sums (``psum``-ed over ``axis_name`` when ``per_image=False``)
and :math:`L`; it saves the probabilities and the sums. The backward pass gets
:math:`\partial L / \partial S` by autodiff of the tiny function :math:`L(S)`
(``[B, C]``-sized), then does one fused elementwise pass over the pixels: the
line above, the mask, and the activation's Jacobian (softmax:
:math:`dx = p \odot (dp - \sum_c p_c\, dp_c)`; sigmoid: :math:`dx = p(1 - p)\, dp`).
Plain autodiff of the same formulas keeps one residual per intermediate array
and runs several reductions backwards; see ``benchmarks/bench_region.py``.

Conventions (API.md §3, §9): a score :math:`(n + s_n)/(d + s_d)` whose
denominator is 0 even after smoothing is 1, with zero gradient, never NaN; with
``classes="all"`` an absent class scores :math:`s_n / (\sum p + s_d)`; a unit
whose pixels are all excluded scores :math:`s_n / s_d`; labels, ``where`` and the
validity mask receive no gradient, and excluded pixels get exactly zero gradient.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from segloss_jax._src import checks, inputs, reduce, stats
from segloss_jax._src.inputs import prepare
from segloss_jax._src.registry import register

_ACTIVATIONS = ("softmax", "sigmoid", None)
_GDL_WEIGHTS = ("square", "simple", "uniform")

Sums = Mapping[str, jax.Array]
Params = Mapping[str, jax.Array]


# --------------------------------------------------------------------------------------
# Per-pixel terms f_k(p, g) whose valid-pixel sums the losses are built from.
# --------------------------------------------------------------------------------------


@jax.custom_jvp
def _abs_diff(p: jax.Array, g: jax.Array) -> jax.Array:
    """``|p - g|``, with slope ``1 - 2g`` at ``p == g``.

    ``1 - 2g`` lies in ``[-1, 1]`` (a subgradient of ``|.|`` at 0) and is the slope
    of ``p(1 - g) + (1 - p)g`` for hard ``g``, so the soft-label-correct losses
    equal the plain ones in gradient too when the labels are hard, also at
    saturated probabilities.
    """
    return jnp.abs(p - g)


@_abs_diff.defjvp
def _abs_diff_jvp(primals, tangents):
    (p, g), (dp, dg) = primals, tangents
    slope = jnp.where(p == g, 1 - 2 * g, jnp.sign(p - g))
    return jnp.abs(p - g), slope * (dp - dg)


_FEATURES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "tp": lambda p, g: p * g,
    "sum_p": lambda p, g: p,
    "sum_g": lambda p, g: g,
    "sum_p2": lambda p, g: p * p,
    "sum_g2": lambda p, g: g * g,
    "l1": _abs_diff,
    "sens_err": lambda p, g: jnp.square(g - p) * g,
    "spec_err": lambda p, g: jnp.square(g - p) * (1 - g),
    # Valid pixels per unit: the same for every class, so one channel.
    "count": lambda p, g: jnp.ones_like(p[..., :1]),
}
# Terms that do not depend on p: no gradient flows through them.
_TARGET_ONLY = frozenset({"sum_g", "sum_g2", "count"})


# --------------------------------------------------------------------------------------
# Activations (the short-class-axis fast paths live in `inputs`).
# --------------------------------------------------------------------------------------


def _probabilities(logits: jax.Array, activation: str | None) -> jax.Array:
    x = logits.astype(inputs.compute_dtype(logits.dtype))
    return inputs.Inputs(x, None, None, None, activation).probs


def _activation_vjp(p: jax.Array, dp: jax.Array, activation: str | None) -> jax.Array:
    """``dL/dlogits`` from ``dL/dp`` through the activation's Jacobian."""
    if activation == "softmax":
        return p * (dp - inputs.class_sum(p * dp))
    if activation == "sigmoid":
        return p * (1 - p) * dp
    return dp


# --------------------------------------------------------------------------------------
# The shared custom_vjp: loss from unit sums.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Static description of one region loss call (hashable: it keys the op cache)."""

    features: tuple[str, ...]  # names in _FEATURES
    head: Callable  # head(sums, params, spec) -> the returned loss
    unit_loss: Callable | None  # unit_loss(sums, params, **options) -> [B, C] or [C]
    options: tuple[tuple[str, Any], ...]
    activation: str | None
    per_image: bool
    axis_name: Hashable | None
    reduction: str
    include_background: bool
    classes: str
    num_classes: int
    dtype: Any  # dtype of the logits: the cotangent is returned in it


def _target(labels: jax.Array, spec: _Spec, dtype) -> jax.Array:
    """Dense target from integer labels (one-hot by comparison, fused) or dense labels."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return inputs.one_hot_target(labels, spec.num_classes, dtype)
    return labels.astype(dtype)


def _expand_units(unit_value: jax.Array, ndim: int, per_image: bool) -> jax.Array:
    """``[B, C]`` or ``[C]`` -> broadcastable against ``[B, *spatial, C]``."""
    lead = unit_value.shape[:1] if per_image else ()
    n_ones = ndim - 1 - len(lead)
    return unit_value.reshape(lead + (1,) * n_ones + unit_value.shape[-1:])


@functools.lru_cache(maxsize=512)
def _region_op(spec: _Spec) -> Callable:
    """The custom_vjp ``op(logits, labels, valid, params) -> loss`` for ``spec``."""

    def forward(logits, labels, valid, params):
        probs = _probabilities(logits, spec.activation)
        target = _target(labels, spec, probs.dtype)
        values = [_FEATURES[name](probs, target) for name in spec.features]
        sums = stats.unit_sums(*values, valid=valid, per_image=spec.per_image,
                               axis_name=spec.axis_name)
        sums = dict(zip(spec.features, sums, strict=True))
        return spec.head(sums, params, spec), (probs, sums)

    @jax.custom_vjp
    def op(logits, labels, valid, params):
        return forward(logits, labels, valid, params)[0]

    def op_fwd(logits, labels, valid, params):
        loss, (probs, sums) = forward(logits, labels, valid, params)
        return loss, (probs, labels, valid, sums, params)

    def op_bwd(residuals, cotangent):
        probs, labels, valid, sums, params = residuals
        # dL/dS: autodiff of the small per-unit function. With axis_name and
        # per_image=False the sums are global, so this is the gradient of the
        # global loss; each device then applies it to its own pixels.
        _, head_vjp = jax.vjp(lambda s, q: spec.head(s, q, spec), sums, params)
        d_sums, d_params = head_vjp(cotangent)
        target = _target(labels, spec, probs.dtype)

        # Σ_k dL/dS_k · ∂f_k/∂p per pixel, as the gradient of Σ_pixels Σ_k dL/dS_k · f_k:
        # elementwise, so XLA fuses it with the lines below into one pass.
        def weighted_terms(p):
            return sum(
                jnp.sum(_expand_units(d_sums[name], p.ndim, spec.per_image)
                        * _FEATURES[name](p, target))
                for name in spec.features if name not in _TARGET_ONLY)

        d_probs = jax.grad(weighted_terms)(probs)
        # Excluded pixels get exactly zero: d_probs is finite there (finite inputs),
        # and the activation Jacobians are products with it. A 0/1 factor, not a
        # select: XLA:CPU does not vectorise a select on a bool mask broadcast over
        # the class axis (it cost more than the rest of the backward pass).
        d_probs = d_probs * valid.astype(d_probs.dtype)[..., None]
        d_logits = _activation_vjp(probs, d_probs, spec.activation)
        return d_logits.astype(spec.dtype), None, None, d_params

    op.defvjp(op_fwd, op_bwd)
    return op


def _class_head(sums: Sums, params: Params, spec: _Spec) -> jax.Array:
    """Per-class unit loss, then class selection and reduction (API.md §3)."""
    loss = spec.unit_loss(sums, params, **dict(spec.options))
    keep = reduce.kept_units(sums["sum_g"], include_background=spec.include_background,
                             classes=spec.classes)
    return reduce.reduce_units(loss, keep, reduction=spec.reduction,
                               class_weights=params.get("class_weights"),
                               axis_name=spec.axis_name)


# --------------------------------------------------------------------------------------
# Keyword handling shared by every region loss.
# --------------------------------------------------------------------------------------


def _smooth_pair(smooth) -> tuple[Any, Any]:
    """``smooth`` as ``(s_num, s_den)``: a scalar is used for both."""
    if isinstance(smooth, (tuple, list)) or np.ndim(smooth) == 1:
        if len(smooth) != 2:
            raise ValueError(
                "`smooth` must be a non-negative scalar or a pair (s_num, s_den), "
                f"got {smooth!r}.")
        s_num, s_den = smooth[0], smooth[1]
    elif np.ndim(smooth) == 0:
        s_num = s_den = smooth
    else:
        raise ValueError(
            "`smooth` must be a non-negative scalar or a pair (s_num, s_den), "
            f"got an array of shape {np.shape(smooth)}.")
    checks.check_nonnegative("smooth", s_num)
    checks.check_nonnegative("smooth", s_den)
    return s_num, s_den


def _region_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    features: tuple[str, ...],
    int_label_features: tuple[str, ...] | None = None,
    unit_loss: Callable | None,
    head: Callable = _class_head,
    options: tuple[tuple[str, Any], ...] = (),
    hyper: Mapping[str, Any] | None = None,
    activation: str | None,
    smooth,
    per_image: bool,
    include_background: bool,
    classes: str,
    class_weights: chex.Array | None,
    ignore_index: int | None,
    where: chex.Array | None,
    axis_name: Hashable | None,
    reduction: str,
) -> jax.Array:
    """Checks the keywords, prepares the inputs and calls the shared op."""
    prep = prepare(logits, labels, activation=activation, where=where,
                   ignore_index=ignore_index, allowed_activations=_ACTIVATIONS)
    num_classes, dtype = prep.num_classes, prep.probs.dtype
    checks.check_choice("reduction", reduction, checks.REDUCTIONS)
    checks.check_choice("classes", classes, checks.CLASS_MODES)
    checks.check_class_weights(class_weights, num_classes)
    if not isinstance(per_image, (bool, np.bool_)):
        raise TypeError(f"`per_image` must be a bool, got {per_image!r}.")
    s_num, s_den = _smooth_pair(smooth)
    params = {name: jnp.asarray(value, dtype) for name, value in (hyper or {}).items()}
    params["s_num"], params["s_den"] = jnp.asarray(s_num, dtype), jnp.asarray(s_den, dtype)
    if class_weights is not None:
        params["class_weights"] = jnp.asarray(class_weights, dtype)
    logits = jnp.asarray(logits)
    if int_label_features is not None and prep.labels is not None:
        features = int_label_features
    spec = _Spec(
        features=features, head=head, unit_loss=unit_loss, options=options,
        activation=activation, per_image=bool(per_image), axis_name=axis_name,
        reduction=reduction, include_background=bool(include_background), classes=classes,
        num_classes=num_classes, dtype=jnp.dtype(logits.dtype))
    # Integer labels travel as they are (the one-hot is formed inside the fused
    # passes); dense labels as the prepared float target.
    labels_in = prep.labels if prep.labels is not None else prep.target
    return _region_op(spec)(logits, labels_in, prep.valid, params)


# --------------------------------------------------------------------------------------
# Scores. Each reads like its paper; `s` holds the unit sums, `q` the hyperparameters.
# --------------------------------------------------------------------------------------


def _score(num: jax.Array, den: jax.Array, q: Params) -> jax.Array:
    """``(num + s_num) / (den + s_den)``; 1 with zero gradient where the smoothed
    denominator is 0 (API.md §9.5)."""
    return reduce.safe_div(num + q["s_num"], den + q["s_den"], fallback=1.0)


def _confusion(s: Sums) -> stats.Confusion:
    """Soft ``tp, fp, fn``: ``fp = Σp − tp``, ``fn = Σg − tp`` (exact for soft labels)."""
    return stats.Confusion(s["tp"], s["sum_p"] - s["tp"], s["sum_g"] - s["tp"])


def _l1_intersection(s: Sums) -> jax.Array:
    """Wang & Blaschko's ``I = (Σp + Σg − Σ|p − g|) / 2``.

    For hard labels it equals ``Σpg``, which integer labels use directly (their
    sums are ``tp, Σp, Σg``: one pass less, and the same gradient).
    """
    if "tp" in s:
        return s["tp"]
    return (s["sum_p"] + s["sum_g"] - s["l1"]) / 2


def _dice_score(s: Sums, q: Params, squared: bool) -> jax.Array:
    if squared:
        return _score(2 * s["tp"], s["sum_p2"] + s["sum_g2"], q)
    tp, fp, fn = _confusion(s)
    return _score(2 * tp, 2 * tp + fp + fn, q)


def _dice(s: Sums, q: Params, *, squared: bool, log: bool) -> jax.Array:
    score = _dice_score(s, q, squared)
    # -log is clamped at the smallest normal float: finite for a zero score.
    return -inputs.safe_log(score) if log else 1 - score


def _log_cosh_dice(s: Sums, q: Params) -> jax.Array:
    x = 1 - _dice_score(s, q, squared=False)
    return jnp.logaddexp(x, -x) - math.log(2.0)  # log(cosh(x)), without overflow


def _jaccard(s: Sums, q: Params) -> jax.Array:
    tp, fp, fn = _confusion(s)
    return 1 - _score(tp, tp + fp + fn, q)


def _tversky_index(s: Sums, q: Params) -> jax.Array:
    tp, fp, fn = _confusion(s)
    return _score(tp, tp + q["alpha"] * fp + q["beta"] * fn, q)


def _tversky(s: Sums, q: Params) -> jax.Array:
    return 1 - _tversky_index(s, q)


def _focal_tversky(s: Sums, q: Params) -> jax.Array:
    # Clamped at 0: with s_num > s_den the index may exceed 1.
    base = jnp.maximum(1 - _tversky_index(s, q), 0)
    return reduce.safe_pow(base, q["gamma"])  # finite gradient at base == 0


def _sensitivity_specificity(s: Sums, q: Params) -> jax.Array:
    # Error rates, so only the denominators are smoothed (a smoothed numerator
    # would penalise a perfect prediction); an empty denominator means no error.
    negatives = s["count"] - s["sum_g"]
    sensitivity_err = reduce.safe_div(s["sens_err"], s["sum_g"] + q["s_den"])
    specificity_err = reduce.safe_div(s["spec_err"], negatives + q["s_den"])
    return q["r"] * sensitivity_err + (1 - q["r"]) * specificity_err


def _jaccard_metric(s: Sums, q: Params) -> jax.Array:
    intersection = _l1_intersection(s)
    return 1 - _score(intersection, s["sum_p"] + s["sum_g"] - intersection, q)


def _dice_semimetric(s: Sums, q: Params) -> jax.Array:
    return 1 - _score(2 * _l1_intersection(s), s["sum_p"] + s["sum_g"], q)


def _generalized_dice_head(sums: Sums, params: Params, spec: _Spec) -> jax.Array:
    """Sudre et al.: one loss per unit of classes, ``[B]`` or ``[]`` before reduction."""
    s, q = sums, params
    keep = reduce.kept_units(s["sum_g"], include_background=spec.include_background,
                             classes=spec.classes)
    weights = _generalized_dice_weights(jax.lax.stop_gradient(s["sum_g"]), keep,
                                        dict(spec.options)["weight"])
    if "class_weights" in q:
        weights = weights * jnp.broadcast_to(q["class_weights"], weights.shape)
    tp, fp, fn = _confusion(s)
    score = _score(2 * jnp.sum(weights * tp, -1),
                   jnp.sum(weights * (2 * tp + fp + fn), -1), q)
    loss = (1 - score)[..., None]
    # A unit with no kept class leaves the mean (API.md §3).
    unit_kept = jnp.any(keep, axis=-1, keepdims=True)
    out = reduce.reduce_units(loss, unit_kept, reduction=spec.reduction,
                              axis_name=spec.axis_name)
    return out[..., 0] if spec.reduction == "none" else out


def _generalized_dice_weights(sum_g: jax.Array, keep: jax.Array, weight: str) -> jax.Array:
    """``w_c = 1/(Σg_c)^2``, ``1/Σg_c`` or ``1`` over the kept classes, 0 elsewhere.

    A kept class whose weight is infinite (absent from the unit) gets the largest
    finite weight of the unit (MONAI's convention); if there is none, every
    weight is 0 (API.md §9.4).
    """
    if weight == "square":
        raw = 1 / jnp.square(sum_g)
    elif weight == "simple":
        raw = 1 / sum_g
    else:
        raw = jnp.ones_like(sum_g)
    finite = jnp.isfinite(raw) & keep
    largest = jnp.max(jnp.where(finite, raw, 0), axis=-1, keepdims=True)
    return jnp.where(keep, jnp.where(finite, raw, largest), 0)


# --------------------------------------------------------------------------------------
# Public losses.
# --------------------------------------------------------------------------------------

_TP = ("tp", "sum_p", "sum_g")


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def dice_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    squared: bool = False,
    log: bool = False,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` class indices (``C == 1``: 0/1 foreground)
        or dense ``[B, *spatial, C]`` targets in ``[0, 1]``; no gradient.
      squared: square :math:`p` and :math:`g` in the denominator.
      log: return :math:`-\log(\text{score})`.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or a pair
        ``(s_num, s_den)``.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"`` (only units whose target has mass).
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]``; ``False`` pixels count nowhere.
      axis_name: mapped axis (``shard_map``/``pmap``) over which the sums (with
        ``per_image=False``) or the image mean (with ``per_image=True``) are
        taken: the result equals that of the concatenated batch.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    features = ("tp", "sum_p2", "sum_g2", "sum_g") if squared else _TP
    return _region_loss(
        logits, labels, features=features, unit_loss=_dice,
        options=(("squared", bool(squared)), ("log", bool(log))),
        activation=activation, smooth=smooth, per_image=per_image,
        include_background=include_background, classes=classes,
        class_weights=class_weights, ignore_index=ignore_index, where=where,
        axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def jaccard_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets;
        no gradient.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or ``(s_num, s_den)``.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    return _region_loss(
        logits, labels, features=_TP, unit_loss=_jaccard, activation=activation,
        smooth=smooth, per_image=per_image, include_background=include_background,
        classes=classes, class_weights=class_weights, ignore_index=ignore_index,
        where=where, axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def tversky_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    alpha: chex.Numeric = 0.3,
    beta: chex.Numeric = 0.7,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      alpha: non-negative weight of false positives.
      beta: non-negative weight of false negatives.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or ``(s_num, s_den)``.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    checks.check_nonnegative("alpha", alpha)
    checks.check_nonnegative("beta", beta)
    return _region_loss(
        logits, labels, features=_TP, unit_loss=_tversky,
        hyper={"alpha": alpha, "beta": beta}, activation=activation, smooth=smooth,
        per_image=per_image, include_background=include_background, classes=classes,
        class_weights=class_weights, ignore_index=ignore_index, where=where,
        axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def focal_tversky_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    alpha: chex.Numeric = 0.3,
    beta: chex.Numeric = 0.7,
    gamma: chex.Numeric = 0.75,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      alpha: non-negative weight of false positives.
      beta: non-negative weight of false negatives.
      gamma: non-negative exponent.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or ``(s_num, s_den)``.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    checks.check_nonnegative("alpha", alpha)
    checks.check_nonnegative("beta", beta)
    checks.check_nonnegative("gamma", gamma)
    return _region_loss(
        logits, labels, features=_TP, unit_loss=_focal_tversky,
        hyper={"alpha": alpha, "beta": beta, "gamma": gamma}, activation=activation,
        smooth=smooth, per_image=per_image, include_background=include_background,
        classes=classes, class_weights=class_weights, ignore_index=ignore_index,
        where=where, axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def sensitivity_specificity_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    r: chex.Numeric = 0.05,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      r: weight of the sensitivity term, in ``[0, 1]``.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar or ``(s_num, s_den)``; only ``s_den`` is used.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    checks.check_in_range("r", r, 0.0, 1.0)
    return _region_loss(
        logits, labels, features=("sens_err", "spec_err", "sum_g", "count"),
        unit_loss=_sensitivity_specificity, hyper={"r": r}, activation=activation,
        smooth=smooth, per_image=per_image, include_background=include_background,
        classes=classes, class_weights=class_weights, ignore_index=ignore_index,
        where=where, axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def log_cosh_dice_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Log-cosh Dice loss: :math:`\log\cosh` of the Dice loss of each unit.

    .. math::

       L = \log\cosh\left(1 - \frac{2\,tp + s_n}{2\,tp + fp + fn + s_d}\right)

    :math:`\log\cosh x \approx x^2/2` for small :math:`x`: a smooth, bounded
    (:math:`\le \log\cosh 1 \approx 0.434`) version of the Dice loss. Applied per
    unit, then reduced; Jadon applies it to the already averaged Dice loss,
    which is the same for a single unit (e.g. ``C == 1`` with
    ``per_image=False``). Computed as :math:`\mathrm{logaddexp}(x, -x) - \log 2`.
    Symbols, units and empty-mask conventions as in :func:`dice_loss`.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or ``(s_num, s_den)``.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    return _region_loss(
        logits, labels, features=_TP, unit_loss=_log_cosh_dice, activation=activation,
        smooth=smooth, per_image=per_image, include_background=include_background,
        classes=classes, class_weights=class_weights, ignore_index=ignore_index,
        where=where, axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def generalized_dice_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    weight: str = "square",
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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
    weight is 0 and the loss is :math:`1 - s_n/s_d` (API.md §9.4), 0 with equal
    smooths. ``include_background=False`` and ``classes="present"`` remove
    classes from the sums (weight 0); a unit with no kept class leaves the mean.
    ``class_weights`` multiply :math:`w_c`. Symbols as in :func:`dice_loss`.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      weight: ``"square"`` (default), ``"simple"`` or ``"uniform"``.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or ``(s_num, s_den)``.
      per_image: one loss per image instead of one for the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` factors of :math:`w_c`.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"`` (over images with a kept class), ``"sum"`` or
        ``"none"``.

    Returns:
      A scalar, or for ``reduction="none"`` ``[B]`` (``per_image=True``) or
      ``[]``.

    Peers: MONAI ``GeneralizedDiceLoss(w_type=t, smooth_nr=a, smooth_dr=d,
    batch=b, include_background=i, softmax=True, to_onehot_y=True)`` is
    ``generalized_dice_loss(weight=t, smooth=(a, d), per_image=not b,
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
    checks.check_choice("weight", weight, _GDL_WEIGHTS)
    return _region_loss(
        logits, labels, features=_TP, unit_loss=None, head=_generalized_dice_head,
        options=(("weight", weight),), activation=activation, smooth=smooth,
        per_image=per_image, include_background=include_background, classes=classes,
        class_weights=class_weights, ignore_index=ignore_index, where=where,
        axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def jaccard_metric_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense (soft) ``[B, *spatial, C]``.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or ``(s_num, s_den)``.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    return _region_loss(
        logits, labels, features=("sum_p", "sum_g", "l1"), int_label_features=_TP,
        unit_loss=_jaccard_metric,
        activation=activation, smooth=smooth, per_image=per_image,
        include_background=include_background, classes=classes,
        class_weights=class_weights, ignore_index=ignore_index, where=where,
        axis_name=axis_name, reduction=reduction)


@register(activations=_ACTIVATIONS, dense_labels=True, kind="region")
def dice_semimetric_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    activation: str | None = "softmax",
    smooth: chex.Numeric | tuple[chex.Numeric, chex.Numeric] = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    classes: str = "all",
    class_weights: chex.Array | None = None,
    ignore_index: int | None = None,
    where: chex.Array | None = None,
    axis_name: Hashable | None = None,
    reduction: str = "mean",
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
    Symbols, units and conventions as in :func:`dice_loss`;
    :math:`\partial |p - g| / \partial p` at :math:`p = g` is taken as
    :math:`1 - 2g`.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense (soft) ``[B, *spatial, C]``.
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      smooth: scalar added to numerator and denominator, or ``(s_num, s_den)``.
      per_image: units are (image, class) instead of class over the batch.
      include_background: ``False`` drops class 0 (when ``C > 1``).
      classes: ``"all"`` or ``"present"``.
      class_weights: optional ``[C]`` weights of the class mean.
      ignore_index: integer label value treated as ``where=False``.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      axis_name: mapped axis for global statistics (see :func:`dice_loss`).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

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
    return _region_loss(
        logits, labels, features=("sum_p", "sum_g", "l1"), int_label_features=_TP,
        unit_loss=_dice_semimetric,
        activation=activation, smooth=smooth, per_image=per_image,
        include_background=include_background, classes=classes,
        class_weights=class_weights, ignore_index=ignore_index, where=where,
        axis_name=axis_name, reduction=reduction)
