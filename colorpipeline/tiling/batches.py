"""The tiled runner: frames through one stream of generator batches, merged with Gaussian weights
(paper Sec. 3.1-3.3). :func:`run_tiled` is one frame (the CLI and farm path), :func:`run_tiled_many`
several frames sharing batches (the daemon's cross-request batching); the first is the second on a
list of one, so both paths give the same pixels by construction.

A proxy frame has fewer tiles than a generator batch holds, so rendering requests one at a time
leaves most of every batch empty. :func:`run_tiled_many` fills each batch with the tiles of
several frames that share one tile geometry (tiles are per-sample independent: the generator's
instance norm normalises each tile on its own, Sec. 3.2) and routes every output tile back to its
own frame's Gaussian merge (Sec. 3.3), tile for tile and in the same merge order as alone.

Frames are served in the order given: a batch takes the remaining tiles of the first unfinished
frame before those of the next, so the first frame (the scheduler's most urgent request) finishes
after as few batches as it would alone, and later frames fill the room it leaves.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from nightgrade.colorpipeline.errors import InputError, ModelError
from nightgrade.colorpipeline.tiling.merge import TileAccumulator
from nightgrade.colorpipeline.tiling.plan import TileBatch, TileConfig, TilePlan, check_frame, iter_tile_batches, plan_tiles


@dataclass(frozen=True)
class BatchInfo:
    """What one generator batch held: ``tiles`` tiles of the frames ``frame_indices`` (indices
    into the ``frames`` argument, in batch order), and which frames it completed (``finished``)."""

    tiles: int
    frame_indices: tuple[int, ...]
    finished: tuple[int, ...]

    @property
    def frames(self) -> int:
        """How many distinct frames had tiles in this batch."""
        return len(self.frame_indices)

    @property
    def cross_request(self) -> bool:
        """True when the batch held tiles of more than one frame."""
        return len(self.frame_indices) > 1


class _FrameTiles:
    """One frame's lazy tile stream and its merge accumulator (made at its first tile, so frames
    that have not started yet cost no frame-sized memory)."""

    def __init__(self, index: int, frame: np.ndarray, plan: TilePlan) -> None:
        self.index = index
        self.plan = plan
        self.left = plan.count
        # One tile at a time, so that any number of them can be taken into a shared batch; the
        # iterator keeps the current region band between tiles, as it does for whole batches.
        self._tiles: Iterator[TileBatch] = iter_tile_batches(frame, plan, 1)
        self._merged: TileAccumulator | None = None

    def next_tile(self) -> TileBatch:
        return next(self._tiles)

    def add(self, ys: np.ndarray, xs: np.ndarray, outputs: np.ndarray) -> None:
        if self._merged is None:
            self._merged = TileAccumulator(self.plan)
        self._merged.add(ys, xs, outputs)
        self.left -= len(ys)

    def result(self) -> np.ndarray:
        assert self._merged is not None and self.left == 0
        merged, self._merged = self._merged, None
        return merged.result()

    def drop(self) -> None:
        self._tiles.close()
        self._merged = None


def _checked(frames: Sequence[np.ndarray]) -> None:
    for i, frame in enumerate(frames):
        try:
            check_frame(frame)
        except InputError as err:
            raise InputError(f"frame {i} of {len(frames)}: {err}") from None


def run_tiled(
    frame: np.ndarray,
    generate: Callable[[np.ndarray], np.ndarray],
    cfg: TileConfig,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Enhance ``frame`` (float32 H x W x 3) tile by tile (Sec. 3.1-3.3).

    ``generate`` maps a float32 ``(B, 6, Nl, Nl)`` batch to ``(B, 3, Nl, Nl)`` (or more channels,
    of which the first 3 are the local RGB). Tiles are made and merged one batch at a time, so
    peak memory is the frame, the two accumulators, one batch and one region band.
    ``progress(done_tiles, total_tiles)`` is called after each batch.
    """
    check_frame(frame)
    total, done = plan_tiles(frame.shape[0], frame.shape[1], cfg).count, 0

    def on_batch(info: BatchInfo) -> None:
        nonlocal done
        done += info.tiles
        progress(done, total)

    result = run_tiled_many([frame], generate, cfg, batch_size, on_batch=on_batch if progress else None)[0]
    assert result is not None  # nothing stops a single frame
    return result


