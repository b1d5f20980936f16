"""Resumable renders: which output frames are already complete, so a rerun writes only the rest.

A farm chunk that crashed, was pre-empted or is retried runs again with the same frame range;
frames it wrote before are kept when they *validate* against what this render would write:

- **size**: the data window the writer would produce (the render size; for formats without a
  display window, TIFF and PNG, the display window the frame is placed in, ``imageio`` module doc);
- **channels**: EXR keeps the source's channel names, so they must match by name (in any order:
  OpenEXR files store channels sorted and readers reorder them); other formats name their
  channels themselves, so their count must match;
- **readable**: the header opens and every pixel decodes. Writes are atomic (temp file + rename),
  so NightGrade never leaves a partial frame, but another tool or a damaged disk can; decoding is
  what catches a truncated EXR, whose header stays valid.

A frame from another render (another ``--scale``, another input layout) fails the size or channel
test and is rendered again; what the file's pixels cannot show (other weights, ``--mix``,
colourspaces) is in its header record, checked by ``render_record``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import OpenImageIO as oiio

from nightgrade.colorpipeline.io.formats import FORMATS, format_rules
from nightgrade.colorpipeline.io.frame import resolve_channels
from nightgrade.colorpipeline.io.native_stderr import quiet_decoder
from nightgrade.colorpipeline.tiling.plan import proxy_size

_EXR_RULES = FORMATS[".exr"]
_MAX_READERS = 8  # outputs are decoded in parallel: on shared storage the wait is I/O, not CPU


@dataclass(frozen=True)
class ExpectedOutput:
    """What a complete output frame of a render holds: ``width`` x ``height`` pixels and
    ``channels`` (compared by name, in any order, when ``names_kept``, else by count)."""

    width: int
    height: int
    channels: tuple[str, ...]
    names_kept: bool


def expected_output(path: str, source: oiio.ImageSpec, scale: float = 1.0) -> ExpectedOutput:
    """The output the writer makes at ``path`` (its extension decides the format) from a source
    frame with header ``source``, resized by ``scale`` for proxies (``render.SequencePlan``)."""
    rules = format_rules(path)
    width, height = proxy_size(source.width, source.height, scale)
    scale_x, scale_y = width / source.width, height / source.height
    x, y = round(source.x * scale_x), round(source.y * scale_y)
    full_width, full_height = max(1, round(source.full_width * scale_x)), max(1, round(source.full_height * scale_y))
    if not rules.display_window or (not rules.negative_origin and min(x, y) < 0):
        width, height = full_width, full_height  # the frame is placed inside its display window
    names = tuple(source.channelnames)
    rgb, alpha = resolve_channels(names, "the source frame")
    colour = [*rgb, *([alpha] if alpha is not None else [])]
    order = range(len(names)) if rules is _EXR_RULES else colour + [i for i in range(len(names)) if i not in colour]
    return ExpectedOutput(width, height, tuple(names[i] for i in order), rules is _EXR_RULES)


def output_is_complete(path: str, expected: ExpectedOutput) -> bool:
    """Whether ``path`` exists, matches ``expected`` in size and channels, and decodes fully."""
    if not os.path.isfile(path):
        return False
    image = oiio.ImageInput.open(path)
    if image is None:
        oiio.geterror()  # clear OIIO's per-thread error so it does not pile up
        return False
    try:
        spec = image.spec()
        channels = tuple(spec.channelnames)
        if (spec.width, spec.height) != (expected.width, expected.height) or spec.deep or \
                len(channels) != len(expected.channels) or \
                (expected.names_kept and sorted(channels) != sorted(expected.channels)):
            return False
        with quiet_decoder(path):
            pixels = image.read_image("float")
        return pixels is not None and not image.geterror()
    finally:
        image.close()


def completed_frames(frames: Sequence[int], outputs: Sequence[str], expected: ExpectedOutput) -> frozenset[int]:
    """The frames among ``frames`` whose output (same position in ``outputs``) is complete."""
    existing = [(frame, path) for frame, path in zip(frames, outputs) if os.path.isfile(path)]
    if not existing:
        return frozenset()
    with ThreadPoolExecutor(max_workers=min(_MAX_READERS, len(existing))) as pool:
        complete = pool.map(lambda item: output_is_complete(item[1], expected), existing)
        return frozenset(frame for (frame, _), ok in zip(existing, complete) if ok)
