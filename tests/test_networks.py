"""Generator / discriminator shapes, parameter counts from the layer formulae, learnable shrinkage."""
from __future__ import annotations

import pytest
import torch

from nightgrade.colorpipeline.errors import ModelError
from nightgrade.models.networks import (
    DiscriminatorConfig,
    GeneratorConfig,
    LearnableSoftShrink,
    build_discriminator,
    build_generator,
    discriminator_output_size,
)

TINY = GeneratorConfig(ngf=8, n_blocks=2)


def _n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("n_down, multiple", [(3, 8), (2, 4)])
def test_generator_output_shape_for_sizes_divisible_by_multiple(n_down: int, multiple: int) -> None:
    cfg = GeneratorConfig(ngf=8, n_blocks=2, n_downsample=n_down)
    net = build_generator(cfg).eval()
    assert net.size_multiple == cfg.size_multiple == multiple
    with torch.no_grad():
        for h, w in [(2 * multiple, 2 * multiple), (32, 48), (40, 24)]:
            y = net(torch.rand(2, 6, h, w) * 2 - 1)
            assert y.shape == (2, 3, h, w)
            assert float(y.abs().max()) <= 1.0


def test_generator_parameter_count_matches_layer_formulae() -> None:
    ngf, blocks, cin, cout = 8, 2, 6, 3
    conv = lambda i, o: 9 * i * o  # 3x3, no bias before instance norm  # noqa: E731
    encoder = conv(cin, ngf) + conv(ngf, 2 * ngf) + conv(2 * ngf, 4 * ngf)
    thresholds = ngf + 2 * ngf + 4 * ngf
    transform = blocks * 2 * conv(4 * ngf, 4 * ngf)
    decoder = conv(4 * ngf, 2 * ngf) + conv(2 * ngf, ngf) + conv(ngf, ngf)
    output = conv(ngf, cout) + cout
    expected = encoder + thresholds + transform + decoder + output
    for n_down in (2, 3):  # strides change shapes, not weights
        cfg = GeneratorConfig(in_channels=cin, out_channels=cout, ngf=ngf, n_blocks=blocks, n_downsample=n_down)
        assert _n_params(build_generator(cfg)) == expected
    assert _n_params(build_generator(GeneratorConfig(in_channels=3, ngf=ngf, n_blocks=blocks))) \
        == expected - 9 * 3 * ngf


def test_three_channel_baseline_generator() -> None:
    net = build_generator(GeneratorConfig(in_channels=3, ngf=8, n_blocks=2)).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 6, 32, 32))


def test_discriminator_is_five_convs_and_outputs_patch_map() -> None:
    ndf, cin = 8, 3
    cfg = DiscriminatorConfig(in_channels=cin, ndf=ndf, n_layers=3)
    net = build_discriminator(cfg)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(c.kernel_size == (4, 4) for c in convs)
    # first and last convs carry a bias (no norm after them); the three normed ones do not
    expected = (16 * cin * ndf + ndf) + 16 * ndf * 2 * ndf + 16 * 2 * ndf * 4 * ndf \
        + 16 * 4 * ndf * 8 * ndf + (16 * 8 * ndf + 1)
    assert _n_params(net) == expected
    for size, side in [(32, 2), (64, 6), (256, 30)]:  # 256 -> 30x30: CycleGAN's 70x70 PatchGAN
        assert discriminator_output_size(cfg, size) == side
        with torch.no_grad():
            assert net(torch.rand(2, cin, size, size)).shape == (2, 1, side, side)
    six = build_discriminator(DiscriminatorConfig(in_channels=6, ndf=ndf))
    with torch.no_grad():
        assert six(torch.rand(1, 6, 32, 32)).shape == (1, 1, 2, 2)


def test_shrinkage_zeroes_small_values_and_shrinks_large_ones() -> None:
    shrink = LearnableSoftShrink(2, init=0.5)
    lam = shrink.threshold.detach()
    assert torch.allclose(lam, torch.tensor([0.5, 0.5]))
    x = torch.tensor([-2.0, -0.49, 0.0, 0.3, 0.49, 0.8]).view(1, 1, 1, 6).repeat(1, 2, 1, 1)
    y = shrink(x).detach()
    expected = torch.tensor([-1.5, 0.0, 0.0, 0.0, 0.0, 0.3])
    assert torch.allclose(y[0, 0, 0], expected, atol=1e-6)
    assert torch.allclose(y[0, 1, 0], expected, atol=1e-6)


def test_shrinkage_threshold_is_learned() -> None:
    torch.manual_seed(0)
    shrink = LearnableSoftShrink(3, init=0.05)
    x = torch.randn(4, 3, 8, 8)
    # toy target: shrinkage with a per-channel threshold of 0.1, 0.4 and 0.8
    target_lam = torch.tensor([0.1, 0.4, 0.8]).view(1, 3, 1, 1)
    target = x - torch.clamp(x, -target_lam, target_lam)
    opt = torch.optim.Adam(shrink.parameters(), lr=0.05)
    before = shrink.threshold.detach().clone()
    for step in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(shrink(x), target)
        loss.backward()
        if step == 0:
            assert shrink.raw.grad is not None and bool((shrink.raw.grad != 0).all())
        opt.step()
    after = shrink.threshold.detach()
    assert not torch.allclose(before, after)
    assert torch.allclose(after, target_lam.flatten(), atol=0.03)
    assert bool((after >= 0).all())


def test_generator_thresholds_get_gradients() -> None:
    torch.manual_seed(0)
    net = build_generator(TINY)
    net(torch.rand(2, 6, 32, 32) * 2 - 1).mean().backward()
    shrinks = [m for m in net.modules() if isinstance(m, LearnableSoftShrink)]
    assert len(shrinks) == 3
    assert all(m.raw.grad is not None and float(m.raw.grad.abs().sum()) > 0 for m in shrinks)


def test_config_dict_round_trip_and_validation() -> None:
    cfg = GeneratorConfig(in_channels=3, ngf=16, n_blocks=4, n_downsample=2, shrink_init=0.1)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    dcfg = DiscriminatorConfig(in_channels=6, ndf=32, n_layers=4)
    assert DiscriminatorConfig.from_dict(dcfg.to_dict()) == dcfg
    with pytest.raises(ModelError, match="unknown key 'width'"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "width": 3})
    bad = cfg.to_dict()
    del bad["n_blocks"]
    with pytest.raises(ModelError, match="missing key 'n_blocks'"):
        GeneratorConfig.from_dict(bad)
    with pytest.raises(ModelError, match="ngf must be an integer"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "ngf": True})
    with pytest.raises(ModelError, match="n_downsample must be in"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "n_downsample": 4})
    with pytest.raises(ModelError, match="must be a JSON object"):
        DiscriminatorConfig.from_dict([1, 2])
    with pytest.raises(ValueError, match="shrink_init"):
        GeneratorConfig(shrink_init=0.0)
