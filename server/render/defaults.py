"""Where the shipped defaults live: the trained model and the sample clip travel inside the package."""
from __future__ import annotations

import os
from pathlib import Path

from nightgrade.colorpipeline.errors import ModelError, setting


def shipped_weights_path() -> Path:
    """Path of the shipped model inside the installed package (it may not exist in a source tree yet)."""
    import nightgrade.models

    return Path(next(iter(nightgrade.models.__path__))) / "weights" / "nightgrade-default.safetensors"


def resolve_weights(weights: str | None) -> str:
    """The checkpoint to use: the user's, else the shipped default; one-line error when neither exists."""
    if weights:
        if not os.path.isfile(weights):
            raise ModelError(f"weights file not found: {weights}")
        return weights
    path = shipped_weights_path()
    if not path.is_file():
        raise ModelError(f"no {setting('weights')} given and the shipped model is missing ({path}); pass {setting('weights')} FILE")
    return str(path)


def sample_clip_pattern() -> str:
    """The shipped low-light sample clip as a sequence pattern (inside nightgrade.server)."""
    import nightgrade.server

    folder = Path(next(iter(nightgrade.server.__path__))) / "sample_clip"
    if not folder.is_dir():
        raise ModelError(f"the shipped sample clip is missing ({folder}); reinstall nightgrade")
    return str(folder / "night_bikes.####.png")
