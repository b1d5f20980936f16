"""Subcommands beyond enhance/info: sample-data, evaluate, demo (glue only; work lives elsewhere)."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from nightgrade.server.cli import evaluate, sample_data

    p = sub.add_parser("sample-data", help="build training and paired evaluation frames from packaged footage")
    sample_data.add_arguments(p)
    p.set_defaults(func=sample_data.run)

    p = sub.add_parser("evaluate", help="score the model and baselines on paired clips (PSNR, SSIM, flicker)")
    evaluate.add_arguments(p)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--temporal", action="store_true",
                   help="also score nightgrade-temporal: the model plus the temporal window (radius 6)")
    p.add_argument("--no-checks", action="store_true",
                   help="skip colour accuracy and the tile/proxy consistency checks")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("demo", help="enhance the shipped sample clip with the shipped model")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--frames", help="a frame range of the clip (default: all 24 frames, 150-173)")
    p.add_argument("--radius", type=int, default=6,
                   help="temporal window radius in frames (default 6; 0: per-frame enhancement only)")
    p.set_defaults(func=_demo)


def _evaluate(args: argparse.Namespace) -> int:
    from nightgrade.server.cli import evaluate
    from nightgrade.server.render.defaults import resolve_weights
    from nightgrade.server.evaluation.methods import TemporalMethod, engine_method

    methods, descriptions = {}, {}
    if not args.baselines_only:
        methods["nightgrade"], descriptions["nightgrade"] = engine_method(resolve_weights(args.weights), args.device)
        if args.temporal:
            methods["nightgrade-temporal"] = TemporalMethod(methods["nightgrade"])
            descriptions["nightgrade-temporal"] = (descriptions["nightgrade"] + "; then the temporal window of "
                                                   "Sec. 3.4 (radius 6, max motion 256 px, DIS flow)")
        if args.baseline_weights:
            methods["cyclegan-3ch"], descriptions["cyclegan-3ch"] = engine_method(
                resolve_weights(args.baseline_weights), args.device)
    extra = None if args.no_checks else (lambda all_methods: _checks(args.eval_dir, all_methods))
    return evaluate.run(args, methods, descriptions, extra=extra)


def _checks(eval_dir: str, methods) -> list[str]:
    """Colour accuracy of every method; tile and proxy consistency of the model (first frame of each clip)."""
    from nightgrade.colorpipeline.lowlight import CameraModel
    from nightgrade.server.evaluation import evaluate, twins
    from nightgrade.server.evaluation.model_checks import check_frame, colour_lines, consistency_lines

    lines = colour_lines(methods, CameraModel())
    engine = getattr(methods.get("nightgrade"), "engine", None)
    if engine is not None:
        clips = evaluate.find_clips(eval_dir)
        # large frames (1920 px wide, noise made at that size): proxies at 0.25 are still real pictures
        frames = {f"{c} (1920 wide)": check_frame(evaluate.read_frame_of(eval_dir, c, "gt", files[0]))
                  for c, files in clips.items() if twins.split(c) is None and "_outside" not in c}
        lines += consistency_lines(engine, frames)
    return lines


def _demo(args: argparse.Namespace) -> int:
    from nightgrade.server.render.demo import run_demo

    return run_demo(args.out, args.device, args.frames, args.radius)
