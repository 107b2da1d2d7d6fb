r"""Structural losses: local statistics of the prediction against those of the target.

The SSIM and structural similarity losses compare, class channel by class
channel, the probability map ``p_c`` with the target map ``g_c`` through *local
moments*: means, variances and covariances over a sliding window around every
pixel: a sampled Gaussian window, normalised to sum 1, applied separably with
reflect padding (the edge sample is not repeated, as PyTorch's ``"reflect"`` and
scipy's ``"mirror"``), so every map has the size of the input; the filter is
:func:`~segloss_jax._src.windows.linear_filter`, whose backward pass is its
adjoint. 1 to 3 spatial axes.

Excluded pixels (``where=False`` or ``ignore_index``) are set to 0 in both
``p`` and ``g`` before the windows, so neither their logits nor their labels
change the loss of any pixel; they then count in no mean.

:func:`nacl_loss` compares the logits with the local class proportions of the
target (the one-hot target smoothed by a box or Gaussian window, zero padding).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from segloss_jax._src import checks
from segloss_jax._src.inputs import Inputs, prepare
from segloss_jax._src.pixelwise import binary_ce, categorical_ce
from segloss_jax._src.reduce import reduce_pixels, safe_div
from segloss_jax._src.registry import register
from segloss_jax._src.stats import max_across, sum_across
from segloss_jax._src.types import (
    AnyActivation,
    ArrayLike,
    AxisName,
    Reduction,
    SoftmaxOnly,
    activations_of,
)
from segloss_jax._src.windows import box_taps, erf_taps, gaussian_taps, linear_filter

__all__ = ["ssim_loss", "structural_similarity_loss", "nacl_loss"]


def _check_window(inp: Inputs, window_size, sigma) -> np.ndarray:
    """The window taps; ``window_size`` odd and ≥ 1, smaller than twice each spatial
    size (reflect padding needs every size to exceed ``window_size // 2``), ``sigma > 0``."""
    _check_odd("window_size", window_size)
    spatial = inp.x.shape[1:-1]
    if min(spatial) <= window_size // 2:
        raise ValueError(
            f"`window_size` = {window_size} needs every spatial size to exceed "
            f"window_size // 2 = {window_size // 2} (reflect padding), got spatial shape "
            f"{spatial}.")
    return gaussian_taps(int(window_size), _check_sigma(sigma))


def _check_odd(name: str, size) -> None:
    """A window size: an odd int ≥ 1 (centred on its pixel)."""
    if (not isinstance(size, (int, np.integer)) or isinstance(size, bool)
            or size < 1 or size % 2 == 0):
        raise ValueError(f"`{name}` must be an odd int >= 1, got {size!r}.")


def _check_sigma(sigma) -> float:
    """A window's standard deviation: a positive, finite Python number."""
    try:
        sigma = float(sigma)
    except (TypeError, jax.errors.ConcretizationTypeError):
        raise TypeError(f"`sigma` must be a Python number (the window is built at trace "
                        f"time), got {sigma!r}.") from None
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"`sigma` must be positive and finite, got {sigma!r}.")
    return sigma


def _masked_maps(inp: Inputs) -> tuple[jax.Array, jax.Array]:
    """``p`` and ``g``, channels first (``[B, C, *spatial]``: each class map contiguous,
    which the windows run through fastest), excluded pixels set to 0 in both."""
    keep = inp.valid[..., None]
    p, g = jnp.where(keep, inp.probs, 0), jnp.where(keep, inp.target, 0)
    return jnp.moveaxis(p, -1, 1), jnp.moveaxis(g, -1, 1)


def _local_means(inp: Inputs, taps: np.ndarray, x: jax.Array, g: jax.Array,
                 *products: jax.Array) -> list[jax.Array]:
    """``w ∗ v`` for ``v`` in ``(x, g, x², g², *products)``, channels-first maps: the
    separable window ``taps`` along every spatial axis with reflect padding
    (:func:`~segloss_jax._src.windows.linear_filter`). With integer labels ``g`` is 0
    or 1, so ``w ∗ g² = w ∗ g``."""

    def mean(v):
        return linear_filter(v, taps, tuple(range(2, v.ndim)), padding="reflect")

    mu_g = mean(g)
    gg = mu_g if inp.labels is not None else mean(g * g)
    return [mean(x), mu_g, mean(x * x), gg, *(mean(v) for v in products)]


