"""Client (Lazy Pirate, PING probes, NEED_FRAMES, cancel) and Curve against a fake daemon in a thread."""
from __future__ import annotations

import heapq
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from nightgrade.colorpipeline.errors import (ColorError, InputError, ModelError, NightGradeError, ServiceError,
                                             UsageError)
from nightgrade.server import protocol as P
from nightgrade.server.cli.flags import flag
from nightgrade.server.client import (Client, DaemonError, DaemonUnavailable, RenderRequest, WirePixels)
from nightgrade.server.protocol.curve import (CurveClientConfig, CurveServerConfig, check_bind, configure_server,
                                              generate_keypair, is_local_endpoint, load_keypair)


def standard(message: P.Message, daemon: FakeDaemon) -> list:
    """Answers HELLO, PING (idle), STATS; anything else is left unanswered."""
    if message.type == P.PING:
        return [(P.reply(P.PONG, message.id, queue=0, busy=False, uptime_s=daemon.uptime(), instance=daemon.name),)]
    if message.type == P.HELLO:
        return [(P.reply(P.WELCOME, message.id, version=1, server="fake", models=[], device="cpu",
                         limits=P.Limits().as_dict(), ocio_config="none"),)]
    return []


class FakeDaemon:
    """A ROUTER answering with ``handler(message, daemon) -> [(header, buffers?, delay_s?)]``; binds
    after ``bind_after_s``; replies with a delay are sent later without blocking the loop."""

    def __init__(self, endpoint: str, handler=standard, *, bind_after_s: float = 0.0, name: str = "one",
                 curve: CurveServerConfig | None = None) -> None:
        self.endpoint, self.handler, self.name, self.curve = endpoint, handler, name, curve
        self.bind_after_s, self.received, self.state = bind_after_s, [], {}
        self._stop, self._bound = threading.Event(), threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def uptime(self) -> float:
        return time.monotonic() - self._started

    def __enter__(self) -> FakeDaemon:
        self._thread.start()
        if self.bind_after_s == 0:
            assert self._bound.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        context = zmq.Context()
        socket = context.socket(zmq.ROUTER)
        socket.linger = 0
        authenticator = configure_server(context, socket, self.curve) if self.curve else None
        if self._stop.wait(self.bind_after_s):
            return
        if self.endpoint.endswith(":0"):
            port = socket.bind_to_random_port(self.endpoint[:-2])
            self.endpoint = f"{self.endpoint[:-2]}:{port}"
        else:
            socket.bind(self.endpoint)
        self._started = time.monotonic()
        self._bound.set()
        pending: list = []
        while not self._stop.is_set():
            while pending and pending[0][0] <= time.monotonic():
                socket.send_multipart(heapq.heappop(pending)[2], copy=False)
            if not socket.poll(10):
                continue
            envelope, frames = P.split_envelope(socket.recv_multipart(copy=False))
            try:
                message = P.decode(frames)
                self.received.append(message)
                replies = self.handler(message, self)
            except P.ProtocolError as err:
                replies = [(err.reply(),)]
            for header, buffers, delay in (reply + ((), 0.0)[len(reply) - 1:] for reply in replies):
                heapq.heappush(pending, (time.monotonic() + delay, id(header), envelope + P.encode(header, buffers)))
        socket.close(0)
        if authenticator:
            authenticator.stop()
        context.term()

    def count(self, kind: str) -> int:
        return sum(message.type == kind for message in self.received)


@pytest.fixture
def endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path}/d.ipc"


def test_lazy_pirate_recovers_when_daemon_starts_late(endpoint):
    with FakeDaemon(endpoint, bind_after_s=0.6) as daemon, Client(endpoint, timeout_s=0.2, retries=10) as client:
        assert client.ping()["instance"] == "one"
        assert daemon.count(P.PING) >= 1


