"""Merging generator outputs back into a frame with Gaussian weights (paper Sec. 3.3).

Only the local RGB of each output tile rebuilds the frame. Each tile is weighted by a separable
Gaussian (mu = Nl/2, sigma = Nl/6); weighted outputs and weights go into separate accumulators
and are divided once at the end, so overlapping tiles blend without seams whatever their number.
"""
from __future__ import annotations

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import ModelError
from nightgrade.colorpipeline.tiling.plan import TilePlan

# The Gaussian is never smaller than this, as in MONAI's Gaussian importance map (clamped at
# 1e-3). Frame edges lie on tile edges (the plan keeps tiles inside the frame), so a frame corner
# is covered by one tile corner only, whose true weight is exp(-9) ~ 1.2e-4 at sigma = Nl/6: the
# floor keeps every divisor of the merge at least 1e-3. It changes only the outer rim of a tile,
# where a neighbour near its centre (weight >= exp(-9/4) ~ 0.1) dominates the blend anyway.
WEIGHT_FLOOR = 1e-3


def gaussian_window(local: int, floor: float = WEIGHT_FLOOR) -> np.ndarray:
    """The ``local x local`` float32 merge weight of Sec. 3.3: mu = Nl/2, sigma = Nl/6, measured
    at pixel centres (pixel j sits at j + 0.5, so the window is symmetric), floored at ``floor``."""
    if local < 1:
        raise ValueError(f"window size {local} is not positive")
    centres = np.arange(local, dtype=np.float64) + 0.5
    sigma = local / 6.0
    g = np.exp(-((centres - local / 2.0) ** 2) / (2.0 * sigma**2))
    return np.maximum(np.outer(g, g), floor).astype(np.float32)


class TileAccumulator:
    """Sums of weighted tile outputs and of weights over one frame (Sec. 3.3).

    Holds ``H x W x 3`` and ``H x W`` float32 sums. Only the part of a tile that lies inside the
    frame is added. ``window`` defaults to :func:`gaussian_window`; any positive ``Nl x Nl``
    weight can be given (a box window shows what a hard-edged merge does).
    """

    def __init__(self, plan: TilePlan, window: np.ndarray | None = None) -> None:
        self._plan = plan
        self._window = gaussian_window(plan.local) if window is None else np.asarray(window, np.float32)
        if self._window.shape != (plan.local, plan.local) or not self._window.min() > 0:
            raise ValueError(f"window must be positive and {plan.local}x{plan.local}, got shape {self._window.shape}")
        self._sum = np.zeros((plan.height, plan.width, 3), dtype=np.float32)
        self._weight = np.zeros((plan.height, plan.width), dtype=np.float32)
        self._window3 = np.repeat(self._window[:, :, None], 3, axis=2)
        self._done = False

    def add(self, ys: np.ndarray, xs: np.ndarray, outputs: np.ndarray) -> None:
        """Add generator outputs ``(B, C, Nl, Nl)`` (C >= 3; channels 0-2 are the local RGB) for
        the tiles whose top-left corners are ``(ys[i], xs[i])``."""
        if self._done:
            raise RuntimeError("TileAccumulator.add called after result()")
        outputs = np.asarray(outputs)
        nl, count = self._plan.local, len(ys)
        if outputs.ndim != 4 or outputs.shape[0] != count or outputs.shape[1] < 3 or outputs.shape[2:] != (nl, nl):
            raise ModelError(
                f"generator returned shape {tuple(outputs.shape)} for {count} tiles of {nl}x{nl}: "
                f"expected ({count}, 3, {nl}, {nl}); check the model's output channels and size multiple"
            )
        outputs = outputs.astype(np.float32, copy=False)
        height, width = self._plan.height, self._plan.width
        for i in range(count):
            y, x = int(ys[i]), int(xs[i])
            y0, y1, x0, x1 = max(y, 0), min(y + nl, height), max(x, 0), min(x + nl, width)
            if y0 >= y1 or x0 >= x1:
                continue
            tile = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
            # Interleaving with cv2.merge, then a contiguous multiply, is ~8x faster than one
            # multiply through a channels-last view of the channels-first output.
            weighted = cv2.merge([outputs[i, 0], outputs[i, 1], outputs[i, 2]])
            weighted *= self._window3
            self._sum[y0:y1, x0:x1] += weighted[tile]
            self._weight[y0:y1, x0:x1] += self._window[tile]

    def result(self) -> np.ndarray:
        """The merged ``H x W x 3`` float32 frame (sum of weighted outputs / sum of weights),
        divided in place so no third frame-sized array is made; pixels no tile covered are 0.
        Call once: the accumulator is spent afterwards."""
        if self._done:
            raise RuntimeError("TileAccumulator.result called twice")
        self._done = True
        # Uncovered pixels have a zero sum; a tiny divisor keeps them 0 without a frame-sized mask.
        np.maximum(self._weight, np.finfo(np.float32).tiny, out=self._weight)
        np.divide(self._sum, self._weight[..., None], out=self._sum)
        self._weight = np.empty((0, 0), dtype=np.float32)
        return self._sum
