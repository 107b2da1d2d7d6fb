r"""Surface distances between two binary masks.

Contract: masks are ``[*spatial]`` (1 to 3 axes; ``vmap`` for batches and
classes), bool or 0/1 integers. Every function is pure, jit-able and carries no
gradient; values are float32 (float64 for float64 ``sampling`` under x64).

* :func:`hausdorff_distance` and :func:`average_surface_distance` compare the
  surfaces of two binary masks, built on
  :func:`~segloss_jax._src.distance.distance_transform_edt`;
  :func:`surface_dice` counts the surface elements within a tolerance of the
  other surface.
"""

from __future__ import annotations

import numbers

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import checks
from segloss_jax._src.distance import distance_transform_edt
from segloss_jax._src.kernel import kernel
from segloss_jax._src.sampling import Sampling, join_sampling, sampling_args
from segloss_jax._src.windows import contour

__all__ = ["average_surface_distance", "hausdorff_distance", "surface_dice"]



def _check_masks(pred_mask: chex.Array, mask: chex.Array) -> tuple[jax.Array, jax.Array]:
    pred_mask, mask = jnp.asarray(pred_mask), jnp.asarray(mask)
    if pred_mask.shape != mask.shape:
        raise ValueError(
            f"`pred_mask` has shape {pred_mask.shape} but `mask` has shape {mask.shape}; "
            f"they must match.")
    if not 1 <= mask.ndim <= 3:
        raise ValueError(
            f"`mask` must be one mask [*spatial] with 1 to 3 axes, got shape {mask.shape}; "
            f"vmap over batch and class axes (see the examples).")
    return pred_mask.astype(bool), mask.astype(bool)


def _directed_distances(pred_mask, mask, sampling):
    """Surfaces of both masks and, on each, the distance to the other's surface.

    A surface is :func:`~segloss_jax._src.windows.contour` with the image
    border outside the mask: ``m & ~scipy.ndimage.binary_erosion(m)``.
    """
    surf_p, surf_g = (contour(m, m.ndim, border_outside=True) for m in (pred_mask, mask))
    # One batched transform: distance to the nearest surface element of g, then of p.
    edt = jax.vmap(lambda m: distance_transform_edt(m, sampling=sampling))
    to_g, to_p = edt(jnp.stack([~surf_g, ~surf_p]))
    return surf_p, surf_g, to_g, to_p


