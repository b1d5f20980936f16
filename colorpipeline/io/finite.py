"""Non-finite pixels (NaN, +-Inf): the one policy for every render path (README, "NaN and Inf").

One NaN reaching the generator spreads through its convolutions and normalisation into a whole
tile, and the Gaussian merge carries it into the neighbouring tiles. So before anything else,
non-finite input values are replaced - NaN by 0, +Inf and -Inf clamped to +-``CLAMP`` (the largest
half-float, what an EXR can hold) - and counted, so the caller can warn, or refuse the frame in
strict mode. The finished output goes through :func:`finite_output`, so no non-finite value we
produce reaches a file or a client.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nightgrade.colorpipeline.errors import InputError

CLAMP = 65504.0


class NonFiniteError(InputError):
    """A frame holds NaN or Inf values and strict mode refuses to repair them."""


@dataclass(frozen=True)
class NonFinite:
    """How many values of a frame were NaN and how many +-Inf (all channels)."""

    nan: int = 0
    inf: int = 0

    @property
    def total(self) -> int:
        return self.nan + self.inf

    def __add__(self, other: NonFinite) -> NonFinite:
        return NonFinite(self.nan + other.nan, self.inf + other.inf)

    def describe(self) -> str:
        parts = [f"{count} {name}" for count, name in ((self.nan, "NaN"), (self.inf, "Inf")) if count]
        return " and ".join(parts) + " value(s)"


def replace_nonfinite(pixels: np.ndarray, where: str = "the frame",
                      strict: bool = False) -> tuple[np.ndarray, NonFinite]:
    """``pixels`` with NaN -> 0 and +-Inf -> +-CLAMP (a copy only when something was replaced),
    and the counts. ``strict``: NonFiniteError naming ``where`` instead of repairing."""
    finite = np.isfinite(pixels)
    if finite.all():
        return pixels, NonFinite()
    nan = int(np.isnan(pixels).sum())
    found = NonFinite(nan=nan, inf=int(pixels.size - finite.sum()) - nan)
    if strict:
        raise NonFiniteError(f"{where} holds {found.describe()}; strict mode refuses to replace them "
                             "(fix the source, or render without strict mode to replace NaN by 0 and clamp Inf)")
    return np.nan_to_num(pixels, nan=0.0, posinf=CLAMP, neginf=-CLAMP).astype(pixels.dtype, copy=False), found


def finite_output(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` with any non-finite value (from colour maths on extreme inputs) replaced as above."""
    return pixels if np.isfinite(pixels).all() else np.nan_to_num(pixels, nan=0.0, posinf=CLAMP, neginf=-CLAMP)
