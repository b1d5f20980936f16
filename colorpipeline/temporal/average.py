"""Adaptive motion-compensated temporal smoothing (paper Sec. 3.4).

Per-frame enhancement flickers; Sec. 3.4 removes it with a pixelwise average over a sliding
window of up to ``Nmax`` frames on each side, every neighbour warped onto the output frame, the
window of each pixel shrinking as its motion grows and empty past 256 px of motion.

How the window of a pixel is chosen (definitions used throughout this module):

* ``flows[k]`` maps each pixel ``p`` of the centre frame ``t`` to its position in frame ``t + k``
  (``p + flows[k][p]``, x then y, in the pixels of the arrays given), so warping frame ``t + k``
  by it aligns that frame onto the centre. ``occlusions[k]`` is True where ``p`` has no
  counterpart in frame ``t + k`` (forward-backward inconsistent).
* The motion that limits the window is the displacement to each neighbour, ``|flows[k][p]|``:
  the motion accumulated between ``t`` and ``t + k``, measured directly rather than extrapolated
  from a speed. It is compared with ``max_motion * scale``: ``max_motion`` is in full-resolution
  pixels (the paper's 256), ``scale`` is the render scale of the arrays (0.25 for a quarter proxy),
  so a proxy keeps the full-resolution behaviour.
* The per-pixel radius ``N(p)`` is the largest ``n <= radius`` such that every neighbour with
  ``|k| <= n`` that is not occluded at ``p`` has moved at most ``max_motion * scale`` there.
  Neighbour ``k`` contributes to ``p`` only if ``|k| <= N(p)``. For a constant speed ``v`` this
  gives ``N = min(radius, floor(max_motion / v))``: static pixels average all ``2 Nmax + 1``
  frames, faster ones fewer, and a pixel moving more than ``max_motion`` per frame uses none,
  as in Sec. 3.4. The limit on accumulated motion also keeps every neighbour used within the
  range the motion estimator is built to find.
* Occluded pixels, pixels whose warped position falls outside the neighbour and non-finite
  values (flow or warped pixel) are left out for that neighbour. Occlusion also carries outward:
  a pixel occluded in frame ``t + k`` counts as occluded in every frame further out on that side
  (:func:`lost_beyond`). Content that has left the frame or gone behind something at ``t + 1``
  has no reliable match at ``t + 2`` either, and there the estimator's flow points at whatever
  looks alike; content that reappears after a brief occlusion is given up (less denoising there
  rather than a risk of a ghost).
* Outlier rejection (an addition to the paper, on by default, ``outlier_sigmas``): a warped
  neighbour pixel that differs from the centre by more than ``outlier_sigmas`` robust standard
  deviations of that neighbour's difference image (any channel, after removing the median
  difference, so a global brightness flicker is still averaged out) is left out. This catches
  misregistration that the occlusion test misses; at 5 sigma it drops a negligible share of
  pixels where registration is right.
* The kept frames are averaged with equal weights (the paper's "pixelwise average"); the centre
  always counts. Border frames of a sequence simply have fewer neighbours on one side
  (:func:`window_offsets`), so their window is asymmetric.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nightgrade.colorpipeline.errors import UsageError, setting
from nightgrade.colorpipeline.temporal.motion import flow_magnitude, warp

MAX_RADIUS = 6  # Nmax of Sec. 3.4
DEFAULT_MAX_MOTION = 256.0  # full-resolution pixels, Sec. 3.4

# Robust sigma = 1.4826 * median absolute deviation for Gaussian noise.
_MAD_TO_SIGMA = 1.4826
# Frames that are identical except where misregistered have a MAD of 0; this keeps the
# threshold above float rounding so such frames still average where they agree.
_SIGMA_FLOOR = 1e-6
# The noise estimate looks at about this many pixels per neighbour (a strided subsample), so
# its cost does not grow with the frame size.
_NOISE_SAMPLES = 1 << 16


@dataclass(frozen=True)
class TemporalConfig:
    """Sec. 3.4 settings. ``radius``: Nmax, neighbours on each side (0 turns smoothing off);
    ``max_motion``: full-resolution pixels of accumulated motion beyond which a neighbour is not
    used; ``outlier_sigmas``: reject threshold of the outlier test (None turns it off)."""

    radius: int = MAX_RADIUS
    max_motion: float = DEFAULT_MAX_MOTION
    outlier_sigmas: float | None = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.radius, bool) or not isinstance(self.radius, int) or not 0 <= self.radius <= MAX_RADIUS:
            raise UsageError(f"temporal radius {self.radius!r} is not an integer in 0..{MAX_RADIUS}; "
                             f"give {setting('radius')} between 0 and {MAX_RADIUS}")
        if not (np.isfinite(self.max_motion) and self.max_motion > 0):
            raise UsageError(f"max motion {self.max_motion!r} is not a positive number of pixels; "
                             f"give {setting('max_motion')} above 0 (the paper uses 256)")
        if self.outlier_sigmas is not None and not (np.isfinite(self.outlier_sigmas) and self.outlier_sigmas > 0):
            raise UsageError(f"outlier threshold {self.outlier_sigmas!r} is not a positive number of sigmas")


def window_offsets(frame: int, first: int, last: int, radius: int = MAX_RADIUS) -> tuple[int, ...]:
    """Offsets ``k`` of the neighbours of ``frame`` that exist in the sequence ``first..last``,
    nearest first (``-1, 1, -2, 2, ...``); at a border the window is one-sided."""
    if not first <= frame <= last:
        raise ValueError(f"frame {frame} is outside the sequence {first}..{last}")
    return tuple(k for d in range(1, radius + 1) for k in (-d, d) if first <= frame + k <= last)


def lost_beyond(occlusions: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Occlusion masks by offset, each also True where a nearer neighbour on the same side lost
    the pixel (the carry-outward rule of the module doc)."""
    out: dict[int, np.ndarray] = {}
    for side in (-1, 1):
        lost: np.ndarray | None = None
        for k in sorted((k for k in occlusions if k * side > 0), key=abs):
            mask = np.asarray(occlusions[k], dtype=bool)
            lost = mask if lost is None else lost | mask
            out[k] = lost
    return out


