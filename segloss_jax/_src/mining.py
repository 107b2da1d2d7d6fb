r"""Hard-example mining: the cross-entropy of the hardest pixels only.

:func:`topk_cross_entropy` keeps a fraction of the valid pixels of each unit,
:func:`ohem_cross_entropy` the pixels whose label probability is below a
threshold (at least ``min_kept`` of them), as the real-time segmentation
trainers do. Both select exactly, with static shapes and whatever the number of
ignored pixels: a bisection on the bits of the per-pixel losses
(:func:`top_share`), one masked count per bit, the counts ``psum``-ed across
``axis_name`` so that the selection is that of the global batch. No gradient
flows through the selection.
"""

from __future__ import annotations

import fractions
import math
import numbers
from collections.abc import Hashable

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import backend, checks
from segloss_jax._src.inputs import prepare
from segloss_jax._src.kernel import kernel
from segloss_jax._src.pixelwise import categorical_ce, smoothed_target
from segloss_jax._src.reduce import safe_div, weighted_terms
from segloss_jax._src.registry import register
from segloss_jax._src.stats import sum_across
from segloss_jax._src.types import ArrayLike, Reduction, SoftmaxActivation, activations_of

__all__ = ["topk_cross_entropy", "ohem_cross_entropy"]


def _sortable_key(v: jax.Array) -> jax.Array:
    """Floats as unsigned integers of the same width, in the same order (the radix-sort
    key: flip every bit of a negative float, only the sign bit of a non-negative one)."""
    bits = jnp.finfo(v.dtype).bits
    utype = jnp.dtype(f"uint{bits}")
    u = jax.lax.bitcast_convert_type(v, utype)
    top = jnp.asarray(1 << (bits - 1), utype)
    return u ^ jnp.where(u >= top, ~jnp.zeros((), utype), top)