def test_lazy_pirate_survives_a_daemon_restart(endpoint):
    with Client(endpoint, timeout_s=0.2, retries=10) as client:
        with FakeDaemon(endpoint, name="first"):
            assert client.ping()["instance"] == "first"
        with FakeDaemon(endpoint, name="second", bind_after_s=0.3):
            assert client.ping()["instance"] == "second"


def test_replies_with_another_id_are_discarded(endpoint):
    def stale_first(message, daemon):
        return [(P.reply(P.PONG, "an-earlier-request", marker="stale"),),
                (P.reply(P.PONG, message.id, marker="fresh"),)]

    with FakeDaemon(endpoint, stale_first), Client(endpoint, timeout_s=1.0, retries=0) as client:
        assert client.ping()["marker"] == "fresh"


def test_late_reply_to_an_abandoned_attempt_never_answers_the_next_request(endpoint):
    def slow_first(message, daemon):
        first = not daemon.state
        daemon.state.setdefault(message.id, len(daemon.state))
        return [(P.reply(P.PONG, message.id, order=daemon.state[message.id]), (), 0.4 if first else 0.0)]

    with FakeDaemon(endpoint, slow_first) as daemon, Client(endpoint, timeout_s=0.15, retries=3) as client:
        assert client.ping()["order"] == 0  # answered on the second socket
        time.sleep(0.4)  # the first socket's late reply is due now, and lost with that socket
        assert client.ping()["order"] == 1
        assert daemon.count(P.PING) >= 3


def test_timeout_is_bounded_and_unavailable_names_the_fix(endpoint):
    with FakeDaemon(endpoint, lambda message, daemon: []) as daemon, \
            Client(endpoint, timeout_s=0.2, retries=2) as client:
        with pytest.raises(DaemonUnavailable) as caught:
            client.stats()
    assert daemon.count(P.STATS) == 3
    text = str(caught.value)
    assert endpoint in text and "nightgrade serve" in text and "3 tries" in text and "\n" not in text
    assert isinstance(caught.value, ServiceError) and caught.value.exit_code == 7


@pytest.mark.parametrize("code, family", [(P.UNKNOWN_MODEL, ModelError), (P.BAD_COLORSPACE, ColorError),
                                          (P.BUSY, ServiceError), (P.DEADLINE, ServiceError),
                                          (P.TOO_LARGE, InputError), (P.INTERNAL, NightGradeError)])
def test_error_replies_raise_daemon_errors(endpoint, code, family):
    def refuse(message, daemon):
        return [(P.error_reply(message.id, code, "refused here", models=["tiny"]),)]

    with FakeDaemon(endpoint, refuse), Client(endpoint, timeout_s=1.0) as client:
        with pytest.raises(DaemonError) as caught:
            client.render(RenderRequest("shot", 1), np.zeros((4, 4, 3), np.float32))
    assert caught.value.code == code and caught.value.extra["models"] == ["tiny"]
    assert isinstance(caught.value, family) and caught.value.message == "refused here"
    assert caught.value.exit_code == family.exit_code


def _renderer(message: P.Message, daemon: FakeDaemon) -> list:
    """HAVE/RENDER with a frame cache in ``daemon.state``; RESULT = 2 x the centre's window."""
    if message.type not in (P.HAVE, P.RENDER):
        return standard(message, daemon)
    request = P.parse_request(message, P.Limits())
    cache = daemon.state.setdefault("cache", set())
    if isinstance(request, P.Have):
        need = [d for d in request.digests if d not in cache]
        cache.difference_update(daemon.state.pop("evict_after_have", set()))
        return [(P.reply(P.NEED, message.id, need=need),)]
    request.check_digests()
    daemon.state.setdefault("renders", []).append(request)
    missing = [n.digest for n in request.neighbours if n.digest not in cache and n.digest not in request.attached]
    if missing:
        return [(P.error_reply(message.id, P.NEED_FRAMES, "neighbours missing", need=missing),)]
    x0, y0, x1, y1 = request.window
    out, row_bytes = P.array_to_buffer(request.pixels()[y0:y1, x0:x1] * 2, request.format)
    return [(P.reply(P.RESULT, message.id, frame=request.frame, window=list(request.window), width=x1 - x0,
                     height=y1 - y0, channels=request.channels, format=request.format, row_bytes=row_bytes,
                     colorspace="ACEScg", model="b2:" + "0" * 32, generator_passes=1, frames_averaged=1.0,
                     seconds=0.01), [out])]


