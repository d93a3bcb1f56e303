#!/usr/bin/env bash
# scripts/dpdk-setup.sh: prepare a bare-metal host for mgwd's DPDK backend (operators, not CI).
#
#   dpdk-setup.sh [options] PCI_ADDRESS [PCI_ADDRESS...] NR_HUGEPAGES
#
# 1. Reserves NR_HUGEPAGES huge pages of --page-size (2M default, or 1G) on the NUMA node of the
#    first NIC (all nodes when the NIC reports none) via sysfs, and mounts hugetlbfs
#    (/dev/hugepages for 2M, /dev/hugepages-1G for 1G) if no mount of that page size exists.
# 2. Loads vfio-pci and binds each NIC to it with dpdk-devbind.py (package `dpdk`).
#
# Safety: refuses to touch a NIC whose kernel interface is UP, has an address or is referenced by
# any route (it is probably how you are logged in) unless --force. --dry-run prints every change
# instead of making it (the checks still run). Needs root. Nothing here persists across reboots:
# for that put `default_hugepagesz=1G hugepagesz=1G hugepages=N iommu=pt intel_iommu=on` on the
# kernel command line (1G pages are rarely available at run time) and use driverctl or a udev rule
# for the binding; deploy/mgwd.service then only needs the result.
#
# Options:
#   --page-size 2M|1G   huge page size (default 2M)
#   --driver NAME       DPDK-compatible kernel driver (default vfio-pci)
#   --noiommu           allow vfio-pci without an IOMMU (enable_unsafe_noiommu_mode: no DMA
#                       isolation; only for VMs without a vIOMMU)
#   --force             bind even if the interface is up / addressed / routed
#   --dry-run           print what would change; change nothing
#   -h, --help
# Undo: dpdk-devbind.py -b <kernel driver, e.g. ice/i40e/mlx5_core> PCI; echo 0 > nr_hugepages.
set -euo pipefail

PAGE_SIZE=2M
DRIVER=vfio-pci
NOIOMMU=0
FORCE=0
DRY=0
ARGS=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e 's/^# \{0,1\}//' -e '/^set -euo/d'; }
die() { echo "dpdk-setup: $*" >&2; exit 1; }
# run CMD...: execute, or only print under --dry-run.
run() {
    if [[ $DRY -eq 1 ]]; then
        echo "[dry-run] $*"
    else
        echo "+ $*"
        "$@"
    fi
}
# write VALUE FILE: sysfs write, or only print under --dry-run.
write() {
    if [[ $DRY -eq 1 ]]; then
        echo "[dry-run] echo $1 > $2"
    else
        echo "+ echo $1 > $2"
        echo "$1" >"$2"
    fi
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --page-size) PAGE_SIZE=${2:?}; shift 2 ;;
    --driver) DRIVER=${2:?}; shift 2 ;;
    --noiommu) NOIOMMU=1; shift ;;
    --force) FORCE=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) ARGS+=("$1"); shift ;;
    esac
done
[[ ${#ARGS[@]} -ge 2 ]] || { usage >&2; exit 2; }
NR_PAGES=${ARGS[-1]}
PCIS=("${ARGS[@]:0:${#ARGS[@]}-1}")
[[ $NR_PAGES =~ ^[0-9]+$ ]] || die "NR_HUGEPAGES must be a number, got '$NR_PAGES'"
case $PAGE_SIZE in
2M | 2m) PAGE_KB=2048; MNT=/dev/hugepages ;;
1G | 1g) PAGE_KB=1048576; MNT=/dev/hugepages-1G ;;
*) die "--page-size must be 2M or 1G" ;;
esac
[[ $(id -u) -eq 0 || $DRY -eq 1 ]] || die "needs root (or --dry-run)"
DEVBIND=$(command -v dpdk-devbind.py || true)
[[ -n $DEVBIND ]] || die "dpdk-devbind.py not found: apt-get install dpdk"

