"""PSNR, SSIM and the flicker error against hand-computed values and scikit-image."""
from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nightgrade.colorpipeline.evaluation.metrics import SSIM_K1, SSIM_K2, flicker_error, flicker_step, psnr, ssim


def _scene(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.3 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=-1)
    return np.clip(0.1 + 0.8 * base + rng.normal(0, 0.02, base.shape), 0, 1).astype(np.float32)


def test_psnr_of_a_constant_error_is_hand_computed() -> None:
    g = np.full((8, 8, 3), 0.5, dtype=np.float32)
    assert psnr(g + np.float32(0.1), g) == pytest.approx(20.0, abs=1e-4)  # mse 0.01 -> 10*log10(100)
    assert psnr(g + np.float32(0.01), g) == pytest.approx(40.0, abs=1e-3)


def test_psnr_is_infinite_for_identical_frames_and_matches_skimage() -> None:
    g = _scene()
    assert math.isinf(psnr(g, g))
    o = np.clip(g + np.random.default_rng(1).normal(0, 0.05, g.shape), 0, 1).astype(np.float32)
    assert psnr(o, g) == pytest.approx(peak_signal_noise_ratio(g, o, data_range=1.0), abs=1e-4)


def test_ssim_of_flat_frames_is_the_luminance_term() -> None:
    a, b = 0.5, 0.25
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1) * (c2 / c2)
    x = np.full((20, 20, 3), a, dtype=np.float32)
    y = np.full((20, 20, 3), b, dtype=np.float32)
    assert ssim(x, y) == pytest.approx(expected, abs=1e-6)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("noise", [0.01, 0.05, 0.2])
def test_ssim_matches_skimage_gaussian_ssim(noise: float) -> None:
    g = _scene()
    o = np.clip(g + np.random.default_rng(2).normal(0, noise, g.shape), 0, 1).astype(np.float32)
    reference = structural_similarity(o, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=1.0, channel_axis=-1)
    assert ssim(o, g) == pytest.approx(reference, abs=1e-5)


def test_ssim_drops_with_noise() -> None:
    g = _scene()
    rng = np.random.default_rng(3)
    scores = [ssim(np.clip(g + rng.normal(0, s, g.shape), 0, 1).astype(np.float32), g) for s in (0.01, 0.05, 0.2)]
    assert scores[0] > scores[1] > scores[2]


def test_metrics_refuse_mismatched_or_tiny_frames() -> None:
    with pytest.raises(ValueError, match="same size"):
        psnr(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32))


def _clip(frames: int = 5) -> list[np.ndarray]:
    return [_scene(seed=t) for t in range(frames)]


def test_flicker_is_zero_for_a_perfect_method_and_for_a_constant_offset() -> None:
    truth = _clip()
    assert flicker_error(truth, truth) == 0.0
    # A steady grade (same offset on every frame) changes nothing between frames: no flicker.
    shifted = [g - np.float32(0.05) for g in truth]
    assert flicker_error(shifted, truth) == pytest.approx(0.0, abs=1e-7)


def test_flicker_of_an_alternating_offset_is_hand_computed() -> None:
    truth = [np.clip(g, 0.2, 0.8) for g in _clip()]
    pumping = [g + np.float32(0.05 if t % 2 else -0.05) for t, g in enumerate(truth)]
    # Every step jumps by 0.1 relative to the truth.
    assert flicker_error(pumping, truth) == pytest.approx(0.1, abs=1e-6)
    assert flicker_step(pumping[0], pumping[1], truth[0], truth[1]) == pytest.approx(0.1, abs=1e-6)


def test_flicker_grows_with_per_frame_noise() -> None:
    truth = _clip()
    rng = np.random.default_rng(4)
    low = flicker_error([g + rng.normal(0, 0.01, g.shape).astype(np.float32) for g in truth], truth)
    high = flicker_error([g + rng.normal(0, 0.05, g.shape).astype(np.float32) for g in truth], truth)
    assert 0.0 < low < high


def test_flicker_needs_two_matching_frames() -> None:
    truth = _clip(3)
    with pytest.raises(ValueError, match="at least 2"):
        flicker_error(truth[:1], truth[:1])
    with pytest.raises(ValueError, match="3 ground-truth"):
        flicker_error(truth[:2], truth)
