#!/bin/sh
# Install the NightGrade daemon as a systemd user service for the current user.
#   packaging/systemd/install-user-service.sh [PATH_TO_NIGHTGRADE]
# PATH_TO_NIGHTGRADE defaults to the nightgrade on PATH, else this checkout's .venv/bin/nightgrade.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exe=${1:-$(command -v nightgrade || true)}
[ -n "$exe" ] || exe="$here/../../.venv/bin/nightgrade"
if [ ! -x "$exe" ]; then
    echo "install-user-service: no nightgrade executable at '$exe'; run 'make demo' first or pass its path" >&2
    exit 2
fi
exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
units=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
config=${XDG_CONFIG_HOME:-$HOME/.config}/nightgrade
docs=$HOME/.local/share/nightgrade  # the unit's Documentation= path
mkdir -p "$units" "$config" "$docs"
cp "$here/nightgrade.service" "$units/nightgrade.service"
cp "$here/README.md" "$docs/nightgrade-service.md"
if [ ! -f "$config/daemon.env" ]; then
    cat > "$config/daemon.env" <<ENV
# NightGrade daemon settings (read by nightgrade.service). Edit, then: systemctl --user restart nightgrade
NIGHTGRADE="$exe"
# e.g. --weights /path/model.safetensors --device cuda --cache-mb 8192
NIGHTGRADE_SERVE_ARGS="--bind tcp://127.0.0.1:5557"
ENV
fi
echo "installed $units/nightgrade.service (settings: $config/daemon.env)"
if command -v systemctl >/dev/null 2>&1; then
    systemctl --user daemon-reload || echo "systemctl --user is not available in this session; run it after logging in" >&2
fi
echo "start it with: systemctl --user enable --now nightgrade"
