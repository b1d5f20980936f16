"""Boundary flows shared by farm chunks through the cache folder (server/render/flow_store.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nightgrade.colorpipeline.temporal.motion import FlowConfig
from nightgrade.server.render.flow_store import BoundaryFlows

KEYS = {n: f"key-{n}" for n in range(1, 11)}


def _motion(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(6, 8, 2)).astype(np.float32), rng.random((6, 8)) > 0.5


def test_only_boundary_pairs_travel_and_come_back_bit_for_bit(tmp_path: Path) -> None:
    head = BoundaryFlows(tmp_path, KEYS.get, range(1, 6), FlowConfig())
    tail = BoundaryFlows(tmp_path, KEYS.get, range(6, 11), FlowConfig())
    inside, boundary = _motion(1), _motion(2)
    head.put(3, 5, inside)  # centre 3 is the head's own: its memory store serves it
    head.put(6, 4, boundary)  # centre 6 belongs to the tail
    assert head.writes == 1 and len(list((tmp_path / "flows").iterdir())) == 1
    found = tail.get(6, 4)
    assert found is not None and tail.reads == 1
    assert np.array_equal(found[0], boundary[0]) and np.array_equal(found[1], boundary[1])
    assert tail.get(6, 8) is None  # neighbour inside the tail: never looked up on disk
    assert tail.get(7, 5) is None  # not stored
    other = BoundaryFlows(tmp_path, KEYS.get, range(6, 11), FlowConfig(method="dis_medium"))
    assert other.get(6, 4) is None  # other flow settings: another file


def test_unknown_keys_and_unreadable_files_cost_an_estimate_not_an_error(tmp_path: Path) -> None:
    flows = BoundaryFlows(tmp_path, lambda n: None, range(6, 11), FlowConfig())
    flows.put(1, 2, _motion(3))
    assert flows.writes == 0 and flows.get(6, 4) is None
    store = BoundaryFlows(tmp_path, KEYS.get, range(1, 6), FlowConfig())
    store.put(6, 4, _motion(4))
    (path,) = (tmp_path / "flows").iterdir()
    path.write_bytes(b"not a zip")
    assert BoundaryFlows(tmp_path, KEYS.get, range(6, 11), FlowConfig()).get(6, 4) is None
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    BoundaryFlows(blocked, KEYS.get, range(1, 6), FlowConfig()).put(6, 4, _motion(5))  # no exception
