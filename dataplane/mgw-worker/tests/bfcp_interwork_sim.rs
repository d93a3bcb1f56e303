//! The RFC 8855 §8 transaction layer across transports, on a BFCP interworking context (UE on
//! plain TCP, `TCP/BFCP`, Ver 1; core on UDP, `UDP/BFCP`, Ver 2), in the simulator. One test
//! per rule of `mgw_app::bfcp::Transactions`:
//! - a response going to UDP carries R (§5.1); a retransmitted request from UDP reaches the
//!   stream once and is answered from the remembered response (§8.2, §8.3.2);
//! - a server-initiated message from the stream (Transaction ID 0) gets a non-zero ID on UDP
//!   and is retransmitted on T1 = 500 ms, doubling, until the core acknowledges it; the ack is
//!   absorbed; unacknowledged, it is given up after 3 retransmissions (§8, §8.3.1);
//! - a server-initiated message from UDP is acknowledged by the gateway and reaches the stream
//!   once, with ID 0; acknowledgements never reach the stream, nor leave it (§8);
//! - the tables are bounded, and overflow is counted.

use mgw_app::bfcp::{Header, MessageWriter, Primitive, TransactionConfig};
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::link::LinkModel;
use mgw_core::sim::Sim;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig, MemPort};
use mgw_tcp::{ConnId, EventKind};
use mgw_tls::{PeerFingerprints, SecurityRole};
use mgw_worker::peer::TcpHost;
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 7, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 7, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 7, 0, 3]);
const STEP: Duration = Duration::from_millis(10);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

/// A BFCP message: Ver `ver`, R `r`, `prim`, Transaction ID `tid`, conference 9, user 7, one
/// FLOOR-ID attribute (whatever the primitive: the transaction layer reads the header).
fn bfcp(ver: u8, r: bool, prim: Primitive, tid: u16) -> Vec<u8> {
    let mut m = Vec::new();
    let mut w = MessageWriter::new(&mut m, &Header::new(ver, 9, tid, 7).with_responder(r), prim);
    w.floor_id(1);
    w.finish().expect("one attribute");
    m
}

/// A header-only message with R set over UDP (an acknowledgement, RFC 8855 §5.3.14/§5.3.15).
fn ack(prim: Primitive, tid: u16) -> Vec<u8> {
    let mut m = Vec::new();
    MessageWriter::new(
        &mut m,
        &Header::new(2, 9, tid, 7).with_responder(true),
        prim,
    )
    .finish()
    .expect("a header");
    m
}

/// (Ver, R, primitive, Transaction ID) of a message.
fn head(m: &[u8]) -> (u8, bool, Primitive, u16) {
    (
        m[0] >> 5,
        m[0] & 0x10 != 0,
        Primitive::from(m[1]),
        u16::from_be_bytes([m[8], m[9]]),
    )
}

/// The worker between a TCP UE and a UDP core, driven in 10 ms steps.
struct Lab {
    worker: Worker<MemPort>,
    peers: TcpHost<MemPort>,
    ctl: ControlEnd,
    vc: VirtualClock,
    t: Instant,
    ue: ConnId,
    ue_buf: Vec<u8>,
    /// Whole messages the UE read from its stream, with when.
    ue_got: Vec<(Instant, Vec<u8>)>,
    /// Datagrams the core received, with when.
    core_got: Vec<(Instant, Vec<u8>)>,
    events: Vec<FlowEvent>,
}

