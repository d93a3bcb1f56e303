//! A new flow's first packets are not lost to ARP: frames the worker sends before their next
//! hop is resolved are held (bounded) and leave as soon as the ARP answer arrives; a next hop
//! that never answers has its frames dropped after `arp_hold_time`, counted.

mod support;

use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address};
use mgw_worker::*;
use std::net::SocketAddr;
use support::{stepper, udp_lab, udp_leg, UdpLab, MAC_GW};

const GW: Ipv4Address = Ipv4Address([10, 8, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 8, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 8, 0, 3]);
/// On the subnet, but nobody answers ARP for it.
const SILENT: Ipv4Address = Ipv4Address([10, 8, 0, 9]);

#[test]
fn first_datagrams_wait_for_arp_instead_of_being_lost() {
    // The peers answer ARP for UE and CORE; the worker knows no neighbour at the start.
    let UdpLab {
        vc,
        ctl,
        mut worker,
        mut peers,
    } = udp_lab(GW, &[UE, CORE]);
    peers.edge().add_neighbor(Instant::ZERO, GW, MAC_GW);
    let leg = |local, remote| udp_leg(local, Some(remote), false);
    let install = |context, a: u16, b: u16, core: Ipv4Address| {
        ctl.send(FlowOp::Install(ContextProgram {
            context,
            generation: 1,
            application: Application::Bfcp,
            aware: false,
            legs: [
                leg(SocketAddr::from((GW.0, a)), SocketAddr::from((UE.0, 7000))),
                leg(
                    SocketAddr::from((GW.0, b)),
                    SocketAddr::from((core.0, 6000)),
                ),
            ],
        }))
        .unwrap();
    };
    install(1, 5000, 5002, CORE);
    install(2, 5004, 5006, SILENT);
    let mut step = stepper(vc);
    step(&mut worker, &mut peers);

    // Three datagrams at once towards a core whose MAC the worker has yet to learn.
    for i in 0..3u8 {
        peers.send_udp_from(UE, 7000, GW, 5000, &[b'u', i]);
    }
    step(&mut worker, &mut peers);
    let (mut at_core, mut at_ue) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        while let Some(d) = peers.recv() {
            if d.dst.0 == IpAddress::V4(CORE) {
                at_core.push(d.payload().to_vec());
                // The core answers: the UE's MAC is unknown to the worker too.
                peers.send_udp_from(CORE, 6000, GW, 5002, &[b'c', d.payload()[1]]);
            } else {
                assert_eq!(d.dst.0, IpAddress::V4(UE));
                at_ue.push(d.payload().to_vec());
            }
        }
        step(&mut worker, &mut peers);
    }
    assert_eq!(
        at_core,
        vec![b"u\0".to_vec(), b"u\x01".to_vec(), b"u\x02".to_vec()]
    );
    assert_eq!(
        at_ue,
        vec![b"c\0".to_vec(), b"c\x01".to_vec(), b"c\x02".to_vec()]
    );
    let s = worker.stats();
    assert!(s.arp_held >= 3, "the first datagrams were held: {s:?}");
    assert_eq!((s.arp_expired, s.tx_failed), (0, 0), "{s:?}");

    // Towards a next hop that never answers: held, then dropped after arp_hold_time (1 s).
    peers.send_udp_from(UE, 7000, GW, 5004, b"to nowhere");
    step(&mut worker, &mut peers);
    let held = worker.stats().arp_held;
    assert!(held > s.arp_held, "{:?}", worker.stats());
    for _ in 0..150 {
        step(&mut worker, &mut peers);
    }
    let s = worker.stats();
    assert_eq!((s.arp_expired, s.tx_failed), (1, 1), "{s:?}");
    assert!(peers.recv().is_none());
}
