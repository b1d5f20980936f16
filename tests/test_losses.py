"""Losses of paper Sec. 3.2 on hand-computed tensors, gradient routing, and the image pool's
determinism and checkpoint round trip."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nightgrade.colorpipeline.errors import ModelError, UsageError
from nightgrade.models.training.losses import (
    ImagePool,
    discriminator_loss,
    generator_adversarial_loss,
    l1,
    mix_local_region,
    perceptual_l1,
)
from nightgrade.models.training.perceptual import PerceptualConfig, load_feature_network

REAL = torch.tensor([1.0, 0.5]).view(2, 1, 1, 1)
FAKE = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)


def _close(value: torch.Tensor, expected: float) -> None:
    assert value.ndim == 0
    assert float(value) == pytest.approx(expected, abs=1e-6)


def test_lsgan_values() -> None:
    # D: ((0^2 + 0.5^2)/2 + (0^2 + 1^2)/2) / 2; G: ((0-1)^2 + (1-1)^2) / 2
    _close(discriminator_loss("lsgan", REAL, FAKE), (0.125 + 0.5) / 2)
    _close(generator_adversarial_loss("lsgan", FAKE), 0.5)
    _close(generator_adversarial_loss("lsgan", FAKE, REAL), 0.5)  # real scores play no part


def test_ralsgan_values() -> None:
    # E C(x_r) = 0.75, E C(x_f) = 0.5
    # D: real term ((1-0.5-1)^2 + (0.5-0.5-1)^2)/2 = 0.625, fake term ((0-0.75+1)^2 + (1-0.75+1)^2)/2 = 0.8125
    _close(discriminator_loss("ralsgan", REAL, FAKE), (0.625 + 0.8125) / 2)
    # G: ((1-0.5+1)^2 + (0.5-0.5+1)^2)/2 = 1.625, ((0-0.75-1)^2 + (1-0.75-1)^2)/2 = 1.8125
    _close(generator_adversarial_loss("ralsgan", FAKE, REAL), (1.625 + 1.8125) / 2)


def test_ralsgan_averages_whole_patch_maps_and_allows_unequal_batches() -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(2, 1, 4, 4)
    r, f = real.flatten().tolist(), fake.flatten().tolist()
    mean_r, mean_f = sum(r) / len(r), sum(f) / len(f)
    d = (sum((v - mean_f - 1) ** 2 for v in r) / len(r) + sum((v - mean_r + 1) ** 2 for v in f) / len(f)) / 2
    g = (sum((v - mean_f + 1) ** 2 for v in r) / len(r) + sum((v - mean_r - 1) ** 2 for v in f) / len(f)) / 2
    _close(discriminator_loss("ralsgan", real, fake), d)
    _close(generator_adversarial_loss("ralsgan", fake, real), g)


@pytest.mark.parametrize("offset", [0.0, 3.7, -12.0])
def test_ralsgan_is_zero_at_target_margins_whatever_the_offset(offset: float) -> None:
    shape = (2, 1, 6, 6)
    high, low = torch.full(shape, 0.5 + offset), torch.full(shape, -0.5 + offset)
    # discriminator satisfied: real beats average fake by 1 and fake trails average real by 1
    _close(discriminator_loss("ralsgan", high, low), 0.0)
    # generator satisfied: the roles reversed
    _close(generator_adversarial_loss("ralsgan", high, low), 0.0)
    # LSGAN is absolute, not relative: the same scores are not a minimum for it
    assert float(discriminator_loss("lsgan", high, low)) > 0.1


def test_mode_and_argument_errors() -> None:
    with pytest.raises(UsageError, match="use one of lsgan, ralsgan"):
        discriminator_loss("hinge", REAL, FAKE)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="use one of lsgan, ralsgan"):
        generator_adversarial_loss("wgan", FAKE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs real_scores"):
        generator_adversarial_loss("ralsgan", FAKE)


def test_l1_value_and_shape_check() -> None:
    a = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    b = torch.tensor([[0.0, 2.0], [0.5, -1.0]])
    _close(l1(a, b), (1 + 4 + 0 + 1) / 4)
    with pytest.raises(ValueError, match="shapes differ"):
        l1(a, b[:1])


def test_perceptual_l1_is_mean_over_layers_of_mean_abs_difference() -> None:
    def two_layers(x: torch.Tensor) -> list[torch.Tensor]:
        return [x, 2 * x[:, :, ::2, ::2]]

    a = torch.zeros(2, 3, 4, 4)
    b = torch.zeros(2, 3, 4, 4)
    b[0, :, 0, 0] = 1.0  # a pixel kept by the stride-2 "layer": layer means 3/96 and 2*3/24
    _close(perceptual_l1(two_layers, a, b), (3 / 96 + 6 / 24) / 2)
    b[1, :, 1, 1] = 1.0  # a pixel the second "layer" drops
    _close(perceptual_l1(two_layers, a, b), (6 / 96 + 6 / 24) / 2)
    _close(perceptual_l1(two_layers, b, b), 0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        perceptual_l1(two_layers, a, b[:1])


def test_perceptual_l1_batches_without_mixing_samples() -> None:
    phi = load_feature_network(PerceptualConfig(layers=2))
    torch.manual_seed(0)
    a, b = torch.rand(3, 3, 24, 24) * 2 - 1, torch.rand(3, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        separate = torch.stack([(p - q).abs().mean() for p, q in zip(phi(a), phi(b))]).mean()
        torch.testing.assert_close(perceptual_l1(phi, a, b), separate)


def test_gradients_reach_generator_not_frozen_features_or_detached_side() -> None:
    torch.manual_seed(0)
    phi = load_feature_network(PerceptualConfig(layers=2))
    generator = torch.nn.Conv2d(3, 3, 3, padding=1)
    discriminator = torch.nn.Conv2d(3, 1, 4, stride=2)
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = torch.tanh(generator(real))

    loss = perceptual_l1(phi, fake, real) + l1(fake, real) \
        + generator_adversarial_loss("ralsgan", discriminator(fake), discriminator(real))
    loss.backward()
    assert generator.weight.grad is not None and float(generator.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in phi.parameters())

    generator.zero_grad()
    discriminator.zero_grad()
    for mode in ("lsgan", "ralsgan"):
        discriminator_loss(mode, discriminator(real), discriminator(fake.detach())).backward()
    assert generator.weight.grad is None  # zero_grad set it to None and nothing reached it since
    assert float(discriminator.weight.grad.abs().sum()) > 0


def test_mix_local_region_follows_eq_2() -> None:
    local, region = torch.tensor(2.0), torch.tensor(4.0)
    _close(mix_local_region(local, region), 0.9 * 2 + 0.1 * 4)
    _close(mix_local_region(local, region, w=0.6), 0.6 * 2 + 0.4 * 4)
    _close(mix_local_region(local, region, w=1.0), 2.0)
    for w in (0.5, 0.3, 0.0, 1.01, -1.0):
        with pytest.raises(UsageError, match=r"0.5 < w <= 1"):
            mix_local_region(local, region, w=w)


# ---- image pool ----------------------------------------------------------------------------

def _batches(n: int, seed: int = 1, size: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(size, 3, 4, 4, generator=generator) for _ in range(n)]


def _run(pool: ImagePool, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    return [pool.query(batch) for batch in batches]


def test_pool_fills_first_then_swaps_about_half() -> None:
    pool = ImagePool(size=6, rng=0)
    batches = _batches(203)
    outputs = _run(pool, batches[:3])
    assert all(torch.equal(o, b) for o, b in zip(outputs, batches[:3])) and len(pool) == 6
    seen: list[torch.Tensor] = [image for batch in batches[:3] for image in batch]
    swapped = 0
    for batch in batches[3:]:
        for image_in, image_out in zip(batch, pool.query(batch)):
            if not torch.equal(image_in, image_out):
                swapped += 1
                assert any(torch.equal(image_out, old) for old in seen)  # only earlier fakes come back
            seen.append(image_in)
    assert 0.4 < swapped / 400 < 0.6 and len(pool) == 6


def test_pool_is_deterministic_per_seed_and_detaches() -> None:
    batches = _batches(40)
    first = _run(ImagePool(5, rng=7), batches)
    second = _run(ImagePool(5, rng=torch.Generator().manual_seed(7)), batches)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = _run(ImagePool(5, rng=8), batches)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    fake = torch.rand(2, 3, 4, 4, requires_grad=True)
    assert not ImagePool(5).query(fake * 2).requires_grad


def test_pool_of_size_zero_passes_batches_through() -> None:
    pool = ImagePool(size=0)
    for batch in _batches(5):
        assert torch.equal(pool.query(batch), batch)
    assert len(pool) == 0


def _save_pool(pool: ImagePool, path: Path) -> None:
    tensors, meta = pool.state_dict()
    save_file({f"pool_a.{k}": v for k, v in tensors.items()}, str(path), metadata={"pool_a": json.dumps(meta)})


def _load_pool(pool: ImagePool, path: Path) -> None:
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["pool_a"])
    pool.load_state_dict({k.removeprefix("pool_a."): v for k, v in load_file(str(path)).items()}, meta)


@pytest.mark.parametrize("steps_before", [0, 2, 30])
def test_pool_resumes_bit_identically_through_safetensors(tmp_path: Path, steps_before: int) -> None:
    batches = _batches(60)
    uninterrupted = _run(ImagePool(8, rng=3), batches)

    before = ImagePool(8, rng=3)
    _run(before, batches[:steps_before])
    _save_pool(before, tmp_path / "pool.safetensors")
    after = ImagePool(8, rng=99)  # a fresh run with another seed: the checkpoint must override it
    _load_pool(after, tmp_path / "pool.safetensors")
    assert len(after) == len(before) == min(8, 2 * steps_before)
    resumed = _run(after, batches[steps_before:])
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted[steps_before:], resumed))


def test_pool_refuses_state_of_another_pool() -> None:
    source = ImagePool(4, rng=0)
    _run(source, _batches(3))
    tensors, meta = source.state_dict()
    with pytest.raises(ModelError, match="size 4"):
        ImagePool(5).load_state_dict(tensors, meta)
    with pytest.raises(ModelError, match="corrupt"):
        ImagePool(4).load_state_dict({"rng_state": tensors["rng_state"]}, meta)
    with pytest.raises(ModelError, match="corrupt"):
        ImagePool(4).load_state_dict({"images": tensors["images"]}, meta)
    with pytest.raises(ValueError, match="holds"):
        source.query(torch.rand(1, 3, 8, 8))
