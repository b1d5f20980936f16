"""The colourspaces of a render: input (the user's, file metadata, else the format's default),
working (the checkpoint's) and output (the user's, else ``color.output_colorspace`` for the output
file's format and depth), resolved once per sequence."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import OpenImageIO as oiio

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.errors import setting
from nightgrade.colorpipeline.io.frame import depth_of
from nightgrade.colorpipeline.io.imageio import WriteOptions, output_depth, read_header

if TYPE_CHECKING:
    from nightgrade.server.render.pipeline import RenderOptions


@dataclass(frozen=True)
class ColourPlan:
    """The three colourspaces of a render, resolved once per sequence; ``output_rule`` says why the
    output one was chosen (``color.output_colorspace``), for the stderr line and ``--json``."""

    config: color.ColorConfig
    input: str
    working: str
    output: str
    output_rule: str = "given"


def plan_colours(opts: RenderOptions, first_path: str, working_name: str, output_path: str,
                 write_options: WriteOptions) -> ColourPlan:
    """Resolve input (user, metadata, format default), working (checkpoint) and output spaces."""
    config = color.ColorConfig(opts.ocio_config)
    source, output, rule = input_output_colorspaces(opts, first_path, config, output_path, write_options)
    working = color.canonical_name(config, working_name, origin="the checkpoint's working space",
                                   fix=f"use an OCIO config that defines it ({setting('ocio_config')})")
    return ColourPlan(config, source, working, output, rule)


def input_output_colorspaces(opts: RenderOptions, first_path: str, config: color.ColorConfig, output_path: str,
                             write_options: WriteOptions) -> tuple[str, str, str]:
    """(input colourspace of a sequence (user, metadata, format default), output colourspace (user,
    else ``color.output_colorspace`` for the file ``output_path`` at its depth), why that output)."""
    header = read_header(first_path)
    source = input_colorspace(opts, first_path, config, header)
    if opts.output_colorspace:
        return source, color.canonical_name(config, opts.output_colorspace, origin=setting("output_colorspace")), "given"
    depth = output_depth(output_path, write_options, depth_of(header.format,
                                                              header.get_int_attribute("oiio:BitsPerSample", 0)))
    output, rule = color.output_colorspace(config, source, os.path.splitext(output_path)[1],
                                           is_float=depth in ("half", "float"))
    return source, output, rule


def input_colorspace(opts: RenderOptions, first_path: str, config: color.ColorConfig,
                     header: oiio.ImageSpec | None = None) -> str:
    """The input colourspace of a sequence: the user's, else metadata, else the format default."""
    header = header if header is not None else read_header(first_path)
    chroma = header.getattribute("chromaticities")
    return color.resolve_colorspace(
        config, opts.input_colorspace, header.get_string_attribute("oiio:ColorSpace", ""),
        os.path.splitext(first_path)[1], is_float=header.format.basetype in (oiio.HALF, oiio.FLOAT, oiio.DOUBLE),
        chromaticities=chroma, source=first_path)
