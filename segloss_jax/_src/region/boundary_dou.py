r"""Boundary Difference over Union (Sun et al. 2023): an IoU-like region loss whose weight
of the intersection follows how much of each target region is boundary.

Per unit, from the sums :math:`I = \sum pg`, :math:`Y = \sum g^2`, :math:`Z = \sum p^2`
of :mod:`segloss_jax._src.engine` (one fused backward pass) and two target-only counts,
the target's mass :math:`S = \sum g` and its boundary :math:`C_b`, which set the
constant :math:`\alpha`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from segloss_jax._src import checks
from segloss_jax._src.engine import Params, RegionOptions, Sums, ratio, region_loss
from segloss_jax._src.inputs import Inputs, one_hot_target
from segloss_jax._src.registry import register
from segloss_jax._src.stats import unit_sums
from segloss_jax._src.types import (
    AnyActivation,
    ArrayLike,
    AxisName,
    ClassMode,
    Reduction,
    Scalar,
    Smooth,
)
from segloss_jax._src.windows import contour

__all__ = ["boundary_dou_loss"]


def boundary_dou_units(s: Sums, params: Params) -> jax.Array:
    """``(Z + Y − 2I + s)/(Z + Y − (1 + α)I + s)``, ``α = min(1 − 2(C_b + s)/(S + s), α_max)``
    (a constant); 1 with zero gradient for a unit without target."""
    alpha = jnp.minimum(1 - 2 * ratio(params["boundary"], s.sum_g, params), params["alpha_max"])
    alpha = lax.stop_gradient(alpha)
    both = s.sum_p2 + (s.sum_g2 if "sum_g2" in s else s.sum_g)  # Σg² = Σg for hard labels
    return jnp.where(s.sum_g > 0, ratio(both - 2 * s.tp, both - (1 + alpha) * s.tp, params), 1)


def _two_channels(inp: Inputs) -> Inputs:
    """``C == 1``: the channels ``[1 − p, p]`` against ``[1 − g, g]``. For the sigmoid,
    ``softmax([0, x]) = [1 − σ(x), σ(x)]``, so the engine's softmax backward on ``[0, x]``
    is the sigmoid's on ``x``; probabilities (``activation=None``) enter as they are."""
    probs = jnp.concatenate([inp.one_minus_probs, inp.probs], axis=-1)
    target = jnp.concatenate([1 - inp.target, inp.target], axis=-1)
    if inp.activation == "sigmoid":
        x, activation = jnp.concatenate([jnp.zeros_like(inp.x), inp.x], axis=-1), "softmax"
    else:
        x, activation = probs, None
    return Inputs(x, target, inp.valid, None, activation, fields={"probs": probs})


def boundary_counts(inp: Inputs, options: RegionOptions) -> jax.Array:
    """:math:`C_b` of every unit: the valid elements of each class (``g > 0.5``) with a face
    neighbour not of the class, outside the image and excluded elements not of any class."""
    spatial_ndim = inp.x.ndim - 2
    if inp.labels is not None:
        # Integer labels: an element is on the boundary of its own class exactly when a
        # neighbour holds another label (one test per element, not per class).
        labels = jnp.where(inp.valid, inp.labels, jnp.iinfo(inp.labels.dtype).min)
        edge = one_hot_target(jnp.where(_label_edge(labels, spatial_ndim), labels, -1),
                              inp.num_classes, jnp.int32)
    else:
        masks = jnp.moveaxis((inp.target > 0.5) & inp.valid[..., None], -1, 1)
        edge = jnp.moveaxis(contour(masks, spatial_ndim), 1, -1).astype(jnp.int32)
    (count,) = unit_sums(edge, valid=inp.valid, per_image=options.per_image,
                         axis_name=options.axis_name)
    return count.astype(inp.dtype)


def _label_edge(labels: jax.Array, spatial_ndim: int) -> jax.Array:
    """``[B, *spatial]`` bool: some face neighbour holds another label or lies outside."""
    edge = jnp.zeros(labels.shape, bool)
    for axis in range(1, spatial_ndim + 1):
        n = labels.shape[axis]
        differs = (lax.slice_in_dim(labels, 0, n - 1, axis=axis)
                   != lax.slice_in_dim(labels, 1, n, axis=axis))
        border = jnp.ones_like(lax.slice_in_dim(edge, 0, 1, axis=axis))
        edge = (edge | jnp.concatenate([border, differs], axis)
                | jnp.concatenate([differs, border], axis))
    return edge


