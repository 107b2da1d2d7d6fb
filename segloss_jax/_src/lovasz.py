r"""Lovász losses: convex surrogates of the Jaccard loss (Berman et al., CVPR 2018).

For a unit (one image, or the whole batch) of :math:`n` pixels with binary
ground truth :math:`g` and errors :math:`e \ge 0`, the Lovász extension of the
Jaccard loss :math:`\Delta_J` is

.. math::

   \overline{\Delta_J}(e) = \sum_{k=1}^{n} e_{\pi(k)}
       \left[\Delta_J(\{\pi(1), \dots, \pi(k)\}) - \Delta_J(\{\pi(1), \dots, \pi(k-1)\})\right],
   \qquad \Delta_J(M) = 1 - \frac{|g \setminus M|}{|g \cup M|},

with :math:`\pi` an order of decreasing errors. The bracket (the *Lovász
gradient*) has a closed form in the number :math:`c_k` of foreground pixels
among the first :math:`k` and :math:`P = c_n`: with the union before step
:math:`k`, :math:`U = P + (k-1) - c_{k-1}`, it is :math:`1/U` at a foreground
pixel and :math:`(P - c_k)/(U(U+1))` at a background one (:math:`1` when
:math:`U = 0`, a unit without foreground). Computing it directly, rather than as
a difference of two Jaccard values, keeps every entry exact to a few ulps, and
needs one running count of the foreground.

How it is computed. Everything costs one sort per unit: the errors, the
foreground bit and the pixel position are packed into one ``uint64`` key
``[error bits (32) | position (31) | foreground (1)]`` (non-negative float32
errors order like their bit patterns) and sorted with a single-operand sort,
which XLA:CPU runs faster than a float, ``argsort`` or key-value sort, and a
``uint64`` sort about as fast as a ``uint32`` one (benchmarks/RESULTS.md). A 32-bit key
would have to quantise the errors, and an order that is wrong within a
quantisation step gives a smaller value than the Lovász extension (any other
order gives a vertex of the base polytope, not the maximising one), so the
errors keep all their bits. The forward pass unpacks the sorted errors and labels, the backward pass
(a :func:`jax.custom_vjp`) scatters the Lovász gradient to the positions it
carried: no second sort, no autodiff through the sort. Excluded pixels get the
largest key, so they sort after every valid pixel with zero error and leave
both the value and the gradient of the valid pixels unchanged; their own
gradient is exactly zero. Float64 errors (under ``jax_enable_x64``) do not fit
the packed key and use a two-operand sort with the same order.

Ties. Pixels with equal errors are ordered by their position in the unit
(row-major over ``[B, *spatial]`` when ``per_image=False``), the order of a
stable sort. The value does not depend on it; the gradient is then the
gradient of the Lovász extension on the cell where that order is valid, a
vertex of the subdifferential: a valid, deterministic subgradient.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from segloss_jax._src import backend, checks, stats
from segloss_jax._src.inputs import prepare
from segloss_jax._src.reduce import kept_units, reduce_units
from segloss_jax._src.registry import register
from segloss_jax._src.types import AnyActivation

__all__ = ["lovasz_softmax_loss", "lovasz_hinge_loss"]

# A pixel position takes 31 bits of the packed key (bit 0 is the foreground bit).
_MAX_UNIT_PIXELS = 2**31


# ----------------------------------------------------------------------------- the kernel


def _order_bits(errors: jax.Array, valid: jax.Array, uint, sign_bit: int) -> jax.Array:
    """Unsigned keys that sort valid errors in decreasing order, excluded pixels last.

    For non-negative floats the bit pattern orders like the value; ``max - bits``
    reverses it. ``-0.0`` (sign bit set) is mapped to ``+0.0`` by masking the sign
    bit; NaN keeps a pattern above infinity (it sorts first and poisons the value).
    """
    magnitude = jnp.asarray(sign_bit - 1, uint)
    bits = lax.bitcast_convert_type(jnp.maximum(errors, 0), uint) & magnitude
    return jnp.where(valid, magnitude - bits, jnp.asarray(sign_bit, uint))


def _unpack_errors(order: jax.Array, dtype, sign_bit: int) -> jax.Array:
    """Inverse of :func:`_order_bits`; excluded pixels decode to 0."""
    magnitude = jnp.asarray(sign_bit - 1, order.dtype)
    excluded = order >= jnp.asarray(sign_bit, order.dtype)
    return jnp.where(excluded, 0, lax.bitcast_convert_type(magnitude - order, dtype))


def _sort_units(errors: jax.Array, positive: jax.Array, valid: jax.Array):
    """Sorts every row ``[..., n]`` by decreasing error, excluded pixels last.

    Returns the sorted errors, the sorted foreground indicator (int32) and the
    original position of each sorted entry (int32). Ties are broken by position.
    """
    axis = errors.ndim - 1
    position = lax.broadcasted_iota(jnp.uint32, errors.shape, axis)
    low = (position << 1) | (positive & valid).astype(jnp.uint32)
    # uint64 exists only with x64 enabled: a local scope, every array leaving it is 32-bit.
    with jax.enable_x64(True):
        if errors.dtype == jnp.float32:
            order = _order_bits(errors, valid, jnp.uint32, 2**31)
            key = (order.astype(jnp.uint64) << jnp.uint64(32)) | low.astype(jnp.uint64)
            # Keys are unique (they hold the position), so stability is irrelevant.
            key = lax.sort(key, dimension=axis, is_stable=False)
            order = (key >> jnp.uint64(32)).astype(jnp.uint32)
            low = key.astype(jnp.uint32)
            sorted_errors = _unpack_errors(order, jnp.float32, 2**31)
        else:  # float64: 63 error bits leave no room, sort (error, position) pairs.
            order = _order_bits(errors, valid, jnp.uint64, 2**63)
            order, low = lax.sort((order, low), dimension=axis, num_keys=2, is_stable=False)
            sorted_errors = _unpack_errors(order, errors.dtype, 2**63)
    return sorted_errors, (low & 1).astype(jnp.int32), (low >> 1).astype(jnp.int32)


def _lovasz_gradient(positive_sorted: jax.Array, dtype) -> jax.Array:
    """Lovász gradient of the Jaccard loss along the sorted order (module docstring)."""
    axis = positive_sorted.ndim - 1
    count = jnp.cumsum(positive_sorted, axis=axis)  # c_k: foreground among the first k
    total = count[..., -1:]  # P
    rank = lax.broadcasted_iota(jnp.int32, positive_sorted.shape, axis)  # k - 1
    union_before = (total + rank - (count - positive_sorted)).astype(dtype)
    foreground = positive_sorted == 1
    # One division: 1 / U at a foreground pixel, (P - c_k) / (U (U + 1)) at a background
    # one. U is 0 only at the first pixel of a unit without foreground, where the step is 1.
    empty = union_before == 0
    numerator = jnp.where(foreground, 1, (total - count).astype(dtype) + empty)
    denominator = jnp.where(foreground, union_before, union_before * (union_before + 1)) + empty
    return numerator / denominator


def _forward_rows(errors: jax.Array, positive: jax.Array, valid: jax.Array):
    sorted_errors, positive_sorted, position = _sort_units(errors, positive, valid)
    gradient = _lovasz_gradient(positive_sorted, errors.dtype)
    # Every term is non-negative: the sum is accurate without compensation.
    return jnp.sum(sorted_errors * gradient, axis=-1), (position, gradient)


def _forward(errors: jax.Array, positive: jax.Array, valid: jax.Array):
    """Per-row value, and the residuals of the backward pass per group of rows."""
    parts = [_forward_rows(errors[g], positive[g], valid[g])
             for g in backend.lovasz_row_groups(len(errors))]
    return jnp.concatenate([value for value, _ in parts]), tuple(res for _, res in parts)


# The passes are jitted so that eager calls compile one program each, not every small op.
@jax.custom_vjp
@jax.jit
def _lovasz_jaccard(errors: jax.Array, positive: jax.Array, valid: jax.Array) -> jax.Array:
    """Lovász extension of the Jaccard loss of every row: ``[U, n] -> [U]``.

    ``errors`` (float, ``>= 0``), ``positive`` and ``valid`` (bool) are ``[U, n]``.
    """
    return _forward(errors, positive, valid)[0]


_lovasz_jaccard_fwd = jax.jit(_forward)


@jax.jit
def _lovasz_jaccard_bwd(residuals, cotangent):
    bounds = np.cumsum([0] + [position.shape[0] for position, _ in residuals])
    d_errors = [_scatter_rows(position, gradient, cotangent[lo:hi])
                for (position, gradient), lo, hi in zip(residuals, bounds[:-1], bounds[1:],
                                                            strict=True)]
    return jnp.concatenate(d_errors), None, None


def _scatter_rows(position: jax.Array, gradient: jax.Array, cotangent: jax.Array) -> jax.Array:
    # The sort is a permutation: scatter each step back to the pixel it came from. Every
    # entry is written, so the (dead) residual serves as the operand: no zero fill.
    row = lax.broadcasted_iota(jnp.int32, (position.shape[0], 1), 0)
    return gradient.at[row, position].set(gradient * cotangent[:, None], unique_indices=True,
                                          mode="promise_in_bounds")


_lovasz_jaccard.defvjp(_lovasz_jaccard_fwd, _lovasz_jaccard_bwd)


def _check_unit_size(pixels: int) -> None:
    if pixels >= _MAX_UNIT_PIXELS:
        raise ValueError(
            f"A Lovász unit has {pixels} pixels; at most {_MAX_UNIT_PIXELS - 1} are supported "
            "(the pixel position is packed into 31 bits). Use `per_image=True` or split the batch."
        )


def _unit_rows(x: jax.Array, per_image: bool) -> jax.Array:
    """``[B, N, C]`` -> rows ``[B * C, N]`` (per image) or ``[C, B * N]``."""
    batch, pixels, classes = x.shape
    if per_image:
        return jnp.swapaxes(x, 1, 2).reshape(batch * classes, pixels)
    return x.reshape(batch * pixels, classes).T


def _gather_units(rows: list[jax.Array], per_image: bool, axis_name: str | None):
    """With ``axis_name`` and batch units, the unit rows ``[units, pixels]`` of every
    device, concatenated along the pixels: the Lovász extension needs one sort of the
    whole unit, which (unlike a sum) cannot be assembled from per-device parts.
    Per-image units stay local; their mean is taken across devices later.

    The concatenation is a ``psum`` of each device's rows placed at its offset in
    zeros (exact: ``x + 0 = x``) rather than an ``all_gather``: the result is then
    replicated in JAX's typing and the gradient reaching each device is that of the
    one global loss w.r.t. its own shard, as for the psum-ed region statistics (the
    transpose of ``all_gather`` would add up every device's copy of it).
    """
    if axis_name is None or per_image:
        return rows
    index, devices = jax.lax.axis_index(axis_name), jax.lax.axis_size(axis_name)

    def gather(row: jax.Array) -> jax.Array:
        units, pixels = row.shape
        values = row.astype(jnp.int32) if row.dtype == jnp.bool_ else row
        placed = jax.lax.dynamic_update_slice(
            jnp.zeros((units, pixels * devices), values.dtype), values, (0, index * pixels))
        full = jax.lax.psum(placed, axis_name)
        return full.astype(jnp.bool_) if row.dtype == jnp.bool_ else full

    return [gather(row) for row in rows]


# ----------------------------------------------------------------------------- public losses


@register()
def lovasz_softmax_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    per_image: bool = False,
    classes: str = "present",
    activation: AnyActivation = "softmax",
    class_weights: chex.Array | None = None,
    include_background: bool = True,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    axis_name: str | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Lovász-softmax loss: the Lovász extension of the Jaccard loss of each class.

    .. math::

       L_c = \overline{\Delta_{J_c}}(e_c), \qquad e_{c,i} = |g_{c,i} - p_{c,i}|,
       \qquad L = \frac{\sum_c w_c L_c}{\sum_c w_c}

    with :math:`p` the probabilities, :math:`g_c \in \{0, 1\}` the ground truth of
    class :math:`c` and :math:`\overline{\Delta_J}` the Lovász extension of the
    Jaccard loss over the valid pixels of a unit (see the module docstring), a
    piecewise-linear convex surrogate that equals the Jaccard loss
    :math:`1 - |g \cap \hat y| / |g \cup \hat y|` when :math:`p` is binary. A unit is
    (image, class) with ``per_image=True``, a class over the whole batch otherwise.
    The value is exact (one sort per unit, ties between equal errors broken by
    pixel position); the gradient comes from a custom VJP reusing that sort.

    Empty units: with ``classes="present"`` (default) only units whose valid
    pixels contain the class count; with ``classes="all"`` a class absent from a
    unit is kept and its loss is the largest error :math:`\max_i p_{c,i}`. A unit
    without any valid pixel never counts. ``reduction="mean"`` averages the kept
    classes of each image, then the images that kept one (0 when none did).

    Args:
      logits: ``[B, *spatial, C]`` logits (1 to 3 spatial axes), or probabilities
        with ``activation=None``.
      labels: integer ``[B, *spatial]`` class indices (``C == 1``: 0/1 foreground)
        or dense ``[B, *spatial, C]`` targets. The Lovász extension needs binary
        ground truth, so dense targets are binarised at ``g > 0.5``: one-hot and
        label-smoothed targets give the integer-label loss; soft targets are not
        otherwise supported.
      per_image: units are (image, class) pairs instead of classes over the batch.
      classes: ``"present"`` or ``"all"`` (see above).
      activation: ``"softmax"`` (default), ``"sigmoid"`` (each channel a binary
        problem; ``C == 1`` is binary segmentation) or ``None`` (probabilities).
      class_weights: optional ``[C]`` non-negative weights of the class average.
      include_background: ``False`` drops class 0 from the average (``C > 1``).
      where: optional bool ``[B, *spatial]``; ``False`` pixels are left out of
        every unit, as if cropped away.
      ignore_index: integer label value treated as ``where=False``.
      axis_name: mapped axis (``shard_map``/``pmap``) over which the batch is split.
        With ``per_image=False`` every device gathers the unit's errors from all
        devices and returns the loss of the concatenated batch, as
        one device would; with ``per_image=True`` units stay local and the mean over
        images is taken across devices.
      reduction: ``"mean"``, ``"sum"`` (``Σ w_c L`` over kept units) or
        ``"none"`` (``[B, C]`` with ``per_image=True``, else ``[C]``; 0 at units
        that do not count).

    Returns:
      A scalar, or ``[B, C]``/``[C]`` for ``reduction="none"``; float32 (float64
      for float64 inputs).

    Peer equivalence (channels-first there): with ``activation="softmax"``,
    integer labels and every image holding a valid pixel, this equals
    segmentation_models_pytorch ``LovaszLoss(mode="multiclass",
    per_image=per_image, ignore_index=ignore_index)`` (which uses
    ``classes="present"``) and, given ``softmax(logits)``, the authors'
    ``lovasz_softmax(probas, labels, classes=classes, per_image=per_image,
    ignore=ignore_index)`` (bermanmaxim/LovaszSoftmax, PyTorch; its default is
    ``classes="present"`` too). Differences: with ``per_image=True``, an image whose
    pixels are all ignored yields an empty tensor there (the per-image mean then
    fails or is empty); here it is left out of the mean. Their ``torch.sort`` is not
    stable, so at tied errors their gradient may be another valid subgradient;
    values agree.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[[2.0, 0.0], [0.5, 1.0], [0.0, 3.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 0, 1, 1]])  # [B=1, W=4], C=2
      >>> print(f"{sl.lovasz_softmax_loss(logits, labels):.4f}")
      0.4910

    References:
      Berman, Rannen Triki & Blaschko, "The Lovász-Softmax loss: a tractable
      surrogate for the optimization of the intersection-over-union measure in
      neural networks", CVPR 2018.
    """
    inp = prepare(logits, labels, activation=activation, where=where,
                  ignore_index=ignore_index)
    checks.check_reduction(reduction)
    checks.check_classes(classes)
    checks.check_class_weights(class_weights, inp.num_classes)

    batch, num_classes = inp.x.shape[0], inp.num_classes
    probs = inp.probs.reshape(batch, -1, num_classes)
    valid = inp.valid.reshape(batch, -1, 1)
    foreground = inp.target > 0.5
    positive = foreground.reshape(probs.shape) & valid
    # |g - p| for binary g; excluded pixels get error 0 and, through `where`, zero gradient.
    errors = jnp.where(valid, jnp.where(positive, 1 - probs, probs), 0)

    rows = [_unit_rows(x, per_image)
            for x in (errors, positive, jnp.broadcast_to(valid, probs.shape))]
    rows = _gather_units(rows, per_image, axis_name)
    _check_unit_size(rows[0].shape[-1])
    loss = _lovasz_jaccard(*rows)

    # Foreground and valid pixels per unit, from the statistics core (no gradient).
    foreground_sum, valid_count = stats.unit_sums(
        foreground.astype(inp.dtype), jnp.ones_like(inp.x[..., :1]), valid=inp.valid,
        per_image=per_image, axis_name=axis_name)
    has_pixels = jnp.broadcast_to(valid_count > 0, foreground_sum.shape)
    keep = kept_units(foreground_sum, include_background=include_background,
                      classes=classes) & has_pixels
    return reduce_units(loss.reshape(foreground_sum.shape), keep, reduction=reduction,
                        class_weights=class_weights,
                        axis_name=axis_name if per_image else None)


def _binary_inputs(logits: chex.Array, labels: chex.Array):
    """Adds the channel axis to channel-less ``[B, *spatial]`` logits (and dense labels).

    Integer (or bool) labels of the shape of ``logits`` mean channel-less logits;
    floating labels of that shape are dense ``[B, *spatial, 1]`` targets when the
    last axis has size 1 (both readings agree then), else channel-less too.
    """
    logits_shape, labels_shape = np.shape(logits), np.shape(labels)
    if labels_shape == logits_shape and len(logits_shape) >= 2:
        dtype = jnp.result_type(labels)
        is_float = jnp.issubdtype(dtype, jnp.floating)
        if not is_float and not (dtype == jnp.bool_ and logits_shape[-1] == 1):
            return jnp.asarray(logits)[..., None], labels
        if is_float and logits_shape[-1] != 1:
            return jnp.asarray(logits)[..., None], jnp.asarray(labels)[..., None]
    if len(logits_shape) >= 3 and logits_shape[-1] != 1 and labels_shape == logits_shape[:-1]:
        raise ValueError(
            f"`lovasz_hinge_loss` is binary: `logits` must have shape [B, *spatial, 1] or "
            f"[B, *spatial], got {logits_shape} ({logits_shape[-1]} channels) with labels of "
            f"shape {labels_shape}; use `lovasz_softmax_loss` for several classes."
        )
    return logits, labels


@register()
def lovasz_hinge_loss(
    logits: chex.Array,
    labels: chex.Array,
    *,
    per_image: bool = True,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    axis_name: str | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Lovász hinge loss: the Lovász extension of the binary Jaccard loss of hinge errors.

    .. math::

       L = \overline{\Delta_J}\big(\max(0,\ 1 - x_i s_i)\big), \qquad s_i = 2 g_i - 1

    with :math:`x` the raw logits (no activation: the margin :math:`x s` is
    what the hinge penalises), :math:`g \in \{0, 1\}` the foreground and
    :math:`\overline{\Delta_J}` the Lovász extension of the Jaccard loss of the
    foreground over the valid pixels of a unit (module docstring). A unit is an
    image (``per_image=True``, the default, as in the paper) or the whole batch.
    A unit without foreground is kept: its loss is the largest hinge error (any
    false positive makes its Jaccard loss 1). A unit without valid pixels does
    not count. The value is exact (one sort per unit, ties broken by pixel
    position); the gradient, :math:`-s_i [1 - x_i s_i > 0]` times the Lovász
    gradient, comes from a custom VJP reusing that sort.

    The loss takes no ``activation``: it is defined on logits.

    Args:
      logits: ``[B, *spatial, 1]`` or channel-less ``[B, *spatial]`` logits (1 to 3
        spatial axes).
      labels: integer 0/1 ``[B, *spatial]`` or dense ``[B, *spatial, 1]`` (or
        ``[B, *spatial]`` with channel-less logits) targets, binarised at ``g > 0.5``.
      per_image: one unit per image (default) or one for the whole batch.
      where: optional bool ``[B, *spatial]``; ``False`` pixels are left out.
      ignore_index: integer label value treated as ``where=False``.
      axis_name: mapped axis (``shard_map``/``pmap``) over which the batch is split.
        With ``per_image=False`` every device gathers the unit's errors from all
        devices and returns the loss of the concatenated batch, as
        one device would; with ``per_image=True`` units stay local and the mean over
        images is taken across devices.
      reduction: ``"mean"`` over the units with a valid pixel (0 if none),
        ``"sum"``, or ``"none"`` (``[B]`` with ``per_image=True``, else a scalar;
        0 for a unit without valid pixels).

    Returns:
      A scalar, or ``[B]`` for ``reduction="none"`` with ``per_image=True``;
      float32 (float64 for float64 inputs).

    Peer equivalence: with every image holding a valid pixel, this equals
    segmentation_models_pytorch ``LovaszLoss(mode="binary", per_image=per_image,
    ignore_index=ignore_index)`` on ``[B, 1, *spatial]`` logits (note smp's
    default ``per_image=False``) and the authors' ``lovasz_hinge(logits, labels,
    per_image=per_image, ignore=ignore_index)`` (bermanmaxim/LovaszSoftmax,
    PyTorch, default ``per_image=True``). Both use ``relu`` hinge errors, as here
    (the ``elu(e) + 1`` variant found in some forks is not this loss), and both
    count an image whose pixels are all ignored as 0 in the mean, where it is
    left out here.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> logits = jnp.array([[2.0, -0.5, 0.3, -2.0]])  # [B=1, W=4], channel-less
      >>> labels = jnp.array([[1, 1, 0, 0]])
      >>> print(f"{sl.lovasz_hinge_loss(logits, labels):.4f}")
      0.9667

    References:
      Berman, Rannen Triki & Blaschko, "The Lovász-Softmax loss: a tractable
      surrogate for the optimization of the intersection-over-union measure in
      neural networks", CVPR 2018.
    """
    logits, labels = _binary_inputs(logits, labels)
    inp = prepare(logits, labels, activation=None, where=where, ignore_index=ignore_index,
                  allowed_activations=(None,))
    checks.check_reduction(reduction)
    if inp.num_classes != 1:
        raise ValueError(
            f"`lovasz_hinge_loss` is binary: `logits` must have shape [B, *spatial, 1] or "
            f"[B, *spatial], got {np.shape(logits)}; use `lovasz_softmax_loss` for several "
            "classes."
        )

    batch = inp.valid.shape[0]
    x = inp.x.reshape(batch, -1)
    valid = inp.valid.reshape(batch, -1)
    positive = (inp.target > 0.5).reshape(batch, -1) & valid
    errors = jax.nn.relu(1 - x * jnp.where(positive, 1, -1).astype(x.dtype))
    errors = jnp.where(valid, errors, 0)

    if not per_image:
        errors, positive, valid = (a.reshape(1, -1) for a in (errors, positive, valid))
    errors, positive, valid = _gather_units([errors, positive, valid], per_image, axis_name)
    _check_unit_size(errors.shape[-1])
    loss = _lovasz_jaccard(errors, positive, valid)[:, None]
    keep = jnp.any(valid, axis=-1)[:, None]
    loss = reduce_units(loss, keep, reduction=reduction,
                        axis_name=axis_name if per_image else None)
    if reduction == "none":
        return loss[:, 0] if per_image else loss[0, 0]
    return loss
