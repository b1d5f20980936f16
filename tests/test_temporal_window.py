"""Occlusion carried outward, the pair-flow store and the whole-clip temporal stage (Sec. 3.4)."""
from __future__ import annotations

import cv2
import numpy as np

from nightgrade.colorpipeline.temporal.average import TemporalConfig, lost_beyond, temporal_average
from nightgrade.colorpipeline.temporal.motion import FlowConfig
from nightgrade.colorpipeline.temporal.window import PairFlows, smooth_sequence

SIZE = 64
FAST = FlowConfig(wavelet_refine=False)


def _texture(seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((SIZE, SIZE, 3), dtype=np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return (0.2 + 0.6 * (smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.float32)


def test_lost_beyond_carries_occlusion_outward_per_side() -> None:
    near, far, other = (np.zeros((2, 2), bool) for _ in range(3))
    near[0, 0] = True
    other[1, 1] = True
    out = lost_beyond({1: near, 2: far, -1: other, -2: far})
    assert out[1][0, 0] and out[2][0, 0]          # lost at +1, so lost at +2
    assert out[-1][1, 1] and out[-2][1, 1]
    assert not out[-2][0, 0] and not out[2][1, 1]  # the other side is untouched


def test_a_pixel_occluded_at_one_is_not_averaged_from_two() -> None:
    """The neighbour at +2 matches perfectly by its flow, but the pixel was occluded at +1:
    content that vanished cannot be trusted further out, so only -1 and -2 are averaged."""
    centre = np.full((4, 4, 3), 0.5, np.float32)
    neighbours = {k: np.full((4, 4, 3), 0.5 + 0.01 * k, np.float32) for k in (-2, -1, 1, 2)}
    flows = {k: np.zeros((4, 4, 2), np.float32) for k in neighbours}
    occluded = {k: np.zeros((4, 4), bool) for k in neighbours}
    occluded[1][:] = True
    _, counts = temporal_average(centre, neighbours, flows, occluded, TemporalConfig(radius=2, outlier_sigmas=None))
    assert (counts == 3).all()


def test_pair_flows_estimate_each_pair_once_and_respect_the_budget() -> None:
    frames = {i: np.roll(_texture(), 2 * i, axis=1) for i in range(3)}
    flows = PairFlows(FAST, keep_reverse=lambda c, n: n > c)
    forward, occluded = flows.get(0, 1, frames[0], frames[1])
    assert forward.shape == (SIZE, SIZE, 2) and occluded.shape == (SIZE, SIZE)
    assert abs(float(np.median(forward[..., 0])) - 2.0) < 0.5
    backward, _ = flows.get(1, 0, frames[1], frames[0])  # the reverse entry, kept from the first call
    assert flows.estimates == 2 and flows.hits == 1
    assert abs(float(np.median(backward[..., 0])) + 2.0) < 0.5
    flows.get(1, 0, frames[1], frames[0])  # an entry is handed out once
    assert flows.estimates == 4

    tight = PairFlows(FAST, budget_bytes=1)  # nothing fits: every reverse entry is dropped
    tight.get(0, 1, frames[0], frames[1])
    tight.get(1, 0, frames[1], frames[0])
    assert tight.estimates == 4 and tight.peak_bytes == 0


def test_smooth_sequence_cuts_noise_on_a_static_clip() -> None:
    clean = _texture(3)
    rng = np.random.default_rng(7)
    noisy = [(clean + rng.normal(0, 0.03, clean.shape)).astype(np.float32) for _ in range(7)]
    smoothed = smooth_sequence(noisy, TemporalConfig(radius=3), FAST)
    assert len(smoothed) == 7
    before = np.mean([np.abs(f - clean).mean() for f in noisy])
    after = np.mean([np.abs(f - clean).mean() for f in smoothed])
    assert after < 0.6 * before
