"""A Python client of the NightGrade daemon (docs/protocol.md): DEALER socket, Lazy Pirate retries.

Every wait has a timeout: a request unanswered after ``timeout_s`` costs its socket (closed with
LINGER 0, reopened) and is resent, ``retries`` times at most, then :class:`DaemonUnavailable`. A
RENDER may take longer than ``timeout_s``: after each silent ``timeout_s`` the client PINGs on the
same connection and keeps waiting while the daemon answers and still has work (PING tells busy from
dead); a silent, restarted or twice-idle daemon counts as a failed attempt. Replies carrying another
id (late answers to probes or to an abandoned request) are dropped. Not thread-safe: one Client per
thread; cancel a running :meth:`Client.render` from elsewhere through its ``cancel`` event.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import zmq

from nightgrade.colorpipeline.errors import InputError, UsageError, setting
from nightgrade.server import package_version
from nightgrade.server import protocol as P
# The error classes and request types live in errors.py and requests.py; importable from here.
from nightgrade.server.client.errors import (DaemonColorError, DaemonError, DaemonInputError,  # noqa: F401
                                             DaemonModelError, DaemonServiceError, DaemonUnavailable,
                                             DaemonUsageError, daemon_error)
from nightgrade.server.client.requests import RenderRequest, RenderResult, WirePixels  # noqa: F401
from nightgrade.server.protocol.curve import CurveClientConfig, check_endpoint, client_keys
from nightgrade.server.protocol.endpoint_check import nothing_listens

_MAX_WAIT_S = 7 * 24 * 3600.0  # a week: beyond any render, and finite (inf overflowed the poll timeout)


class Client:
    """One connection to a daemon. ``timeout_s`` bounds every wait for a reply or a PONG;
    ``render_timeout_s`` bounds a RENDER that the daemon keeps saying it works on."""

    def __init__(self, endpoint: str = P.DEFAULT_ENDPOINT, *, timeout_s: float = 10.0, retries: int = 2,
                 curve: CurveClientConfig | None = None, name: str | None = None,
                 render_timeout_s: float = 3600.0, context: zmq.Context | None = None,
                 fail_fast: bool = False, notice: Callable[[str], None] | None = None) -> None:
        if not 0 < timeout_s <= _MAX_WAIT_S or not 0 < render_timeout_s <= _MAX_WAIT_S or retries < 0:
            raise UsageError(f"client timeouts must be in (0, {_MAX_WAIT_S}] s and retries >= 0, got timeout "
                             f"{timeout_s}, "
                             f"render timeout {render_timeout_s}, retries {retries}")
        self.endpoint, self.timeout_s, self.retries, self.curve = endpoint, timeout_s, retries, curve
        self.render_timeout_s = render_timeout_s
        self.name = name or f"nightgrade-python {package_version()}"
        self.limits: P.Limits | None = None  # known after hello(): lets render() refuse oversize frames itself
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._socket: zmq.Socket | None = None
        # fail_fast: before the first request, refuse at once where the OS says nothing listens
        # (endpoint_check) instead of after every timeout; notice: told of each silent try.
        self._check_listening, self._notice = fail_fast, notice

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._drop_socket()
        if self._own_context and not self._context.closed:
            self._context.term()

    # --- requests --------------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """WELCOME header (version, server, models, device, limits, ocio_config)."""
        welcome = self._call(P.HELLO, {"versions": list(P.SUPPORTED_VERSIONS), "client": self.name}).header
        if welcome.get("version") not in P.SUPPORTED_VERSIONS:
            raise daemon_error(P.BAD_VERSION, f"the daemon chose protocol version {welcome.get('version')!r}; "
                               f"this client speaks {list(P.SUPPORTED_VERSIONS)}: use matching releases")
        try:
            known = P.Limits.__dataclass_fields__
            self.limits = P.Limits(**{k: v for k, v in welcome["limits"].items() if k in known})
        except (KeyError, TypeError, AttributeError, UsageError):
            self.limits = None
        return welcome

    def ping(self) -> dict[str, Any]:
        """PONG header: queue, busy, uptime_s."""
        return self._call(P.PING, {}).header

    def stats(self) -> dict[str, Any]:
        """STATS header (counters, cache, device memory; see docs/protocol.md)."""
        return self._call(P.STATS, {}).header

    def cancel(self, target_id: str) -> bool:
        """CANCEL an earlier RENDER sent on this connection; True when the daemon dropped it."""
        return bool(self._call(P.CANCEL, {"target": target_id}).header.get("cancelled"))

    def have(self, request: RenderRequest, centre: np.ndarray | WirePixels, digests: Sequence[str],
             neighbours: Mapping[int, np.ndarray | WirePixels] | None = None) -> list[str]:
        """NEED: those of ``digests`` whose enhanced frame the daemon does not hold now."""
        centre, near = self._prepare(request, centre, neighbours or {})
        fields = self._fields(request, centre, near)
        need = self._call(P.HAVE, {**fields, "digests": list(digests)}).header.get("need")
        if not isinstance(need, list) or not all(isinstance(d, str) for d in need):
            raise daemon_error(P.BAD_MESSAGE, f"NEED carried need={need!r}, not a list of digests")
        return need

    def render(self, request: RenderRequest, centre: np.ndarray | WirePixels,
               neighbours: Mapping[int, np.ndarray | WirePixels] | None = None,
               attach: Collection[str] | None = None, cancel: threading.Event | None = None) -> RenderResult:
        """RENDER ``centre``; ``neighbours`` (frame -> pixels) are listed, those whose digest is in
        ``attach`` (default: all) are sent. Setting ``cancel`` sends CANCEL; the render then ends
        with DaemonError CANCELLED unless its RESULT was already on its way."""
        centre, near = self._prepare(request, centre, neighbours or {})
        by_digest = {pixels.digest: pixels for pixels in near.values()}
        attached = list(dict.fromkeys(by_digest if attach is None else attach))
        if any(digest not in by_digest for digest in attached):
            raise UsageError("render(attach=...) names a digest of no neighbour given")
        if self.limits is not None and centre.row_bytes * centre.height > self.limits.max_frame_bytes:
            raise daemon_error(P.TOO_LARGE, f"a {centre.width}x{centre.height} frame of "
                               f"{centre.row_bytes * centre.height} bytes is over the daemon's max_frame_bytes "
                               f"{self.limits.max_frame_bytes}: use a proxy scale", {"limits": self.limits.as_dict()})
        fields = self._fields(request, centre, near)
        fields.update(attached=attached, priority=request.priority)
        if request.supersede:
            fields["supersede"] = True
        for key in ("window", "deadline_ms"):
            if getattr(request, key) is not None:
                fields[key] = list(request.window) if key == "window" else request.deadline_ms
        buffers = [centre.buffer, *(by_digest[digest].buffer for digest in attached)]
        return self._result(self._call(P.RENDER, fields, buffers, cancel=cancel), request, centre)

    def render_frame(self, request: RenderRequest, centre: np.ndarray | WirePixels,
                     neighbours: Mapping[int, np.ndarray | WirePixels] | None = None,
                     cancel: threading.Event | None = None) -> RenderResult:
        """RENDER with as few neighbour pixels as possible: HAVE first (temporal only), attach what
        NEED lists, and on NEED_FRAMES (frames left the cache meanwhile) resend once with those too."""
        near: Mapping[int, np.ndarray | WirePixels] = {}
        if request.params.temporal and neighbours:
            near = {frame: pixels for frame, pixels in neighbours.items()
                    if frame != request.frame and abs(frame - request.frame) <= request.params.radius}
        centre, prepared = self._prepare(request, centre, near)
        if not prepared:
            return self.render(request, centre, cancel=cancel)
        digests = list(dict.fromkeys(pixels.digest for pixels in prepared.values()))
        need = [digest for digest in self.have(request, centre, digests, prepared) if digest in digests]
        try:
            return self.render(request, centre, prepared, attach=need, cancel=cancel)
        except DaemonError as err:
            more = err.extra.get("need")
            if err.code != P.NEED_FRAMES or not isinstance(more, list) or not all(d in digests for d in more):
                raise
            return self.render(request, centre, prepared, attach=list(dict.fromkeys([*need, *more])), cancel=cancel)

    # --- message building ------------------------------------------------------------------------

    def _prepare(self, request: RenderRequest, centre: np.ndarray | WirePixels,
                 neighbours: Mapping[int, np.ndarray | WirePixels]) -> tuple[WirePixels, dict[int, WirePixels]]:
        def wire(pixels: np.ndarray | WirePixels) -> WirePixels:
            return pixels if isinstance(pixels, WirePixels) else WirePixels.from_array(pixels, request.format)

        centre = wire(centre)
        near = {frame: wire(pixels) for frame, pixels in neighbours.items()}
        for frame, pixels in near.items():
            if pixels.layout() != centre.layout():
                raise InputError(f"clip {request.clip} frame {frame}: a neighbour's layout {pixels.layout()} "
                                 f"differs from the centre's {centre.layout()}; send frames of one size and format")
        return centre, near

    @staticmethod
    def _fields(request: RenderRequest, centre: WirePixels, near: Mapping[int, WirePixels]) -> dict[str, Any]:
        fields: dict[str, Any] = dict(clip=request.clip, frame=request.frame, width=centre.width,
                                      height=centre.height, scale=request.scale, format=centre.format,
                                      channels=centre.channels, row_bytes=centre.row_bytes, digest=centre.digest,
                                      params=request.params.to_wire())
        for key in ("model", "colorspace", "output_colorspace"):
            if getattr(request, key) is not None:
                fields[key] = getattr(request, key)
        if near:
            fields["neighbours"] = [{"frame": frame, "digest": pixels.digest} for frame, pixels in near.items()]
        return fields

    def _result(self, message: P.Message, request: RenderRequest, centre: WirePixels) -> RenderResult:
        header = message.header
        try:
            window = tuple(header["window"])
            width, height, channels = header["width"], header["height"], header["channels"]
            if len(window) != 4 or (width, height) != (window[2] - window[0], window[3] - window[1]) \
                    or channels != centre.channels or header["format"] != centre.format or len(message.buffers) != 1:
                raise ValueError(f"window {window}, {width}x{height}x{channels} {header['format']}, "
                                 f"{len(message.buffers)} buffers")
            pixels = P.buffer_to_array(message.buffers[0], width, height, channels, centre.format, header["row_bytes"])
            return RenderResult(header["frame"], window, header.get("colorspace"), header.get("model"),
                                header.get("generator_passes"), header.get("frames_averaged"),
                                header.get("seconds"), pixels, header)
        except (KeyError, TypeError, ValueError, P.ProtocolError) as exc:
            raise daemon_error(P.BAD_MESSAGE, f"RESULT for clip {request.clip} frame {request.frame} does not "
                               f"match the request ({exc}): run the same nightgrade release on both ends") from None

    # --- Lazy Pirate -----------------------------------------------------------------------------

    def _call(self, kind: str, fields: dict[str, Any], buffers: Sequence[Any] = (),
              cancel: threading.Event | None = None) -> P.Message:
        if self._check_listening:
            self._check_listening = False
            if self.curve is not None:
                client_keys(self.curve)  # a bad key file is the user's first problem: name it first
            why = nothing_listens(self.endpoint)
            if why is not None:
                raise DaemonUnavailable(f"the NightGrade daemon at {self.endpoint} is not running: {why}; "
                                        f"start it with `nightgrade serve` or check {setting('server')}")
        request_id, started = uuid.uuid4().hex, time.monotonic()
        frames = P.encode(P.request(kind, request_id, **fields), buffers)
        for attempt in range(1 + self.retries):
            if attempt:
                self._drop_socket()  # a stale socket may hold a late reply or a stuck send: start clean
                if self._notice is not None:
                    self._notice(f"no reply from the daemon at {self.endpoint} within {self.timeout_s:g} s; "
                                 f"trying again ({attempt + 1} of {1 + self.retries})")
            reply = None
            if self._send(frames):
                reply = (self._await_render(request_id, cancel) if kind == P.RENDER
                         else self._receive({request_id}, self.timeout_s))
            if reply is not None:
                return self._checked(reply, P.REPLY_TO[kind])
            if cancel is not None and cancel.is_set():
                self._drop_socket()  # its queued RENDER must not reach a daemon that comes back
                raise daemon_error(P.CANCELLED_CODE, f"RENDER {request_id} cancelled while the daemon at "
                                   f"{self.endpoint} was not answering")
        self._drop_socket()  # else its queued resend reaches a restarted daemon: work nobody waits for
        tries = 1 + self.retries
        waited = time.monotonic() - started  # a RENDER try also waits for a PING: say what was really waited
        raise DaemonUnavailable(f"no reply from the NightGrade daemon at {self.endpoint} in {waited:.0f} s "
                                f"({tries} {'try' if tries == 1 else 'tries'}, {self.timeout_s:g} s per wait): "
                                f"start it with `nightgrade serve` or check {setting('server')}; a daemon that refused our "
                                "Curve key also looks like this")

    def _await_render(self, request_id: str, cancel: threading.Event | None) -> P.Message | None:
        sent, idle, cancelling = time.monotonic(), 0, False
        while True:
            reply = self._receive({request_id}, self.timeout_s, None if cancelling else cancel)
            if reply is not None:
                return reply
            if cancel is not None and cancel.is_set() and not cancelling:
                cancelling = True
                self._send(P.encode(P.request(P.CANCEL, uuid.uuid4().hex, target=request_id)))
                continue
            probe, probed = uuid.uuid4().hex, time.monotonic()
            if not self._send(P.encode(P.request(P.PING, probe))):
                return None
            reply = self._receive({request_id, probe}, self.timeout_s)
            if reply is None or reply.id == request_id:
                return reply
            pong = reply.header
            uptime, busy, queue = pong.get("uptime_s"), pong.get("busy"), pong.get("queue")
            if isinstance(uptime, (int, float)) and uptime < probed - sent:
                return None  # started after our request went out: it went with the old process
            idle = idle + 1 if busy is False and queue == 0 else 0
            if idle >= 2:
                return None  # twice idle with our request unanswered: it was lost, resend it
            if time.monotonic() - sent > self.render_timeout_s:
                self._send(P.encode(P.request(P.CANCEL, uuid.uuid4().hex, target=request_id)))
                raise daemon_error(P.DEADLINE, f"RENDER {request_id} did not finish within {self.render_timeout_s:g} s "
                                   f"although the daemon at {self.endpoint} answers PING; raise the render timeout")

    def _checked(self, message: P.Message, expected: str) -> P.Message:
        if message.type == P.ERROR:
            code, text = message.header.get("code"), message.header.get("message")
            extra = {k: v for k, v in message.header.items() if k not in ("v", "type", "id", "code", "message")}
            if isinstance(code, str) and isinstance(text, str):
                raise daemon_error(code, text, extra)
            raise daemon_error(P.BAD_MESSAGE, f"an ERROR reply without code and message: {message.header!r:.120}")
        if message.type != expected:
            raise daemon_error(P.BAD_MESSAGE, f"the daemon answered with {message.type} where {expected} was due")
        return message

    def _sock(self) -> zmq.Socket:
        if self._socket is None:
            # keys are read before the socket exists: an error with a socket open would make
            # close() hang in the context's termination
            check_endpoint(self.endpoint)  # ZeroMQ accepts tcp://host:99999 and then waits forever
            keys = client_keys(self.curve) if self.curve is not None else None
            socket = self._context.socket(zmq.DEALER)
            socket.linger = 0
            try:
                if keys is not None:
                    socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = keys
                socket.connect(self.endpoint)
            except zmq.ZMQError as err:
                socket.close(linger=0)
                raise UsageError(f"cannot connect to {self.endpoint!r}: {err.strerror}; use tcp://HOST:PORT "
                                 "or ipc://PATH") from None
            except BaseException:
                socket.close(linger=0)
                raise
            self._socket = socket
        return self._socket

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _send(self, frames: list[Any]) -> bool:
        """False when the message cannot even be queued within the timeout (no usable pipe)."""
        socket = self._sock()
        if not socket.poll(int(self.timeout_s * 1000), zmq.POLLOUT):
            return False
        try:  # a refused Curve handshake drops the only pipe, maybe since the poll: never block on it
            socket.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _receive(self, wanted: Collection[str], timeout_s: float,
                 stop: threading.Event | None = None) -> P.Message | None:
        """The first reply with an id in ``wanted`` (or a nil-id ERROR: ours, unreadable by the
        daemon) within ``timeout_s``; None on timeout or when ``stop`` is set."""
        socket, deadline = self._sock(), time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if stop is not None and stop.is_set():
                return None
            slice_s = left if stop is None else min(left, 0.05)
            if not socket.poll(max(1, int(slice_s * 1000))):
                continue
            frames = socket.recv_multipart(copy=False)
            try:
                message = P.decode(frames, reply=True)
            except P.ProtocolError as err:
                if err.request_id is None or err.request_id in wanted:
                    raise daemon_error(P.BAD_MESSAGE if err.code != P.BAD_VERSION else err.code,
                                       f"the daemon at {self.endpoint} sent a reply this client cannot read "
                                       f"({err.message}): run the same nightgrade release on both ends") from None
                continue
            if message.id in wanted or (message.id is None and message.type == P.ERROR):
                return message
        return None
