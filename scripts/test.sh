#!/usr/bin/env bash
# The project's one test command: installs what it needs on a fresh Debian machine, then runs
# formatting, lints, docs and every test suite (unit, property, simulator matrices, and the
# interop suites against real peers: kernel TCP in namespaces, openssl, tshark, Erlang megaco,
# DPDK virtual devices). Exits non-zero on any failure.
#
#   scripts/test.sh            everything
#   MGW_TCP_SEEDS=10000 scripts/test.sh   a larger TCP simulator matrix
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

# ---------------------------------------------------------------------------------------------
step "system packages"
pkgs=(
  build-essential pkg-config clang libclang-dev   # C shim and bindgen for ffi/dpdk-sys
  libdpdk-dev dpdk dpdk-dev                       # DPDK 22.11 (libs, PMDs; dpdk-dev has dpdk-testpmd)
  openssl                                         # TLS/DTLS interop peer
  tshark                                          # wire checks
  erlang-base erlang-megaco erlang-dev            # the real MGC
  iproute2 ethtool socat python3                  # namespaces, veths, netem, kernel peers
  valgrind                                        # callgrind instruction counts
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup)"; exit 1; }
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" || true
done

# Interop tests must not skip in CI: a missing peer fails them instead.
export MGW_REQUIRE_PEERS=1
export RUST_BACKTRACE=1
export CARGO_TERM_COLOR=never

# ---------------------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

# Everything builds in the `ci` profile so build-script outputs (aws-lc, bindgen) are compiled once.
step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets --profile ci -- -D warnings
step "cargo clippy (DPDK parts: dpdk-sys, the dataplane port, TCP interop, mgwd, the DPDK bench)"
cargo clippy -p dpdk-sys -p mgw-ports -p mgw-tcp -p mgwd -p mgwbench \
  --features dpdk-sys/dpdk,mgw-ports/dpdk,mgw-tcp/dpdk,mgwd/dpdk,mgwbench/dpdk \
  --all-targets --profile ci -- -D warnings

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet --profile ci

# ---------------------------------------------------------------------------------------------
# Tests run in the optimised `ci` profile (debug assertions and overflow checks stay on) so the
# simulator matrices can afford thousands of seeds.
# Reports land in ./target (also when CARGO_TARGET_DIR puts the build elsewhere).
mkdir -p target
step "cargo test (workspace, profile ci)"
cargo test --workspace --profile ci

step "fuzz: build every target, replay regressions and seeds, 20 s smoke run of each target"
# cargo-fuzz from crates.io if missing; fuzz/ is its own workspace (see scripts/fuzz.sh). The
# build inside fuzz.sh fails this script when any target stops compiling.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
scripts/fuzz.sh replay
scripts/fuzz.sh all 20

step "cargo test (dpdk-sys and the DPDK port on virtual devices)"
cargo test -p dpdk-sys --features dpdk --profile ci
cargo test -p mgw-ports --features dpdk --profile ci --test dpdk_port
step "DPDK against kernel peers: TCP interop, and mgwd (two workers) end to end"
cargo test -p mgw-tcp --features dpdk --profile ci --test kernel_interop_dpdk
cargo test -p mgwd --features dpdk --profile ci --test e2e_netns -- mgwd_on_dpdk
cargo test -p mgwd --features dpdk --profile ci --test e2e_bfcp -- mgwd_on_dpdk
step "DPDK benchmark smoke run (net_null, net_ring, net_memif beside dpdk-testpmd; figures are not checked)"
cargo run --quiet --profile ci -p mgwbench --features dpdk --bin dpdk_bench -- --quick > target/dpdk_bench.json
cat target/dpdk_bench.json

# ---------------------------------------------------------------------------------------------
step "mgwd lab smoke run"
cargo run --quiet --profile ci -p mgwd --bin mgwd -- lab --seconds 10 --json > target/lab.json
cat target/lab.json
python3 - <<'PY'
import json, sys
r = json.load(open("target/lab.json"))
bad = [k for k, v in r.get("checks", {}).items() if not v]
if bad:
    sys.exit(f"mgwd lab checks failed: {bad}")
print("mgwd lab: all checks passed")
PY

step "done"
echo "scripts/test.sh: all passed in $(( $(date +%s) - start ))s"
