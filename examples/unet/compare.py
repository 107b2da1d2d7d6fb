"""Train the same U-Net with several losses and seeds, and compare them.

Usage::

    python -m examples.unet.compare --out demo_out
    python -m examples.unet.compare --losses dice cross_entropy dice:1,focal:1 --seeds 0 1

Writes ``<out>/<loss>/seed<k>/metrics.json`` per run, ``<out>/RESULTS.md``
(mean ± std over seeds), ``<out>/results.json`` (every number) and
``<out>/comparison.png``. Every run sees the same data and schedule; the seed
changes the initialisation and the batch order, the loss is the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pathlib
import time

import jax
import matplotlib
import numpy as np

from examples.unet import data as data_lib
from examples.unet import evaluate, train
from examples.unet import main as cli

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_LOSSES = (
    "cross_entropy",
    "dice",
    "dice_ce",
    "lovasz_softmax",
    "focal_tversky",
    "dice:1,boundary:0.5",  # the boundary loss next to a region loss, as Kervadec et al.
    "dice_cldice",
    # nnU-Net's Skeleton Recall trainer: CE + Dice + recall of the tubed skeleton (weights 1).
    "cross_entropy:1,dice:1,skeleton_recall:1",
    "boundary_dou",
    "topk_cross_entropy",
)
DEFAULT_SEEDS = (0, 1, 2)

# (metric key, column title, higher is better); "<class>/<metric>" is per class.
HEADLINE = (
    ("mean_foreground_iou", "mean fg IoU", True),
    ("curve/iou", "IoU curve", True),
    ("tiny/iou", "IoU tiny", True),
    ("curve/hd95", "HD95 curve (px)", False),
    ("curve/nsd", "NSD curve", True),
    ("curve/cldice", "clDice curve", True),
    ("curve/biou", "Boundary IoU curve", True),
    ("curve/components_error", "components err. curve", False),
    ("tiny/components_error", "components err. tiny", False),
    ("absent_fp", "absent-class FP", False),
    ("ece", "ECE", False),
)
PER_CLASS = (
    ("iou", "IoU", True),
    ("dice", "Dice", True),
    ("hd95", "HD95 (px)", False),
    ("nsd", f"NSD@{evaluate.NSD_TOLERANCE:g}px", True),
    ("biou", "Boundary IoU", True),
    ("components_error", "components err.", False),
    ("cldice", "clDice", True),
    ("absent_fp", "absent FP", False),
)


def run_comparison(
    losses: tuple[str, ...] | list[str],
    seeds: tuple[int, ...] | list[int],
    base: train.Config,
    out: str,
) -> dict:
    """Train one model per loss and seed; returns what ``results.json`` holds."""
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = train.load_data(base)  # generated once, shared by every run
    runs: dict[str, list[dict]] = {}
    preds: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    start = time.perf_counter()
    for loss in losses:
        try:
            train.resolve_loss(loss, **base.loss_kwargs)
        except (KeyError, AttributeError) as e:  # not (yet) in the library: report, go on
            skipped[loss] = str(e.args[0]).split(".")[0]
            print(f"skipping {loss}: {skipped[loss]}")
            continue
        runs[loss] = []
        for seed in seeds:  # the train step is compiled once per loss (train.make_train_step)
            cfg = dataclasses.replace(
                base, loss=loss, seed=seed, checkpoint_every=0,
                out=str(out_dir / _slug(loss) / f"seed{seed}"),
            )  # fmt: skip
            metrics, probs = train.run(cfg, datasets, plots=False)
            runs[loss].append({k: v for k, v in metrics.items() if k != "history"})
            preds.setdefault(loss, probs.argmax(-1))  # the first seed's, for the figure
    total = time.perf_counter() - start

    summary = {loss: summarize(r) for loss, r in runs.items()}
    results = {
        "seeds": list(seeds),
        "config": dataclasses.asdict(base),
        "devices": [str(d) for d in jax.devices()],
        "total_seconds": total,
        "summary": summary,
        "separated": separated_pairs(summary),
        "runs": runs,
        "skipped": skipped,
    }
    if jax.process_index() == 0:  # one writer on a shared folder
        (out_dir / "results.json").write_text(json.dumps(results, indent=1))
        write_results(results, datasets[2], out_dir / "RESULTS.md")
        plot_comparison(runs, preds, datasets[1], datasets[2], out_dir / "comparison.png")
    print(f"wrote {out_dir}/RESULTS.md, results.json and comparison.png ({total:.0f} s)")
    return results


def _slug(loss: str) -> str:
    return loss.replace(":", "_").replace(",", "+")


def flatten(metrics: dict) -> dict[str, float | None]:
    """Scalar metrics of one run as ``{key: value}``, per class as ``"<class>/<metric>"``."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, float | None)}
    for name, entry in metrics["per_class"].items():
        flat.update({f"{name}/{k}": v for k, v in entry.items()})
    return flat


