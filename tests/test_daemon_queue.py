"""The daemon's queue under load (issue 11): CANCEL of waiting and running requests, deadlines and a
full queue answer every request exactly once, with the right code."""
from __future__ import annotations

import time

import numpy as np
import zmq

from nightgrade.server import protocol as P
from nightgrade.server.client import Client, RenderRequest

from daemon_fixtures import RawPeer, labelled_frame, render_fields, running_daemon


def _blocker(request_id: str, seed: int) -> tuple[dict, list[memoryview]]:
    """A frame that keeps the worker busy for a while; its tile size puts it in a batch group of its
    own, so the small requests sent after it wait in the queue."""
    pixels = np.random.default_rng(seed).random((512, 768, 3), dtype=np.float32) * 0.2
    header, buffer = render_fields(request_id, pixels, params={"tile": 128})
    return header, [buffer]


def _wait_busy(endpoint: str) -> None:
    with Client(endpoint, timeout_s=10, retries=0) as probe:
        end = time.monotonic() + 30
        while not probe.ping()["busy"]:
            assert time.monotonic() < end, "the daemon never started the blocker"
            time.sleep(0.01)


def _by_id(replies: list[P.Message]) -> dict[str, list[P.Message]]:
    found: dict[str, list[P.Message]] = {}
    for reply in replies:
        found.setdefault(reply.id, []).append(reply)
    return found


def test_cancel_drops_waiting_and_running_requests_and_answers_each_once(tiny_weights):
    with running_daemon(tiny_weights) as daemon:
        context = zmq.Context()
        peer = RawPeer(context, daemon.endpoint)
        peer.request(*_blocker("B", 1))
        header, buffer = render_fields("X", labelled_frame(41))
        peer.request(header, [buffer])
        peer.request(header, [buffer])  # the same id while X is outstanding
        for cancel_id, target in (("c1", "X"), ("c2", "X"), ("c3", "B")):
            peer.request(P.request(P.CANCEL, cancel_id, target=target))
        header, buffer = render_fields("Y", labelled_frame(42))
        peer.request(header, [buffer])
        stranger = RawPeer(context, daemon.endpoint)  # a CANCEL reaches only its own connection's requests
        stranger.request(P.request(P.CANCEL, "c4", target="X"))
        assert stranger.collect(1, 10.0)[0].header["cancelled"] is False
        stranger.close()
        replies = _by_id(peer.collect(7, 60.0))
        assert peer.receive(0.3) is None
        peer.close()
        context.term()
        stats = daemon.stats()
    assert sorted(replies) == ["B", "X", "Y", "c1", "c2", "c3"] and len(replies["X"]) == 2
    duplicate, cancelled = sorted(replies["X"], key=lambda m: m.header["code"])
    assert (duplicate.header["code"], duplicate.header["field"]) == (P.BAD_MESSAGE, "id")
    assert cancelled.header["code"] == P.CANCELLED_CODE and replies["B"][0].header["code"] == P.CANCELLED_CODE
    assert [replies[c][0].header["cancelled"] for c in ("c1", "c2", "c3")] == [True, False, True]
    assert all(replies[c][0].type == P.CANCELLED for c in ("c1", "c2", "c3"))
    assert replies["Y"][0].type == P.RESULT
    assert (stats["cancelled"], stats["served"], stats["queue"], stats["in_flight"]) == (2, 1, 0, 0)


def test_a_passed_deadline_is_answered_deadline(tiny_weights):
    with running_daemon(tiny_weights) as daemon:
        context = zmq.Context()
        peer = RawPeer(context, daemon.endpoint)
        peer.request(*_blocker("B", 2))
        for request_id, deadline_ms in (("late", 100), ("in-time", 600_000)):
            header, buffer = render_fields(request_id, labelled_frame(51), deadline_ms=deadline_ms)
            peer.request(header, [buffer])
        replies = {reply.id: reply for reply in peer.collect(3, 60.0)}
        assert peer.receive(0.3) is None
        peer.close()
        context.term()
        stats = daemon.stats()
    assert replies["late"].type == P.ERROR and replies["late"].header["code"] == P.DEADLINE
    assert replies["in-time"].type == replies["B"].type == P.RESULT
    assert stats["expired"] == 1 and stats["served"] == 2


def test_a_full_queue_answers_busy_and_every_request_once(tiny_weights):
    count = 16
    with running_daemon(tiny_weights, max_queue=1) as daemon:
        context = zmq.Context()
        peer = RawPeer(context, daemon.endpoint)
        peer.request(*_blocker("B", 3))
        _wait_busy(daemon.endpoint)  # B runs: one small request may wait, the rest find the queue full
        for i in range(count):
            header, buffer = render_fields(f"r{i}", labelled_frame(60 + i))
            peer.request(header, [buffer])
        replies = _by_id(peer.collect(count + 1, 60.0))
        assert peer.receive(0.3) is None
        with Client(daemon.endpoint, timeout_s=10, retries=0) as client:  # room again once the queue drained
            assert client.render(RenderRequest("after", 1), labelled_frame(99)).generator_passes == 1
            stats = client.stats()
        peer.close()
        context.term()
    assert sorted(replies) == sorted(["B", *(f"r{i}" for i in range(count))])
    assert all(len(answers) == 1 for answers in replies.values())
    busy = [m for [m] in replies.values() if m.type == P.ERROR and m.header["code"] == P.BUSY]
    done = [m for [m] in replies.values() if m.type == P.RESULT]
    assert len(busy) + len(done) == count + 1 and busy and len(done) >= 2
    assert all(m.header["queue"] == 1 and m.header["retry_after_ms"] > 0 for m in busy)
    assert stats["busy_refusals"] == len(busy) and stats["served"] == len(done) + 1
