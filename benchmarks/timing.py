"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax


def median_times(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds of each thunk: one warm-up call each, then
    the thunks interleaved rep by rep, so every candidate sees the same conditions.

    CPU time counts every thread of the process; it is the steadier figure when
    other processes compete for the cores, the wall time is what a user waits for.
    """
    for fn in fns.values():
        jax.block_until_ready(fn())
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            samples[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
            for name, v in samples.items()}
