"""`make demo` / `nightgrade demo`: the shipped model on the shipped night clip, with the temporal
window of Sec. 3.4 on (``enhance --temporal``), and a contact sheet."""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import InputError
from nightgrade.colorpipeline.io.atomic import atomic_target
from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.colorpipeline.temporal.average import MAX_RADIUS, TemporalConfig
from nightgrade.server.render.defaults import resolve_weights, sample_clip_pattern
from nightgrade.server.render.pipeline import RenderOptions, render_sequence
from nightgrade.server.render.temporal import TemporalRenderConfig, render_temporal


def contact_sheet(pairs: list[tuple[int, np.ndarray, np.ndarray]], width: int = 480,
                  label: str = "NightGrade") -> np.ndarray:
    """Rows of (input | enhanced) for a few frames, labelled; uint8 RGB."""
    rows = []
    for number, before, after in pairs:
        cells = []
        for label_text, image in ((f"input {number}", before), (f"{label} {number}", after)):
            height = round(image.shape[0] * width / image.shape[1])
            cell = cv2.resize(np.clip(image, 0, 1), (width, height), interpolation=cv2.INTER_AREA)
            cell = (cell * 255 + 0.5).astype(np.uint8)
            cv2.putText(cell, label_text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
            cells.append(cell)
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def run_demo(out: str, device: str = "auto", frames: str | None = None, radius: int = MAX_RADIUS) -> int:
    """Enhance the sample clip (``frames`` of it) into ``out``; ``radius`` 0 turns the temporal window off."""
    temporal = radius > 0
    pattern = sample_clip_pattern()
    weights = resolve_weights(None)
    frames_dir = Path(out) / "enhanced"
    print(f"NightGrade demo: enhancing the shipped night clip {pattern}\n  with the shipped model {weights}"
          f"\n  temporal window {f'on (radius {radius}, Sec. 3.4)' if temporal else 'off'}")
    started = time.perf_counter()
    # Always render afresh: a rerun (perhaps with another --radius) must show what its settings make,
    # not frames an earlier demo left in the same folder.
    opts = RenderOptions(pattern, str(frames_dir) + os.sep, frames=frames, device=device, overwrite=True)
    summary = render_temporal(opts, TemporalRenderConfig(TemporalConfig(radius=radius))) if temporal \
        else render_sequence(opts)
    first, last = summary["frames"]
    picks = sorted({first, (first + last) // 2, last})
    pairs = []
    for number in picks:
        source = pattern.replace("####", f"{number:04d}")
        result = frames_dir / os.path.basename(source)
        if not result.is_file():
            raise InputError(f"demo output {result} is missing")
        pairs.append((number, read_frame(source).rgb, read_frame(str(result)).rgb))
    sheet_path = Path(out) / "contact-sheet.png"
    with atomic_target(sheet_path) as tmp:
        sheet = contact_sheet(pairs, label="NightGrade+temporal" if temporal else "NightGrade")
        cv2.imwrite(tmp, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"  {summary['frames_written']} frames ({summary['width']}x{summary['height']}) in "
          f"{time.perf_counter() - started:.1f} s on {summary['device']}"
          + (f"; generator passes per frame {summary['generator_passes_per_frame']:.2f}, mean frames averaged "
             f"per pixel {summary['mean_frames_averaged']:.1f}" if temporal else "") + "\n"
          f"  enhanced frames: {frames_dir.resolve()}\n  contact sheet:   {sheet_path.resolve()}")
    return 0
