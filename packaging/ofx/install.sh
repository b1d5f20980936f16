#!/usr/bin/env bash
# Installs (or, with --uninstall, removes) the NightGrade OpenFX bundle where Linux hosts look
# (docs/ofx-hosts.md):
#   1. the first folder of $OFX_PLUGIN_PATH when it is set (Nuke and Natron read it);
#   2. with --user, or when not root: ${XDG_DATA_HOME:-~/.local/share}/OFX/Plugins, a per-user folder
#      no host reads by itself: the script says which OFX_PLUGIN_PATH line to add to your profile;
#   3. else /usr/OFX/Plugins, the OpenFX standard path and the only one DaVinci Resolve reads.
#   packaging/ofx/install.sh [--user] [BUNDLE]    default BUNDLE: build/ofx-portable/NightGrade.ofx.bundle
#   packaging/ofx/install.sh [--user] --uninstall
# Restart the host (Resolve, Nuke, Natron, ...) afterwards: hosts scan plug-ins at start-up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NAME=NightGrade.ofx.bundle
USER_DIR=${XDG_DATA_HOME:-$HOME/.local/share}/OFX/Plugins
user=0
uninstall=0
BUNDLE=$ROOT/build/ofx-portable/$NAME
for arg in "$@"; do
    case "$arg" in
        --user) user=1 ;;
        --uninstall) uninstall=1 ;;
        -*) echo "install: unknown option $arg (use --user, --uninstall or a bundle path)" >&2; exit 2 ;;
        *) BUNDLE=$arg ;;
    esac
done

DEST=${OFX_PLUGIN_PATH:-}
DEST=${DEST%%:*}
if [ -z "$DEST" ]; then
    if [ "$user" -eq 1 ] || [ "$(id -u)" -ne 0 ]; then DEST=$USER_DIR; else DEST=/usr/OFX/Plugins; fi
fi

if [ "$uninstall" -eq 1 ]; then
    rm -rf "${DEST:?}/$NAME"
    echo "install: removed $DEST/$NAME"
    exit 0
fi

BINARY=$BUNDLE/Contents/Linux-x86-64/NightGrade.ofx
if [ ! -f "$BINARY" ]; then
    echo "install: $BINARY not found: build the bundle first (make bundle)" >&2
    exit 1
fi
missing=$(ldd "$BINARY" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
if [ -n "$missing" ]; then
    echo "install: NightGrade.ofx needs libraries this machine lacks: $missing(install the portable bundle of make bundle)" >&2
    exit 1
fi
if ! mkdir -p "$DEST" 2>/dev/null || [ ! -w "$DEST" ]; then
    echo "install: cannot write to $DEST: run with sudo, use --user, or set OFX_PLUGIN_PATH to a folder you own" >&2
    exit 1
fi
# Copy next to the target, then swap, so a host starting meanwhile never sees half a bundle.
staging=$(mktemp -d "$DEST/.$NAME.XXXXXX")
trap 'rm -rf "$staging"' EXIT
cp -R "$BUNDLE" "$staging/$NAME"
rm -rf "${DEST:?}/$NAME"
mv "$staging/$NAME" "$DEST/$NAME"
echo "install: $DEST/$NAME (restart your OpenFX host to load it)"
case ":${OFX_PLUGIN_PATH:-}:" in
    *":$DEST:"*) ;;
    *) if [ "$DEST" != /usr/OFX/Plugins ]; then
           echo "install: hosts find it once OFX_PLUGIN_PATH names that folder: add  export OFX_PLUGIN_PATH=\"$DEST\${OFX_PLUGIN_PATH:+:\$OFX_PLUGIN_PATH}\"  to ~/.profile (Resolve reads only /usr/OFX/Plugins)"
       fi ;;
esac
