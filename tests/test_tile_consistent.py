"""The tile-consistent generator variant and the frame exposure branch (issue 14, items 4 and 5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.lowlight import linear_to_srgb, srgb_to_linear
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.models.exposure import THUMB, FrameExposure, apply_gains, frame_gains
from nightgrade.models.networks import Generator, GeneratorConfig, build_generator

CONSISTENT = GeneratorConfig(ngf=4, n_blocks=1, n_downsample=3, norm="none", skips=True, residual=True, exposure=True)


def _frame(h: int = 200, w: int = 296, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.1 + 0.2 * xx, 0.05 + 0.1 * yy, 0.08 + 0.05 * xx * yy], axis=-1)
    return np.clip(base + rng.normal(0, 0.02, (h, w, 3)), 0, 1).astype(np.float32)


def test_old_checkpoints_keep_the_paper_layout() -> None:
    legacy = {k: v for k, v in GeneratorConfig().to_dict().items() if k not in ("norm", "skips", "residual", "exposure")}
    cfg = GeneratorConfig.from_dict(legacy)
    assert (cfg.norm, cfg.skips, cfg.residual, cfg.exposure) == ("instance", False, False, False)
    names = set(Generator(GeneratorConfig(ngf=4, n_blocks=1)).state_dict())
    assert "encoder.0.1.weight" in names and not any(n.startswith("exposure.") for n in names)


def test_bad_variant_options_are_refused() -> None:
    with pytest.raises(ValueError, match="norm"):
        GeneratorConfig(norm="batch")
    with pytest.raises(ValueError, match="residual needs out_channels = 3"):
        GeneratorConfig(out_channels=6, residual=True)


def test_residual_head_starts_from_the_input_when_the_correction_is_zero() -> None:
    torch.manual_seed(0)
    net = build_generator(CONSISTENT).eval()
    torch.nn.init.zeros_(net.output[0][1].weight)
    torch.nn.init.zeros_(net.output[0][1].bias)
    x = torch.rand(2, 6, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), x[:, :3])


@pytest.mark.parametrize("n_downsample", [2, 3])
def test_skip_variant_keeps_shapes(n_downsample: int) -> None:
    net = build_generator(GeneratorConfig(ngf=4, n_blocks=1, n_downsample=n_downsample, norm="none", skips=True))
    assert net(torch.zeros(1, 6, 64, 64)).shape == (1, 3, 64, 64)


def test_output_does_not_depend_on_the_tile_grid(tmp_path) -> None:
    torch.manual_seed(1)
    engine = Engine(build_generator(CONSISTENT), TileConfig(64, 192, 32), EngineConfig(device="cpu"))
    frame = _frame()
    a = engine.enhance(frame, TileConfig(local=64, region=192))
    b = engine.enhance(frame, TileConfig(local=96, region=288))
    assert float(np.mean(np.abs(a - b))) <= 0.005
    # the paper's per-tile InstanceNorm is what this variant removes: it fails the same check
    torch.manual_seed(1)
    paper = Engine(build_generator(GeneratorConfig(ngf=4, n_blocks=1)), TileConfig(64, 192, 32), EngineConfig(device="cpu"))
    c, d = paper.enhance(frame, TileConfig(local=64, region=192)), paper.enhance(frame, TileConfig(local=96, region=288))
    assert float(np.mean(np.abs(c - d))) > float(np.mean(np.abs(a - b)))


def test_exposure_branch_starts_as_auto_exposure() -> None:
    branch = FrameExposure().eval()
    grey = np.full((THUMB * 2, THUMB * 3, 3), 0.01, np.float32)  # linear 0.01 everywhere
    gains = frame_gains(branch, linear_to_srgb(grey))
    assert np.allclose(gains, np.log2(0.18 / 0.01), atol=5e-3)


def test_apply_gains_multiplies_linear_light_and_clips() -> None:
    frame = linear_to_srgb(np.array([[[0.1, 0.2, 0.6]]], np.float32))
    out = srgb_to_linear(apply_gains(frame, np.array([1.0, 0.0, 1.0])))
    assert np.allclose(out, [[[0.2, 0.2, 1.0]]], atol=1e-5)


def test_proxy_frame_gets_the_same_exposure() -> None:
    import cv2

    torch.manual_seed(2)
    branch = FrameExposure().eval()
    for p in branch.head.parameters():
        torch.nn.init.normal_(p, 0, 0.1)  # a branch with learned corrections, not just the mean
    frame = _frame(400, 592, seed=3)
    half = cv2.resize(frame, (296, 200), interpolation=cv2.INTER_AREA)
    assert np.allclose(frame_gains(branch, frame), frame_gains(branch, half), atol=0.02)


def test_engine_applies_the_frame_exposure_once_before_tiling(tmp_path) -> None:
    torch.manual_seed(3)
    net = build_generator(CONSISTENT)
    meta = CheckpointMeta(generator=CONSISTENT, tiles=TileConfig(64, 192, 32), model_name="t", model_version="1")
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, net, meta)
    loaded = load_checkpoint(path)
    assert isinstance(loaded.generator.exposure, FrameExposure)
    engine = Engine.from_checkpoint(path, EngineConfig(device="cpu"))
    frame = _frame() * 0.2
    prepared = engine.prepare_frame(frame)
    assert prepared.mean() > frame.mean() * 2  # auto exposure brightens a dark frame
    brighter = engine.prepare_frame(frame, exposure_stops=1.0)
    assert srgb_to_linear(brighter).mean() > srgb_to_linear(prepared).mean() * 1.5


def test_exposure_without_the_learned_level_keeps_auto_exposure_and_the_channel_balance() -> None:
    from nightgrade.models.exposure import FrameExposure
    torch.manual_seed(0)
    with_level, without = FrameExposure(), FrameExposure(level=False)
    without.load_state_dict(with_level.state_dict())
    with torch.no_grad():
        for branch in (with_level, without):
            branch.head[-1].bias.copy_(torch.tensor([1.0, 0.25, 0.0, -0.25]))  # a global +1 stop, a cast
    thumb = torch.rand(2, 3, 64, 64) * 0.05
    a, b = with_level(thumb), without(thumb)
    assert torch.allclose(a - b, torch.ones_like(a), atol=1e-5)  # only the global guess differs
    assert not torch.allclose(b[:, 0], b[:, 2])                  # the per-channel balance stays
    # the option is part of the architecture: old checkpoints load with the level on
    assert GeneratorConfig.from_dict({k: v for k, v in GeneratorConfig().to_dict().items()
                                      if k != "exposure_level"}).exposure_level is True


def test_mirror_averaged_exposure_does_not_depend_on_where_things_sit_in_the_frame() -> None:
    torch.manual_seed(4)
    plain, mirrored = FrameExposure().eval(), FrameExposure(mirrors=True).eval()
    for p in plain.parameters():
        torch.nn.init.normal_(p, 0, 0.1)  # a branch with learned corrections that see layout
    mirrored.load_state_dict(plain.state_dict())
    thumb = torch.rand(1, 3, THUMB, THUMB) * torch.linspace(0.02, 0.3, THUMB)  # dark left, brighter right
    images = [thumb, thumb.flip(3), thumb.flip(2), thumb.flip(2, 3)]
    with torch.no_grad():
        plain_gains = [plain(t) for t in images]
        mirror_gains = [mirrored(t) for t in images]
    # the plain branch gives a frame and its mirror image different exposures; this is what the switch removes
    assert (plain_gains[0] - plain_gains[1]).abs().max() > 1e-3
    for gains in mirror_gains[1:]:
        assert torch.allclose(gains, mirror_gains[0], atol=1e-5)
    assert torch.allclose(mirror_gains[0], torch.stack(plain_gains).mean(dim=0), atol=1e-5)
    # a batch averages each frame over its own mirrors only
    with torch.no_grad():
        batch = mirrored(torch.cat([thumb, torch.full_like(thumb, 0.05)]))
    assert torch.allclose(batch[:1], mirror_gains[0], atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])
    # the switch is part of the architecture: checkpoints written before it load with it off
    assert GeneratorConfig.from_dict({k: v for k, v in GeneratorConfig().to_dict().items()
                                      if k != "exposure_mirrors"}).exposure_mirrors is False
    assert build_generator(GeneratorConfig(ngf=4, n_blocks=1, exposure=True,
                                           exposure_mirrors=True)).exposure.mirrors is True
