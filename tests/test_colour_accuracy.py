"""ColorChecker ΔE00 and grey-ramp chroma (issue 14, item 7)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("colour")

from nightgrade.colorpipeline.evaluation.colour_accuracy import checker_linear, delta_e, score_method  # noqa: E402
from nightgrade.colorpipeline.lowlight import CameraModel, linear_to_srgb, srgb_to_linear  # noqa: E402

CLEAN = CameraModel(stops=3.0, full_well=1e9, read_noise=0.0, colour_loss=0.0, bits=16)


def test_reference_chart_is_the_known_colorchecker() -> None:
    ref = checker_linear()
    assert ref.shape == (24, 3)
    white, black = ref[18], ref[23]  # white 9.5 and black 2
    assert white.min() > 0.8 and black.max() < 0.04 and np.ptp(white) < 0.06


def test_an_exact_inverse_scores_near_zero_and_a_tint_does_not() -> None:
    def exact(frame: np.ndarray) -> np.ndarray:
        return linear_to_srgb(np.clip(srgb_to_linear(frame) * 8.0, 0, 1))

    def tinted(frame: np.ndarray) -> np.ndarray:
        return linear_to_srgb(np.clip(srgb_to_linear(frame) * np.array([10.0, 8.0, 6.0]), 0, 1))

    good = score_method(exact, CLEAN, np.random.default_rng(0))
    bad = score_method(tinted, CLEAN, np.random.default_rng(0))
    assert good.delta_e_mean < 0.5 and good.grey_chroma_max < 0.5
    assert bad.delta_e_matched_mean > 3 and bad.grey_chroma_max > 5


def test_exposure_error_counts_absolutely_but_not_after_matching() -> None:
    def too_bright(frame: np.ndarray) -> np.ndarray:
        return linear_to_srgb(np.clip(srgb_to_linear(frame) * 8.0 * 1.5, 0, 1))

    s = score_method(too_bright, CLEAN, np.random.default_rng(0))
    assert s.delta_e_mean > 3 and s.delta_e_matched_mean < s.delta_e_mean / 2


def test_delta_e_is_zero_for_identical_colours() -> None:
    ref = checker_linear()
    assert np.allclose(delta_e(ref, ref), 0.0)
