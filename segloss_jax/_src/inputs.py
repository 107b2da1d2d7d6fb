"""Inputs as users write them, checked and activated once per loss call.

Every loss starts with :func:`prepare`, which checks ``(logits, labels, where,
ignore_index, activation)`` and returns one :class:`Inputs` record:

* ``x``: the logits in the compute dtype (bf16 and f16 upcast to float32);
* ``target``: dense float targets ``[B, *spatial, C]`` (integer labels are
  one-hot encoded; with ``C == 1`` they are the 0/1 foreground);
* ``valid``: ``[B, *spatial]`` bool, ``False`` where ``where`` is zero or the
  label equals ``ignore_index``;
* the activation, computed on first use and shared by every term that reads
  it: ``probs``, ``one_minus_probs``, ``log_probs``, ``log_1m_probs``
  (``log(1 - p)``), ``lse`` (softmax log-partition) and ``softplus`` (sigmoid),
  all from one ``exp`` of the logits, whichever of them a loss reads (one
  activation pass; its cost: benchmarks/RESULTS.md, "Backend module (XLA:CPU)").

Per-class options (``class_weights``, softmax ``alpha``, ``pos_weight``) may be
lists, tuples, NumPy or JAX arrays: :meth:`Inputs.per_class` checks and shapes
them.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
from jax.experimental import checkify

from segloss_jax._src import backend, checks
from segloss_jax._src.types import ACTIVATIONS


def compute_dtype(dtype) -> jnp.dtype:
    """float32 for low-precision floats, the input dtype otherwise (f32, f64)."""
    return jnp.promote_types(dtype, jnp.float32)


def safe_log(x: jax.Array) -> jax.Array:
    """``log(x)`` clamped at the smallest normal number: finite value and gradient at 0."""
    tiny = jnp.finfo(x.dtype).tiny
    return jnp.log(jnp.maximum(x, tiny))


@jax.custom_jvp
def _softplus(x: jax.Array, e: jax.Array) -> jax.Array:
    """``softplus(x) = max(x, 0) + log1p(e)`` given ``e = exp(−|x|)``, differentiated
    in ``x`` alone: ``softplus' = σ(x) = exp(x − softplus(x))`` (as ``jax.nn.softplus``)."""
    return jnp.where(x >= 0, x, 0) + jnp.log1p(e)


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x, e), (dx, _) = primals, tangents
    out = _softplus(x, e)
    # exp(x − out), with x = out = +inf read as 0 − 0 (jax.nn.softplus's rule).
    infinite = out == jnp.inf
    return out, jnp.exp(jnp.where(infinite, 0, x) - jnp.where(infinite, 0, out)) * dx


def one_hot_target(labels: jax.Array, num_classes: int, dtype) -> jax.Array:
    """Integer labels ``[B, *spatial]`` -> dense ``[B, *spatial, C]``.

    With ``num_classes == 1`` the label is the binary foreground itself. Labels out
    of range (e.g. ``ignore_index``) give an all-zero row. One-hot by comparison,
    not a gather, so it fuses into the pass that uses it.
    """
    if num_classes == 1:
        return (labels == 1).astype(dtype)[..., None]
    classes = jnp.arange(num_classes, dtype=labels.dtype).reshape((1,) * labels.ndim + (-1,))
    return (labels[..., None] == classes).astype(dtype)


