"""Cross-request tile batching: several frames through one stream of generator batches."""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.errors import InputError, ModelError
from nightgrade.colorpipeline.tiling.batches import BatchInfo, run_tiled_many
from nightgrade.colorpipeline.tiling.batches import run_tiled
from nightgrade.colorpipeline.tiling.plan import TileConfig, plan_tiles
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.models.networks import GeneratorConfig, build_generator

CFG = TileConfig(local=32, region=80)
SIZES = [(70, 90), (20, 31), (33, 33), (1, 5), (64, 40)]  # differing sizes, one under a tile, one 1 row


def _frames(sizes: list[tuple[int, int]] = SIZES) -> list[np.ndarray]:
    return [np.random.default_rng(i).random((h, w, 3), dtype=np.float32) for i, (h, w) in enumerate(sizes)]


def _tiles(frame: np.ndarray) -> int:
    return plan_tiles(frame.shape[0], frame.shape[1], CFG).count


def _pixelwise(batch: np.ndarray) -> np.ndarray:
    """A fixed per-pixel function of all 6 channels: each output tile depends on its own input
    tile only, and the region channels matter, so misrouted tiles would show."""
    local, region = batch[:, :3], batch[:, 3:]
    return (0.6 * local + 0.3 * region[:, ::-1] + 0.1 * local * region).astype(np.float32)


class Recorder:
    """A generator wrapper that counts calls and tiles."""

    def __init__(self, generate=_pixelwise) -> None:
        self.generate = generate
        self.sizes: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32 and batch.shape[1:] == (6, CFG.local, CFG.local)
        self.sizes.append(batch.shape[0])
        return self.generate(batch)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_results_equal_separate_runs(batch_size: int) -> None:
    frames = _frames()
    merged = run_tiled_many(frames, _pixelwise, CFG, batch_size)
    assert len(merged) == len(frames)
    for frame, got in zip(frames, merged):
        alone = run_tiled(frame, _pixelwise, CFG, batch_size)
        assert got is not None and got.shape == frame.shape and got.dtype == np.float32
        assert float(np.abs(got - alone).max()) <= 1e-6


def test_batches_are_full_and_shared_between_frames() -> None:
    frames = _frames()
    total = sum(_tiles(f) for f in frames)
    gen, infos = Recorder(), []
    run_tiled_many(frames, gen, CFG, 7, on_batch=infos.append)
    assert gen.sizes == [info.tiles for info in infos]
    assert sum(gen.sizes) == total
    assert len(gen.sizes) == math.ceil(total / 7)  # every batch but the last is full
    assert all(size == 7 for size in gen.sizes[:-1])
    assert any(info.cross_request for info in infos)
    assert all(info.frames == len(set(info.frame_indices)) for info in infos)
    finished = [i for info in infos for i in info.finished]
    assert sorted(finished) == list(range(len(frames)))


def test_small_frames_need_fewer_generator_calls_together() -> None:
    frames = _frames([(40, 40)] * 6)
    per_frame = _tiles(frames[0])
    assert per_frame < 32
    together, alone = Recorder(), Recorder()
    run_tiled_many(frames, together, CFG, 32)
    for frame in frames:
        run_tiled_many([frame], alone, CFG, 32)
    assert len(alone.sizes) == len(frames)
    assert len(together.sizes) == math.ceil(len(frames) * per_frame / 32) < len(alone.sizes)


def test_frames_are_served_in_order() -> None:
    frames = _frames([(70, 90)] * 3)
    per_frame = _tiles(frames[0])
    infos: list[BatchInfo] = []
    run_tiled_many(frames, _pixelwise, CFG, 5, on_batch=infos.append)
    done_after = {i: n for n, info in enumerate(infos, 1) for i in info.finished}
    assert done_after[0] == math.ceil(per_frame / 5)  # as soon as it would be alone
    assert done_after[0] <= done_after[1] <= done_after[2]
    # a frame's tiles start only once every earlier frame has all of its tiles in a batch
    seen = [i for info in infos for i in info.frame_indices]
    assert seen == sorted(seen)


def test_stopped_frames_get_no_more_tiles_and_no_result() -> None:
    frames = _frames([(70, 90)] * 4)
    infos: list[BatchInfo] = []
    stop_after = {1: 0, 2: 3}  # frame 1 before any batch, frame 2 after 3 batches
    asked: list[int] = []

    def should_stop(i: int) -> bool:
        asked.append(i)
        return i in stop_after and len(infos) >= stop_after[i]

    merged = run_tiled_many(frames, _pixelwise, CFG, 5, should_stop=should_stop, on_batch=infos.append)
    assert merged[1] is None and merged[2] is None
    for i in (0, 3):
        assert float(np.abs(merged[i] - run_tiled(frames[i], _pixelwise, CFG, 5)).max()) <= 1e-6
    assert all(1 not in info.frame_indices for info in infos)
    assert all(2 not in info.frame_indices for info in infos[3:])
    assert 0 in asked and asked.count(1) == 1  # a stopped frame is not asked again


