//! BFCP over TLS stream legs through a worker, in the simulator (aware mode):
//! - TLS ↔ UDP interworking (RFC 8855 §6.2/§6.3): whole messages from the UE's TLS stream leave
//!   on the core's UDP leg as version-2 datagrams, fragmented under the worker's BFCP MTU
//!   (RFC 8855 §5.1 F flag); datagrams and fragments from the core are reassembled and reach the
//!   UE as version-1 messages on its stream;
//! - TLS ↔ TCP: messages framed by the common header's Payload Length are relayed byte for byte;
//!   a message with a sound length but a bad attribute is dropped and counted; a stream that
//!   loses its framing is counted and released.

use mgw_app::bfcp::{Header, MessageWriter, Primitive};
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::link::LinkModel;
use mgw_core::sim::Sim;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig};
use mgw_tcp::EventKind;
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{
    DtlsConfig, DtlsEvent, DtlsSession, HashFunction, Identity, PeerFingerprints, SecurityRole,
    TlsContext, TlsSettings,
};
use mgw_worker::peer::{TcpHost, TlsPeer};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 9, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 9, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 9, 0, 3]);
const MTU: usize = 1000;

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

/// A BFCP message (RFC 8855 §5.1): version `ver`, `prim`, transaction `tid`, a FLOOR-ID
/// attribute and `extra` 252-octet USER-URI attributes (so `extra = 12` makes a 3,040-octet
/// message).
fn bfcp(ver: u8, prim: u8, tid: u16, extra: usize) -> Vec<u8> {
    let mut m = Vec::new();
    let mut w = MessageWriter::new(&mut m, &Header::new(ver, 9, tid, 7), Primitive::from(prim));
    w.floor_id(1);
    for k in 0..extra {
        let uri: Vec<u8> = (0..250).map(|j| b'a' + ((k + j) % 26) as u8).collect();
        w.user_uri(&uri);
    }
    w.finish().expect("under 65536 units");
    m
}

/// A message with a sound length but an attribute whose Length is below 2 (RFC 8855 §5.2).
fn bad_attribute(ver: u8, tid: u16) -> Vec<u8> {
    let mut m = bfcp(ver, 1, tid, 0);
    m[13] = 1;
    m
}

/// `m` as the other transport's version.
fn with_version(m: &[u8], ver: u8) -> Vec<u8> {
    let mut m = m.to_vec();
    m[0] = (m[0] & 0x1f) | (ver << 5);
    m
}

/// `m` as a response over UDP: R set (RFC 8855 §5.1), as the gateway's transaction layer
/// expects of an answer to the request it relayed (§8).
fn answer(m: &[u8]) -> Vec<u8> {
    let mut m = m.to_vec();
    m[0] |= 0x10;
    m
}

/// Cuts a version-2 message into fragments of at most `units` payload units each (F set,
/// Payload Length = the whole message's units, Fragment Offset/Length in units:
/// `mgw_app::bfcp::FRAGMENT_SEMANTICS`).
fn fragments(m: &[u8], units: usize) -> Vec<Vec<u8>> {
    let payload = &m[12..];
    let total = payload.len() / 4;
    let mut out = Vec::new();
    let mut off = 0;
    while off < total {
        let n = units.min(total - off);
        let mut f = m[..12].to_vec();
        f[0] |= 0x08;
        f.extend_from_slice(&u16::try_from(off).unwrap().to_be_bytes());
        f.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        f.extend_from_slice(&payload[off * 4..(off + n) * 4]);
        out.push(f);
        off += n;
    }
    out
}