@jax.custom_vjp
def _weighted(weight: jax.Array, term: jax.Array) -> jax.Array:
    """``weight · term`` whose gradient reaches ``term`` only (``weight`` is a
    coefficient, as a ``stop_gradient``). Unlike ``stop_gradient``, the backward
    pass reads the weight as a residual, so a second derivative sees it change."""
    return weight * term


def _weighted_fwd(weight, term):
    return weight * term, weight


def _weighted_bwd(weight, cotangent):
    return jnp.zeros_like(weight), weight * cotangent


_weighted.defvjp(_weighted_fwd, _weighted_bwd)


@register()
def ssim_loss(
    logits: ArrayLike, labels: ArrayLike, *, window_size: int = 11, sigma: float = 1.5,
    activation: AnyActivation = "softmax", class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""SSIM loss: one minus the structural similarity of each class map with its target.

    .. math::

       \mathrm{SSIM} = \frac{(2\mu_p\mu_g + C_1)(2\sigma_{pg} + C_2)}
                            {(\mu_p^2 + \mu_g^2 + C_1)(\sigma_p^2 + \sigma_g^2 + C_2)},
       \qquad \ell_{i,c} = w_c\,(1 - \mathrm{SSIM}_{i,c})

    per pixel :math:`i` and class :math:`c` (Wang et al. 2004), with the local
    moments :math:`\mu = w * x`, :math:`\sigma^2_p = w * p^2 - \mu_p^2`,
    :math:`\sigma_{pg} = w * (pg) - \mu_p\mu_g` of the probability map :math:`p_c`
    and the target map :math:`g_c`; :math:`w` is the sampled Gaussian window of
    ``window_size`` taps per axis (standard deviation ``sigma``, normalised to sum
    1, separable; 3D images get the 3D window), applied after reflect padding
    (the edge sample not repeated, PyTorch's ``"reflect"``), so the SSIM map has
    the size of the image. :math:`C_1 = 0.01^2`, :math:`C_2 = 0.03^2` (data range
    1); no other constant in the denominator. The loss is the mean of
    :math:`\ell` over the valid pixels and the classes: 0 for a perfect
    prediction, at most 2 (1 − SSIM lies in [0, 2]).

    Excluded pixels (``where``, ``ignore_index``) are set to 0 in both ``p`` and
    ``g`` before the windows (so their logits and labels do not matter) and are
    left out of the mean; valid pixels near them see a zero there in both maps.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``), 1
        to 3 spatial axes, each larger than ``window_size // 2``.
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      window_size: odd number of window taps per axis (``>= 1``; 1 compares pixels
        alone).
      sigma: standard deviation of the Gaussian window, in pixels (a Python number).
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      class_weights: optional ``[C]`` weights scaling each class's terms.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      pixel_weights: optional ``[B, *spatial]`` (broadcastable) non-negative weight
        of each valid pixel's terms (not of the windows); no gradient
        (:doc:`/conventions`).
      normalize_weights: ``"mean"`` divides by the sum of the valid weights (once
        per class) instead of the number of valid elements.
      axis_name: mapped axis (``shard_map``/``pmap``) over which sums and counts
        are taken: the mean of the global batch (:doc:`/conventions`).
      reduction: ``"mean"`` over valid elements (pixels × classes), ``"sum"`` or
        ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial, C]`` for ``reduction="none"`` (0 at excluded
      pixels). Float32 (float64 for float64 inputs).

    Peers: kornia's ``ssim_loss(p, g, window_size, max_val=1.0, eps=0.0)`` (and
    ``ssim3d_loss`` in 3D), on channels-first probabilities, returns the mean of
    :math:`\mathrm{clamp}((1 - \mathrm{SSIM})/2, 0, 1)`: half of this loss (the
    clamp never acts, as 1 − SSIM lies in [0, 2]). This loss keeps Jadon's and
    BASNet's :math:`1 - \mathrm{SSIM}`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [-1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 0, 1]])
      >>> print(f"{sl.ssim_loss(logits, labels, window_size=3):.4f}")
      0.2296

    References:
      Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error
      visibility to structural similarity", IEEE TIP 2004; Qin et al., "BASNet:
      Boundary-aware salient object detection", CVPR 2019; Jadon, "A survey of loss
      functions for semantic segmentation", CIBCB 2020.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, pixel_weights=pixel_weights)
    checks.check_reduction(reduction)
    taps = _check_window(inp, window_size, sigma)
    p, g = _masked_maps(inp)
    mu_p, mu_g, pp, gg, pg = _local_means(inp, taps, p, g, p * g)
    var_p, var_g, cov = pp - mu_p**2, gg - mu_g**2, pg - mu_p * mu_g
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_p * mu_g + c1) * (2 * cov + c2)
            / ((mu_p**2 + mu_g**2 + c1) * (var_p + var_g + c2)))
    ssim = jnp.moveaxis(ssim, 1, -1)
    loss = (1 - ssim) * inp.per_class(class_weights)
    return reduce_pixels(loss, inp.valid, reduction, axis_name, weights=inp.weights,
                         normalize=normalize_weights)


