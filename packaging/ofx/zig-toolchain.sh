#!/usr/bin/env bash
# Writes DIR/cc and DIR/c++: zig cc / zig c++ aimed at the OFX hosts' baseline, glibc 2.28 (VFX
# Reference Platform CY2023-2025, RHEL/Rocky 8). CMake and configure want one executable per compiler.
#   packaging/ofx/zig-toolchain.sh ZIG DIR
set -euo pipefail
ZIG=$1
DIR=$2
TARGET=x86_64-linux-gnu.2.28
mkdir -p "$DIR"
printf '#!/bin/sh\nexec "%s" cc -target %s "$@"\n' "$ZIG" "$TARGET" > "$DIR/cc"
printf '#!/bin/sh\nexec "%s" c++ -target %s "$@"\n' "$ZIG" "$TARGET" > "$DIR/c++"
chmod +x "$DIR/cc" "$DIR/c++"
