//! MSRP through a worker in the simulator: a UE speaks MSRP over TLS to the access leg (the
//! gateway is TLS server and passive TCP, latching the UE's address), the gateway connects to
//! the core peer over plain TCP. Both directions must arrive byte for byte, Subtract must end
//! with close_notify to the UE and FIN to the core, and failures (fingerprint mismatch,
//! malformed MSRP, core refusing) must release the context with nothing relayed in the clear.

use mgw_app::msrp::{ByteRange, MsrpResponse, MsrpSend};
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::link::LinkModel;
use mgw_core::sim::Sim;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig};
use mgw_tcp::EventKind;
use mgw_tls::{HashFunction, Identity, PeerFingerprints, SecurityRole, TlsContext, TlsSettings};
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
    let (tid, mid) = (format!("t{i:06}x"), format!("m{i}"));
    let body: Vec<u8> = (0..body_len).map(|k| b'a' + ((i + k) % 26) as u8).collect();
    MsrpSend::new(&tid, GW_ACCESS_URI, UE_URI, &mid)
        .byte_range(ByteRange::whole(body_len as u64))
        .body("text/plain", &body)
        .to_vec()
        .expect("a valid SEND")
}

/// The 200 OK to [`msrp_send`] `i`, from the gateway's access URI to the UE's.
fn msrp_ok(i: usize) -> Vec<u8> {
    let tid = format!("t{i:06}x");
    MsrpResponse::ok(&tid, UE_URI, GW_ACCESS_URI)
        .to_vec()
        .expect("a valid 200")
}

// MSRP path rewriting (aware, no CEMA): the MGW is the MSRP peer of each endpoint
// (RFC 4975 §8.1 a=path in its Local SDP). The UE addresses the MGW's access URI; the core gets
// its own a=path as To-Path and the MGW's core URI as From-Path, and the reverse.
const GW_ACCESS_URI: &str = "msrps://10.8.0.1:2855/gw1;tcp";
const UE_URI: &str = "msrps://10.8.0.2:50000/ue1;tcp";
const GW_CORE_URI: &str = "msrp://10.8.0.1:40001/gw-core;tcp";
const CORE_URI: &str = "msrp://10.8.0.3:2855/core1;tcp";

/// The paths as the UE writes them (requests) and as the core must receive them.
fn up_paths() -> (String, String) {
    (
        format!("To-Path: {GW_ACCESS_URI}\r\nFrom-Path: {UE_URI}\r\n"),
        format!("To-Path: {CORE_URI}\r\nFrom-Path: {GW_CORE_URI}\r\n"),
    )
}

/// The paths as the core writes them (responses) and as the UE must receive them.
fn down_paths() -> (String, String) {
    (
        format!("To-Path: {GW_CORE_URI}\r\nFrom-Path: {CORE_URI}\r\n"),
        format!("To-Path: {UE_URI}\r\nFrom-Path: {GW_ACCESS_URI}\r\n"),
    )
}