def validity_mask(
    pixel_shape: tuple[int, ...],
    *,
    labels: jax.Array | None = None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    """``[B, *spatial]`` bool: ``where != 0`` and ``labels != ignore_index``."""
    valid = jnp.ones(pixel_shape, dtype=bool)
    if where is not None:
        valid = jnp.broadcast_to(jnp.asarray(where) != 0, pixel_shape)
    if ignore_index is not None and labels is not None:
        valid = valid & (labels != ignore_index)
    return valid


def check_label_values(labels: jax.Array, num_classes: int, valid: jax.Array, form: str) -> None:
    """Run-time range check, active only under ``checkify``.

    Integer labels must lie in ``[0, C)`` (``{0, 1}`` when ``C == 1``) wherever the
    pixel is valid; dense labels must lie in ``[0, 1]``.
    """
    if form == "int":
        high = max(num_classes, 2)
        ok = jnp.all(((labels >= 0) & (labels < high)) | ~valid)
        checkify.debug_check(
            ok,
            f"`labels` must lie in [0, {high - 1}] (or equal `ignore_index`) for "
            f"C = {num_classes}; found a value outside it.")
    else:
        ok = jnp.all(((labels >= 0) & (labels <= 1)) | ~valid[..., None])
        checkify.debug_check(ok, "dense `labels` must lie in [0, 1]; found a value outside it.")


class Inputs:
    """The checked inputs of one loss call; activation fields are computed once, on use.

    Attributes:
      x: ``[B, *spatial, C]`` logits (probabilities for ``activation=None``) in the
        compute dtype.
      target: ``[B, *spatial, C]`` dense float targets.
      valid: ``[B, *spatial]`` bool.
      labels: ``[B, *spatial]`` integer class indices, or ``None`` for dense labels.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      weights: ``[B, *spatial]`` per-pixel weights (0 at excluded pixels, no gradient),
        or ``None``.
    """

    def __init__(self, x, target, valid, labels, activation,
                 fields: dict[str, jax.Array] | None = None, weights: jax.Array | None = None):
        """``fields``: activation fields already computed from ``x`` (``probs``, ``lse``,
        ...), taken as they are instead of being computed on use. ``weights``: the
        per-pixel weights (:func:`pixel_weight_map`), or ``None``."""
        self.x, self.target, self.valid, self.labels = x, target, valid, labels
        self.activation, self.weights = activation, weights
        # Set before first use, so the cached properties below return them.
        vars(self).update(fields or {})

    @property
    def num_classes(self) -> int:
        return self.x.shape[-1]

    @property
    def dtype(self) -> jnp.dtype:
        return self.x.dtype

    @functools.cached_property
    def _softmax_exp(self) -> tuple[jax.Array, jax.Array]:
        """``(m, exp(x − m))``, ``m`` the class maximum (no gradient): every exp ≤ 1."""
        m = jax.lax.stop_gradient(backend.class_max(self.x))
        return m, jnp.exp(self.x - m)

    @functools.cached_property
    def _sigmoid_exp(self) -> jax.Array:
        """``exp(−|x|)``, as ``exp(−x)`` or ``exp(x)`` by the sign: the derivatives of the
        fields below are then exact at ``x = 0`` too."""
        return jnp.exp(jnp.where(self.x >= 0, -self.x, self.x))

    @functools.cached_property
    def probs(self) -> jax.Array:
        if self.activation == "softmax":
            _, e = self._softmax_exp
            return e / backend.class_sum(e)
        if self.activation == "sigmoid":
            e = self._sigmoid_exp
            return jnp.where(self.x >= 0, 1, e) / (1 + e)
        return self.x

    @functools.cached_property
    def one_minus_probs(self) -> jax.Array:
        """``1 − p`` per element (sigmoid: ``σ(−x)``, without cancellation)."""
        if self.activation == "sigmoid":
            e = self._sigmoid_exp
            return jnp.where(self.x >= 0, e, 1) / (1 + e)
        return 1 - self.probs

    @functools.cached_property
    def lse(self) -> jax.Array:
        """Softmax: ``log Σ_c exp(x_c) = m + log Σ_c exp(x_c − m)``, ``[B, *spatial]``."""
        m, e = self._softmax_exp
        return m[..., 0] + jnp.log(jnp.sum(e, axis=-1))

    @functools.cached_property
    def softplus(self) -> jax.Array:
        """Sigmoid: ``softplus(x) = −log(1 − σ(x))``."""
        return _softplus(self.x, self._sigmoid_exp)

    @functools.cached_property
    def log_probs(self) -> jax.Array:
        if self.activation == "softmax":
            return self.x - self.lse[..., None]
        if self.activation == "sigmoid":
            return self.x - self.softplus
        # Probabilities in: logs clamped at the smallest normal float (as torch's BCELoss).
        return safe_log(self.x)

    @functools.cached_property
    def log_1m_probs(self) -> jax.Array:
        """``log(1 − p)``, for per-channel (sigmoid or probability) losses."""
        if self.activation == "sigmoid":
            return -self.softplus
        return safe_log(1.0 - self.x)

    def per_class(self, value, name: str = "class_weights", *, scalar: bool = False) -> jax.Array:
        """A per-class option as ``[1, ..., 1, C]``, broadcasting over pixels.

        ``value`` may be a list, tuple, NumPy or JAX array of ints or floats;
        ``None`` gives ones; ``scalar=True`` also accepts one number for every class.
        The broadcast is explicit (the tests disable implicit rank promotion).
        """
        return class_vector(value, self.num_classes, name, self.dtype, scalar=scalar).reshape(
            (1,) * (self.x.ndim - 1) + (self.num_classes,))


def class_vector(value, num_classes: int, name: str, dtype, *, scalar: bool = False):
    """A per-class option (list, tuple or array; ``None`` means ones) as a ``[C]`` array."""
    if value is None:
        return jnp.ones((num_classes,), dtype)
    if scalar and jnp.ndim(value) == 0 and not isinstance(value, (list, tuple)):
        checks.check_nonnegative(name, value)
        return jnp.broadcast_to(jnp.asarray(value, dtype), (num_classes,))
    checks.check_class_vector(value, num_classes, name)
    return jnp.asarray(value, dtype)


def pixel_weight_map(pixel_weights, valid: jax.Array, dtype) -> jax.Array | None:
    """``pixel_weights`` as ``[B, *spatial]`` in ``dtype``: broadcast, 0 at the excluded
    pixels (a NaN weight there cannot leak into a sum or a gradient), no gradient.
    Negative values are reported under ``checkify`` (and raise at once when the map
    is on the host: :func:`~segloss_jax._src.checks.check_pixel_weights`)."""
    if pixel_weights is None:
        return None
    checks.check_pixel_weights(pixel_weights, valid.shape)
    w = jnp.broadcast_to(jnp.asarray(pixel_weights).astype(dtype), valid.shape)
    checkify.debug_check(jnp.all(w >= 0),
                         "`pixel_weights` must be non-negative; found a negative value.")
    return jax.lax.stop_gradient(jnp.where(valid, w, 0))


def prepare(
    logits: chex.Array,
    labels: chex.Array,
    *,
    activation: str | None,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
    allowed_activations: tuple[str | None, ...] = ACTIVATIONS,
    pixel_weights: chex.Array | None = None,
) -> Inputs:
    """Checks the inputs (statically, and label and weight values under ``checkify``)
    and returns the :class:`Inputs` record every loss computes from."""
    checks.check_logits(logits)
    shape = tuple(logits.shape)
    num_classes = shape[-1]
    form = checks.label_form(labels, shape)
    checks.check_activation(activation, num_classes, allowed_activations)
    checks.check_ignore_index(ignore_index, form)
    checks.check_where(where, shape[:-1])

    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    x = logits.astype(compute_dtype(logits.dtype))
    int_labels = None
    if form == "int":
        int_labels = labels.astype(jnp.int32) if labels.dtype == jnp.bool_ else labels
        target = one_hot_target(int_labels, num_classes, x.dtype)
    else:
        target = labels.astype(x.dtype)
    valid = validity_mask(shape[:-1], labels=int_labels, where=where, ignore_index=ignore_index)
    check_label_values(target if int_labels is None else int_labels, num_classes, valid, form)
    weights = pixel_weight_map(pixel_weights, valid, x.dtype)
    return Inputs(x, target, valid, int_labels, activation, weights=weights)
