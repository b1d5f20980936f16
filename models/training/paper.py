"""`nightgrade train`: the multiscale-patch CycleGAN of the paper, Sec. 3-4.

Two generators (G_A: low -> normal, G_B: normal -> low) and two PatchGAN discriminators
(D_A judges the normal domain, D_B the low domain) are trained on unpaired 6-channel patches
(local + resized region, Sec. 3.1). Generators output six channels, local and region (Sec. 3.3),
so every loss is computed on both and mixed as in Eq. 2, ``w * local + (1 - w) * region``:

- adversarial (Eq. 1, LSGAN or RaLSGAN), the same discriminator scoring local and region patches;
- cycle (Eq. 3): L1 on local patches, perceptual L1 on region patches;
- identity (Eq. 4): the same split.

Weights follow Sec. 4: lambda_GAN=1, lambda_cyc=10, lambda_idt=0.5, w=0.9. As in the CycleGAN code
the paper's authors forked, the identity term is scaled by lambda_cyc too (effective 5).
``region_input=False`` trains the plain 3-channel CycleGAN baseline (local patches only, L1 only)
with the same budget. Adam (lr 2e-4, beta1 0.5), constant then linear decay to zero, image pools
of 50 (CycleGAN's settings).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nightgrade.colorpipeline.errors import UsageError, setting
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import CheckpointMeta, save_checkpoint
from nightgrade.models.networks import (DiscriminatorConfig, GeneratorConfig, build_discriminator,
                                        build_generator)
from nightgrade.models.training import losses
from nightgrade.models.training.patches import load_domain, sample_patches
from nightgrade.models.training.perceptual import PerceptualConfig, load_feature_network
from nightgrade.models.training.report import TrainReport
from nightgrade.models.training.state import check_same_settings, load_train_state, save_train_state


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (saved in its checkpoints)."""

    low_dir: str
    normal_dir: str
    out_dir: str
    steps: int = 3000
    batch: int = 4
    local: int = 64                 # Nl of training patches
    region: int = 192               # Nr; the authors' fork uses about 3 x Nl
    infer_local: int = 256          # Nl written into the exported checkpoint for inference
    ngf: int = 16
    n_blocks: int = 9
    n_downsample: int = 2
    ndf: int = 32
    region_input: bool = True
    gan_mode: str = "ralsgan"
    lambda_gan: float = 1.0
    lambda_cyc: float = 10.0
    lambda_idt: float = 0.5
    w: float = 0.9
    lr: float = 2e-4
    beta1: float = 0.5
    decay_from: float = 0.5         # fraction of steps after which the lr decays linearly to 0
    pool_size: int = 50
    seed: int = 0
    max_frames: int | None = None
    perceptual_weights: str | None = None
    perceptual_downsample: int = 2  # region patches are averaged by this factor before the VGG features
    sample_every: int = 250
    checkpoint_every: int = 250
    model_name: str = "nightgrade"
    model_version: str = "0.1.0"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise UsageError(f"{setting('steps')} and {setting('batch')} must be at least 1")
        if self.region < self.local:
            raise UsageError(f"{setting('region')} {self.region} must be at least {setting('local')} {self.local} (Sec. 3.1)")
        if self.gan_mode not in ("lsgan", "ralsgan"):
            raise UsageError(f"{setting('gan_mode')} {self.gan_mode!r}: use lsgan or ralsgan")
        multiple = 2 ** self.n_downsample
        if self.local % multiple or self.infer_local % multiple:
            raise UsageError(f"{setting('local')} and {setting('infer_local')} must be multiples of {multiple}")

    @property
    def channels(self) -> int:
        return 6 if self.region_input else 3

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(in_channels=self.channels, out_channels=self.channels, ngf=self.ngf,
                               n_blocks=self.n_blocks, n_downsample=self.n_downsample)


