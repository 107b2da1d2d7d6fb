"""Float64 NumPy references, written from the formulas and papers, independently of segloss_jax.

The tests compare the library against these. Nothing here imports JAX or
``segloss_jax``. The region reference (:func:`region_loss`) and the helpers it
uses are generic in the array module ``xp``: with NumPy in float64 they give
the golden values; called by a test with ``xp=jax.numpy`` they are the *plain
formula*, whose autodiff gradient the region engine's ``custom_vjp`` must
reproduce.

Shapes follow the library: logits and probabilities ``[B, *spatial, C]``
(channels last), integer labels and masks ``[B, *spatial]``. A *unit* is a
class over the batch, or (image, class) with ``per_image=True``. Exceptions:
:func:`hausdorff_dt_loss` and :func:`boundary_loss` take channels-first
``[B, C, *spatial]`` arrays, as the MONAI and Kervadec et al. code they follow.

The boundary losses and the distance metrics use ``scipy.ndimage`` for the
Euclidean distance transforms and the binary erosions. Two Hausdorff references
differ: :func:`hausdorff_dt_loss` is the loss of Karimi & Salcudean (MONAI's
``HausdorffDTLoss``), :func:`hausdorff_distance` the metric between two masks'
surfaces.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

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
                alpha=None, beta=None, gamma=0.75, r=0.05, weighting="square"):
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
               "uniform": np.ones_like(sum_g_np)}[weighting]
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


# --------------------------------------------------------------------------------------
# Morphology: grey-level erosion and dilation.
# --------------------------------------------------------------------------------------


def map_images(fn, x, spatial_ndim):
    """Applies ``fn`` of one ``[*spatial]`` image to every image of ``[..., *spatial]``."""
    images = x.reshape((-1, *x.shape[x.ndim - spatial_ndim :]))
    return np.stack([fn(img) for img in images]).reshape(x.shape)


def grey_erosion(x, spatial_ndim, mode="nearest"):
    """Grey erosion ``min`` over the cross (face-neighbour) footprint, per image:
    ``scipy.ndimage.grey_erosion``, with a constant border ``+inf`` that never wins."""
    cross = ndi.generate_binary_structure(spatial_ndim, 1)
    return map_images(
        lambda img: ndi.grey_erosion(img, footprint=cross, mode=mode, cval=np.inf),
        x, spatial_ndim)


def grey_dilation(x, spatial_ndim, mode="nearest"):
    """Grey dilation ``max`` over the full ``3^d`` box, per image:
    ``scipy.ndimage.grey_dilation``, with a constant border ``-inf`` that never wins."""
    box = np.ones((3,) * spatial_ndim, bool)
    return map_images(
        lambda img: ndi.grey_dilation(img, footprint=box, mode=mode, cval=-np.inf),
        x, spatial_ndim)


# --------------------------------------------------------------------------------------
# Distance transforms and contours.
# --------------------------------------------------------------------------------------


def edt(mask, sampling=None):
    """The Euclidean distance of every non-zero pixel to the nearest zero pixel
    (``scipy.ndimage.distance_transform_edt``, float64)."""
    return ndi.distance_transform_edt(mask, sampling=sampling)


def one_hot2dist(mask, sampling=None):
    """Kervadec et al.'s signed map of one bool mask (their ``one_hot2dist``, MIDL 2019):
    ``edt(¬m) ¬m - (edt(m) - 1) m``, positive outside, ``≤ 0`` inside; 0 for an empty mask.
    The ``- 1`` does not scale with the spacing."""
    if not mask.any():
        return np.zeros(mask.shape)
    neg = ~mask
    return edt(neg, sampling) * neg - (edt(mask, sampling) - 1) * mask


def loss_contour(mask, valid):
    """The contour of the shape-aware loss: mask pixels with a valid background face
    neighbour. Outside the array and excluded pixels are "don't care", never background.
    (The metric's :func:`surface` counts the array border as background.)"""
    m = mask & valid
    # border_value=1: outside the array is inside for the erosion, so not a contour.
    grown = m | ~valid  # excluded neighbours do not make a contour either
    return m & ~ndi.binary_erosion(grown, border_value=1)


def penalty_map(mask, valid=None, sampling=None, max_distance=None):
    """Ma et al.'s inverted, normalised distance map of one side of a mask (their
    ``compute_edts_forPenalizedLoss``): ``Φ = (max D - D) / (max D - min D)`` inside,
    ``D = edt(m)`` with excluded pixels "don't care"; 0 outside.

    With the documented conventions where their code divides by zero (equal depths:
    1; no boundary: 0), and with ``max_distance`` the band ``clip(1 - (D - min D) /
    max_distance, 0, 1)``.
    """
    if valid is None:
        valid = np.ones(mask.shape, bool)
    inside = mask & valid
    if not inside.any() or not (~mask & valid).any():
        return np.zeros(mask.shape)
    d = edt(mask | ~valid, sampling)
    lo, hi = d[inside].min(), d[inside].max()
    if max_distance is not None:
        phi = np.clip(1 - (d - lo) / max_distance, 0, 1)
    elif hi > lo:
        phi = (hi - d) / (hi - lo)
    else:
        phi = np.ones(mask.shape)
    return np.where(inside, phi, 0.0)


# --------------------------------------------------------------------------------------
# Boundary losses.
# --------------------------------------------------------------------------------------


def hausdorff_dt_loss(probs, target, *, alpha=2.0, include_background=False, batch=False,
                      reduction="mean", valid=None, sampling=None):
    """The Hausdorff-DT *loss* (Karimi & Salcudean, IEEE TMI 2020), as MONAI's
    ``HausdorffDTLoss.forward`` computes it on channels-first ``[B, C, *spatial]`` arrays:
    per channel the mean of ``(p - g)² (d_p^α + d_g^α)``, ``d = edt(m) + edt(¬m)`` of the
    masks ``p > 0.5`` and ``g > 0.5`` (0 where a mask is empty or full); per image or
    (``batch``) over the batch. ``reduction="none"``: ``[B, C']`` (``[1, C']`` with ``batch``).

    With ``valid`` (``[B, *spatial]``), excluded pixels are "don't care" for the maps
    (``edt(m | ¬v) + edt(¬m | ¬v)``) and left out of the means (the documented
    extension; MONAI has no mask).
    """
    if not include_background and probs.shape[1] > 1:
        probs, target = probs[:, 1:], target[:, 1:]
    if valid is None:
        valid = np.ones((probs.shape[0], *probs.shape[2:]), bool)

    def field(img):
        out = np.zeros(img.shape)
        for b in range(len(img)):
            fg, v = img[b] > 0.5, valid[b]
            if (fg & v).any() and (~fg & v).any():
                out[b] = edt(fg | ~v, sampling) + edt(~fg | ~v, sampling)
        return out

    rows = []
    for c in range(probs.shape[1]):
        p, g = probs[:, c], target[:, c]
        f = (p - g) ** 2 * (field(p) ** alpha + field(g) ** alpha)
        if batch:
            rows.append(np.full(len(p), f[valid].sum() / max(valid.sum(), 1)))
        else:
            rows.append([f[b][valid[b]].sum() / max(valid[b].sum(), 1) for b in range(len(p))])
    units = np.array(rows).T  # [B, C']
    if batch:
        units = units[:1]
    if reduction == "mean":
        return units.mean()
    if reduction == "sum":
        return units.sum()
    return units


def boundary_loss(probs, target, idc, sampling=None):
    """The boundary loss (Kervadec et al., MIDL 2019), their ``SurfaceLoss(idc)`` on
    channels-first arrays: the mean of ``p · one_hot2dist(g > 0.5)`` over the images,
    the channels ``idc`` and the pixels."""
    dist = np.zeros(target.shape)
    for b in range(target.shape[0]):
        for k in range(target.shape[1]):
            dist[b, k] = one_hot2dist(target[b, k] > 0.5, sampling)
    return (probs[:, idc] * dist[:, idc]).mean()


def _weighted_ce(p, g, weight, activation):
    """Cross-entropy with a per-element weight, per pixel (softmax: ``-Σ_c w g log p``)
    or per element (sigmoid: ``w`` times the binary cross-entropy)."""
    if activation == "softmax":
        return ce(p, g, weight)
    return weight * bce(p, g)


def distance_weighted_cross_entropy(logits, labels, activation, *, valid=None, sampling=None,
                                    max_distance=None, class_weights=None):
    """Distance-weighted cross-entropy (Ma et al., "How distance transform maps boost
    segmentation CNNs", MIDL 2020): cross-entropy weighted by ``w_c (1 + Φ)``, ``Φ`` the
    :func:`penalty_map` of each class (sigmoid: of the class and of its complement),
    averaged over valid pixels (softmax) or valid elements (sigmoid)."""
    c = logits.shape[-1]
    p, g = probs(logits, activation), one_hot(labels, c)
    if valid is None:
        valid = np.ones(labels.shape, bool)
    phi = np.zeros(g.shape)
    for b in range(labels.shape[0]):
        for k in range(c):
            m = g[b, ..., k] > 0.5
            kw = dict(valid=valid[b], sampling=sampling, max_distance=max_distance)
            phi[b, ..., k] = penalty_map(m, **kw)
            if activation == "sigmoid":
                phi[b, ..., k] += penalty_map(~m, **kw)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights)
    return pixel_mean(_weighted_ce(p, g, w * (1 + phi), activation), valid)


