"""Run a loaded generator over tile batches and frames (paper Sec. 3.3, inference side).

The engine owns device, precision and batch-size choices; tiling and merging live in
``nightgrade.colorpipeline.tiling.plan`` / ``tile_merge``. Working-space values in [0, 1] map to the
network's [-1, 1] (CycleGAN's convention, tanh output) and back.

Defaults follow measurements on the CPU machines we ship to (field notes): bf16 autocast is
about 7x slower and channels_last about 10% slower there, so both are CUDA-only by default.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from nightgrade.colorpipeline.errors import UsageError, setting
from nightgrade.models.activation_memory import peak_live_elements
from nightgrade.models.backends import BACKENDS, tile_forward
from nightgrade.models.checkpoint import CheckpointMeta, load_checkpoint
from nightgrade.models.exposure import apply_gains, normalise_exposure
from nightgrade.models.networks import Generator, GeneratorConfig

if TYPE_CHECKING:
    from nightgrade.colorpipeline.tiling.plan import TileConfig

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_CPU_BUDGET_MB = 2048
MAX_BATCH = 64
# CUDA: leave room for the caching allocator, cuDNN workspaces and other processes.
_CUDA_FREE_FRACTION = 0.8
# Measured on CPU (peak RSS growth per extra tile, batch 1 vs 5, tile 256, torch 2.13, 2026-12-04):
# 5.9x the live-tensor peak of models/activation_memory.py for the paper's generator and 5.8x for the
# shipped one, from oneDNN's reordered copies of conv inputs/outputs and allocator slack.
_BACKEND_OVERHEAD = 6.0


@dataclass(frozen=True)
class EngineConfig:
    """How to run the generator. ``None`` means "choose for the device" (see module docstring).

    device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    batch_size: tiles per forward pass; None derives it from the memory budget.
    memory_budget_mb: activation memory for a batch; None means 2 GiB on CPU and 80% of the
        free GPU memory on CUDA (a given budget is still capped by the free GPU memory).
    precision: ``fp32``, ``bf16``, ``fp16`` (autocast) or ``auto`` (bf16/fp16 on CUDA, fp32 on CPU).
    channels_last: None means on for CUDA, off for CPU.
    compile: wrap the generator in ``torch.compile`` (slow first batch, faster afterwards).
    backend: what runs the tile batches, one of ``models.backends.BACKENDS`` (``auto``: the fastest
        installed, see there); ``compile=True`` is the same as ``backend="compile"``.
    """

    device: str = "auto"
    batch_size: int | None = None
    memory_budget_mb: int | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    backend: str = "torch"

    def __post_init__(self) -> None:
        if not isinstance(self.device, str):
            raise UsageError(f"device must be a string such as auto, cpu or cuda:0, got {self.device!r}")
        for name in ("batch_size", "memory_budget_mb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be a positive integer or unset, got {value!r}")
        if self.precision not in (*PRECISIONS, "auto"):
            raise UsageError(f"unknown precision {self.precision!r}: use auto, fp32, bf16 or fp16")
        if self.channels_last not in (None, True, False) or self.compile not in (True, False):
            raise UsageError("channels_last must be true, false or unset and compile true or false")
        if self.backend not in BACKENDS:
            raise UsageError(f"unknown inference backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if self.compile and self.backend not in ("auto", "torch", "compile"):
            raise UsageError(f"compile and the {self.backend} backend each choose what runs the generator: pick one")

    @property
    def backend_name(self) -> str:
        return "compile" if self.compile else self.backend


def resolve_device(spec: str) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a concrete device; UsageError when it is not there."""
    name = spec.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise UsageError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for but CUDA is not available to torch {torch.__version__}: "
                         f"use {setting('device')} cpu (or auto)")
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    if index >= count:
        raise UsageError(f"device {spec!r} does not exist: {count} CUDA device(s) visible, "
                         f"use cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Autocast dtype for ``precision`` on ``device`` (float32 means no autocast)."""
    if precision != "auto":
        return PRECISIONS[precision]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def activation_bytes_per_tile(cfg: GeneratorConfig, side: int) -> int:
    """Estimated peak activation memory of one ``side`` x ``side`` tile, in bytes.

    Counted at 4 bytes/element even under autocast, because instance norm runs in float32 there.
    """
    return int(peak_live_elements(cfg, side) * 4 * _BACKEND_OVERHEAD)


def batch_size_for_budget(cfg: GeneratorConfig, side: int, budget_bytes: int, max_batch: int = MAX_BATCH) -> int:
    """Tiles per batch that fit ``budget_bytes``: at least 1, at most ``max_batch``."""
    return max(1, min(max_batch, budget_bytes // activation_bytes_per_tile(cfg, side)))


def memory_budget_bytes(device: torch.device, budget_mb: int | None) -> int:
    """Activation budget: the configured one (capped by free GPU memory on CUDA), else the default."""
    configured = None if budget_mb is None else budget_mb * 2**20
    if device.type != "cuda":
        return configured if configured is not None else DEFAULT_CPU_BUDGET_MB * 2**20
    free, _total = torch.cuda.mem_get_info(device)
    # memory cached by torch's allocator is reusable by us but not "free" to the driver
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    usable = int(free * _CUDA_FREE_FRACTION)
    return usable if configured is None else min(configured, usable)


class Engine:
    """A generator placed on a device, ready to enhance tile batches and whole frames."""

    def __init__(self, generator: Generator, tiles: TileConfig, config: EngineConfig = EngineConfig(),
                 meta: CheckpointMeta | None = None) -> None:
        self.config = config
        self.tiles = tiles
        self.meta = meta
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.channels_last = config.channels_last if config.channels_last is not None else self.device.type == "cuda"
        self.generator_config: GeneratorConfig = generator.config
        generator = generator.to(self.device).eval()
        if self.channels_last:
            generator = generator.to(memory_format=torch.channels_last)
        self.generator = generator
        self.backend, self._forward = tile_forward(config.backend_name, generator, self.device)
        self._batch_sizes: dict[int, int] = {}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], config: EngineConfig = EngineConfig()) -> Engine:
        """Load and validate a checkpoint (ModelError if bad) and place it per ``config``."""
        device = resolve_device(config.device)
        loaded = load_checkpoint(path, device=device)
        return cls(loaded.generator, loaded.meta.tiles, config, meta=loaded.meta)

    @property
    def size_multiple(self) -> int:
        return self.generator_config.size_multiple

    def batch_size_for(self, side: int) -> int:
        """Tiles per forward pass for ``side`` x ``side`` tiles (config value, else from the budget).

        Memoised per side: on CUDA the free memory shrinks once torch caches our own batches.
        """
        if self.config.batch_size is not None:
            return self.config.batch_size
        if side not in self._batch_sizes:
            budget = memory_budget_bytes(self.device, self.config.memory_budget_mb)
            self._batch_sizes[side] = batch_size_for_budget(self.generator_config, side, budget)
        return self._batch_sizes[side]

    @property
    def batch_size(self) -> int:
        """Batch size for the checkpoint's own tile size."""
        return self.batch_size_for(self.tiles.local)

    def _check_batch(self, batch: np.ndarray) -> None:
        cin = self.generator_config.in_channels
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] < cin:
            shape = getattr(batch, "shape", type(batch).__name__)
            raise UsageError(f"tile batch has shape {shape}, expected (B, {max(cin, 6)}, N, N) float32")
        h, w = batch.shape[2:]
        m, smallest = self.size_multiple, self.generator_config.min_size
        if h % m or w % m or min(h, w) < smallest:
            raise UsageError(f"tile size {w}x{h} does not suit this model: use a tile size that is a multiple "
                             f"of {m} and at least {smallest} pixels")

    def run_batch(self, batch: np.ndarray) -> np.ndarray:
        """(B, C, N, N) float32 in [0, 1] -> (B, out_channels, N, N) float32 in [0, 1].

        Only the first ``in_channels`` channels are used (a 3-channel baseline sees the local
        RGB only). Larger batches are split by ``batch_size_for``; instance norm is per sample,
        so the split does not change results.
        """
        self._check_batch(batch)
        n, (h, w) = batch.shape[0], batch.shape[2:]
        cin = self.generator_config.in_channels
        out = np.empty((n, self.generator_config.out_channels, h, w), dtype=np.float32)
        step = self.batch_size_for(max(h, w))
        for start in range(0, n, step):
            stop = min(n, start + step)
            chunk = np.ascontiguousarray(batch[start:stop, :cin], dtype=np.float32)
            if self.backend == "compile" and stop - start < step:
                # pad the last chunk: a new batch size would trigger a recompile
                chunk = np.concatenate([chunk, np.zeros((step - (stop - start), *chunk.shape[1:]), np.float32)])
            out[start:stop] = self._forward_numpy(chunk)[: stop - start]
        return out

    def _forward_numpy(self, chunk: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            # out of place: on CPU the tensor shares memory with the caller's array
            x = torch.from_numpy(chunk).to(self.device, non_blocking=True) * 2.0 - 1.0
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=self.device.type, dtype=self.dtype,
                                enabled=self.dtype != torch.float32):
                y = self._forward(x)
            y = y.float().add_(1.0).mul_(0.5).clamp_(0.0, 1.0)
            return y.cpu().numpy()

    def prepare_frame(self, frame_hwc: np.ndarray, exposure_stops: float = 0.0) -> np.ndarray:
        """The frame-level step before tiling: a model with an exposure branch brightens the whole
        frame once (``models/exposure.py``), so that every tile sees the same exposure.

        ``exposure_stops`` shifts the exposure the branch chose (a user's correction); a model
        without the branch gets the plain gain. The frame comes back unchanged otherwise.
        """
        branch = getattr(self.generator, "exposure", None)
        if branch is not None:
            return normalise_exposure(branch, frame_hwc, exposure_stops)
        if exposure_stops:
            return apply_gains(frame_hwc, np.full(3, exposure_stops, dtype=np.float32))
        return frame_hwc

    def enhance(self, frame_hwc: np.ndarray, tile_cfg: TileConfig | None = None,
                progress: Callable[[int, int], None] | None = None, exposure_stops: float = 0.0) -> np.ndarray:
        """Enhance one float32 H x W x 3 working-space frame by tiles (Sec. 3.1-3.3).

        ``tile_cfg`` is a ``nightgrade.colorpipeline.tiling.plan.TileConfig``; None uses the
        checkpoint's geometry. ``progress(done, total)`` is called after each batch.
        """
        from nightgrade.colorpipeline.tiling.batches import run_tiled
        from nightgrade.colorpipeline.tiling.plan import TileConfig

        cfg = tile_cfg if tile_cfg is not None else TileConfig(
            local=self.tiles.local, region=self.tiles.region, stride=self.tiles.stride)
        if not isinstance(cfg, TileConfig):
            raise TypeError(f"tile_cfg must be a TileConfig, got {type(cfg).__name__}")
        m, smallest = self.size_multiple, self.generator_config.min_size
        if cfg.local % m or cfg.local < smallest:
            raise UsageError(f"tile size {cfg.local} does not suit this model: use a multiple of {m} "
                             f"that is at least {smallest}")
        frame = self.prepare_frame(frame_hwc, exposure_stops)
        return run_tiled(frame, self.run_batch, cfg, self.batch_size_for(cfg.local), progress)
