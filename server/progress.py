"""Progress on long renders: one bar over every tile of every frame, with frames/s and ETA.

A CPU render of one UHD frame takes minutes, so a per-frame bar would sit still; counting tiles
gives a smooth ETA. The bar goes to stderr so ``--json`` output on stdout stays clean.
"""
from __future__ import annotations

import time
from types import TracebackType

from tqdm import tqdm


class TileProgress:
    """Context manager: ``start_frame(n)``, then ``tiles_done(done, total)`` per batch, ``end_frame()``."""

    def __init__(self, frames: int, tiles_per_frame: int, enabled: bool = True) -> None:
        self._frames, self._tiles_per_frame = frames, tiles_per_frame
        self._bar = tqdm(total=frames * tiles_per_frame, unit="tile", disable=not enabled, dynamic_ncols=True,
                         smoothing=0.1)
        self._frame_base = 0
        self._frames_done = 0
        self._started = time.perf_counter()

    def __enter__(self) -> TileProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.close()

    def start_frame(self, frame_number: int) -> None:
        self._bar.set_description(f"frame {frame_number} ({self._frames_done + 1}/{self._frames})")

    def tiles_done(self, done: int, total: int) -> None:
        """Called by the tile engine after each batch with the tiles finished in this frame."""
        self._bar.n = self._frame_base + done
        self._bar.refresh()

    def end_frame(self) -> None:
        self._frames_done += 1
        self._frame_base = self._frames_done * self._tiles_per_frame
        self._bar.n = self._frame_base
        elapsed = time.perf_counter() - self._started
        self._bar.set_postfix(fps=f"{self._frames_done / elapsed:.3f}" if elapsed > 0 else "-")
