"""What a client sends and gets back besides the wire: a frame's pixels as sent (``WirePixels``,
hashed once), the settings of a RENDER or HAVE (``RenderRequest``) and a decoded RESULT."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nightgrade.colorpipeline.errors import InputError
from nightgrade.server import protocol as P


@dataclass(frozen=True)
class WirePixels:
    """One frame as sent: top-down rows of ``format`` samples and their digest, hashed once, so a
    sliding temporal window can reuse a neighbour's pixels across renders."""

    buffer: memoryview = field(repr=False, compare=False)
    width: int
    height: int
    channels: int
    format: str
    row_bytes: int
    digest: str

    @classmethod
    def from_array(cls, array: np.ndarray, fmt: str = "float32") -> WirePixels:
        """(H, W, 3|4) pixels converted to ``fmt`` (no copy when they already are, contiguous)."""
        try:
            buffer, row_bytes = P.array_to_buffer(array, fmt)
        except P.ProtocolError as err:
            raise InputError(f"cannot send these pixels: {err.message}") from None
        height, width, channels = np.shape(array)
        return cls(buffer, width, height, channels, fmt, row_bytes,
                   P.digest_pixels(buffer, width, height, channels, fmt, row_bytes))

    @classmethod
    def from_buffer(cls, buffer: Any, width: int, height: int, channels: int, fmt: str, row_bytes: int,
                    digest: str | None = None) -> WirePixels:
        """Rows already in wire layout (padding allowed); hashed here unless ``digest`` is given."""
        try:
            view = P.byte_view(buffer)
            digest = digest or P.digest_pixels(view, width, height, channels, fmt, row_bytes)
        except (P.ProtocolError, TypeError, ValueError) as err:
            raise InputError(f"cannot send this buffer: {err}") from None
        return cls(view, width, height, channels, fmt, row_bytes, digest)

    def layout(self) -> tuple[int, int, int, str, int]:
        return self.width, self.height, self.channels, self.format, self.row_bytes


@dataclass(frozen=True)
class RenderRequest:
    """What a RENDER/HAVE asks for besides the pixels (sizes come from them). ``format`` is used
    when arrays are converted; pixels passed as WirePixels keep theirs."""

    clip: str
    frame: int
    scale: float = 1.0
    model: str | None = None
    window: tuple[int, int, int, int] | None = None
    format: str = "float32"
    colorspace: str | None = None
    output_colorspace: str | None = None
    params: P.RenderParams = P.RenderParams()
    priority: str = "batch"
    deadline_ms: int | None = None
    supersede: bool = False  # drop this connection's waiting requests of the same clip (scrubbing)


@dataclass(frozen=True)
class RenderResult:
    """A RESULT: ``pixels`` float32 (h, w, c) of ``window``; ``header`` holds every key sent."""

    frame: int
    window: tuple[int, int, int, int]
    colorspace: str
    model: str
    generator_passes: int
    frames_averaged: float
    seconds: float
    pixels: np.ndarray = field(repr=False, compare=False)
    header: dict[str, Any] = field(repr=False, compare=False)
