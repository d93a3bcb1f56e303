//! T.38 fax through a worker in the simulator: the UE speaks UDPTL over DTLS 1.2 to the access
//! leg, the core peer speaks plain UDPTL on the core leg. Every IFP must arrive unchanged both
//! ways, nothing may leave the core leg before the DTLS peer is authenticated, and a wrong
//! fingerprint must fail the context with no plaintext relayed.

use mgw_app::udptl::{ErrorRecovery, IfpList, UdptlConfig, UdptlRepr};
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::host::Host;
use mgw_core::link::LinkModel;
use mgw_core::port::Node;
use mgw_core::sim::Sim;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig, MemPort};
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{
    DtlsConfig, DtlsEvent, DtlsSession, HashFunction, Identity, PeerFingerprints, SecurityRole,
};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 9, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 9, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 9, 0, 3]);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

/// The far side of the worker's port: one host holding the UE's and the core peer's addresses.
struct Peers {
    host: Host<MemPort>,
    ue: DtlsSession,
    ue_deadline: Instant,
    ue_up: bool,
    ue_failed: bool,
    ue_received: Vec<Vec<u8>>,
    core_received: Vec<Vec<u8>>,
    /// The core's DTLS session, when the core leg is DTLS too.
    core: Option<DtlsSession>,
    core_deadline: Instant,
    core_up: bool,
    now: Instant,
}

impl Peers {
    fn pump_core(&mut self) {
        let mut buf = [0u8; 2048];
        let Some(core) = self.core.as_mut() else {
            return;
        };
        loop {
            match core.poll(&mut buf) {
                DtlsOutput::Transmit(d) => {
                    let d = d.to_vec();
                    self.host.send_udp_from(CORE, 7000, GW, 5002, &d);
                }
                DtlsOutput::Data(d) => self.core_received.push(d.to_vec()),
                DtlsOutput::Event(DtlsEvent::Established { .. }) => self.core_up = true,
                DtlsOutput::Event(_) => {}
                DtlsOutput::BufferTooSmall { .. } => panic!("2 KiB is enough for a DTLS datagram"),
                DtlsOutput::Wait(t) => {
                    self.core_deadline = t;
                    break;
                }
            }
        }
        self.host.flush();
    }

    fn pump_ue(&mut self) {
        let mut buf = [0u8; 2048];
        loop {
            match self.ue.poll(&mut buf) {
                DtlsOutput::Transmit(d) => {
                    let d = d.to_vec();
                    self.host.send_udp_from(UE, 6000, GW, 5000, &d);
                }
                DtlsOutput::Data(d) => self.ue_received.push(d.to_vec()),
                DtlsOutput::Event(DtlsEvent::Established { .. }) => self.ue_up = true,
                DtlsOutput::Event(DtlsEvent::Failed { .. }) => self.ue_failed = true,
                DtlsOutput::Event(_) => {}
                DtlsOutput::BufferTooSmall { .. } => panic!("2 KiB is enough for a DTLS datagram"),
                DtlsOutput::Wait(t) => {
                    self.ue_deadline = t;
                    break;
                }
            }
        }
        self.host.flush();
    }
}

impl Node for Peers {
    fn poll(&mut self, now: Instant) {
        self.now = now;
        self.host.poll(now);
        while let Some(d) = self.host.recv() {
            let to = d.dst.0;
            if to == mgw_core::wire::IpAddress::V4(UE) {
                let _ = self.ue.handle_datagram(d.payload(), now);
            } else if let Some(core) = self.core.as_mut() {
                let _ = core.handle_datagram(d.payload(), now);
            } else {
                self.core_received.push(d.payload().to_vec());
            }
        }
        if now >= self.ue_deadline {
            let _ = self.ue.handle_timeout(now);
        }
        if now >= self.core_deadline {
            if let Some(core) = self.core.as_mut() {
                let _ = core.handle_timeout(now);
            }
        }
        self.pump_ue();
        self.pump_core();
    }

    fn poll_at(&self) -> Option<Instant> {
        let h = self.host.poll_at();
        let timers = if self.core.is_some() {
            self.ue_deadline.min(self.core_deadline)
        } else {
            self.ue_deadline
        };
        Some(h.map_or(timers, |h| h.min(timers)).max(self.now))
    }
}

fn udptl(seq: u16, ifp: &[u8], prev: &[u8]) -> Vec<u8> {
    let items = [prev];
    let r = UdptlRepr {
        seq_number: seq,
        primary_ifp: ifp,
        error_recovery: ErrorRecovery::Redundancy(IfpList::Items(if seq == 0 {
            &[]
        } else {
            &items
        })),
    };
    let mut out = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut out).unwrap();
    out.truncate(n);
    out
}