def shape_aware_loss(logits, labels, activation, *, valid=None, sampling=None):
    """The shape-aware loss (Hayder et al., "Shape-aware instance segmentation", CVPR
    2017, as in Jadon's survey 2020): cross-entropy weighted by ``1 + E`` per image and
    class, ``E`` the mean distance from the predicted contour (``p > 0.5``) to the target
    contour (:func:`loss_contour`; 0 when either is empty)."""
    c = logits.shape[-1]
    p, g = probs(logits, activation), one_hot(labels, c)
    if valid is None:
        valid = np.ones(labels.shape, bool)
    e = np.zeros((labels.shape[0], c))
    for b in range(labels.shape[0]):
        for k in range(c):
            cp = loss_contour(p[b, ..., k] > 0.5, valid[b])
            cg = loss_contour(g[b, ..., k] > 0.5, valid[b])
            if cp.any() and cg.any():
                e[b, k] = edt(~cg, sampling)[cp].mean()
    weight = 1 + e.reshape((labels.shape[0],) + (1,) * (labels.ndim - 1) + (c,))
    return pixel_mean(_weighted_ce(p, g, weight, activation), valid)


# --------------------------------------------------------------------------------------
# Metrics: confusion matrix, scores, class weights.
# --------------------------------------------------------------------------------------


def confusion_matrix(pred, labels, c, where=None, ignore_index=None):
    """The ``[C, C]`` int64 confusion matrix, rows the targets and columns the
    predictions, counted with ``np.add.at`` over the kept pixels: ``where`` (broadcast),
    not ``ignore_index``, target and prediction both in ``[0, C)``."""
    shape = np.shape(labels)
    pred, labels = np.asarray(pred).ravel(), np.asarray(labels).ravel()
    keep = np.ones(labels.shape, bool)
    if where is not None:
        keep &= np.broadcast_to(np.asarray(where), shape).ravel()
    if ignore_index is not None:
        keep &= labels != ignore_index
    keep &= (labels >= 0) & (labels < c) & (pred >= 0) & (pred < c)
    m = np.zeros((c, c), np.int64)
    np.add.at(m, (labels[keep], pred[keep]), 1)
    return m


def iou_dice_scores(m):
    """Per-class IoU ``tp / (tp + fp + fn)`` and Dice ``2tp / (2tp + fp + fn)`` from a
    confusion matrix ``m`` (rows targets); NaN for a class never a target nor predicted."""
    m = np.asarray(m, np.float64)
    tp = np.diag(m)
    fp, fn = m.sum(0) - tp, m.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return iou, dice


def inverse_frequency_weights(labels, c, power=1.0, ignore_index=None):
    """Class weights ``(n_c / n)^-power`` normalised to mean 1 over the present classes;
    an absent class takes the largest weight."""
    labels = np.asarray(labels).ravel()
    if ignore_index is not None:
        labels = labels[labels != ignore_index]
    counts = np.array([np.sum(labels == k) for k in range(c)], np.float64)
    present = counts > 0
    raw = np.zeros(c)
    raw[present] = (counts[present] / counts.sum()) ** -power
    w = raw / raw[present].mean()
    w[~present] = w[present].max()
    return w


# --------------------------------------------------------------------------------------
# Metrics: surface distances, by brute force over all pairs of surface elements.
# --------------------------------------------------------------------------------------


def surface(mask):
    """The metric's surface of a mask: ``m ∧ ¬erode(m)`` with face neighbours and the
    outside of the array as background (``binary_erosion`` with ``border_value=0``)."""
    mask = np.asarray(mask, bool)
    structure = ndi.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndi.binary_erosion(mask, structure=structure, border_value=0)


def directed_surface_distances(a, b, sampling):
    """Distances from each surface element of ``a`` to the nearest of ``b``'s surface,
    in physical units (``sampling``: the spacing, ``None`` for 1)."""
    sa, sb = np.argwhere(surface(a)), np.argwhere(surface(b))
    s = np.broadcast_to(np.asarray(1.0 if sampling is None else sampling, np.float64), (a.ndim,))
    diff = (sa[:, None, :] - sb[None, :, :]) * s
    return np.sqrt((diff**2).sum(-1)).min(1)


def hausdorff_distance(a, b, q=100.0, sampling=None):
    """The Hausdorff distance *metric* between the surfaces of two masks (``q < 100``:
    the ``q``-th percentile Hausdorff distance, e.g. HD95): ``max`` of the two directed
    percentiles; NaN when both masks are empty, ``inf`` when one is."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() and not b.any():
        return np.nan
    if not a.any() or not b.any():
        return np.inf
    return max(np.percentile(directed_surface_distances(a, b, sampling), q),
               np.percentile(directed_surface_distances(b, a, sampling), q))


def average_surface_distance(a, b, symmetric=True, sampling=None):
    """The average surface distance: the mean of the directed distances from ``a``'s
    surface to ``b``'s (``symmetric``: of both directions, pooled); NaN when both masks
    are empty, ``inf`` when one is."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() and not b.any():
        return np.nan
    if not a.any() or not b.any():
        return np.inf
    d = directed_surface_distances(a, b, sampling)
    if symmetric:
        d = np.concatenate([d, directed_surface_distances(b, a, sampling)])
    return d.mean()


