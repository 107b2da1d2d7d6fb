"""Benchmark: Lovász losses (fwd+bwd) against a naive JAX version and one plain sort.

Run ``python -m benchmarks.bench_lovasz`` (``--reps N``). For each case it
reports, in one process with interleaved runs after warm-up:

* ``ours``: jitted ``value_and_grad`` of the loss w.r.t. the logits;
* ``naive``: the same loss written the obvious way (``argsort``, gather,
  ``cumsum``, the Lovász gradient as a difference of Jaccard values) and
  differentiated by autodiff, as in the reference PyTorch implementations;
* ``sort``: one single-operand ``lax.sort`` of as many ``uint32`` keys, laid out
  as the loss's units ``[U, n]`` -- the practical lower bound of any exact
  Lovász loss on XLA:CPU;

plus compile time (``lower`` + ``compile``), the compiled program's temporary
memory (XLA's ``memory_analysis``, the peak scratch beyond inputs and outputs)
and the number of ``sort`` primitives in the jaxpr of the gradient.

``--groups`` instead times ``ours`` with the rows split into 1, 2, ... groups
(independent sorts that XLA:CPU runs concurrently, one per core by default), to
show how the formulation scales with cores; run it under ``taskset -c 0`` for
one core. On GPU/TPU the loss uses one group (one batched sort).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import segloss_jax as sl
from benchmarks.timing import median_times
from segloss_jax._src import backend

# ------------------------------------------------------------------ naive JAX baseline


def naive_unit(errors: jax.Array, positive: jax.Array) -> jax.Array:
    """Lovász extension of one unit: argsort, gather, cumsum, differences, dot."""
    order = jnp.argsort(-errors)
    errors_sorted = errors[order]
    g = positive[order].astype(errors.dtype)
    total = jnp.sum(g)
    jaccard = 1 - (total - jnp.cumsum(g)) / (total + jnp.cumsum(1 - g))
    steps = jnp.concatenate([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jnp.dot(errors_sorted, lax.stop_gradient(steps))


def naive_softmax(logits: jax.Array, labels: jax.Array, per_image: bool) -> jax.Array:
    """Lovász-softmax, ``classes="present"``, no exclusions."""
    batch, classes = logits.shape[0], logits.shape[-1]
    probs = jax.nn.softmax(logits, axis=-1).reshape(batch, -1, classes)
    positive = labels.reshape(batch, -1)[..., None] == jnp.arange(classes)
    errors = jnp.abs(positive - probs)
    if per_image:
        errors, positive = jnp.swapaxes(errors, 1, 2), jnp.swapaxes(positive, 1, 2)
        loss = jax.vmap(jax.vmap(naive_unit))(errors, positive)  # [B, C]
    else:
        errors, positive = errors.reshape(-1, classes).T, positive.reshape(-1, classes).T
        loss = jax.vmap(naive_unit)(errors, positive)  # [C]
    present = jnp.any(positive, axis=-1)
    per_unit = jnp.sum(jnp.where(present, loss, 0), -1) / jnp.sum(present, -1)
    return jnp.mean(per_unit)


def naive_hinge(logits: jax.Array, labels: jax.Array, per_image: bool) -> jax.Array:
    batch = logits.shape[0]
    x = logits.reshape(batch, -1) if per_image else logits.reshape(1, -1)
    positive = (labels == 1).reshape(x.shape)
    errors = jax.nn.relu(1 - x * jnp.where(positive, 1.0, -1.0))
    return jnp.mean(jax.vmap(naive_unit)(errors, positive))


# ------------------------------------------------------------------------ measurement


def compiled(fn: Callable, *args):
    """``(compiled executable, compile seconds)``."""
    start = time.perf_counter()
    exe = jax.jit(fn).lower(*args).compile()
    return exe, time.perf_counter() - start


def temp_mib(exe) -> float:
    analysis = exe.memory_analysis()
    return analysis.temp_size_in_bytes / 2**20 if analysis is not None else float("nan")


def sort_count(fn: Callable, *args) -> int:
    text = str(jax.make_jaxpr(jax.grad(fn))(*args))
    return len(re.findall(r"\bsort\[", text))


def cases():
    key_x, key_y = jax.random.split(jax.random.key(0))
    softmax_x = jax.random.normal(key_x, (8, 256, 256, 4), jnp.float32) * 2
    softmax_y = jax.random.randint(key_y, (8, 256, 256), 0, 4)
    binary_x = softmax_x[..., :1]
    binary_y = (softmax_y % 2).astype(jnp.int32)
    for per_image in (False, True):
        yield (f"lovasz_softmax [8,256,256,4] per_image={per_image}",
               lambda x, y, pi=per_image: sl.lovasz_softmax_loss(x, y, per_image=pi),
               lambda x, y, pi=per_image: naive_softmax(x, y, pi),
               softmax_x, softmax_y, (32, 65536) if per_image else (4, 524288))
    for per_image in (True, False):
        yield (f"lovasz_hinge [8,256,256,1] per_image={per_image}",
               lambda x, y, pi=per_image: sl.lovasz_hinge_loss(x, y, per_image=pi),
               lambda x, y, pi=per_image: naive_hinge(x, y, pi),
               binary_x, binary_y, (8, 65536) if per_image else (1, 524288))


def with_groups(groups: int, fn: Callable, *args):
    """``fn`` compiled with the Lovász rows split into ``groups`` groups."""
    default = backend.lovasz_row_groups

    def split(rows: int) -> list[slice]:
        bounds = [rows * g // groups for g in range(groups + 1)]
        return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    jax.clear_caches()  # the inner jitted passes would reuse their old trace
    backend.lovasz_row_groups = split
    try:
        return compiled(fn, *args)[0]
    finally:
        backend.lovasz_row_groups = default
        jax.clear_caches()


def group_scaling(reps: int, max_groups: int) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available to this process: {cores}; default groups = {cores}\n")
    counts = list(range(1, max_groups + 1))
    print("| case | " + " | ".join(f"{g} group{'s' * (g > 1)} (ms)" for g in counts)
          + " | " + " | ".join(f"1 / {g}" for g in counts[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(counts) - 1))
    for name, ours, _, x, y, _ in cases():
        exes = {g: with_groups(g, jax.value_and_grad(ours), x, y) for g in counts}
        wall = {g: t[0] for g, t in median_times(
            {g: partial(exe, x, y) for g, exe in exes.items()}, reps).items()}
        print(f"| {name} | " + " | ".join(f"{wall[g] * 1e3:.1f}" for g in counts) + " | "
              + " | ".join(f"{wall[1] / wall[g]:.2f}" for g in counts[1:]) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--groups", type=int, default=0,
                        help="time 1..N row groups instead of the comparison")
    args = parser.parse_args()
    if args.groups:
        print(f"jax {jax.__version__}, {platform.processor() or platform.machine()}, backend "
              f"{jax.default_backend()}; wall medians of {args.reps} interleaved runs")
        group_scaling(args.reps, args.groups)
        return
    print(f"jax {jax.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, backend {jax.default_backend()}; medians of {args.reps} "
          "interleaved runs")
    print()
    print("| case | ours (ms) | naive (ms) | uint32 sort (ms) | naive / ours | ours / sort "
          "| compile ours / naive (s) | temp MiB ours / naive | sorts in grad jaxpr |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    rows = []
    for name, ours, naive, x, y, units in cases():
        keys = jnp.asarray(rng.integers(0, 2**32, size=units, dtype=np.uint32))
        ours_exe, ours_compile = compiled(jax.value_and_grad(ours), x, y)
        naive_exe, naive_compile = compiled(jax.value_and_grad(naive), x, y)
        sort_exe, _ = compiled(lambda k: lax.sort(k, dimension=1, is_stable=False), keys)
        fns = {"ours": partial(ours_exe, x, y), "naive": partial(naive_exe, x, y),
               "sort": partial(sort_exe, keys)}
        times = median_times(fns, args.reps)
        wall = {k: v[0] for k, v in times.items()}
        cpu = {k: v[1] for k, v in times.items()}
        value, naive_value = float(ours_exe(x, y)[0]), float(naive_exe(x, y)[0])
        assert abs(value - naive_value) <= 1e-4 * abs(naive_value), (value, naive_value)
        for label, t in (("wall", wall), ("CPU", cpu)):
            first = label == "wall"
            rows.append(
                f"| {name} ({label}) | {t['ours'] * 1e3:.1f} | {t['naive'] * 1e3:.1f} | "
                f"{t['sort'] * 1e3:.1f} | {t['naive'] / t['ours']:.2f} | "
                f"{t['ours'] / t['sort']:.2f} | "
                + (f"{ours_compile:.2f} / {naive_compile:.2f} | "
                   f"{temp_mib(ours_exe):.0f} / {temp_mib(naive_exe):.0f} | "
                   f"{sort_count(ours, x, y)} |" if first else "| | |"))
            print(rows[-1], flush=True)

if __name__ == "__main__":
    main()
