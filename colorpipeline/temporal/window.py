"""Motion for the temporal window (paper Sec. 3.4), shared by every renderer of it.

The per-frame enhanced images are smoothed by ``temporal.temporal_average``, which needs, for a
centre ``t`` and each neighbour ``t + k``, the flow from ``t`` to ``t + k`` and where it has no
counterpart there (forward-backward occlusion). :class:`PairFlows` supplies those: a pair of
frames is estimated once, in both directions, and the reverse entry is kept for when the other
frame becomes the centre. That makes 2N flow estimates per output frame instead of 4N for a
render in order. Frames are named by any hashable id: frame numbers in a sequence render, content
keys in the daemon, where requests come from many clips and in any order.

The store is bounded in bytes (least recently stored first out): the daemon serves many clips for
days; a sequential render keeps at most N(N+1)/2 entries (21 at N = 6: about 175 MB at 1280x720,
1.6 GB at UHD, four times that at 8K).

:func:`smooth_sequence` runs the whole stage over a list of enhanced frames (evaluation, tests).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Protocol

import numpy as np

from nightgrade.colorpipeline.temporal.average import TemporalConfig, temporal_average, window_offsets
from nightgrade.colorpipeline.temporal.motion import FlowConfig, estimate_flow, occlusion_mask

# Forward-backward test constant of motion.occlusion_mask (Sundaram et al. 2010, eq. 5), in
# pixels squared of the flow's working resolution.
_OCCLUSION_BETA = 0.5

Motion = tuple[np.ndarray, np.ndarray]  # (flow H x W x 2 float32, occluded H x W bool)


class SharedFlows(Protocol):
    """A store beyond this process (farm chunks share boundary pairs through it): ``get`` returns
    None when it does not hold the pair; ``put`` may decline to keep one."""

    def get(self, centre: Hashable, neighbour: Hashable) -> Motion | None: ...

    def put(self, centre: Hashable, neighbour: Hashable, motion: Motion) -> None: ...


def occlusion_beta(shape: tuple[int, int], cfg: FlowConfig) -> float:
    """The occlusion test's beta (px^2) for flows of a ``shape`` frame: ``estimate_flow`` ends at
    a working resolution reduced by s and scales its vectors up by s, so the tolerance scales by
    s^2 (see ``motion.occlusion_mask``)."""
    side = cfg.refine_max_side if cfg.wavelet_refine else cfg.max_side
    factor = max(1.0, max(shape) / side)
    return _OCCLUSION_BETA * factor * factor


class PairFlows:
    """(flow, occlusion) from a centre frame to a neighbour, each pair estimated once.

    ``keep_reverse(centre, neighbour)`` says whether the reverse entry will be asked for (a
    sequence render: the neighbour is later and will be a centre); None keeps every reverse entry
    within ``budget_bytes``. ``shared`` is asked before estimating and offered every reverse entry
    not kept in memory. Thread-safe use is the caller's affair (one worker owns it).
    """

    def __init__(self, cfg: FlowConfig, budget_bytes: int | None = None,
                 keep_reverse: Callable[[Hashable, Hashable], bool] | None = None,
                 shared: SharedFlows | None = None) -> None:
        self._cfg, self._budget, self._keep, self._shared = cfg, budget_bytes, keep_reverse, shared
        self._store: OrderedDict[tuple[Hashable, Hashable], Motion] = OrderedDict()
        self._bytes = 0
        self.peak_bytes = 0
        self.estimates = 0
        self.hits = 0
        self.seconds = 0.0

    def get(self, centre: Hashable, neighbour: Hashable, centre_image: np.ndarray,
            neighbour_image: np.ndarray) -> Motion:
        """Flow mapping ``centre``'s pixels into ``neighbour`` and where they have no counterpart there."""
        stored = self._store.pop((centre, neighbour), None)
        if stored is not None:
            self._bytes -= _nbytes(stored)
            self.hits += 1
            return stored
        if self._shared is not None:
            stored = self._shared.get(centre, neighbour)
            if stored is not None:
                self.hits += 1
                return stored
        started = time.perf_counter()
        shape = centre_image.shape[:2]
        beta = occlusion_beta(shape, self._cfg)
        forward = estimate_flow(centre_image, neighbour_image, self._cfg)
        backward = estimate_flow(neighbour_image, centre_image, self._cfg)
        self.estimates += 2
        occluded = occlusion_mask(forward, backward, beta=beta)
        if self._keep is None or self._keep(centre, neighbour):
            self._remember((neighbour, centre), (backward, occlusion_mask(backward, forward, beta=beta)))
        elif self._shared is not None:
            self._shared.put(neighbour, centre, (backward, occlusion_mask(backward, forward, beta=beta)))
        self.seconds += time.perf_counter() - started
        return forward, occluded

    def _remember(self, pair: tuple[Hashable, Hashable], entry: Motion) -> None:
        size = _nbytes(entry)
        if self._budget is not None and size > self._budget:
            return
        self._store[pair] = entry
        self._bytes += size
        while self._budget is not None and self._bytes > self._budget:
            _, dropped = self._store.popitem(last=False)
            self._bytes -= _nbytes(dropped)
        self.peak_bytes = max(self.peak_bytes, self._bytes)


def smooth_frame(centre: Hashable, window: Mapping[Hashable, np.ndarray], offsets: Mapping[int, Hashable],
                 flows: PairFlows, cfg: TemporalConfig, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Sec. 3.4 for one centre: ``window`` maps frame ids to enhanced images (centre included),
    ``offsets`` maps each neighbour's offset ``k`` to its id. Returns ``temporal_average``'s
    (frame, frames-averaged map)."""
    motion = {k: flows.get(centre, ident, window[centre], window[ident]) for k, ident in offsets.items()}
    return temporal_average(window[centre], {k: window[ident] for k, ident in offsets.items()},
                            {k: m[0] for k, m in motion.items()}, {k: m[1] for k, m in motion.items()},
                            cfg, scale)


def smooth_sequence(frames: Sequence[np.ndarray], cfg: TemporalConfig = TemporalConfig(),
                    flow: FlowConfig = FlowConfig(), scale: float = 1.0) -> list[np.ndarray]:
    """The temporal stage over a whole clip of enhanced frames (index = frame number), in order,
    with the one-sided windows of ``window_offsets`` at the ends."""
    last = len(frames) - 1
    flows = PairFlows(flow, keep_reverse=lambda centre, neighbour: neighbour > centre)
    window = dict(enumerate(frames))
    out = []
    for t in range(len(frames)):
        offsets = {k: t + k for k in window_offsets(t, 0, last, cfg.radius)}
        out.append(smooth_frame(t, window, offsets, flows, cfg, scale)[0])
    return out


def _nbytes(entry: Motion) -> int:
    return sum(a.nbytes for a in entry)
