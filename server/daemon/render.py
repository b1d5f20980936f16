"""The pixels of a RENDER request (docs/protocol.md): the in-process path of ``render.py`` and
``temporal_render.py``, fed from buffers instead of files.

A request's frame goes through the same steps as ``nightgrade enhance``: input colourspace ->
working space, the generator on the in-range part (paper Sec. 3.1-3.3), optionally the temporal
window (Sec. 3.4), highlights restored, mix, output colourspace. The daemon always enhances the
whole frame (tiles need the region context around them) and returns the requested window.

Cache entries (one :class:`FrameCache` for the daemon):

* the generator's output for a frame, keyed by :meth:`PictureContext.key`: the client's digest of
  the source pixels plus everything else that decides the output (model, colourspaces, OCIO
  config, size, sample type, render scale, tile geometry, engine precision). Further windows of a
  frame and the temporal windows of its neighbours reuse it, so a sequential render sends each
  source frame through the generator once;
* the temporally smoothed frame (with the frames-averaged count as a fourth channel), keyed by the
  centre's and every neighbour's key plus the window settings, so the render windows (tiles) of
  one temporal frame cost one flow computation.

Work for several requests is split so that the worker can batch generator tiles across them:
:func:`prepare` (decode, digests, cache lookups), then the caller runs the generator on every
``RenderWork.missing`` frame together, :meth:`RenderWork.provide` hands the outputs back, and
:func:`finish` smooths, finishes and crops.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.controls import Controls
from nightgrade.colorpipeline.errors import ColorError, ModelError, UsageError
from nightgrade.colorpipeline.io.finite import CLAMP, NonFinite, replace_nonfinite
from nightgrade.colorpipeline.temporal.average import TemporalConfig
from nightgrade.colorpipeline.temporal.window import PairFlows, smooth_frame
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.server import protocol as proto
from nightgrade.server.daemon.models import LoadedModel, ModelSet
from nightgrade.server.render.cache_keys import KeyContext
from nightgrade.server.render.colour_plan import ColourPlan
from nightgrade.server.render.frame_cache import FrameCache, content_key
from nightgrade.server.render.pipeline import finish_rgb, tile_geometry, working_rgb


@dataclass(frozen=True, eq=False)
class PictureContext:
    """Everything about a request's frames, besides their pixels, that decides the generator's output."""

    model: LoadedModel
    colours: ColourPlan
    tiles: TileConfig
    scale: float
    keys: KeyContext
    picture: tuple[int, int, int, str]  # width, height, channels, format of the request's buffers

    def key(self, digest: str) -> str:
        """The cache key of the enhanced frame whose source pixels have ``digest`` (``cache_keys``)."""
        return self.keys.key(digest, *self.picture)


def picture_context(req: proto.Render | proto.Have, models: ModelSet, config: color.ColorConfig) -> PictureContext:
    """Resolve model, colourspaces and tile geometry of a RENDER or HAVE; ProtocolError
    (UNKNOWN_MODEL, BAD_COLORSPACE, BAD_MESSAGE) naming the field and the fix."""
    try:
        model = models.get(req.model)
    except ModelError as err:
        raise proto.ProtocolError(proto.UNKNOWN_MODEL, err.naming(proto.field_name), req.id,
                                  models=models.names()) from None
    try:
        # Frames without a colourspace follow the CLI's rule for float files (Linear Rec.709).
        source = color.canonical_name(config, req.colorspace, origin="the request's colorspace",
                                      fix="send a colourspace of the daemon's OCIO config") \
            if req.colorspace else color.unlabelled_float_default(config)
        output = color.canonical_name(config, req.output_colorspace, origin="the request's output_colorspace",
                                      fix="send a colourspace of the daemon's OCIO config") \
            if req.output_colorspace else color.output_colorspace(config, source, color.BUFFER, is_float=True)[0]
    except ColorError as err:
        raise proto.ProtocolError(proto.BAD_COLORSPACE, err.naming(proto.field_name), req.id) from None
    try:
        tiles = tile_geometry(model.engine, req.scale, req.params.tile, req.params.region)
    except UsageError as err:
        raise proto.ProtocolError(proto.BAD_MESSAGE, err.naming(proto.field_name), req.id,
                                  field="params.tile") from None
    keys = KeyContext(model.engine, source, model.working, config.config_path, req.scale, tiles, req.params.exposure)
    return PictureContext(model, ColourPlan(config, source, model.working, output), tiles, req.scale, keys,
                          (req.width, req.height, req.channels, req.format))


def needed(ctx: PictureContext, digests: tuple[str, ...], cache: FrameCache) -> list[str]:
    """HAVE -> NEED: the digests whose enhanced frame the cache does not hold now."""
    return [d for d in dict.fromkeys(digests) if not cache.contains(ctx.key(d))]


@dataclass(eq=False)
class RenderWork:
    """One RENDER between :func:`prepare` and :func:`finish`. ``enhanced`` holds the generator
    outputs by cache key (references keep them alive whatever the cache evicts meanwhile);
    ``missing`` the in-range working images still to go through the generator."""

    req: proto.Render
    ctx: PictureContext
    centre: np.ndarray
    working: np.ndarray
    excess: np.ndarray
    keys: dict[int, str]
    enhanced: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    passes: int = 0
    nonfinite: NonFinite = NonFinite()
    started: float = field(default_factory=time.perf_counter)

    def provide(self, key: str, output: np.ndarray, counted: bool) -> None:
        """A generator output for ``key``; ``counted``: this request caused the pass."""
        self.missing.pop(key, None)
        self.enhanced[key] = output
        self.passes += counted


def prepare(req: proto.Render, ctx: PictureContext, cache: FrameCache) -> RenderWork:
    """Check digests, decode buffers and find which frames need the generator. ProtocolError
    BAD_BUFFER (digest) or NEED_FRAMES (a neighbour neither cached nor attached)."""
    args = (req.width, req.height, req.channels, req.format, req.row_bytes)
    proto.check_digest(req.buffers[0], *args, req.digest)
    centre, found = replace_nonfinite(proto.buffer_to_array(req.buffers[0], *args))  # NaN would spread over tiles
    working, in_range, excess = working_rgb(_rgb(centre), ctx.colours)
    work = RenderWork(req, ctx, centre, working, excess, {0: ctx.key(req.digest)}, nonfinite=found)
    _look_up(work, work.keys[0], in_range, cache)
    if not (req.params.temporal and req.params.radius > 0):
        return work
    attached = dict(zip(req.attached, req.buffers[1:]))
    need = []
    for neighbour in req.neighbours:
        offset = neighbour.frame - req.frame
        if not 0 < abs(offset) <= req.params.radius:
            continue
        key = work.keys[offset] = ctx.key(neighbour.digest)
        if key in work.enhanced or key in work.missing or _look_up(work, key, None, cache):
            continue
        buffer = attached.get(neighbour.digest)
        if buffer is None:
            need.append(neighbour.digest)
            continue
        proto.check_digest(buffer, *args, neighbour.digest)
        pixels, _ = replace_nonfinite(proto.buffer_to_array(buffer, *args))
        work.missing[key] = working_rgb(_rgb(pixels), ctx.colours)[1]
    if need:
        raise proto.ProtocolError(proto.NEED_FRAMES, f"the daemon does not hold {len(need)} neighbour frame(s) of "
                                  f"frame {req.frame}: attach their pixels (ask with HAVE first)", req.id, need=need)
    return work


def finish(work: RenderWork, cache: FrameCache, flows: PairFlows) -> tuple[dict, memoryview]:
    """Temporal window (if asked), colourist controls, highlights, mix, output colourspace, window crop: the RESULT
    header fields and its pixel buffer."""
    req, ctx = work.req, work.ctx
    enhanced = work.enhanced[work.keys[0]]
    averaged = 1.0
    offsets = {k: key for k, key in work.keys.items() if k != 0}
    if offsets:
        window = TemporalConfig(radius=req.params.radius, max_motion=req.params.max_motion)
        smoothed_key = content_key(work.keys[0], ctx.model.identity, {
            "cached": "temporally smoothed generator output", "window": dataclasses.asdict(window),
            "neighbours": sorted(offsets.items()), "scale": ctx.scale})
        smoothed = cache.get(smoothed_key)
        if smoothed is None:
            rgb, counts = smooth_frame(work.keys[0], work.enhanced, offsets, flows, window, ctx.scale)
            smoothed = np.concatenate([rgb, counts[..., None].astype(np.float32)], axis=2)
            cache.put(smoothed_key, smoothed)
        enhanced, averaged = smoothed[..., :3], float(smoothed[..., 3].mean())
    params = req.params
    rgb = finish_rgb(enhanced, work.working, work.excess, ctx.colours, params.mix,
                     Controls(params.luma_denoise, params.chroma_denoise, params.detail), ctx.scale)
    x0, y0, x1, y1 = req.window
    out = rgb[y0:y1, x0:x1]
    if req.channels == 4:
        out = np.concatenate([out, work.centre[y0:y1, x0:x1, 3:4]], axis=2)
    buffer, row_bytes = proto.array_to_buffer(out, req.format)
    header = {"frame": req.frame, "window": [x0, y0, x1, y1], "width": x1 - x0, "height": y1 - y0,
              "channels": req.channels, "format": req.format, "row_bytes": row_bytes,
              "colorspace": ctx.colours.output, "model": ctx.model.digest, "generator_passes": work.passes,
              "frames_averaged": round(averaged, 4), "seconds": round(time.perf_counter() - work.started, 4),
              "nonfinite": {"nan": work.nonfinite.nan, "inf": work.nonfinite.inf}}
    if work.nonfinite.total:
        header["warning"] = (f"the frame held {work.nonfinite.describe()}: NaN replaced by 0, Inf clamped to "
                             f"+-{CLAMP:g} before enhancing")
    return header, buffer


def _look_up(work: RenderWork, key: str, in_range: np.ndarray | None, cache: FrameCache) -> bool:
    """Take ``key``'s enhanced frame from the cache into ``work``; else queue ``in_range`` (if any)."""
    found = cache.get(key)
    if found is not None:
        work.enhanced[key] = found
        return True
    if in_range is not None:
        work.missing[key] = in_range
    return False


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """The RGB part of an (H, W, 3|4) frame, contiguous for OCIO."""
    return np.ascontiguousarray(pixels[..., :3], dtype=np.float32)
