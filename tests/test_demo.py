"""The shipped model and sample clip, and `nightgrade demo` (README's main command) on part of the clip."""
from __future__ import annotations

import json

from pathlib import Path

import numpy as np

from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.colorpipeline.io.sequence import resolve_input
from nightgrade.colorpipeline.luma import REC709_LUMA
from nightgrade.models.checkpoint import load_checkpoint
from nightgrade.server.cli.main import main
from nightgrade.server.render.defaults import resolve_weights, sample_clip_pattern


def test_shipped_model_is_valid_and_small() -> None:
    path = Path(resolve_weights(None))
    assert path.stat().st_size <= 20 * 2**20
    meta = load_checkpoint(path).meta
    assert meta.generator.in_channels == 6
    assert meta.colorspace == "sRGB Encoded Rec.709 (sRGB)"
    assert meta.training["steps"] > 0 and meta.training["mode"] == "paired" and meta.training["clean_frames"] > 0
    g = meta.generator  # the tile-consistent design (issue 14)
    assert (g.norm, g.skips, g.residual, g.exposure) == ("none", True, True, True)
    assert "/" not in json.dumps(meta.training)  # no machine paths


def test_shipped_clip_is_a_dark_sequence() -> None:
    spec = resolve_input(sample_clip_pattern())
    assert len(spec.frames) == 24
    frame = read_frame(spec.path_for(spec.frames[0]))
    assert (frame.width, frame.height) == (640, 272)
    assert float(frame.rgb.mean()) < 0.25


def test_demo_brightens_the_clip(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), "--frames", "150-151", "--radius", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "contact sheet" in out
    assert "temporal window on (radius 1" in out and "generator passes per frame" in out
    sheet = read_frame(str(tmp_path / "contact-sheet.png"))
    assert sheet.width == 960  # input | enhanced, 480 px each
    for number in (150, 151):
        before = read_frame(sample_clip_pattern().replace("####", f"{number:04d}")).rgb
        after = read_frame(str(tmp_path / "enhanced" / f"night_bikes.{number:04d}.png")).rgb
        assert after.shape == before.shape
        # a trained low->normal model must lift a 3-stops-under clip clearly
        assert float((after @ REC709_LUMA).mean()) > 1.5 * float((before @ REC709_LUMA).mean())


def test_demo_rerun_renders_afresh_with_the_new_settings(tmp_path: Path, capsys) -> None:
    """Issue 19 item 1: a second demo into the same folder (with another radius) used to crash with
    KeyError 'device' because every frame was kept; it must render again with the settings given."""
    args = ["demo", "--out", str(tmp_path), "--frames", "150", "--device", "cpu"]
    assert main(args + ["--radius", "1"]) == 0
    result = tmp_path / "enhanced" / "night_bikes.0150.png"
    temporal = read_frame(str(result)).rgb
    capsys.readouterr()
    assert main(args + ["--radius", "0"]) == 0
    out = capsys.readouterr().out
    assert "temporal window off" in out and "1 frames" in out
    per_frame = read_frame(str(result)).rgb
    assert float(np.abs(per_frame - temporal).max()) > 1e-3  # the file was rendered again, without the window
