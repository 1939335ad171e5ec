# Sourced by the runtime scripts: the Debian archive address, read from this
# machine's apt sources (never written into the repository), or DEBIAN_MIRROR.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local files=() f
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
    {
        if [ ${#files[@]} -gt 0 ]; then
            awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' "${files[@]}"
        fi
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            if [ -f "$f" ]; then
                awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f"
            fi
        done
    } | { grep -v -- '-security' || true; } | head -n1
}

# debootstrap SUITE into ROOT (idempotent; ROOT.partial while it runs).
debootstrap_root() {
    local suite=$1 root=$2 mirror
    [ -x "$root/usr/bin/apt-get" ] && return 0
    mirror=$(debian_mirror)
    if [ -z "$mirror" ]; then
        echo "no Debian archive found in /etc/apt sources; set DEBIAN_MIRROR" >&2
        return 1
    fi
    if ! command -v debootstrap >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq debootstrap >/dev/null
    fi
    mkdir -p "$(dirname "$root")"
    echo "debootstrap $suite into $root (from the host's archive)"
    rm -rf "$root.partial"
    debootstrap --variant=minbase "$suite" "$root.partial" "$mirror" >"$root.debootstrap.log" 2>&1 || {
        tail -n 30 "$root.debootstrap.log" >&2
        return 1
    }
    rm -rf "$root"
    mv "$root.partial" "$root"
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}