# Compiled once per static configuration: called eagerly, the bisection loop would
# otherwise be traced and compiled again at every call.
@kernel
def top_share(values, valid, *, rule: tuple, per_image: bool,
              axis_name: Hashable | None = None):
    """The share of each pixel in the mean of the ``m`` largest valid ``values`` of its
    unit, and ``m`` per unit; ``m = ⌈k·n⌉`` (``rule = ("fraction", p, q)``, ``k = p/q``)
    or OHEM's ``m = max(#{v > c}, min(max(min_kept, 1), n − 1))``
    (``rule = ("ohem", c, min_kept)``), ``n`` the valid pixels of the unit.

    A unit is an image (``per_image``) or the batch (across ``axis_name`` too). The
    ``m``-th largest value ``t`` is found exactly by bisection on the bits of the
    sortable integer key: one masked count per bit (32 for float32), the counts
    ``psum``-ed over ``axis_name`` for a batch unit, so the selection across devices is
    the global one. Pixels above ``t`` get share 1, pixels below 0, and the ``m - n_>``
    remaining slots are shared equally by the pixels equal to ``t``: the selected
    values, hence the loss, are those of any sort, and tied pixels get equal gradients.
    No gradient flows through the selection.

    Args:
      values: ``[B, *spatial]`` per-pixel losses.
      valid: ``[B, *spatial]`` bool.
      rule: how ``m`` is counted, see above.
      per_image: units are images (else the batch).
      axis_name: mapped axis of a batch unit.

    Returns:
      ``(share, m)``: ``[B, *spatial]`` shares in ``[0, 1]`` and ``m`` per unit
      (``[B, 1, …]`` or a scalar), in the dtype of ``values``.
    """
    # Invalid pixels get key 0, below every candidate threshold (which has a bit set).
    key = jnp.where(valid, _sortable_key(jax.lax.stop_gradient(values)), 0)
    axes = tuple(range(1, values.ndim)) if per_image else None

    def count(mask):
        c = jnp.sum(mask, axis=axes, keepdims=per_image, dtype=jnp.int32)
        return c if per_image else sum_across(c, axis_name)

    n = count(valid)
    if rule[0] == "fraction":
        # m = ⌈p·n / q⌉ in exact integer arithmetic (n = a·q + r; no overflow for q ≤ 10⁴).
        _, p, q = rule
        m = p * (n // q) + (p * (n % q) + q - 1) // q
    else:
        _, c, min_kept = rule
        above_c = count(valid & (jax.lax.stop_gradient(values) > c))
        m = jnp.maximum(above_c, jnp.minimum(max(min_kept, 1), n - 1))
    bits = key.dtype.itemsize * 8

    def bisect(i, t):
        # Set the next bit of t when at least m valid keys are >= it: t ends as the
        # largest key with count(key >= t) >= m, the m-th largest key.
        candidate = t | jnp.left_shift(jnp.ones_like(t), (bits - 1 - i).astype(t.dtype))
        return jnp.where(count(key >= candidate) >= m, candidate, t)

    # The start value is computed from m, so that under shard_map it varies over the
    # same mapped axes as the loop's result (a fresh constant would not).
    t = jax.lax.fori_loop(0, bits, bisect, (m * 0).astype(key.dtype))
    above, tied = valid & (key > t), valid & (key == t)
    dtype = values.dtype
    remaining = safe_div((m - count(above)).astype(dtype), count(tied).astype(dtype))
    share = jnp.where(above, 1, jnp.where(tied, remaining, 0)).astype(dtype)
    return share, m.astype(dtype)


@register()
def topk_cross_entropy(
    logits: chex.Array, labels: chex.Array, *, k: float = 0.1, per_image: bool = False,
    label_smoothing: float = 0.0, activation: SoftmaxActivation = "softmax",
    class_weights: chex.Array | None = None, where: chex.Array | None = None,
    ignore_index: int | None = None, pixel_weights: ArrayLike | None = None,
    normalize_weights: bool = False, axis_name: Hashable | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Top-k cross-entropy: the mean softmax CE of the hardest fraction ``k`` of the pixels.

    .. math::

       \mathcal{L} = \frac{1}{\sum_u m_u} \sum_u \sum_{i \in T_u} \ell_i, \qquad
       m_u = \lceil k\, n_u \rceil, \qquad
       \ell_i = -\sum_c w_c\, \tilde g_{i,c} \log p_{i,c}

    with :math:`\ell_i` the per-pixel cross-entropy of :func:`cross_entropy` (class
    weights and label smoothing included), :math:`n_u` the number of valid pixels of
    the unit :math:`u` (an image with ``per_image=True``, else the whole batch) and
    :math:`T_u` its :math:`m_u` valid pixels with the largest :math:`\ell_i`. The
    mean runs over all selected pixels, so ``k = 1`` is :func:`cross_entropy` with
    either ``per_image``; ``per_image`` only changes which pixels are selected.

    Ties: the pixels equal to the :math:`m_u`-th largest value share the slots left
    for them equally (the value is that of any sort; their gradients are equal, not
    decided by pixel order). The selection is exact and jit-able with static shapes
    (a bisection on the bits of the values, one masked count per bit), whatever the
    number of ignored pixels; no gradient flows through it. ``k`` is read as the
    nearest fraction with denominator at most 10⁴ (``k = 0.1`` of 30 pixels selects
    3, not the 4 that ``ceil(0.1 * 30)`` gives in floating point).

    With ``axis_name`` and ``per_image=False`` the unit is the global batch: the
    counts of the bisection are ``psum``-ed, so the selection, value and gradient
    equal those of one device holding the whole batch. With ``per_image=True`` the
    selection is per image and only the final mean is global.

    Args:
      logits: ``[B, *spatial, C]`` logits, ``C >= 2`` (probabilities if
        ``activation=None``).
      labels: integer ``[B, *spatial]`` class indices or dense ``[B, *spatial, C]``.
      k: the fraction of valid pixels kept per unit, in ``(0, 1]``.
      per_image: select per image (``True``) or over the batch (``False``).
      label_smoothing: :math:`\varepsilon \in [0, 1]`, as :func:`cross_entropy`.
      activation: ``"softmax"`` or ``None``.
      class_weights: optional ``[C]`` weights; pixels are ranked by the weighted CE.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      pixel_weights: optional ``[B, *spatial]`` non-negative weights: the pixels
        are ranked by their weighted CE (:doc:`/conventions`); no gradient.
      normalize_weights: ``"mean"`` divides by the sum of the selected pixels'
        weights instead of their number.
      axis_name: mapped axis (``shard_map``/``pmap``): see above.
      reduction: ``"mean"`` over the selected pixels, ``"sum"`` or ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial]`` for ``reduction="none"``: the CE of the selected
      pixels, 0 elsewhere (a pixel tied at the threshold holds its share of it).

    nnU-Net's ``TopKLoss(k=10)`` (``k`` in percent) keeps ``int(k·N/100)`` of all
    ``N`` voxels of the batch, ignored voxels counted (with a loss of 0): it equals
    ``topk_cross_entropy(x, y, k=0.1)`` when nothing is ignored and ``k·N/100`` is
    whole.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]]])
      >>> labels = jnp.array([[0, 0, 1, 1]])
      >>> print(f"{sl.topk_cross_entropy(logits, labels, k=0.5):.4f}")  # the two worst
      1.3133
      >>> print(f"{sl.topk_cross_entropy(logits, labels, k=1.0):.4f}")
      0.7005

    References:
      Wu, Shen & van den Hengel, "Bridging category-level and instance-level semantic
      image segmentation", arXiv:1605.06885, 2016 (online bootstrapped CE);
      Isensee et al., "nnU-Net", Nature Methods 2021.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, pixel_weights=pixel_weights,
                  allowed_activations=activations_of(SoftmaxActivation))
    checks.check_reduction(reduction)
    checks.check_bool("per_image", per_image)
    checks.check_fraction("k", k)
    fraction = fractions.Fraction(float(k)).limit_denominator(10_000)
    target = smoothed_target(inp, label_smoothing, class_weights)
    ce = categorical_ce(inp, target, unit_mass=class_weights is None and inp.labels is not None)
    ce, _ = weighted_terms(ce, inp.valid, inp.weights)  # ranked with the pixel weights
    share, m = top_share(ce, inp.valid, rule=("fraction", fraction.numerator,
                                              fraction.denominator),
                         per_image=per_image, axis_name=axis_name)
    return _reduce_selected(ce, share, sum_across(jnp.sum(m), axis_name) if per_image else m,
                            inp.weights if normalize_weights else None, reduction, axis_name)


