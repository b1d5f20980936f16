"""The key of an enhanced frame in the frame cache: one owner for the CLI, farm chunks and the daemon.

A key names the generator's output for one source frame (the in-range working image after the
frame exposure step and the tiled generator, before highlights, temporal window and look). It is
built from the source pixels' protocol digest (``wire_pixels.digest_pixels``: BLAKE2b of the
float32 rows as read or as sent) and everything else that decides that output: model, picture
layout, colourspaces and OCIO config, proxy scale, tile geometry, engine precision and layout,
exposure. The daemon knows only the digests its clients send (HAVE/NEED, docs/protocol.md), so the
CLI keys the same way: a ``serve --cache-dir D`` then hits frames that ``enhance --cache-dir D``
or a farm render put there, and the other way round.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.engine import Engine
from nightgrade.server.protocol.pixels import digest_pixels, tight_row_bytes
from nightgrade.server.render.frame_cache import content_key

_WHAT = "generator output for the in-range working image"


def source_digest(pixels: np.ndarray) -> str:
    """The protocol digest of float32 (H, W, C) pixels, as a client would send them."""
    rows = np.ascontiguousarray(pixels, dtype=np.float32)
    height, width, channels = rows.shape
    return digest_pixels(rows, width, height, channels, "float32", tight_row_bytes(width, channels, "float32"))


@dataclasses.dataclass(frozen=True)
class KeyContext:
    """Everything besides the source pixels that decides a cached generator output."""

    engine: Engine
    input_space: str
    working_space: str
    ocio_config: str
    scale: float
    tiles: TileConfig
    exposure: float

    def params(self, width: int, height: int, channels: int, fmt: str = "float32") -> dict[str, Any]:
        engine = self.engine
        return {
            "cached": _WHAT, "picture": [width, height, channels, fmt],
            "input": self.input_space, "working": self.working_space, "ocio": self.ocio_config, "scale": self.scale,
            "tiles": dataclasses.asdict(self.tiles), "generator": dataclasses.asdict(engine.generator_config),
            "device": engine.device.type, "precision": str(engine.dtype),
            "channels_last": engine.channels_last, "compile": engine.config.compile, "exposure": self.exposure,
        }

    def key(self, digest: str, width: int, height: int, channels: int, fmt: str = "float32") -> str:
        """The key of the frame whose source pixels (``width`` x ``height`` x ``channels`` of
        ``fmt``) have the protocol ``digest``."""
        return content_key(digest, self.engine.meta.digest, self.params(width, height, channels, fmt))

    def key_for(self, pixels: np.ndarray) -> str:
        """The key of float32 (H, W, C) source pixels (the CLI's frames as read and proxied)."""
        height, width, channels = pixels.shape
        return self.key(source_digest(pixels), width, height, channels)
