"""Our losses against their PyTorch peers (MONAI, kornia, torch) on the same CPU.

Each pair computes the same loss of the same numbers (ours channels-last, the
peer's NCHW), fwd+bwd w.r.t. the logits, timed in one process with the runs of
the two interleaved (medians; ratios matter, not absolute times). torch gets
as many threads as XLA:CPU uses (the cores this process may run on) and
``OMP_WAIT_POLICY=PASSIVE``, so its thread pool does not spin against XLA's.

Needs the ``peers`` extra (``pip install -e ".[peers]"``: torch CPU, MONAI,
kornia); segmentation_models_pytorch needs torchvision, which has no CPU build
here, so smp is not compared. A benchmark, not a test: CI does not install it.

Usage::

    python -m benchmarks.bench_peers                 # every pair, writes RESULTS.md
    python -m benchmarks.bench_peers --pairs dice_ce lovasz_softmax --repeats 21
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402
import datetime  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import NamedTuple  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import segloss_jax as sl  # noqa: E402
from benchmarks.run import machine, make_inputs, write_results  # noqa: E402
from benchmarks.timing import median_times  # noqa: E402

BEGIN, END = "<!-- benchmarks.bench_peers:begin -->", "<!-- benchmarks.bench_peers:end -->"
SOFTMAX, SIGMOID = (8, 256, 256, 4), (8, 256, 256, 1)


class Pair(NamedTuple):
    shape: tuple[int, ...]
    ours: Callable  # (logits [B, *S, C], labels [B, *S]) -> scalar
    peer: str  # the peer's name, as shown in the table
    make_peer: Callable[[], Callable]  # () -> (logits [B, C, *S], labels [B, *S]) -> scalar


def _monai(name, channel=True, **kwargs):
    """A MONAI loss class, called ``loss(logits, labels[:, None])`` (``channel=False``:
    labels as they are)."""
    def make():
        import monai.losses
        loss = getattr(monai.losses, name)(**kwargs)
        return lambda x, y: loss(x, y[:, None] if channel else y)
    return make


def _monai_cldice():
    """MONAI's SoftclDiceLoss takes ``(y_true, y_pred)`` probabilities: softmax and one-hot."""
    import monai.losses
    import torch
    loss = monai.losses.SoftclDiceLoss()

    def cldice(x, y):
        g = torch.nn.functional.one_hot(y, x.shape[1]).movedim(-1, 1).to(x.dtype)
        return loss(g, torch.softmax(x, 1))
    return cldice


def _kornia(name, **kwargs):
    def make():
        import kornia.losses
        fn = getattr(kornia.losses, name)
        return lambda x, y: fn(x, y, **kwargs)
    return make


def _kornia_ssim():
    import kornia.losses
    import torch

    def loss(x, y):
        p = torch.softmax(x, 1)
        g = torch.nn.functional.one_hot(y, x.shape[1]).movedim(-1, 1).to(x.dtype)
        return kornia.losses.ssim_loss(p, g, window_size=11, max_val=1.0, eps=0.0)
    return loss


def _torch_ce():
    import torch
    return torch.nn.functional.cross_entropy


