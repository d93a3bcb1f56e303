//! MSRP through a worker in the simulator: a UE speaks MSRP over TLS to the access leg (the
//! gateway is TLS server and passive TCP, latching the UE's address), the gateway connects to
//! the core peer over plain TCP. Both directions must arrive byte for byte, Subtract must end
//! with close_notify to the UE and FIN to the core, and failures (fingerprint mismatch,
//! malformed MSRP, core refusing) must release the context with nothing relayed in the clear.

use dataplane::buf::Pool;
use dataplane::edge::{EdgeConfig, InterfaceAddr};
use dataplane::port::mem::{pair, MemConfig};
use dataplane::sim::{Clock, LinkModel, Sim, VirtualClock};
use dataplane::time::Instant;
use dataplane::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_tcp::EventKind;
use mgw_tls::{HashFunction, Identity, PeerFingerprints, Role, TlsContext, TlsSettings};
use mgw_worker::peer::{TcpHost, TlsPeer};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 8, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 8, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 8, 0, 3]);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

fn msrp_send(i: usize, body_len: usize) -> Vec<u8> {
    let tid = format!("t{i:06}x");
    let body: String = (0..body_len)
        .map(|k| char::from(b'a' + ((i + k) % 26) as u8))
        .collect();
    format!(
        "MSRP {tid} SEND\r\nTo-Path: msrps://{gw}:2855/gw1;tcp\r\nFrom-Path: msrps://{ue}:50000/ue1;tcp\r\n\
         Message-ID: m{i}\r\nByte-Range: 1-{n}/{n}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n-------{tid}$\r\n",
        gw = "10.8.0.1",
        ue = "10.8.0.2",
        n = body_len,
    )
    .into_bytes()
}

fn msrp_ok(i: usize) -> Vec<u8> {
    let tid = format!("t{i:06}x");
    format!("MSRP {tid} 200 OK\r\nTo-Path: msrps://10.8.0.2:50000/ue1;tcp\r\nFrom-Path: msrps://10.8.0.1:2855/gw1;tcp\r\n-------{tid}$\r\n")
        .into_bytes()
}

#[derive(Default)]
struct Outcome {
    events: Vec<FlowEvent>,
    to_core: Vec<u8>,
    to_ue: Vec<u8>,
    sent_up: Vec<u8>,
    sent_down: Vec<u8>,
    ue_failed: bool,
    ue_saw_close_notify: bool,
    core_saw_fin: bool,
    /// Bytes the UE still could not send when the paused core resumed.
    ue_blocked_bytes: usize,
    /// The core had a connection before the establish signal (must not).
    core_connected_before_signal: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Normal,
    WrongUeCert,
    MalformedMsrp,
    CoreRefuses,
    /// The core stops reading for 5 s of virtual time while the UE keeps sending.
    SlowCore,
    /// The core leg is TLS too (TLS↔TLS back to back, the gateway is the core's TLS client).
    TlsToTls,
    /// The core's address is not known at Add; a Modify (FlowOp::Update) brings it later.
    CoreAddressLater,
    /// Delayed establishment: the core leg connects only on the MGC's signal (FlowOp::Establish).
    DelayedCore,
}