def surface_dice(a, b, tolerance, sampling=None):
    """Normalized surface Dice (Nikolov et al.): the surface elements of each mask within
    ``tolerance`` of the other surface, over both surfaces' sizes; distances from
    ``scipy.ndimage.distance_transform_edt`` of the other surface's complement. NaN when
    both surfaces are empty, 0 when one is."""
    sa, sb = surface(a), surface(b)
    if not sa.any() and not sb.any():
        return np.nan
    if not sa.any() or not sb.any():
        return 0.0
    to_b = ndi.distance_transform_edt(~sb, sampling=sampling)
    to_a = ndi.distance_transform_edt(~sa, sampling=sampling)
    close = np.sum(to_b[sa] <= tolerance) + np.sum(to_a[sb] <= tolerance)
    return close / (sa.sum() + sb.sum())


# --------------------------------------------------------------------------------------
# Metrics: calibration error, with explicit loops over the bins.
# --------------------------------------------------------------------------------------


def calibration_error(probs, labels, num_bins, norm="l1", valid=None):
    """Top-label ECE (``"l1"``) or MCE (``"max"``) over the valid pixels: confidence the
    largest probability (``C == 1``: of ``[1 - p, p]``), correct when the arg max (``C == 1``:
    ``p > 0.5``) is the label; bin ``k`` holds confidences in ``(k/n, (k+1)/n]``, bin 0
    also 0. NaN when no pixel is valid."""
    probs = np.asarray(probs, np.float64)
    if probs.shape[-1] == 1:
        probs = np.concatenate([1 - probs, probs], -1)
    labels = np.asarray(labels)
    valid = np.ones(labels.shape, bool) if valid is None else np.asarray(valid, bool)
    conf = probs.max(-1)[valid]
    correct = (probs.argmax(-1) == labels)[valid]
    if conf.size == 0:
        return np.nan
    ece, mce = 0.0, 0.0
    for k in range(num_bins):
        lo, hi = k / num_bins, (k + 1) / num_bins
        in_bin = (conf > lo) & (conf <= hi)
        if k == 0:
            in_bin |= conf == 0
        if in_bin.any():
            gap = abs(conf[in_bin].mean() - correct[in_bin].mean())
            ece += in_bin.sum() / conf.size * gap
            mce = max(mce, gap)
    return ece if norm == "l1" else mce


# --------------------------------------------------------------------------------------
# Structural losses (SSIM, Wang et al. 2004; SSL, Zhao et al. 2019 via Jadon 2020).
# Maps are channels-last [B, *spatial, C]; windows run over the spatial axes only.
# scipy's mode="mirror" reflects about the edge sample without repeating it (torch's
# "reflect"). Excluded pixels are 0 in both maps before the windows.
# --------------------------------------------------------------------------------------


def gaussian_window(window_size, sigma):
    """Taps ``exp(-(k - r)² / 2σ²)``, ``k = 0 … n - 1``, ``r = n // 2``, summing to 1."""
    k = np.arange(window_size) - window_size // 2
    w = np.exp(-k.astype(np.float64) ** 2 / (2 * sigma**2))
    return w / w.sum()


def window_mean(x, window_size, sigma):
    """The Gaussian-weighted local mean ``w ∗ x`` over every spatial axis, same size."""
    w = gaussian_window(window_size, sigma)
    for axis in range(1, x.ndim - 1):
        x = ndi.correlate1d(x, w, axis=axis, mode="mirror")
    return x


def _masked(p, g, valid):
    keep = np.asarray(valid, bool)[..., None]
    return np.where(keep, p, 0.0), np.where(keep, g, 0.0)


def ssim_map(p, g, window_size=11, sigma=1.5):
    """Wang et al.'s SSIM per element, ``C1 = 0.01²``, ``C2 = 0.03²`` (data range 1)."""
    mean = lambda x: window_mean(x, window_size, sigma)  # noqa: E731
    mu_p, mu_g = mean(p), mean(g)
    var_p, var_g = mean(p * p) - mu_p**2, mean(g * g) - mu_g**2
    cov = mean(p * g) - mu_p * mu_g
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_p * mu_g + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_g**2 + c1) * (var_p + var_g + c2))


def ssim_loss(p, g, valid, window_size=11, sigma=1.5, class_weights=1.0):
    """Mean over valid pixels and classes of ``w_c (1 − SSIM)``."""
    p, g = _masked(p, g, valid)
    return pixel_mean((1 - ssim_map(p, g, window_size, sigma)) * class_weights, valid)


def structural_error(p, g, valid, window_size=3, sigma=1.5, c4=0.01):
    """``e = |(y − μ_y + C4)/(σ_y + C4) − (ŷ − μ_ŷ + C4)/(σ_ŷ + C4)|``, 0 at excluded pixels."""
    p, g = _masked(p, g, valid)

    def standardised(x):
        mu = window_mean(x, window_size, sigma)
        sd = np.sqrt(np.maximum(window_mean(x * x, window_size, sigma) - mu**2, 0))
        return (x - mu + c4) / (sd + c4)

    e = np.abs(standardised(g) - standardised(p))
    return np.where(np.asarray(valid, bool)[..., None], e, 0.0)


