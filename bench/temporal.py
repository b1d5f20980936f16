"""Temporal window benchmark (issue 5, items 4 and 6): generator passes, cache, temporal stage cost.

(a) Generator passes: ``render_temporal`` (radius 6) over a synthetic clip of N frames at 144x256:
    a photo panning 2 px/frame with a second photo crossing it at 5 px/frame, light noise. A tiny
    random generator serves here, because the count does not depend on the model. Rows: a whole
    sequential render with the default cache; the naive cost (a 0-byte cache, so every use of a
    frame runs the generator); farm chunks of C frames, without a disk cache and with one shared
    disk cache. Reported per output frame: generator passes, flow estimates, the cache hit rate,
    and the largest difference between the chunked and the whole render.
(b) Cost at 1280x720 (and 3840x2160 with ``--uhd``): the temporal stage for one output frame in
    the steady state of a sequential render. That is 2N = 12 flow estimates and 12 occlusion masks
    (the other 12 flows come from the store) plus the average of 13 frames. It is set against the
    generator time of one frame: the paper's generator (ngf 64, 9 blocks, Nl 360, Nr 1000, random
    weights; the speed does not depend on them) run once on a 1280x720 frame. The UHD generator
    time is that measurement scaled by the tile count, not run (about 9x the 720p time).

``python bench/temporal.py`` (about 7 minutes on 2 shared cores, 9 with ``--uhd``) replaces the
"Temporal window (issue 5)" section of docs/benchmarks.md; ``--quick`` shortens the clip,
measures (b) at 640x360 with a small generator, and prints its tables without writing anything.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

from _common import (Timing, load_average, markdown_table, run_lines, text_table, time_once, write_section)
from nightgrade.colorpipeline.io.frame import Frame
from nightgrade.colorpipeline.io.imageio import read_frame, write_frame
from nightgrade.colorpipeline.temporal.average import TemporalConfig, temporal_average
from nightgrade.colorpipeline.temporal.motion import FlowConfig, estimate_flow, occlusion_mask
from nightgrade.colorpipeline.temporal.window import PairFlows, occlusion_beta
from nightgrade.colorpipeline.tiling.plan import TileConfig, plan_tiles
from nightgrade.models.checkpoint import CheckpointMeta, save_checkpoint
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.models.networks import GeneratorConfig, build_generator
from nightgrade.server.render.pipeline import RenderOptions
from nightgrade.server.render.temporal import TemporalRenderConfig, render_temporal

HEADING = "## Temporal window (issue 5)"
RADIUS = 6
GOAL_PASSES = 1.05  # generator passes per output frame, sequential render
TINY = GeneratorConfig(ngf=8, n_blocks=2)
PAPER_TILES = TileConfig(local=360, region=1000)
PAN, OBJECT_SPEED = (2.0, 0.7), (5.0, -1.5)  # px per frame at 1280x720, scaled with the frame


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(Path(skimage.data.__file__).parent / name), cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(image, dtype=np.float32) / 255.0


def clip(frames: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """The synthetic clip of the module doc: coffee.png panning, chelsea.png crossing it, noise 0.01."""
    factor = width / 1280
    pan, speed = np.float32(PAN) * factor, np.float32(OBJECT_SPEED) * factor
    margin = int(np.ceil(np.abs(pan).max() * frames)) + 4
    scene = cv2.resize(photo("coffee.png"), (width + 2 * margin, height + 2 * margin), interpolation=cv2.INTER_AREA)
    side = height // 3
    obj = cv2.resize(photo("chelsea.png"), (side, side), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    out = []
    for t in range(frames):
        shift = np.float64([[1, 0, -margin - pan[0] * t], [0, 1, -margin - pan[1] * t]])
        frame = cv2.warpAffine(scene, shift, (width, height), flags=cv2.INTER_LINEAR)
        x0 = int(round(width * 0.1 + speed[0] * t)) % max(1, width - side)
        y0 = int(round(height * 0.4 + speed[1] * t)) % max(1, height - side)
        frame[y0:y0 + side, x0:x0 + side] = obj
        out.append(np.clip(frame + rng.normal(0, 0.01, frame.shape), 0, 1).astype(np.float32))
    return out


@dataclass(frozen=True)
class PassRow:
    name: str
    outputs: int
    passes: int
    flows: int
    hit_rate: float
    max_diff: float | None

    def cells(self) -> list[str]:
        diff = "-" if self.max_diff is None else f"{self.max_diff:.1e}"
        return [self.name, str(self.outputs), str(self.passes), f"{self.passes / self.outputs:.3f}",
                f"{self.flows / self.outputs:.2f}", f"{self.hit_rate:.1%}", diff]


def passes_run(folder: Path, frames: int, chunk: int) -> list[PassRow]:
    """Part (a): every render of the same clip, in one folder."""
    torch.manual_seed(0)
    weights = folder / "tiny.safetensors"
    save_checkpoint(weights, build_generator(TINY),
                    CheckpointMeta(generator=TINY, tiles=TileConfig(64, 160, 32), model_name="tiny", model_version="0"))
    src = folder / "in"
    src.mkdir()
    for i, pixels in enumerate(clip(frames, 144, 256), start=1):
        write_frame(str(src / f"c.{i:04d}.exr"), Frame.from_array(pixels))

    def render(out: str, cache_mb: int | None = None, cache_dir: Path | None = None,
               frame_range: str | None = None) -> dict:
        opts = RenderOptions(str(src / "c.####.exr"), str(folder / out / "o.####.exr"), weights=str(weights),
                             frames=frame_range, bit_depth="float")
        cfg = TemporalRenderConfig(window=TemporalConfig(radius=RADIUS), cache_mb=cache_mb,
                                   cache_dir=None if cache_dir is None else str(cache_dir))
        return render_temporal(opts, cfg, show_progress=False)

    def diff(out: str) -> float:
        return max(float(np.abs(read_frame(str(folder / out / f"o.{f:04d}.exr")).rgb
                                - read_frame(str(folder / "full" / f"o.{f:04d}.exr")).rgb).max())
                   for f in range(1, frames + 1))

    def row(name: str, summaries: list[dict], out: str | None) -> PassRow:
        found = sum(s["cache"]["hits"] + s["cache"]["disk_hits"] for s in summaries)
        gets = found + sum(s["cache"]["misses"] for s in summaries)
        return PassRow(name, sum(s["frames_written"] for s in summaries), sum(s["generator_passes"] for s in summaries),
                       sum(s["flow_estimates"] for s in summaries), found / gets, None if out is None else diff(out))

    ranges = [f"{a}-{min(frames, a + chunk - 1)}" for a in range(1, frames + 1, chunk)]
    return [
        row("whole clip, in order, default cache", [render("full")], None),
        row("naive: no cache (0 MB)", [render("naive", cache_mb=0)], "naive"),
        row(f"{len(ranges)} farm chunks of {chunk}, no disk cache", [render("chunks", frame_range=r) for r in ranges],
            "chunks"),
        row(f"{len(ranges)} farm chunks of {chunk}, shared disk cache",
            [render("shared", cache_dir=folder / "cache", frame_range=r) for r in ranges], "shared"),
    ]


@dataclass(frozen=True)
class CostRow:
    size: str
    flow: Timing
    average: Timing
    generator_cpu: float
    generator_wall: float
    estimated: bool

    def cells(self) -> list[str]:
        total_cpu = self.flow.cpu_best + self.average.cpu_best
        total_wall = self.flow.best + self.average.best
        generator = f"{self.generator_cpu:.1f} s CPU, {self.generator_wall:.1f} s wall" + (
            " (estimated from tiles)" if self.estimated else "")
        return [self.size, self.flow.describe(), self.average.describe(),
                f"{total_cpu:.2f} s CPU, {total_wall:.2f} s wall", generator,
                f"{total_cpu / self.generator_cpu:.3f} CPU, {total_wall / self.generator_wall:.3f} wall"]


def stage_time(height: int, width: int) -> tuple[Timing, Timing]:
    """Part (b): the temporal stage of one steady-state output frame (module doc)."""
    frames = dict(zip(range(-RADIUS, RADIUS + 1), clip(2 * RADIUS + 1, height, width, seed=1)))
    cfg = FlowConfig()
    beta = occlusion_beta((height, width), cfg)
    past = {}  # from the store in a render: computed when those frames were the centre, not timed
    for k in range(-RADIUS, 0):
        forward, backward = estimate_flow(frames[0], frames[k], cfg), estimate_flow(frames[k], frames[0], cfg)
        past[k] = (forward, occlusion_mask(forward, backward, beta=beta))
    store = PairFlows(cfg, keep_reverse=lambda centre, neighbour: neighbour > centre)
    future: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    flow_time = time_once(lambda: future.update({k: store.get(0, k, frames[0], frames[k])
                                                 for k in range(1, RADIUS + 1)}))
    motion = past | future
    neighbours = {k: frames[k] for k in motion}
    window = TemporalConfig(radius=RADIUS)
    average_time = time_once(lambda: temporal_average(
        frames[0], neighbours, {k: m[0] for k, m in motion.items()},
        {k: m[1] for k, m in motion.items()}, window))
    return flow_time, average_time


def generator_time(height: int, width: int, generator: GeneratorConfig, tiles: TileConfig) -> Timing:
    torch.manual_seed(0)
    engine = Engine(build_generator(generator), TileConfig(tiles.local, tiles.region, tiles.step),
                    EngineConfig(device="cpu"))
    frame = clip(1, height, width, seed=2)[0]
    engine.enhance(clip(1, tiles.local, tiles.local, seed=3)[0], tiles)  # warm-up: first-call allocations
    return time_once(lambda: engine.enhance(frame, tiles))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short clip, 640x360, small generator; print only")
    parser.add_argument("--uhd", action="store_true", help="also time the temporal stage at 3840x2160")
    args = parser.parse_args()
    load_start, started = load_average(), time.perf_counter()
    frames, chunk = (16, 8) if args.quick else (30, 10)
    with tempfile.TemporaryDirectory() as tmp:
        pass_rows = passes_run(Path(tmp), frames, chunk)
    pass_header = ["render", "output frames", "generator passes", "passes / frame", "flow estimates / frame",
                   "cache hit rate", "max |chunk - whole|"]
    print(text_table(pass_header, [r.cells() for r in pass_rows]))

    height, width = (360, 640) if args.quick else (720, 1280)
    generator = GeneratorConfig(ngf=16, n_blocks=3) if args.quick else GeneratorConfig()
    gen = generator_time(height, width, generator, PAPER_TILES)
    cost_rows = [CostRow(f"{width}x{height}", *stage_time(height, width), gen.cpu_best, gen.best, False)]
    if args.uhd:
        per_tile = plan_tiles(height, width, PAPER_TILES).count
        factor = plan_tiles(2160, 3840, PAPER_TILES).count / per_tile
        cost_rows.append(CostRow("3840x2160", *stage_time(2160, 3840), gen.cpu_best * factor, gen.best * factor, True))
    cost_header = ["frame", "flows (12 estimates + masks)", "average of 13", "temporal stage", "generator / frame",
                   "temporal / generator"]
    print(text_table(cost_header, [r.cells() for r in cost_rows]))
    if args.quick:
        return

    whole = pass_rows[0]
    passes = whole.passes / whole.outputs
    body = [
        "_Written by `bench/temporal.py`; rerunning it replaces this section._",
        "",
        *run_lines(load_start, started, {"OpenCV": cv2.__version__}),
        f"- Clip: {frames} frames, coffee.png panning {PAN[0]:g}, {PAN[1]:g} px/frame (at 1280 px width), "
        f"chelsea.png crossing it at {OBJECT_SPEED[0]:g}, {OBJECT_SPEED[1]:g} px/frame, noise sigma 0.01; radius "
        f"{RADIUS}, default flow settings ({FlowConfig().method}, wavelet refinement on).",
        "",
        f"(a) Generator passes at 144x256 (tiny random generator; goal <= {GOAL_PASSES} passes per output frame "
        f"for a sequential render, naive {2 * RADIUS + 1}):",
        "",
        markdown_table(pass_header, [r.cells() for r in pass_rows]),
        "",
        "(b) Temporal stage per output frame (steady state) against the generator, paper geometry "
        f"(Nl {PAPER_TILES.local}, Nr {PAPER_TILES.region}), torch and OpenCV default threads:",
        "",
        markdown_table(cost_header, [r.cells() for r in cost_rows]),
        "",
        "Reading the numbers:",
        "",
        f"- Sequential render: {passes:.3f} generator passes per output frame (goal <= {GOAL_PASSES}: "
        f"{'met' if passes <= GOAL_PASSES else 'not met'}), cache hit rate {whole.hit_rate:.1%} "
        f"(at most {2 * RADIUS}/{2 * RADIUS + 1} = {2 * RADIUS / (2 * RADIUS + 1):.1%}: each frame is missed once). "
        f"Flow estimates: {whole.flows / whole.outputs:.2f} per output frame (2N = {2 * RADIUS} in the steady "
        "state; 4N without the flow store).",
        "- Farm chunks pay for their handle frames (up to 2N extra passes per chunk) and for the flows across "
        "their boundaries unless a shared `--cache-dir` already holds them (enhanced frames and boundary flows); "
        "chunked output equals the whole render (last column).",
        "- The temporal stage is dominated by the 12 flow estimates; see the motion estimation section "
        "for the per-pair cost of each method.",
    ]
    write_section(HEADING, "\n".join(body))


if __name__ == "__main__":
    main()