fn run(scenario: Scenario, messages: usize, seed: u64) -> Outcome {
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let other = Identity::generate_self_signed("not the ue").unwrap();
    let core_id = Identity::generate_self_signed("core").unwrap();
    let tls_core = scenario == Scenario::TlsToTls;
    let core_ctx = TlsContext::new(TlsSettings::default(), core_id.clone()).unwrap();
    let gw_trust = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
    let mut core_tls: Option<TlsPeer> = None;
    let ue_presents = if scenario == Scenario::WrongUeCert {
        other
    } else {
        ue_id.clone()
    };
    let pool = Pool::new(8192, 2048);
    let vc = VirtualClock::new();
    let clock = Clock::Virtual(vc.clone());
    let link = LinkModel {
        delay: Duration::from_millis(2),
        loss: 0.01,
        reorder: 0.01,
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let mem = MemConfig {
        a_to_b: link.clone(),
        b_to_a: link,
        seed,
        mac_a: EthernetAddress([2, 0, 0, 0, 8, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 8, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &clock, &mem);
    let (ctl, wend) = channel(64, 256);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.max_contexts = 8;
    cfg.tls = Some(TlsContext::new(TlsSettings::default(), gw_id.clone()).unwrap());
    let mut worker = Worker::new(wport, cfg, wend).unwrap();

    let mut peer_edge = EdgeConfig::single(mem.mac_b, UE, 24);
    peer_edge.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let mut peers = TcpHost::new(
        pport,
        peer_edge,
        mgw_tcp::Config {
            max_connections: 16,
            ..mgw_tcp::Config::default()
        },
    )
    .unwrap();
    let ue_ctx = TlsContext::new(TlsSettings::default(), ue_presents).unwrap();
    if scenario != Scenario::CoreRefuses {
        peers.tcp.listen(IpAddress::V4(CORE), 2855).unwrap();
    }

    let ue_fp = PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256));
    ctl.send(FlowOp::Install(ContextProgram {
        context: 42,
        generation: 1,
        application: Application::Msrp,
        aware: true,
        legs: [
            LegProgram {
                local: sa(GW, 2855),
                remote: None,
                transport: Transport::TlsTcp,
                tcp_open: TcpOpen::Passive,
                establish_now: true,
                latching: true,
                security_role: Role::Server,
                peer_fingerprints: ue_fp,
                msrp: None,
            },
            LegProgram {
                local: sa(GW, 40001),
                remote: (scenario != Scenario::CoreAddressLater).then(|| sa(CORE, 2855)),
                transport: if tls_core {
                    Transport::TlsTcp
                } else {
                    Transport::Tcp
                },
                tcp_open: TcpOpen::Active,
                establish_now: scenario != Scenario::DelayedCore,
                latching: false,
                security_role: Role::Client,
                peer_fingerprints: if tls_core {
                    PeerFingerprints::one(core_id.fingerprint(HashFunction::Sha256))
                } else {
                    PeerFingerprints::new()
                },
                msrp: None,
            },
        ],
    }))
    .unwrap();

    let mut out = Outcome::default();
    let mut ue: Option<TlsPeer> = None;
    let mut ue_conn = None;
    let mut core_conn = None;
    let mut up_queue: Vec<u8> = (0..messages)
        .flat_map(|i| msrp_send(i, 50 + (i * 37) % 700))
        .collect();
    if scenario == Scenario::MalformedMsrp {
        up_queue.extend_from_slice(b"MSRP bad\r\nnot a header line\r\n\r\n");
    }
    let mut down_queue: Vec<u8> = (0..messages).flat_map(msrp_ok).collect();
    let mut connected_at = None;
    let step = Duration::from_millis(10);
    let mut t = Instant::ZERO;
    for round in 0..3000u32 {
        vc.set(t);
        if scenario == Scenario::DelayedCore && round == 100 {
            out.core_connected_before_signal = core_conn.is_some();
            ctl.send(FlowOp::Establish {
                context: 42,
                generation: 1,
                side: Side::B,
            })
            .unwrap();
        }
        if scenario == Scenario::CoreAddressLater && round == 100 {
            let leg = LegProgram {
                local: sa(GW, 40001),
                remote: Some(sa(CORE, 2855)),
                transport: Transport::Tcp,
                tcp_open: TcpOpen::Active,
                establish_now: true,
                latching: false,
                security_role: Role::Client,
                peer_fingerprints: PeerFingerprints::new(),
                msrp: None,
            };
            ctl.send(FlowOp::Update {
                context: 42,
                generation: 1,
                side: Side::B,
                leg,
            })
            .unwrap();
        }
        if round == 1 {
            ue_conn = Some(
                peers
                    .tcp
                    .connect(t, (IpAddress::V4(UE), 50000), (IpAddress::V4(GW), 2855))
                    .unwrap(),
            );
        }
        while let Some(ev) = peers.tcp.poll_event() {
            match ev.kind {
                EventKind::Connected if Some(ev.conn) == ue_conn => {
                    let trust = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
                    ue = Some(TlsPeer::client(&ue_ctx, ev.conn, trust, t).unwrap());
                    connected_at = Some(t);
                }
                EventKind::Accepted { .. } => {
                    core_conn = Some(ev.conn);
                    if tls_core {
                        core_tls = Some(TlsPeer::server(&core_ctx, ev.conn, gw_trust, t).unwrap());
                    }
                }
                EventKind::PeerClosed if Some(ev.conn) == core_conn => out.core_saw_fin = true,
                _ => {}
            }
        }
        if let Some(u) = ue.as_mut() {
            u.drive(&mut peers.tcp, t);
            if u.is_established() && !up_queue.is_empty() {
                let n = u.send(&mut peers.tcp, &up_queue[..up_queue.len().min(4000)]);
                out.sent_up.extend_from_slice(&up_queue[..n]);
                up_queue.drain(..n);
            }
            out.to_ue.append(&mut u.received);
            out.ue_failed |= u.failure().is_some();
            out.ue_saw_close_notify |= u.is_closed();
        }
        let core_paused = scenario == Scenario::SlowCore && round < 500;
        if scenario == Scenario::SlowCore && round == 499 {
            out.ue_blocked_bytes = up_queue.len();
        }
        if let Some(ct) = core_tls.as_mut() {
            ct.drive(&mut peers.tcp, t);
            out.to_core.append(&mut ct.received);
            out.core_saw_fin |= ct.is_closed();
            if !out.to_core.is_empty() && !down_queue.is_empty() {
                let n = ct.send(&mut peers.tcp, &down_queue[..down_queue.len().min(4000)]);
                out.sent_down.extend_from_slice(&down_queue[..n]);
                down_queue.drain(..n);
            }
        } else if let Some(c) = core_conn.filter(|_| !core_paused) {
            let mut buf = [0u8; 16384];
            while let Ok(n @ 1..) = peers.tcp.recv(c, &mut buf) {
                out.to_core.extend_from_slice(&buf[..n]);
            }
            // The core answers once it has seen requests.
            if !out.to_core.is_empty() && !down_queue.is_empty() {
                let n = peers
                    .tcp
                    .send(c, &down_queue[..down_queue.len().min(4000)])
                    .unwrap_or(0);
                out.sent_down.extend_from_slice(&down_queue[..n]);
                down_queue.drain(..n);
            }
        }
        peers.flush();
        let mut sim = Sim::new(vc.clone(), vec![&mut worker, &mut peers]);
        sim.run(t + (step - Duration::from_nanos(1)), 100_000, || false);
        while let Some(e) = ctl.recv() {
            out.events.push(e);
        }
        t += step;
        let all_through = up_queue.is_empty()
            && down_queue.is_empty()
            && out.to_core.len() == out.sent_up.len()
            && out.to_ue.len() == out.sent_down.len();
        let failed = out
            .events
            .iter()
            .any(|e| matches!(e, FlowEvent::Released { .. }));
        if (all_through && connected_at.is_some()) || failed {
            break;
        }
    }
    if !out
        .events
        .iter()
        .any(|e| matches!(e, FlowEvent::Released { .. }))
    {
        ctl.send(FlowOp::Release {
            context: 42,
            generation: 1,
        })
        .unwrap();
    }
    // Let the release play out: close_notify, FIN, their ACKs.
    for _ in 0..100 {
        vc.set(t);
        if let Some(u) = ue.as_mut() {
            u.drive(&mut peers.tcp, t);
            out.to_ue.append(&mut u.received);
            out.ue_saw_close_notify |= u.is_closed();
            out.ue_failed |= u.failure().is_some();
        }
        while let Some(ev) = peers.tcp.poll_event() {
            if ev.kind == EventKind::PeerClosed && Some(ev.conn) == core_conn {
                out.core_saw_fin = true;
            }
        }
        if let Some(ct) = core_tls.as_mut() {
            ct.drive(&mut peers.tcp, t);
            out.to_core.append(&mut ct.received);
            out.core_saw_fin |= ct.is_closed();
        } else if let Some(c) = core_conn {
            let mut buf = [0u8; 16384];
            while let Ok(n @ 1..) = peers.tcp.recv(c, &mut buf) {
                out.to_core.extend_from_slice(&buf[..n]);
            }
        }
        peers.flush();
        let mut sim = Sim::new(vc.clone(), vec![&mut worker, &mut peers]);
        sim.run(t + (step - Duration::from_nanos(1)), 100_000, || false);
        while let Some(e) = ctl.recv() {
            out.events.push(e);
        }
        t += step;
    }
    out
}

fn released(o: &Outcome) -> Option<[LegStats; 2]> {
    o.events.iter().find_map(|e| match e {
        FlowEvent::Released {
            context: 42, stats, ..
        } => Some(*stats),
        _ => None,
    })
}

#[test]
fn msrp_over_tls_to_tcp_both_ways_then_subtract() {
    let o = run(Scenario::Normal, 300, 1);
    let kinds: Vec<_> = o.events.iter().map(|e| format!("{e:?}")).collect();
    assert!(
        o.events.iter().any(|e| matches!(
            e,
            FlowEvent::Latched {
                context: 42,
                side: Side::A,
                ..
            }
        )),
        "{kinds:?}"
    );
    assert!(
        o.events
            .iter()
            .any(|e| matches!(e, FlowEvent::TcpUp { side: Side::B, .. })),
        "{kinds:?}"
    );
    assert!(
        o.events
            .iter()
            .any(|e| matches!(e, FlowEvent::SecureUp { side: Side::A, .. })),
        "{kinds:?}"
    );
    assert_eq!(
        o.sent_up.len(),
        (0..300)
            .map(|i| msrp_send(i, 50 + (i * 37) % 700).len())
            .sum::<usize>()
    );
    assert!(
        o.to_core == o.sent_up,
        "core got {} of {} bytes, or different bytes",
        o.to_core.len(),
        o.sent_up.len()
    );
    assert!(
        o.to_ue == o.sent_down,
        "UE got {} of {} bytes",
        o.to_ue.len(),
        o.sent_down.len()
    );
    let stats = released(&o).expect("Released after Subtract");
    assert_eq!(
        stats[0].messages_received, 300,
        "MSRP frames counted on the access leg"
    );
    assert_eq!(stats[1].messages_received, 300);
    assert_eq!(stats[0].octets_received as usize, o.sent_up.len());
    assert_eq!(stats[1].octets_sent as usize, o.sent_up.len());
    assert!(
        o.ue_saw_close_notify,
        "Subtract sends close_notify to the UE"
    );
    assert!(o.core_saw_fin, "Subtract sends FIN to the core");
}

#[test]
fn ue_with_wrong_certificate_is_refused_and_nothing_relayed() {
    let o = run(Scenario::WrongUeCert, 10, 2);
    assert!(
        o.events.iter().any(|e| matches!(
            e,
            FlowEvent::SecureFailed {
                side: Side::A,
                reason: SecurityFailure::FingerprintMismatch,
                ..
            }
        )),
        "{:?}",
        o.events
    );
    assert!(o.to_core.is_empty(), "no byte reaches the core");
    assert!(o.ue_failed, "the UE got a fatal alert");
    assert!(released(&o).is_some());
}

#[test]
fn malformed_msrp_releases_the_context() {
    let o = run(Scenario::MalformedMsrp, 5, 3);
    let stats = released(&o).expect("released");
    assert!(stats[0].app_errors >= 1);
    // Whole frames before the bad one went through; the bad bytes did not.
    assert!(!o.to_core.windows(8).any(|w| w == b"MSRP bad"));
}

#[test]
fn core_refusing_the_connection_is_reported() {
    let o = run(Scenario::CoreRefuses, 1, 4);
    assert!(
        o.events.iter().any(|e| matches!(
            e,
            FlowEvent::TcpFailed {
                side: Side::B,
                reason: TcpFailure::Refused,
                ..
            }
        )),
        "{:?}",
        o.events
    );
    assert!(released(&o).is_some());
}

#[test]
fn a_slow_core_pushes_back_on_the_ue_and_nothing_is_lost() {
    // 3,000 messages (~1.7 MB) against a core that reads nothing for 5 s: the worker's
    // buffers are bounded, so the UE's TCP window must close and most of its data must still
    // be waiting at the UE when the core resumes; then every byte arrives, in order.
    let o = run(Scenario::SlowCore, 3000, 5);
    assert!(
        o.ue_blocked_bytes > 1_000_000,
        "the UE was held back: {} bytes still queued",
        o.ue_blocked_bytes
    );
    assert!(
        o.to_core == o.sent_up,
        "core got {} of {} bytes",
        o.to_core.len(),
        o.sent_up.len()
    );
    assert!(released(&o).is_some_and(|s| s[0].app_errors == 0));
}

#[test]
fn tls_to_tls_back_to_back() {
    // Both legs secured: the gateway opens the UE's records and seals them again for the core
    // (it is the core's TLS client, verifying the core's fingerprint), and the reverse.
    let o = run(Scenario::TlsToTls, 200, 6);
    let n_secure = o
        .events
        .iter()
        .filter(|e| matches!(e, FlowEvent::SecureUp { .. }))
        .count();
    assert_eq!(n_secure, 2, "{:?}", o.events);
    assert!(
        o.to_core == o.sent_up,
        "core got {} of {} bytes",
        o.to_core.len(),
        o.sent_up.len()
    );
    assert!(
        o.to_ue == o.sent_down,
        "UE got {} of {} bytes",
        o.to_ue.len(),
        o.sent_down.len()
    );
    assert!(
        o.ue_saw_close_notify && o.core_saw_fin,
        "close_notify on both legs after Subtract"
    );
}

#[test]
fn core_address_from_a_later_modify() {
    // Add without the core's address (no Remote SDP yet): nothing connects; the Modify that
    // brings it makes the gateway connect, and the relay runs as usual.
    let o = run(Scenario::CoreAddressLater, 50, 7);
    let tcp_up_b = o
        .events
        .iter()
        .position(|e| matches!(e, FlowEvent::TcpUp { side: Side::B, .. }));
    assert!(tcp_up_b.is_some(), "{:?}", o.events);
    assert!(
        o.to_core == o.sent_up && !o.sent_up.is_empty(),
        "core got {} of {} bytes",
        o.to_core.len(),
        o.sent_up.len()
    );
    assert!(o.to_ue == o.sent_down);
}

#[test]
fn delayed_establishment_waits_for_the_signal() {
    // The core leg is programmed for delayed establishment: no SYN leaves until the MGC's
    // signal (FlowOp::Establish), after which the relay runs as usual.
    let o = run(Scenario::DelayedCore, 50, 8);
    assert!(
        !o.core_connected_before_signal,
        "the core leg connected before the signal"
    );
    assert!(o
        .events
        .iter()
        .any(|e| matches!(e, FlowEvent::TcpUp { side: Side::B, .. })));
    assert!(
        o.to_core == o.sent_up && !o.sent_up.is_empty(),
        "core got {} of {} bytes",
        o.to_core.len(),
        o.sent_up.len()
    );
}
