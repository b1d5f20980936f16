"""Colourist controls applied around the model's output: denoise strength for luma and for chroma,
and detail recovery. Pixels only (numpy/OpenCV); the defaults give the model's output unchanged.

The model brightens, colours and denoises in one pass. To let a colourist take back part of the
denoise without losing the brightening, the input is first brought to the output's brightness:
``gained = input x gain``, with ``gain`` the ratio of the two images' blurred luma (a local
exposure match, so the controls never darken or brighten). Then, per pixel:

- **Denoise strength** (``luma_denoise``, ``chroma_denoise``, 0..1, default 1): the texture band of
  ``gained`` (what a Gaussian of ``TEXTURE_SIGMA`` full-resolution pixels removes) minus the same
  band of the model output is what the model took away there: mostly noise, some fine texture.
  ``1 - strength`` of it is put back, split into luma (its Rec.709-weighted mean) and chroma (the
  rest), each with its own strength. 1: the model's full denoise; 0: the input's grain at the
  enhanced brightness and colour.
- **Detail recovery** (``detail``, 0..1, default 0): the finest luma band (a Gaussian of
  ``DETAIL_SIGMA`` full-resolution pixels) of the output is replaced by that of ``gained`` in
  proportion ``detail``. 0: none; 1: the input's finest luma detail (and its finest grain).

Sizes are in full-resolution pixels and scaled with the render scale, so a proxy shows the same
look, smaller. Mix (a blend with the input after the highlights are restored) stays in
``server.render.finish_rgb``. An exposure target belongs before the model (it changes what the
generator sees): the model rewrite adds it there, not here.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import UsageError, setting
from nightgrade.colorpipeline.luma import REC709_LUMA

TEXTURE_SIGMA = 8.0  # full-res px: the band where the model's denoise acts on grain
DETAIL_SIGMA = 1.0  # full-res px: the finest detail band
_EPS = 1e-3  # keeps the gain finite in black areas
_MAX_GAIN = 64.0


#: The exposure target: stops added to the model's own exposure choice before it runs
#: (``models/exposure.py``; 0 keeps the model's choice). Owned here with the other controls' ranges.
EXPOSURE_RANGE = (-4.0, 4.0)

class ControlRangeError(UsageError):
    """A control outside its range; ``field`` names it so that each front end can say it its own way."""

    def __init__(self, field: str, value: object, fix: str, bounds: tuple[float, float] = (0.0, 1.0)) -> None:
        self.field, self.value, self.fix, self.bounds = field, value, fix, bounds
        super().__init__(f"{setting(field)} {value!r} is outside {bounds[0]:g}..{bounds[1]:g}: {fix}")


@dataclass(frozen=True)
class Controls:
    """The controls and their documented ranges; the defaults reproduce the model's output."""

    luma_denoise: float = 1.0
    chroma_denoise: float = 1.0
    detail: float = 0.0

    def __post_init__(self) -> None:
        for name, fix in (("luma_denoise", "1 is the model's full denoise, 0 keeps the input's luma grain"),
                          ("chroma_denoise", "1 is the model's full denoise, 0 keeps the input's colour noise"),
                          ("detail", "0 adds nothing, 1 puts back the input's finest luma detail")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ControlRangeError(name, value, fix)

    @property
    def is_default(self) -> bool:
        return self == Controls()


def apply_controls(source: np.ndarray, enhanced: np.ndarray, controls: Controls, scale: float = 1.0) -> np.ndarray:
    """``enhanced`` (the model output, H x W x 3 float32) with ``controls`` applied, given ``source``
    (what the model saw, same shape, same colourspace); ``scale``: the render scale (module doc)."""
    if controls.is_default:
        return enhanced
    if source.shape != enhanced.shape or source.ndim != 3 or source.shape[2] != 3:
        raise ValueError(f"source {source.shape} and enhanced {enhanced.shape} must both be H x W x 3")
    enhanced = np.asarray(enhanced, dtype=np.float32)
    gain = np.clip((_blur(enhanced @ REC709_LUMA, TEXTURE_SIGMA * scale) + _EPS)
                   / (_blur(np.asarray(source, np.float32) @ REC709_LUMA, TEXTURE_SIGMA * scale) + _EPS), 0.0, _MAX_GAIN)
    gained = source * gain[..., None]
    out = enhanced.copy()
    if controls.luma_denoise < 1.0 or controls.chroma_denoise < 1.0:
        taken = _high_pass(gained, TEXTURE_SIGMA * scale) - _high_pass(enhanced, TEXTURE_SIGMA * scale)
        luma = taken @ REC709_LUMA
        out += (1.0 - controls.luma_denoise) * luma[..., None]
        out += (1.0 - controls.chroma_denoise) * (taken - luma[..., None])
    if controls.detail > 0.0:
        fine = _high_pass(gained @ REC709_LUMA, DETAIL_SIGMA * scale) - _high_pass(out @ REC709_LUMA, DETAIL_SIGMA * scale)
        out += controls.detail * fine[..., None]
    return out


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    # below ~0.3 px a Gaussian is the identity; keep a minimal band so tiny proxies still respond
    return cv2.GaussianBlur(np.ascontiguousarray(image, dtype=np.float32), (0, 0), max(sigma, 0.3),
                            borderType=cv2.BORDER_REFLECT)


def _high_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    return image - _blur(image, sigma)
