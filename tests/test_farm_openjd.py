"""The Open Job Description template (packaging/farm/nightgrade-enhance.yaml): `openjd check`
validates it, and `openjd run` renders a small sequence in chunks, each chunk reading its own
temporal handles, to the same pixels as one local render."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nightgrade.colorpipeline.temporal.average import TemporalConfig
from nightgrade.server.render.pipeline import RenderOptions, render_sequence
from nightgrade.server.render.temporal import TemporalRenderConfig, render_temporal
from tests.conftest import read_image, write_image

pytestmark = pytest.mark.usefixtures("one_thread")  # workers and tasks run one thread too

TEMPLATE = Path(__file__).resolve().parent.parent / "packaging" / "farm" / "nightgrade-enhance.yaml"
BIN = Path(sys.executable).parent
WORKING = {"oiio:ColorSpace": "srgb_rec709_scene"}


def _openjd(*args: str) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(BIN / "openjd"), *args, "--output", "json"], capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def _sequence(folder: Path, count: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    base = cv2.GaussianBlur(rng.random((48, 90, 3), dtype=np.float32), (0, 0), 2.0)
    for i in range(count):
        frame = np.ascontiguousarray(base[4:44, 2 * i:2 * i + 56]) * 0.3  # a pan: the window has work to do
        write_image(folder / f"s.{i + 1:04d}.exr", frame, "float", ("R", "G", "B"), WORKING)
    return str(folder / "s.####.exr")


def _params(src: str, out: Path, weights: str, frames: str, chunk: int, radius: int) -> list[str]:
    values = {"Input": src, "Output": str(out / "o.####.exr"), "Frames": frames, "ChunkSize": chunk,
              "Weights": weights, "TemporalRadius": radius, "Device": "cpu",
              "ExtraArgs": "--bit-depth float --batch 4", "NightgradeCommand": str(BIN / "nightgrade")}
    return [item for key, value in values.items() for item in ("-p", f"{key}={value}")]


def _pixels(out: Path, frames) -> np.ndarray:
    return np.stack([read_image(out / f"o.{f:04d}.exr")[0] for f in frames])


def test_template_passes_openjd_check_and_chunks_the_range() -> None:
    assert _openjd("check", str(TEMPLATE))["status"] == "success"
    summary = _openjd("summary", str(TEMPLATE), "-p", "Input=/plates/a.####.exr", "-p", "Output=/out/b.####.exr",
                      "-p", "Frames=1001-1100")
    names = {p["name"] for p in summary["parameter_definitions"]}
    assert {"Input", "Output", "Frames", "ChunkSize", "Weights", "TemporalRadius", "Device"} <= names
    (step,) = summary["steps"]
    assert step["parameter_definitions"] == [{"name": "Frame", "type": "CHUNK[INT]"}]


def test_openjd_run_in_temporal_chunks_equals_one_local_render(tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in", 8)
    local = RenderOptions(src, str(tmp_path / "local" / "o.####.exr"), weights=tiny_weights, bit_depth="float",
                          batch=4, frames="2-8")
    render_temporal(local, TemporalRenderConfig(window=TemporalConfig(radius=2)), show_progress=False)
    # chunks 2-4, 5-7, 8: each reads two handle frames past its ends, where the sequence goes on (1 and 9 do not)
    result = _openjd("run", str(TEMPLATE), *_params(src, tmp_path / "farm", tiny_weights, "2-8", 3, 2))
    assert result["status"] == "success" and result["chunks_run"] == 3
    assert sorted(os.listdir(tmp_path / "farm")) == [f"o.{f:04d}.exr" for f in range(2, 9)]
    np.testing.assert_allclose(_pixels(tmp_path / "farm", range(2, 9)), _pixels(tmp_path / "local", range(2, 9)),
                               atol=1e-6)


def test_openjd_run_radius_zero_is_the_per_frame_path(tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in", 3)
    render_sequence(RenderOptions(src, str(tmp_path / "local" / "o.####.exr"), weights=tiny_weights,
                                  bit_depth="float", batch=4), show_progress=False)
    result = _openjd("run", str(TEMPLATE), *_params(src, tmp_path / "farm", tiny_weights, "1-3", 5, 0))
    assert result["chunks_run"] == 1
    np.testing.assert_allclose(_pixels(tmp_path / "farm", range(1, 4)), _pixels(tmp_path / "local", range(1, 4)),
                               atol=1e-6)


def test_openjd_steps_and_colourspace_names_with_spaces(tmp_path: Path, tiny_weights: str) -> None:
    """Issue 19 items 4-5: an OpenJD step range renders only its frames, and colourspace names with
    spaces reach nightgrade whole, as parameters and quoted inside ExtraArgs."""
    src = _sequence(tmp_path / "in", 5)
    linear = "Linear Rec.709 (sRGB)"
    render_sequence(RenderOptions(src, str(tmp_path / "local" / "o.####.exr"), weights=tiny_weights, frames="1-5x2",
                                  bit_depth="float", batch=4, input_colorspace=linear, output_colorspace="ACEScg"),
                    show_progress=False)
    params = _params(src, tmp_path / "farm", tiny_weights, "1-5:2", 2, 0)
    params[params.index("ExtraArgs=--bit-depth float --batch 4")] = \
        "ExtraArgs=--bit-depth float --batch 4 --output-colorspace 'ACEScg'"
    result = _openjd("run", str(TEMPLATE), *params, "-p", f"InputColorspace={linear}")
    assert result["status"] == "success" and result["chunks_run"] == 2  # (1, 3) and (5)
    assert sorted(os.listdir(tmp_path / "farm")) == ["o.0001.exr", "o.0003.exr", "o.0005.exr"]
    np.testing.assert_allclose(_pixels(tmp_path / "farm", (1, 3, 5)), _pixels(tmp_path / "local", (1, 3, 5)),
                               atol=1e-6)
    # a quoted name with spaces in ExtraArgs stays one argument
    params = _params(src, tmp_path / "farm2", tiny_weights, "1", 1, 0)
    params[params.index("ExtraArgs=--bit-depth float --batch 4")] = \
        f'ExtraArgs=--bit-depth float --input-colorspace "{linear}" --output-colorspace ACEScg'
    assert _openjd("run", str(TEMPLATE), *params)["status"] == "success"
    np.testing.assert_allclose(_pixels(tmp_path / "farm2", (1,)), _pixels(tmp_path / "local", (1,)), atol=1e-6)