impl Lab {
    fn new(txn: TransactionConfig) -> Lab {
        let pool = Pool::new(4096, 2048);
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
            seed: 7,
            mac_a: EthernetAddress([2, 0, 0, 0, 7, 1]),
            mac_b: EthernetAddress([2, 0, 0, 0, 7, 2]),
            ..MemConfig::default()
        };
        let (wport, pport) = pair(&pool, &clock, &mem);
        let (ctl, wend) = channel(16, 256);
        let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
        cfg.max_contexts = 4;
        cfg.bfcp_transactions = txn;
        let mut worker = Worker::new(wport, cfg, wend).unwrap();
        let mut pe = EdgeConfig::single(mem.mac_b, UE, 24);
        pe.addrs.push(InterfaceAddr {
            addr: CORE,
            prefix_len: 24,
        });
        let mut peers = TcpHost::new(pport, pe, mgw_tcp::Config::default()).unwrap();
        worker.edge().add_neighbor(Instant::ZERO, UE, mem.mac_b);
        worker.edge().add_neighbor(Instant::ZERO, CORE, mem.mac_b);
        let leg = |local, remote, transport, open| LegProgram {
            local,
            remote,
            transport,
            tcp_role: open,
            establish_now: true,
            // A leg with no remote learns its peer from its connection (H.248.37).
            latching: remote.is_none(),
            security_role: SecurityRole::Server,
            peer_fingerprints: PeerFingerprints::new(),
            msrp: None,
        };
        ctl.send(FlowOp::Install(ContextProgram {
            context: 3,
            generation: 1,
            application: Application::Bfcp,
            aware: true,
            legs: [
                leg(sa(GW, 2856), None, Transport::Tcp, TcpRole::Passive),
                leg(
                    sa(GW, 5002),
                    Some(sa(CORE, 6000)),
                    Transport::Udp,
                    TcpRole::Active,
                ),
            ],
        }))
        .unwrap();
        let ue = peers
            .tcp
            .connect(
                Instant::ZERO,
                (IpAddress::V4(UE), 40000),
                (IpAddress::V4(GW), 2856),
            )
            .unwrap();
        let mut lab = Lab {
            worker,
            peers,
            ctl,
            vc,
            t: Instant::ZERO,
            ue,
            ue_buf: Vec::new(),
            ue_got: Vec::new(),
            core_got: Vec::new(),
            events: Vec::new(),
        };
        let mut connected = false;
        for _ in 0..300 {
            lab.step();
            while let Some(ev) = lab.peers.tcp.poll_event() {
                connected |= ev.kind == EventKind::Connected && ev.conn == ue;
            }
            if connected {
                break;
            }
        }
        assert!(connected, "the UE's TCP connection is up");
        // Let the worker see the connection up.
        lab.step();
        lab.step();
        lab
    }

    /// Advances 10 ms: peers' input is collected, then the worker and the link run.
    fn step(&mut self) {
        self.vc.set(self.t);
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = self.peers.tcp.recv(self.ue, &mut buf) {
            self.ue_buf.extend_from_slice(&buf[..n]);
        }
        while self.ue_buf.len() >= 12 {
            let n = 12 + 4 * usize::from(u16::from_be_bytes([self.ue_buf[2], self.ue_buf[3]]));
            if self.ue_buf.len() < n {
                break;
            }
            let m: Vec<u8> = self.ue_buf.drain(..n).collect();
            self.ue_got.push((self.t, m));
        }
        while let Some((_, _, d)) = self.peers.udp_in.pop_front() {
            self.core_got.push((self.t, d));
        }
        self.peers.flush();
        let mut sim = Sim::new(self.vc.clone(), vec![&mut self.worker, &mut self.peers]);
        sim.run(self.t + (STEP - Duration::from_nanos(1)), 100_000, || false);
        while let Some(e) = self.ctl.recv() {
            self.events.push(e);
        }
        self.t += STEP;
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.t + d;
        while self.t < end {
            self.step();
        }
    }

    fn ue_send(&mut self, m: &[u8]) {
        assert_eq!(self.peers.tcp.send(self.ue, m).unwrap(), m.len());
    }

    fn core_send(&mut self, m: &[u8]) {
        assert!(self.peers.send_udp(sa(CORE, 6000), sa(GW, 5002), m));
    }

    fn stats(&self) -> mgw_app::bfcp::TransactionStats {
        self.worker.stats().bfcp_transactions
    }

    /// Datagrams the core received with primitive `p`.
    fn core_got(&self, p: Primitive) -> Vec<(Instant, Vec<u8>)> {
        self.core_got
            .iter()
            .filter(|(_, d)| head(d).2 == p)
            .cloned()
            .collect()
    }
}

