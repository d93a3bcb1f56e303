//! The kernel-interop cases of `kernel_interop.rs` (in `support::interop`), with our stack on a
//! DPDK port: `mgw_ports::dpdk::DpdkQueue` on a `net_af_packet` vdev bound to our end of
//! the lab's veth, EAL with `--no-huge --no-shconf --no-pci --no-telemetry -m 256 -l 0` (as CI
//! runs mgwd). Both roles and both directions with 20 MB each and SHA-256 on the receiving
//! side, then all four under loss 5%, delay 20 ms, reorder 10% with 1 MB each
//! (`MGW_TCP_INTEROP_DPDK_MB` and `MGW_TCP_INTEROP_DPDK_IMPAIRED_KB` override); no mbuf leaked,
//! nothing dropped. Suite in `support::dpdk`.
//!
//! Own test binary (own process): EAL initialises once per process, and it must do so after the
//! lab exists and from inside our namespace, where the PMD opens its AF_PACKET socket at probe.
//!
//! `net_af_packet` (DPDK 22.11) quirks that shape this test:
//! - `qdisc_bypass=0`: the PMD's default (1) transmits with PACKET_QDISC_BYPASS, past the
//!   interface's qdisc (a counting pfifo passes 1 of 184 frames then), so `tc netem` on our
//!   veth end would impair only the kernel's direction. The suite proves our frames pass the
//!   qdisc before relying on it.
//! - No checksum offload is advertised: every checksum is computed and verified in software.
//! - The PMD copies between its mmap rings and mbufs on both paths and frees sent mbufs at
//!   once: the pool must be whole after the suite.
//!
//! Skips (with a printed reason) when not root, tools are missing or EAL cannot start, unless
//! MGW_REQUIRE_PEERS=1.
#![cfg(feature = "dpdk")]

mod support;

#[test]
fn kernel_interop_dpdk() {
    support::dpdk::run(&support::dpdk::Pmd {
        test: "kernel_interop_dpdk",
        driver: "net_af_packet",
        devargs: ",qdisc_bypass=0",
        pool: 4095,
        held: 0,
        through_qdisc: true,
    });
}
