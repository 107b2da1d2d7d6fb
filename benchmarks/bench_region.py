"""Benchmark: region losses (fwd+bwd) against optax and autodiff of the plain formula.

Run ``python -m benchmarks.bench_region`` (``--reps N``, ``--shapes softmax sigmoid``,
``--losses dice jaccard ...``). Two cases: ``[8, 256, 256, 4]`` logits with a
softmax and integer labels, and ``[8, 256, 256, 1]`` logits with a sigmoid and
0/1 labels. Every timing is a jitted ``value_and_grad`` with respect to the
logits (labels passed as arguments, so nothing is constant-folded), the median
of interleaved runs after warm-up, all in one process. Reported per loss:

* ``ours``: the segloss_jax loss (default keywords: batch statistics, all
  classes, ``smooth=1e-5``), whose backward pass is the shared ``custom_vjp``;
* ``plain``: the same loss written the obvious way (``jax.nn.softmax``, a
  one-hot target, ``tp``, ``fp`` and ``fn`` as three masked sums, the score) and
  differentiated by autodiff;
* ratios to optax's softmax cross-entropy with integer labels (sigmoid case:
  optax's ``sigmoid_binary_cross_entropy``), to ``optax.losses.dice_loss``, and
  ``plain / ours``.

For ``jaccard_loss`` it also reports the compiled programs' temporary memory
(XLA ``memory_analysis().temp_size_in_bytes``, the peak scratch beyond inputs
and outputs) of ``ours`` and ``plain``.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import segloss_jax as sl
from benchmarks.timing import median_times

SMOOTH = 1e-5
CASES = {
    "softmax": ((8, 256, 256, 4), "softmax"),
    "sigmoid": ((8, 256, 256, 1), "sigmoid"),
}
LOSSES = ("dice", "jaccard", "tversky", "focal_tversky", "sensitivity_specificity",
          "log_cosh_dice", "generalized_dice", "jaccard_metric", "dice_semimetric")


# ------------------------------------------------------------------ plain formulas


def plain_loss(name: str, logits: jax.Array, labels: jax.Array, activation: str) -> jax.Array:
    """The textbook version of each loss, batch statistics, mean over classes."""
    num_classes = logits.shape[-1]
    if activation == "softmax":
        p = jax.nn.softmax(logits, axis=-1)
        g = jax.nn.one_hot(labels, num_classes, dtype=p.dtype)
    else:
        p = jax.nn.sigmoid(logits)
        g = (labels == 1).astype(p.dtype)[..., None]
    axes = tuple(range(p.ndim - 1))
    tp = jnp.sum(p * g, axes)
    fp = jnp.sum(p * (1 - g), axes)
    fn = jnp.sum((1 - p) * g, axes)
    dice = (2 * tp + SMOOTH) / (2 * tp + fp + fn + SMOOTH)
    if name == "dice":
        loss = 1 - dice
    elif name == "jaccard":
        loss = 1 - (tp + SMOOTH) / (tp + fp + fn + SMOOTH)
    elif name in ("tversky", "focal_tversky"):
        loss = 1 - (tp + SMOOTH) / (tp + 0.3 * fp + 0.7 * fn + SMOOTH)
        if name == "focal_tversky":
            loss = loss**0.75
    elif name == "sensitivity_specificity":
        sens = jnp.sum((g - p) ** 2 * g, axes) / (jnp.sum(g, axes) + SMOOTH)
        spec = jnp.sum((g - p) ** 2 * (1 - g), axes) / (jnp.sum(1 - g, axes) + SMOOTH)
        loss = 0.05 * sens + 0.95 * spec
    elif name == "log_cosh_dice":
        loss = jnp.log(jnp.cosh(1 - dice))
    elif name == "generalized_dice":
        sum_g = jnp.sum(g, axes)
        w = 1 / sum_g**2
        w = jnp.where(jnp.isinf(w), jnp.max(jnp.where(jnp.isinf(w), 0, w)), w)
        return 1 - (2 * jnp.sum(w * tp) + SMOOTH) / (
            jnp.sum(w * (2 * tp + fp + fn)) + SMOOTH)
    elif name in ("jaccard_metric", "dice_semimetric"):
        sum_p, sum_g = jnp.sum(p, axes), jnp.sum(g, axes)
        inter = (sum_p + sum_g - jnp.sum(jnp.abs(p - g), axes)) / 2
        if name == "jaccard_metric":
            loss = 1 - (inter + SMOOTH) / (sum_p + sum_g - inter + SMOOTH)
        else:
            loss = 1 - (2 * inter + SMOOTH) / (sum_p + sum_g + SMOOTH)
    else:
        raise KeyError(name)
    return jnp.mean(loss)


def ours_loss(name: str, logits: jax.Array, labels: jax.Array, activation: str) -> jax.Array:
    return sl.get_loss(name)(logits, labels, activation=activation)


def optax_ce(logits: jax.Array, labels: jax.Array, activation: str) -> jax.Array:
    if activation == "softmax":
        return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    target = (labels == 1).astype(logits.dtype)[..., None]
    return optax.losses.sigmoid_binary_cross_entropy(logits, target).mean()


def optax_dice(logits: jax.Array, labels: jax.Array, activation: str) -> jax.Array:
    if activation == "softmax":
        target = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    else:
        target = (labels == 1).astype(logits.dtype)[..., None]
    return optax.losses.dice_loss(logits, target).mean()


# ------------------------------------------------------------------ timing


def value_and_grad(fn: Callable, activation: str) -> Callable:
    return jax.jit(jax.value_and_grad(lambda x, y: fn(x, y, activation)))


def temp_bytes(fn: Callable, *args: object) -> int:
    return fn.lower(*args).compile().memory_analysis().temp_size_in_bytes


def bench_case(case: str, losses: tuple[str, ...], reps: int) -> None:
    shape, activation = CASES[case]
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=shape), jnp.float32)
    labels = jnp.asarray(rng.integers(0, max(shape[-1], 2), size=shape[:-1]), jnp.int32)
    args = (logits, labels)

    fns: dict[str, Callable] = {
        "optax_ce": value_and_grad(optax_ce, activation),
        "optax_dice": value_and_grad(optax_dice, activation),
    }
    for name in losses:
        fns[f"ours:{name}"] = value_and_grad(lambda x, y, a, n=name: ours_loss(n, x, y, a),
                                             activation)
        fns[f"plain:{name}"] = value_and_grad(lambda x, y, a, n=name: plain_loss(n, x, y, a),
                                              activation)
    for name in losses:  # same values and gradients (float32)
        (v1, g1), (v2, g2) = fns[f"ours:{name}"](*args), fns[f"plain:{name}"](*args)
        gap = float(jnp.max(jnp.abs(g1 - g2)) / jnp.max(jnp.abs(g2)))
        assert abs(float(v1) - float(v2)) < 1e-5 and gap < 1e-3, (name, v1, v2, gap)
    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    times = median_times({k: (lambda f=f: f(*args)) for k, f in fns.items()}, reps)

    ce, dice = times["optax_ce"], times["optax_dice"]
    ce_name = "optax softmax CE" if activation == "softmax" else "optax sigmoid BCE"
    print(f"\n### `{list(shape)}`, {activation} ({reps} interleaved reps, median)\n")
    print(f"| loss | ours (ms) | plain autodiff (ms) | ours / {ce_name} | "
          "ours / optax dice_loss | plain / ours | ours CPU (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {ce_name} | {ce[0] * 1e3:.1f} | | 1.00 | {ce[0] / dice[0]:.2f} | | "
          f"{ce[1] * 1e3:.1f} |")
    print(f"| optax dice_loss | {dice[0] * 1e3:.1f} | | {dice[0] / ce[0]:.2f} | 1.00 | | "
          f"{dice[1] * 1e3:.1f} |")
    for name in losses:
        ours, plain = times[f"ours:{name}"], times[f"plain:{name}"]
        print(f"| {name} | {ours[0] * 1e3:.1f} | {plain[0] * 1e3:.1f} | {ours[0] / ce[0]:.2f} "
              f"| {ours[0] / dice[0]:.2f} | {plain[0] / ours[0]:.2f} | {ours[1] * 1e3:.1f} |")

    if "jaccard" in losses:
        ours_mem = temp_bytes(fns["ours:jaccard"], *args)
        plain_mem = temp_bytes(fns["plain:jaccard"], *args)
        ours, plain = times["ours:jaccard"], times["plain:jaccard"]
        print(f"\njaccard_loss fwd+bwd, custom_vjp vs autodiff of the plain formula: "
              f"time {ours[0] * 1e3:.1f} ms vs {plain[0] * 1e3:.1f} ms "
              f"({plain[0] / ours[0]:.1f}x); XLA temp memory "
              f"{ours_mem / 2**20:.1f} MiB vs {plain_mem / 2**20:.1f} MiB "
              f"({plain_mem / max(ours_mem, 1):.1f}x); logits are "
              f"{logits.nbytes / 2**20:.1f} MiB.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--shapes", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    args = parser.parse_args()
    print(f"jax {jax.__version__}, optax {optax.__version__}, {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} cores, backend {jax.default_backend()}")
    for case in args.shapes:
        bench_case(case, tuple(args.losses), args.reps)


if __name__ == "__main__":
    main()
