"""Protocol v1 vocabulary (docs/protocol.md) shared by every protocol module: names, limits, errors.

Lives here: message types, error codes, pixel formats and size caps; :class:`Limits` (what a daemon
accepts); :class:`ProtocolError` (every refusal, as an ERROR reply); :class:`Message` (a decoded
message); the header builders :func:`request`, :func:`reply`, :func:`error_reply`; :func:`byte_view`
(frames and pixel buffers as flat bytes); and the field-error helpers :func:`show` and
:func:`bad_field`. It imports no other protocol module, so ``protocol_requests``, ``wire_pixels``
and ``protocol`` build on it without cycles. Import through ``nightgrade.server.protocol``, which
re-exports all of it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from nightgrade.colorpipeline.errors import UsageError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"
# Optional additions to version 1 that WELCOME lists (``features``): a daemon that predates one
# ignores its keys like any unknown key, so a client that needs it checks this list first.
FEATURES: tuple[str, ...] = ("controls", "exposure")  # params luma_denoise, chroma_denoise, detail; exposure

HELLO, WELCOME, PING, PONG, STATS = "HELLO", "WELCOME", "PING", "PONG", "STATS"
HAVE, NEED, RENDER, RESULT = "HAVE", "NEED", "RENDER", "RESULT"
CANCEL, CANCELLED, ERROR = "CANCEL", "CANCELLED", "ERROR"
REQUEST_TYPES = frozenset({HELLO, PING, STATS, HAVE, RENDER, CANCEL})
REPLY_TYPES = frozenset({WELCOME, PONG, STATS, NEED, RESULT, CANCELLED, ERROR})
REPLY_TO = {HELLO: WELCOME, PING: PONG, STATS: STATS, HAVE: NEED, RENDER: RESULT, CANCEL: CANCELLED}

BAD_MESSAGE, BAD_VERSION, BAD_BUFFER, TOO_LARGE = "BAD_MESSAGE", "BAD_VERSION", "BAD_BUFFER", "TOO_LARGE"
UNKNOWN_MODEL, BAD_COLORSPACE, NEED_FRAMES, BUSY = "UNKNOWN_MODEL", "BAD_COLORSPACE", "NEED_FRAMES", "BUSY"
CANCELLED_CODE, DEADLINE, INTERNAL = "CANCELLED", "DEADLINE", "INTERNAL"
ERROR_CODES = frozenset({BAD_MESSAGE, BAD_VERSION, BAD_BUFFER, TOO_LARGE, UNKNOWN_MODEL, BAD_COLORSPACE,
                         NEED_FRAMES, BUSY, CANCELLED_CODE, DEADLINE, INTERNAL})

FORMATS = {"float32": np.dtype("<f4"), "half": np.dtype("<f2")}
CHANNELS = (3, 4)
PRIORITIES = ("interactive", "batch")
MAX_RADIUS = 6
MAX_ID_CHARS = 64
MAX_HEADER_BYTES = 1 << 20
DIGEST_PATTERN = re.compile(r"b2:[0-9a-f]{32}")

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]


@dataclass(frozen=True)
class Limits:
    """What the daemon accepts (WELCOME ``limits``; docs/protocol.md "Limits and scheduling"), each
    checked before anything is allocated for a request. ``max_frame_bytes`` 0 means derived: the
    largest RGBA float32 frame plus 1/8 for row padding; it is also the socket's MAXMSGSIZE.
    ``max_tile``/``max_region``: generator memory grows with the square of the tile (2048 needed
    2.8 GB). ``max_have_digests``: digests one HAVE may ask about (each is a cache lookup on the
    socket loop). ``max_queued_bytes``/``max_client_bytes``: pixel bytes held by waiting and
    running requests, in all and per connection. ``max_clients``: connections with requests
    waiting or running at once. ``handshake_ms``: a connection that has not completed the ZeroMQ
    handshake by then is closed, so connections that never speak (a flood of raw TCP connects)
    cannot hold the daemon's file descriptors for long."""

    max_width: int = 16384
    max_height: int = 16384
    max_pixels: int = 8192 * 4608
    max_neighbours: int = 12
    max_queue: int = 64
    max_frame_bytes: int = 0
    max_tile: int = 1024
    max_region: int = 4096
    max_have_digests: int = 256
    max_queued_bytes: int = 8 << 30
    max_client_bytes: int = 4 << 30
    max_clients: int = 64
    handshake_ms: int = 3000

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            floor = 0 if name in ("max_neighbours", "max_frame_bytes") else 1
            if type(value) is not int or value < floor:
                raise UsageError(f"daemon limit {name} must be an integer >= {floor}, got {value!r}")
        if self.max_frame_bytes == 0:
            object.__setattr__(self, "max_frame_bytes", self.max_pixels * 16 * 9 // 8)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class ProtocolError(Exception):
    """A message the protocol refuses: becomes an ERROR reply with ``code``, ``message`` (one line)
    and ``extra`` (``field``, ``supported``, ``limits``...). ``request_id`` is None when unreadable."""

    def __init__(self, code: str, message: str, request_id: str | None = None, **extra: Any) -> None:
        self.code = code
        self.message = " ".join(str(message).split())
        self.request_id = request_id
        self.extra = extra
        super().__init__(self.message)

    def reply(self) -> dict[str, Any]:
        return error_reply(self.request_id, self.code, self.message, **self.extra)


@dataclass(frozen=True)
class Message:
    """A decoded message: common fields checked, ``header`` as sent, ``buffers`` as byte views."""

    type: str
    id: str | None
    version: int
    header: dict[str, Any]
    buffers: tuple[memoryview, ...] = field(default=(), repr=False, compare=False)


# RENDER/HAVE ``params`` keys (docs/protocol.md): a setting of these names is ``params.<name>`` on the wire.
_PARAMS = frozenset({"mix", "temporal", "radius", "max_motion", "tile", "region", "luma_denoise", "chroma_denoise",
                     "detail", "exposure"})
_FIELDS = {"input_colorspace": "colorspace"}


def field_name(setting: str) -> str:
    """The protocol field a daemon client sets for ``setting``, a config field that an error names
    (``colorpipeline.errors.setting``), so the daemon's messages speak the client's terms."""
    return f"params.{setting}" if setting in _PARAMS else _FIELDS.get(setting, setting)


def byte_view(buffer: Any) -> memoryview:
    """A flat unsigned-byte view of ``buffer`` (bytes, memoryview, zmq.Frame, numpy array), no copy."""
    if isinstance(buffer, np.ndarray):
        buffer = np.ascontiguousarray(buffer).reshape(-1).view(np.uint8)
    view = memoryview(buffer)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def show(value: Any) -> str:
    """``repr(value)`` cut to 40 characters, so an error message quoting untrusted data stays one short line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bad_field(name: str, why: str) -> ProtocolError:
    """BAD_MESSAGE naming the offending field (its path, e.g. ``params.mix``)."""
    return ProtocolError(BAD_MESSAGE, f"field {name} {why} (see docs/protocol.md)", field=name)


# --- headers -------------------------------------------------------------------------------------

def request(type_: str, request_id: str, /, **fields: Any) -> dict[str, Any]:
    if type_ not in REQUEST_TYPES:
        raise ValueError(f"{type_!r} is not a request type")
    return {"v": PROTOCOL_VERSION, "type": type_, "id": request_id, **fields}


def reply(type_: str, request_id: str | None, /, **fields: Any) -> dict[str, Any]:
    if type_ not in REPLY_TYPES:
        raise ValueError(f"{type_!r} is not a reply type")
    return {"v": PROTOCOL_VERSION, "type": type_, "id": request_id, **fields}


def error_reply(request_id: str | None, code: str, message: str, /, **extra: Any) -> dict[str, Any]:
    if code not in ERROR_CODES:
        raise ValueError(f"{code!r} is not an error code of protocol v1")
    return reply(ERROR, request_id, code=code, message=" ".join(str(message).split()), **extra)
