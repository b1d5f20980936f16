"""Render-farm benchmark (issue 8): per-chunk overhead against chunk size, and Ray with 1 and 2
workers against a local render of the same frames.

(a) **Chunks as farm tasks run them**: one `nightgrade enhance --frames A-B --json` process per
chunk, as an OpenJD task or an OpenCue frame does. For each chunk size C, a chunk from the middle
of the sequence (both temporal handles on disk) is rendered in a fresh process, per-frame and
temporal (radius ``--radius``). Times are the child's CPU time (user + system, from
``getrusage(RUSAGE_CHILDREN)``) and wall time. A least-squares line ``cost = fixed + per_frame x C``
over the chunk sizes gives the fixed cost of a chunk (interpreter, imports, model load, OCIO,
header probe) and the cost of a frame; a temporal chunk also pays ``2 x radius`` handle passes,
which shows in its fixed cost. Measured apart: a process that only imports NightGrade, and the
model load (in process, best of 3).

(b) **Ray**: ``--ray-frames`` frames rendered in process (torch threads 1 and 2), then on a local
Ray instance (``num_cpus=2``) with 1 and 2 workers of one CPU each, chunks of ``--ray-chunk``.
Ray wall times are the whole call (the instance already running) and its render phase (after
every worker loaded its model); CPU is what the workers' processes report.

(c) **Storage**: bytes per pixel of the shipped night clip written as half EXR (zip, as the farm
writes outputs) and as float EXR (zip, as the frame cache's disk tier stores enhanced frames),
scaled to a 7680x4320 frame for the storage plan in docs/farm.md.

Frames are the shipped night clip resized to ``--size``; the shipped model; CPU.
``python bench/farm.py [--size 320x180] [--write-docs]``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import torch

from _common import load_average, markdown_table, run_lines, text_table, write_section
from nightgrade.colorpipeline.io.imageio import WriteOptions, read_frame, write_frame
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.server.render.defaults import resolve_weights, sample_clip_pattern
from nightgrade.server.render.pipeline import RenderOptions, render_sequence

HEADING = "## Render farm (issue 8)"
FRAMES_8K = 7680 * 4320


def make_sequence(folder: Path, width: int, height: int, count: int) -> str:
    """The first ``count`` frames of the shipped clip, resized, as half EXRs in the model's space."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = sample_clip_pattern().replace("####", "%04d")
    for i in range(count):
        rgb = read_frame(clip % (150 + i)).rgb
        small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        spec = oiio.ImageSpec(width, height, 3, "half")
        spec.attribute("oiio:ColorSpace", "srgb_rec709_scene")
        out = oiio.ImageOutput.create(str(folder / f"s.{i + 1:04d}.exr"))
        out.open(str(folder / f"s.{i + 1:04d}.exr"), spec)
        out.write_image(np.ascontiguousarray(small, dtype=np.float32))
        out.close()
    return str(folder / "s.####.exr")


def child_run(argv: list[str], threads: int) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, stdout) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": str(threads)})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall, done.stdout


def chunk_costs(src: str, work: Path, sizes: list[int], radius: int, threads: int) -> dict[str, list]:
    """(a): CPU and wall time of one chunk process per size, plain and temporal."""
    rows: dict[str, list] = {"plain": [], "temporal": []}
    for kind in rows:
        for size in sizes:
            first = radius + 1  # both handles exist: an interior chunk
            argv = [sys.executable, "-m", "nightgrade.server.cli.main", "enhance", src,
                    str(work / f"{kind}-{size}" / "o.####.exr"), "--frames", f"{first}-{first + size - 1}",
                    "--device", "cpu", "--json"]
            if kind == "temporal":
                argv += ["--temporal", "--radius", str(radius)]
            print(f"(a) {kind} chunk of {size} frame(s) ...", flush=True)
            cpu, wall, out = child_run(argv, threads)
            rows[kind].append((size, cpu, wall, json.loads(out).get("generator_passes", size)))
    return rows


def fit(points: list[tuple]) -> tuple[float, float, float, float]:
    """(fixed, per frame) for CPU and for wall time: least squares over (size, cpu, wall, ...)."""
    sizes = np.array([p[0] for p in points], dtype=float)
    cpu_slope, cpu_fixed = np.polyfit(sizes, [p[1] for p in points], 1)
    wall_slope, wall_fixed = np.polyfit(sizes, [p[2] for p in points], 1)
    return float(cpu_fixed), float(cpu_slope), float(wall_fixed), float(wall_slope)


