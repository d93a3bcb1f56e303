#!/usr/bin/env bash
# Fuzzing, for real (cargo-fuzz, libFuzzer with ASan, on stable through RUSTC_BOOTSTRAP).
#
#   scripts/fuzz.sh TARGET|all SECONDS   build, then fuzz each target for SECONDS, one after the
#                                        other (the CI machine has 2 cores), with a corpus in
#                                        fuzz/corpus/<target> seeded from fuzz/corpus-seed/<target>
#   scripts/fuzz.sh replay               run every target over fuzz/regressions/<target>/* (the
#                                        minimised crashes of fixed bugs) and its seed corpus
#
# A crash, a slow input (-timeout=1: over one second counts as a failure) or memory beyond
# 2 GiB makes the run fail; libFuzzer writes the input to fuzz/artifacts/<target>/. Exits
# non-zero if any target failed, or if a target does not build.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
export RUSTC_BOOTSTRAP=1
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin="$fuzz/target/$triple/release"

usage() { echo "usage: $0 TARGET|all SECONDS | $0 replay" >&2; exit 2; }
[[ $# -ge 1 ]] || usage

cd "$fuzz"
mapfile -t targets < <(cargo fuzz list)
# One build for all targets: a target that stops compiling fails here.
cargo fuzz build

failed=()
case "$1" in
replay)
    for t in "${targets[@]}"; do
        files=()
        for d in "regressions/$t" "corpus-seed/$t"; do
            [[ -d "$d" ]] && while IFS= read -r -d '' f; do files+=("$f"); done \
                < <(find "$d" -type f ! -name 'README*' -print0)
        done
        if [[ ${#files[@]} -eq 0 ]]; then
            echo "== $t: nothing to replay"
            continue
        fi
        echo "== $t: replaying ${#files[@]} inputs"
        # libFuzzer runs the files given as arguments once each, without fuzzing.
        if ! "$bin/$t" -timeout=1 -rss_limit_mb=2048 "${files[@]}" >"/tmp/fuzz-replay-$t.log" 2>&1; then
            tail -40 "/tmp/fuzz-replay-$t.log"
            failed+=("$t")
        fi
    done
    ;;
*)
    [[ $# -eq 2 && "$2" =~ ^[0-9]+$ ]] || usage
    secs="$2"
    if [[ "$1" == all ]]; then
        run=("${targets[@]}")
    else
        printf '%s\n' "${targets[@]}" | grep -qx "$1" || { echo "no fuzz target $1" >&2; exit 2; }
        run=("$1")
    fi
    for t in "${run[@]}"; do
        mkdir -p "corpus/$t" "artifacts/$t"
        [[ -d "corpus-seed/$t" ]] && cp -n "corpus-seed/$t"/* "corpus/$t"/ 2>/dev/null || true
        echo "== $t: fuzzing for ${secs}s"
        if ! "$bin/$t" -timeout=1 -rss_limit_mb=2048 -max_total_time="$secs" \
            -artifact_prefix="artifacts/$t/" -print_final_stats=1 "corpus/$t" \
            >"/tmp/fuzz-$t.log" 2>&1; then
            tail -40 "/tmp/fuzz-$t.log"
            failed+=("$t")
        fi
        grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb" \
            "/tmp/fuzz-$t.log" | sed "s/^/   $t /" || true
    done
    ;;
esac

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "fuzz: ok"
