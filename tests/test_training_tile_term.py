"""The tile-consistency term of paired training and fine-tunes that keep their model's network
(issue 14, items 4 and 6)."""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.models.checkpoint import read_meta
from nightgrade.models.training.losses import overlap_l1
from nightgrade.models.training.paired import PairedConfig, train_paired
from nightgrade.models.training.paired_data import PairedFrames
from nightgrade.server.cli.main import main


def _frames(seed: int = 0) -> PairedFrames:
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(2, 3, 72, 128, generator=g)
    return PairedFrames(clean=clean, low=clean * 0.1, thumbs=torch.zeros(2, 3, 8, 8), true_gains=torch.zeros(2, 3))


def test_crop_pairs_are_one_stretch_of_the_frame_seen_from_two_positions() -> None:
    frames = _frames()
    x, target, shifts = frames.crop_pairs(torch.zeros(2, 3), 16, 48, 5, 8, np.random.default_rng(1))
    assert x.shape == (20, 6, 16, 16) and target.shape == (20, 3, 16, 16) and len(shifts) == 10
    assert all(abs(dy) <= 8 and abs(dx) <= 8 for dy, dx in shifts) and any(s != (0, 0) for s in shifts)
    # the targets of a pair agree where they overlap, at the reported shift: the loss compares like pixels
    assert overlap_l1(target, shifts).item() == 0.0
    # ... and so do the local inputs (channels 0-2); the regions (3-5) differ, centred on each crop
    assert overlap_l1(x[:, :3], shifts).item() == 0.0
    assert overlap_l1(x[:, 3:], shifts).item() > 0.0


def test_overlap_l1_measures_disagreement_on_the_overlap_only() -> None:
    a = torch.zeros(2, 1, 4, 4)
    a[1, :, :, :1] = 1.0      # crop 2 lies 2 px right of crop 1: its left half overlaps crop 1's right half
    assert overlap_l1(a, [(0, 2)]).item() == pytest.approx(0.5)   # half of the 4x2 overlap differs by 1
    assert overlap_l1(a, [(0, -4)]).item() == 0.0                 # no overlap, nothing to compare
    with pytest.raises(ValueError):
        overlap_l1(a, [(0, 0), (1, 1)])


def _clean_dir(folder) -> str:
    rng = np.random.default_rng(0)
    os.makedirs(folder / "a", exist_ok=True)
    for i in range(2):
        cv2.imwrite(str(folder / "a" / f"f{i}.png"), rng.integers(0, 255, (150, 220, 3), dtype=np.uint8))
    return str(folder)


def _cfg(tmp_path, **kw) -> PairedConfig:
    return PairedConfig(clean_dir=_clean_dir(tmp_path / "clean"), out_dir=str(tmp_path / "run"), steps=2,
                        frames_per_step=2, crops_per_frame=2, frame_side=192, local=32, region=96, infer_local=64,
                        ngf=4, n_blocks=1, checkpoint_seconds=0, log_every=1, **kw)


def test_training_with_the_tile_term_logs_it_and_odd_crop_counts_are_refused(tmp_path) -> None:
    lines = []
    train_paired(_cfg(tmp_path, lambda_tile=1.0), log=lines.append)
    values = [float(part.split("=")[1]) for line in lines for part in line.split() if part.startswith("tile_l1=")]
    assert len(values) == 2 and all(v > 0 for v in values)
    with pytest.raises(UsageError, match="crops_per_frame must be even"):
        PairedConfig(clean_dir="c", out_dir="o", crops_per_frame=3, lambda_tile=0.5)