def _reduce_selected(values, share, count, weights, reduction: str,
                     axis_name: Hashable | None) -> jax.Array:
    """``share·values`` per pixel (``"none"``), its sum, or the sum over ``count``
    (``weights`` given: over ``Σ share·w`` instead), global across ``axis_name``."""
    loss = jnp.where(share > 0, share * values, 0)
    if reduction == "none":
        return loss
    total = sum_across(jnp.sum(loss), axis_name)
    if reduction == "sum":
        return total
    if weights is not None:
        count = sum_across(jnp.sum(share * weights), axis_name)
    return safe_div(total, count)


@register()
def ohem_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, thresh: float = 0.7, min_kept: int = 100_000,
    activation: SoftmaxActivation = "softmax", class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: Hashable | None = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Online hard example mining (OHEM) cross-entropy, as HRNet's ``OhemCrossEntropy``.

    .. math::

       \mathcal{L} = \frac{1}{m} \sum_{i \in T} w_{y_i}\, \ell_i, \qquad
       \ell_i = -\log p_i, \qquad
       m = \max\Big(\#\{i \in V : p_i < \tau\},\
                    \min\big(\max(k, 1),\ n - 1\big)\Big)

    with :math:`p_i` the softmax probability of the label of pixel :math:`i`,
    :math:`V` the :math:`n` valid pixels of the whole batch (of every device with
    ``axis_name``), :math:`\tau` the ``thresh``, :math:`k` the ``min_kept``,
    :math:`T` the :math:`m` valid pixels with the largest :math:`\ell_i` and
    :math:`w_c` the class weights (1 without ``class_weights``). So every pixel
    whose label probability is below ``thresh`` is kept, and at least ``min_kept``
    pixels (but never all of them) are. HRNet writes the selection as
    :math:`p_i < \max(p_{(\min(k, n-1))}, \tau)`, :math:`p_{(j)}` the :math:`j`-th
    smallest (0-based), which keeps the same pixels when the probabilities are
    distinct; here pixels are ranked by :math:`\log p_i` (the cross-entropy), not
    by :math:`p_i`, which rounds to 1 in float32 for every confident pixel.

    The class weights scale the terms, not the ranking, and the denominator is
    the number of kept pixels :math:`m` (HRNet's ``pixel_losses.mean()``). Ties
    at the :math:`m`-th value share the slots left (as
    :func:`topk_cross_entropy`: the value is that of any sort, tied pixels get
    equal gradients). The selection is exact and carries no gradient. Nothing
    valid, or nothing kept (:math:`n = 1` with no probability below ``thresh``),
    gives 0 with a zero gradient. With dense labels :math:`\ell_i = -\sum_c g_c
    \log p_c` and :math:`p_i = e^{-\ell_i}`.

    ``pixel_weights`` multiply the terms after the selection (they change
    neither the ranking nor :math:`m`); with ``normalize_weights=True`` the
    denominator is the sum of the kept pixels' weights.

    Args:
      logits: ``[B, *spatial, C]`` logits, ``C >= 2`` (probabilities if
        ``activation=None``).
      labels: integer ``[B, *spatial]`` class indices or dense ``[B, *spatial, C]``.
      thresh: :math:`\tau \in [0, 1]`, a Python number.
      min_kept: :math:`k`, a non-negative Python int: the fewest pixels kept in the
        whole batch (global under ``axis_name``).
      activation: ``"softmax"`` or ``None``.
      class_weights: optional ``[C]`` non-negative weights of the terms.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      pixel_weights, normalize_weights: per-pixel weights of the terms and the
        denominator of the mean, see above.
      axis_name: mapped axis (``shard_map``/``pmap``): the selection, value and
        gradient are those of one device holding the whole batch.
      reduction: ``"mean"`` over the kept pixels, ``"sum"`` (the kept sum) or
        ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial]`` for ``reduction="none"``: the weighted CE of
      the kept pixels, 0 elsewhere (a pixel tied at the threshold holds its share).

    Peers, with :math:`B` images of :math:`|S|` pixels: HRNet's (and PIDNet's)
    ``OhemCrossEntropy(ignore_label, thres=τ, min_kept=k, weight=w)`` is
    ``ohem_cross_entropy(thresh=τ, min_kept=k, class_weights=w, ignore_index=...)``.
    mmseg's ``OHEMPixelSampler(thresh=τ, min_kept=k)`` with ``CrossEntropyLoss``
    (its mean over all :math:`B|S|` pixels) is ``ohem_cross_entropy(thresh=τ,
    min_kept=k·B, reduction="sum") / (B·|S|)``. BiSeNet's ``OhemCELoss(thresh=τ)``
    keeps the pixels with :math:`\ell_i > -\log \tau`, at least
    ``n_min = n_valid // 16``: ``ohem_cross_entropy(thresh=τ,
    min_kept=n_valid // 16)`` (a static int: ``B·|S| // 16`` when nothing is
    ignored).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[3.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]]])
      >>> labels = jnp.array([[0, 0, 1, 1]])  # p_y = 0.95, 0.27, 0.27, 0.95
      >>> print(f"{sl.ohem_cross_entropy(logits, labels, thresh=0.7, min_kept=1):.4f}")
      1.3133
      >>> print(f"{sl.ohem_cross_entropy(logits, labels, thresh=0.7, min_kept=3):.4f}")
      0.8917

    References:
      Shrivastava, Gupta & Girshick, "Training region-based object detectors with
      online hard example mining", CVPR 2016; Wang et al., "Deep high-resolution
      representation learning for visual recognition" (HRNet), TPAMI 2020.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, pixel_weights=pixel_weights,
                  allowed_activations=activations_of(SoftmaxActivation))
    checks.check_reduction(reduction)
    checks.check_count("min_kept", min_kept)
    if not isinstance(thresh, numbers.Real) or isinstance(thresh, bool):
        raise TypeError(f"`thresh` must be a Python number in [0, 1], got {thresh!r}.")
    checks.check_in_range("thresh", thresh, 0.0, 1.0)
    ce = categorical_ce(inp, inp.target, unit_mass=inp.labels is not None)
    key, cutoff = _ohem_key(inp, ce, float(thresh))
    share, m = top_share(key, inp.valid, rule=("ohem", cutoff, int(min_kept)),
                         per_image=False, axis_name=axis_name)
    if class_weights is not None:
        ce = categorical_ce(inp, smoothed_target(inp, 0.0, class_weights))
    ce, _ = weighted_terms(ce, inp.valid, inp.weights)
    return _reduce_selected(ce, share, m, inp.weights if normalize_weights else None,
                            reduction, axis_name)


