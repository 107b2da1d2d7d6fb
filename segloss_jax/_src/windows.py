r"""Windowed operations on the pixel grid.

The one home of windowed operations: min/max pooling over the face (cross)
and cube (``3^d`` box) neighbourhoods, and separable linear filters as they
come. Arrays are ``[..., *spatial]``: the last ``spatial_ndim`` axes (1 to 3)
are the image, the leading ones a batch. Everything here is pure JAX with
static shapes (``lax.reduce_window``), so it runs under ``jit`` and ``vmap``.

* :func:`contour`: the mask elements with a face neighbour outside the mask
  (4-connectivity in 2D, 6 in 3D). What lies beyond the image border is
  either outside the mask (the surface of the surface-distance metrics, scipy's
  ``m & ~binary_erosion(m)``) or "don't care" (the contours of the boundary
  losses); excluded pixels (``valid=False``) are always "don't care".
* :func:`erode`, :func:`dilate`, :func:`opening`: grey-level morphology with
  flat structuring elements, for the soft skeleton of clDice. Erosion is the
  minimum over the cross (plus-shaped) neighbourhood, dilation the maximum over
  the full ``3^d`` box; positions outside the image never win the minimum or
  maximum. They are differentiable (through ``reduce_window``'s gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def spatial_axes(ndim: int, spatial_ndim: int) -> tuple[int, ...]:
    """The last ``spatial_ndim`` axes of a rank-``ndim`` array."""
    return tuple(range(ndim - spatial_ndim, ndim))


# --- neighbourhoods ----------------------------------------------------------------------


def check_spatial_ndim(x: jax.Array, spatial_ndim: int, name: str = "x") -> None:
    """``spatial_ndim`` must be 1 to 3 and at most the rank of ``x``."""
    if not 1 <= spatial_ndim <= min(3, x.ndim):
        raise ValueError(
            f"`spatial_ndim` must be 1 to 3 and at most the rank of `{name}` (shape "
            f"{x.shape}); got {spatial_ndim}.")


def _extreme(dtype, op) -> np.ndarray:
    """The value that never wins ``op`` (min: the largest value, max: the smallest).

    A NumPy constant, never a traced one: ``lax.reduce_window`` recognises a
    min/max window (which has a reverse-mode gradient) only from a concrete
    initial value, and a ``jnp`` constant is traced under ``jit``.
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
    neutral = _extreme(x.dtype, op)
    pads = [(1, 1) if axis in axes else (0, 0) for axis in range(x.ndim)]
    if outside is not None:
        x = jnp.pad(x, pads, constant_values=jnp.asarray(outside, x.dtype))
        pads = [(0, 0)] * x.ndim
    dims = tuple(3 if axis in axes else 1 for axis in range(x.ndim))
    return lax.reduce_window(x, neutral, op, dims, (1,) * x.ndim, pads)


def _cross_min(x: jax.Array, spatial_ndim: int, outside=None) -> jax.Array:
    """Minimum over the centre and its face neighbours: one 3-tap window per axis."""
    axes = spatial_axes(x.ndim, spatial_ndim)
    out = _window(x, lax.min, axes[:1], outside)
    for axis in axes[1:]:
        out = jnp.minimum(out, _window(x, lax.min, (axis,), outside))
    return out


def erode(x: jax.Array, spatial_ndim: int) -> jax.Array:
    """Grey-level erosion: the minimum over each element's cross neighbourhood.

    The cross is the element and its ``2·spatial_ndim`` face neighbours
    (``scipy.ndimage.grey_erosion`` with a plus-shaped footprint); positions
    outside the image are ignored. ``x`` is ``[..., *spatial]`` of any real or
    bool dtype; the result has its shape and dtype.
    """
    x = jnp.asarray(x)
    check_spatial_ndim(x, spatial_ndim)
    return _cross_min(x, spatial_ndim)


def dilate(x: jax.Array, spatial_ndim: int) -> jax.Array:
    """Grey-level dilation: the maximum over each element's full ``3^d`` neighbourhood.

    ``scipy.ndimage.grey_dilation`` with a ``(3,) * d`` box; positions outside
    the image are ignored. ``x`` is ``[..., *spatial]``; same shape and dtype out.
    """
    x = jnp.asarray(x)
    check_spatial_ndim(x, spatial_ndim)
    return _window(x, lax.max, spatial_axes(x.ndim, spatial_ndim))


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
    eroded = _cross_min(inside, spatial_ndim, outside=False if border_outside else None)
    edge = masks & ~eroded
    return edge if valid is None else edge & valid
