"""Figures generated at build time (``conf.py`` calls :func:`generate` on ``builder-inited``).

For every registered loss that ``segloss_jax.__all__`` exports, one figure: the
loss and its gradient with respect to the predicted foreground probability ``p``
of one pixel, for that pixel being foreground (solid) and background (dashed).

* Pixel-wise losses: a one-pixel image, so the curve is the per-pixel term.
* Every other loss (region, Lovász, boundary, compound) depends on the whole
  image, so the pixel sits in a fixed 16-pixel 1-D image (:data:`CONTEXT_TARGET`,
  predictions :data:`CONTEXT_PROBS`); only that pixel's probability moves.

The loss is called with its default activation (first in the registry): for
``"softmax"`` a two-class image with logits ``[log(1-p), log p]``, for ``"sigmoid"``
one channel with logit ``log(p / (1-p))``, for ``None`` the probability itself.
Gradients are ``jax.grad`` of that composition, i.e. ``dL/dp`` exactly.

Also the figures of the Conventions and Distance transforms pages. Results are
cached under ``_generated/plots`` keyed by a hash of the library sources and this
file. Names not exported yet are skipped; an exported loss that cannot be plotted
is a Sphinx warning (an error with ``-W``).

Run by hand: ``python docs/plots.py`` (writes ``docs/_generated``).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import pathlib
import sys
import time

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent

# One-pixel image for pixel-wise losses; a 16-pixel 1-D image (an object of six
# pixels, predicted at 0.7 inside and 0.2 outside) for every other loss.
CONTEXT_TARGET = (0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0)
CONTEXT_PROBS = tuple(0.7 if g else 0.2 for g in CONTEXT_TARGET)
CONTEXT_FG_PIXEL = 7  # inside the object
CONTEXT_BG_PIXEL = 2  # background, three pixels from the object
SINGLE_PIXEL_GROUPS = ("pixelwise",)
CONTEXT_NAMES = ("distance_weighted_cross_entropy",)  # pixel-wise, but needs a boundary
# Losses of 2D images only: the context image's row repeated over 16 rows, the pixel in row 8.
PLANE_NAMES = ("skeleton_recall", "rmi")
PLANE_ROW = 8

# Hyperparameter values to draw, per registry name: (legend label, keyword arguments).
# A loss missing here is drawn once with its defaults; a keyword-only argument
# without default must be given here.
VARIANTS: dict[str, list[tuple[str, dict]]] = {
    "cross_entropy": [("default", {}), ("label_smoothing=0.1", {"label_smoothing": 0.1})],
    "binary_cross_entropy": [("default", {}), ("pos_weight=3", {"pos_weight": 3.0})],
    "weighted_cross_entropy": [(f"beta={b:g}", {"beta": b}) for b in (0.5, 1.0, 2.0, 4.0)],
    "balanced_cross_entropy": [(f"beta={b:g}", {"beta": b}) for b in (0.25, 0.5, 0.75)],
    "focal": [(f"gamma={g:g}", {"gamma": g}) for g in (0.0, 0.5, 1.0, 2.0, 5.0)],
    "dice": [("default", {}), ("squared=True", {"squared": True}), ("log=True", {"log": True})],
    "tversky": [(f"alpha={a:g}, beta={b:g}", {"alpha": a, "beta": b})
                for a, b in ((0.5, 0.5), (0.3, 0.7), (0.7, 0.3))],
    "focal_tversky": [(f"gamma={g:.3g}", {"gamma": g}) for g in (0.75, 1.0, 4 / 3)],
    "sensitivity_specificity": [(f"r={r:g}", {"r": r}) for r in (0.05, 0.5)],
    "generalized_dice": [(f'weighting="{w}"', {"weighting": w})
                         for w in ("square", "simple", "uniform")],
    "hausdorff_dt": [(f"alpha={a:g}", {"alpha": a}) for a in (1.0, 2.0)],
    "exp_log": [("default", {}), ("gamma=1", {"gamma": 1.0})],
    "combo": [("default", {}),
              ("lambda_ce=0.9, lambda_dice=0.1", {"lambda_ce": 0.9, "lambda_dice": 0.1})],
    "generalized_wasserstein_dice": [(f'weighting="{w}"', {"distance_matrix": [[0, 1], [1, 0]],
                                                           "weighting": w})
                                     for w in ("default", "GDL")],
    "unified_focal": [(f"gamma={g:g}", {"gamma": g}) for g in (0.2, 0.5, 0.8)],
}

P_MIN, P_MAX, P_NUM = 0.01, 0.99, 99


def _sources_hash() -> str:
    import jax
    import matplotlib

    digest = hashlib.sha256()
    files = [pathlib.Path(__file__), DOCS / "api_groups.py"]
    files += sorted((ROOT / "segloss_jax").rglob("*.py"))
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    digest.update(f"{jax.__version__} {matplotlib.__version__}".encode())
    return digest.hexdigest()


def _inputs(probs, activation):
    """``[B, W]`` foreground probabilities -> the loss input for ``activation``."""
    import jax.numpy as jnp

    if activation == "softmax":
        return jnp.stack([jnp.log1p(-probs), jnp.log(probs)], axis=-1)
    if activation == "sigmoid":
        return (jnp.log(probs) - jnp.log1p(-probs))[..., None]
    return probs[..., None]


def _curves(fn, activation, kwargs, context: bool, plane: bool = False):
    """``(p, [(loss, grad) for the pixel as foreground, as background]])``; ``plane``: the
    context image as a 16 × 16 plane of equal rows."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    grid = jnp.linspace(P_MIN, P_MAX, P_NUM, dtype=jnp.float32)
    if context:
        target = jnp.asarray(CONTEXT_TARGET, jnp.int32)
        base = jnp.asarray(CONTEXT_PROBS, jnp.float32)
        fg, bg = CONTEXT_FG_PIXEL, CONTEXT_BG_PIXEL
        if plane:
            target, base = (jnp.tile(a, (len(CONTEXT_TARGET), 1)) for a in (target, base))
            fg, bg = (PLANE_ROW, fg), (PLANE_ROW, bg)
        cases = ((target[None], fg), (target[None], bg))
    else:
        base = jnp.full((1,), 0.5, jnp.float32)
        cases = ((jnp.ones((1, 1), jnp.int32), 0), (jnp.zeros((1, 1), jnp.int32), 0))

    def both(p):
        out = []
        for labels, pixel in cases:
            def loss_at(q, labels=labels, pixel=pixel):
                probs = base.at[pixel].set(q)[None]
                return fn(_inputs(probs, activation), labels, **kwargs)

            out.append(jax.value_and_grad(loss_at)(p))
        return out

    results = jax.jit(jax.vmap(both))(grid)
    return np.asarray(grid), [(np.asarray(v), np.asarray(g)) for v, g in results]


