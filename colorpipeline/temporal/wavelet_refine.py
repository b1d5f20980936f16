"""Wavelet-domain refinement of a dense flow (paper Sec. 3.4, "wavelet-based registration").

After the large displacements are removed, Sec. 3.4 mitigates the remaining micro misalignment
with a wavelet registration: "coarser level wavelet coefficients to determine large motion
components and then finer level coefficients to refine the motion field". Here that is a
Lucas-Kanade residual estimate on the PyWavelets approximation sub-bands, coarse to fine:

for level j = ``levels`` ... 0 (level 0 is the image itself):
    warp the moving luminance by the current flow;
    take the level-j approximation sub-band of the reference and of the warped frame
    (``pywt.dwt2`` applied j times), each normalised to zero local mean and unit local contrast;
    solve, per pixel, the damped least-squares system of the linearised constancy equations
    ``Ax du + Ay dv = -(A_moving - A_reference)`` summed over a Gaussian window;
    add the residual, scaled by 2^j and upsampled, to the flow.

Why these choices (known-flow pairs of ``bench/motion.py``, 4 photos x 5 conditions, dis_fine at
a working resolution of 192 px, refined up to the photos' own size; mean EPE in px):

* Local normalisation: per-frame enhancement flickers. Without it a 15 % gain change between the
  frames made the refinement far worse than none (gain condition 3.23 px vs 0.92 unrefined);
  with it, 0.43 px. Over all conditions: 0.92 unrefined, 1.30 without normalisation, 0.73 with.
* Only approximation sub-bands: in development, adding the detail sub-bands' equations made it
  worse (0.73 vs 0.53 px, an earlier setting on dis_medium): decimated detail coefficients alias,
  so a sub-pixel shift does not shift them.
* ``sigma`` 5 rather than 3 trades 0.01-0.02 px on clean pairs for noisy dark ones, where 3 made
  the flow worse than unrefined (1.76 vs 1.60 px) and 5 better (1.54).
* The damping (``damping`` x the level's mean structure-tensor trace, a Tikhonov term) keeps the
  flow where a window has no texture (the aperture problem); steps are capped at ``max_step``
  level pixels because the linearisation does not hold beyond that.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pywt

from nightgrade.colorpipeline.errors import UsageError


@dataclass(frozen=True)
class WaveletRefineConfig:
    """``wavelet``: a PyWavelets discrete wavelet name; ``levels``: the coarsest sub-band level
    refined (its side is 2^-levels of the refinement resolution); ``sigma``: Gaussian window of
    the least-squares sums, in pixels of each level; ``iterations`` per level; ``damping`` and
    ``max_step`` as in the module docstring; ``normalise``: remove local mean and contrast over a
    Gaussian of ``normalise_sigma`` x ``sigma``, the contrast floored at ``contrast_floor``
    (luminance is stretched to about [0, 1] by the caller)."""

    wavelet: str = "haar"
    levels: int = 2
    sigma: float = 5.0
    iterations: int = 1
    damping: float = 0.01
    max_step: float = 1.0
    normalise: bool = True
    normalise_sigma: float = 1.5
    contrast_floor: float = 0.01

    def __post_init__(self) -> None:
        if self.wavelet not in pywt.wavelist(kind="discrete"):
            raise UsageError(f"unknown wavelet {self.wavelet!r} for flow refinement; "
                             "choose a name from pywt.wavelist(kind='discrete'), e.g. 'haar'")
        if self.levels < 0 or self.iterations < 1 or min(self.sigma, self.normalise_sigma, self.max_step) <= 0 \
                or self.damping < 0 or self.contrast_floor < 0:
            raise UsageError(f"invalid wavelet refinement settings {self}: levels and damping must be >= 0, "
                             "iterations >= 1, sigmas and max_step > 0")


def refine_flow(reference: np.ndarray, moving: np.ndarray, flow: np.ndarray,
                cfg: WaveletRefineConfig = WaveletRefineConfig()) -> np.ndarray:
    """``flow`` (H x W x 2, reference -> moving) refined on the wavelet sub-bands of the H x W
    float32 luminance images ``reference`` and ``moving`` (module docstring)."""
    flow = flow.astype(np.float32, copy=True)
    height, width = reference.shape
    levels = min(cfg.levels, pywt.dwtn_max_level((height, width), cfg.wavelet))
    ref_bands = _approximations(reference, levels, cfg.wavelet)
    for level in range(levels, -1, -1):
        for _ in range(cfg.iterations):
            mov_band = _approximations(_remap(moving, flow), level, cfg.wavelet)[level]
            flow += _upsample(_lucas_kanade(ref_bands[level], mov_band, cfg), height, width)
    return flow


def _approximations(image: np.ndarray, levels: int, wavelet: str) -> list[np.ndarray]:
    """Approximation sub-bands of levels 0..``levels`` (level 0: the image), each divided by
    2^level, the 2-D low-pass gain, so that all levels share one intensity scale."""
    out = [image.astype(np.float32, copy=False)]
    for _ in range(levels):
        out.append((pywt.dwt2(out[-1], wavelet, mode="periodization")[0] / 2.0).astype(np.float32))
    return out


def _lucas_kanade(ref: np.ndarray, mov: np.ndarray, cfg: WaveletRefineConfig) -> np.ndarray:
    """Per-pixel damped least-squares residual flow (h x w x 2, in this level's pixels)."""
    if cfg.normalise:
        ref, mov = _normalise(ref, cfg), _normalise(mov, cfg)
    mean = 0.5 * (ref + mov)
    # Gradients of the mean of both images make the estimate symmetric in the two frames.
    gx = cv2.Scharr(mean, cv2.CV_32F, 1, 0, scale=1 / 32, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Scharr(mean, cv2.CV_32F, 0, 1, scale=1 / 32, borderType=cv2.BORDER_REFLECT)
    gt = mov - ref
    sxx, sxy, syy, sxt, syt = gx * gx, gx * gy, gy * gy, gx * gt, gy * gt
    sums = [cv2.GaussianBlur(s, (0, 0), cfg.sigma, borderType=cv2.BORDER_REFLECT) for s in (sxx, sxy, syy, sxt, syt)]
    sxx, sxy, syy, sxt, syt = sums
    damping = cfg.damping * float(np.mean(sxx + syy)) + 1e-12
    sxx, syy = sxx + damping, syy + damping
    det = sxx * syy - sxy * sxy
    du = (-syy * sxt + sxy * syt) / det
    dv = (sxy * sxt - sxx * syt) / det
    step = np.stack([du, dv], axis=-1)
    # Beyond about a pixel the linearised equations no longer describe the images.
    length = np.sqrt(du * du + dv * dv)
    return step * np.minimum(1.0, cfg.max_step / np.maximum(length, 1e-12))[..., None]


def _normalise(band: np.ndarray, cfg: WaveletRefineConfig) -> np.ndarray:
    """``band`` minus its local mean, divided by its local standard deviation (floored at
    ``contrast_floor``), both over a Gaussian of ``normalise_sigma`` x ``sigma``: a local gain and
    offset between the frames (flicker) then no longer reads as motion."""
    sigma = cfg.normalise_sigma * cfg.sigma
    mean = cv2.GaussianBlur(band, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    centred = band - mean
    var = cv2.GaussianBlur(centred * centred, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return centred / (np.sqrt(np.maximum(var, 0.0)) + cfg.contrast_floor)


def _upsample(step: np.ndarray, height: int, width: int) -> np.ndarray:
    if step.shape[:2] == (height, width):
        return step
    out = cv2.resize(step, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / step.shape[1]
    out[..., 1] *= height / step.shape[0]
    return out


def _remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
