"""The generator as an ONNX file for the ONNX Runtime and OpenVINO backends, exported on first use
and cached by weights digest.

Whatever network the checkpoint built is traced with ``torch.onnx.export`` (no layer list here),
with the batch, height and width left dynamic so one file serves every tile size and batch. The
cache key is the weights digest plus the network's configuration and the torch version that
traced it, so a new checkpoint, a changed architecture or a new exporter never reuses a stale
file. Files go to ``$XDG_CACHE_HOME/nightgrade/onnx`` (``~/.cache`` when unset), written beside
their final name and renamed into place, so a killed export never leaves a half-written model.
Nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.io.atomic import atomic_target
from nightgrade.models.checkpoint import weights_digest
from nightgrade.models.networks import Generator

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "tiles", "enhanced"


class BackendUnavailableError(UsageError):
    """An inference backend cannot run here: its package is missing or the export failed."""


def cache_folder() -> Path:
    """Where exported models live: ``$XDG_CACHE_HOME/nightgrade/onnx``, else ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nightgrade" / "onnx"


def export_key(generator: Generator) -> str:
    """Cache key of ``generator``'s export: weights digest, network config, torch and opset."""
    digest = weights_digest(generator.state_dict())
    h = hashlib.sha256(f"{digest}\0{generator.config!r}\0{torch.__version__}\0{OPSET}".encode())
    return h.hexdigest()[:32]


def exported_model(generator: Generator) -> Path:
    """The ONNX file of ``generator`` (input ``(B, C, H, W)`` in [-1, 1]), exported if not cached.

    BackendUnavailableError when the cache folder cannot be written or the export fails.
    """
    path = cache_folder() / f"generator-{export_key(generator)}.onnx"
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BackendUnavailableError(f"cannot create the model cache folder {path.parent}: {err.strerror}") from err
    cfg = generator.config
    side = max(cfg.min_size, 4 * cfg.size_multiple)
    # The ONNX backends run on CPU only (see backends.tile_forward), so the network is there already.
    network = generator.eval()
    example = torch.zeros(1, cfg.in_channels, side, side, device=next(network.parameters()).device)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    try:
        with atomic_target(path) as temp, warnings.catch_warnings(), torch.inference_mode(False):
            # The tracer warns about instance norm in eval mode and shape-dependent Python ints;
            # both are expected for a fully convolutional network.
            warnings.simplefilter("ignore")
            torch.onnx.export(network, (example,), temp, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic})
    except Exception as err:  # noqa: BLE001 - any tracer failure means "this backend cannot run this model"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackendUnavailableError(f"could not export the generator to ONNX ({reason[:200]}); "
                                      "use the torch backend") from err
    return path
