"""Tile plan, 6-channel tile batches and Gaussian merge (paper Sec. 3.1, 3.3)."""
from __future__ import annotations

import inspect
import math
import tracemalloc

import cv2
import numpy as np
import pytest

from nightgrade.colorpipeline.errors import InputError, ModelError, UsageError
from nightgrade.colorpipeline.tiling.batches import run_tiled
from nightgrade.colorpipeline.tiling.merge import TileAccumulator, gaussian_window
from nightgrade.colorpipeline.tiling.plan import TileConfig, iter_tile_batches, plan_tiles, reflect_indices

SMALL = TileConfig(local=32, region=80)


def _frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def _identity(batch: np.ndarray) -> np.ndarray:
    return batch[:, :3]


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [dict(local=0), dict(local=64, region=63), dict(local=64, stride=0), dict(local=64, stride=65)]
)
def test_config_rejects_bad_geometry(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        TileConfig(**kwargs)


def test_config_default_stride_is_half_the_local_tile() -> None:
    assert TileConfig().step == 180
    assert TileConfig(local=1, region=1).step == 1
    assert TileConfig(local=64, region=64, stride=10).step == 10


def test_scaled_config_keeps_sizes_usable_by_the_generator() -> None:
    half = TileConfig().scaled(0.5, multiple=8)  # 180 is not a multiple of 8: rounded to 184
    assert (half.local, half.region, half.stride, half.step) == (184, 500, None, 92)
    tiny = TileConfig(local=360, region=1000, stride=120).scaled(0.01, multiple=4)
    assert tiny.local == 4 and tiny.region >= tiny.local and 1 <= tiny.step <= tiny.local
    for bad in (0.0, -1.0):
        with pytest.raises(UsageError):
            TileConfig().scaled(bad)


# --- plan ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 9, 17, 179, 180, 181, 359, 360, 361, 2160, 3840])
@pytest.mark.parametrize(
    "cfg", [TileConfig(), TileConfig(local=64, region=64, stride=64), TileConfig(local=33, stride=7)]
)
def test_tiles_stay_inside_the_frame_with_no_more_tiles_than_monai(size: int, cfg: TileConfig) -> None:
    origins = plan_tiles(size, 5, cfg).row_origins
    if size <= cfg.local:
        # One tile, centred, reflected past both ends (MONAI pads the frame up to one window).
        assert len(origins) == 1 and -origins[0] == (cfg.local - size) // 2
        return
    # MONAI's dense_patch_slices: windows at i * interval, the last one clamped to size - roi.
    assert len(origins) == math.ceil((size - cfg.local) / cfg.step) + 1
    assert origins[0] == 0 and origins[-1] == size - cfg.local
    steps = np.diff(origins)
    assert np.all(steps[:-1] == cfg.step) and 0 < steps[-1] <= cfg.step
    # Interior pixels (not within half a tile of an edge) sit at most stride/2 from a tile centre.
    centres = origins + cfg.local / 2
    pixels = np.arange(size) + 0.5
    inner = pixels[(pixels >= cfg.local / 2) & (pixels <= size - cfg.local / 2)]
    distance = np.abs(inner[:, None] - centres[None, :]).min(axis=1)
    assert distance.max() <= cfg.step / 2 + 0.5


def test_paper_geometry_runs_as_many_tiles_as_monai_on_a_720p_frame() -> None:
    # 1280x720 at Nl 360, stride 180: 7 x 3 windows in MONAI (the old edge-centred grid ran 8 x 4).
    assert plan_tiles(720, 1280, TileConfig()).count == 21


def test_plan_lists_tiles_row_major() -> None:
    plan = plan_tiles(100, 150, SMALL)
    assert plan.count == len(plan.row_origins) * len(plan.col_origins) == len(plan.ys) == len(plan.xs)
    assert plan.ys[0] == plan.ys[len(plan.col_origins) - 1] < plan.ys[len(plan.col_origins)]
    assert list(plan.xs[: len(plan.col_origins)]) == list(plan.col_origins)


def test_plan_rejects_an_empty_frame() -> None:
    with pytest.raises(InputError):
        plan_tiles(0, 10, SMALL)


def test_reflect_indices_match_numpy_reflect_padding() -> None:
    for size in range(1, 9):
        padded = np.pad(np.arange(size), (50, 80), mode="reflect")
        for start in range(-40, 40, 3):
            for length in (1, 4, 31):
                expected = padded[start + 50 : start + 50 + length]
                assert np.array_equal(reflect_indices(start, length, size), expected), (size, start, length)


# --- window --------------------------------------------------------------------------------


def test_gaussian_window_follows_the_paper() -> None:
    w = gaussian_window(360)
    assert w.shape == (360, 360) and w.dtype == np.float32
    assert np.array_equal(w, w.T) and np.array_equal(w, w[::-1, ::-1])
    # mu = Nl/2, sigma = Nl/6, at pixel centres: pixel 179 sits 0.5 px from mu, pixel 59 at 120.5.
    g = lambda d: math.exp(-(d**2) / (2 * 60.0**2))  # noqa: E731
    assert w[179, 179] == pytest.approx(g(0.5) ** 2, rel=1e-6)
    assert w[59, 179] == pytest.approx(g(120.5) * g(0.5), rel=1e-6)
    assert w.min() > 0
    assert gaussian_window(1)[0, 0] == pytest.approx(1.0)
    assert gaussian_window(8, floor=0.5).min() == pytest.approx(0.5)


# --- batches -------------------------------------------------------------------------------


def test_batches_hold_local_then_region_of_an_independently_padded_frame() -> None:
    cases = [((70, 110), SMALL), ((200, 230), SMALL), ((9, 17), TileConfig()), ((61, 47), TileConfig(32, 101, 11))]
    for (height, width), cfg in cases:
        frame = _frame(height, width, seed=height)
        pad = cfg.region + cfg.local
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        plan = plan_tiles(height, width, cfg)
        checked = 0
        for batch in iter_tile_batches(frame, plan, 5):
            for i in range(len(batch.ys)):
                y, x = int(batch.ys[i]) + pad, int(batch.xs[i]) + pad
                local = padded[y : y + cfg.local, x : x + cfg.local]
                assert np.array_equal(batch.inputs[i, :3], local.transpose(2, 0, 1))
                # Same centre: the region's corner is Nr/2 above/left of the local tile's centre.
                ry = math.floor(y + cfg.local / 2 - cfg.region / 2)
                rx = math.floor(x + cfg.local / 2 - cfg.region / 2)
                crop = padded[ry : ry + cfg.region, rx : rx + cfg.region]
                region = cv2.resize(crop, (cfg.local, cfg.local), interpolation=cv2.INTER_AREA)
                np.testing.assert_allclose(batch.inputs[i, 3:], region.transpose(2, 0, 1), atol=1e-5, rtol=0)
                checked += 1
        assert checked == plan.count


def test_batch_iterator_is_lazy_and_yields_one_batch_shape_at_a_time() -> None:
    frame = _frame(100, 130)
    plan = plan_tiles(100, 130, SMALL)
    batches = iter_tile_batches(frame, plan, 4)
    assert inspect.isgenerator(batches)
    sizes = []
    for batch in batches:
        assert batch.inputs.dtype == np.float32 and batch.inputs.flags.c_contiguous
        assert batch.inputs.shape[1:] == (6, 32, 32)
        sizes.append(batch.inputs.shape[0])
    assert sizes == [4] * (plan.count // 4) + ([plan.count % 4] if plan.count % 4 else [])


def test_batch_iterator_memory_does_not_grow_with_the_tile_count() -> None:
    cfg = TileConfig(local=64, region=160)
    frame = _frame(1500, 600)
    plan = plan_tiles(1500, 600, cfg)
    batch_bytes = 4 * 6 * 64 * 64 * 4
    all_tiles_bytes = plan.count * 6 * 64 * 64 * 4
    tracemalloc.start()
    try:
        for batch in iter_tile_batches(frame, plan, 4):
            del batch
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One batch, a region band (Nl x W x 3) and a border band's gathered rows (Nr x W x 3), with slack.
    bound = 3 * batch_bytes + 2 * (64 + 160) * 600 * 3 * 4
    assert all_tiles_bytes > 10 * bound  # holding every tile could not pass
    assert peak < bound


# --- merge ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "cfg"),
    [
        (1, 1, TileConfig()),
        (17, 9, TileConfig()),
        (359, 359, TileConfig()),
        (361, 723, TileConfig()),
        (97, 131, SMALL),
        (97, 131, TileConfig(local=32, region=32, stride=32)),
        (97, 131, TileConfig(local=33, region=90, stride=7)),
    ],
)
def test_identity_generator_reproduces_the_frame(height: int, width: int, cfg: TileConfig) -> None:
    frame = _frame(height, width)
    merged = run_tiled(frame, _identity, cfg, batch_size=3)
    assert merged.shape == frame.shape and merged.dtype == np.float32
    assert np.abs(merged - frame).max() <= 1e-6


@pytest.mark.parametrize(("height", "width"), [(2160, 3840), (4320, 7680)], ids=["UHD", "8K"])
def test_identity_generator_reproduces_large_frames(height: int, width: int) -> None:
    frame = _frame(height, width)
    merged = run_tiled(frame, _identity, TileConfig(), batch_size=8)
    assert np.abs(merged - frame).max() <= 1e-6


def test_constant_offset_leaves_no_seam() -> None:
    frame = _frame(203, 317)
    merged = run_tiled(frame, lambda b: b[:, :3] + np.float32(0.1), SMALL, batch_size=4)
    assert np.abs(merged - (frame + np.float32(0.1))).max() <= 1e-6


def _merge_per_tile_offsets(cfg: TileConfig, height: int, width: int, window: np.ndarray | None) -> np.ndarray:
    plan = plan_tiles(height, width, cfg)
    offsets = np.random.default_rng(7).uniform(-0.5, 0.5, plan.count).astype(np.float32)
    merged = TileAccumulator(plan, window)
    for batch in iter_tile_batches(np.zeros((height, width, 3), np.float32), plan, 6):
        tiles = offsets[batch.start : batch.start + len(batch.ys), None, None, None]
        merged.add(batch.ys, batch.xs, batch.inputs[:, :3] + tiles)
    return merged.result()


def test_per_tile_offsets_blend_smoothly_unlike_a_hard_edged_merge() -> None:
    cfg = TileConfig(local=96, region=192)
    gaussian = _merge_per_tile_offsets(cfg, 500, 700, None)
    box = _merge_per_tile_offsets(cfg, 500, 700, np.ones((96, 96), np.float32))
    # The merge is F = sum(w_k o_k) / sum(w_k) with offsets o_k spread over delta = 1. Between two
    # pixels inside the same tiles, |dF| <= delta * max|w'/w| = delta * (Nl/2) / sigma^2 = 18/Nl.
    # Where tiles end, each lost weight is at most exp(-4.5) of its column's weight, while the tile
    # whose centre cell holds the pixel keeps at least exp(-9/8) of it: a jump <= exp(-3.375).
    bound = 18 / cfg.local + math.exp(-3.375)
    steps = lambda f: max(np.abs(np.diff(f, axis=0)).max(), np.abs(np.diff(f, axis=1)).max())  # noqa: E731
    assert steps(gaussian) <= bound
    assert steps(box) > 1.5 * bound
    assert np.ptp(gaussian) > 0.2  # the offsets really vary: smoothness is not flatness


def test_results_do_not_depend_on_batch_size() -> None:
    frame = _frame(150, 170)

    def generate(batch: np.ndarray) -> np.ndarray:
        return np.sqrt(batch[:, :3]) * 0.7 + batch[:, 3:] ** 2

    results = [run_tiled(frame, generate, SMALL, batch_size=size) for size in (1, 3, 7)]
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])


