"""Interactive preview latency (issue 17): a warm daemon driven as the OFX node drives it while a
colourist scrubs a 1920x1080 timeline.

Each backend gets its own `nightgrade serve --backend NAME` process on loopback TCP (CPU, the
shipped model), warmed with one frame of every size before anything is timed. Frames are the
shipped sample clip, resized to 1920x1080 and then to the render scale (the buffers the host hands
the node at that scale), RGBA float32, interactive priority, ``supersede`` on, as the node sends
them. Every run uses frames no earlier run saw (a per-run gain), so nothing comes from the cache.

(a) **Scrub**: frames one after another, each waiting for its result (an OFX render action is
    synchronous), at render scale 0.25 and 0.5, temporal off and on (radius 6, the node's default;
    HAVE first, only the neighbours the daemon lacks attached). The first frame of a run fills the
    temporal window and is left out; p50/p95 are over the rest, client wall time per frame.
(b) **Fast scrub**: the playhead passes ``--burst`` frames faster than they render: all requests
    are sent at once on one connection, and the time until the last one's RESULT is measured
    with and without ``supersede`` (without it the daemon renders every frame passed over).
(c) **Full resolution**: one 1920x1080 frame at scale 1 per backend, and one 3840x2160 frame with
    the fastest backend (``--no-uhd`` skips it); temporal off.

``python bench/preview.py [--backends torch,openvino] [--frames 5] [--write-docs]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import cv2
import numpy as np
import zmq

from _common import load_average, markdown_table, run_lines, text_table, write_section
from daemon import start_daemon
from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.server import protocol as P
from nightgrade.server.client import Client, RenderRequest, WirePixels
from nightgrade.server.render.defaults import resolve_weights, sample_clip_pattern

HEADING = "## Interactive preview latency (issue 17)"
SCENE = "lin_rec709"
RADIUS = 6
GOAL_P95_S = 1.0  # scale 0.25, warm daemon, 1920x1080
FIRST = 150  # the sample clip's first frame number


@dataclass
class Clip:
    """The sample clip at 1920x1080 as scene-linear RGB; ``frames(scale, gain)`` gives RGBA buffers."""

    rgb: list[np.ndarray]

    @classmethod
    def load(cls, count: int) -> Clip:
        pattern = sample_clip_pattern()
        frames = []
        for i in range(count):
            srgb = read_frame(pattern.replace("####", f"{FIRST + i % 24:04d}")).rgb.astype(np.float32)
            frames.append(cv2.resize(np.power(srgb, 2.2), (1920, 1080), interpolation=cv2.INTER_CUBIC))
        return cls(frames)

    def frame(self, index: int, scale: float, gain: float) -> np.ndarray:
        rgb = self.rgb[index]
        if scale != 1.0:
            size = (round(1920 * scale), round(1080 * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        alpha = np.ones((*rgb.shape[:2], 1), np.float32)
        return np.ascontiguousarray(np.concatenate([np.maximum(rgb, 0) * np.float32(gain), alpha], axis=2))


def _request(clip: str, frame: int, scale: float, temporal: bool, supersede: bool = True) -> RenderRequest:
    return RenderRequest(clip=clip, frame=frame, scale=scale, colorspace=SCENE, priority="interactive",
                         supersede=supersede, params=P.RenderParams(temporal=temporal, radius=RADIUS))


def scrub(endpoint: str, clip: Clip, scale: float, temporal: bool, frames: int, gain: float) -> list[float]:
    """Seconds per frame of a sequential scrub (the first, window-filling frame left out)."""
    first = RADIUS if temporal else 0
    pixels = {i: clip.frame(i, scale, gain) for i in range(first + frames + 1 + (RADIUS if temporal else 0))}
    times = []
    with Client(endpoint, timeout_s=300.0) as client:
        for i in range(first, first + frames + 1):
            near = {FIRST + j: pixels[j] for j in range(i - RADIUS, i + RADIUS + 1) if j != i} if temporal else None
            started = time.perf_counter()
            client.render_frame(_request(f"scrub-{gain}", FIRST + i, scale, temporal), pixels[i], near)
            times.append(time.perf_counter() - started)
    return times[1:]


def burst(endpoint: str, clip: Clip, scale: float, count: int, supersede: bool, gain: float) -> tuple[float, dict]:
    """Seconds until the last of ``count`` requests sent at once is answered, and the reply counts."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    try:
        started = time.perf_counter()
        for i in range(count):
            request = _request(f"burst-{gain}", FIRST + i, scale, False, supersede)
            centre = WirePixels.from_array(clip.frame(i, scale, gain))
            fields = Client._fields(request, centre, {})
            fields.update(attached=[], priority=request.priority, supersede=supersede)
            sock.send_multipart(P.encode(P.request(P.RENDER, f"b{i}", **fields), [centre.buffer]), copy=False)
        outcomes: dict[str, int] = {}
        last = None
        while last is None:
            assert sock.poll(600_000), "no reply within 600 s"
            reply = P.decode(sock.recv_multipart(copy=False), reply=True)
            kind = reply.type if reply.type != P.ERROR else reply.header["code"]
            outcomes[kind] = outcomes.get(kind, 0) + 1
            if reply.id == f"b{count - 1}":
                last = time.perf_counter() - started
        while sum(outcomes.values()) < count and sock.poll(600_000):
            reply = P.decode(sock.recv_multipart(copy=False), reply=True)
            kind = reply.type if reply.type != P.ERROR else reply.header["code"]
            outcomes[kind] = outcomes.get(kind, 0) + 1
        return last, outcomes
    finally:
        sock.close(linger=0)
        context.term()