def run_tiled_many(
    frames: Sequence[np.ndarray],
    generate: Callable[[np.ndarray], np.ndarray],
    cfg: TileConfig,
    batch_size: int,
    should_stop: Callable[[int], bool] | None = None,
    on_batch: Callable[[BatchInfo], None] | None = None,
    on_result: Callable[[int, np.ndarray], None] | None = None,
) -> list[np.ndarray | None]:
    """Enhance float32 H x W x 3 ``frames`` (sizes may differ) through one stream of batches.

    ``generate`` maps ``(B, 6, Nl, Nl)`` to ``(B, C, Nl, Nl)``, C >= 3 (as for :func:`run_tiled`);
    a batch holds up to ``batch_size`` tiles, from as many frames as needed to fill it.
    ``should_stop(i)`` is asked for every unfinished frame before each batch: once it is True,
    frame ``i`` gets no more tiles, its accumulator is dropped and its result is None (a frame
    already finished keeps its result). ``on_batch`` is called after each batch is merged;
    ``on_result(i, result)`` as soon as frame ``i`` is complete, so that an urgent request can be
    answered before the frames sharing its last batch finish.

    Memory: the accumulators of the frames being worked on, the finished results, one batch and
    one region band per started frame; tiles are built only when a batch needs them.
    """
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} is not positive")  # the engine's choice: a bug, not a user's
    _checked(frames)
    results: list[np.ndarray | None] = [None] * len(frames)
    pending = [_FrameTiles(i, f, plan_tiles(f.shape[0], f.shape[1], cfg)) for i, f in enumerate(frames)]
    try:
        while pending:
            if should_stop is not None:
                for job in [job for job in pending if should_stop(job.index)]:
                    job.drop()
                    pending.remove(job)
            if not pending:
                break
            pending, finished, info = _run_one_batch(pending, generate, cfg.local, batch_size)
            for job in finished:
                result = results[job.index] = job.result()
                if on_result is not None:
                    on_result(job.index, result)
            if on_batch is not None:
                on_batch(info)
    finally:
        for job in pending:
            job.drop()
    return results


def _run_one_batch(
    pending: list[_FrameTiles], generate: Callable[[np.ndarray], np.ndarray], local: int, batch_size: int
) -> tuple[list[_FrameTiles], list[_FrameTiles], BatchInfo]:
    """Fill one batch from ``pending`` in order, run it and merge its outputs; return the frames
    still unfinished, those this batch finished, and its BatchInfo."""
    size = min(batch_size, sum(job.left for job in pending))
    inputs: np.ndarray | None = None
    segments: list[tuple[_FrameTiles, int, np.ndarray, np.ndarray]] = []
    filled = 0
    for job in pending:
        if filled == size:
            break
        take = min(job.left, size - filled)
        ys = np.empty(take, dtype=np.int64)
        xs = np.empty(take, dtype=np.int64)
        for k in range(take):
            tile = job.next_tile()
            if inputs is None:  # the channel count comes from the tile builder
                inputs = np.empty((size, *tile.inputs.shape[1:]), dtype=np.float32)
            inputs[filled + k] = tile.inputs[0]
            ys[k], xs[k] = tile.ys[0], tile.xs[0]
        segments.append((job, filled, ys, xs))
        filled += take
    assert inputs is not None and filled == size
    outputs = np.asarray(generate(inputs))
    del inputs
    if outputs.ndim != 4 or outputs.shape[0] != size:
        raise ModelError(
            f"generator returned shape {tuple(outputs.shape)} for a batch of {size} tiles of {local}x{local}: "
            f"expected ({size}, 3, {local}, {local}); check the model's output channels"
        )
    finished = []
    for job, start, ys, xs in segments:
        job.add(ys, xs, outputs[start:start + len(ys)])
        if job.left == 0:
            finished.append(job)
    info = BatchInfo(tiles=size, frame_indices=tuple(job.index for job, *_ in segments),
                     finished=tuple(job.index for job in finished))
    return [job for job in pending if job.left > 0], finished, info
