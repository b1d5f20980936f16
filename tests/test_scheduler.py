"""The daemon's render queue: priorities, groups, deadlines, cancellation, exactly-once outcomes."""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.server.daemon.scheduler import (BATCH, CANCELLED, DEADLINE, INTERACTIVE, DuplicateJob, Job, QueueFull,
                                                Scheduler, SchedulerClosed)


class FakeClock:
    """A thread-safe monotonic clock moved by hand."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def job(rid: str, priority: str = BATCH, group: object = "g", peer: bytes = b"p", deadline: float | None = None,
        received: float = 1000.0, payload: object = None) -> Job:
    return Job(peer=peer, request_id=rid, priority=priority, received=received, deadline=deadline, group=group,
               payload=payload)


def ids(jobs: list[Job]) -> list[str]:
    return [j.request_id for j in jobs]


# --- ordering and grouping -----------------------------------------------------------------


def test_interactive_before_batch_and_fifo_within_a_class() -> None:
    s = Scheduler(10)
    for j in (job("b1"), job("i1", INTERACTIVE), job("b2"), job("i2", INTERACTIVE)):
        s.submit(j)
    assert [ids(s.take(1, 0)) for _ in range(4)] == [["i1"], ["i2"], ["b1"], ["b2"]]
    assert s.take(1, 0) == []


def test_take_adds_waiting_jobs_of_the_same_group_only() -> None:
    s = Scheduler(10)
    for j in (job("b1", group="a"), job("b2", group="b"), job("i1", INTERACTIVE, group="b"),
              job("b3", group="b"), job("i2", INTERACTIVE, group="a"), job("b4", group="b")):
        s.submit(j)
    first = s.take(3, 0)
    assert ids(first) == ["i1", "b2", "b3"]  # the most urgent job, then its group in priority order
    assert s.depth() == 3 and s.in_flight() == 3
    assert ids(s.take(10, 0)) == ["i2", "b1"]
    assert ids(s.take(10, 0)) == ["b4"]


def test_take_blocks_until_a_job_arrives_or_the_timeout() -> None:
    s = Scheduler(4)
    assert s.take(2, timeout=0.01) == []
    got: list[list[Job]] = []
    worker = threading.Thread(target=lambda: got.append(s.take(2, timeout=30)))
    worker.start()
    s.submit(job("a"))
    worker.join(30)
    assert not worker.is_alive() and ids(got[0]) == ["a"]


def test_close_wakes_waiters_returns_waiting_jobs_and_refuses_more() -> None:
    s = Scheduler(4)
    got: list[list[Job]] = []
    worker = threading.Thread(target=lambda: got.append(s.take(1, timeout=None)))
    worker.start()
    time.sleep(0.05)  # let it wait (the result is the same if it has not started waiting yet)
    assert s.close() == []
    worker.join(30)
    assert not worker.is_alive() and got == [[]]
    s2 = Scheduler(4)
    s2.submit(job("a"))
    s2.submit(job("b"))
    taken = s2.take(1, 0)
    assert ids(s2.close()) == ["b"]
    assert s2.take(1, 0) == [] and s2.depth() == 0
    with pytest.raises(SchedulerClosed):
        s2.submit(job("c"))
    assert s2.finish(taken[0])  # a taken job can still be finished


# --- limits --------------------------------------------------------------------------------


def test_full_queue_refuses_with_its_depth_and_counts_it() -> None:
    s = Scheduler(2)
    s.submit(job("a"))
    s.submit(job("b"))
    with pytest.raises(QueueFull) as err:
        s.submit(job("c"))
    assert err.value.depth == 2 and err.value.max_queue == 2 and "retry" in str(err.value)
    taken = s.take(1, 0)  # running jobs do not count against the queue
    s.submit(job("c"))
    assert s.depth() == 2 and s.in_flight() == 1
    st = s.stats()
    assert (st.submitted, st.busy_refusals, st.queue, st.in_flight) == (3, 1, 2, 1)
    assert s.finish(taken[0])


def test_duplicate_request_ids_per_peer() -> None:
    s = Scheduler(4)
    s.submit(job("a", peer=b"x"))
    s.submit(job("a", peer=b"y"))  # another connection may reuse the id
    with pytest.raises(DuplicateJob):
        s.submit(job("a", peer=b"x"))
    taken = s.take(1, 0)
    with pytest.raises(DuplicateJob):  # still running
        s.submit(job("a", peer=b"x"))
    assert s.finish(taken[0])
    s.submit(job("a", peer=b"x"))  # done: the id is free again


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        Scheduler(0)
    with pytest.raises(UsageError):
        job("a", priority="urgent")
    s = Scheduler(2)
    with pytest.raises(UsageError):
        s.take(0, 0)
    with pytest.raises(UsageError):  # never taken
        s.finish(job("a"))
    s.submit(job("b"))
    (taken,) = s.take(1, 0)
    s.finish(taken)
    with pytest.raises(UsageError):  # twice
        s.finish(taken)


# --- cancel --------------------------------------------------------------------------------


def test_cancel_waiting_job_drops_it_once() -> None:
    s = Scheduler(4)
    s.submit(job("a", peer=b"x"))
    s.submit(job("b", peer=b"x"))
    assert not s.cancel(b"y", "a")  # another peer cannot cancel it
    assert not s.cancel(b"x", "zzz")
    assert s.cancel(b"x", "a")
    assert not s.cancel(b"x", "a")  # already dropped
    dropped = s.drain_dropped()
    assert [(j.request_id, code) for j, code in dropped] == [("a", CANCELLED)]
    assert s.drain_dropped() == []
    assert ids(s.take(4, 0)) == ["b"]
    assert s.stats().cancelled == 1


def test_cancel_running_job_flags_it_and_finish_drops_it() -> None:
    s = Scheduler(4)
    s.submit(job("a", peer=b"x"))
    s.submit(job("b", peer=b"x"))
    a, b = s.take(2, 0)
    assert not s.should_stop(a) and not s.is_cancelled(a)
    assert s.cancel(b"x", "a")
    assert s.is_cancelled(a) and s.should_stop(a) and not s.should_stop(b)
    assert not s.cancel(b"x", "a")  # once only
    assert s.drain_dropped() == []  # reported when the worker lets go of it
    assert not s.finish(a)  # the worker must not send its result
    assert s.finish(b)
    assert [(j.request_id, code) for j, code in s.drain_dropped()] == [("a", CANCELLED)]
    assert not s.cancel(b"x", "a") and not s.cancel(b"x", "b")  # finished: nothing to cancel
    st = s.stats()
    assert (st.cancelled, st.served, st.in_flight) == (1, 1, 0)


# --- deadlines -----------------------------------------------------------------------------


def test_expired_waiting_jobs_are_dropped_not_taken() -> None:
    clock = FakeClock()
    s = Scheduler(8, clock=clock)
    s.submit(job("soon", INTERACTIVE, deadline=clock() + 1.0))
    s.submit(job("late", deadline=clock() + 10.0))
    s.submit(job("never"))
    clock.advance(1.0)  # a deadline is passed once the clock reaches it
    assert ids(s.take(1, 0)) == ["late"]
    clock.advance(20.0)
    assert ids(s.take(5, 0)) == ["never"]
    assert [(j.request_id, code) for j, code in s.drain_dropped()] == [("soon", DEADLINE)]
    assert s.stats().expired == 1


def test_drain_expires_waiting_jobs_while_the_worker_is_busy() -> None:
    clock = FakeClock()
    s = Scheduler(8, clock=clock)
    s.submit(job("a", deadline=clock() + 5))
    assert s.drain_dropped() == []
    clock.advance(5.5)
    assert [(j.request_id, code) for j, code in s.drain_dropped()] == [("a", DEADLINE)]
    assert s.depth() == 0 and s.take(1, 0) == []


def test_running_job_past_its_deadline_stops_and_is_dropped() -> None:
    clock = FakeClock()
    s = Scheduler(8, clock=clock)
    s.submit(job("a", deadline=clock() + 2))
    s.submit(job("b", deadline=clock() + 2))
    a, b = s.take(2, 0)
    assert not s.should_stop(a)
    clock.advance(1)
    assert s.finish(b)  # finished in time
    clock.advance(1)
    assert s.should_stop(a) and not s.is_cancelled(a)
    assert not s.finish(a)
    assert [(j.request_id, code) for j, code in s.drain_dropped()] == [("a", DEADLINE)]


def test_cancel_wins_over_deadline_for_a_running_job() -> None:
    clock = FakeClock()
    s = Scheduler(8, clock=clock)
    s.submit(job("a", deadline=clock() + 1))
    (a,) = s.take(1, 0)
    clock.advance(2)
    assert s.cancel(b"p", "a")  # the client was told "cancelled": it must get CANCELLED
    assert not s.finish(a)
    assert [code for _, code in s.drain_dropped()] == [CANCELLED]


def test_failed_jobs_are_answered_by_the_worker() -> None:
    s = Scheduler(2)
    s.submit(job("a"))
    (a,) = s.take(1, 0)
    assert s.finish(a, failed=True)
    st = s.stats()
    assert (st.failed, st.served) == (1, 0)


# --- exactly once under concurrency --------------------------------------------------------


def test_every_job_ends_exactly_once_under_concurrent_use() -> None:
    clock = FakeClock()
    s = Scheduler(16, clock=clock)
    rng_seed = 1234
    n_submitters, per_submitter = 4, 150
    outcomes: Counter[tuple[bytes, str]] = Counter()
    outcome_kinds: dict[tuple[bytes, str], list[str]] = {}
    cancel_true: set[tuple[bytes, str]] = set()
    lock = threading.Lock()
    groups_ok = [True]

    def record(key: tuple[bytes, str], kind: str) -> None:
        with lock:
            outcomes[key] += 1
            outcome_kinds.setdefault(key, []).append(kind)

    def submitter(n: int) -> None:
        rng = random.Random(rng_seed + n)
        peer = f"peer{n}".encode()
        for i in range(per_submitter):
            # some deadlines pass before the job can be taken, some while it runs
            deadline = clock() + rng.choice((0.0, 0.02, 0.1, 1.0)) if rng.random() < 0.4 else None
            j = job(f"r{i}", rng.choice((INTERACTIVE, BATCH)), group=rng.choice("abc"), peer=peer, deadline=deadline)
            try:
                s.submit(j)
            except QueueFull:
                record(j.key, "busy")
            if rng.random() < 0.3:
                target = f"r{rng.randrange(i + 1)}"
                # half the time a wrong peer tries: it must never succeed
                wrong = rng.random() < 0.5
                ok = s.cancel(b"intruder" if wrong else peer, target)
                assert not (wrong and ok)
                if ok:
                    with lock:
                        assert (peer, target) not in cancel_true
                        cancel_true.add((peer, target))
            if rng.random() < 0.5:
                time.sleep(0.0005)

    def worker(n: int) -> None:
        rng = random.Random(rng_seed - n)
        while True:
            taken = s.take(rng.randint(1, 4), timeout=0.05)
            if not taken:
                if stop.is_set():
                    return
                continue
            if len({j.group for j in taken}) != 1:
                groups_ok[0] = False
            for _ in range(rng.randint(0, 3)):  # "batches"
                if all(s.should_stop(j) for j in taken):
                    break
                time.sleep(0.001)
            for j in taken:
                if s.finish(j, failed=rng.random() < 0.05):
                    record(j.key, "finished")

    def drainer() -> None:
        while not stop.is_set() or s.depth() or s.in_flight():
            for j, code in s.drain_dropped():
                record(j.key, code)
            clock.advance(0.01)
            time.sleep(0.001)

    stop = threading.Event()
    workers = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    submitters = [threading.Thread(target=submitter, args=(n,)) for n in range(n_submitters)]
    drain = threading.Thread(target=drainer)
    for t in (*workers, *submitters, drain):
        t.start()
    for t in submitters:
        t.join(60)
    stop.set()
    for t in (*workers, drain):
        t.join(60)
    assert not any(t.is_alive() for t in (*workers, *submitters, drain))
    assert s.close() == []
    for j, code in s.drain_dropped():
        record(j.key, code)

    every = {(f"peer{n}".encode(), f"r{i}") for n in range(n_submitters) for i in range(per_submitter)}
    assert set(outcomes) == every
    assert all(count == 1 for count in outcomes.values()), [k for k, c in outcomes.items() if c != 1][:5]
    kinds = Counter(kind for ks in outcome_kinds.values() for kind in ks)
    # a True cancel always ends in CANCELLED, and nothing else does
    assert {k for k, ks in outcome_kinds.items() if ks == [CANCELLED]} == cancel_true
    st = s.stats()
    assert st.busy_refusals == kinds["busy"] and st.submitted == len(every) - kinds["busy"]
    assert st.served + st.failed == kinds["finished"]
    assert st.cancelled == kinds[CANCELLED] and st.expired == kinds[DEADLINE]
    assert st.queue == 0 and st.in_flight == 0
    assert groups_ok[0]
    # the run exercised every path
    assert all(kinds[k] > 0 for k in ("busy", "finished", CANCELLED, DEADLINE)), kinds


def test_worker_pattern_with_shared_tile_batches() -> None:
    """The intended worker loop: take a group, batch its tiles together, stop cancelled jobs
    between batches, finish each job, answer the rest from drain_dropped."""
    import numpy as np

    from nightgrade.colorpipeline.tiling.batches import run_tiled_many
    from nightgrade.colorpipeline.tiling.plan import TileConfig

    s = Scheduler(8)
    for rid in ("a", "b", "c"):
        frame = np.random.default_rng(len(rid)).random((40, 40, 3), dtype=np.float32)
        s.submit(job(rid, group=("model", 32, 80), payload=frame))
    jobs = s.take(8, 0)
    assert ids(jobs) == ["a", "b", "c"]
    batches = []

    def on_batch(info: object) -> None:
        batches.append(info)
        if len(batches) == 1:
            s.cancel(b"p", "b")  # arrives while the group renders

    results = run_tiled_many([j.payload for j in jobs], lambda x: x[:, :3], TileConfig(local=32, region=80), 4,
                             should_stop=lambda i: s.should_stop(jobs[i]), on_batch=on_batch)
    answered = [j.request_id for j, r in zip(jobs, results) if s.finish(j) and r is not None]
    assert answered == ["a", "c"] and results[1] is None
    assert [(j.request_id, code) for j, code in s.drain_dropped()] == [("b", CANCELLED)]
