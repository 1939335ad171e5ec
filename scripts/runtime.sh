#!/usr/bin/env bash
# Creates (idempotently) the Debian sid root that carries a real Asterisk 22.10.1
# with its development headers and the C reference modules. Used by `make runtime`,
# the tests, the demo and the benchmarks.
#
#   STASIS_BROADCAST_ROOT   where the root lives (default: a cache dir outside the repo)
#   DEBIAN_MIRROR           archive address; default: read from this host's apt sources
set -euo pipefail

root=${STASIS_BROADCAST_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/res_stasis_broadcast_rs/sid-root}
stamp="$root/.runtime-ready"
# valgrind: tests/valgrind.rs runs Asterisk under memcheck to prove unload frees everything.
packages="asterisk asterisk-modules asterisk-dev valgrind"

if [ -f "$stamp" ] && [ -x "$root/usr/sbin/asterisk" ]; then
    # A root made before valgrind joined the list gets it added, once.
    if [ ! -x "$root/usr/bin/valgrind" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "runtime: adding valgrind to the root needs root (chroot)" >&2
            exit 1
        fi
        echo "runtime: adding valgrind to the root"
        cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
        chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false update -qq
        chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false \
            install -y -qq --no-install-recommends valgrind >/dev/null
    fi
    echo "runtime: ready at $root"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "runtime: creating the Asterisk root needs root (debootstrap, chroot)" >&2
    exit 1
fi

. "$(dirname "$0")/archive.sh"
debootstrap_root sid "$root"

# The archive's Release file is past its Valid-Until date: tell apt inside the root.
echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99no-check-valid-until"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

echo "runtime: installing $packages in the root"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false update -qq
# policy-rc.d keeps the package's init script from starting an Asterisk of its own.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false \
    install -y -qq --no-install-recommends $packages >/dev/null

version=$(chroot "$root" asterisk -V)
echo "runtime: $version ready at $root"
touch "$stamp"
