//! The kernel-interop suite of `kernel_interop_dpdk.rs` on DPDK's `net_af_xdp` instead of
//! `net_af_packet`: an AF_XDP socket on our veth end (copy mode: veth has no zero-copy), the
//! backend for hosts without a DPDK NIC. Same cases, sizes and checks (`support::dpdk`).
//!
//! IGNORED: on DPDK 22.11 with a 6.18 kernel our transmissions stall after about a thousand
//! frames (the first 20 MB case stops near 2.7 MB: the kernel retransmits with backoff, we
//! receive and ACK, our ACKs never reach the wire). The PMD hands each burst to the XSK TX ring
//! and wakes the kernel (`sendto`) only when the ring's need_wakeup flag is set; in copy mode
//! the kernel keeps that request in `pool->cached_need_wakeup` and does not maintain the ring
//! flag (drivers without the feature "will always have to call sendto() or poll()",
//! net/xdp/xsk_buff_pool.c), so frames sit in the ring until something else wakes the
//! kernel. Seen: 56 `sendto` on the XSK for about 1,100 sent frames and none during
//! the stall; XDP_OPTIONS reports copy mode; XDP_STATISTICS shows no RX drops. `busy_budget=0`
//! and a 512-descriptor TX ring change nothing. mgwd should therefore use `net_af_packet`
//! (kernel_interop_dpdk.rs) on hosts without a NIC for DPDK. Run this reproducer with
//! `cargo test -p mgw-tcp --features dpdk --profile ci --test kernel_interop_af_xdp -- --ignored`
//! (it fails after the 120 s case limit).
//!
//! `net_af_xdp` (DPDK 22.11) quirks the suite accounts for:
//! - At queue setup the PMD moves 2048 mbufs from the pool into its XDP fill ring and reclaims
//!   sent mbufs only on a later `tx_burst` (completion ring): the pool is sized for that, and
//!   the leak check allows what the rings may hold.
//! - AF_XDP transmits past the interface's qdisc (a counting pfifo passes almost none of our
//!   frames), so `tc netem` on our end could not impair our direction: this suite always
//!   impairs in-process (`mgw_core::link::Link`).
//!
//! Skips (with a printed reason) when not root, tools are missing or EAL cannot start, unless
//! MGW_REQUIRE_PEERS=1.
#![cfg(feature = "dpdk")]

mod support;

#[test]
#[ignore = "net_af_xdp TX stalls in copy mode on DPDK 22.11 (need_wakeup); see the module docs"]
fn kernel_interop_af_xdp() {
    support::dpdk::run(&support::dpdk::Pmd {
        test: "kernel_interop_af_xdp",
        driver: "net_af_xdp",
        devargs: ",start_queue=0,queue_count=1",
        pool: 8191,
        held: 4096,
        through_qdisc: false,
    });
}
