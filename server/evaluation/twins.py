"""Twin evaluation clips: the footage of a clip captured another way (issue 14, item 7).

A twin is named ``<base><suffix><rest>``. The report shows each twin's PSNR against its base clip's
and keeps twins out of the mean over clips (they repeat the base clip's pictures):

- ``<base>_dark<N>``: the same frames N stops darker (issue 14's goal: <= 2 dB lost);
- ``<base>_mosaic``: the same frames from a Bayer-mosaic sensor with colour crosstalk
  (``colorpipeline.sensor``): spatially correlated, amplified chroma noise, as in real footage;
- ``<base>_black``: the same capture with a raised black (``sample_data.RAISED_BLACK``).
"""
from __future__ import annotations

from collections.abc import Iterable

from nightgrade.server.evaluation.sample_data import RAISED_BLACK

DARK = "_dark"
MOSAIC = "_mosaic"
BLACK = "_black"
_SUFFIXES = (DARK, MOSAIC, BLACK)


def split(clip: str) -> tuple[str, str, str] | None:
    """(base, suffix, rest) of a twin's name, or None for a clip that is not a twin."""
    for suffix in _SUFFIXES:
        if suffix in clip:
            base, rest = clip.rsplit(suffix, 1)
            if base and (rest.replace(".", "", 1).isdigit() if suffix == DARK else not rest):
                return base, suffix, rest
    return None


def main_clips(clips: Iterable[str]) -> list[str]:
    """The clips that are not twins: those the mean over clips is taken on."""
    return [c for c in clips if split(c) is None]


def describe(clip: str) -> str:
    """How a twin differs from its base clip, in words."""
    parts = split(clip)
    if parts is None:
        raise ValueError(f"{clip} is not a twin clip")
    base, suffix, rest = parts
    if suffix == DARK:
        return f"{clip} is {base} {rest} stop(s) darker"
    if suffix == BLACK:
        return (f"{clip} is {base} with its black raised to linear {RAISED_BLACK['black_level']:g} (about code 16 of "
                "255 in sRGB: video-range footage read as full range)")
    return f"{clip} is {base} from a Bayer-mosaic sensor with colour crosstalk (correlated, amplified chroma noise)"
