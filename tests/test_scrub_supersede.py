"""Scrubbing (issue 17): a RENDER with ``supersede`` drops the waiting requests of its connection
and clip, so a scrub never queues stale frames; everything else is untouched."""
from __future__ import annotations

import threading
import time

import zmq

from daemon_fixtures import RawPeer, labelled_frame, render_fields, running_daemon
from nightgrade.server import protocol as P
from nightgrade.server.client import Client
from nightgrade.server.daemon.scheduler import BATCH, CANCELLED, INTERACTIVE, Job, Scheduler
from nightgrade.server.daemon.server import Daemon


def _job(rid: str, lane: str, peer: bytes = b"p", priority: str = INTERACTIVE) -> Job:
    return Job(peer=peer, request_id=rid, priority=priority, received=0.0, deadline=None, group="g", lane=lane)


def test_supersede_drops_only_waiting_jobs_of_the_same_peer_and_lane() -> None:
    s = Scheduler(4)
    s.submit(_job("running", "a"))
    assert [j.request_id for j in s.take(1, 0)] == ["running"]
    for j in (_job("a1", "a"), _job("b1", "b"), _job("a-batch", "a", priority=BATCH)):
        s.submit(j)
    s.submit(_job("other-peer", "a", peer=b"q"), supersede=True)  # another connection: nothing of p's dropped
    assert s.drain_dropped() == []
    # The queue is full (4 waiting); superseding frees the room first.
    s.submit(_job("a2", "a"), supersede=True)
    assert sorted((j.request_id, code) for j, code in s.drain_dropped()) == [("a-batch", CANCELLED),
                                                                              ("a1", CANCELLED)]
    assert [j.request_id for j in s.take(4, 0)] == ["b1", "other-peer", "a2"]
    stats = s.stats()
    assert (stats.cancelled, stats.queue, stats.in_flight) == (2, 0, 4)


def _scrub_request(rid: str, clip: str, label: int, supersede: bool = True) -> tuple[dict, list]:
    header, buffer = render_fields(rid, labelled_frame(label), priority=INTERACTIVE, supersede=supersede)
    header["clip"] = clip
    return header, [buffer]


def test_a_scrub_answers_superseded_frames_cancelled_and_renders_the_latest(tiny_weights, monkeypatch) -> None:
    gate = threading.Event()
    generate = Daemon._generate

    def gated(self, jobs, works):  # the worker holds its first job until the requests below are queued
        gate.wait(30)
        return generate(self, jobs, works)

    monkeypatch.setattr(Daemon, "_generate", gated)
    with running_daemon(tiny_weights) as daemon:
        context = zmq.Context()
        peer, other = RawPeer(context, daemon.endpoint), RawPeer(context, daemon.endpoint)
        try:
            peer.request(*_scrub_request("f1", "shot", 1))
            with Client(daemon.endpoint, timeout_s=10, retries=0) as probe:
                end = time.monotonic() + 30
                while not probe.ping()["busy"]:
                    assert time.monotonic() < end, "the worker never took the first frame"
                    time.sleep(0.01)
            peer.request(*_scrub_request("f2", "shot", 2))
            peer.request(*_scrub_request("g1", "other-shot", 3))
            peer.request(*_scrub_request("f3", "shot", 4))  # the playhead moved on: f2 is stale
            other.request(*_scrub_request("h1", "shot", 5))  # another connection's scrub of the same clip
            peer.request(*_scrub_request("f4", "shot", 6, supersede=False))  # a plain request drops nothing
            time.sleep(0.2)
            gate.set()
            replies = {m.id: m for m in peer.collect(5, 60.0)}
            other_reply = other.collect(1, 60.0)[0]
            assert peer.receive(0.3) is None
        finally:
            gate.set()
            peer.close()
            other.close()
            context.term()
        stats = daemon.stats()
    assert replies["f2"].type == P.ERROR and replies["f2"].header["code"] == P.CANCELLED_CODE
    assert "supersede" in replies["f2"].header["message"]
    assert all(replies[rid].type == P.RESULT for rid in ("f1", "g1", "f3", "f4")) and other_reply.type == P.RESULT
    assert (stats["cancelled"], stats["served"], stats["queue"], stats["in_flight"]) == (1, 5, 0, 0)
