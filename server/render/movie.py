"""`nightgrade enhance` with a movie on either side: movie -> movie (a daily of a daily), movie ->
image sequence (frames to grade), image sequence -> movie (a daily of a render).

The per-frame path of ``render`` (colourspaces, tiles, controls, mix) on frames that PyAV decodes
or encodes (``colorpipeline.movie``). A movie is read in one pass in decode order and written
whole: no resume and no temporal window (it needs random access to neighbours); renders of
finals go through image sequences, which have both.

Colour: a movie's input colourspace is ``--input-colorspace``, else the one its tags name; a movie
output follows the output rule for an integer display format (``color.output_colorspace``, the
DPX default: Gamma 2.4 Rec.709) and is tagged with what it holds.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.errors import OutputError, UsageError, setting
from nightgrade.colorpipeline.io.frame import Frame
from nightgrade.colorpipeline.io.imageio import (WriteOptions, check_output, output_depth, probe_sequence, read_frame,
                                                 write_frame)
from nightgrade.colorpipeline.io.movie import TAGGED, MovieWriter, is_movie, probe_movie, read_movie, tagged_colorspace
from nightgrade.colorpipeline.io.sequence import (SequenceSpec, has_frame_token, output_path_for, parse_frames,
                                                  resolve_input)
from nightgrade.colorpipeline.tiling.plan import proxy_size
from nightgrade.server.render.colour_plan import ColourPlan, input_colorspace
from nightgrade.server.render.pipeline import (RenderOptions, enhance_frame, load_engine,
                                               tile_config_for)
from nightgrade.server.render.progress import TileProgress

_DAILY_RATE = Fraction(24)  # an image sequence has no rate; dailies default to 24 fps


def render_movie(opts: RenderOptions, show_progress: bool = True) -> dict[str, Any]:
    """Render ``opts`` where its input or output is a movie (module doc); the JSON-able summary."""
    started = time.perf_counter()
    config = color.ColorConfig(opts.ocio_config)
    if is_movie(opts.input):
        info = probe_movie(opts.input)
        numbers = _movie_frames(opts, info.frames)
        source = (color.canonical_name(config, opts.input_colorspace) if opts.input_colorspace
                  else tagged_colorspace(info))
        frames: Iterator[tuple[int, Frame]] = (
            (n, Frame.from_array(rgb, depth="16")) for n, rgb in read_movie(opts.input, frozenset(numbers)))
        width, height, rate = info.width, info.height, info.rate
    else:
        spec = resolve_input(opts.input, opts.frames)
        seq = probe_sequence(spec)
        numbers = spec.frames
        source = input_colorspace(opts, spec.path_for(numbers[0]), config)
        frames = ((n, read_frame(spec.path_for(n), frame=n, expect=seq)) for n in numbers)
        width, height, rate = seq.width, seq.height, _DAILY_RATE
    width, height = proxy_size(width, height, opts.scale)
    output, rule = _output_colorspace(opts, config, source)
    engine = load_engine(opts)
    working = color.canonical_name(config, engine.meta.colorspace, origin="the checkpoint's working space")
    colours = ColourPlan(config, source, working, output, rule)
    tiles = tile_config_for(opts, engine)
    with _Sink(opts, width, height, rate, output, numbers) as write, \
            TileProgress(len(numbers), 1, enabled=show_progress) as progress:
        for number, frame in frames:
            progress.start_frame(number)
            if opts.scale != 1.0:
                frame = frame.resized(width, height)
            write(number, enhance_frame(frame, engine, colours, tiles, opts.mix, None, opts.controls, opts.scale,
                                        opts.exposure))
            progress.end_frame()
    seconds = time.perf_counter() - started
    return {
        "input": opts.input, "output": opts.output, "frames": [numbers[0], numbers[-1]],
        "frames_written": len(numbers), "frames_skipped": 0, "seconds": round(seconds, 3),
        "frames_per_second": round(len(numbers) / seconds, 4) if seconds > 0 else 0.0,
        "width": width, "height": height, "scale": opts.scale, "device": str(engine.device),
        "model": f"{engine.meta.model_name} {engine.meta.model_version}",
        "colorspaces": {"input": source, "working": working, "output": output, "output_rule": rule},
        "mix": opts.mix, "controls": dataclasses.asdict(opts.controls), "movie": {"rate": str(rate)},
    }


def _movie_frames(opts: RenderOptions, count: int) -> tuple[int, ...]:
    numbers = parse_frames(opts.frames) or tuple(range(1, count + 1))
    outside = [n for n in numbers if not 1 <= n <= count]
    if outside:
        raise UsageError(f"frame {outside[0]} is outside {opts.input}, whose frames are 1-{count}")
    return numbers


def _output_colorspace(opts: RenderOptions, config: color.ColorConfig, source: str) -> tuple[str, str]:
    if opts.output_colorspace:
        return color.canonical_name(config, opts.output_colorspace, origin=setting("output_colorspace")), "given"
    if is_movie(opts.output):  # an integer display format that players read by its tags
        output, rule = color.output_colorspace(config, source, "dpx", is_float=False)
        if output not in TAGGED:
            output = color.format_default(config, "dpx", is_float=False)
            rule = f"the movie default: the input's has no movie colour tags ({', '.join(TAGGED)} have)"
        return output, rule
    depth = output_depth(opts.output, WriteOptions(bit_depth=opts.bit_depth), "16")  # movies decode to 16-bit
    return color.output_colorspace(config, source, os.path.splitext(opts.output)[1],
                                   is_float=depth in ("half", "float"))


class _Sink:
    """``write(number, frame)`` into a movie (written whole, atomically) or an image pattern."""

    def __init__(self, opts: RenderOptions, width: int, height: int, rate: Fraction, colorspace: str,
                 numbers: tuple[int, ...]) -> None:
        self._opts, self._movie = opts, None
        if is_movie(opts.output):
            if opts.bit_depth or opts.compression:
                raise UsageError(f"{setting('bit_depth')} and {setting('compression')} apply to image outputs; a .mov is ProRes 422 HQ "
                                 "10-bit, an .mp4 H.264 8-bit")
            if os.path.exists(opts.output) and not opts.overwrite:
                raise OutputError(f"{opts.output} exists; a movie is written whole: pass {setting('overwrite')} to replace it")
            os.makedirs(os.path.dirname(os.path.abspath(opts.output)), exist_ok=True)
            self._movie = MovieWriter(opts.output, width, height, rate, colorspace)
        elif not has_frame_token(opts.output):
            raise UsageError(f"output {opts.output}: frames of a movie need a pattern like out/shot.####.exr")
        else:
            self._options = WriteOptions(bit_depth=opts.bit_depth, compression=opts.compression)
            os.makedirs(os.path.dirname(os.path.abspath(opts.output)), exist_ok=True)
            check_output(self._path(numbers[0]), self._options)

    def _path(self, number: int) -> str:
        return output_path_for(self._opts.output, SequenceSpec(self._opts.input, (number,), single_file=True), number)

    def __enter__(self):
        if self._movie is not None:
            movie = self._movie.__enter__()
            return lambda number, frame: movie.write(frame.rgb)
        return lambda number, frame: write_frame(self._path(number), frame, self._options)

    def __exit__(self, *exc: Any) -> None:
        if self._movie is not None:
            self._movie.__exit__(*exc)