def structural_similarity_loss(p, g, valid, activation, beta=0.1, window_size=3, sigma=1.5,
                               class_weights=1.0):
    """Zhao et al.'s SSL: ``Σ e f ℓ_ce / Σ f`` with ``f = 1{(n, c) ∈ P, e > β max_P e}``;
    ``ℓ_ce = −g log p`` (softmax) or the binary cross-entropy. ``P``, the positions whose
    ``ℓ_ce`` can be non-zero: the valid (pixel, class) pairs, under softmax only those with
    ``g ≠ 0``. Returns ``(loss, e·f·w, M)``: the loss, the weight of each ``ℓ_ce`` and the
    hard count."""
    e = structural_error(p, g, valid, window_size, sigma)
    positions = np.broadcast_to(np.asarray(valid, bool)[..., None], e.shape)
    if activation == "softmax":
        positions = positions & (g != 0)
    e_max = e[positions].max() if positions.any() else 0.0
    f = positions & (e > beta * e_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = -g * np.log(p) if activation == "softmax" else bce(p, g)
    weight = np.where(f, e * class_weights, 0.0)
    m = f.sum()
    loss = np.where(f, weight * ce, 0.0).sum() / m if m else 0.0
    return loss, weight, m


# --------------------------------------------------------------------------------------
# Matthews correlation, generalized Wasserstein Dice and unified focal losses.
# --------------------------------------------------------------------------------------


def _smooth_pair(smooth):
    return (smooth, smooth) if np.ndim(smooth) == 0 else tuple(smooth)


def mcc_loss(logits, labels, *, activation="softmax", smooth=(0.0, 1e-5), per_image=False,
             include_background=True, classes="all", class_weights=None, ignore_index=None,
             where=None, reduction="mean"):
    """``1 − MCC`` per unit (Abhishek & Hamarneh, ISBI 2021), reduced as the region losses:
    ``MCC = (tp·tn − fp·fn + s_num) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn) + s_den)``
    with ``tn = Σ(1 − p)(1 − g)`` over valid pixels; 0 for a unit with ``fp = fn = 0``
    (MONAI's ``MCCLoss``); 1 where the smoothed denominator is 0."""
    x = np.asarray(logits, np.float64)
    p, g = probs(x, activation), one_hot(labels, x.shape[-1])
    valid = valid_mask(labels, x.shape[:-1], where, ignore_index)
    tp, fp, fn = soft_counts(p, g, valid, per_image)
    tn = unit_sum((1 - p) * (1 - g), valid, per_image)
    s_num, s_den = _smooth_pair(smooth)
    squared = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + s_den
    root = np.sqrt(np.where(squared > 0, squared, 1.0))
    mcc = np.where(squared > 0, (tp * tn - fp * fn + s_num) / root, 1.0)
    loss = np.where((fp == 0) & (fn == 0), 0.0, 1 - mcc)
    keep = kept_units(unit_sum(g, valid, per_image), include_background, classes)
    return reduce_units(loss, keep, reduction, class_weights)


def generalized_wasserstein_dice_loss(logits, labels, distance_matrix, *, weighting="default",
                                      smooth=1e-5, ignore_index=None, where=None,
                                      reduction="mean"):
    """Fidon et al. (BrainLes 2017), one loss per image, pixel by pixel: ``M̂ = M / max M``,
    ``δ_i = Σ_c M̂[y_i, c] p_ic`` (softmax), ``TP = Σ_i α_{y_i}(1 − δ_i)``; ``"default"``:
    ``α = (0, 1, …, 1)``, denominator ``2TP + Σ_i δ_i``; ``"GDL"`` (Tilborghs et al. 2020):
    ``α_c = 1/(V_c + 1)`` with ``V_c`` the pixels of class ``c``, denominator
    ``Σ_i α_{y_i}(2 − δ_i)``; loss ``1 − (2TP + s_num)/(den + s_den)``, over valid pixels."""
    x = np.asarray(logits, np.float64)
    num_classes = x.shape[-1]
    m = np.asarray(distance_matrix, np.float64)
    m = m / m.max()
    p, labels = softmax(x), np.asarray(labels)
    valid = valid_mask(labels, x.shape[:-1], where, ignore_index)
    losses = []
    for b in range(x.shape[0]):
        y, pb = labels[b][valid[b]], p[b][valid[b]]
        delta = (m[y] * pb).sum(-1)
        if weighting == "GDL":
            alpha = 1 / (np.bincount(y, minlength=num_classes) + 1.0)
            true_pos = (alpha[y] * (1 - delta)).sum()
            den = (alpha[y] * (2 - delta)).sum()
        else:
            alpha = np.r_[0.0, np.ones(num_classes - 1)]
            true_pos = (alpha[y] * (1 - delta)).sum()
            den = 2 * true_pos + delta.sum()
        losses.append(1 - ratio(2 * true_pos, den, _smooth_pair(smooth)))
    losses = np.array(losses)
    return {"none": losses, "sum": losses.sum(), "mean": losses.mean()}[reduction]


def unified_focal_loss(logits, labels, *, activation="softmax", lambda_focal=0.5,
                       lambda_focal_tversky=0.5, delta=0.6,
                       gamma=0.5, smooth=1e-5, per_image=False, include_background=True,
                       classes="all", class_weights=None, ignore_index=None, where=None):
    """Asymmetric unified focal loss (Yeung et al., CMIG 2022), ``λ_F·L_maF + λ_FT·L_maFT``:
    ``L_maF`` the mean over valid pixels of ``−(1−δ)(1 − p_0)^γ g_0 log p_0 − Σ_{c≥1} δ g_c
    log p_c``; ``L_maFT`` the region mean over units of ``1 − mTI_0`` (background) and
    ``(1 − mTI_c)^{1−γ}``, ``mTI = (tp + s)/(tp + δ fn + (1 − δ) fp + s)``. ``C == 1``: the
    channels ``[1 − p, p]``, a class weight ``[w]`` becoming ``[1, w]``. Each class term is
    multiplied by its class weight."""
    x = np.asarray(logits, np.float64)
    p, g = probs(x, activation), one_hot(labels, x.shape[-1])
    w = None if class_weights is None else np.asarray(class_weights, np.float64)
    if x.shape[-1] == 1:
        p, g = np.concatenate([1 - p, p], -1), np.concatenate([1 - g, g], -1)
        w = None if w is None else np.r_[1.0, w]
    num_classes = p.shape[-1]
    weights = np.ones(num_classes) if w is None else w
    valid = valid_mask(labels, x.shape[:-1], where, ignore_index)
    factor = np.ones_like(p) * delta
    factor[..., 0] = (1 - delta) * (1 - p[..., 0]) ** gamma
    focal = pixel_mean(-(weights * factor * g * np.log(p)).sum(-1), valid)
    tp, fp, fn = soft_counts(p, g, valid, per_image)
    mti = ratio(tp, tp + delta * fn + (1 - delta) * fp, _smooth_pair(smooth))
    units = np.maximum(1 - mti, 0.0) ** (1 - gamma)
    units[..., 0] = 1 - mti[..., 0]
    keep = kept_units(unit_sum(g, valid, per_image), include_background, classes)
    tversky = reduce_units(units, keep, "mean", w)
    return lambda_focal * focal + lambda_focal_tversky * tversky


# --------------------------------------------------------------------------------------
# Top-k and Poly-1 losses, deep supervision.
# --------------------------------------------------------------------------------------


def topk_mean(loss, valid, k, per_image=False):
    """Mean of the ``m = ⌈k·n⌉`` largest valid values of each unit (an image, or the
    batch), pooled over the units: ``Σ_u Σ_top(u) ℓ / Σ_u m_u`` (0 when nothing is
    valid). Also the per-pixel selection ``[B, *S]``: each unit's values sorted in
    descending order, the first ``m`` kept, a value tied with the ``m``-th counted with
    the share of the slots left (``k`` given as a fraction ``(p, q)``, ``m = ⌈p·n/q⌉``)."""
    p, q = k
    units = [(b,) for b in range(loss.shape[0])] if per_image else [()]
    share = np.zeros(loss.shape)
    total, count = 0.0, 0
    for unit in units:
        values, ok = loss[unit], valid[unit]
        n = int(ok.sum())
        m = -(-p * n // q)
        ranked = np.sort(values[ok])[::-1]
        total += ranked[:m].sum()
        count += m
        if m:
            t = ranked[m - 1]
            above, tied = ok & (values > t), ok & (values == t)
            unit_share = np.where(above, 1.0, np.where(tied, (m - above.sum()) / tied.sum(), 0))
            share[unit] = unit_share
    return (total / count if count else 0.0), share


def poly1_ce(p, g, epsilon, weights=1.0):
    """Poly-1 cross-entropy per pixel, ``Σ_c w_c g_c (−log p_c + ε (1 − p_c))``, i.e.
    ``−log p_t + ε (1 − p_t)`` for one-hot ``g`` (Leng et al., ICLR 2022)."""
    return (weights * g * (-np.log(p) + epsilon * (1 - p))).sum(-1)


def poly1_focal_softmax(p, g, epsilon, gamma, alpha=1.0, weights=1.0):
    """Poly-1 softmax focal loss per pixel, ``Σ_c w_c g_c (α_c FL_c + ε (1 − p_c)^{γ+1})``."""
    focal = -alpha * (1 - p) ** gamma * np.log(p)
    return (weights * g * (focal + epsilon * (1 - p) ** (gamma + 1))).sum(-1)


def poly1_focal_sigmoid(p, g, epsilon, gamma, alpha=None):
    """Poly-1 sigmoid focal loss per element, ``FL + ε (1 − p_t)^{γ+1}`` with
    ``p_t = p g + (1 − p)(1 − g)`` (the poly term not α-weighted)."""
    pt = p * g + (1 - p) * (1 - g)
    return focal_sigmoid(p, g, gamma, alpha) + epsilon * (1 - pt) ** (gamma + 1)


def nearest_exact(x, spatial):
    """``x`` ``[B, *S_in, ...]`` resampled to ``[B, *spatial, ...]``, one axis after
    another: output index ``j`` reads input ``min(floor((j + 0.5) · s), n_in − 1)``
    with PyTorch's ``"nearest-exact"`` arithmetic (``UpSample.h``): the scale
    ``s = float(n_in) / n_out`` in float32, the product ``(j + 0.5) · s`` in double
    then passed to ``floorf`` (rounded to float32)."""
    x = np.asarray(x)
    for axis, n_out in enumerate(spatial, start=1):
        n_in = x.shape[axis]
        s = np.float32(n_in) / np.float32(n_out)
        product = np.float32((np.arange(n_out, dtype=np.float64) + 0.5) * np.float64(s))
        src = np.floor(product).astype(int)
        x = np.take(x, np.minimum(src, n_in - 1), axis=axis)
    return x


# --------------------------------------------------------------------------------------
# Topology: the soft skeleton and clDice (Shit et al., CVPR 2021).
# --------------------------------------------------------------------------------------


def soft_skeleton(x, spatial_ndim, iterations):
    """Soft skeleton of ``[..., *spatial]`` maps (Shit et al. 2021, Algorithm 1), with
    erosion = :func:`grey_erosion` (cross), dilation = :func:`grey_dilation` (box),
    opening = dilation of the erosion: ``S = relu(x − open(x))``, then ``iterations``
    times ``x = erode(x)``, ``δ = relu(x − open(x))``, ``S = S + relu(δ − S·δ)``."""
    x = np.asarray(x, np.float64)

    def peel(v):
        return np.maximum(v - grey_dilation(grey_erosion(v, spatial_ndim), spatial_ndim), 0.0)

    skel = peel(x)
    for _ in range(iterations):
        x = grey_erosion(x, spatial_ndim)
        delta = peel(x)
        skel = skel + np.maximum(delta - skel * delta, 0.0)
    return skel


def cldice_loss(logits, labels, *, activation="softmax", iterations=3, smooth=(1.0, 1.0),
                per_image=False, include_background=True, classes="all", class_weights=None,
                ignore_index=None, where=None, reduction="mean", lambda_dice=None,
                lambda_cldice=1.0):
    """Soft clDice per unit (Shit et al. 2021): ``T_prec = (Σ S_p g + s_num)/(Σ S_p + s_den)``,
    ``T_sens = (Σ S_g p + s_num)/(Σ S_g + s_den)``, loss ``1 − 2 T_prec T_sens/(T_prec +
    T_sens)`` (1 when both are 0), ``S`` the :func:`soft_skeleton` of each image and class,
    excluded pixels set to 0 in ``p`` and ``g`` first; reduced as every region loss.
    With ``lambda_dice``: ``λ_dice·Dice + λ_clDice·clDice``, the Dice loss with the same
    smooths."""
    logits = np.asarray(logits, np.float64)
    num_classes, spatial_ndim = logits.shape[-1], logits.ndim - 2
    valid = valid_mask(labels, logits.shape[:-1], where, ignore_index)
    p = np.where(valid[..., None], probs(logits, activation), 0.0)
    g = np.where(valid[..., None], one_hot(labels, num_classes), 0.0)

    def skeleton(v):  # per image and class: channels first for the morphology
        return np.moveaxis(soft_skeleton(np.moveaxis(v, -1, 1), spatial_ndim, iterations), 1, -1)

    skel_p, skel_g = skeleton(p), skeleton(g)
    s = (smooth, smooth) if np.ndim(smooth) == 0 else tuple(smooth)
    t_prec = ratio(unit_sum(skel_p * g, valid, per_image), unit_sum(skel_p, valid, per_image), s)
    t_sens = ratio(unit_sum(skel_g * p, valid, per_image), unit_sum(skel_g, valid, per_image), s)
    both = t_prec + t_sens
    loss = 1 - np.where(both > 0, 2 * t_prec * t_sens / np.where(both > 0, both, 1.0), 0.0)
    keep = kept_units(unit_sum(g, valid, per_image), include_background, classes)
    cl = reduce_units(loss, keep, reduction, class_weights)
    if lambda_dice is None:
        return cl
    dice = region_loss("dice_loss", logits, labels, activation=activation, smooth=s,
                       per_image=per_image, include_background=include_background,
                       classes=classes, class_weights=class_weights, ignore_index=ignore_index,
                       where=where, reduction=reduction)
    return lambda_dice * dice + lambda_cldice * cl


# --------------------------------------------------------------------------------------
# Skeleton Recall (Kirchhoff et al., ECCV 2024) and Boundary IoU (Cheng et al., CVPR 2021).
# --------------------------------------------------------------------------------------


def skeleton_target(labels, foreground=None, tube=True):
    """nnU-Net's ``SkeletonTransform`` per image: scikit-image's skeleton of
    ``foreground`` (default ``labels != 0``), dilated with scipy by the L1 ball of
    radius 2 (the face cross iterated twice) when ``tube``, times the labels."""
    from skimage.morphology import skeletonize

    labels = np.asarray(labels)
    foreground = labels != 0 if foreground is None else np.asarray(foreground, bool)
    ball = ndi.iterate_structure(ndi.generate_binary_structure(labels.ndim - 1, 1), 2)
    out = np.zeros_like(labels)
    for b in range(labels.shape[0]):
        skel = skeletonize(foreground[b])
        if tube:
            skel = ndi.binary_dilation(skel, structure=ball)
        out[b] = np.where(skel, labels[b], 0)
    return out


def skeleton_recall_loss(logits, labels, skeleton, *, activation="softmax", smooth=1e-5,
                         per_image=False, include_background=False, classes="all",
                         class_weights=None, ignore_index=None, where=None, reduction="mean"):
    """``1 − rec`` per unit, ``rec = (Σ p_c [s = c] + s_num)/(Σ [s = c] + s_den)`` over
    the valid pixels, 0 for a unit without skeleton; reduced as every region loss, the
    units kept by the skeleton's mass."""
    logits = np.asarray(logits, np.float64)
    num_classes = logits.shape[-1]
    valid = valid_mask(labels, logits.shape[:-1], where, ignore_index)
    p = probs(logits, activation)
    t = one_hot(np.asarray(skeleton), num_classes)
    hits, mass = unit_sum(p * t, valid, per_image), unit_sum(t, valid, per_image)
    s = (smooth, smooth) if np.ndim(smooth) == 0 else tuple(smooth)
    loss = np.where(mass > 0, 1 - ratio(hits, mass, s), 0.0)
    keep = kept_units(mass, include_background, classes)
    return reduce_units(loss, keep, reduction, class_weights)


def nnunet_skeleton_recall(probs_, skeleton, loss_mask=None, batch_dice=False, smooth=1e-5):
    """nnU-Net's ``SoftSkeletonRecallLoss`` (``do_bg=False``) on probabilities
    ``[B, *S, C]``: per (image, class ≥ 1), or per class with ``batch_dice``,
    ``rec = (Σ x·y·mask + smooth)/max(Σ y·mask + smooth, 1e-8)`` with ``y`` the one-hot
    skeleton, then ``−mean(rec)``."""
    x = np.asarray(probs_, np.float64)[..., 1:]
    y = one_hot(np.asarray(skeleton), x.shape[-1] + 1)[..., 1:]
    mask = np.ones(x.shape[:-1]) if loss_mask is None else np.asarray(loss_mask, np.float64)
    axes = tuple(range(1, x.ndim - 1))
    inter = (x * y * mask[..., None]).sum(axes)
    total = (y * mask[..., None]).sum(axes)
    if batch_dice:
        inter, total = inter.sum(0), total.sum(0)
    rec = (inter + smooth) / np.maximum(total + smooth, 1e-8)
    return -rec.mean()


def boundary_band(mask, k):
    """Cheng et al.'s boundary of a bool mask: its elements with an element outside the
    mask (the frame beyond the image included) in the ``(2k+1)^d`` window around them."""
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, k, constant_values=False)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * k + 1,) * mask.ndim)
    whole = windows.all(axis=tuple(range(mask.ndim, 2 * mask.ndim)))
    return mask & ~whole


