"""Float64 NumPy references, written from the formulas and papers, independently of segloss_jax.

The tests compare the library against these. Nothing here imports JAX or
``segloss_jax``. The region reference (:func:`region_loss`) and the helpers it
uses are generic in the array module ``xp``: with NumPy in float64 they give
the golden values; called by a test with ``xp=jax.numpy`` they are the *plain
formula*, whose autodiff gradient the region engine's ``custom_vjp`` must
reproduce.

Shapes follow the library: logits and probabilities ``[B, *spatial, C]``
(channels last), integer labels and masks ``[B, *spatial]``. A *unit* is a
class over the batch, or (image, class) with ``per_image=True``.

The references for the boundary losses and the metrics still live in
``tests/test_boundary.py`` and ``tests/test_metrics.py``.
"""

from __future__ import annotations

import numpy as np

TINY64 = np.finfo(np.float64).tiny

# --------------------------------------------------------------------------------------
# Activations, targets, validity.
# --------------------------------------------------------------------------------------


def softmax(x, xp=np):
    """``p_c = exp(x_c - max_k x_k) / Σ_j exp(x_j - max_k x_k)`` over the last axis."""
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def sigmoid(x, xp=np):
    """The logistic function ``σ(x) = 1 / (1 + exp(-x))``."""
    return 1 / (1 + xp.exp(-x))


def probs(x, activation, xp=np):
    """Probabilities from logits: softmax, sigmoid, or ``x`` as given (``activation=None``)."""
    if activation == "softmax":
        return softmax(x, xp)
    if activation == "sigmoid":
        return sigmoid(x, xp)
    return x


def log_sum_exp(x):
    """The log-partition ``log Σ_c exp(x_c) = m + log Σ_c exp(x_c - m)``, ``m = max_c x_c``."""
    m = x.max(-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(-1, keepdims=True))


