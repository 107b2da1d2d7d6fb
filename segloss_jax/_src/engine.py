r"""The region-loss engine: unit sums -> per-unit loss -> class selection and reduction.

Every region loss is a function of a few sums per *unit* (image ``b`` and class
``c`` with ``per_image=True``, class ``c`` over the batch otherwise), each sum
taken over the valid pixels of the unit:

.. math::

   S_k = \sum_{i \in V} f_k(p_i, g_i),
   \qquad f_k \in \{\, p g,\ p,\ g,\ p^2,\ g^2,\ |p - g|,\ (g - p)^2 g,\ 1,\ \dots \}

with :math:`p` the probabilities and :math:`g` the dense target (the table
:data:`TERMS`). A loss module supplies the names of the sums it needs and its
per-unit formula :math:`L(S)`; :func:`region_loss` does the rest.

Gradient. By the chain rule, at pixel :math:`i` of unit :math:`u`

.. math::

   \frac{\partial L}{\partial p_i} = \sum_k \frac{\partial L}{\partial S_{k,u}}\,
   \frac{\partial f_k}{\partial p}(p_i, g_i),

a per-unit scalar times a per-pixel elementwise term. So every region loss
shares one ``jax.custom_vjp``: the forward pass takes the probabilities already
computed by :class:`~segloss_jax._src.inputs.Inputs` (no second activation),
forms the sums (``psum``-ed over ``axis_name`` when ``per_image=False``) and
:math:`L`, and saves the probabilities and the sums. The backward pass gets
:math:`\partial L / \partial S` by autodiff of the tiny function :math:`L(S)`
(``[B, C]``-sized), then does one fused elementwise pass over the pixels: the
line above, the mask, and the activation's Jacobian (softmax:
:math:`dx = p \odot (dp - \sum_c p_c\, dp_c)`; sigmoid: :math:`dx = p(1 - p)\, dp`).
Plain autodiff of the same formulas keeps one residual per intermediate array
and runs several reductions backwards (``benchmarks/bench_region.py``).

Conventions (documented on the conventions page): a score
:math:`(n + s_n)/(d + s_d)` whose denominator is 0 even after smoothing is 1,
with zero gradient, never NaN; labels, ``where`` and the validity mask receive
no gradient, and excluded pixels get exactly zero gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from segloss_jax._src import backend, checks, inputs, reduce, stats
from segloss_jax._src.types import ACTIVATIONS, ArrayLike, AxisName, Smooth

Params = dict[str, jax.Array]


class RegionOptions(NamedTuple):
    """The keywords every region-style loss takes (see the conventions page), as one
    record handed down from the loss's signature to the engine."""

    activation: str | None = "softmax"
    smooth: Smooth = 1e-5  # a scalar, or a pair (s_num, s_den)
    per_image: bool = False
    include_background: bool = True
    classes: str = "all"
    class_weights: ArrayLike | None = None
    ignore_index: int | None = None
    where: ArrayLike | None = None
    axis_name: AxisName = None
    reduction: str = "mean"

    def prepare(self, logits: ArrayLike, labels: ArrayLike, *,
                allowed_activations: tuple[str | None, ...] = ACTIVATIONS,
                pixel_weights: ArrayLike | None = None) -> inputs.Inputs:
        """Checks these options and the arrays; returns the prepared inputs (with the
        per-pixel weights of a compound's pixel term, when given)."""
        inp = inputs.prepare(logits, labels, activation=self.activation, where=self.where,
                             ignore_index=self.ignore_index,
                             allowed_activations=allowed_activations,
                             pixel_weights=pixel_weights)
        checks.check_reduction(self.reduction)
        checks.check_classes(self.classes)
        checks.check_class_weights(self.class_weights, inp.num_classes)
        checks.check_bool("per_image", self.per_image)
        checks.check_bool("include_background", self.include_background)
        smooth_pair(self.smooth)
        return inp


