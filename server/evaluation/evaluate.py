"""`nightgrade evaluate EVAL_DIR`: score enhancement methods on paired clips (issue 4, item 5).

A method is any callable ``fn(frame) -> frame`` on a float32 sRGB-encoded HxWx3 frame in [0, 1];
the learned models reach this module as such callables (it never imports torch). Frames of a clip
are fed in order; a method with a ``reset()`` attribute is reset at the start of every clip, so a
method can keep state within a clip. A method with a true ``whole_clip`` attribute is called once
per clip with the list of its frames and returns the list of outputs (the temporal window looks
ahead as well as back). Outputs are clipped to [0, 1] before scoring: the
metrics are display-referred.

Per clip and method: PSNR and SSIM (means over frames) and the flicker error, all from
``colorpipeline.metrics``; also seconds per frame. Clips are the folders of EVAL_DIR holding
``low/`` and ``gt/`` with the same file names (``nightgrade sample-data`` writes them). Twin clips
(``twins``: ``<base>_dark<N>``, ``<base>_mosaic``) are ``<base>``'s footage captured another way: the
report shows the PSNR lost against ``<base>`` and keeps them out of the mean.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import InputError, ModelError, OutputError, setting
from nightgrade.colorpipeline.evaluation import metrics
from nightgrade.colorpipeline.evaluation.baselines import gamma_clahe_nlm, histogram_matcher, identity
from nightgrade.colorpipeline.io.atomic import atomic_target
from nightgrade.colorpipeline.io.frame import Frame
from nightgrade.colorpipeline.io.imageio import WriteOptions, read_frame, write_frame
from nightgrade.server.evaluation import twins

Method = Callable[[np.ndarray], np.ndarray]

BASELINE_DESCRIPTIONS = {
    "identity": "the low-light input, unchanged",
    "histogram-match": "per-channel global CDF matching of each frame to a bright reference frame from other "
                       "footage (EVAL_DIR/reference.png, a Big Buck Bunny frame)",
    "gamma-clahe-nlm": "automatic gamma (mean luma to 0.45, exponent in [0.2, 1]), CLAHE on L* (clip 2.0, 8x8 "
                       "tiles), OpenCV non-local means (h = hColor = 10, 7x7 template, 21x21 search)",
}
_LABEL_HEIGHT = 22


@dataclass(frozen=True)
class ClipScore:
    """One method on one clip; ``psnr``/``ssim`` are means over frames, ``flicker`` per ``metrics``."""

    clip: str
    method: str
    frames: int
    psnr: float
    ssim: float
    flicker: float
    seconds_per_frame: float


@dataclass(frozen=True)
class Sample:
    """One frame of a clip kept for the contact sheet: input, each method's output, ground truth."""

    clip: str
    frame: str
    input: np.ndarray
    truth: np.ndarray
    outputs: dict[str, np.ndarray]
    psnr: dict[str, float]


@dataclass(frozen=True)
class GoalNames:
    """Which methods the issue's goals compare: ours vs histogram matching and the plain CycleGAN."""

    ours: str = "nightgrade"
    histogram: str = "histogram-match"
    classic: str = "gamma-clahe-nlm"
    plain: str = "cyclegan-3ch"
    temporal: str = "nightgrade-temporal"


@dataclass(frozen=True)
class EvalResults:
    eval_dir: str
    methods: tuple[str, ...]
    scores: tuple[ClipScore, ...]
    samples: tuple[Sample, ...] = field(default=())

    def score(self, clip: str, method: str) -> ClipScore:
        return next(s for s in self.scores if s.clip == clip and s.method == method)

    @property
    def clips(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.clip for s in self.scores))


def find_clips(eval_dir: str) -> dict[str, list[str]]:
    """Clip name -> sorted frame file names present in both ``low/`` and ``gt/``; InputError if none."""
    if not os.path.isdir(eval_dir):
        raise InputError(f"evaluation folder {eval_dir} does not exist; build one with nightgrade sample-data")
    clips = {}
    for name in sorted(os.listdir(eval_dir)):
        low, gt = os.path.join(eval_dir, name, "low"), os.path.join(eval_dir, name, "gt")
        if not (os.path.isdir(low) and os.path.isdir(gt)):
            continue
        low_files, gt_files = _images(low), _images(gt)
        if low_files != gt_files:
            missing = sorted(set(low_files) ^ set(gt_files))
            raise InputError(f"clip {name}: low/ and gt/ differ ({', '.join(missing[:4])}); every low frame "
                             "needs its ground truth")
        if len(low_files) >= 2:
            clips[name] = low_files
    if not clips:
        raise InputError(f"{eval_dir} holds no clip (a folder with low/ and gt/, 2+ frames each)")
    return clips


