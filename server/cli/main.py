"""The `nightgrade` command line.

Exit codes (also in README): 0 success; 1 internal error (a bug: please report);
2 usage error; 3 input error; 4 output error; 5 model/checkpoint error; 6 colour error;
7 service error (the render daemon is unavailable or refused the work: down, busy, cancelled,
past its deadline); 130 interrupted (Ctrl-C). Errors print one line on stderr: ``nightgrade: error: ...``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nightgrade.colorpipeline.errors import NightGradeError
from nightgrade.server import package_version
from nightgrade.server.cli import commands
from nightgrade.server.cli import serve as serve_cli
from nightgrade.server.cli import train as train_cli
from nightgrade.server.cli.flags import flag

if TYPE_CHECKING:
    from nightgrade.colorpipeline.temporal.average import TemporalConfig
    from nightgrade.server.render.pipeline import RenderOptions
    from nightgrade.server.render.temporal import TemporalRenderConfig


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its one-line style but our prefix."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"nightgrade: error: {message}\n")


def _add_enhance(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enhance", help="enhance a frame or a frame sequence",
                       description="Enhance low-light frames: colour-managed, tiled generator inference.")
    p.add_argument("input", help="frame, sequence (shot.####.exr, shot.%%04d.exr) or directory")
    p.add_argument("output", help="output frame, sequence pattern or directory")
    p.add_argument("--weights", "-w", help="checkpoint (.safetensors); default: the shipped model")
    p.add_argument("--frames", help="frames: a range 1001-1100, steps 1001-1100x2 (or :2), lists 1001,1003 "
                                    "(default: all frames found)")
    p.add_argument("--input-colorspace", help="OCIO colourspace of the input (default: file metadata, else per format)")
    p.add_argument("--output-colorspace", help="OCIO colourspace of the output (default: the input's where the "
                                               "output format holds it, else the format's; printed on stderr)")
    p.add_argument("--ocio-config", help="OCIO config path (default: $OCIO, else ocio://studio-config-latest)")
    p.add_argument("--scale", type=float, default=1.0, help="proxy preview scale in (0, 1] (default 1.0)")
    p.add_argument("--tile", type=int, help="local tile size Nl in full-resolution pixels (default: checkpoint's)")
    p.add_argument("--region", type=int, help="region size Nr in full-resolution pixels (default: checkpoint's)")
    p.add_argument("--stride", type=int, help="tile stride (default: tile/2)")
    p.add_argument("--batch", type=int, help="tiles per generator batch (default: from memory budget)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--mix", type=float, default=1.0, help="blend with the input, 0..1 (default 1.0)")
    c = p.add_argument_group("look (colorpipeline/controls.py; the defaults are the model's own look)")
    c.add_argument("--luma-denoise", type=float, default=1.0,
                   help="strength of the model's luma denoise, 0..1 (default 1; 0 keeps the input's luma grain)")
    c.add_argument("--chroma-denoise", type=float, default=1.0,
                   help="strength of the model's colour-noise removal, 0..1 (default 1; 0 keeps the input's)")
    c.add_argument("--detail", type=float, default=0.0,
                   help="detail recovery: the input's finest luma detail put back, 0..1 (default 0)")
    c.add_argument("--exposure", type=float, default=0.0,
                   help="exposure target in stops on top of the model's automatic exposure, -4..4 "
                        "(default 0: the model's choice; +1 is twice the light)")
    p.add_argument("--bit-depth", help="output depth: 8, 10, 12, 16, half or float "
                                       "(default: the input's where the format allows it, else the format's)")
    p.add_argument("--compression", help="EXR/TIFF compression, e.g. zip, piz, dwaa, none")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator (slow start, faster frames)")
    p.add_argument("--backend",
                   help="what runs the generator: auto (default: the fastest installed for the device), torch, "
                        "compile (= --compile), or the model exported to ONNX and run by onnxruntime or openvino "
                        "(CPU; exported once, cached)")
    p.add_argument("--strict", action="store_true",
                   help="refuse input frames holding NaN or Inf values (default: replace NaN by 0, clamp Inf, warn)")
    p.add_argument("--overwrite", action="store_true",
                   help="render every frame; by default output frames that exist and are complete (size, "
                        "channels, readable) are kept, so a stopped render resumes")
    t = p.add_argument_group("temporal smoothing (paper Sec. 3.4)")
    t.add_argument("--temporal", action="store_true",
                   help="average motion-compensated neighbouring frames against flicker; with --frames, "
                        "up to --radius handle frames outside the range are read too")
    t.add_argument("--radius", type=int, help="neighbours on each side, 0..6 (default 6)")
    t.add_argument("--max-motion", type=float,
                   help="full-resolution pixels of motion beyond which a neighbour is not used (default 256)")
    t.add_argument("--cache-mb", type=int, help="memory for enhanced frames in MB (default: the whole window)")
    t.add_argument("--cache-dir",
                   help="folder for a disk cache of enhanced frames that farm chunks share (created if missing)")
    f = p.add_argument_group("render farm (docs/farm.md)")
    f.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="render in chunks on a Ray cluster: one worker per GPU, or per CPU when there is none; "
                        "ADDRESS like head:6379 (default: $RAY_ADDRESS, else a local Ray instance)")
    f.add_argument("--chunk-size", type=int, help="with --ray: frames per chunk (default 10)")
    f.add_argument("--ray-workers", type=int, help="with --ray: workers to start (default: one per GPU or CPU)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    serve_cli.add_client_arguments(p)
    p.add_argument("--model", help="with --server: a model name or digest the daemon serves (default: its default)")
    p.set_defaults(func=_cmd_enhance)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a checkpoint's metadata")
    p.add_argument("weights", nargs="?", help="checkpoint (.safetensors); default: the shipped model")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)


def _add_colorspaces(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("colorspaces", help="list the colourspaces and roles of the OCIO config")
    p.add_argument("--ocio-config", help="OCIO config path (default: $OCIO, else ocio://studio-config-latest)")
    p.set_defaults(func=_cmd_colorspaces)


def _cmd_colorspaces(args: argparse.Namespace) -> int:
    from nightgrade.colorpipeline import color

    for line in color.describe_colorspaces(color.ColorConfig(args.ocio_config)):
        print(line)
    return 0


_TEMPORAL_OPTIONS = ("radius", "max_motion", "cache_mb", "cache_dir")


def _cmd_enhance(args: argparse.Namespace) -> int:
    from nightgrade.colorpipeline.errors import UsageError
    from nightgrade.colorpipeline.io.movie import is_movie
    from nightgrade.server.render.pipeline import render_sequence

    opts = _render_options(args)
    show_progress = not (args.quiet or args.json)
    farm = [flag(name) for name in _FARM_OPTIONS if getattr(args, name) is not None]
    if args.ray is not None and args.server:
        raise UsageError("--ray and --server both render elsewhere: pick one")
    if args.ray is None and farm:
        raise UsageError(f"{' and '.join(farm)} {'applies' if len(farm) == 1 else 'apply'} only with --ray: "
                         "add --ray or leave them out")
    if is_movie(args.input) or is_movie(args.output):
        summary = _render_movie(opts, args, show_progress)
    elif args.ray is not None:
        summary = _render_ray(opts, args, show_progress)
    elif args.server:
        summary = _render_remote(opts, args, show_progress)
    elif args.model:
        raise UsageError("--model picks a model of a daemon: add --server, or give --weights for a local render")
    elif args.temporal:
        summary = _render_temporal(opts, args, show_progress)
    else:
        _refuse_temporal_flags(args)
        summary = render_sequence(opts, show_progress=show_progress)
    colours = summary.get("colorspaces")
    if colours:  # absent when every frame was already complete: nothing was converted
        print(f"nightgrade: colour: {colours['input']} -> {colours['output']} (output colourspace "
              f"{_RULE_WORDS.get(colours.get('output_rule', ''), colours.get('output_rule', ''))})", file=sys.stderr)
    _warn_nonfinite(summary.get("nonfinite"))
    if summary.get("frames_rerendered"):
        print(f"nightgrade: note: rendered {summary['frames_rerendered']} existing frame(s) again, made with other "
              f"settings or unrecorded ({summary['rerender_reason']}); --overwrite renders every frame",
              file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        temporal = (f"; {summary['generator_passes']} generator passes, cache hit rate "
                    f"{summary['cache']['hit_rate']:.0%}") if args.temporal and "cache" in summary else ""
        skipped = f", kept {summary['frames_skipped']} complete" if summary.get("frames_skipped") else ""
        ray = summary.get("ray")
        where = f" on {ray['workers']} Ray worker(s) in {ray['chunks']} chunk(s)" if ray else ""
        print(f"wrote {summary['frames_written']} frame(s) to {summary['output']}{skipped}{where} "
              f"({summary['seconds']:.1f} s, {summary['frames_per_second']:.3f} frames/s{temporal})")
    return 0


def _render_options(args: argparse.Namespace) -> RenderOptions:
    from nightgrade.server.render.pipeline import RenderOptions

    return RenderOptions(
        input=args.input, output=args.output, weights=args.weights, frames=args.frames,
        input_colorspace=args.input_colorspace, output_colorspace=args.output_colorspace,
        ocio_config=args.ocio_config, scale=args.scale, tile=args.tile, region=args.region,
        stride=args.stride, batch=args.batch, device=args.device, mix=args.mix, luma_denoise=args.luma_denoise,
        chroma_denoise=args.chroma_denoise, detail=args.detail, exposure=args.exposure,
        bit_depth=args.bit_depth, compression=args.compression, compile=args.compile, overwrite=args.overwrite,
        strict=args.strict, backend=_backend(args),
    )


_RULE_WORDS = {"given": "from --output-colorspace"}


def _render_movie(opts: RenderOptions, args: argparse.Namespace, show_progress: bool) -> dict:
    from nightgrade.colorpipeline.errors import UsageError
    from nightgrade.server.render.movie import render_movie

    elsewhere = [flag for flag, given in (("--temporal", args.temporal), ("--server", args.server),
                                          ("--ray", args.ray is not None), ("--model", args.model)) if given]
    if elsewhere:
        raise UsageError(f"{' and '.join(elsewhere)} need an image sequence: a movie is read in one pass, per frame; "
                         "render the movie to frames first (out/shot.####.exr)")
    _refuse_temporal_flags(args)
    return render_movie(opts, show_progress)


def _warn_nonfinite(found: dict | None) -> None:
    """One warning line when input frames held NaN/Inf (the --json summary has the same counts)."""
    if not found or not found["frames"]:
        return
    frames = found["frames"]
    shown = ", ".join(map(str, frames[:8])) + (", ..." if len(frames) > 8 else "")
    print(f"nightgrade: warning: {len(frames)} input frame(s) held non-finite values ({found['nan']} NaN, "
          f"{found['inf']} Inf; frame(s) {shown}): NaN replaced by 0, Inf clamped to +-65504; "
          "--strict refuses such frames", file=sys.stderr)


_FARM_OPTIONS = ("chunk_size", "ray_workers")


def _render_ray(opts: RenderOptions, args: argparse.Namespace, show_progress: bool) -> dict:
    from nightgrade.colorpipeline.errors import UsageError
    from nightgrade.server.farm.ray_jobs import RayConfig, render_on_ray

    if args.model:
        raise UsageError("--model picks a model of a daemon; with --ray give --weights")
    _refuse_temporal_flags(args)
    cfg = RayConfig(address=args.ray or None, chunk_size=10 if args.chunk_size is None else args.chunk_size,
                    workers=args.ray_workers)
    return render_on_ray(opts, cfg, _temporal_config(args) if args.temporal else None, show_progress)


def _backend(args: argparse.Namespace) -> str:
    from nightgrade.colorpipeline.errors import UsageError

    if args.compile and args.backend not in (None, "torch", "compile"):
        raise UsageError(f"--compile and --backend {args.backend} each choose what runs the generator: pick one")
    return "torch" if args.compile else args.backend or "auto"


_LOCAL_ONLY = {"weights": "--weights (use --model)", "batch": "--batch", "compile": "--compile",
               "backend": "--backend", "cache_mb": "--cache-mb", "cache_dir": "--cache-dir", "stride": "--stride"}


def _render_remote(opts: RenderOptions, args: argparse.Namespace, show_progress: bool) -> dict:
    from nightgrade.colorpipeline.errors import UsageError
    from nightgrade.server.client.remote_render import ServerOptions, render_remote

    local = [flag for name, flag in _LOCAL_ONLY.items() if getattr(args, name) not in (None, False)]
    if args.device != "auto":
        local.append("--device")
    if local:
        raise UsageError(f"{', '.join(local)} apply to local renders; the daemon's own settings rule with --server")
    _refuse_temporal_flags(args, ("radius", "max_motion"))
    window = _window(args) if args.temporal else None
    server = ServerOptions(args.server, args.timeout, args.retries, serve_cli.curve_client(args), args.model,
                           serve_cli.notice)
    return render_remote(opts, server, window, show_progress)


def _refuse_temporal_flags(args: argparse.Namespace, names: tuple[str, ...] = _TEMPORAL_OPTIONS) -> None:
    """Temporal flags without --temporal are a mistake worth a message, not silently ignored."""
    from nightgrade.colorpipeline.errors import UsageError

    given = [flag(name) for name in names if getattr(args, name) is not None]
    if given and not args.temporal:
        raise UsageError(f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to temporal renders: "
                         "add --temporal or leave them out")


def _window(args: argparse.Namespace) -> TemporalConfig:
    from nightgrade.colorpipeline.temporal.average import DEFAULT_MAX_MOTION, MAX_RADIUS, TemporalConfig

    return TemporalConfig(radius=MAX_RADIUS if args.radius is None else args.radius,
                          max_motion=DEFAULT_MAX_MOTION if args.max_motion is None else args.max_motion)


def _render_temporal(opts: RenderOptions, args: argparse.Namespace, show_progress: bool) -> dict:
    from nightgrade.server.render.temporal import render_temporal

    return render_temporal(opts, _temporal_config(args), show_progress=show_progress)


def _temporal_config(args: argparse.Namespace) -> TemporalRenderConfig:
    from nightgrade.server.render.temporal import TemporalRenderConfig

    return TemporalRenderConfig(window=_window(args), cache_mb=args.cache_mb, cache_dir=args.cache_dir)


def _cmd_info(args: argparse.Namespace) -> int:
    from nightgrade.models.checkpoint import read_meta
    from nightgrade.server.render.defaults import resolve_weights

    path = resolve_weights(args.weights)
    meta = read_meta(path)
    data = {"path": path, **meta.to_dict()}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key:>20}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nightgrade", description="NightGrade low-light enhancement")
    parser.add_argument("--version", action="version", version=f"nightgrade {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_enhance(sub)
    _add_info(sub)
    _add_colorspaces(sub)
    train_cli.add_parser(sub)
    commands.add_parsers(sub)
    serve_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NightGradeError as err:
        print(f"nightgrade: error: {err.naming(flag)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("nightgrade: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line, with a way to get the traceback
        if os.environ.get("NIGHTGRADE_DEBUG"):
            raise
        print(f"nightgrade: internal error: {type(err).__name__}: {err} "
              "(please report it; NIGHTGRADE_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
