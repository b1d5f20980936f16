"""Hostile or mistaken paths and ranges: an output pattern landing on other input frames, a
frame range of twenty million frames."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from nightgrade.colorpipeline.errors import OutputError, UsageError
from nightgrade.server.cli.main import main
from tests.conftest import write_image


def _frames(folder: Path, count: int) -> dict[Path, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):
        write_image(folder / f"a{n}.exr", np.full((8, 8, 3), n / 20, np.float32), "float")
    return {p: p.read_bytes() for p in folder.iterdir()}


def test_output_pattern_never_lands_on_another_input_frame(tmp_path: Path, tiny_weights: str, capsys) -> None:
    """Input a#.exr, output a1#.exr in the same folder: frame 1 -> a11.exr, input frame 11."""
    before = _frames(tmp_path, 12)
    code = main(["enhance", str(tmp_path / "a#.exr"), str(tmp_path / "a1#.exr"), "--weights", tiny_weights,
                 "--device", "cpu", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == OutputError.exit_code
    assert len(err) == 1 and "would be frame 11 of the input" in err[0], err
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_output_pattern_may_not_create_frames_of_the_input_either(tmp_path: Path, tiny_weights: str, capsys) -> None:
    before = _frames(tmp_path, 3)  # a11.exr does not exist yet: writing it would grow the input sequence
    code = main(["enhance", str(tmp_path / "a#.exr"), str(tmp_path / "a1#.exr"), "--weights", tiny_weights, "-q"])
    assert code == OutputError.exit_code
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_huge_frame_range_fails_at_once(tmp_path: Path, capsys) -> None:
    _frames(tmp_path, 1)
    tracemalloc.start()
    code = main(["enhance", str(tmp_path / "a#.exr"), str(tmp_path / "out" / "b#.exr"), "--frames", "1-20000000"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == UsageError.exit_code
    assert len(err) == 1 and "1-20000000" in err[0] and "more than 1000000 frames" in err[0], err
    assert peak < 50 * 2**20, f"refusing the range allocated {peak / 2**20:.0f} MB"  # was 1.2 GB
