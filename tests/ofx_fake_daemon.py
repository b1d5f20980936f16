"""A stand-in for `nightgrade serve` that speaks daemon protocol v1 (docs/protocol.md) over a
ROUTER socket, for the OFX bridge tests: it "enhances" with a fixed pixel function the tests can
reproduce, checks every buffer and digest it gets, records every request, and misbehaves on
request (malformed replies, silence, errors, stalls) in ways the real daemon never does.

Run standalone (`python tests/ofx_fake_daemon.py --mode stall`) it prints ``READY <address>``
and one ``GOT <TYPE>`` line per request, so a test can kill it at a chosen moment.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

MODES = ("ok", "garbage", "no_type", "bad_result", "wrong_window", "silent", "slow", "stall", "error", "busy_once")


def enhance(pixels: np.ndarray, mix: float) -> np.ndarray:
    """The fake generator: RGB -> 0.5 * RGB + 0.25 blended by ``mix``; alpha passes through."""
    out = pixels.copy()
    rgb = pixels[..., :3]
    out[..., :3] = mix * (rgb * np.float32(0.5) + np.float32(0.25)) + (np.float32(1.0) - mix) * rgb
    return out.astype(np.float32)


def digest(data: bytes) -> str:
    return "b2:" + hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class FakeDaemon:
    """The fake daemon on a background thread; ``address`` is valid once ``start`` returns."""

    mode: str = "ok"
    delay_s: float = 0.0          # "slow": seconds before a RESULT (PINGs still answered)
    error_code: str = "INTERNAL"  # "error": the code RENDER is answered with
    bind: str = "tcp://127.0.0.1:0"
    announce: bool = False        # print READY/GOT lines (standalone use)
    curve: tuple[Path, Path] | None = None  # (the daemon's .key_secret, folder of authorised .key files)
    models: tuple[str, ...] = ("fake", "fake-alt")  # WELCOME's models, the first one the default
    features: tuple[str, ...] = ("controls", "exposure")  # WELCOME's features (an old daemon lists none)
    requests: list[dict] = field(default_factory=list)
    address: str = ""
    _cache: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "FakeDaemon":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake daemon did not start")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def types(self) -> list[str]:
        return [r.get("type") for r in self.requests]

    def _serve(self, ready: threading.Event) -> None:
        context = zmq.Context()
        socket = context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        auth = None
        if self.curve is not None:
            public, secret = zmq.auth.load_certificate(self.curve[0])
            auth = ThreadAuthenticator(context)
            auth.start()
            auth.configure_curve(domain="*", location=str(self.curve[1]))
            socket.curve_server, socket.curve_publickey, socket.curve_secretkey = True, public, secret
        socket.bind(self.bind)
        self.address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.announce:
            print("READY", self.address, flush=True)
        ready.set()
        pending: list[tuple[float, list[bytes]]] = []  # delayed replies ("slow")
        stalled = False
        try:
            while not self._stop.is_set():
                for due, reply in list(pending):
                    if time.monotonic() >= due:
                        socket.send_multipart(reply)
                        pending.remove((due, reply))
                if not socket.poll(20):
                    continue
                frames = socket.recv_multipart()
                identity, body = frames[0], frames[1:]
                header = msgpack.unpackb(body[0], raw=False)
                self.requests.append(header)
                if self.announce:
                    print("GOT", header.get("type"), flush=True)
                if self.mode == "silent" or (stalled and header.get("type") != "PING"):
                    continue
                reply = self._answer(header, body[1:])
                if header.get("type") == "RENDER" and self.mode == "stall":
                    stalled = True  # answers PINGs only, as a daemon busy on a long frame
                    continue
                if header.get("type") == "RENDER" and self.mode == "slow":
                    pending.append((time.monotonic() + self.delay_s, [identity, *reply]))
                    continue
                socket.send_multipart([identity, *reply])
        finally:
            socket.close(0)
            if auth is not None:
                auth.stop()
            context.term()

    def _reply(self, header: dict, type_: str, **fields) -> list[bytes]:
        return [msgpack.packb({"v": 1, "type": type_, "id": header.get("id"), **fields}, use_bin_type=True)]

    def _error(self, header: dict, code: str, message: str, **fields) -> list[bytes]:
        return self._reply(header, "ERROR", code=code, message=message, **fields)

    def _answer(self, header: dict, buffers: list[bytes]) -> list[bytes]:
        kind = header.get("type")
        if self.mode == "garbage":
            return [b"\xc1 this is not msgpack"]
        if self.mode == "no_type":
            return [msgpack.packb({"v": 1, "id": header.get("id")})]
        if kind == "HELLO":
            model = {"version": "1", "digest": "b2:" + "0" * 32, "colorspace": "ACEScg", "tile": 64, "region": 160,
                     "stride": 32}
            models = [dict(model, name=name, default=i == 0) for i, name in enumerate(self.models)]
            return self._reply(header, "WELCOME", version=1, server="nightgrade fake", models=models,
                               device="cpu", limits={}, ocio_config="fake", features=list(self.features))
        if kind == "PING":
            return self._reply(header, "PONG", queue=0, busy=self.mode in ("slow", "stall"), uptime_s=1.0)
        if kind == "HAVE":
            return self._reply(header, "NEED", need=[d for d in header["digests"] if d not in self._cache])
        if kind == "RENDER":
            if self.mode == "error":
                return self._error(header, self.error_code, f"fake daemon refuses ({self.error_code}): do what it says")
            if self.mode == "busy_once" and self.types().count("RENDER") == 1:
                return self._error(header, "BUSY", "queue full; retry shortly", queue=64, retry_after_ms=100)
            return self._render(header, buffers)
        return self._error(header, "BAD_MESSAGE", f"unknown type {kind}")

    def _render(self, header: dict, buffers: list[bytes]) -> list[bytes]:
        width, height, channels = header["width"], header["height"], header["channels"]
        row_bytes = header["row_bytes"]
        attached = header.get("attached", [])
        if len(buffers) != 1 + len(attached) or any(len(b) != row_bytes * height for b in buffers):
            return self._error(header, "BAD_BUFFER", "wrong buffer count or size")
        tight = width * channels * 4
        rows = [np.frombuffer(b, np.uint8).reshape(height, row_bytes)[:, :tight].tobytes() for b in buffers]
        if digest(rows[0]) != header["digest"] or any(digest(r) != d for r, d in zip(rows[1:], attached)):
            return self._error(header, "BAD_BUFFER", "digest mismatch")
        self._cache.update(digest(r) for r in rows)
        missing = [n["digest"] for n in header.get("neighbours", []) if n["digest"] not in self._cache]
        if header.get("params", {}).get("temporal") and missing:
            return self._error(header, "NEED_FRAMES", "need frames", need=missing)
        pixels = np.frombuffer(rows[0], np.float32).reshape(height, width, channels)
        x0, y0, x1, y1 = header.get("window", [0, 0, width, height])
        out = enhance(pixels, np.float32(header.get("params", {}).get("mix", 1.0)))[y0:y1, x0:x1]
        window = [x0, y0, x1, y1]
        data = np.ascontiguousarray(out).tobytes()
        if self.mode == "bad_result":
            data = data[:-4]
        if self.mode == "wrong_window":
            window = [0, 0, width, height]
        return [*self._reply(header, "RESULT", frame=header["frame"], window=window, width=x1 - x0, height=y1 - y0,
                             channels=channels, format="float32", row_bytes=(x1 - x0) * channels * 4,
                             colorspace=header.get("colorspace", "ACEScg"), model="b2:" + "0" * 32,
                             generator_passes=1, frames_averaged=1.0, seconds=0.01), data]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--bind", default="tcp://127.0.0.1:0")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    daemon = FakeDaemon(mode=args.mode, bind=args.bind, delay_s=args.delay, announce=True).start()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
