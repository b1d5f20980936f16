#!/usr/bin/env python3
"""Submit a `nightgrade enhance` job to OpenCue (PyOutline), one layer in chunks of frames.

    python packaging/farm/nightgrade_cue_submit.py /plates/sh010.####.exr /renders/sh010.####.exr \
        --frames 1001-1100 --chunk-size 10 --service nightgrade --tags gpu --gpus 1
    python packaging/farm/nightgrade_cue_submit.py ... --dry-run      # print the job spec, no Cuebot

Needs `pip install 'nightgrade[farm]'` on the submitting machine and NightGrade on the render
hosts; Cuebot's address comes from $CUEBOT_HOSTS or the opencue config. Anything after `--` is
passed to `nightgrade enhance` (e.g. -- --input-colorspace ACEScg --bit-depth half). See docs/farm.md.
"""
from __future__ import annotations

import argparse
import sys

from nightgrade.colorpipeline.errors import NightGradeError
from nightgrade.server.cli.flags import flag
from nightgrade.server.farm.opencue import CueJob, job_spec, launch


def parse(argv: list[str]) -> tuple[CueJob, argparse.Namespace]:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="nightgrade_cue_submit", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="input sequence pattern on shared storage")
    p.add_argument("output", help="output sequence pattern or folder on shared storage")
    p.add_argument("--frames", required=True, help="frame range: FIRST-LAST, steps (1001-1100x2) or lists (1001,1003) with --chunk-size 1")
    p.add_argument("--chunk-size", type=int, default=10, help="frames per OpenCue frame/task (default 10)")
    p.add_argument("--weights", help="checkpoint every host can read (default: the shipped model)")
    p.add_argument("--radius", type=int, default=6, help="temporal radius, 0 for none (default 6)")
    p.add_argument("--cache-dir", help="shared folder for the disk cache of enhanced frames (temporal)")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu (default auto)")
    p.add_argument("--nightgrade-command", default="nightgrade", help="nightgrade on the hosts (default: on PATH)")
    p.add_argument("--name", default="nightgrade_enhance", help="job name (default nightgrade_enhance)")
    p.add_argument("--show", help="show (default: $SHOW, else the outline config's default_show)")
    p.add_argument("--shot", help="shot (default: $SHOT, else the outline config's default_shot)")
    p.add_argument("--user", help="user (default: the current user)")
    p.add_argument("--service", default="nightgrade", help="OpenCue service of the layer (default nightgrade)")
    p.add_argument("--tags", default="gpu", help="host tags, separated by | (default gpu)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs per frame, 0 for a CPU layer (default 1)")
    p.add_argument("--gpu-memory", default="16g", help="GPU memory per frame (default 16g)")
    p.add_argument("--cores", type=float, help="CPU cores per frame (default: the service's)")
    p.add_argument("--memory", default="32g", help="memory per frame (default 32g)")
    p.add_argument("--paused", action="store_true", help="submit the job paused")
    p.add_argument("--dry-run", action="store_true", help="print the job spec XML instead of submitting")
    args = p.parse_args(argv)
    job = CueJob(args.input, args.output, args.frames, chunk_size=args.chunk_size, weights=args.weights,
                 radius=args.radius, cache_dir=args.cache_dir, device=args.device, extra_args=tuple(extra),
                 command=args.nightgrade_command, name=args.name, show=args.show, shot=args.shot,
                 user=args.user, service=args.service,
                 tags=tuple(t.strip() for t in args.tags.split("|") if t.strip()), gpus=args.gpus,
                 gpu_memory=args.gpu_memory, cores=args.cores, memory=args.memory)
    return job, args


def main(argv: list[str]) -> int:
    try:
        job, args = parse(argv)
        if args.dry_run:
            print(job_spec(job))
            return 0
        for launched in launch(job, paused=args.paused):
            print(f"submitted {launched.name()}")
    except NightGradeError as err:
        print(f"nightgrade_cue_submit: error: {err.naming(flag)}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
