"""Frozen VGG feature networks phi for the perceptual region loss (paper Sec. 3.2, Eq. 3b and 4b).

Nothing is downloaded. Two sources of weights:

- Default: the shift-tolerant VGG16 that ships inside the ``stlpips-pytorch`` wheel
  (Ghildyal & Liu, "Shift-tolerant perceptual similarity metric", ECCV 2022; file
  ``stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth``). The package is located on disk
  and never imported (its modules import torchvision). Architecture, rebuilt here in plain
  torch: torchvision's VGG16 convs, but every 2x2 stride-2 max pool is replaced by a stride-1
  2x2 max pool followed by anti-aliased downsampling (Zhang 2019, "Making convolutional
  networks shift-invariant again": reflect pad 2, depthwise [1,2,1]x[1,2,1]/16 blur, stride 2).
  Features: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (LPIPS slices); the first
  ``layers`` are used.
- ``--perceptual-weights FILE``: a torchvision VGG19 state dict (``features.N.weight/bias``,
  optionally with ``classifier.*``, which is ignored), as ``.safetensors`` or ``.pth``; a
  ``.pth`` is read with weights-only unpickling, so it cannot run code. Features: relu1_2,
  relu2_2, relu3_4, relu4_4, relu5_4 (the last ReLU before each pool).

Input: RGB in [-1, 1] (the generators' tanh range). Both networks normalise it as LPIPS
does, ``(x - shift) / scale`` with shift = 2*mean - 1 = (-0.030, -0.088, -0.188) and
scale = 2*std = (0.458, 0.448, 0.450), i.e. ImageNet mean/std normalisation of (x + 1) / 2.
The stlpips file carries these constants itself (``scaling_layer``); for VGG19 they come
from the ImageNet statistics below.

Deviation from the paper: the paper uses an ImageNet-pretrained VGG19 (and the authors' code
uses torchvision's VGG16 ``features[:31]``, without input normalisation). The default here is
a VGG16 whose weights were trained for perceptual similarity with blurred downsampling. Its
early features (which a region loss over 3 layers mostly sees) respond to the same edges and
textures, but it is deliberately insensitive to one- or two-pixel shifts, so the region term
penalises small misalignments less than an ImageNet VGG19 would; colour/contrast terms are
unaffected by that. Absolute loss values differ between the two networks, so lambdas tuned
with one are not exactly transferable. Pass real VGG19 weights to follow the paper.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from nightgrade.colorpipeline.errors import ModelError, UsageError, setting

STLPIPS_PACKAGE = "stlpips_pytorch"
STLPIPS_WEIGHTS = Path("weights") / "vST0.0" / "vgg_shift_tolerant.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_LAYERS = 5

# Conv widths of the five VGG stages (configs "D" and "E" of Simonyan & Zisserman).
_VGG16_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
_VGG19_WIDTHS = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)

Pooling = Literal["max", "blur"]


@dataclass(frozen=True)
class PerceptualConfig:
    """Which feature network phi to use: ``weights=None`` is the shipped stlpips VGG16; a path
    is a user VGG19 state dict. ``layers`` is how many stages (1-5, shallowest first) feed the loss."""

    weights: str | None = None
    layers: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.layers <= MAX_LAYERS:
            raise UsageError(f"perceptual layers must be between 1 and {MAX_LAYERS}, got {self.layers}")


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling (Zhang 2019): reflect pad 2, depthwise binomial blur.

    The filter is a buffer so that it is checked against, and loaded from, the shipped file."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16.0
        self.register_buffer("filt", kernel.expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pad 2 (not 1) on each side, as the shipped network was trained ("pad_more")
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _layout(widths: tuple[tuple[int, ...], ...], pooling: Pooling, n_stages: int
            ) -> Iterator[tuple[int, int, str, int, int]]:
    """Yield (stage, index, kind, in_ch, out_ch) with torchvision's ``features`` indices.

    ``blur`` pooling uses two indices per pool (max pool stride 1, then BlurDownsample), as the
    stlpips network does; ``max`` pooling one (torchvision)."""
    index, channels = 0, 3
    for stage, stage_widths in enumerate(widths[:n_stages]):
        if stage > 0:
            if pooling == "blur":
                yield stage, index, "maxpool1", channels, channels
                yield stage, index + 1, "blur", channels, channels
                index += 2
            else:
                yield stage, index, "maxpool2", channels, channels
                index += 1
        for width in stage_widths:
            yield stage, index, "conv", channels, width
            yield stage, index + 1, "relu", width, width
            index += 2
            channels = width


def _build_stages(widths: tuple[tuple[int, ...], ...], pooling: Pooling, n_stages: int,
                  state: dict[str, torch.Tensor]) -> nn.ModuleList:
    """The first ``n_stages`` stages with the tensors of ``state`` (keys ``<stage>.<index>.<name>``)."""
    with torch.device("meta"):  # skip random init: every tensor comes from ``state``
        stages = nn.ModuleList(_layers(widths, pooling, n_stages))
    stages.load_state_dict(state, assign=True)
    return stages


def _layers(widths: tuple[tuple[int, ...], ...], pooling: Pooling, n_stages: int) -> list[nn.Sequential]:
    stages: list[nn.Sequential] = [nn.Sequential() for _ in range(n_stages)]
    for stage, index, kind, cin, cout in _layout(widths, pooling, n_stages):
        layer: nn.Module
        if kind == "conv":
            layer = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        elif kind == "relu":
            layer = nn.ReLU()
        elif kind == "maxpool1":
            layer = nn.MaxPool2d(kernel_size=2, stride=1)
        elif kind == "maxpool2":
            layer = nn.MaxPool2d(kernel_size=2, stride=2)
        else:
            layer = BlurDownsample(cin)
        stages[stage].add_module(str(index), layer)
    return stages


def _expected_shapes(widths: tuple[tuple[int, ...], ...], pooling: Pooling) -> dict[tuple[int, int, str], tuple]:
    """(stage, index, tensor name) -> shape for every tensor of the full five-stage network."""
    shapes: dict[tuple[int, int, str], tuple] = {}
    for stage, index, kind, cin, cout in _layout(widths, pooling, MAX_LAYERS):
        if kind == "conv":
            shapes[(stage, index, "weight")] = (cout, cin, 3, 3)
            shapes[(stage, index, "bias")] = (cout,)
        elif kind == "blur":
            shapes[(stage, index, "filt")] = (cin, 1, 3, 3)
    return shapes


class FeatureNetwork(nn.Module):
    """Frozen phi: ``forward(x)`` with x (N, 3, H, W) in [-1, 1] returns one tensor per stage.

    Always in eval mode with ``requires_grad=False``; gradients still flow to ``x``."""

    def __init__(self, stages: nn.ModuleList, shift: torch.Tensor, scale: torch.Tensor,
                 layer_names: tuple[str, ...], description: str) -> None:
        super().__init__()
        self.stages = stages
        self.register_buffer("shift", shift.reshape(1, 3, 1, 1).float().clone())
        self.register_buffer("scale", scale.reshape(1, 3, 1, 1).float().clone())
        self.layer_names = layer_names
        self._description = description
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FeatureNetwork:
        """Ignore ``mode``: a loss network never trains (a parent's ``.train()`` must not flip it)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"perceptual features need (N, 3, H, W) RGB in [-1, 1], got shape {tuple(x.shape)}")
        h = (x - self.shift) / self.scale
        features = []
        for stage in self.stages:
            h = stage(h)
            features.append(h)
        return features

    def describe(self) -> str:
        """One line for the model card, e.g. ``stlpips VGG16 shift-tolerant (...), relu1_2..relu3_3``."""
        return self._description


def load_feature_network(cfg: PerceptualConfig) -> FeatureNetwork:
    """Build phi for ``cfg`` (paper Sec. 3.2); raises ModelError for a missing or mismatched file."""
    if cfg.weights is None:
        return _load_stlpips(cfg.layers)
    return _load_vgg19(Path(cfg.weights), cfg.layers)


def stlpips_weights_path() -> Path:
    """Where the installed stlpips-pytorch wheel keeps its VGG16 weights (the package is not imported)."""
    spec = importlib.util.find_spec(STLPIPS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("perceptual loss: the default VGG16 feature network ships in the stlpips-pytorch package, "
                         f"which is not installed; run `pip install stlpips-pytorch` or pass {setting('perceptual_weights')} "
                         "FILE with a torchvision VGG19 state dict")
    path = Path(next(iter(spec.submodule_search_locations))) / STLPIPS_WEIGHTS
    if not path.is_file():
        raise ModelError(f"perceptual loss: {path} is missing from the stlpips-pytorch install; reinstall it with "
                         f"`pip install --force-reinstall stlpips-pytorch==0.0.2` or pass {setting('perceptual_weights')} FILE")
    return path


def _layer_range(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def _load_stlpips(layers: int) -> FeatureNetwork:
    path = stlpips_weights_path()
    state = _read_state_dict(path)
    expected = {f"net.slice{stage + 1}.{index}.{name}": shape
                for (stage, index, name), shape in _expected_shapes(_VGG16_WIDTHS, "blur").items()}
    expected["scaling_layer.shift"] = expected["scaling_layer.scale"] = (1, 3, 1, 1)
    lpips_heads = {key for key in state if key.startswith("lin")}  # LPIPS 1x1 heads: not part of phi
    _check_keys(path, state, expected, ignored=lpips_heads)

    stage_state = {}
    for key, value in state.items():
        if key.startswith("net.slice"):
            slice_number, rest = key[len("net.slice"):].split(".", 1)
            if int(slice_number) <= layers:
                stage_state[f"{int(slice_number) - 1}.{rest}"] = value.float()
    stages = _build_stages(_VGG16_WIDTHS, "blur", layers, stage_state)
    names = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")[:layers]
    try:
        version = f" (stlpips-pytorch {importlib.metadata.version('stlpips-pytorch')})"
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return FeatureNetwork(stages, state["scaling_layer.shift"], state["scaling_layer.scale"], names,
                          f"stlpips VGG16 shift-tolerant{version}, {_layer_range(names)}")


def _load_vgg19(path: Path, layers: int) -> FeatureNetwork:
    if not path.is_file():
        raise ModelError(f"perceptual weights {path} do not exist; pass a torchvision VGG19 state dict "
                         f"(.safetensors or .pth) or leave {setting('perceptual_weights')} out for the shipped VGG16")
    state = _read_state_dict(path)
    # accept both a full VGG state dict and one saved from ``vgg19().features`` (no prefix)
    state = {f"features.{key}" if key[:1].isdigit() else key: value for key, value in state.items()}
    full = _expected_shapes(_VGG19_WIDTHS, "max")
    expected = {f"features.{index}.{name}": shape for (_, index, name), shape in full.items()}
    _check_keys(path, state, expected, ignored={key for key in state if key.startswith("classifier.")},
                hint="expected a torchvision VGG19 state dict with keys features.N.weight/bias")

    stages = _build_stages(_VGG19_WIDTHS, "max", layers,
                           {f"{stage}.{index}.{name}": state[f"features.{index}.{name}"].float()
                            for stage, index, name in full if stage < layers})
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    names = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")[:layers]
    return FeatureNetwork(stages, 2 * mean - 1, 2 * std, names,
                          f"user VGG19 {path.name} (sha256 {_sha256(path)[:12]}), {_layer_range(names)}")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        elif suffix in (".pth", ".pt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ModelError(f"perceptual weights {path}: unknown file type {suffix!r}; "
                             "use a .safetensors file or a torchvision .pth state dict")
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 - an untrusted file may fail in any way; all mean "unreadable"
        if type(err).__name__ == "UnpicklingError":
            reason = "it holds Python objects other than tensors, which are never unpickled"
        else:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelError(f"perceptual weights {path} cannot be read as a plain tensor state dict ({reason}); "
                         "re-save it with torch.save(model.state_dict()) or as safetensors") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"perceptual weights {path} is not a state dict of tensors; "
                         "save it with torch.save(model.state_dict()) or as safetensors")
    return dict(state)


def _check_keys(path: Path, state: dict[str, torch.Tensor], expected: dict[str, tuple], ignored: set[str],
                hint: str = "the file does not match the expected network") -> None:
    """Strict key and shape check, with one-line messages naming a few offenders."""
    missing = sorted(set(expected) - set(state), key=_natural)
    unexpected = sorted(set(state) - set(expected) - ignored, key=_natural)
    wrong = sorted((k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k]), key=_natural)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors ({_first_few(missing)})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors ({_first_few(unexpected)})")
    if wrong:
        key = wrong[0]
        problems.append(f"{len(wrong)} tensors have the wrong shape ({key}: {tuple(state[key].shape)}, "
                        f"expected {expected[key]})")
    if problems:
        raise ModelError(f"perceptual weights {path}: {'; '.join(problems)}; {hint}")
    bad = [k for k in expected if not torch.is_floating_point(state[k]) or not torch.isfinite(state[k]).all()]
    if bad:
        raise ModelError(f"perceptual weights {path}: tensor {bad[0]} is not finite floating point; "
                         "the file is corrupt")


def _first_few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def _natural(key: str) -> list[tuple[int, int, str]]:
    """Sort key that puts features.2 before features.10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in key.split(".")]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
