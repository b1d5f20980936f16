"""Shared helpers for the bench scripts: machine description, timing, tables, and the
section-per-script layout of ``docs/benchmarks.md``.

Each bench script owns one ``## `` section of the results file and replaces only that section,
so scripts can be run (and rerun) in any order without clobbering each other's numbers.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = REPO_ROOT / "docs" / "benchmarks.md"
_RESULTS_TITLE = (
    "# Benchmarks\n\n"
    "Measured numbers, one section per bench script (`bench/*.py`, run all with `make bench`). Each script\n"
    "replaces only its own section, so the sections below may come from different runs and machines:\n"
    "read the machine line of each section before comparing them.\n"
)


@dataclass(frozen=True)
class Timing:
    """Wall and process CPU times (user + system, all threads) of the repeats of one measurement,
    in seconds.

    On a machine shared with other work, wall time grows with the other work's load while CPU
    time barely moves, so comparisons are made on CPU time and wall time is shown alongside.
    """

    wall: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def best(self) -> float:
        # The minimum is the run least disturbed by other work on a shared machine.
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_best(self) -> float:
        return min(self.cpu)

    @property
    def spread(self) -> float:
        """Largest relative difference between repeats, CPU or wall: how noisy this number is."""
        return max(max(t) / min(t) - 1.0 for t in (self.wall, self.cpu))

    def describe(self) -> str:
        wall = f"{self.best:.2f} s" if len(self.wall) == 1 else f"{self.best:.2f} s (median {self.median:.2f})"
        return f"{self.cpu_best:.2f} s CPU, {wall} wall" + (f", n={len(self.wall)}" if len(self.wall) > 1 else "")


def cpu_ratio(num: Timing, den: Timing) -> float:
    return num.cpu_best / den.cpu_best


def wall_ratio(num: Timing, den: Timing) -> float:
    return num.best / den.best


def max_spread(timings: Iterable[Timing | None]) -> float:
    """The largest repeat-to-repeat difference among ``timings`` (None entries are skipped)."""
    return max((t.spread for t in timings if t is not None), default=0.0)


def time_once(fn: Callable[[], object]) -> Timing:
    """Wall and CPU time of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing((time.perf_counter() - wall,), (time.process_time() - cpu,))


def time_interleaved(fns: Sequence[Callable[[], object]], repeats: int) -> list[Timing]:
    """Time each of ``fns`` ``repeats`` times, alternating between them, so that a burst of
    background load falls on both sides of a comparison rather than on one."""
    runs: list[list[Timing]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            runs[i].append(time_once(fn))
    return [Timing(tuple(t.wall[0] for t in r), tuple(t.cpu[0] for t in r)) for r in runs]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The SIMD extensions that decide CPU convolution speed (AVX2 / AVX-512 / AMX)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
                return ", ".join(f for f in wanted if f in flags) or "no AVX2"
    except OSError:
        pass
    return "unknown"


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unavailable"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine_line() -> str:
    """One line describing the machine: CPU model and features, cores, RAM, OS."""
    return (f"{cpu_model()} ({cpu_flags()}), {os.cpu_count()} logical cores, {ram_gib():.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_lines(load_start: str, started: float, versions: dict[str, str] | None = None) -> list[str]:
    """The bullet lines every results section opens with: machine, date, library versions,
    thread count, run time, and the load average at start and now (the machine may be shared)."""
    import numpy
    import torch

    libs = {"torch": torch.__version__, "numpy": numpy.__version__, **(versions or {})}
    minutes = (time.perf_counter() - started) / 60
    return [
        f"- Machine: {machine_line()}",
        f"- Date: {today()}; " + ", ".join(f"{k} {v}" for k, v in libs.items())
        + f"; torch threads: {torch.get_num_threads()}; the run took {minutes:.1f} min",
        f"- Load average (1/5/15 min) at start: {load_start}; at end: {load_average()}",
    ]


def random_frame(height: int, width: int, seed: int = 0) -> "numpy.ndarray":
    """A float32 H x W x 3 frame of uniform noise in [0, 1)."""
    import numpy

    # Drawn in float32 directly: a float64 draw would briefly cost three frames of memory.
    return numpy.random.default_rng(seed).random((height, width, 3), dtype=numpy.float32)


def verdict(value: float, goal: float) -> str:
    """"yes", or how far ``value`` falls short of a ``>= goal`` target."""
    return "yes" if value >= goal else f"no: {value / goal:.0%} of goal, {goal / value:.2f}x short"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table for the terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in rows]
    return "\n".join(out)


def replace_section(text: str, heading: str, body: str) -> str:
    """``text`` with the ``## `` section titled ``heading`` replaced by ``heading + body``
    (appended when absent). A section runs to the next ``## `` heading or the end of the file."""
    lines = text.splitlines()
    section = [heading, "", *body.strip("\n").splitlines(), ""]
    try:
        start = lines.index(heading)
    except ValueError:
        while lines and not lines[-1].strip():
            lines.pop()
        lines = [*lines, "", *section]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = [*lines[:start], *section, *lines[end:]]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_section(heading: str, body: str, path: Path = RESULTS_PATH) -> None:
    """Replace (or append) this script's section of the results file, creating the file if needed."""
    text = path.read_text() if path.exists() else _RESULTS_TITLE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(replace_section(text, heading, body))
    tmp.replace(path)


QUALITY_PATH = REPO_ROOT / "docs" / "quality.md"


def report_quality_section(lines: list[str], write_docs: bool) -> int:
    """Print a quality benchmark's section (its heading first in ``lines``) and, with ``write_docs``,
    put it into docs/quality.md in place of the previous run's; returns the exit status 0."""
    text = "\n".join(lines) + "\n"
    print(text)
    if write_docs:
        write_section(lines[0], text.split("\n", 1)[1], QUALITY_PATH)
    return 0