@register()
def structural_similarity_loss(
    logits: ArrayLike, labels: ArrayLike, *, beta: float = 0.1, window_size: int = 3,
    sigma: float = 1.5, activation: AnyActivation = "softmax",
    class_weights: ArrayLike | None = None, where: ArrayLike | None = None,
    ignore_index: int | None = None, axis_name: AxisName = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Correlation maximized structural similarity loss (SSL) of Zhao et al. 2019.

    Cross-entropy restricted to the positions whose local structure disagrees most
    with the target's, weighted by that disagreement. A position is a pair of pixel
    :math:`n` and class :math:`c` whose cross-entropy term can be non-zero (see
    :math:`P` below); for these (equations numbered here in their order; see
    Sources):

    .. math::

       e_{n,c} = \left| \frac{y_{n,c} - \mu_{y_{n,c}} + C_4}{\sigma_{y_{n,c}} + C_4}
                 - \frac{\hat y_{n,c} - \mu_{\hat y_{n,c}} + C_4}
                        {\sigma_{\hat y_{n,c}} + C_4} \right| \qquad (1)

       f_{n,c} = \mathbb{1}\{ (n, c) \in P,\ e_{n,c} > \beta\, e_{\max} \},
       \qquad e_{\max} = \max_{(n, c) \in P} e_{n,c} \qquad (2)

       \ell_{ssl}(y_{n,c}, \hat y_{n,c}) = e_{n,c}\, f_{n,c}\,
           \ell_{ce}(y_{n,c}, \hat y_{n,c}) \qquad (3)

       L_{ssl} = \frac{1}{M} \sum_{n=1}^{N} \sum_{c=1}^{C}
           \ell_{ssl}(y_{n,c}, \hat y_{n,c}),
       \qquad M = \sum_{n=1}^{N} \sum_{c=1}^{C} f_{n,c} \qquad (4)

    :math:`y` is the target map :math:`g_c`, :math:`\hat y` the probability map
    :math:`p_c`; :math:`\mu` and :math:`\sigma` their local mean and standard
    deviation (:math:`\sigma^2 = w * x^2 - \mu^2`) over the window :math:`w`
    around :math:`n` (a sampled Gaussian of ``window_size`` taps per axis,
    standard deviation ``sigma``, normalised, reflect padding, as
    :func:`ssim_loss`); :math:`C_4 = 0.01`. :math:`e` is the distance between the
    two maps after each is standardised locally: it is small where the local
    correlation of prediction and target is high, so :math:`f` keeps the
    positions that break it: those whose error exceeds the fraction :math:`\beta`
    of the worst, :math:`e_{\max}` (with ``beta = 0.1``, every position above
    10 % of it). :math:`\ell_{ce}` is the class term of the cross-entropy,
    :math:`-g_c \log p_c` with softmax, the binary cross-entropy
    :math:`-g\log p - (1-g)\log(1-p)` with sigmoid (or probabilities). :math:`e`
    and :math:`f` are weight coefficients and carry no gradient (the paper's
    cross-entropy weights): the gradient is :math:`e f \nabla\ell_{ce} / M` (a
    custom VJP, so reverse mode only; its backward pass still reads :math:`e` as a
    function of the logits, so Hessian-vector products see it change).

    The positions :math:`P`. With sigmoid (or probabilities) every valid pixel
    and class: the binary cross-entropy of each can be non-zero. With softmax
    the term :math:`-g_c \log p_c` is 0 for every prediction where
    :math:`g_{n,c} = 0`, so :math:`P` holds the valid :math:`(n, c)` with
    :math:`g_{n,c} \ne 0`: with integer labels, the target class of each valid
    pixel. :math:`e_{\max}`, the selection and the count :math:`M` all run over
    :math:`P` (over the global batch with ``axis_name``), so :math:`M` counts
    exactly the selected terms and a :math:`\beta` near 1 keeps the worst term
    that can be non-zero. Under softmax with :math:`C` classes, a count over
    every channel would divide by about :math:`C` times as many positions: this
    loss is about :math:`C` times that one.

    The selection is strict, :math:`e > \beta e_{\max}`: a position with
    :math:`e = 0` has weight 0 and adds nothing to the sum, so it never counts in
    :math:`M` (with :math:`\ge`, ``beta = 0`` would count them and dilute the
    mean, and a perfect prediction would select every position). Hence
    :math:`\beta \in [0, 1)`: ``beta = 0`` keeps every position with a non-zero
    error; ``beta = 1`` would select nothing (no error exceeds :math:`e_{\max}`)
    and is refused.

    Sources: the paper's own text (arXiv 1910.08711) could not be consulted when
    this was written; the equations follow the transcription in Jadon's survey (its
    structure comparison, cross-entropy weight coefficient and mini-batch loss,
    numbered here (1)-(4), not with the paper's numbers). One transcription of the
    survey prints :math:`\mu_{\hat y}` in the last denominator of (1); the
    standard deviation :math:`\sigma_{\hat y}` is used, so that both maps are
    standardised alike, as the paper's description (local mean and standard
    deviation) says. The paper's window is not given there either: it is a
    keyword, 3 taps with ``sigma = 1.5`` by default.

    ``reduction="mean"`` divides by :math:`M` (0 when no position is hard, i.e.
    every error is 0, as for a perfect prediction); class weights scale the terms,
    not :math:`M`. Excluded pixels are set to 0 in both maps before the windows
    and are not positions.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      beta: :math:`\beta \in [0, 1)`, the fraction of :math:`e_{\max}` above which a
        position is hard (known at trace time to be checked).
      window_size: odd number of window taps per axis (``>= 1``).
      sigma: standard deviation of the Gaussian window (a Python number).
      activation: ``"softmax"`` (default), ``"sigmoid"`` or ``None``.
      class_weights: optional ``[C]`` weights scaling each class's terms.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      axis_name: mapped axis (``shard_map``/``pmap``) over which :math:`e_{\max}`,
        the sums and :math:`M` are taken (:doc:`/conventions`).
      reduction: ``"mean"`` (divided by :math:`M`), ``"sum"`` or ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial, C]`` for ``reduction="none"`` (the terms
      :math:`w_c e f \ell_{ce}`, 0 at excluded pixels).

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [-1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 1, 1]])
      >>> print(f"{sl.structural_similarity_loss(logits, labels):.4f}")
      0.7495

    References:
      Zhao, Wu, Chu, Hu & Cai, "Correlation maximized structural similarity loss
      for semantic segmentation", arXiv 1910.08711, 2019; Jadon, "A survey of loss
      functions for semantic segmentation", CIBCB 2020.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index)
    checks.check_reduction(reduction)
    checks.check_in_half_open(
        "beta", beta, 0.0, 1.0, why="(at 1 no error exceeds β·e_max = e_max, so no position "
        "would be selected and the loss would be 0 with zero gradient)")
    taps = _check_window(inp, window_size, sigma)
    y_hat, y = _masked_maps(inp)
    mu_hat, mu, sq_hat, sq = _local_means(inp, taps, y_hat, y)
    c4 = 0.01
    e = jnp.abs((y - mu + c4) / (_safe_sqrt(sq - mu**2) + c4)
                - (y_hat - mu_hat + c4) / (_safe_sqrt(sq_hat - mu_hat**2) + c4))  # (1)
    e = jnp.moveaxis(e, 1, -1)
    positions = inp.valid[..., None]  # P: the terms that can be non-zero
    if inp.activation == "softmax":
        positions = positions & (inp.target != 0)  # −g_c log p_c is 0 wherever g_c = 0
        ce = -inp.target * inp.log_probs
    else:
        ce = binary_ce(inp)
    positions = jnp.broadcast_to(positions, e.shape)
    e = jnp.where(positions, e, 0)  # e ≥ 0: the maximum over P
    e_max = max_across(jnp.max(lax.stop_gradient(e)), axis_name)  # a threshold only
    f = positions & (e > beta * e_max)  # (2)
    terms = _weighted(jnp.where(f, e, 0), ce) * inp.per_class(class_weights)  # (3)
    terms = jnp.where(f, terms, 0)
    if reduction == "none":
        return terms
    total = jnp.sum(terms)
    if reduction == "sum":
        return sum_across(total, axis_name)
    total, count = sum_across((total, jnp.sum(f, dtype=terms.dtype)), axis_name)
    return safe_div(total, count)  # (4)


