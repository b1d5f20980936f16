"""`nightgrade evaluate`: scores per clip and method, the markdown report and the contact sheet."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest

from nightgrade.colorpipeline.errors import InputError, ModelError
from nightgrade.colorpipeline.evaluation.metrics import flicker_error, psnr, ssim
from nightgrade.colorpipeline.io.frame import Frame
from nightgrade.colorpipeline.io.imageio import WriteOptions, read_frame, read_header, write_frame
from nightgrade.server.cli import evaluate as evaluate_cli
from nightgrade.server.evaluation import evaluate as ev

CLIPS = {"a": (4, 48, 64), "a_dark2": (4, 48, 64), "b": (3, 40, 56)}  # frames, height, width


def _truth(clip: str, t: int, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    shift = 2.0 * t + (0.0 if clip.startswith("a") else 5.0)
    frame = np.stack([0.5 + 0.25 * np.sin((x + shift) / 6.0 + c) * np.cos(y / 9.0) for c in range(3)], axis=-1)
    return frame.astype(np.float32)  # within [0.25, 0.75]: offsets of 0.05 never clip


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_frame(str(path), Frame.from_array(rgb, ("R", "G", "B"), depth="float"), WriteOptions(bit_depth="float"))


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    for clip, (frames, height, width) in CLIPS.items():
        gain = 0.25 if clip.endswith("dark2") else 0.5
        for t in range(frames):
            truth = _truth(clip, t, height, width)
            _write(root / clip / "gt" / f"frame.{t + 1:04d}.exr", truth)
            _write(root / clip / "low" / f"frame.{t + 1:04d}.exr", truth * np.float32(gain))
    (root / "notes").mkdir()  # not a clip: no low/ and gt/
    reference = _truth("a", 9, 48, 64)
    write_frame(str(root / "reference.png"), Frame.from_array(reference, ("R", "G", "B"), depth="8"),
                WriteOptions(bit_depth="8"))
    return root


class Oracle:
    """A 'perfect' method: returns each clip's ground truth in order, so it relies on ``reset`` per clip."""

    def __init__(self, offsets: tuple[float, float] = (0.0, 0.0)) -> None:
        self.order = sorted(CLIPS)
        self.clip_index, self.t, self.resets = -1, 0, 0
        self.offsets = offsets

    def reset(self) -> None:
        self.clip_index += 1
        self.t = 0
        self.resets += 1

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        clip = self.order[self.clip_index]
        _, height, width = CLIPS[clip]
        out = _truth(clip, self.t, height, width) + np.float32(self.offsets[self.t % 2])
        self.t += 1
        return out


def test_finds_clips_with_matching_low_and_gt(eval_dir: Path) -> None:
    clips = ev.find_clips(str(eval_dir))
    assert list(clips) == ["a", "a_dark2", "b"]
    assert clips["b"] == ["frame.0001.exr", "frame.0002.exr", "frame.0003.exr"]


def test_perfect_identity_and_flickering_methods_score_as_expected(eval_dir: Path) -> None:
    perfect, pumping = Oracle(), Oracle((-0.05, 0.05))
    results = ev.evaluate(str(eval_dir), {"identity": ev.identity, "perfect": perfect, "pumping": pumping})
    assert perfect.resets == 3 and pumping.resets == 3
    assert results.clips == ("a", "a_dark2", "b") and results.methods == ("identity", "perfect", "pumping")
    for clip in results.clips:
        best = results.score(clip, "perfect")
        assert math.isinf(best.psnr) and best.ssim == pytest.approx(1.0) and best.flicker == 0.0
        assert results.score(clip, "pumping").flicker == pytest.approx(0.1, abs=1e-5)
    frames, height, width = CLIPS["b"]
    truths = [_truth("b", t, height, width) for t in range(frames)]
    lows = [np.float32(0.5) * g for g in truths]
    score = results.score("b", "identity")
    assert score.frames == 3
    assert score.psnr == pytest.approx(np.mean([psnr(lo, g) for lo, g in zip(lows, truths)]), abs=1e-4)
    assert score.ssim == pytest.approx(np.mean([ssim(lo, g) for lo, g in zip(lows, truths)]), abs=1e-5)
    assert score.flicker == pytest.approx(flicker_error(lows, truths), abs=1e-6)


def test_max_frames_limits_each_clip(eval_dir: Path) -> None:
    results = ev.evaluate(str(eval_dir), {"identity": ev.identity}, max_frames=2)
    assert {s.frames for s in results.scores} == {2}
    assert [s.frame for s in results.samples] == ["frame.0002.exr"] * 3  # the middle frame is kept


