#!/usr/bin/env bash
# Fuzzing, for real (cargo-fuzz, libFuzzer with ASan, on stable through RUSTC_BOOTSTRAP).
#
#   scripts/fuzz.sh TARGET[,TARGET...]|all SECONDS
#                                        build, then fuzz each target for SECONDS of CPU time, one
#                                        after the other (the CI machine has 2 cores), with a corpus
#                                        in fuzz/corpus/<target> seeded from fuzz/corpus-seed/<target>;
#                                        two runs on disjoint lists use both cores
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
# fuzz/ is its own workspace and builds into fuzz/target, where the binaries are looked for
# below, whatever target directory the caller's environment gives the main workspace.
unset CARGO_TARGET_DIR
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin="$fuzz/target/$triple/release"

usage() { echo "usage: $0 TARGET[,TARGET...]|all SECONDS | $0 replay" >&2; exit 2; }

# Sets `cpu` to the CPU seconds (user + system) used so far by the finished children of this
# shell. `times` runs in this shell (in a command substitution it would see a subshell's
# children); its second line is the children's "XmY.YYYs XmY.YYYs".
cpu_now() {
    times >"/tmp/fuzz-times.$$"
    cpu="$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%d", s }' "/tmp/fuzz-times.$$")"
}
[[ $# -ge 1 ]] || usage

# libFuzzer's -timeout is wall time, so on a loaded machine a process that the scheduler stalls
# for a second is reported as a slow input. Returns 0 (a stall) when the run that just failed
# ($1, its log in $2) failed only by timeout and its input, replayed alone three times, runs
# under the timeout each time; the input is then kept in artifacts/<target>/stalls/.
stalled() {
    local t="$1" log="$2" unit
    grep -q "libFuzzer: timeout" "$log" || return 1
    unit="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    [[ -n "$unit" && -f "$unit" ]] || return 1
    for _ in 1 2 3; do
        "$bin/$t" -timeout=1 -rss_limit_mb=2048 "$unit" >/dev/null 2>&1 || return 1
    done
    mkdir -p "artifacts/$t/stalls"
    mv "$unit" "artifacts/$t/stalls/"
    return 0
}

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
        IFS=, read -r -a run <<<"$1"
        for t in "${run[@]}"; do
            printf '%s\n' "${targets[@]}" | grep -qx "$t" || { echo "no fuzz target $t" >&2; exit 2; }
        done
    fi
    for t in "${run[@]}"; do
        mkdir -p "corpus/$t" "artifacts/$t"
        [[ -d "corpus-seed/$t" ]] && cp -n "corpus-seed/$t"/* "corpus/$t"/ 2>/dev/null || true
        echo "== $t: fuzzing for ${secs} CPU seconds"
        # libFuzzer's -max_total_time is wall time; on a loaded machine a target gets less CPU
        # than that, so it runs again (on the same corpus) until it has had SECONDS of CPU, in at
        # most 20 rounds and 3 x SECONDS of wall time.
        cpu_now
        cpu0="$cpu"
        used=0
        wall0="$SECONDS"
        rounds=0
        ok=1
        while [[ $used -lt $secs && $rounds -lt 20 && $((SECONDS - wall0)) -lt $((3 * secs)) ]]; do
            rounds=$((rounds + 1))
            left=$((secs - used))
            [[ $left -lt 5 ]] && left=5
            if ! "$bin/$t" -timeout=1 -rss_limit_mb=2048 -max_total_time="$left" \
                -artifact_prefix="artifacts/$t/" -print_final_stats=1 "corpus/$t" \
                >"/tmp/fuzz-$t.log" 2>&1; then
                if stalled "$t" "/tmp/fuzz-$t.log"; then
                    echo "   $t: a timeout that did not reproduce when replayed alone (a scheduler stall, not a slow input); fuzzing on"
                else
                    tail -40 "/tmp/fuzz-$t.log"
                    failed+=("$t")
                    ok=0
                    break
                fi
            fi
            cpu_now
            used=$((cpu - cpu0))
        done
        echo "   $t cpu_seconds: $used in $rounds round(s), wall $((SECONDS - wall0))s"
        if [[ $ok -eq 1 && $used -lt $secs ]]; then
            echo "   $t: only $used of $secs CPU seconds (machine too loaded)" >&2
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