// ---- requests from UDP, responses from the stream ----

#[test]
fn response_to_udp_carries_r_and_a_retransmitted_request_is_answered_from_cache() {
    let mut lab = Lab::new(TransactionConfig::default());
    // The core (client) sends a FloorRequest; the UE (server) answers it.
    let req = bfcp(2, false, Primitive::FloorRequest, 5);
    lab.core_send(&req);
    lab.run_for(Duration::from_millis(50));
    assert_eq!(lab.ue_got.len(), 1);
    assert_eq!(lab.ue_got[0].1, {
        let mut v1 = req.clone();
        v1[0] = 1 << 5;
        v1
    });
    lab.ue_send(&bfcp(1, false, Primitive::FloorRequestStatus, 5));
    lab.run_for(Duration::from_millis(50));
    let resp = lab.core_got(Primitive::FloorRequestStatus);
    assert_eq!(resp.len(), 1);
    assert_eq!(
        head(&resp[0].1),
        (2, true, Primitive::FloorRequestStatus, 5),
        "Ver 2 with R set (RFC 8855 §5.1)"
    );
    // The response was lost: the core retransmits its request. The gateway answers from its
    // cache; the UE does not see the request twice.
    lab.core_send(&req);
    lab.run_for(Duration::from_millis(50));
    assert_eq!(lab.ue_got.len(), 1, "the retransmission is not relayed");
    let resp = lab.core_got(Primitive::FloorRequestStatus);
    assert_eq!(resp.len(), 2);
    assert_eq!(resp[1].1, resp[0].1, "the same response again");
    // A retransmission before the UE answered: not relayed either, and not answered.
    let req6 = bfcp(2, false, Primitive::FloorQuery, 6);
    lab.core_send(&req6);
    lab.core_send(&req6);
    lab.run_for(Duration::from_millis(50));
    assert_eq!(lab.ue_got.len(), 2);
    assert_eq!(head(&lab.ue_got[1].1), (1, false, Primitive::FloorQuery, 6));
    let s = lab.stats();
    assert_eq!((s.responses_marked, s.answers_resent), (1, 1));
    assert_eq!(s.duplicates_absorbed, 2);
    // Nothing from the stream side was retransmitted: responses are not requests.
    lab.run_for(Duration::from_secs(4));
    assert_eq!(lab.core_got.len(), 2);
    assert_eq!(lab.stats().retransmitted, 0);
}

// ---- server-initiated from the stream ----

