"""One enhanced-frame cache key for the CLI, farm chunks and the daemon (issue 15): a folder that a
CLI render filled with ``--cache-dir`` serves a daemon started with the same ``--cache-dir``, and the
other way round, with no generator pass."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.server import protocol as proto
from nightgrade.server.cli.main import main
from nightgrade.server.client import Client, RenderRequest
from nightgrade.server.daemon.server import DaemonConfig
from tests.conftest import serving, write_image

LINEAR = "Linear Rec.709 (sRGB)"
pytestmark = pytest.mark.usefixtures("one_thread")


def _sequence(folder: Path, frames: int = 3, height: int = 48, width: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    paths = []
    for t in range(frames):
        rgba = np.concatenate([rng.random((height, width, 3), dtype=np.float32) * 0.2,
                               np.full((height, width, 1), 0.5, np.float32)], axis=2)
        paths.append(folder / f"shot.{t + 1:04d}.exr")
        write_image(paths[-1], rgba, pixel_type="float")
    return paths


def test_a_cache_folder_filled_by_the_cli_serves_the_daemon_and_back(tiny_weights, tmp_path, capsys):
    paths = _sequence(tmp_path / "in")
    cache = tmp_path / "cache"
    common = ["--weights", tiny_weights, "--device", "cpu", "--input-colorspace", LINEAR, "--bit-depth", "float",
              "--temporal", "--radius", "1", "--cache-dir", str(cache), "--json", "--quiet"]
    assert main(["enhance", str(tmp_path / "in" / "shot.####.exr"), str(tmp_path / "cli") + "/", *common]) == 0
    assert json.loads(capsys.readouterr().out)["cache"]["disk_writes"] == 3

    # no memory tier: every hit comes from the folder
    with serving(DaemonConfig(bind="tcp://127.0.0.1:0", weights=(tiny_weights,), device="cpu", cache_mb=0,
                              cache_dir=str(cache))) as served, Client(served.endpoint, timeout_s=60) as client:
        pixels = read_frame(str(paths[1])).pixels
        request = RenderRequest(clip="shot", frame=2, colorspace=LINEAR)
        digest = proto.digest_pixels(*_wire(pixels))
        assert client.have(request, pixels, [digest]) == []          # HAVE: the daemon holds it already
        result = client.render_frame(request, pixels)
        assert result.generator_passes == 0
        assert client.stats()["cache"]["hits"] >= 1
        # a frame only the daemon has seen: enhanced once, then a CLI render of it finds it
        fresh = pixels * np.float32(0.5)
        assert client.render_frame(RenderRequest(clip="shot", frame=9, colorspace=LINEAR), fresh).generator_passes == 1
    (tmp_path / "one").mkdir()
    write_image(tmp_path / "one" / "shot.0009.exr", fresh, pixel_type="float")
    assert main(["enhance", str(tmp_path / "one" / "shot.####.exr"), str(tmp_path / "cli9") + "/", *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generator_passes"] == 0 and summary["cache"]["disk_hits"] == 1


def _wire(pixels: np.ndarray) -> tuple:
    rows = np.ascontiguousarray(pixels, dtype=np.float32)
    height, width, channels = rows.shape
    return rows, width, height, channels, "float32", width * channels * 4
