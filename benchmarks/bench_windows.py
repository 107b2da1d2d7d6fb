"""The windowed losses against their PyTorch peers and optax cross-entropy, in one process.

``ssim_loss`` against kornia's ``ssim_loss`` (which returns half of ours: the
same work), ``structural_similarity_loss`` against optax softmax CE only (no
peer), ``cldice_loss`` and ``dice_cldice_loss`` (``per_image=True``, 3
iterations) against MONAI's ``SoftclDiceLoss`` and ``SoftDiceclDiceLoss``: fwd+bwd
at ``[8, 256, 256, 4]`` softmax with integer labels, every candidate and optax
CE interleaved rep by rep (medians; torch with as many threads as XLA:CPU and
``OMP_WAIT_POLICY=PASSIVE``). Also the compiled ``value_and_grad``'s temporary
memory of each loss against the size of the logits (``memory_analysis()``).

Needs the ``peers`` extra (torch CPU, MONAI, kornia). Usage::

    python -m benchmarks.bench_windows                  # every loss, 9 reps
    python -m benchmarks.bench_windows --losses ssim --repeats 15
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import segloss_jax as sl  # noqa: E402
from benchmarks.run import machine, make_inputs  # noqa: E402
from benchmarks.timing import median_times  # noqa: E402

SHAPE = (8, 256, 256, 4)


def _probabilities(x, y):
    """torch softmax probabilities and one-hot target, channels first."""
    import torch
    g = torch.nn.functional.one_hot(y, x.shape[1]).movedim(-1, 1).to(x.dtype)
    return torch.softmax(x, 1), g


def _kornia_ssim():
    import kornia.losses

    def loss(x, y):
        p, g = _probabilities(x, y)
        return kornia.losses.ssim_loss(p, g, window_size=11, max_val=1.0, eps=0.0)
    return loss


def _monai(name):
    def make():
        import monai.losses
        loss = getattr(monai.losses, name)(iter_=3)

        def call(x, y):
            p, g = _probabilities(x, y)
            return loss(p, g)
        return call
    return make


# name: (ours, peer name, peer maker or None)
LOSSES = {
    "ssim": (sl.ssim_loss, "kornia ssim_loss (x2)", _kornia_ssim),
    "structural_similarity": (sl.structural_similarity_loss, None, None),
    "cldice": (lambda x, y: sl.cldice_loss(x, y, per_image=True), "MONAI SoftclDiceLoss",
               _monai("SoftclDiceLoss")),
    "dice_cldice": (lambda x, y: sl.dice_cldice_loss(x, y, per_image=True),
                    "MONAI SoftDiceclDiceLoss", _monai("SoftDiceclDiceLoss")),
}


def optax_ce(logits, labels):
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def main(argv=None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--losses", nargs="*", default=list(LOSSES), help=f"from {list(LOSSES)}")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    logits, labels = make_inputs(SHAPE)
    x = torch.tensor(np.moveaxis(np.asarray(logits), -1, 1).copy(), requires_grad=True)
    y = torch.tensor(np.asarray(labels), dtype=torch.int64)

    def peer_thunk(peer):
        def run():
            x.grad = None
            loss = peer(x, y)
            loss.backward()
            return loss.detach().numpy()
        return run

    thunks, memory = {}, {}
    for name, fn in [("optax_ce", optax_ce)] + [(n, LOSSES[n][0]) for n in args.losses]:
        compiled = jax.jit(jax.value_and_grad(fn)).lower(logits, labels).compile()
        memory[name] = compiled.memory_analysis().temp_size_in_bytes
        thunks[name] = lambda c=compiled: c(logits, labels)
    for name in args.losses:
        if LOSSES[name][2] is not None:
            thunks[f"peer:{name}"] = peer_thunk(LOSSES[name][2]())
    times = median_times(thunks, args.repeats)

    print(f"fwd+bwd, softmax {list(SHAPE)}, integer labels; {machine()}; torch "
          f"{torch.__version__} with {threads} threads; median of {args.repeats} interleaved runs "
          "(wall ms, process CPU ms in brackets)\n")
    print("| loss | ours ms | × optax CE | peer | peer ms | ours / peer | temp MiB "
          "| temp / logits |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    ce_wall, ce_cpu = times["optax_ce"]
    logits_bytes = logits.size * logits.dtype.itemsize
    for name in ["optax_ce"] + args.losses:
        wall, cpu = times[name]
        peer_name = LOSSES[name][1] if name in LOSSES else None
        row = (f"| {name} | {wall * 1e3:.1f} ({cpu * 1e3:.1f}) | {wall / ce_wall:.1f} "
               f"({cpu / ce_cpu:.1f}) | ")
        if peer_name:
            peer_wall, peer_cpu = times[f"peer:{name}"]
            row += (f"{peer_name} | {peer_wall * 1e3:.1f} ({peer_cpu * 1e3:.1f}) | "
                    f"{wall / peer_wall:.2f} ({cpu / peer_cpu:.2f}) | ")
        else:
            row += "– | – | – | "
        row += f"{memory[name] / 2**20:.1f} | {memory[name] / logits_bytes:.1f} |"
        print(row)


if __name__ == "__main__":
    main()
