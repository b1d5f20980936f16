"""`nightgrade train --mode hybrid`: the paper's adversarial and cycle terms on real night plates,
anchored by the paired loss (issue 14, items 3 and 6).

A paired model (``training_paired``) learns light, colour and noise from camera-model pairs, so it
knows only the cameras the model draws. Hybrid training starts from such a model (``init``) and adds
what the paper trains with (Sec. 3.2): unpaired real low-light frames (``low_dir``, e.g. a user's own
night plates) go through the generator, a PatchGAN discriminator judges the result against real
well-exposed crops (Eq. 1, RaLSGAN by default), and a second, small generator maps the result back
to the input, L1 on the local patch (the local half of Eq. 3a). The paired loss stays as an anchor
so that the adversarial game cannot drift the picture away from the measured exposure and colour.

Simplifications against the paper, both for CPU budgets: only the forward cycle (low -> normal ->
low) is trained, since the reverse one needs the 6-channel region of a generated frame; and the
discriminator sees local patches only. Real low frames go through the same frame exposure step as
at inference (``models/exposure.py``) before their crops are cut.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nightgrade.colorpipeline.errors import UsageError, setting
from nightgrade.models.exposure import thumbnail
from nightgrade.models.networks import DiscriminatorConfig, GeneratorConfig, build_discriminator, build_generator
from nightgrade.models.training import losses
from nightgrade.models.training.paired import PairedConfig, PairedTrainer, parameter_groups, train_paired
from nightgrade.models.training.paired_data import PairedFrames, draw_picture, find_clean_frames, load_clean, random_framing


@dataclass(frozen=True)
class HybridConfig(PairedConfig):
    """A paired run plus the unpaired terms; ``init`` (a paired model) and ``low_dir`` are required."""

    low_dir: str = ""
    # A fine-tune of a trained model. Measured from 0.4.2 with one camera's night plates, 8 minutes
    # (docs/quality.md): lr 1e-4 with lambda_adv 0.05 lost 1.22 dB on that camera's clip (the adversarial
    # term traded the refinement head's detail for texture), 0.02 lost 0.11, 0.02 at 5e-5 gained 0.47
    lr: float = 5e-5
    warmup: int = 100
    lambda_adv: float = 0.02    # small against the anchor: the paired loss is about 0.2 at convergence
    lambda_cycle: float = 0.5
    gan_mode: str = "ralsgan"
    ndf: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.init:
            raise UsageError(f"hybrid training starts from a paired model: give {setting('init')} (a checkpoint, or 'default')")
        if not self.low_dir:
            raise UsageError(f"hybrid training needs {setting('low_dir')} FOLDER (real low-light frames, e.g. your night plates)")
        if self.gan_mode not in losses.GAN_MODES:
            raise UsageError(f"gan-mode {self.gan_mode!r}: use {' or '.join(losses.GAN_MODES)}")


class HybridTrainer(PairedTrainer):
    """The paired trainer's generator and data, plus the back generator and the discriminator."""

    kind = "hybrid"

    def __init__(self, cfg: HybridConfig) -> None:
        super().__init__(cfg)
        self.low = load_clean(find_clean_frames(cfg.low_dir), min_side=cfg.local)
        back = GeneratorConfig(in_channels=3, out_channels=3, ngf=cfg.ngf, n_blocks=max(1, cfg.n_blocks // 2),
                               n_downsample=cfg.n_downsample, norm="none", skips=True, residual=True)
        self.nets["G_B"] = build_generator(back)
        self.nets["D"] = build_discriminator(DiscriminatorConfig(in_channels=3, ndf=cfg.ndf))
        # the paired trainer's groups (a black estimate at its own rate), the back generator with the rest
        groups = parameter_groups(self.generator)
        groups[0]["params"] += list(self.nets["G_B"].parameters())
        self.optimizers["G"] = torch.optim.Adam(groups, lr=cfg.lr)
        self.optimizers["D"] = torch.optim.Adam(self.nets["D"].parameters(), lr=cfg.lr, betas=(0.5, 0.999))

    def _real_low_inputs(self) -> torch.Tensor:
        """Generator inputs cut from real low frames after the frame exposure step, as at inference."""
        cfg = self.cfg
        frames = [random_framing(draw_picture(self.low, self.rng), cfg.frame_side, self.rng)
                  for _ in range(cfg.frames_per_step)]
        low = torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2).copy())
        thumbs = torch.from_numpy(np.stack([thumbnail(f) for f in frames]).astype(np.float32))
        batch = PairedFrames(clean=low, low=low, thumbs=thumbs, true_gains=torch.zeros(len(frames), 3))
        gains, black = self.generator.exposure.levels(thumbs)
        x, _ = batch.crops(gains, cfg.local, cfg.region, cfg.crops_per_frame, self.rng, cfg.region_input, black)
        return x

    def _real_normal_crops(self, count: int) -> torch.Tensor:
        """``count`` local crops of well-exposed frames, in [-1, 1]: what the discriminator calls real.

        ``crops_per_frame`` crops from each framing, as the fakes are cut: one 512-px framing per
        crop would cost a resize of a whole picture for every 96-px crop."""
        cfg, crops = self.cfg, []
        while len(crops) < count:
            frame = random_framing(draw_picture(self.pictures, self.rng, self.weights), cfg.frame_side, self.rng)
            for _ in range(min(cfg.crops_per_frame, count - len(crops))):
                top = int(self.rng.integers(frame.shape[0] - cfg.local + 1))
                left = int(self.rng.integers(frame.shape[1] - cfg.local + 1))
                crops.append(frame[top:top + cfg.local, left:left + cfg.local].transpose(2, 0, 1))
        return torch.from_numpy(np.ascontiguousarray(np.stack(crops))) * 2.0 - 1.0

    def step(self) -> dict[str, float]:
        cfg, disc = self.cfg, self.nets["D"]
        lr = self._set_learning_rate()
        anchor, values = self.paired_loss()
        x = self._real_low_inputs()
        fake = self.generator(x)
        real = self._real_normal_crops(fake.shape[0])
        disc.requires_grad_(False)
        real_scores = disc(real).detach() if cfg.gan_mode == "ralsgan" else None
        adv = losses.generator_adversarial_loss(cfg.gan_mode, disc(fake), real_scores)
        cycle = losses.l1(self.nets["G_B"](fake), x[:, :3])
        loss_g = anchor + cfg.lambda_adv * adv + cfg.lambda_cycle * cycle
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizers["G"].step()
        disc.requires_grad_(True)
        loss_d = 0.5 * losses.discriminator_loss(cfg.gan_mode, disc(real), disc(fake.detach()))
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimizers["D"].step()
        self.step_index += 1
        return {**values, "loss": loss_g.item(), "adv": adv.item(), "cycle": cycle.item(), "D": loss_d.item(),
                "lr": lr}


def train_hybrid(cfg: HybridConfig, **kwargs) -> dict:
    """``train_paired``'s loop (resume, checkpoints, time limit, export) with the hybrid trainer."""
    return train_paired(cfg, trainer_cls=HybridTrainer, **kwargs)
