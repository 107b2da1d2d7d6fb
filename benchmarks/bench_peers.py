"""Our losses against their PyTorch peers (MONAI, kornia, torch) and optax CE on the same CPU.

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
import optax  # noqa: E402

import segloss_jax as sl  # noqa: E402
from benchmarks.run import machine, make_inputs, write_results  # noqa: E402
from benchmarks.timing import median_times  # noqa: E402

BEGIN, END = "<!-- benchmarks.bench_peers:begin -->", "<!-- benchmarks.bench_peers:end -->"
SOFTMAX, SIGMOID = (8, 256, 256, 4), (8, 256, 256, 1)


class Pair(NamedTuple):
    shape: tuple[int, ...]
    ours: Callable  # (logits [B, *S, C], labels [B, *S]) -> scalar
    peer: str | None  # the peer's name, as shown in the table (None: no peer)
    make_peer: Callable[[], Callable] | None  # () -> (logits [B, C, *S], labels [B, *S]) -> scalar


def _probabilities(x, y):
    """torch softmax probabilities and one-hot target, channels first."""
    import torch
    g = torch.nn.functional.one_hot(y, x.shape[1]).movedim(-1, 1).to(x.dtype)
    return torch.softmax(x, 1), g


def _monai(name, channel=True, **kwargs):
    """A MONAI loss class, called ``loss(logits, labels[:, None])`` (``channel=False``:
    labels as they are)."""
    def make():
        import monai.losses
        loss = getattr(monai.losses, name)(**kwargs)
        return lambda x, y: loss(x, y[:, None] if channel else y)
    return make


def _monai_on_probabilities(name):
    """MONAI's clDice losses, fed softmax probabilities and the one-hot target."""
    def make():
        import monai.losses
        loss = getattr(monai.losses, name)(iter_=3)
        return lambda x, y: loss(*_probabilities(x, y))
    return make


def _kornia(name, **kwargs):
    def make():
        import kornia.losses
        fn = getattr(kornia.losses, name)
        return lambda x, y: fn(x, y, **kwargs)
    return make


def _kornia_ssim():
    import kornia.losses
    return lambda x, y: kornia.losses.ssim_loss(*_probabilities(x, y), window_size=11,
                                                max_val=1.0, eps=0.0)


def _rmi_port():
    from benchmarks.rmi_torch import RMILoss
    return RMILoss(num_classes=19)


def _torch_ce():
    import torch
    return torch.nn.functional.cross_entropy


def optax_ce(logits, labels):
    """The anchor: optax softmax cross-entropy with integer labels."""
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


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
    "tversky": Pair(SOFTMAX, lambda x, y: sl.tversky_loss(x, y, per_image=True),
                    "MONAI TverskyLoss", _monai("TverskyLoss", alpha=0.3, beta=0.7,
                                                **_MONAI_ONEHOT)),
    "focal": Pair(SOFTMAX, sl.focal_loss, "MONAI FocalLoss",
                  _monai("FocalLoss", to_onehot_y=True, use_softmax=True)),
    "mcc": Pair(SOFTMAX, lambda x, y: sl.mcc_loss(x, y, per_image=True),
                "MONAI MCCLoss", _monai("MCCLoss", **_MONAI_ONEHOT)),
    "generalized_wasserstein_dice": Pair(
        SOFTMAX, lambda x, y: sl.generalized_wasserstein_dice_loss(x, y, distance_matrix=_M),
        "MONAI GeneralizedWassersteinDiceLoss",
        _monai("GeneralizedWassersteinDiceLoss", channel=False, dist_matrix=_M)),
    "hausdorff_dt": Pair(SOFTMAX, sl.hausdorff_dt_loss, "MONAI HausdorffDTLoss",
                         _monai("HausdorffDTLoss", **_MONAI_ONEHOT)),
    "cldice": Pair(SOFTMAX, lambda x, y: sl.cldice_loss(x, y, per_image=True),
                   "MONAI SoftclDiceLoss", _monai_on_probabilities("SoftclDiceLoss")),
    "dice_cldice": Pair(SOFTMAX, lambda x, y: sl.dice_cldice_loss(x, y, per_image=True),
                        "MONAI SoftDiceclDiceLoss",
                        _monai_on_probabilities("SoftDiceclDiceLoss")),
    "lovasz_softmax": Pair(SOFTMAX, lambda x, y: sl.lovasz_softmax_loss(x, y, per_image=True),
                           "kornia lovasz_softmax_loss", _kornia("lovasz_softmax_loss")),
    "lovasz_hinge": Pair(SIGMOID, lambda x, y: sl.lovasz_hinge_loss(x, y, per_image=True),
                         "kornia lovasz_hinge_loss", _kornia("lovasz_hinge_loss")),
    # kornia's ssim_loss is half of ours (1 - SSIM over 2): the same work.
    "ssim": Pair(SOFTMAX, sl.ssim_loss, "kornia ssim_loss (x2)", _kornia_ssim),
    "structural_similarity": Pair(SOFTMAX, sl.structural_similarity_loss, None, None),
    "nacl": Pair(SOFTMAX, sl.nacl_loss, "MONAI NACLLoss",
                 _monai("NACLLoss", channel=False, classes=SOFTMAX[-1], dim=2)),
    "rmi": Pair((8, 256, 256, 19), sl.rmi_loss, "ZJULearning/RMI RMILoss (CPU port)",
                _rmi_port),
}


