"""Inference backends: what runs the generator on a batch of tiles.

``tile_forward`` turns a generator into the callable the engine runs per tile batch (a tensor in
[-1, 1] in, a tensor out): eager PyTorch, ``torch.compile``, or the generator exported to ONNX
(:mod:`nightgrade.models.onnx_export`) and run by ONNX Runtime or OpenVINO. The two ONNX backends
are optional packages; asking for one that is not installed, or whose export fails, raises
``BackendUnavailableError`` naming what to install. Measured speeds are in docs/benchmarks.md.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

import numpy as np
import torch

from nightgrade.models.networks import Generator
from nightgrade.models.onnx_export import INPUT_NAME, BackendUnavailableError, exported_model

BACKENDS = ("auto", "torch", "compile", "onnxruntime", "openvino")
ONNX_BACKENDS = ("onnxruntime", "openvino")
# ``auto`` on a CPU: the first of these whose package is installed, fastest first as measured on the
# shipped model (docs/benchmarks.md, "Tile engine and inference backends"); eager PyTorch when none is, and on GPUs.
AUTO_CPU_ORDER = ("openvino", "onnxruntime")

log = logging.getLogger("nightgrade.models")
# The pip packages each optional backend imports: the runtime, and onnx for torch's exporter.
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}

TileForward = Callable[[torch.Tensor], torch.Tensor]


def _import(backend: str):  # noqa: ANN202 - a module
    """The backend's runtime module; BackendUnavailableError naming every missing package."""
    modules, missing = [], []
    for package in _PACKAGES[backend]:
        try:
            modules.append(importlib.import_module(package))
        except ImportError:
            missing.append(package)
    if missing:
        raise BackendUnavailableError(f"the {backend} inference backend needs {' and '.join(missing)}, not "
                                      f"installed here: pip install {' '.join(missing)}")
    return modules[0]


def backend_available(backend: str) -> bool:
    """Whether ``backend``'s package can be imported here (torch backends always can)."""
    if backend not in ONNX_BACKENDS:
        return backend in BACKENDS
    try:
        _import(backend)
    except BackendUnavailableError:
        return False
    return True


def _numpy_forward(run: Callable[[np.ndarray], np.ndarray]) -> TileForward:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run(np.ascontiguousarray(x.detach().float().numpy())))
    return forward


def _onnxruntime(generator: Generator) -> TileForward:
    ort = _import("onnxruntime")
    options = ort.SessionOptions()
    # The same thread count as torch, so --threads style settings and benchmarks compare fairly.
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(exported_model(generator)), options, providers=["CPUExecutionProvider"])
    return _numpy_forward(lambda x: session.run(None, {INPUT_NAME: x})[0])


def _openvino(generator: Generator) -> TileForward:
    ov = _import("openvino")
    core = ov.Core()
    # f32: OpenVINO's CPU plugin otherwise picks bf16 where the CPU has it (max error ~1e-2 here).
    compiled = core.compile_model(core.read_model(str(exported_model(generator))), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()})
    request = compiled.create_infer_request()
    # A copy: the request owns its output buffer and reuses it on the next call.
    return _numpy_forward(lambda x: np.array(request.infer({0: x})[0], copy=True))


def resolve_backend(backend: str, device: torch.device) -> str:
    """``backend``, or for ``auto`` the fastest one installed for ``device``."""
    if backend != "auto":
        return backend
    if device.type == "cpu":
        return next((name for name in AUTO_CPU_ORDER if backend_available(name)), "torch")
    return "torch"


def tile_forward(backend: str, generator: Generator, device: torch.device) -> tuple[str, TileForward]:
    """The backend actually used and its tile-batch callable for ``generator`` on ``device``.

    UsageError for an unknown name; BackendUnavailableError when an ONNX backend is asked for on
    a GPU, its package is missing, or the generator cannot be exported. ``auto`` never raises for
    these: a failed export falls back to eager PyTorch with a logged warning.
    """
    if backend == "auto":
        chosen = resolve_backend(backend, device)
        try:
            return chosen, _forward(chosen, generator, device)
        except BackendUnavailableError as err:
            log.warning("the %s backend cannot run this model (%s); using torch", chosen, err)
            return "torch", generator
    return backend, _forward(backend, generator, device)


def _forward(backend: str, generator: Generator, device: torch.device) -> TileForward:
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown inference backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return generator
    if backend == "compile":
        return torch.compile(generator, dynamic=False)
    if device.type != "cpu":
        raise BackendUnavailableError(f"the {backend} inference backend runs on the CPU only, not {device}: "
                                      "use the torch backend on a GPU")
    return _onnxruntime(generator) if backend == "onnxruntime" else _openvino(generator)
