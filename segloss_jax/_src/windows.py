r"""Windowed operations on the pixel grid.

The one home of windowed operations: separable linear filters, and min/max
pooling over the face (cross) and cube (``3^d`` box) neighbourhoods. Every
windowed loss is built on them. Pure JAX with static shapes: each window is a
sum of shifted slices (linear filters) or a ``lax.reduce_window`` (pooling), one
pass per axis, so everything runs under ``jit`` and ``vmap`` on any backend.

Both kinds have a hand-written backward pass (``jax.custom_vjp``), so neither
autodiff's padded copy per tap nor its select-and-scatter is built; they
support reverse mode (and forward-over-reverse), not plain ``jax.jvp``.

Linear filters. :func:`linear_filter` correlates an array with a 1-D window
of taps along each of several axes in turn (a separable filter), with reflect
padding (the edge sample is not repeated: PyTorch's ``"reflect"``, scipy's
``"mirror"``) or zero padding, so the result has the size of the input. Inside,
each output is a sum of shifted slices (one fused pass, no padded copy); the
``r`` outputs at each end, which reach past the border, are a product with the
corner of :func:`filter_matrix`. The backward pass is the adjoint: the mirrored
taps on the cotangent inside, the transposed corners at the ends (where the
mirrored samples' shares fold back onto the samples they copy). The taps:
:func:`gaussian_taps` (sampled and normalised, as SSIM uses), :func:`box_taps`
(normalised) and :func:`erf_taps` (the Gaussian integrated over each pixel,
not normalised).

Min/max pooling. :func:`erode` is the minimum over each element's cross
(itself and its ``2d`` face neighbours): the minimum of one 3-tap window per
axis. :func:`dilate` is the maximum over the full ``3^d`` box: a 3-tap maximum
along each axis in turn, the last axis first. :func:`opening` is their
composition; positions outside the image never win. Each 3-tap window is a
``lax.reduce_window``; its backward pass sends each output's cotangent to the
element that won it, found in the forward pass (an ``int8`` offset per
output). Ties: the first element of the window in index order wins, as in
autodiff of ``lax.reduce_window`` (its select-and-scatter keeps the first
winner); the windows of an erosion that tie share the cotangent equally (the
gradient of ``jnp.minimum``), and the axis order of :func:`dilate` makes its
winner the first of the box in row-major order. So the gradients are those
of autodiff of the plain ``reduce_window`` formulation, ties included.

:func:`cross_sum` sums each element's cross (zero outside the image) as shifted
slices; it is self-adjoint, so a hand-written backward pass applies it to the cotangent.

:func:`contour` marks the mask elements with a face neighbour outside the
mask (4-connectivity in 2D, 6 in 3D). What lies beyond the image border is
either outside the mask (the surface of the surface-distance metrics, scipy's
``m & ~binary_erosion(m)``) or "don't care" (the contours of the boundary
losses); excluded pixels (``valid=False``) are always "don't care".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Padding: TypeAlias = Literal["reflect", "zero"]
PADDINGS: tuple[str, ...] = ("reflect", "zero")


def spatial_axes(ndim: int, spatial_ndim: int) -> tuple[int, ...]:
    """The last ``spatial_ndim`` axes of a rank-``ndim`` array."""
    return tuple(range(ndim - spatial_ndim, ndim))


def check_spatial_ndim(x: jax.Array, spatial_ndim: int, name: str = "x") -> None:
    """``spatial_ndim`` must be 1 to 3 and at most the rank of ``x``."""
    if not 1 <= spatial_ndim <= min(3, x.ndim):
        raise ValueError(
            f"`spatial_ndim` must be 1 to 3 and at most the rank of `{name}` (shape "
            f"{x.shape}); got {spatial_ndim}.")


# --- taps --------------------------------------------------------------------------------


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """The sampled Gaussian ``exp(-j² / 2σ²)``, ``j = -r … r``, ``r = size // 2``,
    normalised to sum 1 (float64 host constant, ``size`` taps; SSIM's window)."""
    j = np.arange(size, dtype=np.float64) - size // 2
    taps = np.exp(-(j**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def box_taps(size: int) -> np.ndarray:
    """``size`` equal taps summing to 1: the local mean."""
    return np.full(size, 1.0 / size)


def erf_taps(sigma: float) -> np.ndarray:
    r"""The Gaussian integrated over each pixel, not normalised:

    .. math::

       k_j = \tfrac12\left[\operatorname{erf}\!\left(\frac{j + 1/2}{\sigma\sqrt2}\right)
             - \operatorname{erf}\!\left(\frac{j - 1/2}{\sigma\sqrt2}\right)\right],
       \qquad |j| \le r = \lfloor \max(4\sigma, 1/2) + 1/2 \rfloor.

    The taps sum to the Gaussian's mass on ``[-r - 1/2, r + 1/2]`` (just under 1).
    """
    radius = int(max(4.0 * sigma, 0.5) + 0.5)
    scale = sigma * math.sqrt(2.0)
    return np.array([0.5 * (math.erf((j + 0.5) / scale) - math.erf((j - 0.5) / scale))
                     for j in range(-radius, radius + 1)])


# --- linear filters ----------------------------------------------------------------------


def linear_filter(
    x: jax.Array, taps: Sequence[float] | np.ndarray, axes: Sequence[int], *,
    padding: Padding = "reflect",
) -> jax.Array:
    """Correlates ``x`` with ``taps`` along each of ``axes`` in turn (a separable filter).

    ``y[i] = Σ_k taps[k] · x[i + k - r]`` along each axis, ``r = len(taps) // 2``;
    beyond the border ``x`` is mirrored (``"reflect"``: ``x[-j] = x[j]``, the edge
    sample not repeated) or 0 (``"zero"``). Symmetric taps make it a convolution.

    Args:
      x: floating array of any shape.
      taps: host constant (Python or NumPy numbers), odd length; zero taps are skipped.
      axes: the axes to filter (1 to 3, distinct); with ``"reflect"`` each must be
        longer than ``len(taps) // 2``.
      padding: ``"reflect"`` or ``"zero"``.

    Returns:
      The filtered array, shape and dtype of ``x``. Its gradient is the adjoint
      filter applied to the cotangent (reverse mode).
    """
    x = jnp.asarray(x)
    taps = np.asarray(taps, np.float64)
    if taps.ndim != 1 or len(taps) % 2 == 0:
        raise ValueError(f"`taps` must be one-dimensional with an odd length, got shape "
                         f"{taps.shape}.")
    if padding not in PADDINGS:
        raise ValueError(f"`padding` must be one of {PADDINGS}, got {padding!r}.")
    axes = tuple(axes)
    if not (1 <= len(axes) <= 3 and all(isinstance(a, (int, np.integer)) for a in axes)
            and all(-x.ndim <= a < x.ndim for a in axes)
            and len({a % x.ndim for a in axes}) == len(axes)):
        raise ValueError(f"`axes` must be 1 to 3 distinct axes of `x` (shape {x.shape}), got "
                         f"{axes}.")
    axes = tuple(int(a) % x.ndim for a in axes)
    radius = len(taps) // 2
    if padding == "reflect" and any(x.shape[a] <= radius for a in axes):
        raise ValueError(
            f"reflect padding by {radius} needs every filtered axis to be longer than "
            f"{radius}, got sizes {tuple(x.shape[a] for a in axes)} (shape {x.shape}).")
    return _filter(x, tuple(float(t) for t in taps), axes, padding, False)


def _valid(x: jax.Array, taps: tuple[float, ...], axis: int) -> jax.Array:
    """``Σ_k taps[k] · x[i + k]`` for every ``i`` where the window fits inside ``x``
    (``len(taps) - 1`` fewer outputs along ``axis``): a sum of shifted slices of ``x``,
    which XLA fuses into one pass with no padded copy."""
    size = x.shape[axis] - len(taps) + 1
    terms = [w * lax.slice_in_dim(x, k, k + size, axis=axis)
             for k, w in enumerate(taps) if w != 0]
    return functools.reduce(lax.add, terms)


def filter_matrix(taps: Sequence[float], n: int, padding: str) -> np.ndarray:
    """The ``[n, n]`` matrix of one axis of :func:`linear_filter` (float64 host constant):
    row ``i`` holds the weight of each input in output ``i``, mirrored samples folded
    back onto the samples they copy (reflect) or dropped (zero)."""
    radius = len(taps) // 2
    matrix = np.zeros((n, n))
    for i in range(n):
        for k, w in enumerate(taps):
            j = i + k - radius
            if padding == "reflect":
                j = abs(j) if j < n else 2 * (n - 1) - j
            if 0 <= j < n:
                matrix[i, j] += w
    return matrix


def _contract(x: jax.Array, matrix: np.ndarray, axis: int) -> jax.Array:
    """``y[i] = Σ_j matrix[i, j] · x[j]`` along ``axis`` (a small host matrix)."""
    y = lax.dot_general(x, jnp.asarray(matrix, x.dtype), (((axis,), (1,)), ((), ())),
                        precision=lax.Precision.HIGHEST)
    return jnp.moveaxis(y, -1, axis)


def _correlate(x: jax.Array, taps: tuple[float, ...], axis: int, padding: str, *,
               adjoint: bool = False) -> jax.Array:
    """One axis of :func:`linear_filter` (``adjoint=True``: its transpose).

    The outputs whose window lies inside the array (all but ``r`` at each end;
    ``2r`` for the adjoint, whose ends gather the mirrored samples' shares) are a
    sum of shifted slices, one fused pass; the few at the ends are a product
    with the corner blocks of :func:`filter_matrix`. Short axes (``n ≤ 4r``)
    take the whole matrix.
    """
    radius, n = len(taps) // 2, x.shape[axis]
    if radius == 0:
        return taps[0] * x
    if n <= 4 * radius:
        matrix = filter_matrix(taps, n, padding)
        return _contract(x, matrix.T if adjoint else matrix, axis)
    # The corner blocks are those of any axis longer than 5r: a filter reaches r samples.
    matrix = filter_matrix(taps, 5 * radius + 1, padding)
    if adjoint:  # x̄[j] = Σ_i A[i, j] ct[i]: j < 2r reads i < 3r; mirrored taps inside
        head, tail = matrix[:3 * radius, :2 * radius].T, matrix[-3 * radius:, -2 * radius:].T
        inner = _valid(lax.slice_in_dim(x, radius, n - radius, axis=axis), taps[::-1], axis)
        reach = 3 * radius
    else:  # y[i] = Σ_j A[i, j] x[j]: i < r reads j < 2r
        head, tail = matrix[:radius, :2 * radius], matrix[-radius:, -2 * radius:]
        inner = _valid(x, taps, axis)
        reach = 2 * radius
    first = _contract(lax.slice_in_dim(x, 0, reach, axis=axis), head, axis)
    last = _contract(lax.slice_in_dim(x, n - reach, n, axis=axis), tail, axis)
    return lax.concatenate([first, inner, last], axis)


def _separable(x, taps, axes, padding, adjoint=False):
    """:func:`_correlate` (or its adjoint) along each of ``axes`` in turn."""
    for axis in reversed(axes) if adjoint else axes:
        x = _correlate(x, taps, axis, padding, adjoint=adjoint)
    return x


# The forward rule calls the plain function, not the custom_vjp one: a nested call
# would stop forward-over-reverse (Hessian-vector products).
_filter = jax.custom_vjp(_separable, nondiff_argnums=(1, 2, 3, 4))


def _filter_fwd(x, taps, axes, padding, adjoint):
    return _separable(x, taps, axes, padding, adjoint), None


def _filter_bwd(taps, axes, padding, adjoint, _, ct):
    return (_separable(ct, taps, axes, padding, not adjoint),)


_filter.defvjp(_filter_fwd, _filter_bwd)


# --- the cross stencil -------------------------------------------------------------------


def _neighbours(x: jax.Array, axis: int) -> jax.Array:
    """``x[i − 1] + x[i + 1]`` along ``axis``, zero outside: shifted slices, no padded copy."""
    if x.shape[axis] == 1:
        return jnp.zeros_like(x)
    return _three(x, axis, lambda s: s(x, 1), lambda s: s(x, -1) + s(x, 1),
                  lambda s: s(x, -1))


def cross_sum(x: jax.Array, spatial_ndim: int) -> jax.Array:
    """The sum over each element's cross: itself and its ``2·spatial_ndim`` face neighbours,
    zero outside the image (``scipy.ndimage.correlate`` with the plus-shaped footprint and
    ``mode="constant"``): shifted slices, one fused pass, no padded copy. ``x`` is floating
    ``[..., *spatial]``; same shape and dtype out. Linear and self-adjoint (the zero-padded
    cross is a symmetric matrix): a hand-written backward pass applies it to the cotangent
    (as :func:`~segloss_jax.hausdorff_er_loss`'s does); autodiff of it works too.
    """
    x = jnp.asarray(x)
    check_spatial_ndim(x, spatial_ndim)
    axes = spatial_axes(x.ndim, spatial_ndim)
    return functools.reduce(lax.add, [_neighbours(x, axis) for axis in axes], x)


# --- min/max pooling ---------------------------------------------------------------------


def _neutral(dtype, op) -> np.ndarray:
    """The value that never wins ``op`` (min: the largest value, max: the smallest).

    A NumPy constant, never a traced one: ``lax.reduce_window`` recognises a
    min/max window only from a concrete initial value, and a ``jnp`` constant
    is traced under ``jit``.
    """
    largest = op is lax.min
    if dtype == jnp.bool_:
        return np.asarray(largest)
    if jnp.issubdtype(dtype, jnp.floating):
        return np.asarray(np.inf if largest else -np.inf, dtype)
    info = jnp.iinfo(dtype)
    return np.asarray(info.max if largest else info.min, dtype)


def _window(x: jax.Array, op, axes: tuple[int, ...], outside=None) -> jax.Array:
    """``op`` (``lax.min`` or ``lax.max``) over the 3-tap window of each of ``axes`` at once.

    Positions outside the array hold ``outside``; ``None`` means a value that
    never wins, so the window is simply cut at the border.
    """
    neutral = _neutral(x.dtype, op)
    pads = [(1, 1) if axis in axes else (0, 0) for axis in range(x.ndim)]
    if outside is not None:
        x = jnp.pad(x, pads, constant_values=jnp.asarray(outside, x.dtype))
        pads = [(0, 0)] * x.ndim
    dims = tuple(3 if axis in axes else 1 for axis in range(x.ndim))
    return lax.reduce_window(x, neutral, op, dims, (1,) * x.ndim, pads)


def _three(x: jax.Array, axis: int, first, inner, last) -> jax.Array:
    """An array built along ``axis`` from slices of itself and other arrays of its shape:
    ``first(s)``, ``inner(s)``, ``last(s)`` for the first element, the ``n - 2`` inner
    ones and the last, where ``s(y, k)`` is ``y`` shifted by ``k`` (``s(y, k)[i] =
    y[i + k]``) and sliced to the block. Slices only, no padded copy: XLA fuses it
    into one pass."""
    n = x.shape[axis]

    def block(start, stop):
        return lambda y, k: lax.slice_in_dim(y, start + k, stop + k, axis=axis)

    return lax.concatenate([first(block(0, 1)), inner(block(1, n - 1)), last(block(n - 1, n))],
                           axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _pool(x, axis, op):
    """``op`` over ``x[i - 1], x[i], x[i + 1]`` along ``axis``; outside never wins."""
    return _window(x, op, (axis,))


def _pool_fwd(x, axis, op):
    """The pooled values and which element won each: the offset (-1, 0, 1) of the first,
    in index order, that equals the result (``lax.reduce_window``'s gradient makes
    the same choice)."""
    out = _window(x, op, (axis,))
    if x.shape[axis] == 1:
        return out, jnp.zeros(x.shape, jnp.int8)

    def winner(s, low=True, high=True):
        code = jnp.where(s(x, 0) == s(out, 0), jnp.int8(0), jnp.int8(1 if high else 0))
        return jnp.where(s(x, -1) == s(out, 0), jnp.int8(-1), code) if low else code

    return out, _three(x, axis, lambda s: winner(s, low=False), winner,
                       lambda s: winner(s, high=False))


def _pool_bwd(axis, op, winner, ct):
    """Each output's cotangent goes to the element that won it."""
    if ct.shape[axis] == 1:
        return (ct,)
    zero = jnp.zeros((), ct.dtype)
    won = {k: jnp.where(winner == k, ct, zero) for k in (-1, 0, 1)}

    def gathered(s, low=True, high=True):  # x̄[j] = won0[j] + won-1[j + 1] + won+1[j - 1]
        grad = s(won[0], 0)
        grad = grad + s(won[-1], 1) if high else grad
        return grad + s(won[1], -1) if low else grad

    return (_three(ct, axis, lambda s: gathered(s, low=False), gathered,
                   lambda s: gathered(s, high=False)),)


_pool.defvjp(_pool_fwd, _pool_bwd)


def _pooled(x: jax.Array, axis: int, op) -> jax.Array:
    """:func:`_pool` for floating ``x`` (differentiable), :func:`_window` otherwise."""
    if jnp.issubdtype(x.dtype, jnp.floating):
        return _pool(x, axis, op)
    return _window(x, op, (axis,))


def _cross_min(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Minimum over the centre and its face neighbours: one 3-tap window per axis."""
    return functools.reduce(jnp.minimum, [_pooled(x, axis, lax.min) for axis in axes])


def erode(x: jax.Array, spatial_ndim: int) -> jax.Array:
    """Grey-level erosion: the minimum over each element's cross neighbourhood.

    The cross is the element and its ``2·spatial_ndim`` face neighbours
    (``scipy.ndimage.grey_erosion`` with a plus-shaped footprint); positions
    outside the image are ignored. ``x`` is ``[..., *spatial]`` of any real or
    bool dtype; the result has its shape and dtype. The gradient of each output
    goes to the element that won it (ties: the module docstring).
    """
    x = jnp.asarray(x)
    check_spatial_ndim(x, spatial_ndim)
    return _cross_min(x, spatial_axes(x.ndim, spatial_ndim))


def dilate(x: jax.Array, spatial_ndim: int) -> jax.Array:
    """Grey-level dilation: the maximum over each element's full ``3^d`` neighbourhood.

    ``scipy.ndimage.grey_dilation`` with a ``(3,) * d`` box, taken as a 3-tap
    maximum along each spatial axis in turn; positions outside the image are
    ignored. ``x`` is ``[..., *spatial]``; same shape and dtype out.
    """
    x = jnp.asarray(x)
    check_spatial_ndim(x, spatial_ndim)
    for axis in reversed(spatial_axes(x.ndim, spatial_ndim)):  # ties: first in row-major order
        x = _pooled(x, axis, lax.max)
    return x


def opening(x: jax.Array, spatial_ndim: int) -> jax.Array:
    """``dilate(erode(x))``: removes structures thinner than the cross."""
    return dilate(erode(x, spatial_ndim), spatial_ndim)


def contour(
    masks: jax.Array,
    spatial_ndim: int,
    *,
    valid: jax.Array | None = None,
    border_outside: bool = True,
) -> jax.Array:
    """Mask elements with a face neighbour that is valid and outside the mask.

    Args:
      masks: bool ``[..., *spatial]``.
      spatial_ndim: number of trailing spatial axes (1 to 3).
      valid: optional bool, broadcastable to ``masks``: excluded elements are
        "don't care", neither inside nor outside, and never on a contour.
      border_outside: whether beyond the image border counts as outside the
        mask (mask elements on the border are then contour) or as "don't care"
        (a mask covering every valid element has no contour).

    Returns:
      Bool, the shape of ``masks``.
    """
    masks = jnp.asarray(masks, bool)
    check_spatial_ndim(masks, spatial_ndim, "masks")
    inside = masks if valid is None else masks | ~valid  # "don't care" never makes a contour
    axes = spatial_axes(masks.ndim, spatial_ndim)
    outside = False if border_outside else None
    eroded = functools.reduce(jnp.minimum, [_window(inside, lax.min, (a,), outside) for a in axes])
    edge = masks & ~eroded
    return edge if valid is None else edge & valid
