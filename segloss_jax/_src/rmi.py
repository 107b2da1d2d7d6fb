r"""Region mutual information (Zhao et al. 2019), as ZJULearning/RMI's ``RMILoss``.

Each pixel is described with its ``r × r`` neighbourhood: the ``r²`` values of
the window form one point of a multivariate distribution, for the target map
(``Y``) and for the probability map (``P``) of a class. RMI lower-bounds the
mutual information of the two distributions by the log-determinant of the
posterior covariance of ``Y`` given ``P``, estimated from the ``M`` windows of
the (pooled) image:

.. math::

   A = S_Y - S_{YP} (S_P + \alpha I)^{-1} S_{YP}^\top,

with the centred sums :math:`S_Y = YY^\top`, :math:`S_P = PP^\top`,
:math:`S_{YP} = YP^\top` (``r² × r²``). Minimising :math:`\log\det A` makes the
neighbourhoods of the prediction explain those of the target.

**Accuracy in float32.** The reference computes the ``r² × r²`` block in
float64; written as above in float32 the Schur complement cancels (``S_Y`` is a
sum over thousands of windows, ``A`` may be as small as ``α``) and the result
drifts, or the Cholesky factorisation fails, for good predictions. Here ``A``
is evaluated as the sum of squares it equals,

.. math::

   A = R R^\top + \alpha B B^\top, \qquad R = Y - B P, \qquad
   B = S_{YP} (S_P + \alpha I)^{-1},

(expand :math:`RR^\top` and use :math:`B (S_P + \alpha I) = S_{YP}`), a sum of
positive semi-definite terms with no cancellation; and ``A`` is stationary in
``B`` (``B`` minimises :math:`\|Y - BP\|^2 + \alpha\|B\|^2`), so an error in the
computed ``B`` changes ``A`` only to second order. For the same reason the
gradient is the partial derivative with ``B`` held fixed (a custom VJP that
carries no cotangent to ``B``; the backward pass reads ``B`` as a residual, so
second derivatives see it change): :math:`\bar P = -B^\top(\bar A + \bar
A^\top)R`. That gradient is linear in ``B``, whose solve loses accuracy with the
condition of :math:`S_P + \alpha I` (up to :math:`\sim 10^6`); one step of
iterative refinement, its residual :math:`S_{YP} - B(S_P + \alpha I) = RP^\top -
\alpha B` taken from the data, restores it (at ``[2, 40, 40, 3]`` with a nearly
perfect prediction the gradient's drift fell from :math:`2\cdot10^{-4}` to
:math:`6\cdot10^{-7}` of its largest entry).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from segloss_jax._src import checks
from segloss_jax._src.inputs import prepare
from segloss_jax._src.pixelwise import binary_ce
from segloss_jax._src.reduce import safe_div
from segloss_jax._src.registry import register
from segloss_jax._src.stats import sum_across
from segloss_jax._src.types import (
    ArrayLike,
    AxisName,
    Reduction,
    SigmoidOnly,
    activations_of,
)

__all__ = ["rmi_loss"]

_POS_ALPHA = 5e-4  # the reference's jitter: keeps S_P + αI and A + αI positive definite
_LOG_EPS = 1e-8  # added to the Cholesky diagonal before the log (the reference's)
_CLIP_MIN = 1e-6  # the reference's floor of the probabilities
_POOLS = ("max", "avg", "avg_exclusive", "interp", None)


# --- pooling -----------------------------------------------------------------------------


def _pooled_size(n: int, s: int, pool) -> int:
    """The size of one axis after pooling by ``s`` (stride ``s``, padding ``s // 2``;
    ``"interp"``: ``n // s``)."""
    if pool is None or s == 1:
        return n
    if pool == "interp":
        return n // s
    return (n + 2 * (s // 2) - s) // s + 1


def _blocks(x: jax.Array, s: int) -> jax.Array:
    """``[B, H, W, C]`` → ``[B, h, s, w, s, C]``: the pooling windows (stride = size =
    ``s``, ``s // 2`` zeros in front, cut or zero-padded behind to ``h·s``)."""
    pads = [(0, 0, 0)]
    for n in x.shape[1:3]:
        out = _pooled_size(n, s, "max")
        pads.append((s // 2, out * s - n - s // 2, 0))
    x = lax.pad(x, jnp.zeros((), x.dtype), [*pads, (0, 0, 0)])
    b, hs, ws, c = x.shape
    return x.reshape(b, hs // s, s, ws // s, s, c)


def _window_counts(n: int, s: int) -> np.ndarray:
    """How many elements of the image each pooling window of one axis covers."""
    starts = np.arange(_pooled_size(n, s, "max")) * s - s // 2
    return np.minimum(starts + s, n) - np.maximum(starts, 0)


def _interp_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """``[n_out, n_in]``: PyTorch's ``interpolate`` along one axis: ``"nearest"`` reads
    ``⌊i·n_in/n_out⌋``; ``"bilinear"`` with ``align_corners=True`` reads
    ``i·(n_in − 1)/(n_out − 1)`` linearly."""
    matrix = np.zeros((n_out, n_in))
    i = np.arange(n_out)
    if mode == "nearest":
        matrix[i, np.minimum(i * n_in // n_out, n_in - 1)] = 1.0
        return matrix
    src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    low = np.minimum(np.floor(src).astype(int), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    np.add.at(matrix, (i, low), 1 - (src - low))
    np.add.at(matrix, (i, high), src - low)
    return matrix


def _pool(x: jax.Array, pool, s: int, mode: str = "bilinear") -> jax.Array:
    """``[B, H, W, C]`` pooled as the reference pools (``mode``: the interpolation of
    ``"interp"``: ``"nearest"`` for the target, ``"bilinear"`` for the probabilities)."""
    if pool is None or s == 1:
        return x
    if pool == "interp":
        for axis in (1, 2):
            n = x.shape[axis]
            matrix = jnp.asarray(_interp_matrix(n, n // s, mode), x.dtype)
            x = jnp.moveaxis(jnp.tensordot(matrix, x, axes=((1,), (axis,)),
                                           precision=lax.Precision.HIGHEST), 0, axis)
        return x
    blocks = _blocks(x, s)
    if pool == "max":  # every value pooled is ≥ 0, so the zero padding never wins
        return jnp.max(blocks, axis=(2, 4))
    total = jnp.sum(blocks, axis=(2, 4))
    if pool == "avg":
        return total / (s * s)
    counts = np.outer(_window_counts(x.shape[1], s), _window_counts(x.shape[2], s))
    return total / jnp.asarray(counts[None, :, :, None], x.dtype)


# --- the log-determinant of one unit ------------------------------------------------------


def _windows(x: jax.Array, r: int) -> jax.Array:
    """``[..., h, w]`` → ``[..., r², M]``: the ``r²`` values of each of the ``M`` windows
    inside the map (row-major offsets), centred over the windows."""
    h, w = x.shape[-2:]
    hh, ww = h - r + 1, w - r + 1
    v = jnp.stack([x[..., i:i + hh, j:j + ww] for i in range(r) for j in range(r)], axis=-3)
    v = v.reshape(*v.shape[:-2], hh * ww)
    return v - jnp.mean(v, axis=-1, keepdims=True)


def _gram(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a bᵀ`` over the last axis, batched: ``[..., n, M] × [..., k, M] → [..., n, k]``."""
    return jnp.einsum("...im,...jm->...ij", a, b, precision=lax.Precision.HIGHEST)


def _jitter(a: jax.Array) -> jax.Array:
    """``A + αI`` for a batch of square matrices."""
    return a + jnp.broadcast_to(_POS_ALPHA * jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)


def _half_log_det(a: jax.Array) -> jax.Array:
    """``Σ_i log(L_ii + 1e-8)``, ``L = chol(A + αI)``: ½ log det with the reference's
    offset."""
    chol = jnp.linalg.cholesky(_jitter(a))
    return jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1) + _LOG_EPS), axis=-1)


def _posterior(b, y, p):
    """``A = R Rᵀ + α B Bᵀ`` with ``R = Y − B P``, and ``R``."""
    r = y - jnp.einsum("...ij,...jm->...im", b, p, precision=lax.Precision.HIGHEST)
    return _gram(r, r) + _POS_ALPHA * _gram(b, b), r


@jax.custom_vjp
def _conditional_log_det(b: jax.Array, y: jax.Array, p: jax.Array) -> jax.Array:
    """``_half_log_det(A)`` of the posterior covariance (module docstring), per unit;
    its gradient holds ``B`` fixed (``A`` is stationary in ``B``)."""
    return _half_log_det(_posterior(b, y, p)[0])


def _conditional_log_det_fwd(b, y, p):
    a, r = _posterior(b, y, p)
    return _half_log_det(a), (a, b, r)


def _conditional_log_det_bwd(residuals, ct):
    a, b, r = residuals
    _, vjp = jax.vjp(_half_log_det, a)
    (a_bar,) = vjp(ct)
    r_bar = jnp.einsum("...ij,...jm->...im", a_bar + jnp.swapaxes(a_bar, -1, -2), r,
                       precision=lax.Precision.HIGHEST)
    p_bar = -jnp.einsum("...ji,...jm->...im", b, r_bar, precision=lax.Precision.HIGHEST)
    return jnp.zeros_like(b), r_bar, p_bar


_conditional_log_det.defvjp(_conditional_log_det_fwd, _conditional_log_det_bwd)


def _unit_rmi(g: jax.Array, q: jax.Array, radius: int) -> jax.Array:
    """``Σ_i log(L_ii + 1e-8)`` per unit for the maps ``[..., h, w]`` (no gradient to ``g``)."""
    y, p = _windows(lax.stop_gradient(g), radius), _windows(q, radius)
    chol = jnp.linalg.cholesky(_jitter(_gram(p, p)))  # S_P + αI = L Lᵀ

    def solve(e):  # E (S_P + αI)⁻¹ = ((E L⁻ᵀ) L⁻¹), two triangular solves from the right
        e = lax.linalg.triangular_solve(chol, e, left_side=False, lower=True, transpose_a=True)
        return lax.linalg.triangular_solve(chol, e, left_side=False, lower=True)

    b = solve(_gram(y, p))  # B = S_YP (S_P + αI)⁻¹
    # One step of iterative refinement, with the residual of the normal equations taken
    # from the data, S_YP − B (S_P + αI) = R Pᵀ − αB (R = Y − BP, no cancellation): the
    # gradient is linear in B, and this step makes float32 follow float64 (module docstring).
    r = y - jnp.einsum("...ij,...jm->...im", b, p, precision=lax.Precision.HIGHEST)
    b = b + solve(_gram(r, p) - _POS_ALPHA * b)
    return _conditional_log_det(b, y, p)


# --- the loss ----------------------------------------------------------------------------


def _check_options(radius, pool, pool_size, weight, mix, pixel_loss, include_background,
                   reduction, num_classes: int) -> None:
    for name, value, low in (("radius", radius, 1), ("pool_size", pool_size, 1)):
        checks.check_count(name, value)
        if value < low:
            raise ValueError(f"`{name}` must be a positive int, got {value}.")
    checks.check_choice("pool", pool, _POOLS)
    checks.check_choice("mix", mix, ("convex", "add"))
    checks.check_choice("pixel_loss", pixel_loss, ("bce", "ce", None))
    checks.check_bool("include_background", include_background)
    checks.check_choice("reduction", reduction, ("mean",))
    if mix == "convex" and pixel_loss is not None:
        checks.check_in_range("weight", weight, 0.0, 1.0)
    if pixel_loss == "ce" and num_classes == 1:
        raise ValueError("`pixel_loss='ce'` is a softmax cross-entropy and needs C >= 2 "
                         "classes, but `logits` has C == 1; use `pixel_loss='bce'`.")


@register()
def rmi_loss(
    logits: ArrayLike, labels: ArrayLike, *, radius: int = 3, pool: str | None = "max",
    pool_size: int = 3, weight: float = 0.5, mix: str = "convex",
    pixel_loss: str | None = "bce", include_background: bool = True,
    activation: SigmoidOnly = "sigmoid", where: ArrayLike | None = None,
    ignore_index: int | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Region mutual information loss (Zhao et al. 2019), as ZJULearning/RMI's ``RMILoss``.

    .. math::

       L = w\,L_{pix} + (1 - w)\,L_{RMI} \quad(\texttt{mix="convex"}),\qquad
       L = L_{pix} + w\,L_{RMI} \quad(\texttt{"add"}),

    .. math::

       L_{RMI} = \frac{1}{r^2} \sum_c \frac{1}{B} \sum_b \sum_{i=1}^{r^2}
                 \log\big(L^{bc}_{ii} + 10^{-8}\big),\qquad
       L^{bc} = \operatorname{chol}(A_{bc} + \alpha I),\qquad
       A = S_Y - S_{YP}(S_P + \alpha I)^{-1} S_{YP}^\top

    per image :math:`b` and class :math:`c`, :math:`\alpha = 5\cdot10^{-4}`.
    The maps: :math:`g = ` one-hot target (``C == 1``: the 0/1 foreground) times the
    validity :math:`v`, and :math:`q = \sigma(x)\,v + 10^{-6}`; excluded pixels
    (``where``, ``ignore_index``, and every integer label outside
    :math:`[0, \max(C, 2))`) stay in the maps as points with :math:`g = 0`,
    :math:`q = 10^{-6}` (the reference's choice). Both maps are pooled with
    stride and size ``pool_size`` = :math:`s`, padding :math:`\lfloor s/2\rfloor`:
    ``"max"`` (the padding never wins), ``"avg"`` (zero padding counted, divisor
    :math:`s^2`), ``"avg_exclusive"`` (padding not counted), ``"interp"``
    (resized to ``(H // s, W // s)``: :math:`g` nearest, reading
    :math:`\lfloor i\cdot n_{in}/n_{out}\rfloor`, :math:`q` bilinear with
    ``align_corners=True``); ``None`` or :math:`s = 1`: not pooled. Then the
    :math:`r^2` values of each of the :math:`M` windows of :math:`r \times r`
    inside a pooled map form the columns of :math:`Y` (target) and :math:`P`
    (probabilities) in :math:`\mathbb{R}^{r^2 \times M}`, centred over the
    windows; :math:`S_Y = YY^\top`, :math:`S_P = PP^\top`, :math:`S_{YP} = YP^\top`
    (sums, not divided by :math:`M`). ``include_background=False`` drops class 0
    from the sum over classes (``C > 1``). The target carries no gradient.

    The pixel term :math:`L_{pix}`: ``"bce"`` = the sum over valid pixels and
    classes of the binary cross-entropy with logits, divided by
    :math:`n_{valid} + 1`; ``"ce"`` = the softmax cross-entropy averaged over the
    valid pixels (the reference's ``forward_softmax_sigmoid``; then
    :math:`q = \max(\sigma(x)\,v, 10^{-6})`); ``None`` = :math:`L_{RMI}` alone
    (PaddleSeg's ``RMILoss``; ``weight`` and ``mix`` unused).

    **Why the loss can be negative.** :math:`\log\det(A + \alpha I)` is not a
    mutual information but the log-determinant of a conditional covariance
    (up to constants), and it falls below 0 as soon as the prediction explains
    the target's neighbourhoods well: each eigenvalue of :math:`A` below
    :math:`1 - \alpha` contributes a negative log. A class that is constant over
    an image (absent, or everywhere) has :math:`A = 0` and contributes
    :math:`\log(\sqrt\alpha + 10^{-8}) \approx -3.8` with zero gradient, so with
    many classes absent from the images the loss is typically negative; only
    its decrease matters.

    **Float32.** The ``r² × r²`` block is computed as a sum of squares
    (:math:`A = RR^\top + \alpha BB^\top`, :math:`R = Y - BP`,
    :math:`B = S_{YP}(S_P + \alpha I)^{-1}` refined once; module docstring), which
    has no cancellation, so float32 needs no float64: at ``[2, 240, 240, 19]``
    with the defaults the float32 value was within :math:`4.1\cdot10^{-6}`
    (absolute; :math:`1.2\cdot10^{-7}` relative) and the gradient within
    :math:`1.1\cdot10^{-6}` (of its largest entry) of a float64 run, for
    uninformative to nearly perfect predictions (``python -m
    benchmarks.bench_structural --only drift``). The reference's formula in
    float32 drifted by up to :math:`1.7\cdot10^{-4}` in the gradient and failed
    (NaN) for good predictions.

    Args:
      logits: ``[B, H, W, C]`` logits (2D only).
      labels: integer ``[B, H, W]`` (``C == 1``: 0/1 foreground) or dense
        ``[B, H, W, C]`` targets in ``[0, 1]``.
      radius: :math:`r`, the side of the square neighbourhood (``r² × r²`` blocks).
      pool: ``"max"``, ``"avg"``, ``"avg_exclusive"``, ``"interp"`` or ``None``.
      pool_size: :math:`s`, the pooling window and stride; every pooled side must
        be at least ``radius`` (else a ``ValueError``).
      weight: :math:`w` (``"convex"``: in ``[0, 1]``).
      mix: ``"convex"`` or ``"add"`` (the reference's ``lambda_way`` 1 and 0).
      pixel_loss: ``"bce"``, ``"ce"`` (``C >= 2``) or ``None``.
      include_background: whether class 0 counts in :math:`L_{RMI}`.
      activation: ``"sigmoid"`` only (RMI reads per-class probabilities).
      where: optional bool ``[B, H, W]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      axis_name: mapped axis (``shard_map``/``pmap``): the pixel term is
        ``psum(sum) / (psum(n_valid) + 1)`` (``"ce"``: ``/ psum(n_valid)``), the
        RMI term ``psum(Σ_b) / psum(B)`` per class, the values of the global batch.
      reduction: ``"mean"`` only (the reference's reduction).

    Returns:
      A scalar, float32 (float64 for float64 inputs).

    Peers: ZJULearning/RMI ``RMILoss(num_classes=C, rmi_radius=r, rmi_pool_way=k,
    rmi_pool_size=s, rmi_pool_stride=s, loss_weight_lambda=w, lambda_way=l)``, with
    ``ignore_index=255`` and labels ``[B, H, W]``: ``rmi_loss(radius=r,
    pool=("max", "avg", "interp")[k], pool_size=s, weight=w, mix=("add",
    "convex")[l], ignore_index=255)``. NVIDIA semantic-segmentation's ``RMILoss`` is
    ``pool="avg", pool_size=4``.

    Examples:
      >>> import jax
      >>> import segloss_jax as sl
      >>> logits = jax.random.normal(jax.random.key(0), (1, 12, 12, 2))
      >>> labels = jax.random.randint(jax.random.key(1), (1, 12, 12), 0, 2)
      >>> loss_fn = jax.jit(lambda x, y: sl.rmi_loss(x, y, pool=None))
      >>> print(f"{loss_fn(logits, labels):.4f}")
      2.3522

    References:
      Zhao, Wang, Cai & He, "Region mutual information loss for semantic
      segmentation", NeurIPS 2019 (code: github.com/ZJULearning/RMI).
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, allowed_activations=activations_of(SigmoidOnly))
    c = inp.num_classes
    _check_options(radius, pool, pool_size, weight, mix, pixel_loss, include_background,
                   reduction, c)
    if inp.x.ndim != 4:
        raise ValueError(f"`rmi_loss` is 2D: `logits` must be [B, H, W, C], got shape "
                         f"{inp.x.shape}.")
    height, width = (_pooled_size(n, pool_size, pool) for n in inp.x.shape[1:3])
    if min(height, width) < radius:
        raise ValueError(
            f"the pooled map is {height} × {width} (image {inp.x.shape[1:3]}, pool={pool!r}, "
            f"pool_size={pool_size}), smaller than `radius` = {radius}: lower `radius` or "
            f"`pool_size`, or use a larger image.")
    valid = inp.valid
    if inp.labels is not None:  # the reference keeps only labels below max(C, 2)
        valid = valid & (inp.labels >= 0) & (inp.labels < max(c, 2))
    keep = valid[..., None]
    g = jnp.where(keep, inp.target, 0)
    n_valid = jnp.sum(valid, dtype=inp.dtype)

    if pixel_loss == "ce":
        ce = inp.lse * jnp.sum(g, -1) - jnp.sum(g * inp.x, -1)
        total, count = sum_across((jnp.sum(jnp.where(valid, ce, 0)), n_valid), axis_name)
        pixel = safe_div(total, count)
        q = jnp.maximum(jnp.where(keep, inp.probs, 0), _CLIP_MIN)
    else:
        if pixel_loss == "bce":
            total = jnp.sum(jnp.where(keep, binary_ce(inp), 0))
            total, count = sum_across((total, n_valid), axis_name)
            pixel = total / (count + 1)
        q = jnp.where(keep, inp.probs, 0) + _CLIP_MIN

    g = jnp.moveaxis(_pool(g, pool, pool_size, "nearest"), -1, 1)  # [B, C, h, w]
    q = jnp.moveaxis(_pool(q, pool, pool_size), -1, 1)
    per_unit = _unit_rmi(g, q, radius)  # [B, C]
    if not include_background and c > 1:
        per_unit = per_unit[:, 1:]
    total, images = sum_across((jnp.sum(per_unit), jnp.asarray(per_unit.shape[0], inp.dtype)),
                               axis_name)
    rmi = total / images / radius**2
    if pixel_loss is None:
        return rmi
    if mix == "convex":
        return weight * pixel + (1 - weight) * rmi
    return pixel + weight * rmi