def evaluate(eval_dir: str, methods: Mapping[str, Method], max_frames: int | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> EvalResults:
    """Run every method on every clip of ``eval_dir`` (first ``max_frames`` frames) and score it.

    ``progress(clip, frames_done, frames_total)`` is called after every frame."""
    if not methods:
        raise ValueError("no methods to evaluate")
    scores, samples = [], []
    for clip, files in find_clips(eval_dir).items():
        files = files[:max_frames] if max_frames else files
        if len(files) < 2:
            raise InputError(f"clip {clip}: the flicker error needs 2+ frames; raise {setting('max_frames')}")
        clip_scores, sample = _evaluate_clip(os.path.join(eval_dir, clip), clip, files, methods, progress)
        scores.extend(clip_scores)
        samples.append(sample)
    return EvalResults(os.path.abspath(eval_dir), tuple(methods), tuple(scores), tuple(samples))


def _evaluate_clip(folder: str, clip: str, files: list[str], methods: Mapping[str, Method],
                   progress: Callable[[str, int, int], None] | None) -> tuple[list[ClipScore], Sample]:
    lows = [read_rgb(os.path.join(folder, "low", name)) for name in files]
    gts = [read_rgb(os.path.join(folder, "gt", name)) for name in files]
    outputs: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    total = len(files) * len(methods)
    for index, (method, fn) in enumerate(methods.items()):
        reset = getattr(fn, "reset", None)
        if callable(reset):
            reset()
        start = time.perf_counter()
        if getattr(fn, "whole_clip", False):
            raw = list(fn([low.copy() for low in lows]))
        else:
            raw = []
            for t, low in enumerate(lows):
                raw.append(fn(low.copy()))
                if progress:
                    progress(clip, index * len(files) + t + 1, total)
        seconds[method] = time.perf_counter() - start
        if len(raw) != len(lows):
            raise ModelError(f"method {method} returned {len(raw)} frames for the {len(lows)} of clip {clip}")
        outputs[method] = [_checked_output(out, low.shape, method, clip, name)
                           for out, low, name in zip(raw, lows, files)]
        if progress:
            progress(clip, (index + 1) * len(files), total)
    scores = []
    for method in methods:
        outs = outputs[method]
        scores.append(ClipScore(clip, method, len(files), float(np.mean([metrics.psnr(o, g) for o, g in zip(outs, gts)])),
                                float(np.mean([metrics.ssim(o, g) for o, g in zip(outs, gts)])),
                                float(metrics.flicker_error(outs, gts)), seconds[method] / len(files)))
    keep = len(files) // 2
    sample = Sample(clip, files[keep], lows[keep], gts[keep], {m: outputs[m][keep] for m in methods},
                    {m: metrics.psnr(outputs[m][keep], gts[keep]) for m in methods})
    return scores, sample


def _checked_output(out: np.ndarray, shape: tuple[int, ...], method: str, clip: str, name: str) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32)
    if out.shape != shape:
        raise ModelError(f"method {method} returned shape {out.shape} for {clip}/{name}, expected {shape}")
    if not np.all(np.isfinite(out)):
        raise ModelError(f"method {method} returned NaN or infinite pixels for {clip}/{name}")
    return np.clip(out, 0.0, 1.0)


def baseline_methods(reference: np.ndarray) -> dict[str, Method]:
    """The classical baselines of ``colorpipeline.baselines``, keyed as in ``BASELINE_DESCRIPTIONS``."""
    return {"identity": identity, "histogram-match": histogram_matcher(reference),
            "gamma-clahe-nlm": gamma_clahe_nlm()}


