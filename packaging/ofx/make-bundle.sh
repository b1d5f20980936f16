#!/usr/bin/env bash
# Builds the portable NightGrade.ofx (Release) and assembles the OpenFX bundle with its icon:
#   build/ofx-portable/NightGrade.ofx.bundle/Contents/Linux-x86-64/NightGrade.ofx
#   build/ofx-portable/NightGrade.ofx.bundle/Contents/Resources/com.nightgrade.NightGrade.png
# Portable: zig c++ targets glibc 2.28 and links its libc++ statically; libzmq and libsodium are
# linked statically (packaging/ofx/build-deps.sh). The bundle needs only libc, libm, libpthread,
# libdl and ld-linux, which check_portable.py verifies before this script says it is done.
# Needs: scripts/install-build-deps.sh (Debian packages), a .venv (make setup; the ziglang wheel is
# installed there when missing), and once, with the network, packaging/ofx/fetch-sources.sh (this
# script runs it when the sources are missing). BUILD_DIR overrides build/ofx-portable.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/packaging/ofx
BUILD=${BUILD_DIR:-$ROOT/build/ofx-portable}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
ZIG_VERSION=0.17.1
BUNDLE=$BUILD/NightGrade.ofx.bundle
BINARY=$BUNDLE/Contents/Linux-x86-64/NightGrade.ofx

if [ ! -x "$PYTHON" ]; then
    echo "make-bundle: $PYTHON not found: run make setup first" >&2
    exit 1
fi
if ! "$PYTHON" -c "import ziglang" 2>/dev/null; then
    "$PYTHON" -m pip install -q "ziglang==$ZIG_VERSION"
fi
ZIG=$("$PYTHON" -c "import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))")

"$HERE/fetch-sources.sh" >&2
PREFIX=$("$HERE/build-deps.sh" "$ZIG" | tail -n 1)

# A changed dependency prefix (new zig, new sources) needs a fresh configure, not a cached one.
if [ ! -f "$BUILD/CMakeCache.txt" ] || ! grep -q "NIGHTGRADE_OFX_DEPS_PREFIX:PATH=$PREFIX\$" "$BUILD/CMakeCache.txt"; then
    rm -rf "$BUILD"
fi
"$HERE/zig-toolchain.sh" "$ZIG" "$BUILD/toolchain"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT/ofx_bridge" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNIGHTGRADE_OFX_SANITIZE=OFF \
        -DNIGHTGRADE_OFX_TEST_HOST=OFF -DCMAKE_CXX_COMPILER="$BUILD/toolchain/c++" \
        -DNIGHTGRADE_OFX_DEPS_PREFIX="$PREFIX" >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target NightGrade
strip --strip-unneeded "$BINARY"  # symbols for debugging stay in the build folder's objects

mkdir -p "$BUNDLE/Contents/Resources"
python3 "$HERE/make_icon.py" "$BUNDLE/Contents/Resources/com.nightgrade.NightGrade.png"

# A host only needs the two OpenFX entry points; anything else exported could clash with the host.
exports=$(nm -D --defined-only "$BINARY" | awk '{print $NF}' | sort | tr '\n' ' ')
if [ "$exports" != "OfxGetNumberOfPlugins OfxGetPlugin " ]; then
    echo "make-bundle: $BINARY exports '$exports', expected only OfxGetNumberOfPlugins OfxGetPlugin" >&2
    exit 1
fi
python3 "$HERE/check_portable.py" "$BINARY"
echo "make-bundle: $BUNDLE"
