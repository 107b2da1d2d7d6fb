"""Static (trace-time) checks of shapes, dtypes and options.

Every check here looks only at shapes, dtypes and Python values, so it costs
nothing under ``jit`` and fails before anything is compiled. Shape and dtype
checks go through chex assertions with a message that names the argument,
says what was seen and what was expected, raised as ``ValueError`` (shapes,
values) or ``TypeError`` (dtypes). Checks of traced *values* (label ranges)
live in :mod:`segloss_jax._src.inputs` and use ``checkify.debug_check``.

This is the only module that calls chex assertions.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import chex
import jax.numpy as jnp
import numpy as np

from segloss_jax._src.types import ACTIVATIONS, CLASS_MODES, REDUCTIONS

# Spatial rank 1-3, so logits are [B, *spatial, C] with rank 3-5.
LOGIT_RANKS = {3, 4, 5}


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _dtype(x: Any) -> jnp.dtype:
    return jnp.result_type(x)


def _is_int(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_


def _is_float(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.floating)


def check_logits(logits: chex.Array, *, name: str = "logits") -> None:
    """Floating ``[B, *spatial, C]`` with spatial rank 1-3."""
    chex.assert_type(
        logits, float, exception_type=TypeError,
        custom_message=f"`{name}` must be a floating array (float32, bfloat16, float16 or "
                       f"float64), got dtype {_dtype(logits)}.")
    chex.assert_rank(
        logits, LOGIT_RANKS, exception_type=ValueError,
        custom_message=f"`{name}` must have shape [B, *spatial, C] with 1 to 3 spatial axes "
                       f"(rank 3 to 5), got shape {_shape(logits)} (rank {len(_shape(logits))}).")


def label_form(labels: chex.Array, logits_shape: tuple[int, ...]) -> str:
    """Returns ``"int"`` or ``"dense"``, decided by dtype and rank only.

    Integer (or bool) labels of shape ``[B, *spatial]`` are class indices; floating
    (or bool) labels of shape ``[B, *spatial, C]`` are dense targets.
    """
    dtype, shape, rank = _dtype(labels), _shape(labels), len(logits_shape)
    is_int, is_float = _is_int(dtype), _is_float(dtype)
    if not (is_int or is_float):
        raise TypeError(f"`labels` must be an integer, bool or floating array, got dtype {dtype}.")
    if len(shape) == rank:  # dense targets, [B, *spatial, C]
        if not (is_float or dtype == jnp.bool_):
            raise TypeError(
                f"`labels` of rank {rank} (the rank of `logits`) are dense targets and must be "
                f"floating, got dtype {dtype}; integer class indices have shape "
                f"{logits_shape[:-1]}.")
        chex.assert_shape(
            labels, logits_shape, exception_type=ValueError,
            custom_message=f"dense `labels` has {shape[-1]} classes (shape {shape}) but `logits` "
                           f"has {logits_shape[-1]} (shape {logits_shape}); dense labels must "
                           "have the shape of `logits`.")
        return "dense"
    if len(shape) == rank - 1 and not is_int:
        raise TypeError(
            f"`labels` of shape {shape} are class indices and must be integer, got dtype "
            f"{dtype}; dense floating targets have the shape of `logits`, {logits_shape}.")
    expected = logits_shape[:-1] if is_int else logits_shape
    chex.assert_shape(
        labels, expected, exception_type=ValueError,
        custom_message=f"`labels` has shape {shape}, incompatible with `logits` of shape "
                       f"{logits_shape}: expected {expected} for "
                       f"{'integer' if is_int else 'dense'} labels.")
    return "int"


def check_activation(
    activation: Any, num_classes: int, allowed: Sequence[str | None] = ACTIVATIONS
) -> None:
    check_choice("activation", activation, allowed)
    if activation == "softmax" and num_classes == 1:
        raise ValueError(
            "`activation='softmax'` needs at least 2 classes, but `logits` has C == 1 "
            "(a softmax over one channel is constant); use `activation='sigmoid'` for "
            "binary segmentation.")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")


def check_reduction(reduction: Any) -> None:
    check_choice("reduction", reduction, REDUCTIONS)


def check_classes(classes: Any) -> None:
    check_choice("classes", classes, CLASS_MODES)


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool, got {value!r}.")


def check_where(where: chex.Array | None, pixel_shape: tuple[int, ...]) -> None:
    """``where`` is a bool or integer mask broadcastable to ``[B, *spatial]``."""
    if where is None:
        return
    dtype, shape = _dtype(where), _shape(where)
    if _is_float(dtype):
        raise TypeError(
            f"`where` must be a bool or integer mask (non-zero = kept), got dtype {dtype}: a "
            "weight map is not a mask. Threshold it, e.g. `where=mask > 0.5`, or "
            "pass the map as `pixel_weights` (the pixel-wise losses and compounds take it).")
    if not _is_int(dtype):
        raise TypeError(f"`where` must be a bool or integer mask, got dtype {dtype}.")
    chex.assert_rank(
        where, set(range(len(pixel_shape) + 1)), exception_type=ValueError,
        custom_message=f"`where` has shape {shape}, which does not broadcast to the pixel "
                       f"shape [B, *spatial] = {pixel_shape}.")
    try:
        chex.assert_is_broadcastable(shape, pixel_shape)
    except AssertionError:
        raise ValueError(
            f"`where` has shape {shape}, which does not broadcast to the pixel shape "
            f"[B, *spatial] = {pixel_shape}.") from None


def check_pixel_weights(pixel_weights: Any, pixel_shape: tuple[int, ...]) -> None:
    """``pixel_weights``: real numbers broadcastable to ``[B, *spatial]``, non-negative
    when held on the host (a traced or device array is checked under ``checkify``)."""
    dtype, shape = _dtype(pixel_weights), _shape(pixel_weights)
    if dtype == jnp.bool_ or not (_is_int(dtype) or _is_float(dtype)):
        raise TypeError(
            f"`pixel_weights` must be a float (or integer) weight map, got dtype {dtype}"
            + ("; a bool map is a mask: pass it as `where`." if dtype == jnp.bool_ else "."))
    try:
        if len(shape) > len(pixel_shape):
            raise AssertionError
        chex.assert_is_broadcastable(shape, pixel_shape)
    except AssertionError:
        raise ValueError(
            f"`pixel_weights` has shape {shape}, which does not broadcast to the pixel shape "
            f"[B, *spatial] = {pixel_shape} (one weight per pixel, not per element).") from None
    if isinstance(pixel_weights, (np.ndarray, np.generic, list, tuple, numbers.Real)):
        values = np.asarray(pixel_weights, dtype=np.float64)
        if np.any(values < 0) or np.any(np.isnan(values)):
            raise ValueError(
                "`pixel_weights` must be non-negative, got a smallest value "
                f"{np.nanmin(values) if not np.all(np.isnan(values)) else np.nan}.")


def check_ignore_index(ignore_index: Any, form: str) -> None:
    if ignore_index is None:
        return
    if not isinstance(ignore_index, numbers.Integral) or isinstance(ignore_index, bool):
        raise TypeError(f"`ignore_index` must be an int or None, got {ignore_index!r}.")
    if form != "int":
        raise ValueError(
            "`ignore_index` applies to integer labels only; with dense labels pass `where`.")


def check_class_vector(value: Any, num_classes: int, name: str) -> None:
    """A per-class option (``class_weights``, softmax ``alpha``, ``pos_weight``):
    numeric, shape ``[C]`` (a list, tuple, NumPy or JAX array), non-negative when
    known at trace time."""
    dtype = np.asarray(value).dtype if isinstance(value, (list, tuple)) else _dtype(value)
    if dtype == np.bool_ or not (_is_int(dtype) or _is_float(dtype)):
        raise TypeError(
            f"`{name}` must hold numbers (a list, tuple or array of ints or floats), got "
            f"dtype {dtype}.")
    shape = _shape(value)
    if shape != (num_classes,):
        raise ValueError(
            f"`{name}` must have shape [C] = ({num_classes},), one value per class, got "
            f"shape {shape}.")
    check_nonnegative(name, value)


def check_nonnegative(name: str, value: Any) -> None:
    """Rejects a negative hyperparameter when it is known at trace time."""
    concrete = _concrete(value)
    if concrete is not None and np.any(concrete < 0):
        raise ValueError(f"`{name}` must be non-negative, got {value!r}.")


def check_positive(name: str, value: Any) -> None:
    """Rejects a zero or negative hyperparameter when it is known at trace time."""
    concrete = _concrete(value)
    if concrete is not None and np.any(concrete <= 0):
        raise ValueError(f"`{name}` must be positive, got {value!r}.")


def check_count(name: str, value: Any) -> None:
    """A non-negative Python (or NumPy) int fixed at trace time, e.g. a number of steps."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a non-negative int, got {value!r} "
                        f"({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"`{name}` must be a non-negative int, got {value}.")


