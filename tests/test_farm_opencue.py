"""OpenCue submission (server/farm/opencue.py, packaging/farm/nightgrade_cue_submit.py): the outline
is built and serialised to the job spec Cuebot receives, without a Cuebot; the layer command, run
through a shell with OpenCue's chunk tokens filled in, is a valid enhance call of that chunk and
renders it as a local render does."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.io.sequence import parse_frames
from nightgrade.colorpipeline.temporal.average import TemporalConfig
from nightgrade.server.cli.main import build_parser
from nightgrade.server.farm.opencue import CueJob, build_outline, chunk_command, job_spec
from nightgrade.server.render.pipeline import RenderOptions
from nightgrade.server.render.temporal import TemporalRenderConfig, render_temporal
from tests.conftest import read_image, write_image

pytestmark = pytest.mark.usefixtures("one_thread")  # the chunk process runs one thread too

SCRIPT = Path(__file__).resolve().parent.parent / "packaging" / "farm" / "nightgrade_cue_submit.py"
BIN = Path(sys.executable).parent


def _layer(spec: str) -> ET.Element:
    (layer,) = ET.fromstring(spec).find("job").find("layers")
    return layer


def _filled(command: str, start: int, end: int) -> str:
    """What Cuebot dispatches for a chunk: its tokens replaced by the chunk's frames."""
    return command.replace("#FRAME_START#", str(start)).replace("#FRAME_END#", str(end))


def _argv(command: str, tmp_path: Path) -> list[str]:
    """The argv the shell hands to nightgrade, captured by a stand-in executable."""
    echo = tmp_path / "argv.sh"
    echo.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    echo.chmod(0o755)
    _, rest = command.split(" ", 1)
    done = subprocess.run(["/bin/sh", "-c", f"{shlex.quote(str(echo))} {rest}"], capture_output=True, text=True,
                          check=True)
    return done.stdout.splitlines()


def test_outline_serialises_to_a_chunked_gpu_layer(tmp_path: Path) -> None:
    job = CueJob("plates/sh 010.####.exr", "/renders/sh010/", "1001-1010", chunk_size=4,
                 weights="/models/n.safetensors",
                 radius=3, cache_dir="/cache/sh010", name="sh010_enhance", show="night", shot="sh010", user="td",
                 tags=("gpu", "cuda12"), gpu_memory="24g", cores=4, extra_args=("--bit-depth", "half"))
    ol = build_outline(job)
    assert [layer.get_name() for layer in ol.get_layers()] == ["enhance"]
    root = ET.fromstring(job_spec(job))
    assert (root.findtext("show"), root.findtext("shot"), root.findtext("user")) == ("night", "sh010", "td")
    assert root.find("job").get("name") == "sh010_enhance"
    layer = _layer(job_spec(job))
    assert (layer.get("name"), layer.get("type")) == ("enhance", "Render")
    assert (layer.findtext("range"), layer.findtext("chunk")) == ("1001-1010", "4")
    assert (layer.findtext("gpus"), layer.findtext("gpu_memory"), layer.findtext("cores")) == ("1", "24g", "4.0")
    assert (layer.findtext("memory"), layer.findtext("tags")) == ("32g", "gpu | cuda12")
    assert layer.find("services").findtext("service") == "nightgrade"
    assert layer.findtext("cmd") == chunk_command(job)

    # the last chunk, from a Cuebot that puts #FRAME_END# past the range: clamped to 1010
    argv = _argv(_filled(chunk_command(job), 1009, 1012), tmp_path)
    args = build_parser().parse_args(argv)
    assert (args.command, args.input, args.output, args.frames) == (
        "enhance", os.path.abspath("plates/sh 010.####.exr"), "/renders/sh010/", "1009-1010")
    assert (args.weights, args.temporal, args.radius, args.cache_dir) == ("/models/n.safetensors", True, 3,
                                                                          "/cache/sh010")
    assert args.bit_depth == "half" and args.device == "auto"
    assert build_parser().parse_args(_argv(_filled(chunk_command(job), 1005, 1008), tmp_path)).frames == "1005-1008"


def test_cpu_layer_and_no_temporal(tmp_path: Path) -> None:
    job = CueJob("/in/a.####.exr", "/out/a.####.exr", "1-3", radius=0, gpus=0, tags=("cpu",), memory=None,
                 device="cpu", cache_dir="/ignored/without/temporal")
    layer = _layer(job_spec(job))
    assert layer.find("gpus") is None and layer.find("memory") is None and layer.findtext("tags") == "cpu"
    args = build_parser().parse_args(_argv(_filled(chunk_command(job), 1, 3), tmp_path))
    assert (args.temporal, args.cache_dir, args.device, args.frames) == (False, None, "cpu", "1-3")


