#!/usr/bin/env bash
# Builds one Asterisk release from its source tarball into a cached root of its
# own (idempotent, keyed by version), for the version matrix:
#
#   scripts/asterisk-source.sh 20.6.0
#
#   ASTERISK_SOURCES        directory holding asterisk-<version>.tar.xz (or .tar.gz)
#   STASIS_BROADCAST_CACHE  cache directory (default ${XDG_CACHE_HOME:-~/.cache}/res_stasis_broadcast_rs)
#   DEBIAN_MIRROR           archive address; default: read from this host's apt sources
#
# Layout, all under the cache directory:
#   bookworm-build/     Debian bookworm (gcc 12) with Asterisk's build dependencies
#   pjproject/          pjproject source (res_pjsip, which res_prometheus requires):
#                       the component Debian ships with its asterisk source package,
#                       since the bundled build would download it
#   asterisk-<version>/ a copy of bookworm-build with that Asterisk installed from
#                       source (`make install`, `make install-headers`): the
#                       source layout, modules in /usr/lib/asterisk/modules;
#                       asterisk-include/ in it holds only Asterisk's headers,
#                       for ASTERISK_INCLUDE_DIR; etc/asterisk holds the
#                       release's sample configuration, as `make samples`
#                       leaves it (the stock configuration a new user starts from)
#
# Only the modules the tests load are built, plus res_prometheus and res_crypto.
set -euo pipefail

version=${1:?usage: $0 VERSION}
here=$(cd "$(dirname "$0")" && pwd)
cache=${STASIS_BROADCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/res_stasis_broadcast_rs}
base="$cache/bookworm-build"
pjsrc="$cache/pjproject"
root="$cache/asterisk-$version"
stamp="$root/.asterisk-ready"
log() { echo "asterisk-source $version: $*"; }

find_tarball() {
    local sources=${ASTERISK_SOURCES:?set ASTERISK_SOURCES to the directory holding asterisk-$version.tar.xz}
    tarball=""
    for ext in tar.xz tar.gz tar.bz2; do
        [ -f "$sources/asterisk-$version.$ext" ] && tarball="$sources/asterisk-$version.$ext" && break
    done
    [ -n "$tarball" ] || { echo "asterisk-source: no asterisk-$version.tar.{xz,gz,bz2} in $sources" >&2; exit 1; }
}

# A root made before func_talkdetect was in the module list (below) lacks
# what tests/feature.rs uses to hear a call's audio: it is built again.
if [ -f "$stamp" ] && [ ! -f "$root/usr/lib/asterisk/modules/func_talkdetect.so" ]; then
    log "$root predates func_talkdetect.so: building it again"
elif [ -f "$stamp" ] && [ -x "$root/usr/sbin/asterisk" ]; then
    # Roots made before the sample configuration was part of them get it here.
    if [ ! -f "$root/etc/asterisk/modules.conf" ]; then
        find_tarball
        samples=$(mktemp -d)
        tar -xf "$tarball" -C "$samples" "asterisk-$version/configs/samples"
        mkdir -p "$root/etc/asterisk"
        for f in "$samples/asterisk-$version/configs/samples/"*.sample; do
            n=$(basename "$f"); cp "$f" "$root/etc/asterisk/${n%.sample}"
        done
        rm -rf "$samples"
        log "sample configuration installed in $root/etc/asterisk"
    fi
    log "ready at $root"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "asterisk-source: building an Asterisk root needs root (debootstrap, chroot)" >&2
    exit 1
fi
find_tarball

. "$here/archive.sh"

# 1. The build root, once for every version.
build_deps="build-essential pkg-config libedit-dev libjansson-dev libxml2-dev libsqlite3-dev
    uuid-dev libssl-dev xz-utils bzip2 patch file ca-certificates wget"
# (configure insists on a download tool even when pjproject needs no download.)
if [ "$(cat "$base/.build-ready" 2>/dev/null)" != "$(echo $build_deps)" ]; then
    debootstrap_root bookworm "$base"
    log "installing the build dependencies in $base"
    chroot "$base" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    chroot "$base" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $build_deps >/dev/null
    chroot "$base" apt-get clean
    echo $build_deps >"$base/.build-ready"
fi

