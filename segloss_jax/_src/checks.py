"""Static (trace-time) checks of shapes, dtypes and options.

Every check here looks only at shapes, dtypes and Python values, so it costs
nothing under ``jit`` and fails before anything is compiled. Messages name the
argument, say what was seen and what was expected. Checks of traced *values*
(label ranges) live in :mod:`segloss_jax._src.inputs` and use
``checkify.debug_check``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import chex
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = ("softmax", "sigmoid", None)
REDUCTIONS = ("mean", "sum", "none")
CLASS_MODES = ("all", "present")

# Spatial rank 1-3, so logits are [B, *spatial, C] with rank 3-5.
MIN_RANK, MAX_RANK = 3, 5


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(x))


def check_logits(logits: chex.Array, *, name: str = "logits") -> None:
    """Floating ``[B, *spatial, C]`` with spatial rank 1-3."""
    dtype = jnp.result_type(logits)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must be a floating array (float32, bfloat16, float16 or float64), "
            f"got dtype {dtype}."
        )
    rank = len(_shape(logits))
    if not MIN_RANK <= rank <= MAX_RANK:
        raise ValueError(
            f"`{name}` must have shape [B, *spatial, C] with 1 to 3 spatial axes "
            f"(rank 3 to 5), got shape {_shape(logits)} (rank {rank})."
        )


def label_form(labels: chex.Array, logits_shape: tuple[int, ...]) -> str:
    """Returns ``"int"`` or ``"dense"``, decided by dtype and rank only.

    Integer (or bool) labels of shape ``[B, *spatial]`` are class indices; floating
    (or bool) labels of shape ``[B, *spatial, C]`` are dense targets.
    """
    dtype = jnp.result_type(labels)
    shape = _shape(labels)
    is_int = jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_
    is_float = jnp.issubdtype(dtype, jnp.floating)
    if not (is_int or is_float):
        raise TypeError(f"`labels` must be an integer, bool or floating array, got dtype {dtype}.")
    if is_int and shape == logits_shape[:-1]:
        return "int"
    if (is_float or dtype == jnp.bool_) and shape == logits_shape:
        return "dense"
    if is_int and len(shape) == len(logits_shape):
        raise TypeError(
            f"`labels` of rank {len(shape)} (the rank of `logits`) are dense targets and must be "
            f"floating, got dtype {dtype}; integer class indices have shape {logits_shape[:-1]}."
        )
    if is_float and len(shape) == len(logits_shape) - 1:
        raise TypeError(
            f"`labels` of shape {shape} are class indices and must be integer, got dtype {dtype}; "
            f"dense floating targets have the shape of `logits`, {logits_shape}."
        )
    if len(shape) == len(logits_shape) and shape[-1] != logits_shape[-1]:
        raise ValueError(
            f"`labels` has {shape[-1]} classes (shape {shape}) but `logits` has "
            f"{logits_shape[-1]} (shape {logits_shape}); dense labels must match `logits`."
        )
    expected = logits_shape[:-1] if is_int else logits_shape
    raise ValueError(
        f"`labels` has shape {shape}, incompatible with `logits` of shape {logits_shape}: "
        f"expected {expected} for {'integer' if is_int else 'dense'} labels."
    )


def check_activation(
    activation: Any, num_classes: int, allowed: Sequence[str | None] = ACTIVATIONS
) -> None:
    if activation not in allowed:
        raise ValueError(f"`activation` must be one of {tuple(allowed)}, got {activation!r}.")
    if activation == "softmax" and num_classes == 1:
        raise ValueError(
            "`activation='softmax'` needs at least 2 classes, but `logits` has C == 1 "
            "(a softmax over one channel is constant); use `activation='sigmoid'` for "
            "binary segmentation."
        )


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")


def check_where(where: chex.Array | None, pixel_shape: tuple[int, ...]) -> None:
    """``where`` is bool and broadcastable to ``[B, *spatial]``."""
    if where is None:
        return
    dtype = jnp.result_type(where)
    if dtype != jnp.bool_:
        raise TypeError(f"`where` must be a bool array, got dtype {dtype}.")
    shape = _shape(where)
    try:
        ok = np.broadcast_shapes(shape, pixel_shape) == pixel_shape and len(shape) <= len(
            pixel_shape
        )
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"`where` has shape {shape}, which does not broadcast to the pixel shape "
            f"[B, *spatial] = {pixel_shape}."
        )


def check_ignore_index(ignore_index: Any, form: str) -> None:
    if ignore_index is None:
        return
    if not isinstance(ignore_index, numbers.Integral) or isinstance(ignore_index, bool):
        raise TypeError(f"`ignore_index` must be an int or None, got {ignore_index!r}.")
    if form != "int":
        raise ValueError(
            "`ignore_index` applies to integer labels only; with dense labels pass `where`."
        )


def check_class_weights(
    class_weights: chex.Array | None, num_classes: int, name: str = "class_weights"
) -> None:
    if class_weights is None:
        return
    shape = _shape(class_weights)
    if shape != (num_classes,):
        raise ValueError(f"`{name}` must have shape [C] = ({num_classes},), got shape {shape}.")
    if not jnp.issubdtype(jnp.result_type(class_weights), jnp.floating) and not jnp.issubdtype(
        jnp.result_type(class_weights), jnp.integer
    ):
        raise TypeError(f"`{name}` must be numeric, got dtype {jnp.result_type(class_weights)}.")
    concrete = _concrete(class_weights)
    if concrete is not None and np.any(concrete < 0):
        raise ValueError(f"`{name}` must be non-negative, got {concrete}.")


def check_nonnegative(name: str, value: Any) -> None:
    """Rejects a negative hyperparameter when it is known at trace time."""
    concrete = _concrete(value)
    if concrete is not None and np.any(concrete < 0):
        raise ValueError(f"`{name}` must be non-negative, got {value!r}.")


def check_in_range(name: str, value: Any, low: float, high: float) -> None:
    """Rejects a hyperparameter outside ``[low, high]`` when known at trace time."""
    concrete = _concrete(value)
    if concrete is not None and (np.any(concrete < low) or np.any(concrete > high)):
        raise ValueError(f"`{name}` must lie in [{low}, {high}], got {value!r}.")


def _concrete(value: Any) -> np.ndarray | None:
    """The value as a NumPy array if it is known at trace time, else None."""
    try:
        return np.asarray(value, dtype=np.float64)
    except Exception:  # a tracer: the check is skipped, the maths stays valid.
        return None