def band_width(shape, dilation_ratio=0.02, dilation=None):
    """``dilation``, or ``max(1, round(r·√(Σ n_i²)))`` with round half to even."""
    if dilation is not None:
        return dilation
    return max(1, round(dilation_ratio * float(np.sqrt(np.sum(np.square(shape))))))


def boundary_iou(pred_mask, mask, dilation_ratio=0.02, dilation=None):
    """``|B(p) ∩ B(g)| / |B(p) ∪ B(g)|`` (:func:`boundary_band`); NaN when both are empty."""
    k = band_width(np.shape(mask), dilation_ratio, dilation)
    bp, bg = boundary_band(pred_mask, k), boundary_band(mask, k)
    union = (bp | bg).sum()
    return np.nan if union == 0 else (bp & bg).sum() / union


# --------------------------------------------------------------------------------------
# Neighbour-aware calibration (Murugesan et al.; MONAI's NACLLoss): CE plus a penalty on
# the distance of the logits to the target smoothed by a window with zero padding.
# --------------------------------------------------------------------------------------


def erf_kernel(sigma):
    """``k_j = ½[erf((j + ½)/(σ√2)) − erf((j − ½)/(σ√2))]``, ``|j| ≤ int(max(4σ, ½) + ½)``."""
    from scipy.special import erf

    r = int(max(4 * sigma, 0.5) + 0.5)
    j = np.arange(-r, r + 1, dtype=np.float64)
    return 0.5 * (erf((j + 0.5) / (sigma * np.sqrt(2))) - erf((j - 0.5) / (sigma * np.sqrt(2))))


