"""A seeded mutation fuzzer of the daemon's real protocol decoder (``protocol.decode`` and
``protocol.parse_request``, what the socket loop runs on every message).

The promise under test: whatever bytes arrive, the decoder either accepts a fully valid request
or raises ``ProtocolError`` whose ERROR reply encodes - never any other exception (which the
daemon would report as INTERNAL, a bug). Valid messages of every request type are the seeds;
each execution mutates one of them at the byte level (bit flips, interesting bytes, msgpack
length prefixes that promise gigabytes, insertions, deletions, truncation, splices) or at the
structure level (a field given another type, an extreme number, a huge or deeply nested value,
removed or added), and sometimes its pixel buffers (dropped, added, cut short).

The suite runs a short, fixed-seed run (``test_fault_fuzz.py``); the long run is a command:

    .venv/bin/python -m tests.faults.fuzz_protocol --seconds 600 [--seed N]
    .venv/bin/python -m tests.faults.fuzz_protocol --atheris -max_total_time=600   # coverage-guided

``--atheris`` needs ``pip install atheris``; findings are printed with a hex reproducer.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from nightgrade.server import protocol as P

LIMITS = P.Limits(max_width=256, max_height=256, max_pixels=256 * 256, max_have_digests=64)
_INTERESTING_BYTES = [0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC6, 0xCB, 0xCF, 0xD3, 0xD9, 0xDB, 0xDC,
                      0xDD, 0xDE, 0xDF, 0xE0, 0xFF]
# msgpack headers that announce far more data than follows (array32, map32, str32, bin32 of 2**32-1)
_HUGE_PREFIXES = [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"]


def _interesting_values(rng: random.Random) -> list[Any]:
    return [None, True, False, 0, -1, 1, 2**31, -2**31, 2**63 - 1, -2**63, 2**64 - 1, 0.0, -0.0, math.nan,
            math.inf, -math.inf, 1e308, "", "x" * rng.choice([1, 257, 5000]), "b2:" + "0" * 32, b"\x00" * 8, [],
            {}, [1, 2, 3, 4], {"nested": {"deeper": [None]}}, _deep(rng.randint(10, 200)), ["b2:" + "f" * 32] * 70,
            "tile", "RENDER", "interactive", [0, 0, 1 << 20, 1 << 20], {"": None}]


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def seeds() -> list[list[bytes]]:
    """One valid message of every request type, RENDER with neighbours, attachments and a window."""
    rng = np.random.default_rng(0)
    pixels = rng.random((8, 12, 3), dtype=np.float32)
    buffer, row_bytes = P.array_to_buffer(pixels, "float32")
    digest = P.digest_pixels(buffer, 12, 8, 3, "float32", row_bytes)
    other, _ = P.array_to_buffer(pixels[::-1].copy(), "float32")
    other_digest = P.digest_pixels(other, 12, 8, 3, "float32", row_bytes)
    picture = dict(width=12, height=8, scale=1.0, format="float32", channels=3)
    render = P.request(P.RENDER, "r1", clip="c", frame=10, row_bytes=row_bytes, digest=digest, window=[1, 1, 9, 7],
                       params={"mix": 0.5, "temporal": True, "radius": 2, "tile": 64, "region": 128},
                       neighbours=[{"frame": 9, "digest": other_digest}, {"frame": 11, "digest": digest}],
                       attached=[other_digest], priority="interactive", deadline_ms=5000, **picture)
    return [
        P.encode(P.request(P.HELLO, "h1", versions=[1], client="fuzz")),
        P.encode(P.request(P.PING, "p1")),
        P.encode(P.request(P.STATS, "s1")),
        P.encode(P.request(P.CANCEL, "c1", target="r1")),
        P.encode(P.request(P.HAVE, "v1", digests=[digest, other_digest], params={"temporal": True, "radius": 1},
                           **picture)),
        [bytes(frame) for frame in P.encode(render, [buffer, other])],
    ]


def check(frames: list[bytes]) -> str:
    """Run the socket loop's decoding on ``frames``: the outcome label, or raise on a finding."""
    try:
        message = P.decode(frames)
        request = P.parse_request(message, LIMITS)
        if isinstance(request, P.Render):
            request.check_digests()
    except P.ProtocolError as err:
        P.encode(err.reply())  # the ERROR reply itself must be sendable
        if err.code not in P.ERROR_CODES:
            raise AssertionError(f"unknown error code {err.code!r}") from None
        return f"refused {err.code}"
    return f"accepted {message.type}"


@dataclass
class Report:
    executions: int = 0
    seconds: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)


