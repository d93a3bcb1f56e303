//! The kernel-interop cases of `kernel_interop.rs` (in `support::interop`), with our stack on a
//! DPDK port: `dataplane::port::dpdk::DpdkQueue` on a `net_af_packet` vdev bound to our end of
//! the lab's veth, EAL without hugepages, PCI or shared config (as CI runs mgwd). Both roles and
//! both directions with 20 MB each and SHA-256 on the receiving side, then all four under loss
//! 5%, delay 20 ms, reorder 10% with 1 MB each (`MGW_TCP_INTEROP_DPDK_MB` and
//! `MGW_TCP_INTEROP_DPDK_IMPAIRED_KB` override), no mbuf leaked.
//!
//! Own test binary (own process): EAL initialises once per process, and it must do so after the
//! lab exists and from inside our namespace, where the PMD opens its AF_PACKET socket at probe.
//!
//! `net_af_packet` quirks that shape this test:
//! - `qdisc_bypass=0`: the PMD's default (1) sends with PACKET_QDISC_BYPASS, which skips the
//!   interface's qdisc, so `tc netem` on our veth end would impair only the kernel's direction.
//! - No checksum offload is advertised: every checksum is computed and verified in software.
//! - The PMD copies frames between its mmap rings and mbufs on both paths and frees sent mbufs
//!   at once, so the pool must be whole again after the suite.
//!
//! Skips (with a printed reason) when not root, tools are missing or EAL cannot start, unless
//! MGW_REQUIRE_PEERS=1.
#![cfg(feature = "dpdk")]

mod support;

use dataplane::port::dpdk::{DpdkPort, DpdkPortConfig, Eal, Mempool, DEFAULT_DATA_ROOM};
use dataplane::port::Port;
use support::interop::{run_suite, skip, KERNEL_IP, OURS_IP};
use support::netns::{missing_prerequisite, InNetns, Lab};

/// Mbufs in the pool: the PMD allocates RX mbufs per burst and frees TX ones at once, so this
/// only has to cover a burst each way plus slack.
const POOL: u32 = 4095;

const TEST: &str = "kernel_interop_dpdk";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kernel_interop_dpdk() {
    if let Some(why) = missing_prerequisite() {
        skip(TEST, &why);
        return;
    }
    let mb = env_usize("MGW_TCP_INTEROP_DPDK_MB", 20);
    let impaired_kb = env_usize("MGW_TCP_INTEROP_DPDK_IMPAIRED_KB", 1024);
    let lab = Lab::new(OURS_IP, KERNEL_IP).expect("lab");
    let vdev = format!("--vdev=net_af_packet0,iface={},qdisc_bypass=0", lab.ours_if);
    let args: Vec<String> = [
        "mgw-tcp-interop",
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "-m",
        "256",
        "-l",
        "0",
        "--log-level=*:warning",
        &vdev,
    ]
    .map(str::to_owned)
    .to_vec();
    let (mut queue, pool, port) = {
        let _inside = InNetns::enter(&lab.ours).expect("enter our namespace");
        let eal = match Eal::init(&args) {
            Ok(eal) => eal,
            Err(e) => {
                skip(TEST, &format!("DPDK EAL unavailable: {e}"));
                return;
            }
        };
        let id = eal.port_by_name("net_af_packet0").expect("vdev probed");
        let pool =
            Mempool::new(eal, "interop_pool", POOL, 0, DEFAULT_DATA_ROOM, None).expect("mempool");
        let mut port = DpdkPort::new(eal, id, 1, pool, DpdkPortConfig::default()).expect("port");
        let queue = port.take_queue(0).expect("queue 0");
        (queue, pool, port)
    };
    let f = port.features();
    eprintln!("{TEST}: driver {}, {f:?}, link {:?}", f.driver, port.link());
    assert_eq!(f.driver, "net_af_packet");
    assert_eq!(
        queue.mac().0,
        lab.ours_mac,
        "the PMD reports the veth's MAC"
    );
    assert_eq!(queue.max_frame(), 1514, "MTU 1500 + Ethernet header");
    run_suite(
        "dpdk net_af_packet",
        &lab,
        &mut queue,
        mb << 20,
        impaired_kb << 10,
    );
    let s = queue.stats();
    assert_eq!(s.dropped, 0, "{s:?}");
    assert_eq!(queue.rx_chained(), 0);
    assert_eq!(queue.alloc_failures(), 0);
    assert_eq!(
        pool.available(),
        POOL,
        "every mbuf is back in the pool after the suite"
    );
    let eth = port.eth_stats().expect("eth stats");
    eprintln!(
        "{TEST}: ethdev ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
        eth.ipackets, eth.opackets, eth.imissed, eth.ierrors, eth.oerrors, eth.rx_nombuf
    );
    // The port stops when its last handle drops; then the lab (and the veth) goes.
    drop(queue);
    drop(port);
    drop(lab);
}
