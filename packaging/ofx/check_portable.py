"""Checks that an OFX plug-in binary loads on the hosts' Linux baseline: no symbol version newer
than glibc 2.28 (VFX Reference Platform CY2023-2025, RHEL/Rocky 8) or gcc 8's libstdc++, and no
NEEDED library outside the C runtime unless it sits in the bundle next to the binary, found through
an $ORIGIN run path. Reads the binary with binutils' objdump and readelf only.

    python3 check_portable.py BINARY     prints one line per problem; exit status 1 when any
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# The newest version of each versioned library a baseline host provides (gcc 8: GLIBCXX_3.4.25,
# CXXABI_1.3.11, GCC_8.0.0).
NEWEST = {"GLIBC": (2, 28), "GLIBCXX": (3, 4, 25), "CXXABI": (1, 3, 11), "GCC": (8, 0, 0)}
SYSTEM_LIBRARIES = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                    "ld-linux-x86-64.so.2"}
_VERSION = re.compile(r"\b(GLIBCXX|GLIBC|CXXABI|GCC)_([0-9][0-9.]*)\b")


def _run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def required_versions(binary: Path) -> set[str]:
    """Every symbol version (``GLIBC_2.17``, ...) the binary's undefined dynamic symbols ask for."""
    found = set()
    for line in _run("objdump", "-T", str(binary)).splitlines():
        if "*UND*" in line:
            found.update(f"{m[0]}_{m[1]}" for m in _VERSION.findall(line))
    return found


def dynamic_section(binary: Path) -> tuple[list[str], list[str]]:
    """(NEEDED libraries, RPATH/RUNPATH entries) from ``readelf -d``."""
    needed, paths = [], []
    for line in _run("readelf", "-d", str(binary)).splitlines():
        value = re.search(r"\[(.*)\]", line)
        if value is None:
            continue
        if "(NEEDED)" in line:
            needed.append(value.group(1))
        elif "(RPATH)" in line or "(RUNPATH)" in line:
            paths.extend(value.group(1).split(":"))
    return needed, paths


def _too_new(version: str) -> bool:
    family, _, number = version.partition("_")
    parts = tuple(int(p) for p in number.split(".") if p)
    return parts > NEWEST[family]


def problems(binary: Path) -> list[str]:
    """What keeps ``binary`` from loading on the baseline; empty when nothing does."""
    found = [f"{binary.name} needs {v}, newer than the baseline's" for v in sorted(required_versions(binary))
             if _too_new(v)]
    needed, paths = dynamic_section(binary)
    for library in needed:
        if library in SYSTEM_LIBRARIES:
            continue
        if not (binary.parent / library).is_file():
            found.append(f"{binary.name} needs {library}, which a host machine may lack and the bundle does not carry")
        elif "$ORIGIN" not in paths:
            found.append(f"{binary.name} needs the bundled {library} but has no $ORIGIN run path to find it")
        else:
            found.extend(problems(binary.parent / library))
    for path in paths:
        if not path.startswith("$ORIGIN"):
            found.append(f"{binary.name} has run path {path}, outside the bundle")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_portable.py BINARY", file=sys.stderr)
        return 2
    found = problems(Path(argv[0]))
    for problem in found:
        print(f"check-portable: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