#[test]
fn server_initiated_from_stream_gets_an_id_is_retransmitted_until_acked_and_the_ack_absorbed() {
    let mut lab = Lab::new(TransactionConfig::default());
    let t0 = lab.t;
    lab.ue_send(&bfcp(1, false, Primitive::FloorStatus, 0));
    // The core misses the first two copies and acknowledges the third.
    let mut acked = false;
    while lab.t < t0 + Duration::from_secs(10) {
        lab.step();
        let got = lab.core_got(Primitive::FloorStatus);
        if got.len() == 3 && !acked {
            let (_, r, _, tid) = head(&got[2].1);
            assert!(!r);
            lab.core_send(&ack(Primitive::FloorStatusAck, tid));
            acked = true;
        }
    }
    let got = lab.core_got(Primitive::FloorStatus);
    assert_eq!(got.len(), 3, "no copy after the ack");
    let tid = head(&got[0].1).3;
    assert_ne!(tid, 0, "a non-zero Transaction ID over UDP (RFC 8855 §8)");
    for (_, d) in &got {
        assert_eq!(head(d), (2, false, Primitive::FloorStatus, tid));
        assert_eq!(&d[10..], &bfcp(1, false, Primitive::FloorStatus, 0)[10..]);
    }
    // T1 = 500 ms, then doubled (§8.3.1); the 10 ms steps round the times.
    let gap = |a: Instant, b: Instant| b.saturating_duration_since(a).as_millis();
    let (g1, g2) = (gap(got[0].0, got[1].0), gap(got[1].0, got[2].0));
    assert!(
        (490..=520).contains(&g1),
        "first retransmission after {g1} ms"
    );
    assert!((990..=1020).contains(&g2), "second after {g2} ms");
    assert!(lab.ue_got.is_empty(), "the ack is absorbed, not relayed");
    let s = lab.stats();
    assert_eq!(
        (
            s.ids_assigned,
            s.retransmitted,
            s.acks_absorbed,
            s.timed_out
        ),
        (1, 2, 1, 0)
    );

    // Never acknowledged: sent 4 times (3 retransmissions), then given up.
    lab.ue_send(&bfcp(1, false, Primitive::FloorRequestStatus, 0));
    lab.run_for(Duration::from_secs(12));
    let got = lab.core_got(Primitive::FloorRequestStatus);
    assert_eq!(got.len(), 4);
    let tid2 = head(&got[0].1).3;
    assert!(tid2 != 0 && tid2 != tid, "a fresh ID");
    assert!(got.iter().all(|(_, d)| head(d).3 == tid2));
    assert_eq!(lab.stats().timed_out, 1);
    assert_eq!(lab.stats().retransmitted, 5);

    // A Goodbye from the stream's server: its GoodbyeAck reaches the UE with ID 0.
    lab.ue_send(&bfcp(1, false, Primitive::Goodbye, 0));
    lab.run_for(Duration::from_millis(50));
    let bye = lab.core_got(Primitive::Goodbye);
    let tid3 = head(&bye[0].1).3;
    assert_ne!(tid3, 0);
    lab.core_send(&ack(Primitive::GoodbyeAck, tid3));
    lab.run_for(Duration::from_millis(50));
    assert_eq!(lab.ue_got.len(), 1);
    assert_eq!(head(&lab.ue_got[0].1), (1, false, Primitive::GoodbyeAck, 0));
}

#[test]
fn request_from_stream_is_retransmitted_until_answered_and_duplicate_answers_absorbed() {
    let mut lab = Lab::new(TransactionConfig::default());
    lab.ue_send(&bfcp(1, false, Primitive::Hello, 11));
    lab.run_for(Duration::from_millis(700));
    let got = lab.core_got(Primitive::Hello);
    assert_eq!(got.len(), 2, "retransmitted once after T1");
    assert!(got
        .iter()
        .all(|(_, d)| head(d) == (2, false, Primitive::Hello, 11)));
    // The core answers both copies: the UE gets one HelloAck, without R.
    let mut ha = bfcp(2, true, Primitive::HelloAck, 11);
    lab.core_send(&ha);
    lab.core_send(&ha);
    lab.run_for(Duration::from_secs(4));
    assert_eq!(lab.ue_got.len(), 1);
    ha[0] = 1 << 5;
    assert_eq!(lab.ue_got[0].1, ha);
    assert_eq!(
        lab.core_got(Primitive::Hello).len(),
        2,
        "no copy after the answer"
    );
    assert_eq!(lab.stats().duplicates_absorbed, 1);
}

// ---- server-initiated from UDP ----