def _signature_problem(fn, kwargs) -> str | None:
    params = inspect.signature(fn).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        return f"unknown keyword(s) {unknown}"
    required = [n for n, p in params.items()
                if p.kind is p.KEYWORD_ONLY and p.default is p.empty and n not in kwargs]
    if required:
        return f"keyword(s) {required} have no default: add them to VARIANTS in docs/plots.py"
    return None


def _plot_loss(path, name, curves, context: bool) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(8.4, 3.1))
    # A fixed layout: constrained_layout doubles the time of each of these figures.
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.15, top=0.84, wspace=0.22)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    grads = []
    for i, (label, (p, ((v1, g1), (v0, g0)))) in enumerate(curves):
        color = colors[i % len(colors)]
        ax_loss.plot(p, v1, color=color, label=label)
        ax_loss.plot(p, v0, color=color, linestyle="--")
        ax_grad.plot(p, g1, color=color)
        ax_grad.plot(p, g0, color=color, linestyle="--")
        grads += [g1, g0]
    grads = np.abs(np.concatenate(grads))
    grads = grads[np.isfinite(grads) & (grads > 0)]
    if grads.size and grads.max() > 30 * max(np.median(grads), 1e-12):
        ax_grad.set_yscale("symlog", linthresh=max(float(np.median(grads)), 1e-6))
    ax_loss.set_title(f"{name}: loss")
    ax_grad.set_title(f"{name}: dL/dp")
    for ax in (ax_loss, ax_grad):
        ax.set_xlabel("predicted foreground probability p of the pixel")
        ax.axhline(0.0, color="0.7", linewidth=0.6)
        ax.grid(alpha=0.3)
    ax_loss.plot([], [], color="0.3", label="pixel is foreground")
    ax_loss.plot([], [], color="0.3", linestyle="--", label="pixel is background")
    ax_loss.legend(fontsize=7, loc="best")
    if context:
        fig.suptitle("pixel inside a 16-pixel image (the rest fixed)", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _summary(fn) -> str:
    """The docstring's first sentence, reST inline markup turned into MyST."""
    import re

    doc = inspect.getdoc(fn) or ""
    first = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    first = re.sub(r":(\w+):`([^`]+)`", r"{\1}`\2`", first)
    return re.sub(r"``([^`]+)``", r"`\1`", first)


def _loss_figures(out: pathlib.Path, sl, groups, log) -> dict[str, list[str]]:
    """Draws every exported, registered loss; returns the Markdown per group key."""
    from segloss_jax._src.registry import loss_info, loss_name

    exported = set(sl.__all__)
    registered = set(sl.list_losses())
    pages: dict[str, list[str]] = {}
    for group in groups:
        lines: list[str] = []
        for fname in group.names:
            if fname not in exported:
                continue
            fn = getattr(sl, fname)
            name = loss_name(fn)
            if name not in registered:
                continue
            info = loss_info(name)
            context = group.key not in SINGLE_PIXEL_GROUPS or fname in CONTEXT_NAMES
            activation = info.activations[0]
            curves = []
            for label, kwargs in VARIANTS.get(name, [("default", {})]):
                problem = _signature_problem(fn, kwargs)
                try:
                    if problem:
                        raise TypeError(problem)
                    curves.append((label, _curves(fn, activation, kwargs, context,
                                                  plane=name in PLANE_NAMES)))
                except Exception as err:  # noqa: BLE001 - reported, then the build fails
                    log.warning(f"docs/plots.py: cannot plot {fname} ({label}): {err}")
            if not curves:
                continue
            _plot_loss(out / f"{name}.png", fname, curves, context)
            setup = ("in the 16-pixel context image" if context else "on a one-pixel image")
            if name in PLANE_NAMES:
                setup = "in the 16-pixel context image repeated over 16 rows"
            lines += [
                f"### `{fname}`", "",
                _summary(fn), "",
                f"Registry name `\"{name}\"`; default activation `{activation!r}`; "
                f"drawn {setup}. API: {{func}}`~segloss_jax.{fname}`.", "",
                f"```{{image}} /_generated/plots/{name}.png",
                f":alt: Loss and gradient of {fname} against the pixel's foreground probability",
                "```", "",
            ]
        pages[group.key] = lines
    return pages


def _figure_masking(out: pathlib.Path, sl) -> bool:
    """Labels with an ignored region, the `where` mask, per-pixel cross-entropy."""
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    if "cross_entropy" not in sl.__all__:
        return False
    height, width, num_classes = 8, 12, 3
    yy, xx = np.mgrid[:height, :width]
    labels = np.zeros((height, width), np.int32)
    labels[(yy - 3) ** 2 + (xx - 3) ** 2 <= 5] = 1
    labels[(yy >= 4) & (xx >= 7) & (xx <= 10)] = 2
    labels[:, 5] = 255  # an annotator's "don't know" stripe
    where = np.ones((height, width), bool)
    where[:2, 8:] = False  # e.g. padding
    logits = jax.random.normal(jax.random.key(0), (1, height, width, num_classes)) * 2.0
    loss = sl.cross_entropy(logits, jnp.asarray(labels)[None], ignore_index=255,
                            where=jnp.asarray(where)[None], reduction="none")[0]
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.5), constrained_layout=True)
    shown = np.ma.masked_equal(labels, 255)
    axes[0].imshow(shown, cmap="viridis", vmin=0, vmax=num_classes - 1)
    axes[0].set_title("labels (white: ignore_index=255)", fontsize=9)
    axes[1].imshow(where, cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("where (black: False)", fontsize=9)
    image = axes[2].imshow(np.asarray(loss), cmap="magma")
    axes[2].set_title('cross_entropy(..., reduction="none")', fontsize=9)
    fig.colorbar(image, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(out / "conventions_masking.png", dpi=100)
    plt.close(fig)
    return True


def _figure_units(out: pathlib.Path, sl) -> bool:
    """Dice loss per unit: per_image=True against per_image=False."""
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    if "dice_loss" not in sl.__all__:
        return False
    labels, probs = _two_images()
    logits = jnp.log(jnp.asarray(probs))
    per_image = np.asarray(sl.dice_loss(logits, labels, per_image=True, reduction="none"))
    batch = np.asarray(sl.dice_loss(logits, labels, per_image=False, reduction="none"))
    fig, ax = plt.subplots(figsize=(6.0, 2.6), constrained_layout=True)
    x = np.arange(2)
    ax.bar(x - 0.3, per_image[0], 0.2, label="per_image=True, image 0")
    ax.bar(x - 0.1, per_image[1], 0.2, label="per_image=True, image 1")
    ax.bar(x + 0.1, batch, 0.2, label="per_image=False (batch)")
    ax.set_xticks(x, ["class 0 (background)", "class 1 (object)"])
    ax.set_ylabel('dice_loss(reduction="none")')
    ax.legend(fontsize=7)
    fig.savefig(out / "conventions_units.png", dpi=100)
    plt.close(fig)
    return True


def _two_images():
    """Image 0: a large object found well; image 1: a 2-pixel object missed."""
    import numpy as np

    labels = np.zeros((2, 8, 8), np.int32)
    labels[0, 1:7, 1:7] = 1
    labels[1, 3, 3:5] = 1
    fg = np.where(labels == 1, 0.9, 0.1)
    fg[1, 3, 3:5] = 0.2
    probs = np.stack([1 - fg, fg], axis=-1).astype(np.float32)
    return labels, probs


def _figure_distance(out: pathlib.Path, sl) -> bool:
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np

    if not {"distance_transform_edt", "signed_distance"} <= set(sl.__all__):
        return False
    yy, xx = np.mgrid[:24, :32]
    mask = ((yy - 11) ** 2 / 49 + (xx - 11) ** 2 / 64 <= 1) | ((yy > 12) & (xx > 18) & (xx < 28))
    edt = np.asarray(sl.distance_transform_edt(jnp.asarray(mask)))
    sdf = np.asarray(sl.signed_distance(jnp.asarray(mask)))
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.6), constrained_layout=True)
    axes[0].imshow(mask, cmap="gray")
    axes[0].set_title("mask", fontsize=9)
    im1 = axes[1].imshow(edt, cmap="viridis")
    axes[1].set_title("distance_transform_edt(mask)", fontsize=9)
    fig.colorbar(im1, ax=axes[1], shrink=0.8)
    lim = float(np.abs(sdf).max())
    im2 = axes[2].imshow(sdf, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].contour(mask, levels=[0.5], colors="k", linewidths=0.6)
    axes[2].set_title("signed_distance(mask)", fontsize=9)
    fig.colorbar(im2, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(out / "distance_maps.png", dpi=100)
    plt.close(fig)
    return True


def _figure_fragment(name: str, alt: str, drawn: bool) -> str:
    if not drawn:
        return "*(figure not drawn: the function it needs is not exported yet)*\n"
    return f"```{{image}} /_generated/plots/{name}.png\n:alt: {alt}\n```\n"


def generate(generated: pathlib.Path, logger=None) -> None:
    """Draws every figure into ``generated/plots`` and writes the fragments that show them."""
    import matplotlib

    matplotlib.use("Agg")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
    import api_groups

    import segloss_jax as sl

    log = logger or logging.getLogger("segloss_jax.docs")
    out = generated / "plots"
    frag = generated / "fragments"
    stamp = out / ".stamp"
    key = _sources_hash()
    if stamp.exists() and stamp.read_text() == key and frag.is_dir():
        log.info("docs/plots.py: figures up to date")
        return
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    counting = _CountingHandler()
    base_logger = log if isinstance(log, logging.Logger) else log.logger  # Sphinx: an adapter
    base_logger.addHandler(counting)

    import jax

    # Dozens of tiny programs, each run once: XLA's optimisations cost more than they save.
    fast_compile = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        pages = _loss_figures(out, sl, api_groups.GROUPS, log)
        drawn = {
            "conventions_masking": _figure_masking(out, sl),
            "conventions_units": _figure_units(out, sl),
            "distance_maps": _figure_distance(out, sl),
        }
    finally:
        jax.config.update("jax_disable_most_optimizations", fast_compile)
    intro = ("Solid: the pixel belongs to the object; dashed: it is background. "
             "Gradients are with respect to the pixel's probability, `dL/dp`.\n\n")
    for group in api_groups.GROUPS:
        lines = pages.get(group.key, [])
        text = intro + "\n".join(lines) if lines else "*No loss of this family is exported yet.*\n"
        api_groups.write_if_changed(frag / f"curves_{group.key}.md", text)
    alts = {
        "conventions_masking": "Labels, where mask and per-pixel loss",
        "conventions_units": "Dice loss per unit",
        "distance_maps": "A mask, its distance transform and signed distance",
    }
    for name, alt in alts.items():
        api_groups.write_if_changed(frag / f"figure_{name}.md",
                                    _figure_fragment(name, alt, drawn[name]))
    base_logger.removeHandler(counting)
    if counting.count == 0:  # cache only a clean run
        stamp.write_text(key)
    log.info(f"docs/plots.py: figures drawn in {time.perf_counter() - start:.1f} s")


class _CountingHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        self.count += 1


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    logging.basicConfig(level=logging.INFO)
    generate(DOCS / "_generated")
