"""Validation metrics of the U-Net example, per class.

Pixels labelled ``IGNORE_LABEL`` count nowhere: they are left out of IoU, Dice
and the calibration error, and removed from both the prediction and the target
masks before the shape metrics (HD95, surface Dice, components, clDice).
The topology measures run on the host with ``scipy.ndimage``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

import segloss_jax as sl
from examples.unet.data import IGNORE_LABEL

NSD_TOLERANCE = 1.0  # pixels
_CROSS = ndimage.generate_binary_structure(2, 1)[None]  # 4-neighbours, per image
_SQUARE = np.ones((3, 3), bool)  # 8-connectivity for components


def evaluate(probs: np.ndarray, masks: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """Metrics of probabilities ``[N, H, W, C]`` against masks ``[N, H, W]``.

    Per foreground class:

    * ``iou``, ``dice``: over the whole set (pixels pooled);
    * ``hd95``: 95th-percentile Hausdorff distance (px), averaged over the images
      where both prediction and target contain the class;
    * ``nsd``: normalized surface Dice at ``NSD_TOLERANCE`` px, averaged over the
      images where either contains the class (0 when only one does);
    * ``components_error``: mean over images of |#components(prediction) −
      #components(target)| (8-connected): broken curves, merged or missed objects;
    * ``cldice``: clDice of the binary masks over the set, from morphological
      skeletons: how much of each skeleton lies inside the other mask;
    * ``biou``: Boundary IoU (Cheng et al. 2021, ``sl.boundary_iou``, band width 1 px at
      48×48), averaged over the images where either mask holds the class;
    * ``absent_fp``: fraction of the images without the class where it is predicted.

    Also ``ece``: expected calibration error of the top-label probabilities.
    """
    num_classes = len(class_names)
    pred = probs.argmax(-1)
    valid = masks != IGNORE_LABEL
    kw = dict(ignore_index=IGNORE_LABEL)
    iou = np.asarray(sl.iou_score(pred, masks, num_classes, **kw))
    dice = np.asarray(sl.dice_score(pred, masks, num_classes, **kw))
    per_class = {}
    for c, name in enumerate(class_names):
        entry = {"iou": json_number(iou[c]), "dice": json_number(dice[c])}
        if c > 0:  # shape metrics of the background say little
            entry.update(shape_metrics((pred == c) & valid, masks == c))
        per_class[name] = entry
    absent_fp = [m["absent_fp"] for m in list(per_class.values())[1:] if m["absent_fp"] is not None]
    confusion = sl.confusion_matrix(pred, masks, num_classes, **kw)
    return {
        "mean_foreground_iou": json_number(np.nanmean(iou[1:])),
        "mean_foreground_dice": json_number(np.nanmean(dice[1:])),
        "ece": json_number(sl.calibration_error(jnp.asarray(probs), masks, **kw)),
        "absent_fp": json_number(np.mean(absent_fp)) if absent_fp else None,  # over the classes
        "per_class": per_class,
        "confusion_matrix": np.asarray(confusion).tolist(),
    }


def shape_metrics(p: np.ndarray, g: np.ndarray) -> dict[str, float | None]:
    """``hd95``, ``nsd``, ``biou``, ``components_error``, ``cldice`` and ``absent_fp`` of
    binary masks ``[N, H, W]`` (see :func:`evaluate`)."""
    in_p, in_g = p.any(axis=(1, 2)), g.any(axis=(1, 2))
    hd95, nsd, biou = (np.asarray(x) for x in _surface_metrics(p, g))
    both, either = in_p & in_g, in_p | in_g
    count = [ndimage.label(m, _SQUARE)[1] for m in np.concatenate([p, g])]
    skel_p, skel_g = skeleton(p), skeleton(g)
    t_prec = _ratio((skel_p & g).sum(), skel_p.sum())  # skeleton of pred inside target
    t_sens = _ratio((skel_g & p).sum(), skel_g.sum())  # skeleton of target inside pred
    cldice = None
    if t_prec is not None and t_sens is not None and t_prec + t_sens > 0:
        cldice = 2 * t_prec * t_sens / (t_prec + t_sens)
    return {
        "hd95": json_number(hd95[both].mean()) if both.any() else None,
        "nsd": json_number(nsd[either].mean()) if either.any() else None,
        "biou": json_number(biou[either].mean()) if either.any() else None,
        "components_error": json_number(np.abs(np.subtract(*np.split(np.array(count), 2))).mean()),
        "cldice": cldice,
        "absent_fp": json_number(in_p[~in_g].mean()) if (~in_g).any() else None,
    }


@jax.jit
@jax.vmap
def _surface_metrics(p: jax.Array, g: jax.Array) -> tuple[jax.Array, ...]:
    hd95 = sl.hausdorff_distance(p, g, percentile=95.0)
    return hd95, sl.surface_dice(p, g, tolerance=NSD_TOLERANCE), sl.boundary_iou(p, g)


def skeleton(masks: np.ndarray) -> np.ndarray:
    """Morphological (Lantuéjoul) skeletons of binary masks ``[N, H, W]``: the union
    over erosion depths of what an opening removes. A 1–2 px line is its own skeleton."""
    skel = np.zeros_like(masks)
    x = masks
    while x.any():
        skel |= x & ~ndimage.binary_opening(x, _CROSS)
        x = ndimage.binary_erosion(x, _CROSS)
    return skel


def _ratio(a: int, b: int) -> float | None:
    return float(a) / float(b) if b else None


def json_number(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None  # JSON has no NaN
