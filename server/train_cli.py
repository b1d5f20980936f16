"""`nightgrade train`: command-line glue around models/training.py."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from nightgrade.models.training import TrainConfig, train

_DEFAULTS = TrainConfig(low_dir="", normal_dir="", out_dir="")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the low->normal CycleGAN on unpaired frames",
                       description="Train the multiscale-patch CycleGAN (paper Sec. 3-4) on two folders of "
                                   "unpaired frames. Writes train_state.safetensors (for --resume), model.safetensors "
                                   "(for enhance), losses.csv, losses.png and samples/.")
    p.add_argument("--low", required=True, help="folder of low-light frames (domain A)")
    p.add_argument("--normal", required=True, help="folder of normal-light frames (domain B)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.safetensors")
    p.add_argument("--no-region", action="store_true",
                   help="train the plain 3-channel CycleGAN baseline (no region input, local losses only)")
    p.add_argument("--perceptual-weights",
                   help="VGG19 weights (safetensors or torchvision .pth) for the perceptual loss; "
                        "default: the VGG16 shipped in stlpips-pytorch")
    for field in dataclasses.fields(TrainConfig):
        if field.name in ("low_dir", "normal_dir", "out_dir", "region_input", "perceptual_weights"):
            continue
        default = getattr(_DEFAULTS, field.name)
        kind = type(default) if default is not None else int
        p.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=default,
                       help=f"(default {default})")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    skip = {"low_dir", "normal_dir", "out_dir", "region_input", "perceptual_weights"}
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in skip}
    cfg = TrainConfig(low_dir=args.low, normal_dir=args.normal, out_dir=args.out, region_input=not args.no_region,
                      perceptual_weights=args.perceptual_weights, **values)
    # The bar rewrites one line with carriage returns: right on a terminal, garbage in a log. In a
    # log the loss CSV is the progress record, so say where it is instead.
    terminal = sys.stderr.isatty()
    if not (terminal or args.quiet or args.json):
        print(f"nightgrade: training {cfg.steps} steps; progress: {os.path.join(args.out, 'losses.csv')} "
              "(one row per step)", file=sys.stderr, flush=True)
    summary = train(cfg, resume=args.resume, show_progress=terminal and not (args.quiet or args.json))
    print(json.dumps(summary, indent=2) if args.json else
          f"trained {summary['steps']} steps in {summary['seconds']} s; model: {summary['model']}")
    return 0