def check_in_range(name: str, value: Any, low: float, high: float) -> None:
    """Rejects a hyperparameter outside ``[low, high]`` when known at trace time."""
    concrete = _concrete(value)
    if concrete is not None and (np.any(concrete < low) or np.any(concrete > high)):
        raise ValueError(f"`{name}` must lie in [{low}, {high}], got {value!r}.")


def check_distance_map(name: str, value: Any, shape: tuple[int, ...]) -> None:
    """A precomputed distance map: floating, shaped like the logits ``[B, *spatial, C]``."""
    if not _is_float(_dtype(value)):
        raise TypeError(f"`{name}` must be a floating array, got dtype {_dtype(value)}.")
    if _shape(value) != shape:
        raise ValueError(
            f"`{name}` must have the logits' shape [B, *spatial, C] = {shape} (channels last, "
            f"as `target_distance_map` returns it), got shape {_shape(value)}.")


def check_in_half_open(name: str, value: Any, low: float, high: float, why: str = "") -> None:
    """Rejects a hyperparameter outside ``[low, high)`` when known at trace time; ``why``
    (after the interval in the message) says why ``high`` itself is refused."""
    concrete = _concrete(value)
    if concrete is not None and (np.any(concrete < low) or np.any(concrete >= high)):
        sep = " " if why else ""
        raise ValueError(f"`{name}` must lie in [{low}, {high}){sep}{why}, got {value!r}.")


