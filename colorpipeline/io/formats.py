"""What each output format can store (depths, compressions, extra channels, windows) and the
choice of depth and compression for a write: the rules ``imageio.write_frame`` and farm resume share."""
from __future__ import annotations

import os
from dataclasses import dataclass

from nightgrade.colorpipeline.errors import OutputError


@dataclass(frozen=True)
class FormatRules:
    """What one output format can store."""

    name: str
    depths: tuple[str, ...]
    default_depth: str
    compressions: tuple[str, ...]
    default_compression: str | None
    colour_and_alpha_only: bool  # no room for extra channels (Z, AOVs)
    display_window: bool  # stores a data window different from the display window
    negative_origin: bool


_EXR = FormatRules("OpenEXR", ("half", "float"), "half",
                   ("none", "rle", "zip", "zips", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab"), "zip",
                   False, True, True)
_TIFF = FormatRules("TIFF", ("8", "16", "float"), "16", ("none", "lzw", "zip", "packbits"), "zip",
                    False, False, False)
FORMATS: dict[str, FormatRules] = {
    ".exr": _EXR,
    ".dpx": FormatRules("DPX", ("8", "10", "12", "16"), "10", ("none",), None, True, True, False),
    ".tif": _TIFF,
    ".tiff": _TIFF,
    ".png": FormatRules("PNG", ("8", "16"), "16", ("zip",), None, True, False, False),
}


def format_rules(path: str) -> FormatRules:
    """The rules for ``path``'s extension; OutputError for an extension NightGrade does not write."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        shown = f"extension {ext!r} is not an output format" if ext else "it has no extension to name a format"
        raise OutputError(f"cannot write {path}: {shown}; use {', '.join(FORMATS)}")
    return FORMATS[ext]


def choose_depth(rules: FormatRules, requested: str | None, source: str | None, path: str) -> str:
    if requested is not None:
        if requested not in rules.depths:
            raise OutputError(
                f"cannot write {path}: {rules.name} cannot store {requested} bit depth; "
                f"choose {', '.join(rules.depths)}"
            )
        return requested
    return source if source in rules.depths else rules.default_depth


def choose_compression(rules: FormatRules, requested: str | None, source: str, path: str) -> str | None:
    if requested is not None:
        name, _, level = requested.lower().partition(":")
        if name not in rules.compressions or (level and not level.replace(".", "", 1).isdigit()):
            raise OutputError(
                f"cannot write {path}: {rules.name} compression {requested!r} is not supported; "
                f"choose {', '.join(rules.compressions)}"
            )
        return requested.lower()
    inherited = source.lower().partition(":")[0]
    return inherited if inherited in rules.compressions else rules.default_compression
