"""SIGKILL in the middle of a write: the frame under its final name is whole or absent, and the
orphaned temp file is removed by the next run (but never a temp file another writer still uses)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nightgrade.colorpipeline.io import atomic
from nightgrade.server.render.pipeline import RenderOptions, render_sequence
from tests.conftest import write_image

_WRITER = """
import sys, numpy as np
from nightgrade.colorpipeline.io import atomic
with atomic.atomic_target(sys.argv[1]) as temp, open(temp, "wb") as handle:
    handle.write(b"x" * 1000); handle.flush()
    print(temp, flush=True)
    import time; time.sleep(60)
"""


def test_sigkill_mid_write_keeps_the_old_file_and_the_next_run_cleans_up(tmp_path: Path, tiny_weights: str) -> None:
    source = tmp_path / "in.0001.exr"
    write_image(source, np.full((64, 64, 3), 0.2, np.float32), "float")
    out = tmp_path / "out" / "o.0001.exr"
    opts = RenderOptions(input=str(source), output=str(out), weights=tiny_weights, device="cpu")
    render_sequence(opts, show_progress=False)
    good = out.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    temp = Path(writer.stdout.readline().strip())
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    writer.stdout.close()
    assert temp.exists() and out.read_bytes() == good  # killed: the temp file is orphaned, the frame intact
    young = out.parent / f".o.0002.exr.{writer.pid}-0123abcd.tmp.exr"  # another host's write in progress
    young.write_bytes(b"y")
    old = time.time() - atomic.STALE_AFTER_S - 5
    os.utime(temp, (old, old))
    render_sequence(RenderOptions(**{**opts.__dict__, "overwrite": True}), show_progress=False)
    assert not temp.exists()
    assert young.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, young.name])


def test_a_live_writer_keeps_its_temp_file_whatever_its_age(tmp_path: Path) -> None:
    mine = Path(atomic.temp_path(tmp_path / "f.exr"))
    mine.write_bytes(b"z")
    os.utime(mine, (0, 0))
    assert atomic.remove_stale_temps(tmp_path) == []
    assert mine.exists()
    unrelated = tmp_path / ".hidden.1-0123abcd.txt"  # not our naming
    unrelated.write_bytes(b"u")
    os.utime(unrelated, (0, 0))
    assert atomic.remove_stale_temps(tmp_path) == [] and unrelated.exists()


def test_the_frame_cache_removes_temp_files_of_killed_writers(tmp_path: Path) -> None:
    from nightgrade.server.render.frame_cache import FrameCache

    folder = tmp_path / "cache" / "ab"
    folder.mkdir(parents=True)
    stale = Path(atomic.temp_path(folder / ("ab" * 16 + ".exr")).replace(f".{os.getpid()}-", ".999999999-"))
    stale.write_bytes(b"half a frame")
    os.utime(stale, (0, 0))
    FrameCache(1 << 20, tmp_path / "cache")
    assert not stale.exists()
