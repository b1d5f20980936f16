"""The exposure branch's raised-black estimate (models/exposure.py, ``black``) and training it (issue 14)."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from nightgrade.colorpipeline.lowlight import CameraModel, capture, linear_to_srgb, srgb_to_linear, undo_gains
from nightgrade.models.checkpoint import load_checkpoint, read_meta
from nightgrade.models.exposure import (THUMB, FrameExposure, apply_gains, decode_srgb, frame_levels,
                                       normalise_exposure)
from nightgrade.models.networks import GeneratorConfig, build_generator
from nightgrade.server.cli.main import main
from test_tile_consistent import CONSISTENT
from test_training_paired import _SMALL, _clean_dir


def _thumbs(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Thumbnails of dark scenes, some with a raised black (linear 0-2 %), and those blacks."""
    rng = np.random.default_rng(seed)
    scenes = rng.uniform(0.0, 0.05, (count, 3, 1, 1)) * rng.uniform(0.0, 1.0, (count, 3, THUMB, THUMB))
    blacks = np.where(rng.random(count) < 0.5, rng.uniform(0.0, 0.02, count), 0.0)
    encoded = linear_to_srgb((scenes + blacks[:, None, None, None]).astype(np.float32))
    return torch.from_numpy(encoded.astype(np.float32)), torch.from_numpy(blacks.astype(np.float32))


def test_old_configs_have_no_black_estimate_and_a_grown_one_starts_as_nothing() -> None:
    legacy = {k: v for k, v in CONSISTENT.to_dict().items() if k != "exposure_black"}
    assert GeneratorConfig.from_dict(legacy).exposure_black is False
    torch.manual_seed(0)
    base = build_generator(CONSISTENT).exposure
    grown = build_generator(dataclasses.replace(CONSISTENT, exposure_black=True)).exposure
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("black_head.") for k in missing)
    thumbs, _ = _thumbs(4, 1)
    gains, black = grown.levels(thumbs)
    darkest = decode_srgb(thumbs).amin(dim=(1, 2, 3))
    assert torch.all(black <= 0.003 * darkest + 1e-9)
    assert torch.allclose(gains, base(thumbs), atol=5e-3)  # stops: a quarter of a percent of the floor
    assert torch.equal(base.black_level(thumbs), torch.zeros(4))  # without the estimate: nothing taken off


def test_the_estimate_never_exceeds_the_darkest_value_and_can_learn_the_black() -> None:
    torch.manual_seed(3)
    branch = FrameExposure(black=True)
    optimiser = torch.optim.Adam(branch.black_head.parameters(), lr=1e-2)
    thumbs, blacks = _thumbs(64, 2)
    error = lambda: float(((branch.black_level(thumbs) - blacks) * 100).pow(2).mean().detach())  # noqa: E731
    before = error()
    for _ in range(200):
        optimiser.zero_grad()
        loss = ((branch.black_level(thumbs) - blacks) * 100).pow(2).mean()
        loss.backward()
        optimiser.step()
    assert error() < 0.3 * before
    with torch.no_grad():
        torch.nn.init.constant_(branch.black_head[-1].bias, 30.0)  # asked for far too much, it stops at the floor
        assert torch.all(branch.black_level(thumbs) <= decode_srgb(thumbs).amin(dim=(1, 2, 3)) + 1e-7)


def test_apply_gains_takes_the_black_off_in_linear_light_first() -> None:
    linear = np.full((4, 4, 3), 0.03, np.float32)
    out = srgb_to_linear(apply_gains(linear_to_srgb(linear), np.array([2.0, 2.0, 2.0]), black=0.01))
    assert np.allclose(out, (0.03 - 0.01) * 4.0, atol=1e-4)


def test_true_gains_of_a_capture_with_its_black_removed_undo_the_exposure_only() -> None:
    rng = np.random.default_rng(0)
    scene = rng.uniform(0.05, 0.8, (64, 64, 3)).astype(np.float32)
    camera = CameraModel(stops=4.0, full_well=1e7, read_noise=0.0, colour_loss=0.0, bits=16, black_level=0.02)
    dark = capture(scene, camera, rng)
    assert np.allclose(undo_gains(scene, dark, camera, black_removed=True), 4.0, atol=0.02)
    assert np.all(undo_gains(scene, dark, camera) < 3.5)  # the raised black looks like light: 0.8 stop short


def test_a_fine_tune_grows_the_estimate_on_a_model_without_one_trains_it_and_keeps_it(tmp_path) -> None:
    clean = _clean_dir(tmp_path / "clean")
    out = lambda d, steps=1: ["--out", str(tmp_path / d), "--steps", str(steps), *_SMALL]  # noqa: E731
    assert main(["train", "--clean", clean, *out("base")]) == 0
    base = str(tmp_path / "base" / "model.safetensors")
    assert main(["train", "--clean", clean, "--init", base, "--exposure-black", "true", *out("grown", 2)]) == 0
    grown = str(tmp_path / "grown" / "model.safetensors")
    assert read_meta(grown).generator.exposure_black is True
    bias = load_checkpoint(grown).generator.exposure.black_head[-1].bias
    assert float(bias) != -6.0  # its start moved: the estimate is trained with the rest
    assert main(["train", "--clean", clean, "--init", grown, *out("kept")]) == 0
    assert read_meta(tmp_path / "kept" / "model.safetensors").generator.exposure_black is True


def test_a_raised_black_that_the_branch_finds_does_not_change_the_frame_it_prepares() -> None:
    branch = FrameExposure(black=True).eval()
    with torch.no_grad():
        torch.nn.init.constant_(branch.black_head[-1].bias, 30.0)  # all of the darkest value
    scene = np.zeros((128, 128, 3), np.float32)
    scene[:, 32:] = np.random.default_rng(4).uniform(0.002, 0.03, (128, 96, 3))  # a quarter of it is black
    _, black = frame_levels(branch, linear_to_srgb(scene + 0.01))
    assert abs(black - 0.01) < 2e-4
    plain, raised = (normalise_exposure(branch, linear_to_srgb(scene + b)) for b in (0.0, 0.01))
    # (not exactly: the thumbnail averages encoded values, so its mean moves a little with the floor)
    assert np.abs(plain - raised).mean() < 0.01
    assert np.abs(normalise_exposure(FrameExposure().eval(), linear_to_srgb(scene + 0.01)) - plain).mean() > 0.05