def test_finished_frame_keeps_its_result_when_stop_turns_true_later() -> None:
    frames = _frames([(20, 20), (70, 90)])
    infos: list[BatchInfo] = []
    merged = run_tiled_many(frames, _pixelwise, CFG, 4, on_batch=infos.append,
                            should_stop=lambda i: i == 0 and len(infos) >= 2)
    assert _tiles(frames[0]) <= 4  # frame 0 finished in the first batch, before stop turned true
    for i in (0, 1):
        assert merged[i] is not None
        assert float(np.abs(merged[i] - run_tiled(frames[i], _pixelwise, CFG, 4)).max()) <= 1e-6


def test_all_stopped_or_no_frames_never_runs_the_generator() -> None:
    gen = Recorder()
    assert run_tiled_many(_frames(), gen, CFG, 4, should_stop=lambda i: True) == [None] * len(SIZES)
    assert run_tiled_many([], gen, CFG, 4) == []
    assert gen.sizes == []


def test_on_result_reports_each_finished_frame_once() -> None:
    frames = _frames()
    reported: dict[int, np.ndarray] = {}

    def on_result(i: int, result: np.ndarray) -> None:
        assert i not in reported
        reported[i] = result

    merged = run_tiled_many(frames, _pixelwise, CFG, 6, on_result=on_result, should_stop=lambda i: i == 2)
    assert sorted(reported) == [0, 1, 3, 4]
    assert all(reported[i] is merged[i] for i in reported)


def test_bad_inputs_are_reported() -> None:
    frames = _frames()
    with pytest.raises(ValueError, match="batch size 0"):  # the engine's choice: a bug, not a user's
        run_tiled_many(frames, _pixelwise, CFG, 0)
    with pytest.raises(InputError, match="frame 1 of 3"):
        run_tiled_many([frames[0], frames[1][..., :2], frames[2]], _pixelwise, CFG, 4)
    with pytest.raises(InputError, match="float32"):
        run_tiled_many([frames[0].astype(np.float64)], _pixelwise, CFG, 4)
    with pytest.raises(ModelError):
        run_tiled_many(frames, lambda b: _pixelwise(b)[:-1], CFG, 4)
    with pytest.raises(ModelError):
        run_tiled_many(frames, lambda b: _pixelwise(b)[:, :2], CFG, 4)


def test_generator_errors_propagate_and_stop_the_run() -> None:
    calls = []

    def failing(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):
        run_tiled_many(_frames(), failing, CFG, 4)
    assert calls == [4]


def test_tiles_are_built_lazily() -> None:
    frames = _frames([(96, 96)] * 6)
    count = _tiles(frames[0])
    tile_bytes = 6 * CFG.local**2 * 4
    all_tiles = len(frames) * count * tile_bytes
    batch = 4
    tracemalloc.start()
    try:
        run_tiled_many(frames, _pixelwise, CFG, batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # results + two live accumulators (sum and weight) + a batch in and out + region bands, with slack
    frame_bytes = frames[0].nbytes
    bound = len(frames) * frame_bytes + 2 * frame_bytes * 4 // 3 + 3 * batch * tile_bytes + 2 * 80 * 96 * 3 * 4 * 2
    assert all_tiles > 2 * bound  # holding every tile at once could not pass
    assert peak < bound


@pytest.fixture
def one_torch_thread():
    # Tiny convolutions gain nothing from threads, and on a loaded machine OpenMP workers waiting
    # for a descheduled peer make them take seconds instead of milliseconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_torch_generator_through_engine_matches_enhance(one_torch_thread: None) -> None:
    torch.manual_seed(0)
    gen_cfg = GeneratorConfig(ngf=8, n_blocks=2)
    engine = Engine(build_generator(gen_cfg), TileConfig(CFG.local, CFG.region, CFG.step),
                    EngineConfig(device="cpu", batch_size=6))
    frames = _frames([(40, 56), (30, 30), (50, 20)])
    infos: list[BatchInfo] = []
    merged = run_tiled_many(frames, engine.run_batch, CFG, engine.batch_size_for(CFG.local), on_batch=infos.append)
    assert any(info.cross_request for info in infos)
    for frame, got in zip(frames, merged):
        alone = engine.enhance(frame, CFG)
        assert got is not None and float(np.abs(got - alone).max()) <= 1e-6
