"""Unpaired training patches: a local Nl x Nl crop and the Nr x Nr region around it (paper Sec. 3.1).

Frames of one domain are held in memory as float32 sRGB in [0, 1]. Each sample picks a frame and a
centre, crops the local patch, gathers the region centred on the same point (reflected where it
leaves the frame, as at inference) and resizes it to Nl with area averaging, giving the 6-channel
input of Sec. 3.1. The paper crops 1,000 random patches of the first frame (Sec. 4); we sample
fresh patches every step from a few frames, which is the same distribution with more variety.
"""
from __future__ import annotations

import glob
import os

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import InputError, setting
from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.colorpipeline.tiling.plan import reflect_indices

_EXTENSIONS = (".png", ".exr", ".tif", ".tiff", ".dpx")


def load_domain(folder: str, max_frames: int | None = None) -> list[np.ndarray]:
    """All frames of one training domain (sorted by name), RGB float32 in [0, 1]."""
    paths = sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith(_EXTENSIONS))
    if not paths:
        raise InputError(f"no training frames ({', '.join(_EXTENSIONS)}) in {folder}; "
                         "build a set with `nightgrade sample-data DIR`")
    if max_frames:
        paths = paths[:max_frames]
    return [np.clip(np.ascontiguousarray(read_frame(p).rgb), 0.0, 1.0) for p in paths]


def region_patch(frame: np.ndarray, cy: int, cx: int, local: int, region: int) -> np.ndarray:
    """The Nr x Nr region centred on (cy, cx), reflected at the frame edges, resized to Nl x Nl."""
    top, left = cy - region // 2, cx - region // 2
    rows = reflect_indices(top, region, frame.shape[0])
    cols = reflect_indices(left, region, frame.shape[1])
    crop = frame[rows][:, cols]
    return cv2.resize(crop, (local, local), interpolation=cv2.INTER_AREA)


def sample_patches(frames: list[np.ndarray], count: int, local: int, region: int,
                   rng: np.random.Generator, flip: bool = True) -> np.ndarray:
    """``count`` random 6-channel samples, float32 (count, 6, Nl, Nl) in [0, 1].

    Local patches lie inside the frame (frames must be at least Nl on each side); regions may
    reach past the edges and are reflected there, as at inference.
    """
    out = np.empty((count, 6, local, local), dtype=np.float32)
    for i in range(count):
        frame = frames[int(rng.integers(len(frames)))]
        height, width = frame.shape[:2]
        if height < local or width < local:
            raise InputError(f"training frame {width}x{height} is smaller than the {local} px patch; "
                             f"use a smaller {setting('local')} or larger frames")
        top, left = int(rng.integers(height - local + 1)), int(rng.integers(width - local + 1))
        loc = frame[top:top + local, left:left + local]
        reg = region_patch(frame, top + local // 2, left + local // 2, local, region)
        sample = np.concatenate([loc, reg], axis=2)
        if flip and rng.random() < 0.5:
            sample = sample[:, ::-1]
        out[i] = sample.transpose(2, 0, 1)
    return out