def summarize(runs: list[dict]) -> dict[str, dict]:
    """``{key: {"mean", "std", "n"}}`` over seeds; ``std`` with ddof=1, ``n`` the runs
    where the metric is defined."""
    flats = [flatten(r) for r in runs]
    out = {}
    for key in flats[0]:
        values = np.array([f[key] for f in flats if f.get(key) is not None], float)
        out[key] = {
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "n": len(values),
        }
    return out


def separated_pairs(summary: dict[str, dict]) -> dict[str, list[list[str]]]:
    """Per headline metric, the loss pairs ``[better, worse]`` whose means differ by
    more than the sum of their standard deviations over seeds."""
    out: dict[str, list[list[str]]] = {}
    for key, _, higher in HEADLINE:
        out[key] = []
        for a, b in itertools.combinations(summary, 2):
            sa, sb = summary[a].get(key), summary[b].get(key)
            if not sa or not sb or sa["std"] is None or sb["std"] is None:
                continue
            if abs(sa["mean"] - sb["mean"]) > sa["std"] + sb["std"]:
                better = (sa["mean"] > sb["mean"]) == higher
                out[key].append([a, b] if better else [b, a])
    return out


def _cell(s: dict | None, digits: int = 3) -> str:
    if not s or s["mean"] is None:
        return "–"
    std = "" if s["std"] is None else f" ± {s['std']:.{digits}f}"
    return f"{s['mean']:.{digits}f}{std}"


def _digits(key: str) -> int:
    return 2 if key.endswith(("hd95", "components_error")) else 3


def _best(summary: dict[str, dict], key: str, higher: bool) -> tuple[str | None, dict]:
    """The loss with the best mean of ``key`` and ``{loss: stats}`` where it is defined."""
    have = {k: s[key] for k, s in summary.items() if s.get(key) and s[key]["mean"] is not None}
    if not have:
        return None, have
    return (max if higher else min)(have, key=lambda k: have[k]["mean"]), have


def verdicts(results: dict) -> list[str]:
    """One line per headline metric: the best loss and whom it beats beyond the spread."""
    lines = []
    for key, title, higher in HEADLINE:
        best, have = _best(results["summary"], key, higher)
        if best is None:
            continue
        beaten = sorted(w for b, w in results["separated"][key] if b == best)
        tied = sorted(k for k in have if k != best and k not in beaten)
        text = f"- {title}: best `{best}` ({_cell(have[best], _digits(key))})"
        if not tied:
            text += ", ahead of every other loss by more than the seed spread."
        elif not beaten:
            text += ", but within the seed spread of every other loss."
        else:
            text += f"; beyond the seed spread ahead of {', '.join(f'`{k}`' for k in beaten)}"
            text += f"; within noise of {', '.join(f'`{k}`' for k in tied)}."
        lines.append(text)
    return lines


def headline_sentence(results: dict) -> str:
    """The one-sentence summary: how many pairwise differences exceed the seed spread,
    and the metrics where one loss is ahead of all others beyond it."""
    summary, separated = results["summary"], results["separated"]
    n = len(summary)
    pairs = n * (n - 1) // 2
    total = sum(len(v) for v in separated.values())
    clear = []
    for key, title, higher in HEADLINE:
        best, have = _best(summary, key, higher)
        if best is not None and len(have) > 1:
            if sum(b == best for b, _ in separated[key]) == len(have) - 1:
                clear.append(f"`{best}` on {title}")
    winners = (
        "; a single loss is ahead of all others beyond the spread only for " + ", ".join(clear)
        if clear
        else "; no loss is ahead of all others beyond the spread on any headline metric"
    )
    return (
        f"With {len(results['seeds'])} seeds per loss, {total} of {pairs * len(HEADLINE)} "
        f"pairwise differences ({pairs} loss pairs × {len(HEADLINE)} headline metrics) exceed "
        f"the seed spread (|Δ mean| > std₁ + std₂), the rest are within noise{winners}."
    )


