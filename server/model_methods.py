"""Learned models as evaluation methods: a checkpoint becomes a callable on sRGB frames."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nightgrade.colorpipeline import color
from nightgrade.models.engine import Engine, EngineConfig

Method = Callable[[np.ndarray], np.ndarray]


def engine_method(weights: str, device: str = "auto") -> tuple[Method, str]:
    """(frame -> enhanced frame, description) for a checkpoint, on float32 sRGB frames in [0, 1].

    Evaluation frames are sRGB-encoded, so they are converted to the checkpoint's working
    space first (a no-op for the shipped models, whose working space is sRGB).
    """
    engine = Engine.from_checkpoint(weights, EngineConfig(device=device))
    config = color.ColorConfig()
    srgb = color.canonical_name(config, "sRGB Encoded Rec.709 (sRGB)")
    working = color.canonical_name(config, engine.meta.colorspace, origin="the checkpoint's working space")

    def method(frame: np.ndarray) -> np.ndarray:
        x = np.clip(color.convert(frame, srgb, working, config), 0.0, 1.0)
        return color.convert(engine.enhance(x), working, srgb, config)

    meta = engine.meta
    steps = meta.training.get("steps", "?")
    channels = meta.generator.in_channels
    kind = "local + region (6-channel) generator" if channels == 6 else "plain 3-channel CycleGAN generator"
    return method, (f"{meta.model_name} {meta.model_version}: {kind}, ngf {meta.generator.ngf}, "
                    f"{meta.generator.n_blocks} blocks, {steps} training steps, tiles {meta.tiles.local}/"
                    f"{meta.tiles.region}/{meta.tiles.stride}")
