//! `net_af_packet` through the kernel: two DPDK ports on the two ends of a veth pair in a
//! namespace the test creates (and removes); frames sent with tx_burst on one end must come out
//! of rx_burst on the other, intact and in order, both ways. This is the CI stand-in for a NIC
//! (ARCHITECTURE.md, packet I/O backends).
//!
//! Needs feature `dpdk`, root and iproute2; skips with a printed reason otherwise, unless
//! `MGW_REQUIRE_PEERS=1`. Own test binary = own process, because EAL initialises once.
#![cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]

mod common;

#[test]
fn af_packet_veth_roundtrip() {
    common::veth_pmd_test("eal_af_packet", "net_af_packet");
}
