#!/usr/bin/env bash
# Install the Debian 12 (bookworm) packages that the OFX bridge (ofx_bridge/), its test host and
# its portable bundle need, and nothing else. Idempotent: apt is only touched when a package is missing, so `make test`
# can call it on every run. Needs root (or sudo) only when something is missing.
set -euo pipefail

# libmsgpack-cxx-dev is the C++ msgpack (msgpack-cxx 4.x; bookworm's libmsgpack-dev is the C library
# and conflicts with it); libsodium-dev gives BLAKE2b for the protocol's digests.
# The portable bundle (packaging/ofx/make-bundle.sh) builds libsodium and libzmq from Debian's
# source packages: dpkg-dev unpacks them, autoconf/automake/libtool generate libsodium's configure.
PACKAGES=(g++ cmake make pkg-config libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libsodium-dev
          dpkg-dev autoconf automake libtool)

missing=()
for package in "${PACKAGES[@]}"; do
    # dpkg -s also lists removed-but-configured packages; require the "install ok installed" state.
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-build-deps: all build packages present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install-build-deps: missing ${missing[*]}; run this script as root (apt-get install needs it)" >&2
    exit 1
fi

echo "install-build-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
