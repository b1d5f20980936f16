"""Silence what C libraries print on stderr while they decode a file.

libpng prints each error on the process's stderr (file descriptor 2) besides returning it, and
OpenImageIO passes the same text on to us; a truncated PNG then showed two lines, one of them
outside NightGrade's one-line error. Only PNG files are affected, so only they pay for this.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()  # fd 2 is process-wide: one silencer at a time, or they restore each other's copy


@contextlib.contextmanager
def quiet_decoder(path: str) -> Iterator[None]:
    """Within the block, writes to file descriptor 2 are discarded when ``path`` is a PNG file."""
    if not path.lower().endswith(".png"):
        yield
        return
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
