"""OFX bridge (issue 7) against the real `nightgrade serve`: the node's pixels, through our test host
(tests/ofx_host), equal `nightgrade enhance` on the same frames, at full and proxy scale and with the
temporal window."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_image, write_image
from daemon_fixtures import free_port, start_serve, stop_process, wait_ready
from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.server.cli.main import main as cli_main
from ofx_host.driver import job_for, read_output

LINEAR = "Linear Rec.709 (sRGB)"


@pytest.fixture(scope="module")
def serve(tiny_weights, tmp_path_factory):
    """`nightgrade serve` with the tiny checkpoint on a free loopback port."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process = start_serve(endpoint, tiny_weights, log)
    try:
        wait_ready(endpoint, process, log)
        yield endpoint
    finally:
        stop_process(process)


def night_sequence(folder: Path, frames: int, height: int = 64, width: int = 96) -> list[Path]:
    """Dim, drifting scene-linear RGBA frames with a street light above 1 (float EXR)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    base = rng.random((height, width + frames, 3), dtype=np.float32) * 0.2
    paths = []
    for t in range(frames):
        rgb = base[:, t:t + width].copy()
        rgb[20:24, 30:34] = 5.0
        alpha = np.full((height, width, 1), 0.5, np.float32)
        paths.append(folder / f"shot.{t + 1:04d}.exr")
        write_image(paths[-1], np.concatenate([rgb, alpha], axis=2), pixel_type="float")
    return paths


def enhanced_by_cli(paths: list[Path], out: Path, weights: str, *flags: str) -> list[np.ndarray]:
    pattern = str(paths[0]).replace(".0001.", ".####.")
    assert cli_main(["enhance", pattern, str(out) + "/", "--weights", weights, "--device", "cpu", "--input-colorspace",
                     LINEAR, "--bit-depth", "float", "--quiet", *flags]) == 0
    return [read_image(p)[0] for p in sorted(out.glob("*.exr"))]


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_node_gives_the_pixels_of_nightgrade_enhance(ofx, serve, tiny_weights, tmp_path, scale):
    paths = night_sequence(tmp_path / "in", 1)
    expected = enhanced_by_cli(paths, tmp_path / "cli", tiny_weights, "--scale", str(scale))[0]
    job = job_for(ofx, tmp_path, serve, {"timeout": 120, "heartbeat": 10, "inputColorspace": LINEAR})
    source = read_frame(str(paths[0]))
    job.source(1.0, 1, source.pixels)
    if scale != 1.0:  # the host hands a proxy image, downscaled as nightgrade downscales proxies
        job.source(scale, 1, source.resized(expected.shape[1], expected.shape[0]).pixels)
    out = job.render(scale, 1, tiles=2)
    log = job.run(timeout=300)
    assert log.render_statuses() == [0, 0], log.persistent()
    assert np.abs(read_output(out, expected) - expected).max() <= 1e-4
    assert np.abs(expected[..., :3] - source.resized(expected.shape[1], expected.shape[0]).pixels[..., :3]).max() > 0.05


def test_temporal_node_gives_the_pixels_of_nightgrade_enhance_temporal(ofx, serve, tiny_weights, tmp_path):
    paths = night_sequence(tmp_path / "in", 3)
    expected = enhanced_by_cli(paths, tmp_path / "cli", tiny_weights, "--temporal", "--radius", "1")[1]
    job = job_for(ofx, tmp_path, serve, {"timeout": 120, "heartbeat": 10, "inputColorspace": LINEAR, "temporal": 1,
                                        "radius": 1}, frame_range=(1, 3))
    for number, path in enumerate(paths, start=1):
        job.source(1.0, number, read_frame(str(path)).pixels)
    out = job.render(1.0, 2, tiles=2)
    log = job.run(timeout=300)
    assert log.render_statuses() == [0, 0], log.persistent()
    assert "frames averaged" in log.values()["status"]
    assert np.abs(read_output(out, expected) - expected).max() <= 1e-4


def test_without_colour_management_node_and_cli_use_the_same_default_colourspace(ofx, serve, tiny_weights, tmp_path):
    # No Input colourspace, no host colourspace, an EXR without metadata: both sides must pick
    # Linear Rec.709 (the daemon once took the config's scene_linear role, ACEScg, instead).
    paths = night_sequence(tmp_path / "in", 1)
    pattern = str(paths[0]).replace(".0001.", ".####.")
    assert cli_main(["enhance", pattern, str(tmp_path / "cli") + "/", "--weights", tiny_weights, "--device", "cpu",
                     "--bit-depth", "float", "--quiet"]) == 0
    expected = read_image(next((tmp_path / "cli").glob("*.exr")))[0]
    job = job_for(ofx, tmp_path, serve, {"timeout": 120, "heartbeat": 10})
    job.source(1.0, 1, read_frame(str(paths[0])).pixels)
    out = job.render(1.0, 1, tiles=1)
    log = job.run(timeout=300)
    assert log.render_statuses() == [0], log.persistent()
    assert "the host reports no colourspace, so Linear Rec.709" in log.values()["status"]
    assert np.abs(read_output(out, expected) - expected).max() <= 1e-4


def test_node_look_controls_and_exposure_give_the_pixels_of_the_cli_flags(ofx, serve, tiny_weights, tmp_path):
    paths = night_sequence(tmp_path / "in", 1)
    expected = enhanced_by_cli(paths, tmp_path / "cli", tiny_weights, "--exposure", "1.5", "--luma-denoise", "0.5",
                               "--chroma-denoise", "0.25", "--detail", "0.4")[0]
    plain = enhanced_by_cli(paths, tmp_path / "plain", tiny_weights)[0]
    job = job_for(ofx, tmp_path, serve, {"timeout": 120, "heartbeat": 10, "inputColorspace": LINEAR, "exposure": 1.5,
                                        "lumaDenoise": 0.5, "chromaDenoise": 0.25, "detail": 0.4})
    job.source(1.0, 1, read_frame(str(paths[0])).pixels)
    out = job.render(1.0, 1, tiles=2)
    log = job.run(timeout=300)
    assert log.render_statuses() == [0, 0], log.persistent()
    assert np.abs(read_output(out, expected) - expected).max() <= 1e-4
    assert np.abs(expected[..., :3] - plain[..., :3]).mean() > 0.01  # the controls changed the picture
