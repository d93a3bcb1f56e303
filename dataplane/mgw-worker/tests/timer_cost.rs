//! Timers cost what is due, not what is installed (issue 12, finding 12): with a thousand idle
//! contexts installed and one DTLS leg retransmitting its ClientHello to a peer that never
//! answers, each timer run looks at the due leg only.

mod support;

use mgw_core::time::Instant;
use mgw_core::wire::Ipv4Address;
use mgw_tls::{DtlsConfig, HashFunction, Identity, PeerFingerprints, SecurityRole};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;
use support::{stepper, udp_lab_with, udp_leg, MAC_GW, MAC_PEERS};

const GW: Ipv4Address = Ipv4Address([10, 6, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 6, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 6, 0, 3]);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

#[test]
fn a_timer_run_visits_the_due_leg_not_the_thousand_idle_contexts() {
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let peer_id = Identity::generate_self_signed("silent peer").unwrap();
    let dtls = DtlsConfig::new(&gw_id, 1200, Duration::from_secs(60)).unwrap();
    let mut lab = udp_lab_with(GW, &[UE, CORE], |c| {
        c.max_contexts = 1024;
        c.dtls = Some(dtls);
    });
    lab.worker.edge().add_neighbor(Instant::ZERO, UE, MAC_PEERS);
    lab.worker
        .edge()
        .add_neighbor(Instant::ZERO, CORE, MAC_PEERS);
    lab.peers.edge().add_neighbor(Instant::ZERO, GW, MAC_GW);
    let mut step = stepper(lab.vc.clone());
    for i in 0..1000u16 {
        let ctx = ContextProgram {
            context: u32::from(i) + 1,
            generation: 1,
            application: Application::Opaque,
            aware: false,
            legs: [
                udp_leg(sa(GW, 10_000 + 2 * i), Some(sa(UE, 20_000 + i)), false),
                udp_leg(sa(GW, 10_001 + 2 * i), Some(sa(CORE, 20_000 + i)), false),
            ],
        };
        while lab.ctl.send(FlowOp::Install(ctx)).is_err() {
            step(&mut lab.worker, &mut lab.peers);
            // The acknowledgements: a worker whose event backlog is half full takes no command.
            while lab.ctl.recv().is_some() {}
        }
    }
    // A DTLS client towards a peer that never answers: its ClientHello is retransmitted on
    // its timer (RFC 6347 §4.2.4.1: 1 s, doubling).
    let mut client = udp_leg(sa(GW, 5000), Some(sa(UE, 6000)), false);
    client.transport = Transport::DtlsUdp;
    client.security_role = SecurityRole::Client;
    client.peer_fingerprints = PeerFingerprints::one(peer_id.fingerprint(HashFunction::Sha256));
    let dtls_ctx = ContextProgram {
        context: 5000,
        generation: 1,
        application: Application::Opaque,
        aware: false,
        legs: [client, udp_leg(sa(GW, 5002), Some(sa(CORE, 6000)), false)],
    };
    while lab.ctl.send(FlowOp::Install(dtls_ctx)).is_err() {
        step(&mut lab.worker, &mut lab.peers);
    }
    for _ in 0..20 {
        step(&mut lab.worker, &mut lab.peers);
    }
    assert_eq!(lab.worker.contexts(), 1001);
    let before = lab.worker.stats();
    let mut hellos = 0;
    // 8 s of virtual time: a few retransmissions.
    for _ in 0..800 {
        step(&mut lab.worker, &mut lab.peers);
        while let Some(d) = lab.peers.recv() {
            hellos += usize::from(d.dst.1 == 6000);
        }
    }
    let s = lab.worker.stats();
    let (runs, legs) = (
        s.timer_runs - before.timer_runs,
        s.timer_legs - before.timer_legs,
    );
    assert!(hellos >= 2, "the ClientHello is retransmitted: {hellos}");
    assert!(runs >= 2, "{runs} timer runs");
    assert!(
        legs <= 2 * runs,
        "{legs} legs looked at in {runs} timer runs, with one leg due each time"
    );
}
