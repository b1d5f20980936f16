"""Ablation at equal budget (issue 14, item 7): 6-channel vs 3-channel input, per-tile norm vs none,
the tile-consistency term vs none.

Each variant is trained from scratch with ``nightgrade train --mode paired`` for the same number of
steps (the same samples, in the same order) on the same clean frames, then scored on the paired evaluation clips (PSNR, SSIM) and for
tile consistency (tile 256 vs 384 on the first frame of ``bikes_late``).

    .venv/bin/python bench/ablation.py CLEAN_DIR EVAL_DIR [--steps 400] [--write-docs]

Equal steps, not equal minutes: on a shared machine the same minutes gave one variant four times the steps
of another.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from nightgrade.models.checkpoint import read_meta
from _common import report_quality_section

from nightgrade.server.cli.main import main as cli_main
from nightgrade.server.evaluation import evaluate, twins
from nightgrade.server.evaluation.methods import engine_method
from nightgrade.server.evaluation.model_checks import tile_difference

SECTION = "## Ablation at equal budget (issue 14, item 7)"
VARIANTS = {"6-ch, no norm": [], "6-ch, no norm, tile term 1.0 (shipped design)": ["--lambda-tile", "1.0"],
            "3-ch, no norm": ["--no-region"], "6-ch, per-tile InstanceNorm": ["--norm", "instance"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clean_dir")
    parser.add_argument("eval_dir")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ng-ablation-") as tmp:
        for name, flags in VARIANTS.items():
            out = os.path.join(tmp, str(len(rows)))
            rc = cli_main(["train", "--mode", "paired", "--clean", args.clean_dir, "--out", out, "--steps", str(args.steps),
                           "--quiet", *flags])
            if rc:
                return rc
            weights = os.path.join(out, "model.safetensors")
            method, _ = engine_method(weights, "cpu")
            results = evaluate.evaluate(args.eval_dir, {"m": method}, max_frames=6)
            main_clips = twins.main_clips(results.clips)
            psnr, ssim, _ = evaluate._means(results, main_clips, "m")
            frame = evaluate.read_frame_of(args.eval_dir, "bikes_late", "low",
                                           evaluate.find_clips(args.eval_dir)["bikes_late"][0])
            diff = tile_difference(method.engine, frame)
            rows.append((name, read_meta(weights).training["steps"], psnr, ssim, diff))
    lines = [SECTION, "",
             f"`bench/ablation.py` on {evaluate._now()} ({evaluate._machine()}): each variant trained from scratch "
             f"for {args.steps} steps on the same clean frames, scored on the first 6 frames of "
             "each evaluation clip (mean over the clips that are not twins: `_dark`, `_mosaic`).", "",
             "| variant | steps | PSNR (dB) | SSIM | tile 256 vs 384 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {s} | {p:.2f} | {q:.4f} | {100 * d:.3f} % |" for n, s, p, q, d in rows]
    return report_quality_section(lines, args.write_docs)


if __name__ == "__main__":
    sys.exit(main())
