"""Paired training samples made by the camera model from clean frames (issue 14, items 2-3).

Each sample is one "frame": a random window of a clean picture (random scale, position and flip,
so one photograph gives many framings), resized so its long side is ``frame_side``. Its low-light
capture comes from a camera drawn per frame (``colorpipeline.lowlight.draw_camera``), made in
linear light and re-encoded to sRGB, the models' working space. The generator's inputs are cut
from the low frame only after its exposure is normalised (``models/exposure.py``), exactly as at
inference, so those crops are made in torch (``PairedFrames.crops``) where the gains can learn.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from nightgrade.colorpipeline.errors import InputError
from nightgrade.colorpipeline.lowlight import (CameraRanges, capture, draw_camera, linear_to_srgb, srgb_to_linear,
                                               undo_gains)
from nightgrade.colorpipeline.luma import REC709_LUMA
from nightgrade.models.exposure import decode_srgb, encode_srgb, thumbnail

_EXTENSIONS = (".png", ".jpg", ".jpeg")


def find_clean_frames(folder: str) -> list[str]:
    """Every picture under ``folder`` (recursively), sorted; InputError when there is none."""
    if not os.path.isdir(folder):
        raise InputError(f"clean-frame folder {folder} does not exist; build one with `nightgrade sample-data --full DIR`")
    paths = sorted(p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                   if p.lower().endswith(_EXTENSIONS))
    if not paths:
        raise InputError(f"no clean frames (.png/.jpg) under {folder}")
    return paths


def source_weights(paths: list[str], root: str) -> np.ndarray:
    """Draw probabilities that keep one large source from dominating the training draw.

    A source is the first folder under ``root`` (a package of ``sample-data --full``, or one of a
    user's clip folders); a group is the frames of one file inside it (``name.0012.png`` and
    ``name.0013.png`` share ``name``). Sources weigh the square root of their frame count, and groups
    inside a source likewise, so a 278-frame video or a package of 276 telescope pictures counts more
    than a single photograph but not hundreds of times more.
    """
    sources: dict[str, dict[str, list[int]]] = {}
    for i, path in enumerate(paths):
        rel = os.path.relpath(path, root).split(os.sep)
        source = rel[0] if len(rel) > 1 else ""
        group = re.sub(r"[._-]?\d+$", "", os.path.splitext(rel[-1])[0])
        sources.setdefault(source, {}).setdefault(group, []).append(i)
    weights = np.zeros(len(paths))
    for groups in sources.values():
        source_weight = np.sqrt(sum(len(m) for m in groups.values()))
        group_total = sum(np.sqrt(len(m)) for m in groups.values())
        for members in groups.values():
            weights[members] = source_weight * np.sqrt(len(members)) / group_total / len(members)
    return weights / weights.sum()


def load_clean(paths: list[str], min_side: int) -> list[np.ndarray]:
    """Pictures as uint8 RGB (a quarter of float32's memory); InputError names an unreadable one."""
    frames = []
    for path in paths:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read training frame {path}")
        if min(bgr.shape[:2]) < min_side:
            raise InputError(f"training frame {path} is {bgr.shape[1]}x{bgr.shape[0]}, smaller than {min_side} px")
        frames.append(np.ascontiguousarray(bgr[..., ::-1]))
    return frames


@dataclass
class PairedFrames:
    """A batch of frames: clean and low sRGB (B, 3, H, W) in [0, 1], thumbnails, true log2 gains and
    the captures' raised blacks (B,), linear."""

    clean: torch.Tensor
    low: torch.Tensor
    thumbs: torch.Tensor
    true_gains: torch.Tensor
    true_black: torch.Tensor | None = None

    def crops(self, gains: torch.Tensor, local: int, region: int, per_frame: int,
              rng: np.random.Generator, region_input: bool = True,
              black: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator inputs (N, 6 or 3, Nl, Nl) in [-1, 1] and targets (N, 3, Nl, Nl), N = B * per_frame.

        The low frames lose ``black`` (linear, (B,), differentiable; None: nothing) and are brightened
        by ``gains`` (log2, (B, 3), differentiable) in linear light; regions are reflected at frame
        edges and area-averaged to Nl, as at inference.
        """
        cutter = _Cutter(self, gains, local, region, region_input, black)
        height, width = cutter.size
        for b in range(self.low.shape[0]):
            for _ in range(per_frame):
                cutter.cut(b, int(rng.integers(height - local + 1)), int(rng.integers(width - local + 1)))
        return cutter.batch()

    def crop_pairs(self, gains: torch.Tensor, local: int, region: int, pairs_per_frame: int, max_shift: int,
                   rng: np.random.Generator, region_input: bool = True, black: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """Like ``crops``, in pairs: crop 2k+1 is crop 2k moved by up to ``max_shift`` px each way.

        The two crops of a pair see one stretch of the frame from two tile positions, each with its
        own region around it, as neighbouring tiles do at inference. Returns the inputs, the targets
        and each pair's (dy, dx), the second crop's offset from the first (for ``losses.overlap_l1``).
        """
        cutter = _Cutter(self, gains, local, region, region_input, black)
        height, width = cutter.size
        shifts = []
        for b in range(self.low.shape[0]):
            for _ in range(pairs_per_frame):
                top, left = int(rng.integers(height - local + 1)), int(rng.integers(width - local + 1))
                dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
                top2, left2 = min(max(top + dy, 0), height - local), min(max(left + dx, 0), width - local)
                cutter.cut(b, top, left)
                cutter.cut(b, top2, left2)
                shifts.append((top2 - top, left2 - left))
        return (*cutter.batch(), shifts)


class _Cutter:
    """Cuts generator inputs and targets out of a batch of frames brightened by ``gains`` (after
    ``black`` is taken off, as ``models.exposure.apply_gains`` does at inference)."""

    def __init__(self, frames: PairedFrames, gains: torch.Tensor, local: int, region: int, region_input: bool,
                 black: torch.Tensor | None = None):
        linear = decode_srgb(frames.low)
        if black is not None:
            linear = (linear - black[:, None, None, None]).clamp(min=0.0)
        linear = linear * torch.exp2(gains)[:, :, None, None]
        self.shown = encode_srgb(linear.clamp(0.0, 1.0))
        self.clean, self.local, self.region, self.region_input = frames.clean, local, region, region_input
        self.pad = region // 2
        self.padded = F.pad(self.shown, (self.pad,) * 4, mode="reflect")
        self.size = tuple(self.shown.shape[2:])
        self.inputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def cut(self, b: int, top: int, left: int) -> None:
        local, region = self.local, self.region
        loc = self.shown[b, :, top:top + local, left:left + local]
        cy, cx = top + local // 2 + self.pad, left + local // 2 + self.pad
        reg = self.padded[b:b + 1, :, cy - region // 2:cy - region // 2 + region,
                          cx - region // 2:cx - region // 2 + region]
        factor = region // local
        reg = F.avg_pool2d(reg, factor)[0] if factor > 1 else reg[0]
        self.inputs.append(torch.cat([loc, reg]) if self.region_input else loc)
        self.targets.append(self.clean[b, :, top:top + local, left:left + local])

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack(self.inputs) * 2.0 - 1.0, torch.stack(self.targets) * 2.0 - 1.0


def make_frames(pictures: list[np.ndarray], count: int, frame_side: int, rng: np.random.Generator,
                ranges: CameraRanges = CameraRanges(), weights: np.ndarray | None = None,
                black_removed: bool = False, saturation_boost: float = 1.0) -> PairedFrames:
    """``count`` random framings of random pictures (drawn with ``weights``, else uniformly) with
    their low-light captures. ``black_removed``: the true gains are those of the capture once its
    raised black is taken off (a model whose exposure branch estimates it). ``saturation_boost`` > 1:
    each picture's chroma is first multiplied by a factor drawn from [1, saturation_boost]
    (``saturate``); 1 draws nothing, so a run without it keeps its random sequence."""
    clean, low, thumbs, gains, blacks = [], [], [], [], []
    for _ in range(count):
        frame = random_framing(draw_picture(pictures, rng, weights), frame_side, rng)
        linear = srgb_to_linear(frame)
        if saturation_boost > 1.0:
            linear = saturate(linear, float(rng.uniform(1.0, saturation_boost)))
            frame = linear_to_srgb(linear).astype(np.float32)
        camera = draw_camera(rng, ranges)
        dark = capture(linear, camera, rng)
        dark_srgb = linear_to_srgb(np.clip(dark, 0.0, 1.0))
        truth = undo_gains(linear, dark, camera, black_removed)
        blacks.append(camera.black_level)
        clean.append(frame.transpose(2, 0, 1))
        low.append(dark_srgb.transpose(2, 0, 1))
        thumbs.append(thumbnail(dark_srgb))  # exactly what the engine gives the branch at inference
        gains.append(truth)
    as_tensor = lambda xs: torch.from_numpy(np.ascontiguousarray(np.stack(xs), dtype=np.float32))  # noqa: E731
    return PairedFrames(as_tensor(clean), as_tensor(low), as_tensor(thumbs), as_tensor(gains), as_tensor(blacks))


def saturate(linear: np.ndarray, factor: float) -> np.ndarray:
    """A scene-linear frame with its chroma (each channel's distance from Rec.709 luminance) times
    ``factor``, clipped to [0, 1].

    Why: the camera model's colour loss (``CameraModel.colour_loss``) cannot be told from a scene's own
    muted colours, so a model restores the saturation its training pictures make likely; photographs
    and wallpapers are seldom as saturated as a ColorChecker, neon or tail lights, and a model trained on
    them alone gave a chart back at 0.68 of its chroma (docs/model-card.md). Saturated versions of
    the pictures widen that prior; they are still pictures a camera could see.
    """
    luma = (linear @ REC709_LUMA)[..., None]
    return np.clip(luma + np.float32(factor) * (linear - luma), 0.0, 1.0).astype(np.float32)


def draw_picture(pictures: list[np.ndarray], rng: np.random.Generator,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """One picture, drawn with ``weights`` (``source_weights``) or uniformly."""
    if weights is None:
        return pictures[int(rng.integers(len(pictures)))]
    return pictures[int(rng.choice(len(pictures), p=weights))]


def frame_height(side: int) -> int:
    """Height of a 16:9 training frame ``side`` px wide."""
    return round(side * 9 / 16)


def random_framing(picture: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """A random 16:9 window (60-100% of the largest that fits) resized to ``side`` x ``side * 9/16``.

    16:9 like the footage the model meets; one size for every frame so a batch stacks.
    """
    h, w = picture.shape[:2]
    scale = float(rng.uniform(0.6, 1.0))
    win_w = max(16, int(min(w, h * 16 / 9) * scale))
    win_h = max(9, int(win_w * 9 / 16))
    top, left = int(rng.integers(h - win_h + 1)), int(rng.integers(w - win_w + 1))
    window = picture[top:top + win_h, left:left + win_w]
    resized = cv2.resize(window, (side, frame_height(side)), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        resized = resized[:, ::-1]
    return np.ascontiguousarray(resized, dtype=np.float32) / np.float32(255.0)
