//! Interop with the Linux kernel's TCP over dataplane's AF_PACKET port
//! (`mgw_ports::afpacket::AfPacketPort`): two network namespaces joined by a veth, our
//! stack on one end, a python3 peer on the other (cases in `support::interop`). Both directions
//! and both roles, 100 MB each with matching SHA-256 (10 MB in unoptimised builds;
//! `MGW_TCP_INTEROP_MB` overrides), then all four again under loss 5%, delay 20 ms, reorder 10%
//! with 2 MB each (at 5% loss each way and a 40 ms RTT a NewReno/CUBIC sender manages
//! 1-4 Mbit/s, so 100 MB would take many minutes). Kernel-initiated and our closes are both
//! exercised. The same cases run over DPDK in `kernel_interop_dpdk.rs`.
//!
//! Skips (with a printed reason) when not root or tools are missing, unless MGW_REQUIRE_PEERS=1.
//! Everything runs sequentially in one test: namespaces are global state.

mod support;

use mgw_core::buf::Pool;
use mgw_core::port::Port;
use mgw_ports::afpacket::AfPacketPort;
use support::interop::{run_suite, skip, KERNEL_IP, OURS_IP};
use support::netns::{missing_prerequisite, InNetns, Lab};

/// Buffers for the port: RX and TX bursts plus what the in-process impairment holds (it copies
/// into its own pool).
const POOL: usize = 1024;

#[test]
fn kernel_interop() {
    if let Some(why) = missing_prerequisite() {
        skip("kernel_interop", &why);
        return;
    }
    let mb: usize = std::env::var("MGW_TCP_INTEROP_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(mgw_tcp_optimized) { 100 } else { 10 });
    let lab = Lab::new(OURS_IP, KERNEL_IP).expect("lab");
    let pool = Pool::new(POOL, 2048);
    // The socket binds to the interface of the namespace the thread is in when it is opened,
    // and keeps it after the thread leaves.
    let mut port = {
        let _inside = InNetns::enter(&lab.ours).expect("enter our namespace");
        AfPacketPort::open(&lab.ours_if, pool.clone()).expect("AF_PACKET port")
    };
    assert_eq!(
        port.mac().0,
        lab.ours_mac,
        "the port reports the veth's MAC"
    );
    assert_eq!(port.max_frame(), 1514, "MTU 1500 + Ethernet header");
    // AfPacketPort sends with send(2) through the qdisc, so netem (where present) applies both ways.
    run_suite("afpacket", &lab, &mut port, mb << 20, 2 << 20, true);
    assert_eq!(
        pool.available(),
        POOL,
        "every buffer is back in the pool after the suite"
    );
    assert_eq!(port.stats().dropped, 0, "{:?}", port.stats());
}
