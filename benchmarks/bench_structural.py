"""Benchmark: NACL and RMI against their peers, blob loss against Dice.

Run ``python -m benchmarks.bench_structural`` (``--reps N``, ``--only nacl|rmi|drift|blob``).
Medians of interleaved runs (``benchmarks.timing``), value and gradient with respect to
the logits, each candidate compiled (JAX) or warmed up (PyTorch, CPU, the same threads)
first (``OMP_WAIT_POLICY=PASSIVE``, as ``bench_peers``, so torch's thread pool does not
spin against XLA's); the values are checked equal before timing. Rows:

* ``nacl_loss`` against MONAI's ``NACLLoss`` (mean kernel 3, l1), softmax
  ``[8, 256, 256, 4]`` (MONAI on ``[8, 4, 256, 256]``).
* ``rmi_loss`` against ``benchmarks/rmi_torch.py``, a port of ZJULearning/RMI's ``RMILoss``
  (its defaults: radius 3, max pooling by 3, BCE, weight 0.5), sigmoid ``[8, 256, 256, 19]``.
* ``blob``: ``blob_loss`` (defaults, ``max_instances=16``) against ``dice_loss`` on the
  binary foreground, sigmoid ``[8, 256, 256, 1]``, 16 instances per image.
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


def bench_rmi(reps: int) -> None:
    import torch

    from benchmarks.rmi_torch import RMILoss

    rng = np.random.default_rng(1)
    shape, c = (8, 256, 256), 19
    y = smooth_labels(shape, c, rng)
    y[:, :8] = 255  # an ignored band, as in a padded crop
    x = rng.normal(size=(*shape, c)).astype(np.float32)
    ours = jax.jit(jax.value_and_grad(lambda z, t: sl.rmi_loss(z, t, ignore_index=255)))
    xj, yj = jnp.asarray(x), jnp.asarray(y, jnp.int32)
    peer = RMILoss(num_classes=c)
    xt = torch.tensor(np.moveaxis(x, -1, 1).copy(), requires_grad=True)
    yt = torch.as_tensor(y, dtype=torch.int64)
    theirs = torch_value_and_grad(lambda z: peer(z, yt), xt)
    value, _ = ours(xj, yj)
    np.testing.assert_allclose(value, theirs(), rtol=1e-5, atol=1e-5)
    times = median_times({"rmi_loss": lambda: ours(xj, yj), "RMILoss (port)": theirs}, reps)
    report(f"rmi_loss vs ZJULearning/RMI RMILoss (CPU port), fwd+bwd, sigmoid "
           f"{list(shape) + [c]} (torch threads {torch.get_num_threads()})", times, "rmi_loss",
           "RMILoss (port)")


def rmi_drift_data(quality: float, seed: int, shape=(2, 240, 240), c=19):
    """Smooth labels and logits ``quality·(2g − 1)`` plus smooth and white noise: an
    uninformative prediction at ``quality = 0``, a nearly perfect one at 6."""
    import scipy.ndimage as ndi

    rng = np.random.default_rng(seed)
    labels = smooth_labels(shape, c, rng)
    g = np.eye(c)[labels]
    noise = 2 * ndi.gaussian_filter(rng.normal(size=(*shape, c)), (0, 2, 2, 0))
    x = quality * (2 * g - 1) + noise + 0.5 * rng.normal(size=(*shape, c))
    return x.astype(np.float32), labels


def bench_drift(_reps: int) -> None:
    """``rmi_loss`` in float32 against float64 (the same float32 logits, widened)."""
    print("\nrmi_loss float32 vs float64, [2, 240, 240, 19], defaults")
    fn = jax.value_and_grad(lambda z, t: sl.rmi_loss(z, t))
    for quality in (0.0, 2.0, 6.0):
        x, y = rmi_drift_data(quality, seed=0)
        v32, g32 = jax.jit(fn)(jnp.asarray(x), jnp.asarray(y))
        with jax.enable_x64(True):
            v64, g64 = jax.jit(fn)(jnp.asarray(x, jnp.float64), jnp.asarray(y))
            v64, g64 = np.asarray(v64), np.asarray(g64)
        dv = abs(float(v32) - float(v64))
        dg = np.abs(np.asarray(g32, np.float64) - g64).max() / np.abs(g64).max()
        print(f"quality {quality}: value {float(v64):.6f}, |dv| {dv:.2e} "
              f"(relative {dv / abs(float(v64)):.2e}), gradient max|dg|/max|g| {dg:.2e}")


def bench_blob(reps: int) -> None:
    import scipy.ndimage as ndi

    rng = np.random.default_rng(2)
    shape = (8, 256, 256)
    instances = np.zeros(shape, np.int32)
    for b in range(shape[0]):  # 16 discs of radius 4 to 20 at random places
        yy, xx = np.mgrid[:256, :256]
        for k in range(16):
            cy, cx, r = rng.integers(20, 236), rng.integers(20, 236), rng.integers(4, 21)
            instances[b][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 3 * k + 5
    x = ndi.gaussian_filter(rng.normal(size=(*shape, 1)), (0, 2, 2, 0)).astype(np.float32)
    xj, yj = jnp.asarray(x) * 4, jnp.asarray(instances)
    ours = jax.jit(jax.value_and_grad(lambda z, t: sl.blob_loss(z, t, max_instances=16)))
    dice = jax.jit(jax.value_and_grad(lambda z, t: sl.dice_loss(z, (t > 0).astype(jnp.int32),
                                                                activation="sigmoid")))
    times = median_times({"blob_loss": lambda: ours(xj, yj), "dice_loss": lambda: dice(xj, yj)},
                         reps)
    report(f"blob_loss (16 instances per image) vs dice_loss, fwd+bwd, sigmoid "
           f"{list(shape) + [1]}", times, "blob_loss", "dice_loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--only", choices=("nacl", "rmi", "drift", "blob"), default=None)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}")
    for name, fn in (("nacl", bench_nacl), ("rmi", bench_rmi), ("drift", bench_drift),
                     ("blob", bench_blob)):
        if args.only in (None, name):
            fn(args.reps)


if __name__ == "__main__":
    main()
