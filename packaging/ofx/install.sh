#!/usr/bin/env bash
# Installs (or, with --uninstall, removes) the NightGrade OpenFX bundle where Linux hosts look:
# the first folder of $OFX_PLUGIN_PATH when it is set, else /usr/OFX/Plugins (needs root).
#   packaging/ofx/install.sh [BUNDLE]        default BUNDLE: build/ofx/NightGrade.ofx.bundle
#   packaging/ofx/install.sh --uninstall
# Restart the host (Resolve, Nuke, Natron, ...) afterwards: hosts scan plug-ins at start-up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST=${OFX_PLUGIN_PATH:-}
DEST=${DEST%%:*}
DEST=${DEST:-/usr/OFX/Plugins}
NAME=NightGrade.ofx.bundle

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "${DEST:?}/$NAME"
    echo "install: removed $DEST/$NAME"
    exit 0
fi

BUNDLE=${1:-$ROOT/build/ofx/$NAME}
BINARY=$BUNDLE/Contents/Linux-x86-64/NightGrade.ofx
if [ ! -f "$BINARY" ]; then
    echo "install: $BINARY not found: build the bundle first (make bundle)" >&2
    exit 1
fi
missing=$(ldd "$BINARY" | awk '/not found/ {print $1}' | tr '\n' ' ')
if [ -n "$missing" ]; then
    echo "install: NightGrade.ofx needs libraries this machine lacks: $missing(Debian/Ubuntu: apt-get install libzmq5 libsodium23)" >&2
    exit 1
fi
if ! mkdir -p "$DEST" 2>/dev/null || [ ! -w "$DEST" ]; then
    echo "install: cannot write to $DEST: run with sudo, or set OFX_PLUGIN_PATH to a folder you own" >&2
    exit 1
fi
# Copy next to the target, then swap, so a host starting meanwhile never sees half a bundle.
staging=$(mktemp -d "$DEST/.$NAME.XXXXXX")
cp -R "$BUNDLE" "$staging/$NAME"
rm -rf "${DEST:?}/$NAME"
mv "$staging/$NAME" "$DEST/$NAME"
rmdir "$staging"
echo "install: $DEST/$NAME (restart your OpenFX host to load it)"