def quality_markdown(results: EvalResults, descriptions: Mapping[str, str],
                     goals: GoalNames = GoalNames()) -> str:
    """The report: where and when, what each method is, per-clip table, means, robustness, goals."""
    lines = ["# Quality on the paired evaluation set", "",
             f"Generated by `nightgrade evaluate` on {_now()} on {_machine()}.", ""]
    lines += _data_lines(results.eval_dir)
    lines += ["## Methods", ""]
    lines += [f"- **{m}**: {descriptions.get(m, 'no description given')}" for m in results.methods]
    lines += ["", "## Per clip", "",
              "PSNR and SSIM are means over frames (higher is better); flicker is mean "
              "|(O_t - O_t-1) - (G_t - G_t-1)| on [0, 1] sRGB values (lower is better).", "",
              "| clip | frames | method | PSNR (dB) | SSIM | flicker | s/frame |",
              "|---|---:|---|---:|---:|---:|---:|"]
    for s in results.scores:
        lines.append(f"| {s.clip} | {s.frames} | {s.method} | {_db(s.psnr)} | {s.ssim:.4f} | {s.flicker:.4f} "
                     f"| {s.seconds_per_frame:.3f} |")
    main = twins.main_clips(results.clips)
    lines += ["", f"## Mean over clips ({', '.join(main)})", "",
              "| method | PSNR (dB) | SSIM | flicker |", "|---|---:|---:|---:|"]
    for m in results.methods:
        p, q, f = _means(results, main, m)
        lines.append(f"| {m} | {_db(p)} | {q:.4f} | {f:.4f} |")
    lines += _robustness_lines(results)
    lines += _goal_lines(results, goals, main)
    lines += _temporal_lines(results, goals, main)
    return "\n".join(lines) + "\n"


def _robustness_lines(results: EvalResults) -> list[str]:
    pairs = [(parts[0], c) for c in results.clips
             if (parts := twins.split(c)) is not None and parts[0] in results.clips]
    lines = []
    for base, twin in pairs:
        lines += ["", f"## Robustness: {twins.describe(twin)}", "",
                  f"| method | PSNR {base} | PSNR {twin} | lost (dB) |", "|---|---:|---:|---:|"]
        for m in results.methods:
            a, b = results.score(base, m).psnr, results.score(twin, m).psnr
            lines.append(f"| {m} | {_db(a)} | {_db(b)} | {_db(a - b)} |")
    return lines


def _goal_lines(results: EvalResults, goals: GoalNames, main: list[str]) -> list[str]:
    if goals.ours not in results.methods:
        return []
    ours, ours_ssim, _ = _means(results, main, goals.ours)
    lines = ["", "## Goals (issue 14)", ""]
    for other, need in ((goals.classic, 3.0), (goals.histogram, 3.0), (goals.plain, 1.0)):
        if other in results.methods:
            gain = ours - _means(results, main, other)[0]
            lines.append(f"- {goals.ours} beats {other} by >= {need:g} dB mean PSNR: measured {gain:+.2f} dB, "
                         f"{'met' if gain >= need else 'MISSED'}")
    lines.append(f"- {goals.ours} mean SSIM >= 0.80: measured {ours_ssim:.4f}, {'met' if ours_ssim >= 0.8 else 'MISSED'}")
    for c in results.clips:
        parts = twins.split(c)
        base = parts[0] if parts else ""
        if parts and parts[1] == twins.DARK and base in results.clips:
            lost = results.score(base, goals.ours).psnr - results.score(c, goals.ours).psnr
            lines.append(f"- {goals.ours} loses <= 2 dB on {c}: lost {lost:.2f} dB, "
                         f"{'met' if lost <= 2.0 else 'MISSED'}")
    return lines


def _temporal_lines(results: EvalResults, goals: GoalNames, main: list[str]) -> list[str]:
    """Issue 5's goal on real footage: temporal on vs off, flicker ratio and PSNR change per clip."""
    if goals.ours not in results.methods or goals.temporal not in results.methods:
        return []
    lines = ["", f"## Temporal window: {goals.temporal} vs {goals.ours} (issue 5)", "",
             "| clip | flicker off | flicker on | ratio | PSNR change (dB) |", "|---|---:|---:|---:|---:|"]
    for c in results.clips:
        off, on = results.score(c, goals.ours), results.score(c, goals.temporal)
        lines.append(f"| {c} | {off.flicker:.4f} | {on.flicker:.4f} | {_ratio(on.flicker, off.flicker)} "
                     f"| {on.psnr - off.psnr:+.2f} |")
    off_f, on_f = _means(results, main, goals.ours)[2], _means(results, main, goals.temporal)[2]
    verdict = "met" if on_f <= 0.5 * off_f else "MISSED"
    lines += ["", f"- temporal on lowers the mean flicker error by >= 50% ({', '.join(main)}): ratio "
              f"{_ratio(on_f, off_f)}, {verdict}"]
    return lines


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b > 0 else "n/a (no flicker without it)"