/// Rebuilds whole messages from the datagrams the core received (in order on this link), by
/// hand rather than with the crate's reassembler: fragments are concatenated by offset.
fn reassemble(datagrams: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Option<(Vec<u8>, usize)> = None;
    for d in datagrams {
        assert!(
            d.len() <= MTU,
            "datagram of {} octets above the MTU",
            d.len()
        );
        assert_eq!(d[0] >> 5, 2, "version 2 over UDP");
        if d[0] & 0x08 == 0 {
            assert!(cur.is_none());
            out.push(d.clone());
            continue;
        }
        let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
        let off = usize::from(u16::from_be_bytes([d[12], d[13]]));
        let len = usize::from(u16::from_be_bytes([d[14], d[15]]));
        assert_eq!(d.len(), 16 + len * 4);
        let (m, have) = cur.get_or_insert_with(|| {
            let mut h = d[..12].to_vec();
            h[0] &= !0x08;
            (h, 0)
        });
        assert_eq!(off, *have, "fragments in order");
        m.extend_from_slice(&d[16..]);
        *have += len;
        if *have == total {
            out.push(cur.take().unwrap().0);
        }
    }
    assert!(cur.is_none(), "an unfinished message");
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Core {
    /// The core is on UDP (interworking).
    Udp,
    /// The core is on plain TCP (stream ↔ stream).
    Tcp,
    /// The core is on DTLS over UDP (UDP/TLS/BFCP): the gateway is its DTLS client.
    Dtls,
}

#[derive(Default)]
struct Outcome {
    events: Vec<FlowEvent>,
    /// Datagrams the core received (UDP core).
    core_datagrams: Vec<Vec<u8>>,
    /// Bytes the core received (TCP core).
    core_stream: Vec<u8>,
    to_ue: Vec<u8>,
    ue_saw_close_notify: bool,
    stats: WorkerStats,
    /// The round the context was released in (the Subtract is sent after round 300).
    released_round: Option<u32>,
}

/// Runs a session: the UE sends `up` over TLS once established; the core sends `down` (UDP
/// datagrams, or a byte stream) once it has received something.
fn run(core: Core, up: &[u8], down: &[Vec<u8>], seed: u64) -> Outcome {
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let core_id = Identity::generate_self_signed("core").unwrap();
    let dtls_cfg = |id: &Identity| DtlsConfig::new(id, 1200, Duration::from_secs(20)).unwrap();
    let mut core_dtls = (core == Core::Dtls).then(|| {
        DtlsSession::new(
            &dtls_cfg(&core_id),
            SecurityRole::Server,
            PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256)),
            "core-1",
            Instant::ZERO,
        )
        .unwrap()
    });
    let mut core_up = false;
    let pool = Pool::new(8192, 2048);
    let vc = VirtualClock::new();
    let clock = Clock::Virtual(vc.clone());
    let link = LinkModel {
        delay: Duration::from_millis(2),
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
    let (ctl, wend) = channel(16, 256);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.max_contexts = 4;
    cfg.tls = Some(TlsContext::new(TlsSettings::default(), gw_id.clone()).unwrap());
    cfg.bfcp_mtu = MTU;
    cfg.dtls = Some(dtls_cfg(&gw_id));
    let mut worker = Worker::new(wport, cfg, wend).unwrap();
    let mut peer_edge = EdgeConfig::single(mem.mac_b, UE, 24);
    peer_edge.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let mut peers = TcpHost::new(pport, peer_edge, mgw_tcp::Config::default()).unwrap();
    worker.edge().add_neighbor(Instant::ZERO, UE, mem.mac_b);
    worker.edge().add_neighbor(Instant::ZERO, CORE, mem.mac_b);
    if core == Core::Tcp {
        peers.tcp.listen(IpAddress::V4(CORE), 6000).unwrap();
    }
    let ue_ctx = TlsContext::new(TlsSettings::default(), ue_id.clone()).unwrap();
    ctl.send(FlowOp::Install(ContextProgram {
        context: 5,
        generation: 1,
        application: Application::Bfcp,
        aware: true,
        legs: [
            LegProgram {
                local: sa(GW, 2856),
                remote: None,
                transport: Transport::TlsTcp,
                tcp_role: TcpRole::Passive,
                establish_now: true,
                latching: true,
                security_role: SecurityRole::Server,
                peer_fingerprints: PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256)),
                msrp: None,
            },
            LegProgram {
                local: sa(GW, 5002),
                remote: Some(sa(CORE, 6000)),
                transport: match core {
                    Core::Udp => Transport::Udp,
                    Core::Tcp => Transport::Tcp,
                    Core::Dtls => Transport::DtlsUdp,
                },
                tcp_role: TcpRole::Active,
                establish_now: true,
                latching: false,
                security_role: SecurityRole::Client,
                peer_fingerprints: PeerFingerprints::one(core_id.fingerprint(HashFunction::Sha256)),
                msrp: None,
            },
        ],
    }))
    .unwrap();

    let mut out = Outcome::default();
    let mut ue: Option<TlsPeer> = None;
    let mut ue_conn = None;
    let mut core_conn = None;
    let mut up_queue = up.to_vec();
    let mut down_left: Vec<Vec<u8>> = down.to_vec();
    let step = Duration::from_millis(10);
    let mut t = Instant::ZERO;
    for round in 0..400u32 {
        vc.set(t);
        if round == 1 {
            ue_conn = Some(
                peers
                    .tcp
                    .connect(t, (IpAddress::V4(UE), 40000), (IpAddress::V4(GW), 2856))
                    .unwrap(),
            );
        }
        while let Some(ev) = peers.tcp.poll_event() {
            match ev.kind {
                EventKind::Connected if Some(ev.conn) == ue_conn => {
                    let trust = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
                    ue = Some(TlsPeer::client(&ue_ctx, ev.conn, trust, t).unwrap());
                }
                EventKind::Accepted { .. } => core_conn = Some(ev.conn),
                _ => {}
            }
        }
        if let Some(u) = ue.as_mut() {
            u.drive(&mut peers.tcp, t);
            if u.is_established() && !up_queue.is_empty() {
                let n = u.send(&mut peers.tcp, &up_queue);
                up_queue.drain(..n);
            }
            out.to_ue.append(&mut u.received);
            out.ue_saw_close_notify |= u.is_closed();
        }
        while let Some((_, _, d)) = peers.udp_in.pop_front() {
            match core_dtls.as_mut() {
                Some(c) => {
                    let _ = c.handle_datagram(&d, t);
                }
                None => out.core_datagrams.push(d),
            }
        }
        if let Some(c) = core_dtls.as_mut() {
            let _ = c.handle_timeout(t);
            let mut buf = [0u8; 2048];
            loop {
                match c.poll(&mut buf) {
                    DtlsOutput::Transmit(d) => {
                        let d = d.to_vec();
                        peers.send_udp(sa(CORE, 6000), sa(GW, 5002), &d);
                    }
                    DtlsOutput::Data(d) => out.core_datagrams.push(d.to_vec()),
                    DtlsOutput::Event(DtlsEvent::Established { .. }) => core_up = true,
                    DtlsOutput::Event(_) => {}
                    DtlsOutput::BufferTooSmall { .. } => panic!("2 KiB holds a datagram"),
                    DtlsOutput::Wait(_) => break,
                }
            }
        }
        if let Some(c) = core_conn {
            let mut buf = [0u8; 16384];
            while let Ok(n @ 1..) = peers.tcp.recv(c, &mut buf) {
                out.core_stream.extend_from_slice(&buf[..n]);
            }
        }
        let core_heard = !out.core_datagrams.is_empty() || !out.core_stream.is_empty();
        if core_heard && !down_left.is_empty() {
            for d in down_left.drain(..) {
                match core {
                    Core::Udp => assert!(peers.send_udp(sa(CORE, 6000), sa(GW, 5002), &d)),
                    Core::Dtls => {
                        assert!(core_up);
                        core_dtls.as_mut().unwrap().send(&d).unwrap();
                    }
                    Core::Tcp => {
                        let c = core_conn.unwrap();
                        assert_eq!(peers.tcp.send(c, &d).unwrap(), d.len());
                    }
                }
            }
        }
        peers.flush();
        let mut sim = Sim::new(vc.clone(), vec![&mut worker, &mut peers]);
        sim.run(t + (step - Duration::from_nanos(1)), 100_000, || false);
        while let Some(e) = ctl.recv() {
            if matches!(e, FlowEvent::Released { .. }) {
                out.released_round.get_or_insert(round);
            }
            out.events.push(e);
        }
        t += step;
        if round == 300 && out.released_round.is_none() {
            ctl.send(FlowOp::Release {
                context: 5,
                generation: 1,
            })
            .unwrap();
        }
        // Let close_notify and FIN reach the peers.
        if out.released_round.is_some_and(|r| round > r + 10) {
            break;
        }
    }
    out.stats = worker.stats();
    out
}

