r"""Boundary IoU (Cheng et al. 2021): the overlap of two masks' inner boundary bands.

Contract: masks are ``[H, W]`` or ``[D, H, W]`` (``vmap`` for batches and
classes), bool or integers (non-zero is foreground). The function is pure,
jit-able (the band width is static, given the shape) and carries no gradient;
values are float32.
"""

from __future__ import annotations

import math
import numbers

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import bitplanes, checks

__all__ = ["boundary_iou"]


def band_width(shape: tuple[int, ...], dilation_ratio: float, dilation: int | None) -> int:
    """The band width :math:`k`: ``dilation``, or ``max(1, round(dilation_ratio · diagonal))``
    with Python's ``round`` (half to even), as boundary-iou-api computes it."""
    if dilation is not None:
        if not isinstance(dilation, numbers.Integral) or isinstance(dilation, bool) or dilation < 1:
            raise ValueError(f"`dilation` must be a positive int (the band width in elements), "
                             f"got {dilation!r}.")
        return int(dilation)
    if not isinstance(dilation_ratio, numbers.Real) or isinstance(dilation_ratio, bool):
        raise TypeError(f"`dilation_ratio` must be a Python float (the band width is static), "
                        f"got {dilation_ratio!r}.")
    checks.check_nonnegative("dilation_ratio", dilation_ratio)
    return max(1, round(dilation_ratio * math.sqrt(sum(n * n for n in shape))))


def _all_within(planes: jax.Array, axis: int, width: int) -> jax.Array:
    """Where the packed image holds on the whole window ``i − width … i + width`` along
    image axis ``axis`` (0 beyond the border): the erosion by a segment, in
    ``O(log width)`` shifts. Windows of length ``2^j`` are doubled
    (``W_2m(i) = W_m(i) ∧ W_m(i + m)``) and the length ``2·width + 1`` is assembled
    from its binary digits."""
    def moved(x, step):
        offset = [0] * x.ndim  # one entry per image axis
        offset[axis] = step
        return bitplanes.shift(x, offset)

    length, power, span = 2 * width + 1, planes, 1
    out, covered = None, 0
    while length:
        if length & 1:  # this power's window starts where the covered part ends
            part = moved(power, covered)
            out, covered = (part if out is None else out & part), covered + span
        length >>= 1
        if length:
            power, span = power & moved(power, span), 2 * span
    return moved(out, -width)


def inner_band(planes: jax.Array, width: int) -> jax.Array:
    """``mask ∧ ¬erode(mask)`` of a packed mask (:mod:`~segloss_jax._src.bitplanes`): the
    erosion by the ``(2·width + 1)``-wide square (cube) with outside the image as
    background, so the mask elements within chessboard distance ``width`` of an element
    outside the mask (beyond the border included)."""
    eroded = planes
    for axis in range(planes.ndim):  # the square is separable: one segment per axis
        eroded = _all_within(eroded, axis, width)
    return planes & ~eroded


