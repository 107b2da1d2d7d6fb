"""Train a U-Net on synthetic scenes (or a PNG folder) with a segloss_jax loss.

Usage::

    python -m examples.unet.main --loss dice_ce --steps 300 --out runs/x
    python -m examples.unet.main --loss dice:1,cross_entropy:0.5 --data-dir my_pngs
    python -m examples.unet.main --loss dice --loss-kwargs '{"include_background": false}'
    python -m examples.unet.main --dtype bfloat16 --out runs/x --resume
    python -m examples.unet.main --compare --out demo_out
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax

from examples.unet import data, train


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `main` and `compare`; defaults come from `train.Config`."""
    d = train.Config()
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--size", type=int, default=d.size, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=d.batch, help="global batch (all devices)")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--seed", type=int, default=d.seed, help="initialisation, batch order")
    parser.add_argument("--data-seed", type=int, default=d.data_seed, help="synthetic scenes")
    parser.add_argument("--width", type=int, default=d.width, help="channels of the first level")
    parser.add_argument("--depth", type=int, default=d.depth, help="number of down-samplings")
    parser.add_argument("--num-train", type=int, default=d.num_train)
    parser.add_argument("--num-val", type=int, default=d.num_val)
    parser.add_argument("--eval-every", type=int, default=d.eval_every)
    parser.add_argument("--data-dir", default=None, help="folder with images/*.png and masks/*.png")
    parser.add_argument(
        "--loss-kwargs", type=json.loads, default={}, help="JSON keywords for the loss"
    )
    parser.add_argument("--dtype", default=d.dtype, choices=("float32", "bfloat16"))
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="0: none")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument(
        "--distributed", action="store_true", help="multi-host: jax.distributed.initialize() first"
    )
    scene = parser.add_argument_group("synthetic scene regimes (all on by default)")
    for name in ("thin", "tiny", "absent", "ignore"):
        scene.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=True)
    scene.add_argument("--imbalance", type=float, default=d.scene.imbalance, help="1: off")
    scene.add_argument("--easy", action="store_true", help="every regime off")


def config_from_args(args: argparse.Namespace, **overrides) -> train.Config:
    fields = {f.name for f in dataclasses.fields(train.Config)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    scene_fields = {f.name for f in dataclasses.fields(data.SceneConfig)} - {"size"}
    scene = data.SceneConfig(**{k: v for k, v in vars(args).items() if k in scene_fields})
    values["scene"] = scene.easy() if args.easy else scene
    return train.Config(**{**values, **overrides})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default=train.Config.loss, help="name, 'a+b' or 'a:1,b:0.5'")
    parser.add_argument("--out", default=None, help="run folder (default runs/<loss>)")
    parser.add_argument("--compare", action="store_true", help="train with several losses")
    add_config_args(parser)
    args = parser.parse_args(argv)
    if args.distributed:
        jax.distributed.initialize()  # cluster settings from the environment

    if args.compare:
        from examples.unet import compare

        compare.run_comparison(
            compare.DEFAULT_LOSSES, compare.DEFAULT_SEEDS, config_from_args(args),
            args.out or "demo_out",
        )  # fmt: skip
        return
    cfg = config_from_args(args, out=args.out or f"runs/{args.loss.replace(':', '_')}")
    metrics, _ = train.run(cfg)
    per_class = ", ".join(
        f"{name} {train.fmt(m['iou'])}" for name, m in list(metrics["per_class"].items())[1:]
    )
    print(
        f"{cfg.loss}: mean foreground IoU {train.fmt(metrics['mean_foreground_iou'])} "
        f"({per_class}); "
        f"{metrics['train_seconds']:.0f} s; {metrics['status']}; outputs in {cfg.out}"
    )


if __name__ == "__main__":
    main()