def test_render_frame_attaches_only_needed_and_resends_on_need_frames(endpoint):
    rng = np.random.default_rng(0)
    frames = {n: rng.random((6, 8, 3)).astype(np.float32) for n in (*range(8, 13), 20)}
    wire = {n: WirePixels.from_array(pixels) for n, pixels in frames.items()}
    request = RenderRequest("shot", 10, params=P.RenderParams(temporal=True, radius=2), window=(1, 2, 7, 5))
    with FakeDaemon(endpoint, _renderer) as daemon, Client(endpoint, timeout_s=1.0) as client:
        daemon.state["cache"] = {wire[8].digest, wire[9].digest, wire[11].digest}
        daemon.state["evict_after_have"] = {wire[9].digest}  # leaves the cache between NEED and RENDER
        result = client.render_frame(request, frames[10], {n: frames[n] for n in (8, 9, 11, 12, 20)})
    assert np.array_equal(result.pixels, frames[10][2:5, 1:7] * 2) and result.window == (1, 2, 7, 5)
    first, second = daemon.state["renders"]
    assert first.attached == (wire[12].digest,)
    assert set(second.attached) == {wire[12].digest, wire[9].digest} and first.id != second.id
    assert {n.frame for n in first.neighbours} == {8, 9, 11, 12}
    assert daemon.count(P.HAVE) == 1


def test_padded_half_rgba_round_trip(endpoint):
    pixels = np.random.default_rng(1).random((5, 7, 4)).astype(np.float16)
    rows = np.zeros((5, 7 * 8 + 24), np.uint8)  # 24 bytes of row padding
    rows[:, :56] = pixels.reshape(5, -1).view(np.uint8)
    centre = WirePixels.from_buffer(rows.reshape(-1), 7, 5, 4, "half", 80)
    assert centre.digest == WirePixels.from_array(pixels, "half").digest
    with FakeDaemon(endpoint, _renderer) as daemon, Client(endpoint, timeout_s=1.0) as client:
        result = client.render(RenderRequest("shot", 3, format="half"), centre)
    sent = daemon.state["renders"][0]
    assert (sent.row_bytes, sent.format, sent.channels) == (80, "half", 4)
    assert result.pixels.dtype == np.float32 and result.pixels.shape == (5, 7, 4)
    assert np.array_equal(result.pixels, (pixels.astype(np.float32) * 2).astype(np.float16).astype(np.float32))


def test_long_render_is_kept_alive_by_ping(endpoint):
    def slow_render(message, daemon):
        if message.type == P.PING:
            return [(P.reply(P.PONG, message.id, queue=0, busy=True, uptime_s=daemon.uptime()),)]
        return [(P.reply(P.RESULT, message.id, frame=1, window=[0, 0, 1, 1], width=1, height=1, channels=3,
                         format="float32", row_bytes=12, colorspace="x", model="m", generator_passes=1,
                         frames_averaged=1.0, seconds=0.8), [np.ones((1, 1, 3), np.float32)], 0.8)]

    with FakeDaemon(endpoint, slow_render) as daemon, Client(endpoint, timeout_s=0.25, retries=0) as client:
        result = client.render(RenderRequest("shot", 1), np.zeros((1, 1, 3), np.float32))
    assert result.pixels.tolist() == [[[1.0, 1.0, 1.0]]]
    assert daemon.count(P.RENDER) == 1 and daemon.count(P.PING) >= 2


