"""Flows that straddle a farm chunk boundary, shared between chunks through the disk cache.

Two chunks of a temporal render meet at a boundary: the first chunk's last centres look forward
at frames the second chunk renders, and the second chunk's first centres look back. Each pair
(a, b) is estimated once as forward a->b and backward b->a (``PairFlows.get``), so the chunk that
gets there first can hand the other one its direction. ``BoundaryFlows`` writes that reverse
entry under the chunk's ``--cache-dir`` when its centre is *not* one of this render's centres
(only a boundary pair: inside a chunk the memory store serves it), and looks on disk only for
pairs whose neighbour lies outside this render's centres. Files are keyed by the enhanced frames'
content keys (model, parameters and the exact pixels the generator saw) and the flow settings,
written beside their name and renamed into place: a reader sees a whole file or none.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Hashable
from pathlib import Path

import numpy as np

from nightgrade.colorpipeline.io.atomic import atomic_target
from nightgrade.colorpipeline.temporal.motion import FlowConfig

Motion = tuple[np.ndarray, np.ndarray]


class BoundaryFlows:
    """The ``shared`` store of ``PairFlows`` for a chunk of a sequence render (module doc).

    ``key_of(frame)`` is the enhanced frame's cache key (None when not known yet); ``centres``
    are the frames this render writes. ``reads``/``writes`` count the pairs found and stored.
    """

    def __init__(self, folder: str | os.PathLike[str], key_of: Callable[[Hashable], str | None],
                 centres: Collection[Hashable], cfg: FlowConfig) -> None:
        self._folder = Path(folder) / "flows"
        self._key_of, self._centres, self._cfg = key_of, frozenset(centres), repr(cfg)
        self.reads = 0
        self.writes = 0

    def get(self, centre: Hashable, neighbour: Hashable) -> Motion | None:
        if neighbour in self._centres:
            return None
        path = self._path(centre, neighbour)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path) as stored:
                motion = stored["flow"], stored["occluded"]
        except (OSError, ValueError, KeyError):
            return None  # unreadable: estimate again, costing time, never correctness
        self.reads += 1
        return motion

    def put(self, centre: Hashable, neighbour: Hashable, motion: Motion) -> None:
        if centre in self._centres:
            return
        path = self._path(centre, neighbour)
        if path is None or path.is_file():
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            with atomic_target(path) as temp:
                np.savez(temp, flow=motion[0], occluded=motion[1])
        except OSError:
            return  # a full or read-only cache only loses the sharing
        self.writes += 1

    def _path(self, centre: Hashable, neighbour: Hashable) -> Path | None:
        keys = self._key_of(centre), self._key_of(neighbour)
        if None in keys:
            return None
        digest = hashlib.sha256(f"{keys[0]}\0{keys[1]}\0{self._cfg}".encode()).hexdigest()[:40]
        return self._folder / f"{digest}.npz"
