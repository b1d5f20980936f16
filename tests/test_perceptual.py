"""Perceptual feature networks: the shipped stlpips VGG16 against a functional rebuild from its
state dict, non-degenerate features, user VGG19 files in both formats, and every refusal."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from nightgrade.colorpipeline.errors import ModelError, UsageError
from nightgrade.models.training.perceptual import (
    PerceptualConfig,
    load_feature_network,
    stlpips_weights_path,
)
from nightgrade.server.cli.flags import flag

# torchvision VGG19 ``features``: conv indices per stage; each conv is followed by a ReLU, each
# stage after the first starts with a 2x2 stride-2 max pool
VGG19_CONVS = ((0, 2), (5, 7), (10, 12, 14, 16), (19, 21, 23, 25), (28, 30, 32, 34))
VGG19_WIDTHS = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


@pytest.fixture(scope="module")
def stlpips_state() -> dict[str, torch.Tensor]:
    return torch.load(stlpips_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def default_net() -> torch.nn.Module:
    return load_feature_network(PerceptualConfig(layers=5))


def _stlpips_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """The shift-tolerant VGG16 written out with functional ops, straight from the state dict keys."""
    h = (x - state["scaling_layer.shift"]) / state["scaling_layer.scale"]
    outputs = []
    for k in range(1, 6):
        prefix = f"net.slice{k}."
        indices = sorted({int(key[len(prefix):].split(".")[0]) for key in state if key.startswith(prefix)})
        for i in indices:
            if f"{prefix}{i}.filt" in state:  # anti-aliased pool: max 2x2 stride 1, reflect pad 2, blur stride 2
                h = F.max_pool2d(h, 2, stride=1)
                h = F.conv2d(F.pad(h, (2, 2, 2, 2), mode="reflect"), state[f"{prefix}{i}.filt"], stride=2,
                             groups=h.shape[1])
            else:
                h = F.relu(F.conv2d(h, state[f"{prefix}{i}.weight"], state[f"{prefix}{i}.bias"], padding=1))
        outputs.append(h)
    return outputs


def _scene(size: int = 64) -> torch.Tensor:
    """A structured RGB test card in [-1, 1]: ramp, gratings, a disc, a saturated block."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    red = 0.6 * x + 0.2
    green = 0.5 + 0.3 * torch.sin(12 * math.pi * y) * (x > 0.5)
    blue = ((x - 0.3) ** 2 + (y - 0.6) ** 2 < 0.04).float() * 0.8 + 0.1
    image = torch.stack([red, green, blue])
    image[:, size // 6:size // 3, size * 5 // 8:size * 15 // 16] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    return (image * 2 - 1)[None]


def _distance(net: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.stack([(p - q).abs().mean() for p, q in zip(net(a), net(b))]).mean())


def test_default_network_equals_functional_rebuild(stlpips_state: dict, default_net: torch.nn.Module) -> None:
    torch.manual_seed(0)
    for shape in [(2, 3, 64, 64), (1, 3, 45, 70)]:
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            ours, ref = default_net(x), _stlpips_reference(stlpips_state, x)
        assert len(ours) == len(ref) == 5
        for a, b in zip(ours, ref):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert [f.shape[-1] for f in ours] == [70, 36, 19, 10, 6]  # stride-1 max pool + pad-2 blur: n -> n//2 + 1


def test_shipped_file_is_the_expected_network(stlpips_state: dict) -> None:
    binomial = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    filters = [key for key in stlpips_state if key.endswith(".filt")]
    assert len(filters) == 4
    for key in filters:
        assert torch.equal(stlpips_state[key], binomial.expand_as(stlpips_state[key]))
    # LPIPS input scaling = ImageNet mean/std applied to (x + 1) / 2
    shift, scale = stlpips_state["scaling_layer.shift"].flatten(), stlpips_state["scaling_layer.scale"].flatten()
    torch.testing.assert_close(shift, 2 * torch.tensor([0.485, 0.456, 0.406]) - 1, atol=1e-3, rtol=0)
    torch.testing.assert_close(scale, 2 * torch.tensor([0.229, 0.224, 0.225]), atol=1e-3, rtol=0)


def test_features_of_structured_image_are_informative(default_net: torch.nn.Module) -> None:
    scene = _scene()
    with torch.no_grad():
        features = default_net(scene)
    for name, f in zip(default_net.layer_names, features):
        assert torch.isfinite(f).all(), name
        active = float((f > 0).float().mean())
        alive_channels = int((f.amax(dim=(0, 2, 3)) > 0).sum())
        assert 0.01 < active < 0.9, (name, active)
        assert alive_channels >= f.shape[1] // 10, (name, alive_channels)
        assert float(f.std(dim=(2, 3)).max()) > 0, name  # responses vary over the image
    assert _distance(default_net, scene, scene) == 0.0
    # a darker version must register (the net is used on low-light data)
    assert _distance(default_net, scene, (scene + 1) * 0.3 - 1) > 1e-3
    # shift tolerance: a one-pixel shift costs less than noise of the same pixel L1
    shifted = torch.roll(scene, 1, dims=3)
    noise = torch.randn(scene.shape, generator=torch.Generator().manual_seed(0))
    noise *= (shifted - scene).abs().mean() / noise.abs().mean()
    assert _distance(default_net, scene, shifted) < _distance(default_net, scene, scene + noise)


def test_network_is_frozen_but_passes_gradients_to_its_input(default_net: torch.nn.Module) -> None:
    assert not any(p.requires_grad for p in default_net.parameters())
    parent = torch.nn.ModuleDict({"phi": default_net})
    parent.train()
    assert not default_net.training
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    sum(f.mean() for f in default_net(x)).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in default_net.parameters())


