"""Benchmark: exact skeletons, Skeleton Recall and Boundary IoU against their host peers.

Run ``python -m benchmarks.bench_topology`` (``--reps N``). Medians of interleaved runs
(``benchmarks.timing``), each candidate compiled and warmed up first; the results are
checked equal before timing. Rows:

* ``sl.skeletonize`` (``jit(vmap(...))``) against ``skimage.morphology.skeletonize`` in a
  loop over the batch: ``[8, 256, 256]`` masks (Zhang) and ``[2, 64, 64, 64]`` volumes
  (Lee), smoothed-noise blobs.
* ``skeleton_recall_loss`` (value and gradient, softmax ``[8, 256, 256, 3]``, thin
  structures of two classes) with the skeleton precomputed, against ``dice_loss``; and with
  the skeleton computed in the step, against nnU-Net's host target (scikit-image
  skeletons and scipy's tube, as its ``SkeletonTransform``) plus ``dice_loss``.
* ``sl.boundary_iou`` (``jit(vmap(...))``) over ``[8, 256, 256]`` mask pairs against
  boundary-iou-api's computation in a loop: OpenCV erosion of the padded mask
  (``mask_to_boundary``), then the IoU of the two boundaries. Without OpenCV
  (``pip install opencv-python-headless``), scipy's ``binary_erosion`` with the square and
  ``border_value=0`` stands in, and the row says so.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi
from skimage.morphology import skeletonize as skimage_skeletonize

import segloss_jax as sl
from benchmarks.bench_cldice import vessel_labels
from benchmarks.timing import median_times


def blobs(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Smoothed-noise masks ``[B, *spatial]``, about half foreground."""
    return np.stack([ndi.gaussian_filter(rng.normal(size=shape[1:]), sigma) > 0
                     for _ in range(shape[0])])


def host_skeleton_target(labels: np.ndarray) -> np.ndarray:
    """nnU-Net's ``SkeletonTransform`` on every image: scikit-image's skeleton of the
    non-zero labels, dilated by the L1 ball of radius 2, times the labels."""
    ball = ndi.iterate_structure(ndi.generate_binary_structure(labels.ndim - 1, 1), 2)
    return np.stack([np.where(ndi.binary_dilation(skimage_skeletonize(y != 0), ball), y, 0)
                     for y in labels])


def boundary_iou_peer():
    """boundary-iou-api's ``mask_to_boundary`` and IoU for one pair, and its name."""
    try:
        import cv2
    except ImportError:
        cv2 = None

    def band(mask: np.ndarray, k: int) -> np.ndarray:
        if cv2 is None:
            return mask & ~ndi.binary_erosion(mask, np.ones((2 * k + 1,) * 2), border_value=0)
        m = mask.astype(np.uint8)
        padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=k)[1:-1, 1:-1]
        return (m - eroded) > 0

    def iou(pred: np.ndarray, mask: np.ndarray) -> float:
        k = max(1, round(0.02 * float(np.hypot(*mask.shape))))
        bp, bg = band(pred, k), band(mask, k)
        return (bp & bg).sum() / max((bp | bg).sum(), 1)

    return iou, "OpenCV erosion loop" if cv2 is not None else "scipy binary_erosion loop"


def report(title: str, times: dict[str, tuple[float, float]], ours: str, theirs: str) -> None:
    print(f"\n{title}")
    print(f"{'':34s} {'wall ms':>9s} {'cpu ms':>9s}")
    for name, (wall, cpu) in times.items():
        print(f"{name:34s} {wall * 1e3:9.2f} {cpu * 1e3:9.2f}")
    print(f"ratio {ours} / {theirs}: wall {times[ours][0] / times[theirs][0]:.2f}, "
          f"cpu {times[ours][1] / times[theirs][1]:.2f}")