def one_frame(endpoint: str, clip: Clip, width: int, height: int, gain: float) -> float:
    rgb = cv2.resize(clip.rgb[0], (width, height), interpolation=cv2.INTER_CUBIC) * np.float32(gain)
    rgba = np.ascontiguousarray(np.concatenate([rgb, np.ones((height, width, 1), np.float32)], axis=2))
    with Client(endpoint, timeout_s=600.0) as client:
        started = time.perf_counter()
        client.render_frame(_request(f"full-{gain}", FIRST, 1.0, False), rgba)
        return time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank, so p95 of a few frames is their slowest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,openvino", help="comma-separated (default torch,openvino)")
    parser.add_argument("--frames", type=int, default=5, help="timed frames per scrub run (default 5)")
    parser.add_argument("--burst", type=int, default=6, help="frames passed over in the fast scrub (default 6)")
    parser.add_argument("--scales", default="0.25,0.5")
    parser.add_argument("--no-uhd", action="store_true", help="skip the 3840x2160 frame")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    started, load_start = time.perf_counter(), load_average()
    backends = args.backends.split(",")
    scales = [float(s) for s in args.scales.split(",")]
    weights = resolve_weights(None)
    clip = Clip.load(args.frames + 2 * RADIUS + 2)
    results: dict[str, dict[str, object]] = {}
    gain = 1.0
    for backend in backends:
        print(f"daemon with --backend {backend} ...", flush=True)
        process, endpoint = start_daemon(weights, "cpu", "--backend", backend, "--cache-mb", "2048")
        r: dict[str, object] = {}
        try:
            for scale in scales:  # warm-up: one frame of each size (export, oneDNN primitives, pools)
                gain *= 1.01
                scrub(endpoint, clip, scale, False, 1, gain)
            for scale in scales:
                for temporal in (False, True):
                    gain *= 1.01
                    print(f"  scrub scale {scale} temporal {'on' if temporal else 'off'}", flush=True)
                    r[f"scrub {scale} {'on' if temporal else 'off'}"] = scrub(endpoint, clip, scale, temporal,
                                                                               args.frames, gain)
            for supersede in (False, True):
                gain *= 1.01
                print(f"  burst of {args.burst}, supersede {supersede}", flush=True)
                r[f"burst {supersede}"] = burst(endpoint, clip, scales[0], args.burst, supersede, gain)
            gain *= 1.01
            print("  one full-resolution 1920x1080 frame", flush=True)
            r["full 1080"] = one_frame(endpoint, clip, 1920, 1080, gain)
        finally:
            process.terminate()
            process.wait(60)
        results[backend] = r
    fastest = min(backends, key=lambda b: results[b]["full 1080"])
    if not args.no_uhd:
        process, endpoint = start_daemon(weights, "cpu", "--backend", fastest, "--cache-mb", "0")
        try:
            print(f"one 3840x2160 frame with {fastest} ...", flush=True)
            one_frame(endpoint, clip, 960, 540, 0.5)  # warm-up
            results[fastest]["full 2160"] = one_frame(endpoint, clip, 3840, 2160, 0.7)
        finally:
            process.terminate()
            process.wait(60)
    report(args, backends, scales, results, run_lines(load_start, started))