@register()
def boundary_dou_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha_max: Scalar = 0.8,
    activation: AnyActivation = "softmax", smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Boundary DoU loss (Sun et al.): difference over union, boundary-weighted.

    .. math::

       \alpha = \min\!\Big(1 - \frac{2\,(C_b + s_n)}{S + s_d},\ \alpha_{\max}\Big),
       \qquad
       L = \frac{Z + Y - 2I + s_n}{Z + Y - (1 + \alpha)\, I + s_d}

    per unit (class over the batch by default, or image and class with
    ``per_image=True``), with :math:`I = \sum p g`, :math:`Y = \sum g^2`,
    :math:`Z = \sum p^2` over the valid elements, :math:`S = \sum g` the target's
    mass and :math:`C_b` its boundary: the elements of the class with at least
    one face neighbour (4 in 2D, 6 in 3D) not of the class, outside the image
    counting as not of the class. :math:`(s_n, s_d)` is the ``smooth`` pair.
    :math:`L` is the area of the difference :math:`G \cup P - G \cap P` over the
    difference plus the part :math:`\alpha` of the intersection: a region made
    mostly of boundary (thin or small, :math:`\alpha` low) is scored like Dice,
    a large compact one (:math:`\alpha` up to :math:`\alpha_{\max}`) more like
    :math:`1 - \mathrm{IoU}` of its boundary band. :math:`\alpha` depends on the
    target only and is a constant (no gradient); it is not clamped below
    (:math:`-1` for a region that is all boundary). 1 to 3 spatial axes.

    Excluded elements (``where``, ``ignore_index``) are in no sum and are not
    of the class for the boundary test. Dense labels: :math:`S = \sum g`, and
    the boundary test reads :math:`g > 0.5`. ``C == 1`` (sigmoid, or
    probabilities): the two channels :math:`[1 - p, p]` against
    :math:`[1 - g, g]`, the background first (``include_background=False``
    keeps the foreground only; ``reduction="none"`` then has 2 classes; the one
    class weight weighs both).

    Empty masks: a unit without target (:math:`S = 0`) scores 1 with zero
    gradient (``classes="present"`` drops it).

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background`` (default ``True``: the paper's code scores class 0),
    ``classes``, ``class_weights``, ``ignore_index``, ``where``, ``axis_name``,
    ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``),
        1 to 3 spatial axes.
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets; no gradient.
      alpha_max: upper bound of :math:`\alpha`, in :math:`[-1, 1]` (the paper's code
        truncates at 0.8).

    Returns:
      A scalar, or for ``reduction="none"`` the loss of every unit, ``[B, C]``
      (``per_image=True``) or ``[C]`` (``C = 2`` for one sigmoid channel), 0 for
      dropped units. Float32 (float64 for float64 inputs).

    The authors' ``BoundaryDoULoss(n_classes=C)`` (2D, softmax over the logits,
    class over the batch, mean over all classes) is ``boundary_dou_loss(x, y)``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.zeros((1, 8, 8), jnp.int32).at[0, 2:6, 2:6].set(1)
      >>> logits = 2.0 * (2.0 * labels - 1.0)[..., None]  # ±2, [B=1, 8, 8, C=1]
      >>> @jax.jit
      ... def loss(x):
      ...     return sl.boundary_dou_loss(x, labels, activation="sigmoid")
      >>> shifted = jnp.roll(logits, 1, axis=2)  # the square one pixel off
      >>> print(f"{loss(logits):.4f} {loss(shifted):.4f}")
      0.0264 0.1929

    References:
      Sun, Luo, Ye, Wang, Fang & Zhao, "Boundary Difference over Union Loss for
      Medical Image Segmentation", MICCAI 2023 (arXiv:2308.00220);
      code: github.com/sunfan-bvb/BoundaryDoULoss.
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    checks.check_in_range("alpha_max", alpha_max, -1.0, 1.0)
    if inp.num_classes == 1:
        inp = _two_channels(inp)
        if class_weights is not None:  # the channel's weight, for both of its columns
            options = options._replace(class_weights=jnp.tile(jnp.asarray(class_weights), 2))
    count = lax.stop_gradient(boundary_counts(inp, options))
    hard = inp.labels is not None
    return region_loss(inp, options, sums=("tp", "sum_p2") if hard else ("tp", "sum_p2", "sum_g2"),
                       unit_loss=boundary_dou_units,
                       params={"boundary": count, "alpha_max": alpha_max})
