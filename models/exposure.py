"""Frame-level exposure: one gain per colour channel for a whole frame, set before tiling (issue 14).

The paper's generator sees one tile at a time (Sec. 3.1-3.3), so it cannot know a frame's overall
brightness, and InstanceNorm threw absolute level away. A tile-consistent model instead brightens
every frame once, in linear light, by gains that a small global branch predicts from a thumbnail
of the whole frame; the tiled generator then corrects what is left (noise, colour, local tone).
Every tile of a frame, and the same frame at proxy scale (its thumbnail is the same picture),
sees the same exposure.

The branch starts as plain auto-exposure (``log2 gain = target - log2 mean linear luma``, the
target learnable) and learns per-channel corrections from thumbnail features: how dark the scene
really was meant to be, colour casts, raised blacks. Its output is clamped to ``GAIN_RANGE`` stops.
With ``mirrors`` on, the gains are the mean over the thumbnail and its three mirror images: a
frame's exposure is then a property of its content, not of where things sit in it (0.3.3 gave a
frame and its mirror images gains up to 0.27 stop apart: docs/model-card.md).

The working space of these models is sRGB-encoded (the checkpoint's ``colorspace``); gains are
applied to decoded (linear) values and the result re-encoded, clipped to [0, 1] like everything the
model sees (the highlights rule keeps what lies above 1 outside the model).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import nn

from nightgrade.colorpipeline.lowlight import linear_to_srgb, srgb_to_linear
from nightgrade.colorpipeline.luma import REC709_LUMA

#: Side of the square thumbnail the branch sees (area-averaged, so noise barely matters).
THUMB = 64
#: Predicted gains are clamped to this many stops (a quarter to 4096 times).
GAIN_RANGE = (-2.0, 12.0)
#: Quantiles of the thumbnail's darkest channel that the black estimate sees.
BLACK_QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5)
_EPS = 1e-5


def decode_srgb(v: torch.Tensor) -> torch.Tensor:
    """sRGB decoding in torch (the same curve as ``colorpipeline.lowlight.srgb_to_linear``)."""
    return torch.where(v <= 0.04045, v / 12.92, ((v.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


class FrameExposure(nn.Module):
    """Thumbnail (B, 3, THUMB, THUMB) sRGB in [0, 1] -> log2 gains (B, 3), one per channel."""

    def __init__(self, width: int = 16, level: bool = True, mirrors: bool = False, black: bool = False) -> None:
        super().__init__()
        # level=False: auto-exposure to the learned target plus per-channel balance, no learned guess of
        # how bright the scene was meant to be (measured to generalise better: docs/model-card.md)
        self.level = level
        self.mirrors = mirrors
        self.target = nn.Parameter(torch.tensor(math.log2(0.18)))
        self.features = nn.Sequential(
            nn.Conv2d(6, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Linear(8 * width + 4, 4 * width), nn.ReLU(inplace=True),
                                  nn.Linear(4 * width, 4))
        # the branch starts as plain auto-exposure: no learned correction yet
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.black_head: nn.Sequential | None = None
        if black:
            self.black_head = nn.Sequential(nn.Linear(len(BLACK_QUANTILES), 2 * width), nn.ReLU(inplace=True),
                                            nn.Linear(2 * width, 1))
            # sigmoid(-6): a quarter of a percent of the darkest value, so a head grown on a trained
            # model starts as that model
            nn.init.zeros_(self.black_head[-1].weight)
            nn.init.constant_(self.black_head[-1].bias, -6.0)

    def forward(self, thumb: torch.Tensor) -> torch.Tensor:
        return self.levels(thumb)[0]

    def levels(self, thumb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log2 gains (B, 3) and the raised black (B,) in linear light (zeros without ``black``)."""
        black = self.black_level(thumb)
        if not self.mirrors:
            return self._gains(thumb, black), black
        # one batch of the four mirror images; the mean of their gains is mirror-invariant. Each is
        # clamped before the mean, so the mean stays inside GAIN_RANGE too. (The black estimate
        # sees quantiles only, which mirroring does not change.)
        images = torch.cat([thumb, thumb.flip(3), thumb.flip(2), thumb.flip(2, 3)])
        return self._gains(images, black.repeat(4)).view(4, thumb.shape[0], 3).mean(dim=0), black

    def black_level(self, thumb: torch.Tensor) -> torch.Tensor:
        """The raised black (B,) of each thumbnail, linear, between 0 and its darkest value."""
        if self.black_head is None:
            return thumb.new_zeros(thumb.shape[0])
        darkest = decode_srgb(thumb.clamp(0.0, 1.0)).amin(dim=1).flatten(1).sort(dim=1).values  # (B, T*T)
        last = darkest.shape[1] - 1
        picks = darkest[:, [round(q * last) for q in BLACK_QUANTILES]]
        fraction = torch.sigmoid(self.black_head(torch.log2(picks + _EPS) / 8.0))[:, 0]
        return picks[:, 0] * fraction

    def _gains(self, thumb: torch.Tensor, black: torch.Tensor) -> torch.Tensor:
        """The gains for each thumbnail once ``black`` is taken off (auto-exposure plus the learned
        corrections, clamped)."""
        linear = decode_srgb(thumb.clamp(0.0, 1.0))
        if self.black_head is not None:
            linear = (linear - black[:, None, None, None]).clamp(min=0.0)
            thumb = encode_srgb(linear)
        means = linear.mean(dim=(2, 3))                                   # (B, 3)
        luma = means @ torch.tensor(REC709_LUMA.tolist(), dtype=means.dtype, device=means.device)
        base = self.target - torch.log2(luma + _EPS)                        # (B,)
        # the thumbnail as captured and as auto-exposure would show it: level and content cues
        shown = encode_srgb((linear * torch.exp2(base)[:, None, None, None]).clamp(0.0, 1.0))
        f = self.features(torch.cat([thumb, shown], dim=1))
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        stats = torch.cat([torch.log2(means + _EPS), torch.log2(luma + _EPS)[:, None]], dim=1) / 8.0
        delta = self.head(torch.cat([pooled, stats], dim=1))
        gains = base[:, None] + (delta[:, :1] if self.level else 0.0) + delta[:, 1:]
        return gains.clamp(*GAIN_RANGE)