#[test]
fn server_initiated_from_udp_is_acked_by_the_gateway_and_relayed_once_with_id_zero() {
    let mut lab = Lab::new(TransactionConfig::default());
    let frs = bfcp(2, false, Primitive::FloorRequestStatus, 0x4001);
    lab.core_send(&frs);
    lab.run_for(Duration::from_millis(50));
    // The core did not get the ack in time: it retransmits.
    lab.core_send(&frs);
    lab.run_for(Duration::from_millis(50));
    let acks = lab.core_got(Primitive::FloorRequestStatusAck);
    assert_eq!(acks.len(), 2, "each copy acknowledged");
    for (_, a) in &acks {
        assert_eq!(a, &ack(Primitive::FloorRequestStatusAck, 0x4001));
    }
    assert_eq!(lab.ue_got.len(), 1, "relayed once");
    let mut want = frs.clone();
    want[0] = 1 << 5;
    want[8..10].copy_from_slice(&[0, 0]);
    assert_eq!(
        lab.ue_got[0].1, want,
        "Ver 1, Transaction ID 0 (RFC 8855 §8)"
    );
    // FloorStatus the same way, with FloorStatusAck.
    lab.core_send(&bfcp(2, false, Primitive::FloorStatus, 0x4002));
    lab.run_for(Duration::from_millis(50));
    assert_eq!(
        lab.core_got(Primitive::FloorStatusAck)[0].1,
        ack(Primitive::FloorStatusAck, 0x4002)
    );
    assert_eq!(
        head(&lab.ue_got[1].1),
        (1, false, Primitive::FloorStatus, 0)
    );
    // Acknowledgements never cross: not from UDP (unsolicited), not from the stream.
    lab.core_send(&ack(Primitive::FloorStatusAck, 0x77));
    lab.ue_send(&{
        let mut a = ack(Primitive::FloorRequestStatusAck, 0x4001);
        a[0] = 1 << 5;
        a
    });
    lab.run_for(Duration::from_millis(50));
    assert_eq!(lab.ue_got.len(), 2);
    assert_eq!(
        lab.core_got.len(),
        2 + 1,
        "only the gateway's own acks reached the core"
    );
    let s = lab.stats();
    assert_eq!(
        (
            s.acks_sent,
            s.duplicates_absorbed,
            s.acks_absorbed,
            s.invalid
        ),
        (3, 1, 1, 1)
    );
    // No request went to the core: nothing is retransmitted.
    lab.run_for(Duration::from_secs(2));
    assert_eq!(lab.core_got.len(), 3);
}

// ---- bounds ----

#[test]
fn tables_are_bounded_and_overflow_is_counted() {
    let mut lab = Lab::new(TransactionConfig {
        requests: 2,
        answers: 2,
        ..TransactionConfig::default()
    });
    // Four server-initiated messages, never acknowledged: two tracked (retransmitted, given
    // up), two sent once, untracked.
    for _ in 0..4 {
        lab.ue_send(&bfcp(1, false, Primitive::FloorStatus, 0));
    }
    lab.run_for(Duration::from_secs(9));
    let got = lab.core_got(Primitive::FloorStatus);
    assert_eq!(got.len(), 2 * 4 + 2);
    let s = lab.stats();
    assert_eq!((s.overflow, s.timed_out, s.ids_assigned), (2, 2, 4));
    // Three requests from UDP into two remembered slots: the oldest is forgotten, so its
    // retransmission reaches the stream again (counted); the others do not.
    for tid in 1..=3 {
        lab.core_send(&bfcp(2, false, Primitive::FloorQuery, tid));
    }
    lab.run_for(Duration::from_millis(50));
    for tid in 1..=3 {
        lab.core_send(&bfcp(2, false, Primitive::FloorQuery, tid));
    }
    lab.run_for(Duration::from_millis(50));
    let tids: Vec<u16> = lab.ue_got.iter().map(|(_, m)| head(m).3).collect();
    assert_eq!(tids[..3], [1, 2, 3]);
    assert!(tids.len() < 6, "retransmissions partly absorbed: {tids:?}");
    assert!(lab.stats().overflow >= 3);
    assert!(lab
        .events
        .iter()
        .all(|e| !matches!(e, FlowEvent::Released { .. })));
}
