"""NaN and Inf pixels, and damaged input files: the output never holds a non-finite value we made,
the user is told (warning line, --json, daemon reply), and --strict refuses the frame."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nightgrade.colorpipeline.io.finite import CLAMP, replace_nonfinite
from nightgrade.server.cli.main import main
from nightgrade.server.client import Client, RenderRequest
from tests.conftest import read_image, write_image
from tests.daemon_fixtures import running_daemon

pytestmark = pytest.mark.usefixtures("one_thread")


def _poisoned(folder: Path) -> Path:
    """A 96x128 float EXR, smooth, with one NaN and one +Inf pixel in different tiles."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    rgb = np.stack([xx / 128, yy / 96, np.full_like(xx, 0.1)], axis=2) * 0.3
    rgb[10, 10, 0] = np.nan
    rgb[80, 100, 1] = np.inf
    path = folder / "night.0001.exr"
    write_image(path, rgb.astype(np.float32), "float")
    return path


def test_replace_nonfinite_counts_and_clamps() -> None:
    pixels = np.array([[[np.nan, np.inf, -np.inf, 0.5]]], np.float32)
    clean, found = replace_nonfinite(pixels)
    assert (found.nan, found.inf) == (1, 2)
    assert clean.tolist() == [[[0.0, CLAMP, -CLAMP, 0.5]]]
    same, none = replace_nonfinite(clean)
    assert same is clean and none.total == 0


def test_enhance_replaces_nonfinite_pixels_and_warns(tmp_path: Path, tiny_weights: str, capsys) -> None:
    source = _poisoned(tmp_path / "in")
    out = tmp_path / "out" / "night.0001.exr"
    code = main(["enhance", str(source), str(out), "--weights", tiny_weights, "--device", "cpu", "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out)
    assert summary["nonfinite"] == {"frames": [1], "nan": 1, "inf": 1}
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "1 NaN, 1 Inf" in warnings[0] and "--strict" in warnings[0]
    pixels, _ = read_image(out)
    assert np.isfinite(pixels).all()  # on main whole tiles came out NaN
    assert np.abs(pixels[40:56, 40:56]).max() < 10  # pixels far from the bad ones are ordinary


def test_strict_refuses_the_frame_and_writes_nothing(tmp_path: Path, tiny_weights: str, capsys) -> None:
    source = _poisoned(tmp_path / "in")
    out = tmp_path / "out" / "night.0001.exr"
    code = main(["enhance", str(source), str(out), "--weights", tiny_weights, "--device", "cpu", "-q", "--strict"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1 and "frame 1" in err[0] and "1 NaN and 1 Inf value(s)" in err[0], err
    assert not out.exists()


def test_daemon_reply_reports_replaced_values(tiny_weights: str) -> None:
    pixels = np.full((64, 96, 4), 0.2, np.float32)
    pixels[5, 5, 0] = np.nan
    pixels[50, 70, :3] = -np.inf
    with running_daemon(tiny_weights) as daemon, Client(daemon.endpoint, timeout_s=30) as client:
        result = client.render_frame(RenderRequest(clip="nan", frame=1), pixels)
    assert np.isfinite(result.pixels).all()
    assert result.header["nonfinite"] == {"nan": 1, "inf": 3}
    assert "1 NaN and 3 Inf value(s)" in result.header["warning"]


def test_truncated_png_is_one_line(tmp_path: Path, tiny_weights: str, capfd) -> None:
    good = tmp_path / "good.png"
    write_image(good, np.random.default_rng(1).random((64, 64, 3), dtype=np.float32), "uint16")
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    code = main(["enhance", str(broken), str(tmp_path / "o.png"), "--weights", tiny_weights, "--device", "cpu", "-q"])
    err = capfd.readouterr().err.strip().splitlines()  # capfd: libpng wrote to file descriptor 2 directly
    assert code == 3
    assert len(err) == 1 and err[0].startswith("nightgrade: error: frame") and "truncated" in err[0], err


def test_a_ray_job_reports_what_its_chunks_replaced_and_rendered_again() -> None:
    from nightgrade.server.farm.ray_jobs import _job_summary

    def chunk(first: int, last: int, nan: int, rerendered: int, reason: str | None) -> dict:
        return {"frames": [first, last], "frames_written": last - first + 1, "frames_skipped": 0, "seconds": 1.0,
                "nonfinite": {"frames": [first] if nan else [], "nan": nan, "inf": 0},
                "frames_rerendered": rerendered, "rerender_reason": reason,
                "worker": {"pid": first, "host": "h", "model_load_seconds": 0.1, "cpu_seconds": 1.0}}

    base = {"seconds": 2.0, "nonfinite": {"frames": [], "nan": 0, "inf": 0}, "frames_rerendered": 0,
            "rerender_reason": None}
    summary = _job_summary(base, [chunk(4, 6, 0, 1, "frame 5: mix 1.0 -> 0.5"), chunk(1, 3, 2, 0, None)],
                           {"device": "cpu"})
    assert summary["nonfinite"] == {"frames": [1], "nan": 2, "inf": 0}
    assert (summary["frames_rerendered"], summary["rerender_reason"]) == (1, "frame 5: mix 1.0 -> 0.5")
