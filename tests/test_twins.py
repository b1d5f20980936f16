"""Twin evaluation clips (server/evaluation/twins.py): named, described, reported and kept out of the mean."""
from __future__ import annotations

import pytest

from nightgrade.server.evaluation import evaluate as ev
from nightgrade.server.evaluation import twins


def test_twins_are_recognised_by_name_and_described() -> None:
    assert twins.split("bikes_late_dark2") == ("bikes_late", "_dark", "2")
    assert twins.split("bikes_late_mosaic") == ("bikes_late", "_mosaic", "")
    assert twins.split("carphone_outside") is None      # a camera of its own, not a twin
    assert twins.split("my_darkroom") is None and twins.split("a_mosaic_tiles") is None   # names that merely contain one
    assert twins.main_clips(["a", "a_dark2", "a_mosaic", "b_outside"]) == ["a", "b_outside"]
    assert twins.describe("a_dark2") == "a_dark2 is a 2 stop(s) darker"
    assert "Bayer-mosaic sensor" in twins.describe("a_mosaic")
    assert twins.split("bikes_late_black") == ("bikes_late", "_black", "")
    assert "black raised" in twins.describe("a_black") and twins.main_clips(["a", "a_black"]) == ["a"]
    with pytest.raises(ValueError):
        twins.describe("a")


def test_a_mosaic_twin_is_reported_against_its_base_but_has_no_darkness_goal() -> None:
    scores = tuple(ev.ClipScore(clip, "nightgrade", 2, psnr, 0.9, 0.01, 0.1)
                   for clip, psnr in (("a", 30.0), ("a_mosaic", 27.5), ("a_dark2", 29.0)))
    text = ev.quality_markdown(ev.EvalResults("eval", ("nightgrade",), scores), {})
    assert "## Mean over clips (a)" in text and "| nightgrade | 30.00 |" in text
    assert "## Robustness: a_mosaic is a from a Bayer-mosaic sensor" in text
    assert "| nightgrade | 30.00 | 27.50 | 2.50 |" in text
    assert "loses <= 2 dB on a_dark2" in text and "loses <= 2 dB on a_mosaic" not in text
