#!/usr/bin/env bash
# scripts/dpdk-install-deps.sh: Debian packages that the `dpdk` feature, its tests and the DPDK
# scripts need. Idempotent; installs only what is missing. For CI and fresh developer machines
# (nothing installed by hand survives a machine change).
#   libdpdk-dev   headers, libdpdk.pc, shared librte_* and the PMD plugins (pmds-23.0)
#   dpdk          dpdk-devbind.py, dpdk-hugepages.py (scripts/dpdk-setup.sh)
#   dpdk-dev      dpdk-testpmd (scripts/dpdk-testpmd-ceiling.sh, scripts/dpdk-vdev-check.sh)
#   clang, libclang-dev, pkg-config   bindgen and the pkg-config lookup in ffi/dpdk-sys/build.rs
#   iproute2      netns/veth for the af_packet / af_xdp checks
set -euo pipefail
PKGS=(libdpdk-dev dpdk dpdk-dev clang libclang-dev pkg-config iproute2)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "dpdk-install-deps: all present (${PKGS[*]})"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "dpdk-install-deps: needs root to install ${missing[*]}" >&2; exit 1; }
echo "dpdk-install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
pkg-config --modversion libdpdk
