#!/usr/bin/env bash
# scripts/dpdk-vdev-check.sh: which DPDK virtual PMDs work on this machine, and at what rate.
# For each vdev kind, runs dpdk-testpmd io forwarding between two ports of that kind for
# DURATION seconds and prints one JSON object:
#   {"net_null": {"ok": true, "mpps": X}, "net_memif": {...}, "net_af_packet": {...}, ...}
# "mpps" is packets forwarded per second summed over both ports, averaged over the stats
# periods after the first. "ok" is false (with "error") when testpmd could not start the ports.
#
# Topologies (the script creates and removes everything it uses):
# - net_null:      two independent null ports (synthetic RX, TX frees); the pure ceiling.
# - net_ring:      two ring ports; each loops its TX back to its own RX. Only pointers move
#                  (no mbuf is touched), so its figure is not comparable to the others.
# - net_memif:     server and client of one memif socket in one process (shared memory, copy).
# - net_af_packet: both ends of a veth pair in a fresh netns; --tx-first injects one burst per port
#                  that then circulates, so the rate is latency bound, not a throughput figure.
# - net_af_xdp:    the same veth pair through AF_XDP (generic/SKB mode on veth).
# Needs: root, iproute2, package dpdk-dev (dpdk-testpmd). Env: DURATION (default 3), LCORES
# (default 0,1), KINDS (default "net_null net_ring net_memif net_af_packet net_af_xdp").
set -euo pipefail

DURATION=${DURATION:-3}
LCORES=${LCORES:-0,1}
KINDS=${KINDS:-net_null net_ring net_memif net_af_packet net_af_xdp}
TESTPMD=${TESTPMD:-$(command -v dpdk-testpmd || true)}

if [[ -z "$TESTPMD" || ! -x "$TESTPMD" ]]; then
    echo "dpdk-testpmd not found: apt-get install dpdk-dev" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "needs root (EAL memory, netns, AF_PACKET/AF_XDP sockets)" >&2
    exit 2
fi

NS="mgw-dpdk-$$"
SOCK="/tmp/mgw-memif-$$.sock"
WORK=$(mktemp -d /tmp/mgw-vdev.XXXXXX)
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK" "$SOCK"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link add vA type veth peer name vB
ip -n "$NS" link set vA up
ip -n "$NS" link set vB up

# run KIND PREFIX VDEV0 VDEV1 [testpmd args...]: one bounded testpmd run, output to $WORK/KIND.log
run() {
    local kind=$1 prefix=$2 v0=$3 v1=$4
    shift 4
    set +e
    # shellcheck disable=SC2086 # $prefix is intentionally word-split ("ip netns exec NS")
    timeout -s INT -k 5 "$((DURATION + 1))" $prefix "$TESTPMD" \
        --no-huge --no-pci --no-shconf --no-telemetry -m 512 -l "$LCORES" \
        --log-level='*:warning' "--vdev=$v0" "--vdev=$v1" \
        -- --forward-mode=io --auto-start --stats-period 1 --total-num-mbufs=8192 "$@" \
        </dev/null >"$WORK/$kind.log" 2>&1
    echo $? >"$WORK/$kind.rc"
    set -e
}

for kind in $KINDS; do
    case $kind in
    net_null) run net_null "" net_null0 net_null1 ;;
    net_ring) run net_ring "" net_ring0 net_ring1 --tx-first ;;
    net_memif)
        run net_memif "" "net_memif0,role=server,id=0,socket=$SOCK" \
            "net_memif1,role=client,id=0,socket=$SOCK" --tx-first ;;
    net_af_packet)
        run net_af_packet "ip netns exec $NS" net_af_packet0,iface=vA net_af_packet1,iface=vB \
            --tx-first ;;
    net_af_xdp)
        run net_af_xdp "ip netns exec $NS" net_af_xdp0,iface=vA net_af_xdp1,iface=vB --tx-first ;;
    *) echo "unknown kind $kind" >&2; exit 2 ;;
    esac
done

# shellcheck disable=SC2086 # one argument per kind
python3 - "$WORK" $KINDS <<'PY'
import json, os, re, sys
work, kinds = sys.argv[1], sys.argv[2:]
out = {}
for kind in kinds:
    text = open(os.path.join(work, kind + ".log"), errors="replace").read()
    rc = int(open(os.path.join(work, kind + ".rc")).read().strip() or 1)
    pps = [int(x) for x in re.findall(r"Rx-pps:\s+(\d+)", text)]
    periods = [pps[i:i + 2] for i in range(0, len(pps) - len(pps) % 2, 2)][1:]
    fwd = re.search(r"Accumulated forward statistics.*?RX-packets:\s+(\d+)", text, re.S)
    total = int(fwd.group(1)) if fwd else 0
    ok = rc in (0, 124) and bool(periods) and total > 0
    entry = {"ok": ok}
    if periods:
        entry["mpps"] = round(sum(sum(p) for p in periods) / len(periods) / 1e6, 3)
    entry["forwarded_packets"] = total
    if not ok:
        errs = [l.strip() for l in text.splitlines() if re.search(r"(?i)error|fail|cause", l)]
        entry["error"] = (errs[-1] if errs else "exit %d, no traffic" % rc)[:200]
    out[kind] = entry
print(json.dumps(out))
PY
