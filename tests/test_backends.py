"""Inference backends (issue 17): ONNX Runtime and OpenVINO match eager PyTorch, exports are cached
by weights digest, and an unavailable backend is a one-line error (CLI) or a torch fallback (daemon)."""
from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY, write_image
from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models import backends, onnx_export
from nightgrade.models.backends import tile_forward
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.models.networks import build_generator
from nightgrade.models.onnx_export import BackendUnavailableError
from nightgrade.server.cli.main import main
from nightgrade.server.daemon.models import ModelSet
from nightgrade.server.render.defaults import shipped_weights_path

TOLERANCE = 1e-3  # max abs error on [0, 1] images (issue 17)


def _installed(*packages: str) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in packages)


ONNX_BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(not _installed(name, "onnx"), reason=f"{name} or onnx not installed"))
    for name in ("onnxruntime", "openvino")
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports go to this test's own folder, never the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "nightgrade" / "onnx"


def _tiles(count: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 6, side, side), dtype=np.float32)


def _tiny_engine(config: EngineConfig, seed: int = 0) -> Engine:
    torch.manual_seed(seed)
    return Engine(build_generator(TINY), TileConfig(64, 160, 32), config)


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_backend_matches_eager_pytorch_on_the_shipped_model(backend: str) -> None:
    reference = Engine.from_checkpoint(shipped_weights_path(), EngineConfig(device="cpu"))
    engine = Engine.from_checkpoint(shipped_weights_path(), EngineConfig(device="cpu", backend=backend))
    # Two batch sizes and a non-square tile: the exported model has dynamic batch, height and width.
    for batch in (_tiles(3, 64), _tiles(1, 80, seed=1), _tiles(2, 64, seed=2)[:, :, :, :32]):
        expected, got = reference.run_batch(batch), engine.run_batch(np.ascontiguousarray(batch))
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= TOLERANCE
    frame = np.random.default_rng(3).random((70, 100, 3), dtype=np.float32) * 0.3
    cfg = TileConfig(local=64, region=160)
    assert np.abs(engine.enhance(frame, cfg) - reference.enhance(frame, cfg)).max() <= TOLERANCE


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_export_is_cached_by_weights_and_reused(backend: str, private_cache: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = _tiny_engine(EngineConfig(device="cpu", backend=backend))
    files = sorted(private_cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".onnx"

    def no_export(*args, **kwargs) -> None:
        raise AssertionError("exported again although the cache holds this generator")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = _tiny_engine(EngineConfig(device="cpu", backend=backend))  # same seed: same weights
    batch = _tiles(2, 64)
    assert np.array_equal(first.run_batch(batch), again.run_batch(batch))
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(private_cache.parent.parent))
    other = _tiny_engine(EngineConfig(device="cpu", backend=backend), seed=1)  # new weights: a new export
    assert len(list(private_cache.iterdir())) == 2
    assert not np.allclose(other.run_batch(batch), first.run_batch(batch))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_missing_package_names_what_to_install(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, backend, None)  # import fails as if it were not installed
    with pytest.raises(BackendUnavailableError, match=f"pip install {backend}"):
        _tiny_engine(EngineConfig(device="cpu", backend=backend))


@pytest.mark.skipif(not _installed("onnxruntime", "onnx"), reason="onnxruntime or onnx not installed")
def test_failed_export_is_a_backend_error_and_leaves_no_file(private_cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs) -> None:
        Path(args[2]).write_bytes(b"half an onnx file")
        raise RuntimeError("Exporting the operator 'aten::fancy' is not supported\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(BackendUnavailableError, match="could not export the generator to ONNX .*aten::fancy"):
        _tiny_engine(EngineConfig(device="cpu", backend="onnxruntime"))
    assert list(private_cache.iterdir()) == []


def test_unknown_backend_and_gpu_only_mismatches_are_refused() -> None:
    with pytest.raises(UsageError, match="unknown inference backend 'tensorrt'"):
        EngineConfig(backend="tensorrt")
    with pytest.raises(UsageError, match="pick one"):
        EngineConfig(compile=True, backend="openvino")
    assert EngineConfig(compile=True).backend_name == "compile"
    with pytest.raises(BackendUnavailableError, match="CPU only"):
        tile_forward("onnxruntime", build_generator(TINY), torch.device("cuda", 0))


def test_cli_reports_a_missing_backend_in_one_line(tmp_path: Path, tiny_weights: str, capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    write_image(tmp_path / "in.exr", np.full((40, 50, 3), 0.1, np.float32), "float", ("R", "G", "B"))
    code = main(["enhance", str(tmp_path / "in.exr"), str(tmp_path / "out.exr"), "-w", tiny_weights,
                 "--device", "cpu", "--backend", "openvino"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nightgrade:")]
    assert code == 2 and len(lines) == 1 and "pip install openvino" in lines[0], err
    assert not (tmp_path / "out.exr").exists()
    assert main(["enhance", str(tmp_path / "in.exr"), str(tmp_path / "o2.exr"), "-w", tiny_weights,
                 "--compile", "--backend", "onnxruntime"]) == 2
    assert "pick one" in capsys.readouterr().err


def test_daemon_falls_back_to_torch_with_a_warning(tiny_weights: str, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level(logging.WARNING, logger="nightgrade.daemon"):
        models = ModelSet([tiny_weights], EngineConfig(device="cpu", backend="onnxruntime"), color.ColorConfig(None))
    engine = models.get(None).engine
    assert engine.config.backend == "torch"
    assert engine.run_batch(_tiles(1, 64)).shape == (1, TINY.out_channels, 64, 64)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("onnxruntime" in w and "pip install onnxruntime" in w and "torch backend" in w for w in warnings)


def test_cache_folder_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert onnx_export.cache_folder() == tmp_path / "c" / "nightgrade" / "onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert onnx_export.cache_folder() == tmp_path / "home" / ".cache" / "nightgrade" / "onnx"


def test_auto_picks_the_fastest_installed_backend_and_torch_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(backends, "backend_available", lambda name: name == "onnxruntime")
    assert backends.resolve_backend("auto", cpu) == "onnxruntime"
    monkeypatch.setattr(backends, "backend_available", lambda name: True)
    assert backends.resolve_backend("auto", cpu) == "openvino"  # measured fastest on the shipped model
    assert backends.resolve_backend("auto", torch.device("cuda", 0)) == "torch"
    monkeypatch.setattr(backends, "backend_available", lambda name: False)
    assert backends.resolve_backend("auto", cpu) == "torch"
    assert backends.resolve_backend("onnxruntime", cpu) == "onnxruntime"  # only auto is resolved


@pytest.mark.skipif(not _installed("openvino", "onnx"), reason="openvino or onnx not installed")
def test_auto_falls_back_to_torch_when_the_export_fails(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args, **kwargs) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with caplog.at_level(logging.WARNING, logger="nightgrade.models"):
        engine = _tiny_engine(EngineConfig(device="cpu", backend="auto"))
    assert engine.backend == "torch"
    assert engine.run_batch(_tiles(1, 64)).shape == (1, TINY.out_channels, 64, 64)
    assert any("openvino" in r.getMessage() and "using torch" in r.getMessage() for r in caplog.records)
