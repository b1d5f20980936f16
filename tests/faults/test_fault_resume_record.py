"""Resume knows what made a frame (issue 16 item 11, issue 19 item 3): frames made with other
settings, other weights (or the same weights used another way, locally or by a daemon), by another
tool, or a hard link to the input are rendered again, and the render says so; frames made the same
way are kept."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from nightgrade.models.networks import build_generator
from nightgrade.server.cli.main import main
from nightgrade.server.daemon.server import DaemonConfig
from tests.conftest import TINY, read_image, save_with_mirrors, serving, write_image

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(folder: Path, count: int = 2) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for n in range(1, count + 1):
        write_image(folder / f"s.{n:04d}.exr", (rng.random((40, 56, 3)) * 0.3).astype(np.float32), "float")
    return str(folder / "s.####.exr")


def _enhance(capsys, *args: str) -> tuple[dict, list[str]]:
    local = () if "--server" in args else ("--device", "cpu")
    assert main(["enhance", *args, *local, "--json", "-q"]) == 0
    captured = capsys.readouterr()
    # the notes a rerun gives; the colour line every render prints (issue 19) is not one of them
    notes = [line for line in captured.err.splitlines() if line and not line.startswith("nightgrade: colour:")]
    return json.loads(captured.out), notes


@pytest.mark.parametrize("ext", [".exr", ".png", ".tif", ".dpx"])
def test_other_settings_are_rendered_again_and_said(tmp_path: Path, tiny_weights: str, capsys, ext: str) -> None:
    src, out = _inputs(tmp_path / "in"), str(tmp_path / "out" / f"o.####{ext}")
    _enhance(capsys, src, out, "--weights", tiny_weights)
    same, notes = _enhance(capsys, src, out, "--weights", tiny_weights)
    assert (same["frames_written"], same["frames_skipped"], same["frames_rerendered"]) == (0, 2, 0) and not notes
    first = read_image(tmp_path / "out" / f"o.0001{ext}")[0]
    mixed, notes = _enhance(capsys, src, out, "--weights", tiny_weights, "--mix", "0.3")
    assert (mixed["frames_written"], mixed["frames_skipped"], mixed["frames_rerendered"]) == (2, 0, 2)
    reason = "mix 1.0 -> 0.3" if ext != ".dpx" else "made with other settings"  # DPX keeps a fingerprint only
    assert mixed["rerender_reason"] == f"frame 1: {reason}"
    assert len(notes) == 1 and "rendered 2 existing frame(s) again" in notes[0] and reason in notes[0]
    assert not np.array_equal(read_image(tmp_path / "out" / f"o.0001{ext}")[0], first)
    again, _ = _enhance(capsys, src, out, "--weights", tiny_weights, "--mix", "0.3")
    assert again["frames_written"] == 0


def test_other_weights_are_rendered_again(tmp_path: Path, tiny_weights: str, capsys) -> None:
    torch.manual_seed(1)
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, build_generator(TINY), CheckpointMeta(generator=TINY, tiles=TileConfig(64, 160, 32),
                                                                   model_name="tiny", model_version="0.0.2"))
    src, out = _inputs(tmp_path / "in"), str(tmp_path / "out" / "o.####.exr")
    _enhance(capsys, src, out, "--weights", tiny_weights)
    summary, _ = _enhance(capsys, src, out, "--weights", str(other))
    assert summary["frames_rerendered"] == 2 and summary["rerender_reason"].startswith("frame 1: model ")


def _other_switch(tiny_weights: str, path: Path) -> str:
    """``tiny_weights`` saved with another generator switch: the same weights digest and model name."""
    loaded = load_checkpoint(tiny_weights)
    saved = save_with_mirrors(loaded, True, path)
    assert load_checkpoint(saved).meta.digest == loaded.meta.digest
    return saved


def test_the_same_weights_used_another_way_are_rendered_again(tmp_path: Path, tiny_weights: str, capsys) -> None:
    # 0.3.3 and 0.3.4 share their weights digest and differ in a generator switch: their frames must not mix
    other = _other_switch(tiny_weights, tmp_path / "mirrors.safetensors")
    src, out = _inputs(tmp_path / "in"), str(tmp_path / "out" / "o.####.exr")
    _enhance(capsys, src, out, "--weights", tiny_weights)
    summary, _ = _enhance(capsys, src, out, "--weights", other)
    assert summary["frames_rerendered"] == 2 and summary["rerender_reason"].startswith("frame 1: model ")
    again, _ = _enhance(capsys, src, out, "--weights", other)
    assert again["frames_written"] == 0  # and frames made by that model are kept


def test_a_daemon_render_records_the_model_it_served(tmp_path: Path, tiny_weights: str, capsys) -> None:
    # a farm's daemon restarted with another model under the same name: a rerun must not keep the old frames
    other = _other_switch(tiny_weights, tmp_path / "mirrors.safetensors")
    src, out = _inputs(tmp_path / "in"), str(tmp_path / "out" / "o.####.exr")

    def remote(weights: str) -> dict:
        with serving(DaemonConfig(bind="tcp://127.0.0.1:0", weights=(weights,), device="cpu")) as daemon:
            return _enhance(capsys, src, out, "--server", daemon.endpoint)[0]

    assert remote(tiny_weights)["frames_written"] == 2
    local, _ = _enhance(capsys, src, out, "--weights", tiny_weights)
    assert local["frames_written"] == 0  # a local render with that checkpoint records the same maker
    switched = remote(other)
    assert switched["frames_rerendered"] == 2 and switched["rerender_reason"].startswith("frame 1: model ")
    assert remote(other)["frames_written"] == 0


def test_unrecorded_frames_and_a_hard_link_to_the_input_are_rendered(tmp_path: Path, tiny_weights: str,
                                                                      capsys) -> None:
    src = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    source = tmp_path / "in" / "s.0001.exr"
    before = source.read_bytes()
    os.link(source, out / "o.0001.exr")  # passes every file test: size, channels, decodes
    write_image(out / "o.0002.exr", np.zeros((40, 56, 3), np.float32), "half")  # another tool's frame
    summary, notes = _enhance(capsys, src, str(out / "o.####.exr"), "--weights", tiny_weights)
    assert (summary["frames_written"], summary["frames_rerendered"]) == (2, 2)
    assert summary["rerender_reason"] == "frame 1: no record of what made it"
    assert source.read_bytes() == before and source.stat().st_nlink == 1  # the link was replaced, not written
    assert len(notes) == 1
