"""Benchmark: boundary losses (fwd+bwd) against optax cross-entropy, in one process.

Run ``python -m benchmarks.bench_boundary`` (``--reps N``, ``--cases softmax sigmoid``).
Two cases: ``[8, 256, 256, 4]`` logits with a softmax and integer labels, and
``[8, 256, 256, 1]`` with a sigmoid and 0/1 labels. Labels are segmentation-like
(argmax of smoothed noise: blobs with boundaries), logits random. Every timing
is a jitted ``value_and_grad`` with respect to the logits (labels passed as
arguments, so nothing is constant-folded), the median of interleaved runs
after warm-up; compile time (lower + compile of that function) is reported
apart. Anchors in the same process:

* ``optax_ce``: optax softmax cross-entropy with integer labels (sigmoid case:
  ``sigmoid_binary_cross_entropy``), the cheapest sensible loss;
* ``scipy maps (host)``: the distance maps of the Hausdorff loss computed on
  the host the way MONAI's ``HausdorffDTLoss`` does (two
  ``scipy.ndimage.distance_transform_edt`` per image, kept class and mask),
  i.e. the part a peer implementation runs outside the graph, for scale.

Each loss is also timed with ``target_distance=`` (rows ``… (target maps ahead)``):
the target's maps come from ``sl.target_distance_map`` outside the timed step, as
a data pipeline would provide them, so the step pays only for the prediction's maps.
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
import optax
import scipy.ndimage as ndi

import segloss_jax as sl
from benchmarks.timing import median_times

CASES = {
    "softmax": ((8, 256, 256, 4), "softmax"),
    "sigmoid": ((8, 256, 256, 1), "sigmoid"),
}
LOSSES = ("hausdorff_dt_loss", "boundary_loss", "shape_aware_loss",
          "distance_weighted_cross_entropy")


def blob_labels(shape: tuple[int, ...], num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Integer labels ``[B, H, W]``: argmax over classes of smoothed noise."""
    noise = rng.normal(size=(*shape, num_classes))
    noise = ndi.gaussian_filter(noise, sigma=(0, 12, 12, 0))
    return np.argmax(noise, axis=-1).astype(np.int32)


def optax_ce(logits: jax.Array, labels: jax.Array, activation: str) -> jax.Array:
    if activation == "softmax":
        return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    target = (labels == 1).astype(logits.dtype)[..., None]
    return optax.losses.sigmoid_binary_cross_entropy(logits, target).mean()


def host_maps(probs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MONAI's ``distance_field`` of prediction and target, kept classes, with scipy."""
    out = np.zeros((2, *probs.shape))
    for k, img in enumerate((probs, target)):
        for b in range(img.shape[0]):
            for c in range(img.shape[-1]):
                fg = img[b, ..., c] > 0.5
                if fg.any() and not fg.all():
                    out[k, b, ..., c] = ndi.distance_transform_edt(fg) + ndi.distance_transform_edt(
                        ~fg)
    return out


def compile_seconds(fn: Callable, *args: object) -> float:
    start = time.perf_counter()
    fn.lower(*args).compile()
    return time.perf_counter() - start


def bench_case(case: str, reps: int) -> None:
    shape, activation = CASES[case]
    rng = np.random.default_rng(0)
    labels_np = blob_labels(shape[:-1], max(shape[-1], 2), rng)
    logits = jnp.asarray(rng.normal(scale=2.0, size=shape), jnp.float32)
    labels = jnp.asarray(labels_np)

    fns: dict[str, Callable] = {
        "optax_ce": jax.jit(jax.value_and_grad(lambda x, y: optax_ce(x, y, activation)))
    }
    args: dict[str, tuple] = {"optax_ce": (logits, labels)}
    for name in LOSSES:
        fn = getattr(sl, name)
        fns[name] = jax.jit(
            jax.value_and_grad(lambda x, y, fn=fn: fn(x, y, activation=activation))
        )
        args[name] = (logits, labels)
        ahead = f"{name} (target maps ahead)"
        fns[ahead] = jax.jit(jax.value_and_grad(
            lambda x, y, d, fn=fn: fn(x, y, activation=activation, target_distance=d)))
        maps = sl.target_distance_map(fn, labels, num_classes=shape[-1], activation=activation)
        args[ahead] = (logits, labels, jax.block_until_ready(maps))
    compiles = {name: compile_seconds(fn, *args[name]) for name, fn in fns.items()}
    for name, fn in fns.items():  # warm-up
        jax.block_until_ready(fn(*args[name]))

    thunks: dict[str, Callable[[], object]] = {
        name: (lambda fn=fn, a=args[name]: fn(*a)) for name, fn in fns.items()
    }
    probs = np.asarray(jax.nn.softmax(logits) if activation == "softmax"
                       else jax.nn.sigmoid(logits))
    target = np.eye(max(shape[-1], 2))[labels_np] if shape[-1] > 1 else (labels_np == 1)[..., None]
    first = 1 if shape[-1] > 1 else 0  # MONAI's include_background=False
    thunks["scipy maps (host)"] = lambda: host_maps(probs[..., first:], target[..., first:])
    t = median_times(thunks, reps)

    base_wall, base_cpu = t["optax_ce"]
    print(f"\n### `{case}` {list(shape)}, fwd+bwd\n")
    print("| function | wall (ms) | CPU (ms) | wall / optax CE | CPU / optax CE | compile (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (wall, cpu) in t.items():
        compile_s = f"{compiles[name]:.2f}" if name in compiles else "—"
        print(f"| `{name}` | {1e3 * wall:.1f} | {1e3 * cpu:.1f} | {wall / base_wall:.1f} | "
              f"{cpu / base_cpu:.1f} | {compile_s} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    print(f"jax {jax.__version__}, backend {jax.default_backend()} "
          f"({jax.devices()[0].device_kind}), {os.cpu_count()} CPUs, {platform.processor()}")
    print("scipy maps (host) is forward-only map computation, not a loss.")
    for case in args.cases:
        bench_case(case, args.reps)


if __name__ == "__main__":
    main()
