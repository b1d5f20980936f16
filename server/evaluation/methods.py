"""Learned models as evaluation methods: a checkpoint becomes a callable on sRGB frames."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.temporal.average import TemporalConfig
from nightgrade.colorpipeline.temporal.window import smooth_sequence
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

    method.engine = engine  # for checks that need the engine itself (server/evaluation/model_checks.py)

    meta = engine.meta
    steps = meta.training.get("steps", "?")
    channels = meta.generator.in_channels
    kind = "local + region (6-channel) generator" if channels == 6 else "plain 3-channel CycleGAN generator"
    return method, (f"{meta.model_name} {meta.model_version}: {kind}, ngf {meta.generator.ngf}, "
                    f"{meta.generator.n_blocks} blocks, {steps} training steps, tiles {meta.tiles.local}/"
                    f"{meta.tiles.region}/{meta.tiles.stride}")


class TemporalMethod:
    """A per-frame method followed by the temporal window of Sec. 3.4 over the whole clip
    (``temporal_window.smooth_sequence``), as ``enhance --temporal`` does. It smooths the per-frame
    outputs in the evaluation's sRGB encoding, which is the shipped models' working space, where
    the render path smooths too."""

    whole_clip = True

    def __init__(self, per_frame: Method, window: TemporalConfig = TemporalConfig()) -> None:
        self._per_frame, self._window = per_frame, window

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        return smooth_sequence([self._per_frame(frame) for frame in frames], self._window)
