"""Colourist controls around the model output (colorpipeline/controls.py): denoise strength for
luma and chroma, detail recovery; defaults reproduce the model's output exactly."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from nightgrade.colorpipeline.controls import Controls, apply_controls
from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.luma import REC709_LUMA


def _noisy_pair(chroma_noise: bool, size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dark noisy input, its noise at the enhanced brightness, a perfectly denoised 4x brighter output)."""
    rng = np.random.default_rng(seed)
    grain = rng.normal(0.0, 0.01, (size, size, 3 if chroma_noise else 1)).astype(np.float32)
    grain = np.broadcast_to(grain, (size, size, 3)).copy()
    base = np.full((size, size, 3), [0.10, 0.08, 0.06], dtype=np.float32)
    return base + grain, 4.0 * grain, 4.0 * base


def test_defaults_give_the_model_output_unchanged() -> None:
    source, _, enhanced = _noisy_pair(True)
    assert apply_controls(source, enhanced, Controls()) is enhanced


def test_luma_denoise_zero_brings_back_the_luma_grain_at_the_enhanced_brightness() -> None:
    source, grain, enhanced = _noisy_pair(chroma_noise=False)
    out = apply_controls(source, enhanced, Controls(luma_denoise=0.0))
    inner = (slice(16, -16), slice(16, -16))
    # the grain comes back, scaled to the output's brightness (4x), in its texture band
    corr = np.corrcoef((out - enhanced)[inner][..., 1].ravel(), grain[inner][..., 1].ravel())[0, 1]
    assert corr > 0.95
    assert 0.8 < float(np.std((out - enhanced)[inner])) / float(np.std(grain[inner])) < 1.05
    assert abs(float(out.mean()) - float(enhanced.mean())) < 1e-3  # no exposure change
    half = apply_controls(source, enhanced, Controls(luma_denoise=0.5))
    np.testing.assert_allclose(half - enhanced, 0.5 * (out - enhanced), atol=1e-5)  # linear in the strength


def test_chroma_and_luma_strengths_act_on_their_own_part() -> None:
    source, _, enhanced = _noisy_pair(chroma_noise=True)
    luma_only = apply_controls(source, enhanced, Controls(luma_denoise=0.0)) - enhanced
    chroma_only = apply_controls(source, enhanced, Controls(chroma_denoise=0.0)) - enhanced
    assert float(np.abs(luma_only - (luma_only @ REC709_LUMA)[..., None]).max()) < 1e-5  # grey: luma only
    assert float(np.abs(chroma_only @ REC709_LUMA).max()) < 1e-5  # no luma in the chroma part
    assert float(np.std(chroma_only)) > 0.01


def test_detail_recovery_puts_back_the_finest_input_detail() -> None:
    rng = np.random.default_rng(3)
    texture = rng.random((96, 96), dtype=np.float32)
    source = np.repeat((0.05 + 0.05 * texture)[..., None], 3, axis=2)
    enhanced = cv2.GaussianBlur(4.0 * source, (0, 0), 2.0)  # bright but soft
    fine = lambda image: image @ REC709_LUMA - cv2.GaussianBlur(image @ REC709_LUMA, (0, 0), 1.0)  # noqa: E731
    inner = (slice(16, -16), slice(16, -16))
    before = float(np.corrcoef(fine(enhanced)[inner].ravel(), fine(source)[inner].ravel())[0, 1])
    out = apply_controls(source, enhanced, Controls(detail=1.0))
    after = float(np.corrcoef(fine(out)[inner].ravel(), fine(source)[inner].ravel())[0, 1])
    assert after > 0.95 > before + 0.2
    assert abs(float(out.mean()) - float(enhanced.mean())) < 2e-3


def test_proxy_scale_keeps_the_look() -> None:
    source, _, enhanced = _noisy_pair(chroma_noise=False, size=128, seed=5)
    source = cv2.GaussianBlur(source, (0, 0), 2.0)  # grain coarse enough to survive a 2x downscale
    controls = Controls(luma_denoise=0.0, detail=0.5)
    full = apply_controls(source, enhanced, controls)
    half = lambda image: cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)  # noqa: E731
    proxy = apply_controls(half(source), half(enhanced), controls, scale=0.5)
    inner = (slice(8, -8), slice(8, -8))
    err = float(np.abs(proxy - half(full))[inner].mean()) / float(np.abs(half(full) - half(enhanced))[inner].mean())
    assert err < 0.35


@pytest.mark.parametrize("field, value", [("luma_denoise", 1.5), ("chroma_denoise", -0.1), ("detail", 2),
                                          ("detail", float("nan")), ("luma_denoise", True)])
def test_out_of_range_values_name_the_range(field, value) -> None:
    with pytest.raises(UsageError, match=r"outside 0\.\.1"):
        Controls(**{field: value})