def test_render_lost_by_an_idle_daemon_is_resent(endpoint):
    def lose_first(message, daemon):
        if message.type == P.PING:
            return standard(message, daemon)
        if daemon.count(P.RENDER) == 1:
            return []
        return _renderer(message, daemon)

    with FakeDaemon(endpoint, lose_first) as daemon, Client(endpoint, timeout_s=0.2, retries=1) as client:
        result = client.render(RenderRequest("shot", 1), np.ones((2, 2, 3), np.float32))
    assert np.array_equal(result.pixels, np.full((2, 2, 3), 2, np.float32))
    first, second = (m for m in daemon.received if m.type == P.RENDER)
    assert first.id == second.id and daemon.count(P.PING) >= 2


def test_render_lost_in_a_daemon_restart_is_resent(endpoint):
    def restarted(message, daemon):
        if message.type == P.PING:  # busy, but up for less time than our request has waited
            return [(P.reply(P.PONG, message.id, queue=3, busy=True, uptime_s=0.0),)]
        return [] if daemon.count(P.RENDER) == 1 else _renderer(message, daemon)

    with FakeDaemon(endpoint, restarted) as daemon, Client(endpoint, timeout_s=0.2, retries=2) as client:
        client.render(RenderRequest("shot", 1), np.ones((2, 2, 3), np.float32))
    assert daemon.count(P.RENDER) >= 2 and daemon.count(P.PING) >= 1


def test_cancel_event_sends_cancel_and_ends_with_cancelled(endpoint):
    def cancellable(message, daemon):
        if message.type == P.CANCEL:
            return [(P.reply(P.CANCELLED, message.id, cancelled=True),),
                    (P.error_reply(message.header["target"], P.CANCELLED_CODE, "cancelled by CANCEL"),)]
        return standard(message, daemon) if message.type == P.PING else []

    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with FakeDaemon(endpoint, cancellable) as daemon, Client(endpoint, timeout_s=5.0) as client:
        with pytest.raises(DaemonError) as caught:
            client.render(RenderRequest("shot", 1), np.zeros((2, 2, 3), np.float32), cancel=cancel)
        assert client.cancel("no-such-render") is True  # the stray CANCELLED reply was discarded
    assert caught.value.code == P.CANCELLED_CODE and isinstance(caught.value, ServiceError)
    cancels = [m for m in daemon.received if m.type == P.CANCEL]
    assert cancels[0].header["target"] == next(m.id for m in daemon.received if m.type == P.RENDER)


def test_hello_learns_limits_and_oversize_frames_are_refused_locally(endpoint):
    def small(message, daemon):
        return [(P.reply(P.WELCOME, message.id, version=1, server="fake", models=[], device="cpu",
                         limits=P.Limits(max_pixels=4).as_dict(), ocio_config="none"),)]

    with FakeDaemon(endpoint, small) as daemon, Client(endpoint, timeout_s=1.0) as client:
        assert client.hello()["version"] == 1 and client.limits.max_pixels == 4
        with pytest.raises(DaemonError) as caught:
            client.render(RenderRequest("shot", 1), np.zeros((20, 20, 4), np.float32))
    assert caught.value.code == P.TOO_LARGE and daemon.count(P.RENDER) == 0
    assert daemon.received[0].header["versions"] == [1] and daemon.received[0].header["client"]


def _keys(tmp_path: Path) -> dict[str, Path]:
    keys = {}
    for name in ("daemon", "good", "bad"):
        keys[name] = generate_keypair(tmp_path / "keys", name)[1]
    (tmp_path / "authorized").mkdir()
    shutil.copy(tmp_path / "keys" / "good.key", tmp_path / "authorized")
    return keys


