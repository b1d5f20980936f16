"""The render daemon gives the in-process pixels (issue 6): `enhance --server` against a local
render, plain and temporal, full resolution and proxy; one generator pass per frame however many
windows are asked for; tiles of different requests batched together; HAVE/NEED."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from nightgrade.server import protocol as proto
from nightgrade.server.cli.main import main
from nightgrade.server.client import Client, RenderRequest, WirePixels
from nightgrade.server.daemon.server import Daemon, DaemonConfig
from nightgrade.server.render.pipeline import ColourPlan, finish_rgb, tile_geometry, working_rgb
from tests.conftest import read_image, serving, wait_for, write_image

SRGB = "sRGB Encoded Rec.709 (sRGB)"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def daemon(tiny_weights: str) -> Iterator[Daemon]:
    with serving(DaemonConfig(bind="tcp://127.0.0.1:0", weights=(tiny_weights,), device="cpu", cache_mb=256,
                              max_jobs=8)) as served:  # cross-request batching on, as on a GPU
        yield served


def _sequence(folder: Path, frames: int = 5, height: int = 72, width: int = 104) -> str:
    """A drifting scene-linear RGBA sequence with highlights above 1 (float EXR)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.random((height, width + 2 * frames, 3), dtype=np.float32), (0, 0), 2.0)
    for t in range(frames):
        rgb = np.ascontiguousarray(base[:, t:t + width] * 0.3 + rng.normal(0, 0.02, (height, width, 3)))
        rgb[10:14, 20:24] = 6.0  # a street light: carried around the model and restored
        alpha = np.full((height, width, 1), 0.75, np.float32)
        write_image(folder / f"shot.{t + 1:04d}.exr", np.concatenate([rgb, alpha], axis=2).astype(np.float32),
                    pixel_type="float", attributes={"oiio:ColorSpace": "lin_rec709"})
    return str(folder / "shot.####.exr")


