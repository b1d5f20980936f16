"""Helpers for tests that run the real render daemon (server/daemon/server.py) on loopback: an in-process
daemon in a thread, a `nightgrade serve` subprocess, a raw DEALER peer that speaks the wire format of
docs/protocol.md directly, and the in-process render a daemon's RESULT must equal."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from nightgrade.colorpipeline import color
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.server import protocol as P
from nightgrade.server.client import Client, DaemonUnavailable
from nightgrade.server.daemon.server import Daemon, DaemonConfig
from nightgrade.server.render.pipeline import ColourPlan, finish_rgb, working_rgb

NIGHTGRADE = str(Path(sys.executable).with_name("nightgrade"))


@contextmanager
def running_daemon(weights: str, **options: Any) -> Iterator[Daemon]:
    """A daemon on a free loopback port, serving from a thread until the block ends. Defaults keep
    it small: CPU, no frame cache (every render runs the generator), a small flow cache."""
    cfg = DaemonConfig(**{"bind": "tcp://127.0.0.1:0", "weights": (weights,), "device": "cpu", "cache_mb": 0,
                          "flow_cache_mb": 16, **options})
    daemon = Daemon(cfg)
    ready = threading.Event()
    thread = threading.Thread(target=daemon.serve, args=(ready,), name="test-daemon", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the daemon did not bind within 30 s"
        yield daemon
    finally:
        daemon.stop()
        thread.join(30)
        assert not thread.is_alive(), "the daemon's socket loop did not stop within 30 s"
        daemon.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_serve(endpoint: str, weights: str, log_path: Path, *extra: str, preexec_fn: Any = None) -> subprocess.Popen:
    """`nightgrade serve` as a child process, its log appended to ``log_path``; ``preexec_fn`` runs in
    the child before it starts (e.g. to lower a resource limit)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with open(log_path, "ab") as log:
        return subprocess.Popen([NIGHTGRADE, "serve", "--bind", endpoint, "--weights", weights, "--device", "cpu",
                                 "--cache-mb", "0", *extra], stdout=subprocess.DEVNULL, stderr=log, env=env,
                                preexec_fn=preexec_fn)