# 2. pjproject's source, from Debian's asterisk source package (fetched in the
# sid runtime root, whose apt knows the archive).
if [ ! -f "$pjsrc/.ready" ]; then
    sid=${STASIS_BROADCAST_ROOT:-$cache/sid-root}
    STASIS_BROADCAST_ROOT=$sid "$here/runtime.sh"
    log "fetching pjproject (Debian's asterisk source component)"
    work="$sid/tmp/sb-pjproject"
    rm -rf "$work" && mkdir -p "$work"
    awk '$1=="deb" {$1="deb-src"; print}' "$sid/etc/apt/sources.list" >"$sid/etc/apt/sources.list.d/sb-deb-src.list"
    trap 'rm -f "$sid/etc/apt/sources.list.d/sb-deb-src.list"' EXIT
    chroot "$sid" apt-get -o Acquire::Check-Valid-Until=false update -qq
    chroot "$sid" sh -c 'cd /tmp/sb-pjproject && apt-get -o Acquire::Check-Valid-Until=false -qq source --download-only asterisk' >/dev/null 2>&1
    rm -f "$sid/etc/apt/sources.list.d/sb-deb-src.list"
    trap - EXIT
    component=$(ls "$work"/*orig-Xpjproject.tar.* | head -n1)
    rm -rf "$pjsrc" && mkdir -p "$pjsrc"
    tar -xf "$component" -C "$pjsrc" --strip-components=1
    # Debian's copy is DFSG-clean: bdimad_dev.c and the bundled libsrtp are gone.
    # Asterisk uses neither (libsrtp is disabled at configure time below).
    sed -i 's/ bdimad_dev\.o//' "$pjsrc/pjmedia/build/Makefile"
    rm -rf "$work"
    touch "$pjsrc/.ready"
fi

# 3. This version: a copy of the build root, the source unpacked in it, built
# and installed there.
log "building from $(basename "$tarball") into $root"
started=$(date +%s)
rm -rf "$root.partial"
cp -a "$base" "$root.partial"
src="/usr/src/asterisk-$version"
mkdir -p "$root.partial$src"
tar -xf "$tarball" -C "$root.partial$src" --strip-components=1
# pjproject is built out of tree from a copy: the build writes into it.
cp -a "$pjsrc" "$root.partial/usr/src/pjproject"
ln -s /usr/src/pjproject "$root.partial$src/third-party/pjproject/source"

modules="pbx_config func_global func_strings func_talkdetect app_playtones app_stasis
    res_http_websocket res_websocket_client res_sorcery_config res_sorcery_memory res_sorcery_astdb
    res_stasis res_stasis_answer res_stasis_playback res_stasis_recording res_stasis_snoop
    res_stasis_device_state
    res_ari res_ari_model res_ari_applications res_ari_asterisk res_ari_channels res_ari_events
    res_ari_bridges res_ari_playbacks res_ari_endpoints res_ari_recordings res_ari_sounds res_ari_device_states
    res_timing_timerfd res_crypto res_prometheus
    res_pjproject res_pjsip res_pjsip_outbound_registration"

cat >"$root.partial/usr/src/build-asterisk.sh" <<SCRIPT
set -eu
cd $src
./configure --prefix=/usr --libdir=/usr/lib --sysconfdir=/etc --localstatedir=/var \
    --with-pjproject-bundled --without-x11 PJPROJECT_CONFIGURE_OPTS=--disable-libsrtp >/usr/src/configure.log 2>&1 || { tail -40 /usr/src/configure.log; exit 1; }
make -s menuselect.makeopts >/dev/null
# Every module category off (sounds too: they would be downloaded); the
# compiler flags keep their stock defaults (OPTIONAL_API among them).
for c in ADDONS AGIS APPS BRIDGES CDR CEL CHANNELS CODECS FORMATS FUNCS PBX RES TESTS UTILS \
         CORE_SOUNDS MOH EXTRA_SOUNDS; do
    menuselect/menuselect --disable-category MENUSELECT_\$c menuselect.makeopts >/dev/null 2>&1 || true
done
for m in $(echo $modules); do
    # A module this version does not have (res_websocket_client before 22.?) is left out.
    menuselect/menuselect --enable \$m menuselect.makeopts >/dev/null 2>&1 || echo "not in this version: \$m"
done
make -j$(nproc) >/usr/src/make.log 2>&1 || { grep -B5 -A5 -m5 'error' /usr/src/make.log; tail -40 /usr/src/make.log; exit 1; }
make install >/usr/src/install.log 2>&1 || { tail -40 /usr/src/install.log; exit 1; }
make install-headers >>/usr/src/install.log 2>&1
make samples >>/usr/src/install.log 2>&1
grep -q OPTIONAL_API /usr/include/asterisk/buildopts.h || { echo "OPTIONAL_API missing from the build options"; exit 1; }
SCRIPT
if ! chroot "$root.partial" bash /usr/src/build-asterisk.sh; then
    echo "asterisk-source: build of $version failed; logs in $root.partial/usr/src/*.log" >&2
    exit 1
fi

# Only Asterisk's headers, apart from the root's C library (see SPEC: bindgen
# and the shim must not see another /usr/include).
mkdir -p "$root.partial/asterisk-include"
cp -a "$root.partial/usr/include/asterisk.h" "$root.partial/usr/include/asterisk" "$root.partial/asterisk-include/"
rm -rf "$root.partial/usr/src/asterisk-$version" "$root.partial/usr/src/pjproject"
rm -rf "$root"
mv "$root.partial" "$root"
touch "$stamp"
log "$(chroot "$root" asterisk -V) built and installed in $(( $(date +%s) - started )) s"
