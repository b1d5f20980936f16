"""`nightgrade serve`, `nightgrade status`, `nightgrade keygen` and the daemon flags of `enhance`."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.server.protocol import DEFAULT_ENDPOINT


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the render daemon (ZeroMQ; docs/protocol.md)",
                       description="Keep models and the frame cache warm and render for OFX hosts, "
                                   "`enhance --server` and farm workers.")
    p.add_argument("--bind", default=DEFAULT_ENDPOINT, help=f"endpoint to listen on (default {DEFAULT_ENDPOINT}); "
                   "anything but loopback or ipc:// needs Curve keys")
    p.add_argument("--weights", "-w", nargs="+", default=[],
                   help="checkpoints to serve (default: the shipped model); the first is the default model")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--batch", type=int, help="tiles per generator batch (default: from memory budget)")
    p.add_argument("--backend", default="auto",
                   help="what runs the generator: auto (default: the fastest installed for the device), torch, "
                        "compile, onnxruntime or openvino (CPU); an unavailable one falls back to torch with a warning")
    p.add_argument("--cache-mb", type=int, default=4096, help="memory for enhanced frames in MB (default 4096)")
    p.add_argument("--cache-dir", help="disk tier for enhanced frames (EXR), shared with farm renders")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting before BUSY answers (default 64)")
    p.add_argument("--max-jobs", type=int, help="requests whose tiles share generator batches (default: 8 on CUDA, "
                                                "1 on a CPU, where bigger batches measured slower)")
    p.add_argument("--ocio-config", help="OCIO config (default: $OCIO, else ocio://studio-config-latest)")
    p.add_argument("--curve-secret-key", type=Path, help="the daemon's Curve key pair (.key_secret from keygen)")
    p.add_argument("--curve-authorized-keys", type=Path, help="folder of clients' public .key files allowed in")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback bind WITHOUT authentication or encryption (trusted networks only)")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="override a request limit of docs/protocol.md (repeatable), e.g. max_tile=2048 or "
                        "max_clients=16")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("status", help="print a running daemon's queue, counters, cache and device memory")
    # the daemon answers STATS at once even while it renders: a short wait is enough
    add_client_arguments(p, DEFAULT_ENDPOINT, default_timeout=3.0)
    p.add_argument("--json", action="store_true", help="print the STATS reply as JSON")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("keygen", help="write a CurveZMQ key pair (NAME.key public, NAME.key_secret private)")
    p.add_argument("folder", type=Path, help="folder to write the pair into (created if missing)")
    p.add_argument("--name", default="nightgrade", help="file name stem (default nightgrade)")
    p.set_defaults(func=_cmd_keygen)


def add_client_arguments(p: argparse.ArgumentParser, default_server: str | None = None,
                         default_timeout: float = 10.0) -> None:
    """Daemon connection flags shared by `status` and `enhance --server`."""
    g = p.add_argument_group("render daemon")
    g.add_argument("--server", default=default_server,
                   help=f"daemon endpoint, e.g. {DEFAULT_ENDPOINT}" + (" (default)" if default_server else ""))
    g.add_argument("--timeout", type=_seconds, default=default_timeout,
                   help=f"seconds to wait for any reply before retrying (default {default_timeout:g}; a rendering "
                        "daemon answers pings, so long frames are fine)")
    g.add_argument("--retries", type=int, default=2, help="resends after a silent timeout (default 2)")
    g.add_argument("--curve-server-key", type=Path, help="the daemon's public key (.key) for Curve")
    g.add_argument("--curve-client-key", type=Path, help="this client's key pair (.key_secret) for Curve")


def notice(text: str) -> None:
    """A client's progress note (a silent try, a retry) as one stderr line: never 30 s of silence."""
    print(f"nightgrade: {text}", file=sys.stderr, flush=True)


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds above 0 (``inf`` once overflowed the poll timeout)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 86400]")
    return value


