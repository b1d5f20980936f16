"""Temporal render, ``nightgrade enhance --temporal``: the per-frame path plus paper Sec. 3.4.

Every output frame ``t`` is rendered in order, in four steps:

1. **Enhanced window.** The enhanced frames ``t - N .. t + N`` (``N`` = radius, fewer at the ends
   of the sequence) come from a :class:`FrameCache`. A frame missing there is read, converted to
   the working space and sent through the generator (``render.to_working``, ``Engine.enhance``),
   then cached. What is cached is the generator's output for the in-range part, before the
   highlights are restored. Its key (``cache_keys``) is the daemon's: the digest of the source
   pixels as read (and proxied), with the model, colourspaces, OCIO config, scale, tile geometry,
   engine settings and exposure, so a daemon sharing the ``cache_dir`` hits frames a CLI or farm
   render made. With the default cache budget, which holds the whole window, a render in order
   sends each source frame through the generator once.
2. **Motion.** Dense flow from ``t`` to each neighbour and back (``motion.estimate_flow``),
   computed on the enhanced frames: they are clean, and the noisy source is not. The two flows
   give the forward-backward occlusion mask (``motion.occlusion_mask``); a pixel lost at one
   distance is treated as lost at every greater distance on that side (``temporal.lost_beyond``).
   ``colorpipeline.temporal_window.PairFlows`` estimates each pair once (below).
3. **Average.** ``temporal.temporal_average`` over the adaptive window. Its motion thresholds are
   in full-resolution pixels, so it is given the proxy ``scale``.
4. **Finish.** Highlights restored, mix, output colourspace and atomic write, exactly as in the
   per-frame path (``render.finish_frame``).

Flow cost: every unordered pair of frames within the radius needs its flow both ways. One
direction is the forward flow of one centre and the backward flow (occlusion test) of the other;
the other direction is the reverse. A pair is estimated once, when its earlier frame is the
centre, and the later frame's (flow, occlusion) entry is kept until that frame becomes the centre.
That makes 2N flow estimates per output frame instead of 4N. The store holds at most N(N+1)/2
entries of H x W x 2 float32 plus an H x W bool mask: 21 entries at N = 6, about 175 MB at
1280x720 and 1.6 GB at UHD (four times that at 8K). It is bounded by ``flow_cache_mb`` (default:
a quarter of the memory available when the render starts); an entry that does not fit is
estimated again when needed, which costs time, never correctness. ``cache_flows=False`` keeps
none and doubles the flow estimates.

Memory at 8K (8192 x 4320, N = 6): the default enhanced-frame cache holds the window, 14 frames of
425 MB; the flow store up to 6.7 GB within its bound. Source frames are not kept: a centre frame is
read again for its finish (its pixels were read when it entered the window as a neighbour, up to
N frames earlier), trading one read per frame for 13 frames of memory.

Farm chunks (``--frames``): the window reaches up to N frames past each end of the range. Those
handle frames are read as far as the sequence on disk continues. Each frame of a chunk then has
the same window, enhanced frames, flows and output pixels as in a render of the whole sequence.
Handles cost up to 2N extra generator passes per chunk, unless a shared ``cache_dir`` already
holds them. A rerun of a chunk writes only the frames not yet complete (``render`` module doc);
the handles of those frames are read again, so each still gets the window of a whole render.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nightgrade.colorpipeline.errors import OutputError, UsageError, setting
from nightgrade.colorpipeline.io.sequence import SequenceSpec, resolve_input
from nightgrade.colorpipeline.temporal.average import TemporalConfig, window_offsets
from nightgrade.colorpipeline.temporal.motion import FlowConfig
from nightgrade.colorpipeline.temporal.window import PairFlows, smooth_frame
from nightgrade.models.engine import Engine
from nightgrade.server.render.cache_keys import KeyContext
from nightgrade.server.render.flow_store import BoundaryFlows
from nightgrade.server.render.frame_cache import FrameCache
from nightgrade.server.render.pipeline import RenderOptions, RenderSetup, finish_frame, plan_sequence, setup_for, to_working
from nightgrade.server.render.progress import TileProgress

MB = 2**20


@dataclass(frozen=True)
class TemporalRenderConfig:
    """``window``: the Sec. 3.4 settings; ``flow``: the motion estimator; ``cache_mb``: memory
    for enhanced frames (None: the window, 2N + 2 frames; 0: none, so every use runs the
    generator); ``cache_dir``: a disk tier for enhanced frames that other renders (farm chunks)
    share; ``cache_flows``: keep each pair's reverse flow for the later frame (module doc), within
    ``flow_cache_mb`` (None: a quarter of the memory available at start)."""

    window: TemporalConfig = field(default_factory=TemporalConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    cache_mb: int | None = None
    cache_dir: str | None = None
    cache_flows: bool = True
    flow_cache_mb: int | None = None

    def __post_init__(self) -> None:
        if self.cache_mb is not None and (isinstance(self.cache_mb, bool) or not isinstance(self.cache_mb, int)
                                          or self.cache_mb < 0):
            raise UsageError(f"{setting('cache_mb')} {self.cache_mb!r} is not a whole number of megabytes >= 0; "
                             "leave it out to hold the temporal window")


def window_extent(spec: SequenceSpec, radius: int) -> tuple[int, int]:
    """First and last source frame a temporal render of ``spec.frames`` reads: the range widened
    by up to ``radius`` handle frames on each side, as far as the sequence continues on disk."""
    first, last = spec.frames[0], spec.frames[-1]
    if spec.single_file:
        return first, last
    low, high = first, last
    while low > 0 and first - low < radius and os.path.isfile(spec.path_for(low - 1)):
        low -= 1
    while high - last < radius and os.path.isfile(spec.path_for(high + 1)):
        high += 1
    return low, high


def key_context(setup: RenderSetup) -> KeyContext:
    """The cache-key settings of this render: the same as the daemon's for the same frame."""
    colours = setup.colours
    return KeyContext(setup.engine, colours.input, colours.working, colours.config.config_path, setup.opts.scale,
                      setup.tiles, setup.opts.exposure)


