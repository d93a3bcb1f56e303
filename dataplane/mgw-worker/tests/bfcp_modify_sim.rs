//! H.248 Modify of a live leg (FlowOp::Update): the core's UDP peer of a BFCP relay moves to a
//! new address and port mid-session. Datagrams go to the new peer at once, the old source is
//! no longer accepted, and a change of transport or local address is refused and counted.

mod support;

use mgw_core::host::Host;
use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address};
use mgw_worker::*;
use std::net::SocketAddr;
use support::{floor_request, stepper, udp_lab, udp_leg, UdpLab, MAC_GW, MAC_PEERS};

const GW: Ipv4Address = Ipv4Address([10, 11, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 11, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 11, 0, 3]);
const CORE2: Ipv4Address = Ipv4Address([10, 11, 0, 4]);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

#[test]
fn a_live_udp_leg_follows_its_peer_to_a_new_address() {
    let UdpLab {
        vc,
        ctl,
        mut worker,
        mut peers,
    } = udp_lab(GW, &[UE, CORE, CORE2]);
    let leg = |local, remote| udp_leg(local, remote, false);
    ctl.send(FlowOp::Install(ContextProgram {
        context: 8,
        generation: 1,
        application: Application::Bfcp,
        aware: true,
        legs: [
            leg(sa(GW, 5000), Some(sa(UE, 7000))),
            leg(sa(GW, 5002), Some(sa(CORE, 6000))),
        ],
    }))
    .unwrap();
    for ip in [UE, CORE, CORE2] {
        worker.edge().add_neighbor(Instant::ZERO, ip, MAC_PEERS);
    }
    peers.edge().add_neighbor(Instant::ZERO, GW, MAC_GW);
    let mut step = stepper(vc);
    step(&mut worker, &mut peers);
    let mut at: Vec<(SocketAddr, u16)> = Vec::new();
    let collect = |peers: &mut Host<_>, at: &mut Vec<(SocketAddr, u16)>| {
        while let Some(d) = peers.recv() {
            let IpAddress::V4(ip) = d.dst.0 else { continue };
            let p = d.payload();
            at.push((sa(ip, d.dst.1), u16::from_be_bytes([p[8], p[9]])));
        }
    };
    for i in 0..5u16 {
        peers.send_udp_from(UE, 7000, GW, 5000, &floor_request(i));
        step(&mut worker, &mut peers);
        collect(&mut peers, &mut at);
    }
    // The core moves (Modify with a new Remote c=/m=): the live leg follows.
    let moved = leg(sa(GW, 5002), Some(sa(CORE2, 6100)));
    ctl.send(FlowOp::Update {
        context: 8,
        generation: 1,
        side: Side::B,
        leg: moved,
    })
    .unwrap();
    // Refused: another local port, another transport.
    for bad in [
        leg(sa(GW, 5004), Some(sa(CORE2, 6100))),
        LegProgram {
            transport: Transport::DtlsUdp,
            ..moved
        },
    ] {
        ctl.send(FlowOp::Update {
            context: 8,
            generation: 1,
            side: Side::B,
            leg: bad,
        })
        .unwrap();
    }
    step(&mut worker, &mut peers);
    for i in 5..10u16 {
        peers.send_udp_from(UE, 7000, GW, 5000, &floor_request(i));
        step(&mut worker, &mut peers);
        collect(&mut peers, &mut at);
    }
    // The new peer is accepted, the old one no longer.
    peers.send_udp_from(CORE2, 6100, GW, 5002, &floor_request(100));
    peers.send_udp_from(CORE, 6000, GW, 5002, &floor_request(101));
    step(&mut worker, &mut peers);
    collect(&mut peers, &mut at);

    let want: Vec<(SocketAddr, u16)> = (0..5)
        .map(|i| (sa(CORE, 6000), i))
        .chain((5..10).map(|i| (sa(CORE2, 6100), i)))
        .chain([(sa(UE, 7000), 100)])
        .collect();
    assert_eq!(at, want);
    let s = worker.stats();
    assert_eq!((s.updates_live, s.updates_refused), (1, 2), "{s:?}");
    assert_eq!(s.wrong_source, 1, "the old core address is not accepted");
}
