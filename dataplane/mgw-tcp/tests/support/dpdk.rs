//! The kernel-interop suite on a DPDK port: EAL (no hugepages, no PCI, no shared config) with
//! one vdev on our end of the lab's veth, one queue pair as the `Port`, the cases of
//! [`super::interop`], and the checks that the port and its pool came out whole.

use super::interop::{run_case, run_suite, skip, Case, KERNEL_IP, OURS_IP};
use super::netns::{missing_prerequisite, InNetns, Lab};
use mgw_core::port::Port;
use mgw_ports::dpdk::{DpdkPort, DpdkPortConfig, Eal, Mempool, DEFAULT_DATA_ROOM};
use std::time::Duration;

/// What differs between the PMDs the suite runs on.
pub struct Pmd {
    /// The test's name, for skips.
    pub test: &'static str,
    /// The driver (`net_af_packet`, `net_af_xdp`); the vdev is `<driver>0`.
    pub driver: &'static str,
    /// Devargs after `iface=<veth>`, each starting with a comma.
    pub devargs: &'static str,
    /// Mbufs in the pool.
    pub pool: u32,
    /// Mbufs the PMD may keep out of the pool after the suite (rings it fills from the pool,
    /// sent mbufs it reclaims lazily); 0 for a PMD that copies and frees at once.
    pub held: u32,
    /// Whether our transmissions pass the interface's qdisc (so `tc netem` on our veth end
    /// impairs our direction too); checked with a counting pfifo before the suite.
    pub through_qdisc: bool,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the suite: 4 cases x `MGW_TCP_INTEROP_DPDK_MB` (default 20) MB clean, then 4 x
/// `MGW_TCP_INTEROP_DPDK_IMPAIRED_KB` (default 1024) KB impaired. Skips with a printed reason
/// when not root, tools are missing or EAL cannot start, unless MGW_REQUIRE_PEERS=1.
///
/// # Panics
/// On any failure (this is the test).
pub fn run(pmd: &Pmd) {
    let test = pmd.test;
    if let Some(why) = missing_prerequisite() {
        skip(test, &why);
        return;
    }
    let mb = env_usize("MGW_TCP_INTEROP_DPDK_MB", 20);
    let impaired_kb = env_usize("MGW_TCP_INTEROP_DPDK_IMPAIRED_KB", 1024);
    let lab = Lab::new(OURS_IP, KERNEL_IP).expect("lab");
    let vdev = format!(
        "--vdev={}0,iface={}{}",
        pmd.driver, lab.ours_if, pmd.devargs
    );
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
    eprintln!("{test}: EAL {}", args.join(" "));
    // EAL probes the vdev inside rte_eal_init, and the PMD opens its socket then: in the
    // namespace of the calling thread, which must be ours. The socket stays bound to that
    // interface after the thread leaves.
    let (mut queue, pool, port) = {
        let _inside = InNetns::enter(&lab.ours).expect("enter our namespace");
        let eal = match Eal::init(&args) {
            Ok(eal) => eal,
            Err(e) => {
                skip(test, &format!("DPDK EAL unavailable: {e}"));
                return;
            }
        };
        let name = format!("{}0", pmd.driver);
        let id = eal.port_by_name(&name).expect("vdev probed");
        let pool = Mempool::new(eal, "interop_pool", pmd.pool, 0, DEFAULT_DATA_ROOM, None)
            .expect("mempool");
        let mut port = DpdkPort::new(eal, id, 1, pool, DpdkPortConfig::default()).expect("port");
        let queue = port.take_queue(0).expect("queue 0");
        (queue, pool, port)
    };
    let f = port.features();
    eprintln!("{test}: {f:?}, link {:?}", port.link());
    assert_eq!(f.driver, pmd.driver);
    assert_eq!(
        queue.mac().0,
        lab.ours_mac,
        "the PMD reports the veth's MAC"
    );
    assert_eq!(queue.max_frame(), 1514, "MTU 1500 + Ethernet header");

    // Does our TX pass the qdisc? A counting pfifo on our end, one short case, its counter.
    lab.tc_ours(&["qdisc", "replace", "dev", &lab.ours_if, "root", "pfifo"])
        .expect("pfifo qdisc");
    let before = queue.stats().tx_packets;
    run_case(
        &lab,
        &mut queue,
        Case::WeConnectAndSend,
        256 << 10,
        6999,
        Duration::from_secs(60),
        None,
    )
    .unwrap_or_else(|e| panic!("{test} (pfifo): {e}"));
    let ours = queue.stats().tx_packets - before;
    let through = lab
        .ours_qdisc_sent_packets()
        .expect("tc -s qdisc")
        .unwrap_or(0);
    eprintln!("{test}: we sent {ours} frames, our qdisc passed {through}");
    if pmd.through_qdisc {
        assert!(
            through >= ours,
            "{test}: our frames bypass the qdisc ({through} of {ours}), netem could not impair them"
        );
    } else {
        assert!(
            through < ours,
            "{test}: expected our frames to bypass the qdisc ({through} of {ours})"
        );
    }
    lab.tc_ours(&["qdisc", "del", "dev", &lab.ours_if, "root"])
        .expect("remove pfifo");

    run_suite(
        pmd.driver,
        &lab,
        &mut queue,
        mb << 20,
        impaired_kb << 10,
        pmd.through_qdisc,
    );

    let s = queue.stats();
    assert_eq!(s.dropped, 0, "{s:?}");
    assert_eq!(queue.rx_chained(), 0);
    assert_eq!(queue.alloc_failures(), 0);
    let eth = port.eth_stats().expect("eth stats");
    eprintln!(
        "{test}: ethdev ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}; pool {} of {} free",
        eth.ipackets,
        eth.opackets,
        eth.imissed,
        eth.ierrors,
        eth.oerrors,
        eth.rx_nombuf,
        pool.available(),
        pmd.pool
    );
    assert_eq!(eth.rx_nombuf, 0);
    assert!(
        pool.available() + pmd.held >= pmd.pool,
        "{test}: mbufs leaked: {} of {} free, the PMD may hold {}",
        pool.available(),
        pmd.pool,
        pmd.held
    );
    // The port stops when its last handle drops; then the lab (and the veth) goes.
    drop(queue);
    drop(port);
    drop(lab);
}