def report(args: argparse.Namespace, backends: list[str], scales: list[float], results: dict,
           run: list[str]) -> None:
    header = ["Measure", *backends] + ([f"{backends[0]} / {b}" for b in backends[1:]])
    rows = []
    for scale in scales:
        for temporal in ("off", "on"):
            times = [results[b][f"scrub {scale} {temporal}"] for b in backends]
            rows.append([f"scrub, scale {scale}, temporal {temporal}: p50 / p95 ms",
                         *(f"{pct(t, .5) * 1e3:.0f} / {pct(t, .95) * 1e3:.0f}" for t in times),
                         *(f"{pct(times[0], .5) / pct(t, .5):.2f}x" for t in times[1:])])
    for supersede in (False, True):
        cells = [results[b][f"burst {supersede}"] for b in backends]
        rows.append([f"fast scrub past {args.burst} frames at {scales[0]}, supersede {'on' if supersede else 'off'}: "
                     "last frame after",
                     *(f"{s:.2f} s ({', '.join(f'{n} {k}' for k, n in sorted(o.items()))})" for s, o in cells),
                     *(f"{cells[0][0] / c[0]:.2f}x" for c in cells[1:])])
    rows.append(["one 1920x1080 frame at scale 1", *(f"{results[b]['full 1080']:.1f} s" for b in backends),
                 *(f"{results[backends[0]]['full 1080'] / results[b]['full 1080']:.2f}x" for b in backends[1:])])
    uhd = [b for b in backends if "full 2160" in results[b]]
    if uhd:
        rows.append(["one 3840x2160 frame at scale 1", *(f"{results[b]['full 2160']:.1f} s" if b in uhd else "-"
                                                         for b in backends), *("" for _ in backends[1:])])
    goal_rows = []
    for b in backends:
        p95 = pct(results[b][f"scrub {scales[0]} off"], .95)
        goal_rows.append(f"- {b}: scale {scales[0]}, temporal off, p95 {p95 * 1e3:.0f} ms against the goal "
                         f"<= {GOAL_P95_S * 1e3:.0f} ms: {'met' if p95 <= GOAL_P95_S else 'MISSED'}; temporal on "
                         f"p95 {pct(results[b][f'scrub {scales[0]} on'], .95) * 1e3:.0f} ms.")
    print(text_table(header, rows))
    print("\n".join(goal_rows + run))
    if args.write_docs:
        body = "\n".join([
            "_Written by `bench/preview.py` (`make bench`); rerunning it replaces this section. Method in the "
            "script's docstring: a warm `nightgrade serve` per backend, the sample clip at 1920x1080 RGBA float, "
            f"interactive priority, radius {RADIUS} when temporal; {args.frames} timed frames per scrub run "
            "(a few frames: p95 is close to the slowest), client wall time._",
            "", *run, "", markdown_table(header, rows), "", *goal_rows])
        write_section(HEADING, body)
        print("wrote", HEADING)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
