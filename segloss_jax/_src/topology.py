r"""Topology losses: the soft skeleton and clDice (Shit et al. 2021).

The soft skeleton of a map :math:`x \in [0, 1]` (Shit et al., Algorithm 1)
peels :math:`x` by grey-level erosion and keeps, at every step, what an
opening removes:

.. math::

   S_0 = \mathrm{relu}(x_0 - \mathrm{open}(x_0)),\qquad
   x_k = \mathrm{erode}(x_{k-1}),\quad
   \delta_k = \mathrm{relu}(x_k - \mathrm{open}(x_k)),\quad
   S_k = S_{k-1} + \mathrm{relu}(\delta_k - S_{k-1}\,\delta_k)

for :math:`k = 1 \dots K` (``iterations``), with the erosion, dilation and
opening of :mod:`segloss_jax._src.windows` (minimum over the cross,
maximum over the :math:`3^d` box, outside the image never wins).

Memory. Plain autodiff of the :math:`K` steps keeps every intermediate array
of every step for the backward pass (the windows' operands, the openings, the
``relu`` inputs). Here the steps run in a ``lax.scan`` whose body is
rematerialised (``jax.checkpoint``): the backward pass keeps only the carry
:math:`(x_{k-1}, S_{k-1})` of each step and recomputes the step's
intermediates when it gets there. (Unrolled, XLA schedules the recomputation
early and the saving is lost.) The gradient is that of the same formula
(the same operations are differentiated), and it is itself differentiable, so
Hessian-vector products work. ``benchmarks/bench_cldice.py`` measures memory
and time against plain autodiff.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from segloss_jax._src import checks, reduce
from segloss_jax._src.engine import (
    Params,
    RegionOptions,
    Sums,
    ratio,
    reduce_region,
    region_loss,
    region_params,
)
from segloss_jax._src.inputs import Inputs
from segloss_jax._src.region.overlap import dice_sums, dice_units
from segloss_jax._src.registry import register
from segloss_jax._src.skeletonize import tubed_skeleton
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
from segloss_jax._src.windows import check_spatial_ndim, dilate, erode

__all__ = ["cldice_loss", "dice_cldice_loss", "skeleton_recall_loss", "skeleton_target"]


def soft_skeleton(x: jax.Array, spatial_ndim: int, iterations: int) -> jax.Array:
    """The soft skeleton of ``x`` (``[..., *spatial]``, values in ``[0, 1]``).

    Args:
      x: ``[..., *spatial]`` map in ``[0, 1]``; the last ``spatial_ndim`` axes are the image.
      spatial_ndim: number of trailing spatial axes, 1 to 3.
      iterations: number :math:`K \\ge 0` of erosion steps (a Python int); the
        skeleton finds structures up to about :math:`2K + 1` pixels thick.

    Returns:
      The skeleton, shape and dtype of ``x``; in ``[0, 1]`` for ``x`` in ``[0, 1]``.
    """
    checks.check_count("iterations", iterations)
    x = jnp.asarray(x)
    check_spatial_ndim(x, spatial_ndim)

    def peel(x, eroded):  # relu(x − open(x)), open(x) = dilate(erode(x))
        return jax.nn.relu(x - dilate(eroded, spatial_ndim))

    # One step: x_k = erode(x_{k-1}) is both the next map and the erosion inside the
    # opening of x_{k-1}, so each step erodes once. Rematerialised, so its backward
    # keeps only the carry (module docstring).
    @jax.checkpoint
    def step(carry, _):
        x, skel = carry  # x_k, S_{k-1}
        eroded = erode(x, spatial_ndim)
        delta = peel(x, eroded)
        return (eroded, skel + jax.nn.relu(delta - skel * delta)), None

    eroded = erode(x, spatial_ndim)
    (_, skel), _ = lax.scan(step, (eroded, peel(x, eroded)), length=iterations)
    return skel


def _skeletons(inp: Inputs, iterations: int) -> tuple[jax.Array, ...]:
    """``(p, g, S_p, S_g)``, ``[B, *spatial, C]``: excluded pixels are 0 in ``p`` and
    ``g`` before skeletonization; the skeletons are taken per image and class."""
    mask = inp.valid[..., None]
    p = jnp.where(mask, inp.probs, 0)
    g = jnp.where(mask, inp.target, 0)
    spatial_ndim = p.ndim - 2

    def skeleton(v):  # channels-last in and out; the morphology wants trailing spatial axes
        return jnp.moveaxis(soft_skeleton(jnp.moveaxis(v, -1, 1), spatial_ndim, iterations), 1, -1)

    return p, g, skeleton(p), skeleton(lax.stop_gradient(g))


def _cldice(inp: Inputs, options: RegionOptions, iterations: int) -> jax.Array:
    """The reduced clDice loss of prepared inputs."""
    p, g, skel_p, skel_g = _skeletons(inp, iterations)
    # Sums over the valid pixels of each unit (global over axis_name when per_image=False).
    hits_p, sum_skel_p, hits_g, sum_skel_g, sum_g = unit_sums(
        skel_p * g, skel_p, skel_g * p, skel_g, g,
        valid=inp.valid, per_image=options.per_image, axis_name=options.axis_name)
    params = region_params(inp, options)
    t_prec = ratio(hits_p, sum_skel_p, params)  # (Σ S_p·g + s_num) / (Σ S_p + s_den)
    t_sens = ratio(hits_g, sum_skel_g, params)  # (Σ S_g·p + s_num) / (Σ S_g + s_den)
    # Harmonic mean, 0 when both are 0 (only possible with s_num = 0).
    loss = 1 - reduce.safe_div(2 * t_prec * t_sens, t_prec + t_sens)
    return reduce_region(loss, sum_g, options, params)


@register()
def cldice_loss(
    logits: ArrayLike, labels: ArrayLike, *, iterations: int = 3,
    activation: AnyActivation = "softmax", smooth: Smooth = (1.0, 1.0), per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Soft clDice loss (Shit et al.): overlap of skeletons, for thin tubular structures.

    .. math::

       T_{\mathrm{prec}} = \frac{\sum S_p\, g + s_n}{\sum S_p + s_d},\qquad
       T_{\mathrm{sens}} = \frac{\sum S_g\, p + s_n}{\sum S_g + s_d},\qquad
       L = 1 - \frac{2\, T_{\mathrm{prec}} T_{\mathrm{sens}}}{T_{\mathrm{prec}} + T_{\mathrm{sens}}}

    per unit, with :math:`p` the probabilities, :math:`g` the dense target,
    :math:`S_p`, :math:`S_g` their soft skeletons (``iterations`` erosion steps:
    :math:`S = \mathrm{relu}(x - \mathrm{open}(x))`, then :math:`K` times
    :math:`x \leftarrow \mathrm{erode}(x)`, :math:`\delta = \mathrm{relu}(x -
    \mathrm{open}(x))`, :math:`S \leftarrow S + \mathrm{relu}(\delta - S\delta)`;
    erosion = minimum over the cross, dilation = maximum over the :math:`3^d`
    box, outside the image never wins), :math:`(s_n, s_d)` the ``smooth`` pair.
    :math:`T_{\mathrm{prec}}` is the fraction of the predicted skeleton inside
    the target, :math:`T_{\mathrm{sens}}` the fraction of the target skeleton
    covered by the prediction. Each class channel is skeletonized on its own,
    per image; sums run over the valid pixels of a unit as for
    :func:`~segloss_jax.dice_loss`. Excluded pixels (``where``,
    ``ignore_index``) are 0 in :math:`p` and :math:`g` before skeletonization
    and count in no sum. 1 to 3 spatial axes.

    Empty masks: a unit without target (or with no valid pixel) has
    :math:`S_g = 0` and :math:`T_{\mathrm{sens}} = s_n/s_d`; with the default
    equal smooths a unit where neither skeleton has mass has loss 0. When both
    :math:`T` are 0 (only with :math:`s_n = 0`) the loss is 1.

    Memory: the skeleton's backward pass keeps two arrays per iteration (the
    steps are rematerialised), not every intermediate; see the topology page.

    Shared keywords: ``activation``, ``smooth`` (default ``(1.0, 1.0)``, the
    paper's), ``per_image``, ``include_background``, ``classes``,
    ``class_weights``, ``ignore_index``, ``where``, ``axis_name``,
    ``reduction``, as :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets; no gradient.
      iterations: number of erosion steps :math:`K \ge 0` (a Python int): set it
        to about half the thickness, in pixels, of the thickest structure.

    Returns:
      A scalar, or for ``reduction="none"`` the loss of every unit, ``[B, C]``
      (``per_image=True``) or ``[C]``, 0 for dropped units. Float32 (float64
      for float64 inputs).

    MONAI ``SoftclDiceLoss(iter_=k, smooth_nr=a, smooth_dr=d)`` pools all kept
    channels of an image into one unit and adds ``smooth`` (default ``1e-4``,
    which must be positive) to the harmonic mean's denominator; with one kept
    channel (e.g. ``C == 1``, or ``C == 2`` and ``include_background=False``) it
    is ``cldice_loss(iterations=k, smooth=(a, d), per_image=True)`` up to that
    constant (``softmax=True, to_onehot_y=True`` for integer labels).

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.zeros((1, 5, 5), jnp.int32).at[0, 2, :].set(1)  # a thin line
      >>> logits = jnp.where(labels == 1, 3.0, -3.0)[..., None]  # [B=1, 5, 5, C=1]
      >>> @jax.jit
      ... def loss(x):
      ...     return sl.cldice_loss(x, labels, activation="sigmoid")
      >>> print(f"{loss(logits):.4f}")
      0.0202
      >>> broken = logits.at[0, 2, 2, 0].set(-3.0)  # a gap in the line costs more
      >>> print(f"{loss(broken):.4f}")
      0.1052

    References:
      Shit et al., "clDice -- a novel topology-preserving loss function for
      tubular structure segmentation", CVPR 2021 (arXiv:2003.07311).
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    checks.check_count("iterations", iterations)
    inp = options.prepare(logits, labels)
    return _cldice(inp, options, iterations)


@register()
def dice_cldice_loss(
    logits: ArrayLike, labels: ArrayLike, *, lambda_dice: Scalar = 0.5,
    lambda_cldice: Scalar = 0.5, iterations: int = 3,
    activation: AnyActivation = "softmax", smooth: Smooth = (1.0, 1.0), per_image: bool = False,
    include_background: bool = True, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Soft Dice plus soft clDice (Shit et al.), sharing one activation.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{dice}}
         + \lambda_{\mathrm{clDice}}\, L_{\mathrm{clDice}}

    with :math:`L_{\mathrm{dice}}` = :func:`~segloss_jax.dice_loss`
    (:math:`1 - (2tp + s_n)/(2tp + fp + fn + s_d)` per unit) and
    :math:`L_{\mathrm{clDice}}` = :func:`cldice_loss`, both with the same units,
    the same ``smooth`` pair (default ``(1.0, 1.0)`` for both) and the same
    class selection and reduction. The Dice term keeps the region overlap, the
    clDice term the connectivity of thin structures.

    Empty masks: as :func:`~segloss_jax.dice_loss` and :func:`cldice_loss`.

    Shared keywords: ``activation``, ``smooth``, ``per_image``,
    ``include_background``, ``classes``, ``class_weights``, ``ignore_index``,
    ``where``, ``axis_name``, ``reduction``, as :doc:`/conventions` describes;
    all apply to both terms.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``).
      labels: integer ``[B, *spatial]`` or dense ``[B, *spatial, C]`` targets; no gradient.
      lambda_dice: non-negative weight of the Dice term.
      lambda_cldice: non-negative weight of the clDice term (the paper's
        :math:`(1 - \alpha, \alpha)` is ``lambda_dice=1 - a, lambda_cldice=a``).
      iterations: erosion steps of the soft skeleton, as in :func:`cldice_loss`.

    Returns:
      As :func:`cldice_loss`: a scalar, or every unit for ``reduction="none"``.

    MONAI ``SoftDiceclDiceLoss(iter_=k, alpha=a, smooth_nr=s, smooth_dr=d)``
    averages its Dice term over the kept channels of each image and pools them
    into one unit for its clDice term (adding ``smooth=1e-4`` to the harmonic
    mean): with one kept channel it is ``dice_cldice_loss(lambda_dice=1 - a,
    lambda_cldice=a, iterations=k, smooth=(s, d), per_image=True)`` up to that
    constant.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.zeros((1, 5, 5), jnp.int32).at[0, 2, :].set(1)
      >>> logits = jnp.where(labels == 1, 3.0, -3.0)[..., None]
      >>> loss_fn = jax.jit(lambda x, y: sl.dice_cldice_loss(x, y, activation="sigmoid"))
      >>> print(f"{loss_fn(logits, labels):.4f}")
      0.0607

    References:
      Shit et al., "clDice -- a novel topology-preserving loss function for
      tubular structure segmentation", CVPR 2021 (arXiv:2003.07311).
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    checks.check_nonnegative("lambda_dice", lambda_dice)
    checks.check_nonnegative("lambda_cldice", lambda_cldice)
    checks.check_count("iterations", iterations)
    inp = options.prepare(logits, labels)
    dice = region_loss(inp, options, sums=dice_sums(False), unit_loss=dice_units)
    return lambda_dice * dice + lambda_cldice * _cldice(inp, options, iterations)


# --- Skeleton Recall (Kirchhoff et al. 2024) ------------------------------------------------


def _check_skeleton_labels(labels: jax.Array, name: str) -> None:
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise TypeError(f"`{name}` must hold integer class indices, got dtype {labels.dtype}.")
    if labels.ndim not in (3, 4):
        raise ValueError(f"`{name}` must be [B, H, W] or [B, D, H, W] (2 or 3 spatial axes), "
                         f"got shape {labels.shape}.")


def _skeleton_target(foreground: jax.Array, labels: jax.Array, tube: bool) -> jax.Array:
    """The class of ``labels`` under the (tubed) skeleton of each image's ``foreground``.

    One image after the other (``lax.map``): each stops thinning when it is done, and
    ``checkify`` (the label checks) accepts the loop, which it does not when batched.
    """
    skeleton = lax.map(lambda mask: tubed_skeleton(mask, tube=tube), foreground)
    return jnp.where(skeleton, labels, jnp.zeros_like(labels))


def skeleton_target(labels: ArrayLike, *, tube: bool = True) -> jax.Array:
    r"""Skeleton Recall's target (Kirchhoff et al.): the class under the tubed skeleton.

    .. math::

       s = \mathrm{skeletonize}(y \neq 0), \qquad
       t = \mathrm{tube}(s) \cdot y

    per image: one skeleton of the union of the non-zero labels
    (:func:`skeletonize`, equal to scikit-image's: Zhang in 2D, Lee in 3D), with
    ``tube`` dilated twice by the face-neighbour cross (every element within L1
    distance 2; nothing outside the image), then multiplied by the labels. The
    result holds the class under each skeleton element and 0 elsewhere. An ignore
    label counts as foreground, as nnU-Net's ``SkeletonTransform`` does, so the
    tube holds the ignore label where it crosses ignored elements. Jit-able, no
    host round trip: for a data pipeline or inside the training step
    (:func:`skeleton_recall_loss` computes it when given no ``skeleton``).

    Empty masks: an image without foreground gives zeros.

    Args:
      labels: integer (or bool) ``[B, H, W]`` or ``[B, D, H, W]`` class indices.
      tube: dilate the skeleton twice by the face-neighbour cross (nnU-Net's
        ``do_tube``, default ``True``).

    Returns:
      The target, shape and dtype of ``labels``.

    nnU-Net's ``SkeletonTransform(do_tube=t)`` appends this (``tube=t``) to the
    segmentation, image by image.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.zeros((1, 5, 7), jnp.int32).at[0, 1:4, 1:6].set(2)
      >>> print(sl.skeleton_target(labels, tube=False)[0])
      [[0 0 0 0 0 0 0]
       [0 0 0 0 2 0 0]
       [0 2 2 2 0 0 0]
       [0 0 0 0 0 0 0]
       [0 0 0 0 0 0 0]]

    References:
      Kirchhoff, Rokuss, Roy, Kovacs, Ulrich, Wald, Zenk, Vollmuth, Kleesiek,
      Isensee & Maier-Hein, "Skeleton Recall Loss for connectivity conserving and
      resource efficient segmentation of thin tubular structures", ECCV 2024
      (arXiv:2404.03010).
    """
    labels = jnp.asarray(labels)
    _check_skeleton_labels(labels, "labels")
    checks.check_bool("tube", tube)
    return _skeleton_target(labels != 0, labels, tube)


@register(labels=("integer",))
def skeleton_recall_loss(
    logits: ArrayLike, labels: ArrayLike, *, skeleton: ArrayLike | None = None,
    activation: AnyActivation = "softmax", smooth: Smooth = 1e-5, per_image: bool = False,
    include_background: bool = False, classes: ClassMode = "all",
    class_weights: ArrayLike | None = None, ignore_index: int | None = None,
    where: ArrayLike | None = None, axis_name: AxisName = None, reduction: Reduction = "mean",
) -> jax.Array:
    r"""Skeleton Recall loss (Kirchhoff et al.): soft recall of the tubed target skeleton.

    .. math::

       \mathrm{rec}_c = \frac{\sum_i p_{ic}\,[s_i = c] + s_n}{\sum_i [s_i = c] + s_d},
       \qquad L_c = 1 - \mathrm{rec}_c

    per unit (class :math:`c \ge 1` over the batch, or image and class with
    ``per_image=True``), then the mean over units. :math:`p` are the
    probabilities, :math:`s` the skeleton target (:func:`skeleton_target`: the
    class under the tubed skeleton of the labels), :math:`(s_n, s_d)` the
    ``smooth`` pair. The skeleton needs no gradient: it is computed from the labels
    inside the step when ``skeleton`` is None, or precomputed (e.g. in the data
    pipeline, or with another ``tube``) and passed in. Recall only: predicting
    the thin structure's centre line is rewarded, whatever its width, so use it
    with a region or cross-entropy loss (nnU-Net adds it to Dice + CE).

    Excluded elements (``where``, ``ignore_index``) count in no sum. For the
    in-graph skeleton they are foreground, whatever their label (the ignore label
    is non-zero, as in nnU-Net), so their labels cannot move the skeleton.

    Empty masks: a unit without skeleton scores loss 0 (whatever ``smooth``),
    with zero gradient; its prediction is not penalised.

    Background: class 0 has no skeleton of its own, so ``include_background``
    defaults to ``False`` and ``True`` with ``C > 1`` is a ``ValueError`` (as
    nnU-Net's ``do_bg=True``). With ``C == 1`` (sigmoid) the channel is the
    foreground: label 1.

    Shared keywords: ``activation``, ``smooth``, ``per_image``, ``classes``
    (``"present"``: units whose skeleton has the class), ``class_weights``,
    ``ignore_index``, ``where``, ``axis_name``, ``reduction``, as
    :doc:`/conventions` describes.

    Args:
      logits: ``[B, *spatial, C]`` logits (probabilities if ``activation=None``),
        2 or 3 spatial axes.
      labels: integer ``[B, *spatial]`` class indices (dense labels raise a
        ``ValueError``: the skeleton is taken of the labels).
      skeleton: ``None`` (computed in the step: ``skeleton_target(labels)`` with
        the excluded elements as foreground), or an integer ``[B, *spatial]``
        skeleton target.

    Returns:
      A scalar, or for ``reduction="none"`` the loss of every unit, ``[B, C]``
      (``per_image=True``) or ``[C]``, 0 for dropped units. Float32 (float64 for
      float64 inputs).

    nnU-Net's ``SoftSkeletonRecallLoss(apply_nonlin=softmax, batch_dice=b,
    do_bg=False, smooth=s)(x, t, loss_mask=m)`` returns :math:`-\mathrm{rec}`:
    it is ``skeleton_recall_loss(x, y, skeleton=t, per_image=not b, smooth=s,
    where=m) - 1`` (the same gradient), with ``t`` its ``SkeletonTransform``
    channel (:func:`skeleton_target`). Its trainer's loss (CE + Dice without
    background + recall) is a :func:`~segloss_jax.combine` of the three: see the
    topology page.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.zeros((1, 7, 7), jnp.int32).at[0, 3, :].set(1)  # a thin line
      >>> logits = 3.0 * (2.0 * labels - 1.0)[..., None]  # ±3, [B=1, 7, 7, C=1]
      >>> @jax.jit
      ... def loss(x):
      ...     return sl.skeleton_recall_loss(x, labels, activation="sigmoid")
      >>> gap = logits.at[0, 3, 3, 0].set(-3.0)  # a gap in the line costs more
      >>> print(f"{loss(logits):.4f} {loss(gap):.4f}")
      0.0474 0.1767

    References:
      Kirchhoff et al., "Skeleton Recall Loss for connectivity conserving and
      resource efficient segmentation of thin tubular structures", ECCV 2024
      (arXiv:2404.03010).
    """
    options = RegionOptions(activation=activation, smooth=smooth, per_image=per_image,
                            include_background=include_background, classes=classes,
                            class_weights=class_weights, ignore_index=ignore_index, where=where,
                            axis_name=axis_name, reduction=reduction)
    inp = options.prepare(logits, labels)
    if inp.labels is None:
        raise ValueError("skeleton_recall_loss takes integer `labels` [B, *spatial] (the "
                         f"skeleton is taken of them), got dense labels of shape "
                         f"{inp.target.shape}.")
    if include_background and inp.num_classes > 1:
        raise ValueError("skeleton_recall_loss: `include_background=True` with C = "
                         f"{inp.num_classes} classes; the background has no skeleton target. "
                         "Leave it False.")
    _check_skeleton_labels(inp.labels, "labels")
    if skeleton is None:
        skeleton = _skeleton_target((inp.labels != 0) | ~inp.valid, inp.labels, tube=True)
    else:
        skeleton = jnp.asarray(skeleton)
        _check_skeleton_labels(skeleton, "skeleton")
        if skeleton.shape != inp.labels.shape:
            raise ValueError(f"`skeleton` must have the shape of `labels`, {inp.labels.shape}; "
                             f"got {skeleton.shape}.")
    # The region engine (one fused backward pass), with the skeleton as the labels:
    # tp = Σ p·[s = c] and sum_g = Σ [s = c] over the valid elements of each unit.
    on_skeleton = Inputs(inp.x, inp.target, inp.valid, skeleton, inp.activation,
                         fields={"probs": inp.probs})
    return region_loss(on_skeleton, options, sums=("tp", "sum_g"), unit_loss=_recall_units)


def _recall_units(s: Sums, params: Params) -> jax.Array:
    """``1 − (Σ p·t + s_n)/(Σ t + s_d)`` per unit; 0 for a unit without skeleton."""
    return jnp.where(s.sum_g > 0, 1 - ratio(s.tp, s.sum_g, params), 0)
