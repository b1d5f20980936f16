"""`nightgrade train --mode paired`: supervised training on camera-model pairs (issue 14, item 3).

The paper trains unpaired (Sec. 3-4) because night footage has no ground truth. A camera model
with randomised parameters (``colorpipeline.lowlight``) gives pairs from any clean footage, and
supervision learns exposure, colour and noise far faster than an adversarial game. The network is
the tile-consistent variant of the paper's generator (``models/networks.py``: no per-tile norm,
skips, global residual) plus the frame-level exposure branch (``models/exposure.py``); the input
stays the paper's six channels (local Nl patch + the Nr region resized to Nl, Sec. 3.1).

Loss per step: ``w * L1(local) + (1 - w) * L1(local, 4x-averaged)`` on sRGB-encoded values, with
the paper's w = 0.9 (the coarse term weighs tone and colour over a neighbourhood, where the paper
uses a perceptual loss on the region), plus ``lambda_ssim`` times 1 - SSIM (structure, which L1 alone
smooths away), plus ``lambda_colour`` times the L1 of the 4x-averaged chroma (saturation and casts,
which per-channel L1 learns last), plus ``lambda_gain`` times the squared error of the predicted log2
exposure gains against the ones that undo the capture's exposure and white balance
(``colorpipeline.lowlight.undo_gains``; anchors the exposure branch), plus, for a branch that estimates
the raised black (``exposure_black``), ``lambda_black`` times its error after the gain
(``losses.black_error``), plus ``lambda_tile``
times the L1 between the outputs of crop pairs where they overlap (``losses.overlap_l1``: tile
consistency, issue 14 item 4), plus, in a fine-tune, ``lambda_anchor`` times the L1 between the
8x-averaged outputs of the run and of the model it started from on the same crops (learning without
forgetting: a camera's few plates should teach texture and noise, not a tone that its other shots
do not share; docs/quality.md measured that loss). Frames are drawn balanced over sources
(``paired_data.source_weights``) so one long clip or large package cannot dominate.
Adam with a cosine decay of the learning rate. Resume is exact: weights, Adam moments, both RNGs.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nightgrade.colorpipeline.errors import UsageError, setting
from nightgrade.colorpipeline.lowlight import CameraRanges
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from nightgrade.models.networks import GeneratorConfig, build_generator
from nightgrade.models.training.losses import black_error, chroma_loss, overlap_l1, ssim_loss
from nightgrade.models.training.paired_data import find_clean_frames, frame_height, load_clean, make_frames, source_weights
from nightgrade.models.training.state import check_same_settings, load_train_state, save_train_state

MODES = ("paired",)


@dataclass(frozen=True)
class PairedConfig:
    """Everything that decides a paired run (saved in its state and exported checkpoint)."""

    clean_dir: str
    out_dir: str
    steps: int = 20000
    frames_per_step: int = 4
    crops_per_frame: int = 2
    frame_side: int = 512
    local: int = 96
    region: int = 288
    infer_local: int = 256
    ngf: int = 16
    n_blocks: int = 6
    n_downsample: int = 3
    region_input: bool = True
    norm: str = "none"
    exposure_level: bool = True   # see GeneratorConfig.exposure_level: the switch the exported model keeps
    train_exposure_level: bool | None = None  # the switch while training (None: exposure_level)
    exposure_mirrors: bool = True  # see GeneratorConfig.exposure_mirrors (on while training and in the model)
    exposure_black: bool = False  # see GeneratorConfig.exposure_black (with --init: may be added to a model)
    refine: int = 0             # see GeneratorConfig.refine: full-resolution refinement convs (0: none)
    refine_width: int = 16      # see GeneratorConfig.refine_width
    train_refine_only: bool = False  # train the refinement head alone; the rest stays as --init made it
    lr: float = 1e-3
    w: float = 0.9
    lambda_gain: float = 0.1
    lambda_black: float = 1.0   # the raised-black estimate's error as the picture shows it (losses.black_error)
    lambda_ssim: float = 0.15
    lambda_colour: float = 0.0  # colour: L1 of 4x-averaged chroma (losses.chroma_loss)
    lambda_tile: float = 0.0    # tile consistency: crops in pairs, L1 between their overlapping outputs
    lambda_anchor: float = 0.0  # fine-tunes: L1 to the --init model's 8x-averaged output (keeps its tone, module doc)
    warmup: int = 0             # steps of linear learning-rate warm-up (fine-tunes: fresh Adam moments)
    balance_sources: bool = True
    # clean pictures' chroma x U(1, this) before the capture (paired_data.saturate); 1: off. Not in RECIPE: a
    # fine-tune on a user's plates learns their colours as they are
    saturation_boost: float = 1.0
    # how often a training capture gets a raised black (CameraRanges.black_level_probability). A tile cannot
    # tell a lifted floor from dark content, so the model takes off the draw's average black from every
    # frame: at 0.4 (the recipe until 0.4.1) it crushed true blacks (docs/model-card.md). In RECIPE: a fine-tune
    # that went back to 0.4 would crush them again
    black_level_probability: float = CameraRanges.black_level_probability
    seed: int = 0
    init: str = ""
    checkpoint_seconds: int = 300
    log_every: int = 25
    model_name: str = "nightgrade"
    model_version: str = "0.2.0"

    def __post_init__(self) -> None:
        if self.region % self.local or self.region < self.local:
            raise UsageError(f"region ({self.region}) must be a multiple of local ({self.local})")
        if self.local % 8 or self.infer_local % 8:
            raise UsageError("local and infer_local must be multiples of 8")
        if frame_height(self.frame_side) <= self.region // 2 or min(self.steps, self.frames_per_step,
                                                                  self.crops_per_frame) < 1:
            raise UsageError("the training frame (frame_side x 9/16) must be taller than half the region, and "
                             "steps and batch sizes must be at least 1")
        if self.saturation_boost < 1.0:
            raise UsageError(f"{setting('saturation_boost')} multiplies chroma by up to that factor: give 1 (off) or "
                             f"more, got {self.saturation_boost}")
        if not 0.0 <= self.black_level_probability <= 1.0:
            raise UsageError(f"{setting('black_level_probability')} is a probability: give a value from 0 to 1, "
                             f"got {self.black_level_probability}")
        if self.lambda_anchor and not self.init:
            raise UsageError("the anchor term compares with the model a fine-tune starts from: it needs --init")
        if self.train_refine_only and not (self.refine and self.init):
            raise UsageError(f"{setting('train_refine_only')} trains a refinement head on a trained model: give "
                             f"{setting('refine')} 2 or more and {setting('init')}")
        if self.lambda_tile and self.crops_per_frame % 2:
            raise UsageError(f"the tile-consistency term takes crops in pairs: crops_per_frame must be even, "
                             f"got {self.crops_per_frame}")

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(in_channels=6 if self.region_input else 3, ngf=self.ngf, n_blocks=self.n_blocks,
                               n_downsample=self.n_downsample, norm=self.norm, skips=True, residual=True,
                               exposure=True, exposure_level=self.exposure_level,
                               exposure_mirrors=self.exposure_mirrors, exposure_black=self.exposure_black,
                               refine=self.refine,
                               refine_width=self.refine_width)


# Generator settings that decide how the weights are used, not their shapes: a fine-tune may change them.
SWITCHES = ("exposure_level", "exposure_mirrors")


def architecture_of(path: str) -> dict[str, Any]:
    """The architecture fields (and ``SWITCHES``) of a paired run that would fine-tune ``path``.

    A fine-tune starts from the checkpoint's own network (e.g. the shipped model's exposure
    switch), so a user need not know, and cannot mistype, how it was built.
    """
    g = read_meta(path).generator
    if not (g.skips and g.residual and g.exposure):
        raise UsageError(f"{path} is not a paired-mode model (it has no exposure branch or global residual); "
                         "fine-tune a model made by `nightgrade train --mode paired`")
    return {"ngf": g.ngf, "n_blocks": g.n_blocks, "n_downsample": g.n_downsample, "region_input": g.in_channels == 6,
            "norm": g.norm, "exposure_level": g.exposure_level,
            "exposure_mirrors": g.exposure_mirrors, "exposure_black": g.exposure_black, "refine": g.refine,
            "refine_width": g.refine_width}


# The training objective, the camera draw's raised black and the crop geometry of a paired run: a fine-tune
# keeps its starting model's (before, a fine-tune of 0.3.2 trained without the tile term and SSIM weight that
# 0.3.2 was made with).
RECIPE = ("w", "lambda_gain", "lambda_black", "lambda_ssim", "lambda_colour", "lambda_tile", "black_level_probability",
          "local", "region", "infer_local", "frame_side", "frames_per_step", "crops_per_frame", "balance_sources")


def recipe_of(path: str) -> dict[str, Any]:
    """The ``RECIPE`` settings that trained the checkpoint at ``path``, as its metadata records them
    (empty for a checkpoint whose metadata has no paired-run settings)."""
    config = read_meta(path).training.get("config") or {}
    return {name: config[name] for name in RECIPE if name in config}


# Settings that may differ on --resume: the budget and how often to write.
_RESUMABLE = {"out_dir", "steps", "checkpoint_seconds", "log_every"}
# Settings added after runs were saved, and what such a run trained with: it resumes with that value given.
_ADDED = {"exposure_mirrors": False, "refine": 0, "refine_width": 16, "train_refine_only": False,
          "exposure_black": False, "lambda_black": 1.0, "saturation_boost": 1.0,
          "black_level_probability": 0.4}


#: The raised-black estimate learns at this multiple of the run's rate: it is a fresh head whose start
#: (models/exposure.py) lies several units of its output from any useful value, which a fine-tune's
#: rate (1e-4) would take tens of thousands of steps to cover.
BLACK_LR_SCALE = 20.0


def parameter_groups(generator: torch.nn.Module) -> list[dict[str, Any]]:
    """Adam's parameter groups for the whole generator: the black estimate, if any, at ``BLACK_LR_SCALE``."""
    head = generator.exposure.black_head
    if head is None:
        return [{"params": list(generator.parameters())}]
    fresh = {id(p) for p in head.parameters()}
    return [{"params": [p for p in generator.parameters() if id(p) not in fresh]},
            {"params": list(head.parameters()), "lr_scale": BLACK_LR_SCALE}]


