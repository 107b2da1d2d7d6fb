r"""Class and pixel weights from label statistics.

:func:`inverse_frequency_weights` counts the labels of a sample of batches and
returns ``[C]`` weights for the ``class_weights`` keyword of every loss. It is
jit-able with a static ``num_classes`` and pure (no host round trip), so it can
run on device over a large sample. :func:`unet_weight_map` computes U-Net's border
weights from instance labels, in the graph (exact distance transforms), for the
``pixel_weights`` keyword of the pixel-wise losses.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from segloss_jax._src import checks
from segloss_jax._src.distance import batched_edt, batched_edt_within
from segloss_jax._src.kernel import kernel
from segloss_jax._src.metrics.counts import check_labels, counted, float_dtype
from segloss_jax._src.sampling import Sampling

__all__ = ["inverse_frequency_weights", "unet_weight_map"]


def inverse_frequency_weights(
    labels: chex.Array,
    num_classes: int,
    *,
    power: float = 1.0,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Class weights from label frequencies: rare classes weigh more.

    .. math::

       w_c = \frac{f_c^{-k}}{\frac{1}{|P|} \sum_{j \in P} f_j^{-k}} \quad (c \in P),
       \qquad f_c = \frac{n_c}{\sum_j n_j}

    with :math:`n_c` the number of valid pixels labelled :math:`c`, :math:`k` the
    ``power`` and :math:`P` the classes present in ``labels``. The weights of the
    present classes average 1, so a weighted cross-entropy keeps its scale;
    ``power=0.5`` gives the square-root weights of Wong et al. (the
    :func:`exp_log_loss` paper), ``power=1`` plain inverse frequency (the
    "balanced" weights of scikit-learn, up to a common factor).

    A class that never occurs in ``labels`` has no frequency: it gets the
    largest weight of the present classes (it is at least as rare as the
    rarest one seen), never ``inf``. Estimate the weights from enough batches
    that every class occurs. With no valid pixel at all, every weight is 1.

    Args:
      labels: integer class indices of any shape, e.g. ``[N, *spatial]`` for a
        sample of batches.
      num_classes: number of classes ``C >= 2`` (static).
      power: exponent :math:`k \ge 0` (0 gives all ones).
      where: optional bool or integer mask (non-zero = counted), broadcastable
        to ``labels``.
      ignore_index: label value whose pixels are not counted.

    Returns:
      ``[C]`` float32 non-negative weights, usable as ``class_weights`` of
      every loss.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 255])  # class 3 absent
      >>> print(sl.inverse_frequency_weights(labels, 4, ignore_index=255))
      [0.3 0.9 1.8 1.8]

    References:
      King & Zeng, "Logistic regression in rare events data", Political
      Analysis 2001 (scikit-learn's ``class_weight="balanced"``); Wong et al.,
      "3D segmentation with exponential logarithmic loss for highly unbalanced
      object sizes", MICCAI 2018.
    """
    labels = check_labels(labels, num_classes, where, ignore_index)
    checks.check_nonnegative("power", power)
    return _weights_kernel(labels, where, jnp.asarray(power, float_dtype()),
                           num_classes=num_classes, ignore_index=ignore_index)


@kernel
def _weights_kernel(labels, where, power, *, num_classes, ignore_index):
    labels, valid = counted(labels, num_classes, where, ignore_index)
    index = jnp.where(valid, labels, num_classes)
    counts = jnp.bincount(index.ravel(), length=num_classes + 1)[:num_classes]
    counts = counts.astype(power.dtype)
    present = counts > 0
    # In logs: f^-k overflows float32 for rare classes and large powers.
    log_w = -power * (jnp.log(jnp.where(present, counts, 1)) - jnp.log(jnp.sum(counts)))
    log_w = jnp.where(present, log_w, -jnp.inf)
    n_present = jnp.sum(present)
    log_mean = jax.nn.logsumexp(log_w) - jnp.log(jnp.maximum(n_present, 1).astype(power.dtype))
    w = jnp.exp(log_w - jnp.where(n_present > 0, log_mean, 0))
    w = jnp.where(present, w, jnp.max(w))
    return jnp.where(n_present > 0, w, 1)