@pytest.mark.parametrize("layers, last", [(1, "relu1_2"), (3, "relu3_3"), (5, "relu5_3")])
def test_layer_count_and_description(layers: int, last: str) -> None:
    net = load_feature_network(PerceptualConfig(layers=layers))
    assert len(net.stages) == layers and net.layer_names[-1] == last
    with torch.no_grad():
        assert len(net(torch.zeros(1, 3, 32, 32))) == layers
    text = net.describe()
    assert text.startswith("stlpips VGG16 shift-tolerant") and text.endswith(
        "relu1_2" if layers == 1 else f"relu1_2..{last}")


def test_default_description_matches_brief_format() -> None:
    assert load_feature_network(PerceptualConfig()).describe() == \
        "stlpips VGG16 shift-tolerant (stlpips-pytorch 0.0.2), relu1_2..relu3_3"


@pytest.mark.parametrize("layers", [0, 6])
def test_bad_layer_count_is_a_usage_error(layers: int) -> None:
    with pytest.raises(UsageError, match="between 1 and 5"):
        PerceptualConfig(layers=layers)


def test_missing_stlpips_package_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "stlpips_pytorch" else real(name, *a))
    with pytest.raises(ModelError) as info:
        load_feature_network(PerceptualConfig())
    message = info.value.naming(flag)  # as the CLI prints it
    assert "pip install stlpips-pytorch" in message and "--perceptual-weights" in message and "\n" not in message


# ---- user-supplied VGG19 -------------------------------------------------------------------

def _vgg19_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for indices, widths in zip(VGG19_CONVS, VGG19_WIDTHS):
        for index, width in zip(indices, widths):
            std = math.sqrt(2.0 / (9 * cin))  # He init keeps activations alive through 16 layers
            state[f"features.{index}.weight"] = torch.randn(width, cin, 3, 3, generator=generator) * std
            state[f"features.{index}.bias"] = torch.randn(width, generator=generator) * 0.01
            cin = width
    state["classifier.0.weight"] = torch.zeros(8, 4)  # ignored, as torchvision files carry a classifier
    return state


def _vgg19_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = ((x + 1) / 2 - mean) / std
    outputs = []
    for stage, indices in enumerate(VGG19_CONVS):
        if stage:
            h = F.max_pool2d(h, 2, stride=2)
        for index in indices:
            h = F.relu(F.conv2d(h, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
        outputs.append(h)
    return outputs


def test_user_vgg19_in_both_formats_equals_reference(tmp_path: Path) -> None:
    state = _vgg19_state()
    pth, safe = tmp_path / "vgg19.pth", tmp_path / "vgg19.safetensors"
    torch.save(state, pth)
    # a file saved from ``vgg19().features`` has no "features." prefix
    save_file({k.removeprefix("features."): v for k, v in state.items()}, str(safe))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    reference = _vgg19_reference(state, x)
    for path in (pth, safe):
        net = load_feature_network(PerceptualConfig(weights=str(path), layers=5))
        assert net.layer_names == ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
        assert not any(p.requires_grad for p in net.parameters())
        with torch.no_grad():
            ours = net(x)
        assert [f.shape[-1] for f in ours] == [32, 16, 8, 4, 2]
        for a, b in zip(ours, reference):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert path.name in net.describe() and net.describe().endswith("relu1_2..relu5_4")
    three = load_feature_network(PerceptualConfig(weights=str(pth)))
    assert len(three.stages) == 3 and three.describe().endswith("relu1_2..relu3_4")


def _refusal(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        load_feature_network(PerceptualConfig(weights=str(path)))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_user_file_refusals(tmp_path: Path) -> None:
    assert "do not exist" in _refusal(tmp_path / "absent.pth")

    odd = tmp_path / "vgg19.bin"
    odd.write_bytes(b"x")
    assert "unknown file type" in _refusal(odd)

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    assert "cannot be read" in _refusal(junk)

    # a VGG16 state dict has convs at other indices (e.g. no features.16)
    vgg16 = {}
    for index, (cin, cout) in zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
                                  [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                                   (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]):
        vgg16[f"features.{index}.weight"] = torch.zeros(cout, cin, 3, 3)
        vgg16[f"features.{index}.bias"] = torch.zeros(cout)
    save_file(vgg16, str(tmp_path / "vgg16.safetensors"))
    message = _refusal(tmp_path / "vgg16.safetensors")
    assert "missing 12 tensors (features.16.bias, features.16.weight, features.23.bias, ...)" in message
    assert "unexpected 6 tensors (features.17.bias" in message and "VGG19" in message

    bad_shape = _vgg19_state()
    bad_shape["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    save_file(bad_shape, str(tmp_path / "shape.safetensors"))
    assert "features.2.weight: (64, 32, 3, 3), expected (64, 64, 3, 3)" in _refusal(tmp_path / "shape.safetensors")

    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": _vgg19_state()}, nested)
    assert "not a state dict of tensors" in _refusal(nested)

    # a pickle that needs arbitrary code is refused by weights-only unpickling, never executed
    code = tmp_path / "code.pth"
    torch.save({"features.0.weight": torch.zeros(1), "hook": Path("/")}, code)
    assert "cannot be read as a plain tensor state dict" in _refusal(code)

    nan = _vgg19_state()
    nan["features.0.bias"][0] = float("nan")
    save_file(nan, str(tmp_path / "nan.safetensors"))
    assert "not finite" in _refusal(tmp_path / "nan.safetensors")
