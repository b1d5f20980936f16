"""The exposure target (issue 19's controls): stops on top of the model's own exposure (issue 14's branch)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import read_image, write_image

from nightgrade.server.cli.main import main


def _source(folder: Path) -> str:
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    pixels = np.stack([0.02 + 0.03 * xx, 0.01 + 0.02 * yy, 0.015 + 0.01 * xx], axis=-1)
    write_image(folder / "d.0001.exr", (pixels + rng.normal(0, 0.002, pixels.shape)).astype(np.float32), "float",
                ("R", "G", "B"))
    return str(folder / "d.####.exr")


def _render(source: str, out: Path, weights: str, capsys, *extra: str) -> np.ndarray:
    assert main(["enhance", source, str(out) + "/", "--weights", weights, "--device", "cpu", "--json", "-q",
                 *extra]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_written"] == 1
    return read_image(next(out.glob("*.exr")))[0]


def test_a_stop_up_brightens_and_a_stop_down_darkens(tmp_path: Path, tiny_weights: str, capsys) -> None:
    source = _source(tmp_path / "in")
    auto = _render(source, tmp_path / "auto", tiny_weights, capsys)
    up = _render(source, tmp_path / "up", tiny_weights, capsys, "--exposure", "1")
    down = _render(source, tmp_path / "down", tiny_weights, capsys, "--exposure", "-1")
    assert down.mean() < auto.mean() < up.mean()


def test_a_rerun_with_another_exposure_renders_again(tmp_path: Path, tiny_weights: str, capsys) -> None:
    source, out = _source(tmp_path / "in"), tmp_path / "out"
    _render(source, out, tiny_weights, capsys)
    assert main(["enhance", source, str(out) + "/", "--weights", tiny_weights, "--device", "cpu", "--json", "-q",
                 "--exposure", "0.5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_rerendered"] == 1 and "exposure" in summary["rerender_reason"]


@pytest.mark.parametrize("value", ["4.5", "-9"])
def test_out_of_range_is_one_line_naming_the_flag_and_range(tmp_path: Path, tiny_weights: str, capsys,
                                                            value: str) -> None:
    source = _source(tmp_path / "in")
    assert main(["enhance", source, str(tmp_path / "o") + "/", "--weights", tiny_weights, "--exposure", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--exposure" in err[0] and "-4..4" in err[0]
