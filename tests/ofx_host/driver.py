"""Python side of the OFX test host: builds the plug-in and the host with CMake, writes job files
and raw frames (float32, rows top to bottom), runs the host and reads its log back.

The host's log is one ``KEY rest`` line per event (see tests/ofx_host/main.cpp); the tests assert
on it and on the raw outputs the host writes.
"""
from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_BINARY = Path("NightGrade.ofx.bundle/Contents/Linux-x86-64/NightGrade.ofx")


@dataclass(frozen=True)
class Build:
    plugin: Path
    host: Path
    sanitized: bool


def build(build_dir: Path, sanitize: bool = False) -> Build:
    """Configure (once) and build ofx_bridge plus the test host in ``build_dir``; reruns only
    recompile what changed. Sanitized builds use -O1 to stay quick on small machines."""
    hint = "\n(the build needs Debian's build packages: run scripts/install-build-deps.sh as root)"
    if not (build_dir / "CMakeCache.txt").exists():
        done = subprocess.run(["cmake", "-S", str(ROOT / "ofx_bridge"), "-B", str(build_dir),
                               f"-DCMAKE_BUILD_TYPE={'Debug' if sanitize else 'Release'}",
                               f"-DNIGHTGRADE_OFX_SANITIZE={'ON' if sanitize else 'OFF'}"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:] + hint
    done = subprocess.run(["cmake", "--build", str(build_dir), "-j2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:] + hint
    return Build(build_dir / BUNDLE_BINARY, build_dir / "ofx_test_host", sanitize)


def exported_symbols(plugin: Path) -> list[str]:
    listing = subprocess.run(["nm", "-D", "--defined-only", str(plugin)], check=True, capture_output=True, text=True)
    return sorted(line.split()[-1] for line in listing.stdout.splitlines() if line.strip())


def quantise(pixels: np.ndarray, depth: str) -> np.ndarray:
    """What a host image of ``depth`` holds for float ``pixels``, read back as float32."""
    if depth == "half":
        return pixels.astype(np.float16).astype(np.float32)
    levels = {"short": 65535.0, "byte": 255.0}.get(depth)
    if levels is None:
        return pixels.astype(np.float32)
    return (np.round(np.clip(pixels, 0.0, 1.0) * levels) / levels).astype(np.float32)


@dataclass(frozen=True)
class HostLog:
    lines: list[tuple[str, str]]
    returncode: int
    stderr: str

    def all(self, key: str) -> list[str]:
        return [rest for k, rest in self.lines if k == key]

    def render_statuses(self) -> list[int]:
        return [int(rest.split()[-1]) for rest in self.all("RENDER")]

    def persistent(self) -> list[str]:
        return self.all("PERSISTENT")

    def values(self) -> dict[str, str]:
        return dict((rest.split(" ", 1) + [""])[:2] for rest in self.all("VALUE"))

    def choices(self, name: str) -> list[str]:
        for rest in self.all("CHOICE"):
            param, _, options = rest.partition(" ")
            if param == name:
                return options.split("|") if options else []
        return []

    def params(self) -> dict[str, dict[str, str]]:
        """Parameter name -> {"type": ..., property: value} from the PARAM lines."""
        out = {}
        for rest in self.all("PARAM"):
            name, kind, *props = rest.split(" ")
            fields = {"type": kind}
            key = None
            for word in props:  # values may contain spaces: glue words without '=' to the last value
                if "=" in word and word.startswith("Ofx"):
                    key, _, value = word.partition("=")
                    fields[key] = value
                elif key is not None:
                    fields[key] += " " + word
            out[name] = fields
        return out

    def plugin_props(self) -> dict[str, str]:
        return dict(rest.split("=", 1) for rest in self.all("PLUGINPROP"))

    def completed(self) -> bool:
        """The host ran to its end: the plug-in never crashed or hung it."""
        return self.returncode == 0 and any(k == "DONE" for k, _ in self.lines)


def parse_log(stdout: str, returncode: int, stderr: str) -> HostLog:
    lines = []
    for line in stdout.splitlines():
        key, _, rest = line.partition(" ")
        lines.append((key, rest))
    return HostLog(lines, returncode, stderr)


@dataclass
class Job:
    """A host job under ``folder``: frames, host behaviour and the steps to run."""

    folder: Path
    build: Build
    depth: str = "float"
    layout: str = "tight"
    channels: int = 4
    context: str = "filter"
    frame_range: tuple[int, int] = (1, 1)
    quirks: tuple[str, ...] = ()
    clip_colourspace: str = ""
    _sources: list[str] = field(default_factory=list)
    _steps: list[str] = field(default_factory=list)

    def source(self, scale: float, frame: int, pixels: np.ndarray) -> None:
        """A frame (H, W, C float, top row first) the host hands at ``scale``."""
        path = self.folder / f"source_{frame}_{scale}.raw"
        np.ascontiguousarray(pixels, dtype=np.float32).tofile(path)
        height, width = pixels.shape[:2]
        self._sources.append(f"source {scale} {frame} 0 0 {width} {height} {path}")

    def set(self, name: str, value: object) -> None:
        self._steps.append(f"set {name} {value}")

    def press(self, name: str) -> None:
        self._steps.append(f"press {name}")

    def identity(self, frame: int) -> None:
        self._steps.append(f"identity {frame}")

    def wait_for(self, path: Path) -> None:
        self._steps.append(f"wait_for {path}")

    def render(self, scale: float, frame: int, tiles: int = 2, interactive: bool = False) -> Path:
        out = self.folder / f"out_{len(self._steps)}_{frame}_{scale}.raw"
        self._steps.append(f"render {scale} {frame} {tiles} {out}" + (" interactive" if interactive else ""))
        return out

    def write(self) -> Path:
        path = self.folder / "job.txt"
        head = [f"plugin {self.build.plugin}", f"context {self.context}", f"depth {self.depth}",
                f"layout {self.layout}", f"channels {self.channels}",
                f"frame_range {self.frame_range[0]} {self.frame_range[1]}"]
        head += [f"quirk {q}" for q in self.quirks]
        if self.clip_colourspace:
            head.append(f"clip_colourspace {self.clip_colourspace}")
        path.write_text("\n".join(head + self._sources + self._steps) + "\n")
        return path

    def start(self) -> subprocess.Popen:
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
        return subprocess.Popen([str(self.build.host), str(self.write())], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    def run(self, timeout: float = 60.0) -> HostLog:
        process = self.start()
        stdout, stderr = process.communicate(timeout=timeout)
        return parse_log(stdout, process.returncode, stderr)


def read_output(path: Path, like: np.ndarray) -> np.ndarray:
    return np.fromfile(path, np.float32).reshape(like.shape)


# ---- shorthands for the tests ----

FAST = {"timeout": 10, "heartbeat": 2}  # failure tests must not wait for the defaults (120 s, 10 s)


def frame(seed: int, height: int = 24, width: int = 32, channels: int = 4) -> np.ndarray:
    """Random pixels in [0, 1): every sample differs, so a misplaced row or channel shows."""
    return np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)


def unused_address() -> str:
    """A loopback endpoint nobody listens on (the kernel's pick, released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def job_for(build_: Build, tmp_path: Path, address: str, settings: dict | None = None, **kwargs) -> Job:
    """A job whose first steps point the node at ``address`` with short timeouts and ``settings``."""
    job = Job(tmp_path, build_, **kwargs)
    job.set("daemonAddress", address)
    for name, value in {**FAST, **(settings or {})}.items():
        job.set(name, value)
    return job


def assert_failed_with(log: HostLog, *words: str) -> None:
    """Every render failed, the host ran to its end, and the persistent message and the Status
    line both hold ``words``."""
    assert log.completed(), log.stderr[-3000:]
    assert log.render_statuses() and all(s == 1 for s in log.render_statuses())
    assert log.persistent(), "no persistent message"
    for word in words:
        assert word in log.persistent()[0], log.persistent()[0]
        assert word in log.values()["status"]
    assert not log.all("VIOLATION")
