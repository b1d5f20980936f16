#!/usr/bin/env bash
# Builds NightGrade.ofx (Release) and assembles the OpenFX bundle with its icon:
#   build/ofx/NightGrade.ofx.bundle/Contents/Linux-x86-64/NightGrade.ofx
#   build/ofx/NightGrade.ofx.bundle/Contents/Resources/com.nightgrade.NightGrade.png
# Build packages: scripts/install-build-deps.sh (Debian 12). BUILD_DIR overrides build/ofx.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build/ofx}
BUNDLE=$BUILD/NightGrade.ofx.bundle
BINARY=$BUNDLE/Contents/Linux-x86-64/NightGrade.ofx

cmake -S "$ROOT/ofx_bridge" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNIGHTGRADE_OFX_SANITIZE=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target NightGrade

mkdir -p "$BUNDLE/Contents/Resources"
python3 "$ROOT/packaging/ofx/make_icon.py" "$BUNDLE/Contents/Resources/com.nightgrade.NightGrade.png"

# A host only needs the two OpenFX entry points; anything else exported could clash with the host.
exports=$(nm -D --defined-only "$BINARY" | awk '{print $NF}' | sort | tr '\n' ' ')
if [ "$exports" != "OfxGetNumberOfPlugins OfxGetPlugin " ]; then
    echo "make-bundle: $BINARY exports '$exports', expected only OfxGetNumberOfPlugins OfxGetPlugin" >&2
    exit 1
fi
echo "make-bundle: $BUNDLE"