def nacl_loss(x, labels, valid, *, alpha=0.1, kernel="mean", kernel_size=3, sigma=1.0,
              distance="l1", class_weights=1.0):
    """Mean over valid pixels of ``−Σ_c w_c g_c log p_c + α/C Σ_c w_c d(u_c − x_c)``,
    ``u = K ∗ g`` (excluded pixels 0 in ``g``), the full ``k^d`` (or outer-product erf)
    window, ``scipy.ndimage.correlate`` with zero padding."""
    x = np.asarray(x, np.float64)
    d = x.ndim - 2
    g = one_hot(labels, x.shape[-1]) * np.asarray(valid, bool)[..., None]
    if kernel == "mean":
        window = np.ones((kernel_size,) * d) / kernel_size**d
    else:
        window = erf_kernel(sigma)
        for _ in range(d - 1):
            window = np.multiply.outer(window, erf_kernel(sigma))
    window = window.reshape((1, *window.shape, 1))
    u = ndi.correlate(g, window, mode="constant", cval=0.0)
    ce = -(class_weights * g * (x - log_sum_exp(x))).sum(-1)
    t = u - x
    penalty = (class_weights * (np.abs(t) if distance == "l1" else t * t)).mean(-1)
    return pixel_mean(ce + alpha * penalty, valid)


# --------------------------------------------------------------------------------------
# Boundary DoU (Sun et al., MICCAI 2023).
# --------------------------------------------------------------------------------------


def class_boundary(mask):
    """Elements of a bool mask ``[*spatial]`` with a face neighbour outside it (the frame
    beyond the image included): the cross-shaped neighbour count is below ``2d + 1``."""
    cross = ndi.generate_binary_structure(mask.ndim, 1).astype(np.int64)
    count = ndi.convolve(mask.astype(np.int64), cross, mode="constant", cval=0)
    return mask & (count < cross.sum())


def boundary_dou_loss(logits, labels, *, activation="softmax", smooth=1e-5, alpha_max=0.8,
                      per_image=False, include_background=True, classes="all",
                      class_weights=None, where=None, ignore_index=None, reduction="mean"):
    """Per unit ``(Z + Y − 2I + s)/(Z + Y − (1 + α)I + s)``, ``α = min(1 − 2(C + s)/(S + s),
    α_max)``, ``C`` the class's elements (``g > 0.5``, valid) with a face neighbour not of it;
    1 for a unit with ``S = Σg = 0``. ``C == 1``: channels ``[1 − p, p]``."""
    logits = np.asarray(logits, np.float64)
    valid = valid_mask(labels, logits.shape[:-1], where, ignore_index)
    p = probs(logits, activation)
    g = one_hot(labels, logits.shape[-1])
    if p.shape[-1] == 1:
        p, g = np.concatenate([1 - p, p], -1), np.concatenate([1 - g, g], -1)
        class_weights = None if class_weights is None else np.tile(class_weights, 2)
    masks = (g > 0.5) & valid[..., None]
    edge = np.zeros(masks.shape)
    for b in range(masks.shape[0]):
        for c in range(masks.shape[-1]):
            edge[b, ..., c] = class_boundary(masks[b, ..., c])
    s_num, s_den = (smooth, smooth) if np.ndim(smooth) == 0 else tuple(smooth)
    inter, y, z = (unit_sum(v, valid, per_image) for v in (p * g, g * g, p * p))
    mass, count = unit_sum(g, valid, per_image), unit_sum(edge, valid, per_image)
    alpha = np.minimum(1 - 2 * (count + s_num) / (mass + s_den), alpha_max)
    loss = (z + y - 2 * inter + s_num) / (z + y - (1 + alpha) * inter + s_den)
    loss = np.where(mass > 0, loss, 1.0)
    return reduce_units(loss, kept_units(mass, include_background, classes), reduction,
                        class_weights)


