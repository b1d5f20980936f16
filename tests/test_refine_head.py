"""The full-resolution refinement head (models/refine_head.RefineHead) and training it alone (issue 14)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import load_checkpoint, read_meta
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.models.networks import GeneratorConfig, build_generator
from nightgrade.models.training.paired import train_paired
from nightgrade.server.cli.main import main
from nightgrade.server.render.defaults import shipped_weights_path
from test_tile_consistent import CONSISTENT, _frame
from test_training_paired import _SMALL, _cfg, _clean_dir

HEADED = dataclasses.replace(CONSISTENT, refine=3)


def test_refine_settings_are_checked_and_old_configs_have_no_head() -> None:
    legacy = {k: v for k, v in HEADED.to_dict().items() if k not in ("refine", "refine_width")}
    assert GeneratorConfig.from_dict(legacy).refine == 0
    with pytest.raises(ValueError, match="refine must be 0"):
        dataclasses.replace(HEADED, refine=1)
    with pytest.raises(ValueError, match="refine needs residual"):
        dataclasses.replace(HEADED, residual=False)
    assert not any(k.startswith("refine.") for k in build_generator(CONSISTENT).state_dict())


def test_a_head_grown_on_a_model_starts_as_that_model() -> None:
    torch.manual_seed(0)
    base = build_generator(CONSISTENT).eval()
    grown = build_generator(HEADED).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("refine.") for k in missing)
    x = torch.rand(2, 6, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(grown(x), base(x))
        torch.nn.init.normal_(grown.refine.body[-1][1].weight, 0.0, 0.1)  # a trained head changes the picture
        assert not torch.equal(grown(x), base(x))


def test_a_trained_head_keeps_the_output_independent_of_the_tile_grid() -> None:
    torch.manual_seed(1)
    net = build_generator(HEADED)
    torch.nn.init.normal_(net.refine.body[-1][1].weight, 0.0, 0.1)
    engine = Engine(net, TileConfig(64, 192, 32), EngineConfig(device="cpu"))
    frame = _frame()
    a = engine.enhance(frame, TileConfig(local=64, region=192))
    b = engine.enhance(frame, TileConfig(local=96, region=288))
    assert float(np.mean(np.abs(a - b))) <= 0.005


def test_training_the_head_alone_changes_only_the_head(tmp_path) -> None:
    base = train_paired(_cfg(tmp_path, "base", 1), log=lambda m: None)["model"]
    cfg = dataclasses.replace(_cfg(tmp_path, "head", 3), init=base, refine=3, train_refine_only=True, lr=1e-2)
    head = train_paired(cfg, log=lambda m: None)["model"]
    before, after = load_checkpoint(base).generator.state_dict(), load_checkpoint(head).generator.state_dict()
    assert read_meta(head).generator.refine == 3
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(after[k].abs().sum() > 0 for k in after if k.startswith("refine.body.4."))  # the zero start moved
    with pytest.raises(UsageError, match="trains a refinement head on a trained model"):
        dataclasses.replace(cfg, refine=0)


def test_cli_grows_a_head_on_a_model_and_keeps_it_afterwards(tmp_path) -> None:
    clean = _clean_dir(tmp_path / "clean")
    out = lambda d: ["--out", str(tmp_path / d), "--steps", "1", *_SMALL]  # noqa: E731
    assert main(["train", "--clean", clean, *out("base")]) == 0
    base = str(tmp_path / "base" / "model.safetensors")
    assert main(["train", "--clean", clean, "--init", base, "--refine", "2", "--refine-width", "5",
                 "--train-refine-only", "true", *out("head")]) == 0
    head = str(tmp_path / "head" / "model.safetensors")
    assert (read_meta(head).generator.refine, read_meta(head).generator.refine_width) == (2, 5)
    assert main(["train", "--clean", clean, "--init", head, *out("kept")]) == 0
    assert read_meta(tmp_path / "kept" / "model.safetensors").generator.refine == 2  # a fine-tune keeps the head
    assert main(["train", "--clean", clean, "--init", head, "--refine", "3", *out("other")]) == 2  # not another one
    assert main(["train", "--clean", clean, "--init", head, "--refine-width", "6", *out("wider")]) == 2
    assert main(["train", "--clean", clean, "--train-refine-only", "true", *out("none")]) == 2


def test_the_shipped_head_changes_detail_not_tone() -> None:
    # 0.4.0's head was trained alone on 0.3.4: the picture's local means stay 0.3.4's (docs/model-card.md)
    headed = load_checkpoint(str(shipped_weights_path())).generator.eval()
    assert headed.config.refine
    plain = build_generator(headed.config).eval()
    plain.load_state_dict(headed.state_dict())
    plain.refine.zero_last()
    torch.manual_seed(2)
    # a dark noisy tile with shapes in it, in the generator's [-1, 1] range
    shapes = torch.nn.functional.interpolate(torch.rand(1, 6, 16, 16), size=128, mode="bilinear")
    x = shapes * 0.6 - 0.9 + 0.05 * torch.randn(1, 6, 128, 128)
    with torch.no_grad():
        a, b = headed(x), plain(x)
    smooth = lambda t: torch.nn.functional.avg_pool2d(t, 32)  # noqa: E731
    assert float((a - b).abs().mean()) > 5e-3  # the head does something
    assert float((smooth(a) - smooth(b)).abs().mean()) < 0.1 * float((a - b).abs().mean())
