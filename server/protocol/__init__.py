"""NightGrade daemon protocol v1 (docs/protocol.md), for both ends: framing, versions, and the one import.

The spec is ``docs/protocol.md``; these modules implement it and add no meaning of their own. A
message is one ZeroMQ multipart message: frame 0 a msgpack map (the header), frames 1..n raw pixel
buffers. :func:`decode` turns frames into a :class:`Message` (common fields checked) and
:func:`parse_request` turns a request into a typed, fully validated dataclass. Both raise only
:class:`ProtocolError`, whatever bytes arrive, carrying the request id whenever it could be read so
the daemon can still address its ERROR reply (``err.reply()``).

Where things live (import them all from here: ``from nightgrade.server import protocol as proto``):

* this module: framing (:func:`encode`, :func:`decode`, :func:`split_envelope`) and
  :func:`negotiate_version`;
* ``protocol_base``: constants (types, error codes, formats, caps), :class:`Limits`,
  :class:`ProtocolError`, :class:`Message`, :func:`byte_view` and the header builders
  :func:`request`, :func:`reply`, :func:`error_reply`;
* ``protocol_requests``: the request dataclasses (:class:`Render`, :class:`RenderParams`...) and
  :func:`parse_request`;
* ``wire_pixels``: row layout, digests and array <-> buffer conversion.

Choices the spec leaves to the implementation, in framing: a header frame over
:data:`MAX_HEADER_BYTES` is refused (BAD_MESSAGE) and msgpack is unpacked with length limits, so a
small message never allocates much; HELLO is read whatever its ``v`` (version negotiation is its job).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from nightgrade.server.protocol.base import (
    BAD_BUFFER, BAD_COLORSPACE, BAD_MESSAGE, BAD_VERSION, BUSY, CANCEL, CANCELLED, CANCELLED_CODE, CHANNELS, DEADLINE,
    DEFAULT_ENDPOINT, DIGEST_PATTERN, ERROR, ERROR_CODES, FEATURES, FORMATS, HAVE, HELLO, INTERNAL, MAX_HEADER_BYTES,
    MAX_ID_CHARS, MAX_RADIUS, NEED, NEED_FRAMES, PING, PONG, PRIORITIES, PROTOCOL_VERSION, RENDER, REPLY_TO,
    REPLY_TYPES, REQUEST_TYPES, RESULT, STATS, SUPPORTED_VERSIONS, TOO_LARGE, UNKNOWN_MODEL, WELCOME, Buffer, Limits,
    Message, ProtocolError, bad_field, byte_view, error_reply, field_name, reply, request, show)
from nightgrade.server.protocol.pixels import (array_to_buffer, buffer_to_array, check_digest, digest_pixels,
                                               tight_row_bytes)
from nightgrade.server.protocol.requests import (Cancel, Have, Hello, Neighbour, Ping, Render, RenderParams, Request,
                                                 Stats, parse_request)

__all__ = [
    "BAD_BUFFER", "BAD_COLORSPACE", "BAD_MESSAGE", "BAD_VERSION", "BUSY", "CANCEL", "CANCELLED", "CANCELLED_CODE",
    "CHANNELS", "DEADLINE", "DEFAULT_ENDPOINT", "DIGEST_PATTERN", "ERROR", "ERROR_CODES", "FEATURES", "FORMATS",
    "HAVE", "HELLO",
    "INTERNAL", "MAX_HEADER_BYTES", "MAX_ID_CHARS", "MAX_RADIUS", "NEED", "NEED_FRAMES", "PING", "PONG", "PRIORITIES",
    "PROTOCOL_VERSION", "RENDER", "REPLY_TO", "REPLY_TYPES", "REQUEST_TYPES", "RESULT", "STATS", "SUPPORTED_VERSIONS",
    "TOO_LARGE", "UNKNOWN_MODEL", "WELCOME", "Buffer", "Limits", "Message", "ProtocolError", "bad_field", "byte_view",
    "error_reply", "field_name", "reply", "request", "show",
    "Cancel", "Have", "Hello", "Neighbour", "Ping", "Render", "RenderParams", "Request", "Stats", "parse_request",
    "array_to_buffer", "buffer_to_array", "check_digest", "digest_pixels", "tight_row_bytes",
    "encode", "decode", "split_envelope", "negotiate_version",
]

_UNPACK_LIMITS = dict(max_str_len=1 << 16, max_bin_len=1 << 16, max_array_len=1 << 16, max_map_len=1 << 10,
                      max_ext_len=0)


# --- framing -------------------------------------------------------------------------------------

def _to_msgpack(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot send {type(value).__name__} in a protocol header")


def encode(header: dict[str, Any], buffers: Sequence[Buffer] = ()) -> list[bytes | memoryview]:
    """Frames for ``socket.send_multipart(frames, copy=False)``: the msgpack header, then each buffer
    as a byte view of its memory (numpy arrays are copied only when not C-contiguous)."""
    return [msgpack.packb(header, use_bin_type=True, default=_to_msgpack), *(byte_view(b) for b in buffers)]


def split_envelope(frames: list[Any]) -> tuple[list[Any], list[Any]]:
    """For a ROUTER socket: (routing frames to send back first, message frames). The empty delimiter
    a REQ client sends belongs to the envelope; a header frame is never empty."""
    cut = 2 if len(frames) > 1 and len(frames[1]) == 0 else 1
    return list(frames[:cut]), list(frames[cut:])


def decode(frames: Sequence[Any], *, reply: bool = False) -> Message:
    """Check the header's common fields (map, ``id``, ``v``, ``type``) of a request (or a reply when
    ``reply``); raise ProtocolError with the id when it could be read, never anything else."""
    if not frames:
        raise ProtocolError(BAD_MESSAGE, "empty message: frame 0 must be the msgpack header", field="header")
    try:
        views = [byte_view(frame) for frame in frames]
    except (TypeError, ValueError, BufferError) as exc:
        raise ProtocolError(BAD_MESSAGE, f"a frame is not a byte buffer ({exc})") from None
    if len(views[0]) > MAX_HEADER_BYTES:
        raise ProtocolError(BAD_MESSAGE, f"header frame of {len(views[0])} bytes is over {MAX_HEADER_BYTES}: "
                            "pixels go in frames 1..n, not in the header", field="header")
    try:
        header = msgpack.unpackb(views[0], raw=False, use_list=True, strict_map_key=True, **_UNPACK_LIMITS)
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any unpacker failure is a bad message
        raise ProtocolError(BAD_MESSAGE, f"header frame is not msgpack within limits ({type(exc).__name__}): "
                            "frame 0 must be one msgpack map",
                            field="header") from None
    if not isinstance(header, dict) or not all(isinstance(key, str) for key in header):
        raise ProtocolError(BAD_MESSAGE, "header must be a msgpack map with string keys", field="header")
    request_id = header.get("id")
    if not (isinstance(request_id, str) and 1 <= len(request_id) <= MAX_ID_CHARS):
        if not (reply and request_id is None):
            raise ProtocolError(BAD_MESSAGE, f"id must be a string of 1..{MAX_ID_CHARS} characters, "
                                f"got {show(request_id)}", field="id")
    version, kind = header.get("v"), header.get("type")
    try:
        if type(version) is not int:
            raise bad_field("v", f"must be an int protocol version, got {show(version)}")
        if not isinstance(kind, str):
            raise bad_field("type", f"must be a string, got {show(kind)}")
        if version not in SUPPORTED_VERSIONS and (reply or kind != HELLO):
            raise ProtocolError(BAD_VERSION, f"protocol version {version} is not supported (supported: "
                                f"{list(SUPPORTED_VERSIONS)}): use the same nightgrade release on both ends",
                                supported=list(SUPPORTED_VERSIONS))
        if kind not in (REPLY_TYPES if reply else REQUEST_TYPES):
            raise bad_field("type", f"{show(kind)} is not a {'reply' if reply else 'request'} type of protocol v1")
    except ProtocolError as err:
        err.request_id = request_id
        raise
    return Message(kind, request_id, version, header, tuple(views[1:]))


# --- versions ------------------------------------------------------------------------------------

def negotiate_version(hello: Hello) -> int:
    """The highest version both ends speak, or BAD_VERSION with ``supported``."""
    common = set(hello.versions) & set(SUPPORTED_VERSIONS)
    if not common:
        raise ProtocolError(BAD_VERSION, f"no common protocol version: client speaks {list(hello.versions)[:8]}, "
                            f"daemon {list(SUPPORTED_VERSIONS)}; use matching nightgrade releases",
                            hello.id, supported=list(SUPPORTED_VERSIONS))
    return max(common)
