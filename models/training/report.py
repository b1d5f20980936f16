"""What a training run shows and leaves behind: a progress bar, a CSV loss log, a loss-curve PNG
and sample grids (input | output | cycle) of fixed low-light patches."""
from __future__ import annotations

import csv
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from tqdm import tqdm

from nightgrade.colorpipeline.io.atomic import atomic_target
from nightgrade.models.training.patches import sample_patches

if TYPE_CHECKING:
    from nightgrade.models.training.paper import Trainer

FIELDS = ("step", "loss_G", "gan", "cyc", "idt", "D_A", "D_B", "lr")
_SAMPLE_SEED = 12345  # fixed patches, independent of the training RNG so resuming does not move them


class TrainReport:
    """Context manager around the training loop."""

    def __init__(self, out: Path, trainer: Trainer, show_progress: bool, resumed_at: int = 0) -> None:
        self.out, self.trainer = out, trainer
        self.csv_path = out / "losses.csv"
        _truncate_log(self.csv_path, resumed_at)
        new = not self.csv_path.exists()
        self._file = open(self.csv_path, "a", newline="")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(FIELDS)
        self._bar = tqdm(total=trainer.cfg.steps, initial=resumed_at, unit="step", disable=not show_progress,
                         dynamic_ncols=True)
        cfg = trainer.cfg
        fixed = sample_patches(trainer.low, 4, cfg.local, cfg.region, np.random.default_rng(_SAMPLE_SEED), flip=False)
        self._fixed = torch.from_numpy(fixed[:, : cfg.channels]) * 2.0 - 1.0

    def __enter__(self) -> TrainReport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.close()
        self._file.close()

    def log(self, step: int, values: dict[str, float]) -> None:
        self._writer.writerow([step, *(f"{values[k]:.6g}" for k in FIELDS[1:])])
        self._file.flush()
        self._bar.update(1)
        self._bar.set_postfix(G=f"{values['loss_G']:.3f}", cyc=f"{values['cyc']:.3f}",
                              D=f"{values['D_A'] + values['D_B']:.3f}")

    def samples(self, step: int) -> Path:
        """Rows: fixed low-light patches; columns: input | G_A(input) | G_B(G_A(input))."""
        nets = self.trainer.nets
        with torch.no_grad():
            fake = nets["G_A"](self._fixed)
            rec = nets["G_B"](fake)
        rows = [np.concatenate([_to_image(t[i, :3]) for t in (self._fixed, fake, rec)], axis=1)
                for i in range(self._fixed.shape[0])]
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        path = folder / f"step_{step:06d}.png"
        _write_png(path, np.concatenate(rows, axis=0))
        return path

    def curves(self) -> Path:
        """Loss curves from the CSV (matplotlib, headless)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        data = np.genfromtxt(self.csv_path, delimiter=",", names=True)
        data = np.atleast_1d(data)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for key in ("loss_G", "cyc", "idt", "gan"):
            axes[0].plot(data["step"], _smooth(data[key]), label=key)
        for key in ("D_A", "D_B"):
            axes[1].plot(data["step"], _smooth(data[key]), label=key)
        for ax, title in zip(axes, ("generators", "discriminators")):
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.legend()
        fig.tight_layout()
        path = self.out / "losses.png"
        with atomic_target(path) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        return path


def _smooth(values: np.ndarray, window: int = 25) -> np.ndarray:
    if values.size < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="same")


def _to_image(t: torch.Tensor) -> np.ndarray:
    return ((t.permute(1, 2, 0).numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_target(path) as tmp:
        cv2.imwrite(tmp, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log rows past the resumed step (they were never checkpointed)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step] if rows else []
    with atomic_target(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(keep)
