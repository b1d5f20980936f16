"""`nightgrade enhance --server ADDRESS`: render a sequence through a running daemon.

Files stay on this side: the client reads each frame (all channels, proxy-resized), resolves its
input colourspace exactly as a local render does, sends the RGB to the daemon and writes the
returned RGB with the frame's alpha, extra channels and metadata. The daemon runs the same pixel
path as ``render.py``/``temporal_render.py``, so the pixels match a local render.

Temporal renders read each source frame once and keep the window (up to 2N + 1 frames) here; a
neighbour's pixels are sent only when the daemon says it needs them (HAVE/NEED), so a render in
order sends every frame about once and the daemon enhances it once.

Each written frame records the identity WELCOME gives for the model the daemon uses (the record of
``render/record.py``), the same one a local render with that checkpoint records.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.errors import ModelError, ServiceError
from nightgrade.colorpipeline.io.sequence import resolve_input
from nightgrade.colorpipeline.temporal.average import TemporalConfig, window_offsets
from nightgrade.server import protocol as proto
from nightgrade.server.client import Client, RenderRequest, WirePixels
from nightgrade.server.client.errors import daemon_error
from nightgrade.server.protocol.curve import CurveClientConfig
from nightgrade.server.protocol.models import choose_model
from nightgrade.server.render.pipeline import RenderOptions, SequencePlan, input_output_colorspaces, plan_sequence
from nightgrade.server.render.progress import TileProgress
from nightgrade.server.render.temporal import window_extent


@dataclass(frozen=True)
class ServerOptions:
    """Where the daemon is and how long to wait: ``timeout_s`` for any reply (the daemon answers
    PING while it renders, so long frames do not count), ``retries`` after a silence."""

    endpoint: str = proto.DEFAULT_ENDPOINT
    timeout_s: float = 10.0
    retries: int = 2
    curve: CurveClientConfig | None = None
    model: str | None = None
    notice: Callable[[str], None] | None = None  # told of each silent try (the CLI prints it)


def render_remote(opts: RenderOptions, server: ServerOptions, window: TemporalConfig | None = None,
                  show_progress: bool = True) -> dict[str, Any]:
    """Render ``opts`` through the daemon (temporal when ``window`` is given); the JSON summary."""
    started = time.perf_counter()
    requested = resolve_input(opts.input, opts.frames)
    first, last = window_extent(requested, window.radius) if window else (requested.frames[0], requested.frames[-1])
    widened = (first, last) != (requested.frames[0], requested.frames[-1])
    # The daemon is asked first which model will make the frames: an output already complete is kept only
    # when that model made it (resumable farm renders), so even a rerun with nothing left to do needs it.
    with Client(server.endpoint, timeout_s=server.timeout_s, retries=server.retries, curve=server.curve,
                fail_fast=True, notice=server.notice) as client:
        welcome = client.hello()
        plan = plan_sequence(opts, f"{first}-{last}" if widened else None, made_by={
            "model": served_identity(welcome, server.model),
            "temporal": None if window is None else {"radius": window.radius, "max_motion": window.max_motion}})
        pending = plan.pending
        if not pending:  # every output complete and made by this model with these settings
            return plan.summary(time.perf_counter() - started, 0) | {"server": server.endpoint,
                                                                     "generator_passes": 0}
        _check_features(opts, welcome, server.endpoint)
        config = color.ColorConfig(opts.ocio_config)
        source, output, rule = input_output_colorspaces(opts, plan.spec.path_for(plan.spec.frames[0]), config,
                                                        plan.outputs[0], plan.write_options)
        params = proto.RenderParams(mix=opts.mix, temporal=window is not None,
                                    radius=window.radius if window else proto.MAX_RADIUS,
                                    max_motion=window.max_motion if window else 256.0, tile=opts.tile,
                                    region=opts.region, luma_denoise=opts.luma_denoise,
                                    chroma_denoise=opts.chroma_denoise, detail=opts.detail, exposure=opts.exposure)
        with TileProgress(len(pending), 1, enabled=show_progress) as progress:
            def request_for(t: int) -> RenderRequest:
                return RenderRequest(clip=plan.spec.display_pattern, frame=t, scale=opts.scale, model=server.model,
                                     colorspace=source, output_colorspace=output, params=params)
            passes, averaged, model = _render_pending(client, plan, request_for, window, (first, last),
                                                      lambda n: plan.read(n, config, source), output, progress)
    written = len(pending)
    return plan.summary(time.perf_counter() - started, written) | {
        "server": server.endpoint, "server_version": welcome.get("server"), "device": welcome.get("device"),
        "model": model, "colorspaces": {"input": source, "output": output, "output_rule": rule},
        "mix": opts.mix, "controls": dataclasses.asdict(opts.controls), "generator_passes": passes,
        "generator_passes_per_frame": round(passes / written, 4),
        "mean_frames_averaged": round(sum(averaged) / len(averaged), 4),
        "temporal": None if window is None else {"radius": window.radius, "max_motion": window.max_motion,
                                                  "source_frames": [first, last]},
    }


def served_identity(welcome: Mapping[str, Any], wanted: str | None) -> str:
    """What the render record keeps as the maker of the frames: the picture identity
    (``models.checkpoint.picture_identity``) of the model the daemon will use for ``wanted``,
    as a local render with that checkpoint records it, so either render resumes the other's outputs.
    A daemon that predates the ``identity`` field is recorded by name, version and weights digest."""
    models = welcome.get("models")
    if not isinstance(models, list) or not all(isinstance(m, Mapping) for m in models):
        raise daemon_error(proto.BAD_MESSAGE, f"WELCOME carried models={models!r}, not a list of maps")
    try:
        entry = models[choose_model([(str(m.get("name")), str(m.get("digest"))) for m in models], wanted)]
    except ModelError as err:
        raise daemon_error(proto.UNKNOWN_MODEL, str(err)) from None
    identity = entry.get("identity")
    if isinstance(identity, str) and identity:
        return identity
    return f"daemon model {entry.get('name')} {entry.get('version')} {entry.get('digest')}"


def _check_features(opts: RenderOptions, welcome: Mapping[str, Any], endpoint: str) -> None:
    """ServiceError when a control is set that the daemon would silently ignore (an older release)."""
    features = welcome.get("features") or ()
    if not opts.controls.is_default and "controls" not in features:
        raise ServiceError(f"the daemon at {endpoint} ({welcome.get('server')}) predates the denoise and "
                           "detail controls and would ignore them: update it, or leave them at their defaults")
    if opts.exposure and "exposure" not in features:
        raise ServiceError(f"the daemon at {endpoint} ({welcome.get('server')}) predates the exposure "
                           "control and would ignore it: update it, or leave the exposure at 0")


def _render_pending(client: Client, plan: SequencePlan, request_for: Callable[[int], RenderRequest],
                    window: TemporalConfig | None, extent: tuple[int, int], read: Callable[[int], Any],
                    output: str, progress: TileProgress) -> tuple[int, list[float], str | None]:
    """Send each pending frame (and the neighbours the daemon needs) and write what comes back;
    (generator passes, frames averaged per frame, the RESULT's model)."""
    passes, averaged, model = 0, [], None
    sources: dict[int, WirePixels] = {}
    frames = {}
    for t, out_path in plan.pending:
        progress.start_frame(t)
        offsets = window_offsets(t, *extent, window.radius) if window else ()
        for n in (t, *(t + k for k in offsets)):
            if n not in sources:
                frames[n] = read(n)
                sources[n] = WirePixels.from_array(frames[n].rgb)
        result = client.render_frame(request_for(t), sources[t], {t + k: sources[t + k] for k in offsets})
        plan.write(out_path, t, frames[t].with_rgb(result.pixels).with_colorspace(output))
        passes += result.generator_passes
        averaged.append(result.frames_averaged)
        model = result.model
        for n in [n for n in sources if n <= t - (window.radius if window else 0)]:
            del sources[n], frames[n]  # behind the window: never needed again in an ordered render
        progress.tiles_done(1, 1)
        progress.end_frame()
    return passes, averaged, model