def unet_weight_map(
    instances: chex.Array, *, w0: float = 10.0, sigma: float = 5.0,
    class_weights: Sequence[float] | str = (1.0, 1.0), sampling: Sampling = None,
    max_instances: int | None = None,
) -> jax.Array:
    r"""U-Net's weight map (Ronneberger et al. 2015, eq. 2) from instance labels.

    .. math::

       w(x) = w_c(x) + w_0 \exp\left(-\frac{(d_1(x) + d_2(x))^2}{2\sigma^2}\right)
              [\text{instances}(x) = 0]

    per image, with :math:`d_1 \le d_2` the distances from :math:`x` to the nearest
    and the second nearest instance (``distance_transform_edt(instances != k,
    sampling)`` for each instance :math:`k`, the exact Euclidean transform of
    :func:`~segloss_jax.distance_transform_edt`). The border term lives on the
    background only, and is 0 in an image with fewer than two instances. The class
    term :math:`w_c` is ``class_weights[0]`` on the background and
    ``class_weights[1]`` on instance elements, or, with ``"balanced"``,
    :math:`(1/n_k) / \max_j (1/n_j)` per image over the background and the
    foreground present (:math:`n` their element counts: the rarer side weighs 1).

    Distances only matter up to :math:`\sigma\sqrt{2 \ln 10^{12}} \approx 7.4\sigma`
    (beyond it the border term is below :math:`10^{-12} w_0`): the transforms are exact
    up to that radius and skip the rest of each line (whole lines when ``sigma`` or
    ``sampling`` is traced). A label-side helper: no gradient, jit-able
    (``max_instances`` static), 2D and 3D (any spatial rank 1-3).
    Connected-component labelling is the caller's: touching cells must carry
    different ids. Feed the result to ``pixel_weights``.

    Args:
      instances: integer ``[B, *spatial]``: 0 the background, ids > 0 the instances
        (not necessarily consecutive).
      w0: :math:`w_0 \ge 0`, the border weight (the paper's 10).
      sigma: :math:`\sigma > 0` in units of ``sampling`` (the paper's 5 pixels).
      class_weights: ``(w_background, w_foreground)`` or ``"balanced"``.
      sampling: voxel spacing per spatial axis (scalar or sequence).
      max_instances: the most instances in one image (static). ``None``: counted
        from ``instances``, which must then be concrete (not under ``jit``). Under
        ``checkify``, an image with more instances is reported; otherwise the
        instances with the largest ids beyond the first ``max_instances`` are
        ignored.

    Returns:
      Float32 ``[B, *spatial]`` weights.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> instances = jnp.array([[1, 1, 0, 0, 2, 2]])
      >>> print(sl.unet_weight_map(instances, w0=10.0, sigma=1.0, max_instances=2))
      [[1.      1.      1.11109 1.11109 1.      1.     ]]

    References:
      Ronneberger, Fischer & Brox, "U-Net: convolutional networks for biomedical
      image segmentation", MICCAI 2015, eq. 2.
    """
    if not (jnp.issubdtype(jnp.result_type(instances), jnp.integer)
            and jnp.result_type(instances) != jnp.bool_):
        raise TypeError("`instances` must be an integer array [B, *spatial] (0 = background), "
                        f"got dtype {jnp.result_type(instances)}.")
    instances = jnp.asarray(instances)
    if not 2 <= instances.ndim <= 4:
        raise ValueError("`instances` must have shape [B, *spatial] with 1 to 3 spatial axes, "
                         f"got shape {instances.shape}.")
    checks.check_nonnegative("w0", w0)
    checks.check_positive("sigma", sigma)
    balanced = isinstance(class_weights, str)
    if balanced:
        checks.check_choice("class_weights", class_weights, ("balanced",))
        pair = jnp.ones((2,), float_dtype())
    else:
        checks.check_class_vector(class_weights, 2, "class_weights")
        pair = jnp.asarray(class_weights, float_dtype())
    if max_instances is None:
        if isinstance(instances, jax.core.Tracer):
            raise TypeError("`max_instances` must be given under `jit` (a static int bounding "
                            "the instances of one image).")
        host = np.asarray(instances).reshape(len(instances), -1)
        max_instances = max((len(np.unique(row[row > 0])) for row in host), default=0)
    if not isinstance(max_instances, numbers.Integral) or max_instances < 0:
        raise ValueError(f"`max_instances` must be a non-negative int, got {max_instances!r}.")
    return _unet_kernel(instances, pair, jnp.asarray(w0, float_dtype()),
                        jnp.asarray(sigma, float_dtype()), sampling,
                        max_instances=max(int(max_instances), 1), balanced=balanced,
                        reach=_border_reach(sigma, sampling, instances.ndim - 1))