def encode_srgb(v: torch.Tensor) -> torch.Tensor:
    """sRGB encoding in torch (``colorpipeline.lowlight.linear_to_srgb``'s curve)."""
    return torch.where(v <= 0.0031308, v * 12.92, 1.055 * v.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def thumbnail(frame_hwc: np.ndarray) -> np.ndarray:
    """The (3, THUMB, THUMB) float32 area-averaged thumbnail of an sRGB H x W x 3 frame in [0, 1]."""
    small = cv2.resize(np.ascontiguousarray(frame_hwc[..., :3], dtype=np.float32), (THUMB, THUMB),
                       interpolation=cv2.INTER_AREA)
    return np.clip(small, 0.0, 1.0).transpose(2, 0, 1).copy()


def apply_gains(frame_hwc: np.ndarray, log2_gains: np.ndarray, black: float = 0.0) -> np.ndarray:
    """Take ``black`` off an sRGB-encoded frame's linear light, multiply by ``2 ** log2_gains`` per
    channel; clip to [0, 1]."""
    gains = np.exp2(np.asarray(log2_gains, dtype=np.float32)).reshape(1, 1, 3)
    linear = srgb_to_linear(np.clip(frame_hwc, 0.0, 1.0))
    if black:
        linear = linear - np.float32(black)
    return linear_to_srgb(np.clip(linear * gains, 0.0, 1.0))


def frame_levels(branch: FrameExposure, frame_hwc: np.ndarray, offset_stops: float = 0.0) -> tuple[np.ndarray, float]:
    """log2 gains (3,) the branch predicts for one frame, plus a user offset in stops, and its raised black."""
    param = next(branch.parameters())
    with torch.inference_mode():
        thumb = torch.from_numpy(thumbnail(frame_hwc))[None].to(param.device, param.dtype)
        gains, black = branch.levels(thumb)
    return gains[0].float().cpu().numpy() + np.float32(offset_stops), float(black[0])


def frame_gains(branch: FrameExposure, frame_hwc: np.ndarray, offset_stops: float = 0.0) -> np.ndarray:
    """log2 gains (3,) the branch predicts for one frame, plus a user offset in stops."""
    return frame_levels(branch, frame_hwc, offset_stops)[0]


def normalise_exposure(branch: FrameExposure, frame_hwc: np.ndarray, offset_stops: float = 0.0) -> np.ndarray:
    """The frame with its raised black taken off and brightened by the gains the branch predicts for
    it (plus ``offset_stops``)."""
    gains, black = frame_levels(branch, frame_hwc, offset_stops)
    return apply_gains(frame_hwc, gains, black)
