"""Randomised camera model for training pairs (issue 14, item 2)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nightgrade.colorpipeline.lowlight import CameraModel, CameraRanges, capture, draw_camera, undo_gains


def test_draws_stay_in_their_ranges_and_cover_them() -> None:
    rng, ranges = np.random.default_rng(0), CameraRanges()
    draws = [draw_camera(rng, ranges) for _ in range(400)]
    stops = [d.stops for d in draws]
    assert ranges.stops[0] <= min(stops) < 1.5 and 6.5 < max(stops) <= ranges.stops[1]
    assert all(ranges.full_well[0] <= d.full_well <= ranges.full_well[1] for d in draws)
    assert all(ranges.read_noise[0] <= d.read_noise <= ranges.read_noise[1] for d in draws)
    assert {d.bits for d in draws} == {8, 10, 12, 16}
    assert all(d.jpeg_quality == 0 for d in draws if d.bits != 8)
    assert any(d.jpeg_quality for d in draws) and any(d.row_noise for d in draws) and any(d.black_level for d in draws)
    assert len({d.wb_error for d in draws}) > 300


def test_the_same_seed_gives_the_same_draw_and_capture() -> None:
    scene = np.random.default_rng(1).random((32, 40, 3)).astype(np.float32)
    a = [draw_camera(np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1] and CameraModel(**a[0].to_dict()) == a[0]
    x = capture(scene, a[0], np.random.default_rng(9))
    assert np.array_equal(x, capture(scene, a[0], np.random.default_rng(9)))


def test_capture_is_linear_in_and_out_and_darkens_by_the_stops() -> None:
    scene = np.full((64, 64, 3), 0.5, np.float32)
    cam = CameraModel(stops=3.0, full_well=1e9, read_noise=0.0, colour_loss=0.0, bits=16)
    assert np.allclose(capture(scene, cam, np.random.default_rng(0)), 0.5 / 8, atol=1e-4)


@pytest.mark.parametrize("change, check", [
    ({"black_level": 0.01}, lambda base, x: x.mean() > base.mean() + 0.009),
    ({"wb_error": (2.0, 1.0, 0.5)}, lambda base, x: x[..., 0].mean() > 1.8 * base[..., 0].mean()
     and x[..., 2].mean() < 0.6 * base[..., 2].mean()),
    ({"row_noise": 5.0}, lambda base, x: x.mean(axis=(1, 2)).std() > 3 * base.mean(axis=(1, 2)).std()),
])
def test_each_effect_does_what_it_says(change, check) -> None:
    scene = np.full((96, 96, 3), 0.4, np.float32)
    cam = CameraModel(stops=2.0, full_well=5000.0, read_noise=1.0, colour_loss=0.0, bits=16)
    base = capture(scene, cam, np.random.default_rng(0))
    assert check(base, capture(scene, dataclasses.replace(cam, **change), np.random.default_rng(0)))


def test_jpeg_adds_block_artefacts_to_8_bit_captures() -> None:
    scene = np.random.default_rng(2).random((64, 64, 3)).astype(np.float32)
    cam = CameraModel(stops=1.0, full_well=1e9, read_noise=0.0, colour_loss=0.0, bits=8)
    plain = capture(scene, cam, np.random.default_rng(0))
    coded = capture(scene, dataclasses.replace(cam, jpeg_quality=20), np.random.default_rng(0))
    assert np.abs(plain - coded).mean() > 0.005


def test_bad_cameras_are_refused() -> None:
    with pytest.raises(ValueError, match="bits"):
        CameraModel(bits=9)
    with pytest.raises(ValueError, match="jpeg_quality"):
        CameraModel(jpeg_quality=101)


def _warm_scene() -> np.ndarray:
    """A scene-linear frame whose every pixel is warm (R > G > B), as the training pictures are on average."""
    levels = np.random.default_rng(3).uniform(0.05, 0.9, (48, 64, 1)).astype(np.float32)
    return levels * np.array([1.0, 0.7, 0.35], np.float32)


def test_undo_gains_ignore_colour_loss() -> None:
    """A desaturated capture of a warm scene needs the same gain in every channel: colour loss is not a
    white-balance error (measured per channel, it taught the exposure branch a constant warm cast)."""
    scene = _warm_scene()
    camera = CameraModel(stops=3.0, full_well=1e7, read_noise=0.0, colour_loss=0.6, bits=16)
    dark = capture(scene, camera, np.random.default_rng(0))
    gains = undo_gains(scene, dark, camera)
    np.testing.assert_allclose(gains, np.full(3, 3.0), atol=0.01)
    per_channel = np.log2(scene.reshape(-1, 3).mean(0) / dark.reshape(-1, 3).mean(0))
    assert per_channel[2] - per_channel[1] < -0.3  # what the ratio of channel means would have taught


def test_undo_gains_undo_white_balance_and_exposure() -> None:
    scene = _warm_scene()
    camera = CameraModel(stops=5.0, full_well=1e7, read_noise=0.0, colour_loss=0.0, bits=16,
                         wb_error=(2.0 ** 0.3, 1.0, 2.0 ** -0.2))
    dark = capture(scene, camera, np.random.default_rng(0))
    gains = undo_gains(scene, dark, camera)
    np.testing.assert_allclose(gains, [4.7, 5.0, 5.2], atol=0.01)
    restored = dark * np.exp2(gains)
    np.testing.assert_allclose(restored.reshape(-1, 3).mean(0), scene.reshape(-1, 3).mean(0), rtol=0.01)
