"""Benchmark harness: every registered loss, fwd+bwd, against anchors in one process.

For each loss and activation (softmax at ``[8,256,256,4]``, sigmoid at
``[8,256,256,1]``) it times the jitted ``value_and_grad`` w.r.t. the logits,
next to anchors run in the same process and interleaved with it (this machine
is noisy, so ratios matter, not absolute times):

* ``proxy``: ``value_and_grad`` of ``sum(logits * w)`` -- one read and one write
  of the array, the roofline of any loss;
* ``optax_ce``: optax softmax cross-entropy with integer labels (the cheapest
  sensible loss);
* the optax equivalent of the loss, where one exists.

Usage::

    python -m benchmarks.run                      # all losses, writes RESULTS.md
    python -m benchmarks.run --losses cross_entropy focal --repeats 20
    python -m benchmarks.run --compile-check      # compile time at [16,512,512,8]
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import segloss_jax as sl
from benchmarks.timing import median_times
from segloss_jax._src.registry import loss_info

SHAPES = {"softmax": (8, 256, 256, 4), "sigmoid": (8, 256, 256, 1)}
LARGE_SHAPE = (16, 512, 512, 8)
RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- benchmarks.run:begin -->", "<!-- benchmarks.run:end -->"
# Hyperparameters with no default, for losses that need them (a callable gets the class count).
REQUIRED_VALUES = {"beta": 2.0}
# Distances between C classes on a line, |i - j|: a valid [C, C] matrix (zero diagonal).
REQUIRED_VALUES["distance_matrix"] = lambda c: jnp.abs(jnp.arange(c)[:, None] - jnp.arange(c)[None])


def make_inputs(shape, seed=0):
    key_x, key_y = jax.random.split(jax.random.key(seed))
    logits = jax.random.normal(key_x, shape, jnp.float32) * 2
    labels = jax.random.randint(key_y, shape[:-1], 0, max(shape[-1], 2))
    return logits, labels


def loss_call(name: str, activation: str, module=sl) -> Callable:
    """The registered loss ``name`` of ``module`` (this package, or another version of it)
    as ``f(logits, labels)``, with ``activation`` and any required hyperparameter."""
    fn = module.get_loss(name)
    params = inspect.signature(fn).parameters
    kwargs = {k: REQUIRED_VALUES[k] for k, p in params.items()
              if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
    # A callable value gets the class count of the benchmark shape.
    kwargs = {k: v(SHAPES[activation][-1]) if callable(v) else v for k, v in kwargs.items()}
    if "activation" in params:
        kwargs["activation"] = activation
    return lambda logits, labels: fn(logits, labels, **kwargs)


def anchors(activation: str, num_classes: int) -> dict[str, Callable]:
    """Reference losses of the same inputs ``(logits, integer labels)``."""
    out = {"proxy": None}  # filled in by `timed_fns`: depends on the shape

    def optax_ce(logits, labels):
        return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    if activation == "softmax":
        out["optax_ce"] = optax_ce

        def optax_dice(logits, labels):
            return optax.losses.dice_loss(logits, jax.nn.one_hot(labels, num_classes)).mean()

        out["optax_dice"] = optax_dice
    else:
        def optax_bce(logits, labels):
            target = labels[..., None].astype(logits.dtype)
            return optax.losses.sigmoid_binary_cross_entropy(logits, target).mean()

        def optax_focal(logits, labels):
            target = labels[..., None].astype(logits.dtype)
            return optax.losses.sigmoid_focal_loss(logits, target).mean()

        out["optax_bce"] = optax_bce
        out["optax_focal"] = optax_focal
    return out


# The optax function each loss is compared with (the acceptance target of the issue).
OPTAX_EQUIVALENT = {
    ("cross_entropy", "softmax"): "optax_ce",
    ("binary_cross_entropy", "sigmoid"): "optax_bce",
    ("weighted_cross_entropy", "sigmoid"): "optax_bce",  # BCE with a positive weight
    ("balanced_cross_entropy", "sigmoid"): "optax_bce",
    ("focal", "sigmoid"): "optax_focal",
    ("dice", "softmax"): "optax_dice",
}


def compile_fn(loss: Callable, logits, labels):
    """Jitted value_and_grad, compiled; returns (compiled, compile seconds)."""
    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(logits, labels).compile()
    return compiled, time.perf_counter() - start


def bench_activation(names, activation, repeats):
    shape = SHAPES[activation]
    logits, labels = make_inputs(shape)
    weights = jax.random.normal(jax.random.key(1), shape)
    candidates = anchors(activation, shape[-1])
    candidates["proxy"] = lambda l, y: jnp.sum(l * weights)
    for name in names:
        candidates[name] = loss_call(name, activation)
    compiled, compile_s = {}, {}
    for key, fn in candidates.items():
        compiled[key], compile_s[key] = compile_fn(fn, logits, labels)
    # Each loss is timed interleaved with the anchors only, so every ratio compares
    # runs made under the same conditions (a heavy neighbour in the round-robin
    # would otherwise slow whatever runs after it).
    anchor_keys = [k for k in candidates if k not in names]
    anchor_times = {k: [] for k in anchor_keys}
    rows = []
    for name in names:
        group = {k: (lambda f=compiled[k]: f(logits, labels)) for k in [*anchor_keys, name]}
        both = median_times(group, repeats)
        times = {k: wall for k, (wall, _) in both.items()}
        for k in anchor_keys:
            anchor_times[k].append(times[k])
        equivalent = OPTAX_EQUIVALENT.get((name, activation))
        rows.append({
            "loss": name,
            "activation": activation,
            "shape": shape,
            "ms": times[name] * 1e3,
            "compile_s": compile_s[name],
            "x_proxy": times[name] / times["proxy"],
            "x_optax_ce": times[name] / times["optax_ce"] if "optax_ce" in times else None,
            # Process CPU time: the steadier ratio when other jobs share the cores.
            "x_optax_ce_cpu": both[name][1] / both["optax_ce"][1] if "optax_ce" in both else None,
            "optax_equivalent": equivalent,
            "x_equivalent": times[name] / times[equivalent] if equivalent else None,
        })
    anchor_rows = {k: (statistics.median(v) * 1e3, compile_s[k]) for k, v in anchor_times.items()}
    return rows, anchor_rows


def compile_check(names) -> list[tuple[str, float]]:
    """Compile time of the large shape: must not grow with the array size."""
    out = []
    logits, labels = make_inputs(LARGE_SHAPE)
    for name in names:
        activation = "softmax" if "softmax" in loss_info(name).activations else "sigmoid"
        shape_logits = logits if activation == "softmax" else logits[..., :1]
        _, seconds = compile_fn(loss_call(name, activation), shape_logits, labels % 2
                                if activation == "sigmoid" else labels)
        out.append((name, seconds))
    opt = anchors("softmax", LARGE_SHAPE[-1])["optax_ce"]
    out.append(("optax_ce (anchor)", compile_fn(opt, logits, labels)[1]))
    return out


def fmt(x, spec=".2f"):
    return "–" if x is None else format(x, spec)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores; {jax.devices()[0].platform}; "
            f"jax {jax.__version__}, optax {optax.__version__}, Python {platform.python_version()}")


def markdown(rows, anchor_rows, compile_rows, repeats) -> str:
    lines = [
        BEGIN,
        f"Generated by `python -m benchmarks.run` on {datetime.date.today()}: {machine()}.",
        f"Jitted `value_and_grad` w.r.t. the logits; median of {repeats} runs after "
        "warm-up, each loss interleaved with the anchors (the anchors' times below are "
        "medians over those groups); compile time apart. `× proxy`: time over the roofline proxy "
        "(`sum(logits * w)`, one read and one write); `× optax CE`: over optax softmax "
        "cross-entropy (wall time, and process CPU time, the steadier figure on a shared machine); "
        "`× optax equiv.`: over the optax function computing the same loss.",
        "",
        "| loss | activation | shape | ms | compile s | × proxy | × optax CE | × optax CE (CPU) "
        "| optax equiv. | × optax equiv. |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        shape = "×".join(map(str, r["shape"]))  # no spaces: the column stays narrow
        lines.append(
            f"| {r['loss']} | {r['activation']} | {shape} | {r['ms']:.1f} | "
            f"{r['compile_s']:.2f} | {r['x_proxy']:.2f} | {fmt(r['x_optax_ce'])} | "
            f"{fmt(r['x_optax_ce_cpu'])} | "
            f"{r['optax_equivalent'] or '–'} | {fmt(r['x_equivalent'])} |")
    lines += ["", "Anchors:", "", "| anchor | activation | ms | compile s |", "|---|---|---:|---:|"]
    for activation, anchor in anchor_rows.items():
        for name, (ms, comp) in anchor.items():
            lines.append(f"| {name} | {activation} | {ms:.1f} | {comp:.2f} |")
    if compile_rows:
        lines += ["", f"Compile time at {list(LARGE_SHAPE)} (softmax; sigmoid losses at C = 1):",
                  "", "| loss | compile s |", "|---|---:|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in compile_rows]
    lines.append(END)
    return "\n".join(lines)


def write_results(section: str, begin: str = BEGIN, end: str = END,
                  heading: str = "All losses (benchmarks.run)") -> None:
    """Replaces a generated section of RESULTS.md (between its markers ``begin`` and
    ``end``), keeping everything else; a new section goes at the end under ``heading``."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + section + "\n"
    RESULTS.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--losses", nargs="*", default=None, help="registry names (default all)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--compile-check", action="store_true",
                        help=f"also time compilation at {list(LARGE_SHAPE)}")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    names = args.losses or list(sl.list_losses())
    rows, anchor_rows = [], {}
    for activation in ("softmax", "sigmoid"):
        chosen = [n for n in names if activation in loss_info(n).activations]
        if chosen:
            r, a = bench_activation(chosen, activation, args.repeats)
            rows += r
            anchor_rows[activation] = a
    compile_rows = compile_check(names) if args.compile_check else []
    section = markdown(rows, anchor_rows, compile_rows, args.repeats)
    print(section)
    if not args.no_write and args.losses is None:
        write_results(section)


if __name__ == "__main__":
    main()
