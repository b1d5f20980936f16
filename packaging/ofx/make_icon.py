"""Draws the NightGrade node icon (a crescent moon over a night-blue square, brightened towards
the lit side) and writes it as a PNG with the standard library only, so bundling needs no image
package. Usage: python3 make_icon.py OUTPUT.png [SIZE]"""
from __future__ import annotations

import math
import struct
import sys
import zlib


def pixel(x: float, y: float) -> tuple[int, int, int, int]:
    """RGBA of the icon at (x, y) in [0, 1]^2, y down."""
    sky = (14 + int(30 * y), 20 + int(34 * y), 48 + int(60 * y), 255)
    moon = math.hypot(x - 0.5, y - 0.5) < 0.34
    bite = math.hypot(x - 0.63, y - 0.40) < 0.29
    if moon and not bite:
        glow = 0.75 + 0.25 * (1.0 - x)
        return int(255 * glow), int(214 * glow), int(120 * glow), 255
    return sky


def png(size: int) -> bytes:
    # Four samples per pixel smooth the crescent's edge.
    rows = bytearray()
    for j in range(size):
        rows.append(0)  # filter type: none
        for i in range(size):
            samples = [pixel((i + dx) / size, (j + dy) / size) for dx in (0.25, 0.75) for dy in (0.25, 0.75)]
            rows.extend(sum(s[c] for s in samples) // 4 for c in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + \
        chunk(b"IEND", b"")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.splitlines()[-1].strip(), file=sys.stderr)
        return 2
    size = int(argv[2]) if len(argv) == 3 else 128
    with open(argv[1], "wb") as out:
        out.write(png(size))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
