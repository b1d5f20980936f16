"""Protocol v1 pixel buffers (docs/protocol.md, Pixel buffers and Digests), for both ends.

Lives here: row layout (:func:`tight_row_bytes`), the BLAKE2b digest of a frame's pixels
(:func:`digest_pixels`, :func:`check_digest`) and the conversions between wire rows and float32
(H, W, C) arrays (:func:`buffer_to_array`, :func:`array_to_buffer`). Rows are top-down samples of
``float32`` or ``half``, optionally padded to ``row_bytes``; padding is never hashed. Every layout
problem raises :class:`ProtocolError` BAD_BUFFER. Import through ``nightgrade.server.protocol``,
which re-exports these.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from nightgrade.server.protocol.base import BAD_BUFFER, CHANNELS, FORMATS, ProtocolError, byte_view, show


def tight_row_bytes(width: int, channels: int, fmt: str) -> int:
    return width * channels * FORMATS[fmt].itemsize


def _checked_view(buffer: Any, width: int, height: int, channels: int, fmt: str, row_bytes: int) -> memoryview:
    if fmt not in FORMATS or channels < 1 or width < 1 or height < 1:
        raise ProtocolError(BAD_BUFFER, f"bad pixel layout {width}x{height}x{channels} {fmt!r}")
    view = byte_view(buffer)
    if row_bytes < tight_row_bytes(width, channels, fmt) or len(view) != row_bytes * height:
        raise ProtocolError(BAD_BUFFER, f"buffer of {len(view)} bytes does not hold {height} rows of "
                            f"{row_bytes} bytes for {width}x{channels} {fmt} pixels")
    return view


def digest_pixels(buffer: Any, width: int, height: int, channels: int, fmt: str, row_bytes: int) -> str:
    """``"b2:"`` + BLAKE2b-128 hex of the pixel bytes row by row without padding (docs: Digests)."""
    view = _checked_view(buffer, width, height, channels, fmt, row_bytes)
    tight = tight_row_bytes(width, channels, fmt)
    hasher = hashlib.blake2b(digest_size=16)
    if row_bytes == tight:
        hasher.update(view)
    else:
        for start in range(0, row_bytes * height, row_bytes):
            hasher.update(view[start:start + tight])
    return "b2:" + hasher.hexdigest()


def check_digest(buffer: Any, width: int, height: int, channels: int, fmt: str, row_bytes: int,
                 expected: str) -> None:
    actual = digest_pixels(buffer, width, height, channels, fmt, row_bytes)
    if actual != expected:
        raise ProtocolError(BAD_BUFFER, f"pixels hash to {actual}, the header says {show(expected)}: "
                            "hash the rows as sent, without row padding")


def buffer_to_array(buffer: Any, width: int, height: int, channels: int, fmt: str, row_bytes: int) -> np.ndarray:
    """float32 (H, W, C), top row first. float32 input gives a strided view of ``buffer`` (read-only
    when it is); half is converted, the only copy."""
    view = _checked_view(buffer, width, height, channels, fmt, row_bytes)
    dtype = FORMATS[fmt]
    pixels = np.ndarray((height, width, channels), dtype=dtype, buffer=view,
                        strides=(row_bytes, channels * dtype.itemsize, dtype.itemsize))
    return pixels if dtype == np.float32 else pixels.astype(np.float32)


def array_to_buffer(array: np.ndarray, fmt: str) -> tuple[memoryview, int]:
    """(byte view, row_bytes) of ``array`` (H, W, C) as tight top-down rows of ``fmt``; no copy when
    it already is C-contiguous in that sample type. Half overflows to inf, as a cast does."""
    pixels = np.asarray(array)
    if fmt not in FORMATS or pixels.ndim != 3 or pixels.shape[2] not in CHANNELS or 0 in pixels.shape:
        raise ProtocolError(BAD_BUFFER, f"pixels must be (height, width, 3 or 4) in {list(FORMATS)}, "
                            f"got shape {pixels.shape} as {fmt!r}")
    with np.errstate(over="ignore"):
        pixels = np.ascontiguousarray(pixels, dtype=FORMATS[fmt])
    return byte_view(pixels), tight_row_bytes(pixels.shape[1], pixels.shape[2], fmt)
