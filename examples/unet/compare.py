"""Train the same U-Net with several losses and compare them.

Usage::

    python -m examples.unet.compare --out demo_out
    python -m examples.unet.compare --losses dice cross_entropy dice:1,focal:1 --steps 200

Writes ``<out>/<loss>/`` run folders, ``<out>/RESULTS.md`` and
``<out>/comparison.png``. Every run sees the same data, initialisation and
schedule; only the loss changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import time

import jax
import matplotlib
import numpy as np

from examples.unet import main as cli
from examples.unet import train

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_LOSSES = ("cross_entropy", "dice", "dice_ce", "lovasz_softmax", "focal_tversky")


def run_comparison(losses: tuple[str, ...] | list[str], base: train.Config, out: str) -> dict:
    """Train one model per loss; returns ``{loss: metrics}`` of the runs that ran."""
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = train.load_data(base)  # generated once, shared by every run
    results: dict[str, dict] = {}
    preds: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    start = time.perf_counter()
    for loss in losses:
        try:
            train.resolve_loss(loss)
        except (KeyError, AttributeError) as e:  # not (yet) in the library: report, go on
            skipped[loss] = str(e.args[0]).split(".")[0]
            print(f"skipping {loss}: {skipped[loss]}")
            continue
        cfg = dataclasses.replace(base, loss=loss, out=str(out_dir / _slug(loss)))
        results[loss], preds[loss] = train.run(cfg, datasets)
    total = time.perf_counter() - start
    write_results(results, skipped, base, datasets[2], out_dir / "RESULTS.md", total)
    plot_comparison(results, preds, datasets[1], len(datasets[2]), out_dir / "comparison.png")
    print(f"wrote {out_dir / 'RESULTS.md'} and {out_dir / 'comparison.png'} ({total:.0f} s)")
    return results


def _slug(loss: str) -> str:
    return loss.replace(":", "_").replace(",", "+")


def write_results(
    results: dict[str, dict],
    skipped: dict[str, str],
    cfg: train.Config,
    class_names: tuple[str, ...],
    path: pathlib.Path,
    total_seconds: float,
) -> None:
    fg = class_names[1:]
    lines = [
        "# Loss comparison: U-Net on "
        + ("synthetic scenes" if cfg.data_dir is None else f"`{cfg.data_dir}`"),
        "",
        f"Devices: {len(jax.devices())} × {jax.devices()[0].device_kind}; "
        f"{cfg.steps} steps, batch {cfg.batch}, {cfg.size}×{cfg.size} images, "
        f"width {cfg.width}, depth {cfg.depth}, peak lr {cfg.lr}, seed {cfg.seed}; "
        f"total {total_seconds:.0f} s.",
        "",
        "IoU and Dice per class are computed over the whole validation set; HD95 (pixels) is",
        "averaged over the images where both prediction and target contain the class.",
        "Time: wall-clock training time, including compilation; CPU: process CPU time over",
        "the same span (all threads), which is less sensitive to other load on the machine.",
        "",
        "| loss | mean fg IoU | mean fg Dice | "
        + " | ".join(f"IoU {c}" for c in fg)
        + " | "
        + " | ".join(f"Dice {c}" for c in fg)
        + " | "
        + " | ".join(f"HD95 {c}" for c in fg)
        + " | time (s) | CPU (s) |",
        "|---" * (5 + 3 * len(fg)) + "|",
    ]
    for loss, m in results.items():
        pc = m["per_class"]
        cells = [
            f"`{loss}`",
            train.fmt(m["mean_foreground_iou"]),
            train.fmt(m["mean_foreground_dice"]),
        ]
        cells += [train.fmt(pc[c]["iou"]) for c in fg] + [train.fmt(pc[c]["dice"]) for c in fg]
        cells += [train.fmt(pc[c]["hd95"], 2) for c in fg]
        cells += [f"{m['train_seconds']:.0f}", f"{m['train_cpu_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    for loss, m in results.items():
        if m["status"] != "ok":
            lines += ["", f"`{loss}`: {m['status']}"]
    if skipped:
        lines += ["", "Not run (not registered in `segloss_jax`):"]
        lines += [f"- `{loss}`: {why}" for loss, why in skipped.items()]
    path.write_text("\n".join(lines) + "\n")


def plot_comparison(
    results: dict[str, dict],
    preds: dict[str, np.ndarray],
    val: train.Dataset,
    num_classes: int,
    path: pathlib.Path,
    sample: int = 0,
) -> None:
    """Per-class IoU bars, validation curves, and one sample predicted by each loss."""
    names = list(results)
    cols = max(2, len(names) + 2)
    fig = plt.figure(figsize=(2.2 * cols, 7.5))
    grid = fig.add_gridspec(2, cols, height_ratios=[1.2, 1])
    ax_bar = fig.add_subplot(grid[0, : cols // 2])
    ax_curve = fig.add_subplot(grid[0, cols // 2 :])

    fg = list(next(iter(results.values()))["per_class"])[1:] if results else []
    width = 0.8 / max(1, len(names))
    for i, loss in enumerate(names):
        iou = [results[loss]["per_class"][c]["iou"] or 0.0 for c in fg]
        ax_bar.bar(np.arange(len(fg)) + i * width, iou, width, label=loss)
        h = results[loss]["history"]
        ax_curve.plot(h["val_step"], h["val_iou"], marker="o", ms=2, label=loss)
    ax_bar.set_xticks(np.arange(len(fg)) + 0.4 - width / 2, fg)
    ax_bar.set(ylabel="validation IoU", ylim=(0, 1), title="IoU per class")
    ax_curve.set(xlabel="step", ylabel="mean foreground IoU", ylim=(0, 1), title="validation")
    ax_curve.legend(fontsize=8)
    for ax in (ax_bar, ax_curve):
        ax.grid(alpha=0.3, axis="y")

    panels = [("image", None), ("ground truth", val[1][sample])]
    panels += [(loss, preds[loss][sample]) for loss in names]
    for j, (title, labels) in enumerate(panels[:cols]):
        ax = fig.add_subplot(grid[1, j])
        if labels is None:
            img = val[0][sample]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else np.clip(img, 0, 1), cmap="gray")
        else:
            train.show_labels(ax, labels, num_classes)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compare losses on the U-Net example.")
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--losses", nargs="+", default=list(DEFAULT_LOSSES))
    cli.add_config_args(parser)
    args = parser.parse_args(argv)
    run_comparison(args.losses, cli.config_from_args(args), args.out)


if __name__ == "__main__":
    main()