def write_results(results: dict, class_names: tuple[str, ...], path: pathlib.Path) -> None:
    cfg, summary = results["config"], results["summary"]
    scene = cfg["scene"]
    regimes = [k for k in ("thin", "tiny", "absent", "ignore") if scene[k]]
    regimes += [f"imbalance {scene['imbalance']:g}"] if scene["imbalance"] != 1 else []
    source = "synthetic scenes" if cfg["data_dir"] is None else f"`{cfg['data_dir']}`"
    lines = [
        f"# Loss comparison: U-Net on {source}",
        "",
        headline_sentence(results),
        "",
        f"Seeds {', '.join(map(str, results['seeds']))} (initialisation and batch order; the "
        f"data is fixed); mean ± std (ddof=1) over seeds. Devices: {len(results['devices'])} × "
        f"{jax.devices()[0].device_kind}; {cfg['steps']} steps, batch {cfg['batch']}, "
        f"{cfg['size']}×{cfg['size']} images, width {cfg['width']}, depth {cfg['depth']}, "
        f"peak lr {cfg['lr']}, {cfg['num_train']} training and {cfg['num_val']} validation "
        f"scenes; regimes: {', '.join(regimes) or 'none'}; total {results['total_seconds']:.0f} s.",
        "",
        "Metrics on the validation set, ignored pixels left out everywhere. IoU and Dice pool",
        "the pixels of the set; HD95 averages the images where prediction and target both",
        f"hold the class, NSD (normalized surface Dice at {evaluate.NSD_TOLERANCE:g} px) those "
        "where either does;",
        "components err. is the mean per image of |#components(pred) − #components(target)|;",
        "clDice compares morphological skeletons with the other mask; Boundary IoU (1 px",
        "band) averages the images where either holds the class; absent-class FP is the",
        "fraction of images without a class where it is predicted (mean over classes); ECE",
        "the expected calibration error of the softmax. Time: wall-clock per run, mean over",
        "seeds (the first seed of each loss includes compilation).",
        "",
        "![metrics per loss (mean ± std over seeds) and error maps](comparison.png)",
        "",
        "| loss | " + " | ".join(t for _, t, _ in HEADLINE) + " | time (s) |",
        "|---" * (len(HEADLINE) + 2) + "|",
    ]
    for loss, s in summary.items():
        cells = [f"`{loss}`"] + [_cell(s.get(k), _digits(k)) for k, _, _ in HEADLINE]
        lines.append("| " + " | ".join(cells) + f" | {s['train_seconds']['mean']:.0f} |")
    lines += ["", "Best per metric, and which differences exceed the seed spread:", ""]
    lines += verdicts(results)
    for name in class_names[1:]:
        lines += ["", f"## {name}", "", "| loss | " + " | ".join(t for _, t, _ in PER_CLASS) + " |"]
        lines.append("|---" * (len(PER_CLASS) + 1) + "|")
        for loss, s in summary.items():
            cells = [_cell(s.get(f"{name}/{k}"), _digits(k)) for k, _, _ in PER_CLASS]
            lines.append(f"| `{loss}` | " + " | ".join(cells) + " |")
    for loss, runs in results["runs"].items():
        for r in runs:
            if r["status"] != "ok":
                lines += ["", f"`{loss}` seed {r['config']['seed']}: {r['status']}"]
    if results["skipped"]:
        lines += ["", "Not run (not registered in `segloss_jax`):"]
        lines += [f"- `{loss}`: {why}" for loss, why in results["skipped"].items()]
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# Figure

ERROR_COLORS = {  # error maps: kept apart from the class colours
    "false positive (target background)": (1.0, 0.15, 0.15),
    "false negative (predicted background)": (0.2, 0.6, 1.0),
    "wrong foreground class": (1.0, 1.0, 0.3),
}


def loss_colors(names: list[str]) -> dict[str, tuple]:
    """The loss palette: shades of viridis, unlike the categorical class colours."""
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.75, len(names)))
    return dict(zip(names, colors, strict=True))


def error_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """RGB ``[H, W, 3]``: correct foreground in its (dimmed) class colour, errors bright,
    ignored pixels grey."""
    colors = np.array([matplotlib.colors.to_rgb(train.class_color(c)) for c in range(256)])
    rgb = 0.6 * colors[np.where(gt == data_lib.IGNORE_LABEL, 0, gt)]
    fp, fn, swap = ERROR_COLORS.values()
    rgb[(pred != gt) & (gt == 0)] = fp
    rgb[(pred != gt) & (pred == 0) & (gt > 0)] = fn
    rgb[(pred != gt) & (pred > 0) & (gt > 0)] = swap
    rgb[gt == data_lib.IGNORE_LABEL] = 0.5
    return rgb


def _pick_samples(masks: np.ndarray, n: int = 2) -> list[int]:
    """Validation images holding the most regimes at once (curve, tiny, ignored)."""
    score = sum((masks == c).any(axis=(1, 2)) for c in (2, 3, data_lib.IGNORE_LABEL))
    return list(np.argsort(-score, kind="stable")[:n])


