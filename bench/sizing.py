"""Sizing figures for a TD (issue 19 item 10): seconds and peak memory of one frame at 1080p and
UHD, as a farm task pays them.

Each measurement is one ``nightgrade enhance --json`` child process rendering ``--frames`` frames of
the shipped night clip resized to the size (half EXR in and out, the shipped model, CPU), per-frame
and, with ``--temporal``, with the temporal window (radius 2, so a one-frame chunk pays 2 handle
passes each side where the clip goes on). Reported: wall seconds, the child's CPU seconds (user +
system, ``getrusage(RUSAGE_CHILDREN)``), its peak resident memory (``ru_maxrss``: the largest
process, here the only one), the per-frame seconds from the render's own summary, and the load
average (the machine is shared: wall time grows with other work, CPU time much less).

``python bench/sizing.py [--sizes 1920x1080,3840x2160] [--frames 1] [--temporal] [--write-docs]``
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

from _common import load_average, markdown_table, run_lines, text_table, write_section
from farm import make_sequence

HEADING = "## Sizing: seconds and memory per frame (issue 19)"
NIGHTGRADE = str(Path(sys.executable).parent / "nightgrade")


def measure(src: str, out: Path, frames: str, temporal: bool) -> dict:
    """One child render; its summary plus wall, CPU and peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = [NIGHTGRADE, "enhance", src, str(out) + os.sep, "--frames", frames, "--device", "cpu", "--json",
            "--overwrite"] + (["--temporal", "--radius", "2"] if temporal else [])
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(done.stdout)
    return {"summary": summary, "wall": wall,
            "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_gib": after.ru_maxrss / 2**20}  # KiB on Linux; the maximum over children so far


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1920x1080", help="comma-separated WxH (default 1920x1080)")
    parser.add_argument("--frames", type=int, default=1, help="frames per render (default 1)")
    parser.add_argument("--temporal", action="store_true", help="also measure temporal renders (radius 2)")
    parser.add_argument("--write-docs", action="store_true", help="replace this section of docs/benchmarks.md")
    args = parser.parse_args()
    load_start, started = load_average(), time.perf_counter()
    rows = []
    # sizes in ascending order: ru_maxrss is a maximum over all children so far, so each row's peak
    # is its own only when it is the largest yet
    sizes = sorted((tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")), key=lambda s: s[0] * s[1])
    with tempfile.TemporaryDirectory(prefix="ng-sizing-") as tmp:
        for width, height in sizes:
            count = args.frames + (4 if args.temporal else 0)
            src = make_sequence(Path(tmp) / f"in{width}", width, height, count)
            first = 1 + (2 if args.temporal else 0)
            frames = f"{first}-{first + args.frames - 1}"
            for temporal in (False, True) if args.temporal else (False,):
                m = measure(src, Path(tmp) / f"out{width}{temporal}", frames, temporal)
                s = m["summary"]
                passes = s.get("generator_passes", s["frames_written"])
                rows.append([f"{width}x{height}", "temporal r2" if temporal else "per frame",
                             str(s["frames_written"]), str(passes), str(s["tiles"]["per_frame"]),
                             f"{m['wall']:.1f}", f"{m['cpu']:.1f}", f"{s['seconds'] / s['frames_written']:.1f}",
                             f"{m['peak_gib']:.2f}", load_average()])
                print(text_table(HEADER, rows[-1:]), flush=True)
    body = "\n".join([
        f"`python bench/sizing.py --sizes {args.sizes} --frames {args.frames}"
        + (" --temporal" if args.temporal else "") + " --write-docs` under `nice -n 10`: one `nightgrade enhance` "
        "process per row, the shipped model, CPU, half EXR in and out; method in the script's docstring. "
        "Wall and render seconds grow with the other work on a shared machine (load column), CPU seconds much "
        "less.", "",
        *run_lines(load_start, started), "",
        markdown_table(HEADER, rows), "",
        "docs/first-hour-td.md turns these into a sizing table.",
    ])
    print(body)
    if args.write_docs:
        write_section(HEADING, body)
    return 0


HEADER = ["size", "mode", "frames", "generator passes", "tiles/frame", "process wall s", "process CPU s",
          "render s/frame", "peak memory GiB", "load after (1/5/15)"]

if __name__ == "__main__":
    sys.exit(main())
