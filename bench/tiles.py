"""Tile engine benchmark (issues 3 and 17): overhead, MONAI and inference backends, 8K peak memory.

(a) ``Engine.enhance`` end to end against the generator's forward passes alone on the very same
    batches (built beforehand with ``iter_tile_batches``): goal raw / engine >= 0.9.
(b) ``Engine.enhance`` on each inference backend against MONAI ``sliding_window_inference``
    (Gaussian, sigma = Nl/6, overlap 0.5, the same batch size and network), see bench/tiles_monai.py:
    goals MONAI eager / ours eager >= 1.2, / ours on the default backend >= 1.5.
(c) Peak RSS of enhancing an 8K float32 frame in a fresh process, against the frame, the merge
    accumulators, the region band and one batch computed from their sizes.

(a) and (b) use the shipped model (models/weights); ``python bench/tiles.py`` runs everything
(about 10 minutes on 2 shared cores) and replaces the
"Tile engine and inference backends" section of docs/benchmarks.md; ``--quick`` is a < 30 s smoke run (on an
idle machine) with a small generator and frame that prints its table and leaves that file alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from _common import (Timing, cpu_ratio, load_average, markdown_table, max_spread, random_frame, run_lines,
                     text_table, time_interleaved, time_once, verdict, wall_ratio, write_section)
from nightgrade.colorpipeline.tiling.batches import run_tiled
from nightgrade.colorpipeline.tiling.plan import TileConfig, iter_tile_batches, plan_tiles
from nightgrade.models.checkpoint import load_checkpoint
from nightgrade.models.engine import Engine, EngineConfig, activation_bytes_per_tile
from nightgrade.models.networks import Generator, GeneratorConfig, build_generator
from nightgrade.server.render.defaults import shipped_weights_path
from tiles_monai import MonaiResult, bench_monai
from tiles_monai import describe as describe_b
from tiles_monai import findings as findings_b
from tiles_monai import rows as rows_b

HEADING = "## Tile engine and inference backends (issues 3, 17)"
GOAL_OVERHEAD = 0.95  # raw generator time / engine time
MB = 2**20


PAPER_TILES = TileConfig(local=360, region=1000)  # Nl, Nr of Sec. 4; stride Nl/2


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one bench run. ``batch=None`` takes the engine's batch size from its memory budget.
    (c) always uses the paper's tile geometry."""

    height: int
    width: int
    tiles: TileConfig
    generator: GeneratorConfig
    rss_height: int
    rss_width: int
    rss_generator: GeneratorConfig
    repeats: int
    shipped: bool  # (a) and (b) use the shipped model instead of a random ``generator``
    batch: int | None = None


FULL = BenchConfig(height=720, width=1280, tiles=PAPER_TILES, generator=GeneratorConfig(),
                   rss_height=4320, rss_width=7680, rss_generator=GeneratorConfig(ngf=8, n_blocks=2),
                   repeats=2, shipped=True)
QUICK = BenchConfig(height=128, width=192, tiles=TileConfig(local=64, region=128),
                    generator=GeneratorConfig(ngf=8, n_blocks=2), rss_height=360, rss_width=640,
                    rss_generator=GeneratorConfig(ngf=8, n_blocks=2), repeats=1, shipped=False, batch=8)


@dataclass(frozen=True)
class OverheadResult:
    tiles: int
    batch: int
    raw: Timing
    engine: Timing
    plumbing: Timing  # run_tiled with an identity "generator": tile building + merging only
    per_tile_by_batch: dict[int, float]  # raw generator CPU seconds per tile at each batch size


@dataclass(frozen=True)
class RssResult:
    height: int
    width: int
    tiles: int
    batch: int
    seconds: float
    model_bytes: int
    base_rss: int  # current RSS after imports and model load
    peak_rss: int  # ru_maxrss after enhancing the frame
    frame_bytes: int
    accumulator_bytes: int
    band_bytes: int
    batch_io_bytes: int
    activation_bytes: int  # the engine's own per-batch estimate

    @property
    def data_bytes(self) -> int:
        return self.frame_bytes + self.accumulator_bytes + self.band_bytes + self.batch_io_bytes

    @property
    def measured_increase(self) -> int:
        return self.peak_rss - self.base_rss


