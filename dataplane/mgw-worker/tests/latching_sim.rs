//! H.248.37 latching of UDP and DTLS legs (issue 12, finding 6): a leg learns its peer only when
//! its program asks for latching, and only from a datagram that validates for the leg (a DTLS
//! ClientHello, a well-formed BFCP or UDPTL message). Without latching, datagrams from anyone
//! but the programmed remote are dropped and counted, and the remote never moves.

mod support;

use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address};
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{DtlsConfig, DtlsSession, HashFunction, Identity, PeerFingerprints, SecurityRole};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;
use support::{floor_request, stepper, udp_lab, udp_lab_with, udp_leg, UdpLab, MAC_GW, MAC_PEERS};

const GW: Ipv4Address = Ipv4Address([10, 8, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 8, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 8, 0, 3]);
const ATTACKER: Ipv4Address = Ipv4Address([10, 8, 0, 66]);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

fn neighbours(lab: &mut UdpLab) {
    for ip in [UE, CORE, ATTACKER] {
        lab.worker.edge().add_neighbor(Instant::ZERO, ip, MAC_PEERS);
    }
    lab.peers.edge().add_neighbor(Instant::ZERO, GW, MAC_GW);
}

fn latched_events(ctl: &ControlEnd) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    while let Some(e) = ctl.recv() {
        if let FlowEvent::Latched { remote, .. } = e {
            out.push(remote);
        }
    }
    out
}

/// Datagrams the peers received, by destination address.
/// Installs `context` (generation 1) with `legs`.
fn install(
    lab: &mut UdpLab,
    context: u32,
    application: Application,
    aware: bool,
    legs: [LegProgram; 2],
) {
    lab.ctl
        .send(FlowOp::Install(ContextProgram {
            context,
            generation: 1,
            application,
            aware,
            legs,
        }))
        .unwrap();
}

/// The core leg of the latching cases: plain UDP from GW:5002 to CORE:6000, not latching.
fn core_leg() -> LegProgram {
    udp_leg(sa(GW, 5002), Some(sa(CORE, 6000)), false)
}

fn received(lab: &mut UdpLab, at: Ipv4Address) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(d) = lab.peers.recv() {
        if d.dst.0 == IpAddress::V4(at) {
            out.push((d.dst.1, d.payload().to_vec()));
        }
    }
    out
}

#[test]
fn latching_off_a_foreign_source_is_dropped_counted_and_does_not_move_the_remote() {
    let mut lab = udp_lab(GW, &[UE, CORE, ATTACKER]);
    neighbours(&mut lab);
    // Leg A knows its peer (UE:7000); leg B does not know its peer yet (no Remote SDP) and
    // does not latch: nothing may be learned on either.
    install(
        &mut lab,
        1,
        Application::Opaque,
        false,
        [
            udp_leg(sa(GW, 5000), Some(sa(UE, 7000)), false),
            udp_leg(sa(GW, 5002), None, false),
        ],
    );
    let mut step = stepper(lab.vc.clone());
    step(&mut lab.worker, &mut lab.peers);
    // The attacker guesses both ports.
    lab.peers
        .send_udp_from(ATTACKER, 9999, GW, 5000, b"hijack leg A");
    lab.peers
        .send_udp_from(ATTACKER, 9999, GW, 5002, b"hijack leg B");
    step(&mut lab.worker, &mut lab.peers);
    assert_eq!(
        lab.worker.stats().wrong_source,
        2,
        "{:?}",
        lab.worker.stats()
    );
    assert!(latched_events(&lab.ctl).is_empty(), "nothing latched");
    assert!(received(&mut lab, ATTACKER).is_empty());
    // The remote of leg A is still the programmed one: the core's traffic cannot reach it yet
    // (leg B has no peer), but once leg B is programmed, what arrives there goes to UE:7000.
    lab.ctl
        .send(FlowOp::Update {
            context: 1,
            generation: 1,
            side: Side::B,
            leg: core_leg(),
        })
        .unwrap();
    step(&mut lab.worker, &mut lab.peers);
    lab.peers.send_udp_from(CORE, 6000, GW, 5002, b"to the UE");
    lab.peers.send_udp_from(ATTACKER, 9999, GW, 5000, b"again");
    step(&mut lab.worker, &mut lab.peers);
    let at_ue = received(&mut lab, UE);
    assert_eq!(at_ue, vec![(7000, b"to the UE".to_vec())]);
    assert_eq!(lab.worker.stats().wrong_source, 3);
    assert!(latched_events(&lab.ctl).is_empty());
}

