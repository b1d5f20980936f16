"""OpenCue submission: a PyOutline job whose one layer runs `nightgrade enhance` chunk by chunk.

The layer covers the frame range; Cuebot cuts it into chunks of ``chunk_size`` frames and runs
the layer command once per chunk on a host that offers the layer's service and tags (GPU hosts:
``gpus``/``gpu_memory``). The command names its chunk with the OpenCue tokens
``#FRAME_START#`` and ``#FRAME_END#``. Cuebots older than OpenCue PR #1467 (2024) put
``#FRAME_END#`` past the end of the range on the last chunk when the range is not a multiple of
the chunk size, so the command clamps it to the job's last frame with shell arithmetic (RQD runs
commands through a shell). A temporal chunk reads its own handle frames, and a rerun frame
(OpenCue retries) keeps what it finished before: renders resume.

Building and serialising an outline needs no Cuebot: PyOutline reads its bundled ``outline.cfg``
(or ``$OUTLINE_CONFIG_FILE``; options are overridden by ``OUTLINE_<SECTION>_<OPTION>`` variables)
and :func:`job_spec` uses the cue backend's ``serialize_simple``, which writes nothing. Only
:func:`launch` talks to Cuebot (hosts from ``$CUEBOT_HOSTS`` or the opencue config), and it also
writes the outline's session folder (``session_dir`` of the config).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from nightgrade.colorpipeline.errors import ServiceError, UsageError, setting
from nightgrade.colorpipeline.io.sequence import format_frames, parse_frames
from nightgrade.colorpipeline.temporal.average import MAX_RADIUS
from nightgrade.server.cli.argv import enhance_args, frames_args
from nightgrade.server.farm.paths import absolute_path


@dataclass(frozen=True)
class CueJob:
    """An enhance job for OpenCue. Render settings: ``input``/``output`` (sequence patterns),
    ``frames`` (a ``sequence.parse_frames`` range; steps and gaps only with chunk size 1),
    ``chunk_size``, ``weights`` (None: the shipped model), ``radius``
    (0: no temporal smoothing), ``cache_dir`` (shared disk cache of enhanced frames),
    ``device``, ``extra_args`` (more enhance flags) and ``command`` (nightgrade on the hosts).
    Farm settings: job ``name``, ``show``/``shot``/``user`` (None: PyOutline's defaults from the
    environment), the layer's ``service`` and ``tags`` (which hosts take it), ``gpus`` and
    ``gpu_memory`` (0 GPUs: a CPU layer), ``cores`` and ``memory`` (None: the service's)."""

    input: str
    output: str
    frames: str
    chunk_size: int = 10
    weights: str | None = None
    radius: int = MAX_RADIUS
    cache_dir: str | None = None
    device: str = "auto"
    extra_args: tuple[str, ...] = ()
    command: str = "nightgrade"
    name: str = "nightgrade_enhance"
    show: str | None = None
    shot: str | None = None
    user: str | None = None
    service: str = "nightgrade"
    tags: tuple[str, ...] = ("gpu",)
    gpus: int = 1
    gpu_memory: str = "16g"
    cores: float | None = None
    memory: str | None = "32g"

    def __post_init__(self) -> None:
        frames = parse_frames(self.frames)  # UsageError when it is not a frame range
        if frames is None:
            raise UsageError(f"{setting('frames')} is empty: give the range to render, e.g. 1001-1100")
        if self.chunk_size < 1:
            raise UsageError(f"{setting('chunk_size')} {self.chunk_size} must be at least 1")
        if self.chunk_size > 1 and frames[-1] - frames[0] + 1 != len(frames):
            # a chunk's command gets #FRAME_START#-#FRAME_END#, which would render the skipped frames too
            raise UsageError(f"frames {self.frames} skip frames, and OpenCue chunks are FIRST-LAST runs: "
                             f"pass {setting('chunk_size')} 1 or a range without steps or gaps")
        if not 0 <= self.radius <= MAX_RADIUS:
            raise UsageError(f"{setting('radius')} {self.radius} is outside 0..{MAX_RADIUS}")
        if self.gpus < 0:
            raise UsageError(f"{setting('gpus')} {self.gpus} must be 0 (a CPU layer) or more")
        bad = [tag for tag in self.tags if not tag.isalnum()]
        if bad:
            raise UsageError(f"tag {bad[0]!r} is not alphanumeric; OpenCue drops such tags, rename it")

    @property
    def last_frame(self) -> int:
        frames = parse_frames(self.frames)
        assert frames is not None
        return frames[-1]

    @property
    def frame_spec(self) -> str:
        """``frames`` in OpenCue's own spelling (``1001-1100x2``; OpenJD's ``:2`` step is not)."""
        frames = parse_frames(self.frames)
        assert frames is not None
        return format_frames(frames)


def chunk_command(job: CueJob) -> str:
    """The layer's shell command; OpenCue fills in each chunk's first and last frame."""
    end = f"$(( #FRAME_END# < {job.last_frame} ? #FRAME_END# : {job.last_frame} ))"
    args = enhance_args(absolute_path(job.input), absolute_path(job.output), device=job.device,
                        weights=absolute_path(job.weights) if job.weights else None, radius=job.radius,
                        cache_dir=absolute_path(job.cache_dir) if job.cache_dir else None)
    args += list(job.extra_args)
    quoted = " ".join(shlex.quote(a) for a in [job.command, *args])
    return f"{quoted} {' '.join(frames_args('#FRAME_START#'))}-{end}"


def build_outline(job: CueJob) -> Any:
    """The PyOutline ``Outline`` of ``job``: one Render layer, ``enhance``, chunked."""
    import outline
    from outline.modules.shell import Shell

    ol = outline.Outline(job.name, frame_range=job.frame_spec, show=job.show, shot=job.shot, user=job.user)
    resources: dict[str, Any] = {"memory": job.memory} if job.memory else {}
    if job.cores is not None:
        resources["cores"] = job.cores
    if job.gpus:
        resources |= {"gpus": job.gpus, "gpu_memory": job.gpu_memory}
    ol.add_layer(Shell("enhance", command=chunk_command(job), range=job.frame_spec, chunk=job.chunk_size,
                       service=job.service, tags=list(job.tags), **resources))
    return ol


def job_spec(job: CueJob) -> str:
    """The OpenCue job spec XML that Cuebot would receive for ``job`` (no Cuebot needed)."""
    import outline.backend.cue
    import outline.cuerun

    return outline.backend.cue.serialize_simple(outline.cuerun.OutlineLauncher(build_outline(job)))


def launch(job: CueJob, paused: bool = False) -> list[Any]:
    """Submit ``job`` to Cuebot; the launched opencue jobs. ServiceError when Cuebot cannot be
    reached or refuses the job."""
    import opencue.exception
    import outline.cuerun

    try:
        return outline.cuerun.launch(build_outline(job), use_pycuerun=False, pause=paused)
    except opencue.exception.CueException as err:
        raise ServiceError(f"OpenCue did not take the job: {' '.join(str(err).split())[:300]}; set CUEBOT_HOSTS "
                           f"to your Cuebot, or use {setting('dry_run')} to check the spec without one") from err