# Compiled as one program: run eagerly op by op, the transform's loops would be
# re-traced at every call (see benchmarks/RESULTS.md).
@kernel
def _surface_metric(pred_mask, mask, percentile, traced_sampling, *, static_sampling, wide,
                    use_max, symmetric):
    """Hausdorff (``symmetric is None``) or average surface distance."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    surf_p, surf_g, to_g, to_p = _directed_distances(pred_mask, mask, sampling)
    n_p, n_g = jnp.sum(surf_p), jnp.sum(surf_g)
    if symmetric is None:
        q = 100 if use_max else percentile
        # Both directions in one batched selection loop.
        directed = jax.vmap(_masked_percentile, in_axes=(0, 0, None))(
            jnp.stack([to_g, to_p]), jnp.stack([surf_p, surf_g]), q)
        value = jnp.max(directed)
    else:
        total = jnp.sum(jnp.where(surf_p, to_g, 0))
        count = n_p
        if symmetric:
            total = total + jnp.sum(jnp.where(surf_g, to_p, 0))
            count = count + n_g
        value = total / jnp.maximum(count, 1).astype(total.dtype)
    return _empty_convention(value, n_p, n_g)


def _empty_convention(value, n_p, n_g):
    """NaN when both surfaces are empty, ``inf`` when exactly one is."""
    value = jnp.where((n_p > 0) & (n_g > 0), value, jnp.inf)
    return jnp.where((n_p == 0) & (n_g == 0), jnp.nan, value)


def _masked_percentile(values: jax.Array, keep: jax.Array, q) -> jax.Array:
    """``np.percentile(values[keep], q)`` (linear interpolation) with static shapes.

    ``values`` are non-negative (distances). The two order statistics the
    interpolation needs are found by bisection on the float bit patterns, which
    order like the values for non-negative floats: 31 masked counts over the
    array (63 for float64), each one fused pass, instead of a sort (faster on
    CPU: see benchmarks/RESULTS.md).
    """
    if isinstance(q, numbers.Real) and q == 100:
        return jnp.max(jnp.where(keep, values, -jnp.inf))
    n = jnp.sum(keep)
    pos = jnp.asarray(q, values.dtype) / 100 * (jnp.maximum(n, 1) - 1).astype(values.dtype)
    below = jnp.floor(pos)
    rank = below.astype(jnp.int32)
    v_lo = _order_statistic(values, keep, rank)
    # The next order statistic: v_lo again if it repeats, else the next larger value.
    repeats = jnp.sum(keep & (values <= v_lo)) >= rank + 2
    v_hi = jnp.where(repeats, v_lo, jnp.min(jnp.where(keep & (values > v_lo), values, jnp.inf)))
    v_hi = jnp.where(rank + 1 < n, v_hi, v_lo)
    return v_lo + (pos - below) * (v_hi - v_lo)


def _order_statistic(values: jax.Array, keep: jax.Array, rank: jax.Array) -> jax.Array:
    """The ``rank``-th smallest (0-based) of ``values[keep]``, for non-negative values."""
    int_type = jnp.int64 if values.dtype == jnp.float64 else jnp.int32
    bits = jax.lax.bitcast_convert_type(values, int_type)
    bits = jnp.where(keep, bits, jnp.iinfo(int_type).max)

    def halve(_, bounds):
        lo, hi = bounds  # the answer's bit pattern lies in [lo, hi]
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(bits <= mid) >= rank + 1
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    top = jnp.max(jnp.where(keep, bits, 0))
    steps = 8 * values.dtype.itemsize - 1
    # The lower bound starts from `top` (zero), so that inside shard_map the loop carry
    # varies over the same mesh axes as the data.
    _, found = jax.lax.fori_loop(0, steps, halve, (jnp.zeros_like(top), top))
    return jax.lax.bitcast_convert_type(found, values.dtype)


def hausdorff_distance(
    pred_mask: chex.Array,
    mask: chex.Array,
    *,
    percentile: float = 100.0,
    sampling: Sampling = None,
) -> jax.Array:
    r"""Hausdorff distance between the surfaces of two binary masks (HD, HD95, ...).

    .. math::

       \mathrm{HD}_q(A, B) = \max\Big( P_q\{ d(a, \partial B) : a \in \partial A \},\;
                                      P_q\{ d(b, \partial A) : b \in \partial B \} \Big)

    with :math:`\partial A` the surface of mask :math:`A`, :math:`d(x, \partial B)`
    the Euclidean distance (in units of ``sampling``) from :math:`x` to the nearest
    element of :math:`\partial B`, and :math:`P_q` the :math:`q`-th percentile
    (``np.percentile``'s linear interpolation, found by bisection rather than a
    sort). ``percentile=100`` is the classic Hausdorff distance (the larger
    directed maximum), ``95`` the robust HD95.

    The surface of a mask is its elements with at least one face neighbour
    (4-connectivity in 2D, 6 in 3D) outside the mask; outside the array counts as
    outside, so mask elements on the image border are surface
    (``m & ~scipy.ndimage.binary_erosion(m)`` with its default cross structure and
    ``border_value=0``). Distances come from
    :func:`~segloss_jax._src.distance.distance_transform_edt` of each surface's
    complement; the percentile selects among the surface entries of the
    fixed-size map, so shapes are static and it runs under ``jit``.

    Empty masks: NaN when both masks are empty (nothing to compare), ``inf`` when
    exactly one is.

    Args:
      pred_mask: ``[*spatial]`` predicted mask (1 to 3 axes; nonzero = foreground).
        ``vmap`` over batch and class axes.
      mask: ``[*spatial]`` target mask.
      percentile: :math:`q \in [0, 100]`; 100 (a static value) takes the maximum
        without sorting.
      sampling: voxel spacing, one float for all axes or one per axis.

    Returns:
      A float32 scalar.

    Matches MONAI ``compute_hausdorff_distance(percentile=q, directed=False)``
    (``HausdorffDistanceMetric``) on one-hot masks, including its empty-mask
    conventions (NaN when both are empty, ``inf`` when one is). medpy's ``hd95``
    takes the percentile of both directed sets pooled, which can differ for
    ``q < 100``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> a = jnp.zeros((6, 6), bool).at[1:3, 1:3].set(True)
      >>> b = jnp.zeros((6, 6), bool).at[1:3, 1:5].set(True)
      >>> print(sl.hausdorff_distance(a, b), sl.hausdorff_distance(a, b, sampling=(1.0, 0.5)))
      2.0 1.0
      >>> batch = jnp.stack([a, b])  # vmap for a batch of mask pairs
      >>> print(jax.jit(jax.vmap(sl.hausdorff_distance))(batch, batch[::-1]))
      [2. 2.]

    References:
      Huttenlocher, Klanderman & Rucklidge, "Comparing images using the Hausdorff
      distance", IEEE TPAMI 1993; Taha & Hanbury, "Metrics for evaluating 3D
      medical image segmentation: analysis, selection, and tool", BMC Medical
      Imaging 2015.
    """
    pred_mask, mask = _check_masks(pred_mask, mask)
    checks.check_in_range("percentile", percentile, 0.0, 100.0)
    use_max = isinstance(percentile, numbers.Real) and percentile == 100
    return _surface_metric(pred_mask, mask, jnp.asarray(percentile, jnp.float32),
                           use_max=use_max, symmetric=None, **sampling_args(sampling))


def average_surface_distance(
    pred_mask: chex.Array,
    mask: chex.Array,
    *,
    symmetric: bool = True,
    sampling: Sampling = None,
) -> jax.Array:
    r"""Average distance between the surfaces of two binary masks.

    Symmetric (the ASSD of segmentation challenges):

    .. math::

       \mathrm{ASSD}(A, B) = \frac{\sum_{a \in \partial A} d(a, \partial B)
                                  + \sum_{b \in \partial B} d(b, \partial A)}
                                 {|\partial A| + |\partial B|}

    and with ``symmetric=False`` the directed mean from the prediction,
    :math:`\frac{1}{|\partial A|}\sum_{a \in \partial A} d(a, \partial B)`.
    Surfaces and distances as in :func:`hausdorff_distance`, with ``A`` the
    prediction and ``B`` the target.

    Empty masks: NaN when both masks are empty, ``inf`` when exactly one is.

    Args:
      pred_mask: ``[*spatial]`` predicted mask (1 to 3 axes; nonzero = foreground).
      mask: ``[*spatial]`` target mask.
      symmetric: average over both surfaces (default) or over the prediction's.
      sampling: voxel spacing, one float for all axes or one per axis.

    Returns:
      A float32 scalar.

    Matches MONAI ``compute_average_surface_distance(symmetric=...)``
    (``SurfaceDistanceMetric``), including its empty-mask conventions; note
    MONAI's default is ``symmetric=False``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> a = jnp.zeros((6, 6), bool).at[1:3, 1:3].set(True)
      >>> b = jnp.zeros((6, 6), bool).at[1:3, 1:5].set(True)
      >>> print(sl.average_surface_distance(a, b))
      0.5
      >>> print(sl.average_surface_distance(a, b, symmetric=False))
      0.0

    References:
      Heimann et al., "Comparison and evaluation of methods for liver
      segmentation from CT datasets", IEEE TMI 2009; Taha & Hanbury, BMC Medical
      Imaging 2015.
    """
    pred_mask, mask = _check_masks(pred_mask, mask)
    return _surface_metric(pred_mask, mask, None, use_max=False, symmetric=bool(symmetric),
                           **sampling_args(sampling))



# Compiled as one program, like `_surface_metric`.
@kernel
def _surface_dice(pred_mask, mask, tolerance, traced_sampling, *, static_sampling, wide):
    """Normalized surface Dice of two masks (see :func:`surface_dice`)."""
    sampling = join_sampling(static_sampling, traced_sampling, wide)
    surf_p, surf_g, to_g, to_p = _directed_distances(pred_mask, mask, sampling)
    n_p, n_g = jnp.sum(surf_p), jnp.sum(surf_g)
    tau = jnp.asarray(tolerance, to_g.dtype)
    # |S_p ∩ N_τ(S_g)| + |S_g ∩ N_τ(S_p)|: surface elements within τ of the other surface.
    close = jnp.sum(surf_p & (to_g <= tau)) + jnp.sum(surf_g & (to_p <= tau))
    value = close.astype(to_g.dtype) / jnp.maximum(n_p + n_g, 1).astype(to_g.dtype)
    value = jnp.where((n_p > 0) & (n_g > 0), value, 0)  # one surface empty: nothing matches
    return jnp.where((n_p == 0) & (n_g == 0), jnp.nan, value)


def surface_dice(
    pred_mask: chex.Array,
    mask: chex.Array,
    *,
    tolerance: float,
    sampling: Sampling = None,
) -> jax.Array:
    r"""Normalized surface Dice (NSD) of two binary masks at tolerance :math:`\tau`.

    .. math::

       \mathrm{NSD}_\tau(A, B) = \frac{|\partial A \cap N_\tau(\partial B)|
                                      + |\partial B \cap N_\tau(\partial A)|}
                                     {|\partial A| + |\partial B|}

    with :math:`\partial A` the surface of mask :math:`A` (the prediction),
    :math:`\partial B` that of :math:`B` (the target), :math:`|\cdot|` a number
    of surface elements, and :math:`N_\tau(\partial B) = \{x : d(x, \partial B)
    \le \tau\}` the elements within distance :math:`\tau` (in units of
    ``sampling``) of the other surface. It is the fraction of both surfaces
    that lies within the tolerance of the other one, in ``[0, 1]``.

    Surfaces and distances are those of :func:`hausdorff_distance`: mask elements
    with a face neighbour (4-connectivity in 2D, 6 in 3D) outside the mask, the
    outside of the array counting as outside (``m & ~scipy.ndimage.binary_erosion(m)``
    with ``border_value=0``); :math:`d` from
    :func:`~segloss_jax._src.distance.distance_transform_edt` of the other
    surface's complement, with ``sampling``. A distance exactly :math:`\tau`
    counts.

    Empty masks: NaN when both surfaces are empty (nothing to compare), 0 when
    exactly one is.

    Args:
      pred_mask: ``[*spatial]`` predicted mask (1 to 3 axes; nonzero = foreground,
        bool or 0/1 integers). ``vmap`` over batch and class axes.
      mask: ``[*spatial]`` target mask.
      tolerance: :math:`\tau \ge 0`, the accepted distance in units of ``sampling``
        (a float or a traced scalar).
      sampling: voxel spacing, one float for all axes or one per axis.

    Returns:
      A float32 scalar in ``[0, 1]``, or NaN (float64 for float64 ``sampling``
      under x64).

    Raises:
      ValueError: the masks' shapes differ or have more than 3 axes, ``tolerance``
        is negative (when known at trace time), or ``sampling`` is invalid.

    Matches MONAI ``compute_surface_dice(class_thresholds=[τ], spacing=...,
    use_subvoxels=False)`` (``SurfaceDiceMetric``) on the one-hot channel of a
    class, including its empty conventions (NaN, 0): MONAI takes the surface as
    ``binary_erosion(m) ^ m`` with scipy's default cross structure after
    cropping to the foreground with a margin of 1, padding with background
    where the margin leaves the image, so its surface is this one. MONAI drops
    the background channel by default (``include_background=False``); here you
    choose the masks. The DeepMind ``surface-distance`` package (and MONAI with
    ``use_subvoxels=True``) measures surfaces by surfel areas on the grid
    between voxels and weighs each surfel by its area, so its values differ from
    these element counts, most for coarse or anisotropic grids.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> a = jnp.zeros((6, 6), bool).at[1:3, 1:3].set(True)
      >>> b = jnp.zeros((6, 6), bool).at[1:3, 1:5].set(True)
      >>> print(sl.surface_dice(a, b, tolerance=0.0), sl.surface_dice(a, b, tolerance=1.0))
      0.6666667 0.8333333
      >>> print(sl.surface_dice(a, b, tolerance=2.0))
      1.0
      >>> batch = jnp.stack([a, b])  # vmap for a batch of mask pairs
      >>> print(jax.jit(jax.vmap(lambda p, g: sl.surface_dice(p, g, tolerance=1.0)))(batch, batch))
      [1. 1.]

    References:
      Nikolov et al., "Clinically applicable segmentation of head and neck anatomy
      for radiotherapy: deep learning algorithm development and validation
      study", Journal of Medical Internet Research 2021 (arXiv:1809.04430).
    """
    pred_mask, mask = _check_masks(pred_mask, mask)
    checks.check_nonnegative("tolerance", tolerance)
    return _surface_dice(pred_mask, mask, tolerance, **sampling_args(sampling))
