r"""XLA:CPU tuning: the few steps of the formulas that XLA:CPU runs faster in another form.

This module serves one backend, XLA:CPU. Each function is one step of a formula;
on every other backend (GPU, TPU) it is the plain form written on its first lines,
and on XLA:CPU a rearrangement that gives the same number (the same operations
grouped differently). The formula modules call these functions for those steps
only. Each entry points to its measurement, a row of the table "Backend module
(XLA:CPU)" in benchmarks/RESULTS.md (fwd+bwd of the losses it serves, tuned form
against plain form in one process); tuning that did not pay for itself there is
not kept.

Which backend: :func:`on_cpu` reads ``jax.default_backend()`` when a loss is
traced. A program traced while the default backend is the CPU but run elsewhere
(``jax.jit(..., device=...)`` onto another platform, ``jax.export`` for several
platforms) keeps the CPU form, and the other way round: the values are the same,
only the speed is not tuned for that run. JAX offers no cheaper exact way to know
the platform a trace will be lowered for: ``lax.platform_dependent`` traces every
form and, under autodiff, carries the residuals of all of them.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp


def on_cpu() -> bool:
    """Whether the XLA:CPU forms apply: the default backend is the CPU (read at trace time)."""
    return jax.default_backend() == "cpu"


# ------------------------------------------------------------------ class-axis sums
# RESULTS.md, "Backend module (XLA:CPU)", row "class-axis tree".

# Up to this many classes a class-axis reduction is a pairwise tree of elementwise
# ops on class slices, which XLA:CPU vectorises across pixels (a reduction over a
# short minor axis it does not).
_TREE_MAX_CLASSES = 8


def _tree(x: jax.Array, op) -> jax.Array:
    """``op`` folded over the last axis (keepdims) as a pairwise tree of slices."""
    n = x.shape[-1]
    k = 1 << (n.bit_length() - 1)  # the largest power of two <= n
    head, rest = x[..., :k], x[..., k:]
    while head.shape[-1] > 1:
        half = head.shape[-1] // 2
        head = op(head[..., :half], head[..., half:])
    return head if rest.shape[-1] == 0 else op(head, _tree(rest, op))


def class_sum(x: jax.Array) -> jax.Array:
    """``jnp.sum(x, axis=-1, keepdims=True)``."""
    if not on_cpu() or x.shape[-1] > _TREE_MAX_CLASSES:
        return jnp.sum(x, axis=-1, keepdims=True)
    return _tree(x, jnp.add)


def class_max(x: jax.Array) -> jax.Array:
    """``jnp.max(x, axis=-1, keepdims=True)``."""
    if not on_cpu() or x.shape[-1] > _TREE_MAX_CLASSES:
        return jnp.max(x, axis=-1, keepdims=True)
    return _tree(x, jnp.maximum)


# ------------------------------------------------------------------ pixel sums per unit
# RESULTS.md, "Backend module (XLA:CPU)", row "two-stage unit sums".


def pixel_sum(v: jax.Array, per_image: bool) -> jax.Array:
    """``[B, *spatial, C]`` summed over the pixel axes: ``[B, C]`` per image, else ``[C]``.

    Plain form: one ``jnp.sum`` over the spatial axes (and the batch axis). XLA:CPU
    form: first over the leading pixel axes with the last spatial axis and the class
    axis flattened into one wide minor axis, then over the last spatial axis
    (XLA:CPU vectorises a reduction into a wide minor axis, not one into a short
    class axis).
    """
    axes = tuple(range(1 if per_image else 0, v.ndim - 1))
    if not on_cpu():
        return jnp.sum(v, axis=axes)
    width, num_classes = v.shape[-2], v.shape[-1]
    # The batch axis stays its own axis: merging it would break a sharded batch
    # under explicit-axes meshes.
    partial = jnp.sum(v.reshape(v.shape[0], -1, width * num_classes),
                      axis=1 if per_image else (0, 1))
    return jnp.sum(partial.reshape(partial.shape[:-1] + (width, num_classes)), axis=-2)


# ------------------------------------------------------------------ masking a cotangent
# RESULTS.md, "Backend module (XLA:CPU)", row "0/1 factor".


def zero_invalid(d: jax.Array, valid: jax.Array) -> jax.Array:
    """``jnp.where(valid[..., None], d, 0)`` for ``d`` finite everywhere.

    XLA:CPU form: ``d`` times ``valid`` as a 0/1 factor (XLA:CPU does not vectorise a
    select on a bool mask broadcast over the class axis). Equal for finite ``d``.
    """
    if not on_cpu():
        return jnp.where(valid[..., None], d, 0)
    return d * valid.astype(d.dtype)[..., None]


# ------------------------------------------------------------------ Lovász rows
# RESULTS.md, "Backend module (XLA:CPU)", row "Lovász row groups".


def lovasz_row_groups(rows: int) -> list[slice]:
    """The rows of a batched sort in groups, each sorted as an operation of its own.

    Plain form: one group. XLA:CPU form: one group per core, as XLA:CPU runs one
    sort on one thread but independent operations concurrently.
    """
    if not on_cpu():
        return [slice(0, rows)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    groups = max(1, min(rows, cores or 1))
    bounds = [rows * g // groups for g in range(groups + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


# RESULTS.md, "Backend module (XLA:CPU)", row "blocked cumulative sum".


def cumsum(x: jax.Array, block: int = 128) -> jax.Array:
    """``jnp.cumsum(x, axis=-1)`` of an integer ``[U, n]`` array.

    XLA:CPU form: sums within blocks of ``block`` entries, then a short cumulative
    sum of the block totals (exact for integers).
    """
    if not on_cpu():
        return jnp.cumsum(x, axis=-1)
    rows, n = x.shape
    padded = -(-n // block) * block
    blocks = jnp.pad(x, ((0, 0), (0, padded - n))).reshape(rows, padded // block, block)
    within = jnp.cumsum(blocks, axis=2)
    totals = within[..., -1]
    before = jnp.cumsum(totals, axis=1) - totals
    return (within + before[..., None]).reshape(rows, padded)[:, :n]
