"""The one atomic writer: a killed process or a full disk never leaves a half-written file where a
reader looks, and a failed write never replaces a good file.

Every file NightGrade writes (frames, the frame cache, checkpoints, reports) goes through
:func:`atomic_target` or :func:`write_bytes`:

1. the data goes to a hidden temp file in the target's own folder (a rename across file systems
   would not be atomic), named ``.NAME.PID-XXXXXXXX.tmpEXT`` so writers that pick a format from
   the extension still work and :func:`remove_stale_temps` can recognise orphans;
2. every write and the close are checked (:func:`write_bytes`; image writers check their own);
3. the temp file is fsynced, renamed over the target, then the folder is fsynced so the rename
   itself survives a power cut;
4. on any failure the temp file is removed and the target is left exactly as it was.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Iterator

STALE_AFTER_S = 600.0
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp(?:\.[^./]+)?$")


def temp_path(path: str | os.PathLike[str]) -> str:
    """A fresh hidden temp path beside ``path`` with the same extension (unique per call, so threads
    writing the same target never share one)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    ext = os.path.splitext(name)[1]
    return os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{ext}")


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temp path (:func:`temp_path`) for the block to write; when the block succeeds, fsync
    it, rename it over ``path`` and fsync the folder. When the block or any of these steps raises,
    remove the temp file and re-raise: ``path`` keeps its old content (or stays absent).

    The block must report its own failures by raising: a writer that only returns False (OIIO,
    OpenCV) has to be checked inside the block."""
    path = os.fspath(path)
    temp = temp_path(path)
    try:
        yield temp
        _fsync(temp, os.O_RDONLY)
        os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.remove(temp)
    with contextlib.suppress(OSError):
        # makes the rename durable; the data is already safe in the file, so a failure loses nothing
        _fsync(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_target`), checking every ``write`` (a
    short write is retried; ENOSPC raises) and the ``close`` (where NFS reports a full disk)."""
    with atomic_target(path) as temp:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data).cast("B")
            while view:
                written = os.write(descriptor, view)
                if written <= 0:
                    raise OSError(errno.EIO, f"write returned {written}")
                view = view[written:]
            os.fsync(descriptor)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(descriptor)
            raise
        os.close(descriptor)


def remove_stale_temps(folder: str | os.PathLike[str], max_age_s: float = STALE_AFTER_S) -> list[str]:
    """Remove temp files of this naming in ``folder`` left by a killed writer (a SIGKILL or a power
    cut skips every ``finally``); return their paths. A temp file is stale when nothing wrote to it
    for ``max_age_s`` and no live process of this machine owns it: a writer rewrites its temp file
    continuously and renames it within seconds, and the age rule also protects farm workers on
    other machines sharing the folder, whose process ids mean nothing here."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        match = _TEMP.match(name)
        if match is None or _alive(int(match["pid"])):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if now - os.lstat(path).st_mtime >= max_age_s:
                os.remove(path)
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def _fsync(path: str, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
