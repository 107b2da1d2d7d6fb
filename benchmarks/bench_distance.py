"""Benchmark: in-graph exact EDT against ``scipy.ndimage.distance_transform_edt``.

Run ``python -m benchmarks.bench_distance`` (``--reps N``, ``--strategies`` to
also time the per-line strategies compared in ``segloss_jax/_src/distance.py``).
Masks are random unions of balls (segmentation-like), the same for JAX and
scipy. JAX times are jitted calls after warm-up, compile time is reported
apart; every time is the median of interleaved runs in one process.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi
from jax import lax

from benchmarks.timing import median_times
from segloss_jax._src import distance


def balls(shape: tuple[int, ...], rng: np.random.Generator, count: int = 6) -> np.ndarray:
    """A bool mask: the union of ``count`` random balls."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    mask = np.zeros(shape, bool)
    for _ in range(count):
        centre = rng.random(len(shape)) * np.array(shape)
        radius = rng.uniform(0.05, 0.2) * min(shape)
        mask |= ((grid - centre) ** 2).sum(-1) < radius**2
    return mask


def scipy_edt(masks: np.ndarray) -> np.ndarray:
    return np.stack([ndi.distance_transform_edt(m) for m in masks])


def scipy_signed(masks: np.ndarray) -> np.ndarray:
    # Kervadec et al.'s reference map: edt(~m)*~m - (edt(m) - 1)*m.
    out = []
    for m in masks:
        out.append(ndi.distance_transform_edt(~m) * ~m - (ndi.distance_transform_edt(m) - 1) * m)
    return np.stack(out)


def compile_time(fn: Callable, *args: object) -> float:
    start = time.perf_counter()
    jax.jit(fn).lower(*args).compile()
    return time.perf_counter() - start