class EnhancedFrames:
    """Step 1 of the module doc: enhanced working-space frames by frame number, through the
    generator only when the cache does not hold them; counts generator passes and times them."""

    def __init__(self, setup: RenderSetup, cache: FrameCache, progress: TileProgress | None = None) -> None:
        self._setup, self._cache, self._progress = setup, cache, progress
        self._keying = key_context(setup)
        self._keys: dict[int, str] = {}
        self.passes = 0
        self.seconds = {"read": 0.0, "key": 0.0, "generator": 0.0}

    def key(self, frame_number: int) -> str | None:
        """The cache key of a frame already seen, else None."""
        return self._keys.get(frame_number)

    def get(self, frame_number: int) -> np.ndarray:
        """The enhanced in-range working image of ``frame_number`` (H x W x 3 float32, read-only)."""
        key = self._keys.get(frame_number)
        if key is not None:
            found = self._cache.get(key)
            if found is not None:
                return found
        started = time.perf_counter()
        source = self._setup.read(frame_number)
        self.seconds["read"] += time.perf_counter() - started
        if key is None:
            started = time.perf_counter()
            key = self._keying.key_for(source.pixels)
            self._keys[frame_number] = key
            self.seconds["key"] += time.perf_counter() - started
            found = self._cache.get(key)
            if found is not None:
                return found
        started = time.perf_counter()
        _, in_range, _ = to_working(source, self._setup.colours)
        self.seconds["read"] += time.perf_counter() - started
        return self._enhance(frame_number, key, in_range)

    def _enhance(self, frame_number: int, key: str, in_range: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        progress = self._progress
        if progress is not None:
            progress.start_frame(frame_number)
        enhanced = self._setup.engine.enhance(in_range, self._setup.tiles,
                                              progress.tiles_done if progress is not None else None,
                                              exposure_stops=self._setup.opts.exposure)
        if progress is not None:
            progress.end_frame()
        self.passes += 1
        self.seconds["generator"] += time.perf_counter() - started
        self._cache.put(key, enhanced)
        enhanced.flags.writeable = False  # as what the cache hands out
        return enhanced


def render_temporal(opts: RenderOptions, cfg: TemporalRenderConfig = TemporalRenderConfig(),
                    show_progress: bool = True, engine: Engine | None = None) -> dict[str, Any]:
    """Render the frames of ``opts.frames`` (default: the whole sequence) of ``opts.input`` not yet
    complete with the temporal window of Sec. 3.4 (steps in the module doc; ``engine``: see
    ``render.setup_for``); returns the per-frame path's JSON-able summary with the temporal
    settings, generator passes, flow estimates, cache statistics and timings."""
    started = time.perf_counter()
    radius = cfg.window.radius
    requested = resolve_input(opts.input, opts.frames)
    first, last = window_extent(requested, radius)
    widened = (first, last) != (requested.frames[0], requested.frames[-1])
    plan = plan_sequence(opts, f"{first}-{last}" if widened else None, made_by={"temporal": {
        **dataclasses.asdict(cfg.window), "flow": cfg.flow.method, "wavelet_refine": cfg.flow.wavelet_refine}})
    pending = plan.pending
    if not pending:
        return plan.summary(time.perf_counter() - started, 0)
    setup = setup_for(plan, engine)
    frame_bytes = setup.width * setup.height * 3 * np.dtype(np.float32).itemsize
    budget = cfg.cache_mb * MB if cfg.cache_mb is not None else (2 * radius + 2) * frame_bytes
    if cfg.cache_dir is not None:
        _make_folder(cfg.cache_dir)
    cache = FrameCache(budget, cfg.cache_dir)
    centres = frozenset(t for t, _ in pending)
    flow_budget = cfg.flow_cache_mb * MB if cfg.flow_cache_mb is not None else _available_bytes() // 4
    seconds = {"average": 0.0, "finish_write": 0.0}
    averaged_counts: list[float] = []
    identical = 0
    sources = {n for t in centres for n in range(max(first, t - radius), min(last, t + radius) + 1)}
    with TileProgress(len(sources), setup.tiles_per_frame, enabled=show_progress, passes=True) as progress:
        enhanced = EnhancedFrames(setup, cache, progress)
        # Farm chunks sharing a cache folder share the flows across their boundaries too.
        shared = None if cfg.cache_dir is None else BoundaryFlows(cfg.cache_dir, enhanced.key, centres, cfg.flow)
        flows = PairFlows(cfg.flow, budget_bytes=flow_budget, keep_reverse=lambda centre, neighbour: (
            cfg.cache_flows and neighbour > centre and neighbour in centres), shared=shared)
        for t, out_path in pending:
            offsets = window_offsets(t, first, last, radius)
            window = {t: enhanced.get(t)} | {t + k: enhanced.get(t + k) for k in offsets}
            identical += sum(enhanced.key(t + k) == enhanced.key(t) for k in offsets)
            flow_seconds = flows.seconds
            tic = time.perf_counter()
            result, counts = smooth_frame(t, window, {k: t + k for k in offsets}, flows, cfg.window, opts.scale)
            seconds["average"] += time.perf_counter() - tic - (flows.seconds - flow_seconds)
            averaged_counts.append(float(counts.mean()))
            tic = time.perf_counter()
            frame = setup.read(t)
            working, _, excess = to_working(frame, setup.colours)
            setup.write(out_path, t, finish_frame(frame, result, working, excess, setup.colours, opts.mix,
                                                  opts.controls, opts.scale))
            seconds["finish_write"] += time.perf_counter() - tic
    written = len(pending)
    summary = setup.summary(time.perf_counter() - started, written)
    stats = cache.stats()
    timings = {**enhanced.seconds, "flow": flows.seconds, **seconds}
    summary.update({
        "temporal": {**dataclasses.asdict(cfg.window), "flow_method": cfg.flow.method,
                     "wavelet_refine": cfg.flow.wavelet_refine, "source_frames": [first, last],
                     "cache_flows": cfg.cache_flows, "flow_cache_bytes": flow_budget},
        "generator_passes": enhanced.passes,
        "generator_passes_per_frame": round(enhanced.passes / written, 4),
        "flow_estimates": flows.estimates,
        "flows_shared": {"read": shared.reads, "written": shared.writes} if shared is not None else None,
        "flow_store_peak_bytes": flows.peak_bytes,
        "cache": {**dataclasses.asdict(stats), "hit_rate": round(stats.hit_rate, 4), "budget_bytes": budget,
                  "dir": cfg.cache_dir},
        "mean_frames_averaged": round(float(np.mean(averaged_counts)), 4),
        "identical_neighbours": identical,
        "timings": {name: round(value, 3) for name, value in timings.items()}
        | {"temporal_per_frame": round((flows.seconds + seconds["average"]) / written, 3),
           "generator_per_pass": round(enhanced.seconds["generator"] / max(enhanced.passes, 1), 3)},
    })
    return summary


def _available_bytes() -> int:
    """MemAvailable of /proc/meminfo (Linux); 8 GiB where it cannot be read."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 8 * 2**30


def _make_folder(folder: str) -> None:
    """Farm jobs name a shared cache folder before any chunk has run; the first one creates it."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create cache folder {folder}: {err.strerror}; check the path and permissions")