def smooth_pair(smooth) -> tuple[Any, Any]:
    """``smooth`` as ``(s_num, s_den)``: a scalar is used for both."""
    if isinstance(smooth, (tuple, list)) or np.ndim(smooth) == 1:
        if len(smooth) != 2:
            raise ValueError("`smooth` must be a non-negative scalar or a pair (s_num, s_den), "
                             f"got {smooth!r}.")
        s_num, s_den = smooth[0], smooth[1]
    elif np.ndim(smooth) == 0:
        s_num = s_den = smooth
    else:
        raise ValueError("`smooth` must be a non-negative scalar or a pair (s_num, s_den), "
                         f"got an array of shape {np.shape(smooth)}.")
    checks.check_nonnegative("smooth", s_num)
    checks.check_nonnegative("smooth", s_den)
    return s_num, s_den


# --------------------------------------------------------------------------------------
# Per-pixel terms f_k(p, g) whose valid-pixel sums the losses are built from.
# --------------------------------------------------------------------------------------


@jax.custom_jvp
def abs_diff(p: jax.Array, g: jax.Array) -> jax.Array:
    """``|p - g|``, with slope ``1 - 2g`` at ``p == g``.

    ``1 - 2g`` lies in ``[-1, 1]`` (a subgradient of ``|.|`` at 0) and is the slope
    of ``p(1 - g) + (1 - p)g`` for hard ``g``, so the soft-label-correct losses
    equal the plain ones in gradient too when the labels are hard, also at
    saturated probabilities.
    """
    return jnp.abs(p - g)


@abs_diff.defjvp
def _abs_diff_jvp(primals, tangents):
    (p, g), (dp, dg) = primals, tangents
    slope = jnp.where(p == g, 1 - 2 * g, jnp.sign(p - g))
    return jnp.abs(p - g), slope * (dp - dg)


TERMS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "tp": lambda p, g: p * g,
    "sum_p": lambda p, g: p,
    "sum_g": lambda p, g: g,
    "sum_p2": lambda p, g: p * p,
    "sum_g2": lambda p, g: g * g,
    "l1": abs_diff,
    "sens_err": lambda p, g: jnp.square(g - p) * g,
    "spec_err": lambda p, g: jnp.square(g - p) * (1 - g),
    # Valid pixels per unit: the same for every class, so one channel.
    "count": lambda p, g: jnp.ones_like(p[..., :1]),
}
# Terms that do not depend on p: no gradient flows through them.
_TARGET_ONLY = frozenset({"sum_g", "sum_g2", "count"})


class Sums:
    """The unit sums by name (``s.tp``, ``s.sum_g``, ...), with ``fp`` and ``fn``.

    ``fp = Σp − tp``, ``fn = Σg − tp`` and ``tn = n − Σp − Σg + tp`` are exact for soft
    labels too.
    """

    def __init__(self, sums: dict[str, jax.Array]):
        self._sums = sums

    def __getattr__(self, name: str) -> jax.Array:
        try:
            return self._sums[name]
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._sums

    @property
    def fp(self) -> jax.Array:
        return self.sum_p - self.tp

    @property
    def fn(self) -> jax.Array:
        return self.sum_g - self.tp

    @property
    def tn(self) -> jax.Array:
        """``Σ(1 − p)(1 − g) = n − Σp − Σg + tp``, from the Dice sums and the count
        ``n`` of valid pixels (no sum of its own)."""
        return self.count - self.sum_p - self.sum_g + self.tp


def ratio(num: jax.Array, den: jax.Array, params: Params) -> jax.Array:
    """The smoothed score ``(num + s_num) / (den + s_den)``; 1 with zero gradient where
    the smoothed denominator is 0 (never NaN)."""
    return reduce.safe_div(num + params["s_num"], den + params["s_den"], fallback=1.0)


# --------------------------------------------------------------------------------------
# The shared custom_vjp.
# --------------------------------------------------------------------------------------


def _expand_units(unit_value: jax.Array, ndim: int, per_image: bool) -> jax.Array:
    """``[B, C]`` or ``[C]`` -> broadcastable against ``[B, *spatial, C]``."""
    lead = unit_value.shape[:1] if per_image else ()
    n_ones = ndim - 1 - len(lead)
    return unit_value.reshape(lead + (1,) * n_ones + unit_value.shape[-1:])


