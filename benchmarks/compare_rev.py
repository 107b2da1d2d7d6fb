"""Before/after: every registered loss of this tree against the same loss at a git revision.

Both versions are imported into one process (the revision's package is extracted
with ``git archive`` and renamed ``segloss_rev``) and timed interleaved, fwd+bwd
w.r.t. the logits at the shapes of :mod:`benchmarks.run`, so the ratio
``now / rev`` compares runs made under the same conditions.

Usage::

    python -m benchmarks.compare_rev ab34dfd                # all losses, against 0.1.0
    python -m benchmarks.compare_rev HEAD~3 --losses dice jaccard --repeats 21
"""

from __future__ import annotations

import argparse
import importlib
import io
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile

import jax

import segloss_jax as sl
from benchmarks.run import SHAPES, loss_call, make_inputs
from benchmarks.timing import median_times
from segloss_jax._src.registry import loss_info


def import_revision(rev: str, root: pathlib.Path):
    """The package ``segloss_jax`` at ``rev``, imported as ``segloss_rev``."""
    archive = subprocess.run(["git", "archive", rev, "segloss_jax"], cwd=root, check=True,
                             capture_output=True).stdout
    target = pathlib.Path(tempfile.mkdtemp(prefix="segloss_rev_"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    package = target / "segloss_jax"
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\bsegloss_jax\b", "segloss_rev", path.read_text()))
    package.rename(target / "segloss_rev")
    sys.path.insert(0, str(target))
    return importlib.import_module("segloss_rev")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("--losses", nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    old = import_revision(args.rev, pathlib.Path(__file__).resolve().parents[1])
    names = args.losses or [n for n in sl.list_losses() if n in old.list_losses()]
    print(f"| loss | activation | shape | now ms | {args.rev} ms | now / {args.rev} "
          "| CPU time now / rev |")
    print("|---|---|---|---:|---:|---:|---:|")
    for activation, shape in SHAPES.items():
        logits, labels = make_inputs(shape)
        for name in names:
            if activation not in loss_info(name).activations:
                continue
            fns = {}
            for key, module in (("now", sl), ("rev", old)):
                f = jax.jit(jax.value_and_grad(loss_call(name, activation, module)))
                fns[key] = lambda f=f, x=logits, y=labels: f(x, y)
            times = median_times(fns, args.repeats)
            now, rev = times["now"][0] * 1e3, times["rev"][0] * 1e3
            print(f"| {name} | {activation} | {list(shape)} | {now:.1f} | {rev:.1f} | "
                  f"{now / rev:.2f} | {times['now'][1] / times['rev'][1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