def _ohem_key(inp, ce: jax.Array, thresh: float) -> tuple[jax.Array, float]:
    """A per-pixel value increasing with the cross-entropy ``ℓ = −log p_y``, and the
    value above which ``p_y < thresh``.

    Softmax with integer labels: the log-odds ``log((1 − p_y)/p_y)`` (``ℓ`` is its
    softplus), as ``log Σ_{c≠y} e_c − log e_y`` from the shared ``e = exp(x − max x)``:
    exact for confident pixels, where ``p_y`` rounds to 1 and ``ℓ = lse − x_y`` to 0
    (their order is kept). Otherwise ``ℓ`` itself, with the cutoff ``−log thresh``.
    """
    if inp.activation == "softmax" and inp.labels is not None:
        m, e = inp._softmax_exp
        g = inp.target
        # log Σ_{c≠y} e_c − log e_y, with log e_y = x_y − max x (no second log).
        other = backend.class_sum(jnp.where(g > 0, 0, e))[..., 0]
        key = jnp.log(other) - backend.class_sum(g * (inp.x - m))[..., 0]
        cutoff = math.inf if thresh == 0 else -math.inf if thresh == 1 else math.log(
            (1 - thresh) / thresh)
        return key, cutoff
    return ce, (-math.log(thresh) if thresh > 0 else math.inf)
