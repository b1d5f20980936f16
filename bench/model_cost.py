"""Cost of a model per frame (issue 14 goal: "a 1920x1080 frame on 2 CPU cores no slower than today's
model at equal tile settings, or the trade-off stated").

Each checkpoint given is loaded into an ``Engine`` (CPU, 2 torch threads, its own tile settings, the
default memory budget) and enhances the same 1920x1080 frame; the engines take turns, ``--repeats``
times each, after one untimed warm-up each, so background load falls on every side of the comparison.
Ratios are of the best process CPU time (wall time is shown beside it).

    python bench/model_cost.py OLD.safetensors [NEW.safetensors] [--backends torch,openvino] [--repeats 3]
        [--write-docs]

Each backend (``models.backends``) is compared on its own: old and new take turns on it.

NEW defaults to the shipped model. With ``--write-docs`` the result replaces the "Model cost per
frame" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from _common import (cpu_ratio, load_average, markdown_table, random_frame, run_lines, time_interleaved,
                     wall_ratio, write_section)
from nightgrade.models.checkpoint import read_meta
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.server.render.defaults import shipped_weights_path

HEADING = "## Model cost per frame (issue 14)"


def describe(path: str) -> str:
    meta = read_meta(path)
    g = meta.generator
    head = f", refinement head {g.refine} convs" if g.refine else ""
    return f"{meta.model_name} {meta.model_version} (ngf {g.ngf}, {g.n_blocks} blocks{head})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?", default=None)
    parser.add_argument("--backends", default="torch,openvino", help="comma-separated (default torch,openvino)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    new = args.new or str(shipped_weights_path())
    torch.set_num_threads(2)
    load_start, started = load_average(), time.perf_counter()
    frame = random_frame(1080, 1920)
    rows, ratios = [], []
    for backend in args.backends.split(","):
        engines = [Engine.from_checkpoint(p, EngineConfig(device="cpu", backend=backend)) for p in (args.old, new)]
        for engine in engines:
            engine.enhance(frame)  # warm-up: first-call allocations (and an ONNX export) are not the model's cost
        old_t, new_t = time_interleaved([lambda e=e: e.enhance(frame) for e in engines], args.repeats)
        rows += [[describe(p), backend, f"{e.tiles.local} / {e.tiles.region} / {e.tiles.step}",
                  t.describe()] for p, e, t in zip((args.old, new), engines, (old_t, new_t))]
        ratios.append(f"{backend}: new / old {cpu_ratio(new_t, old_t):.2f}x CPU time, "
                      f"{wall_ratio(new_t, old_t):.2f}x wall time.")
    body = [
        "_Written by `bench/model_cost.py` (method in its docstring); rerunning it replaces this section._", "",
        *run_lines(load_start, started), "",
        markdown_table(["model", "backend", "tiles Nl / Nr / stride", "one 1920x1080 frame"], rows), "",
        *(f"- {line}" for line in ratios),
    ]
    text = "\n".join(body)
    print(text)
    if args.write_docs:
        write_section(HEADING, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