def plot_comparison(
    runs: dict[str, list[dict]],
    preds: dict[str, np.ndarray],
    val: train.Dataset,
    class_names: tuple[str, ...],
    path: pathlib.Path,
) -> None:
    """Dot plots per metric (each seed, and mean ± std over seeds), and error maps of
    two validation samples."""
    names = list(runs)
    summary = {n: summarize(r) for n, r in runs.items()}
    seeds = {n: [flatten(r) for r in rs] for n, rs in runs.items()}
    lcol = loss_colors(names)
    fig = plt.figure(figsize=(17, 12), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.5, 1])
    axes = top.subplots(2, 4, sharey=True)
    y = np.arange(len(names))
    fg = list(class_names[1:])
    panels = [
        ("mean_foreground_iou", "mean foreground IoU ↑", None),
        ("iou", "IoU per class ↑", fg),
        ("nsd", f"surface Dice @{evaluate.NSD_TOLERANCE:g} px ↑", fg),
        ("hd95", "HD95 (px) ↓", fg),
        ("components_error", "topology: |Δ #components| per image ↓", fg),
        ("cldice", "topology: clDice ↑", fg),
        ("absent_fp", "absent class predicted (fraction of images) ↓", fg),
        ("ece", "calibration: ECE ↓", None),
    ]
    for ax, (key, title, classes) in zip(axes.ravel(), panels, strict=True):
        series = [(key, None, 0.0)] if classes is None else [
            (f"{c}/{key}", c, 0.25 * (i - (len(classes) - 1) / 2)) for i, c in enumerate(classes)
        ]  # fmt: skip
        for k, cls, dy in series:
            stats = [summary[n].get(k) or {"mean": None} for n in names]
            m = np.array([np.nan if s["mean"] is None else s["mean"] for s in stats])
            e = np.array([s.get("std") or 0.0 for s in stats])
            for yi, n in zip(y, names, strict=True):  # each seed, small and hollow
                v = [f[k] for f in seeds[n] if f.get(k) is not None]
                ax.plot(v, [yi + dy] * len(v), "o", mfc="none", mec="0.45", ms=4, zorder=3)
            if cls is None:
                for yi, n in zip(y, names, strict=True):
                    ax.errorbar(m[yi], yi, xerr=e[yi], fmt="o", color=lcol[n], capsize=3, ms=6)
            else:
                color = train.class_color(class_names.index(cls))
                marker = "osD^v"[class_names.index(cls) % 5]
                ax.errorbar(m, y + dy, xerr=e, fmt=marker, color=color, capsize=2, ms=5, label=cls)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.margins(x=0.08)
    axes[0, 0].set_yticks(y, names)
    axes[0, 0].invert_yaxis()
    for ax in axes[:, 0]:
        for label, n in zip(ax.get_yticklabels(), names, strict=True):
            label.set_color(lcol[n])
            label.set_fontweight("bold")
    handles, labels = axes[0, 1].get_legend_handles_labels()
    top.legend(handles, labels, title="class", loc="outside upper right", ncol=len(fg))
    top.suptitle(
        "mean ± std over seeds (grey circles: single seeds); losses in the viridis palette "
        "(names, single-metric panels), classes in categorical colours",
        fontsize=10,
    )

    samples = _pick_samples(val[1])
    grid = bottom.subplots(len(samples), len(names) + 2, squeeze=False)
    num_classes = len(class_names)
    for row, i in zip(grid, samples, strict=True):
        img = val[0][i]
        row[0].imshow(img[..., 0] if img.shape[-1] == 1 else np.clip(img, 0, 1), cmap="gray")
        train.show_labels(row[1], val[1][i], num_classes)
        for ax, n in zip(row[2:], names, strict=True):
            ax.imshow(error_map(preds[n][i], val[1][i]), interpolation="nearest")
    for ax, title in zip(grid[0], ["image", "target"] + names, strict=True):
        ax.set_title(title, fontsize=8, color=lcol.get(title, "black"), fontweight="bold")
    for ax in grid.ravel():
        ax.set_axis_off()
    patches = [
        matplotlib.patches.Patch(color=train.class_color(c), label=f"{name} (dimmed: correct)")
        for c, name in enumerate(class_names)
        if c
    ]
    patches += [matplotlib.patches.Patch(color=c, label=k) for k, c in ERROR_COLORS.items()]
    patches.append(matplotlib.patches.Patch(color="0.5", label="ignored (255)"))
    bottom.legend(handles=patches, loc="outside lower center", ncol=4, fontsize=9)
    bottom.suptitle("validation samples: errors of each loss (first seed)", fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compare losses on the U-Net example.")
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--losses", nargs="+", default=list(DEFAULT_LOSSES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    cli.add_config_args(parser)
    args = parser.parse_args(argv)
    if args.distributed:
        jax.distributed.initialize()
    run_comparison(args.losses, args.seeds, cli.config_from_args(args), args.out)


if __name__ == "__main__":
    main()