fn released(o: &Outcome) -> [LegStats; 2] {
    o.events
        .iter()
        .find_map(|e| match e {
            FlowEvent::Released { stats, .. } => Some(*stats),
            _ => None,
        })
        .expect("released")
}

#[test]
fn bfcp_tls_to_udp_interworking_fragments_and_reassembles() {
    // UE → core: a small request, one with a bad attribute (dropped), a 3,040-octet request
    // (fragmented under the 1,000-octet MTU), another small one.
    let up_msgs = [
        bfcp(1, 1, 1, 0),
        bad_attribute(1, 2),
        bfcp(1, 1, 3, 12),
        bfcp(1, 1, 4, 0),
    ];
    let up: Vec<u8> = up_msgs.concat();
    // Core → UE: the responses (R set, RFC 8855 §5.1): a whole status, a 2,032-octet status
    // in 4 fragments sent out of order, another whole one; then a malformed datagram and a
    // fragment of a message that never completes.
    let big_down = bfcp(2, 4, 3, 8);
    let mut frags = fragments(&answer(&big_down), 128);
    assert_eq!(frags.len(), 4);
    frags.swap(0, 3);
    let mut down = vec![answer(&bfcp(2, 4, 1, 0))];
    down.extend(frags);
    down.push(answer(&bfcp(2, 4, 4, 0)));
    down.push(b"not bfcp".to_vec());
    down.push(fragments(&bfcp(2, 4, 9, 4), 64)[0].clone());
    let o = run(Core::Udp, &up, &down, 21);

    let got = reassemble(&o.core_datagrams);
    let want: Vec<Vec<u8>> = [&up_msgs[0], &up_msgs[2], &up_msgs[3]]
        .iter()
        .map(|m| with_version(m, 2))
        .collect();
    assert_eq!(got, want, "version-2 messages, the bad one dropped");
    assert_eq!(
        o.core_datagrams.len(),
        2 + 3040usize.div_ceil(MTU - 16 - (MTU - 16) % 4),
        "the large message was fragmented"
    );
    // Version 1, reassembled, R cleared (it has no meaning on reliable transports).
    let want_ue = [
        with_version(&bfcp(2, 4, 1, 0), 1),
        with_version(&big_down, 1),
        with_version(&bfcp(2, 4, 4, 0), 1),
    ]
    .concat();
    assert!(
        o.to_ue == want_ue,
        "UE got {} octets, want {} (version 1, reassembled)",
        o.to_ue.len(),
        want_ue.len()
    );
    let stats = released(&o);
    assert_eq!(stats[0].messages_received, 3);
    assert_eq!(stats[0].app_errors, 1);
    assert_eq!(stats[1].messages_received, 3, "whole + reassembled + whole");
    assert_eq!(stats[1].app_errors, 1, "the malformed datagram");
    assert_eq!(stats[0].messages_sent, 3);
    // Every request was answered: none retransmitted.
    assert_eq!(o.stats.bfcp_transactions.retransmitted, 0);
    assert_eq!(o.stats.bfcp_transactions.acks_sent, 0);
    assert!(o.ue_saw_close_notify, "Subtract closes the UE's TLS");
}