def bench_skeletonize(reps: int, rng: np.random.Generator) -> None:
    skeletonize = jax.jit(jax.vmap(sl.skeletonize))
    for shape, sigma in (((8, 256, 256), 6.0), ((2, 64, 64, 64), 4.0)):
        masks = blobs(shape, sigma, rng)
        device_masks = jnp.asarray(masks)
        ours = np.asarray(skeletonize(device_masks))
        for skeleton, mask in zip(ours, masks, strict=True):
            np.testing.assert_array_equal(skeleton, skimage_skeletonize(mask))
        times = median_times({
            "sl.skeletonize (jit, vmap)": lambda m=device_masks: skeletonize(m),
            "scikit-image, loop": lambda m=masks: [skimage_skeletonize(x) for x in m],
        }, reps)
        report(f"skeletonize {list(shape)} (equal to scikit-image: checked)", times,
               "sl.skeletonize (jit, vmap)", "scikit-image, loop")


def bench_skeleton_recall(reps: int, rng: np.random.Generator) -> None:
    shape = (8, 256, 256)
    labels = vessel_labels(shape, rng) + 2 * vessel_labels(shape, rng)
    labels = np.minimum(labels, 2).astype(np.int32)
    logits = jnp.asarray(rng.normal(size=(*shape, 3)), jnp.float32)
    skeleton = host_skeleton_target(labels)
    y, s = jnp.asarray(labels), jnp.asarray(skeleton)
    np.testing.assert_array_equal(sl.skeleton_target(y), skeleton)

    def step(loss):
        return jax.jit(jax.value_and_grad(loss))

    dice = step(lambda x, y: sl.dice_loss(x, y))
    precomputed = step(lambda x, y, s: sl.skeleton_recall_loss(x, y, skeleton=s))
    in_graph = step(lambda x, y: sl.skeleton_recall_loss(x, y))
    times = median_times({
        "skeleton_recall, skeleton given": lambda: precomputed(logits, y, s),
        "skeleton_recall, in the step": lambda: in_graph(logits, y),
        "dice_loss": lambda: dice(logits, y),
        "host target (scikit-image, scipy)": lambda: host_skeleton_target(labels),
    }, reps)
    report(f"skeleton_recall_loss value_and_grad, softmax {[*shape, 3]}", times,
           "skeleton_recall, skeleton given", "dice_loss")
    host_plus_dice = [a + b for a, b in zip(times["host target (scikit-image, scipy)"],
                                            times["dice_loss"], strict=True)]
    print(f"ratio in the step / (host target + dice_loss): wall "
          f"{times['skeleton_recall, in the step'][0] / host_plus_dice[0]:.2f}, cpu "
          f"{times['skeleton_recall, in the step'][1] / host_plus_dice[1]:.2f}")


def bench_boundary_iou(reps: int, rng: np.random.Generator) -> None:
    shape = (8, 256, 256)
    preds, masks = blobs(shape, 8.0, rng), blobs(shape, 8.0, rng)
    peer, peer_name = boundary_iou_peer()
    boundary_iou = jax.jit(jax.vmap(sl.boundary_iou))
    p, g = jnp.asarray(preds), jnp.asarray(masks)
    expected = [peer(a, b) for a, b in zip(preds, masks, strict=True)]
    np.testing.assert_allclose(boundary_iou(p, g), expected, rtol=1e-6)
    times = median_times({
        "sl.boundary_iou (jit, vmap)": lambda: boundary_iou(p, g),
        peer_name: lambda: [peer(a, b) for a, b in zip(preds, masks, strict=True)],
    }, reps)
    report(f"boundary_iou {list(shape)} pairs, dilation_ratio 0.02 (k = 7)", times,
           "sl.boundary_iou (jit, vmap)", peer_name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--only", choices=("skeletonize", "skeleton_recall", "boundary_iou"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"backend {jax.default_backend()}, medians of {args.reps} interleaved runs")
    benches = {"skeletonize": bench_skeletonize, "skeleton_recall": bench_skeleton_recall,
               "boundary_iou": bench_boundary_iou}
    for name, bench in benches.items():
        if args.only in (None, name):
            bench(args.reps, rng)


if __name__ == "__main__":
    main()