_MONAI_ONEHOT = dict(to_onehot_y=True, softmax=True)
_M = 1 - np.eye(SOFTMAX[-1])  # the distance matrix of the Wasserstein Dice: 1 off the diagonal
PAIRS: dict[str, Pair] = {
    "cross_entropy": Pair(SOFTMAX, sl.cross_entropy, "torch cross_entropy", _torch_ce),
    "dice": Pair(SOFTMAX, lambda x, y: sl.dice_loss(x, y, per_image=True),
                 "MONAI DiceLoss", _monai("DiceLoss", **_MONAI_ONEHOT)),
    "dice_ce": Pair(SOFTMAX, lambda x, y: sl.dice_ce_loss(x, y, per_image=True),
                    "MONAI DiceCELoss", _monai("DiceCELoss", **_MONAI_ONEHOT)),
    "dice_focal": Pair(SOFTMAX, lambda x, y: sl.dice_focal_loss(x, y, per_image=True),
                       "MONAI DiceFocalLoss", _monai("DiceFocalLoss", **_MONAI_ONEHOT)),
    "mcc": Pair(SOFTMAX, lambda x, y: sl.mcc_loss(x, y, per_image=True),
                "MONAI MCCLoss", _monai("MCCLoss", **_MONAI_ONEHOT)),
    "generalized_wasserstein_dice": Pair(
        SOFTMAX, lambda x, y: sl.generalized_wasserstein_dice_loss(x, y, distance_matrix=_M),
        "MONAI GeneralizedWassersteinDiceLoss",
        _monai("GeneralizedWassersteinDiceLoss", channel=False, dist_matrix=_M)),
    "hausdorff_dt": Pair(SOFTMAX, sl.hausdorff_dt_loss, "MONAI HausdorffDTLoss",
                         _monai("HausdorffDTLoss", **_MONAI_ONEHOT)),
    "cldice": Pair(SOFTMAX, lambda x, y: sl.cldice_loss(x, y, per_image=True),
                   "MONAI SoftclDiceLoss", _monai_cldice),
    "lovasz_softmax": Pair(SOFTMAX, lambda x, y: sl.lovasz_softmax_loss(x, y, per_image=True),
                           "kornia lovasz_softmax_loss", _kornia("lovasz_softmax_loss")),
    "lovasz_hinge": Pair(SIGMOID, lambda x, y: sl.lovasz_hinge_loss(x, y, per_image=True),
                         "kornia lovasz_hinge_loss", _kornia("lovasz_hinge_loss")),
    "ssim": Pair(SOFTMAX, sl.ssim_loss, "kornia ssim_loss (x2)", _kornia_ssim),
}


def bench_pair(name: str, pair: Pair, repeats: int) -> dict:
    import torch

    logits, labels = make_inputs(pair.shape)
    if pair.shape[-1] == 1:
        labels = labels % 2
    ours = jax.jit(jax.value_and_grad(pair.ours))
    x = torch.tensor(np.moveaxis(np.asarray(logits), -1, 1).copy(), requires_grad=True)
    y = torch.tensor(np.asarray(labels), dtype=torch.int64)
    peer = pair.make_peer()

    def run_peer():
        x.grad = None
        loss = peer(x, y)
        loss.backward()
        return loss.detach().numpy()

    times = median_times({"ours": lambda: ours(logits, labels), "peer": run_peer}, repeats)
    return {"loss": name, "peer": pair.peer, "shape": list(pair.shape),
            "ours_ms": times["ours"][0] * 1e3, "peer_ms": times["peer"][0] * 1e3}


def markdown(rows, threads: int, repeats: int) -> str:
    import torch
    lines = [
        BEGIN,
        f"Generated by `python -m benchmarks.bench_peers` on {datetime.date.today()}: "
        f"{machine()}; torch {torch.__version__} with {threads} threads, "
        f"`OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}`. Jitted `value_and_grad` against "
        f"the peer's forward + `backward()` on the same numbers, median of {repeats} "
        "interleaved runs. Ratio < 1: ours is faster.",
        "",
        "| loss | peer | shape | ours ms | peer ms | ours / peer |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| {r['loss']} | {r['peer']} | {r['shape']} | {r['ours_ms']:.1f} | "
              f"{r['peer_ms']:.1f} | {r['ours_ms'] / r['peer_ms']:.2f} |" for r in rows]
    lines.append(END)
    return "\n".join(lines)


def main(argv=None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", nargs="*", default=None, help=f"from {sorted(PAIRS)}")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    names = args.pairs or list(PAIRS)
    rows = [bench_pair(n, PAIRS[n], args.repeats) for n in names]
    section = markdown(rows, threads, args.repeats)
    print(section)
    if not args.no_write and args.pairs is None:
        write_results(section, BEGIN, END, "Against the PyTorch peers (benchmarks.bench_peers)")


if __name__ == "__main__":
    main()
