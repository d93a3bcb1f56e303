//! BFCP over UDP ↔ UDP through a worker (aware mode): valid messages are relayed unchanged both
//! ways, a malformed datagram is counted and dropped without hurting the session, and a datagram
//! from a source other than the latched peer is dropped.

mod support;

use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address};
use mgw_worker::*;
use std::net::SocketAddr;
use support::{floor_request, stepper, udp_lab, udp_leg, UdpLab, MAC_GW, MAC_PEERS};

const GW: Ipv4Address = Ipv4Address([10, 7, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 7, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 7, 0, 3]);
const OTHER: Ipv4Address = Ipv4Address([10, 7, 0, 4]);

#[test]
fn bfcp_udp_relay_validates_and_latches() {
    let UdpLab {
        vc,
        ctl,
        mut worker,
        mut peers,
    } = udp_lab(GW, &[UE, CORE, OTHER]);
    let leg = udp_leg;
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
        worker.edge().add_neighbor(Instant::ZERO, ip, MAC_PEERS);
    }
    peers.edge().add_neighbor(Instant::ZERO, GW, MAC_GW);
    let mut step = stepper(vc);
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
