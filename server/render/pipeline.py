"""Render a frame sequence: read -> input colourspace -> working space -> tiled generator -> output.

This is the in-process pixel path that the CLI, the daemon and farm workers share. Per frame:

1. read all channels (``colorpipeline.imageio``); proxy renders (``scale < 1``) resize the whole frame
   first and scale the tile geometry with it, so a preview shows the same look, smaller;
2. convert RGB to the model's working space (OCIO, ``colorpipeline.color``);
3. the generator sees the frame clamped to [0, 1]; what lies outside is carried around it
   (``split_highlights``/``restore_highlights``), so scene-linear highlights survive;
4. tiled inference with Gaussian merge (paper Sec. 3.1-3.3, ``models.engine``);
5. the colourist controls (denoise strength for luma and chroma, detail recovery:
   ``colorpipeline.controls``), optional mix with the input, conversion to the output
   colourspace, atomic write with the input's metadata, alpha and extra channels.

Renders resume: an output frame that already exists and validates (``farm_resume``) is skipped
unless ``RenderOptions.overwrite``; when every frame is done no model is loaded at all.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.controls import EXPOSURE_RANGE, ControlRangeError, Controls, apply_controls
from nightgrade.colorpipeline.errors import OutputError, UsageError, setting
from nightgrade.colorpipeline.io.atomic import remove_stale_temps
from nightgrade.colorpipeline.io.finite import NonFinite, finite_output, replace_nonfinite
from nightgrade.colorpipeline.io.frame import Frame
from nightgrade.colorpipeline.io.imageio import (SequenceInfo, WriteOptions, check_output,
                                                 probe_sequence, read_frame, read_header, write_frame)
from nightgrade.colorpipeline.io.sequence import SequenceSpec, output_path_for, resolve_input
from nightgrade.colorpipeline.tiling.plan import TileConfig, plan_tiles, proxy_size
from nightgrade.models.checkpoint import picture_identity, read_meta
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.server.farm.resume import completed_frames, expected_output
from nightgrade.server.render.colour_plan import ColourPlan, input_output_colorspaces, plan_colours
from nightgrade.server.render.defaults import resolve_weights
from nightgrade.server.render.progress import TileProgress
from nightgrade.server.render.record import mismatch, normalised, with_record


@dataclass(frozen=True)
class RenderOptions:
    """Everything `nightgrade enhance` takes; tile sizes are in full-resolution pixels."""

    input: str
    output: str
    weights: str | None = None
    frames: str | None = None
    input_colorspace: str | None = None
    output_colorspace: str | None = None
    ocio_config: str | None = None
    scale: float = 1.0
    tile: int | None = None
    region: int | None = None
    stride: int | None = None
    batch: int | None = None
    device: str = "auto"
    mix: float = 1.0
    luma_denoise: float = 1.0
    chroma_denoise: float = 1.0
    detail: float = 0.0
    exposure: float = 0.0  # stops on top of the model's own exposure choice (models/exposure.py)
    bit_depth: str | None = None
    compression: str | None = None
    compile: bool = False
    overwrite: bool = False
    backend: str = "auto"
    strict: bool = False  # refuse frames with NaN/Inf values instead of replacing them (colorpipeline.finite)

    def __post_init__(self) -> None:
        if not 0.0 < self.scale <= 1.0:
            raise UsageError(f"{setting('scale')} {self.scale} is outside (0, 1]: use e.g. 0.5 for a half-resolution proxy")
        if not 0.0 <= self.mix <= 1.0:
            raise UsageError(f"{setting('mix')} {self.mix} is outside [0, 1]: 0 keeps the input, 1 is fully enhanced")
        if self.batch is not None and self.batch < 1:
            raise UsageError(f"{setting('batch')} {self.batch} must be at least 1")
        self.controls  # noqa: B018 - validates the control ranges now, before any work
        low, high = EXPOSURE_RANGE
        if not low <= self.exposure <= high:
            raise ControlRangeError("exposure", self.exposure, "stops on top of the model's own exposure; 0 keeps "
                                    "its choice, +1 is twice the light", EXPOSURE_RANGE)

    @property
    def controls(self) -> Controls:
        """The colourist controls around the model output (``colorpipeline.controls``)."""
        return Controls(self.luma_denoise, self.chroma_denoise, self.detail)


def tile_config_for(opts: RenderOptions, engine: Engine) -> TileConfig:
    """The tile geometry of a render (``tile_geometry`` with the options' sizes and scale)."""
    return tile_geometry(engine, opts.scale, opts.tile, opts.region, opts.stride)


def tile_geometry(engine: Engine, scale: float = 1.0, tile: int | None = None, region: int | None = None,
                  stride: int | None = None) -> TileConfig:
    """Checkpoint geometry, overridden by the user's full-resolution sizes, scaled for proxies.

    A user tile size without a region size keeps the checkpoint's region/local ratio: the
    generator learned its context at that ratio (Sec. 3.1).
    """
    ckpt = engine.tiles
    local = tile or ckpt.local
    region = region or max(local, round(local * ckpt.region / ckpt.local))
    stride = stride if stride is not None else (None if tile else ckpt.stride)
    full = TileConfig(local=local, region=region, stride=stride)
    multiple, smallest = engine.size_multiple, engine.generator_config.min_size
    if full.local % multiple or full.local < smallest:
        raise UsageError(f"{setting('tile')} {full.local} does not suit this model: use a multiple of {multiple} "
                         f"of at least {smallest}")
    if scale == 1.0:
        return full
    scaled = full.scaled(scale, multiple)
    if scaled.local < smallest:  # very small proxies: keep the smallest tile the network accepts
        scaled = TileConfig(local=smallest, region=max(smallest, scaled.region), stride=scaled.stride)
    return scaled


def to_working(frame: Frame, colours: ColourPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2-3 for a frame (``working_rgb`` of its RGB)."""
    return working_rgb(frame.rgb, colours)


def working_rgb(rgb: np.ndarray, colours: ColourPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2-3: (working-space RGB, the part in [0, 1] the model sees, the excess carried around it)."""
    working = color.convert(rgb, colours.input, colours.working, colours.config)
    in_range, excess = color.split_highlights(working)
    return working, in_range, excess


def finish_frame(frame: Frame, enhanced: np.ndarray, working: np.ndarray, excess: np.ndarray,
                 colours: ColourPlan, mix: float, controls: Controls = Controls(), scale: float = 1.0) -> Frame:
    """Step 5: ``finish_rgb``, carried into the frame with its other channels and metadata."""
    rgb = finish_rgb(enhanced, working, excess, colours, mix, controls, scale)
    return frame.with_rgb(rgb).with_colorspace(colours.output)


def finish_rgb(enhanced: np.ndarray, working: np.ndarray, excess: np.ndarray, colours: ColourPlan,
               mix: float, controls: Controls = Controls(), scale: float = 1.0) -> np.ndarray:
    """Step 5 on RGB: the colourist controls on the model output (against what the model saw,
    ``working - excess``; ``scale`` is the render scale), the excess added back, mix with the
    input, conversion to the output colourspace."""
    enhanced = apply_controls(working - excess, enhanced, controls, scale)
    out = color.restore_highlights(enhanced, excess)
    if mix != 1.0:
        out = mix * out + (1.0 - mix) * working
    return finite_output(color.convert(out, colours.working, colours.output, colours.config))


def enhance_frame(frame: Frame, engine: Engine, colours: ColourPlan, tiles: TileConfig, mix: float,
                  progress: Any = None, controls: Controls = Controls(), scale: float = 1.0,
                  exposure: float = 0.0) -> Frame:
    """One frame through steps 2-5 of the module docstring (no I/O); ``exposure`` in stops."""
    working, in_range, excess = to_working(frame, colours)
    return finish_frame(frame, engine.enhance(in_range, tiles, progress, exposure_stops=exposure), working, excess,
                        colours, mix, controls, scale)


def _make_output_folder(path: str) -> None:
    """Farm jobs name output folders that do not exist yet; create them (as Nuke's Write node can)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder {folder}: {err.strerror}; check the path and permissions")
    remove_stale_temps(folder)  # temp files of a render killed mid-write (SIGKILL skips its cleanup)


def _proxy(frame: Frame, scale: float, config: color.ColorConfig, input_space: str) -> Frame:
    """The frame at ``scale``, its RGB area-averaged in linear light, as a host makes its proxies and as
    the final is downscaled: averaging display-encoded values (PNG, DPX, sRGB EXR) darkens bright detail
    next to dark, about 1% of the light at 0.5 and 2% at 0.25 on the sample clip."""
    if scale == 1.0:
        return frame
    width, height = proxy_size(frame.width, frame.height, scale)
    small = frame.resized(width, height)  # alpha and other channels: plain area average
    linear = color.unlabelled_float_default(config)
    if input_space == linear:
        return small
    rgb = cv2.resize(color.convert(frame.rgb, input_space, linear, config), (width, height),
                     interpolation=cv2.INTER_AREA).reshape(height, width, 3)
    return small.with_rgb(color.convert(rgb, linear, input_space, config))


@dataclass(frozen=True, eq=False)
class SequencePlan:
    """The files of a render, checked before any pixel work: the sequence read (``spec``, with
    handle frames for a temporal render), the frames requested and where they go, the render
    size, and the requested frames whose outputs are already complete (``done``)."""

    opts: RenderOptions
    spec: SequenceSpec
    info: SequenceInfo
    output_frames: tuple[int, ...]
    outputs: tuple[str, ...]
    write_options: WriteOptions
    width: int
    height: int
    done: frozenset[int]
    nonfinite: dict[int, NonFinite]  # frames read so far that held NaN/Inf, what was replaced
    settings: dict[str, Any]  # what decides the pixels, recorded in each frame's header (render_record)
    redo: dict[int, str]  # complete frames made differently (or unrecorded): rendered again, and why

    @property
    def pending(self) -> tuple[tuple[int, str], ...]:
        """(frame, output path) of every requested frame still to write, in order."""
        return tuple((f, path) for f, path in zip(self.output_frames, self.outputs) if f not in self.done)

    def read(self, frame_number: int, config: color.ColorConfig, input_space: str) -> Frame:
        """One input frame, checked against the sequence, its NaN/Inf values replaced (and counted in
        ``nonfinite``; NonFiniteError in strict mode) and resized for proxies (in linear light, from
        ``input_space`` of ``config``)."""
        path = self.spec.path_for(frame_number)
        frame = read_frame(path, frame=frame_number, expect=self.info)
        pixels, found = replace_nonfinite(frame.pixels, f"frame {frame_number} ({path})", self.opts.strict)
        if found.total:
            self.nonfinite[frame_number] = found
            frame = dataclasses.replace(frame, pixels=pixels)
        return _proxy(frame, self.opts.scale, config, input_space)

    def write(self, path: str, frame_number: int, frame: Frame) -> None:
        """Write an output frame with the record of what made it in its header (``render_record``)."""
        settings = self.settings | {"source": os.path.realpath(self.spec.path_for(frame_number))}
        write_frame(path, with_record(frame, path, settings), self.write_options)

    def summary(self, seconds: float, frames_written: int) -> dict[str, Any]:
        """The JSON-able summary of what a render of this plan did with the files."""
        requested = self.output_frames
        return {
            "input": self.spec.display_pattern, "output": self.opts.output, "frames": [requested[0], requested[-1]],
            "frames_written": frames_written, "frames_skipped": len(self.done), "seconds": round(seconds, 3),
            "frames_per_second": round(frames_written / seconds, 4) if seconds > 0 else 0.0,
            "width": self.width, "height": self.height, "scale": self.opts.scale,
            "nonfinite": _nonfinite_summary(self.nonfinite), "frames_rerendered": len(self.redo),
            "rerender_reason": next((f"frame {f}: {why}" for f, why in sorted(self.redo.items())), None),
        }


@dataclass(frozen=True, eq=False)
class RenderSetup(SequencePlan):
    """Everything resolved before the first generator pass, shared by plain and temporal renders:
    the files (``SequencePlan``), the model, colourspaces and tile geometry."""

    weights: str
    engine: Engine
    colours: ColourPlan
    tiles: TileConfig
    tiles_per_frame: int

    def read(self, frame_number: int, config: color.ColorConfig | None = None, input_space: str | None = None) -> Frame:
        """``SequencePlan.read`` in this render's input colourspace."""
        return super().read(frame_number, config or self.colours.config, input_space or self.colours.input)

    def summary(self, seconds: float, frames_written: int) -> dict[str, Any]:
        engine, tiles, colours = self.engine, self.tiles, self.colours
        return super().summary(seconds, frames_written) | {
            "weights": self.weights, "model": f"{engine.meta.model_name} {engine.meta.model_version}",
            "device": str(engine.device), "batch_size": engine.batch_size_for(tiles.local),
            "tiles": dataclasses.asdict(tiles) | {"per_frame": self.tiles_per_frame},
            "colorspaces": {"input": colours.input, "working": colours.working, "output": colours.output,
                            "output_rule": colours.output_rule},
            "mix": self.opts.mix, "controls": dataclasses.asdict(self.opts.controls),
        }


def plan_sequence(opts: RenderOptions, frames: str | None = None,
                  made_by: Mapping[str, Any] | None = None) -> SequencePlan:
    """Check all input headers (missing frames, size changes) and the output path and format,
    and find the outputs already complete and made with the same settings (none with
    ``opts.overwrite``; ``render_record``).

    ``frames`` overrides ``opts.frames`` for the sequence probed (a temporal render probes the
    handle frames around the requested range too); outputs are planned for ``opts.frames`` only.
    ``made_by``: settings beyond ``opts`` that decide the pixels (``temporal``; ``model`` for a
    daemon render, else the weights' digest is used).
    """
    spec: SequenceSpec = resolve_input(opts.input, opts.frames if frames is None else frames)
    requested = spec if frames is None else resolve_input(opts.input, opts.frames)
    info = probe_sequence(spec)
    write_options = WriteOptions(bit_depth=opts.bit_depth, compression=opts.compression)
    outputs = tuple(output_path_for(opts.output, requested, f) for f in requested.frames)
    _make_output_folder(outputs[0])
    check_output(outputs[0], write_options, info)
    width, height = proxy_size(info.width, info.height, opts.scale)
    settings = _settings(opts, spec.path_for(spec.frames[0]), made_by or {}, outputs[0], write_options)
    complete = frozenset() if opts.overwrite else completed_frames(
        requested.frames, outputs, expected_output(outputs[0], read_header(info.reference), opts.scale))
    redo = {}
    for frame, path in zip(requested.frames, outputs):
        why = mismatch(path, settings | {"source": os.path.realpath(spec.path_for(frame))}) \
            if frame in complete else None
        if why is not None:
            redo[frame] = why
    return SequencePlan(opts, spec, info, requested.frames, outputs, write_options, width, height,
                        complete - frozenset(redo), {}, settings, redo)


def _settings(opts: RenderOptions, first_path: str, made_by: Mapping[str, Any], output_path: str,
              write_options: WriteOptions) -> dict[str, Any]:
    """What decides an output frame's pixels besides its source (``render_record``)."""
    config = color.ColorConfig(opts.ocio_config)
    source, output, _why = input_output_colorspaces(opts, first_path, config, output_path, write_options)
    model = made_by.get("model") or picture_identity(read_meta(resolve_weights(opts.weights)))
    return normalised({
        "model": model, "colorspaces": [source, output], "ocio": color.config_source(opts.ocio_config)[0],
        "mix": opts.mix, "controls": dataclasses.asdict(opts.controls), "exposure": opts.exposure,
        "scale": opts.scale,
        "tile": [opts.tile, opts.region, opts.stride],
        "bit_depth": opts.bit_depth, "compression": opts.compression, "temporal": made_by.get("temporal"),
    })


def _nonfinite_summary(found: dict[int, NonFinite]) -> dict[str, Any]:
    total = sum(found.values(), NonFinite())
    return {"frames": sorted(found), "nan": total.nan, "inf": total.inf}


def load_engine(opts: RenderOptions) -> Engine:
    """The generator of a render: ``opts.weights`` (else the shipped model) placed per ``opts``."""
    return Engine.from_checkpoint(resolve_weights(opts.weights), EngineConfig(
        device=opts.device, batch_size=opts.batch, compile=opts.compile, backend=opts.backend))


def setup_for(plan: SequencePlan, engine: Engine | None = None) -> RenderSetup:
    """Load the weights (unless ``engine``, loaded from ``opts.weights`` by a farm worker that
    renders many chunks, is given) and resolve colourspaces and tile geometry."""
    opts = plan.opts
    weights = resolve_weights(opts.weights)
    engine = engine if engine is not None else load_engine(opts)
    colours = plan_colours(opts, plan.spec.path_for(plan.spec.frames[0]), engine.meta.colorspace, plan.outputs[0],
                           plan.write_options)
    tiles = tile_config_for(opts, engine)
    return RenderSetup(**{f.name: getattr(plan, f.name) for f in dataclasses.fields(plan)}, weights=weights,
                       engine=engine, colours=colours, tiles=tiles,
                       tiles_per_frame=plan_tiles(plan.height, plan.width, tiles).count)


def render_sequence(opts: RenderOptions, show_progress: bool = True, engine: Engine | None = None) -> dict[str, Any]:
    """Render every frame of ``opts.input`` not yet complete to ``opts.output`` (with ``engine``
    when given, see ``setup_for``); returns a JSON-able summary."""
    started = time.perf_counter()
    plan = plan_sequence(opts)
    pending = plan.pending
    if not pending:
        return plan.summary(time.perf_counter() - started, 0)
    setup = setup_for(plan, engine)
    with TileProgress(len(pending), setup.tiles_per_frame, enabled=show_progress) as progress:
        for frame_number, out_path in pending:
            frame = setup.read(frame_number)
            progress.start_frame(frame_number)
            setup.write(out_path, frame_number, enhance_frame(frame, setup.engine, setup.colours, setup.tiles,
                                                              opts.mix, progress.tiles_done, opts.controls,
                                                              opts.scale, opts.exposure))
            progress.end_frame()
    return setup.summary(time.perf_counter() - started, len(pending))
