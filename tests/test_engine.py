"""Engine: value mapping, device/precision choice, batch size from memory, batch invariance, frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import CheckpointMeta, save_checkpoint
from nightgrade.models.engine import (
    Engine,
    EngineConfig,
    activation_bytes_per_tile,
    batch_size_for_budget,
    memory_budget_bytes,
    resolve_device,
    resolve_precision,
)
from nightgrade.models.networks import Generator, GeneratorConfig, build_generator

CFG = GeneratorConfig(ngf=8, n_blocks=2)
TILES = TileConfig(local=32, region=64, stride=16)


class PassThrough(Generator):
    """A Generator whose forward returns its local RGB input: isolates the engine's value mapping."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :3]


def _engine(cfg: GeneratorConfig = CFG, **kw: object) -> Engine:
    torch.manual_seed(0)
    return Engine(build_generator(cfg), TILES, EngineConfig(device="cpu", **kw))


def _batch(n: int, side: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 6, side, side), dtype=np.float32)


def test_run_batch_shape_range_and_input_untouched() -> None:
    batch = _batch(3)
    before = batch.copy()
    out = _engine().run_batch(batch)
    assert out.shape == (3, 3, 32, 32) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.std() > 0
    assert np.array_equal(batch, before)


def test_value_mapping_is_identity_for_an_identity_network() -> None:
    engine = Engine(PassThrough(CFG), TILES, EngineConfig(device="cpu"))
    batch = _batch(2)
    assert np.allclose(engine.run_batch(batch), batch[:, :3], atol=1e-6)
    batch[0, 0, 0, :3] = [-0.5, 1.5, 0.25]  # out-of-range working values come back clamped
    assert np.allclose(engine.run_batch(batch)[0, 0, 0, :3], [0.0, 1.0, 0.25], atol=1e-6)


def test_results_do_not_depend_on_batch_size() -> None:
    batch = _batch(5)
    one = _engine(batch_size=1).run_batch(batch)
    three = _engine(batch_size=3).run_batch(batch)
    five = _engine(batch_size=5).run_batch(batch)
    assert np.allclose(one, three, atol=1e-6) and np.allclose(one, five, atol=1e-6)


def test_region_channels_matter_for_six_channel_model_only() -> None:
    batch = _batch(2)
    other = batch.copy()
    other[:, 3:] = _batch(2, seed=1)[:, 3:]
    six = _engine()
    assert not np.allclose(six.run_batch(batch), six.run_batch(other), atol=1e-4)
    three = _engine(GeneratorConfig(in_channels=3, ngf=8, n_blocks=2))
    assert np.array_equal(three.run_batch(batch), three.run_batch(other))
    assert three.run_batch(batch[:, :3]).shape == (2, 3, 32, 32)


def test_bad_batches_are_usage_errors() -> None:
    engine = _engine()
    with pytest.raises(UsageError, match="multiple of 8"):
        engine.run_batch(_batch(1, side=36))
    with pytest.raises(UsageError, match="at least 16"):
        engine.run_batch(_batch(1, side=8))
    with pytest.raises(UsageError, match="expected"):
        engine.run_batch(_batch(1)[:, :3])


def test_device_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(UsageError, match="CUDA is not available") as info:
            resolve_device(spec)
        assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UsageError, match=r"2 CUDA device\(s\) visible"):
        resolve_device("cuda:2")


def test_precision_and_layout_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_precision("auto", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", gpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", gpu) == torch.float16
    assert resolve_precision("fp32", gpu) == torch.float32
    engine = _engine()
    assert engine.dtype == torch.float32 and engine.channels_last is False
    forced = _engine(channels_last=True, precision="bf16")
    assert forced.channels_last and forced.dtype == torch.bfloat16
    out = forced.run_batch(_batch(1))
    assert out.dtype == np.float32 and np.allclose(out, engine.run_batch(_batch(1)), atol=0.05)


def test_engine_config_validation() -> None:
    with pytest.raises(UsageError, match="batch_size"):
        EngineConfig(batch_size=0)
    with pytest.raises(UsageError, match="memory_budget_mb"):
        EngineConfig(memory_budget_mb=True)
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        EngineConfig(precision="fp8")


def test_batch_size_from_budget_is_monotonic_and_at_least_one() -> None:
    cfg = GeneratorConfig()  # the paper's size: ngf 64, 9 blocks
    per_tile = activation_bytes_per_tile(cfg, 360)
    assert per_tile < activation_bytes_per_tile(cfg, 720)
    sizes = [batch_size_for_budget(cfg, 360, mb * 2**20) for mb in (1, 100, 500, 2048, 8192, 10**6)]
    assert sizes[0] == 1 and sizes[-1] == 64
    assert all(a <= b for a, b in zip(sizes, sizes[1:])) and len(set(sizes)) > 3
    assert batch_size_for_budget(cfg, 360, 5 * per_tile) == 5
    assert batch_size_for_budget(cfg, 360, 5 * per_tile - 1) == 4
    # the full-resolution encoder block of n_downsample=2 costs more memory per tile
    assert activation_bytes_per_tile(GeneratorConfig(n_downsample=2), 360) > per_tile


def test_engine_batch_size_uses_budget_unless_given() -> None:
    assert memory_budget_bytes(torch.device("cpu"), None) == 2048 * 2**20
    small, large = _engine(memory_budget_mb=1), _engine(memory_budget_mb=256)
    assert small.batch_size_for(256) == 1 < large.batch_size_for(256) < large.batch_size_for(128)
    assert large.batch_size == large.batch_size_for(TILES.local) == 64
    assert _engine(batch_size=7, memory_budget_mb=1).batch_size == 7


def test_from_checkpoint_and_enhance_frame(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, build_generator(CFG), CheckpointMeta(CFG, TILES, "tiny", "0.1"))
    engine = Engine.from_checkpoint(path, EngineConfig(device="cpu", batch_size=4))
    assert engine.meta is not None and engine.meta.tiles == TILES
    frame = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    calls: list[tuple[int, int]] = []
    out = engine.enhance(frame, progress=lambda done, total: calls.append((done, total)))
    assert out.shape == frame.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert calls and calls[-1][0] == calls[-1][1]
    with pytest.raises(UsageError, match="multiple of 8"):
        engine.enhance(frame, TileConfig(local=20, region=40))


def test_enhance_with_identity_network_returns_the_frame() -> None:
    engine = Engine(PassThrough(CFG), TILES, EngineConfig(device="cpu", batch_size=3))
    frame = np.random.default_rng(1).random((50, 70, 3), dtype=np.float32)
    assert np.allclose(engine.enhance(frame, TileConfig(local=16, region=48, stride=8)), frame, atol=1e-5)


def test_activation_peak_is_measured_from_the_network_itself() -> None:
    from nightgrade.models.activation_memory import peak_live_elements
    plain = GeneratorConfig(ngf=8, n_blocks=2, norm="none")
    skips = GeneratorConfig(ngf=8, n_blocks=2, norm="none", skips=True)
    # the largest activation alone (the first full-resolution conv output, ngf x side^2) is a lower bound
    assert peak_live_elements(plain, 64) > 8 * 64 * 64
    # U-Net skips hold encoder outputs until the decoder uses them: more live at once
    assert peak_live_elements(skips, 64) > peak_live_elements(plain, 64)
    # activations grow with the tile area
    assert 3.5 < peak_live_elements(plain, 128) / peak_live_elements(plain, 64) < 4.5
