r"""XLA:CPU tuning: the steps of the formulas that XLA:CPU runs faster in another form.

This module serves one backend, XLA:CPU. Each function is one step of a formula: on
every other backend (GPU, TPU) it is the plain form named on its first line; on
XLA:CPU, the same number computed another way (the same operations grouped
differently). The formula modules call these functions for those steps only and
read plainly otherwise.

Each entry points to its measurement in benchmarks/RESULTS.md, section "Backend
module (XLA:CPU)": fwd+bwd of the losses it serves, tuned form against plain form in
one process (``python -m benchmarks.bench_backend``). The other tricks measured
there did not pay for themselves and are gone.

Which backend: :func:`on_cpu` reads ``jax.default_backend()`` when a loss is traced.
A program traced while the default backend is the CPU and run elsewhere
(``jax.jit(..., device=...)`` on another platform, ``jax.export`` for several
platforms) keeps the CPU form, and the other way round: the values are the same,
only the speed is not tuned for that run. JAX has no cheap way to know the platform
a trace will be lowered for: ``lax.platform_dependent`` traces every form and, under
autodiff, carries the residuals of all of them.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp


def on_cpu() -> bool:
    """Whether the XLA:CPU forms apply: the default backend is the CPU (read at trace time)."""
    return jax.default_backend() == "cpu"


# ------------------------------------------------------------------ class-axis sums
# RESULTS.md, "Backend module (XLA:CPU)", row "class-axis tree": softmax [8, 256, 256, 4]
# fwd+bwd in 0.37-0.45x the time (dice, jaccard), 0.75-0.82x (dice_ce, dice_focal).

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


# ------------------------------------------------------------------ distance transforms
# RESULTS.md, "Backend module (XLA:CPU)", row "EDT chunks": softmax [8, 256, 256, 4]
# fwd+bwd in 0.71-0.78x the CPU time (boundary, hausdorff_dt, distance-weighted CE).

# Elements per chunk of masks: about 4 MB of float32, which stays in cache.
_EDT_CHUNK = 1 << 20


def edt_chunk(size: int) -> int | None:
    """Masks of ``size`` elements per chunk of a batched distance transform.

    Plain form: ``None``, the whole batch at once. XLA:CPU form: about 2²⁰ elements
    a chunk (each step of the transform streams the whole batch through memory, so
    a large batch is memory-bound there; a chunk stays in cache).
    """
    return max(1, _EDT_CHUNK // size) if on_cpu() else None


# ------------------------------------------------------------------ Lovász rows
# RESULTS.md, "Backend module (XLA:CPU)", row "Lovász row groups", and "Lovász on every
# core": fwd+bwd 1.47-1.63x faster on 2 free cores, the same on 1.


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