struct Run {
    events: Vec<FlowEvent>,
    ue_received: Vec<Vec<u8>>,
    core_received: Vec<Vec<u8>>,
    sent_up: Vec<Vec<u8>>,
    sent_down: Vec<Vec<u8>>,
    ue_failed: bool,
}

fn run(wrong_fingerprint: bool, seed: u64) -> Run {
    run_with(wrong_fingerprint, false, seed)
}

fn run_with(wrong_fingerprint: bool, dtls_core: bool, seed: u64) -> Run {
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let core_id = Identity::generate_self_signed("core fax").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let other = Identity::generate_self_signed("somebody else").unwrap();
    let pool = Pool::new(4096, 2048);
    let vc = VirtualClock::new();
    let clock = Clock::Virtual(vc.clone());
    let link = LinkModel {
        delay: Duration::from_millis(5),
        loss: 0.02,
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let mem = MemConfig {
        a_to_b: link.clone(),
        b_to_a: link,
        seed,
        mac_a: EthernetAddress([2, 0, 0, 0, 9, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 9, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &clock, &mem);
    let dtls_cfg = |id: &Identity| DtlsConfig::new(id, 1200, Duration::from_secs(20)).unwrap();
    let (ctl, wend) = channel(64, 64);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.max_contexts = 16;
    cfg.dtls = Some(dtls_cfg(&gw_id));
    cfg.udptl = UdptlConfig::default();
    let mut worker = Worker::new(wport, cfg, wend).unwrap();
    let mut peer_edge = EdgeConfig::single(mem.mac_b, UE, 24);
    peer_edge.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let ue_trusts = if wrong_fingerprint { &other } else { &gw_id };
    let mut peers = Peers {
        host: Host::new(pport, peer_edge),
        ue: DtlsSession::new(
            &dtls_cfg(&ue_id),
            SecurityRole::Client,
            PeerFingerprints::one(ue_trusts.fingerprint(HashFunction::Sha256)),
            "tls-id-1",
            Instant::ZERO,
        )
        .unwrap(),
        ue_deadline: Instant::ZERO,
        ue_up: false,
        ue_failed: false,
        ue_received: Vec::new(),
        core_received: Vec::new(),
        core: dtls_core.then(|| {
            DtlsSession::new(
                &dtls_cfg(&core_id),
                SecurityRole::Server,
                PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256)),
                "core-1",
                Instant::ZERO,
            )
            .unwrap()
        }),
        core_deadline: Instant::ZERO,
        core_up: false,
        now: Instant::ZERO,
    };
    let leg = |local, remote, transport, role| LegProgram {
        local,
        remote: Some(remote),
        transport,
        tcp_role: TcpRole::Passive,
        establish_now: true,
        latching: false,
        security_role: role,
        peer_fingerprints: PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256)),
        msrp: None,
    };
    ctl.send(FlowOp::Install(ContextProgram {
        context: 7,
        generation: 1,
        application: Application::Udptl,
        aware: true,
        legs: [
            leg(
                sa(GW, 5000),
                sa(UE, 6000),
                Transport::DtlsUdp,
                SecurityRole::Server,
            ),
            if dtls_core {
                LegProgram {
                    peer_fingerprints: PeerFingerprints::one(
                        core_id.fingerprint(HashFunction::Sha256),
                    ),
                    ..leg(
                        sa(GW, 5002),
                        sa(CORE, 7000),
                        Transport::DtlsUdp,
                        SecurityRole::Client,
                    )
                }
            } else {
                leg(
                    sa(GW, 5002),
                    sa(CORE, 7000),
                    Transport::Udp,
                    SecurityRole::Server,
                )
            },
        ],
    }))
    .unwrap();

    let mut sent_up = Vec::new();
    let mut sent_down = Vec::new();
    let mut events = Vec::new();
    let mut seq = 0u16;
    for round in 0..200u64 {
        let t = Instant::from_millis(round * 50);
        vc.set(t);
        // From round 20 on (the handshake has had a second), a page of IFPs each way.
        if round >= 20 && peers.ue_up && (!dtls_core || peers.core_up) && seq < 60 {
            let up = udptl(seq, format!("ifp-up-{seq:04}").as_bytes(), b"prev");
            let _ = peers.ue.send(&up);
            sent_up.push(up);
            let down = udptl(seq, format!("ifp-down-{seq:04}").as_bytes(), b"prev");
            match peers.core.as_mut() {
                Some(core) => {
                    let _ = core.send(&down);
                }
                None => {
                    peers.host.send_udp_from(CORE, 7000, GW, 5002, &down);
                }
            }
            sent_down.push(down);
            seq += 1;
        }
        // Before the UE is up, the core peer already sends: nothing may reach the UE in clear.
        if round == 5 && !dtls_core {
            peers
                .host
                .send_udp_from(CORE, 7000, GW, 5002, b"early core datagram");
        }
        peers.pump_ue();
        let mut sim = Sim::new(vc.clone(), vec![&mut worker, &mut peers]);
        sim.run(t + Duration::from_millis(49), 100_000, || false);
        while let Some(e) = ctl.recv() {
            events.push(e);
        }
    }
    ctl.send(FlowOp::Release {
        context: 7,
        generation: 1,
    })
    .unwrap();
    let t = Instant::from_millis(200 * 50);
    vc.set(t);
    let mut sim = Sim::new(vc.clone(), vec![&mut worker, &mut peers]);
    sim.run(t + Duration::from_secs(1), 100_000, || false);
    while let Some(e) = ctl.recv() {
        events.push(e);
    }
    Run {
        events,
        ue_received: peers.ue_received,
        core_received: peers.core_received,
        sent_up,
        sent_down,
        ue_failed: peers.ue_failed,
    }
}

