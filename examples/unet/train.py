"""Training, evaluation and outputs for the U-Net example.

Data parallel with ``jax.sharding``: a 1D mesh over every device of every
process (``jax.make_mesh``), the batch split along it (``P("data")``),
parameters and optimizer state replicated (``P()``). Each process feeds its own
slice of the global batch (``jax.make_array_from_process_local_data``);
``nnx.jit`` compiles one SPMD program and XLA inserts the gradient all-reduce.
The same code runs on one CPU, simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), GPUs or TPUs, one
host or many (after ``jax.distributed.initialize()``).
"""

from __future__ import annotations

import dataclasses
import functools
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
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

import segloss_jax as sl
from examples.unet import data as data_lib
from examples.unet import evaluate
from examples.unet.model import UNet

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

Dataset = tuple[np.ndarray, np.ndarray]  # images [N,H,W,C] float32, masks [N,H,W] int32


@dataclasses.dataclass
class Config:
    loss: str = "dice_ce"  # registry name, or "dice+cross_entropy" / "dice:1,cross_entropy:0.5"
    loss_kwargs: dict = dataclasses.field(default_factory=dict)  # keywords for the loss
    steps: int = 150
    size: int = 48
    batch: int = 8
    lr: float = 1e-2
    weight_decay: float = 1e-4
    warmup: int = 15
    seed: int = 0  # initialisation and batch order
    data_seed: int = 0  # synthetic scenes
    width: int = 8
    depth: int = 3
    dtype: str = "float32"  # parameters and activations; "bfloat16" halves memory
    num_train: int = 512  # synthetic scenes (ignored with data_dir)
    num_val: int = 64
    eval_every: int = 50  # also how often training losses are fetched from the device
    checkpoint_every: int = 100  # orbax checkpoints in <out>/checkpoints; 0: none
    resume: bool = False  # continue from the latest checkpoint in <out>/checkpoints
    scene: data_lib.SceneConfig = dataclasses.field(default_factory=data_lib.SceneConfig)
    data_dir: str | None = None  # PNG folder: images/*.png + masks/*.png
    out: str = "runs/unet"


# ---------------------------------------------------------------------------
# Loss selection


def resolve_loss(spec: str, **kwargs) -> Callable[..., jax.Array]:
    """A loss from a registry name or a weighted sum ``"a+b"`` / ``"a:1,b:0.5"``.

    ``kwargs`` go to the loss (to every member of a sum, checked by ``sl.combine``).
    """
    if not any(c in spec for c in "+,:"):
        fn = sl.get_loss(spec)
        return functools.partial(fn, **kwargs) if kwargs else fn
    weights: dict[str, float] = {}
    for term in spec.replace("+", ",").split(","):
        name, _, weight = term.strip().partition(":")
        weights[name] = weights.get(name, 0.0) + (float(weight) if weight else 1.0)
    return sl.combine(weights, **kwargs)


# ---------------------------------------------------------------------------
# Data


def load_data(cfg: Config) -> tuple[Dataset, Dataset, tuple[str, ...]]:
    """Train and validation sets plus class names."""
    if cfg.data_dir is None:
        scenes = dataclasses.replace(cfg.scene, size=cfg.size)
        train = data_lib.make_dataset(cfg.num_train, scenes, seed=cfg.data_seed, stream=0)
        val = data_lib.make_dataset(cfg.num_val, scenes, seed=cfg.data_seed, stream=1)
        return train, val, data_lib.CLASS_NAMES
    images, masks = data_lib.load_png_folder(cfg.data_dir, size=cfg.size)
    # Deterministic split: the last 20% of the sorted file names validate.
    n_val = max(1, len(images) // 5)
    if len(images) - n_val < 1:
        raise ValueError(f"{cfg.data_dir}: need at least 2 image/mask pairs")
    labels = masks[masks != data_lib.IGNORE_LABEL]
    names = tuple(f"class_{c}" for c in range(int(labels.max()) + 1))
    return (images[:-n_val], masks[:-n_val]), (images[-n_val:], masks[-n_val:]), names


def batch_indices(num: int, batch: int, seed: int, step: int) -> np.ndarray:
    """Indices of the global batch of ``step`` (1-based): a fresh permutation per epoch.

    A function of ``(seed, step)`` only, so a resumed run sees the same batches.
    """
    per_epoch = num // batch
    epoch, i = divmod(step - 1, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num)
    return order[i * batch : (i + 1) * batch]


def global_batch(arrays: Dataset, idx: np.ndarray, sharding: NamedSharding) -> list[jax.Array]:
    """``arrays[idx]`` as global arrays split over the batch axis.

    Every process computes the same ``idx`` and loads only its own slice of it.
    """
    local = np.array_split(idx, jax.process_count())[jax.process_index()]
    return [
        jax.make_array_from_process_local_data(sharding, a[local], (len(idx), *a.shape[1:]))
        for a in arrays
    ]


# ---------------------------------------------------------------------------
# Steps


def make_optimizer(model: UNet, cfg: Config) -> nnx.Optimizer:
    return nnx.Optimizer(
        model, _transform(cfg.lr, cfg.warmup, cfg.steps, cfg.weight_decay), wrt=nnx.Param
    )


@functools.cache
def _transform(lr: float, warmup: int, steps: int, weight_decay: float):
    # Cached: the transform is static in the optimizer's graph, so one object per
    # setting lets runs that differ only in seed reuse the compiled train step.
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=lr,
        warmup_steps=min(warmup, steps),
        decay_steps=max(steps, warmup + 1),
        end_value=lr * 0.01,
    )
    # Clipping keeps the early steps of the sharper region losses from blowing up.
    return optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=weight_decay)
    )


