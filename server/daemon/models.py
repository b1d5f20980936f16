"""The models a daemon serves: loaded once at start, named in HELLO, chosen per request."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.errors import setting
from nightgrade.models.checkpoint import picture_identity
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.models.onnx_export import BackendUnavailableError
from nightgrade.server.protocol.models import choose_model
from nightgrade.server.render.defaults import resolve_weights

log = logging.getLogger("nightgrade.daemon")


def load_engine(path: str, config: EngineConfig) -> Engine:
    """``path`` on ``config``'s backend; when that backend cannot run here (package missing, export
    failed) the model is served by eager PyTorch instead, with a warning: a daemon starts anyway."""
    try:
        return Engine.from_checkpoint(path, config)
    except BackendUnavailableError as err:
        log.warning("backend=%s unavailable for %s: %s; serving it with the torch backend", config.backend, path, err)
        return Engine.from_checkpoint(path, dataclasses.replace(config, backend="torch"))


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One checkpoint on the daemon's device; ``working`` is its working colourspace as named by
    the daemon's OCIO config; ``identity`` is what decides its pictures (``checkpoint.picture_identity``),
    the key for batching and caches."""

    name: str
    path: str
    engine: Engine
    working: str
    default: bool
    identity: str

    @property
    def digest(self) -> str:
        """The weights digest (WELCOME's ``digest``); two checkpoints may share it (same weights, other switches)."""
        return self.engine.meta.digest

    def describe(self) -> dict:
        """The WELCOME entry of docs/protocol.md."""
        meta, tiles = self.engine.meta, self.engine.tiles
        return {"name": self.name, "version": meta.model_version, "digest": self.digest,
                "colorspace": self.working, "tile": tiles.local, "region": tiles.region,
                "stride": tiles.stride, "default": self.default, "identity": self.identity}


class ModelSet:
    """Checkpoints by name (the first is the default). Two checkpoints with the same model name
    are told apart by an ``@identity`` suffix (``checkpoint.picture_identity``: the weights and how
    they are used); a request may also name a model by its weights digest when only one has it."""

    def __init__(self, weights: Sequence[str | None], engine_config: EngineConfig, colours: color.ColorConfig) -> None:
        paths = list(dict.fromkeys(resolve_weights(w) for w in (weights or [None])))
        self.models: list[LoadedModel] = []
        names: set[str] = set()
        for index, path in enumerate(paths):
            engine = load_engine(path, engine_config)
            name, identity = engine.meta.model_name, picture_identity(engine.meta)
            if name in names:
                name = f"{name}@{identity[7:19]}"
            names.add(name)
            working = color.canonical_name(colours, engine.meta.colorspace,
                                           origin=f"the working space of {path}",
                                           fix=f"serve with an OCIO config that defines it ({setting('ocio_config')})")
            self.models.append(LoadedModel(name, path, engine, working, index == 0, identity))

    def get(self, name: str | None) -> LoadedModel:
        """The model a request names (None: the default; ``protocol.models.choose_model``'s rule);
        ModelError naming the choices if none matches."""
        return self.models[choose_model([(m.name, m.digest) for m in self.models], name)]

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def describe(self) -> list[dict]:
        return [m.describe() for m in self.models]

    @property
    def device(self) -> str:
        return str(self.models[0].engine.device)
