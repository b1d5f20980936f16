"""NightGrade checkpoints: one ``.safetensors`` file, weights plus JSON metadata; never pickle.

The safetensors header's ``__metadata__`` holds one key, ``"nightgrade"``, whose value is a JSON
object (see ``CheckpointMeta.to_dict``)::

    {"format_version": 1, "model_name": ..., "model_version": ...,
     "colorspace": "sRGB Encoded Rec.709 (sRGB)",         # working space the model was trained in
     "generator": {GeneratorConfig fields},                 # architecture (models/networks.py)
     "tiles": {"local": Nl, "region": Nr, "stride": s},    # paper Sec. 3.1 and 3.3
     "training": {...free-form summary...},
     "created": "2025-01-31T12:00:00Z",                    # ISO 8601, UTC
     "digest": "sha256:<hex>"}                             # see weights_digest

Loading checks all of it and refuses any mismatch with a one-line ModelError that names the
file and, for tensors, the first offending tensor.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from nightgrade.colorpipeline.errors import ModelError, OutputError
from nightgrade.colorpipeline.io.atomic import write_bytes
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.networks import Generator, GeneratorConfig, config_from_dict

FORMAT_VERSION = 1
METADATA_KEY = "nightgrade"
DEFAULT_COLORSPACE = "sRGB Encoded Rec.709 (sRGB)"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def _check_created(value: str) -> None:
    if value == "":
        return
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"created must be an ISO 8601 date, got {value!r}") from None
    if stamp.utcoffset() is None or stamp.utcoffset().total_seconds() != 0:
        raise ValueError(f"created must be in UTC (e.g. 2025-01-31T12:00:00Z), got {value!r}")


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about itself. ``created``/``digest`` are filled by save_checkpoint."""

    generator: GeneratorConfig
    tiles: TileConfig
    model_name: str
    model_version: str
    colorspace: str = DEFAULT_COLORSPACE
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    digest: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.generator, GeneratorConfig) or not isinstance(self.tiles, TileConfig):
            raise ValueError("generator must be a GeneratorConfig and tiles a TileConfig")
        for name in ("model_name", "model_version", "colorspace"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.training, dict):
            raise ValueError(f"training must be a JSON object, got {type(self.training).__name__}")
        if not isinstance(self.created, str) or not isinstance(self.digest, str):
            raise ValueError("created and digest must be strings")
        _check_created(self.created)
        if self.digest and not _DIGEST_RE.match(self.digest):
            raise ValueError(f"digest must look like 'sha256:<64 hex digits>', got {self.digest!r}")
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"format_version must be {FORMAT_VERSION}, got {self.format_version!r}")
        multiple, local = self.generator.size_multiple, self.tiles.local
        if local % multiple or local < self.generator.min_size:
            raise ValueError(f"tiles.local ({local}) must be a multiple of the generator's size multiple "
                             f"({multiple}) and at least {self.generator.min_size}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "colorspace": self.colorspace,
            "generator": self.generator.to_dict(),
            "tiles": dataclasses.asdict(self.tiles),
            "training": self.training,
            "created": self.created,
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CheckpointMeta:
        """Strict inverse of to_dict; ModelError on version, unknown/missing keys or bad values."""
        if not isinstance(data, dict):
            raise ModelError(f"metadata must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise ModelError(f"unsupported checkpoint format version {version!r} (this NightGrade reads "
                             f"version {FORMAT_VERSION}); use the NightGrade release that wrote it")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ModelError(f"metadata has unknown key {unknown[0]!r}")
        missing = [n for n in names if n not in data]
        if missing:
            raise ModelError(f"metadata is missing key {missing[0]!r}")
        fields = dict(data, generator=GeneratorConfig.from_dict(data["generator"]),
                      tiles=config_from_dict(TileConfig, data["tiles"]))
        try:
            return cls(**fields)
        except ValueError as err:
            raise ModelError(f"metadata: {err}") from err


@dataclass(frozen=True)
class LoadedCheckpoint:
    generator: Generator  # in eval mode, on the requested device
    meta: CheckpointMeta


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """``sha256:<hex>`` over tensors in name order: name, dtype, shape (NUL-separated), raw bytes.

    Independent of file layout and header order, so it identifies the weights themselves; the
    daemon can key caches by it.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        shape = ",".join(str(s) for s in t.shape)
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{shape}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"sha256:{h.hexdigest()}"


def picture_identity(meta: CheckpointMeta) -> str:
    """``sha256:<hex>`` over what decides a checkpoint's pictures: its weights digest and the metadata
    that says how they are used (generator config with its switches, default tiles, working space).

    The weights digest alone does not tell models apart: 0.3.3 and 0.3.4 share their weights and
    differ in a switch, so anything that must not mix two models' frames (a resumed render's record,
    the daemon's batching) keys on this instead. A field added to GeneratorConfig changes every
    model's identity, so frames recorded before it are rendered once more: say so when adding one.
    """
    used = {"weights": meta.digest, "generator": meta.generator.to_dict(),
            "tiles": dataclasses.asdict(meta.tiles), "colorspace": meta.colorspace}
    return "sha256:" + hashlib.sha256(json.dumps(used, sort_keys=True).encode("utf-8")).hexdigest()


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def save_checkpoint(path: str | os.PathLike[str], generator: Generator, meta: CheckpointMeta) -> CheckpointMeta:
    """Write generator weights (float32) + ``meta`` atomically (temp file + rename); return the meta written.

    The written meta has ``digest`` computed from the weights and ``created`` set to now (UTC)
    unless the caller gave one.
    """
    if not isinstance(generator, Generator) or generator.config != meta.generator:
        raise ValueError("generator's config differs from meta.generator; build meta from generator.config")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in generator.state_dict().items()}
    final = dataclasses.replace(meta, digest=weights_digest(tensors), created=meta.created or _utc_now())
    try:
        header = json.dumps(final.to_dict(), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta.training must be JSON-serialisable: {err}") from err
    data = safetensors_bytes(tensors, metadata={METADATA_KEY: header})
    target = Path(path)
    try:
        write_bytes(target, data)
    except OSError as err:
        raise OutputError(f"cannot write checkpoint {target}: {err.strerror or err}; "
                          "check that the folder exists and is writable") from err
    return final


def _open(path: Path) -> Any:
    if not path.exists():
        raise ModelError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise ModelError(f"checkpoint {path} is not a file")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except SafetensorError as err:
        raise ModelError(f"checkpoint {path} is not a valid safetensors file (truncated or corrupt: "
                         f"{str(err).splitlines()[0]}); re-download or re-export it") from err
    except OSError as err:
        raise ModelError(f"cannot read checkpoint {path}: {err.strerror or err}") from err


def _meta_from_handle(path: Path, handle: Any) -> CheckpointMeta:
    raw = (handle.metadata() or {}).get(METADATA_KEY)
    if raw is None:
        raise ModelError(f"checkpoint {path} has no NightGrade metadata (header key {METADATA_KEY!r}); "
                         "it was not written by NightGrade's save_checkpoint")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ModelError(f"checkpoint {path}: NightGrade metadata is not valid JSON ({err.msg})") from err
    try:
        meta = CheckpointMeta.from_dict(data)
    except ModelError as err:
        raise ModelError(f"checkpoint {path}: {err}") from err
    if not meta.digest or not meta.created:
        raise ModelError(f"checkpoint {path}: metadata lacks a weights digest or creation date; re-export it")
    return meta


def read_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """The checkpoint's metadata from its header only (no tensor data is read)."""
    p = Path(path)
    with _open(p) as handle:
        return _meta_from_handle(p, handle)


def _check_tensors(path: Path, handle: Any, expected: Mapping[str, torch.Tensor]) -> None:
    present = set(handle.keys())
    missing = sorted(set(expected) - present)
    if missing:
        raise ModelError(f"checkpoint {path}: tensor {missing[0]!r} is missing "
                         f"({len(missing)} missing); the weights do not match the generator config")
    unexpected = sorted(present - set(expected))
    if unexpected:
        raise ModelError(f"checkpoint {path}: unexpected tensor {unexpected[0]!r} "
                         f"({len(unexpected)} unexpected); the weights do not match the generator config")
    for name in sorted(expected):
        sl = handle.get_slice(name)
        shape, want = tuple(sl.get_shape()), tuple(expected[name].shape)
        if shape != want:
            raise ModelError(f"checkpoint {path}: tensor {name!r} has shape {shape}, "
                             f"the generator config expects {want}")
        if sl.get_dtype() not in _FLOAT_DTYPES:
            raise ModelError(f"checkpoint {path}: tensor {name!r} has dtype {sl.get_dtype()}, expected a float type")


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Validate and load a checkpoint; the generator comes back in eval mode on ``device``."""
    p = Path(path)
    with _open(p) as handle:
        meta = _meta_from_handle(p, handle)
        generator = Generator(meta.generator)
        _check_tensors(p, handle, generator.state_dict())
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    actual = weights_digest(tensors)
    if actual != meta.digest:
        raise ModelError(f"checkpoint {p}: weights digest mismatch (header {meta.digest[:19]}..., "
                         f"weights {actual[:19]}...); the weights were changed after saving, re-export it")
    generator.load_state_dict(tensors, strict=True)
    return LoadedCheckpoint(generator=generator.to(device).eval(), meta=meta)
