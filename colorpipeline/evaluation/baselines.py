"""Classical low-light baselines for the evaluation (issue 4, item 5), numpy/OpenCV only.

Each baseline is a callable ``fn(frame) -> frame`` on a float32 sRGB-encoded HxWx3 frame in [0, 1],
applied to every frame independently (no temporal state), so their flicker error shows what
per-frame enhancement does to a clip:

* ``identity`` - the dark input itself; the floor every method must clear.
* ``histogram_matcher(reference)`` - global CDF matching of each channel to a bright reference image
  from other footage: the classical unpaired "make it look like that" transfer, with no notion of
  noise or of local contrast.
* ``gamma_clahe_nlm`` - the classic hand-built chain: an automatic gamma that brings the mean
  luminance to a target, CLAHE on the L channel of CIE Lab for local contrast, then OpenCV's
  non-local-means colour denoiser for the noise the first two amplified. Parameters in
  ``GammaClaheNlmConfig``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from nightgrade.colorpipeline.luma import REC709_LUMA

Enhancer = Callable[[np.ndarray], np.ndarray]

#: Histogram resolution of the CDF matching: 1024 bins resolves 16-bit-ish inputs better than 8-bit codes.
HIST_BINS = 1024


def identity(frame: np.ndarray) -> np.ndarray:
    """The input unchanged (a float32 copy)."""
    return np.array(frame, dtype=np.float32, copy=True)


def histogram_matcher(reference: np.ndarray, bins: int = HIST_BINS) -> Enhancer:
    """A baseline mapping each channel's CDF onto ``reference``'s (sRGB float HxWx3) CDF.

    The reference CDFs are computed once; each call computes its frame's own CDFs, so the mapping
    changes with frame content (one source of flicker).
    """
    ref = _check_frame(reference, "reference")
    edges = np.linspace(0.0, 1.0, bins + 1, dtype=np.float64)
    ref_cdfs = [_cdf(ref[..., c], edges) for c in range(3)]

    def match(frame: np.ndarray) -> np.ndarray:
        src = _check_frame(frame, "frame")
        out = np.empty_like(src)
        for c in range(3):
            # value -> its quantile in this frame -> the reference value at that quantile
            quantile = np.interp(src[..., c], edges, _cdf(src[..., c], edges))
            out[..., c] = np.interp(quantile, ref_cdfs[c], edges)
        return out

    return match


@dataclass(frozen=True)
class GammaClaheNlmConfig:
    """Parameters of ``gamma_clahe_nlm``.

    ``target_mean``: the frame's mean Rec.709 luma (sRGB-encoded) is raised to this by a power law
    ``out = in ** gamma`` with gamma = log(target) / log(mean), kept within ``gamma_range`` (0.45 is a
    typical mean of well-exposed footage). ``clahe_clip``/``clahe_grid``: OpenCV CLAHE clip limit and
    tile grid on L* (8-bit Lab). ``nlm_h``/``nlm_h_colour``: filter strengths of
    ``cv2.fastNlMeansDenoisingColored`` for luma and colour in 8-bit code values, with its usual
    7x7 template and 21x21 search windows.
    """

    target_mean: float = 0.45
    gamma_range: tuple[float, float] = (0.2, 1.0)
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    nlm_h: float = 10.0
    nlm_h_colour: float = 10.0
    nlm_template: int = 7
    nlm_search: int = 21


def gamma_clahe_nlm(cfg: GammaClaheNlmConfig = GammaClaheNlmConfig()) -> Enhancer:
    """The gamma -> CLAHE(L*) -> non-local-means chain with ``cfg`` (see module doc)."""
    clahe = cv2.createCLAHE(clipLimit=cfg.clahe_clip, tileGridSize=(cfg.clahe_grid, cfg.clahe_grid))

    def enhance(frame: np.ndarray) -> np.ndarray:
        src = np.clip(_check_frame(frame, "frame"), 0.0, 1.0)
        mean = float(np.mean(src @ REC709_LUMA))
        gamma = auto_gamma(mean, cfg.target_mean, cfg.gamma_range)
        bright = np.power(src, np.float32(gamma))
        lab = cv2.cvtColor(_to_u8(bright), cv2.COLOR_RGB2LAB)
        lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
        rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
        clean = cv2.fastNlMeansDenoisingColored(rgb, None, cfg.nlm_h, cfg.nlm_h_colour,
                                                cfg.nlm_template, cfg.nlm_search)
        return clean.astype(np.float32) / np.float32(255.0)

    return enhance


def auto_gamma(mean: float, target: float, limits: tuple[float, float]) -> float:
    """The exponent that maps ``mean`` to ``target`` under ``x ** gamma``, clamped to ``limits``."""
    if mean <= 0.0 or mean >= 1.0:
        return 1.0
    return float(np.clip(np.log(target) / np.log(mean), *limits))


def _cdf(channel: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """CDF at the bin edges (len bins + 1, from 0 to 1) of a channel clipped to [0, 1]."""
    counts, _ = np.histogram(np.clip(channel, 0.0, 1.0), bins=edges)
    cdf = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    return cdf / cdf[-1]


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_frame(frame: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(frame, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{what} must be HxWx3 RGB, got shape {array.shape}")
    return array
