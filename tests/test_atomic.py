"""colorpipeline/io/atomic.py: nothing half-written is ever visible under the final name."""
from __future__ import annotations

from pathlib import Path

import pytest

from nightgrade.colorpipeline.io.atomic import atomic_target


def test_success_renames_and_keeps_the_extension(tmp_path: Path) -> None:
    target = tmp_path / "report.png"
    with atomic_target(target) as temp:
        assert temp.endswith(".png") and Path(temp).parent == tmp_path and not target.exists()
        Path(temp).write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_target(target) as temp:
        Path(temp).write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.safetensors"]