@functools.cache
def make_train_step(loss: str, loss_kwargs_json: str = "{}"):
    """The jitted step of a loss spec; one per ``(loss, keywords)`` in a process, so
    runs that differ only in seed reuse its compilation."""
    loss_fn = resolve_loss(loss, **json.loads(loss_kwargs_json))

    @nnx.jit
    def train_step(model: UNet, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array):
        def objective(model: UNet) -> jax.Array:
            return loss_fn(model(images), labels)  # the model returns float32 logits

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss

    return train_step


@nnx.jit
def _probs(model: UNet, images: jax.Array) -> jax.Array:
    return jax.nn.softmax(model(images), axis=-1)


def predict(model: UNet, images: np.ndarray, batch: int, sharding: NamedSharding) -> np.ndarray:
    """Class probabilities ``[N, H, W, C]`` float32, in global batches of ``batch``."""
    out = []
    for i in range(0, len(images), batch):
        idx = np.minimum(np.arange(i, i + batch), len(images) - 1)  # pad with the last image
        (chunk,) = global_batch((images,), idx, sharding)
        probs = multihost_utils.process_allgather(_probs(model, chunk), tiled=True)
        out.append(probs[: len(images) - i])
    return np.concatenate(out)


# ---------------------------------------------------------------------------
# Checkpoints (orbax)


def checkpoint_manager(cfg: Config) -> ocp.CheckpointManager | None:
    if not cfg.checkpoint_every:
        return None
    return ocp.CheckpointManager(
        pathlib.Path(cfg.out, "checkpoints").absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=2),
    )


def _train_state(model: UNet, optimizer: nnx.Optimizer) -> dict:
    return {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}


def restore_latest(mngr: ocp.CheckpointManager, model: UNet, optimizer: nnx.Optimizer) -> int:
    """Load the latest checkpoint into ``model`` and ``optimizer``; its step (0: none)."""
    step = mngr.latest_step()
    if step is None:
        return 0
    # The current state is the target: shapes, dtypes and shardings to restore into.
    target = _train_state(model, optimizer)
    restored = mngr.restore(step, args=ocp.args.StandardRestore(target))
    nnx.update(model, restored["model"])
    nnx.update(optimizer, restored["optimizer"])
    return step


# ---------------------------------------------------------------------------
# Training loop


