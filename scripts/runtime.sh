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
packages="asterisk asterisk-modules asterisk-dev"

if [ -f "$stamp" ] && [ -x "$root/usr/sbin/asterisk" ]; then
    echo "runtime: ready at $root"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "runtime: creating the Asterisk root needs root (debootstrap, chroot)" >&2
    exit 1
fi

# The archive address comes from the machine, never from this repository.
mirror_from_apt_sources() {
    local files=() f
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
    if [ ${#files[@]} -gt 0 ]; then
        awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' "${files[@]}"
    fi
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f"
    done
}
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    # The main archive, not the security one: it is the one that carries sid.
    mirror=$(mirror_from_apt_sources | grep -v -- '-security' | head -n1 || true)
fi
if [ -z "$mirror" ]; then
    echo "runtime: no Debian archive found in /etc/apt sources; set DEBIAN_MIRROR" >&2
    exit 1
fi

if ! command -v debootstrap >/dev/null; then
    echo "runtime: installing debootstrap on the host"
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
fi

mkdir -p "$(dirname "$root")"
if [ ! -x "$root/usr/bin/apt-get" ]; then
    echo "runtime: debootstrap sid into $root (from the host's archive)"
    rm -rf "$root.partial"
    debootstrap --variant=minbase sid "$root.partial" "$mirror" >"$root.debootstrap.log" 2>&1 || {
        tail -n 30 "$root.debootstrap.log" >&2
        exit 1
    }
    rm -rf "$root"
    mv "$root.partial" "$root"
fi

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
