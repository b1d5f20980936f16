"""Training losses of the multiscale-patch CycleGAN (paper Sec. 3.2, Eq. 1-4) and the image pool.

- Adversarial L_GAN: LSGAN (Mao et al. 2017, as in the original CycleGAN) or the relativistic
  average LSGAN (RaLSGAN, Jolicoeur-Martineau 2018) that the paper adopts. Both take raw patch
  discriminator score maps (no sigmoid). Every loss is the average of its terms: CycleGAN halves
  the discriminator's real + fake sum, and Jolicoeur-Martineau's reference code halves both
  RaLSGAN sums; the generator's LSGAN loss has a single term.
- Cycle and identity losses: L1 on local patches (Eq. 3a, 4a), L1 between feature maps of a
  frozen VGG on region patches (Eq. 3b, 4b), mixed toward the local term by w > 0.5 (Eq. 2).
- ``ImagePool``: CycleGAN's history of generated images for discriminator updates, seeded and
  checkpointable so that a resumed run draws exactly the swaps an uninterrupted run would.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F

from nightgrade.colorpipeline.errors import ModelError, UsageError

GanMode = Literal["lsgan", "ralsgan"]
GAN_MODES: tuple[str, ...] = ("lsgan", "ralsgan")


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise UsageError(f"unknown adversarial loss {mode!r}; use one of {', '.join(GAN_MODES)} (paper Sec. 3.2)")


def discriminator_loss(mode: GanMode, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Discriminator part of L_GAN (Sec. 3.2) on patch score maps C(x).

    lsgan:   ( E[(C(x_r) - 1)^2] + E[C(x_f)^2] ) / 2
    ralsgan: ( E[(C(x_r) - E C(x_f) - 1)^2] + E[(C(x_f) - E C(x_r) + 1)^2] ) / 2

    E averages over every score of the map and the batch, so the relativistic "average" is
    one scalar per side; real and fake batches may differ in size. Pass fake scores of
    detached generator outputs, so that this loss only trains the discriminator.
    """
    _check_mode(mode)
    if mode == "lsgan":
        return 0.5 * ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean())
    return 0.5 * ((real_scores - fake_scores.mean() - 1).pow(2).mean()
                  + (fake_scores - real_scores.mean() + 1).pow(2).mean())


def generator_adversarial_loss(mode: GanMode, fake_scores: torch.Tensor,
                               real_scores: torch.Tensor | None = None) -> torch.Tensor:
    """Generator part of L_GAN (Sec. 3.2): make the discriminator score fakes as real.

    lsgan:   E[(C(x_f) - 1)^2]            (``real_scores`` unused)
    ralsgan: ( E[(C(x_r) - E C(x_f) + 1)^2] + E[(C(x_f) - E C(x_r) - 1)^2] ) / 2

    RaLSGAN needs the scores of a real batch too: the generator also gains by making real
    patches look less real relative to its fakes.
    """
    _check_mode(mode)
    if mode == "lsgan":
        return (fake_scores - 1).pow(2).mean()
    if real_scores is None:
        raise ValueError("ralsgan generator loss needs real_scores (discriminator scores of a real batch)")
    return 0.5 * ((real_scores - fake_scores.mean() + 1).pow(2).mean()
                  + (fake_scores - real_scores.mean() - 1).pow(2).mean())


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference: ||a - b||_1 per element, the local-patch term of Eq. 3a and 4a."""
    _check_same_shape(a, b, "l1")
    return (a - b).abs().mean()


def perceptual_l1(features_net: Callable[[torch.Tensor], list[torch.Tensor]], a: torch.Tensor,
                  b: torch.Tensor) -> torch.Tensor:
    """||phi(a) - phi(b)||_1 of Eq. 3b and 4b: mean over layers of the mean absolute feature difference.

    ``features_net`` maps (N, 3, H, W) in [-1, 1] to a list of feature maps (see
    ``perceptual.load_feature_network``). Both inputs go through one batched forward.
    The paper uses the L1 norm here rather than the L2 of Johnson et al., for robustness to outliers.
    """
    _check_same_shape(a, b, "perceptual_l1")
    features = features_net(torch.cat([a, b]))
    n = a.shape[0]
    return torch.stack([(f[:n] - f[n:]).abs().mean() for f in features]).mean()


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5) of (N, C, H, W) values in [-1, 1].

    Structure and local contrast, which an L1 term alone trades away for smoothness (Zhao et al.,
    "Loss functions for image restoration", 2017); the evaluation's SSIM goal (issue 14) is this measure.
    """
    _check_same_shape(a, b, "ssim_loss")
    x, y = (a + 1.0) * 0.5, (b + 1.0) * 0.5
    taps = torch.exp(-((torch.arange(11, dtype=a.dtype) - 5.0) ** 2) / (2 * 1.5 ** 2))
    taps = taps / taps.sum()
    window = (taps[:, None] * taps[None, :]).expand(a.shape[1], 1, 11, 11).contiguous()
    blur = lambda t: F.conv2d(t, window, groups=a.shape[1])  # noqa: E731  (valid: no padded border)
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1.0 - ssim.mean()


