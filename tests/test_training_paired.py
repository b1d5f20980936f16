"""Paired training (issue 14, items 3 and 5): runs, resumes exactly, exports a loadable model."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.errors import InputError, UsageError
from nightgrade.models.checkpoint import load_checkpoint, read_meta
from nightgrade.models.training_paired import PairedConfig, train_paired
from nightgrade.server.cli import main


def _clean_dir(folder) -> str:
    rng = np.random.default_rng(0)
    os.makedirs(folder / "a", exist_ok=True)
    for i in range(3):
        yy, xx = np.mgrid[0:150, 0:220]
        img = np.stack([xx % 64 * 3, yy % 48 * 5, (xx + yy) % 255], axis=-1) + rng.integers(0, 20, (150, 220, 3))
        cv2.imwrite(str(folder / "a" / f"f{i}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return str(folder)


def _cfg(tmp_path, out: str, steps: int) -> PairedConfig:
    return PairedConfig(clean_dir=_clean_dir(tmp_path / "clean"), out_dir=str(tmp_path / out), steps=steps,
                        frames_per_step=2, crops_per_frame=2, frame_side=192, local=32, region=96, infer_local=64,
                        ngf=4, n_blocks=1, checkpoint_seconds=0, log_every=1)


def test_resume_continues_exactly(tmp_path) -> None:
    straight = train_paired(_cfg(tmp_path, "a", 4), log=lambda m: None)
    train_paired(_cfg(tmp_path, "b", 4), log=lambda m: None, stop_at=2)  # a session that ended early
    resumed = train_paired(_cfg(tmp_path, "b", 4), resume=True, log=lambda m: None)
    assert straight["steps"] == resumed["steps"] == 4
    a, b = load_checkpoint(straight["model"]).generator, load_checkpoint(resumed["model"]).generator
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_exported_model_is_tile_consistent_and_has_no_machine_paths(tmp_path) -> None:
    out = train_paired(_cfg(tmp_path, "m", 2), log=lambda m: None)
    meta = read_meta(out["model"])
    g = meta.generator
    assert (g.norm, g.skips, g.residual, g.exposure, g.in_channels) == ("none", True, True, True, 6)
    assert meta.tiles.local == 64 and meta.tiles.region == 192
    assert str(tmp_path) not in str(meta.training)
    assert meta.training["mode"] == "paired" and meta.training["steps"] == 2


def test_changed_settings_refuse_to_resume(tmp_path) -> None:
    train_paired(_cfg(tmp_path, "c", 1), log=lambda m: None)
    cfg = _cfg(tmp_path, "c", 2)
    with pytest.raises(UsageError, match="different settings .*lr"):
        train_paired(PairedConfig(**{**cfg.__dict__, "lr": 0.5}), resume=True, log=lambda m: None)


def test_empty_clean_folder_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no clean frames"):
        train_paired(PairedConfig(clean_dir=str(tmp_path / "empty"), out_dir=str(tmp_path / "o")), log=lambda m: None)


def test_cli_fine_tunes_from_a_model(tmp_path, capsys) -> None:
    first = train_paired(_cfg(tmp_path, "base", 1), log=lambda m: None)
    clean = _clean_dir(tmp_path / "clean")
    args = ["train", "--clean", clean, "--out", str(tmp_path / "ft"), "--init", first["model"], "--steps", "1",
            "--frames-per-step", "1", "--crops-per-frame", "1", "--frame-side", "192", "--local", "32",
            "--region", "96", "--infer-local", "64", "--ngf", "4", "--n-blocks", "1", "--quiet"]
    assert main(args) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert read_meta(tmp_path / "ft" / "model.safetensors").training["initialised_from"] == "model.safetensors"
    # an architecture that differs from the --init checkpoint is refused in one line
    wider = [a if a != "4" or args[i - 1] != "--ngf" else "8" for i, a in enumerate(args)]
    assert main(wider) != 0