class PairedTrainer:
    """The generator, its optimiser and the data draw of a paired run; one ``step()`` is one update."""

    kind = "paired"

    def __init__(self, cfg: PairedConfig) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = build_generator(cfg.generator_config())
        if cfg.init:
            self._initialise(cfg.init)
        # The exported model keeps cfg.exposure_level; training may use the branch's level or not
        # (0.3.2 and 0.3.3 trained with it, as 0.3.0 did, and ship without it: docs/model-card.md).
        self.generator.exposure.level = (cfg.exposure_level if cfg.train_exposure_level is None
                                         else cfg.train_exposure_level)
        # every network and optimiser that a state file holds (the hybrid trainer adds its own)
        self.nets: dict[str, torch.nn.Module] = {"G": self.generator}
        if cfg.train_refine_only:
            self.generator.requires_grad_(False)
            groups = [{"params": list(self.generator.refine.parameters())}]
            self.generator.refine.requires_grad_(True)
        else:
            groups = parameter_groups(self.generator)
        self.optimizers = {"G": torch.optim.Adam(groups, lr=cfg.lr)}
        paths = find_clean_frames(cfg.clean_dir)
        self.pictures = load_clean(paths, min_side=cfg.local)
        self.weights = source_weights(paths, cfg.clean_dir) if cfg.balance_sources else None
        self.ranges = CameraRanges(black_level_probability=cfg.black_level_probability)
        self.step_index = 0

    def _initialise(self, path: str) -> None:
        loaded = load_checkpoint(path)
        switches = {name: getattr(self.generator.config, name) for name in SWITCHES}
        config, before = self.generator.config, loaded.meta.generator
        # a refinement head or a black estimate may be added to a model without one; they start as nothing
        grown_heads = []
        if config.refine and not before.refine:
            grown_heads.append("refine.")
            switches.update(refine=config.refine, refine_width=config.refine_width)
        if config.exposure_black and not before.exposure_black:
            grown_heads.append("exposure.black_head.")
            switches.update(exposure_black=True)
        if dataclasses.replace(loaded.meta.generator, **switches) != self.generator.config:
            raise UsageError(f"the initial checkpoint {path} has a different architecture than this run "
                             f"({loaded.meta.generator} vs {self.generator.config}); train with the checkpoint's "
                             "width, blocks and downsampling")
        # a grown head keeps its (near-)zero start: the run starts as the model it grows
        missing, _ = self.generator.load_state_dict(loaded.generator.state_dict(), strict=not grown_heads)
        lacking = [key for key in missing if not key.startswith(tuple(grown_heads))]
        if lacking:
            raise UsageError(f"the initial checkpoint {path} lacks {lacking[0]}")
        if self.cfg.lambda_anchor:  # the starting model, frozen: the anchor term's reference
            self.anchor = build_generator(self.generator.config).requires_grad_(False)
            self.anchor.load_state_dict(self.generator.state_dict())  # as loaded, a grown head's zero start included

    def learning_rate(self, step: int) -> float:
        """Cosine decay over ``steps``, after a linear warm-up: Adam's first updates move every weight
        by about the learning rate whatever its gradient, which would undo a trained model."""
        warm = min(1.0, (step + 1) / self.cfg.warmup) if self.cfg.warmup else 1.0
        return warm * self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / self.cfg.steps)))

    def _set_learning_rate(self) -> float:
        lr = self.learning_rate(self.step_index)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def paired_loss(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The supervised loss of one batch of camera-model pairs (module doc) and its terms."""
        cfg = self.cfg
        frames = make_frames(self.pictures, cfg.frames_per_step, cfg.frame_side, self.rng, self.ranges, self.weights,
                             black_removed=cfg.exposure_black, saturation_boost=cfg.saturation_boost)
        gains, black = self.generator.exposure.levels(frames.thumbs)
        if cfg.lambda_tile:
            # a pair sees one stretch of the frame from two tile positions half a tile apart at most,
            # as the half-overlapping tiles of inference do (Sec. 3.3)
            x, target, shifts = frames.crop_pairs(gains, cfg.local, cfg.region, cfg.crops_per_frame // 2,
                                                  cfg.local // 2, self.rng, cfg.region_input, black)
        else:
            x, target = frames.crops(gains, cfg.local, cfg.region, cfg.crops_per_frame, self.rng, cfg.region_input,
                                     black)
        y = self.generator(x)
        fine = F.l1_loss(y, target)
        coarse = F.l1_loss(F.avg_pool2d(y, 4), F.avg_pool2d(target, 4))
        gain_err = F.mse_loss(gains, frames.true_gains)
        black_err = black_error(black, frames.true_black, frames.true_gains) if cfg.exposure_black else torch.zeros(())
        structure = ssim_loss(y, target) if cfg.lambda_ssim else torch.zeros(())
        tile = overlap_l1(y, shifts) if cfg.lambda_tile else torch.zeros(())
        colour = chroma_loss(y, target) if cfg.lambda_colour else torch.zeros(())
        if cfg.lambda_anchor:
            with torch.no_grad():
                reference = F.avg_pool2d(self.anchor(x), 8)
            anchor = F.l1_loss(F.avg_pool2d(y, 8), reference)
        else:
            anchor = torch.zeros(())
        loss = (cfg.w * fine + (1.0 - cfg.w) * coarse + cfg.lambda_ssim * structure + cfg.lambda_gain * gain_err
                + cfg.lambda_black * black_err + cfg.lambda_tile * tile + cfg.lambda_colour * colour
                + cfg.lambda_anchor * anchor)
        return loss, {"loss": loss.item(), "l1": fine.item(), "coarse": coarse.item(), "gain_mse": gain_err.item(),
                      "black": black_err.item(), "ssim_loss": structure.item(), "tile_l1": tile.item(),
                      "colour": colour.item(), "anchor": anchor.item()}

    def step(self) -> dict[str, float]:
        lr = self._set_learning_rate()
        loss, values = self.paired_loss()
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["G"].step()
        self.step_index += 1
        return {**values, "lr": lr}

    def save(self, path: Path) -> None:
        meta = {"step": self.step_index, "config": dataclasses.asdict(self.cfg),
                "numpy_rng": self.rng.bit_generator.state, "kind": self.kind}
        save_train_state(path, self.nets, self.optimizers, {"torch_rng": torch.get_rng_state()}, meta)

    def resume(self, path: Path) -> None:
        check_same_settings(path, dataclasses.asdict(self.cfg), _RESUMABLE, _ADDED)
        extra, meta = load_train_state(path, self.nets, self.optimizers)
        self.step_index = int(meta["step"])
        self.rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(extra["torch_rng"])

    def export(self, path: Path, seconds: float) -> CheckpointMeta:
        cfg = self.cfg
        region = round(cfg.infer_local * cfg.region / cfg.local)
        # no machine paths in a shipped checkpoint: folders are where this run happened, not what it was
        config = {k: v for k, v in dataclasses.asdict(cfg).items() if not k.endswith("_dir") and k != "init"}
        training = {"mode": self.kind, "steps": self.step_index, "train_seconds": round(seconds, 1),
                    "config": config, "clean_frames": len(self.pictures),
                    "camera_ranges": dataclasses.asdict(self.ranges),
                    "initialised_from": Path(cfg.init).name if cfg.init else None}
        meta = CheckpointMeta(generator=cfg.generator_config(),
                              tiles=TileConfig(cfg.infer_local, region, cfg.infer_local // 2),
                              model_name=cfg.model_name, model_version=cfg.model_version, training=training)
        return save_checkpoint(path, self.generator, meta)


def train_paired(cfg: PairedConfig, resume: bool = False, log=print, stop_at: int | None = None,
                 time_limit_s: float | None = None, trainer_cls: type[PairedTrainer] = PairedTrainer) -> dict[str, Any]:
    """Run (or resume) a paired run to ``cfg.steps``; state every ``checkpoint_seconds``, then export.

    ``stop_at`` (a step) or ``time_limit_s`` end this session early with the state saved, so a later
    ``resume`` continues the same run (the schedule still spans ``cfg.steps``).
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = trainer_cls(cfg)
    state_path = out / "train_state.safetensors"
    if resume:
        trainer.resume(state_path)
    started = time.perf_counter()
    last_save = started
    sums: dict[str, float] = {}
    with open(out / "losses.csv", "a") as csv:
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        while trainer.step_index < end:
            values = trainer.step()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            if trainer.step_index % cfg.log_every == 0:
                means = {k: v / cfg.log_every for k, v in sums.items()}
                csv.write(f"{trainer.step_index}," + ",".join(f"{means[k]:.6g}" for k in sorted(means)) + "\n")
                csv.flush()
                log(f"step {trainer.step_index}/{cfg.steps} " + " ".join(f"{k}={means[k]:.4g}" for k in sorted(means)))
                sums = {}
            now = time.perf_counter()
            if time_limit_s is not None and now - started >= time_limit_s:
                break
            if now - last_save >= cfg.checkpoint_seconds and trainer.step_index < end:
                trainer.save(state_path)
                trainer.export(out / "model.safetensors", now - started)
                last_save = now
    # the end of this session (budget, stop_at or time limit): state and model once
    trainer.save(state_path)
    meta = trainer.export(out / "model.safetensors", time.perf_counter() - started)
    return {"steps": trainer.step_index, "seconds": round(time.perf_counter() - started, 1),
            "model": str(out / "model.safetensors"), "digest": meta.digest}
