"""Adaptive motion-compensated temporal window (paper Sec. 3.4), on synthetic sequences whose
true flows and occlusions are known."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.temporal.average import TemporalConfig, radius_map, temporal_average, window_offsets

SIZE = 48
NOISE = 0.03


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture in about [0.2, 0.8]."""
    noise = np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return (0.2 + 0.6 * (smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.float32)


def _noisy(clean: np.ndarray, seed: int) -> np.ndarray:
    return (clean + np.random.default_rng(1000 + seed).normal(0, NOISE, clean.shape)).astype(np.float32)


def _constant_flows(offsets: range | tuple[int, ...], per_frame: tuple[float, float],
                    shape: tuple[int, int] = (SIZE, SIZE)) -> dict[int, np.ndarray]:
    return {k: np.broadcast_to(np.float32(per_frame) * k, (*shape, 2)).copy() for k in offsets}


def _static(offsets: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], dict[int, np.ndarray]]:
    clean = _texture(SIZE, SIZE)
    neighbours = {k: _noisy(clean, k) for k in offsets}
    return clean, _noisy(clean, 0), neighbours, _constant_flows(offsets, (0.0, 0.0))


ALL = tuple(k for k in range(-6, 7) if k)


# --- configuration and window ---------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [dict(radius=7), dict(radius=-1), dict(radius=2.0), dict(max_motion=0.0),
                                    dict(max_motion=float("nan")), dict(outlier_sigmas=0.0)])
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        TemporalConfig(**kwargs)


def test_window_offsets_are_nearest_first_and_one_sided_at_borders() -> None:
    assert window_offsets(10, 0, 100, radius=2) == (-1, 1, -2, 2)
    assert window_offsets(0, 0, 100) == (1, 2, 3, 4, 5, 6)
    assert window_offsets(1001, 1000, 1003) == (-1, 1, 2)
    assert window_offsets(5, 5, 5) == ()
    with pytest.raises(ValueError):
        window_offsets(4, 5, 9)


# --- per-pixel radius -----------------------------------------------------------------------


@pytest.mark.parametrize("speed, scale, expected", [
    (0.0, 1.0, 6), (30.0, 1.0, 6), (50.0, 1.0, 5), (100.0, 1.0, 2), (200.0, 1.0, 1), (256.0, 1.0, 1),
    (257.0, 1.0, 0), (300.0, 1.0, 0),
    # a half-resolution proxy: 50 proxy px are 100 full-resolution px
    (50.0, 0.5, 2), (129.0, 0.5, 0),
])
def test_radius_shrinks_with_accumulated_motion(speed: float, scale: float, expected: int) -> None:
    flows = _constant_flows(ALL, (speed * 0.6, speed * 0.8))
    window = radius_map((SIZE, SIZE), flows, None, TemporalConfig(), scale)
    assert window.dtype == np.uint8
    assert np.all(window == expected)