#[test]
fn latching_on_garbage_does_not_latch_a_valid_bfcp_message_does() {
    let mut lab = udp_lab(GW, &[UE, CORE, ATTACKER]);
    neighbours(&mut lab);
    install(
        &mut lab,
        2,
        Application::Bfcp,
        true,
        [udp_leg(sa(GW, 5000), None, true), core_leg()],
    );
    let mut step = stepper(lab.vc.clone());
    step(&mut lab.worker, &mut lab.peers);
    lab.peers
        .send_udp_from(ATTACKER, 9999, GW, 5000, b"not BFCP, just a latch grab");
    step(&mut lab.worker, &mut lab.peers);
    assert!(
        latched_events(&lab.ctl).is_empty(),
        "garbage must not latch"
    );
    assert_eq!(lab.worker.stats().wrong_source, 1);
    lab.peers
        .send_udp_from(UE, 7000, GW, 5000, &floor_request(1));
    step(&mut lab.worker, &mut lab.peers);
    assert_eq!(latched_events(&lab.ctl), vec![sa(UE, 7000)]);
    assert_eq!(
        received(&mut lab, CORE),
        vec![(6000, floor_request(1))],
        "the latching message itself is relayed"
    );
    // Latched: a valid message from anyone else is not the peer.
    lab.peers
        .send_udp_from(ATTACKER, 9999, GW, 5000, &floor_request(2));
    step(&mut lab.worker, &mut lab.peers);
    assert!(latched_events(&lab.ctl).is_empty());
    assert_eq!(lab.worker.stats().wrong_source, 2);
    assert!(received(&mut lab, CORE).is_empty());
}

#[test]
fn latching_on_an_unaware_udptl_leg_latches_only_on_a_well_formed_udptl_datagram() {
    let mut lab = udp_lab(GW, &[UE, CORE, ATTACKER]);
    neighbours(&mut lab);
    install(
        &mut lab,
        3,
        Application::Udptl,
        false,
        [udp_leg(sa(GW, 5000), None, true), core_leg()],
    );
    let mut step = stepper(lab.vc.clone());
    step(&mut lab.worker, &mut lab.peers);
    // Two octets of sequence number and nothing else: not a UDPTL packet (T.38 §9.1).
    lab.peers.send_udp_from(ATTACKER, 9999, GW, 5000, &[0, 1]);
    step(&mut lab.worker, &mut lab.peers);
    assert!(
        latched_events(&lab.ctl).is_empty(),
        "garbage must not latch"
    );
    // seq 0, primary IFP of 2 octets, redundancy with no secondary IFPs.
    let udptl = [0, 0, 2, 0xaa, 0xbb, 0, 0];
    lab.peers.send_udp_from(UE, 7000, GW, 5000, &udptl);
    step(&mut lab.worker, &mut lab.peers);
    assert_eq!(latched_events(&lab.ctl), vec![sa(UE, 7000)]);
    assert_eq!(received(&mut lab, CORE), vec![(6000, udptl.to_vec())]);
}

#[test]
fn latching_on_a_dtls_leg_latches_on_a_client_hello_not_on_garbage() {
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let dtls = |id: &Identity| DtlsConfig::new(id, 1200, Duration::from_secs(20)).unwrap();
    let gw_cfg = dtls(&gw_id);
    let mut lab = udp_lab_with(GW, &[UE, CORE, ATTACKER], |c| c.dtls = Some(gw_cfg));
    neighbours(&mut lab);
    let mut access = udp_leg(sa(GW, 5000), None, true);
    access.transport = Transport::DtlsUdp;
    access.peer_fingerprints = PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256));
    install(&mut lab, 4, Application::Udptl, true, [access, core_leg()]);
    let mut step = stepper(lab.vc.clone());
    step(&mut lab.worker, &mut lab.peers);
    // A DTLS-looking record that is not a ClientHello (an alert in epoch 0), then noise.
    let alert = [21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40];
    lab.peers.send_udp_from(ATTACKER, 9999, GW, 5000, &alert);
    lab.peers
        .send_udp_from(ATTACKER, 9999, GW, 5000, b"\x16\xfe\xfdgarbage");
    step(&mut lab.worker, &mut lab.peers);
    assert!(
        latched_events(&lab.ctl).is_empty(),
        "garbage must not latch"
    );
    assert_eq!(lab.worker.stats().wrong_source, 2);
    // The UE's real ClientHello latches the leg.
    let mut ue = DtlsSession::new(
        &dtls(&ue_id),
        SecurityRole::Client,
        PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256)),
        "tls-id-1",
        Instant::ZERO,
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let DtlsOutput::Transmit(hello) = ue.poll(&mut buf) else {
        panic!("a DTLS client starts with its ClientHello");
    };
    let hello = hello.to_vec();
    lab.peers.send_udp_from(UE, 6000, GW, 5000, &hello);
    step(&mut lab.worker, &mut lab.peers);
    assert_eq!(latched_events(&lab.ctl), vec![sa(UE, 6000)]);
    // The handshake goes on with the UE: the gateway's flight goes there, not to the attacker.
    assert!(!received(&mut lab, UE).is_empty(), "the server flight");
}