def one_hot(labels, num_classes):
    """The dense float64 target ``g``, ``[B, *spatial, C]``.

    Integer (or bool) labels: one-hot, and with ``C == 1`` the foreground indicator
    ``label == 1``; a label outside ``[0, C)`` (e.g. an ignore value) gives a zero
    row. Dense (floating) labels: as given.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind in "iub":
        if num_classes == 1:
            return (labels == 1)[..., None].astype(np.float64)
        return (labels[..., None] == np.arange(num_classes)).astype(np.float64)
    return labels.astype(np.float64)


def binary_target(labels, num_classes):
    """The bool target of the Lovász losses: :func:`one_hot`, with dense labels
    binarised at 0.5 (Berman et al. 2018 take hard ground truth)."""
    return one_hot(labels, num_classes) > 0.5


def valid_mask(labels, pixel_shape, where=None, ignore_index=None):
    """Validity ``m_i = where_i ∧ (label_i ≠ ignore_index)``, ``[B, *spatial]`` bool;
    ``where`` broadcasts to the pixel shape."""
    valid = np.ones(pixel_shape, bool)
    if where is not None:
        valid = valid & np.broadcast_to(np.asarray(where), pixel_shape)
    if ignore_index is not None:
        valid = valid & (np.asarray(labels) != ignore_index)
    return valid


# --------------------------------------------------------------------------------------
# Reductions.
# --------------------------------------------------------------------------------------


def pixel_mean(loss, valid):
    """Mean of a pixel-wise loss over valid pixels (``loss`` ``[B, *S]``) or valid
    elements (``loss`` ``[B, *S, C]``); 0 when nothing is valid."""
    if loss.ndim == valid.ndim + 1:
        valid = np.broadcast_to(valid[..., None], loss.shape)
    return loss[valid].sum() / max(valid.sum(), 1)


def kept_units(sum_g, include_background, classes):
    """The units that count: all, less channel 0 when ``include_background=False`` and
    ``C > 1``, and only those with target mass ``Σg > 0`` when ``classes="present"``."""
    num_classes = sum_g.shape[-1]
    keep = np.ones(sum_g.shape, bool)
    if not include_background and num_classes > 1:
        keep[..., 0] = False
    if classes == "present":
        keep = keep & (np.asarray(sum_g) > 0)
    return keep


def reduce_units(loss, keep, reduction, class_weights=None, xp=np):
    """The library's reduction of a per-unit loss, ``[B, C]`` (per image) or ``[C]``.

    ``keep`` is the bool mask of the units that count (:func:`kept_units`; ``None``:
    all). ``"none"``: every unit, 0 where not kept. ``"sum"``: ``Σ w_c L`` over kept
    units. ``"mean"``: the weighted mean ``Σ w_c L / Σ w_c`` over the kept classes (0
    when their weights sum to 0); for ``[B, C]`` first within each image, then the
    plain mean over the images that kept a class (0 when none did).
    """
    if keep is None:
        keep = np.ones(np.shape(loss), bool)
    loss = xp.where(keep, loss, 0.0)
    if reduction == "none":
        return loss
    w = np.ones(loss.shape) if class_weights is None else np.broadcast_to(
        np.asarray(class_weights, np.float64), loss.shape)
    w = np.where(keep, w, 0.0)
    if reduction == "sum":
        return xp.sum(w * loss)
    num, den = xp.sum(w * loss, axis=-1), w.sum(-1)
    per_unit = xp.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    if loss.ndim == 1:
        return per_unit
    kept = keep.any(-1)
    return xp.sum(xp.where(kept, per_unit, 0.0)) / max(kept.sum(), 1)


# --------------------------------------------------------------------------------------
# Unit sums and soft confusion counts.
# --------------------------------------------------------------------------------------


def unit_sum(v, valid, per_image, xp=np):
    """``S = Σ_i m_i v_i`` per unit: ``v`` ``[B, *S, C]`` summed over the valid pixels
    (``valid`` ``[B, *S]``) of each image (``per_image``) or of the whole batch."""
    axes = tuple(range(1 if per_image else 0, v.ndim - 1))
    return xp.sum(xp.where(valid[..., None], v, 0.0), axis=axes)


def soft_counts(p, g, valid, per_image):
    """Soft ``(tp, fp, fn) = (Σ p g, Σ p (1 - g), Σ (1 - p) g)`` per unit over valid pixels."""
    return (unit_sum(p * g, valid, per_image), unit_sum(p * (1 - g), valid, per_image),
            unit_sum((1 - p) * g, valid, per_image))


def ratio(num, den, smooth, xp=np):
    """The smoothed score ``(num + s_num) / (den + s_den)``; 1 where the smoothed
    denominator is 0 (the empty-mask convention of the conventions page)."""
    s_num, s_den = smooth
    num, den = num + s_num, den + s_den
    zero = den == 0
    return xp.where(zero, 1.0, num / xp.where(zero, 1.0, den))


def dice_scores(p, g, valid, per_image=False, smooth=1e-5):
    """Soft Dice per unit, ``(2 Σpg + s) / (Σp + Σg + s)`` over valid pixels
    (Milletari et al., V-Net, 3DV 2016): ``[C]``, or ``[B, C]`` per image."""
    tp = unit_sum(p * g, valid, per_image)
    den = unit_sum(p, valid, per_image) + unit_sum(g, valid, per_image)
    return ratio(2 * tp, den, (smooth, smooth))


# --------------------------------------------------------------------------------------
# Pixel-wise losses, per pixel or per element, from probabilities.
# --------------------------------------------------------------------------------------


def bce(p, g, pos_weight=1.0, neg_weight=1.0):
    """Binary cross-entropy per element, ``-(w₊ g log p + w₋ (1 - g) log(1 - p))``:
    ``w₊`` is the weighted cross-entropy's ``β`` (Pihur et al. 2007), ``(w₊, w₋) =
    (β, 1 - β)`` the balanced one (Xie & Tu, HED, ICCV 2015)."""
    return -(pos_weight * g * np.log(p) + neg_weight * (1 - g) * np.log(1 - p))


def ce(p, g, weights=1.0, smoothing=0.0):
    """Categorical cross-entropy per pixel, ``-Σ_c w_c g̃_c log p_c`` with the smoothed
    target ``g̃ = (1 - ε) g + ε / C`` (Szegedy et al. 2016)."""
    c = p.shape[-1]
    g = (1 - smoothing) * g + smoothing / c
    return -(weights * g * np.log(p)).sum(-1)


def focal_softmax(p, g, gamma, alpha):
    """Softmax focal loss per pixel, ``-Σ_c α_c g_c (1 - p_c)^γ log p_c``
    (Lin et al., ICCV 2017)."""
    return -(alpha * g * (1 - p) ** gamma * np.log(p)).sum(-1)


def focal_sigmoid(p, g, gamma, alpha=None):
    """Sigmoid focal loss per element, ``α_t (1 - p_t)^γ BCE`` with
    ``p_t = p g + (1 - p)(1 - g)``, ``α_t = α g + (1 - α)(1 - g)`` (Lin et al., ICCV 2017)."""
    pt = p * g + (1 - p) * (1 - g)
    loss = (1 - pt) ** gamma * bce(p, g)
    if alpha is not None:
        loss = loss * (alpha * g + (1 - alpha) * (1 - g))
    return loss


def mean_cross_entropy(p, g, valid, binary, weights=None):
    """Class-weighted cross-entropy averaged over valid pixels (categorical) or valid
    elements (``binary``: the binary cross-entropy of every channel)."""
    w = np.ones(p.shape[-1]) if weights is None else np.asarray(weights, np.float64)
    if binary:
        return pixel_mean(w * bce(p, g), valid)
    return pixel_mean(ce(p, g, w), valid)


# --------------------------------------------------------------------------------------
# Region losses.
# --------------------------------------------------------------------------------------

REGION_LOSSES = (
    "dice_loss",
    "jaccard_loss",
    "tversky_loss",
    "focal_tversky_loss",
    "sensitivity_specificity_loss",
    "log_cosh_dice_loss",
    "generalized_dice_loss",
    "jaccard_metric_loss",
    "dice_semimetric_loss",
)


def region_loss(name, logits, labels, *, xp=np, activation="softmax", smooth=1e-5,
                per_image=False, include_background=True, classes="all", class_weights=None,
                ignore_index=None, where=None, reduction="mean", squared=False, log=False,
                alpha=None, beta=None, gamma=0.75, r=0.05, weight="square"):
    """The region loss ``name`` (one of :data:`REGION_LOSSES`), reduced as the library does.

    Per unit, from the soft counts ``tp, fp, fn`` and the smoothing ``s = (s_num, s_den)``:
    Dice ``1 - (2tp + s_num) / (2tp + fp + fn + s_den)`` (Milletari et al. 2016; squared:
    denominator ``Σp² + Σg²``; log: ``-log`` of the score), Jaccard ``1 - tp / (tp + fp +
    fn)``, Tversky ``1 - tp / (tp + α fp + β fn)`` (Salehi et al. 2017), focal Tversky
    its ``γ``-th power (Abraham & Khan 2019), sensitivity-specificity ``r Σ(g-p)²g / Σg +
    (1-r) Σ(g-p)²(1-g) / Σ(1-g)`` (Brosch et al. 2015), log-cosh Dice ``log cosh`` of the
    Dice loss (Jadon 2020), generalised Dice with class weights ``1/Σg²``, ``1/Σg`` or 1
    pooled over the classes (Sudre et al. 2017; an absent class takes the largest finite
    weight, as MONAI does), and the Jaccard metric / Dice semimetric losses with the
    intersection ``(Σp + Σg - Σ|p - g|) / 2`` (Wang et al. 2023).
    """
    logits = xp.asarray(logits, dtype=xp.float64) if xp is np else logits
    num_classes = logits.shape[-1]
    p = probs(logits, activation, xp)
    g = one_hot(labels, num_classes)
    valid = valid_mask(labels, logits.shape[:-1], where, ignore_index)

    def total(v):
        return unit_sum(v, valid, per_image, xp)

    s = (smooth, smooth) if np.ndim(smooth) == 0 else tuple(smooth)
    tp, fp, fn = total(p * g), total(p * (1 - g)), total((1 - p) * g)
    sum_p, sum_g = total(p), total(g)
    sum_g_np = unit_sum(g, valid, per_image)
    keep = kept_units(sum_g_np, include_background, classes)

    if name == "generalized_dice_loss":
        raw = {"square": 1 / np.where(sum_g_np > 0, sum_g_np, np.nan) ** 2,
               "simple": 1 / np.where(sum_g_np > 0, sum_g_np, np.nan),
               "uniform": np.ones_like(sum_g_np)}[weight]
        present = np.isfinite(raw) & keep
        largest = np.where(present, raw, 0.0).max(-1, keepdims=True)
        w = np.where(keep, np.where(present, raw, largest), 0.0)
        if class_weights is not None:
            w = w * np.asarray(class_weights, np.float64)
        score = ratio(2 * xp.sum(w * tp, -1), xp.sum(w * (2 * tp + fp + fn), -1), s, xp)
        loss = (1 - score)[..., None]
        out = reduce_units(loss, keep.any(-1, keepdims=True), reduction, xp=xp)
        return out[..., 0] if reduction == "none" else out

    if name == "dice_loss":
        if squared:
            score = ratio(2 * tp, total(p * p) + total(g * g), s, xp)
        else:
            score = ratio(2 * tp, 2 * tp + fp + fn, s, xp)
        loss = -xp.log(xp.maximum(score, TINY64)) if log else 1 - score
    elif name == "jaccard_loss":
        loss = 1 - ratio(tp, tp + fp + fn, s, xp)
    elif name in ("tversky_loss", "focal_tversky_loss"):
        a = 0.3 if alpha is None else alpha
        b = 0.7 if beta is None else beta
        loss = 1 - ratio(tp, tp + a * fp + b * fn, s, xp)
        if name == "focal_tversky_loss":
            loss = xp.maximum(loss, 0.0) ** gamma
    elif name == "sensitivity_specificity_loss":
        # Error rates: only s_den is used; a zero denominator means no error.
        sens = ratio(total((g - p) ** 2 * g), sum_g, (0.0, s[1]), xp)
        spec = ratio(total((g - p) ** 2 * (1 - g)), total(1 - g), (0.0, s[1]), xp)
        sens = xp.where(sum_g + s[1] == 0, 0.0, sens)
        spec = xp.where(total(1 - g) + s[1] == 0, 0.0, spec)
        loss = r * sens + (1 - r) * spec
    elif name == "log_cosh_dice_loss":
        loss = xp.log(xp.cosh(1 - ratio(2 * tp, 2 * tp + fp + fn, s, xp)))
    elif name in ("jaccard_metric_loss", "dice_semimetric_loss"):
        l1 = total(xp.abs(p - g))
        inter = (sum_p + sum_g - l1) / 2
        if name == "jaccard_metric_loss":
            loss = 1 - ratio(inter, sum_p + sum_g - inter, s, xp)
        else:
            loss = 1 - ratio(2 * inter, sum_p + sum_g, s, xp)
    else:
        raise KeyError(name)
    return reduce_units(loss, keep, reduction, class_weights, xp)


# --------------------------------------------------------------------------------------
# Lovász losses (Berman, Rannen Triki & Blaschko, CVPR 2018).
# --------------------------------------------------------------------------------------


def jaccard_set_loss(mistakes, g):
    """The Jaccard loss of the set ``M`` of mispredicted pixels, ``Δ(M) = 1 - |g \\ M| /
    |g ∪ M|`` (0 when ``g ∪ M`` is empty), for bool ``mistakes`` and ``g``."""
    union = np.sum(g | mistakes)
    return 0.0 if union == 0 else 1.0 - np.sum(g & ~mistakes) / union


def lovasz_extension(e, g):
    """The Lovász extension of :func:`jaccard_set_loss` at the errors ``e``, in its
    threshold (Choquet) form, which needs no sort and no tie rule:

        Δ̄(e) = Σ_j (v_j − v_{j+1}) · Δ({i : e_i ≥ v_j}),

    ``v_1 > v_2 > …`` the distinct positive errors, ``v_{m+1} = 0``.
    """
    e = np.asarray(e, np.float64)
    g = np.asarray(g, bool)
    levels = np.unique(e[e > 0])[::-1]
    value = 0.0
    for j, v in enumerate(levels):
        below = levels[j + 1] if j + 1 < len(levels) else 0.0
        value += (v - below) * jaccard_set_loss(e >= v, g)
    return value


def lovasz_softmax(x, labels, *, per_image=False, classes="present", activation="softmax",
                   class_weights=None, include_background=True, valid=None, reduction="mean"):
    """Lovász-softmax: per unit and class, the Lovász extension of the errors
    ``|g - p|`` over the valid pixels; units and class selection as the peers do
    (flatten, drop excluded pixels, one binary problem per class), then
    :func:`reduce_units`."""
    x = np.asarray(x, np.float64)
    b, c = x.shape[0], x.shape[-1]
    p = probs(x, activation).reshape(b, -1, c)
    g = binary_target(labels, c).reshape(b, -1, c)
    valid = np.ones(p.shape[:2], bool) if valid is None else np.asarray(valid).reshape(b, -1)
    groups = [[i] for i in range(b)] if per_image else [list(range(b))]
    loss = np.zeros((len(groups), c))
    keep = np.zeros((len(groups), c), bool)
    for u, images in enumerate(groups):
        for k in range(c):
            m = valid[images]
            gk, pk = g[images, :, k][m], p[images, :, k][m]
            keep[u, k] = (m.any() and (classes == "all" or gk.any())
                          and (include_background or c == 1 or k > 0))
            loss[u, k] = lovasz_extension(np.abs(gk - pk), gk)
    if not per_image:
        loss, keep = loss[0], keep[0]
    weights = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    return reduce_units(loss, keep, reduction, weights)


def lovasz_hinge(x, labels, *, per_image=True, valid=None, reduction="mean"):
    """Lovász hinge: the Lovász extension of the hinge errors ``max(1 - x s, 0)``,
    ``s = ±1`` the sign of the binary label, per image or over the batch."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    g = np.asarray(labels).reshape(len(x), -1) == 1
    valid = np.ones(x.shape, bool) if valid is None else np.asarray(valid).reshape(x.shape)
    e = np.maximum(1 - x * np.where(g, 1.0, -1.0), 0)
    groups = [[i] for i in range(len(x))] if per_image else [list(range(len(x)))]
    loss = np.array([lovasz_extension(e[i][valid[i]], g[i][valid[i]]) for i in groups])
    keep = np.array([valid[i].any() for i in groups])
    out = reduce_units(loss[:, None], keep[:, None], reduction, np.ones(1))
    if reduction == "none":
        return out[:, 0] if per_image else out[0, 0]
    return out
