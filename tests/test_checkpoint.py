"""Checkpoint round trip and every refusal of a bad file, with one-line messages."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nightgrade.colorpipeline.errors import ModelError
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import (
    METADATA_KEY,
    CheckpointMeta,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    weights_digest,
)
from nightgrade.models.networks import GeneratorConfig, build_generator

CFG = GeneratorConfig(ngf=8, n_blocks=2)


def _meta(**kw: Any) -> CheckpointMeta:
    base = dict(generator=CFG, tiles=TileConfig(local=32, region=96, stride=16), model_name="tiny",
                model_version="0.0.1", training={"clips": ["a", "b"], "epochs": 3})
    return CheckpointMeta(**{**base, **kw})


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module, CheckpointMeta]:
    torch.manual_seed(0)
    net = build_generator(CFG)
    # move thresholds off their init so the round trip checks they are stored
    for m in net.modules():
        if hasattr(m, "raw"):
            m.raw.data.uniform_(-3, 0)
    path = tmp_path / "tiny.safetensors"
    return path, net, save_checkpoint(path, net, _meta())


def _rewrite(path: Path, edit_meta: Callable[[dict], None] | None = None,
             edit_tensors: Callable[[dict], None] | None = None) -> None:
    """Re-save a checkpoint with edited metadata/tensors (as a hand-edited file would be)."""
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
    tensors = load_file(str(path))
    if edit_meta is not None:
        data = json.loads(header[METADATA_KEY])
        edit_meta(data)
        header[METADATA_KEY] = json.dumps(data)
    if edit_tensors is not None:
        edit_tensors(tensors)
    save_file(tensors, str(path), metadata=header)


def _load_error(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_round_trip_gives_identical_outputs(saved: tuple) -> None:
    path, net, written = saved
    loaded = load_checkpoint(path)
    assert not loaded.generator.training
    assert loaded.meta == written == read_meta(path)
    assert loaded.meta.training == {"clips": ["a", "b"], "epochs": 3}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", written.created)
    assert written.digest == weights_digest(net.state_dict())
    x = torch.rand(2, 6, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net.eval()(x), loaded.generator(x))


def test_save_is_atomic_and_leaves_no_temp_files(saved: tuple) -> None:
    path, net, _ = saved
    save_checkpoint(path, net, _meta(model_version="0.0.2"))
    assert read_meta(path).model_version == "0.0.2"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_digest_depends_on_weights_not_metadata(saved: tuple, tmp_path: Path) -> None:
    path, net, written = saved
    other = save_checkpoint(tmp_path / "b.safetensors", net, _meta(model_name="renamed"))
    assert other.digest == written.digest
    net.output[0][1].bias.data += 1e-3
    assert save_checkpoint(tmp_path / "c.safetensors", net, _meta()).digest != written.digest


def test_missing_file(tmp_path: Path) -> None:
    assert "checkpoint not found" in _load_error(tmp_path / "nope.safetensors")


def test_not_safetensors_and_truncated(saved: tuple, tmp_path: Path) -> None:
    path, _, _ = saved
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"PK\x03\x04 this is a zip, or a pickle, or anything else")
    assert "not a valid safetensors file" in _load_error(junk)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    assert "truncated or corrupt" in _load_error(path)
    with pytest.raises(ModelError, match="not a valid safetensors"):
        read_meta(path)


def test_no_nightgrade_metadata(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file(build_generator(CFG).state_dict(), str(path), metadata={"format": "pt"})
    assert "no NightGrade metadata" in _load_error(path)


def test_unsupported_format_version(saved: tuple) -> None:
    path = saved[0]
    _rewrite(path, edit_meta=lambda d: d.update(format_version=2))
    assert "unsupported checkpoint format version 2" in _load_error(path)


def test_unknown_and_missing_keys(saved: tuple) -> None:
    path = saved[0]
    _rewrite(path, edit_meta=lambda d: d["generator"].update(use_attention=True))
    assert "unknown key 'use_attention'" in _load_error(path)
    _rewrite(path, edit_meta=lambda d: d["generator"].pop("use_attention"))
    load_checkpoint(path)  # back to valid
    _rewrite(path, edit_meta=lambda d: d["tiles"].pop("stride"))
    assert "missing key 'stride'" in _load_error(path)
    _rewrite(path, edit_meta=lambda d: d["tiles"].update(stride=16))
    load_checkpoint(path)
    _rewrite(path, edit_meta=lambda d: d.pop("colorspace"))
    assert "missing key 'colorspace'" in _load_error(path)


@pytest.mark.parametrize("tiles, expect", [
    ({"local": 32, "region": 16, "stride": 16}, "region size 16 is smaller than the local tile 32"),
    ({"local": 32, "region": 96, "stride": 0}, "tile stride 0 is outside 1..32"),
    ({"local": 32, "region": 96, "stride": 40}, "tile stride 40 is outside 1..32"),
    ({"local": 32.0, "region": 96, "stride": 16}, "tile local 32.0 is not a whole number"),
    ({"local": 36, "region": 96, "stride": 18}, "multiple of the generator's size multiple (8)"),
    ({"local": 8, "region": 96, "stride": 4}, "at least 16"),
])
def test_inconsistent_tiles(saved: tuple, tiles: dict, expect: str) -> None:
    path = saved[0]
    _rewrite(path, edit_meta=lambda d: d.update(tiles=tiles))
    assert expect in _load_error(path)


def test_missing_unexpected_and_misshapen_tensors(saved: tuple) -> None:
    path = saved[0]
    name = "transform.1.body.0.1.weight"
    kept = load_file(str(path))[name].clone()
    _rewrite(path, edit_tensors=lambda t: t.pop(name))
    assert f"tensor '{name}' is missing" in _load_error(path)
    _rewrite(path, edit_tensors=lambda t: t.update({name: kept, "extra.weight": torch.zeros(2)}))
    assert "unexpected tensor 'extra.weight'" in _load_error(path)

    def narrow(tensors: dict) -> None:
        del tensors["extra.weight"]
        tensors[name] = kept[:, :4].contiguous()

    _rewrite(path, edit_tensors=narrow)
    message = _load_error(path)
    assert f"tensor '{name}' has shape (32, 4, 3, 3)" in message and "(32, 32, 3, 3)" in message


def test_weights_edited_after_saving(saved: tuple) -> None:
    path = saved[0]
    _rewrite(path, edit_tensors=lambda t: t["output.0.1.bias"].add_(0.01))
    assert "digest mismatch" in _load_error(path)


def test_meta_validation_on_save(tmp_path: Path) -> None:
    net = build_generator(CFG)
    with pytest.raises(ValueError, match="config differs"):
        save_checkpoint(tmp_path / "x.safetensors", net, _meta(generator=GeneratorConfig(ngf=16, n_blocks=2)))
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "x.safetensors", net, _meta(training={"when": object()}))
    with pytest.raises(ValueError, match="UTC"):
        _meta(created="2025-01-01T00:00:00+02:00")
    assert list(tmp_path.iterdir()) == []


def _weights_only_torch_loads(source: str) -> int:
    """Calls ``torch.load(..., weights_only=True)``: the only unpickling allowed (user .pth VGG weights)."""
    return sum(1 for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
               and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
               and any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords))


def test_no_pickle_anywhere_in_the_package() -> None:
    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\bimport pickle\b|\bpickle\.[a-z]|\bdill\b|"
                         r"weights_only\s*=\s*False|allow_pickle\s*=\s*True")
    sources = [p for folder in ("colorpipeline", "models", "server") for p in (root / folder).rglob("*.py")]
    assert any(p.name == "checkpoint.py" for p in sources)
    for source in sources:
        text = source.read_text()
        assert not pattern.search(text), source
        # every mention of torch.load must be a weights-only call (no aliases, no other calls)
        assert len(re.findall(r"torch\.load\b", text)) == _weights_only_torch_loads(text), source