def test_radius_is_per_pixel_and_ignores_occluded_and_missing_neighbours() -> None:
    flows = _constant_flows(ALL, (0.0, 0.0))
    for k in ALL:
        flows[k][:, SIZE // 2:, 0] = 100.0 * k  # right half pans fast
    flows[3][:8] = 1e6  # garbage flow where frame t+3 is occluded
    occlusions = {3: np.zeros((SIZE, SIZE), bool)}
    occlusions[3][:8] = True
    window = radius_map((SIZE, SIZE), flows, occlusions, TemporalConfig())
    assert np.all(window[:, : SIZE // 2] == 6) and np.all(window[:, SIZE // 2:] == 2)
    one_sided = radius_map((SIZE, SIZE), {k: flows[k] for k in (1, 2, 3)}, None, TemporalConfig(radius=4))
    assert np.all(one_sided[8:, : SIZE // 2] == 4) and np.all(one_sided[:8, : SIZE // 2] == 2)


def test_non_finite_flow_counts_as_too_much_motion() -> None:
    flows = _constant_flows(ALL, (0.0, 0.0))
    flows[2][0, 0] = np.nan
    window = radius_map((SIZE, SIZE), flows, None, TemporalConfig())
    assert window[0, 0] == 1 and window[1, 1] == 6


# --- averaging ------------------------------------------------------------------------------


def test_static_scene_averages_thirteen_frames_and_cuts_noise_by_sqrt_13() -> None:
    clean, centre, neighbours, flows = _static(ALL)
    out, count = temporal_average(centre, neighbours, flows, None, TemporalConfig())
    assert out.dtype == np.float32 and out.shape == centre.shape
    assert np.all(count == 13)
    reduction = np.std(centre - clean) / np.std(out - clean)
    assert reduction == pytest.approx(math.sqrt(13), rel=0.1)


def test_first_frame_of_a_sequence_uses_a_one_sided_window() -> None:
    clean, centre, neighbours, flows = _static(window_offsets(0, 0, 50))
    out, count = temporal_average(centre, neighbours, flows, None, TemporalConfig())
    assert np.all(count == 7)
    assert np.std(centre - clean) / np.std(out - clean) == pytest.approx(math.sqrt(7), rel=0.1)


def test_radius_zero_returns_the_centre_exactly() -> None:
    _, centre, neighbours, flows = _static(ALL)
    out, count = temporal_average(centre, neighbours, flows, None, TemporalConfig(radius=0))
    assert np.array_equal(out, centre) and np.all(count == 1)
    out, count = temporal_average(centre, neighbours, flows, None, TemporalConfig(radius=2))
    assert np.all(count == 5)  # neighbours beyond the radius are ignored


def test_pan_beyond_max_motion_returns_the_centre_exactly() -> None:
    pan, width = 300, 64
    strip = _texture(16, width + 12 * pan)
    frames = {k: _noisy(strip[:, (k + 6) * pan:(k + 6) * pan + width], k) for k in range(-6, 7)}
    centre = frames.pop(0)
    flows = _constant_flows(ALL, (pan, 0.0), (16, width))
    out, count = temporal_average(centre, frames, flows, None, TemporalConfig())
    assert np.array_equal(out, centre) and np.all(count == 1)


def test_panning_neighbours_are_used_only_where_they_cover_the_pixel() -> None:
    """Content moves 5 px left per frame; a neighbour contributes at x only if x - 5k lies inside it."""
    step, width = 5, SIZE
    strip = _texture(SIZE, width + 12 * step)
    clean = {k: strip[:, (k + 6) * step:(k + 6) * step + width] for k in range(-6, 7)}
    neighbours = {k: _noisy(clean[k], k) for k in ALL}
    flows = _constant_flows(ALL, (-step, 0.0))
    out, count = temporal_average(_noisy(clean[0], 0), neighbours, flows, None, TemporalConfig(outlier_sigmas=None))
    x = np.arange(width)
    expected = 1 + sum(((x - step * k >= 0) & (x - step * k <= width - 1)).astype(int) for k in ALL)
    assert np.array_equal(count, np.broadcast_to(expected, count.shape))
    error = np.abs(out - clean[0]).mean(axis=-1)
    assert error.mean() < 0.5 * NOISE  # no smearing of the mirrored border into the edge columns
    assert error[:, -3:].mean() < 1.5 * error[:, :width // 2].mean() + 0.5 * NOISE


def _occluder_scene() -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray], np.ndarray]:
    """A bright square moving 2 px right per frame over a static texture; true flows and occlusions."""
    background = _texture(SIZE, SIZE, seed=3)
    squares = {}
    clean = {}
    for k in range(-6, 7):
        square = np.zeros((SIZE, SIZE), bool)
        square[18:30, 18 + 2 * k:30 + 2 * k] = True
        squares[k] = square
        clean[k] = np.where(square[..., None], np.float32([1.0, 0.1, 0.1]), background)
    flows = _constant_flows(ALL, (0.0, 0.0))
    for k in ALL:
        flows[k][squares[0], 0] = 2.0 * k
    occlusions = {k: squares[k] & ~squares[0] for k in ALL}
    return clean, flows, occlusions, np.logical_or.reduce([occlusions[k] for k in ALL])


def test_occluded_pixels_are_not_averaged_with_the_occluder() -> None:
    clean, flows, occlusions, zone = _occluder_scene()
    frames = {k: _noisy(clean[k], k) for k in range(-6, 7)}
    centre = frames.pop(0)
    naive, _ = temporal_average(centre, frames, flows, None, TemporalConfig(outlier_sigmas=None))
    masked, count = temporal_average(centre, frames, flows, occlusions, TemporalConfig(outlier_sigmas=None))
    naive_error = np.abs(naive - clean[0])[zone].mean()
    masked_error = np.abs(masked - clean[0])[zone].mean()
    assert masked_error < 0.2 * naive_error
    assert masked_error < NOISE  # still averaged with the frames where the background shows
    assert count[zone].min() >= 2 and np.all(count[~zone] == 13)
    # the moving square itself is motion compensated, not smeared
    assert np.abs(masked - clean[0])[~zone].mean() < 0.5 * NOISE


def test_outlier_test_catches_occlusions_the_mask_misses() -> None:
    clean, flows, _, zone = _occluder_scene()
    frames = {k: _noisy(clean[k], k) for k in range(-6, 7)}
    centre = frames.pop(0)
    naive, _ = temporal_average(centre, frames, flows, None, TemporalConfig(outlier_sigmas=None))
    robust, count = temporal_average(centre, frames, flows, None, TemporalConfig())
    assert np.abs(robust - clean[0])[zone].mean() < 0.2 * np.abs(naive - clean[0])[zone].mean()
    assert count[~zone].mean() > 12.9  # noise alone is almost never rejected


def test_outlier_test_still_averages_out_global_flicker() -> None:
    clean, centre, neighbours, flows = _static(ALL)
    flickering = {k: frame + np.float32(0.05 * (-1) ** k) for k, frame in neighbours.items()}
    out, count = temporal_average(centre, flickering, flows, None, TemporalConfig())
    assert count.mean() > 12.9
    assert abs(float((out - clean).mean())) < 0.01


def test_non_finite_neighbour_pixels_are_left_out() -> None:
    clean, centre, neighbours, flows = _static((-1, 1))
    neighbours[1][5, 7, 2] = np.nan
    neighbours[-1][5, 7, 0] = np.inf
    out, count = temporal_average(centre, neighbours, flows, None, TemporalConfig())
    assert np.all(np.isfinite(out)) and count[5, 7] == 1 and out[5, 7].tolist() == centre[5, 7].tolist()


def test_single_channel_frames_and_proxy_scale() -> None:
    clean = _texture(SIZE, SIZE)[..., 0]
    neighbours = {k: np.roll(clean, 6 * k, axis=0) for k in ALL}  # content moves 6 px down per frame
    flows = _constant_flows(ALL, (0.0, 6.0))  # 6 proxy px at scale 0.05 = 120 full-resolution px
    out, count = temporal_average(clean, neighbours, flows, None, TemporalConfig(), scale=0.05)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.all(count[12:36] == 5)  # N = 2 at 120 px per frame, where all four samples lie inside
    assert np.allclose(out[12:36], clean[12:36], atol=1e-6)


def test_mismatched_inputs_are_refused() -> None:
    _, centre, neighbours, flows = _static((-1, 1))
    with pytest.raises(ValueError, match="no flow"):
        temporal_average(centre, neighbours, {1: flows[1]}, None, TemporalConfig())
    with pytest.raises(ValueError, match="flow to neighbour"):
        temporal_average(centre, neighbours, {1: flows[1], -1: flows[-1][:5]}, None, TemporalConfig())
    with pytest.raises(ValueError, match="occlusion mask"):
        temporal_average(centre, neighbours, flows, {1: np.zeros((3, 3), bool)}, TemporalConfig())
