"""The tile-consistency term of paired training and fine-tunes that keep their model's network
(issue 14, items 4 and 6)."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

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
    g = read_meta(tmp_path / "ft" / "model.safetensors").generator
    assert (g.ngf, g.n_blocks, g.exposure_level) == (4, 1, False)
    # a switch that names the model's own value is accepted, in words; the other value is refused in one line
    assert main(args + ["--out", str(tmp_path / "ft2"), "--exposure-level", "no"]) == 0
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "ft3"), "--exposure-level", "yes"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--exposure-level True differs from the network of --init" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ft3").exists()


def test_chroma_loss_sees_saturation_and_casts_but_not_brightness_or_fine_noise() -> None:
    from nightgrade.models.training.losses import chroma_loss

    g = torch.Generator().manual_seed(0)
    grey = torch.full((1, 3, 16, 16), 0.2)
    assert chroma_loss(grey + 0.3, grey).item() == pytest.approx(0.0, abs=1e-7)     # a level change is no colour
    cast = grey + torch.tensor([0.1, 0.0, -0.1])[None, :, None, None]
    assert chroma_loss(cast, grey).item() == pytest.approx(0.2 / 3, rel=1e-5)      # a cast is
    # zero-mean noise in each 4x4 block averages out: the term leaves denoising to the other terms
    noise = torch.randn(1, 3, 4, 4, generator=g).repeat(1, 1, 4, 4)
    checker = noise - F.avg_pool2d(noise, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert chroma_loss(grey + checker, grey).item() == pytest.approx(0.0, abs=1e-6)