def run(
    cfg: Config,
    datasets: tuple[Dataset, Dataset, tuple[str, ...]] | None = None,
    *,
    plots: bool = True,
) -> tuple[dict, np.ndarray]:
    """Train one model, evaluate it and write outputs to ``cfg.out``.

    Args:
      cfg: the run's settings.
      datasets: ``(train, val, class_names)`` as from :func:`load_data`, to share
        data between runs; loaded from ``cfg`` when ``None``.
      plots: also write ``curves.png`` and ``samples.png``.

    Returns:
      The metrics written to ``metrics.json`` and the validation probabilities
      ``[N, H, W, C]``.
    """
    out_dir = pathlib.Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val, class_names = datasets or load_data(cfg)
    num_classes = len(class_names)

    if cfg.batch % jax.device_count():
        raise ValueError(f"--batch {cfg.batch} must be a multiple of {jax.device_count()} devices")
    # Auto axis: XLA propagates the batch sharding through the model and the loss.
    mesh = jax.make_mesh((jax.device_count(),), ("data",), (jax.sharding.AxisType.Auto,))
    batch_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())

    # "rbg" keys: threefry's random-bit kernels take about a second each to compile
    # on CPU, once per kernel shape, which dominated start-up of short runs.
    rngs = nnx.Rngs(jax.random.key(cfg.seed, impl="rbg"))
    model = UNet(
        train[0].shape[-1], num_classes, width=cfg.width, depth=cfg.depth,
        dtype=jnp.dtype(cfg.dtype), rngs=rngs,
    )  # fmt: skip
    optimizer = make_optimizer(model, cfg)
    for module in (model, optimizer):
        nnx.update(module, jax.device_put(nnx.state(module), replicated))
    mngr = checkpoint_manager(cfg)
    start_step = restore_latest(mngr, model, optimizer) if mngr and cfg.resume else 0
    if start_step:
        tqdm.write(f"[{cfg.loss}] resumed from step {start_step} ({out_dir / 'checkpoints'})")

    loss_kwargs = {}
    if (train[1] == data_lib.IGNORE_LABEL).any():
        loss_kwargs["ignore_index"] = data_lib.IGNORE_LABEL
    loss_kwargs.update(cfg.loss_kwargs)
    train_step = make_train_step(cfg.loss, json.dumps(loss_kwargs, sort_keys=True))

    history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_iou": []}
    status, ema, best, warned = "ok", math.nan, math.inf, False
    pending: list[jax.Array] = []  # losses still on the device: no host sync every step
    start = time.perf_counter()
    cpu_start = time.process_time()
    bar = tqdm(total=cfg.steps, initial=start_step, desc=cfg.loss, dynamic_ncols=True)
    for step in range(start_step + 1, cfg.steps + 1):
        idx = batch_indices(len(train[0]), cfg.batch, cfg.seed, step)
        images, labels = global_batch(train, idx, batch_sharding)
        pending.append(train_step(model, optimizer, images, labels))
        if mngr and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            mngr.save(step, args=ocp.args.StandardSave(_train_state(model, optimizer)))
        if step % cfg.eval_every and step != cfg.steps:
            continue
        losses = [float(x) for x in jax.device_get(pending)]
        for i, loss in enumerate(losses, step - len(losses) + 1):
            history["step"].append(i)
            history["loss"].append(loss)
            if not math.isfinite(loss):
                status = f"stopped: non-finite loss ({loss}) at step {i}"
                break
            # Divergence watch on a smoothed loss, after warm-up (it can rise then).
            ema = loss if math.isnan(ema) else 0.9 * ema + 0.1 * loss
            best = min(best, ema)
            rising = i > cfg.warmup and ema > 1.5 * best + 0.02
            if rising and not warned:
                tqdm.write(
                    f"[{cfg.loss}] warning: smoothed loss {ema:.4f} at step {i} is well above "
                    f"its minimum {best:.4f}; consider a lower --lr"
                )
            warned = rising  # warn once per excursion
        pending = []
        bar.update(len(losses))
        if status != "ok":
            tqdm.write(f"[{cfg.loss}] {status}")
            break
        pred = predict(model, val[0], cfg.batch, batch_sharding).argmax(-1)
        iou = sl.iou_score(pred, val[1], num_classes, ignore_index=data_lib.IGNORE_LABEL)
        history["val_step"].append(step)
        history["val_iou"].append(float(np.nanmean(np.asarray(iou)[1:])))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", val_iou=f"{history['val_iou'][-1]:.3f}")
    bar.close()
    if mngr:
        mngr.wait_until_finished()
        mngr.close()
    train_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start

    probs = predict(model, val[0], cfg.batch, batch_sharding)
    final = evaluate.evaluate(probs, val[1], class_names)
    metrics = {
        "loss": cfg.loss,
        "status": status,
        "devices": [str(d) for d in jax.devices()],
        "train_seconds": train_s,
        "train_cpu_seconds": cpu_s,  # all threads; with train_seconds, shows contention
        "start_step": start_step,
        "param_dtype": str(jax.tree.leaves(nnx.state(model, nnx.Param))[0].dtype),
        "steps_run": len(history["step"]),
        **final,
        "history": {**history, "loss": [evaluate.json_number(x) for x in history["loss"]]},
        "config": dataclasses.asdict(cfg),
    }
    if jax.process_index() == 0:  # one writer on a shared folder
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if plots and jax.process_index() == 0:
        plot_curves(history, out_dir / "curves.png", title=cfg.loss)
        plot_samples(val[0], val[1], probs.argmax(-1), out_dir / "samples.png", num_classes)
    return metrics, probs


def fmt(x: float | None, digits: int = 3) -> str:
    """A metric from ``metrics.json`` for printing; ``None`` (undefined) as a dash."""
    return "–" if x is None else f"{x:.{digits}f}"


# ---------------------------------------------------------------------------
# Plots


# Class colours (Okabe-Ito): background black, then orange, bluish green, reddish
# purple, ...; kept apart from the colours that compare.py gives losses.
CLASS_COLORS = ("#000000", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#D55E00")


def class_color(c: int) -> str:
    return CLASS_COLORS[c % len(CLASS_COLORS)]


def class_cmap(num_classes: int) -> matplotlib.colors.Colormap:
    colors = [class_color(c) for c in range(num_classes)]
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
