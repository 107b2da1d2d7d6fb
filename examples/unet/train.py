"""Training, evaluation and outputs for the U-Net example.

Data parallel with ``jax.sharding``: a 1D mesh over every device, the batch
split along it (``P("data")``), parameters and optimizer state replicated
(``P()``). ``nnx.jit`` then compiles one SPMD program, and XLA inserts the
gradient all-reduce. The same code runs on one CPU, simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), a GPU or a TPU host.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

import segloss_jax as sl
from examples.unet import data as data_lib
from examples.unet.model import UNet

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

Dataset = tuple[np.ndarray, np.ndarray]  # images [N,H,W,C] float32, masks [N,H,W] int32


@dataclasses.dataclass
class Config:
    loss: str = "dice_ce"  # registry name, or "dice+cross_entropy" / "dice:1,cross_entropy:0.5"
    steps: int = 300
    size: int = 64
    batch: int = 8
    lr: float = 5e-3
    weight_decay: float = 1e-4
    warmup: int = 30
    seed: int = 0
    width: int = 8
    depth: int = 3
    num_train: int = 1024  # synthetic scenes (ignored with data_dir)
    num_val: int = 64
    eval_every: int = 25
    data_dir: str | None = None  # PNG folder: images/*.png + masks/*.png
    out: str = "runs/unet"


# ---------------------------------------------------------------------------
# Loss selection


def resolve_loss(spec: str) -> Callable[..., jax.Array]:
    """A loss from a registry name or a weighted sum ``"a+b"`` / ``"a:1,b:0.5"``."""
    if not any(c in spec for c in "+,:"):
        return sl.get_loss(spec)
    weights: dict[str, float] = {}
    for term in spec.replace("+", ",").split(","):
        name, _, weight = term.strip().partition(":")
        weights[name] = weights.get(name, 0.0) + (float(weight) if weight else 1.0)
    return sl.combine(weights)


# ---------------------------------------------------------------------------
# Data


def load_data(cfg: Config) -> tuple[Dataset, Dataset, tuple[str, ...]]:
    """Train and validation sets plus class names."""
    if cfg.data_dir is None:
        scenes = data_lib.SceneConfig(size=cfg.size)
        train = data_lib.make_dataset(cfg.num_train, scenes, seed=cfg.seed, stream=0)
        val = data_lib.make_dataset(cfg.num_val, scenes, seed=cfg.seed, stream=1)
        return train, val, data_lib.CLASS_NAMES
    images, masks = data_lib.load_png_folder(cfg.data_dir, size=cfg.size)
    # Deterministic split: the last 20% of the sorted file names validate.
    n_val = max(1, len(images) // 5)
    if len(images) - n_val < 1:
        raise ValueError(f"{cfg.data_dir}: need at least 2 image/mask pairs")
    labels = masks[masks != data_lib.IGNORE_LABEL]
    names = tuple(f"class_{c}" for c in range(int(labels.max()) + 1))
    return (images[:-n_val], masks[:-n_val]), (images[-n_val:], masks[-n_val:]), names


def batches(train: Dataset, batch: int, seed: int):
    """Endless shuffled minibatches (reshuffled every epoch)."""
    rng = np.random.default_rng(seed)
    images, masks = train
    while True:
        order = rng.permutation(len(images))
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            yield images[idx], masks[idx]


# ---------------------------------------------------------------------------
# Metrics


def per_class_metrics(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, *, hd95: bool = True
) -> dict[str, np.ndarray]:
    """IoU and Dice per class over the whole set; HD95 per class, image-averaged.

    HD95 is averaged over the images where both prediction and target contain
    the class (it is undefined when either is empty).
    """
    ignore = data_lib.IGNORE_LABEL if (gt == data_lib.IGNORE_LABEL).any() else None
    pred, gt = jnp.asarray(pred), jnp.asarray(gt)
    cm = sl.confusion_matrix(pred, gt, num_classes, ignore_index=ignore)
    out = {
        "confusion": np.asarray(cm),
        "iou": np.asarray(sl.iou_score(pred, gt, num_classes, ignore_index=ignore)),
        "dice": np.asarray(sl.dice_score(pred, gt, num_classes, ignore_index=ignore)),
    }
    if hd95:
        hd = np.full(num_classes, np.nan)
        for c in range(1, num_classes):  # background HD95 says little
            p, g = pred == c, gt == c
            both = np.asarray(p.any(axis=(1, 2)) & g.any(axis=(1, 2)))
            if both.any():
                d = np.asarray(_hd95(p, g))
                hd[c] = float(np.mean(d[both]))
        out["hd95"] = hd
    return out


@jax.jit
@jax.vmap
def _hd95(pred_mask: jax.Array, mask: jax.Array) -> jax.Array:
    return sl.hausdorff_distance(pred_mask, mask, percentile=95.0)


# ---------------------------------------------------------------------------
# Steps


def make_optimizer(model: UNet, cfg: Config) -> nnx.Optimizer:
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.lr,
        warmup_steps=min(cfg.warmup, cfg.steps),
        decay_steps=max(cfg.steps, cfg.warmup + 1),
        end_value=cfg.lr * 0.01,
    )
    # Clipping keeps the early steps of the sharper region losses from blowing up.
    tx = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=cfg.weight_decay)
    )
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def make_train_step(loss_fn: Callable[..., jax.Array], **loss_kwargs):
    @nnx.jit
    def train_step(model: UNet, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array):
        def objective(model: UNet) -> jax.Array:
            return loss_fn(model(images), labels, **loss_kwargs)

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss

    return train_step


@nnx.jit
def _predict(model: UNet, images: jax.Array) -> jax.Array:
    return jnp.argmax(model(images), axis=-1).astype(jnp.int32)


def predict(model: UNet, images: np.ndarray, batch: int, sharding: NamedSharding) -> np.ndarray:
    """Class predictions ``[N, H, W]``, in sharded chunks padded to ``batch``."""
    out = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        pad = batch - len(chunk)  # constant chunk shape: one compilation, divisible by devices
        chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        out.append(np.asarray(_predict(model, jax.device_put(chunk, sharding)))[: batch - pad])
    return np.concatenate(out)


# ---------------------------------------------------------------------------
# Training loop


def run(
    cfg: Config, datasets: tuple[Dataset, Dataset, tuple[str, ...]] | None = None
) -> tuple[dict, np.ndarray]:
    """Train one model, evaluate it and write outputs to ``cfg.out``.

    Args:
      cfg: the run's settings.
      datasets: ``(train, val, class_names)`` as from :func:`load_data`, to share
        data between runs; loaded from ``cfg`` when ``None``.

    Returns:
      The metrics written to ``metrics.json`` and the validation predictions
      ``[N, H, W]``.
    """
    out_dir = pathlib.Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val, class_names = datasets or load_data(cfg)
    num_classes = len(class_names)

    devices = jax.devices()
    if cfg.batch % len(devices):
        raise ValueError(f"--batch {cfg.batch} must be a multiple of the {len(devices)} devices")
    mesh = Mesh(np.asarray(devices), ("data",))
    batch_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())

    # "rbg" keys: threefry's random-bit kernels take about a second each to compile
    # on CPU, once per kernel shape, which dominated start-up of short runs.
    rngs = nnx.Rngs(jax.random.key(cfg.seed, impl="rbg"))
    in_features = train[0].shape[-1]
    model = UNet(in_features, num_classes, width=cfg.width, depth=cfg.depth, rngs=rngs)
    optimizer = make_optimizer(model, cfg)
    for module in (model, optimizer):
        nnx.update(module, jax.device_put(nnx.state(module), replicated))

    loss_kwargs = {}
    if (train[1] == data_lib.IGNORE_LABEL).any():
        loss_kwargs["ignore_index"] = data_lib.IGNORE_LABEL
    train_step = make_train_step(resolve_loss(cfg.loss), **loss_kwargs)

    history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_iou": []}
    status, ema, best, warned = "ok", math.nan, math.inf, False
    stream = batches(train, cfg.batch, cfg.seed)
    start = time.perf_counter()
    first_step_s = math.nan
    cpu_start = time.process_time()
    bar = tqdm(range(1, cfg.steps + 1), desc=cfg.loss, dynamic_ncols=True)
    for step in bar:
        images, labels = (jax.device_put(a, batch_sharding) for a in next(stream))
        loss = float(train_step(model, optimizer, images, labels))
        if step == 1:
            first_step_s = time.perf_counter() - start  # mostly compilation
        history["step"].append(step)
        history["loss"].append(loss)
        if not math.isfinite(loss):
            status = f"stopped: non-finite loss ({loss}) at step {step}"
            tqdm.write(f"[{cfg.loss}] {status}")
            break
        # Divergence watch on a smoothed loss, after warm-up (it can rise then).
        ema = loss if math.isnan(ema) else 0.9 * ema + 0.1 * loss
        best = min(best, ema)
        rising = step > cfg.warmup and ema > 1.5 * best + 0.02
        if rising and not warned:
            tqdm.write(
                f"[{cfg.loss}] warning: smoothed loss {ema:.4f} at step {step} is well above "
                f"its minimum {best:.4f}; consider a lower --lr"
            )
        warned = rising  # warn once per excursion
        if step % cfg.eval_every == 0 or step == cfg.steps:
            pred = predict(model, val[0], cfg.batch, batch_sharding)
            m = per_class_metrics(pred, val[1], num_classes, hd95=False)
            history["val_step"].append(step)
            history["val_iou"].append(float(np.nanmean(m["iou"][1:])))
        postfix = {"loss": f"{loss:.4f}"}
        if history["val_iou"]:
            postfix["val_iou"] = f"{history['val_iou'][-1]:.3f}"
        bar.set_postfix(postfix)
    bar.close()
    train_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start

    pred = predict(model, val[0], cfg.batch, batch_sharding)
    final = per_class_metrics(pred, val[1], num_classes)
    metrics = {
        "loss": cfg.loss,
        "status": status,
        "devices": [str(d) for d in devices],
        "train_seconds": train_s,
        "train_cpu_seconds": cpu_s,  # all threads; with train_seconds, shows contention
        "first_step_seconds": first_step_s,
        "steps_run": len(history["step"]),
        "mean_foreground_iou": _num(np.nanmean(final["iou"][1:])),
        "mean_foreground_dice": _num(np.nanmean(final["dice"][1:])),
        "per_class": {
            name: {k: _num(final[k][c]) for k in ("iou", "dice", "hd95")}
            for c, name in enumerate(class_names)
        },
        "confusion_matrix": final["confusion"].tolist(),
        "history": {**history, "loss": [_num(x) for x in history["loss"]]},
        "config": dataclasses.asdict(cfg),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_curves(history, out_dir / "curves.png", title=cfg.loss)
    plot_samples(val[0], val[1], pred, out_dir / "samples.png", num_classes)
    return metrics, pred


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None  # JSON has no NaN


def fmt(x: float | None, digits: int = 3) -> str:
    """A metric from ``metrics.json`` for printing; ``None`` (undefined) as a dash."""
    return "–" if x is None else f"{x:.{digits}f}"


# ---------------------------------------------------------------------------
# Plots


def class_cmap(num_classes: int) -> matplotlib.colors.Colormap:
    colors = plt.get_cmap("tab10")(np.arange(num_classes) % 10)
    colors[0] = (0.0, 0.0, 0.0, 1.0)  # background black
    return matplotlib.colors.ListedColormap(colors).with_extremes(bad="0.6")  # ignored: grey


def show_labels(ax: plt.Axes, labels: np.ndarray, num_classes: int) -> None:
    """Draw a label map; ``IGNORE_LABEL`` pixels in grey."""
    labels = np.ma.masked_equal(labels, data_lib.IGNORE_LABEL)
    ax.imshow(
        labels, cmap=class_cmap(num_classes), vmin=0, vmax=num_classes - 1, interpolation="nearest"
    )


def plot_curves(history: dict, path: pathlib.Path, *, title: str = "") -> None:
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(history["step"], history["loss"], lw=0.8)
    ax_loss.set(xlabel="step", ylabel="training loss", title=title)
    ax_iou.plot(history["val_step"], history["val_iou"], marker="o", ms=3)
    ax_iou.set(xlabel="step", ylabel="validation mean foreground IoU", ylim=(0, 1))
    for ax in (ax_loss, ax_iou):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_samples(
    images: np.ndarray,
    masks: np.ndarray,
    pred: np.ndarray,
    path: pathlib.Path,
    num_classes: int,
    n: int = 4,
) -> None:
    n = min(n, len(images))
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n), squeeze=False)
    for i in range(n):
        img = images[i]
        axes[i, 0].imshow(img[..., 0] if img.shape[-1] == 1 else np.clip(img, 0, 1), cmap="gray")
        show_labels(axes[i, 1], masks[i], num_classes)
        show_labels(axes[i, 2], pred[i], num_classes)
    for ax, name in zip(axes[0], ("image", "ground truth", "prediction"), strict=True):
        ax.set_title(name)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
