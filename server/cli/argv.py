"""Command lines that other parts of NightGrade hand to a shell or a farm (an OpenCue layer's
command): built here, where the flag names live, from settings in domain terms."""
from __future__ import annotations


def enhance_args(input_path: str, output_path: str, *, device: str = "auto", weights: str | None = None,
                 radius: int = 0, cache_dir: str | None = None) -> list[str]:
    """``nightgrade enhance`` arguments (after the program name) for one render; ``radius`` > 0 turns
    the temporal window on, with ``cache_dir`` as its shared cache of enhanced frames."""
    args = ["enhance", input_path, output_path, "--device", device]
    if weights:
        args += ["--weights", weights]
    if radius > 0:
        args += ["--temporal", "--radius", str(radius)]
        if cache_dir:
            args += ["--cache-dir", cache_dir]
    return args


def frames_args(frames: str) -> list[str]:
    """The arguments that limit a render to ``frames`` (a range such as ``1001-1100``)."""
    return ["--frames", frames]