#[test]
fn bfcp_tls_to_dtls_interworking() {
    // The same over DTLS (UDP/TLS/BFCP on the core side): each datagram is one DTLS record.
    let up_msgs = [bfcp(1, 1, 1, 0), bfcp(1, 1, 3, 12), bfcp(1, 1, 4, 0)];
    let big_down = bfcp(2, 4, 3, 8);
    let mut down = vec![answer(&bfcp(2, 4, 1, 0))];
    down.extend(fragments(&answer(&big_down), 128));
    down.push(answer(&bfcp(2, 4, 4, 0)));
    // A server-initiated FloorRequestStatus (R clear, non-zero ID), and its retransmission:
    // the gateway acknowledges each copy over DTLS and relays it once, with ID 0 (RFC 8855 §8).
    down.push(bfcp(2, 4, 0x4001, 0));
    down.push(bfcp(2, 4, 0x4001, 0));
    let o = run(Core::Dtls, &up_msgs.concat(), &down, 24);
    assert!(
        o.events
            .iter()
            .any(|e| matches!(e, FlowEvent::SecureUp { side: Side::B, .. })),
        "{:?}",
        o.events
    );
    let mut want: Vec<Vec<u8>> = up_msgs.iter().map(|m| with_version(m, 2)).collect();
    let mut frs_ack = vec![0x50, 14, 0, 0];
    frs_ack.extend_from_slice(&9u32.to_be_bytes());
    frs_ack.extend_from_slice(&0x4001u16.to_be_bytes());
    frs_ack.extend_from_slice(&7u16.to_be_bytes());
    want.extend([frs_ack.clone(), frs_ack]);
    assert_eq!(reassemble(&o.core_datagrams), want);
    assert!(
        o.core_datagrams.len() > 5,
        "the large message was fragmented"
    );
    let want_ue = [
        with_version(&bfcp(2, 4, 1, 0), 1),
        with_version(&big_down, 1),
        with_version(&bfcp(2, 4, 4, 0), 1),
        with_version(&bfcp(2, 4, 0, 0), 1),
    ]
    .concat();
    assert!(
        o.to_ue == want_ue,
        "UE got {} of {} octets",
        o.to_ue.len(),
        want_ue.len()
    );
    let stats = released(&o);
    assert_eq!(
        (stats[0].messages_received, stats[1].messages_received),
        (3, 5)
    );
    let t = o.stats.bfcp_transactions;
    assert_eq!((t.acks_sent, t.duplicates_absorbed), (2, 1));
}

