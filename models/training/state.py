"""Training state on disk: networks, Adam moments, RNG and image pools in one safetensors file.

Resuming must continue bit-identically, so everything that feeds the next step is saved:
weights, optimiser moments and step counts, the torch and numpy RNG states, and the image
pools. Tensors go to safetensors; the rest (step, config, param groups, numpy RNG state) to the
JSON string under the header's ``nightgrade-train`` key. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nightgrade.colorpipeline.errors import ModelError, OutputError, setting
from nightgrade.colorpipeline.io.atomic import atomic_target

STATE_KEY = "nightgrade-train"
STATE_VERSION = 1


def _optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors = {}
    for index, slots in state["state"].items():
        for slot, value in slots.items():
            tensors[f"opt/{name}/{index}/{slot}"] = torch.as_tensor(value).detach().clone().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def save_train_state(path: str | os.PathLike[str], nets: dict[str, torch.nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer], extra: dict[str, torch.Tensor],
                     meta: dict[str, Any]) -> None:
    """Write the whole training state atomically (temp file + rename)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            tensors[f"net/{name}/{key}"] = value.detach().clone().contiguous()
    groups = {}
    for name, optimizer in optimizers.items():
        opt_tensors, groups[name] = _optimizer_tensors(name, optimizer)
        tensors.update(opt_tensors)
    tensors.update({f"extra/{k}": v.detach().clone().contiguous() for k, v in extra.items()})
    header = {"version": STATE_VERSION, "optimizers": groups, **meta}
    try:
        with atomic_target(path) as tmp:
            save_file(tensors, tmp, metadata={STATE_KEY: json.dumps(header)})
    except OSError as err:
        raise OutputError(f"cannot write training state {path}: {err.strerror or err}") from err


def _read(path: str | os.PathLike[str], with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not os.path.isfile(path):
        raise ModelError(f"no training state to resume at {path}; start without {setting('resume')}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = (handle.metadata() or {}).get(STATE_KEY)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()} if with_tensors else {}
    except Exception as err:  # safetensors raises several types for damaged files
        raise ModelError(f"training state {path} is unreadable ({err}); delete it to start over") from err
    if header is None:
        raise ModelError(f"{path} is not a NightGrade training state (no '{STATE_KEY}' metadata)")
    meta = json.loads(header)
    if meta.get("version") != STATE_VERSION:
        raise ModelError(f"training state {path} has version {meta.get('version')}, expected {STATE_VERSION}")
    return tensors, meta


def read_train_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON part only (step, config): cheap, for checking settings before loading tensors."""
    return _read(path, with_tensors=False)[1]


def load_train_state(path: str | os.PathLike[str], nets: dict[str, torch.nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load into existing networks and optimisers; returns (extra tensors, meta)."""
    tensors, meta = _read(path, with_tensors=True)
    for name, net in nets.items():
        prefix = f"net/{name}/"
        net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
    for name, optimizer in optimizers.items():
        prefix = f"opt/{name}/"
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, slot = key[len(prefix):].split("/")
                state.setdefault(int(index), {})[slot] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizers"][name]["param_groups"]})
    extra = {k[len("extra/"):]: v for k, v in tensors.items() if k.startswith("extra/")}
    return extra, meta


def check_same_settings(path: str | os.PathLike[str], current: dict[str, Any], may_change: set[str],
                        added: Mapping[str, Any] | None = None) -> None:
    """UsageError naming the settings that differ between the run saved at ``path`` and ``current``
    (a resumed run must be the same run; only ``may_change`` keys, such as the budget, may differ).
    ``added``: settings newer than some saved runs, with the value a run saved before them trained with."""
    from nightgrade.colorpipeline.errors import UsageError

    saved = {**(added or {}), **read_train_meta(path)["config"]}
    saved = {k: v for k, v in saved.items() if k not in may_change}
    now = {k: v for k, v in current.items() if k not in may_change}
    if saved != now:
        changed = sorted(k for k in now if saved.get(k) != now[k])
        said = ", ".join(f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in changed)
        raise UsageError(f"{setting('resume')} with different settings ({said}); use the original ones")