def _border_reach(sigma, sampling, spatial_ndim: int) -> tuple[int, ...] | None:
    """Steps per axis beyond which a distance leaves the border term below ``1e-12·w0``:
    ``d1 + d2 > σ·√(2 ln 10¹²)`` makes ``exp(−(d1 + d2)²/2σ²) < 10⁻¹²``, so each distance
    is needed exactly only up to that radius. ``None`` when σ or the spacing is traced."""
    try:
        radius = float(sigma) * math.sqrt(2 * math.log(1e12))
        spacing = np.broadcast_to(np.asarray(1.0 if sampling is None else sampling, float),
                                  (spatial_ndim,))
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None
    return tuple(int(math.ceil(radius / step)) + 1 for step in spacing)


@kernel
def _unet_kernel(instances, pair, w0, sigma, sampling, *, max_instances: int, balanced: bool,
                 reach: tuple[int, ...] | None):
    spatial_ndim = instances.ndim - 1
    flat = instances.reshape(instances.shape[0], -1)
    # The ids of each image, ascending; `none` fills the slots of absent instances.
    none = jnp.iinfo(instances.dtype).max
    ids = jax.vmap(lambda row: jnp.unique(jnp.where(row > 0, row, none),
                                          size=max_instances + 1, fill_value=none))(flat)
    count = jnp.sum(ids < none, axis=1)
    checkify.debug_check(jnp.all(count <= max_instances),
                         "`instances` has an image with more than `max_instances` instances.")
    ids = ids[:, :max_instances].reshape((-1, max_instances) + (1,) * spatial_ndim)
    present = ids < none
    # [B, K, *spatial]: the distance to each instance (inf for an absent slot).
    masks = instances[:, None] != ids
    # Beyond `reach` a distance only enters the border term below 1e-12·w0: the
    # transform is exact up to it (the whole line when σ or the spacing is traced).
    d = (batched_edt(masks, spatial_ndim=spatial_ndim, sampling=sampling) if reach is None
         else batched_edt_within(masks, spatial_ndim=spatial_ndim, sampling=sampling,
                                 reach=reach))
    d = jnp.where(present, d, jnp.inf)
    d1 = jnp.min(d, axis=1)
    first = jnp.argmin(d, axis=1)
    d2 = jnp.min(jnp.where(jnp.arange(max_instances).reshape((1, -1) + (1,) * spatial_ndim)
                           == first[:, None], jnp.inf, d), axis=1)
    background = instances == 0
    border = w0 * jnp.exp(-jnp.square(d1 + d2) / (2 * jnp.square(sigma)))
    if balanced:
        axes = tuple(range(1, instances.ndim))
        n_bg = jnp.sum(background, axis=axes, keepdims=True).astype(pair.dtype)
        n_fg = jnp.sum(~background, axis=axes, keepdims=True).astype(pair.dtype)
        rarest = jnp.minimum(jnp.where(n_bg > 0, n_bg, jnp.inf), jnp.where(n_fg > 0, n_fg, jnp.inf))
        w_c = rarest / jnp.where(background, n_bg, n_fg)
    else:
        w_c = jnp.where(background, pair[0], pair[1])
    return jax.lax.stop_gradient(w_c + jnp.where(background, border, 0))