/// `data` with every `from` replaced by `to` (bodies are lowercase letters: no false match).
fn swap(data: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = Vec::with_capacity(data.len() + data.len() / 4);
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// A 200 OK as the core writes it to the MGW's core URI.
fn msrp_ok_core(i: usize) -> Vec<u8> {
    let (ue_form, core_form) = down_paths();
    swap(&msrp_ok(i), &core_form, &ue_form)
}

fn route(local: &str, remote: &str) -> Option<flow::MsrpRoute> {
    Some(flow::MsrpRoute::new(local.as_bytes(), remote.as_bytes()).unwrap())
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
    /// What the core must have received for `sent_up` (rewritten when the scenario rewrites).
    expect_core: Vec<u8>,
    /// What the UE must have received for `sent_down`.
    expect_ue: Vec<u8>,
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
    /// Aware MSRP without CEMA: both legs carry their URIs and paths are rewritten; some frames
    /// are large enough to span several TLS records and parser calls.
    Rewrite,
    /// The same, TLS on both legs.
    RewriteTlsToTls,
    /// Rewriting, and the UE sends a frame whose To-Path is not the MGW's URI on its leg.
    RewriteNotForUs,
    /// Routes programmed but the relay is agnostic (aware = false): bytes pass unchanged.
    AgnosticWithRoutes,
    /// Rewriting, with the core's address and a=path unknown at Add: the Modify brings both.
    RewriteCoreLater,
    /// Routes at Add (the core's SDP unknown), then the Modify says CEMA on both sides (control
    /// sends no route): frames pass unchanged.
    CemaLearnedLater,
}

impl Scenario {
    fn routes(self) -> bool {
        matches!(
            self,
            Scenario::Rewrite
                | Scenario::RewriteTlsToTls
                | Scenario::RewriteNotForUs
                | Scenario::AgnosticWithRoutes
                | Scenario::RewriteCoreLater
                | Scenario::CemaLearnedLater
        )
    }
    fn rewrites(self) -> bool {
        self.routes()
            && !matches!(
                self,
                Scenario::AgnosticWithRoutes | Scenario::CemaLearnedLater
            )
    }
    fn core_later(self) -> bool {
        matches!(
            self,
            Scenario::CoreAddressLater | Scenario::RewriteCoreLater | Scenario::CemaLearnedLater
        )
    }
    fn body_len(self, i: usize) -> usize {
        if self.rewrites() && i % 25 == 7 {
            // Spans two TLS records and several rewrite-stage parser calls.
            30_000 + i
        } else {
            50 + (i * 37) % 700
        }
    }
}

fn run(scenario: Scenario, messages: usize, seed: u64) -> Outcome {
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let other = Identity::generate_self_signed("not the ue").unwrap();
    let core_id = Identity::generate_self_signed("core").unwrap();
    let tls_core = matches!(scenario, Scenario::TlsToTls | Scenario::RewriteTlsToTls);
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
        aware: scenario != Scenario::AgnosticWithRoutes,
        legs: [
            LegProgram {
                local: sa(GW, 2855),
                remote: None,
                transport: Transport::TlsTcp,
                tcp_role: TcpRole::Passive,
                establish_now: true,
                latching: true,
                security_role: SecurityRole::Server,
                peer_fingerprints: ue_fp,
                msrp: if scenario.routes() {
                    route(GW_ACCESS_URI, UE_URI)
                } else {
                    None
                },
            },
            LegProgram {
                local: sa(GW, 40001),
                remote: (!scenario.core_later()).then(|| sa(CORE, 2855)),
                transport: if tls_core {
                    Transport::TlsTcp
                } else {
                    Transport::Tcp
                },
                tcp_role: TcpRole::Active,
                establish_now: scenario != Scenario::DelayedCore,
                latching: false,
                security_role: SecurityRole::Client,
                peer_fingerprints: if tls_core {
                    PeerFingerprints::one(core_id.fingerprint(HashFunction::Sha256))
                } else {
                    PeerFingerprints::new()
                },
                msrp: match scenario {
                    // The peer's a=path is not known yet.
                    Scenario::RewriteCoreLater | Scenario::CemaLearnedLater => {
                        route(GW_CORE_URI, "")
                    }
                    _ if scenario.routes() => route(GW_CORE_URI, CORE_URI),
                    _ => None,
                },
            },
        ],
    }))
    .unwrap();

    let mut out = Outcome::default();
    let mut ue: Option<TlsPeer> = None;
    let mut ue_conn = None;
    let mut core_conn = None;
    let mut up_queue: Vec<u8> = (0..messages)
        .flat_map(|i| msrp_send(i, scenario.body_len(i)))
        .collect();
    if scenario == Scenario::MalformedMsrp {
        up_queue.extend_from_slice(b"MSRP bad\r\nnot a header line\r\n\r\n");
    }
    if scenario == Scenario::RewriteNotForUs {
        let stray = msrp_send(messages, 10);
        up_queue.extend(swap(
            &stray,
            GW_ACCESS_URI,
            "msrps://10.8.0.1:2855/someone-else;tcp",
        ));
    }
    let mut down_queue: Vec<u8> = if scenario.rewrites() {
        (0..messages).flat_map(msrp_ok_core).collect()
    } else {
        (0..messages).flat_map(msrp_ok).collect()
    };
    // What each side must receive for what was sent (rewritten or not).
    let (up_from, up_to) = up_paths();
    let (down_from, down_to) = down_paths();
    let expect_core = |sent: &[u8]| {
        if scenario.rewrites() {
            swap(sent, &up_from, &up_to)
        } else {
            sent.to_vec()
        }
    };
    let expect_ue = |sent: &[u8]| {
        if scenario.rewrites() {
            swap(sent, &down_from, &down_to)
        } else {
            sent.to_vec()
        }
    };
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
        if scenario.core_later() && round == 100 {
            let leg = LegProgram {
                local: sa(GW, 40001),
                remote: Some(sa(CORE, 2855)),
                transport: Transport::Tcp,
                tcp_role: TcpRole::Active,
                establish_now: true,
                latching: false,
                security_role: SecurityRole::Client,
                peer_fingerprints: PeerFingerprints::new(),
                msrp: (scenario == Scenario::RewriteCoreLater)
                    .then(|| route(GW_CORE_URI, CORE_URI))
                    .flatten(),
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
            && out.to_core.len() == expect_core(&out.sent_up).len()
            && out.to_ue.len() == expect_ue(&out.sent_down).len();
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
    out.expect_core = expect_core(&out.sent_up);
    out.expect_ue = expect_ue(&out.sent_down);
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
fn aware_msrp_without_cema_rewrites_paths_both_ways() {
    // RFC 4975 §8.1 / RFC 6714 §4 without CEMA: the UE sends to the MGW's access URI; the core
    // receives each frame with To-Path = its own a=path and From-Path = the MGW's core URI, and
    // the core's 200 OKs reach the UE with the UE's paths restored. Everything else (start line,
    // other headers, bodies up to 30 kB across TLS records, end-lines) is unchanged.
    let o = run(Scenario::Rewrite, 300, 11);
    assert_eq!(
        o.sent_up.len(),
        (0..300)
            .map(|i| msrp_send(i, Scenario::Rewrite.body_len(i)).len())
            .sum::<usize>()
    );
    assert!(!o.expect_core.is_empty() && o.expect_core != o.sent_up);
    assert!(
        o.to_core == o.expect_core,
        "core got {} bytes, expected {} (rewritten)",
        o.to_core.len(),
        o.expect_core.len()
    );
    assert_eq!(
        o.expect_ue,
        (0..300).flat_map(msrp_ok).collect::<Vec<u8>>(),
        "the UE's view: its own paths"
    );
    assert!(
        o.to_ue == o.expect_ue,
        "UE got {} bytes, expected {}",
        o.to_ue.len(),
        o.expect_ue.len()
    );
    // Frame by frame: the core sees its own URI as To-Path, never the MGW's access URI.
    let core_text = String::from_utf8_lossy(&o.to_core);
    assert_eq!(
        core_text
            .matches(&format!("To-Path: {CORE_URI}\r\n"))
            .count(),
        300
    );
    assert!(!core_text.contains(GW_ACCESS_URI) && !core_text.contains(UE_URI));
    let stats = released(&o).expect("Released after Subtract");
    assert_eq!(stats[0].messages_received, 300);
    assert_eq!(stats[1].messages_received, 300);
    assert_eq!(stats[0].octets_received as usize, o.sent_up.len());
    assert_eq!(stats[1].octets_sent as usize, o.to_core.len());
    assert_eq!(stats[0].octets_sent as usize, o.to_ue.len());
    assert_eq!(stats[0].app_errors + stats[1].app_errors, 0);
    assert!(o.ue_saw_close_notify && o.core_saw_fin);
}

#[test]
fn rewriting_tls_to_tls() {
    let o = run(Scenario::RewriteTlsToTls, 100, 12);
    assert!(o.to_core == o.expect_core && !o.to_core.is_empty());
    assert!(o.to_ue == o.expect_ue && !o.to_ue.is_empty());
    assert!(o.ue_saw_close_notify && o.core_saw_fin);
}

#[test]
fn rewriting_waits_for_the_core_path_from_a_later_modify() {
    // H.248 Add without the core's Remote SDP: the core leg's route has no peer path yet, so
    // the UE's frames wait (unread) until the Modify brings address and a=path; then they are
    // rewritten as usual.
    let o = run(Scenario::RewriteCoreLater, 50, 15);
    assert!(
        o.to_core == o.expect_core && !o.to_core.is_empty(),
        "core got {} of {} bytes",
        o.to_core.len(),
        o.expect_core.len()
    );
    assert!(o.to_ue == o.expect_ue && !o.to_ue.is_empty());
    let stats = released(&o).expect("released");
    assert_eq!(stats[0].app_errors + stats[1].app_errors, 0);
}

#[test]
fn cema_learned_from_a_modify_stops_rewriting() {
    // The Add had no core SDP, so control sent routes; the Modify shows CEMA on both sides and
    // takes the core leg's route away: frames that waited pass unchanged, checked and counted.
    let o = run(Scenario::CemaLearnedLater, 50, 16);
    assert!(o.to_core == o.sent_up && !o.sent_up.is_empty());
    assert!(o.to_ue == o.sent_down && !o.sent_down.is_empty());
    let stats = released(&o).expect("released");
    assert_eq!(stats[0].messages_received, 50);
    assert_eq!(stats[0].app_errors + stats[1].app_errors, 0);
}

#[test]
fn a_frame_not_for_the_mgw_releases_the_context() {
    // RFC 4975 §7.3: a frame whose To-Path is not the MGW's URI on that leg is not for this
    // session; the leg's staged bytes are dropped and the context goes.
    let o = run(Scenario::RewriteNotForUs, 5, 13);
    let stats = released(&o).expect("released");
    assert!(stats[0].app_errors >= 1);
    assert!(!String::from_utf8_lossy(&o.to_core).contains("someone-else"));
    assert!(
        o.expect_core.starts_with(&o.to_core),
        "what reached the core is whole rewritten frames"
    );
}

#[test]
fn agnostic_relay_with_routes_is_byte_identical() {
    // aware = false: routes or not, the bytes pass unchanged (and CEMA, where control sends no
    // routes, is the `Normal` scenario: aware, no routes, byte for byte).
    let o = run(Scenario::AgnosticWithRoutes, 100, 14);
    assert!(o.to_core == o.sent_up && !o.sent_up.is_empty());
    assert!(o.to_ue == o.sent_down && !o.sent_down.is_empty());
    let stats = released(&o).expect("released");
    assert_eq!(stats[0].messages_received, 0, "agnostic: nothing parsed");
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
