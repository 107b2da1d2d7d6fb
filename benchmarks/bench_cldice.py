"""Benchmark: clDice's soft skeleton, rematerialised (the library) against plain autodiff.

Run ``python -m benchmarks.bench_cldice`` (``--iterations K``, ``--shape B H W C``,
``--reps N``). ``sl.cldice_loss(activation="sigmoid", iterations=K)`` on
``[2, 512, 512, 1]`` logits by default, against the same formula written here
with a Python loop over the skeleton's steps, on ``lax.reduce_window`` minima
and maxima, differentiated by plain autodiff (which keeps every intermediate of
every step and routes each window's gradient with a select-and-scatter). Prints the compiled
``value_and_grad``'s temporary memory (XLA's ``memory_analysis``) and the
median time of interleaved runs, and their ratios (library / plain).
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import segloss_jax as sl
from benchmarks.timing import median_times
from segloss_jax._src.windows import _window, spatial_axes


def plain_skeleton(x: jax.Array, spatial_ndim: int, iterations: int) -> jax.Array:
    """The soft skeleton, unrolled, on ``lax.reduce_window``, for plain autodiff."""
    axes = spatial_axes(x.ndim, spatial_ndim)

    def erode(v):
        return functools.reduce(jnp.minimum, [_window(v, lax.min, (a,)) for a in axes])

    def opening(v):
        return _window(erode(v), lax.max, axes)

    skel = jax.nn.relu(x - opening(x))
    for _ in range(iterations):
        x = erode(x)
        delta = jax.nn.relu(x - opening(x))
        skel = skel + jax.nn.relu(delta - skel * delta)
    return skel


def plain_cldice(logits: jax.Array, labels: jax.Array, iterations: int) -> jax.Array:
    """``cldice_loss(activation="sigmoid", iterations=K)`` for ``C == 1`` and 0/1 labels:
    one unit (the batch), smooth (1, 1)."""
    p = jax.nn.sigmoid(logits[..., 0])
    g = (labels == 1).astype(p.dtype)
    skel_p = plain_skeleton(p, p.ndim - 1, iterations)
    skel_g = plain_skeleton(g, g.ndim - 1, iterations)
    t_prec = (jnp.sum(skel_p * g) + 1) / (jnp.sum(skel_p) + 1)
    t_sens = (jnp.sum(skel_g * p) + 1) / (jnp.sum(skel_g) + 1)
    return 1 - 2 * t_prec * t_sens / (t_prec + t_sens)


def vessel_labels(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """0/1 labels ``[B, H, W]``: a few random lines, 3 pixels thick."""
    batch, height, width = shape
    labels = np.zeros(shape, np.int32)
    rows, cols = np.mgrid[:height, :width]
    for b in range(batch):
        for _ in range(8):
            a, c = rng.normal(size=2)
            d = rng.uniform(0, height)
            labels[b][np.abs(a * (rows - d) + c * (cols - width / 2)) / np.hypot(a, c) < 1.5] = 1
    return labels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=4, default=(2, 512, 512, 1))
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    shape, k = tuple(args.shape), args.iterations
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=shape), jnp.float32)
    labels = jnp.asarray(vessel_labels(shape[:-1], rng))

    candidates = {
        "library": lambda x, y: sl.cldice_loss(x, y, activation="sigmoid", iterations=k),
        "plain": lambda x, y: plain_cldice(x, y, k),
    }
    compiled, memory = {}, {}
    for name, loss in candidates.items():
        compiled[name] = jax.jit(jax.value_and_grad(loss)).lower(logits, labels).compile()
        memory[name] = compiled[name].memory_analysis().temp_size_in_bytes
    value = {name: float(fn(logits, labels)[0]) for name, fn in compiled.items()}
    np.testing.assert_allclose(value["library"], value["plain"], rtol=1e-5)
    times = median_times({name: (lambda fn=fn: fn(logits, labels))
                          for name, fn in compiled.items()}, args.reps)

    print(f"cldice_loss value_and_grad, sigmoid, shape {shape}, iterations={k}, "
          f"{jax.default_backend()}, median of {args.reps} interleaved runs")
    print(f"{'':10s} {'temp MiB':>10s} {'wall ms':>10s} {'cpu ms':>10s}")
    for name in candidates:
        wall, cpu = times[name]
        print(f"{name:10s} {memory[name] / 2**20:10.1f} {wall * 1e3:10.1f} {cpu * 1e3:10.1f}")
    print(f"ratio library/plain: memory {memory['library'] / memory['plain']:.3f}, "
          f"wall time {times['library'][0] / times['plain'][0]:.3f}, "
          f"cpu time {times['library'][1] / times['plain'][1]:.3f}")


if __name__ == "__main__":
    main()