@pytest.mark.parametrize("fields, message", [
    ({"frames": "10-1"}, "ends before it starts"),
    ({"chunk_size": 0}, "chunk_size 0"),
    ({"radius": 7}, "radius 7"),
    ({"tags": ("gpu-a",)}, "not alphanumeric"),
])
def test_job_validation(fields: dict, message: str) -> None:
    base = {"input": "/a.####.exr", "output": "/b/", "frames": "1-10"}
    with pytest.raises(UsageError, match=message):
        CueJob(**(base | fields))


def test_a_chunk_command_renders_like_a_local_render(tmp_path: Path, tiny_weights: str) -> None:
    rng = np.random.default_rng(2)
    base = cv2.GaussianBlur(rng.random((40, 70, 3), dtype=np.float32), (0, 0), 2.0) * 0.3
    (tmp_path / "in").mkdir()
    for f in range(1, 6):
        write_image(tmp_path / "in" / f"s.{f:04d}.exr", np.ascontiguousarray(base[:, f:f + 56]), "float",
                    ("R", "G", "B"), {"oiio:ColorSpace": "srgb_rec709_scene"})
    src, out = str(tmp_path / "in" / "s.####.exr"), tmp_path / "cue"
    local = RenderOptions(src, str(tmp_path / "local" / "o.####.exr"), weights=tiny_weights, bit_depth="float",
                          batch=4)
    render_temporal(local, TemporalRenderConfig(window=TemporalConfig(radius=1)), show_progress=False)
    job = CueJob(src, str(out / "o.####.exr"), "1-5", chunk_size=2, weights=tiny_weights, radius=1, gpus=0,
                 device="cpu", command=str(BIN / "nightgrade"), extra_args=("--bit-depth", "float", "--batch", "4"))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run(["/bin/sh", "-c", _filled(chunk_command(job), 5, 6)], check=True, env=env, capture_output=True,
                   timeout=240)
    assert sorted(os.listdir(out)) == ["o.0005.exr"]
    np.testing.assert_allclose(read_image(out / "o.0005.exr")[0], read_image(tmp_path / "local" / "o.0005.exr")[0],
                               atol=1e-6)


def test_submit_script_dry_run_and_no_cuebot(tmp_path: Path) -> None:
    env = os.environ | {"OUTLINE_OUTLINE_SESSION_DIR": str(tmp_path / "sessions"), "CUEBOT_HOSTS": "127.0.0.1:9"}
    args = [sys.executable, str(SCRIPT), "/in/a.####.exr", "/out/", "--frames", "1-20", "--chunk-size", "5",
            "--tags", "gpu|a100"]
    extra = ["--", "--input-colorspace", "ACEScg"]
    dry = subprocess.run(args + ["--dry-run"] + extra, capture_output=True, text=True, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    layer = _layer(dry.stdout)
    assert (layer.findtext("chunk"), layer.findtext("tags")) == ("5", "gpu | a100")
    assert "--input-colorspace ACEScg" in layer.findtext("cmd")
    # without --dry-run it submits: with no Cuebot there, one line and the service exit code
    failed = subprocess.run(args + extra, capture_output=True, text=True, env=env, timeout=120)
    assert failed.returncode == 7
    assert failed.stderr.count("\n") == 1 and "CUEBOT_HOSTS" in failed.stderr


def test_stepped_ranges_are_sent_in_opencue_spelling_and_need_chunks_of_one() -> None:
    """Issue 19 item 5: OpenJD's ``:2`` step becomes OpenCue's ``x2``; a chunk of a stepped range
    would render the skipped frames (#FRAME_START#-#FRAME_END#), so it is refused."""
    job = CueJob("/p/a.####.exr", "/r/b.####.exr", "1001-1006:2,1010", chunk_size=1, radius=0)
    assert job.frame_spec == "1001-1005x2,1010" and job.last_frame == 1010
    assert parse_frames(_layer(job_spec(job)).find("range").text) == (1001, 1003, 1005, 1010)  # PyOutline read it
    with pytest.raises(UsageError, match="chunk_size 1"):
        CueJob("/p/a.####.exr", "/r/b.####.exr", "1001-1006x2", chunk_size=10)