def curve_client(args: argparse.Namespace):
    from nightgrade.server.protocol.curve import CurveClientConfig

    given = (args.curve_server_key is not None, args.curve_client_key is not None)
    if given == (False, False):
        return None
    if given != (True, True):
        raise UsageError("Curve needs both --curve-server-key (the daemon's .key) and --curve-client-key "
                         "(your .key_secret)")
    return CurveClientConfig(args.curve_server_key, args.curve_client_key)


def _cmd_serve(args: argparse.Namespace) -> int:
    from nightgrade.server.protocol.curve import CurveServerConfig
    from nightgrade.server.daemon.server import Daemon, DaemonConfig

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s level=%(levelname)s %(message)s")
    given = (args.curve_secret_key is not None, args.curve_authorized_keys is not None)
    if given not in ((False, False), (True, True)):
        raise UsageError("Curve needs both --curve-secret-key and --curve-authorized-keys")
    curve = CurveServerConfig(args.curve_secret_key, args.curve_authorized_keys) if given[0] else None
    _raise_fd_limit()
    daemon = Daemon(DaemonConfig(bind=args.bind, weights=tuple(args.weights), device=args.device, batch=args.batch,
                                 backend=args.backend,
                                 cache_mb=args.cache_mb, cache_dir=args.cache_dir, max_queue=args.max_queue,
                                 max_jobs=args.max_jobs, limits=_limits(args.limit),
                                 ocio_config=args.ocio_config, curve=curve, insecure=args.insecure))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    try:
        daemon.serve()
    finally:
        daemon.close()
    return 0


def _limits(overrides: list[str]):
    from nightgrade.server.protocol import Limits

    known, values = set(Limits.__dataclass_fields__) - {"max_queue"}, {}  # that one is --max-queue
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in known or not value.strip().isdigit():
            raise UsageError(f"--limit {item!r}: write NAME=INTEGER with NAME one of {', '.join(sorted(known))}")
        values[name] = int(value)
    return Limits(**values)


def _raise_fd_limit() -> None:
    """Every connection costs the daemon a file descriptor: take all the hard limit allows (the
    systemd unit raises that with LimitNOFILE), so that a crowd of clients does not lock others out."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 16)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cmd_status(args: argparse.Namespace) -> int:
    from nightgrade.server.client import Client

    with Client(args.server, timeout_s=args.timeout, retries=args.retries, curve=curve_client(args),
                fail_fast=True, notice=notice) as client:
        stats = client.stats()
    if args.json:
        print(json.dumps({k: v for k, v in stats.items() if k not in ("v", "type", "id")}, indent=2))
        return 0
    cache, memory = stats.get("cache", {}), stats.get("device_memory", {})
    print(f"daemon {args.server}: up {stats['uptime_s']:.0f} s on {stats['device']}, models {', '.join(stats['models'])}\n"
          f"  queue {stats['queue']}/{stats['max_queue']}, in flight {stats['in_flight']}\n"
          f"  served {stats['served']}, errors {stats['errors']}, busy refusals {stats['busy_refusals']}, "
          f"cancelled {stats['cancelled']}, expired {stats['expired']}\n"
          f"  generator passes {stats['generator_passes']}, tiles {stats['tiles']}, cross-request batches "
          f"{stats['cross_request_batches']}\n"
          f"  cache hit rate {cache.get('hit_rate', 0):.1%}, {cache.get('entries', 0)} frames, "
          f"{cache.get('bytes', 0) / 2**20:.0f}/{cache.get('budget_bytes', 0) / 2**20:.0f} MB\n"
          f"  device memory {memory.get('allocated_bytes', 0) / 2**20:.0f} MB allocated, "
          f"{memory.get('reserved_bytes', 0) / 2**20:.0f} MB reserved")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from nightgrade.server.protocol.curve import generate_keypair

    public, secret = generate_keypair(args.folder, args.name)
    print(f"public key (give to the other side): {public}\nsecret key (keep private):          {secret}")
    return 0
