"""Benchmark: metrics (confusion matrix, HD95, ASSD) and compound-loss overhead.

Run ``python -m benchmarks.bench_metrics`` (``--reps N``). Everything is timed
in one process, candidates interleaved rep by rep after a warm-up; each cell is
the median wall time and process CPU time; ratios use CPU time, the steadier
figure on a shared machine (it counts every thread of the process).

1. ``confusion_matrix`` strategies, jitted, on ``[8, 256, 256]`` labels: the
   chosen ``bincount`` of ``y·C + ŷ``, one-hot matrix products (int8 with int32
   accumulation; float32), and NumPy's ``bincount`` on the host as an anchor.
2. HD95 / ASSD: the jitted, in-graph ``hausdorff_distance`` /
   ``average_surface_distance`` against a scipy pipeline (``binary_erosion``,
   ``distance_transform_edt``, ``np.percentile``: what MONAI does on the host).
3. Compound losses, jitted ``value_and_grad``: each compound against the sum of
   its terms called separately (the overhead of composing them, expected ~1).
4. Fused compounds (``--only fused``), ``per_image=True``, softmax ``[8,256,256,4]``
   and sigmoid ``[8,256,256,1]``: ``dice_ce_loss`` and ``dice_focal_loss`` against
   their two terms as separately jitted functions called one after the other, and
   against optax cross-entropy (softmax CE; sigmoid BCE); wall-time ratios.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi

import segloss_jax as sl
from benchmarks.bench_boundary import optax_ce
from benchmarks.timing import median_times


def table(title: str, times: dict[str, tuple[float, float]], ref: str) -> str:
    lines = [f"### {title}", "", "| candidate | wall ms | CPU ms | CPU / " + ref + " |",
             "|---|---:|---:|---:|"]
    base = times[ref][1]
    for name, (wall, cpu) in times.items():
        lines.append(f"| {name} | {wall * 1e3:.2f} | {cpu * 1e3:.2f} | {cpu / base:.2f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- confusion matrix


def _onehot_dot(dtype, acc):
    def cm(pred, labels, c):
        classes = jnp.arange(c, dtype=pred.dtype)
        p = (pred.reshape(-1)[:, None] == classes).astype(dtype)
        t = (labels.reshape(-1)[:, None] == classes).astype(dtype)
        out = jax.lax.dot_general(t, p, (((0,), (0,)), ((), ())), preferred_element_type=acc)
        return out.astype(jnp.int32)
    return cm


def bench_confusion(reps: int) -> str:
    out = []
    rng = np.random.default_rng(0)
    for c in (2, 21):
        shape = (8, 256, 256)
        labels_np = rng.integers(0, c, shape).astype(np.int32)
        pred_np = rng.integers(0, c, shape).astype(np.int32)
        labels, pred = jnp.asarray(labels_np), jnp.asarray(pred_np)
        chosen = jax.jit(sl.confusion_matrix, static_argnums=2)
        dot_i8 = jax.jit(_onehot_dot(jnp.int8, jnp.int32), static_argnums=2)
        dot_f32 = jax.jit(_onehot_dot(jnp.float32, jnp.float32), static_argnums=2)
        expected = np.asarray(chosen(pred, labels, c))
        for fn in (dot_i8, dot_f32):
            assert np.array_equal(np.asarray(fn(pred, labels, c)), expected)

        index_np = labels_np * c + pred_np
        cands = {"bincount (chosen)": chosen, "one-hot dot int8→int32": dot_i8,
                 "one-hot dot f32": dot_f32}
        thunks = {k: functools.partial(f, pred, labels, c) for k, f in cands.items()}
        thunks["numpy bincount (host)"] = functools.partial(
            np.bincount, index_np.ravel(), minlength=c * c)
        times = median_times(thunks, reps)
        out.append(table(f"confusion_matrix, labels [8, 256, 256], C = {c}", times,
                         "bincount (chosen)"))
    return "\n".join(out)


# ----------------------------------------------------------------------------- surface distances


def balls(shape, rng, count=6):
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    mask = np.zeros(shape, bool)
    for _ in range(count):
        centre = rng.random(len(shape)) * np.array(shape)
        radius = rng.uniform(0.05, 0.2) * min(shape)
        mask |= ((grid - centre) ** 2).sum(-1) < radius**2
    return mask


def scipy_hd95(a, b):
    sa, sb = a & ~ndi.binary_erosion(a), b & ~ndi.binary_erosion(b)
    d_ab = ndi.distance_transform_edt(~sb)[sa]
    d_ba = ndi.distance_transform_edt(~sa)[sb]
    return max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))


def scipy_assd(a, b):
    sa, sb = a & ~ndi.binary_erosion(a), b & ~ndi.binary_erosion(b)
    d = np.concatenate([ndi.distance_transform_edt(~sb)[sa], ndi.distance_transform_edt(~sa)[sb]])
    return d.mean()


def bench_surface(reps: int) -> str:
    out = []
    rng = np.random.default_rng(1)
    for shape, batch in (((256, 256), 1), ((256, 256), 8), ((64, 64, 64), 1)):
        a = np.stack([balls(shape, rng) for _ in range(batch)])
        b = np.stack([balls(shape, rng) for _ in range(batch)])
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        hd95 = jax.jit(jax.vmap(lambda x, y: sl.hausdorff_distance(x, y, percentile=95.0)))
        hd = jax.jit(jax.vmap(sl.hausdorff_distance))
        assd = jax.jit(jax.vmap(sl.average_surface_distance))
        def on_host(fn, a=a, b=b):
            return [fn(x, y) for x, y in zip(a, b, strict=True)]

        np.testing.assert_allclose(hd95(ja, jb), on_host(scipy_hd95), rtol=1e-5)
        np.testing.assert_allclose(assd(ja, jb), on_host(scipy_assd), rtol=1e-4)
        times = median_times({
            "hausdorff_distance q=95 (jit)": functools.partial(hd95, ja, jb),
            "hausdorff_distance q=100 (jit)": functools.partial(hd, ja, jb),
            "average_surface_distance (jit)": functools.partial(assd, ja, jb),
            "scipy HD95": functools.partial(on_host, scipy_hd95),
            "scipy ASSD": functools.partial(on_host, scipy_assd),
        }, reps)
        out.append(table(f"surface distances, {batch} × {list(shape)} masks", times,
                         "scipy HD95"))
    return "\n".join(out)


# ----------------------------------------------------------------------------- compounds


def bench_compound(reps: int) -> str:
    key_x, key_y = jax.random.split(jax.random.key(0))
    logits = jax.random.normal(key_x, (8, 256, 256, 4), jnp.float32) * 2
    labels = jax.random.randint(key_y, (8, 256, 256), 0, 4)
    probs = lambda x: jax.nn.softmax(x, axis=-1)  # noqa: E731
    pairs = {
        "dice_ce": (sl.dice_ce_loss, lambda x, y: sl.dice_loss(x, y) + sl.cross_entropy(x, y)),
        "dice_focal": (sl.dice_focal_loss,
                       lambda x, y: sl.dice_loss(x, y) + sl.focal_loss(x, y)),
        "combo": (sl.combo_loss, lambda x, y: 0.5 * sl.balanced_cross_entropy(
            probs(x), y, beta=0.5, activation=None) + 0.5 * sl.dice_loss(x, y)),
        "combine(dice, cross_entropy)": (sl.combine({"dice": 1.0, "cross_entropy": 1.0}),
                                         lambda x, y: sl.dice_loss(x, y) + sl.cross_entropy(x, y)),
        "exp_log": (sl.exp_log_loss, None),
    }
    fns = {}
    for name, (compound, separate) in pairs.items():
        fns[name] = jax.jit(jax.value_and_grad(compound))
        if separate is not None:
            fns[name + " / terms"] = jax.jit(jax.value_and_grad(separate))
    fns["cross_entropy alone"] = jax.jit(jax.value_and_grad(sl.cross_entropy))
    times = median_times({k: (lambda f=f: f(logits, labels)) for k, f in fns.items()}, reps)
    lines = ["### compound losses, value_and_grad, softmax [8, 256, 256, 4]", "",
             "| loss | wall ms | CPU ms | compound / its terms (CPU) | CPU / cross_entropy |",
             "|---|---:|---:|---:|---:|"]
    base = times["cross_entropy alone"][1]
    for name, (wall, cpu) in times.items():
        if name.endswith(" / terms"):
            continue
        terms = times.get(name + " / terms")
        ratio = f"{cpu / terms[1]:.2f}" if terms else "–"
        lines.append(f"| {name} | {wall * 1e3:.1f} | {cpu * 1e3:.1f} | {ratio} | "
                     f"{cpu / base:.2f} |")
    return "\n".join(lines) + "\n"


def _fused_rows(act: str, shape: tuple[int, ...], reps: int) -> list[str]:
    key_x, key_y = jax.random.split(jax.random.key(0))
    logits = jax.random.normal(key_x, shape, jnp.float32) * 2
    labels = jax.random.randint(key_y, shape[:-1], 0, max(shape[-1], 2))
    kw = dict(activation=act, per_image=True)
    ce = sl.cross_entropy if act == "softmax" else sl.binary_cross_entropy

    def vg(f):
        return jax.jit(jax.value_and_grad(f))

    dice = vg(lambda x, y: sl.dice_loss(x, y, **kw))
    compounds = {"dice_ce": (sl.dice_ce_loss, ce),
                 "dice_focal": (sl.dice_focal_loss, sl.focal_loss)}
    fns = {"optax": (vg(functools.partial(optax_ce, activation=act)),)}
    for name, (compound, pixel) in compounds.items():
        fns[name] = (vg(functools.partial(compound, **kw)),)
        fns[name + " terms"] = (dice, vg(functools.partial(pixel, activation=act)))
    thunks = {k: functools.partial(lambda fs: [f(logits, labels) for f in fs], fs)
              for k, fs in fns.items()}
    wall = {k: v[0] * 1e3 for k, v in median_times(thunks, reps).items()}
    return [f"| {name} | {act} {list(shape)} | {wall[name]:.1f} | {wall[name + ' terms']:.1f} | "
            f"{wall[name] / wall[name + ' terms']:.2f} | {wall['optax']:.1f} | "
            f"{wall[name] / wall['optax']:.2f} |" for name in compounds]


def bench_fused(reps: int) -> str:
    lines = ["### fused compounds, value_and_grad, `per_image=True`", "",
             "| loss | case | ms | its terms, separately jitted (ms) | fused / terms | "
             "optax CE (ms) | fused / optax CE |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += _fused_rows("softmax", (8, 256, 256, 4), reps)
    lines += _fused_rows("sigmoid", (8, 256, 256, 1), reps)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--only", choices=("confusion", "surface", "compound", "fused"),
                        nargs="*")
    args = parser.parse_args()
    only = set(args.only or ("confusion", "surface", "compound", "fused"))
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; median of {args.reps} interleaved runs\n")
    if "confusion" in only:
        print(bench_confusion(args.reps))
    if "surface" in only:
        print(bench_surface(args.reps))
    if "compound" in only:
        print(bench_compound(args.reps))
    if "fused" in only:
        print(bench_fused(args.reps))


if __name__ == "__main__":
    main()
