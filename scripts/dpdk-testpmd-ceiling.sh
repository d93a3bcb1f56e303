#!/usr/bin/env bash
# scripts/dpdk-testpmd-ceiling.sh: the DPDK I/O ceiling of THIS machine, for comparing mgwd's own
# packet rate against. Runs dpdk-testpmd in io forwarding mode between two net_null vdevs
# (no NIC, no hugepages) for DURATION seconds and prints one JSON object:
#   {"testpmd_io_mpps": X, "per_port_rx_mpps": [a, b], "samples": n, ...}
# testpmd_io_mpps is packets forwarded per second summed over both ports (each port's RX is
# sent out of the other), averaged over the 1-second stats periods after the first (warm-up).
#
# net_null with its defaults (size=64, copy=0) generates RX mbufs without touching packet data and
# frees TX mbufs: the figure is the cost of ethdev burst calls + mbuf alloc/free + one forwarding
# core, i.e. an upper bound for any DPDK application on this CPU, not a NIC figure.
#
# Needs: root, package `dpdk-dev` (Debian ships dpdk-testpmd there, not in `dpdk`), 2 lcores.
# Env: DURATION (default 5), LCORES (default 0,1: main + 1 forwarding core), MEM_MB (default 512),
#      NULL_ARGS (extra net_null devargs, e.g. ",copy=1,size=128"), TESTPMD (binary path),
#      HUGE_DIR (a mounted hugetlbfs with >= MEM_MB free: run with hugepages and --in-memory
#      instead of --no-huge; scripts/dpdk-setup.sh or the kernel command line reserves them).
# Exit: 0 with JSON on stdout; 2 with a reason on stderr when testpmd is missing or not root.
set -euo pipefail

DURATION=${DURATION:-5}
LCORES=${LCORES:-0,1}
MEM_MB=${MEM_MB:-512}
NULL_ARGS=${NULL_ARGS:-}
TESTPMD=${TESTPMD:-$(command -v dpdk-testpmd || true)}

if [[ -z "$TESTPMD" || ! -x "$TESTPMD" ]]; then
    echo "dpdk-testpmd not found: apt-get install dpdk-dev" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "dpdk-testpmd needs root (EAL memory, /dev access)" >&2
    exit 2
fi

log=$(mktemp /tmp/mgw-testpmd.XXXXXX)
trap 'rm -f "$log"' EXIT

# EAL: --no-huge (anonymous memory; implies legacy mem, so --in-memory is NOT allowed with it),
# --no-pci (no NIC scan), --no-shconf (no /var/run/dpdk files: can run beside mgwd or tests).
# PMDs are NOT passed with -d: Debian's shared-linked EAL loads its plugin directory itself.
# testpmd: 8192 mbufs fit in -m 512 (its default pool size does not without hugepages);
# --auto-start + --stats-period runs non-interactively until SIGINT, which `timeout -s INT`
# sends; testpmd then prints its final forward statistics and exits.
if [[ -n ${HUGE_DIR:-} ]]; then
    # With hugepages --in-memory is allowed (no runtime files, no hugepage files left behind).
    mem_args=(--in-memory --huge-dir "$HUGE_DIR")
    memory=hugepages
else
    mem_args=(--no-huge --no-shconf)
    memory=no-huge
fi
set +e
timeout -s INT -k 5 "$((DURATION + 1))" "$TESTPMD" \
    "${mem_args[@]}" --no-pci --no-telemetry -m "$MEM_MB" -l "$LCORES" \
    --log-level='*:warning' \
    "--vdev=net_null0${NULL_ARGS}" "--vdev=net_null1${NULL_ARGS}" \
    -- --forward-mode=io --auto-start --stats-period 1 --total-num-mbufs=8192 \
    </dev/null >"$log" 2>&1
rc=$?
set -e
# timeout returns 124 after delivering SIGINT; testpmd itself exits 0 on SIGINT.
if [[ $rc -ne 0 && $rc -ne 124 ]]; then
    echo "dpdk-testpmd failed (exit $rc):" >&2
    tail -20 "$log" >&2
    exit 1
fi

# Each stats period prints, per port in order, a line "Rx-pps: N  Rx-bps: M".
python3 - "$log" "$DURATION" "$LCORES" "$NULL_ARGS" "$memory" <<'PY'
import json, re, sys
log, duration, lcores, null_args, memory = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
text = open(log, errors="replace").read()
pps = [int(x) for x in re.findall(r"Rx-pps:\s+(\d+)", text)]
nports = 2
periods = [pps[i:i + nports] for i in range(0, len(pps) - len(pps) % nports, nports)]
periods = periods[1:] if len(periods) > 1 else periods  # first period includes start-up
if not periods:
    print("no stats periods in testpmd output", file=sys.stderr)
    sys.exit(1)
def count_lcores(spec):
    n = 0
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n
fwd_cores = count_lcores(lcores) - 1  # testpmd keeps the first lcore for its main loop
per_port = [sum(p[k] for p in periods) / len(periods) / 1e6 for k in range(nports)]
fwd = re.search(r"Accumulated forward statistics.*?RX-packets:\s+(\d+).*?TX-packets:\s+(\d+)", text, re.S)
print(json.dumps({
    "testpmd_io_mpps": round(sum(per_port), 3),
    "per_port_rx_mpps": [round(x, 3) for x in per_port],
    "samples": len(periods),
    "duration_s": duration,
    "lcores": lcores,
    "fwd_cores": fwd_cores,
    "vdev": "net_null" + null_args,
    "memory": memory,
    "burst": 32,
    "total_rx_packets": int(fwd.group(1)) if fwd else None,
    "total_tx_packets": int(fwd.group(2)) if fwd else None,
}))
PY
