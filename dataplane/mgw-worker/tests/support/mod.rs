//! The simulated lab of the worker's UDP-relay tests: the worker and a simulated host (every
//! peer address on one interface) at the two ends of an in-memory link with 1 ms of delay, on a
//! virtual clock. Each test binary uses what it needs.
#![allow(dead_code)]

use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::host::Host;
use mgw_core::link::LinkModel;
use mgw_core::sim::Sim;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig, MemPort};
use mgw_tls::{PeerFingerprints, SecurityRole};
use mgw_worker::{channel, ControlEnd, LegProgram, TcpRole, Transport, Worker, WorkerConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// The worker's MAC.
pub const MAC_GW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 7, 1]);
/// The peers' MAC.
pub const MAC_PEERS: EthernetAddress = EthernetAddress([2, 0, 0, 0, 7, 2]);

/// The lab's parts.
pub struct UdpLab {
    /// The clock both ends read.
    pub vc: VirtualClock,
    /// The control thread's end of the worker's rings.
    pub ctl: ControlEnd,
    /// The worker (address `gw`, default configuration).
    pub worker: Worker<MemPort>,
    /// The peers: `peers[0]` is the host's first address, the rest are added to it.
    pub peers: Host<MemPort>,
}

/// A worker at `gw` and a host holding `peers` (all in one /24).
pub fn udp_lab(gw: Ipv4Address, peers: &[Ipv4Address]) -> UdpLab {
    udp_lab_with(gw, peers, |_| {})
}

/// As [`udp_lab`], with the worker's configuration changed by `tune` first (a DTLS identity,
/// smaller tables).
pub fn udp_lab_with(
    gw: Ipv4Address,
    peers: &[Ipv4Address],
    tune: impl FnOnce(&mut WorkerConfig),
) -> UdpLab {
    let pool = Pool::new(2048, 2048);
    let vc = VirtualClock::new();
    let link = LinkModel {
        delay: Duration::from_millis(1),
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let mem = MemConfig {
        a_to_b: link.clone(),
        b_to_a: link,
        mac_a: MAC_GW,
        mac_b: MAC_PEERS,
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &Clock::Virtual(vc.clone()), &mem);
    let (ctl, wend) = channel(16, 64);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(MAC_GW, gw, 24));
    tune(&mut cfg);
    let worker = Worker::new(wport, cfg, wend).expect("worker");
    let mut pe = EdgeConfig::single(MAC_PEERS, peers[0], 24);
    for &addr in &peers[1..] {
        pe.addrs.push(InterfaceAddr {
            addr,
            prefix_len: 24,
        });
    }
    UdpLab {
        vc,
        ctl,
        worker,
        peers: Host::new(pport, pe),
    }
}

/// A stepper: each call advances the clock 10 ms, flushes the peers and runs both ends for
/// 9 ms of virtual time.
pub fn stepper(vc: VirtualClock) -> impl FnMut(&mut Worker<MemPort>, &mut Host<MemPort>) {
    let mut t = Instant::ZERO;
    move |worker, peers| {
        t += Duration::from_millis(10);
        vc.set(t);
        peers.flush();
        let mut sim = Sim::new(vc.clone(), vec![worker, peers]);
        sim.run(t + Duration::from_millis(9), 10_000, || false);
    }
}

/// A plain UDP leg at `local` towards `remote` (or latching its peer).
pub fn udp_leg(local: SocketAddr, remote: Option<SocketAddr>, latching: bool) -> LegProgram {
    LegProgram {
        local,
        remote,
        transport: Transport::Udp,
        tcp_role: TcpRole::Passive,
        establish_now: true,
        latching,
        security_role: SecurityRole::Server,
        peer_fingerprints: PeerFingerprints::new(),
        msrp: None,
    }
}

/// A BFCP version 2 (UDP) FloorRequest (RFC 8855 §5.3.1) for floor 1: conference 9, user 7.
pub fn floor_request(tid: u16) -> Vec<u8> {
    let mut out = Vec::new();
    mgw_app::bfcp::floor_request(
        &mut out,
        &mgw_app::bfcp::Header::new(2, 9, tid, 7),
        &mgw_app::bfcp::FloorRequest::new(&[1]),
    )
    .expect("a FloorRequest for one floor");
    out
}