def ray_runs(src: str, work: Path, frames: int, chunk: int) -> dict[str, dict[str, float]]:
    """(b): local in-process renders and Ray runs of the same frames."""
    import ray

    from nightgrade.server.farm.ray_jobs import RayConfig, render_on_ray

    results: dict[str, dict[str, float]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        opts = RenderOptions(src, str(work / f"local-{threads}" / "o.####.exr"), frames=f"1-{frames}", device="cpu")
        print(f"(b) local render, {threads} thread(s) ...", flush=True)
        cpu, started = time.process_time(), time.perf_counter()
        render_sequence(opts, show_progress=False)
        results[f"local, {threads} thread(s)"] = {"wall": time.perf_counter() - started,
                                                  "cpu": time.process_time() - cpu}
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results["ray instance start"] = {"wall": time.perf_counter() - started}
    try:
        for workers in (1, 2):
            opts = RenderOptions(src, str(work / f"ray-{workers}" / "o.####.exr"), frames=f"1-{frames}", device="cpu")
            print(f"(b) Ray, {workers} worker(s) ...", flush=True)
            summary = render_on_ray(opts, RayConfig(chunk_size=chunk, workers=workers), show_progress=False)
            info = summary["ray"]
            results[f"Ray, {workers} worker(s)"] = {
                "wall": summary["seconds"], "render": summary["seconds"] - info["startup_seconds"],
                "startup": info["startup_seconds"], "cpu": info["worker_cpu_seconds"]}
    finally:
        ray.shutdown()
    return results


def storage(work: Path) -> dict[str, float]:
    """(c): bytes per pixel of the night clip as half/zip and float/zip EXR."""
    clip = sample_clip_pattern().replace("####", "%04d")
    sizes = {"half": 0, "float": 0}
    pixels = 0
    for i in range(24):
        frame = read_frame(clip % (150 + i))
        pixels += frame.width * frame.height
        for depth in sizes:
            path = work / f"storage-{depth}.exr"
            write_frame(str(path), frame.with_rgb(frame.rgb), WriteOptions(bit_depth=depth, compression="zip",
                                                                             drop_extra_channels=True))
            sizes[depth] += path.stat().st_size
    return {depth: total / pixels for depth, total in sizes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180", help="frame size WxH (default 320x180)")
    parser.add_argument("--chunks", default="1,2,4,8", help="chunk sizes for (a) (default 1,2,4,8)")
    parser.add_argument("--radius", type=int, default=2, help="temporal radius for (a) (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of a chunk process (default 2)")
    parser.add_argument("--ray-frames", type=int, default=8, help="frames for (b) (default 8)")
    parser.add_argument("--ray-chunk", type=int, default=2, help="chunk size for (b) (default 2)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    started, load_start = time.perf_counter(), load_average()
    width, height = (int(v) for v in args.size.split("x"))
    sizes = [int(v) for v in args.chunks.split(",")]
    with tempfile.TemporaryDirectory(prefix="nightgrade-farm-bench-") as tmp:
        work = Path(tmp)
        src = make_sequence(work / "in", width, height, max(max(sizes) + 2 * args.radius, args.ray_frames))
        print("(a) imports only ...", flush=True)
        import_cpu, import_wall, _ = child_run([sys.executable, "-c", "from nightgrade.server.render import pipeline, "
                                                "temporal; from nightgrade.server.cli import main"], args.threads)
        loads = []
        for _ in range(3):
            tic = time.perf_counter()
            Engine.from_checkpoint(resolve_weights(None), EngineConfig(device="cpu"))
            loads.append(time.perf_counter() - tic)
        chunks = chunk_costs(src, work, sizes, args.radius, args.threads)
        rays = ray_runs(src, work, args.ray_frames, args.ray_chunk)
        bytes_per_pixel = storage(work)
    plain, temporal = fit(chunks["plain"]), fit(chunks["temporal"])
    rows = [["(a) process that only imports NightGrade", f"{import_cpu:.2f} s CPU, {import_wall:.2f} s wall"],
            ["(a) model load in process (shipped model, 2.9 MB)", f"{min(loads):.3f} s wall, best of 3"]]
    for kind, points in chunks.items():
        rows += [[f"(a) {kind} chunk of {s} frame(s), {p} generator passes", f"{c:.2f} s CPU, {w:.2f} s wall"]
                 for s, c, w, p in points]
    for kind, (cpu_fixed, cpu_frame, wall_fixed, wall_frame) in (("plain", plain), ("temporal", temporal)):
        rows.append([f"(a) {kind} fit: fixed per chunk + per frame",
                     f"{cpu_fixed:.2f} s + {cpu_frame:.2f} s x C CPU; "
                     f"{wall_fixed:.2f} s + {wall_frame:.2f} s x C wall"])
    handle = (temporal[0] - plain[0]) / (2 * args.radius)
    rows.append(["(a) temporal fixed - plain fixed, per handle frame", f"{handle:.2f} s CPU "
                 f"(a plain frame: {plain[1]:.2f} s)"])
    for name, r in rays.items():
        if name == "ray instance start":
            rows.append([f"(b) {name} (num_cpus=2)", f"{r['wall']:.2f} s wall"])
        elif name.startswith("local"):
            rows.append([f"(b) {name}, {args.ray_frames} frames", f"{r['cpu']:.2f} s CPU, {r['wall']:.2f} s wall"])
        else:
            rows.append([f"(b) {name}, {args.ray_frames} frames, chunks of {args.ray_chunk}",
                         f"{r['cpu']:.2f} s worker CPU, {r['wall']:.2f} s wall ({r['startup']:.2f} s start-up "
                         f"+ {r['render']:.2f} s rendering)"])
    one, two = rays["Ray, 1 worker(s)"], rays["Ray, 2 worker(s)"]
    rows.append(["(b) Ray rendering phase, 2 workers / 1 worker", f"{one['render'] / two['render']:.2f}x faster"])
    for depth, value in bytes_per_pixel.items():
        rows.append([f"(c) {depth} EXR (zip) of the night clip, RGB", f"{value:.2f} bytes/pixel = "
                     f"{value * FRAMES_8K / 1e6:.0f} MB at 7680x4320"])
    run = run_lines(load_start, started, {"ray": __import__("ray").__version__, "device": "cpu",
                                          "chunk process threads": str(args.threads)})
    print(text_table(["Measure", "Value"], rows))
    if args.write_docs:
        body = "\n".join([
            f"`python bench/farm.py --write-docs`: the shipped model on the night clip resized to {args.size}, CPU; "
            f"temporal chunks with radius {args.radius}; method in the script's docstring. Wall times on a shared "
            "machine grow with other work, CPU times much less: compare CPU times.",
            "", *run, "", markdown_table(["Measure", "Value"], rows), "",
            "docs/farm.md turns these into chunk-size guidance and the 100-GPU scaling plan.",
        ])
        write_section(HEADING, body)
        print("wrote", HEADING)


if __name__ == "__main__":
    main()