def sun_boundary_dou(probs_cf, labels, n_classes):
    """The authors' ``BoundaryDoULoss.forward`` (github.com/sunfan-bvb/BoundaryDoULoss)
    transcribed: probabilities ``[B, C, H, W]``, labels ``[B, H, W]``; per class over the
    batch, ``conv2d`` with the cross (zero padding), ``Y == 5`` is interior, ``count_nonzero``."""
    kernel = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.float64)
    total = 0.0
    for i in range(n_classes):
        score, target = probs_cf[:, i], (labels == i).astype(np.float64)
        conv = np.stack([ndi.correlate(t, kernel, mode="constant") for t in target]) * target
        conv[conv == 5] = 0
        c, s, smooth = np.count_nonzero(conv), np.count_nonzero(target), 1e-5
        alpha = min(2 * (1 - (c + smooth) / (s + smooth)) - 1, 0.8)
        inter, y_sum, z_sum = (score * target).sum(), (target * target).sum(), (score**2).sum()
        total += (z_sum + y_sum - 2 * inter + smooth) / (z_sum + y_sum - (1 + alpha) * inter
                                                           + smooth)
    return total / n_classes


# --------------------------------------------------------------------------------------
# Region mutual information (Zhao et al. 2019; ZJULearning/RMI's RMILoss), 2D, sigmoid.
# --------------------------------------------------------------------------------------


