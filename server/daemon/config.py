"""The daemon's settings (``DaemonConfig``, from `nightgrade serve`) and the counters STATS reports."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from nightgrade.colorpipeline.errors import UsageError, setting
from nightgrade.server import protocol as proto
from nightgrade.server.protocol.curve import CurveServerConfig


@dataclass(frozen=True)
class DaemonConfig:
    """``nightgrade serve`` options. ``cache_mb``: enhanced frames kept in memory; ``flow_cache_mb``:
    reverse flows kept for the temporal window; ``max_jobs``: requests whose tiles share generator
    batches (None: 8 on CUDA; 1 on a CPU, where bigger batches measured slower per tile, see
    docs/benchmarks.md "Cross-request tile batching")."""

    bind: str = proto.DEFAULT_ENDPOINT
    weights: tuple[str, ...] = ()
    device: str = "auto"
    batch: int | None = None
    backend: str = "auto"
    cache_mb: int = 4096
    cache_dir: str | None = None
    flow_cache_mb: int = 1024
    max_queue: int = 64
    max_jobs: int | None = None
    ocio_config: str | None = None
    curve: CurveServerConfig | None = None
    insecure: bool = False
    limits: proto.Limits = field(default_factory=proto.Limits)

    def __post_init__(self) -> None:
        for name in ("cache_mb", "flow_cache_mb"):
            if getattr(self, name) < 0:
                raise UsageError(f"{setting(name)} {getattr(self, name)} is negative")
        if self.max_queue < 1:
            raise UsageError(f"{setting('max_queue')} {self.max_queue} must be at least 1")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise UsageError(f"{setting('max_jobs')} {self.max_jobs} must be at least 1")


class Counters:
    """What STATS reports beyond the scheduler and the cache; updated from both threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = dict.fromkeys(("served", "errors", "generator_passes", "tiles", "batches",
                                     "cross_request_batches"), 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self.values[name] += value

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)
