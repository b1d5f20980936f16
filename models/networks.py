"""Generator and discriminator of the multiscale-patch CycleGAN (paper Sec. 3.2).

Generator layout, for ``GeneratorConfig(in_channels=6, ngf=64, n_blocks=9, n_downsample=3)``
(channel widths in brackets; every conv is 3x3 with reflect padding)::

    encoder  : 3 x [conv stride 2 -> InstanceNorm -> LearnableSoftShrink]   [ngf, 2ngf, 4ngf]
    transform: n_blocks x ResnetBlock(conv-IN-ReLU-conv-IN, + skip)           [4ngf]
    decoder  : 3 x [nearest x2 upsample -> conv -> InstanceNorm -> ReLU]     [2ngf, ngf, ngf]
    output   : conv 3x3 -> tanh                                              [out_channels]

Decisions and deviations, relative to the paper's text and to the authors' fork
(``pui-nantheera/Lowlight_cyclegan``, a CycleGAN ResNet generator with a 7x7 stride-1 stem,
two stride-2 convs and a fixed Softshrink(0.001)):

- The paper says all three encoder blocks are "3x3 conv with stride 2"; that is the default
  (``n_downsample=3``, spatial size multiple 8). ``n_downsample=2`` keeps the first block at
  stride 1, i.e. one full-resolution block like CycleGAN's stem (size multiple 4); the decoder
  then upsamples in its first two blocks only. Channel widths, and so parameter counts, do
  not depend on ``n_downsample``.
- Upsampling is nearest-neighbour x2 followed by a conv, not a transposed conv, so the
  decoder cannot produce checkerboard artefacts (which would show as a texture repeating
  with the tile grid after merging).
- The softshrink threshold is learnable per channel, ``lambda = softplus(raw) > 0`` (the
  fork declares a learnable lambda but never uses it). ReLU everywhere else, as the paper
  reports that shrinkage in all layers reduced micro contrast.
- The paper does not describe the output projection; we use one 3x3 conv + tanh, so the
  network maps [-1, 1] inputs to [-1, 1] outputs as CycleGAN does. The paper's network also
  outputs six channels (local + region) for its region losses; at inference only the local
  RGB is used (Sec. 3.3), so ``out_channels`` defaults to 3.
- Convs followed by InstanceNorm have no bias: the norm subtracts the per-channel mean, so a
  bias would be cancelled exactly. InstanceNorm is not affine, as in CycleGAN.

Tile-consistent variant (issue 14; ``norm="none"``, ``skips``, ``residual``, ``exposure``). The
paper's InstanceNorm normalises every tile on its own, so a pixel's output depends on which tile it
fell in and absolute exposure is thrown away. The variant drops the norm (convs get a bias), adds
the encoder output of each scale to the decoder at the same scale and feeds the local input to the
last decoder conv (U-Net-style, so full-resolution detail needs no trip through the bottleneck),
and predicts a correction added to the local input (a global residual: greys stay grey unless the
network learns otherwise). Exposure is set once per frame, before tiling, by the small global
branch of ``models/exposure.py`` that ``exposure=True`` attaches; every tile then sees the same
exposure. Old checkpoints lack these keys and load with the paper's layout.

Discriminator: the 70x70 PatchGAN of the original CycleGAN ("five convolutional blocks, 4x4
conv + instance norm + LeakyReLU 0.2"). As in CycleGAN, the first block has no norm and the
last block is a bare 1-channel conv (no norm, no activation: LSGAN-style losses take raw scores).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from nightgrade.colorpipeline.errors import ModelError, NightGradeError

_C = TypeVar("_C")


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    # bool is an int subclass; a JSON `true` must not pass as a width.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bounds}, got {value}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A frozen config dataclass as a plain JSON-ready dict."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[_C], data: Any) -> _C:
    """Build config ``cls`` from a dict holding exactly its fields; ModelError names the bad key."""
    what = cls.__name__
    if not isinstance(data, dict):
        raise ModelError(f"{what} must be a JSON object, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ModelError(f"{what} has unknown key {unknown[0]!r} (known: {', '.join(names)})")
    missing = [n for n in names if n not in data]
    if missing:
        raise ModelError(f"{what} is missing key {missing[0]!r}")
    try:
        return cls(**data)
    except (ValueError, NightGradeError) as err:  # NightGradeError: colorpipeline configs (TileConfig)
        raise ModelError(f"{what}: {err}") from err


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of the generator; stored in every checkpoint (see module docstring)."""

    in_channels: int = 6
    out_channels: int = 3
    ngf: int = 64
    n_blocks: int = 9
    n_downsample: int = 3
    shrink_init: float = 0.05
    norm: str = "instance"
    skips: bool = False
    residual: bool = False
    exposure: bool = False
    exposure_level: bool = True  # the branch also learns a global level correction on top of auto-exposure
    exposure_mirrors: bool = False  # the branch's gains are averaged over the frame's mirror images
    exposure_black: bool = False  # the branch takes the frame's raised black off first (models/exposure.py)
    refine: int = 0  # full-resolution refinement convs after the output (0: none; see models/refine_head.py)
    refine_width: int = 16  # channels of the refinement head's convs

    def __post_init__(self) -> None:
        _check_int("in_channels", self.in_channels, 1)
        _check_int("out_channels", self.out_channels, 1)
        _check_int("ngf", self.ngf, 1)
        _check_int("n_blocks", self.n_blocks, 0)
        _check_int("n_downsample", self.n_downsample, 0, 3)
        _check_int("refine", self.refine, 0, 8)
        _check_int("refine_width", self.refine_width, 1)
        if self.refine == 1:
            raise ValueError("refine must be 0 (none) or 2 to 8 convs (one conv alone has no non-linearity)")
        if isinstance(self.shrink_init, bool) or not isinstance(self.shrink_init, (int, float)) \
                or not math.isfinite(self.shrink_init) or self.shrink_init <= 0:
            raise ValueError(f"shrink_init must be a finite number > 0, got {self.shrink_init!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        for name in ("skips", "residual", "exposure", "exposure_level", "exposure_mirrors", "exposure_black"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.residual and self.out_channels != 3:
            raise ValueError("residual needs out_channels = 3 (the correction is added to the local RGB)")
        if self.refine and not self.residual:
            raise ValueError("refine needs residual (the head corrects the output, seeing the local RGB beside it)")

    @property
    def size_multiple(self) -> int:
        """Tile sides must be a multiple of this so the decoder undoes the encoder's striding."""
        return 2 ** self.n_downsample

    @property
    def min_size(self) -> int:
        """Smallest tile side: the bottleneck must be >= 2 px for reflect padding and instance norm."""
        return 2 * self.size_multiple

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> GeneratorConfig:
        # Checkpoints written before issue 14 lack the tile-consistent keys: they mean the paper's layout.
        if isinstance(data, dict):
            data = {**{k: v for k, v in _LEGACY_DEFAULTS.items() if k not in data}, **data}
        return config_from_dict(cls, data)


NORMS = ("instance", "none")
_LEGACY_DEFAULTS = {"norm": "instance", "skips": False, "residual": False, "exposure": False, "exposure_level": True,
                    "exposure_mirrors": False, "exposure_black": False, "refine": 0, "refine_width": 16}


@dataclass(frozen=True)
class DiscriminatorConfig:
    """PatchGAN discriminator: ``n_layers`` strided blocks, so ``n_layers + 2`` convs in all."""

    in_channels: int = 3
    ndf: int = 64
    n_layers: int = 3

    def __post_init__(self) -> None:
        _check_int("in_channels", self.in_channels, 1)
        _check_int("ndf", self.ndf, 1)
        _check_int("n_layers", self.n_layers, 1)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> DiscriminatorConfig:
        return config_from_dict(cls, data)


class LearnableSoftShrink(nn.Module):
    """Soft shrinkage with a learned per-channel threshold (Sec. 3.2, after wavelet shrinkage).

    ``y = sign(x) * relu(|x| - lambda)`` with ``lambda = softplus(raw) > 0``, one per channel.
    Written as ``x - clamp(x, -lambda, lambda)``: the same function in two ops, and its
    gradient w.r.t. lambda is ``-sign(x)`` where ``|x| > lambda``, zero elsewhere.
    """

    def __init__(self, channels: int, init: float = 0.05) -> None:
        super().__init__()
        # Inverse softplus, so that the initial threshold is exactly `init`.
        raw = math.log(math.expm1(init))
        self.raw = nn.Parameter(torch.full((channels,), raw))

    @property
    def threshold(self) -> torch.Tensor:
        """The current per-channel lambda (>= 0), shape (channels,)."""
        return nn.functional.softplus(self.raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.threshold.to(x.dtype).view(1, -1, 1, 1)
        return x - torch.clamp(x, -lam, lam)


def _conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride, bias=bias))


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels) if kind == "instance" else nn.Identity()


class ResnetBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus identity skip (He et al.; the paper's nine ResNet blocks)."""

    def __init__(self, dim: int, norm: str = "instance") -> None:
        super().__init__()
        bias = norm == "none"  # a bias before InstanceNorm would be cancelled exactly
        self.body = nn.Sequential(
            _conv3x3(dim, dim, bias=bias), _norm(norm, dim), nn.ReLU(inplace=True),
            _conv3x3(dim, dim, bias=bias), _norm(norm, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Encoder / ResNet transform / decoder generator of Sec. 3.2 (layout in the module docstring).

    Input: (B, in_channels, H, W) in [-1, 1], H and W multiples of ``size_multiple``;
    for the paper's model channels 0-2 are the local patch, 3-5 the region patch resized to
    the local size (Sec. 3.1). Output: (B, out_channels, H, W) in [-1, 1].
    ``exposure`` (a ``FrameExposure`` when the config asks for one) is not used here: it runs once
    per frame, before tiling (``models/exposure.py``).
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.config = cfg
        widths = [cfg.ngf, 2 * cfg.ngf, 4 * cfg.ngf]
        first_strided = 3 - cfg.n_downsample
        bias = cfg.norm == "none"  # a bias before InstanceNorm would be cancelled exactly
        # Flat Sequentials (as the paper's layout always had) keep old checkpoints' tensor names;
        # ``_enc_ends``/``_dec_starts`` mark the block boundaries the skip connections need.
        encoder: list[nn.Module] = []
        self._enc_ends: list[int] = []
        cin = cfg.in_channels
        for i, cout in enumerate(widths):
            stride = 2 if i >= first_strided else 1
            encoder += [_conv3x3(cin, cout, stride, bias=bias), _norm(cfg.norm, cout),
                        LearnableSoftShrink(cout, cfg.shrink_init)]
            self._enc_ends.append(len(encoder))
            cin = cout
        self.encoder = nn.Sequential(*encoder)
        self.transform = nn.Sequential(*[ResnetBlock(cin, cfg.norm) for _ in range(cfg.n_blocks)])
        decoder: list[nn.Module] = []
        self._dec_ends: list[int] = []
        for i, cout in enumerate([2 * cfg.ngf, cfg.ngf, cfg.ngf]):
            if i < cfg.n_downsample:
                decoder.append(nn.Upsample(scale_factor=2, mode="nearest"))
            # with skips the last block also sees the local RGB itself, at full resolution
            extra = 3 if cfg.skips and i == 2 else 0
            decoder += [_conv3x3(cin + extra, cout, bias=bias), _norm(cfg.norm, cout), nn.ReLU(inplace=True)]
            self._dec_ends.append(len(decoder))
            cin = cout
        self.decoder = nn.Sequential(*decoder)
        head: list[nn.Module] = [_conv3x3(cin, cfg.out_channels, bias=True)]
        if not cfg.residual:
            head.append(nn.Tanh())
        self.output = nn.Sequential(*head)
        if cfg.refine:
            from nightgrade.models.refine_head import RefineHead
            self.refine = RefineHead(cfg.refine_width, cfg.refine)
        if cfg.exposure:
            from nightgrade.models.exposure import FrameExposure
            self.exposure = FrameExposure(level=cfg.exposure_level, mirrors=cfg.exposure_mirrors,
                                          black=cfg.exposure_black)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._features_skips(x) if self.config.skips else self.decoder(self.transform(self.encoder(x)))
        y = self.output(h)
        if self.config.residual:
            # a correction of the local RGB, clamped to the range the tanh head would give
            y = torch.clamp(x[:, :3] + y, -1.0, 1.0)
        if self.config.refine:
            y = self.refine(y, x[:, :3])
        return y

    def _features_skips(self, x: torch.Tensor) -> torch.Tensor:
        feats, h, start = [], x, 0
        for end in self._enc_ends:
            h = self.encoder[start:end](h)
            feats.append(h)
            start = end
        h = self.transform(h)
        start = 0
        for i, end in enumerate(self._dec_ends):
            block = self.decoder[start:end]
            if i == 2:
                if isinstance(block[0], nn.Upsample):
                    h, block = block[0](h), block[1:]
                h = block(torch.cat([h, x[:, :3]], dim=1))
            else:
                h = block(h)
                # decoder block i ends at the scale of encoder block 1 - i (when striding made it so)
                if feats[1 - i].shape == h.shape:
                    h = h + feats[1 - i]
            start = end
        return h


class Discriminator(nn.Module):
    """PatchGAN (CycleGAN's NLayerDiscriminator shape): a map of real/fake scores per ~70 px patch."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = cfg
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, cfg.ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        cin = cfg.ndf
        for n in range(1, cfg.n_layers + 1):
            cout = cfg.ndf * min(2 ** n, 8)
            stride = 2 if n < cfg.n_layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=False),
                       nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def discriminator_output_size(cfg: DiscriminatorConfig, size: int) -> int:
    """Side of the score map for an input side ``size`` (4x4 convs, padding 1)."""
    for _ in range(cfg.n_layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2  # two stride-1 4x4 convs each lose one pixel


def _init_weights(net: nn.Module, std: float = 0.02) -> None:
    # CycleGAN's N(0, 0.02) initialisation; shrink thresholds keep their configured start.
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_generator(cfg: GeneratorConfig) -> Generator:
    """A freshly initialised generator (seed torch beforehand for reproducibility)."""
    net = Generator(cfg)
    _init_weights(net)
    if cfg.refine:
        net.refine.zero_last()
    return net


def build_discriminator(cfg: DiscriminatorConfig) -> Discriminator:
    """A freshly initialised PatchGAN discriminator."""
    net = Discriminator(cfg)
    _init_weights(net)
    return net
