"""Progress over a distributed job: one bar over every frame, whichever worker renders it.

Workers write straight to the (shared) output folder, so the driver counts a frame as soon as its
output file appears with a modification time after the job started; where the driver does not
see the workers' storage, frames count when their chunk reports back. On a terminal this is a
tqdm bar (frames/s, ETA); in farm logs, one line per finished chunk.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping
from types import TracebackType

from tqdm import tqdm


class FarmProgress:
    """Context manager: ``poll(frames)`` for the frames of chunks in flight, ``chunk_done(first,
    last)`` when a chunk reports back. ``outputs`` maps each frame of the job to its output."""

    def __init__(self, outputs: Mapping[int, str], chunks: int, enabled: bool = True) -> None:
        self._outputs = dict(outputs)
        self._chunks, self._chunks_done = chunks, 0
        self._seen: set[int] = set()
        self._since = time.time() - 1.0  # file times are coarser than perf_counter; never miss a frame
        self._started = time.perf_counter()
        self._lines = enabled and not sys.stderr.isatty()
        self._bar = tqdm(total=len(self._outputs), unit="frame", disable=not enabled or self._lines,
                         dynamic_ncols=True, smoothing=0.1)

    def __enter__(self) -> FarmProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.close()

    @property
    def frames_done(self) -> int:
        return len(self._seen)

    def poll(self, frames: Iterable[int]) -> None:
        """Count the frames among ``frames`` whose output has been written since the job started."""
        for frame in frames:
            if frame not in self._seen and _written_since(self._outputs[frame], self._since):
                self._seen.add(frame)
        self._show()

    def chunk_done(self, first: int, last: int) -> None:
        self._chunks_done += 1
        self._seen.update(f for f in range(first, last + 1) if f in self._outputs)
        self._show()
        if self._lines:
            elapsed = max(time.perf_counter() - self._started, 1e-9)
            fps = len(self._seen) / elapsed
            eta = (len(self._outputs) - len(self._seen)) / fps if fps > 0 else float("inf")
            print(f"chunk {first}-{last} done ({self._chunks_done}/{self._chunks} chunks, "
                  f"{len(self._seen)}/{len(self._outputs)} frames), {fps:.3f} frames/s, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)

    def _show(self) -> None:
        if self._bar.n != len(self._seen):
            self._bar.n = len(self._seen)
            self._bar.set_description(f"chunks {self._chunks_done}/{self._chunks}")
            self._bar.refresh()


def _written_since(path: str, since: float) -> bool:
    try:
        return os.stat(path).st_mtime >= since
    except OSError:
        return False