# ---- checks (read-only, also under --dry-run) ----
NODE=-1
for i in "${!PCIS[@]}"; do
    pci=${PCIS[$i]}
    # Accept BB:DD.F and add the default domain, as dpdk-devbind.py does.
    [[ $pci =~ ^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] && pci="0000:$pci"
    [[ $pci =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] ||
        die "'$pci' is not a PCI address (DDDD:BB:DD.F)"
    PCIS[i]=$pci
    dev=/sys/bus/pci/devices/$pci
    [[ -d $dev ]] || die "no PCI device $pci"
    class=$(cat "$dev/class")
    [[ $class == 0x02* ]] || die "$pci is not a network controller (class $class)"
    [[ $i -eq 0 ]] && NODE=$(cat "$dev/numa_node" 2>/dev/null || echo -1)
    current=$(basename "$(readlink "$dev/driver" 2>/dev/null)" 2>/dev/null || true)
    # The kernel interface sits in net/ directly, or below virtioN/ for virtio-net.
    for n in "$dev"/net/* "$dev"/virtio*/net/*; do
        [[ -e $n ]] || continue
        ifc=$(basename "$n")
        problems=()
        ip -o link show dev "$ifc" | grep -q '[<,]UP[,>]' && problems+=("is UP")
        [[ -n $(ip -o addr show dev "$ifc" 2>/dev/null) ]] && problems+=("has addresses")
        # IPv6 link-local and multicast routes exist on every UP interface; anything else means
        # traffic is routed through it.
        if [[ -n $(ip route show table all dev "$ifc" 2>/dev/null) ]] ||
            ip -6 route show table all dev "$ifc" 2>/dev/null |
            grep -qv '^fe80::/64\|^multicast\|^local fe80\|^anycast fe80'; then
            problems+=("is in the routing table")
        fi
        if [[ ${#problems[@]} -gt 0 ]]; then
            joined=$(IFS=,; echo "${problems[*]}")
            msg="$pci ($ifc, driver $current) ${joined//,/, }"
            [[ $FORCE -eq 1 ]] || die "$msg: refusing to take it from the kernel (--force overrides; you may lose this host's connectivity)"
            echo "dpdk-setup: WARNING: $msg; continuing because of --force" >&2
        fi
    done
    echo "dpdk-setup: $pci driver=${current:-none} numa_node=$(cat "$dev/numa_node" 2>/dev/null || echo ?)"
done

if [[ $DRIVER == vfio-pci ]]; then
    if [[ -z $(ls -A /sys/kernel/iommu_groups 2>/dev/null) ]]; then
        [[ $NOIOMMU -eq 1 ]] ||
            die "no IOMMU groups: enable VT-d/AMD-Vi and boot with intel_iommu=on iommu=pt (or pass --noiommu for a VM without vIOMMU)"
        echo "dpdk-setup: WARNING: vfio no-IOMMU mode: the NIC can DMA anywhere in memory" >&2
    fi
fi

# ---- hugepages ----
if [[ $NODE -ge 0 && -d /sys/devices/system/node/node$NODE/hugepages/hugepages-${PAGE_KB}kB ]]; then
    HP=/sys/devices/system/node/node$NODE/hugepages/hugepages-${PAGE_KB}kB
else
    HP=/sys/kernel/mm/hugepages/hugepages-${PAGE_KB}kB
fi
[[ -d $HP ]] || die "this kernel/CPU has no ${PAGE_SIZE} huge pages ($HP missing)"
have=$(cat "$HP/nr_hugepages")
if [[ $have -lt $NR_PAGES ]]; then
    write "$NR_PAGES" "$HP/nr_hugepages"
    if [[ $DRY -eq 0 ]]; then
        got=$(cat "$HP/nr_hugepages")
        [[ $got -ge $NR_PAGES ]] ||
            die "asked for $NR_PAGES ${PAGE_SIZE} pages, kernel gave $got (memory fragmented: reserve them on the kernel command line)"
    fi
else
    echo "dpdk-setup: $HP already has $have pages (>= $NR_PAGES)"
fi
if ! awk -v kb="$PAGE_KB" '$3 == "hugetlbfs" && ($4 ~ "pagesize=" kb/1024 "M" || $4 ~ "pagesize=" kb/1048576 "G" || (kb == 2048 && $4 !~ "pagesize=")) {found=1} END {exit !found}' /proc/mounts; then
    run mkdir -p "$MNT"
    run mount -t hugetlbfs -o "pagesize=$PAGE_SIZE" nodev "$MNT"
else
    echo "dpdk-setup: hugetlbfs for ${PAGE_SIZE} pages already mounted"
fi

# ---- driver binding ----
if [[ $DRIVER == vfio-pci ]]; then
    run modprobe vfio-pci
    if [[ $NOIOMMU -eq 1 && -z $(ls -A /sys/kernel/iommu_groups 2>/dev/null) ]]; then
        write Y /sys/module/vfio/parameters/enable_unsafe_noiommu_mode
    fi
else
    run modprobe "$DRIVER"
fi
bind=("$DEVBIND" --bind="$DRIVER")
[[ $FORCE -eq 1 ]] && bind+=(--force)
run "${bind[@]}" "${PCIS[@]}"
if [[ $DRY -eq 0 ]]; then
    "$DEVBIND" --status-dev net
fi
if [[ $DRY -eq 1 ]]; then
    echo "dpdk-setup: done (dry run: nothing changed)"
else
    echo "dpdk-setup: done"
fi
