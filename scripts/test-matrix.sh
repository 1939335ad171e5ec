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
suites=${MATRIX_SUITES:-"foundation feature endpoint claim_route api_docs operations install ari_client multi_server agents optional_api reliability event_copies"}
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

# Whether the runtime under `root` has Asterisk's own C implementation.
c_module_present() {
    [ -n "$(find "$1/usr/lib" -name res_stasis_broadcast.so -print -quit 2>/dev/null)" ]
}

target=${CARGO_TARGET_DIR:-$top/target}
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
    # Only the module depends on the headers: it and its fault-injection
    # build (profile ci) are redone per version, in a target directory of the
    # matrix's own (the builds `make test` loads stay as they are), and copied
    # aside; the test binaries (package tests/, which does not link the module
    # crate) are built once and serve every version.
    out="$target/matrix/$v"
    mkdir -p "$out"
    for build in module fault; do
        features=()
        if [ $build = fault ]; then features=(--features fault-injection); fi
        ASTERISK_INCLUDE_DIR=$include CARGO_TARGET_DIR="$target/matrix" \
            $cargo build --profile ci -q -p res_stasis_broadcast_rs --lib "${features[@]}"
        cp "$target/matrix/ci/libres_stasis_broadcast_rs.so" "$out/$build.so"
    done
    built=$(date +%s)
    tests=()
    for s in $suites; do tests+=(--test "$s"); done
    # The tests that run the live C module (named *_vs_c_module) exist only
    # where the runtime has it: elsewhere they are left out, never run
    # against something else.
    filter=()
    if ! c_module_present "$root"; then filter=(--skip vs_c_module); fi
    log="$out/test.log"
    status=0
    # ASTERISK_INCLUDE_DIR: tests/optional_api.rs builds its C test module
    # against the version's headers (at run time; nothing of cargo's reads it here).
    ASTERISK_INCLUDE_DIR=$include \
    STASIS_BROADCAST_ROOT=$root \
    STASIS_BROADCAST_MODULE="$out/module.so" \
    STASIS_BROADCAST_FAULT_MODULE="$out/fault.so" \
        $cargo test --profile ci --no-fail-fast -p stasis-broadcast-tests "${tests[@]}" -- "${filter[@]}" 2>&1 \
        | tee "$log" || status=$?
    passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
    nfailed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
    left_out=$(grep -Eo '[0-9]+ filtered out' "$log" | awk '{s+=$1} END {print s+0}')
    done_at=$(date +%s)
    version=$(chroot "$root" asterisk -V)
    summary+=("$(printf '%-34s runtime %4ss  build %4ss  tests %4ss  %3s passed %3s failed %3s left out (%s)' \
        "$version" $((runtime_ready - started)) $((built - runtime_ready)) $((done_at - built)) "$passed" "$nfailed" \
        "$left_out" "${filter[*]:-none}")")
    if [ "$status" != 0 ] || [ "$nfailed" != 0 ]; then failed=1; fi
done

echo
echo "=== matrix summary ==="
printf '%s\n' "${summary[@]}"
exit $failed