def test_curve_authorised_key_gets_a_reply_and_others_time_out(tmp_path):
    keys = _keys(tmp_path)
    server = CurveServerConfig(keys["daemon"], tmp_path / "authorized")
    with FakeDaemon("tcp://127.0.0.1:0", curve=server) as daemon:
        good = CurveClientConfig(tmp_path / "keys" / "daemon.key", keys["good"])
        with Client(daemon.endpoint, timeout_s=2.0, retries=0, curve=good) as client:
            assert client.ping()["instance"] == "one"
        bad = CurveClientConfig(tmp_path / "keys" / "daemon.key", keys["bad"])
        with Client(daemon.endpoint, timeout_s=0.3, retries=0, curve=bad) as client:
            with pytest.raises(DaemonUnavailable, match="Curve key"):
                client.ping()
        with Client(daemon.endpoint, timeout_s=0.3, retries=0) as client:  # plain client: refused too
            with pytest.raises(DaemonUnavailable):
                client.ping()
    assert daemon.count(P.PING) == 1


def test_key_files(tmp_path):
    public, secret = generate_keypair(tmp_path / "k", "node")
    assert (secret.stat().st_mode & 0o777) == 0o600
    assert load_keypair(public)[1] is None and load_keypair(secret)[0] == load_keypair(public)[0]
    with pytest.raises(UsageError, match="never overwrites"):
        generate_keypair(tmp_path / "k", "node")
    (tmp_path / "junk.key").write_text("public-key = 'short'\n")
    with pytest.raises(InputError, match="junk.key"):
        load_keypair(tmp_path / "junk.key")
    with pytest.raises(InputError):
        load_keypair(tmp_path / "missing.key")
    (tmp_path / "empty").mkdir()
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    try:
        with pytest.raises(InputError, match="no .key files"):
            configure_server(context, socket, CurveServerConfig(secret, tmp_path / "empty"))
        with pytest.raises(InputError, match="only a public key"):
            configure_server(context, socket, CurveServerConfig(public, tmp_path / "k"))
    finally:
        socket.close(0)
        context.term()


def test_bind_rules():
    for local in ("tcp://127.0.0.1:5557", "tcp://localhost:1", "tcp://[::1]:5557", "ipc:///tmp/x", "inproc://d"):
        assert is_local_endpoint(local)
        check_bind(local, None, insecure=False)
    for remote in ("tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://10.0.0.2:5557", "tcp://eth0:5557", "127.0.0.1:1"):
        assert not is_local_endpoint(remote)
    with pytest.raises(UsageError) as refused:
        check_bind("tcp://0.0.0.0:5557", None, insecure=False)
    assert "--insecure" in refused.value.naming(flag)  # the CLI names its flag
    check_bind("tcp://0.0.0.0:5557", None, insecure=True)
    check_bind("tcp://0.0.0.0:5557", CurveServerConfig(Path("s"), Path("a")), insecure=False)
    with pytest.raises(UsageError):
        check_bind("http://127.0.0.1:80", None, insecure=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_answers_at_once_when_no_daemon_listens(tmp_path, capsys):
    """Issue 19 item 8: `status` (and `enhance --server`) against a daemon that is not running says
    so at once instead of after 3 silent timeouts."""
    from nightgrade.server.cli.main import main

    for endpoint in (f"tcp://127.0.0.1:{_free_port()}", f"ipc://{tmp_path}/none.ipc"):
        started = time.monotonic()
        assert main(["status", "--server", endpoint, "--timeout", "5"]) == 7
        assert time.monotonic() - started < 3.0  # not 3 x 5 s
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and endpoint in err and "is not running" in err and "nightgrade serve" in err


def test_fail_fast_is_checked_once_and_silent_tries_are_told(endpoint):
    """A daemon that exists but stays silent: each retry is announced; fail_fast does not stop a
    daemon that is there from being asked."""
    told = []
    with FakeDaemon(endpoint, lambda message, daemon: []) as daemon, \
            Client(endpoint, timeout_s=0.2, retries=2, fail_fast=True, notice=told.append) as client:
        with pytest.raises(DaemonUnavailable):
            client.stats()
    assert daemon.count(P.STATS) == 3
    assert [t.split("(")[-1] for t in told] == ["2 of 3)", "3 of 3)"] and endpoint in told[0]
