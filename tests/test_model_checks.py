"""The tile and proxy checks of `nightgrade evaluate` (issue 14, items 4 and 7): the goal line judges the
issue's scale (0.5) and reports 0.25 beside it."""
from __future__ import annotations

import numpy as np

from nightgrade.server.evaluation import model_checks
from nightgrade.server.evaluation.methods import engine_method


def test_consistency_lines_judge_the_half_scale_proxy_and_report_the_quarter(tiny_weights, monkeypatch) -> None:
    method, _ = engine_method(tiny_weights, "cpu")
    frame = np.random.default_rng(0).random((96, 160, 3), dtype=np.float32)
    diff = model_checks.tile_difference(method.engine, frame)
    # a model whose half-scale proxy meets the goal while the quarter-scale one does not: met
    monkeypatch.setattr(model_checks, "proxy_psnrs", lambda engine, f, scales: [36.0, 20.0])
    lines = model_checks.consistency_lines(method.engine, {"f": frame})
    assert f"| f | 160x96 | {100 * diff:.3f} % | 36.00 | 20.00 |" in lines
    assert lines[-1] == ("- proxy at scale 0.5 = final >= 35 dB (the issue's goal): worst 36.00 dB, met; "
                         "at 0.25, beyond the goal: worst 20.00 dB")
    monkeypatch.setattr(model_checks, "proxy_psnrs", lambda engine, f, scales: [34.0, 40.0])
    assert ", MISSED;" in model_checks.consistency_lines(method.engine, {"f": frame})[-1]
