"""The in-memory frame: every channel as float32, which of them are RGB and alpha, and the header.

Enhancement touches RGB only. Alpha, depth and any named AOVs ride along untouched in
``Frame.pixels`` so the writer can put them back; the source ``ImageSpec`` (``Frame.header``) carries
metadata (colourspace, timecode, pixel aspect, camera attributes) and the data/display windows.

Depth names used throughout: ``"8"``, ``"10"``, ``"12"``, ``"16"`` (unsigned integer bits per
sample), ``"half"`` and ``"float"``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import OpenImageIO as oiio

from nightgrade.colorpipeline.errors import InputError

DEPTHS = ("8", "10", "12", "16", "half", "float")

_RGB_NAMES = (("r", "red"), ("g", "green"), ("b", "blue"))
_ALPHA_NAMES = ("a", "alpha")
# cv2.resize handles at most CV_CN_MAX (512) channels per call.
_RESIZE_CHUNK = 256


def resolve_channels(names: tuple[str, ...], where: str) -> tuple[tuple[int, int, int], int | None]:
    """Indices of (R, G, B) and alpha among ``names``.

    R, G, B are matched by name (R/G/B or red/green/blue, case-insensitive); failing that, an image
    of exactly 3 or 4 channels uses channels 0, 1, 2 (and 3 as alpha). Anything else - greyscale,
    two channels, or more than four channels none of which is named R, G, B - raises InputError.
    """
    lowered = [n.lower() for n in names]
    found = [next((i for i, n in enumerate(lowered) if n in options), None) for options in _RGB_NAMES]
    alpha = next((i for i, n in enumerate(lowered) if n in _ALPHA_NAMES), None)
    if all(i is not None for i in found):
        return (found[0], found[1], found[2]), alpha  # type: ignore[return-value]
    if len(names) in (3, 4) and not any(i is not None for i in found):
        if alpha is None and len(names) == 4:
            alpha = 3
        colour = [i for i in range(len(names)) if i != alpha]
        return (colour[0], colour[1], colour[2]), alpha
    listed = ",".join(names) if names else "none"
    raise InputError(
        f"{where} has {len(names)} channel(s) ({listed}); NightGrade needs colour: channels named R,G,B "
        "(or red,green,blue), or 3-4 unnamed channels; convert greyscale or rename the layers"
    )


def depth_of(pixel_type: oiio.TypeDesc, bits_per_sample: int = 0) -> str:
    """Map an OIIO pixel type (and ``oiio:BitsPerSample``) to one of ``DEPTHS``."""
    base = pixel_type.basetype
    if base == oiio.UINT8:
        return "8"
    if base == oiio.UINT16:
        return {10: "10", 12: "12"}.get(bits_per_sample, "16")
    if base == oiio.HALF:
        return "half"
    return "float"  # float, double and the wide integer types all decode to float32 here


@dataclass(frozen=True, eq=False)
class Frame:
    """One image with all its channels.

    ``pixels`` is the data window, float32, shape (height, width, channels), read-only so a frame
    shared between stages cannot change under another. ``header`` is the source ``ImageSpec``; its
    width/height/origin describe ``pixels`` and must not be mutated (copy it instead).
    """

    pixels: np.ndarray
    channel_names: tuple[str, ...]
    rgb_indices: tuple[int, int, int]
    alpha_index: int | None
    channel_depths: tuple[str, ...]
    header: oiio.ImageSpec
    source: str = ""

    def __post_init__(self) -> None:
        pixels = self.pixels
        if pixels.ndim != 3 or pixels.dtype != np.float32:
            raise ValueError(f"Frame pixels must be float32 HxWxC, got {pixels.dtype} {pixels.shape}")
        height, width, channels = pixels.shape
        if not len(self.channel_names) == len(self.channel_depths) == channels:
            raise ValueError(f"{channels} pixel channels but {len(self.channel_names)} names")
        if (self.header.width, self.header.height) != (width, height):
            raise ValueError(f"header is {self.header.width}x{self.header.height}, pixels are {width}x{height}")
        if max(self.rgb_indices) >= channels or (self.alpha_index is not None and self.alpha_index >= channels):
            raise ValueError(f"channel index out of range for {channels} channels")
        view = pixels.view()
        view.flags.writeable = False
        object.__setattr__(self, "pixels", view)

    @classmethod
    def from_array(
        cls, pixels: np.ndarray, channel_names: tuple[str, ...] | None = None, depth: str = "half"
    ) -> Frame:
        """A frame with a fresh header (no metadata, origin 0) for synthetic or generated images."""
        array = np.ascontiguousarray(pixels, dtype=np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        height, width, channels = array.shape
        names = channel_names or ("R", "G", "B", "A")[:channels]
        header = oiio.ImageSpec(width, height, channels, "float")
        header.channelnames = names
        rgb, alpha = resolve_channels(tuple(names), "array")
        return cls(array, tuple(names), rgb, alpha, (depth,) * channels, header)

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def source_depth(self) -> str:
        """Depth of the colour channels in the file this frame came from."""
        return self.channel_depths[self.rgb_indices[0]]

    @property
    def rgb(self) -> np.ndarray:
        """RGB as float32 HxWx3: a read-only view when stored as channels 0-2, else a copy."""
        if self.rgb_indices == (0, 1, 2):
            return self.pixels[:, :, 0:3]
        return self.pixels[:, :, list(self.rgb_indices)]

    @property
    def alpha(self) -> np.ndarray | None:
        """Alpha as float32 HxW (read-only view), or None."""
        return None if self.alpha_index is None else self.pixels[:, :, self.alpha_index]

    def with_rgb(self, rgb: np.ndarray) -> Frame:
        """A new frame with ``rgb`` (HxWx3, same size) in place of the colour channels; the rest unchanged."""
        rgb = np.asarray(rgb)
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(
                f"new RGB is {rgb.shape}, frame is {(self.height, self.width, 3)}; use resized() for proxies"
            )
        pixels = np.array(self.pixels, dtype=np.float32, copy=True)
        pixels[:, :, list(self.rgb_indices)] = rgb
        return Frame(pixels, self.channel_names, self.rgb_indices, self.alpha_index,
                     self.channel_depths, self.header, self.source)

    def with_colorspace(self, name: str) -> Frame:
        """The same pixels, with the header saying they are in colourspace ``name`` (written to files)."""
        header = oiio.ImageSpec(self.header)
        header.set_colorspace(name)
        return dataclasses.replace(self, header=header)

    def resized(self, width: int, height: int) -> Frame:
        """All channels resized with area averaging (proxy previews); windows scale proportionally."""
        if width < 1 or height < 1:
            raise ValueError(f"cannot resize to {width}x{height}")
        chunks = [
            cv2.resize(np.ascontiguousarray(self.pixels[:, :, start:start + _RESIZE_CHUNK]), (width, height),
                       interpolation=cv2.INTER_AREA).reshape(height, width, -1)
            for start in range(0, self.pixels.shape[2], _RESIZE_CHUNK)
        ]
        pixels = np.concatenate(chunks, axis=2).astype(np.float32, copy=False)
        return Frame(pixels, self.channel_names, self.rgb_indices, self.alpha_index,
                     self.channel_depths, _scaled_header(self.header, width, height), self.source)


def _scaled_header(header: oiio.ImageSpec, width: int, height: int) -> oiio.ImageSpec:
    """Copy of ``header`` with data and display windows scaled so the data window is width x height."""
    scale_x, scale_y = width / header.width, height / header.height
    scaled = oiio.ImageSpec(header)
    scaled.width, scaled.height = width, height
    scaled.x, scaled.y = round(header.x * scale_x), round(header.y * scale_y)
    scaled.full_x, scaled.full_y = round(header.full_x * scale_x), round(header.full_y * scale_y)
    scaled.full_width = max(1, round(header.full_width * scale_x))
    scaled.full_height = max(1, round(header.full_height * scale_y))
    scaled.tile_width = scaled.tile_height = 0
    return scaled