def rmi_pool(x, pool, s, mode="bilinear"):
    """``[B, H, W, C]`` pooled with window and stride ``s``, padding ``s // 2`` (``"max"``:
    the padding never wins; ``"avg"``: zeros counted, divisor ``s²``; ``"avg_exclusive"``:
    the mean of the covered elements), or resized to ``(H // s, W // s)`` (``"interp"``:
    nearest ``⌊i·n/m⌋``, or bilinear with aligned corners)."""
    if pool is None or s == 1:
        return x
    b, h, w, c = x.shape
    if pool == "interp":
        def coords(n, m):
            if mode == "nearest":
                return np.minimum(np.arange(m) * n // m, n - 1).astype(np.float64)
            return np.arange(m) * (n - 1) / (m - 1) if m > 1 else np.zeros(m)

        out = x
        for axis, n in ((1, h), (2, w)):
            src = coords(n, n // s)
            low = np.floor(src).astype(int)
            high = np.minimum(low + 1, n - 1)
            t = (src - low).reshape([-1 if a == axis else 1 for a in range(4)])
            out = np.take(out, low, axis) * (1 - t) + np.take(out, high, axis) * t
        return out
    p = s // 2
    hh, ww = (h + 2 * p - s) // s + 1, (w + 2 * p - s) // s + 1
    out = np.zeros((b, hh, ww, c))
    for i in range(hh):
        for j in range(ww):
            i0, j0 = i * s - p, j * s - p
            block = x[:, max(i0, 0):i0 + s, max(j0, 0):j0 + s]
            if pool == "max":
                out[:, i, j] = block.max(axis=(1, 2))
            elif pool == "avg":
                out[:, i, j] = block.sum(axis=(1, 2)) / s**2
            else:
                out[:, i, j] = block.mean(axis=(1, 2))
    return out


def rmi_unit(y_map, p_map, radius, alpha=5e-4):
    """``Σ_i log(L_ii + 1e-8)``, ``L = chol(A + αI)``, ``A = S_Y − S_YP (S_P + αI)⁻¹ S_YPᵀ``
    for one ``[h, w]`` pair of maps: the ``r²`` values of every ``r × r`` window inside
    the map, centred over the windows."""
    h, w = y_map.shape
    views = [(i, j) for i in range(radius) for j in range(radius)]

    def vectors(m):
        v = np.stack([m[i:i + h - radius + 1, j:j + w - radius + 1].ravel() for i, j in views])
        return v - v.mean(axis=1, keepdims=True)

    y, p = vectors(y_map), vectors(p_map)
    eye = np.eye(radius * radius)
    s_yp = y @ p.T
    a = y @ y.T - s_yp @ np.linalg.inv(p @ p.T + alpha * eye) @ s_yp.T
    return np.log(np.diag(np.linalg.cholesky(a + alpha * eye)) + 1e-8).sum()


def rmi_loss(x, labels, valid, *, radius=3, pool="max", pool_size=3, weight=0.5,
             mix="convex", pixel_loss="bce", include_background=True):
    """Zhao et al.'s RMI loss as ZJULearning/RMI's ``RMILoss`` computes it (float64)."""
    x = np.asarray(x, np.float64)
    c = x.shape[-1]
    labels = np.asarray(labels)
    valid = np.asarray(valid, bool) & (labels >= 0) & (labels < max(c, 2))
    g = one_hot(labels, c) * valid[..., None]
    prob = sigmoid(x)
    n = valid.sum()
    if pixel_loss == "ce":
        ce = -(g * (x - log_sum_exp(x))).sum(-1)
        pixel = ce[valid].sum() / max(n, 1)
        q = np.maximum(prob * valid[..., None], 1e-6)
    else:
        bce_terms = np.logaddexp(0, x) - g * x
        pixel = (bce_terms * valid[..., None]).sum() / (n + 1)
        q = prob * valid[..., None] + 1e-6
    g, q = rmi_pool(g, pool, pool_size, "nearest"), rmi_pool(q, pool, pool_size)
    classes = range(0 if include_background or c == 1 else 1, c)
    rmi = sum(np.mean([rmi_unit(g[b, ..., k], q[b, ..., k], radius) for b in range(len(x))])
              for k in classes) / radius**2
    if pixel_loss is None:
        return rmi
    return weight * pixel + (1 - weight) * rmi if mix == "convex" else pixel + weight * rmi


# --------------------------------------------------------------------------------------
# Pixel weights and online hard example mining.
# --------------------------------------------------------------------------------------


def weighted_pixel_reduce(loss, valid, w, reduction="mean", normalize=False):
    """A pixel-wise loss with per-pixel weights ``w`` (broadcast to ``valid``'s shape):
    ``"none"``: ``w·ℓ`` (0 at invalid pixels); ``"sum"``: ``Σ_valid w·ℓ``; ``"mean"``:
    that sum over the number of valid pixels (elements, for ``[B, *S, C]`` losses), or
    with ``normalize`` over ``Σ_valid w`` counted per element; 0 when it is 0."""
    w = np.broadcast_to(np.asarray(w, np.float64), valid.shape)
    if loss.ndim > valid.ndim:  # per element: each pixel's weight on every channel
        w, valid = w[..., None], valid[..., None]
    terms = np.where(valid, w * loss, 0.0)
    if reduction == "none":
        return terms
    total = terms.sum()
    if reduction == "sum":
        return total
    den = np.broadcast_to(np.where(valid, w, 0.0), terms.shape).sum() if normalize else \
        np.broadcast_to(valid, terms.shape).sum()
    return total / den if den else 0.0


def ohem_cross_entropy(logits, labels, valid, thresh=0.7, min_kept=100000, class_weights=None):
    """HRNet's ``OhemCrossEntropy.forward`` (Wang et al., TPAMI 2020): sort the valid
    pixels by the probability of their label, ``threshold = max(p[min(min_kept, n-1)],
    thresh)`` (0-based, in the sorted order), keep ``p < threshold``, mean of the kept
    class-weighted CE (``max(min_kept, 1)`` as the contract reads ``min_kept = 0``)."""
    p = softmax(logits)
    c = logits.shape[-1]
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    g = one_hot(np.where(valid, labels, 0), c)
    losses = ce(p, g, w)[valid]
    pred = (p * g).sum(-1)[valid]
    if pred.size == 0:
        return 0.0
    order = np.argsort(pred, kind="stable")
    pred, losses = pred[order], losses[order]
    min_value = pred[min(max(min_kept, 1), pred.size - 1)]
    threshold = max(min_value, thresh)
    kept = losses[pred < threshold]
    return kept.mean() if kept.size else 0.0


def unet_weight_map(instances, w0=10.0, sigma=5.0, class_weights=(1.0, 1.0), sampling=None):
    """Ronneberger et al. 2015, eq. 2, with scipy's distance transforms looped over the
    instances of each image: ``w_c + w0·exp(−(d1 + d2)²/(2σ²))`` on the background."""
    out = np.zeros(instances.shape)
    for b, image in enumerate(instances):
        ids = [k for k in np.unique(image) if k > 0]
        background = image == 0
        if class_weights == "balanced":
            n = {True: background.sum(), False: (~background).sum()}
            rarest = min(v for v in n.values() if v > 0)
            w_c = np.where(background, rarest / max(n[True], 1), rarest / max(n[False], 1))
        else:
            w_c = np.where(background, class_weights[0], class_weights[1])
        border = np.zeros(image.shape)
        if len(ids) >= 2:
            d = np.sort(np.stack([ndi.distance_transform_edt(image != k, sampling=sampling)
                                  for k in ids]), axis=0)
            border = w0 * np.exp(-np.square(d[0] + d[1]) / (2 * sigma**2)) * background
        out[b] = w_c + border
    return out


# --------------------------------------------------------------------------------------
# Erosion-based Hausdorff loss (Karimi & Salcudean; kornia's HausdorffERLoss).
# --------------------------------------------------------------------------------------


def hausdorff_er_map(probs_, target, valid, alpha=2.0, iterations=10):
    """``Σ_{i=1..K} i^α E_i`` per image and channel, channels-last ``[B, *S, C]``:
    ``E_0 = (p − g)²``, ``D = (cross ⋆ E)/(2d + 1)`` (scipy, zero outside),
    ``E = max(D − ½, 0)`` where ``D ≥ ½``, min-max normalised over the valid elements of
    each (image, channel) when max > min; excluded elements are 0 throughout."""
    p, g = np.asarray(probs_, np.float64), np.asarray(target, np.float64)
    d = p.ndim - 2
    cross = ndi.generate_binary_structure(d, 1).astype(np.float64) / (2 * d + 1)
    out = np.zeros(p.shape)
    for b in range(p.shape[0]):
        v = np.asarray(valid[b], bool)
        for c in range(p.shape[-1]):
            e = np.where(v, (p[b, ..., c] - g[b, ..., c]) ** 2, 0.0)
            for i in range(1, iterations + 1):
                blurred = ndi.correlate(e, cross, mode="constant", cval=0.0)
                e = np.where(blurred >= 0.5, blurred - 0.5, 0.0)
                lo, hi = (e[v].min(), e[v].max()) if v.any() else (0.0, 0.0)
                if hi > lo:
                    e = (e - lo) / (hi - lo)
                e = np.where(v, e, 0.0)
                out[b, ..., c] += i**alpha * e
    return out


def hausdorff_er_loss(logits, labels, *, activation="softmax", alpha=2.0, iterations=10,
                      include_background=True, where=None, ignore_index=None, reduction="mean"):
    """:func:`hausdorff_er_map` of the kept channels, its mean over the valid elements
    (``"sum"``: the sum; ``"none"``: the map, a dropped background 0)."""
    logits = np.asarray(logits, np.float64)
    valid = valid_mask(labels, logits.shape[:-1], where, ignore_index)
    p, g = probs(logits, activation), one_hot(labels, logits.shape[-1])
    total = hausdorff_er_map(p, g, valid, alpha, iterations)
    if not include_background and logits.shape[-1] > 1:
        total[..., 0] = 0.0
        valid_elements = valid.sum() * (logits.shape[-1] - 1)
    else:
        valid_elements = valid.sum() * logits.shape[-1]
    if reduction == "none":
        return total
    if reduction == "sum":
        return total.sum()
    return total.sum() / max(valid_elements, 1)


# --------------------------------------------------------------------------------------
# Blob loss (Kofler et al.; neuronflow/blob_loss): the loss of each instance with the
# other instances masked out, averaged per image, plus the global loss.
# --------------------------------------------------------------------------------------


def _blob_criterion(p, t, loss, smooth):
    """Soft Dice ``1 − (2Σpt + s_num)/(Σp + Σt + s_den)`` (mean over images, each a list of
    elements) and/or the mean BCE of probabilities ``p`` against targets ``t``."""
    def bce(pi, ti):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = -(np.where(ti > 0, np.log(pi), 0) + np.where(ti > 0, 0, np.log1p(-pi)))
        return terms
    s_num, s_den = (smooth, smooth) if np.ndim(smooth) == 0 else smooth
    dice = np.mean([1 - (2 * (pi * ti).sum() + s_num) / (pi.sum() + ti.sum() + s_den)
                    for pi, ti in zip(p, t, strict=True)])
    elements = np.concatenate([bce(pi, ti) for pi, ti in zip(p, t, strict=True)])
    mean_bce = elements.sum() / max(elements.size, 1)
    return {"dice": dice, "bce": mean_bce, "dice_bce": dice + mean_bce}[loss]


def blob_loss(x, instances, valid, *, loss="dice", alpha=2.0, beta=1.0, mask="logits",
              smooth=1e-5):
    """``α·L_global + β·L_blob`` by the reference's loops: per image, per instance id ``k``
    present, the masked prediction (``σ(x·m)`` or ``σ(x)·m``, ``m = [y = 0 ∨ y = k]``)
    against ``[y = k]``; excluded elements dropped first."""
    x = np.asarray(x, np.float64)[..., 0]
    instances, valid = np.asarray(instances), np.asarray(valid, bool)
    xs = [x[b][valid[b]] for b in range(len(x))]
    ys = [instances[b][valid[b]] for b in range(len(x))]
    main = _blob_criterion([sigmoid(xi) for xi in xs], [(yi > 0) * 1.0 for yi in ys], loss,
                           smooth)
    per_image = []
    for xi, yi in zip(xs, ys, strict=True):
        blobs = []
        for k in np.unique(yi[yi > 0]):
            m = (yi == 0) | (yi == k)
            p = sigmoid(xi * m) if mask == "logits" else sigmoid(xi) * m
            blobs.append(_blob_criterion([p], [(yi == k) * 1.0], loss, smooth))
        if blobs:
            per_image.append(np.mean(blobs))
    return alpha * main + beta * (np.mean(per_image) if per_image else 0.0)
