//! `net_af_xdp` through the kernel: the same veth round trip as `eal_af_packet.rs`, over AF_XDP
//! sockets (generic/SKB mode on veth; libxdp loads its program without a dispatcher when there
//! is no bpffs). AF_XDP is the kernel-bypass-lite backend for hosts without a DPDK NIC.
//!
//! Needs feature `dpdk`, root, iproute2 and a kernel with AF_XDP; skips with a printed reason
//! otherwise, unless `MGW_REQUIRE_PEERS=1`. Own test binary = own process (EAL initialises once).
#![cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]

mod common;

#[test]
fn af_xdp_veth_roundtrip() {
    common::veth_pmd_test("eal_af_xdp", "net_af_xdp");
}
