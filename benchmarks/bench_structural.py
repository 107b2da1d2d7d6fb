"""Benchmark: neighbour-aware calibration and region mutual information against their peers.

Run ``python -m benchmarks.bench_structural`` (``--reps N``, ``--only nacl|rmi|drift``).
Medians of interleaved runs (``benchmarks.timing``), value and gradient with respect to
the logits, each candidate compiled (JAX) or warmed up (PyTorch, CPU, the same threads)
first (``OMP_WAIT_POLICY=PASSIVE``, as ``bench_peers``, so torch's thread pool does not
spin against XLA's); the values are checked equal before timing. Rows:

* ``nacl_loss`` against MONAI's ``NACLLoss`` (mean kernel 3, l1), softmax
  ``[8, 256, 256, 4]`` (MONAI on ``[8, 4, 256, 256]``).
* ``rmi_loss`` against ``benchmarks/rmi_torch.py``, a port of ZJULearning/RMI's ``RMILoss``
  (its defaults: radius 3, max pooling by 3, BCE, weight 0.5), sigmoid ``[8, 256, 256, 19]``.
* ``drift``: ``rmi_loss`` in float32 against float64 on ``[2, 240, 240, 19]``: the largest
  relative error of the value and of the gradient (relative to the gradient's largest
  entry).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import segloss_jax as sl  # noqa: E402
from benchmarks.timing import median_times  # noqa: E402


def report(title: str, times: dict[str, tuple[float, float]], ours: str, theirs: str) -> None:
    print(f"\n{title}")
    print(f"{'':34s} {'wall ms':>9s} {'cpu ms':>9s}")
    for name, (wall, cpu) in times.items():
        print(f"{name:34s} {wall * 1e3:9.2f} {cpu * 1e3:9.2f}")
    print(f"ratio {ours} / {theirs}: wall {times[ours][0] / times[theirs][0]:.2f}, "
          f"cpu {times[ours][1] / times[theirs][1]:.2f}")


def smooth_labels(shape: tuple[int, ...], c: int, rng: np.random.Generator) -> np.ndarray:
    """Integer labels of smooth regions: the argmax of blurred noise, ``[B, *spatial]``."""
    import scipy.ndimage as ndi

    noise = rng.normal(size=(*shape, c))
    return ndi.gaussian_filter(noise, (0, 4, 4, 0)).argmax(-1)


def torch_value_and_grad(loss, x):
    """A thunk running ``loss(x)`` forward and backward, returning the value."""

    def run():
        x.grad = None
        value = loss(x)
        value.backward()
        return value.detach().numpy()

    return run


def bench_nacl(reps: int) -> None:
    import torch
    from monai.losses import NACLLoss

    rng = np.random.default_rng(0)
    shape, c = (8, 256, 256), 4
    x = rng.normal(size=(*shape, c)).astype(np.float32)
    y = smooth_labels(shape, c, rng)
    ours = jax.jit(jax.value_and_grad(lambda z, t: sl.nacl_loss(z, t)))
    xj, yj = jnp.asarray(x), jnp.asarray(y, jnp.int32)
    peer = NACLLoss(classes=c, dim=2)
    xt = torch.tensor(np.moveaxis(x, -1, 1).copy(), requires_grad=True)
    yt = torch.as_tensor(y, dtype=torch.int64)
    theirs = torch_value_and_grad(lambda z: peer(z, yt), xt)
    value, _ = ours(xj, yj)
    np.testing.assert_allclose(value, theirs(), rtol=1e-5)
    times = median_times({"nacl_loss": lambda: ours(xj, yj), "MONAI NACLLoss": theirs}, reps)
    report(f"nacl_loss vs MONAI NACLLoss, fwd+bwd, softmax {list(shape) + [c]} "
           f"(torch threads {torch.get_num_threads()})", times, "nacl_loss", "MONAI NACLLoss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--only", choices=("nacl", "rmi", "drift"), default=None)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}")
    for name, fn in (("nacl", bench_nacl),):
        if args.only in (None, name):
            fn(args.reps)


if __name__ == "__main__":
    main()