def wait_ready(endpoint: str, process: subprocess.Popen, log_path: Path, within_s: float = 60.0) -> None:
    """Return once the daemon answers PING; fail with its log if it exits or stays silent."""
    end = time.monotonic() + within_s
    with Client(endpoint, timeout_s=0.5, retries=0) as probe:
        while time.monotonic() < end:
            if process.poll() is not None:
                raise AssertionError(f"nightgrade serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                probe.ping()
                return
            except DaemonUnavailable:
                continue
    raise AssertionError(f"nightgrade serve did not answer PING within {within_s:g} s:\n{log_path.read_text()}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


class RawPeer:
    """A DEALER socket sending hand-built frames and reading replies as ``protocol.Message``. A
    reply to a message whose first frame was empty comes back behind that empty frame (the daemon
    takes it for a REQ client's delimiter and echoes it): :meth:`receive` drops it."""

    def __init__(self, context: zmq.Context, endpoint: str, socket_type: int = zmq.DEALER) -> None:
        self.socket = context.socket(socket_type)
        self.socket.linger = 0
        self.socket.connect(endpoint)

    def send(self, frames: Sequence[Any]) -> None:
        self.socket.send_multipart(list(frames), copy=False)

    def request(self, header: dict, buffers: Sequence[Any] = ()) -> None:
        self.send(P.encode(header, buffers))

    def receive(self, timeout_s: float) -> P.Message | None:
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        frames = self.socket.recv_multipart(copy=False)
        if len(frames) > 1 and len(frames[0]) == 0:
            frames = frames[1:]
        return P.decode(frames, reply=True)

    def collect(self, count: int, timeout_s: float) -> list[P.Message]:
        """``count`` replies, failing when they do not all arrive within ``timeout_s``."""
        replies, end = [], time.monotonic() + timeout_s
        while len(replies) < count:
            reply = self.receive(max(0.001, end - time.monotonic()))
            assert reply is not None, f"only {len(replies)} of {count} replies within {timeout_s:g} s"
            replies.append(reply)
        return replies

    def close(self) -> None:
        self.socket.close(linger=0)


def render_fields(request_id: str, pixels: np.ndarray, padding: int = 0, **extra: Any) -> tuple[dict, memoryview]:
    """A valid RENDER header for float32 ``pixels`` (H, W, 3|4) and its buffer, each row followed
    by ``padding`` bytes (digested without them, docs/protocol.md "Digests")."""
    tight, _ = P.array_to_buffer(pixels, "float32")
    height, width, channels = pixels.shape
    rows = np.full((height, len(tight) // height + padding), 0xAB, np.uint8)
    rows[:, :len(tight) // height] = np.frombuffer(tight, np.uint8).reshape(height, -1)
    buffer, row_bytes = P.byte_view(rows), rows.shape[1]
    header = P.request(P.RENDER, request_id, clip="test", frame=1, width=width, height=height, scale=1.0,
                       format="float32", channels=channels, row_bytes=row_bytes,
                       digest=P.digest_pixels(buffer, width, height, channels, "float32", row_bytes))
    header.update(extra)
    return header, buffer


def labelled_frame(label: int, height: int = 64, width: int = 96) -> np.ndarray:
    """A dim RGBA frame whose content and alpha (= ``label``, passed through untouched by the
    daemon) say which request it was: a gradient plus a level and a blue ramp set by ``label``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    level = np.float32(0.003 * (label % 97))
    rgb = np.stack([xx / width * 0.25, yy / height * 0.25, (xx + yy) / (width + height) * 0.1 * (1 + label % 7)], -1)
    alpha = np.full((height, width, 1), np.float32(label))
    return np.concatenate([rgb + level, alpha], axis=2).astype(np.float32)


class Reference:
    """The in-process pixel path (server/render/pipeline.py) for RGB(A) frames in Linear Rec.709 (what a
    request without colourspace is in), mix 1, the checkpoint's tiles: what a daemon RESULT of the
    whole frame must hold."""

    def __init__(self, weights: str) -> None:
        self.engine = Engine.from_checkpoint(weights, EngineConfig(device="cpu"))
        config = color.ColorConfig(None)
        source = color.canonical_name(config, "Linear Rec.709 (sRGB)")
        self.plan = ColourPlan(config, source, color.canonical_name(config, self.engine.meta.colorspace), source)

    def render(self, pixels: np.ndarray) -> np.ndarray:
        working, in_range, excess = working_rgb(np.ascontiguousarray(pixels[..., :3]), self.plan)
        rgb = finish_rgb(self.engine.enhance(in_range), working, excess, self.plan, 1.0)
        return np.concatenate([rgb, pixels[..., 3:]], axis=2) if pixels.shape[2] == 4 else rgb


# --- a storm of malformed messages ------------------------------------------------------------------
# Each is (frames, the id its reply must carry or None, the outcomes allowed: a reply type or
# "ERROR:<code>"), per docs/protocol.md.

BAD = "ERROR:" + P.BAD_MESSAGE


def storm_message(rng: random.Random, index: int, pixels: np.ndarray) -> tuple[list, str | None, set[str]]:
    """Message ``index`` of a storm: mostly broken ones the socket loop refuses, one in 50 a
    well-formed RENDER only the worker can refuse, one in 500 a valid RENDER of ``pixels`` (rows
    padded, window [8, 4, 72, 60]) whose RESULT must hold the same pixels as any other render."""
    rid = f"m{index}"
    if index % 500 == 250:
        header, buffer = render_fields(rid, pixels, padding=24, window=[8, 4, 72, 60])
        return P.encode(header, [buffer]), rid, {P.RESULT}
    if index % 50 == 0:
        header, buffers, allowed = _for_worker(rng, rid, pixels)
    elif index % 3 == 0:
        return _unreadable(rng, pixels), None, {BAD}
    else:
        header, buffers, allowed = _addressable(rng, rid, pixels)
    return [_packed(header), *buffers], rid, allowed

def _packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unreadable(rng: random.Random, pixels: np.ndarray) -> list[bytes]:
    """Frames whose header yields no id: the reply is a nil-id ERROR BAD_MESSAGE."""
    good = _packed(P.request(P.PING, "x" * 8))
    kind = rng.randrange(12)
    if kind == 0:
        return [rng.randbytes(rng.randrange(0, 200)) for _ in range(rng.randint(1, 3))]
    if kind == 1:
        return [_packed(rng.choice([[1, 2], 7, "PING", None, b"\x00", 1.5, True, [{"id": "a"}]]))]
    if kind == 2:
        return [_packed({1: 2, "id": "abc"})]  # a non-string key
    if kind == 3:
        bad_id = rng.choice([7, "", "x" * 65, ["a"], None, {"a": 1}, b"raw-bytes-id", 1.5])
        return [_packed({"v": 1, "type": "PING", "id": bad_id})]
    if kind == 4:
        return [_packed({"v": 1, "type": "PING"})]
    if kind == 5:
        return [good[:rng.randrange(1, len(good))]]  # truncated msgpack
    if kind == 6:
        return [good + rng.randbytes(rng.randint(1, 8))]  # trailing bytes after the map
    if kind == 7:
        return [b"\xdd\x7f\xff\xff\xff"]  # an array claiming 2**31 items
    if kind == 8:
        return [b"\xc7\x01\x05\x00"]  # an extension type
    if kind == 9:
        return [b""]  # an empty header frame (taken for a REQ delimiter: answered behind it)
    if kind == 10:
        return [_packed({"v": 1, "type": "RENDER", "id": "r", "params": {7: 1}}), P.byte_view(pixels)]
    return [b"", rng.randbytes(16)]


def _render_case(rng: random.Random, rid: str, pixels: np.ndarray) -> tuple[dict, list, set[str]]:
    """A RENDER with one thing wrong that the socket loop finds, and the ERROR codes it may get."""
    header, buffer = render_fields(rid, pixels)
    buffers: list = [buffer]
    key = rng.choice(["clip", "frame", "width", "height", "scale", "format", "channels", "row_bytes", "digest"])

    def remove() -> None:
        del header[key]

    cases = [
        remove,
        lambda: header.update({key: rng.choice([[], {}, 7.5, True])}),
        lambda: header.update(width=rng.choice([10**9, 2**63 - 1, 2**64 - 1, 100_000])) or "TOO_LARGE",
        lambda: header.update(width=16384, height=16384) or "TOO_LARGE",
        lambda: header.update(row_bytes=rng.choice([2**40, 2**62])) or "TOO_LARGE",
        lambda: header.update(width=rng.choice([0, -5, -2**63])),
        lambda: header.update(row_bytes=7),
        lambda: header.update(scale=rng.choice([0, 1.5, -0.5, float("nan"), float("inf"), "1"])),
        lambda: header.update(format=rng.choice(["float16", "FLOAT32", 32])),
        lambda: header.update(channels=rng.choice([1, 2, 5, "3", 3.0, True])),
        lambda: header.update(window=rng.choice([[0, 0, 0, 0], [0, 0, 97, 64], [0, 0, 96], [0.0, 0, 96, 64], "all",
                                                 [-1, 0, 10, 10], [10, 10, 5, 20]])),
        lambda: header.update(params=rng.choice(["x", [], {"mix": 2}, {"mix": -0.1}, {"radius": 7}, {"radius": -1},
                                                 {"max_motion": 0}, {"tile": 0}, {"tile": 64, "region": 32},
                                                 {"temporal": 1}, {"tile": 33}, {"mix": float("nan")}])),
        lambda: header.update(neighbours=rng.choice(["x", [5], [{"frame": 1, "digest": header["digest"]}],
                                                     [{"frame": 99, "digest": header["digest"]}],
                                                     [{"frame": 2, "digest": "b2:00"}],
                                                     [{"frame": 2, "digest": header["digest"]}] * 2])),
        lambda: header.update(neighbours=[{"frame": 2 + i, "digest": header["digest"]} for i in range(13)])
        or "TOO_LARGE",
        lambda: header.update(attached=[header["digest"]]),
        lambda: header.update(priority=rng.choice(["urgent", 1, ""])),
        lambda: header.update(deadline_ms=rng.choice([0, -1, 1.5, "soon"])),
        lambda: header.update(clip=rng.choice(["", "c" * 257, 5])),
        lambda: header.update(model=5),
        lambda: header.update(model="no-such-model") or "UNKNOWN_MODEL",
        lambda: header.update(**{rng.choice(["colorspace", "output_colorspace"]): "no-such-space"}) or "BAD_COLORSPACE",
        lambda: header.update(digest=rng.choice(["b2:XYZ", "b2:" + "A" * 32, "sha256:" + "0" * 32, 5])),
        lambda: buffers.clear() or "BAD_BUFFER",
        lambda: buffers.append(buffer) or "BAD_BUFFER",
        lambda: buffers.__setitem__(0, bytes(buffer)[:rng.choice([0, 1, len(buffer) // 2, len(buffer) - 1])])
        or "BAD_BUFFER",
        lambda: buffers.__setitem__(0, bytes(buffer) + b"\x00") or "BAD_BUFFER",
        lambda: header.update(row_bytes=header["row_bytes"] + 16) or "BAD_BUFFER",
    ]
    code = rng.choice(cases)()
    return header, buffers, {f"ERROR:{code}" if code else BAD}


def _addressable(rng: random.Random, rid: str, pixels: np.ndarray) -> tuple[dict, list, set[str]]:
    """A message with a readable id: a broken one of any type, or a valid control request."""
    kind = rng.randrange(16)
    if kind < 8:
        return _render_case(rng, rid, pixels)
    bad = {BAD}
    base = {"v": 1, "id": rid}
    if kind == 8:
        return {**base, "type": "PING", "v": rng.choice([2, 0, -1, 2**40])}, [], {"ERROR:BAD_VERSION"}
    if kind == 9:
        return {**base, "type": "PING", "v": rng.choice(["1", 1.0, None, [1]])}, [], bad
    if kind == 10:
        return {**base, "type": rng.choice(["FOO", "RESULT", "hello", 5, None, ""])}, [], bad
    if kind == 11:
        versions, expected = rng.choice([([1], {"WELCOME"}), ([2, 3], {"ERROR:BAD_VERSION"}), ([], bad), ("1", bad),
                                         ([1.0], bad), (None, bad)])
        return {**base, "type": "HELLO", "v": rng.choice([1, 99]), "versions": versions}, [], expected
    if kind == 12:
        buffers = rng.choice([[], [b"\x00"]])  # unknown keys are ignored; buffers on a PING are not
        return {**base, "type": "PING", "future_key": [1, {"x": None}]}, buffers, \
            {"ERROR:BAD_BUFFER"} if buffers else {P.PONG}
    if kind == 13:
        target = rng.choice([None, 5, "", "never-sent"])
        return {**base, "type": "CANCEL", "target": target}, [], {"CANCELLED"} if target == "never-sent" else bad
    if kind == 14:
        return {**base, "type": "STATS"}, [], {"STATS"}
    header, _ = render_fields(rid, pixels)
    header.update(type="HAVE", digests=rng.choice([[header["digest"]], ["nope"], "x"]))
    return header, [], {"NEED"} if isinstance(header["digests"], list) and header["digests"][0] != "nope" else bad


def _for_worker(rng: random.Random, rid: str, pixels: np.ndarray) -> tuple[dict, list, set[str]]:
    """Well-formed RENDERs that only the worker can refuse: digests, half read as float, NEED_FRAMES."""
    header, buffer = render_fields(rid, pixels)
    kind = rng.randrange(4)
    if kind == 0:
        header["digest"] = "b2:" + rng.randbytes(16).hex()
        return header, [buffer], {"ERROR:BAD_BUFFER"}
    if kind == 1:
        header["format"] = "half"  # float32 rows read as padded half rows: the digest no longer matches
        return header, [buffer], {"ERROR:BAD_BUFFER"}
    near = ["b2:" + rng.randbytes(16).hex() for _ in range(2)]
    header.update(params={"temporal": True, "radius": 2},
                  neighbours=[{"frame": 0, "digest": near[0]}, {"frame": 3, "digest": near[1]}])
    if kind == 2:
        return header, [buffer], {"ERROR:NEED_FRAMES"}
    header["attached"] = [near[0]]
    return header, [buffer, buffer], {"ERROR:BAD_BUFFER"}
