"""The colour sensor's layout in the camera model: Bayer mosaic and colour crosstalk (issue 14, item 2)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nightgrade.colorpipeline.lowlight import CameraModel, CameraRanges, capture, draw_camera
from nightgrade.colorpipeline.sensor import bayer_masks, colour_matrix, crosstalk_matrix, demosaic, mosaic


def test_each_site_records_one_colour_of_an_rggb_pattern() -> None:
    masks = bayer_masks(4, 6)
    assert np.array_equal(masks.sum(axis=2), np.ones((4, 6)))
    assert masks[..., 1].mean() == 0.5 and masks[0, 0, 0] == 1 and masks[1, 1, 2] == 1
    rgb = np.random.default_rng(0).random((4, 6, 3)).astype(np.float32)
    raw = mosaic(rgb)
    assert raw[0, 0] == rgb[0, 0, 0] and raw[0, 1] == rgb[0, 1, 1] and raw[1, 1] == rgb[1, 1, 2]


@pytest.mark.parametrize("shape", [(8, 8), (7, 11)])
def test_demosaic_keeps_flat_colours_exactly_up_to_the_borders(shape) -> None:
    flat = np.broadcast_to(np.array([0.2, 0.5, 0.9], np.float32), shape + (3,))
    assert np.allclose(demosaic(mosaic(flat)), flat, atol=1e-6)
    # a horizontal ramp is linear: bilinear interpolation recovers it away from the border
    ramp = np.repeat(np.linspace(0, 1, shape[1], dtype=np.float32)[None, :, None], shape[0], axis=0).repeat(3, axis=2)
    assert np.allclose(demosaic(mosaic(ramp))[1:-1, 1:-1], ramp[1:-1, 1:-1], atol=1e-5)


def test_the_colour_matrix_undoes_crosstalk_keeps_greys_and_scales_chroma() -> None:
    assert np.allclose(colour_matrix(0.3) @ crosstalk_matrix(0.3), np.eye(3), atol=1e-6)
    grey = np.array([0.4, 0.4, 0.4], np.float32)
    assert np.allclose(crosstalk_matrix(0.3) @ grey, grey) and np.allclose(colour_matrix(0.3) @ grey, grey)
    chroma = np.array([0.1, -0.05, -0.05], np.float32)       # zero mean: pure chroma
    assert np.allclose(colour_matrix(0.5) @ chroma, 2.0 * chroma, atol=1e-6)


def _noise(camera: CameraModel) -> np.ndarray:
    scene = np.full((128, 128, 3), 0.5, np.float32)
    return capture(scene, camera, np.random.default_rng(0)) - 0.5 * 2.0 ** -camera.stops


def test_a_mosaic_sensor_makes_spatially_correlated_noise() -> None:
    cam = CameraModel(stops=2.0, full_well=3000.0, read_noise=2.0, colour_loss=0.0, bits=16)
    def neighbour_correlation(n: np.ndarray) -> float:
        g = n[..., 1]
        return float(np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1])
    assert abs(neighbour_correlation(_noise(cam))) < 0.05
    assert neighbour_correlation(_noise(dataclasses.replace(cam, bayer=True))) > 0.2


def test_crosstalk_amplifies_chroma_noise_only() -> None:
    cam = CameraModel(stops=2.0, full_well=3000.0, read_noise=2.0, colour_loss=0.0, bits=16)
    base, mixed = _noise(cam), _noise(dataclasses.replace(cam, crosstalk=0.5))
    chroma = lambda n: (n - n.mean(axis=2, keepdims=True)).std()  # noqa: E731
    assert chroma(mixed) > 1.3 * chroma(base)
    assert abs(mixed.mean() - base.mean()) < 1e-3      # the exposure is unchanged


def test_the_draw_can_cover_the_sensor_layouts_and_refuses_bad_crosstalk() -> None:
    assert not any(d.bayer or d.crosstalk for d in (draw_camera(np.random.default_rng(i)) for i in range(50)))
    rng, ranges = np.random.default_rng(0), CameraRanges(bayer_probability=0.5, crosstalk_probability=0.5)
    draws = [draw_camera(rng, ranges) for _ in range(200)]
    assert 60 < sum(d.bayer for d in draws) < 140
    talk = [d.crosstalk for d in draws]
    assert 60 < sum(t == 0 for t in talk) < 140 and all(0.0 <= t <= ranges.crosstalk[1] for t in talk)
    with pytest.raises(ValueError, match="crosstalk"):
        CameraModel(crosstalk=0.95)
