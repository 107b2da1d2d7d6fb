"""Benchmark: pixel weights, online hard example mining and the MONAI compounds.

Run ``python -m benchmarks.bench_weights`` (``--reps N``, ``--only pixel|ohem|unet|monai``).
Medians of interleaved runs (``benchmarks.timing``), each candidate compiled and warmed
up first; every row is ``jit(value_and_grad)`` (fwd+bwd) of a scalar loss. Rows:

* ``cross_entropy`` and ``dice_ce_loss`` at ``[8, 256, 256, 4]`` without and with
  ``pixel_weights`` (and ``normalize_weights=True``): the cost of the weights.
* ``ohem_cross_entropy`` (HRNet's defaults ``thresh=0.7``, ``min_kept=100000``) against
  optax's softmax cross-entropy at ``[8, 256, 256, 4]`` and ``[8, 256, 256, 19]``.
* ``unet_weight_map`` of ``[8, 256, 256]`` instance maps with 20 instances per image
  (``jit``, ``max_instances=20``) against scipy's ``distance_transform_edt`` looped over
  the instances of every image (the usual data-pipeline computation).
* ``generalized_dice_focal_loss`` against MONAI's ``GeneralizedDiceFocalLoss`` (torch,
  CPU, one process, forward and backward) at ``[8, 256, 256, 4]``, when MONAI is
  installed.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import segloss_jax as sl
from benchmarks.timing import median_times


def _batch(c: int, seed: int = 0, shape=(8, 256, 256)):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(scale=2.0, size=(*shape, c)), jnp.float32)
    y = jnp.asarray(rng.integers(0, c, size=shape), jnp.int32)
    w = jnp.asarray(rng.uniform(0.0, 2.0, size=shape), jnp.float32)
    return x, y, w


def _step(fn):
    return jax.jit(jax.value_and_grad(fn))


def _report(title: str, times: dict[str, tuple[float, float]], base: str) -> None:
    wall0, cpu0 = times[base]
    print(f"\n### {title}\n")
    print("| candidate | wall ms | CPU ms | × wall | × CPU |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, cpu) in times.items():
        print(f"| {name} | {wall * 1e3:.1f} | {cpu * 1e3:.1f} | {wall / wall0:.2f} | "
              f"{cpu / cpu0:.2f} |")


def bench_pixel(reps: int) -> None:
    x, y, w = _batch(4)
    ce = _step(lambda x, y: sl.cross_entropy(x, y))
    ce_w = _step(lambda x, y, w: sl.cross_entropy(x, y, pixel_weights=w))
    ce_wn = _step(lambda x, y, w: sl.cross_entropy(x, y, pixel_weights=w,
                                                   normalize_weights=True))
    dce = _step(lambda x, y: sl.dice_ce_loss(x, y))
    dce_w = _step(lambda x, y, w: sl.dice_ce_loss(x, y, pixel_weights=w))
    times = median_times({
        "`cross_entropy`": lambda: ce(x, y),
        "`cross_entropy(pixel_weights=w)`": lambda: ce_w(x, y, w),
        "`cross_entropy(pixel_weights=w, normalize_weights=True)`": lambda: ce_wn(x, y, w),
        "`dice_ce_loss`": lambda: dce(x, y),
        "`dice_ce_loss(pixel_weights=w)`": lambda: dce_w(x, y, w),
    }, reps)
    _report("pixel weights, softmax `[8, 256, 256, 4]`, fwd+bwd", times, "`cross_entropy`")


def _ohem_rows(c: int, reps: int) -> None:
    x, y, _ = _batch(c, seed=c)
    optax_ce = _step(lambda x, y: optax.losses.softmax_cross_entropy_with_integer_labels(
        x, y).mean())
    ohem = _step(lambda x, y: sl.ohem_cross_entropy(x, y))
    topk = _step(lambda x, y: sl.topk_cross_entropy(x, y, k=0.1))
    times = median_times({"optax softmax CE": lambda: optax_ce(x, y),
                          "`ohem_cross_entropy`": lambda: ohem(x, y),
                          "`topk_cross_entropy(k=0.1)`": lambda: topk(x, y)}, reps)
    _report(f"OHEM, softmax `[8, 256, 256, {c}]`, fwd+bwd", times, "optax softmax CE")


def bench_ohem(reps: int) -> None:
    for c in (4, 19):
        _ohem_rows(c, reps)


def _discs(rng: np.random.Generator, shape=(8, 256, 256), count=20) -> np.ndarray:
    """Instance maps: ``count`` random discs per image, later discs over earlier ones."""
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    out = np.zeros(shape, np.int32)
    for b in range(shape[0]):
        for k in range(1, count + 1):
            cy, cx, r = rng.integers(0, shape[1]), rng.integers(0, shape[2]), rng.integers(6, 20)
            out[b][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    return out


def _scipy_weight_map(instances: np.ndarray, w0=10.0, sigma=5.0) -> np.ndarray:
    import scipy.ndimage as ndi

    out = np.zeros(instances.shape, np.float32)
    for b, image in enumerate(instances):
        ids = [k for k in np.unique(image) if k > 0]
        d = np.sort(np.stack([ndi.distance_transform_edt(image != k) for k in ids]), axis=0)
        border = w0 * np.exp(-np.square(d[0] + d[1]) / (2 * sigma**2)) * (image == 0)
        out[b] = 1.0 + border
    return out


def bench_unet(reps: int) -> None:
    instances = _discs(np.random.default_rng(0))
    present = max(len(np.unique(im[im > 0])) for im in instances)
    ours = jax.jit(lambda i: sl.unet_weight_map(i, max_instances=present))
    device = jnp.asarray(instances)
    np.testing.assert_allclose(ours(device), _scipy_weight_map(instances), rtol=1e-5, atol=1e-5)
    times = median_times({"scipy EDT per instance (loop)": lambda: _scipy_weight_map(instances),
                          "`unet_weight_map`": lambda: ours(device)}, reps)
    _report(f"U-Net weight map, `[8, 256, 256]`, {present} instances per image", times,
            "scipy EDT per instance (loop)")


def bench_monai(reps: int) -> None:
    try:
        import torch
        from monai.losses import GeneralizedDiceFocalLoss
    except ImportError:
        print("\nMONAI not installed: no MONAI rows.")
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    x, y, _ = _batch(4, seed=3)
    ours = _step(lambda x, y: sl.generalized_dice_focal_loss(
        x, y, focal_activation="sigmoid", per_image=True))
    peer = GeneralizedDiceFocalLoss(softmax=True, to_onehot_y=True)
    tx = torch.tensor(np.moveaxis(np.asarray(x), -1, 1))
    ty = torch.tensor(np.asarray(y))[:, None]

    def monai_step():
        xt = tx.clone().requires_grad_(True)
        loss = peer(xt, ty)
        loss.backward()
        return loss.detach().numpy()

    np.testing.assert_allclose(ours(x, y)[0], monai_step(), rtol=1e-4)
    times = median_times({"MONAI `GeneralizedDiceFocalLoss`": monai_step,
                          "`generalized_dice_focal_loss`": lambda: ours(x, y)}, reps)
    _report("generalized Dice + focal, softmax `[8, 256, 256, 4]`, fwd+bwd", times,
            "MONAI `GeneralizedDiceFocalLoss`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--only", choices=("pixel", "ohem", "unet", "monai"), default=None)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}")
    for name, bench in (("pixel", bench_pixel), ("ohem", bench_ohem), ("unet", bench_unet),
                        ("monai", bench_monai)):
        if args.only in (None, name):
            bench(args.reps)


if __name__ == "__main__":
    main()
