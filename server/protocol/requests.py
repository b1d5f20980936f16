"""Protocol v1 requests (docs/protocol.md): typed dataclasses and the validation that makes them.

Lives here: :class:`RenderParams`, :class:`Neighbour` and one frozen dataclass per request type
(:class:`Hello`, :class:`Ping`, :class:`Stats`, :class:`Cancel`, :class:`Have`, :class:`Render`),
and :func:`parse_request`, which turns a decoded :class:`Message` into one of them with every field
checked (types, ranges, limits, buffer count and sizes) or raises :class:`ProtocolError` carrying
the request id. Import through ``nightgrade.server.protocol``, which re-exports these.

Choices the spec leaves to the implementation: a nil value counts as an absent key; HAVE needs
only the keys that decide the cache key (``clip``, ``frame``, ``digest``, ``row_bytes`` are checked
when present). :func:`parse_request` does not hash buffers: call :meth:`Render.check_digests` where
hashing may block (the worker, not the socket loop).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from nightgrade.colorpipeline.controls import EXPOSURE_RANGE
from nightgrade.server.protocol.base import (BAD_BUFFER, CANCEL, CHANNELS, DIGEST_PATTERN, FORMATS, HAVE, HELLO,
                                             MAX_ID_CHARS, MAX_RADIUS, PING, PRIORITIES, RENDER, STATS, TOO_LARGE,
                                             Limits, Message, ProtocolError, bad_field, show)
from nightgrade.server.protocol.pixels import buffer_to_array, check_digest


# --- field checks --------------------------------------------------------------------------------

def _too_large(what: str, limits: Limits, fix: str = "send a smaller frame or proxy scale") -> ProtocolError:
    return ProtocolError(TOO_LARGE, f"{what} is over the daemon's limits: {fix}", limits=limits.as_dict())


class _Fields:
    """Typed reads from one msgpack map; a field's name in errors is its path (params.mix)."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data, self.path = data, path

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise bad_field(self.path + key, "is missing")
        return value

    def integer(self, key: str, lo: int | None = None, hi: int | None = None, *, required: bool = True,
            default: int | None = None) -> int | None:
        value = self._get(key, required)
        if value is None:
            return default
        if type(value) is not int:
            raise bad_field(self.path + key, f"must be an int, got {show(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise bad_field(self.path + key, f"must be in {lo if lo is not None else '-inf'}.."
                            f"{hi if hi is not None else 'inf'}, got {value}")
        return value

    def number(self, key: str, *, required: bool = True, default: float | None = None) -> float | None:
        value = self._get(key, required)
        if value is None:
            return default
        if type(value) not in (int, float) or not math.isfinite(value):
            raise bad_field(self.path + key, f"must be a finite number, got {show(value)}")
        return float(value)

    def text(self, key: str, hi: int = 256, *, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is not None and not (isinstance(value, str) and 1 <= len(value) <= hi):
            raise bad_field(self.path + key, f"must be a string of 1..{hi} characters, got {show(value)}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is not None and type(value) is not bool:
            raise bad_field(self.path + key, f"must be true or false, got {show(value)}")
        return default if value is None else value

    def choice(self, key: str, options: Sequence[Any], *, required: bool = True, default: Any = None) -> Any:
        value = self._get(key, required)
        if value is None:
            return default
        if type(value) not in (str, int) or value not in options:
            raise bad_field(self.path + key, f"must be one of {list(options)}, got {show(value)}")
        return value

    def digest(self, key: str, *, required: bool = True) -> str | None:
        value = self._get(key, required)
        return None if value is None else _digest_item(value, self.path + key)

    def items(self, key: str) -> list[Any]:
        value = self._get(key, False)
        if value is not None and not isinstance(value, list):
            raise bad_field(self.path + key, f"must be a list, got {show(value)}")
        return value or []

    def submap(self, key: str) -> _Fields:
        value = self._get(key, False)
        return _Fields({}, "") if value is None else _as_map(value, self.path + key)


def _as_map(value: Any, name: str) -> _Fields:
    if not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        raise bad_field(name, f"must be a map with string keys, got {show(value)}")
    return _Fields(value, name + ".")


def _digest_item(value: Any, name: str) -> str:
    if not (isinstance(value, str) and DIGEST_PATTERN.fullmatch(value)):
        raise bad_field(name, f"must be 'b2:' + 32 lowercase hex digits, got {show(value)}")
    return value


# --- requests ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderParams:
    """RENDER ``params``; ``tile``/``region`` None means the model's (full-resolution pixels)."""

    mix: float = 1.0
    temporal: bool = False
    radius: int = MAX_RADIUS
    max_motion: float = 256.0
    tile: int | None = None
    region: int | None = None
    luma_denoise: float = 1.0  # feature "controls" (colorpipeline.controls): the defaults are the model's look
    chroma_denoise: float = 1.0
    detail: float = 0.0
    exposure: float = 0.0  # feature "exposure": stops on top of the model's own exposure (models/exposure.py)

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Neighbour:
    frame: int
    digest: str


@dataclass(frozen=True)
class Hello:
    id: str
    version: int
    versions: tuple[int, ...]
    client: str | None = None


@dataclass(frozen=True)
class Ping:
    id: str
    version: int


@dataclass(frozen=True)
class Stats:
    id: str
    version: int


@dataclass(frozen=True)
class Cancel:
    id: str
    version: int
    target: str


@dataclass(frozen=True)
class Have:
    """HAVE: the cache-key fields of a RENDER and the ``digests`` asked about."""

    id: str
    version: int
    clip: str | None
    frame: int | None
    model: str | None
    width: int
    height: int
    scale: float
    format: str
    channels: int
    colorspace: str | None
    output_colorspace: str | None
    params: RenderParams
    neighbours: tuple[Neighbour, ...]
    digests: tuple[str, ...]


@dataclass(frozen=True)
class Render:
    """RENDER; ``buffers`` = centre then the attached neighbours in ``attached`` order.
    ``colorspace`` None: Linear Rec.709, the CLI's default for float frames
    (``color.unlabelled_float_default``); ``output_colorspace`` defaults to it."""

    id: str
    version: int
    clip: str
    frame: int
    model: str | None
    width: int
    height: int
    scale: float
    window: tuple[int, int, int, int]
    format: str
    channels: int
    row_bytes: int
    colorspace: str | None
    output_colorspace: str | None
    digest: str
    params: RenderParams
    neighbours: tuple[Neighbour, ...]
    attached: tuple[str, ...]
    priority: str
    deadline_ms: int | None
    supersede: bool = False
    buffers: tuple[memoryview, ...] = field(default=(), repr=False, compare=False)

    def _layout(self) -> tuple[int, int, int, str, int]:
        return self.width, self.height, self.channels, self.format, self.row_bytes

    def pixels(self, digest: str | None = None) -> np.ndarray:
        """The centre (or the attached neighbour with ``digest``) as float32 (H, W, C)."""
        index = 0 if digest is None else 1 + self.attached.index(digest)
        return buffer_to_array(self.buffers[index], *self._layout())

    def check_digests(self) -> None:
        """BAD_BUFFER (with this request's id) unless every buffer hashes to its stated digest."""
        try:
            for buffer, digest in zip(self.buffers, (self.digest, *self.attached)):
                check_digest(buffer, *self._layout(), digest)
        except ProtocolError as err:
            err.request_id = self.id
            raise


Request = Union[Hello, Ping, Stats, Have, Render, Cancel]


def parse_request(message: Message, limits: Limits) -> Request:
    """Validate every field of a decoded request per docs/protocol.md (types, ranges, limits, buffer
    count and sizes; not digests). Raises ProtocolError carrying ``message.id``."""
    try:
        if message.type != RENDER and message.buffers:
            raise ProtocolError(BAD_BUFFER, f"{message.type} carries no pixel buffers, got {len(message.buffers)}")
        fields = _Fields(message.header)
        common = dict(id=message.id, version=message.version)
        if message.type == HELLO:
            versions = fields.items("versions")
            if not versions or len(versions) > 256 or any(type(v) is not int for v in versions):
                raise bad_field("versions", f"must be a non-empty list of ints, got {show(versions)}")
            return Hello(**common, versions=tuple(versions), client=fields.text("client", 1 << 12, required=False))
        if message.type == PING:
            return Ping(**common)
        if message.type == STATS:
            return Stats(**common)
        if message.type == CANCEL:
            return Cancel(**common, target=fields.text("target", MAX_ID_CHARS))
        if message.type == HAVE:
            picture = _picture(fields, limits, have=True)
            digests = fields.items("digests")
            if len(digests) > limits.max_have_digests:  # each is a cache lookup on the socket loop
                raise _too_large(f"a HAVE of {len(digests)} digests", limits, "ask about the frames of one window")
            for i, value in enumerate(digests):
                _digest_item(value, f"digests[{i}]")
            return Have(**common, **picture, digests=tuple(digests))
        return _render(message, fields, limits)
    except ProtocolError as err:
        err.request_id = message.id
        raise


def _picture(fields: _Fields, limits: Limits, *, have: bool) -> dict[str, Any]:
    """The fields RENDER and HAVE share (HAVE leaves out what is not part of the cache key)."""
    width, height = fields.integer("width", 1), fields.integer("height", 1)
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        raise _too_large(f"a {width}x{height} frame", limits)
    scale = fields.number("scale")
    if not 0.0 < scale <= 1.0:
        raise bad_field("scale", f"must be in (0, 1], got {scale}")
    fmt, channels = fields.choice("format", tuple(FORMATS)), fields.choice("channels", CHANNELS)
    row_bytes = fields.integer("row_bytes", width * channels * FORMATS[fmt].itemsize, required=not have)
    if row_bytes is not None and row_bytes * height > limits.max_frame_bytes:
        raise _too_large(f"a buffer of {row_bytes} x {height} bytes", limits)
    clip, frame = fields.text("clip", required=not have), fields.integer("frame", required=not have)
    digest = fields.digest("digest", required=not have)
    params = _params(fields.submap("params"), limits)
    neighbour_list = fields.items("neighbours")
    if len(neighbour_list) > limits.max_neighbours:
        raise _too_large(f"{len(neighbour_list)} neighbours", limits)
    neighbours: list[Neighbour] = []
    for i, value in enumerate(neighbour_list):
        entry = _as_map(value, f"neighbours[{i}]")
        number = entry.integer("frame")
        if frame is None:
            raise bad_field("frame", "is missing (the neighbours' offsets are counted from it)")
        if number == frame or abs(number - frame) > params.radius or any(n.frame == number for n in neighbours):
            raise bad_field(f"neighbours[{i}].frame", f"{number} must be a distinct frame within radius "
                            f"{params.radius} of centre {frame}, not the centre")
        neighbours.append(Neighbour(number, entry.digest("digest")))
    colorspace = fields.text("colorspace", required=False)
    picture = dict(clip=clip, frame=frame, model=fields.text("model", required=False), width=width,
                   height=height, scale=scale, format=fmt, channels=channels, colorspace=colorspace,
                   output_colorspace=fields.text("output_colorspace", required=False) or colorspace,
                   params=params, neighbours=tuple(neighbours))
    if not have:
        picture.update(row_bytes=row_bytes, digest=digest,
                       priority=fields.choice("priority", PRIORITIES, required=False, default="batch"),
                       deadline_ms=fields.integer("deadline_ms", 1, required=False),
                       supersede=fields.flag("supersede", False))
    return picture


def _params(fields: _Fields, limits: Limits) -> RenderParams:
    mix = fields.number("mix", required=False, default=1.0)
    if not 0.0 <= mix <= 1.0:
        raise bad_field("params.mix", f"must be in 0..1, got {mix}")
    max_motion = fields.number("max_motion", required=False, default=256.0)
    if max_motion <= 0.0:
        raise bad_field("params.max_motion", f"must be > 0, got {max_motion}")
    tile = fields.integer("tile", 1, 1 << 16, required=False)
    region = fields.integer("region", 1, 1 << 16, required=False)
    if tile is not None and region is not None and region < tile:
        raise bad_field("params.region", f"{region} must be >= params.tile {tile}")
    if (tile or 0) > limits.max_tile or (region or 0) > limits.max_region:
        raise _too_large(f"params.tile {tile} / params.region {region}", limits,
                         f"use tiles up to {limits.max_tile} and regions up to {limits.max_region} pixels")
    controls = {}
    for key, default in (("luma_denoise", 1.0), ("chroma_denoise", 1.0), ("detail", 0.0)):
        controls[key] = fields.number(key, required=False, default=default)
        if not 0.0 <= controls[key] <= 1.0:
            raise bad_field(f"params.{key}", f"must be in 0..1, got {controls[key]}")
    controls["exposure"] = fields.number("exposure", required=False, default=0.0)
    if not EXPOSURE_RANGE[0] <= controls["exposure"] <= EXPOSURE_RANGE[1]:
        raise bad_field("params.exposure", f"must be in {EXPOSURE_RANGE[0]:g}..{EXPOSURE_RANGE[1]:g} stops, "
                                           f"got {controls['exposure']}")
    return RenderParams(mix, fields.flag("temporal", False), fields.integer("radius", 0, MAX_RADIUS, required=False,
                                                                         default=MAX_RADIUS), max_motion, tile, region,
                        **controls)


def _render(message: Message, fields: _Fields, limits: Limits) -> Render:
    picture = _picture(fields, limits, have=False)
    width, height = picture["width"], picture["height"]
    window = fields.items("window") if "window" in fields.data and fields.data["window"] is not None \
        else [0, 0, width, height]
    if len(window) != 4 or any(type(v) is not int for v in window) or not (
            0 <= window[0] < window[2] <= width and 0 <= window[1] < window[3] <= height):
        raise bad_field("window", f"must be [x0, y0, x1, y1] inside the {width}x{height} frame, non-empty, "
                        f"got {show(window)}")
    attached = fields.items("attached")
    known = {n.digest for n in picture["neighbours"]}
    for i, digest in enumerate(attached):
        _digest_item(digest, f"attached[{i}]")
        if digest not in known or attached.index(digest) != i:
            raise bad_field(f"attached[{i}]", "must be the digest of a listed neighbour, each at most once")
    if len(message.buffers) != 1 + len(attached):
        raise ProtocolError(BAD_BUFFER, f"RENDER needs 1 + {len(attached)} attached buffers, got "
                            f"{len(message.buffers)}")
    size = picture["row_bytes"] * height
    for i, buffer in enumerate(message.buffers):
        if len(buffer) != size:
            raise ProtocolError(BAD_BUFFER, f"buffer {i + 1} has {len(buffer)} bytes; row_bytes x height = {size}")
    if size * len(message.buffers) > limits.max_client_bytes:
        raise _too_large(f"a RENDER of {size * len(message.buffers)} pixel bytes", limits,
                         "attach fewer neighbours (the daemon asks for the ones it needs) or use a proxy scale")
    return Render(id=message.id, version=message.version, window=tuple(window), attached=tuple(attached),
                  buffers=message.buffers, **picture)
