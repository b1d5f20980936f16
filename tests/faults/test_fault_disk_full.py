"""A full disk: every writer fails loudly, keeps the previous file and leaves no temp file.

Two kinds of fault: ``OSError(ENOSPC)`` injected at ``write``/``close``/``fsync`` of the one atomic
writer, and a real one, a child process whose file-size limit (RLIMIT_FSIZE) makes the kernel
refuse writes part-way through an image, as a full disk does.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nightgrade.colorpipeline.errors import OutputError
from nightgrade.colorpipeline.io import atomic, imageio
from nightgrade.colorpipeline.io.frame import Frame
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import CheckpointMeta, save_checkpoint
from nightgrade.models.networks import build_generator
from nightgrade.server.render.frame_cache import FrameCache
from tests.conftest import TINY, write_image
from tests.daemon_fixtures import NIGHTGRADE


def _enospc(*_: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(params=["write", "close", "fsync"])
def full_disk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the disk 'full' at one step of the atomic writer."""
    if request.param == "fsync":
        monkeypatch.setattr(atomic, "_fsync", _enospc)
        monkeypatch.setattr(atomic.os, "fsync", _enospc)
        return request.param
    real = getattr(os, request.param)
    opened: set[int] = set()
    real_open = os.open

    def tracking_open(path, flags, *args):  # fail only on descriptors the writer opened for writing
        fd = real_open(path, flags, *args)
        if flags & os.O_WRONLY:
            opened.add(fd)
        return fd

    def failing(fd, *args):
        if fd not in opened:
            return real(fd, *args)
        if request.param == "close":
            opened.discard(fd)
            real(fd)  # the descriptor is released, and the error still reported, as NFS does
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "open", tracking_open)
    monkeypatch.setattr(atomic.os, request.param, failing)
    return request.param


def test_write_bytes_on_a_full_disk_keeps_the_old_file(tmp_path: Path, full_disk: str) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"good old content")
    with pytest.raises(OSError) as caught:
        atomic.write_bytes(target, b"x" * 100_000)
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"good old content"
    assert _only(tmp_path) == ["state.bin"]


def test_checkpoint_on_a_full_disk_is_one_output_error(tmp_path: Path, full_disk: str) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous checkpoint")
    meta = CheckpointMeta(generator=TINY, tiles=TileConfig(64, 160, 32), model_name="tiny", model_version="0.0.1")
    with pytest.raises(OutputError, match="cannot write checkpoint .*No space left on device"):
        save_checkpoint(target, build_generator(TINY), meta)
    assert target.read_bytes() == b"previous checkpoint"
    assert _only(tmp_path) == ["model.safetensors"]


def test_frame_write_fails_at_fsync_keeps_the_old_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.exr"
    frame = Frame.from_array(np.full((8, 8, 3), 0.5, np.float32))
    imageio.write_frame(str(target), frame)
    before = target.read_bytes()
    monkeypatch.setattr(atomic, "_fsync", _enospc)
    with pytest.raises(OutputError, match="cannot write .*out.exr: No space left on device"):
        imageio.write_frame(str(target), Frame.from_array(np.zeros((8, 8, 3), np.float32)))
    assert target.read_bytes() == before
    assert _only(tmp_path) == ["out.exr"]


def test_frame_cache_on_a_full_disk_stays_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").mkdir()
    cache = FrameCache(1 << 20, tmp_path / "cache")
    monkeypatch.setattr(atomic, "_fsync", _enospc)
    cache.put("ab" * 16, np.ones((4, 4, 3), np.float32))
    assert cache.get("ab" * 16) is not None  # still served from memory
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG, as ENOSPC would
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.parametrize("ext", [".png", ".exr", ".tif", ".dpx"])
def test_enhance_on_a_full_disk_exits_4_and_keeps_the_old_frame(tmp_path: Path, tiny_weights: str, ext: str) -> None:
    """On main, a PNG write that ran out of space reported success and replaced the good frame."""
    rng = np.random.default_rng(5)
    source, out = tmp_path / "in.exr", tmp_path / "out" / f"frame{ext}"
    write_image(source, rng.random((128, 128, 3), dtype=np.float32), "float")
    out.parent.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    args = [NIGHTGRADE, "enhance", str(source), str(out), "--weights", tiny_weights, "--device", "cpu", "-q",
            "--overwrite"]
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=120)
    good = out.read_bytes()
    assert len(good) > 20_000, "the frame must be larger than the file-size limit below"
    result = subprocess.run([*args, "--mix", "0.5"], capture_output=True, text=True, env=env, timeout=120,
                            preexec_fn=_limit_file_size)
    assert result.returncode == OutputError.exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nightgrade: error: cannot write {out}"), result.stderr
    assert out.read_bytes() == good
    assert _only(out.parent) == [out.name]
