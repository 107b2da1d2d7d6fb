r"""Exact Euclidean distance transforms, computed in the graph.

Contract: a mask is ``[*spatial]`` with 1 to 3 spatial axes, of any dtype
(nonzero = foreground); distances are in units of ``sampling`` (voxel spacing
per axis, 1 by default) and come back as float32 (float64 when x64 is enabled
and ``mask`` or ``sampling`` is float64), with no gradient. Everything is pure
JAX with static shapes: it runs under ``jit`` and ``vmap`` with no host
callback. :func:`batched_edt` and :func:`batched_signed_distance` are the
internal entry points for the losses; they treat leading axes as a batch
without ``vmap``.

Algorithm. The squared EDT is separable (Saito & Toriwaki; Felzenszwalb &
Huttenlocher): a first pass along one axis gives the squared 1D distance to the
nearest zero of each line (two ``lax.scan`` sweeps, linear), and each further
axis replaces ``f`` by ``min_j f[j] + (s·(i − j))²`` along its lines.

For that min-plus step three exact strategies were measured (``python -m
benchmarks.bench_distance --strategies``; numbers in benchmarks/RESULTS.md): a
loop over ``j`` with a running minimum, a broadcast ``[lines, i, j]`` in chunks
(the same O(n²)-per-line brute force), and the lower envelope with
``lax.scan``. The chosen loop keeps the lines in the fast (minor) dimension and
reads each source row once, so every step is one fused, vectorised elementwise
update with O(size) memory (no ``[n, n]`` broadcast is ever built). The lower
envelope does O(n) work per line but its per-line stacks need a ``while_loop``
per position with gathers and scatters, which costs more than it saves at
these sizes. The brute force costs ``n_k`` updates per element for each axis
``k`` after the first, so the first pass runs along the longest axis; its time
does not depend on the mask. Tiling the lines into cache-sized chunks did not
help; the comparison with scipy is in benchmarks/RESULTS.md too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from segloss_jax._src.kernel import kernel
from segloss_jax._src.sampling import Sampling, checked_spacing
from segloss_jax._src.windows import check_spatial_ndim, spatial_axes

__all__ = ["distance_transform_edt", "signed_distance"]


def distance_transform_edt(mask: jax.Array, *, sampling: Sampling = None) -> jax.Array:
    r"""Exact Euclidean distance from each foreground element to the background.

    .. math::

        D(x) = \min_{y \,:\, m(y) = 0} \Big( \sum_k s_k^2 (x_k - y_k)^2 \Big)^{1/2}

    where :math:`m` is the mask (nonzero = foreground) and :math:`s_k` the
    spacing of axis :math:`k`. Background elements get 0. Same semantics as
    ``scipy.ndimage.distance_transform_edt(mask, sampling=sampling)``.

    A mask with no zero element has no background to measure to (scipy then
    returns distances to an arbitrary point outside the array). Here such a
    mask is treated as padded by background: each element gets its distance to
    the nearest position just outside the array, ``min_k s_k·min(x_k + 1, n_k −
    x_k)``, which is finite and grows towards the centre. An all-zero mask gives
    all zeros.

    Separable exact algorithm (Felzenszwalb & Huttenlocher): squared 1D
    distances along the longest axis, then ``min_j f[j] + (s·(i − j))²`` along
    each other axis, computed as a brute-force running minimum (see the module
    docstring for the measured choice). Cost: ``n_k`` updates per element for
    each axis but the first, memory O(size). With unit spacing the squared
    distances are integers, exact in float32 while ``Σ_k n_k² < 2²⁴``.

    Args:
      mask: ``[*spatial]`` array with 1 to 3 axes, any dtype; nonzero elements
        are foreground. ``vmap`` over it for a batch.
      sampling: spacing of the grid, a positive float for every axis or a
        sequence with one per axis of ``mask``. ``None`` means 1.

    Returns:
      ``[*spatial]`` float32 distances (float64 under x64 when ``mask`` or
      ``sampling`` is float64). No gradient flows through them.

    Raises:
      ValueError: ``mask`` has fewer than 1 or more than 3 axes, ``sampling``
        does not have one value per axis, or a known spacing is not positive.

    Examples:
      >>> import jax.numpy as jnp
      >>> from segloss_jax._src.distance import distance_transform_edt
      >>> print(distance_transform_edt(jnp.array([0, 1, 1, 1, 0, 1])))
      [0. 1. 2. 1. 0. 1.]
      >>> mask = jnp.array([[0, 1, 1],
      ...                   [1, 1, 1]])
      >>> print(distance_transform_edt(mask).round(4))
      [[0.     1.     2.    ]
       [1.     1.4142 2.2361]]
      >>> print(distance_transform_edt(mask, sampling=(2.0, 1.0)).round(4))
      [[0.     1.     2.    ]
       [2.     2.2361 2.8284]]

    References:
      Felzenszwalb & Huttenlocher, `Distance Transforms of Sampled Functions
      <https://doi.org/10.4086/toc.2012.v008a019>`_, Theory of Computing 2012.

      Maurer, Qi & Raghavan, `A Linear Time Algorithm for Computing Exact
      Euclidean Distance Transforms of Binary Images in Arbitrary Dimensions
      <https://doi.org/10.1109/TPAMI.2003.1177156>`_, IEEE TPAMI 2003.
    """
    mask = jnp.asarray(mask)
    _check_mask(mask)
    return batched_edt(mask, spatial_ndim=mask.ndim, sampling=sampling)


def signed_distance(mask: jax.Array, *, sampling: Sampling = None) -> jax.Array:
    r"""Signed distance to the mask boundary: negative inside, positive outside.

    .. math::

        \phi(x) = \begin{cases}
            D_{\bar m}(x) & m(x) = 0 \\
            -\big(D_m(x) - \delta\big) & m(x) \neq 0
        \end{cases}
        \qquad \delta = \min_k s_k

    with :math:`D_m` = ``distance_transform_edt(m)`` (distance to the nearest
    background element) and :math:`D_{\bar m}` the same for the complement
    (distance to the nearest foreground element). Outside elements are at
    least :math:`\delta` away; the inner boundary, i.e. foreground elements one
    finest grid step from the background, is exactly 0, and deeper elements are
    negative. A mask with no foreground or no background has no boundary and
    gives all zeros.

    This is Kervadec et al.'s map (``one_hot2dist`` in their reference code:
    ``edt(¬m)·¬m − (edt(m) − 1)·m``): identical when ``sampling`` is ``None``
    or its smallest spacing is 1, and identical on empty masks (zeros). The
    reference subtracts 1 whatever the spacing, which makes inner boundary
    elements positive when the spacing is below 1; here :math:`\delta` keeps
    the signs. On a full mask the reference returns minus scipy's distances to
    an arbitrary outside point; here it is 0.

    Args:
      mask: ``[*spatial]`` array with 1 to 3 axes, any dtype; nonzero elements
        are foreground. ``vmap`` over it for a batch.
      sampling: spacing of the grid, a positive float for every axis or a
        sequence with one per axis of ``mask``. ``None`` means 1.

    Returns:
      ``[*spatial]`` float32 signed distances (float64 under x64 when ``mask`` or
      ``sampling`` is float64). No gradient flows through them.

    Raises:
      ValueError: as :func:`distance_transform_edt`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from segloss_jax._src.distance import signed_distance
      >>> print(signed_distance(jnp.array([0, 0, 1, 1, 1, 1, 1, 0])))
      [ 2.  1.  0. -1. -2. -1.  0.  1.]

    References:
      Kervadec et al., `Boundary loss for highly unbalanced segmentation
      <https://doi.org/10.1016/j.media.2020.101851>`_, Medical Image Analysis
      2021 (MIDL 2019).
    """
    mask = jnp.asarray(mask)
    _check_mask(mask)
    return batched_signed_distance(mask, spatial_ndim=mask.ndim, sampling=sampling)


def batched_edt(masks: jax.Array, *, spatial_ndim: int, sampling: Sampling = None) -> jax.Array:
    """:func:`distance_transform_edt` of each ``[*spatial]`` mask in ``[*batch, *spatial]``.

    The leading axes are a batch, handled without ``vmap`` (the loops then run
    once for the whole batch). Internal: the losses call it.
    """
    masks = jnp.asarray(masks)
    check_spatial_ndim(masks, spatial_ndim, "masks")
    return _edt(masks, checked_spacing(sampling, masks, spatial_ndim), spatial_ndim=spatial_ndim)


def batched_edt_within(masks: jax.Array, *, spatial_ndim: int, sampling: Sampling = None,
                       reach: tuple[int, ...]) -> jax.Array:
    """:func:`batched_edt`, exact where the distance is at most ``reach[k]`` steps along
    every spatial axis ``k`` (and larger than that elsewhere, not exact).

    The min-plus passes then look ``reach[k]`` elements each way instead of along the
    whole line: ``2·reach + 1`` updates per element instead of ``n``. Internal: for maps
    that only need short distances (U-Net's border weights).
    """
    masks = jnp.asarray(masks)
    check_spatial_ndim(masks, spatial_ndim, "masks")
    return _edt(masks, checked_spacing(sampling, masks, spatial_ndim), spatial_ndim=spatial_ndim,
                reach=reach)


def batched_signed_distance(
    masks: jax.Array, *, spatial_ndim: int, sampling: Sampling = None
) -> jax.Array:
    """:func:`signed_distance` of each ``[*spatial]`` mask in ``[*batch, *spatial]``.

    Internal: the boundary loss calls it. Both distance maps are computed in one
    batched transform.
    """
    masks = jnp.asarray(masks)
    check_spatial_ndim(masks, spatial_ndim, "masks")
    return _signed(masks, checked_spacing(sampling, masks, spatial_ndim),
                   spatial_ndim=spatial_ndim)


# --- kernels -----------------------------------------------------------------------------
# Compiled (`kernel`) so that eager calls compile once per shape instead of re-tracing
# the loops.


@kernel
def _edt(masks: jax.Array, spacing: jax.Array, *, spatial_ndim: int,
         reach: tuple[int, ...] | None = None) -> jax.Array:
    fg = masks.astype(bool)
    spatial = masks.shape[masks.ndim - spatial_ndim :]
    sq = _squared_edt(fg, spacing, spatial_ndim, reach)
    has_zero = jnp.any(~fg, axis=spatial_axes(fg.ndim, spatial_ndim), keepdims=True)
    border = _border_distance(spatial, spacing)
    border = border.reshape((1,) * (fg.ndim - spatial_ndim) + spatial)
    return lax.stop_gradient(jnp.where(has_zero, jnp.sqrt(sq), border))


@kernel
def _signed(masks: jax.Array, spacing: jax.Array, *, spatial_ndim: int) -> jax.Array:
    fg = masks.astype(bool)
    # One transform over [2, *batch, *spatial]: distances inside, then outside.
    sq = _squared_edt(jnp.stack([fg, ~fg]), spacing, spatial_ndim)
    inside, outside = jnp.sqrt(sq[0]), jnp.sqrt(sq[1])
    phi = jnp.where(fg, jnp.min(spacing) - inside, outside)
    axes = spatial_axes(fg.ndim, spatial_ndim)
    has_boundary = jnp.any(fg, axis=axes, keepdims=True) & jnp.any(~fg, axis=axes, keepdims=True)
    return lax.stop_gradient(jnp.where(has_boundary, phi, jnp.zeros((), phi.dtype)))


def _squared_edt(fg: jax.Array, spacing: jax.Array, spatial_ndim: int,
                 reach: tuple[int, ...] | None = None) -> jax.Array:
    """Squared distances to the nearest ``False`` over the last ``spatial_ndim`` axes.

    Elements with no ``False`` in their spatial slice get at least ``big``. ``reach``:
    exact only where the distance is at most ``reach[k]`` steps along each axis ``k``.
    """
    axes = spatial_axes(fg.ndim, spatial_ndim)
    spatial = fg.shape[axes[0] :]
    # Larger than any squared distance inside the array: marks "no zero found".
    big = jnp.asarray(sum(jnp.square(spacing[k] * n) for k, n in enumerate(spatial)))
    # The first pass is linear, the others cost n_k per element: start with the longest.
    first = int(np.argmax(spatial))
    f = _line_distance_sq(fg, axes[first], spacing[first], big)
    for k, axis in enumerate(axes):
        if k != first:
            window = None if reach is None or 2 * reach[k] + 1 >= spatial[k] else reach[k]
            f = _min_plus_parabola(f, axis, spacing[k], window)
    return f


def _line_distance_sq(fg: jax.Array, axis: int, step: jax.Array, big: jax.Array) -> jax.Array:
    """Squared distance along ``axis`` to the nearest ``False`` of the line, or ``big``."""
    x = jnp.moveaxis(fg, axis, 0)
    n = x.shape[0]

    def sweep(run: jax.Array, row: jax.Array) -> tuple[jax.Array, jax.Array]:
        run = jnp.where(row, run + 1, 0)  # steps since the last zero
        return run, run

    # n is more than any in-line distance. Formed from `x`, so that inside shard_map the
    # scan carry varies over the same mesh axes as the rows (a constant would not).
    none_yet = jnp.full_like(x[0], n, jnp.int32)
    _, forward = lax.scan(sweep, none_yet, x)
    _, backward = lax.scan(sweep, none_yet, x, reverse=True)
    steps = jnp.minimum(forward, backward)
    f = jnp.where(steps < n, jnp.square(steps.astype(big.dtype) * step), big)
    return jnp.moveaxis(f, 0, axis)


def _min_plus_parabola(f: jax.Array, axis: int, step: jax.Array,
                       window: int | None = None) -> jax.Array:
    """``out[i] = min_j f[j] + (step·(i − j))²`` along ``axis``, by brute force.

    A loop over the source index ``j`` with a running minimum: each step is one
    fused elementwise update of the whole array, with the lines in the fast
    dimension. ``window``: only ``|i − j| ≤ window`` (exact wherever the minimum is at
    most ``(step·window)²``; larger elsewhere), one shifted update per offset.
    """
    if window is not None:
        return _min_plus_window(f, axis, step, window)
    f = jnp.moveaxis(f, axis, 0)
    n = f.shape[0]
    pos = (jnp.arange(n, dtype=f.dtype) * step).reshape((n,) + (1,) * (f.ndim - 1))

    def relax(j: jax.Array, out: jax.Array) -> jax.Array:
        f_j = lax.dynamic_index_in_dim(f, j, axis=0, keepdims=True)
        pos_j = lax.dynamic_index_in_dim(pos, j, axis=0, keepdims=True)
        return jnp.minimum(out, f_j + jnp.square(pos - pos_j))

    out = lax.fori_loop(0, n, relax, f, unroll=4)
    return jnp.moveaxis(out, 0, axis)


def _min_plus_window(f: jax.Array, axis: int, step: jax.Array, window: int) -> jax.Array:
    """:func:`_min_plus_parabola` over the offsets ``|o| ≤ window``: ``out[i] = min_o
    f[i + o] + (step·o)²``, the line padded with ``inf``."""
    n = f.shape[axis]
    pad = [(0, 0)] * f.ndim
    pad[axis] = (window, window)
    padded = jnp.pad(f, pad, constant_values=jnp.inf)
    out = f
    for o in range(1, window + 1):
        cost = jnp.square(step * o)
        for start in (window - o, window + o):
            out = jnp.minimum(out, lax.slice_in_dim(padded, start, start + n, axis=axis) + cost)
    return out


def _border_distance(spatial: tuple[int, ...], spacing: jax.Array) -> jax.Array:
    """Distance to the nearest position just outside the array (the no-zero convention)."""
    nd = len(spatial)
    dtype = spacing.dtype
    dist = jnp.full(spatial, jnp.inf, dtype)
    for k, n in enumerate(spatial):
        i = jnp.arange(n)
        to_edge = jnp.minimum(i + 1, n - i).astype(dtype) * spacing[k]
        shape = [1] * nd
        shape[k] = n
        dist = jnp.minimum(dist, to_edge.reshape(shape))
    return dist


# --- checks and options ------------------------------------------------------------------


def _check_mask(mask: jax.Array) -> None:
    if not 1 <= mask.ndim <= 3:
        raise ValueError(
            f"`mask` must have 1 to 3 spatial axes ([W], [H, W] or [D, H, W]); got shape "
            f"{mask.shape} (rank {mask.ndim}). vmap over batch and channel axes."
        )
