"""`nightgrade evaluate`: its options and glue (the work: evaluation/evaluate.py, model_checks.py)."""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping

from nightgrade.colorpipeline.errors import InputError
from nightgrade.server.evaluation.evaluate import (BASELINE_DESCRIPTIONS, GoalNames, Method, baseline_methods,
                                                   evaluate, read_rgb, report_progress, write_contact_sheet,
                                                   write_quality_report)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `nightgrade evaluate`; pair with ``run`` (the caller turns weights into methods)."""
    parser.add_argument("eval_dir", help="folder of paired clips (<clip>/low, <clip>/gt), e.g. DIR/eval")
    parser.add_argument("--weights", "-w", help="NightGrade checkpoint to score (default: the shipped model)")
    parser.add_argument("--baseline-weights", help="plain 3-channel CycleGAN checkpoint trained with the same budget")
    parser.add_argument("--reference", help="bright image for histogram matching (default: EVAL_DIR/reference.png)")
    # Defaults under out/ (git-ignored): a run from any folder must not overwrite a checkout's docs.
    parser.add_argument("--out", default="out/evaluate/quality.md", help="markdown report (default: %(default)s)")
    parser.add_argument("--sheet", default="out/evaluate/contact-sheet.png", help="contact sheet (default: %(default)s)")
    parser.add_argument("--max-frames", type=int, help="score only the first N frames of each clip")
    parser.add_argument("--baselines-only", action="store_true", help="skip the learned models")
    parser.add_argument("--models-only", action="store_true", help="skip the classical baselines")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def run(args: argparse.Namespace, model_methods: Mapping[str, Method] | None = None,
        model_descriptions: Mapping[str, str] | None = None, goals: GoalNames = GoalNames(),
        extra: Callable[[Mapping[str, Method]], list[str]] | None = None) -> int:
    """Score the baselines plus ``model_methods`` (built by the caller from --weights) and write the outputs.

    ``extra(methods)`` returns more report lines (the caller's checks that need torch)."""
    reference_path = args.reference or os.path.join(args.eval_dir, "reference.png")
    if not os.path.isfile(reference_path):
        raise InputError(f"no reference image {reference_path} for histogram matching; pass --reference IMAGE")
    methods: dict[str, Method] = {} if args.models_only else \
        baseline_methods(read_rgb(reference_path))
    descriptions = dict(BASELINE_DESCRIPTIONS)
    if not args.baselines_only:
        methods.update(model_methods or {})
        descriptions.update(model_descriptions or {})
    results = evaluate(args.eval_dir, methods, args.max_frames, None if args.quiet else report_progress)
    write_quality_report(results, args.out, descriptions, goals, extra(methods) if extra else [])
    width, height = write_contact_sheet(results, args.sheet)
    print(f"wrote {args.out} ({len(results.clips)} clips x {len(methods)} methods) and {args.sheet} "
          f"({width}x{height})")
    return 0