def _render(args: list[str], capsys: pytest.CaptureFixture) -> dict:
    assert main(["enhance", *args, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def _frames(folder: Path) -> list[np.ndarray]:
    return [read_image(path)[0] for path in sorted(folder.glob("*.exr"))]


@pytest.mark.parametrize("extra", [[], ["--scale", "0.5", "--mix", "0.7"],
                                   ["--scale", "0.5", "--luma-denoise", "0.2", "--chroma-denoise", "0.5", "--detail", "0.7"],
                                   ["--exposure", "1.5"]],
                         ids=["full", "proxy-mix", "proxy-controls", "exposure"])
def test_enhance_through_the_daemon_matches_the_local_render(daemon: Daemon, tiny_weights: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture, extra: list[str]) -> None:
    source = _sequence(tmp_path / "in", frames=2)
    _render([source, str(tmp_path / "local") + "/", "--weights", tiny_weights, "--device", "cpu", *extra], capsys)
    summary = _render([source, str(tmp_path / "remote") + "/", "--server", daemon.endpoint, *extra], capsys)
    assert summary["frames_written"] == 2 and summary["server"] == daemon.endpoint
    local, remote = _frames(tmp_path / "local"), _frames(tmp_path / "remote")
    assert len(local) == len(remote) == 2
    for a, b in zip(local, remote):
        assert a.shape == b.shape and a.shape[2] == 4
        assert np.abs(a - b).max() <= 1e-5
        assert b[..., 3].min() == pytest.approx(0.75)  # alpha kept by the client


def test_temporal_render_through_the_daemon_matches_and_enhances_each_frame_once(
        daemon: Daemon, tiny_weights: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = _sequence(tmp_path / "in", frames=5)
    flags = ["--temporal", "--radius", "2"]
    _render([source, str(tmp_path / "local") + "/", "--weights", tiny_weights, "--device", "cpu", *flags], capsys)
    summary = _render([source, str(tmp_path / "remote") + "/", "--server", daemon.endpoint, *flags], capsys)
    assert summary["generator_passes"] == 5  # every source frame once, though each is in up to 5 windows
    assert summary["mean_frames_averaged"] > 1.0
    for a, b in zip(_frames(tmp_path / "local"), _frames(tmp_path / "remote"), strict=True):
        assert np.abs(a - b).max() <= 1e-5

    (tmp_path / "remote" / "shot.0004.exr").unlink()  # a farm chunk that died before frame 4
    again = _render([source, str(tmp_path / "remote") + "/", "--server", daemon.endpoint, *flags], capsys)
    assert (again["frames_written"], again["frames_skipped"]) == (1, 4)
    assert np.abs(_frames(tmp_path / "local")[3] - _frames(tmp_path / "remote")[3]).max() <= 1e-5


def test_windows_of_one_frame_cost_one_generator_pass(daemon: Daemon) -> None:
    frame = np.random.default_rng(5).random((70, 90, 3), dtype=np.float32)
    request = RenderRequest(clip="windows", frame=1, colorspace=SRGB)
    with Client(daemon.endpoint, timeout_s=20) as client:
        whole = client.render_frame(request, frame)
        parts = [client.render_frame(RenderRequest(clip="windows", frame=1, colorspace=SRGB, window=w), frame)
                 for w in ((0, 0, 45, 35), (45, 0, 90, 35), (0, 35, 90, 70))]
    assert whole.generator_passes == 1 and [p.generator_passes for p in parts] == [0, 0, 0]
    assert np.array_equal(parts[0].pixels, whole.pixels[0:35, 0:45])
    assert np.array_equal(parts[2].pixels, whole.pixels[35:70, 0:90])


def test_half_rgba_round_trip_keeps_alpha_and_format(daemon: Daemon) -> None:
    frame = np.random.default_rng(6).random((40, 64, 4), dtype=np.float32)
    with Client(daemon.endpoint, timeout_s=20) as client:
        result = client.render_frame(RenderRequest(clip="half", frame=1, colorspace=SRGB, format="half"), frame)
    assert result.pixels.shape == (40, 64, 4) and result.header["format"] == "half"
    assert np.array_equal(result.pixels[..., 3], frame[..., 3].astype(np.float16).astype(np.float32))


def test_have_lists_only_frames_the_daemon_lacks(daemon: Daemon) -> None:
    rng = np.random.default_rng(7)
    frames = {t: WirePixels.from_array(rng.random((48, 64, 3), dtype=np.float32)) for t in range(1, 4)}
    params = proto.RenderParams(temporal=True, radius=1)
    request = RenderRequest(clip="have", frame=2, colorspace=SRGB, params=params)
    with Client(daemon.endpoint, timeout_s=20) as client:
        digests = [frames[1].digest, frames[3].digest]
        assert client.have(request, frames[2], digests) == digests
        client.render_frame(request, frames[2], {1: frames[1], 3: frames[3]})
        assert client.have(request, frames[2], digests) == []
        fresh = WirePixels.from_array(rng.random((48, 64, 3), dtype=np.float32))
        assert client.have(request, frames[2], [frames[1].digest, fresh.digest]) == [fresh.digest]


def test_tiles_of_queued_requests_share_generator_batches(daemon: Daemon) -> None:
    """Small frames queued behind a long render are enhanced in one batch stream; each result is
    the in-process one."""
    rng = np.random.default_rng(8)
    frames = [rng.random((48, 64, 3), dtype=np.float32) for _ in range(3)]
    before = daemon.stats()["cross_request_batches"]
    results: dict[int, np.ndarray] = {}

    def render(i: int, pixels: np.ndarray) -> None:
        with Client(daemon.endpoint, timeout_s=60) as client:
            results[i] = client.render_frame(RenderRequest(clip=f"batch{i}", frame=i, colorspace=SRGB),
                                             pixels).pixels

    long = threading.Thread(target=render, args=(-1, rng.random((768, 768, 3), dtype=np.float32)))
    long.start()
    wait_for(lambda: daemon.scheduler.in_flight() == 1)
    threads = [threading.Thread(target=render, args=(i, frames[i])) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in [long, *threads]:
        thread.join(120)
    assert daemon.stats()["cross_request_batches"] > before
    model = daemon.models.get(None)
    colours = ColourPlan(daemon.colours, SRGB, model.working, SRGB)
    for i, frame in enumerate(frames):
        working, in_range, excess = working_rgb(frame, colours)
        expected = finish_rgb(model.engine.enhance(in_range, tile_geometry(model.engine)), working, excess, colours, 1.0)
        assert np.abs(expected - results[i]).max() <= 1e-5


def test_controls_reach_the_daemon_and_an_older_daemon_is_refused(daemon: Daemon, tmp_path: Path, monkeypatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """The look controls (params luma_denoise, chroma_denoise, detail; WELCOME feature "controls")
    change the daemon's pixels; a daemon without the feature would ignore them, so the client refuses."""
    source = _sequence(tmp_path / "in", frames=1)
    _render([source, str(tmp_path / "plain") + "/", "--server", daemon.endpoint], capsys)
    summary = _render([source, str(tmp_path / "grain") + "/", "--server", daemon.endpoint, "--luma-denoise", "0"],
                      capsys)
    assert summary["controls"]["luma_denoise"] == 0.0
    assert np.abs(_frames(tmp_path / "plain")[0] - _frames(tmp_path / "grain")[0]).max() > 1e-3
    with Client(daemon.endpoint) as client:
        assert "controls" in client.hello()["features"]
    monkeypatch.setattr(proto, "FEATURES", ())  # a daemon from before the controls
    assert main(["enhance", source, str(tmp_path / "old") + "/", "--server", daemon.endpoint, "--detail", "0.5"]) == 7
    assert "predates the denoise and detail controls" in capsys.readouterr().err
    assert main(["enhance", source, str(tmp_path / "old") + "/", "--server", daemon.endpoint, "--exposure", "1"]) == 7
    assert "predates the exposure control" in capsys.readouterr().err
    assert not (tmp_path / "old").exists() or not list((tmp_path / "old").iterdir())
