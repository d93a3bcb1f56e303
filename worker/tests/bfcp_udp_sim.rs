//! BFCP over UDP ↔ UDP through a worker (aware mode): valid messages are relayed unchanged both
//! ways, a malformed datagram is counted and dropped without hurting the session, and a datagram
//! from a source other than the latched peer is dropped.

use dataplane::buf::Pool;
use dataplane::edge::{EdgeConfig, InterfaceAddr};
use dataplane::host::Host;
use dataplane::port::mem::{pair, MemConfig};
use dataplane::sim::{Clock, LinkModel, Sim, VirtualClock};
use dataplane::time::Instant;
use dataplane::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_tls::{PeerFingerprints, Role};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 7, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 7, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 7, 0, 3]);
const OTHER: Ipv4Address = Ipv4Address([10, 7, 0, 4]);

/// A BFCP version 2 (UDP) FloorRequest with a FLOOR-ID attribute.
fn floor_request(tid: u16) -> Vec<u8> {
    let mut m = vec![0x40, 1, 0, 1, 0, 0, 0, 9];
    m.extend_from_slice(&tid.to_be_bytes());
    m.extend_from_slice(&7u16.to_be_bytes());
    m.extend_from_slice(&[(2 << 1) | 1, 4, 0, 1]);
    m
}

#[test]
fn bfcp_udp_relay_validates_and_latches() {
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
        mac_a: EthernetAddress([2, 0, 0, 0, 7, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 7, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &Clock::Virtual(vc.clone()), &mem);
    let (ctl, wend) = channel(16, 64);
    let mut worker = Worker::new(
        wport,
        WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24)),
        wend,
    )
    .unwrap();
    let mut pe = EdgeConfig::single(mem.mac_b, UE, 24);
    pe.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    pe.addrs.push(InterfaceAddr {
        addr: OTHER,
        prefix_len: 24,
    });
    let mut peers = Host::new(pport, pe);
    let leg = |local, remote, latching| LegProgram {
        local,
        remote,
        transport: Transport::Udp,
        tcp_open: TcpOpen::Passive,
        establish_now: true,
        latching,
        security_role: Role::Server,
        peer_fingerprints: PeerFingerprints::new(),
        msrp: None,
    };
    ctl.send(FlowOp::Install(ContextProgram {
        context: 3,
        generation: 1,
        application: Application::Bfcp,
        aware: true,
        legs: [
            // The UE's address is latched from its first datagram (it is behind a NAT).
            leg(SocketAddr::from((GW.0, 5000)), None, true),
            leg(
                SocketAddr::from((GW.0, 5002)),
                Some(SocketAddr::from((CORE.0, 6000))),
                false,
            ),
        ],
    }))
    .unwrap();
    // Static neighbours: this test is about BFCP, not ARP (tests/arp_hold_sim.rs is).
    for ip in [UE, CORE, OTHER] {
        worker.edge().add_neighbor(Instant::ZERO, ip, mem.mac_b);
    }
    peers.edge().add_neighbor(Instant::ZERO, GW, mem.mac_a);
    let mut t = Instant::ZERO;
    let mut step = |worker: &mut Worker<_>, peers: &mut Host<_>| {
        t += Duration::from_millis(10);
        vc.set(t);
        peers.flush();
        let mut sim = Sim::new(vc.clone(), vec![worker, peers]);
        sim.run(t + Duration::from_millis(9), 10_000, || false);
    };
    step(&mut worker, &mut peers);
    let (mut at_core, mut at_ue) = (Vec::new(), Vec::new());
    for i in 0..20u16 {
        peers.send_udp_from(UE, 7000, GW, 5000, &floor_request(i));
        if i == 5 {
            peers.send_udp_from(UE, 7000, GW, 5000, b"not bfcp at all");
            peers.send_udp_from(OTHER, 7000, GW, 5000, &floor_request(999));
        }
        step(&mut worker, &mut peers);
        while let Some(d) = peers.recv() {
            if d.dst.0 == IpAddress::V4(CORE) {
                at_core.push(d.payload().to_vec());
                // The core answers each request on the core leg.
                let mut answer = d.payload().to_vec();
                answer[1] = 4; // FloorRequestStatus
                peers.send_udp_from(CORE, 6000, GW, 5002, &answer);
            } else {
                at_ue.push(d.payload().to_vec());
            }
        }
    }
    for _ in 0..5 {
        step(&mut worker, &mut peers);
        while let Some(d) = peers.recv() {
            at_ue.push(d.payload().to_vec());
        }
    }
    let sent: Vec<Vec<u8>> = (0..20).map(floor_request).collect();
    assert_eq!(
        at_core, sent,
        "every valid request, unchanged, and nothing else"
    );
    assert_eq!(at_ue.len(), 20);
    assert!(at_ue.iter().all(|m| m[1] == 4));
    let s = worker.stats();
    assert_eq!((s.app_errors, s.wrong_source), (1, 1), "{s:?}");
    ctl.send(FlowOp::Release {
        context: 3,
        generation: 1,
    })
    .unwrap();
    step(&mut worker, &mut peers);
    let mut released = None;
    while let Some(e) = ctl.recv() {
        if let FlowEvent::Released { stats, .. } = e {
            released = Some(stats);
        }
    }
    let stats = released.expect("released");
    assert_eq!(stats[0].messages_received, 20);
    assert_eq!(stats[0].app_errors, 1);
    assert_eq!(stats[1].messages_received, 20);
}