def radius_map(shape: tuple[int, int], flows: Mapping[int, np.ndarray],
               occlusions: Mapping[int, np.ndarray] | None, cfg: TemporalConfig,
               scale: float = 1.0) -> np.ndarray:
    """The per-pixel window radius N(p) of Sec. 3.4 as an ``(H, W)`` uint8 map (see the module
    doc for the rule). Offsets missing from ``flows`` (sequence borders) do not limit N; a
    non-finite flow counts as too much motion."""
    _check_scale(scale)
    limit = np.float32(cfg.max_motion * scale)
    radius = np.full(shape, cfg.radius, dtype=np.uint8)
    for distance in range(1, cfg.radius + 1):
        for k in (-distance, distance):
            if k not in flows:
                continue
            flow = _checked_flow(flows[k], shape, k)
            too_far = ~(flow_magnitude(flow) <= limit)
            occluded = _occlusion(occlusions, k, shape)
            if occluded is not None:
                too_far &= ~occluded
            np.putmask(radius, too_far & (radius >= distance), distance - 1)
    return radius


def temporal_average(centre: np.ndarray, neighbours: Mapping[int, np.ndarray], flows: Mapping[int, np.ndarray],
                     occlusions: Mapping[int, np.ndarray] | None, cfg: TemporalConfig,
                     scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Average ``centre`` (frame t, ``(H, W)`` or ``(H, W, C)``) with its motion-compensated
    neighbours over the adaptive window of Sec. 3.4.

    ``neighbours[k]`` is frame ``t + k`` unwarped; ``flows[k]`` (required for every neighbour)
    and ``occlusions[k]`` (optional; None for none at all) are as in the module doc (occlusion
    carries outward: :func:`lost_beyond` is applied here). Offsets
    beyond ``cfg.radius`` are ignored. Returns the float32 frame and an ``(H, W)`` uint8 map of
    how many frames each pixel averages (1 = the centre alone, whose value is then returned
    exactly).
    """
    _check_scale(scale)
    centre = np.asarray(centre)
    if centre.ndim not in (2, 3) or centre.dtype.kind != "f":
        raise ValueError(f"centre frame must be a float (H, W) or (H, W, C) array, got {centre.dtype} {centre.shape}")
    shape = centre.shape[:2]
    total = centre.astype(np.float32, copy=True)
    count = np.ones(shape, dtype=np.uint8)
    offsets = sorted((k for k in neighbours if 0 < abs(k) <= cfg.radius), key=lambda k: (abs(k), k))
    if not offsets:
        return total, count
    missing = [k for k in offsets if k not in flows]
    if missing:
        raise ValueError(f"no flow given for neighbour offset(s) {missing}")
    if occlusions is not None:
        for k in offsets:
            _occlusion(occlusions, k, shape)  # shape errors name the offset given, not a carried one
        occlusions = lost_beyond({k: occlusions[k] for k in offsets if k in occlusions})
    window = radius_map(shape, {k: flows[k] for k in offsets}, occlusions, cfg, scale)
    grid_x, grid_y = np.meshgrid(np.arange(shape[1], dtype=np.float32), np.arange(shape[0], dtype=np.float32))
    reference = centre.astype(np.float32, copy=False)
    for k in offsets:
        used = window >= abs(k)
        if not used.any():
            continue
        frame = np.asarray(neighbours[k], dtype=np.float32)
        if frame.shape != centre.shape:
            raise ValueError(f"neighbour {k:+d} has shape {frame.shape}, the centre {centre.shape}")
        warped, inside = _warp(frame, flows[k], grid_x, grid_y)
        used &= inside
        occluded = _occlusion(occlusions, k, shape)
        if occluded is not None:
            used &= ~occluded
        used &= _finite(warped)
        if cfg.outlier_sigmas is not None:
            used &= ~_outliers(warped, reference, used, cfg.outlier_sigmas)
        np.add(total, warped, out=total, where=used[..., None] if total.ndim == 3 else used)
        count += used
    return total / (count[..., None] if total.ndim == 3 else count), count


def _warp(frame: np.ndarray, flow: np.ndarray, grid_x: np.ndarray,
          grid_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``frame`` aligned onto the centre by ``flow`` and where ``p + flow[p]`` lies inside it:
    outside, the warp only has a mirrored border to show, not the neighbour's content."""
    flow = np.asarray(flow, dtype=np.float32)
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    height, width = grid_x.shape
    # NaN positions compare False, so a non-finite flow is never inside.
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return warp(frame, flow).reshape(frame.shape), inside


def _outliers(warped: np.ndarray, centre: np.ndarray, candidates: np.ndarray, sigmas: float) -> np.ndarray:
    """Pixels where ``warped`` departs from ``centre`` by more than ``sigmas`` robust standard
    deviations of the difference (per channel, median difference removed), estimated on a
    strided subsample of the ``candidates``."""
    diff = warped - centre
    if diff.ndim == 2:
        diff = diff[..., None]
    stride = max(1, int(np.sqrt(candidates.size / _NOISE_SAMPLES)))
    sample = diff[::stride, ::stride][candidates[::stride, ::stride]]
    if sample.shape[0] == 0:
        return np.zeros(candidates.shape, dtype=bool)
    median = np.median(sample, axis=0)
    sigma = np.maximum(_MAD_TO_SIGMA * np.median(np.abs(sample - median), axis=0), _SIGMA_FLOOR)
    limits = (sigmas * sigma).astype(np.float32)
    far = np.zeros(candidates.shape, dtype=bool)
    for channel in range(diff.shape[2]):
        far |= np.abs(diff[..., channel] - np.float32(median[channel])) > limits[channel]
    return far


def _finite(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.isfinite(image)
    # A loop over channels: numpy reduces a short last axis an order of magnitude slower.
    finite = np.isfinite(image[..., 0])
    for channel in range(1, image.shape[2]):
        finite &= np.isfinite(image[..., channel])
    return finite


def _checked_flow(flow: np.ndarray, shape: tuple[int, int], k: int) -> np.ndarray:
    flow = np.asarray(flow, dtype=np.float32)
    if flow.shape != (*shape, 2):
        raise ValueError(f"flow to neighbour {k:+d} has shape {flow.shape}, expected {(*shape, 2)}")
    return flow


def _occlusion(occlusions: Mapping[int, np.ndarray] | None, k: int, shape: tuple[int, int]) -> np.ndarray | None:
    if occlusions is None or k not in occlusions:
        return None
    mask = np.asarray(occlusions[k], dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"occlusion mask of neighbour {k:+d} has shape {mask.shape}, expected {shape}")
    return mask


def _check_scale(scale: float) -> None:
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"render scale {scale!r} must be a positive number")
