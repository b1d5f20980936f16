"""A physically based low-light camera model, for paired evaluation data and robustness tests.

The paper has no ground truth for real night footage (Sec. 1), so quality numbers need pairs whose dark
half is made from a clean frame the way a sensor would make it:

1. linearise the clean sRGB frame (display encoding -> scene-relative light);
2. lower the exposure by ``stops`` (light x 2**-stops);
3. count photo-electrons: Poisson shot noise with ``full_well`` electrons at a 1.0 (pre-darkening) white,
   then Gaussian read noise of ``read_noise`` electrons;
4. colour loss: night scenes lose chroma (low photon counts per colour channel, mesopic vision);
   mix towards luminance by ``colour_loss``;
5. quantise the re-encoded signal to ``bits`` (8-bit delivery codecs crush the shadows further).

The result stays dark: it is the underexposed capture, not a brightened one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class CameraModel:
    """Sensor and delivery parameters; defaults give a clearly dark, visibly noisy 8-bit clip."""

    stops: float = 3.0
    full_well: float = 2000.0
    read_noise: float = 3.0
    colour_loss: float = 0.4
    bits: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding (piecewise), float32 in, float32 out."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((np.maximum(v, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding (piecewise), float32 in, float32 out."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.0031308, v * 12.92,
                    1.055 * np.maximum(v, 0.0031308) ** (1 / 2.4) - 0.055).astype(np.float32)


def simulate_low_light(srgb: np.ndarray, camera: CameraModel, rng: np.random.Generator) -> np.ndarray:
    """Turn a clean sRGB-encoded HxWx3 float frame in [0, 1] into its low-light capture (same encoding)."""
    linear = srgb_to_linear(np.clip(srgb, 0.0, 1.0)) * np.float32(2.0 ** -camera.stops)
    electrons = rng.poisson(linear * camera.full_well).astype(np.float32)
    electrons += rng.normal(0.0, camera.read_noise, size=electrons.shape).astype(np.float32)
    signal = np.clip(electrons / camera.full_well, 0.0, 1.0)
    luma = signal @ _REC709_LUMA
    signal = (1.0 - camera.colour_loss) * signal + camera.colour_loss * luma[..., None]
    levels = float(2 ** camera.bits - 1)
    return (np.round(linear_to_srgb(signal) * levels) / levels).astype(np.float32)