def chroma_loss(a: torch.Tensor, b: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """L1 between the colour (each channel minus the mean of the three) of 4x-averaged images.

    Colour errors are small in per-channel L1 next to tone and noise, so this term weighs them on
    their own; averaging first keeps chroma noise, which the generator should remove, out of it.
    Measured at weight 1.0 (docs/model-card.md, "the colour run"): it removed the grey casts (worst
    grey C* 2.11 -> 1.64) but muted colour further, so the shipped recipe leaves it off.
    """
    _check_same_shape(a, b, "chroma_loss")
    pa, pb = F.avg_pool2d(a, pool), F.avg_pool2d(b, pool)
    return F.l1_loss(pa - pa.mean(dim=1, keepdim=True), pb - pb.mean(dim=1, keepdim=True))


def black_error(black: torch.Tensor, true_black: torch.Tensor, true_gains: torch.Tensor) -> torch.Tensor:
    """Mean |error| of the raised-black estimate (B,) as the brightened picture shows it: times the
    frame's true gain (mean of its log2 ``true_gains`` (B, 3)), in fractions of full scale, linear.

    Measured first in plain units (percent of full scale, squared; docs/model-card.md), the estimate
    learned to take off each frame's darkest value whole: a small error there, but a dark frame's gain
    makes it large, and the darkest scene content of a frame 5 stops under was crushed (-1.8 dB).
    """
    return ((black - true_black).abs() * torch.exp2(true_gains.mean(dim=1))).mean()


def overlap_l1(y: torch.Tensor, shifts: list[tuple[int, int]]) -> torch.Tensor:
    """Mean |difference| of paired outputs where they show the same pixels (issue 14, item 4).

    ``y`` holds pairs (2k, 2k+1); ``shifts[k]`` = (dy, dx) is where crop 2k+1 lies relative to crop 2k.
    A tile-consistent generator gives a pixel the same value whichever tile (and region) it fell in;
    the Gaussian merge of Sec. 3.3 only hides what this term removes. Pairs without overlap count 0.
    """
    if y.shape[0] != 2 * len(shifts):
        raise ValueError(f"overlap_l1: {y.shape[0]} outputs for {len(shifts)} pairs")
    size_y, size_x = y.shape[2:]
    terms = []
    for k, (dy, dx) in enumerate(shifts):
        h, w = size_y - abs(dy), size_x - abs(dx)
        if h <= 0 or w <= 0:
            terms.append(y.new_zeros(()))
            continue
        a = y[2 * k, :, max(dy, 0):max(dy, 0) + h, max(dx, 0):max(dx, 0) + w]
        b = y[2 * k + 1, :, max(-dy, 0):max(-dy, 0) + h, max(-dx, 0):max(-dx, 0) + w]
        terms.append((a - b).abs().mean())
    return torch.stack(terms).mean()


def mix_local_region(local_loss: torch.Tensor, region_loss: torch.Tensor, w: float = 0.9) -> torch.Tensor:
    """Eq. 2: L_t = w L^l_t + (1 - w) L^r_t, with 0.5 < w <= 1 so the local patch dominates."""
    if not 0.5 < w <= 1.0:
        raise UsageError(f"local/region loss weight w must satisfy 0.5 < w <= 1 (paper Eq. 2), got {w}")
    return w * local_loss + (1.0 - w) * region_loss


class ImagePool:
    """History buffer of generated images for discriminator updates (CycleGAN, Shrivastava et al. 2017).

    Until ``size`` images are stored, each queried image is stored and returned. Then each
    image is, with probability ``swap_probability``, swapped for a uniformly chosen stored one
    (which is returned instead); otherwise it is returned as is. Stored and returned images
    are detached: the pool only feeds discriminator updates. All draws come from the pool's
    own ``torch.Generator`` (``rng`` is a seed or a generator), which ``state_dict`` saves.
    """

    def __init__(self, size: int = 50, rng: int | torch.Generator = 0, swap_probability: float = 0.5) -> None:
        if size < 0:
            raise ValueError(f"image pool size must be >= 0, got {size}")
        if not 0.0 <= swap_probability <= 1.0:
            raise ValueError(f"swap probability must be in [0, 1], got {swap_probability}")
        self.size = size
        self.swap_probability = swap_probability
        if isinstance(rng, torch.Generator):
            self.generator = rng
        else:
            self.generator = torch.Generator().manual_seed(rng)
        self._images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch the size of ``images`` (N, C, H, W), mixing in stored history."""
        if images.ndim != 4:
            raise ValueError(f"image pool expects a (N, C, H, W) batch, got shape {tuple(images.shape)}")
        images = images.detach()
        if self.size == 0:
            return images
        if self._images and self._images[0].shape != images.shape[1:]:
            raise ValueError(f"image pool holds {tuple(self._images[0].shape)} images, got {tuple(images.shape[1:])}")
        out = []
        for image in images:
            if len(self._images) < self.size:
                self._images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) < self.swap_probability:
                slot = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self._images[slot].to(images.device))
                self._images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, int | float]]:
        """(tensors, JSON-able dict) for a safetensors checkpoint: stored images, generator state, sizes.

        ``images`` is absent while the pool is empty; prefix the keys when saving several pools."""
        tensors = {"rng_state": self.generator.get_state()}
        if self._images:
            tensors["images"] = torch.stack([image.cpu() for image in self._images]).contiguous()
        meta: dict[str, int | float] = {"size": self.size, "count": len(self._images),
                                        "swap_probability": self.swap_probability}
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, int | float]) -> None:
        """Restore what ``state_dict`` returned; raises ModelError if it does not fit this pool."""
        if meta.get("size") != self.size or meta.get("swap_probability") != self.swap_probability:
            raise ModelError(f"image pool state is for size {meta.get('size')} / swap probability "
                             f"{meta.get('swap_probability')}, this run uses {self.size} / {self.swap_probability}; "
                             "resume with the settings the checkpoint was trained with")
        count = int(meta.get("count", -1))
        images = tensors.get("images")
        stored = 0 if images is None else images.shape[0]
        if "rng_state" not in tensors or stored != count or count > self.size:
            rng = "present" if "rng_state" in tensors else "missing"
            raise ModelError(f"image pool state is inconsistent (count {count}, {stored} stored images, "
                             f"rng state {rng}); the checkpoint is corrupt")
        self.generator.set_state(tensors["rng_state"])
        self._images = [] if images is None else [image.clone() for image in images]
