"""Resumable renders (server/farm/resume.py, render.py, temporal_render.py): frames already written
and complete are kept, anything missing, damaged or from another render is rendered again, and the
result equals a render from scratch."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from nightgrade.colorpipeline.io import imageio
from nightgrade.colorpipeline.temporal.average import TemporalConfig
from nightgrade.server.cli.main import main
from nightgrade.server.farm.resume import ExpectedOutput, expected_output, output_is_complete
from nightgrade.server.render import pipeline as render
from nightgrade.server.render.pipeline import RenderOptions, render_sequence
from nightgrade.server.render.temporal import TemporalRenderConfig, render_temporal
from tests.conftest import read_image, write_image

pytestmark = pytest.mark.usefixtures("one_thread")  # workers and tasks run one thread too

WORKING = {"oiio:ColorSpace": "srgb_rec709_scene"}


def _sequence(folder: Path, count: int = 5, size: tuple[int, int] = (40, 56), first: int = 1) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.random((size[0], size[1], 3), dtype=np.float32), (0, 0), 2.0)
    for i in range(count):
        frame = np.roll(base, i, axis=1) * 0.3
        write_image(folder / f"s.{first + i:04d}.exr", frame, "float", ("R", "G", "B"), WORKING)
    return str(folder / "s.####.exr")


def _opts(src: str, out: Path, weights: str, **extra) -> RenderOptions:
    return RenderOptions(src, str(out / "o.####.exr"), weights=weights, bit_depth="float", batch=4, **extra)


def _pixels(out: Path, frames) -> np.ndarray:
    return np.stack([read_image(out / f"o.{f:04d}.exr")[0] for f in frames])


def _damage(out: Path) -> None:
    """Frame 2 missing, frame 3 truncated, frame 4 the wrong size; 1 and 5 complete."""
    os.remove(out / "o.0002.exr")
    third = out / "o.0003.exr"
    third.write_bytes(third.read_bytes()[: third.stat().st_size // 2])
    write_image(out / "o.0004.exr", np.zeros((20, 28, 3), np.float32), "float", ("R", "G", "B"))


def test_rerun_keeps_complete_frames_and_redoes_the_rest(tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in")
    reference = render_sequence(_opts(src, tmp_path / "ref", tiny_weights), show_progress=False)
    assert (reference["frames_written"], reference["frames_skipped"]) == (5, 0)
    out = tmp_path / "out"
    render_sequence(_opts(src, out, tiny_weights), show_progress=False)
    _damage(out)
    kept = {f: (out / f"o.{f:04d}.exr").stat().st_ino for f in (1, 5)}
    summary = render_sequence(_opts(src, out, tiny_weights), show_progress=False)
    assert (summary["frames_written"], summary["frames_skipped"]) == (3, 2)
    assert {f: (out / f"o.{f:04d}.exr").stat().st_ino for f in (1, 5)} == kept  # untouched
    np.testing.assert_allclose(_pixels(out, range(1, 6)), _pixels(tmp_path / "ref", range(1, 6)), atol=1e-6)
    again = render_sequence(_opts(src, out, tiny_weights, overwrite=True), show_progress=False)
    assert (again["frames_written"], again["frames_skipped"]) == (5, 0)
    assert (out / "o.0001.exr").stat().st_ino != kept[1]


def test_a_finished_render_loads_no_model(tmp_path: Path, tiny_weights: str, monkeypatch) -> None:
    src = _sequence(tmp_path / "in", count=3)
    render_sequence(_opts(src, tmp_path / "out", tiny_weights), show_progress=False)

    def no_model(opts):
        raise AssertionError("the model was loaded although every frame is complete")

    monkeypatch.setattr(render, "load_engine", no_model)
    summary = render_sequence(_opts(src, tmp_path / "out", tiny_weights), show_progress=False)
    assert (summary["frames_written"], summary["frames_skipped"], summary["frames"]) == (0, 3, [1, 3])
    monkeypatch.undo()  # frames made without the temporal window are not what a temporal render makes
    window = TemporalRenderConfig(window=TemporalConfig(radius=1))
    temporal = render_temporal(_opts(src, tmp_path / "out", tiny_weights), window, show_progress=False)
    assert (temporal["frames_written"], temporal["frames_skipped"], temporal["frames_rerendered"]) == (3, 0, 3)
    assert temporal["rerender_reason"].startswith("frame 1: temporal null -> ")
    monkeypatch.setattr(render, "load_engine", no_model)
    temporal = render_temporal(_opts(src, tmp_path / "out", tiny_weights), window, show_progress=False)
    assert (temporal["frames_written"], temporal["frames_skipped"]) == (0, 3)


def test_crash_mid_render_leaves_whole_frames_and_resumes(tmp_path: Path, tiny_weights: str, monkeypatch) -> None:
    src = _sequence(tmp_path / "in")
    render_sequence(_opts(src, tmp_path / "ref", tiny_weights), show_progress=False)
    written: list[str] = []
    original = imageio._write_atomically

    def crash_on_third(path, spec, pixels):
        if len(written) == 2:  # dies inside the third write, after its temp file was opened
            raise KeyboardInterrupt
        written.append(path)
        original(path, spec, pixels)

    monkeypatch.setattr(imageio, "_write_atomically", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        render_sequence(_opts(src, tmp_path / "out", tiny_weights), show_progress=False)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "out")) == ["o.0001.exr", "o.0002.exr"]
    summary = render_sequence(_opts(src, tmp_path / "out", tiny_weights), show_progress=False)
    assert (summary["frames_written"], summary["frames_skipped"]) == (3, 2)
    np.testing.assert_allclose(_pixels(tmp_path / "out", range(1, 6)), _pixels(tmp_path / "ref", range(1, 6)),
                               atol=1e-6)


def test_temporal_resume_gives_each_frame_its_whole_window(tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in", count=7)
    window = TemporalRenderConfig(window=TemporalConfig(radius=2))
    render_temporal(_opts(src, tmp_path / "ref", tiny_weights), window, show_progress=False)
    out = tmp_path / "out"
    render_temporal(_opts(src, out, tiny_weights, frames="1-7"), window, show_progress=False)
    for f in (2, 6):
        os.remove(out / f"o.{f:04d}.exr")
    summary = render_temporal(_opts(src, out, tiny_weights, frames="1-7"), window, show_progress=False)
    assert (summary["frames_written"], summary["frames_skipped"]) == (2, 5)
    assert summary["generator_passes"] == 7  # frames 1-7 feed the windows of 2 and 6, each enhanced once
    np.testing.assert_allclose(_pixels(out, range(1, 8)), _pixels(tmp_path / "ref", range(1, 8)), atol=1e-6)


def test_expected_output_follows_format_scale_and_channels(tmp_path: Path) -> None:
    header = oiio.ImageSpec(200, 100, 5, "half")
    header.channelnames = ("Z", "R", "G", "B", "A")
    header.x, header.y = 10, 6  # a data window inside a larger display window
    header.full_width, header.full_height = 240, 120
    exr = expected_output(str(tmp_path / "o.exr"), header, 0.5)
    assert exr == ExpectedOutput(100, 50, ("Z", "R", "G", "B", "A"), True)
    tif = expected_output(str(tmp_path / "o.tif"), header, 0.5)  # TIFF places it in the display window
    assert tif == ExpectedOutput(120, 60, ("R", "G", "B", "A", "Z"), False)

    path = tmp_path / "f.exr"
    write_image(path, np.zeros((50, 100, 5), np.float32), "half", ("Z", "R", "G", "B", "A"))
    assert output_is_complete(str(path), exr)
    assert output_is_complete(str(path), ExpectedOutput(100, 50, ("R", "G", "B", "A", "Z"), True))  # any order
    assert not output_is_complete(str(path), ExpectedOutput(100, 50, ("R", "G", "B", "A", "Y"), True))
    assert not output_is_complete(str(path), ExpectedOutput(100, 50, ("R", "G", "B", "A"), False))
    assert not output_is_complete(str(path), ExpectedOutput(200, 100, exr.channels, True))
    assert not output_is_complete(str(tmp_path / "absent.exr"), exr)
    (tmp_path / "junk.exr").write_bytes(b"not an image at all")
    assert not output_is_complete(str(tmp_path / "junk.exr"), exr)


def test_proxy_frames_are_not_taken_for_full_size_ones(tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in", count=2)
    render_sequence(_opts(src, tmp_path / "out", tiny_weights, scale=0.5), show_progress=False)
    summary = render_sequence(_opts(src, tmp_path / "out", tiny_weights), show_progress=False)
    assert (summary["frames_written"], summary["frames_skipped"]) == (2, 0)
    assert read_image(tmp_path / "out" / "o.0001.exr")[0].shape == (40, 56, 3)


def test_cli_reports_skipped_frames_and_overwrite(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", count=3)
    args = ["enhance", src, str(tmp_path / "out" / "o.####.exr"), "-w", tiny_weights, "--batch", "4"]
    assert main(args + ["--frames", "1-2", "--json"]) == 0
    capsys.readouterr()
    assert main(args + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["frames_written"], summary["frames_skipped"]) == (1, 2)
    assert main(args) == 0
    line = capsys.readouterr().out
    assert "wrote 0 frame(s)" in line and "kept 3 complete" in line
    assert main(args + ["--overwrite", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["frames_written"], summary["frames_skipped"]) == (3, 0)