def _concrete(value: Any) -> np.ndarray | None:
    """The value as a NumPy array if it is known at trace time, else None."""
    try:
        return np.asarray(value, dtype=np.float64)
    except Exception:  # a tracer: the check is skipped, the maths stays valid.
        return None


def check_class_weights(class_weights: Any, num_classes: int) -> None:
    """``class_weights``: ``None`` or a per-class vector (:func:`check_class_vector`)."""
    if class_weights is not None:
        check_class_vector(class_weights, num_classes, "class_weights")


def check_distance_matrix(value: Any, num_classes: int) -> None:
    """A ``[C, C]`` matrix of distances between classes (a list, NumPy or JAX array).

    The shape is always checked; the values (zero diagonal, non-negative, not all
    zero) only when they are known at trace time, not for a traced argument.
    """
    dtype = np.asarray(value).dtype if isinstance(value, (list, tuple)) else _dtype(value)
    if dtype == np.bool_ or not (_is_int(dtype) or _is_float(dtype)):
        raise TypeError(f"`distance_matrix` must hold numbers, got dtype {dtype}.")
    shape = _shape(value)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(
            f"`distance_matrix` must be a square [C, C] matrix, got shape {shape}.")
    if shape[0] != num_classes:
        raise ValueError(
            f"`distance_matrix` has shape {shape} but `logits` has C = {num_classes} classes; "
            f"expected ({num_classes}, {num_classes}), one row and column per class.")
    concrete = _concrete(value)
    if concrete is None:
        return
    if not np.all(np.isfinite(concrete)):
        raise ValueError("`distance_matrix` must be finite, got a NaN or infinite entry.")
    if np.any(np.diag(concrete) != 0):
        raise ValueError(
            "`distance_matrix` must have a zero diagonal (a class is at distance 0 from "
            f"itself), got diagonal {np.diag(concrete).tolist()}.")
    if np.any(concrete < 0):
        raise ValueError(
            f"`distance_matrix` must be non-negative, got a smallest entry {concrete.min()}.")
    if num_classes > 1 and not np.any(concrete > 0):
        raise ValueError(
            "`distance_matrix` must have a positive entry (it is divided by its maximum), "
            "got all zeros.")


def check_fraction(name: str, value: Any) -> None:
    """A number in ``(0, 1]`` known at trace time (a Python or NumPy number)."""
    concrete = _concrete(value)
    if concrete is None or concrete.shape != ():
        raise TypeError(f"`{name}` must be a number in (0, 1] known at trace time, got {value!r}.")
    if not 0 < concrete <= 1:
        raise ValueError(f"`{name}` must lie in (0, 1], got {value!r}.")


def check_supervision_outputs(
    shapes: Sequence[tuple[int, ...]], labels_shape: tuple[int, ...], dense: bool
) -> None:
    """The outputs of a deep-supervision call: a non-empty sequence of ``[B, *spatial, C]``
    with the batch size and class count of the first, the spatial rank of ``labels``
    and no spatial axis larger than the labels'."""
    if not shapes:
        raise ValueError("`logits_seq` must be a non-empty sequence of [B, *spatial, C] arrays, "
                         "got an empty one.")
    first = shapes[0]
    spatial = labels_shape[1:-1] if dense else labels_shape[1:]
    for i, shape in enumerate(shapes):
        if len(shape) != len(first) or shape[0] != first[0] or shape[-1] != first[-1]:
            raise ValueError(
                f"`logits_seq[{i}]` has shape {shape} but `logits_seq[0]` has shape {first}: "
                "every output must have the same batch size, class count and spatial rank.")
        if shape[0] != labels_shape[0] or len(shape) - 2 != len(spatial):
            raise ValueError(
                f"`labels` has shape {labels_shape}, incompatible with `logits_seq[{i}]` of "
                f"shape {shape}: expected the batch size {shape[0]} and {len(shape) - 2} "
                "spatial axes.")
        if any(n > m for n, m in zip(shape[1:-1], spatial, strict=True)):
            raise ValueError(
                f"`logits_seq[{i}]` has spatial shape {shape[1:-1]}, larger than the spatial "
                f"shape {spatial} of `labels` along some axis: labels are only downsampled.")