def _activation_vjp(p: jax.Array, dp: jax.Array, activation: str | None) -> jax.Array:
    """``dL/dlogits`` from ``dL/dp`` through the activation's Jacobian."""
    if activation == "softmax":
        return p * (dp - backend.class_sum(p * dp))
    if activation == "sigmoid":
        return p * (1 - p) * dp
    return dp


def _target(labels: jax.Array, num_classes: int, dtype) -> jax.Array:
    """Dense target from integer labels (one-hot by comparison, fused) or dense labels."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return inputs.one_hot_target(labels, num_classes, dtype)
    return labels


class PixelTerm(NamedTuple):
    """A pixel-wise term fused into a region loss (the compound losses).

    ``values(inp, params)`` gives the term per pixel ``[B, *spatial]`` or per element
    ``[B, *spatial, C]`` from :class:`~segloss_jax._src.inputs.Inputs` fields; its
    mean over the valid pixels (elements) enters ``combine(region, mean, params)``,
    the loss. ``params`` are those of :func:`region_loss` (:func:`region_params`).
    The per-pixel weights of the inputs and ``normalize`` act on that mean as
    :func:`~segloss_jax._src.reduce.weighted_terms` says.
    """

    values: Callable[[inputs.Inputs, Params], jax.Array]
    combine: Callable[[jax.Array, jax.Array, Params], jax.Array]
    normalize: bool = False


def _activation_fields(inp: inputs.Inputs) -> dict[str, jax.Array]:
    """The activation fields besides ``probs`` that a pixel term may read (computed once,
    by the shared activation, outside the op)."""
    if inp.activation == "softmax":
        return {"lse": inp.lse}
    if inp.activation == "sigmoid":
        return {"one_minus_probs": inp.one_minus_probs, "softplus": inp.softplus}
    return {}


def _fields_vjp(x, probs, fields, d_probs, d_fields, activation):
    """``dL/dx`` given ``dL/dp`` and ``dL/d(field)`` for the fields of
    :func:`_activation_fields`, through the activation's Jacobian
    (``∂lse/∂x = p``, ``∂softplus/∂x = p``, ``∂(1 − p)/∂x = −p(1 − p)``)."""
    if activation == "softmax":
        return probs * (d_probs - backend.class_sum(probs * d_probs) + d_fields["lse"][..., None])
    if activation == "sigmoid":
        one_minus = fields["one_minus_probs"]
        return probs * (one_minus * (d_probs - d_fields["one_minus_probs"])
                        + d_fields["softplus"])
    return d_probs


def _fused_op(terms: tuple[str, ...], head: Callable, per_image: bool,
              axis_name: Hashable | None, activation: str | None,
              pixel: PixelTerm | None = None) -> Callable:
    """``op(x, probs, fields, labels, valid, weights, params) -> head(sums, params)`` (or, with a
    ``pixel`` term, ``pixel.combine(head(sums, params), mean of pixel.values, params)``)
    with the fused backward.

    ``probs`` and the activation ``fields`` are computed by the caller from ``x``:
    the op reads them and returns no cotangent for them, giving the whole gradient
    to ``x`` instead.
    """

    def pixel_inputs(x, probs, fields, labels, target, valid):
        """An Inputs record whose activation fields are the given arrays."""
        return inputs.Inputs(x, target, valid,
                             labels if labels.dtype != target.dtype else None, activation,
                             fields={"probs": probs, **fields})

    def pixel_total(x, probs, fields, labels, target, valid, weights, params):
        values = pixel.values(pixel_inputs(x, probs, fields, labels, target, valid), params)
        values, count = reduce.weighted_terms(values, valid, weights, pixel.normalize)
        return jnp.sum(values), count

    def loss_from(sums, pixel_mean, params):
        region = head(sums, params)
        return region if pixel is None else pixel.combine(region, pixel_mean, params)

    def forward(x, probs, fields, labels, valid, weights, params):
        target = _target(labels, probs.shape[-1], probs.dtype)
        values = [TERMS[name](probs, target) for name in terms]
        sums = stats.unit_sums(*values, valid=valid, per_image=per_image, axis_name=axis_name)
        sums = dict(zip(terms, sums, strict=True))
        pixel_mean = count = None
        if pixel is not None:
            total, count = pixel_total(x, probs, fields, labels, target, valid, weights,
                                       params)
            total, count = stats.sum_across((total, count), axis_name)
            pixel_mean = reduce.safe_div(total, count)
        return loss_from(sums, pixel_mean, params), (sums, pixel_mean, count)

    @jax.custom_vjp
    def op(x, probs, fields, labels, valid, weights, params):
        return forward(x, probs, fields, labels, valid, weights, params)[0]

    def op_fwd(x, probs, fields, labels, valid, weights, params):
        loss, stats_ = forward(x, probs, fields, labels, valid, weights, params)
        return loss, (x, probs, fields, labels, valid, weights, stats_, params)

    def op_bwd(residuals, cotangent):
        x, probs, fields, labels, valid, weights, (sums, pixel_mean, count), params = residuals
        # dL/dS: autodiff of the small per-unit function. With axis_name and
        # per_image=False the sums are global, so this is the gradient of the
        # global loss; each device then applies it to its own pixels.
        _, head_vjp = jax.vjp(loss_from, sums, pixel_mean, params)
        d_sums, d_mean, d_params = head_vjp(cotangent)
        target = _target(labels, probs.shape[-1], probs.dtype)

        # Σ_k dL/dS_k · ∂f_k/∂p per pixel, as the gradient of Σ_pixels Σ_k dL/dS_k · f_k:
        # elementwise, so XLA fuses it with the lines below into one pass.
        def weighted_terms(p):
            return sum(jnp.sum(_expand_units(d_sums[name], p.ndim, per_image)
                               * TERMS[name](p, target))
                       for name in terms if name not in _TARGET_ONLY)

        d_probs = jax.grad(weighted_terms)(probs)
        # Excluded pixels get exactly zero (the activation Jacobians are products with it).
        d_probs = jnp.where(valid[..., None], d_probs, 0)
        if pixel is None:
            # probs has the dtype of x (the compute dtype), and so has this cotangent.
            return (_activation_vjp(probs, d_probs, activation), None, None, None, None, None,
                    d_params)
        # The pixel term: the mean's cotangent spread over the valid pixels, then the
        # term's partial derivatives in x, p and the fields, one elementwise pass.
        weight = reduce.safe_div(d_mean, count)
        # jax.grad, not a VJP with this cotangent: under shard_map the local total varies
        # across devices while the weight does not, and grad types the seed itself.
        dx, dp, d_fields, d_own = jax.grad(
            lambda x, p, f, prm: weight * pixel_total(x, p, f, labels, target, valid, weights,
                                                      prm)[0],
            argnums=(0, 1, 2, 3))(x, probs, fields, params)
        d_x = dx + _fields_vjp(x, probs, fields, d_probs + dp, d_fields, activation)
        d_params = jax.tree.map(jnp.add, d_params, d_own)
        return d_x, None, None, None, None, None, d_params

    op.defvjp(op_fwd, op_bwd)
    return op


def region_params(inp: inputs.Inputs, options: RegionOptions,
                  params: dict[str, Any] | None = None) -> Params:
    """The parameters of a region loss as arrays of the compute dtype (they may be
    traced): the loss's own ``params`` (e.g. ``{"alpha": 0.3}``), the ``smooth`` pair
    as ``s_num`` and ``s_den``, and ``class_weights`` when given."""
    dtype = inp.dtype
    s_num, s_den = smooth_pair(options.smooth)
    out = {name: jnp.asarray(value, dtype) for name, value in (params or {}).items()}
    out["s_num"], out["s_den"] = jnp.asarray(s_num, dtype), jnp.asarray(s_den, dtype)
    if options.class_weights is not None:
        out["class_weights"] = inputs.class_vector(options.class_weights, inp.num_classes,
                                                   "class_weights", dtype)
    return out


def reduce_region(unit_loss: jax.Array, sum_g: jax.Array, options: RegionOptions,
                  params: Params) -> jax.Array:
    """The last step of every region-style loss: from the loss of every unit
    (``[B, C]`` or ``[C]``) and the target mass of every unit (``sum_g``), the units that
    count (``include_background``, ``classes``) and the reduction (``class_weights``,
    ``reduction``, the mean across ``axis_name``), as the conventions page describes."""
    keep = reduce.kept_units(sum_g, include_background=options.include_background,
                             classes=options.classes)
    return reduce.reduce_units(unit_loss, keep, reduction=options.reduction,
                               class_weights=params.get("class_weights"),
                               axis_name=options.axis_name)


def reduce_pooled(unit_loss: jax.Array, keep: jax.Array, options: RegionOptions) -> jax.Array:
    """:func:`reduce_region` for losses with one value per unit of classes (``[B]`` or
    ``[]``, e.g. the generalized Dice): a unit with no kept class leaves the mean."""
    unit_kept = jnp.any(keep, axis=-1, keepdims=True)
    out = reduce.reduce_units(unit_loss[..., None], unit_kept, reduction=options.reduction,
                              axis_name=options.axis_name)
    return out[..., 0] if options.reduction == "none" else out


def region_loss(
    inp: inputs.Inputs,
    options: RegionOptions,
    *,
    sums: tuple[str, ...],
    unit_loss: Callable[..., jax.Array],
    params: dict[str, Any] | None = None,
    pooled: bool = False,
    pixel: PixelTerm | None = None,
) -> jax.Array:
    """``reduce(unit_loss(S))`` for prepared inputs, with the fused backward.

    The path every region-style loss takes: unit sums (:data:`TERMS`, here with the
    fused backward; :func:`segloss_jax._src.stats.unit_sums` for losses whose sums are
    not elementwise in ``p``), the per-unit formula, then :func:`reduce_region`.

    Args:
      inp: the prepared inputs (:meth:`RegionOptions.prepare`).
      options: the shared keywords.
      sums: names in :data:`TERMS` that ``unit_loss`` reads.
      unit_loss: ``unit_loss(s, params) -> [B, C] or [C]``, the loss of every unit,
        from the sums ``s`` (:class:`Sums`) and the parameters (:func:`region_params`:
        ``s_num``, ``s_den`` and the loss's own, as arrays: they may be traced).
        With ``pooled=True`` it is ``unit_loss(s, params, keep) -> [B] or []``, one
        loss per unit of classes, given the kept classes ``keep``.
      params: the loss's hyperparameters, e.g. ``{"alpha": 0.3}``.
      pooled: see ``unit_loss``.
      pixel: a pixel-wise term (compound losses): the loss is then
        ``pixel.combine(reduce(unit_loss(S)), mean of pixel.values, params)``, and
        the backward pass of both terms is one elementwise pass.

    Returns:
      The reduced loss (see the conventions page): a scalar, or every unit for
      ``reduction="none"`` (0 for dropped units).
    """
    all_params = region_params(inp, options, params)
    terms = tuple(dict.fromkeys(sums + ("sum_g",)))  # sum_g decides which classes count

    def head(raw_sums: dict[str, jax.Array], params: Params) -> jax.Array:
        s = Sums(raw_sums)
        if not pooled:
            return reduce_region(unit_loss(s, params), s.sum_g, options, params)
        keep = reduce.kept_units(s.sum_g, include_background=options.include_background,
                                 classes=options.classes)
        return reduce_pooled(unit_loss(s, params, keep), keep, options)

    op = _fused_op(terms, head, bool(options.per_image), options.axis_name, inp.activation,
                   pixel)
    # Integer labels travel as they are (the one-hot is formed inside the fused
    # passes); dense labels as the prepared float target.
    labels = inp.labels if inp.labels is not None else inp.target
    fields = _activation_fields(inp) if pixel is not None else {}
    weights = inp.weights if pixel is not None else None
    return op(inp.x, inp.probs, fields, labels, inp.valid, weights, all_params)