def _safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(max(x, 0))`` with a zero (not infinite) derivative at 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1)), 0)


def _nacl_taps(kernel, kernel_size, sigma) -> np.ndarray:
    """The 1-D taps of NACL's separable window: the normalised box of ``kernel_size``
    taps (``"mean"``) or the unnormalised erf kernel of ``sigma`` (``"gaussian"``)."""
    checks.check_choice("kernel", kernel, ("mean", "gaussian"))
    if kernel == "mean":
        _check_odd("kernel_size", kernel_size)
        return box_taps(int(kernel_size))
    return erf_taps(_check_sigma(sigma))


@register()
def nacl_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha: float = 0.1, kernel: str = "mean",
    kernel_size: int = 3, sigma: float = 1.0, distance: str = "l1",
    activation: SoftmaxOnly = "softmax", class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None, ignore_index: int | None = None,
    pixel_weights: ArrayLike | None = None, normalize_weights: bool = False,
    axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Neighbour-aware calibration loss (NACL): cross-entropy plus a penalty pulling each
    logit towards the class proportions around its pixel.

    .. math::

       \ell_i = -\sum_c w_c\, g_{i,c} \log p_{i,c}
                + \frac{\alpha}{C} \sum_c w_c\, d\big(u_{i,c} - x_{i,c}\big),
       \qquad u_c = K * g_c

    per valid pixel :math:`i`, with :math:`x` the raw logits, :math:`p =
    \mathrm{softmax}(x)`, :math:`g` the one-hot (or dense) target and
    :math:`d(t) = |t|` (``"l1"``; its gradient is 0 at a tie) or :math:`t^2`
    (``"l2"``). :math:`u_c` is the target's share of class :math:`c` around the
    pixel: :math:`g_c` filtered by :math:`K` with zero padding, so :math:`u` has the
    size of the image. :math:`K` is the normalised box of ``kernel_size`` taps per
    axis (``"mean"``: weights :math:`1/k^d`) or the separable, unnormalised erf
    kernel (``"gaussian"``; ``kernel_size`` unused)

    .. math::

       K_j = \tfrac12\left[\operatorname{erf}\frac{j + 1/2}{\sigma\sqrt2}
             - \operatorname{erf}\frac{j - 1/2}{\sigma\sqrt2}\right],
       \qquad |j| \le \lfloor \max(4\sigma, 1/2) + 1/2 \rfloor

    per axis (MONAI's ``GaussianFilter(approx="erf")``). The penalty is a linear
    (``"l1"``) constraint on the logits, not on the probabilities: the logits of a
    pixel inside a class region are pulled to 1 for that class and 0 for the
    others, near a boundary to the mixture of the neighbourhood, which keeps the
    softmax from saturating there (the calibration of the paper).

    Excluded pixels (``where``, ``ignore_index``) are 0 in the target before the
    window (they are no class's neighbours) and count in no mean; their logits do
    not matter. ``class_weights`` scale each class's terms, cross-entropy and
    penalty alike. The filter carries no gradient to the logits: the target side
    is a constant. Large logits make the ``"l2"`` penalty overflow float32 from
    about :math:`|x| \approx 10^{19}` (as the peer's).

    Args:
      logits: ``[B, *spatial, C]`` logits, ``C >= 2``, 1 to 3 spatial axes.
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets.
      alpha: :math:`\alpha \ge 0`, the weight of the penalty.
      kernel: ``"mean"`` (box) or ``"gaussian"`` (erf kernel).
      kernel_size: odd number of box taps per axis (``"mean"`` only); even is a
        ``ValueError``.
      sigma: standard deviation of the erf kernel in pixels (``"gaussian"`` only).
      distance: ``"l1"`` or ``"l2"``.
      activation: ``"softmax"`` only (the penalty reads the logits).
      class_weights: optional ``[C]`` weights scaling each class's terms.
      where: optional bool ``[B, *spatial]`` mask of pixels that count.
      ignore_index: integer label value treated as ``where=False``.
      pixel_weights: optional ``[B, *spatial]`` (broadcastable) non-negative weight
        of each valid pixel's term (not of the window); no gradient
        (:doc:`/conventions`).
      normalize_weights: ``"mean"`` divides by the sum of the valid weights
        instead of the number of valid pixels.
      axis_name: mapped axis (``shard_map``/``pmap``) over which sums and counts
        are taken: the mean of the global batch (:doc:`/conventions`).
      reduction: ``"mean"`` over valid pixels, ``"sum"`` or ``"none"``.

    Returns:
      A scalar, or ``[B, *spatial]`` for ``reduction="none"`` (0 at excluded pixels).

    Peer: MONAI's ``NACLLoss(classes=C, dim=d, kernel_size=k, kernel_ops=kernel,
    distance_type=distance, alpha=α, sigma=σ)`` on channels-first logits equals
    this with integer labels and no excluded pixel (its cross-entropy and penalty
    are both means over every pixel, the penalty also over the classes); it has no
    ``ignore_index``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [-1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 0, 1]])
      >>> print(f"{sl.nacl_loss(logits, labels):.4f}")
      0.3374

    References:
      Murugesan, Adiga Vasudeva, Liu, Lombaert, Ben Ayed & Dolz, "Trust your
      neighbours: penalty-based constraints for model calibration", MICCAI 2023;
      Murugesan et al., "Neighbor-aware calibration of segmentation networks with
      penalty-based constraints", arXiv 2401.14487.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index, allowed_activations=activations_of(SoftmaxOnly),
                  pixel_weights=pixel_weights)
    checks.check_reduction(reduction)
    checks.check_choice("distance", distance, ("l1", "l2"))
    checks.check_nonnegative("alpha", alpha)
    taps = _nacl_taps(kernel, kernel_size, sigma)
    g = jnp.where(inp.valid[..., None], inp.target, 0)
    u = linear_filter(g, taps, tuple(range(1, g.ndim - 1)), padding="zero")
    t = u - inp.x
    dist = t * jnp.sign(t) if distance == "l1" else t * t  # |t|: derivative 0 at a tie
    weights = inp.per_class(class_weights)
    ce = categorical_ce(inp, weights * inp.target,
                        unit_mass=class_weights is None and inp.labels is not None)
    penalty = jnp.mean(weights * dist, axis=-1)
    return reduce_pixels(ce + alpha * penalty, inp.valid, reduction, axis_name,
                         weights=inp.weights, normalize=normalize_weights)
