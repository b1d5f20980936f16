"""`nightgrade enhance --ray [ADDRESS]`: render a sequence in chunks on a Ray cluster.

The driver (the machine that runs the command) only plans: it checks every input header and
the output path as a local render does (``render.plan_sequence``) and cuts the frame range into
chunks of contiguous frames (:func:`plan_chunks`). Pixels are the workers' business, and so is
finding the outputs already complete (``farm_resume``): each chunk checks its own, so resuming
a long job decodes its finished frames on every node at once, not all of them on the driver.

- **Workers** are Ray actors, one per GPU of the cluster (``num_gpus=1``, so Ray pins each to its
  own device), or one per CPU slot of ``cpus_per_worker`` CPUs when the cluster has no GPU or
  ``--device cpu`` is given. A GPU worker also takes the cluster's CPUs per GPU: motion
  estimation, the temporal average and EXR coding run on the CPU (docs/farm.md). A worker runs
  as many torch and OpenCV threads as it holds CPUs. Each loads the model once, in its
  constructor, and keeps it for every chunk it renders: the model load is paid once per worker,
  not once per chunk.
- **A chunk** is an ordinary local render of its frame range (``render_sequence`` or
  ``render_temporal`` with ``--frames FIRST-LAST``), so its pixels are those of a local render:
  a temporal chunk reads its own handle frames (``temporal_render`` module doc). With
  ``--cache-dir`` on storage every node mounts, chunks share enhanced frames through the disk
  tier of the frame cache, so handles computed by one chunk are read, not recomputed, by the next.
- **Dispatch** is pull-based: a worker gets the next chunk (in frame order) when it finishes one,
  so fast and slow nodes stay busy. In the first round chunk ``k`` goes to worker ``k``.
- **Failures**: a worker that dies (killed, out of memory, node lost) is restarted by Ray
  (``max_restarts``) and gets work again once it answers; its chunk is queued again at the
  front, up to ``retries`` times per chunk, for whichever worker is free first. The rerun skips
  the frames the dead worker had finished, because renders resume. A killed writer can leave a
  hidden temp file (``.name.PID-XXXX.tmp.exr``) beside the outputs: never read, safe to delete
  once no render runs. A NightGrade error in
  a chunk (a corrupt input frame) is not retried: it would fail again; it stops the job with
  that error's message and exit code.

Every path is made absolute before it is sent (``farm_paths``): inputs, outputs, weights and the
cache folder must be at the same paths on every node; ``docs/farm.md`` covers setting a cluster up.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nightgrade.colorpipeline import errors
from nightgrade.colorpipeline.errors import NightGradeError, ServiceError, UsageError, setting
from nightgrade.server.farm.paths import absolute_path, absolute_render_paths
from nightgrade.server.farm.progress import FarmProgress
from nightgrade.server.render.pipeline import RenderOptions, plan_sequence
from nightgrade.server.render.temporal import TemporalRenderConfig

START_TIMEOUT_S = 600.0  # workers import torch and load the model; a cold node on network storage is slow


@dataclass(frozen=True)
class RayConfig:
    """``address``: a running cluster (``head:6379``, ``ray://head:10001``, ``auto``); None uses
    ``$RAY_ADDRESS`` or starts a local instance with ``num_cpus`` CPUs (None: all). ``workers``:
    None for one per GPU, else one per CPU slot of ``cpus_per_worker`` (None: 1 CPU per CPU worker,
    the cluster's CPUs per GPU for a GPU worker). ``retries``: reruns of a chunk whose worker
    died, and restarts of each worker."""

    address: str | None = None
    chunk_size: int = 10
    workers: int | None = None
    cpus_per_worker: int | None = None
    retries: int = 3
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        for name, least in (("chunk_size", 1), ("workers", 1), ("cpus_per_worker", 1), ("retries", 0),
                            ("num_cpus", 1)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                field = "ray_workers" if name == "workers" else name
                raise UsageError(f"{setting(field)} {value!r} must be a whole number >= {least}")


def plan_chunks(frames: Sequence[int], size: int) -> tuple[tuple[int, int], ...]:
    """(first, last) of each chunk: the contiguous runs of ``frames``, cut into pieces of at most
    ``size`` frames (a frame already complete splits a run, so no chunk renders it again)."""
    chunks: list[tuple[int, int]] = []
    ordered = sorted(set(frames))
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            run = ordered[start:i]
            chunks += [(run[j], run[min(j + size, len(run)) - 1]) for j in range(0, len(run), size)]
            start = i
    return tuple(chunks)


class RenderWorker:
    """A worker's state: the model, loaded once. Ray makes it an actor (:func:`start_pool`)."""

    def __init__(self, opts: RenderOptions, temporal: TemporalRenderConfig | None, threads: int) -> None:
        import cv2
        import torch

        from nightgrade.server.render.pipeline import load_engine

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        started = time.perf_counter()
        self._opts, self._temporal = opts, temporal
        self._engine = load_engine(opts)
        self._load_seconds = time.perf_counter() - started

    def pid(self) -> int:
        return os.getpid()

    def render(self, first: int, last: int) -> dict[str, Any]:
        """Render frames ``first``-``last``: the local render's summary, or ``{"error": ...}``."""
        from nightgrade.server.render.pipeline import render_sequence
        from nightgrade.server.render.temporal import render_temporal

        opts = dataclasses.replace(self._opts, frames=f"{first}-{last}")
        cpu = time.process_time()
        try:
            if self._temporal is None:
                summary = render_sequence(opts, show_progress=False, engine=self._engine)
            else:
                summary = render_temporal(opts, self._temporal, show_progress=False, engine=self._engine)
        except NightGradeError as err:  # sent back by name: the driver raises the same class
            return {"error": type(err).__name__, "message": err.args[0] if err.args else str(err)}  # settings marked
        return summary | {"worker": {"pid": os.getpid(), "host": os.uname().nodename,
                                     "model_load_seconds": round(self._load_seconds, 3),
                                     "cpu_seconds": round(time.process_time() - cpu, 3)}}


@dataclass(frozen=True)
class WorkerPool:
    """The actors of a job and what each holds (``resources``: Ray's per-actor request)."""

    actors: tuple[Any, ...]
    device: str
    resources: dict[str, float]

    def pids(self, timeout_s: float = START_TIMEOUT_S) -> list[int]:
        """The process id of each actor, once all have loaded their models; ServiceError when
        they have not within ``timeout_s`` (the cluster cannot place them, or a node hangs)."""
        import ray

        try:
            return ray.get([actor.pid.remote() for actor in self.actors], timeout=timeout_s)
        except ray.exceptions.GetTimeoutError as err:
            raise ServiceError(f"the Ray workers did not start within {timeout_s:.0f} s; check `ray status` for "
                               "free GPUs/CPUs and the workers' logs") from err


def start_pool(opts: RenderOptions, temporal: TemporalRenderConfig | None, cfg: RayConfig,
               most: int | None = None) -> WorkerPool:
    """Start the actors on the connected cluster: one per GPU, or per CPU slot (module doc), at
    most ``most`` (no more workers than chunks)."""
    import ray

    total = ray.cluster_resources()
    gpus, cpus = int(total.get("GPU", 0)), int(total.get("CPU", 0))
    on_gpu = gpus > 0 and opts.device != "cpu"
    if not on_gpu and opts.device.startswith("cuda"):
        raise UsageError(f"{setting('device')} {opts.device} but the Ray cluster has no GPU; use {setting('device')} cpu or auto")
    per_worker = cfg.cpus_per_worker or (_cpus_per_gpu(ray) if on_gpu else 1)
    slots = min(gpus, cpus // per_worker) if on_gpu else cpus // per_worker
    count = cfg.workers if cfg.workers is not None else slots
    if count > slots or slots == 0:
        what = f"{gpus} GPU(s), {cpus} CPU(s)" if on_gpu else f"{cpus} CPU(s)"
        raise UsageError(f"{setting('ray_workers')} {count} needs more than the cluster has ({what}, {per_worker} CPU(s) per "
                         f"worker); ask for at most {slots}")
    count = min(count, most) if most is not None else count
    resources = {"num_cpus": float(per_worker), "num_gpus": 1.0 if on_gpu else 0.0}
    device = "cuda" if on_gpu else "cpu"  # Ray pins the actor's GPU: it is cuda:0 inside the actor
    worker_opts = dataclasses.replace(opts, device=device)
    actor = ray.remote(RenderWorker).options(max_restarts=cfg.retries, max_task_retries=0, **resources)
    actors = tuple(actor.remote(worker_opts, temporal, per_worker) for _ in range(count))
    return WorkerPool(actors, device, resources)


def _cpus_per_gpu(ray: Any) -> int:
    """CPUs a GPU worker can take on every GPU node: the fewest CPUs per GPU among them."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("GPU", 0) > 0]
    return max(1, min(int(r.get("CPU", 0) // r["GPU"]) for r in nodes))


def run_chunks(pool: WorkerPool, chunks: Sequence[tuple[int, int]], cfg: RayConfig,
               progress: FarmProgress) -> tuple[list[dict[str, Any]], int]:
    """Render ``chunks`` on the pool's workers (dispatch and failures: module doc); the chunk
    summaries in completion order and the number of chunk reruns.

    A worker whose chunk failed gets no work until it answers a probe (``pid``): Ray is
    restarting it, and a chunk sent meanwhile would fail at once and waste an attempt. A probe
    that finds the worker dead for good (its restarts used up) drops it from the pool."""
    import ray

    retryable = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                 ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError)
    queue, idle = deque(chunks), deque(range(len(pool.actors)))
    busy: dict[Any, tuple[int, tuple[int, int] | None]] = {}  # a chunk, or None for a probe
    attempts: Counter[tuple[int, int]] = Counter()
    results: list[dict[str, Any]] = []
    reruns = 0
    while queue or any(chunk is not None for _, chunk in busy.values()):
        while queue and idle:
            worker, chunk = idle.popleft(), queue.popleft()
            busy[pool.actors[worker].render.remote(*chunk)] = (worker, chunk)
        if not busy:
            raise ServiceError(f"every Ray worker died and used up its {cfg.retries} restarts; {len(queue)} chunk(s) "
                               "were not rendered: check the workers' logs (memory, GPU), then rerun to resume")
        ready, _ = ray.wait(list(busy), num_returns=1, timeout=1.0)
        progress.poll(f for _, chunk in busy.values() if chunk for f in range(chunk[0], chunk[1] + 1))
        for ref in ready:
            worker, chunk = busy.pop(ref)
            try:
                result = ray.get(ref)
            except retryable as err:
                if chunk is None and isinstance(err, ray.exceptions.ActorDiedError):
                    continue  # dead for good
                if chunk is not None:
                    attempts[chunk] += 1
                    if attempts[chunk] > cfg.retries:
                        raise ServiceError(f"chunk {chunk[0]}-{chunk[1]} failed {attempts[chunk]} times, its worker "
                                           f"died each time ({type(err).__name__}); check the workers' logs "
                                           "(memory, GPU), then rerun to resume") from err
                    logging.getLogger(__name__).warning("worker %d died on chunk %d-%d (%s); queued again",
                                                        worker, *chunk, type(err).__name__)
                    queue.appendleft(chunk)
                    reruns += 1
                else:
                    time.sleep(0.2)  # still restarting: do not spin on probes
                busy[pool.actors[worker].pid.remote()] = (worker, None)
                continue
            if chunk is None:
                idle.append(worker)  # the probe answered: restarted, model loaded
                continue
            if "error" in result:
                error_class = getattr(errors, result["error"], NightGradeError)
                raise error_class(f"chunk {chunk[0]}-{chunk[1]}: {result['message']}")
            results.append(result)
            idle.append(worker)
            progress.chunk_done(*chunk)
    return results, reruns


def render_on_ray(opts: RenderOptions, cfg: RayConfig = RayConfig(), temporal: TemporalRenderConfig | None = None,
                  show_progress: bool = True) -> dict[str, Any]:
    """Render ``opts`` (temporal when ``temporal`` is given) on a Ray cluster; the local render's
    JSON summary with a ``ray`` section (workers, chunks, reruns, per-chunk and model-load times)."""
    started = time.perf_counter()
    opts = absolute_render_paths(opts)
    if temporal is not None and temporal.cache_dir is not None:
        temporal = dataclasses.replace(temporal, cache_dir=absolute_path(temporal.cache_dir))
    # headers and paths only: each worker checks its own chunk's outputs (module doc)
    plan = plan_sequence(dataclasses.replace(opts, overwrite=True))
    outputs = dict(zip(plan.output_frames, plan.outputs))
    chunks = plan_chunks(list(outputs), cfg.chunk_size)
    ray = _import_ray()
    started_ray = _connect(ray, cfg)
    pool = None
    try:
        pool = start_pool(opts, temporal, cfg, most=len(chunks))
        pool.pids()  # every worker has loaded its model: what is left is rendering
        startup = time.perf_counter() - started
        with FarmProgress(outputs, len(chunks), enabled=show_progress) as progress:
            results, reruns = run_chunks(pool, chunks, cfg, progress)
        address = ray.get_runtime_context().gcs_address
    finally:
        if pool is not None:
            for actor in pool.actors:
                ray.kill(actor, no_restart=True)
        if started_ray:
            ray.shutdown()
    return _job_summary(plan.summary(time.perf_counter() - started, 0), results, {
        "address": address, "workers": len(pool.actors), "device": pool.device,
        "worker_resources": pool.resources, "chunk_size": cfg.chunk_size, "chunks": len(chunks),
        "chunk_reruns": reruns, "startup_seconds": round(startup, 3)})


def _job_summary(base: dict[str, Any], results: list[dict[str, Any]], ray_info: dict[str, Any]) -> dict[str, Any]:
    """The plan's summary with the chunks' totals, and the model/colour keys of a chunk that
    rendered (a chunk whose frames were all complete loads nothing and reports none).
    ``frames_skipped`` counts frames complete when their chunk's last attempt started."""
    written = sum(r["frames_written"] for r in results)
    seconds = base["seconds"]
    summary = base | {"frames_written": written, "frames_skipped": sum(r["frames_skipped"] for r in results),
                      "frames_per_second": round(written / seconds, 4) if seconds > 0 else 0.0}
    in_order = sorted(results, key=lambda r: r["frames"][0])
    nonfinite = [r.get("nonfinite") or {"frames": [], "nan": 0, "inf": 0} for r in in_order]
    summary |= {  # what the chunks replaced and rendered again, for the CLI's warning and note
        "nonfinite": {"frames": sorted(f for n in nonfinite for f in n["frames"]),
                      "nan": sum(n["nan"] for n in nonfinite), "inf": sum(n["inf"] for n in nonfinite)},
        "frames_rerendered": sum(r.get("frames_rerendered", 0) for r in in_order),
        "rerender_reason": next((r["rerender_reason"] for r in in_order if r.get("rerender_reason")), None)}
    rendered = [r for r in in_order if "model" in r]
    if rendered:
        kept = ("weights", "model", "batch_size", "tiles", "colorspaces", "mix", "controls", "temporal")
        summary |= {key: rendered[0][key] for key in kept if key in rendered[0]}
    if rendered and "temporal" in rendered[0]:  # the source frames the whole job read, every chunk's handles included
        reads = [r["temporal"]["source_frames"] for r in rendered]
        summary["temporal"] = rendered[0]["temporal"] | {
            "source_frames": [min(a for a, _ in reads), max(b for _, b in reads)]}
        passes = sum(r["generator_passes"] for r in rendered)
        summary |= {"generator_passes": passes, "generator_passes_per_frame": round(passes / max(written, 1), 4)}
    loads = {r["worker"]["pid"]: r["worker"]["model_load_seconds"] for r in results}
    chunk_seconds = [r["seconds"] for r in results]
    ray_info |= {"hosts": sorted({r["worker"]["host"] for r in results}),
                 "model_load_seconds": sorted(loads.values()),
                 "chunk_seconds": {"mean": round(sum(chunk_seconds) / len(chunk_seconds), 3),
                                   "max": max(chunk_seconds)},
                 "worker_cpu_seconds": round(sum(r["worker"]["cpu_seconds"] for r in results), 3)}
    return summary | {"device": ray_info["device"], "ray": ray_info}


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise UsageError(f"{setting('ray')} needs Ray: pip install 'nightgrade[ray]' here and on every node") from err
    return ray


def _connect(ray: Any, cfg: RayConfig) -> bool:
    """Connect to the cluster (or start a local one); True when this call started Ray."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if _on_loopback(cfg.address or os.environ.get("RAY_ADDRESS")):
        quiet["_node_ip_address"] = "127.0.0.1"
        _keep_ray_on_loopback(ray)
    try:
        if cfg.address:
            ray.init(address=cfg.address, **quiet)
        else:
            ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = cfg.address or os.environ.get("RAY_ADDRESS") or "a local instance"
        raise ServiceError(f"cannot start or reach Ray at {where}: {' '.join(str(err).split())[:200]}; "
                           "check the address (ray status on the head node)") from err
    return True


def _keep_ray_on_loopback(ray: Any) -> None:
    """A render on this machine must not reach out of it. Ray swaps 127.0.0.1 (even a given
    ``_node_ip_address``) for the address it routes towards the internet, unless its own switch for
    single-machine use (meant for macOS and Windows) is off: turn it off, for this process through
    the constant Ray reads and for the processes Ray starts through the environment."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = False


def _on_loopback(address: str | None) -> bool:
    """True for no address (a local instance) and for ``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT``."""
    if not address:
        return True
    host = address.partition("://")[2] if "://" in address else address
    return host.rpartition(":")[0].lower() in ("127.0.0.1", "localhost", "[::1]")
