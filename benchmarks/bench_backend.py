"""Benchmark: each XLA:CPU form of :mod:`segloss_jax._src.backend`, on against off.

Run ``python -m benchmarks.bench_backend`` (``--reps N``, ``--tricks NAME ...``). For
every trick and every loss it serves, the jitted ``value_and_grad`` w.r.t. the logits
is compiled twice in one process, once as the library has it and once with the trick
replaced by its plain form, and the two are timed interleaved (medians after
warm-up). Cases: ``[8, 256, 256, 4]`` logits with a softmax and integer labels,
``[8, 256, 256, 1]`` with a sigmoid and 0/1 labels. Ratio = on / off: below 1 the
trick pays. Both programs are checked to give the same value. One more entry times
the activation fields taken from one ``exp`` (the one activation pass of every loss)
against their standalone ``jax.nn`` forms.

Tricks measured here and then removed (they did not pay for themselves) can be
timed again with ``python -m benchmarks.compare_rev REV`` against the revision
before their removal (benchmarks/RESULTS.md, "Backend module (XLA:CPU)").
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import segloss_jax as sl
from benchmarks.timing import median_times
from segloss_jax._src import backend, inputs

SOFTMAX, SIGMOID = "softmax", "sigmoid"


# trick -> (the replacements that switch it off, [(loss, activation, keywords)]).
TRICKS: dict[str, tuple[list[tuple[object, str, object]], list[tuple[str, str, dict]]]] = {
    "class-axis tree": (
        [(backend, "class_sum", lambda x: jnp.sum(x, axis=-1, keepdims=True)),
         (backend, "class_max", lambda x: jnp.max(x, axis=-1, keepdims=True))],
        [("dice", SOFTMAX, {}), ("jaccard", SOFTMAX, {}), ("dice_ce", SOFTMAX, {}),
         ("dice_focal", SOFTMAX, {}), ("lovasz_softmax", SOFTMAX, {})]),
    "Lovász row groups": (
        [(backend, "lovasz_row_groups", lambda rows: [slice(0, rows)])],
        [("lovasz_softmax", SOFTMAX, {}), ("lovasz_softmax", SOFTMAX, {"per_image": True}),
         ("lovasz_hinge", SIGMOID, {})]),
    "EDT chunks": (
        [(backend, "edt_chunk", lambda size: None)],
        [("boundary", SOFTMAX, {}), ("hausdorff_dt", SOFTMAX, {}), ("shape_aware", SOFTMAX, {}),
         ("distance_weighted_cross_entropy", SOFTMAX, {})]),
}


def _standalone(name: str, fn: Callable) -> tuple[object, str, object]:
    """``Inputs.<name>`` computed by ``fn(x)`` alone (its own ``exp``), falling back to the
    library's form for the other activation."""
    shared = inputs.Inputs.__dict__[name].func
    activation = "sigmoid" if name in ("one_minus_probs", "softplus", "probs") else "softmax"

    def field(self):
        return fn(self.x) if self.activation == activation else shared(self)

    prop = functools.cached_property(field)
    prop.__set_name__(inputs.Inputs, name)
    return inputs.Inputs, name, prop


# The activation fields from one exp (the one activation pass every loss makes) against
# their standalone forms, each with its own exp.
TRICKS["one exp (vs standalone jax.nn forms)"] = (
    [_standalone("lse", lambda x: jax.nn.logsumexp(x, axis=-1)),
     _standalone("probs", jax.nn.sigmoid),
     _standalone("one_minus_probs", lambda x: jax.nn.sigmoid(-x)),
     _standalone("softplus", jax.nn.softplus)],
    [("cross_entropy", SOFTMAX, {}), ("focal", SOFTMAX, {}), ("dice", SOFTMAX, {}),
     ("dice_ce", SOFTMAX, {}), ("binary_cross_entropy", SIGMOID, {}), ("focal", SIGMOID, {}),
     ("dice", SIGMOID, {}), ("dice_ce", SIGMOID, {})])


def cases() -> dict[str, tuple[jax.Array, jax.Array]]:
    key_x, key_y = jax.random.split(jax.random.key(0))
    x = jax.random.normal(key_x, (8, 256, 256, 4), jnp.float32) * 2
    y = jax.random.randint(key_y, (8, 256, 256), 0, 4)
    return {SOFTMAX: (x, y), SIGMOID: (x[..., :1], y % 2)}


def compiled(fn: Callable, replacements, *args):
    """``jax.jit(fn)`` compiled with the module attributes replaced (none: as it is)."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    jax.clear_caches()  # inner jitted passes would reuse their old trace
    for owner, name, value in replacements:
        setattr(owner, name, value)
    try:
        return jax.jit(fn).lower(*args).compile()
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        jax.clear_caches()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--tricks", nargs="*")
    args = parser.parse_args()
    data = cases()
    print(f"jax {jax.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, backend {jax.default_backend()}; fwd+bwd, medians of "
          f"{args.reps} interleaved runs")
    print()
    print("| trick | loss | case | on (ms) | off (ms) | on / off (wall) | on / off (CPU) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for trick, (replacements, served) in TRICKS.items():
        if args.tricks and trick not in args.tricks:
            continue
        for name, activation, keywords in served:
            x, y = data[activation]
            loss = partial(sl.get_loss(name), activation=activation, **keywords)
            if name == "lovasz_hinge":
                loss = sl.lovasz_hinge_loss
            fn = jax.value_and_grad(loss)
            on, off = compiled(fn, [], x, y), compiled(fn, replacements, x, y)
            np.testing.assert_allclose(on(x, y)[0], off(x, y)[0], rtol=1e-5)
            t = median_times({"on": partial(on, x, y), "off": partial(off, x, y)}, args.reps)
            shape = "×".join(map(str, x.shape))
            case = f"{activation} {shape}" + "".join(f" {k}={v}" for k, v in keywords.items())
            print(f"| {trick} | {name} | {case} | {t['on'][0] * 1e3:.1f} | "
                  f"{t['off'][0] * 1e3:.1f} | {t['on'][0] / t['off'][0]:.2f} | "
                  f"{t['on'][1] / t['off'][1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