def boundary_iou(
    pred_mask: chex.Array,
    mask: chex.Array,
    *,
    dilation_ratio: float = 0.02,
    dilation: int | None = None,
) -> jax.Array:
    r"""Boundary IoU of two binary masks (Cheng et al. 2021).

    .. math::

       \mathrm{BIoU}(P, G) = \frac{|B_k(P) \cap B_k(G)|}{|B_k(P) \cup B_k(G)|},
       \qquad B_k(M) = M \setminus \mathrm{erode}_k(M)

    :math:`B_k(M)` is the inner boundary band of mask :math:`M`: its elements
    whose chessboard distance to the nearest element outside :math:`M` (the frame
    beyond the image border included) is at most :math:`k`; equivalently :math:`M`
    minus its erosion by the :math:`(2k+1) \times (2k+1)` square (cube in 3D),
    outside the image counting as background. :math:`k` is ``dilation`` if given,
    else :math:`\max(1, \mathrm{round}(r \sqrt{H^2 + W^2}))` with
    :math:`r` = ``dilation_ratio`` and round half to even (Python's ``round``,
    as boundary-iou-api), :math:`\sqrt{\sum_i n_i^2}` in 3D. Unlike mask IoU, it is
    as sensitive to boundary errors of large objects as of small ones: the
    interior of a large object does not dilute them.

    Empty masks: NaN when both masks are empty (as
    :func:`~segloss_jax.surface_dice`; pycocotools returns 0 there), 0 when
    exactly one is (a non-empty mask has a non-empty band).

    Boundary AP and PQ. The paper's Boundary AP (COCO, LVIS) and Boundary PQ
    (panoptic) match predictions to targets with :math:`\min(\mathrm{IoU},
    \mathrm{BIoU})` in place of mask IoU: the mask IoU guards against a
    prediction whose thin band happens to overlap the target's while its
    interior is wrong (Boundary IoU alone ignores the interior beyond :math:`k`),
    and the Boundary IoU makes the matching sensitive to the boundary quality of
    large objects. Compute both for each pair (e.g. ``jnp.minimum(iou,
    sl.boundary_iou(p, g))`` with the mask IoU of the pair) and threshold that.

    Args:
      pred_mask: ``[H, W]`` or ``[D, H, W]`` predicted mask (non-zero = foreground,
        bool or integers). ``vmap`` over batch and class axes.
      mask: the target mask, same shape.
      dilation_ratio: :math:`r \ge 0`, the band width as a fraction of the image
        diagonal (a Python float: the width is static). The paper's default 0.02.
      dilation: the band width :math:`k \ge 1` in elements; overrides
        ``dilation_ratio``.

    Returns:
      A float32 scalar in ``[0, 1]``, or NaN when both masks are empty.

    Raises:
      ValueError: the shapes differ or are not 2D/3D, ``dilation`` is not a
        positive int, or ``dilation_ratio`` is negative.

    Equals boundary-iou-api's ``mask_to_boundary`` (OpenCV erosion by the 3x3
    square ``k`` times, after padding by one background element) followed by
    pycocotools' IoU of the two boundary masks, except when both masks are empty
    (0 there). boundary-iou-api is 2D; the 3D form uses the cube.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> g = jnp.zeros((10, 10), bool).at[2:8, 2:8].set(True)
      >>> p = jnp.zeros((10, 10), bool).at[2:8, 3:9].set(True)  # shifted by one column
      >>> print(f"{sl.boundary_iou(p, g, dilation=1):.4f} {sl.boundary_iou(p, g, dilation=2):.4f}")
      0.3333 0.6000
      >>> batch = jnp.stack([g, p])  # vmap for a batch of mask pairs
      >>> print(jax.jit(jax.vmap(lambda a, b: sl.boundary_iou(a, b, dilation=1)))(batch, batch))
      [1. 1.]

    References:
      Cheng, Girshick, Dollár, Berg & Kirillov, "Boundary IoU: Improving
      object-centric image segmentation evaluation", CVPR 2021 (arXiv:2103.16562).
    """
    pred_mask, mask = jnp.asarray(pred_mask), jnp.asarray(mask)
    if pred_mask.shape != mask.shape:
        raise ValueError(f"`pred_mask` has shape {pred_mask.shape} but `mask` has shape "
                         f"{mask.shape}; they must match.")
    if mask.ndim not in (2, 3):
        raise ValueError(f"`mask` must be one mask [H, W] or [D, H, W], got shape {mask.shape}; "
                         "vmap over batch and class axes.")
    width = band_width(mask.shape, dilation_ratio, dilation)
    band_p, band_g = (inner_band(bitplanes.pack(m != 0), width) for m in (pred_mask, mask))
    intersection, union = bitplanes.count(band_p & band_g), bitplanes.count(band_p | band_g)
    value = intersection.astype(jnp.float32) / jnp.maximum(union, 1).astype(jnp.float32)
    return jnp.where(union > 0, value, jnp.nan)
