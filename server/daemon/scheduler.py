"""The daemon's bounded render queue: priorities, deadlines, cancellation (docs/protocol.md,
"Limits and scheduling", RENDER ``priority``/``deadline_ms``, CANCEL, ERROR ``BUSY``).

The socket loop submits jobs and answers what :meth:`Scheduler.drain_dropped` reports; the worker
takes jobs (the most urgent one plus waiting jobs that can share its generator batches), asks
:meth:`Scheduler.should_stop` between batches and calls :meth:`Scheduler.finish` at the end.

Every submitted job ends in exactly one of these ways, which is what lets the daemon answer each
request exactly once:

- refused: :meth:`Scheduler.submit` raised :class:`QueueFull` (answer ERROR ``BUSY``);
- served: taken, then :meth:`Scheduler.finish` returned True (answer RESULT, or ERROR
  ``INTERNAL`` when the render failed);
- dropped: reported once by :meth:`Scheduler.drain_dropped` with ``CANCELLED`` or ``DEADLINE``,
  whether it was still waiting or already taken (then :meth:`Scheduler.finish` returns False);
- left waiting at :meth:`Scheduler.close`, which returns those jobs.

A CANCEL that :meth:`Scheduler.cancel` answers True always leads to ``CANCELLED``, even when the
render completes before the worker notices, so the CANCELLED reply never contradicts the answer.

A job submitted with ``supersede=True`` drops, as ``CANCELLED``, the jobs of the same peer and
``lane`` (the daemon's lane is the clip) that are still waiting: a colourist scrubbing a timeline
wants the frame under the playhead, not the frames it passed over. A job already running is left
to finish (its work is half done and its result lands in the frame cache).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from nightgrade.colorpipeline.errors import NightGradeError, UsageError, setting

INTERACTIVE = "interactive"
BATCH = "batch"
PRIORITIES = (INTERACTIVE, BATCH)  # most urgent first
CANCELLED = "CANCELLED"
DEADLINE = "DEADLINE"


class QueueFull(NightGradeError):
    """The queue holds ``max_queue`` waiting jobs (protocol ERROR ``BUSY``)."""

    def __init__(self, depth: int, max_queue: int) -> None:
        super().__init__(f"the render queue is full ({depth} of {max_queue} requests waiting): retry later")
        self.depth = depth
        self.max_queue = max_queue


class OverBudget(QueueFull):
    """Taking the job would pass a byte or connection budget (also answered ``BUSY``: it fits once
    other work is done)."""

    def __init__(self, message: str, depth: int, max_queue: int) -> None:
        NightGradeError.__init__(self, message)
        self.depth, self.max_queue = depth, max_queue


class DuplicateJob(UsageError):
    """The same peer already has a waiting or running job with this request id."""


class SchedulerClosed(NightGradeError):
    """The scheduler was closed (the daemon is stopping)."""


@dataclass(frozen=True, eq=False)
class Job:
    """One render request. ``received`` and ``deadline`` are readings of the scheduler's clock
    (``time.monotonic`` by default); ``group`` says which jobs may share generator batches (same
    model and tile geometry). Jobs compare by identity."""

    peer: bytes
    request_id: str
    priority: str
    received: float
    deadline: float | None
    group: Hashable
    payload: Any = field(default=None, repr=False)
    lane: Hashable = None
    size: int = 0  # bytes the job holds until it ends (its pixel buffers), for the byte budgets

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise UsageError(f"job priority {self.priority!r} is not one of {', '.join(PRIORITIES)}")

    @property
    def key(self) -> tuple[bytes, str]:
        return self.peer, self.request_id


@dataclass(frozen=True)
class SchedulerStats:
    """Counters since start (``queue`` and ``in_flight`` are the current values). ``served`` and
    ``failed`` count finished jobs that were answered by the worker; ``cancelled`` and
    ``expired`` count jobs reported by ``drain_dropped``."""

    submitted: int
    busy_refusals: int
    cancelled: int
    expired: int
    served: int
    failed: int
    queue: int
    in_flight: int


class Scheduler:
    """Thread-safe bounded priority queue of render jobs (one lock; all methods are short).

    ``max_queue`` bounds the jobs waiting (taken jobs do not count). ``max_bytes``,
    ``max_peer_bytes`` and ``max_peers`` bound what waiting and running jobs hold: bytes in all,
    bytes per peer, and peers with jobs (None: no bound). ``clock`` is the monotonic clock that
    job times are read from; tests pass a fake one.
    """

    def __init__(self, max_queue: int, clock: Callable[[], float] = time.monotonic, *, max_bytes: int | None = None,
                 max_peer_bytes: int | None = None, max_peers: int | None = None) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise UsageError(f"max_queue must be a positive integer, got {max_queue!r}: use {setting('max_queue')} 1 or more")
        self.max_queue = max_queue
        self.clock = clock
        self.max_bytes, self.max_peer_bytes, self.max_peers = max_bytes, max_peer_bytes, max_peers
        self._bytes = 0
        self._peer_bytes: dict[bytes, int] = {}  # peers with outstanding jobs -> bytes they hold
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._waiting: dict[str, list[Job]] = {p: [] for p in PRIORITIES}
        self._running: set[Job] = set()
        self._flagged: set[Job] = set()  # running jobs cancelled by their peer
        self._outstanding: dict[tuple[bytes, str], Job] = {}  # waiting or running, for cancel
        self._dropped: list[tuple[Job, str]] = []
        self._closed = False
        self._counts = dict.fromkeys(("submitted", "busy_refusals", "cancelled", "expired", "served", "failed"), 0)

    # --- socket loop side ----------------------------------------------------------------

    def submit(self, job: Job, supersede: bool = False) -> None:
        """Queue ``job``. With ``supersede``, first drop (as ``CANCELLED``) the waiting jobs of the
        same peer and lane. Raises QueueFull when ``max_queue`` jobs wait, DuplicateJob when this
        peer's request id is still waiting or running, SchedulerClosed after close()."""
        with self._lock:
            if self._closed:
                raise SchedulerClosed("the daemon is stopping: send the request to another daemon or retry later")
            if job.key in self._outstanding:
                raise DuplicateJob(f"request id {job.request_id!r} is still waiting or running for this "
                                   "connection: use a new id for each outstanding request")
            if supersede:
                self._supersede(job)
            depth = self._depth()
            if depth >= self.max_queue:
                self._counts["busy_refusals"] += 1
                raise QueueFull(depth, self.max_queue)
            self._check_budgets(job, depth)
            self._hold(job.peer, job.size)
            self._counts["submitted"] += 1
            self._waiting[job.priority].append(job)
            self._outstanding[job.key] = job
            self._ready.notify()

    def cancel(self, peer: bytes, request_id: str) -> bool:
        """Cancel ``peer``'s job ``request_id``: True when this call cancelled it, waiting (dropped
        now) or running (flagged; the worker stops it between batches); either way it is answered
        CANCELLED. False when no such job waits or runs for this peer, or it was cancelled before."""
        with self._lock:
            job = self._outstanding.get((peer, request_id))
            if job is None or job in self._flagged:
                return False
            if job in self._running:
                self._flagged.add(job)
            else:
                self._waiting[job.priority].remove(job)
                self._drop(job, CANCELLED)
            return True

    def drain_dropped(self) -> list[tuple[Job, str]]:
        """Jobs to answer with ERROR ``code`` (``CANCELLED`` or ``DEADLINE``), each reported once.
        Waiting jobs whose deadline has passed are dropped first, so that they are answered even
        while the worker is busy on a long render."""
        with self._lock:
            self._expire_waiting(self.clock())
            dropped, self._dropped = self._dropped, []
            return dropped

    def close(self) -> list[Job]:
        """Stop: wake every take() (which returns [] from now on), refuse further submits, and
        return the jobs still waiting, now removed, for the caller to answer. Taken jobs can still
        be finished."""
        with self._lock:
            self._closed = True
            left = [job for p in PRIORITIES for job in self._waiting[p]]
            for job in left:
                self._release(job)
            self._waiting = {p: [] for p in PRIORITIES}
            self._ready.notify_all()
            return left

    # --- worker side ---------------------------------------------------------------------

    def take(self, max_jobs: int, timeout: float | None = None) -> list[Job]:
        """Wait up to ``timeout`` seconds (None: until close) for a job; return the most urgent
        (interactive before batch, oldest first) and up to ``max_jobs - 1`` more waiting jobs of
        its ``group``, in the same order. Expired jobs met on the way are dropped (see
        drain_dropped). Returns [] on timeout or after close()."""
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise UsageError(f"max_jobs must be a positive integer, got {max_jobs!r}")
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    return []
                self._expire_waiting(self.clock())
                head = next((q[0] for q in self._waiting.values() if q), None)
                if head is not None:
                    return self._take_group(head, max_jobs)
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return []
                self._ready.wait(left)

    def is_cancelled(self, job: Job) -> bool:
        """True once the job's peer has cancelled it while it runs."""
        with self._lock:
            return job in self._flagged

    def should_stop(self, job: Job) -> bool:
        """True when a running job should get no more batches: cancelled, or past its deadline."""
        with self._lock:
            return job in self._flagged or self._past_deadline(job, self.clock())

    def finish(self, job: Job, failed: bool = False) -> bool:
        """Mark a taken job done. True: the worker answers it (RESULT, or ERROR ``INTERNAL`` when
        ``failed``). False: it was cancelled or its deadline passed, and it is now reported by
        drain_dropped instead (its result, if any, must not be sent)."""
        with self._lock:
            if job not in self._running:
                raise UsageError(f"job {job.request_id!r} is not running: finish() each taken job exactly once")
            self._running.remove(job)
            if job in self._flagged:
                self._flagged.remove(job)
                self._drop(job, CANCELLED)
                return False
            if self._past_deadline(job, self.clock()):
                self._drop(job, DEADLINE)
                return False
            self._release(job)
            self._counts["failed" if failed else "served"] += 1
            return True

    # --- introspection -------------------------------------------------------------------

    def depth(self) -> int:
        """Jobs waiting (not yet taken)."""
        with self._lock:
            return self._depth()

    def in_flight(self) -> int:
        """Jobs taken and not yet finished."""
        with self._lock:
            return len(self._running)

    def stats(self) -> SchedulerStats:
        with self._lock:
            return SchedulerStats(**self._counts, queue=self._depth(), in_flight=len(self._running))

    # --- internals (called with the lock held) -------------------------------------------

    def _depth(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @staticmethod
    def _past_deadline(job: Job, now: float) -> bool:
        return job.deadline is not None and now >= job.deadline

    def _check_budgets(self, job: Job, depth: int) -> None:
        held = self._peer_bytes.get(job.peer)
        why = None
        if held is None and self.max_peers is not None and len(self._peer_bytes) >= self.max_peers:
            why = (f"{len(self._peer_bytes)} connections already have requests waiting or running "
                   f"(at most {self.max_peers})")
        elif self.max_peer_bytes is not None and (held or 0) + job.size > self.max_peer_bytes:
            why = f"this connection's requests already hold {held} bytes (at most {self.max_peer_bytes})"
        elif self.max_bytes is not None and self._bytes + job.size > self.max_bytes:
            why = f"waiting and running requests hold {self._bytes} bytes (at most {self.max_bytes})"
        if why is not None:
            self._counts["busy_refusals"] += 1
            raise OverBudget(f"the daemon is full: {why}; retry shortly", depth, self.max_queue)

    def _hold(self, peer: bytes, size: int) -> None:
        self._bytes += size
        self._peer_bytes[peer] = self._peer_bytes.get(peer, 0) + size

    def _release(self, job: Job) -> None:
        del self._outstanding[job.key]
        self._bytes -= job.size
        left = self._peer_bytes[job.peer] - job.size
        if left or any(key[0] == job.peer for key in self._outstanding):
            self._peer_bytes[job.peer] = left
        else:
            del self._peer_bytes[job.peer]

    def _drop(self, job: Job, code: str) -> None:
        self._release(job)
        self._dropped.append((job, code))
        self._counts["cancelled" if code == CANCELLED else "expired"] += 1

    def _supersede(self, newer: Job) -> None:
        for priority, queue in self._waiting.items():
            stale = [job for job in queue if job.peer == newer.peer and job.lane == newer.lane]
            for job in stale:
                self._drop(job, CANCELLED)
            if stale:
                self._waiting[priority] = [job for job in queue if job not in stale]

    def _expire_waiting(self, now: float) -> None:
        for priority, queue in self._waiting.items():
            if any(self._past_deadline(job, now) for job in queue):
                for job in queue:
                    if self._past_deadline(job, now):
                        self._drop(job, DEADLINE)
                self._waiting[priority] = [job for job in queue if not self._past_deadline(job, now)]

    def _take_group(self, head: Job, max_jobs: int) -> list[Job]:
        taken = [head]
        for priority in PRIORITIES:
            for job in self._waiting[priority]:
                if len(taken) == max_jobs:
                    break
                if job is not head and job.group == head.group:
                    taken.append(job)
        chosen = set(taken)
        for priority in PRIORITIES:
            self._waiting[priority] = [job for job in self._waiting[priority] if job not in chosen]
        self._running.update(taken)
        return taken
