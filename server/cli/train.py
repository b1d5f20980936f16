"""`nightgrade train`: command-line glue around models/training/paired.py and models/training/paper.py.

``--mode paired`` (the default) trains the tile-consistent model on camera-model pairs made from
``--clean`` frames; ``--init default`` (or a checkpoint path) fine-tunes from a model, e.g. on a
user's own well-exposed plates. ``--mode paper`` is the paper's unpaired CycleGAN (``--low`` and
``--normal`` folders), kept for reproduction. ``--mode hybrid`` starts from a paired model and adds
the paper's adversarial and cycle terms on real ``--low`` frames (e.g. a user's night plates), with
the paired loss on ``--clean`` frames as an anchor (models/training/hybrid.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.models.training.hybrid import HybridConfig, train_hybrid
from nightgrade.models.training.paired import SWITCHES, PairedConfig, architecture_of, recipe_of, train_paired
from nightgrade.models.training.paper import TrainConfig, train

_PAPER = TrainConfig(low_dir="", normal_dir="", out_dir="")
_PAIRED = PairedConfig(clean_dir="", out_dir="")
_HYBRID = {f.name: f.default for f in dataclasses.fields(HybridConfig)}  # its check needs --init and --low
# Fields set by dedicated options (or not settable from the command line).
_PAPER_SKIP = {"low_dir", "normal_dir", "out_dir", "region_input", "perceptual_weights"}
_PAIRED_SKIP = {"clean_dir", "out_dir", "region_input", "init"}
_HYBRID_SKIP = _PAIRED_SKIP | {"low_dir"}
# paired mode with --init; the anchor measured on 0.3.2 with the bikes camera's plates (docs/quality.md):
# -0.75 dB on that camera's clip at 3.0, -0.86 at 1.0, -2.26 without
_FINE_TUNE = {"lr": 5e-5, "warmup": 100, "lambda_anchor": 3.0}
# a refinement head trained alone starts at zero with the rest frozen: a fresh layer's rate, no anchor
_HEAD_ONLY = {"lr": 1e-3, "warmup": 100, "lambda_anchor": 0.0}
# Options whose default is a rule rather than a value.
_HELP = {"exposure_level": "use the exposure branch's learned level in the model this run writes (default: true; "
                           "with --init, the starting model's)",
         "exposure_mirrors": "average the exposure branch's gains over the frame's mirror images (default: true; "
                             "with --init, the starting model's)",
         "train_exposure_level": "use it while training (default: as --exposure-level; true with --init, as the "
                                 "shipped model was trained)",
         "lambda_anchor": "weight of the L1 to the --init model's 8x-averaged output: keeps its tone while the "
                          "fine-tune learns texture and noise (default: 3.0 for a paired fine-tune, else 0)",
         "refine": "full-resolution refinement convs after the generator's output (default: 0, none; with --init, "
                   "the starting model's; a model without a head may be given one)",
         "exposure_black": "the exposure branch estimates and takes off the frame's raised black first (default: "
                           "false; with --init, the starting model's; a model without it may be given it)",
         "refine_width": "channels of the refinement head's convs (default: 16; with --init, the starting model's)",
         "train_refine_only": "train the refinement head alone, the rest of --init frozen (default: false)"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (paired camera-model pairs, or the paper's unpaired CycleGAN)",
                       description="--mode paired (default): supervised training of the tile-consistent model on "
                                   "pairs that the camera model makes from --clean frames; --init fine-tunes a model "
                                   "(e.g. `--init default --clean MY_PLATES`). --mode paper: the multiscale-patch "
                                   "CycleGAN of the paper (Sec. 3-4) on unpaired --low and --normal folders. --mode "
                                   "hybrid: from a paired model (--init), the paper's adversarial and cycle terms on "
                                   "real --low frames with the paired loss on --clean frames as an anchor. Writes "
                                   "train_state.safetensors (for --resume), model.safetensors (for enhance) and "
                                   "losses.csv under --out.")
    p.add_argument("--mode", choices=("paired", "paper", "hybrid"),
                   help="training mode (default: paired with --clean, paper with --low/--normal, hybrid with "
                        "--clean and --low)")
    p.add_argument("--clean", help="paired, hybrid: folder of well-exposed frames (searched recursively)")
    p.add_argument("--init", help="paired, hybrid: start from this checkpoint ('default' = the shipped model); its network, "
                        "loss weights and crop sizes are kept unless set")
    p.add_argument("--low", help="paper, hybrid: folder of real low-light frames (domain A); with --mode paired "
                        "it adds their adversarial term, which is --mode hybrid")
    p.add_argument("--normal", help="paper: folder of normal-light frames (domain B)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.safetensors")
    p.add_argument("--minutes", type=float,
                   help="paired, hybrid: stop after this many minutes with the state saved (--resume continues the run)")
    p.add_argument("--no-region", action="store_true",
                   help="3-channel baseline: local patches only, no region input (the paper's ablation)")
    p.add_argument("--perceptual-weights",
                   help="paper: VGG19 weights (safetensors or torchvision .pth) for the perceptual loss; "
                        "default: the VGG16 shipped in stlpips-pytorch")
    # every config field is an option; unset ones take the chosen mode's default
    field_types = {f.name: str(f.type) for f in dataclasses.fields(HybridConfig)}
    for name in dict.fromkeys([f.name for f in dataclasses.fields(HybridConfig) if f.name not in _HYBRID_SKIP]
                              + [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _PAPER_SKIP]):
        defaults = {mode: getattr(cfg, name) for mode, cfg in (("paired", _PAIRED), ("paper", _PAPER))
                    if hasattr(cfg, name)}
        if name in _HYBRID:
            defaults["hybrid"] = _HYBRID[name]
        default = next(iter(defaults.values()))
        switch = isinstance(default, bool) or field_types.get(name) == "bool | None"
        kind = _yes_no if switch else type(default) if default is not None else int
        shown = _HELP.get(name) or "(default " + ", ".join(f"{m} {v}" for m, v in defaults.items()) + ")"
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=shown)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def _yes_no(text: str) -> bool:
    """A switch's value: argparse's ``type=bool`` would take "false" as true (any non-empty text)."""
    value = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
             "0": False}.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def _from_init(args: argparse.Namespace, init: str) -> None:
    """Take the network's architecture from the checkpoint a fine-tune starts from; a flag that
    asks for another architecture is refused, naming the flag (the weights could not load). The
    ``SWITCHES`` (how the weights are used) and the training ``RECIPE`` (loss weights, crop sizes)
    default to the checkpoint's and may be set."""
    architecture = architecture_of(init)
    for name, value in architecture.items():
        given = (not args.no_region) if name == "region_input" else getattr(args, name)
        asked = args.no_region if name == "region_input" else given is not None
        # a refinement head, of any shape, or a black estimate may be added to a model without one
        grows_head = (name in ("refine", "refine_width") and architecture["refine"] == 0
                      or name == "exposure_black" and not architecture["exposure_black"])
        if asked and given != value and name not in SWITCHES and not grows_head:
            flag = "--no-region" if name == "region_input" else f"--{name.replace('_', '-')} {given}"
            raise UsageError(f"{flag} differs from the network of --init {init} ({name} = {value}); a fine-tune "
                             "keeps the architecture of the model it starts from")
        if name != "region_input":
            setattr(args, name, given if asked else value)
        else:
            args.no_region = not value
    # the loss weights and crop geometry it was trained with, unless set: the same objective, continued
    for name, value in recipe_of(init).items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def _given(args: argparse.Namespace, cfg_cls: type, skip: set[str]) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cfg_cls)
            if f.name not in skip and getattr(args, f.name, None) is not None}


