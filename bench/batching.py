"""Cross-request tile batching benchmark (issue 6): small frames together against one at a time.

A frame with fewer tiles than a generator batch (a thumbnail, a proxy) leaves most of every batch
empty when requests are rendered one by one. The daemon puts the tiles of waiting requests with
the same model and tile geometry into shared batches (``run_tiled_many``). This measures the gain:
N frames through one :class:`Engine` with ``run_tiled_many`` over all of them, against
``run_tiled_many`` over each frame alone (the same code path as ``Engine.enhance``), with the same
batch size. Reported: tiles per second both ways (CPU time and wall time), their ratio, generator
calls and mean tiles per call, and the largest difference between the two results.

``python bench/batching.py`` uses the shipped default model on ``--device auto`` (CUDA when
present); ``--json PATH`` saves the numbers, ``--write-docs`` replaces the "Cross-request tile
batching (issue 6)" section of docs/benchmarks.md. Batching pays where a larger batch runs faster
per tile: on a GPU. On a CPU the generator costs about the same per tile at any batch size.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from _common import (Timing, load_average, markdown_table, max_spread, random_frame, run_lines, text_table,
                     time_interleaved, write_section)
from nightgrade.colorpipeline.tiling.batches import BatchInfo, run_tiled_many
from nightgrade.colorpipeline.tiling.plan import TileConfig, plan_tiles
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.server.render.defaults import resolve_weights

HEADING = "## Cross-request tile batching (issue 6)"


@dataclass(frozen=True)
class BatchingResult:
    """One comparison. Timings cover all ``frames`` frames; calls are generator batches per run."""

    device: str
    frames: int
    height: int
    width: int
    tiles: TileConfig
    tiles_per_frame: int
    batch: int
    together: Timing
    alone: Timing
    calls_together: int
    calls_alone: int
    cross_request_batches: int
    max_diff: float

    @property
    def total_tiles(self) -> int:
        return self.frames * self.tiles_per_frame

    def tiles_per_s(self, timing: Timing, cpu: bool) -> float:
        return self.total_tiles / (timing.cpu_best if cpu else timing.best)

    def gain(self, cpu: bool) -> float:
        """Tiles/s together over tiles/s alone."""
        return self.tiles_per_s(self.together, cpu) / self.tiles_per_s(self.alone, cpu)


def _batch_sizes(frames: Sequence[np.ndarray], tiles: TileConfig, batch: int) -> set[int]:
    """Every batch size the two runs will hand the generator."""
    counts = [plan_tiles(f.shape[0], f.shape[1], tiles).count for f in frames]
    sizes = {min(batch, c) for c in counts} | {c % batch for c in counts}
    total = sum(counts)
    sizes |= {min(batch, total), total % batch}
    return sizes - {0}


def warm_up(engine: Engine, sizes: set[int], local: int) -> None:
    """Run each batch shape once, so that one-off kernel selection (oneDNN primitives, cuDNN
    autotuning) is not timed on either side."""
    for size in sorted(sizes):
        engine.run_batch(np.zeros((size, 6, local, local), np.float32))


def bench_batching(engine: Engine, frames: Sequence[np.ndarray], tiles: TileConfig, batch: int | None = None,
                   repeats: int = 2) -> BatchingResult:
    """Time ``frames`` through ``engine`` in shared batches and one frame at a time (interleaved
    repeats), with ``batch`` tiles per generator call (default: the engine's for this tile size)."""
    batch = batch if batch is not None else engine.batch_size_for(tiles.local)
    counts = {plan_tiles(f.shape[0], f.shape[1], tiles).count for f in frames}
    if len(counts) != 1:
        raise ValueError("bench frames must all have the same size")
    warm_up(engine, _batch_sizes(frames, tiles, batch), tiles.local)
    calls = {"together": 0, "alone": 0}
    cross = [0]
    outputs: dict[str, list[np.ndarray | None]] = {}

    def counting(name: str) -> Callable[[np.ndarray], np.ndarray]:
        def generate(x: np.ndarray) -> np.ndarray:
            calls[name] += 1
            return engine.run_batch(x)
        return generate

    def on_batch(info: BatchInfo) -> None:
        cross[0] += info.cross_request

    def together() -> None:
        outputs["together"] = run_tiled_many(frames, counting("together"), tiles, batch, on_batch=on_batch)

    def alone() -> None:
        outputs["alone"] = [run_tiled_many([f], counting("alone"), tiles, batch)[0] for f in frames]

    together_t, alone_t = time_interleaved([together, alone], repeats)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs["together"], outputs["alone"]))
    return BatchingResult(
        device=str(engine.device), frames=len(frames), height=frames[0].shape[0], width=frames[0].shape[1],
        tiles=tiles, tiles_per_frame=counts.pop(), batch=batch, together=together_t, alone=alone_t,
        calls_together=calls["together"] // repeats, calls_alone=calls["alone"] // repeats,
        cross_request_batches=cross[0] // repeats, max_diff=diff)


def rows(r: BatchingResult) -> list[list[str]]:
    def speed(t: Timing) -> str:
        return f"{r.tiles_per_s(t, cpu=True):.2f} (CPU), {r.tiles_per_s(t, cpu=False):.2f} (wall)"

    return [
        ["frames x tiles each, batch", f"{r.frames} x {r.tiles_per_frame}, batch {r.batch}"],
        ["together: time", r.together.describe()],
        ["alone: time", r.alone.describe()],
        ["together: tiles/s", speed(r.together)],
        ["alone: tiles/s", speed(r.alone)],
        ["gain, together / alone", f"{r.gain(cpu=True):.2f}x CPU, {r.gain(cpu=False):.2f}x wall"],
        ["generator calls together / alone",
         f"{r.calls_together} / {r.calls_alone} (mean {r.total_tiles / r.calls_together:.1f} / "
         f"{r.total_tiles / r.calls_alone:.1f} tiles a call)"],
        ["batches holding several frames", str(r.cross_request_batches)],
        ["max abs(together - alone)", f"{r.max_diff:.1e}"],
    ]


def to_json(r: BatchingResult) -> dict:
    data = dataclasses.asdict(r)
    data.update(total_tiles=r.total_tiles,
                tiles_per_s={"together_cpu": r.tiles_per_s(r.together, True), "alone_cpu": r.tiles_per_s(r.alone, True),
                             "together_wall": r.tiles_per_s(r.together, False),
                             "alone_wall": r.tiles_per_s(r.alone, False)},
                gain={"cpu": r.gain(True), "wall": r.gain(False)}, torch_threads=torch.get_num_threads())
    return data


def markdown(r: BatchingResult, run: list[str], weights: str) -> str:
    t = r.tiles
    setup = [
        *run,
        f"- Device {r.device}; model `{os.path.basename(weights)}`; {r.frames} float32 frames of {r.width}x{r.height} (noise), "
        f"Nl {t.local}, Nr {t.region}, stride {t.step}: {r.tiles_per_frame} tiles a frame; batch {r.batch}. "
        "Together: `run_tiled_many` over all frames; alone: over each frame in turn (the `Engine.enhance` path). "
        f"Interleaved repeats; largest difference between repeats {max_spread([r.together, r.alone]):.0%}.",
    ]
    note = "_Written by `bench/batching.py --write-docs`; rerunning it replaces this section._"
    gain = r.gain(cpu=True)
    reading = (f"Batching across requests ran at {gain:.2f}x the tiles per CPU second of one request at a time: "
               + ("it pays on this device." if gain > 1.0 else
                  "on this device a bigger batch costs more per tile, so the daemon does not batch across "
                  "requests here (`nightgrade serve` batches only on CUDA unless told otherwise)."))
    return "\n".join([note, "", *setup, "", markdown_table(["Measure", "Value"], rows(r)), "", reading])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="checkpoint (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--frames", type=int, default=8, help="frames per run (default 8)")
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=270)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="render scale for the model's tile sizes (default 1: thumbnails are rendered at scale 1)")
    parser.add_argument("--batch", type=int, help="tiles per generator call (default: the engine's)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="write the numbers as JSON")
    parser.add_argument("--write-docs", action="store_true", help="replace this bench's section of docs/benchmarks.md")
    args = parser.parse_args()

    start, load_start = time.perf_counter(), load_average()
    weights = resolve_weights(args.weights)
    engine = Engine.from_checkpoint(weights, EngineConfig(device=args.device))
    spec = engine.tiles
    tiles = TileConfig(spec.local, spec.region, spec.stride).scaled(args.scale, engine.size_multiple)
    frames = [random_frame(args.height, args.width, seed=i) for i in range(args.frames)]
    print(f"{args.frames} frames of {args.width}x{args.height} on {engine.device}, tiles {tiles} ...", flush=True)
    result = bench_batching(engine, frames, tiles, args.batch, args.repeats)
    run = run_lines(load_start, start)
    print(text_table(["Measure", "Value"], rows(result)))
    print("\n".join(run))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({**to_json(result), "run": run, "weights": weights}, out, indent=2)
        print("wrote", args.json)
    if args.write_docs:
        write_section(HEADING, markdown(result, run, weights))
        print("wrote the section", HEADING, "of docs/benchmarks.md")


if __name__ == "__main__":
    main()
