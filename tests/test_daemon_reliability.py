"""Reliability of the render daemon on loopback (issue 6, "Reliability tests"; docs/protocol.md):
a storm of malformed messages, SIGKILL mid-render and restart, concurrent clients, Curve refusal,
status. Every request must be answered exactly once. Cancel, deadlines and a full queue:
tests/test_daemon_queue.py."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter

import msgpack
import numpy as np
import zmq

from nightgrade.server import protocol as P
from nightgrade.server.cli import main as cli
from nightgrade.server.client import Client, DaemonUnavailable, RenderRequest
from nightgrade.server.protocol.curve import CurveClientConfig, CurveServerConfig, generate_keypair

from daemon_fixtures import (NIGHTGRADE, RawPeer, Reference, free_port, labelled_frame, render_fields,
                             running_daemon, start_serve, stop_process, storm_message, wait_ready)

STORM = 10_000
MAX_FRAME_BYTES = 4 << 20  # the storm daemon's MAXMSGSIZE: a bigger frame costs the sender its connection


def _outcome(reply: P.Message) -> str:
    return reply.type if reply.type != P.ERROR else f"ERROR:{reply.header['code']}"


def _check_storm_replies(expected: dict, got: dict, window_pixels: np.ndarray) -> Counter:
    """Every addressable message answered exactly once, as allowed; the count of each outcome."""
    assert len(got.pop(None, [])) == len(expected.pop(None)) > STORM // 4
    assert got.keys() == expected.keys()
    outcomes: Counter = Counter()
    for rid, allowed in expected.items():
        assert len(got[rid]) == 1, f"request {rid} got {len(got[rid])} replies"
        reply = got[rid][0]
        outcomes[_outcome(reply)] += 1
        assert _outcome(reply) in allowed, f"request {rid}: {reply.header!r:.300}"
        if reply.type == P.ERROR:
            assert isinstance(reply.header["message"], str) and "\n" not in reply.header["message"]
            extra = {P.BAD_VERSION: "supported", P.TOO_LARGE: "limits", P.NEED_FRAMES: "need",
                     P.UNKNOWN_MODEL: "models", P.BAD_MESSAGE: None}.get(reply.header["code"])
            assert extra is None or extra in reply.header
            if reply.header["code"] == P.NEED_FRAMES:
                assert len(reply.header["need"]) == 2 and all(d.startswith("b2:") for d in reply.header["need"])
        elif reply.type == P.RESULT:
            result = P.buffer_to_array(reply.buffers[0], 64, 56, 4, "float32", reply.header["row_bytes"])
            np.testing.assert_array_equal(result, window_pixels)
    return outcomes


def test_daemon_survives_10000_malformed_messages_and_answers_each_once(tiny_weights):
    rng = random.Random(6)
    pixels = labelled_frame(3)
    with running_daemon(tiny_weights, max_queue=1000, limits=P.Limits(max_frame_bytes=MAX_FRAME_BYTES)) as daemon, \
            Client(daemon.endpoint, timeout_s=20, retries=0) as client:
        before = client.render(RenderRequest("storm", 1), pixels)
        np.testing.assert_allclose(before.pixels, Reference(tiny_weights).render(pixels), atol=1e-5)
        context = zmq.Context()
        peer = RawPeer(context, daemon.endpoint)
        expected: dict[str | None, list] = {None: []}
        got: dict[str | None, list[P.Message]] = {}
        sent = received = 0
        while received < STORM:  # pipelined, at most 48 outstanding
            if sent < STORM and sent - received < 48:
                frames, rid, allowed = storm_message(rng, sent, pixels)
                if rid is None:
                    expected[None].append(allowed)
                else:
                    expected[rid] = allowed
                peer.send(frames)
                sent += 1
                continue
            reply = peer.receive(30.0)
            assert reply is not None, f"no reply within 30 s after {received} of {sent} sent"
            got.setdefault(reply.id, []).append(reply)
            received += 1

        # a frame over MAXMSGSIZE and a header over MAX_HEADER_BYTES, each from its own connection
        oversize, big_header = RawPeer(context, daemon.endpoint), RawPeer(context, daemon.endpoint)
        oversize.send([msgpack.packb(P.request(P.PING, "huge")), b"\x00" * (MAX_FRAME_BYTES + 1)])
        big_header.send([msgpack.packb({**P.request(P.PING, "big"), "pad": "a" * (P.MAX_HEADER_BYTES + 1)})])
        refused = big_header.receive(10.0)
        assert refused is not None and refused.id is None and refused.header["code"] == P.BAD_MESSAGE
        while client.ping()["queue"] or client.ping()["busy"]:
            time.sleep(0.05)
        assert peer.receive(0.3) is None, "a reply nobody asked for (a request answered twice?)"
        assert oversize.receive(0.1) is None, "a frame over MAXMSGSIZE costs its sender the connection, no reply"

        outcomes = _check_storm_replies(expected, got, before.pixels[4:60, 8:72])
        assert outcomes[P.RESULT] == STORM // 500
        assert all(outcomes[kind] for kind in (P.PONG, P.WELCOME, P.NEED, P.CANCELLED, P.STATS, "ERROR:NEED_FRAMES",
                                               "ERROR:BAD_BUFFER", "ERROR:TOO_LARGE", "ERROR:BAD_VERSION",
                                               "ERROR:UNKNOWN_MODEL", "ERROR:BAD_COLORSPACE"))

        req = RawPeer(context, daemon.endpoint, zmq.REQ)  # a REQ client is answered behind its delimiter
        for index in range(STORM, STORM + 30):
            frames, rid, allowed = storm_message(rng, index, pixels)
            req.send(frames)
            reply = req.receive(10.0)
            assert reply is not None and reply.id == rid and _outcome(reply) in allowed
        for socket in (peer, oversize, big_header, req):
            socket.close()
        context.term()

        after = client.render(RenderRequest("storm", 1), pixels)
        assert before.generator_passes == after.generator_passes == 1  # no cache: the generator ran again
        np.testing.assert_array_equal(after.pixels, before.pixels)
        assert client.stats()["served"] == 2 + STORM // 500


# --- SIGKILL and restart ----------------------------------------------------------------------------

def test_sigkill_mid_render_gives_a_bounded_clear_error_and_the_client_recovers(tiny_weights, tmp_path):
    endpoint, log = f"tcp://127.0.0.1:{free_port()}", tmp_path / "serve.log"
    big = np.random.default_rng(2).random((1024, 1536, 3), dtype=np.float32) * 0.2
    small = labelled_frame(11)
    timeout_s, retries = 0.5, 1
    outcome: dict = {}
    client = Client(endpoint, timeout_s=timeout_s, retries=retries)

    def render_big() -> None:
        try:
            outcome["result"] = client.render(RenderRequest("big", 1), big)
        except Exception as err:  # noqa: BLE001 - inspected below
            outcome["error"] = err
        outcome["ended"] = time.monotonic()

    first = start_serve(endpoint, tiny_weights, log)
    try:
        wait_ready(endpoint, first, log)
        thread = threading.Thread(target=render_big, daemon=True)
        thread.start()
        with Client(endpoint, timeout_s=5, retries=0) as probe:
            end = time.monotonic() + 30
            while not probe.ping()["busy"]:  # the worker holds our frame
                assert time.monotonic() < end and thread.is_alive(), f"never busy: {outcome}"
                time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert first.wait(10) == -signal.SIGKILL
        # each attempt waits timeout_s for the RESULT, then timeout_s for the PONG that tells busy from dead
        bound = 2 * timeout_s * (1 + retries)
        thread.join(bound + 10)
        assert not thread.is_alive()
    finally:
        stop_process(first)
    error = outcome.get("error")
    assert isinstance(error, DaemonUnavailable), outcome
    assert outcome["ended"] - killed <= bound + 3.0
    text = str(error)
    assert "\n" not in text and endpoint in text and "nightgrade serve" in text

    second = start_serve(endpoint, tiny_weights, log)
    try:
        wait_ready(endpoint, second, log)
        result = client.render(RenderRequest("small", 2), small)  # the same Client object
        np.testing.assert_allclose(result.pixels, Reference(tiny_weights).render(small), atol=1e-5)
        stats = client.stats()  # the abandoned 1024x1536 render (~1500 tiles) never reached this daemon
        assert stats["tiles"] < 100 and stats["queue"] == stats["in_flight"] == 0, stats
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()
    finally:
        client.close()
        stop_process(second)


# --- concurrent clients ------------------------------------------------------------------------------

def test_eight_concurrent_clients_each_get_exactly_their_own_results(tiny_weights):
    clients, per_client = 8, 6
    rng = random.Random(3)
    frames = {(c, s): labelled_frame(100 * c + s) for c in range(clients) for s in range(per_client)}
    reference = Reference(tiny_weights)
    expected = {key: reference.render(pixels) for key, pixels in frames.items()}
    windows = {}
    for key in frames:
        x0, y0 = rng.randrange(0, 80), rng.randrange(0, 48)
        windows[key] = (x0, y0, rng.randrange(x0 + 1, 97), rng.randrange(y0 + 1, 65))
    failures: list[str] = []

    def check(key, window, pixels) -> None:
        x0, y0, x1, y1 = window
        if pixels.shape != (y1 - y0, x1 - x0, 4) or not np.all(pixels[..., 3] == 100 * key[0] + key[1]) \
                or not np.allclose(pixels, expected[key][y0:y1, x0:x1], atol=1e-5, rtol=0):
            failures.append(f"client {key[0]} request {key[1]}: wrong pixels for window {window}")

    def with_client(c: int, endpoint: str) -> None:
        with Client(endpoint, timeout_s=30, retries=0) as client:
            for s in range(per_client):
                try:
                    result = client.render(RenderRequest(f"clip{c}", s, window=windows[c, s]), frames[c, s])
                except Exception as err:  # noqa: BLE001 - reported by the main thread
                    failures.append(f"client {c} request {s}: {err}")
                    return
                check((c, s), windows[c, s], result.pixels)

    def with_dealer(c: int, endpoint: str, context: zmq.Context) -> None:
        """Pipelined, up to 3 outstanding: counts the replies to each id."""
        peer, replies, sent = RawPeer(context, endpoint), Counter(), 0
        while sent < per_client or sum(replies.values()) < per_client:
            if sent < per_client and sent - sum(replies.values()) < 3:
                header, buffer = render_fields(f"{c}-{sent}", frames[c, sent], window=list(windows[c, sent]),
                                               clip=f"clip{c}", frame=sent)
                peer.request(header, [buffer])
                sent += 1
                continue
            reply = peer.receive(30.0)
            if reply is None or reply.type != P.RESULT:
                failures.append(f"client {c}: {reply and reply.header}")
                break
            s = int(reply.id.split("-")[1])
            replies[reply.id] += 1
            width, height = reply.header["width"], reply.header["height"]
            check((c, s), windows[c, s],
                  P.buffer_to_array(reply.buffers[0], width, height, 4, "float32", reply.header["row_bytes"]))
        if peer.receive(0.3) is not None or set(replies.values()) != {1} or len(replies) != per_client:
            failures.append(f"client {c}: replies per id {dict(replies)} or a reply more")
        peer.close()

    with running_daemon(tiny_weights) as daemon:
        context = zmq.Context()
        threads = [threading.Thread(target=with_client, args=(c, daemon.endpoint)) if c % 2 else
                   threading.Thread(target=with_dealer, args=(c, daemon.endpoint, context)) for c in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        context.term()
        assert not failures, failures
        stats = daemon.stats()
    assert stats["served"] == stats["generator_passes"] == clients * per_client and stats["errors"] == 0


# --- Curve and the serve/status/keygen commands -----------------------------------------------------

def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([NIGHTGRADE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_curve_refuses_a_wrong_key_while_an_authorised_client_renders(tiny_weights, tmp_path, capsys, monkeypatch):
    assert cli.main(["keygen", str(tmp_path / "daemon"), "--name", "daemon"]) == 0
    assert str(tmp_path / "daemon" / "daemon.key") in capsys.readouterr().out
    _, good_secret = generate_keypair(tmp_path / "client", "good")
    _, stranger_secret = generate_keypair(tmp_path / "stranger", "stranger")
    (tmp_path / "authorised").mkdir()
    (tmp_path / "authorised" / "good.key").write_bytes((tmp_path / "client" / "good.key").read_bytes())
    server = CurveServerConfig(tmp_path / "daemon" / "daemon.key_secret", tmp_path / "authorised")
    server_public = tmp_path / "daemon" / "daemon.key"
    small = labelled_frame(21)
    refusals: list = []

    def intrude(curve) -> None:
        with Client(endpoint, timeout_s=0.5, retries=1, curve=curve) as intruder:
            try:
                intruder.ping()
            except DaemonUnavailable as err:
                refusals.append(err)

    poll = zmq.Socket.poll

    def slow_poll(socket: zmq.Socket, *args, **kwargs) -> int:
        """Let the daemon refuse an intruder's handshake (which drops its only pipe) between the
        intruder's poll for POLLOUT and its send: the send must not block forever then."""
        ready = poll(socket, *args, **kwargs)
        if zmq.POLLOUT in (*args[1:], kwargs.get("flags")) and threading.current_thread().name == "intruder":
            time.sleep(0.3)
        return ready

    monkeypatch.setattr(zmq.Socket, "poll", slow_poll)
    with running_daemon(tiny_weights, curve=server) as daemon:
        endpoint = daemon.endpoint
        intruders = [threading.Thread(target=intrude, args=(curve,), name="intruder", daemon=True) for curve in (
            CurveClientConfig(server_public, stranger_secret),  # a key the daemon does not know
            CurveClientConfig(tmp_path / "client" / "good.key", good_secret),  # the wrong daemon key
            None)]  # no Curve at all
        for thread in intruders:
            thread.start()
        with Client(endpoint, timeout_s=10, retries=0, curve=CurveClientConfig(server_public, good_secret)) as good:
            result = good.render(RenderRequest("curve", 1), small)
            np.testing.assert_allclose(result.pixels, Reference(tiny_weights).render(small), atol=1e-5)
        for thread in intruders:
            thread.join(10)
        assert len(refusals) == 3
        assert daemon.stats()["served"] == 1

    refused = _run("serve", "--bind", f"tcp://0.0.0.0:{free_port()}", "--weights", tiny_weights, "--device", "cpu")
    assert refused.returncode == 2
    line = refused.stderr.strip()
    assert "\n" not in line and "refusing to bind" in line and "nightgrade keygen" in line


def test_status_prints_the_live_daemons_counters(tiny_weights):
    with running_daemon(tiny_weights) as daemon, Client(daemon.endpoint, timeout_s=10, retries=0) as client:
        client.render(RenderRequest("status", 1), labelled_frame(31))
        shown = _run("status", "--server", daemon.endpoint, "--timeout", "10")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert daemon.endpoint in text and "queue 0/64" in text and "served 1, errors 0" in text
    assert "generator passes 1" in text and "models tiny" in text and "on cpu" in text


# --- cancel, deadline, full queue -------------------------------------------------------------------
