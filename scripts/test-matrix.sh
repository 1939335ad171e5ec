#!/usr/bin/env bash
# The version matrix: for each Asterisk version, build the module against that
# version's own headers, then run the
# integration suites and the ari-client race against that version's runtime.
#
#   scripts/test-matrix.sh [VERSION ...]
#
#   VERSION            a release built from source (needs ASTERISK_SOURCES), or
#                      "packaged" for Debian sid's 22.10.1 (the runtime of `make test`)
#   ASTERISK_SOURCES   directory of asterisk-<version>.tar.xz release tarballs
#   MATRIX_SUITES      integration test files to run (default below)
#
# Prints, per version: build time, tests passed/failed, and time taken.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
cache=${STASIS_BROADCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/res_stasis_broadcast_rs}
suites=${MATRIX_SUITES:-"foundation feature endpoint api_docs operations install ari_client multi_server agents optional_api reliability"}
cargo=${CARGO:-cargo}

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
    versions=(packaged)
    if [ -n "${ASTERISK_SOURCES:-}" ]; then
        for t in "$ASTERISK_SOURCES"/asterisk-*.tar.*; do
            [ -f "$t" ] || continue
            v=$(basename "$t"); v=${v#asterisk-}; v=${v%%.tar.*}
            versions+=("$v")
        done
    fi
fi

summary=()
failed=0
for v in "${versions[@]}"; do
    started=$(date +%s)
    echo "=== matrix: Asterisk $v ==="
    if [ "$v" = packaged ]; then
        scripts/runtime.sh
        root=${STASIS_BROADCAST_ROOT:-$cache/sid-root}
        [ -f asterisk-headers/asterisk/module.h ] || make -s headers
        include="$top/asterisk-headers"
    else
        scripts/asterisk-source.sh "$v"
        root="$cache/asterisk-$v"
        include="$root/asterisk-include"
    fi
    runtime_ready=$(date +%s)
    # One target directory for every version: the dependencies build once, and
    # the module is rebuilt whenever ASTERISK_INCLUDE_DIR changes (build.rs).
    target="$top/target/matrix"
    export ASTERISK_INCLUDE_DIR=$include CARGO_TARGET_DIR=$target
    $cargo build --release -q
    $cargo build --release -q --features fault-injection --target-dir "$target/fault"
    built=$(date +%s)
    tests=()
    for s in $suites; do tests+=(--test "$s"); done
    log="$target/test-$v.log"
    status=0
    STASIS_BROADCAST_ROOT=$root \
    STASIS_BROADCAST_MODULE="$target/release/libres_stasis_broadcast_rs.so" \
    STASIS_BROADCAST_FAULT_MODULE="$target/fault/release/libres_stasis_broadcast_rs.so" \
        $cargo test --release --no-fail-fast "${tests[@]}" 2>&1 | tee "$log" || status=$?
    unset ASTERISK_INCLUDE_DIR CARGO_TARGET_DIR
    passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
    nfailed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
    done_at=$(date +%s)
    version=$(chroot "$root" asterisk -V)
    summary+=("$(printf '%-34s runtime %4ss  build %4ss  tests %4ss  %3s passed %3s failed' \
        "$version" $((runtime_ready - started)) $((built - runtime_ready)) $((done_at - built)) "$passed" "$nfailed")")
    if [ "$status" != 0 ] || [ "$nfailed" != 0 ]; then failed=1; fi
done

echo
echo "=== matrix summary ==="
printf '%s\n' "${summary[@]}"
exit $failed
