#!/usr/bin/env bash
# Preparation step of the portable OFX bundle, the only one that needs the network: downloads the
# Debian 12 source packages of libzmq (zeromq3) and libsodium, Debian's security patches included,
# and unpacks them with dpkg-source (which checks them against the signed Sources index). After it,
# packaging/ofx/build-deps.sh and make-bundle.sh run offline.
#   packaging/ofx/fetch-sources.sh          sources land in $NIGHTGRADE_OFX_CACHE/sources
# The machine's apt configuration is left alone: a private deb-src list and state folder are used.
set -euo pipefail

CACHE=${NIGHTGRADE_OFX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nightgrade/ofx}
SOURCES=$CACHE/sources
PACKAGES=(zeromq3 libsodium)

have_all() {
    for package in "${PACKAGES[@]}"; do
        [ -f "$SOURCES/$package.unpacked" ] || return 1
    done
}
if have_all; then
    echo "fetch-sources: sources present in $SOURCES"
    exit 0
fi

APT=$CACHE/apt
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$SOURCES"
cat > "$APT/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
OPTIONS=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=$APT/none"
         -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT" -o "APT::Sandbox::User=root" -qq)
apt-get "${OPTIONS[@]}" update
cd "$SOURCES"
for package in "${PACKAGES[@]}"; do
    rm -rf "${SOURCES:?}/$package" "$SOURCES/$package"_*
    apt-get "${OPTIONS[@]}" source --download-only "$package"
    dsc=$(ls -t "$package"_*.dsc | head -n 1)
    # apt-get checked the files against the signed Sources index; dpkg-source rechecks checksums and
    # only warns that the maintainer's key (not on this machine) cannot verify the .dsc signature.
    if ! dpkg-source -x "$dsc" "$package" >"$package.unpack.log" 2>&1; then
        cat "$package.unpack.log" >&2
        exit 1
    fi
    echo "${dsc%.dsc}" > "$package.unpacked"   # the version, part of build-deps.sh's cache key
    echo "fetch-sources: $SOURCES/$package (${dsc%.dsc})"
done
