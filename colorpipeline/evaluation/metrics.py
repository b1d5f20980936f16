"""Full-reference quality metrics for paired evaluation (issue 4, item 5).

All functions take float32 sRGB-encoded HxWx3 frames in [0, 1] (display-referred, as viewers see
them) and compare an output ``o`` with its ground truth ``g``. The paper reports figures only
(Sec. 5); these give numbers:

* PSNR in dB with data range 1;
* SSIM (Wang, Bovik, Sheikh, Simoncelli 2004, "Image quality assessment: from error visibility to
  structural similarity", eq. 13): 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
  population (not sample) statistics, computed per channel and averaged, the border where the
  window does not fit left out; this matches ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)``;
* temporal flicker error of a clip: mean over t >= 1 of mean |(O_t - O_{t-1}) - (G_t - G_{t-1})|,
  which is zero when the output changes from frame to frame exactly as the ground truth does, so it
  counts only change the method added or removed (noise, per-frame exposure pumping);
* ghosting error of a clip (for temporal smoothing, paper Sec. 3.4): mean over t of
  mean |B(O_t - G_t)|, B a Gaussian blur of sigma ``GHOST_SIGMA`` px. A ghost (a misregistered
  neighbour averaged in: a displaced copy of an edge or an object) is an error against the ground
  truth that is coherent over several pixels, which the blur keeps; per-pixel noise is zero-mean
  and mostly averaged out by it (white noise by 1 / (2 sigma sqrt(pi)), 0.14 at sigma 2), so
  denoising barely lowers this number while ghosting raises it. The warp error
  mean |O_t - warp(O_{t-1}, F_gt)| does not serve here: averaging neighbours without any motion
  compensation gives motion-blurred frames that still move consistently, so their warp error
  stays low while every moving edge ghosts.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03
GHOST_SIGMA = 2.0


def psnr(o: np.ndarray, g: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for data range 1; ``inf`` for identical frames."""
    _check_pair(o, g)
    mse = float(np.mean((o.astype(np.float64) - g.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def ssim(o: np.ndarray, g: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004, eq. 13), per channel then averaged (see module doc)."""
    _check_pair(o, g)
    if min(o.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {o.shape[1]}x{o.shape[0]}")
    x = np.asarray(o, dtype=np.float64)
    y = np.asarray(g, dtype=np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    return float(np.mean([_ssim_channel(x[..., c], y[..., c]) for c in range(x.shape[2])]))


def flicker_step(o_prev: np.ndarray, o: np.ndarray, g_prev: np.ndarray, g: np.ndarray) -> float:
    """Mean |(O_t - O_{t-1}) - (G_t - G_{t-1})| for one pair of consecutive frames."""
    _check_pair(o, g)
    _check_pair(o_prev, g_prev)
    change = (o.astype(np.float64) - o_prev) - (g.astype(np.float64) - g_prev)
    return float(np.mean(np.abs(change)))


def flicker_error(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """Temporal flicker error of a clip: the mean of ``flicker_step`` over t = 1 .. T-1."""
    if len(outputs) != len(truths):
        raise ValueError(f"{len(outputs)} output frames but {len(truths)} ground-truth frames")
    if len(outputs) < 2:
        raise ValueError("the flicker error needs at least 2 consecutive frames")
    steps = [flicker_step(outputs[t - 1], outputs[t], truths[t - 1], truths[t]) for t in range(1, len(outputs))]
    return float(np.mean(steps))


def ghosting_error(outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray], sigma: float = GHOST_SIGMA) -> float:
    """Mean over the clip of mean |B(O_t - G_t)|, the low-pass error against the ground truth
    (see the module doc for why it measures ghosting and not noise)."""
    if len(outputs) != len(truths):
        raise ValueError(f"{len(outputs)} output frames but {len(truths)} ground-truth frames")
    if not outputs:
        raise ValueError("the ghosting error needs at least 1 frame")
    errors = []
    for o, g in zip(outputs, truths):
        _check_pair(o, g)
        diff = np.asarray(o, dtype=np.float32) - np.asarray(g, dtype=np.float32)
        errors.append(float(np.mean(np.abs(cv2.GaussianBlur(diff, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)))))
    return float(np.mean(errors))


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    c1 = (SSIM_K1 * 1.0) ** 2
    c2 = (SSIM_K2 * 1.0) ** 2
    mu_x, mu_y = _blur(x), _blur(y)
    var_x = _blur(x * x) - mu_x * mu_x
    var_y = _blur(y * y) - mu_y * mu_y
    cov = _blur(x * y) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    pad = (SSIM_WINDOW - 1) // 2
    # Only where the whole window lies inside the frame: no made-up border pixels in the score.
    return float(index[pad:-pad, pad:-pad].mean())


def _blur(v: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(v, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)


def _check_pair(o: np.ndarray, g: np.ndarray) -> None:
    if o.shape != g.shape:
        raise ValueError(f"output is {o.shape}, ground truth is {g.shape}: compare frames of the same size")