def test_report_has_tables_robustness_and_goals(eval_dir: Path, tmp_path: Path) -> None:
    methods = {"identity": ev.identity, "histogram-match": lambda f: f * np.float32(1.6), "nightgrade": Oracle()}
    results = ev.evaluate(str(eval_dir), methods)
    path = tmp_path / "docs" / "quality.md"
    ev.write_quality_report(results, str(path), {"nightgrade": "ours"})
    text = path.read_text()
    assert "| clip | frames | method | PSNR (dB) | SSIM | flicker | s/frame |" in text
    assert text.count("| a_dark2 | 4 |") == 3 and "- **nightgrade**: ours" in text
    assert "## Mean over clips (a, b)" in text
    assert "## Robustness: a_dark2 is a 2 stop(s) darker" in text
    assert "nightgrade beats histogram-match by >= 3 dB mean PSNR: measured +inf dB, met" in text
    assert "nightgrade loses <= 2 dB on a_dark2" in text
    assert "cyclegan-3ch" not in text  # goals only for methods that ran


def test_no_goals_without_our_model(eval_dir: Path) -> None:
    results = ev.evaluate(str(eval_dir), {"identity": ev.identity}, max_frames=2)
    assert "## Goals" not in ev.quality_markdown(results, ev.BASELINE_DESCRIPTIONS)


def test_contact_sheet_size_and_cells(eval_dir: Path, tmp_path: Path) -> None:
    results = ev.evaluate(str(eval_dir), {"identity": ev.identity, "perfect": Oracle()})
    path = tmp_path / "sheet.png"
    width, height = ev.write_contact_sheet(results, str(path), cell_width=100)
    rows = [round(h * 100 / w) for _, h, w in (CLIPS[c] for c in results.clips)]
    assert (width, height) == (4 * 100, sum(22 + r for r in rows))
    header = read_header(str(path))
    assert (header.width, header.height, header.nchannels) == (width, height, 3)
    sheet = np.array(read_frame(str(path)).rgb)
    # Row 1: the perfect column (third) shows the same picture as the ground truth (fourth).
    np.testing.assert_allclose(sheet[22:22 + rows[0], 200:300], sheet[22:22 + rows[0], 300:400], atol=1 / 255)
    assert sheet[2:20, 0:100].max() > 0.9  # a label was drawn


def test_bad_method_output_is_a_model_error(eval_dir: Path) -> None:
    with pytest.raises(ModelError, match="method crop returned shape"):
        ev.evaluate(str(eval_dir), {"crop": lambda f: f[:-1]})
    with pytest.raises(ModelError, match="NaN"):
        ev.evaluate(str(eval_dir), {"nan": lambda f: f * np.float32(np.nan)})


def test_missing_or_mismatched_clips_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        ev.find_clips(str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="holds no clip"):
        ev.find_clips(str(tmp_path))
    _write(tmp_path / "c" / "low" / "frame.0001.exr", np.zeros((8, 8, 3), np.float32))
    _write(tmp_path / "c" / "gt" / "frame.0002.exr", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError, match="low/ and gt/ differ"):
        ev.find_clips(str(tmp_path))


def _args(eval_dir: Path, out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    return parser.parse_args([str(eval_dir), "--out", str(out / "quality.md"), "--sheet", str(out / "sheet.png"),
                              "--quiet", *extra])


def test_run_scores_baselines_and_the_callers_models(eval_dir: Path, tmp_path: Path) -> None:
    assert evaluate_cli.run(_args(eval_dir, tmp_path, "--max-frames", "2"), {"nightgrade": Oracle()},
                  {"nightgrade": "the shipped model"}) == 0
    text = (tmp_path / "quality.md").read_text()
    for method in ("identity", "histogram-match", "gamma-clahe-nlm", "nightgrade"):
        assert f"| b | 2 | {method} |" in text
    assert "- **nightgrade**: the shipped model" in text
    assert read_header(str(tmp_path / "sheet.png")).width == 6 * 320


def test_run_baselines_only_skips_models_and_needs_a_reference(eval_dir: Path, tmp_path: Path) -> None:
    evaluate_cli.run(_args(eval_dir, tmp_path, "--max-frames", "2", "--baselines-only"), {"nightgrade": Oracle()})
    assert "nightgrade" not in (tmp_path / "quality.md").read_text().split("## Methods")[1]
    with pytest.raises(InputError, match="reference"):
        evaluate_cli.run(_args(eval_dir, tmp_path, "--reference", str(tmp_path / "missing.png")))


class Smoother:
    """A whole-clip method: each output frame is the mean of the input frames around it."""

    whole_clip = True

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        return [np.mean(frames[max(0, t - 1):t + 2], axis=0) * 2.0 for t in range(len(frames))]


def test_whole_clip_methods_get_every_frame_once_and_the_temporal_section(eval_dir: Path, tmp_path: Path) -> None:
    smoother = Smoother()
    evaluate_cli.run(_args(eval_dir, tmp_path, "--max-frames", "3", "--models-only"),
           {"nightgrade": lambda frame: frame * 2.0, "nightgrade-temporal": smoother})
    text = (tmp_path / "quality.md").read_text()
    assert smoother.calls == len(CLIPS)
    assert "histogram-match" not in text
    assert "## Temporal window: nightgrade-temporal vs nightgrade (issue 5)" in text
    assert "temporal on lowers the mean flicker error by >= 50%" in text