#[test]
fn bfcp_tls_to_tcp_drops_bad_messages_and_releases_on_framing_loss() {
    let good = [bfcp(1, 1, 1, 0), bfcp(1, 1, 2, 30), bfcp(1, 1, 3, 0)];
    let mut up = [good[0].clone(), bad_attribute(1, 9), good[1].clone()].concat();
    up.extend_from_slice(&good[2]);
    let down = vec![bfcp(1, 4, 1, 0)];
    let o = run(Core::Tcp, &up, &down, 22);
    assert!(
        o.core_stream == good.concat(),
        "valid messages byte for byte"
    );
    assert!(o.to_ue == down[0]);
    let stats = released(&o);
    assert_eq!((stats[0].messages_received, stats[0].app_errors), (3, 1));

    // Version 3 cannot start a message on a reliable transport: the framing is lost.
    let mut up = good[0].clone();
    up.extend_from_slice(&with_version(&good[2], 3));
    let o = run(Core::Tcp, &up, &[], 23);
    let stats = released(&o);
    assert!(stats[0].app_errors >= 1);
    assert!(o.core_stream.is_empty() || o.core_stream == good[0]);
    assert!(
        o.released_round.is_some_and(|r| r < 300),
        "released on the framing error, before the Subtract"
    );
    assert!(o.stats.app_errors >= 1);
}

#[test]
fn random_bytes_on_both_sides_are_counted_never_fatal_to_the_worker() {
    // Hostile input on an interworking context: random datagrams (some looking like fragments)
    // from the core and a random byte stream from the UE. Nothing panics; the stream's framing
    // loss releases the context; the datagrams are dropped and counted.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut down = Vec::new();
    for i in 0..40 {
        let len = 4 + (rnd() % 300) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        if i % 2 == 0 {
            // Version 2 with F set and plausible lengths: exercises the reassembler.
            d[0] = 0x48;
            d[2] = 0;
            d[3] = (rnd() % 200) as u8;
        }
        down.push(d);
    }
    // The core's garbage: dropped and counted, the session goes on.
    let o = run(Core::Udp, &bfcp(1, 1, 1, 0), &down, 25);
    let stats = released(&o);
    assert!(
        stats[1].app_errors >= 20,
        "bad datagrams counted: {:?}",
        stats[1]
    );
    assert!(
        o.released_round.is_some_and(|r| r >= 300),
        "kept until Subtract"
    );
    // The UE's garbage after a valid message: the stream's framing is lost, the context goes.
    let mut up = bfcp(1, 1, 1, 0);
    up.extend((0..5000).map(|_| rnd() as u8));
    let o = run(Core::Udp, &up, &[], 26);
    let stats = released(&o);
    assert!(stats[0].app_errors >= 1, "the stream lost its framing");
    assert!(
        o.released_round.is_some_and(|r| r < 300),
        "released by the framing loss"
    );
}