def write_quality_report(results: EvalResults, path: str, descriptions: Mapping[str, str],
                         goals: GoalNames = GoalNames(), extra_lines: list[str] | None = None) -> None:
    """Write ``quality_markdown`` (plus ``extra_lines``) to ``path`` atomically."""
    text = quality_markdown(results, descriptions, goals)
    _write_text(path, text + ("\n".join(extra_lines) + "\n" if extra_lines else ""))


def contact_sheet(results: EvalResults, cell_width: int = 320) -> np.ndarray:
    """Rows: one frame per clip; columns: input | each method | ground truth, each under a label (uint8 RGB)."""
    rows = []
    for s in results.samples:
        height = max(1, round(s.input.shape[0] * cell_width / s.input.shape[1]))
        cells = [(f"{s.clip} {s.frame.split('.')[-2] if '.' in s.frame else s.frame} input", s.input)]
        cells += [(f"{m} {_db(s.psnr[m])} dB", s.outputs[m]) for m in results.methods]
        cells.append(("ground truth", s.truth))
        rows.append(np.concatenate([_labelled(label, img, cell_width, height) for label, img in cells], axis=1))
    return np.concatenate(rows, axis=0)


def write_contact_sheet(results: EvalResults, path: str, cell_width: int = 320) -> tuple[int, int]:
    """Write ``contact_sheet`` as an 8-bit PNG (atomically); return its (width, height)."""
    sheet = contact_sheet(results, cell_width).astype(np.float32) / np.float32(255.0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_frame(path, Frame.from_array(sheet, ("R", "G", "B"), depth="8"), WriteOptions(bit_depth="8"))
    return sheet.shape[1], sheet.shape[0]


def _labelled(label: str, rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    # uint8 throughout: OpenCV 5 draws text on 8-bit images only.
    cell = np.full((_LABEL_HEIGHT + height, width, 3), 30, dtype=np.uint8)
    small = cv2.resize(np.clip(rgb, 0.0, 1.0), (width, height), interpolation=cv2.INTER_AREA)
    cell[_LABEL_HEIGHT:] = np.round(small * 255.0).astype(np.uint8)
    cv2.putText(cell, label, (4, _LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)
    return cell


def _means(results: EvalResults, clips: list[str], method: str) -> tuple[float, float, float]:
    chosen = [results.score(c, method) for c in clips] or [s for s in results.scores if s.method == method]
    return (float(np.mean([s.psnr for s in chosen])), float(np.mean([s.ssim for s in chosen])),
            float(np.mean([s.flicker for s in chosen])))


def _data_lines(eval_dir: str) -> list[str]:
    manifest = os.path.join(os.path.dirname(eval_dir), "manifest.json")
    line = f"Data: `{os.path.basename(eval_dir)}`"
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as handle:
            info = json.load(handle)
        cam = info.get("camera", {})
        line += (f" from `nightgrade sample-data` (seed {info.get('seed')}): low frames made by the camera model "
                 f"(`colorpipeline/lowlight.py`) with {cam.get('stops')} stops, full well {cam.get('full_well')} e-, "
                 f"read noise {cam.get('read_noise')} e-, colour loss {cam.get('colour_loss')}, "
                 f"{cam.get('bits')}-bit; sources and licences in its manifest.json.")
    return [line, ""]


def read_frame_of(eval_dir: str, clip: str, half: str, name: str) -> np.ndarray:
    """Frame ``name`` of a clip's ``low`` or ``gt`` half as float32 sRGB RGB in [0, 1]."""
    return read_rgb(os.path.join(eval_dir, clip, half, name))


def read_rgb(path: str) -> np.ndarray:
    return np.array(read_frame(path).rgb, dtype=np.float32, copy=True)


def _images(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder)
                  if not n.startswith(".") and os.path.splitext(n)[1].lower() in (".png", ".exr", ".tif", ".tiff"))


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPU(s), {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}")


def _write_text(path: str, text: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_target(path) as temp, open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err


def report_progress(clip: str, done: int, total: int) -> None:
    """A rewritten line on a terminal; one line per finished clip in logs (no carriage returns there)."""
    if sys.stderr.isatty():
        print(f"\r{clip}: frame {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    elif done == total:
        print(f"{clip}: {total} frames scored", file=sys.stderr, flush=True)
