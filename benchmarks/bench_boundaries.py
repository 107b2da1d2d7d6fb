"""Benchmark: Boundary DoU against Dice, and the erosion Hausdorff loss against kornia's.

Run ``python -m benchmarks.bench_boundaries`` (``--reps N``, ``--only``). Medians of
interleaved runs (``benchmarks.timing``), each candidate compiled and warmed up first,
value and gradient (fwd+bwd), softmax ``[8, 256, 256, 4]``, smoothed-noise labels:

* ``boundary_dou_loss`` against ``dice_loss`` (both through the region engine);
* ``hausdorff_er_loss(iterations=10)`` against kornia's ``HausdorffERLoss(k=10)`` on the
  softmax probabilities, ``backward()`` included (torch on the same CPU threads; values
  checked equal first). Without torch or kornia the row is skipped, and says so.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi

import segloss_jax as sl
from benchmarks.bench_topology import report
from benchmarks.timing import median_times

SHAPE = (8, 256, 256)
CLASSES = 4


def labels_and_logits(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels of ``CLASSES`` classes from smoothed noise (regions of every size) and logits."""
    fields = np.stack([ndi.gaussian_filter(rng.normal(size=SHAPE), (0, 6, 6))
                       for _ in range(CLASSES)], -1)
    labels = np.argmax(fields, -1).astype(np.int32)
    logits = rng.normal(size=(*SHAPE, CLASSES)).astype(np.float32)
    return labels, logits


def step(loss):
    return jax.jit(jax.value_and_grad(loss))


def bench_boundary_dou(reps: int, rng: np.random.Generator) -> None:
    labels, logits = labels_and_logits(rng)
    x, y = jnp.asarray(logits), jnp.asarray(labels)
    dou = step(lambda x, y: sl.boundary_dou_loss(x, y))
    dice = step(lambda x, y: sl.dice_loss(x, y))
    times = median_times({"boundary_dou_loss": lambda: dou(x, y),
                          "dice_loss": lambda: dice(x, y)}, reps)
    report(f"boundary_dou_loss value_and_grad, softmax {[*SHAPE, CLASSES]}", times,
           "boundary_dou_loss", "dice_loss")


def kornia_step():
    """kornia's ``HausdorffERLoss(k=10)`` value and gradient (``backward()``) as a thunk
    maker, or ``None`` without torch or kornia."""
    try:
        import torch
        from kornia.losses import HausdorffERLoss
    except ImportError:
        return None
    loss = HausdorffERLoss(alpha=2.0, k=10)

    def make(logits: np.ndarray, labels: np.ndarray):
        x = torch.from_numpy(np.moveaxis(logits, -1, 1).copy()).requires_grad_()
        y = torch.from_numpy(labels[:, None].astype(np.int64))

        def run():
            x.grad = None
            value = loss(x.softmax(1), y)
            value.backward()
            return value.detach().numpy(), x.grad.numpy()

        return run

    return make


def bench_hausdorff_er(reps: int, rng: np.random.Generator) -> None:
    labels, logits = labels_and_logits(rng)
    x, y = jnp.asarray(logits), jnp.asarray(labels)
    ours = step(lambda x, y: sl.hausdorff_er_loss(x, y, iterations=10))
    make = kornia_step()
    if make is None:
        print("\nhausdorff_er_loss: torch or kornia not installed, skipped")
        return
    theirs = make(logits, labels)
    value, grad = ours(x, y)
    their_value, their_grad = theirs()
    np.testing.assert_allclose(value, their_value, rtol=1e-4)
    # float32: a near-tie at a maximum or at the threshold may round either way.
    np.testing.assert_allclose(grad, np.moveaxis(their_grad, 1, -1), rtol=1e-3,
                               atol=1e-3 * float(np.abs(their_grad).max()))
    times = median_times({"hausdorff_er_loss": lambda: ours(x, y),
                          "kornia HausdorffERLoss": theirs}, reps)
    report(f"hausdorff_er_loss(iterations=10) value_and_grad, softmax {[*SHAPE, CLASSES]} "
           "(equal to kornia: checked)", times, "hausdorff_er_loss", "kornia HausdorffERLoss")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--only", choices=("boundary_dou", "hausdorff_er"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"backend {jax.default_backend()}, medians of {args.reps} interleaved runs")
    benches = {"boundary_dou": bench_boundary_dou, "hausdorff_er": bench_hausdorff_er}
    for name, bench in benches.items():
        if args.only in (None, name):
            bench(args.reps, rng)


if __name__ == "__main__":
    main()