/// Items of `sent` that arrived, in order (the link loses ~2% each way and UDPTL is not retried).
fn check_subsequence(sent: &[Vec<u8>], got: &[Vec<u8>]) {
    let mut it = sent.iter();
    for g in got {
        assert!(
            it.any(|s| s == g),
            "received a datagram that was not sent, or out of order: {g:?}"
        );
    }
}

#[test]
fn udptl_over_dtls_to_plain_udptl_and_back() {
    let r = run(false, 3);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, FlowEvent::Installed { context: 7, .. })));
    assert!(
        r.events.iter().any(|e| matches!(
            e,
            FlowEvent::SecureUp {
                context: 7,
                side: Side::A
            }
        )),
        "{:?}",
        r.events
    );
    assert!(r.sent_up.len() >= 50);
    // Most get through a 2% loss link, unchanged and in order.
    assert!(
        r.core_received.len() >= r.sent_up.len() * 9 / 10,
        "{} of {}",
        r.core_received.len(),
        r.sent_up.len()
    );
    check_subsequence(&r.sent_up, &r.core_received);
    assert!(r.ue_received.len() >= r.sent_down.len() * 9 / 10);
    check_subsequence(&r.sent_down, &r.ue_received);
    assert!(!r.ue_received.iter().any(|d| d == b"early core datagram"));
    let released = r.events.iter().find_map(|e| match e {
        FlowEvent::Released {
            context: 7, stats, ..
        } => Some(*stats),
        _ => None,
    });
    let stats = released.expect("released with statistics");
    assert!(stats[0].messages_received as usize >= r.core_received.len());
    assert_eq!(
        stats[1].messages_sent, stats[0].messages_received,
        "every valid UE datagram was relayed"
    );
    assert!(stats[1].messages_received as usize >= r.ue_received.len());
    assert!(
        stats[1].app_errors >= 1,
        "the early non-UDPTL datagram is counted as malformed"
    );
}

#[test]
fn fingerprint_mismatch_fails_the_context_and_relays_nothing() {
    // The UE expects another certificate: it aborts with bad_certificate; the gateway must
    // report the failure, release the context and never relay a byte.
    let r = run(true, 4);
    assert!(r.ue_failed);
    assert!(r.sent_up.is_empty());
    assert!(r.core_received.is_empty(), "nothing reaches the core side");
    assert!(r.ue_received.is_empty());
    assert!(
        r.events.iter().any(|e| matches!(
            e,
            FlowEvent::SecureFailed {
                context: 7,
                side: Side::A,
                ..
            }
        )) || r
            .events
            .iter()
            .any(|e| matches!(e, FlowEvent::PeerClosed { context: 7, .. })),
        "{:?}",
        r.events
    );
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, FlowEvent::Released { context: 7, .. })));
}

#[test]
fn dtls_to_dtls_back_to_back() {
    // Both legs DTLS: the gateway is the UE's DTLS server and the core's DTLS client, each leg
    // authenticated by its own fingerprint; UDPTL crosses decrypted and re-encrypted.
    let r = run_with(false, true, 9);
    let ups = r
        .events
        .iter()
        .filter(|e| matches!(e, FlowEvent::SecureUp { context: 7, .. }))
        .count();
    assert_eq!(ups, 2, "{:?}", r.events);
    assert!(r.sent_up.len() >= 50);
    assert!(
        r.core_received.len() >= r.sent_up.len() * 9 / 10,
        "{} of {}",
        r.core_received.len(),
        r.sent_up.len()
    );
    check_subsequence(&r.sent_up, &r.core_received);
    assert!(r.ue_received.len() >= r.sent_down.len() * 9 / 10);
    check_subsequence(&r.sent_down, &r.ue_received);
}