def bench_main(reps: int) -> None:
    rng = np.random.default_rng(0)
    cases = {
        "[8, 256, 256]": np.stack([balls((256, 256), rng) for _ in range(8)]),
        "[2, 96, 96, 96]": np.stack([balls((96, 96, 96), rng) for _ in range(2)]),
    }
    print(
        "| input | function | JAX (ms) | scipy (ms) | scipy / JAX "
        "| JAX CPU (ms) | scipy CPU (ms) | compile (s) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, masks in cases.items():
        x = jnp.asarray(masks)
        nd = masks.ndim - 1
        jax_fns = {
            "vmap(distance_transform_edt)": (jax.vmap(distance.distance_transform_edt), "edt"),
            "batched_edt": (lambda m, nd=nd: distance.batched_edt(m, spatial_ndim=nd), "edt"),
            "vmap(signed_distance)": (jax.vmap(distance.signed_distance), "signed"),
        }
        refs = {"edt": scipy_edt(masks), "signed": scipy_signed(masks)}
        jitted = {name: jax.jit(fn) for name, (fn, _) in jax_fns.items()}
        compiles = {name: compile_time(fn, x) for name, (fn, _) in jax_fns.items()}
        for name, fn in jitted.items():  # warm-up and a correctness check
            err = np.max(np.abs(np.asarray(fn(x)) - refs[jax_fns[name][1]]))
            assert err < 1e-3, (label, name, err)
        thunks: dict[str, Callable[[], object]] = {
            "scipy edt": lambda m=masks: scipy_edt(m),
            "scipy signed": lambda m=masks: scipy_signed(m),
        }
        thunks.update({name: (lambda fn=fn, x=x: fn(x)) for name, fn in jitted.items()})
        t = median_times(thunks, reps)
        for name, (_, kind) in jax_fns.items():
            (wall, cpu), (ref_wall, ref_cpu) = t[name], t[f"scipy {kind}"]
            print(
                f"| {label} | `{name}` | {1e3 * wall:.1f} | {1e3 * ref_wall:.1f} | "
                f"{ref_wall / wall:.2f} | {1e3 * cpu:.1f} | {1e3 * ref_cpu:.1f} | "
                f"{compiles[name]:.2f} |"
            )


# --- per-line strategies, for the table in benchmarks/RESULTS.md ------------------------


def broadcast_chunks(f: jax.Array, axis: int, step: jax.Array) -> jax.Array:
    """Brute force as ``min`` over ``j`` of a ``[lines, i, j]`` broadcast, chunked over lines."""
    moved = jnp.moveaxis(f, axis, -1)
    n = moved.shape[-1]
    lines = moved.reshape(-1, n)
    pos = jnp.arange(n, dtype=f.dtype) * step
    cost = jnp.square(pos.reshape(n, 1) - pos.reshape(1, n))  # [i, j]

    def block(rows: jax.Array) -> jax.Array:
        return jnp.min(rows.reshape(-1, 1, n) + cost.reshape(1, n, n), axis=-1)

    batch = max(1, (1 << 22) // (n * n))  # at most 16 MB of float32 per chunk
    out = lax.map(block, lines, batch_size=min(batch, lines.shape[0]))
    return jnp.moveaxis(out.reshape(moved.shape), -1, axis)


def lower_envelope(f: jax.Array, axis: int, step: jax.Array) -> jax.Array:
    """Felzenszwalb-Huttenlocher lower envelope, one ``lax.scan`` over positions,
    vectorised over lines (each line keeps its own stack of parabolas)."""
    moved = jnp.moveaxis(f, axis, -1)
    n = moved.shape[-1]
    g = moved.reshape(-1, n)
    rows = jnp.arange(g.shape[0])
    pos = jnp.arange(n, dtype=f.dtype) * step
    h = g + jnp.square(pos).reshape(1, n)

    def meet(q: jax.Array, v: jax.Array) -> jax.Array:  # where parabolas q and v cross
        return (h[rows, q] - h[rows, v]) / (2 * (pos[q] - pos[v]))

    def push(carry, q):
        v, z, k = carry
        q_all = jnp.full_like(k, q)

        def pop(state):
            k, s = state
            drop = s <= z[rows, k]
            k = jnp.where(drop, k - 1, k)
            return k, jnp.where(drop, meet(q_all, v[rows, k]), s)

        k, s = lax.while_loop(
            lambda st: jnp.any(st[1] <= z[rows, st[0]]), pop, (k, meet(q_all, v[rows, k]))
        )
        k = k + 1
        v = v.at[rows, k].set(q)
        z = z.at[rows, k].set(s).at[rows, k + 1].set(jnp.inf)
        return (v, z, k), None

    v = jnp.zeros(g.shape, jnp.int32)
    z = jnp.full((g.shape[0], n + 1), jnp.inf, f.dtype).at[:, 0].set(-jnp.inf)
    k = jnp.zeros(g.shape[0], jnp.int32)
    (v, z, _), _ = lax.scan(push, (v, z, k), jnp.arange(1, n))

    def read(k, q):
        k = lax.while_loop(
            lambda k: jnp.any(z[rows, k + 1] < pos[q]),
            lambda k: jnp.where(z[rows, k + 1] < pos[q], k + 1, k),
            k,
        )
        vk = v[rows, k]
        return k, jnp.square(pos[q] - pos[vk]) + g[rows, vk]

    _, out = lax.scan(read, jnp.zeros(g.shape[0], jnp.int32), jnp.arange(n))
    return jnp.moveaxis(out.T.reshape(moved.shape), -1, axis)


def edt_with(strategy: Callable) -> Callable[[jax.Array], jax.Array]:
    def edt(mask: jax.Array) -> jax.Array:
        fg = mask.astype(bool)
        spacing = jnp.ones((mask.ndim,), jnp.float32)
        big = jnp.float32(sum(n * n for n in mask.shape))
        f = distance._line_distance_sq(fg, 0, spacing[0], big)
        for axis in range(1, mask.ndim):
            f = strategy(f, axis, spacing[axis])
        return jnp.sqrt(f)

    return edt


def bench_strategies(reps: int) -> None:
    rng = np.random.default_rng(1)
    strategies = {
        "loop over j, running min (chosen)": distance._min_plus_parabola,
        "broadcast [lines, i, j] chunks": broadcast_chunks,
        "lower envelope (lax.scan)": lower_envelope,
    }
    shapes = [(256, 256), (512, 512), (96, 96, 96)]
    print("\nms per mask, wall (process CPU)\n")
    print("| strategy | " + " | ".join("x".join(map(str, s)) for s in shapes) + " |")
    print("|---|" + "---:|" * len(shapes))
    rows: dict[str, list[str]] = {name: [] for name in [*strategies, "scipy"]}
    for shape in shapes:
        mask = balls(shape, rng)
        ref = ndi.distance_transform_edt(mask)
        x = jnp.asarray(mask)
        jitted = {name: jax.jit(edt_with(s)) for name, s in strategies.items()}
        for name, fn in jitted.items():
            assert np.max(np.abs(np.asarray(fn(x)) - ref)) < 1e-3, name
        thunks: dict[str, Callable[[], object]] = {
            "scipy": lambda m=mask: ndi.distance_transform_edt(m)
        }
        thunks.update({name: (lambda fn=fn, x=x: fn(x)) for name, fn in jitted.items()})
        t = median_times(thunks, reps)
        for name in rows:
            wall, cpu = t[name]
            rows[name].append(f"{1e3 * wall:.1f} ({1e3 * cpu:.1f})")
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--strategies", action="store_true")
    args = parser.parse_args()
    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}; median of {args.reps} interleaved runs\n"
    )
    bench_main(args.reps)
    if args.strategies:
        bench_strategies(args.reps)


if __name__ == "__main__":
    main()