def run(args: argparse.Namespace) -> int:
    mode = args.mode or ("paper" if (args.low or args.normal) and not args.clean else
                         "hybrid" if args.low and args.clean else "paired")
    if mode == "paired" and args.low:
        # `--mode paired --init default --clean PLATES --low NIGHT_PLATES` (issue 14's fine-tune): the night
        # plates add the adversarial term to the paired loss, which is the hybrid objective; never drop them
        print("nightgrade: --low adds the adversarial term on those frames to the paired loss: training "
              "--mode hybrid", file=sys.stderr, flush=True)
        mode = "hybrid"
    if args.normal and mode != "paper":
        raise UsageError(f"--normal is used by --mode paper only (unpaired normal-light frames); --mode {mode} "
                         "learns from --clean frames")
    if mode == "paper":
        if not args.low or not args.normal:
            raise UsageError("--mode paper needs --low and --normal folders")
        cfg = TrainConfig(low_dir=args.low, normal_dir=args.normal, out_dir=args.out, region_input=not args.no_region,
                          perceptual_weights=args.perceptual_weights, **_given(args, TrainConfig, _PAPER_SKIP))
        # The bar rewrites one line with carriage returns: right on a terminal, garbage in a log. In a
        # log the loss CSV is the progress record, so say where it is instead.
        terminal = sys.stderr.isatty()
        if not (terminal or args.quiet or args.json):
            print(f"nightgrade: training {cfg.steps} steps; progress: {os.path.join(args.out, 'losses.csv')} "
                  "(one row per step)", file=sys.stderr, flush=True)
        summary = train(cfg, resume=args.resume, show_progress=terminal and not (args.quiet or args.json))
    else:
        if not args.clean:
            raise UsageError(f"--mode {mode} needs --clean FOLDER (well-exposed frames; see `nightgrade sample-data --full`)")
        init = args.init or ""
        if init == "default":
            from nightgrade.server.render.defaults import resolve_weights
            init = resolve_weights(None)
        if init:
            _from_init(args, init)
            # Train with the exposure branch's level, as the shipped model was trained, whatever the
            # switch the model keeps. Measured on 0.3.2 with the bikes camera (docs/quality.md): hybrid
            # +1.20 dB this way, -2.17 with it off; paired -2.90 dB this way, -4.13 with it off.
            if args.train_exposure_level is None:
                # a head trained alone refines the pictures the model gives as it ships
                args.train_exposure_level = args.exposure_level if args.train_refine_only else True
        if mode == "paired" and init:
            # a fine-tune: a gentle rate after a warm-up, held to the starting model's tone, unless asked otherwise
            for name, value in (_HEAD_ONLY if args.train_refine_only else _FINE_TUNE).items():
                if getattr(args, name) is None:
                    setattr(args, name, value)
        if mode == "hybrid":
            cfg = HybridConfig(clean_dir=args.clean, out_dir=args.out, init=init, low_dir=args.low or "",
                               region_input=not args.no_region, **_given(args, HybridConfig, _HYBRID_SKIP))
        else:
            cfg = PairedConfig(clean_dir=args.clean, out_dir=args.out, init=init, region_input=not args.no_region,
                               **_given(args, PairedConfig, _PAIRED_SKIP))
        quiet = args.quiet or args.json
        if args.minutes is not None and args.minutes <= 0:
            raise UsageError(f"--minutes must be > 0, got {args.minutes:g}")
        summary = (train_hybrid if mode == "hybrid" else train_paired)(cfg, resume=args.resume, log=(lambda m: None) if quiet else print,
                               time_limit_s=None if args.minutes is None else 60.0 * args.minutes)
    print(json.dumps(summary, indent=2) if args.json else
          f"trained {summary['steps']} steps in {summary['seconds']} s; model: {summary['model']}")
    return 0
