"""Classical baselines: identity, histogram matching, gamma + CLAHE + non-local means."""
from __future__ import annotations

import numpy as np
import pytest

from nightgrade.colorpipeline.evaluation.baselines import (GammaClaheNlmConfig, auto_gamma, gamma_clahe_nlm,
                                                           histogram_matcher, identity)
from nightgrade.colorpipeline.evaluation.metrics import psnr
from nightgrade.colorpipeline.lowlight import CameraModel, simulate_low_light


def _scene(seed: int, height: int = 72, width: int = 96) -> np.ndarray:
    """A smooth, well-exposed colour scene (sRGB) with blocks and gradients."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6, 3)
    frame = np.stack([0.5 + 0.35 * np.sin(x / 11.0 + phase[c]) * np.cos(y / 13.0 - phase[c]) for c in range(3)], -1)
    frame[height // 4:height // 2, width // 5:width // 2] += np.float32(0.1)
    return np.clip(frame, 0.0, 1.0).astype(np.float32)


def _dark(frame: np.ndarray, stops: float = 3.0) -> np.ndarray:
    return simulate_low_light(frame, CameraModel(stops=stops), np.random.default_rng(7))


def test_identity_returns_an_equal_copy() -> None:
    frame = _scene(0)
    out = identity(frame)
    assert out is not frame and out.dtype == np.float32
    np.testing.assert_array_equal(out, frame)


def test_histogram_matching_improves_psnr_on_a_dark_frame() -> None:
    truth, reference = _scene(1), _scene(2)  # the reference is other footage with a similar exposure
    dark = _dark(truth)
    out = histogram_matcher(reference)(dark)
    assert out.shape == dark.shape and out.dtype == np.float32
    assert psnr(out, truth) > psnr(dark, truth) + 5.0


def test_histogram_matching_gives_the_reference_distribution() -> None:
    reference = _scene(3)
    out = histogram_matcher(reference)(_dark(_scene(4)))
    for c in range(3):
        assert np.percentile(out[..., c], [10, 50, 90]) == pytest.approx(
            np.percentile(reference[..., c], [10, 50, 90]), abs=0.03)


def test_histogram_matching_keeps_the_order_of_values() -> None:
    frame = _dark(_scene(5))
    out = histogram_matcher(_scene(6))(frame)
    for c in range(3):
        order = np.argsort(frame[..., c], axis=None, kind="stable")
        assert np.all(np.diff(out[..., c].ravel()[order]) >= -1e-6)


def test_auto_gamma_maps_the_mean_to_the_target_within_limits() -> None:
    gamma = auto_gamma(0.1, 0.45, (0.2, 1.0))
    assert 0.1 ** gamma == pytest.approx(0.45, abs=1e-6)
    assert auto_gamma(0.001, 0.45, (0.2, 1.0)) == 0.2
    assert auto_gamma(0.8, 0.45, (0.2, 1.0)) == 1.0  # never darkens
    assert auto_gamma(0.0, 0.45, (0.2, 1.0)) == 1.0


def test_gamma_clahe_nlm_brightens_and_improves_psnr() -> None:
    truth = _scene(8)
    dark = _dark(truth)
    out = gamma_clahe_nlm()(dark)
    assert out.shape == dark.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert out.mean() > dark.mean() + 0.15
    assert psnr(out, truth) > psnr(dark, truth) + 3.0


def test_non_local_means_removes_noise_on_a_flat_field() -> None:
    flat = np.full((64, 64, 3), 0.5, dtype=np.float32)
    dark = _dark(flat)
    config = GammaClaheNlmConfig(clahe_clip=1.0)
    denoised = gamma_clahe_nlm(config)(dark)
    no_denoise = gamma_clahe_nlm(GammaClaheNlmConfig(clahe_clip=1.0, nlm_h=0.0, nlm_h_colour=0.0))(dark)
    assert denoised.std() < 0.5 * no_denoise.std()


def test_baselines_refuse_non_rgb_frames() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        histogram_matcher(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        gamma_clahe_nlm()(np.zeros((4, 4, 4), np.float32))
