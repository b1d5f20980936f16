"""`nightgrade serve`: the render daemon (docs/protocol.md).

Threads and sockets (a ZeroMQ socket belongs to one thread):

* the **socket loop** (the thread that calls :meth:`Daemon.serve`) owns the ROUTER socket. It
  decodes and validates every message (``protocol.decode``/``parse_request``: cheap, no pixel
  hashing), answers HELLO, PING, STATS, HAVE and CANCEL itself, queues RENDERs in the
  :class:`Scheduler` (a full queue answers BUSY at once), forwards the worker's replies and
  answers requests the scheduler dropped (CANCELLED, DEADLINE). Nothing a client sends can stop
  it: every failure becomes an ERROR reply (``INTERNAL`` for our own bugs) and a log line.
* the **worker** (one per device) takes the most urgent RENDER plus the waiting ones that share
  its model and tile geometry, checks digests and decodes buffers (``daemon_render.prepare``),
  runs the generator on every frame they miss in one stream of batches
  (``tile_batches.run_tiled_many``: tiles of different requests share batches), then smooths,
  finishes and crops each (``daemon_render.finish``). Its replies go to the socket loop through
  an inproc PUSH/PULL pair.

Log lines are ``key=value`` pairs with the request id, on stderr.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import zmq

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.temporal.motion import FlowConfig
from nightgrade.colorpipeline.temporal.window import PairFlows
from nightgrade.colorpipeline.tiling.batches import BatchInfo, run_tiled_many
from nightgrade.models.engine import EngineConfig
from nightgrade.server import package_version
from nightgrade.server import protocol as proto
from nightgrade.server.daemon.config import Counters, DaemonConfig
from nightgrade.server.daemon.models import ModelSet
from nightgrade.server.daemon.render import RenderWork, finish, needed, picture_context, prepare
from nightgrade.server.daemon.scheduler import DuplicateJob, Job, QueueFull, Scheduler
from nightgrade.server.protocol.curve import bind, check_bind, check_server, configure_server
from nightgrade.server.render.frame_cache import FrameCache

log = logging.getLogger("nightgrade.daemon")
MB = 2**20
_POLL_MS = 100
_RESULTS = "inproc://nightgrade-results-{}"


class Daemon:
    """Load models and cache at construction (errors surface before binding); :meth:`serve` runs
    until :meth:`stop` (from any thread or a signal handler)."""

    def __init__(self, cfg: DaemonConfig) -> None:
        check_bind(cfg.bind, cfg.curve, cfg.insecure)
        if cfg.curve is not None:
            check_server(cfg.curve)  # bad keys fail now, before models load or a socket exists
        self.cfg = cfg
        self.colours = color.ColorConfig(cfg.ocio_config)
        color.load_config(cfg.ocio_config)  # a bad config fails now, not on the first request
        engine_config = EngineConfig(device=cfg.device, batch_size=cfg.batch, backend=cfg.backend)
        self.models = ModelSet(cfg.weights, engine_config, self.colours)
        self.cache = FrameCache(cfg.cache_mb * MB, cfg.cache_dir)
        self.flows = PairFlows(FlowConfig(), budget_bytes=cfg.flow_cache_mb * MB)
        self.scheduler = Scheduler(cfg.max_queue, max_bytes=cfg.limits.max_queued_bytes,
                                   max_peer_bytes=cfg.limits.max_client_bytes, max_peers=cfg.limits.max_clients)
        on_gpu = self.models.models[0].engine.device.type == "cuda"
        self.max_jobs = cfg.max_jobs if cfg.max_jobs is not None else (8 if on_gpu else 1)
        self.counters = Counters()
        self.started = time.monotonic()
        self.endpoint: str | None = None
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._context = zmq.Context()

    # --- socket loop --------------------------------------------------------------------------

    def serve(self, ready: threading.Event | None = None) -> None:
        """Bind, start the worker, answer until :meth:`stop`; then close everything."""
        router = self._context.socket(zmq.ROUTER)  # closed in the finally whatever fails, or close() hangs
        results = authenticator = None
        address = _RESULTS.format(id(self))
        worker = threading.Thread(target=self._work, args=(address,), name="nightgrade-worker", daemon=True)
        try:
            router.setsockopt(zmq.LINGER, 0)
            router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # replies to vanished clients are dropped
            router.setsockopt(zmq.MAXMSGSIZE, self.cfg.limits.max_frame_bytes)
            router.setsockopt(zmq.HANDSHAKE_IVL, self.cfg.limits.handshake_ms)
            authenticator = configure_server(self._context, router, self.cfg.curve) if self.cfg.curve else None
            results = self._context.socket(zmq.PULL)
            results.bind(address)
            bind(router, self.cfg.bind)
            self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
            worker.start()
            log.info("event=listening endpoint=%s device=%s models=%s", self.endpoint, self.models.device,
                     ",".join(self.models.names()))
            if ready is not None:
                ready.set()
            poller = zmq.Poller()
            poller.register(router, zmq.POLLIN)
            poller.register(results, zmq.POLLIN)
            while not self._stop.is_set():
                events = dict(poller.poll(_POLL_MS))
                if router in events:
                    self._receive(router)
                if results in events:
                    router.send_multipart(results.recv_multipart(copy=False), copy=False)
                self._answer_dropped(router)
        finally:
            self._stop.set()
            for job in self.scheduler.close():
                self._send(router, job.peer, job.payload[2], proto.error_reply(
                    job.request_id, proto.BUSY, "the daemon is stopping; retry when it is back", retry_after_ms=5000))
            if worker.is_alive():
                worker.join(timeout=30)
            if results is not None:
                results.close(linger=0)
            router.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            log.info("event=stopped")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Release the ZeroMQ context (after :meth:`serve` has returned)."""
        self._context.term()

    def _receive(self, router: zmq.Socket) -> None:
        frames = router.recv_multipart(copy=False)
        routing, message_frames = proto.split_envelope(frames)
        # the peer's identity, then a REQ client's empty delimiter (kept and echoed) if any
        peer, envelope = routing[0].bytes, routing[1:]
        request_id = None
        try:
            message = proto.decode(message_frames)
            request_id = message.id
            self._handle(router, peer, envelope, proto.parse_request(message, self.cfg.limits))
        except proto.ProtocolError as err:
            self.counters.add(errors=1)
            log.info("event=refused id=%s code=%s message=%r", err.request_id, err.code, err.message)
            self._send(router, peer, envelope, err.reply())
        except Exception as err:  # noqa: BLE001 - the daemon never dies from a request
            self.counters.add(errors=1)
            log.exception("event=internal_error id=%s", request_id)
            self._send(router, peer, envelope, proto.error_reply(
                request_id, proto.INTERNAL, f"the daemon failed on this request: {type(err).__name__}: {err}"))

    def _handle(self, router: zmq.Socket, peer: bytes, envelope: list, req: Any) -> None:
        if isinstance(req, proto.Hello):
            version = proto.negotiate_version(req)
            self._send(router, peer, envelope, proto.reply(
                proto.WELCOME, req.id, version=version, server=f"nightgrade {package_version()}",
                models=self.models.describe(), device=self.models.device,
                limits=self.cfg.limits.as_dict() | {"max_queue": self.cfg.max_queue},
                ocio_config=color.config_source(self.cfg.ocio_config)[0], features=list(proto.FEATURES)))
        elif isinstance(req, proto.Ping):
            self._send(router, peer, envelope, proto.reply(
                proto.PONG, req.id, queue=self.scheduler.depth(), busy=self._busy.is_set(), uptime_s=self._uptime()))
        elif isinstance(req, proto.Stats):
            self._send(router, peer, envelope, proto.reply(proto.STATS, req.id, **self.stats()))
        elif isinstance(req, proto.Cancel):
            cancelled = self.scheduler.cancel(peer, req.target)
            self._send(router, peer, envelope, proto.reply(proto.CANCELLED, req.id, cancelled=cancelled))
        elif isinstance(req, proto.Have):
            ctx = picture_context(req, self.models, self.colours)
            self._send(router, peer, envelope, proto.reply(proto.NEED, req.id, need=needed(ctx, req.digests, self.cache)))
        else:
            self._submit(router, peer, envelope, req)

    def _submit(self, router: zmq.Socket, peer: bytes, envelope: list, req: proto.Render) -> None:
        ctx = picture_context(req, self.models, self.colours)
        now = time.monotonic()
        deadline = None if req.deadline_ms is None else now + req.deadline_ms / 1000.0
        job = Job(peer=peer, request_id=req.id, priority=req.priority, received=now, deadline=deadline,
                  group=(ctx.model.identity, ctx.tiles), payload=(req, ctx, envelope), lane=req.clip,
                  size=sum(len(buffer) for buffer in req.buffers))
        try:
            self.scheduler.submit(job, supersede=req.supersede)
        except DuplicateJob as err:
            raise proto.ProtocolError(proto.BAD_MESSAGE, str(err), req.id, field="id") from None
        except QueueFull as err:  # also a byte or connection budget (OverBudget)
            self.counters.add(errors=1)
            log.info("event=busy id=%s queue=%d why=%r", req.id, self.scheduler.depth(), str(err))
            self._send(router, peer, envelope, proto.error_reply(
                req.id, proto.BUSY, str(err), queue=self.scheduler.depth(), retry_after_ms=500))
            return
        log.info("event=queued id=%s clip=%r frame=%d priority=%s", req.id, req.clip, req.frame, req.priority)

    def _answer_dropped(self, router: zmq.Socket) -> None:
        for job, code in self.scheduler.drain_dropped():
            _, _, envelope = job.payload
            self.counters.add(errors=1)
            log.info("event=dropped id=%s code=%s", job.request_id, code)
            self._send(router, job.peer, envelope, _drop_reply(job, code))

    @staticmethod
    def _send(router: zmq.Socket, peer: bytes, envelope: list, header: dict, buffers: tuple = ()) -> None:
        router.send_multipart([peer, *envelope, *proto.encode(header, buffers)], copy=False)

    # --- worker -------------------------------------------------------------------------------

    def _work(self, address: str) -> None:
        out = self._context.socket(zmq.PUSH)
        out.setsockopt(zmq.LINGER, 0)
        out.connect(address)
        try:
            while not self._stop.is_set():
                jobs = self.scheduler.take(self.max_jobs, timeout=_POLL_MS / 1000.0)
                if not jobs:
                    continue
                self._busy.set()
                try:
                    self._render(jobs, out)
                except Exception as err:  # noqa: BLE001 - a dead worker would leave every later request unanswered
                    log.exception("event=worker_error jobs=%s", ",".join(job.request_id for job in jobs))
                    for job in jobs:
                        with contextlib.suppress(UsageError):  # already answered and finished
                            self._fail(job, err, out)
                finally:
                    self._busy.clear()
        finally:
            out.close(linger=0)

    def _render(self, jobs: list[Job], out: zmq.Socket) -> None:
        """Prepare every job, one generator stream for all their missing frames, finish each."""
        works: dict[int, RenderWork] = {}
        for index, job in enumerate(jobs):
            req, ctx, _ = job.payload
            try:
                works[index] = prepare(req, ctx, self.cache)
            except Exception as err:  # noqa: BLE001 - answered, never raised into the worker loop
                self._fail(job, err, out)
        try:
            self._generate(jobs, works)
        except Exception as err:  # noqa: BLE001
            for index in list(works):
                self._fail(jobs[index], err, out)
            works.clear()
        for index, work in works.items():
            job = jobs[index]
            if self.scheduler.should_stop(job):
                self.scheduler.finish(job)  # answered CANCELLED or DEADLINE by the socket loop
                continue
            try:
                header, buffer = finish(work, self.cache, self.flows)
            except Exception as err:  # noqa: BLE001
                self._fail(job, err, out)
                continue
            log.info("event=rendered id=%s frame=%d passes=%d seconds=%.3f", job.request_id, work.req.frame,
                     work.passes, header["seconds"])
            self._reply(job, out, proto.reply(proto.RESULT, job.request_id, **header), (buffer,))

    def _generate(self, jobs: list[Job], works: dict[int, RenderWork]) -> None:
        """Every frame the works miss (each once, even when several requests share it) through
        the generator in one batch stream; outputs into the cache and the works."""
        owners: dict[str, list[int]] = {}
        for index, work in works.items():
            for key in work.missing:
                owners.setdefault(key, []).append(index)
        if not owners:
            return
        keys = list(owners)
        first = works[owners[keys[0]][0]]
        frames = [works[owners[key][0]].missing[key] for key in keys]
        engine, tiles = first.ctx.model.engine, first.ctx.tiles

        def should_stop(i: int) -> bool:
            return all(self.scheduler.should_stop(jobs[j]) for j in owners[keys[i]])

        def on_batch(info: BatchInfo) -> None:
            self.counters.add(tiles=info.tiles, batches=1, cross_request_batches=int(info.cross_request))

        def on_result(i: int, output: Any) -> None:
            self.cache.put(keys[i], output)
            output.flags.writeable = False
            self.counters.add(generator_passes=1)
            for n, j in enumerate(owners[keys[i]]):
                works[j].provide(keys[i], output, counted=n == 0)

        # the frame-level exposure step (models/exposure.py) before tiling, with each frame's own correction
        frames = [engine.prepare_frame(f, works[owners[key][0]].req.params.exposure) for f, key in zip(frames, keys)]
        run_tiled_many(frames, engine.run_batch, tiles, engine.batch_size_for(tiles.local),
                       should_stop=should_stop, on_batch=on_batch, on_result=on_result)

    def _fail(self, job: Job, err: Exception, out: zmq.Socket) -> None:
        if isinstance(err, proto.ProtocolError):
            err.request_id = job.request_id
            header = err.reply()
        else:
            log.exception("event=internal_error id=%s", job.request_id)
            header = proto.error_reply(job.request_id, proto.INTERNAL,
                                       f"the render failed inside the daemon: {type(err).__name__}: {err}")
        self.counters.add(errors=1)
        self._reply(job, out, header, failed=True)

    def _reply(self, job: Job, out: zmq.Socket, header: dict, buffers: tuple = (), failed: bool = False) -> bool:
        """Answer a taken job, unless it was cancelled or expired meanwhile (then the socket loop
        answers it from ``drain_dropped``: exactly one answer either way). True when sent."""
        if not self.scheduler.finish(job, failed):
            return False  # a cancel that raced the render is answered CANCELLED instead: not served
        _, _, envelope = job.payload
        self.counters.add(served=int(header["type"] == proto.RESULT))  # before sending: a later STATS sees it
        out.send_multipart([job.peer, *envelope, *proto.encode(header, buffers)], copy=False)
        return True

    # --- observability ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The STATS reply fields of docs/protocol.md."""
        cache = self.cache.stats()
        sched = self.scheduler.stats()
        counts = self.counters.snapshot()
        return {
            "queue": self.scheduler.depth(), "max_queue": self.cfg.max_queue, "in_flight": self.scheduler.in_flight(),
            "served": counts["served"], "errors": counts["errors"], "busy_refusals": sched.busy_refusals,
            "cancelled": sched.cancelled, "expired": sched.expired,
            "generator_passes": counts["generator_passes"], "tiles": counts["tiles"], "batches": counts["batches"],
            "cross_request_batches": counts["cross_request_batches"],
            "cache": {"hits": cache.hits + cache.disk_hits, "misses": cache.misses,
                      "hit_rate": round(cache.hit_rate, 4), "bytes": cache.bytes,
                      "budget_bytes": self.cfg.cache_mb * MB, "entries": cache.items},
            "flows": {"estimates": self.flows.estimates, "reused": self.flows.hits},
            "device": self.models.device, "device_memory": _device_memory(self.models),
            "uptime_s": self._uptime(), "models": self.models.names(),
        }

    def _uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)


def _drop_reply(job: Job, code: str) -> dict:
    why = ("cancelled by the client (CANCEL, or a newer request of its clip with supersede)"
           if code == proto.CANCELLED_CODE else "its deadline passed before it was done")
    return proto.error_reply(job.request_id, code, f"request {job.request_id} was dropped: {why}")


def _device_memory(models: ModelSet) -> dict[str, int]:
    import torch

    device = models.models[0].engine.device
    if device.type != "cuda":
        return {"allocated_bytes": 0, "reserved_bytes": 0, "total_bytes": 0}
    return {"allocated_bytes": torch.cuda.memory_allocated(device), "reserved_bytes": torch.cuda.memory_reserved(device),
            "total_bytes": torch.cuda.get_device_properties(device).total_memory}
