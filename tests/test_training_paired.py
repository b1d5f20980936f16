"""Paired training (issue 14, items 3 and 5): runs, resumes exactly, exports a loadable model."""
from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.errors import InputError, UsageError
from nightgrade.colorpipeline.lowlight import CameraRanges
from nightgrade.colorpipeline.luma import REC709_LUMA
from nightgrade.models.checkpoint import load_checkpoint, read_meta
from nightgrade.models.training import paired_data
from nightgrade.models.training.losses import ssim_loss
from nightgrade.models.training.paired import PairedConfig, train_paired
from nightgrade.models.training.paired_data import make_frames, saturate, source_weights
from nightgrade.server.cli.main import main


def _clean_dir(folder) -> str:
    rng = np.random.default_rng(0)
    os.makedirs(folder / "a", exist_ok=True)
    for i in range(3):
        yy, xx = np.mgrid[0:150, 0:220]
        img = np.stack([xx % 64 * 3, yy % 48 * 5, (xx + yy) % 255], axis=-1) + rng.integers(0, 20, (150, 220, 3))
        cv2.imwrite(str(folder / "a" / f"f{i}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return str(folder)


def _pictures(clean_dir: str) -> list[np.ndarray]:
    """The three pictures of ``_clean_dir``'s one source, RGB uint8."""
    return [cv2.imread(os.path.join(clean_dir, "a", f"f{i}.png"))[..., ::-1] for i in range(3)]


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


def test_a_run_saved_before_the_mirror_switch_resumes_with_it_off(tmp_path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from nightgrade.models.training.state import STATE_KEY
    old = dataclasses.replace(_cfg(tmp_path, "old", 2), exposure_mirrors=False)
    train_paired(old, log=lambda m: None, stop_at=1)
    state = tmp_path / "old" / "train_state.safetensors"
    with safe_open(str(state), framework="pt") as handle:  # as a run saved before the switch existed
        header = json.loads(handle.metadata()[STATE_KEY])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    del header["config"]["exposure_mirrors"]
    save_file(tensors, str(state), metadata={STATE_KEY: json.dumps(header)})
    with pytest.raises(UsageError, match="different settings .*exposure_mirrors"):
        train_paired(dataclasses.replace(old, exposure_mirrors=True), resume=True, log=lambda m: None)
    assert train_paired(old, resume=True, log=lambda m: None)["steps"] == 2  # it trained with the switch off


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


def test_source_weights_balance_sources_and_the_frames_of_one_file(tmp_path) -> None:
    # one source with a 16-frame clip and 2 photographs, one source with a single photograph
    paths = [str(tmp_path / "video" / f"clip.{i:04d}.png") for i in range(16)]
    paths += [str(tmp_path / "video" / "a.png"), str(tmp_path / "video" / "b.png"), str(tmp_path / "photo" / "c.png")]
    w = source_weights(paths, str(tmp_path))
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    clip, photos, single = w[:16].sum(), w[16:18].sum(), w[18]
    assert np.allclose(w[:16], w[0])  # frames of one file share their group's weight
    # sources by sqrt(frames): sqrt(18) vs sqrt(1); inside the video source the clip counts sqrt(16) = 4 photos
    assert (clip + photos) / single == pytest.approx(np.sqrt(18))
    assert clip / w[16] == pytest.approx(4.0)


def test_saturate_scales_chroma_keeps_luminance_and_greys_and_stays_in_range() -> None:
    linear = np.array([[[0.2, 0.1, 0.05], [0.3, 0.3, 0.3], [0.9, 0.1, 0.05]]], np.float32)
    out = saturate(linear, 1.5)
    luma = linear @ REC709_LUMA
    chroma = lambda x: x - (x @ REC709_LUMA)[..., None]  # noqa: E731
    assert np.allclose(chroma(out[:, :1]), 1.5 * chroma(linear[:, :1]), atol=1e-6)  # in gamut: exactly x1.5
    assert np.allclose(out[..., :2, :] @ REC709_LUMA, luma[..., :2], atol=1e-6)
    assert np.allclose(out[0, 1], 0.3)                                              # a grey stays grey
    assert out.min() >= 0.0 and out.max() <= 1.0                                   # out of gamut: clipped
    assert np.allclose(saturate(linear, 1.0), linear, atol=1e-7)


def test_saturation_boost_saturates_the_targets_is_seeded_and_is_off_by_default(tmp_path, monkeypatch) -> None:
    pictures = _pictures(_clean_dir(tmp_path))
    def frames(boost: float):
        return make_frames(pictures, 3, 192, np.random.default_rng(5), CameraRanges(), saturation_boost=boost)
    plain, boosted = frames(1.0), frames(2.0)
    spread = lambda t: (t - t.mean(dim=1, keepdim=True)).abs().mean()  # noqa: E731 (chroma, roughly)
    assert spread(boosted.clean) > 1.1 * spread(plain.clean)
    # a seed gives the same frames; leaving the boost out is the same as giving 1 (off)
    assert torch.equal(frames(2.0).clean, boosted.clean)
    unboosted = make_frames(pictures, 3, 192, np.random.default_rng(5), CameraRanges())
    assert torch.equal(unboosted.low, plain.low) and torch.equal(unboosted.clean, plain.clean)
    # off never enters the boost's branch (its draw and ``saturate``), so runs saved before the boost keep
    # their random sequence
    monkeypatch.setattr(paired_data, "saturate", lambda *a: pytest.fail("saturate called with the boost off"))
    assert torch.equal(frames(1.0).clean, plain.clean)
    with pytest.raises(UsageError, match="saturation_boost"):
        PairedConfig(clean_dir="x", out_dir="y", saturation_boost=0.5)


def test_black_level_probability_sets_how_often_a_capture_has_a_raised_black(tmp_path) -> None:
    from nightgrade.models.training.paired import PairedTrainer
    cfg = _cfg(tmp_path, "k", 1)
    pictures = _pictures(cfg.clean_dir)
    blacks = {}
    for probability in (0.0, 1.0):
        trainer = PairedTrainer(dataclasses.replace(cfg, black_level_probability=probability))
        blacks[probability] = make_frames(pictures, 8, 192, np.random.default_rng(3), trainer.ranges).true_black
    assert torch.all(blacks[0.0] == 0.0) and torch.all(blacks[1.0] > 0.0)
    assert PairedTrainer(cfg).ranges == CameraRanges()  # the default is the camera model's own draw
    with pytest.raises(UsageError, match="black_level_probability"):
        dataclasses.replace(cfg, black_level_probability=1.5)


def test_ssim_loss_is_zero_for_equal_images_and_grows_with_noise() -> None:
    rng = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=rng) * 2 - 1
    noise = torch.randn(2, 3, 32, 32, generator=rng)
    losses = [float(ssim_loss(a, (a + s * noise).clamp(-1, 1))) for s in (0.0, 0.05, 0.3)]
    assert losses[0] == pytest.approx(0.0, abs=1e-6) and losses[0] < losses[1] < losses[2]


_SMALL = ["--frames-per-step", "1", "--crops-per-frame", "1", "--frame-side", "192", "--local", "32", "--region", "96",
          "--infer-local", "64", "--ngf", "4", "--n-blocks", "2", "--ndf", "4", "--checkpoint-seconds", "0", "-q"]


def test_hybrid_mode_trains_from_a_paired_model_resumes_exactly_and_keeps_no_paths(tmp_path, capsys) -> None:
    clean, low = _clean_dir(tmp_path / "clean"), _clean_dir(tmp_path / "low")  # "low": any real frames will do
    base = tmp_path / "paired"
    assert main(["train", "--clean", clean, "--out", str(base), "--steps", "1", *_SMALL]) == 0
    args = ["train", "--clean", clean, "--low", low, "--init", str(base / "model.safetensors"), *_SMALL]
    assert main([*args, "--out", str(tmp_path / "whole"), "--steps", "3"]) == 0
    assert main([*args, "--out", str(tmp_path / "split"), "--steps", "3", "--minutes", "0.0001"]) == 0  # ends early
    assert read_meta(tmp_path / "split" / "model.safetensors").training["steps"] == 1
    assert main([*args, "--out", str(tmp_path / "split"), "--steps", "3", "--resume"]) == 0
    whole, split = (load_checkpoint(str(tmp_path / d / "model.safetensors")) for d in ("whole", "split"))
    for (name, a), (_, b) in zip(whole.generator.state_dict().items(), split.generator.state_dict().items()):
        assert torch.equal(a, b), name
    meta = read_meta(tmp_path / "whole" / "model.safetensors")
    assert meta.training["mode"] == "hybrid" and meta.training["steps"] == 3
    assert meta.training["config"]["train_exposure_level"] is True   # a fine-tune trains with the level
    assert str(tmp_path) not in json.dumps(meta.training)
    start = load_checkpoint(str(base / "model.safetensors")).generator.state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in whole.generator.state_dict().items())  # it learned
    # hybrid needs a paired model to start from: one clear line
    assert main(["train", "--mode", "hybrid", "--clean", clean, "--low", low, "--out", str(tmp_path / "x"), "-q"]) == 2
    # the fine-tune command: `--mode paired ... --low NIGHT_PLATES` uses the night plates, and says how
    assert main([*args, "--mode", "paired", "--out", str(tmp_path / "named"), "--steps", "1"]) == 0
    assert "training --mode hybrid" in capsys.readouterr().err
    assert read_meta(tmp_path / "named" / "model.safetensors").training["mode"] == "hybrid"
    assert main(["train", "--clean", clean, "--normal", low, "--out", str(tmp_path / "y"), "-q"]) == 2  # paper only


def test_warm_up_ramps_the_rate_then_the_cosine_takes_over(tmp_path) -> None:
    from nightgrade.models.training.paired import PairedTrainer
    cfg = _cfg(tmp_path, "w", 100)
    trainer = PairedTrainer(PairedConfig(**{**cfg.__dict__, "warmup": 10, "lr": 1e-3}))
    rates = [trainer.learning_rate(s) for s in (0, 4, 9, 50, 100)]
    assert rates[0] == pytest.approx(1e-4) and rates[1] == pytest.approx(5e-4 * 0.5 * (1 + np.cos(np.pi * 0.04)))
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.09))) and rates[3] == pytest.approx(5e-4)
    assert rates[4] == pytest.approx(0.0, abs=1e-12)


def test_mirror_averaged_exposure_is_a_switch_a_fine_tune_keeps_or_sets(tmp_path) -> None:
    clean = _clean_dir(tmp_path / "clean")
    mirrors = lambda d: read_meta(tmp_path / d / "model.safetensors").generator.exposure_mirrors  # noqa: E731
    assert main(["train", "--clean", clean, "--out", str(tmp_path / "new"), "--steps", "1", *_SMALL]) == 0
    assert mirrors("new") is True  # a new paired model averages its exposure over mirror images
    assert main(["train", "--clean", clean, "--out", str(tmp_path / "old"), "--steps", "1",
                 "--exposure-mirrors", "false", *_SMALL]) == 0
    old = str(tmp_path / "old" / "model.safetensors")
    assert mirrors("old") is False
    assert main(["train", "--clean", clean, "--init", old, "--out", str(tmp_path / "kept"), "--steps", "1", *_SMALL]) == 0
    assert mirrors("kept") is False  # a fine-tune keeps its starting model's switch...
    assert main(["train", "--clean", clean, "--init", old, "--out", str(tmp_path / "set"), "--steps", "1",
                 "--exposure-mirrors", "true", *_SMALL]) == 0
    assert mirrors("set") is True    # ...unless asked: the same weights, used another way