def bench_pair(name: str, pair: Pair, repeats: int) -> dict:
    """Ours, the peer and optax CE at the pair's shape, interleaved: (wall, CPU) medians
    and the compiled ``value_and_grad``'s temporary memory."""
    import torch

    logits, labels = make_inputs(pair.shape)
    if pair.shape[-1] == 1:
        labels = labels % 2
    thunks, temp = {}, 0
    for key, fn in [("ours", pair.ours), ("optax_ce", optax_ce)]:
        compiled = jax.jit(jax.value_and_grad(fn)).lower(logits, labels).compile()
        if key == "ours":
            temp = compiled.memory_analysis().temp_size_in_bytes
        thunks[key] = lambda c=compiled: c(logits, labels)
    if pair.shape[-1] == 1:  # the anchor is a softmax loss: two channels
        del thunks["optax_ce"]
    if pair.make_peer is not None:
        x = torch.tensor(np.moveaxis(np.asarray(logits), -1, 1).copy(), requires_grad=True)
        y = torch.tensor(np.asarray(labels), dtype=torch.int64)
        peer = pair.make_peer()

        def run_peer():
            x.grad = None
            loss = peer(x, y)
            loss.backward()
            return loss.detach().numpy()
        thunks["peer"] = run_peer
    times = median_times(thunks, repeats)
    return {"loss": name, "peer": pair.peer, "shape": list(pair.shape), "times": times,
            "temp_over_logits": temp / (logits.size * logits.dtype.itemsize)}


def _ratio(times, a, b):
    """``a / b`` as wall (CPU), or a dash when either is missing."""
    if a not in times or b not in times:
        return "–"
    return (f"{times[a][0] / times[b][0]:.2f} "
            f"({times[a][1] / times[b][1]:.2f})")


def markdown(rows, threads: int, repeats: int) -> str:
    import torch
    lines = [
        BEGIN,
        f"Generated by `python -m benchmarks.bench_peers` on {datetime.date.today()}: "
        f"{machine()}; torch {torch.__version__} with {threads} threads, "
        f"`OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}`. Jitted `value_and_grad` against "
        "the peer's forward + `backward()` on the same numbers and optax softmax CE "
        f"(softmax shapes), median of {repeats} interleaved runs; wall ms, process CPU ms in "
        "brackets (the steadier figure on a shared machine). Ratio < 1: ours is faster. "
        "Temp: the compiled fwd+bwd's temporary memory over the size of the logits.",
        "",
        "| loss | peer | shape | ours ms | peer ms | ours / peer | ours / optax CE | temp |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r["times"]
        ours = f"{t['ours'][0] * 1e3:.1f} ({t['ours'][1] * 1e3:.1f})"
        peer = f"{t['peer'][0] * 1e3:.1f} ({t['peer'][1] * 1e3:.1f})" if "peer" in t else "–"
        lines.append(f"| {r['loss']} | {r['peer'] or '–'} | {r['shape']} | {ours} | {peer} | "
                     f"{_ratio(t, 'ours', 'peer')} | {_ratio(t, 'ours', 'optax_ce')} | "
                     f"{r['temp_over_logits']:.1f}× |")
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