class Trainer:
    """Holds the four networks, their optimisers, pools and RNGs; one ``step()`` is one update."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        gen_cfg = cfg.generator_config()
        disc_cfg = DiscriminatorConfig(in_channels=3, ndf=cfg.ndf)
        self.nets = {"G_A": build_generator(gen_cfg), "G_B": build_generator(gen_cfg),
                     "D_A": build_discriminator(disc_cfg), "D_B": build_discriminator(disc_cfg)}
        betas = (cfg.beta1, 0.999)
        self.optimizers = {
            "G": torch.optim.Adam([*self.nets["G_A"].parameters(), *self.nets["G_B"].parameters()], cfg.lr, betas),
            "D": torch.optim.Adam([*self.nets["D_A"].parameters(), *self.nets["D_B"].parameters()], cfg.lr, betas),
        }
        self.pools = {"A": losses.ImagePool(cfg.pool_size, cfg.seed + 1),
                      "B": losses.ImagePool(cfg.pool_size, cfg.seed + 2)}
        self.features = load_feature_network(PerceptualConfig(weights=cfg.perceptual_weights)) \
            if cfg.region_input else None
        self.low = load_domain(cfg.low_dir, cfg.max_frames)
        self.normal = load_domain(cfg.normal_dir, cfg.max_frames)
        self.step_index = 0

    # -- data ---------------------------------------------------------------------------------
    def _batch(self, frames: list[np.ndarray]) -> torch.Tensor:
        patches = sample_patches(frames, self.cfg.batch, self.cfg.local, self.cfg.region, self.rng)
        return torch.from_numpy(patches[:, : self.cfg.channels]) * 2.0 - 1.0

    def learning_rate(self, step: int) -> float:
        """Constant, then linear decay to zero over the last ``1 - decay_from`` of the run."""
        start = int(self.cfg.steps * self.cfg.decay_from)
        if step < start:
            return self.cfg.lr
        return self.cfg.lr * max(0.0, 1.0 - (step - start) / max(1, self.cfg.steps - start))

    # -- losses (Sec. 3.2) --------------------------------------------------------------------
    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return (x[:, :3], x[:, 3:6]) if self.cfg.region_input else (x, None)

    def _mixed(self, fn_local, fn_region, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Eq. 2: w * L(local) + (1 - w) * L(region); local only for the 3-channel baseline."""
        (al, ar), (bl, br) = self._split(a), self._split(b)
        if ar is None:
            return fn_local(al, bl)
        return losses.mix_local_region(fn_local(al, bl), fn_region(ar, br), self.cfg.w)

    def _content(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Eq. 3-4 terms: L1 on local patches, perceptual L1 on region patches.

        Region patches carry context, not detail (Sec. 3.1), so on CPU budgets they are averaged
        down by ``perceptual_downsample`` before the feature network, which dominates step time.
        """
        k = self.cfg.perceptual_downsample

        def region(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if k > 1:
                x, y = torch.nn.functional.avg_pool2d(x, k), torch.nn.functional.avg_pool2d(y, k)
            return losses.perceptual_l1(self.features, x, y)
        return self._mixed(losses.l1, region, a, b)

    def _adversarial_g(self, disc: torch.nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        mode = self.cfg.gan_mode

        def term(f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            real_scores = disc(r).detach() if mode == "ralsgan" else None
            return losses.generator_adversarial_loss(mode, disc(f), real_scores)
        return self._mixed(term, term, fake, real)

    def _adversarial_d(self, disc: torch.nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        def term(f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            return losses.discriminator_loss(self.cfg.gan_mode, disc(r), disc(f.detach()))
        return 0.5 * self._mixed(term, term, fake, real)

    def step(self) -> dict[str, float]:
        """One generator update then one discriminator update (CycleGAN's schedule)."""
        cfg, nets = self.cfg, self.nets
        lr = self.learning_rate(self.step_index)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        real_a, real_b = self._batch(self.low), self._batch(self.normal)
        for name in ("D_A", "D_B"):
            nets[name].requires_grad_(False)
        fake_b, fake_a = nets["G_A"](real_a), nets["G_B"](real_b)
        rec_a, rec_b = nets["G_B"](fake_b), nets["G_A"](fake_a)
        idt_a, idt_b = nets["G_A"](real_b), nets["G_B"](real_a)
        gan = self._adversarial_g(nets["D_A"], fake_b, real_b) + self._adversarial_g(nets["D_B"], fake_a, real_a)
        cyc = self._content(rec_a, real_a) + self._content(rec_b, real_b)
        idt = self._content(idt_a, real_b) + self._content(idt_b, real_a)
        loss_g = cfg.lambda_gan * gan + cfg.lambda_cyc * cyc + cfg.lambda_idt * cfg.lambda_cyc * idt
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizers["G"].step()
        for name in ("D_A", "D_B"):
            nets[name].requires_grad_(True)
        d_a = self._adversarial_d(nets["D_A"], self.pools["B"].query(fake_b.detach()), real_b)
        d_b = self._adversarial_d(nets["D_B"], self.pools["A"].query(fake_a.detach()), real_a)
        self.optimizers["D"].zero_grad(set_to_none=True)
        (d_a + d_b).backward()
        self.optimizers["D"].step()
        self.step_index += 1
        return {"loss_G": loss_g.item(), "gan": gan.item(), "cyc": cyc.item(), "idt": idt.item(),
                "D_A": d_a.item(), "D_B": d_b.item(), "lr": lr}

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        extra = {"torch_rng": torch.get_rng_state()}
        pool_meta = {}
        for name, pool in self.pools.items():
            tensors, pool_meta[name] = pool.state_dict()
            extra.update({f"pool_{name}/{k}": v for k, v in tensors.items()})
        meta = {"step": self.step_index, "config": dataclasses.asdict(self.cfg),
                "numpy_rng": self.rng.bit_generator.state, "pools": pool_meta}
        save_train_state(path, self.nets, self.optimizers, extra, meta)

    def resume(self, path: Path) -> None:
        check_same_settings(path, dataclasses.asdict(self.cfg), _RESUMABLE_CHANGES)
        extra, meta = load_train_state(path, self.nets, self.optimizers)
        self.step_index = int(meta["step"])
        self.rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(extra["torch_rng"])
        for name, pool in self.pools.items():
            prefix = f"pool_{name}/"
            pool.load_state_dict({k[len(prefix):]: v for k, v in extra.items() if k.startswith(prefix)},
                                 meta["pools"][name])

    def export(self, path: Path, data_summary: dict[str, Any]) -> CheckpointMeta:
        """The low -> normal generator as an inference checkpoint (models/checkpoint.py)."""
        cfg = self.cfg
        region = round(cfg.infer_local * cfg.region / cfg.local)
        # no machine paths in a shipped checkpoint: folders are where this run happened, not what it was
        config = {k: v for k, v in dataclasses.asdict(cfg).items() if not k.endswith("_dir")}
        if cfg.perceptual_weights:
            config["perceptual_weights"] = Path(cfg.perceptual_weights).name
        data = {k: v for k, v in data_summary.items() if not k.endswith("_dir")}
        training = {"mode": "paper", "steps": self.step_index, "config": config, "data": data,
                    "perceptual": self.features.describe() if self.features is not None else None}
        meta = CheckpointMeta(generator=cfg.generator_config(),
                              tiles=TileConfig(cfg.infer_local, region, cfg.infer_local // 2),
                              model_name=cfg.model_name, model_version=cfg.model_version, training=training)
        return save_checkpoint(path, self.nets["G_A"], meta)


# Settings that may differ on --resume: where to write and how often to report, and the budget.
_RESUMABLE_CHANGES = {"out_dir", "steps", "sample_every", "checkpoint_every"}


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training; writes state, an exported model, a CSV log, curves and samples."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg)
    state_path = out / "train_state.safetensors"
    if resume:
        trainer.resume(state_path)
    report = TrainReport(out, trainer, show_progress=show_progress, resumed_at=trainer.step_index)
    started = time.perf_counter()
    with report:
        while trainer.step_index < cfg.steps:
            values = trainer.step()
            report.log(trainer.step_index, values)
            if trainer.step_index % cfg.sample_every == 0 or trainer.step_index == cfg.steps:
                report.samples(trainer.step_index)
            if trainer.step_index % cfg.checkpoint_every == 0 or trainer.step_index == cfg.steps:
                trainer.save(state_path)
                report.curves()
    summary = {"low_frames": len(trainer.low), "normal_frames": len(trainer.normal),
               "low_dir": cfg.low_dir, "normal_dir": cfg.normal_dir}
    meta = trainer.export(out / "model.safetensors", summary)
    return {"steps": trainer.step_index, "seconds": round(time.perf_counter() - started, 1),
            "model": str(out / "model.safetensors"), "digest": meta.digest, "log": str(out / "losses.csv")}
