"""A colour sensor's layout for the camera model (``colorpipeline.lowlight``): Bayer mosaic and crosstalk.

Real footage is not noisy the way independent per-pixel, per-channel noise is. Two steps of every
camera shape its noise, and a network trained only on independent noise has never seen the result:

- **Bayer mosaic.** Each photosite records one colour of an RGGB pattern; the noise is drawn there,
  one value per site, and demosaicing interpolates the missing two colours from neighbours. The
  noise of the finished picture is spatially correlated (blotches a few pixels wide) and chroma
  noise follows the mosaic's pattern.
- **Colour crosstalk.** A sensor's colour filters overlap, so the raw channels are a mix of the
  scene's; the camera's colour matrix undoes the mix after the noise is in, which amplifies chroma
  noise by ``1 / (1 - crosstalk)``.

Demosaicing is bilinear (each missing colour the mean of its nearest recorded neighbours), the
simplest interpolation cameras and raw converters use; its zipper and fringe artefacts are part of
what the model should learn to clean.
"""
from __future__ import annotations

import cv2
import numpy as np

# Bilinear interpolation kernels: green from its 4 neighbours, red/blue from up to 4 diagonal or 2 edge ones.
_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4.0
_RED_BLUE = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4.0


def bayer_masks(height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 masks of an RGGB mosaic: 1 where a site records that channel."""
    masks = np.zeros((height, width, 3), np.float32)
    masks[0::2, 0::2, 0] = 1.0   # R
    masks[0::2, 1::2, 1] = 1.0   # G on red rows
    masks[1::2, 0::2, 1] = 1.0   # G on blue rows
    masks[1::2, 1::2, 2] = 1.0   # B
    return masks


def mosaic(rgb: np.ndarray) -> np.ndarray:
    """(H, W) the value each RGGB site records of an (H, W, 3) image."""
    return np.sum(rgb * bayer_masks(*rgb.shape[:2]), axis=2, dtype=np.float32)


def demosaic(raw: np.ndarray) -> np.ndarray:
    """(H, W, 3) bilinear demosaic of an (H, W) RGGB mosaic; recorded sites keep their value.

    Each channel is the filtered recorded sites divided by the filtered mask, so borders (where a
    kernel reaches outside the frame) average only the sites that exist.
    """
    raw = np.asarray(raw, np.float32)
    masks = bayer_masks(*raw.shape)
    out = np.empty(raw.shape + (3,), np.float32)
    for c, kernel in enumerate((_RED_BLUE, _GREEN, _RED_BLUE)):
        sites = cv2.filter2D(raw * masks[..., c], -1, kernel, borderType=cv2.BORDER_CONSTANT)
        weight = cv2.filter2D(masks[..., c], -1, kernel, borderType=cv2.BORDER_CONSTANT)
        out[..., c] = np.where(masks[..., c] > 0, raw, sites / np.maximum(weight, 1e-6))
    return out


def crosstalk_matrix(crosstalk: float) -> np.ndarray:
    """(3, 3) the sensor's channel mix: each channel keeps ``1 - crosstalk`` of its own light and
    receives ``crosstalk`` of the three channels' mean (greys are unchanged)."""
    return ((1.0 - crosstalk) * np.eye(3) + crosstalk * np.full((3, 3), 1.0 / 3.0)).astype(np.float32)


def colour_matrix(crosstalk: float) -> np.ndarray:
    """(3, 3) the camera's colour matrix: the inverse of ``crosstalk_matrix``, which scales chroma
    (and its noise) by ``1 / (1 - crosstalk)`` and leaves greys alone."""
    mean = np.full((3, 3), 1.0 / 3.0)
    return ((np.eye(3) - mean) / (1.0 - crosstalk) + mean).astype(np.float32)
