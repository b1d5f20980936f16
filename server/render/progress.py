"""Progress on long renders: one bar over every tile of every frame, with frames/s and ETA.

A CPU render of one UHD frame takes minutes, so a per-frame bar would sit still; counting tiles
gives a smooth ETA. The bar goes to stderr so ``--json`` output on stdout stays clean. When stderr
is not a terminal (farm logs, pipes) a bar's carriage returns make unreadable logs: there, one line
per finished frame is printed instead.
"""
from __future__ import annotations

import sys
import time
from types import TracebackType

from tqdm import tqdm


class TileProgress:
    """Context manager: ``start_frame(n)``, then ``tiles_done(done, total)`` per batch, ``end_frame()``."""

    def __init__(self, frames: int, tiles_per_frame: int, enabled: bool = True, passes: bool = False) -> None:
        """``frames`` to count; ``passes``: they are generator passes, not output frames (a temporal
        render also enhances handle frames), and are shown as "pass i/n" so a chunk of 3 frames with
        3 handles never reads "(6/6)" as if it wrote 6 frames."""
        self._frames, self._tiles_per_frame = frames, tiles_per_frame
        self._count = "pass " if passes else ""
        self._lines = enabled and not sys.stderr.isatty()
        self._bar = tqdm(total=frames * tiles_per_frame, unit="tile", disable=not enabled or self._lines,
                         dynamic_ncols=True, smoothing=0.1)
        self._frame_number = 0
        self._frame_base = 0
        self._frames_done = 0
        self._started = time.perf_counter()

    def __enter__(self) -> TileProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.close()

    def start_frame(self, frame_number: int) -> None:
        self._frame_number = frame_number
        self._bar.set_description(f"frame {frame_number} ({self._count}{self._frames_done + 1}/{self._frames})")

    def tiles_done(self, done: int, total: int) -> None:
        """Called by the tile engine after each batch with the tiles finished in this frame."""
        self._bar.n = self._frame_base + done
        self._bar.refresh()

    def end_frame(self) -> None:
        self._frames_done += 1
        self._frame_base = self._frames_done * self._tiles_per_frame
        self._bar.n = self._frame_base
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        fps = self._frames_done / elapsed
        self._bar.set_postfix(fps=f"{fps:.3f}")
        if self._lines:
            eta = (self._frames - self._frames_done) / fps
            rate = "passes/s" if self._count else "frames/s"
            verb = "enhanced" if self._count else "done"
            print(f"frame {self._frame_number} {verb} ({self._count}{self._frames_done}/{self._frames}), "
                  f"{fps:.3f} {rate}, ETA {eta:.0f} s", file=sys.stderr, flush=True)
