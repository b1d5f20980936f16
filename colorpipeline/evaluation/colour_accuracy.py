"""Colour accuracy of an enhancement (issue 14, item 7): ColorChecker CIEDE2000 and grey-ramp chroma.

Colourists judge colour in ΔE00 (below 2 barely visible, above 5 clearly wrong). A ColorChecker
Classic (reference values from ``colour-science``: "ColorChecker24 - After November 2014", D50,
adapted to D65 with Bradford) is rendered in scene-linear Rec.709, darkened by a camera model,
enhanced by the method under test, and each patch's mean compared with its reference. A neutral
grey ramp, treated the same way, must stay neutral: its chroma C* (CIE LCh) is reported.

An enhancement also chooses an exposure. ``delta_e`` compares absolute values (the gate); the
report also gives ΔE after one global gain fitted on the six neutral patches, which separates a
colour error from an exposure choice.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nightgrade.colorpipeline.lowlight import CameraModel, capture, linear_to_srgb, srgb_to_linear

CHART = "ColorChecker24 - After November 2014"
PATCH, GAP = 48, 12
ROWS, COLS = 4, 6
NEUTRALS = slice(18, 24)  # the bottom row: white to black
#: Linear greys of the ramp (log-spaced, like exposure stops).
RAMP = tuple(float(v) for v in np.geomspace(0.02, 0.9, 12))
_SURROUND = 0.05  # dark grey linear surround (a chart in a dim scene)


def _colour():
    try:
        import colour
    except ImportError as err:  # the 'eval' extra installs it
        raise ImportError("colour accuracy needs the colour-science package: pip install colour-science") from err
    return colour


def checker_linear() -> np.ndarray:
    """(24, 3) scene-linear Rec.709/sRGB-primaries values of the chart's patches (D65)."""
    colour = _colour()
    chart = colour.CCS_COLOURCHECKERS[CHART]
    xyz = colour.xyY_to_XYZ(np.array(list(chart.data.values())))
    rgb = colour.XYZ_to_RGB(xyz, colour.RGB_COLOURSPACES["sRGB"], chart.illuminant,
                            chromatic_adaptation_transform="Bradford", apply_cctf_encoding=False)
    return np.clip(rgb, 0.0, None).astype(np.float32)


def patch_image(values: np.ndarray, cols: int) -> np.ndarray:
    """Patches of ``values`` (N, 3) on a grid ``cols`` wide, PATCH px each with GAP px of surround."""
    rows = -(-len(values) // cols)
    image = np.full((rows * (PATCH + GAP) + GAP, cols * (PATCH + GAP) + GAP, 3), _SURROUND, np.float32)
    for i, v in enumerate(values):
        top, left = GAP + (i // cols) * (PATCH + GAP), GAP + (i % cols) * (PATCH + GAP)
        image[top:top + PATCH, left:left + PATCH] = v
    return image


def patch_means(image: np.ndarray, count: int, cols: int) -> np.ndarray:
    """(count, 3) means of the inner half of each patch of a ``patch_image`` layout."""
    out = np.empty((count, 3), np.float32)
    q = PATCH // 4
    for i in range(count):
        top, left = GAP + (i // cols) * (PATCH + GAP), GAP + (i % cols) * (PATCH + GAP)
        out[i] = image[top + q:top + PATCH - q, left + q:left + PATCH - q].reshape(-1, 3).mean(axis=0)
    return out


def lab(linear_rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65 white) of linear sRGB-primaries values."""
    colour = _colour()
    space = colour.RGB_COLOURSPACES["sRGB"]
    xyz = colour.RGB_to_XYZ(np.asarray(linear_rgb, np.float64), space, space.whitepoint, apply_cctf_decoding=False)
    return colour.XYZ_to_Lab(xyz, space.whitepoint)


def delta_e(measured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """CIEDE2000 between linear RGB values, one per row."""
    return np.asarray(_colour().delta_E(lab(measured), lab(reference), method="CIE 2000"))


def chroma(linear_rgb: np.ndarray) -> np.ndarray:
    """CIE LCh chroma C* of linear RGB values."""
    lab_values = lab(linear_rgb)
    return np.hypot(lab_values[..., 1], lab_values[..., 2])


@dataclass(frozen=True)
class ColourScore:
    delta_e_mean: float          # absolute: the method's exposure choice included
    delta_e_max: float
    delta_e_matched_mean: float  # after one gain fitted on the neutral patches
    grey_chroma_max: float       # C* of the worst grey of the ramp
    grey_chroma_mean: float


def score_method(enhance: Callable[[np.ndarray], np.ndarray], camera: CameraModel,
                 rng: np.random.Generator) -> ColourScore:
    """Render chart and ramp, darken with ``camera``, enhance (sRGB in/out) and score."""
    reference = checker_linear()
    greys = np.repeat(np.array(RAMP, np.float32)[:, None], 3, axis=1)
    results = []
    for values, cols in ((reference, COLS), (greys, len(RAMP) // 2)):
        dark = linear_to_srgb(np.clip(capture(patch_image(values, cols), camera, rng), 0.0, 1.0))
        out = np.clip(np.asarray(enhance(dark), np.float32), 0.0, 1.0)
        results.append(patch_means(srgb_to_linear(out), len(values), cols))
    measured, ramp_out = results
    de = delta_e(measured, reference)
    gain = float(np.sum(measured[NEUTRALS] * reference[NEUTRALS]) / max(1e-12, np.sum(measured[NEUTRALS] ** 2)))
    matched = delta_e(measured * gain, reference)
    c = chroma(ramp_out)
    return ColourScore(float(de.mean()), float(de.max()), float(matched.mean()), float(c.max()), float(c.mean()))