def test_generator_may_return_all_six_channels() -> None:
    frame = _frame(40, 50)
    merged = run_tiled(frame, lambda b: b * 2, SMALL, batch_size=2)
    assert np.abs(merged - 2 * frame).max() <= 1e-6


def test_progress_counts_tiles_up_to_the_total() -> None:
    calls: list[tuple[int, int]] = []
    plan = plan_tiles(70, 90, SMALL)
    run_tiled(_frame(70, 90), _identity, SMALL, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == sorted({min(plan.count, d) for d in range(4, plan.count + 4, 4)})
    assert {t for _, t in calls} == {plan.count}


def test_bad_generator_output_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="expected"):
        run_tiled(_frame(40, 40), lambda b: b[:, :3, :-1], SMALL, batch_size=2)
    with pytest.raises(ModelError):
        run_tiled(_frame(40, 40), lambda b: b[:, :2], SMALL, batch_size=2)


@pytest.mark.parametrize(
    "frame", [np.zeros((10, 10, 3), np.float64), np.zeros((10, 10), np.float32), np.zeros((10, 10, 4), np.float32)]
)
def test_bad_frames_are_input_errors(frame: np.ndarray) -> None:
    with pytest.raises(InputError):
        run_tiled(frame, _identity, SMALL)


def test_a_bad_batch_size_is_a_bug_not_a_usage_error() -> None:
    # the engine chooses batch sizes; a user's mistake never reaches here, so it is not a UsageError
    with pytest.raises(ValueError, match="batch size 0"):
        run_tiled(_frame(10, 10), _identity, SMALL, batch_size=0)


def test_batches_refuse_a_frame_of_another_size() -> None:
    with pytest.raises(InputError):
        next(iter_tile_batches(_frame(10, 10), plan_tiles(10, 11, SMALL), 2))


def test_accumulator_keeps_uncovered_pixels_at_zero_and_accepts_strided_half_outputs() -> None:
    plan = plan_tiles(50, 60, TileConfig(local=16, region=16))
    merged = TileAccumulator(plan)
    planes_swapped = np.full((1, 3, 16, 16), 2.0, np.float16).transpose(0, 1, 3, 2)
    merged.add(np.array([0]), np.array([0]), planes_swapped)
    result = merged.result()
    assert np.all(result[:16, :16] == 2.0) and np.all(result[16:] == 0) and np.all(result[:, 16:] == 0)
    with pytest.raises(ValueError):
        TileAccumulator(plan, np.zeros((16, 16), np.float32))
