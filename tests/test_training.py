"""`nightgrade train`: a few real steps, outputs a user relies on, and bit-identical resume."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.models.checkpoint import load_checkpoint
from nightgrade.models.training.paper import TrainConfig, train
from nightgrade.server.cli.main import main
from tests.conftest import write_image


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("domains")
    rng = np.random.default_rng(0)
    for name, gain in (("low", 0.1), ("normal", 0.9)):
        (root / name).mkdir()
        for i in range(3):
            write_image(root / name / f"f{i}.png", rng.random((48, 56, 3), dtype=np.float32) * gain, "uint8",
                        ("R", "G", "B"))
    return str(root / "low"), str(root / "normal")


def _cfg(domains: tuple[str, str], out: Path, steps: int, **kw) -> TrainConfig:
    return TrainConfig(low_dir=domains[0], normal_dir=domains[1], out_dir=str(out), steps=steps, batch=2,
                       local=32, region=48, infer_local=32, ngf=4, n_blocks=1, ndf=8, sample_every=2,
                       checkpoint_every=2, perceptual_downsample=1, **kw)


def _tensors(path: Path) -> dict[str, np.ndarray]:
    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_resume_is_bit_identical(domains, tmp_path: Path) -> None:
    straight = train(_cfg(domains, tmp_path / "a", 4), show_progress=False)
    train(_cfg(domains, tmp_path / "b", 2), show_progress=False)
    resumed = train(_cfg(domains, tmp_path / "b", 4), resume=True, show_progress=False)
    assert straight["digest"] == resumed["digest"]
    a, b = _tensors(tmp_path / "a" / "train_state.safetensors"), _tensors(tmp_path / "b" / "train_state.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # weights, Adam moments, pools and RNG state
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rows_a = list(csv.reader(open(tmp_path / "a" / "losses.csv")))
    rows_b = list(csv.reader(open(tmp_path / "b" / "losses.csv")))
    assert rows_a == rows_b and len(rows_a) == 5  # header + 4 steps, no duplicate rows after resume


def test_outputs_a_user_gets(domains, tmp_path: Path) -> None:
    summary = train(_cfg(domains, tmp_path, 2), show_progress=False)
    assert summary["steps"] == 2
    for name in ("model.safetensors", "train_state.safetensors", "losses.csv", "losses.png",
                 "samples/step_000002.png"):
        assert (tmp_path / name).is_file(), name
    loaded = load_checkpoint(tmp_path / "model.safetensors")
    assert loaded.meta.generator.in_channels == 6 and loaded.meta.tiles.local == 32
    assert loaded.meta.training["steps"] == 2
    assert str(tmp_path) not in json.dumps(loaded.meta.training)  # no machine paths in a checkpoint
    assert "VGG16" in loaded.meta.training["perceptual"]
    rows = list(csv.DictReader(open(tmp_path / "losses.csv")))
    assert all(np.isfinite(float(r["loss_G"])) for r in rows)


def test_plain_cyclegan_baseline(domains, tmp_path: Path) -> None:
    train(_cfg(domains, tmp_path, 2, region_input=False), show_progress=False)
    meta = load_checkpoint(tmp_path / "model.safetensors").meta
    assert meta.generator.in_channels == 3 and meta.training["perceptual"] is None


def test_resume_refuses_changed_settings(domains, tmp_path: Path) -> None:
    train(_cfg(domains, tmp_path, 2), show_progress=False)
    with pytest.raises(UsageError, match="ngf"):
        train(dataclasses.replace(_cfg(domains, tmp_path, 4), ngf=8),
              resume=True, show_progress=False)


def test_cli_train_json(domains, tmp_path: Path, capsys) -> None:
    code = main(["train", "--low", domains[0], "--normal", domains[1], "--out", str(tmp_path), "--steps", "1",
                 "--batch", "1", "--local", "32", "--region", "48", "--infer-local", "32", "--ngf", "4",
                 "--n-blocks", "1", "--ndf", "8", "--perceptual-downsample", "1", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 1