def test_cli_fine_tune_takes_the_network_of_its_init_model(tmp_path, capsys) -> None:
    # a model with the exposure level off, like the shipped one: a fine-tune must not need to be told
    base = train_paired(_cfg(tmp_path, exposure_level=False), log=lambda m: None)
    args = ["train", "--clean", str(tmp_path / "clean"), "--init", base["model"], "--steps", "1",
            "--frames-per-step", "1", "--crops-per-frame", "1", "--frame-side", "192", "--local", "32",
            "--region", "96", "--infer-local", "64", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "ft")]) == 0
    meta = read_meta(tmp_path / "ft" / "model.safetensors")
    assert (meta.generator.ngf, meta.generator.n_blocks, meta.generator.exposure_level) == (4, 1, False)
    # the fine-tune defaults: a gentle rate after a warm-up, the branch's level used while training
    config = meta.training["config"]
    assert (config["lr"], config["warmup"], config["train_exposure_level"]) == (5e-5, 100, True)
    assert config["lambda_anchor"] == 3.0       # held to the starting model's tone
    assert main(args + ["--out", str(tmp_path / "ft1"), "--train-exposure-level", "off", "--lr", "1e-4"]) == 0
    config = read_meta(tmp_path / "ft1" / "model.safetensors").training["config"]
    assert (config["lr"], config["train_exposure_level"]) == (1e-4, False)   # what the user asked for stays
    # a switch (how the weights are used) may be set, in words; an architecture change is refused in one line
    assert main(args + ["--out", str(tmp_path / "ft2"), "--exposure-level", "yes"]) == 0
    assert read_meta(tmp_path / "ft2" / "model.safetensors").generator.exposure_level is True
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "ft3"), "--n-blocks", "2"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--n-blocks 2 differs from the network of --init" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ft3").exists()
    with pytest.raises(SystemExit) as exit_info:   # argparse's own one-line usage error
        main(args + ["--out", str(tmp_path / "ft4"), "--exposure-level", "maybe"])
    assert exit_info.value.code == 2 and "expected true or false, got 'maybe'" in capsys.readouterr().err


def test_training_may_use_the_learned_level_that_the_exported_model_leaves_off(tmp_path) -> None:
    # 0.3.2's recipe: train with the branch's level (as the model it starts from was), ship without it
    base = _cfg(tmp_path, exposure_level=True)
    a = train_paired(base, log=lambda m: None)
    b = train_paired(dataclasses.replace(base, out_dir=str(tmp_path / "b"), exposure_level=False,
                                         train_exposure_level=True), log=lambda m: None)
    meta_a, meta_b = read_meta(a["model"]), read_meta(b["model"])
    assert meta_a.digest == meta_b.digest          # the same updates: training used the level in both
    assert (meta_a.generator.exposure_level, meta_b.generator.exposure_level) == (True, False)
    c = train_paired(dataclasses.replace(base, out_dir=str(tmp_path / "c"), exposure_level=False),
                     log=lambda m: None)
    assert read_meta(c["model"]).digest != meta_a.digest   # without the level in training, other updates


def test_cli_fine_tune_keeps_the_loss_weights_and_crops_of_its_init_model(tmp_path) -> None:
    # the shipped model was trained with the tile term: a fine-tune that dropped it lost tile consistency
    base = train_paired(_cfg(tmp_path, lambda_tile=0.7, lambda_ssim=0.25, lambda_colour=0.1,
                             black_level_probability=0.25), log=lambda m: None)
    args = ["train", "--clean", str(tmp_path / "clean"), "--init", base["model"], "--steps", "1", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "ft")]) == 0
    config = read_meta(tmp_path / "ft" / "model.safetensors").training["config"]
    recipe = {k: config[k] for k in ("lambda_tile", "lambda_ssim", "lambda_colour", "black_level_probability",
                                     "local", "region", "infer_local", "frame_side", "frames_per_step",
                                     "crops_per_frame")}
    assert recipe == {"lambda_tile": 0.7, "lambda_ssim": 0.25, "lambda_colour": 0.1, "black_level_probability": 0.25,
                      "local": 32, "region": 96, "infer_local": 64, "frame_side": 192, "frames_per_step": 2,
                      "crops_per_frame": 2}
    assert config["lr"] == 5e-5                     # a fine-tune's own rate, not the base run's
    # what the user sets stays
    assert main(args + ["--out", str(tmp_path / "ft1"), "--lambda-tile", "0", "--crops-per-frame", "1"]) == 0
    config = read_meta(tmp_path / "ft1" / "model.safetensors").training["config"]
    assert (config["lambda_tile"], config["crops_per_frame"], config["lambda_ssim"]) == (0.0, 1, 0.25)



def test_the_anchor_term_holds_a_fine_tune_to_its_starting_model(tmp_path) -> None:
    base = train_paired(_cfg(tmp_path), log=lambda m: None)
    lines = []
    cfg = _cfg(tmp_path, init=base["model"], lambda_anchor=1.0)
    train_paired(dataclasses.replace(cfg, out_dir=str(tmp_path / "ft")), log=lines.append)
    values = [float(part.split("=")[1]) for line in lines for part in line.split() if part.startswith("anchor=")]
    # the first step compares the starting model with itself; then the run moves away from it
    assert len(values) == 2 and values[0] == 0.0 and values[1] > 0.0
    with pytest.raises(UsageError, match="needs --init"):
        PairedConfig(clean_dir="c", out_dir="o", lambda_anchor=0.5)