def mutate(rng: random.Random, frames: list[bytes]) -> list[bytes]:
    frames = list(frames)
    roll = rng.random()
    if roll < 0.45:
        frames[0] = _mutate_bytes(rng, frames[0])
    elif roll < 0.9:
        frames[0] = _mutate_structure(rng, frames[0])
    else:
        frames = _mutate_buffers(rng, frames)
    if rng.random() < 0.2:  # stacked mutations reach further
        frames = mutate(rng, frames)
    return frames


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind, at = rng.randrange(7), rng.randrange(len(raw) + 1)
        if kind == 0 and raw:
            raw[min(at, len(raw) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1 and raw:
            raw[min(at, len(raw) - 1)] = rng.choice(_INTERESTING_BYTES)
        elif kind == 2:
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 3:
            del raw[at:at + rng.randint(1, 8)]
        elif kind == 4:
            raw = raw[:at]
        elif kind == 5:
            raw[at:at] = rng.choice(_HUGE_PREFIXES)
        elif raw:
            start = rng.randrange(len(raw))
            raw[at:at] = raw[start:start + rng.randint(1, 16)]
    return bytes(raw)


def _mutate_structure(rng: random.Random, data: bytes) -> bytes:
    try:
        header = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # noqa: BLE001 - an earlier mutation broke it: keep mutating bytes
        return _mutate_bytes(rng, data)
    if not isinstance(header, dict):
        return _mutate_bytes(rng, data)
    target, key = _pick(rng, header)
    choice = rng.random()
    if choice < 0.7 and key is not None:
        target[key] = rng.choice(_interesting_values(rng))
    elif choice < 0.85 and key is not None:
        del target[key]
    elif isinstance(target, dict):
        target[rng.choice(["extra", "id", "v", "type", "params", "window", ""])] = rng.choice(_interesting_values(rng))
    return msgpack.packb(header, use_bin_type=True)


def _pick(rng: random.Random, header: dict) -> tuple[Any, Any]:
    """A random container in ``header`` and one of its keys (or indices)."""
    target: Any = header
    while True:
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        if not keys:
            return target, None
        key = rng.choice(keys)
        if isinstance(target[key], (dict, list)) and target[key] and rng.random() < 0.5:
            target = target[key]
            continue
        return target, key


def _mutate_buffers(rng: random.Random, frames: list[bytes]) -> list[bytes]:
    kind = rng.randrange(4)
    if kind == 0 and len(frames) > 1:
        del frames[rng.randrange(1, len(frames))]
    elif kind == 1:
        frames.append(bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 384, 4096]))))
    elif kind == 2 and len(frames) > 1:
        i = rng.randrange(1, len(frames))
        frames[i] = frames[i][: rng.randrange(len(frames[i]) + 1)]
    elif len(frames) > 1:
        i = rng.randrange(1, len(frames))
        frames[i] = _mutate_bytes(rng, frames[i])
    return frames


def fuzz(executions: int | None = None, seconds: float | None = None, seed: int = 0) -> Report:
    """Mutate seeds for ``executions`` messages or ``seconds``; findings never stop the run."""
    rng, corpus, report = random.Random(seed), seeds(), Report()
    started = time.perf_counter()
    while (executions is None or report.executions < executions) and \
            (seconds is None or time.perf_counter() - started < seconds):
        frames = mutate(rng, rng.choice(corpus))
        report.executions += 1
        try:
            report.outcomes[check(frames)] += 1
        except Exception as exc:  # noqa: BLE001 - a finding: record it and go on
            report.findings.append(f"{type(exc).__name__}: {exc} | frames: {[f.hex() for f in frames]}")
    report.seconds = time.perf_counter() - started
    return report


def _atheris(argv: list[str]) -> None:
    """Coverage-guided run: an input is one byte choosing a seed (for its pixel buffers) and the
    header bytes; the seeds' own headers start the corpus."""
    import tempfile

    import atheris

    atheris.instrument_all()
    corpus = seeds()
    folder = tempfile.mkdtemp(prefix="nightgrade-fuzz-")
    for i, frames in enumerate(corpus):
        with open(f"{folder}/seed{i}", "wb") as handle:
            handle.write(bytes([i]) + frames[0])

    def one_input(data: bytes) -> None:
        if data:
            check([data[1:], *corpus[data[0] % len(corpus)][1:]])

    atheris.Setup([*argv, folder], one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--atheris" in argv:
        _atheris([sys.argv[0], *[a for a in argv if a != "--atheris"]])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = fuzz(seconds=args.seconds, seed=args.seed)
    print(f"{report.executions} messages in {report.seconds:.0f} s ({report.executions / report.seconds:.0f}/s), "
          f"seed {args.seed}, {len(report.findings)} finding(s)")
    for outcome, count in report.outcomes.most_common():
        print(f"  {count:8d}  {outcome}")
    for finding in report.findings[:20]:
        print("FINDING", finding[:2000])
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
