"""Write-then-rename, so a killed process never leaves a half-written file where a reader looks."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a hidden temporary path beside ``path`` with the same extension (writers that pick a
    format from the extension still work); rename it over ``path`` when the block succeeds,
    remove it when the block raises."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    temp = os.path.join(folder, f".{stem}.{os.getpid()}.tmp{ext}")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.remove(temp)
