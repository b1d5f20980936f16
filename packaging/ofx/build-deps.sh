#!/usr/bin/env bash
# Builds static libsodium and libzmq (Curve on libsodium) for the OFX hosts' Linux baseline, glibc
# 2.28, with zig cc / zig c++ (zig-toolchain.sh), and installs them with the header-only cppzmq and
# msgpack-cxx under one prefix for ofx_bridge's portable build. Offline; sources from
# packaging/ofx/fetch-sources.sh. Prints the prefix on its last line.
#   packaging/ofx/build-deps.sh ZIG
# The prefix is cached under $NIGHTGRADE_OFX_CACHE, keyed by the source versions, the zig version and
# the build scripts, not by where zig lives, so every checkout on a machine shares it: a rerun is
# instant; a cold build takes about 4 minutes on 2 cores (5 with zig's own cache cold too).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ZIG=$1
CACHE=${NIGHTGRADE_OFX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nightgrade/ofx}
SOURCES=$CACHE/sources
JOBS=${JOBS:-$(nproc)}

key=$( { cat "$SOURCES/zeromq3.unpacked" "$SOURCES/libsodium.unpacked"; "$ZIG" version;
         cat "${BASH_SOURCE[0]}" "$HERE/zig-toolchain.sh"; } | sha256sum | cut -c1-16)
PREFIX=$CACHE/deps-$key
if [ -f "$PREFIX/.complete" ]; then
    echo "$PREFIX"
    exit 0
fi

WORK=$CACHE/work-$key
rm -rf "$PREFIX" "$WORK"
mkdir -p "$PREFIX/include" "$PREFIX/lib"
"$HERE/zig-toolchain.sh" "$ZIG" "$WORK/bin"
log=$WORK/build.log
fail() { tail -n 40 "$log" >&2; echo "build-deps: $1 failed (log: $log)" >&2; exit 1; }

# libsodium: Debian's source has no generated configure; autoreconf (not autogen.sh, which would
# download config.guess) makes it from the autotools packages.
echo "build-deps: libsodium ($(cat "$SOURCES/libsodium.unpacked")) for glibc 2.28" >&2
cp -R "$SOURCES/libsodium" "$WORK/libsodium"
( cd "$WORK/libsodium" && autoreconf -fi && \
  ./configure --prefix="$PREFIX" --disable-shared --enable-static --with-pic --disable-dependency-tracking \
      CC="$WORK/bin/cc" AR=ar RANLIB=ranlib && \
  make -j"$JOBS" install ) >"$log" 2>&1 || fail libsodium

echo "build-deps: libzmq ($(cat "$SOURCES/zeromq3.unpacked")) for glibc 2.28" >&2
cmake -S "$SOURCES/zeromq3" -B "$WORK/zmq" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$WORK/bin/cc" -DCMAKE_CXX_COMPILER="$WORK/bin/c++" \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DBUILD_SHARED=OFF -DBUILD_STATIC=ON -DBUILD_TESTS=OFF -DWITH_DOCS=OFF -DWITH_PERF_TOOL=OFF \
    -DENABLE_CURVE=ON -DWITH_LIBSODIUM=ON -DENABLE_DRAFTS=OFF -DENABLE_WS=OFF -DWITH_TLS=OFF -DWITH_NSS=OFF \
    -DWITH_LIBBSD=OFF >>"$log" 2>&1 || fail "libzmq configure"
grep -q "Using libsodium for CURVE security" "$log" || fail "libzmq finding the static libsodium"
cmake --build "$WORK/zmq" -j"$JOBS" --target libzmq-static >>"$log" 2>&1 || fail libzmq
cp "$WORK/zmq/lib/libzmq.a" "$PREFIX/lib/"
cp "$SOURCES/zeromq3/include/zmq.h" "$SOURCES/zeromq3/include/zmq_utils.h" "$PREFIX/include/"

# Header-only C++ bindings from Debian's packages (scripts/install-build-deps.sh installs them).
cp /usr/include/zmq.hpp /usr/include/zmq_addon.hpp /usr/include/msgpack.hpp "$PREFIX/include/"
cp -R /usr/include/msgpack "$PREFIX/include/"

rm -rf "$WORK"
touch "$PREFIX/.complete"
echo "$PREFIX"