def spec_of(tiles: TileConfig) -> TileConfig:
    return TileConfig(local=tiles.local, region=tiles.region, stride=tiles.step)


def new_generator(cfg: GeneratorConfig) -> Generator:
    torch.manual_seed(0)
    return build_generator(cfg).eval()


def b_generator_config(cfg: BenchConfig) -> GeneratorConfig:
    return bench_generator(cfg).config if cfg.shipped else cfg.generator


def bench_generator(cfg: BenchConfig) -> Generator:
    """The network of (a) and (b): the shipped model, or (--quick) a small random one."""
    if cfg.shipped:
        return load_checkpoint(shipped_weights_path()).generator.eval()
    return new_generator(cfg.generator)


def warm_up(generator: Generator, side: int, batch_sizes: set[int]) -> None:
    """One untimed forward per batch shape, so thread-pool start-up and oneDNN primitive
    creation fall outside every timed run."""
    with torch.inference_mode():
        for n in sorted(b for b in batch_sizes if b > 0):
            generator(torch.zeros(n, generator.config.in_channels, side, side))


def bench_overhead(cfg: BenchConfig, frame: np.ndarray) -> OverheadResult:
    """(a) Engine end to end vs the generator alone on the same pre-built batches."""
    engine = Engine(bench_generator(cfg), spec_of(cfg.tiles), EngineConfig(device="cpu", batch_size=cfg.batch))
    batch = engine.batch_size_for(cfg.tiles.local)
    plan = plan_tiles(*frame.shape[:2], cfg.tiles)
    cin = engine.generator_config.in_channels
    inputs = [torch.from_numpy(b.inputs[:, :cin]).mul(2.0).sub(1.0)
              for b in iter_tile_batches(frame, plan, batch)]
    warm_up(engine.generator, cfg.tiles.local, {batch, plan.count % batch})

    def raw() -> None:
        with torch.inference_mode():
            for x in inputs:
                engine.generator(x)

    raw_t, engine_t = time_interleaved([raw, lambda: engine.enhance(frame, cfg.tiles)], cfg.repeats)
    (plumbing,) = time_interleaved([lambda: run_tiled(frame, lambda b: b[:, :3], cfg.tiles, batch)], cfg.repeats)

    # Per-tile cost against batch size, on the same tiles (extra: shows what the batch size buys).
    tiles = torch.cat(inputs)[:batch]
    per_tile: dict[int, float] = {}
    for size in sorted({1, 4, batch}):
        if size > len(tiles):
            continue
        warm_up(engine.generator, cfg.tiles.local, {size})
        with torch.inference_mode():
            seconds = time_once(lambda: [engine.generator(tiles[i:i + size])
                                         for i in range(0, len(tiles) - size + 1, size)]).cpu_best
        per_tile[size] = seconds / (len(tiles) // size * size)
    return OverheadResult(plan.count, batch, raw_t, engine_t, plumbing, per_tile)


def rss_child(cfg: BenchConfig) -> None:
    """(c), run in a fresh process: print one JSON line of peak-memory facts about an 8K enhance."""
    import psutil

    tiles = PAPER_TILES
    engine = Engine(new_generator(cfg.rss_generator), spec_of(tiles), EngineConfig(device="cpu"))
    h, w = cfg.rss_height, cfg.rss_width
    count = plan_tiles(h, w, tiles).count
    batch = min(count, engine.batch_size_for(tiles.local))
    gc.collect()
    base = psutil.Process().memory_info().rss
    frame = random_frame(h, w)
    seconds = time_once(lambda: engine.enhance(frame, tiles)).best
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    nl, gen = tiles.local, cfg.rss_generator
    print(json.dumps(dataclasses.asdict(RssResult(
        height=h, width=w, tiles=count, batch=batch, seconds=seconds,
        model_bytes=sum(p.numel() * p.element_size() for p in engine.generator.parameters()),
        base_rss=base, peak_rss=peak,
        frame_bytes=frame.nbytes,
        accumulator_bytes=h * w * 4 * 4,  # weighted sum (3 channels) + weight sum, float32
        band_bytes=nl * w * 3 * 4,  # one region row band shrunk to Nl rows
        # 6-channel tiles, the [-1, 1] model input, the output tensor and its numpy copy
        batch_io_bytes=batch * nl * nl * 4 * (6 + gen.in_channels + 2 * gen.out_channels),
        activation_bytes=batch * activation_bytes_per_tile(gen, nl),
    ))))


def bench_rss(quick: bool) -> RssResult:
    cmd = [sys.executable, os.path.abspath(__file__), "--rss-child"] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"RSS subprocess failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return RssResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def ratio_row(label: str, num: Timing, den: Timing, goal: float) -> list[str]:
    """A goal row: judged on CPU time, with the wall-time ratio alongside."""
    value = cpu_ratio(num, den)
    return [label, f"{value:.3f}x (wall {wall_ratio(num, den):.3f}x)", f">= {goal}x", verdict(value, goal)]


def rows(a: OverheadResult, b: MonaiResult, c: RssResult) -> list[list[str]]:
    r = [
        ["(a) generator alone, same batches", a.raw.describe(), "", ""],
        ["(a) Engine.enhance end to end", a.engine.describe(), "", ""],
        ["(a) tile build + merge only (identity net)", a.plumbing.describe(), "", ""],
        ratio_row("(a) raw / engine", a.raw, a.engine, GOAL_OVERHEAD),
        *([f"(a) generator CPU per tile, batch {n}", f"{t:.3g} s", "", ""] for n, t in a.per_tile_by_batch.items()),
    ]
    r += rows_b(b)
    computed = c.data_bytes + c.activation_bytes
    r += [
        [f"(c) {c.width}x{c.height}: tiles, batch, wall time", f"{c.tiles}, {c.batch}, {c.seconds:.1f} s", "", ""],
        ["(c) RSS after imports + model load", f"{c.base_rss / MB:.0f} MB", "", ""],
        ["(c) peak RSS (ru_maxrss)", f"{c.peak_rss / MB:.0f} MB", "", ""],
        ["(c) peak - baseline, measured", f"{c.measured_increase / MB:.0f} MB", "", ""],
        ["(c) frame + accumulators + band + batch, computed", f"{computed / MB:.0f} MB", "measured <= computed",
         "yes" if c.measured_increase <= computed else f"no: {c.measured_increase / computed:.2f}x computed"],
    ]
    return r


def findings(a: OverheadResult, b: MonaiResult, c: RssResult) -> list[str]:
    """Plain-language reading of the numbers; every figure comes from this run."""
    out = [f"- (a) Building the 6-channel tiles and merging them (identity generator) takes "
           f"{a.plumbing.cpu_best:.2f} s CPU / {a.plumbing.best:.2f} s wall a frame, "
           f"{a.plumbing.cpu_best / a.engine.cpu_best:.1%} of the engine's CPU time: the generator is the cost. "
           f"Raw / engine is {cpu_ratio(a.raw, a.engine):.3f}x in CPU time, {wall_ratio(a.raw, a.engine):.3f}x "
           "in wall time."]
    per_batch = a.per_tile_by_batch
    best_batch = min(per_batch, key=per_batch.__getitem__)
    spread = max(per_batch.values()) / per_batch[best_batch]
    if a.batch in per_batch and per_batch[a.batch] / per_batch[best_batch] >= 1.1:
        out.append(f"- The generator alone costs least per tile at batch {best_batch} ({per_batch[best_batch]:.3g} s "
                   f"CPU), {per_batch[a.batch] / per_batch[best_batch]:.2f}x less than at the engine's batch "
                   f"{a.batch} ({per_batch[a.batch]:.3g} s): on this CPU a larger batch does not pay for itself.")
    elif spread < 1.1:
        out.append(f"- Batch size ({', '.join(map(str, per_batch))}) changes the generator's CPU time per tile by "
                   f"{spread - 1:.0%} at most: batching buys little on this CPU.")
    else:
        out.append(f"- Batching pays: the generator costs {per_batch[best_batch]:.3g} s CPU per tile at batch "
                   f"{best_batch} against {max(per_batch.values()):.3g} s at worst ({spread:.2f}x).")
    out += findings_b(b)
    out.append(f"- (c) Peak RSS rose {c.measured_increase / MB:.0f} MB over the {c.base_rss / MB:.0f} MB baseline. "
               f"Data terms: frame {c.frame_bytes / MB:.0f} MB, accumulators {c.accumulator_bytes / MB:.0f} MB, "
               f"region band {c.band_bytes / MB:.0f} MB, batch in/out {c.batch_io_bytes / MB:.0f} MB, together "
               f"{c.data_bytes / MB:.0f} MB; the generator's working memory (measured minus data terms) was "
               f"{(c.measured_increase - c.data_bytes) / MB:.0f} MB against the engine's estimate of "
               f"{c.activation_bytes / MB:.0f} MB for a batch of {c.batch}. The model's weights "
               f"({c.model_bytes / MB:.2f} MB) are in the baseline.")
    return out


def markdown(cfg: BenchConfig, run: list[str], a: OverheadResult, b: MonaiResult, c: RssResult) -> str:
    g, rg, nl = b_generator_config(cfg), cfg.rss_generator, cfg.tiles.local
    setup = [
        *run,
        "- Times: process CPU time (user + system, all threads) and wall time, best of the repeats (wall "
        "median alongside). Ratios are judged on CPU time, which other work on a shared machine barely "
        "changes; wall ratios are shown next to them. Under heavy load CPU time grows too (OpenMP threads "
        f"spin while waiting for a descheduled peer): repeats of one measurement differed by up to "
        f"{max_spread([a.raw, a.engine, *b.spreads()]):.0%} in this run.",
        f"- (a) {cfg.width}x{cfg.height} float32 frame; {'the shipped model, ' if cfg.shipped else ''}generator "
        f"ngf {g.ngf}, {g.n_blocks} blocks, "
        f"{g.in_channels} input channels, eager fp32; Nl {nl}, Nr {cfg.tiles.region} (reflected past the "
        f"frame); batch {a.batch} (the engine's, from its CPU memory budget) on both sides; {cfg.repeats} "
        "interleaved repeats.",
        describe_b(b, cfg.tiles),
        f"- (c) A fresh process enhancing a {c.width}x{c.height} float32 RGB frame with Nl {PAPER_TILES.local}, "
        f"Nr {PAPER_TILES.region} and a small generator (ngf {rg.ngf}, {rg.n_blocks} blocks, so its {c.tiles} "
        "tiles finish in minutes on 2 CPUs; the frame-sized terms do not depend on the generator); the "
        "engine's own batch size.",
    ]
    table = markdown_table(["Measure", "Value", "Goal", "Met"], rows(a, b, c))
    note = "_Written by `bench/tiles.py` (`make bench`); rerunning it replaces this section._"
    return "\n".join([note, "", *setup, "", table, "", "Reading the numbers:", "", *findings(a, b, c)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 30 s); does not write the doc")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    if args.rss_child:
        rss_child(cfg)
        return
    import monai

    start, load_start = time.perf_counter(), load_average()
    frame = random_frame(cfg.height, cfg.width)
    print(f"(a) overhead: {cfg.width}x{cfg.height} ...", flush=True)
    a = bench_overhead(cfg, frame)
    print("(b) vs MONAI, per backend ...", flush=True)
    b = bench_monai(bench_generator(cfg), cfg.tiles, frame, cfg.batch, cfg.repeats)
    print(f"(c) peak RSS at {cfg.rss_width}x{cfg.rss_height} in a subprocess ...", flush=True)
    c = bench_rss(args.quick)
    run = run_lines(load_start, start, {"MONAI": monai.__version__})
    print()
    print(text_table(["Measure", "Value", "Goal", "Met"], rows(a, b, c)))
    print("\n" + "\n".join(findings(a, b, c)) + "\n\n" + "\n".join(run))
    if cfg.repeats > 1:
        print(f"- Largest difference between repeats: {max_spread([a.raw, a.engine, *b.spreads()]):.0%}")
    if args.quick:
        print("--quick: docs/benchmarks.md left unchanged")
    else:
        write_section(HEADING, markdown(cfg, run, a, b, c))
        print("wrote the section", HEADING, "of docs/benchmarks.md")


if __name__ == "__main__":
    main()
