//! Two workers on two receive queues of one port, with context affinity by software redirect
//! (issue 7). The "NIC" spreads received frames over the queues by a hash of their IPv4
//! addresses, protocol and ports (as RSS or PACKET_FANOUT_HASH do, with no flow rules), so the
//! frames of a leg often land on the worker that does not own its context. Contexts are put on
//! both workers (context i on worker i % 2); every byte must still arrive exactly, the redirect
//! counters must show the hand-offs, ARP replies (all hashed to queue 0) must reach worker 1 as
//! shared neighbours, and after release no port may stay claimed.
//!
//! The workers are polled alternately in one thread with a virtual clock; the hand-off between
//! them is the same lock-free inbox threads use. A counting allocator checks that redirecting
//! allocates nothing once the flows are up.

use mgw_app::msrp::{ByteRange, MsrpResponse, MsrpSend};
use mgw_core::buf::{PktBuf, Pool};
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::host::Host;
use mgw_core::link::LinkModel;
use mgw_core::port::Node;
use mgw_core::sim::Sim;
use mgw_core::testkit::CountingAllocator;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair_multiqueue, rss_4tuple, MemConfig, MemPort, MemQueue};
use mgw_tcp::EventKind;
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{
    DtlsConfig, DtlsEvent, DtlsSession, HashFunction, Identity, PeerFingerprints, SecurityRole,
    TlsContext, TlsSettings,
};
use mgw_worker::peer::{TcpHost, TlsPeer};
use mgw_worker::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Counts allocations per thread while switched on (see `mgw_core::testkit`).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// A worker whose polls are counted by the allocator.
struct Counted<'a>(&'a mut Worker<MemQueue>);

impl Node for Counted<'_> {
    fn poll(&mut self, now: Instant) {
        CountingAllocator::set_counting(true);
        self.0.poll(now);
        CountingAllocator::set_counting(false);
    }

    fn poll_at(&self) -> Option<Instant> {
        self.0.poll_at()
    }
}

/// Allocations made inside worker polls on this thread so far.
fn worker_allocs() -> u64 {
    CountingAllocator::allocations()
}

const GW: Ipv4Address = Ipv4Address([10, 6, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 6, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 6, 0, 3]);
const MAC_GW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 6, 1]);
const MAC_PEERS: EthernetAddress = EthernetAddress([2, 0, 0, 0, 6, 2]);
const WORKERS: usize = 2;

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

/// The gateway side: the workers on the queues of one port, sharing one steering table.
struct Gateway {
    vc: VirtualClock,
    steering: Arc<Steering<PktBuf>>,
    workers: Vec<Worker<MemQueue>>,
    ctls: Vec<ControlEnd>,
    events: Vec<(usize, FlowEvent)>,
}

impl Gateway {
    /// Workers configured by `cfg`, and the peers' end of the wire.
    fn new(
        pool: &Pool,
        link: LinkModel,
        seed: u64,
        cfg: impl Fn() -> WorkerConfig,
    ) -> (Gateway, MemPort) {
        Gateway::with(pool, link, seed, cfg, rss_4tuple, 1024)
    }

    /// As [`Gateway::new`], with the NIC's hash and the inbox size given.
    fn with(
        pool: &Pool,
        link: LinkModel,
        seed: u64,
        cfg: impl Fn() -> WorkerConfig,
        rss: fn(&[u8]) -> usize,
        inbox: usize,
    ) -> (Gateway, MemPort) {
        let vc = VirtualClock::new();
        let mem = MemConfig {
            a_to_b: link.clone(),
            b_to_a: link,
            seed,
            mac_a: MAC_GW,
            mac_b: MAC_PEERS,
            ..MemConfig::default()
        };
        let (queues, peer_port) =
            pair_multiqueue(pool, &Clock::Virtual(vc.clone()), &mem, WORKERS, rss);
        let steering = Steering::new(&[GW], WORKERS, inbox);
        let mut workers = Vec::new();
        let mut ctls = Vec::new();
        for (i, q) in queues.into_iter().enumerate() {
            let (ctl, wend) = channel(64, 256);
            let mut w = Worker::new(q, cfg(), wend).unwrap();
            w.set_steering(i, Arc::clone(&steering)).unwrap();
            workers.push(w);
            ctls.push(ctl);
        }
        (
            Gateway {
                vc,
                steering,
                workers,
                ctls,
                events: Vec::new(),
            },
            peer_port,
        )
    }

    fn edge(mac: EthernetAddress) -> EdgeConfig {
        EdgeConfig::single(mac, GW, 24)
    }

    /// Installs context `id` on worker `id % WORKERS`.
    fn install(&mut self, p: ContextProgram) {
        self.ctls[p.context as usize % WORKERS]
            .send(FlowOp::Install(p))
            .unwrap();
    }

    fn release(&mut self, context: ContextId) {
        self.ctls[context as usize % WORKERS]
            .send(FlowOp::Release {
                context,
                generation: 1,
            })
            .unwrap();
    }

    /// Runs the workers and `peers` from the clock's time for `d` of virtual time.
    fn run(&mut self, peers: &mut dyn Node, d: Duration) {
        let end = self.vc.now() + d;
        {
            let mut counted: Vec<Counted<'_>> = self.workers.iter_mut().map(Counted).collect();
            let mut nodes: Vec<&mut dyn Node> =
                counted.iter_mut().map(|w| w as &mut dyn Node).collect();
            nodes.push(peers);
            let mut sim = Sim::new(self.vc.clone(), nodes);
            sim.run(end, 1_000_000, || false);
        }
        self.vc.set(end);
        for (i, c) in self.ctls.iter().enumerate() {
            while let Some(e) = c.recv() {
                self.events.push((i, e));
            }
        }
    }

    fn stats(&self) -> Vec<WorkerStats> {
        self.workers.iter().map(Worker::stats).collect()
    }

    /// Asserts the hand-offs balance and that some happened.
    fn assert_redirects(&mut self) {
        let s = self.stats();
        eprintln!("worker stats: {s:#?}");
        let out: u64 = s.iter().map(|s| s.redirected_out).sum();
        let inn: u64 = s.iter().map(|s| s.redirected_in).sum();
        assert!(
            out > 0,
            "the hash put some frames on the wrong worker: {s:?}"
        );
        assert_eq!(out, inn, "every redirect was taken: {s:?}");
        assert!(s.iter().all(|s| s.redirect_dropped == 0), "{s:?}");
        assert!(
            s.iter().all(|s| s.redirected_out > 0),
            "both workers handed frames over: {s:?}"
        );
        // ARP frames hash to queue 0: worker 1 sends only because worker 0 shares neighbours.
        assert!(s[0].neighbors_shared > 0, "{s:?}");
        let e1 = self.workers[1].edge().stats();
        assert_eq!((e1.arp_replies, e1.ignored), (0, 0), "{e1:?}");
    }

    fn released(&self) -> BTreeMap<ContextId, [LegStats; 2]> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                FlowEvent::Released { context, stats, .. } => Some((*context, *stats)),
                _ => None,
            })
            .collect()
    }

    fn installed(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, FlowEvent::Installed { .. }))
            .count()
    }
}

fn ideal_link() -> LinkModel {
    LinkModel {
        delay: Duration::from_millis(1),
        mtu: 1514,
        ..LinkModel::ideal()
    }
}

fn udp_leg(local: SocketAddr, remote: Option<SocketAddr>, transport: Transport) -> LegProgram {
    LegProgram {
        local,
        remote,
        transport,
        tcp_role: TcpRole::Passive,
        establish_now: true,
        latching: remote.is_none(),
        security_role: SecurityRole::Server,
        peer_fingerprints: PeerFingerprints::new(),
        msrp: None,
    }
}

fn peer_edge() -> EdgeConfig {
    let mut e = EdgeConfig::single(MAC_PEERS, UE, 24);
    e.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    e
}

/// Ports: context i has GW:20000+2i (UE side) and GW:20001+2i (core side); the UE sends from
/// UE:40000+i, the core from CORE:30000+i.
fn ue_port(i: u16) -> u16 {
    40000 + i
}
fn core_port(i: u16) -> u16 {
    30000 + i
}
fn gw_a(i: u16) -> u16 {
    20000 + 2 * i
}
fn gw_b(i: u16) -> u16 {
    20001 + 2 * i
}

#[test]
fn udp_to_udp_on_two_workers_every_datagram_arrives() {
    const CONTEXTS: u16 = 8;
    const ROUNDS: usize = 20;
    let pool = Pool::new(4096, 2048);
    pool.prefill();
    let (mut gw, pport) = Gateway::new(&pool, ideal_link(), 1, || {
        WorkerConfig::new(Gateway::edge(MAC_GW))
    });
    let mut peers = Host::new(pport, peer_edge());
    for i in 0..CONTEXTS {
        gw.install(ContextProgram {
            context: u32::from(i),
            generation: 1,
            application: Application::Opaque,
            aware: false,
            legs: [
                // The UE's address is latched from its first datagram.
                udp_leg(sa(GW, gw_a(i)), None, Transport::Udp),
                udp_leg(
                    sa(GW, gw_b(i)),
                    Some(sa(CORE, core_port(i))),
                    Transport::Udp,
                ),
            ],
        });
    }
    gw.run(&mut peers, Duration::from_millis(10));
    assert_eq!(gw.installed(), usize::from(CONTEXTS));
    assert_eq!(gw.steering.claimed(), 2 * usize::from(CONTEXTS));
    // Warm-up: the first datagrams make the peers ARP for the gateway and the workers ARP for
    // the core (what a worker sends before that is held, but only briefly).
    for _ in 0..3 {
        for i in 0..CONTEXTS {
            peers.send_udp_from(UE, ue_port(i), GW, gw_a(i), b"warm-up");
        }
        gw.run(&mut peers, Duration::from_millis(500));
    }
    while peers.recv().is_some() {}
    let before = gw.stats();
    let allocs = worker_allocs();

    let mut at_core: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut at_ue: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut take = |peers: &mut Host<MemPort>| {
        while let Some(d) = peers.recv() {
            let (ip, port) = d.dst;
            let to = if ip == IpAddress::V4(CORE) {
                at_core.entry(port - 30000)
            } else {
                at_ue.entry(port - 40000)
            };
            to.or_default().push(d.payload().to_vec());
        }
    };
    for k in 0..ROUNDS {
        for i in 0..CONTEXTS {
            let up = format!("up c{i} s{k}");
            assert!(peers.send_udp_from(UE, ue_port(i), GW, gw_a(i), up.as_bytes()));
            let down = format!("down c{i} s{k}");
            assert!(peers.send_udp_from(CORE, core_port(i), GW, gw_b(i), down.as_bytes()));
        }
        gw.run(&mut peers, Duration::from_millis(10));
        take(&mut peers);
    }
    gw.run(&mut peers, Duration::from_millis(50));
    take(&mut peers);
    assert_eq!(
        worker_allocs() - allocs,
        0,
        "relaying and redirecting allocate nothing"
    );
    for i in 0..CONTEXTS {
        let want = |dir: &str| -> Vec<Vec<u8>> {
            (0..ROUNDS)
                .map(|k| format!("{dir} c{i} s{k}").into_bytes())
                .collect()
        };
        assert_eq!(at_core.get(&i), Some(&want("up")), "context {i} uplink");
        assert_eq!(at_ue.get(&i), Some(&want("down")), "context {i} downlink");
    }
    let after = gw.stats();
    let relayed: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.relayed - b.relayed)
        .sum();
    assert_eq!(relayed, 2 * ROUNDS as u64 * u64::from(CONTEXTS));
    assert!(
        after.iter().all(|s| s.relayed > 0),
        "both workers relay: {after:?}"
    );
    assert!(after.iter().all(|s| s.no_flow == 0), "{after:?}");
    gw.assert_redirects();

    for i in 0..CONTEXTS {
        gw.release(u32::from(i));
    }
    gw.run(&mut peers, Duration::from_millis(10));
    let released = gw.released();
    assert_eq!(released.len(), usize::from(CONTEXTS));
    for (c, s) in &released {
        // Warm-up datagrams count as received too (some were relayed, some dropped unresolved).
        assert!(
            s[0].messages_received >= ROUNDS as u64,
            "context {c}: {s:?}"
        );
        assert_eq!(s[1].messages_received, ROUNDS as u64, "context {c}: {s:?}");
    }
    assert_eq!(gw.steering.claimed(), 0, "every port given back");
    assert!(gw.workers.iter().all(|w| w.contexts() == 0));
}

fn udptl(seq: u16, ifp: &[u8]) -> Vec<u8> {
    let r = mgw_app::udptl::UdptlRepr {
        seq_number: seq,
        primary_ifp: ifp,
        error_recovery: mgw_app::udptl::ErrorRecovery::Redundancy(mgw_app::udptl::IfpList::Items(
            &[],
        )),
    };
    let mut out = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut out).unwrap();
    out.truncate(n);
    out
}

/// One DTLS UE per context, and the plain-UDPTL core, all on one host.
struct FaxPeers {
    host: Host<MemPort>,
    ues: Vec<FaxUe>,
    /// Per context: datagrams the core received.
    core_received: BTreeMap<u16, Vec<Vec<u8>>>,
    now: Instant,
}

struct FaxUe {
    session: DtlsSession,
    deadline: Instant,
    up: bool,
    received: Vec<Vec<u8>>,
}

impl FaxPeers {
    fn pump(&mut self) {
        let mut buf = [0u8; 2048];
        for (i, ue) in self.ues.iter_mut().enumerate() {
            let i = i as u16;
            loop {
                match ue.session.poll(&mut buf) {
                    DtlsOutput::Transmit(d) => {
                        let d = d.to_vec();
                        self.host.send_udp_from(UE, ue_port(i), GW, gw_a(i), &d);
                    }
                    DtlsOutput::Data(d) => ue.received.push(d.to_vec()),
                    DtlsOutput::Event(DtlsEvent::Established { .. }) => ue.up = true,
                    DtlsOutput::Event(_) => {}
                    DtlsOutput::BufferTooSmall { .. } => panic!("2 KiB holds a DTLS datagram"),
                    DtlsOutput::Wait(t) => {
                        ue.deadline = t;
                        break;
                    }
                }
            }
        }
        self.host.flush();
    }
}

impl Node for FaxPeers {
    fn poll(&mut self, now: Instant) {
        self.now = now;
        self.host.poll(now);
        while let Some(d) = self.host.recv() {
            let (ip, port) = d.dst;
            if ip == IpAddress::V4(UE) {
                if let Some(ue) = self.ues.get_mut(usize::from(port - 40000)) {
                    let _ = ue.session.handle_datagram(d.payload(), now);
                }
            } else {
                self.core_received
                    .entry(port - 30000)
                    .or_default()
                    .push(d.payload().to_vec());
            }
        }
        for ue in &mut self.ues {
            if now >= ue.deadline {
                let _ = ue.session.handle_timeout(now);
            }
        }
        self.pump();
    }

    fn poll_at(&self) -> Option<Instant> {
        let timers = self.ues.iter().map(|u| u.deadline).min();
        [self.host.poll_at(), timers]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(self.now))
    }
}

#[test]
fn t38_dtls_to_udp_on_two_workers_every_ifp_arrives() {
    const CONTEXTS: u16 = 4;
    const PAGES: u16 = 30;
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let dtls_cfg = |id: &Identity| DtlsConfig::new(id, 1200, Duration::from_secs(20)).unwrap();
    let pool = Pool::new(4096, 2048);
    pool.prefill();
    let (mut gw, pport) = Gateway::new(&pool, ideal_link(), 2, || {
        let mut c = WorkerConfig::new(Gateway::edge(MAC_GW));
        c.max_contexts = 16;
        c.dtls = Some(dtls_cfg(&gw_id));
        c
    });
    let ue_fp = PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256));
    for i in 0..CONTEXTS {
        gw.install(ContextProgram {
            context: u32::from(i),
            generation: 1,
            application: Application::Udptl,
            aware: true,
            legs: [
                LegProgram {
                    peer_fingerprints: ue_fp,
                    ..udp_leg(
                        sa(GW, gw_a(i)),
                        Some(sa(UE, ue_port(i))),
                        Transport::DtlsUdp,
                    )
                },
                udp_leg(
                    sa(GW, gw_b(i)),
                    Some(sa(CORE, core_port(i))),
                    Transport::Udp,
                ),
            ],
        });
    }
    let gw_fp = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
    let mut peers = FaxPeers {
        host: Host::new(pport, peer_edge()),
        ues: (0..CONTEXTS)
            .map(|i| FaxUe {
                session: DtlsSession::new(
                    &dtls_cfg(&ue_id),
                    SecurityRole::Client,
                    gw_fp,
                    &format!("ue-{i}"),
                    Instant::ZERO,
                )
                .unwrap(),
                deadline: Instant::ZERO,
                up: false,
                received: Vec::new(),
            })
            .collect(),
        core_received: BTreeMap::new(),
        now: Instant::ZERO,
    };
    // Handshakes (the first ClientHellos wait for ARP and are retransmitted), then one
    // warm-up IFP each way so the workers resolve the core.
    gw.run(&mut peers, Duration::from_secs(4));
    assert!(peers.ues.iter().all(|u| u.up), "every DTLS UE is up");
    for (i, ue) in peers.ues.iter_mut().enumerate() {
        let _ = ue.session.send(&udptl(0, b"warm-up"));
        let i = i as u16;
        peers
            .host
            .send_udp_from(CORE, core_port(i), GW, gw_b(i), &udptl(0, b"warm-up"));
    }
    peers.pump();
    gw.run(&mut peers, Duration::from_secs(1));
    let warm = udptl(0, b"warm-up");
    let mut sent_up = vec![Vec::new(); usize::from(CONTEXTS)];
    let mut sent_down = vec![Vec::new(); usize::from(CONTEXTS)];
    for seq in 1..=PAGES {
        for i in 0..CONTEXTS {
            let up = udptl(seq, format!("ifp-up c{i} s{seq}").as_bytes());
            let _ = peers.ues[usize::from(i)].session.send(&up);
            sent_up[usize::from(i)].push(up);
            let down = udptl(seq, format!("ifp-down c{i} s{seq}").as_bytes());
            peers
                .host
                .send_udp_from(CORE, core_port(i), GW, gw_b(i), &down);
            sent_down[usize::from(i)].push(down);
        }
        peers.pump();
        gw.run(&mut peers, Duration::from_millis(20));
    }
    gw.run(&mut peers, Duration::from_millis(100));
    // (No allocation check here: the DTLS sessions themselves allocate per record, with or
    // without steering; the UDP and MSRP cases check that steering adds none.)
    for i in 0..CONTEXTS {
        let up: Vec<_> = peers.core_received[&i]
            .iter()
            .filter(|d| **d != warm)
            .cloned()
            .collect();
        assert_eq!(up, sent_up[usize::from(i)], "context {i} uplink");
        let down: Vec<_> = peers.ues[usize::from(i)]
            .received
            .iter()
            .filter(|d| **d != warm)
            .cloned()
            .collect();
        assert_eq!(down, sent_down[usize::from(i)], "context {i} downlink");
    }
    gw.assert_redirects();
    let ups = gw
        .events
        .iter()
        .filter(|(_, e)| matches!(e, FlowEvent::SecureUp { side: Side::A, .. }))
        .count();
    assert_eq!(ups, usize::from(CONTEXTS));
    for i in 0..CONTEXTS {
        gw.release(u32::from(i));
    }
    gw.run(&mut peers, Duration::from_millis(100));
    assert_eq!(gw.released().len(), usize::from(CONTEXTS));
    assert_eq!(gw.steering.claimed(), 0, "every port given back");
}

fn msrp_send(c: u16, i: usize) -> Vec<u8> {
    let (tid, mid) = (format!("c{c}t{i:05}"), format!("m{i}"));
    let body: Vec<u8> = (0..40 + (i * 37) % 600)
        .map(|k| b'a' + ((i + k) % 26) as u8)
        .collect();
    let (gw, ue) = (gw_uri(c), ue_uri(c));
    MsrpSend::new(&tid, &gw, &ue, &mid)
        .byte_range(ByteRange::whole(body.len() as u64))
        .body("text/plain", &body)
        .to_vec()
        .expect("a valid SEND")
}

/// The gateway's MSRP URI on context `c`'s access leg, and the UE's.
fn gw_uri(c: u16) -> String {
    format!("msrps://10.6.0.1:{}/gw;tcp", gw_a(c))
}

/// The UE's MSRP URI on context `c`.
fn ue_uri(c: u16) -> String {
    format!("msrps://10.6.0.2:{}/ue;tcp", ue_port(c))
}

/// The 200 OK to [`msrp_send`] `(c, i)`, from the gateway's URI to the UE's.
fn msrp_ok(c: u16, i: usize) -> Vec<u8> {
    let tid = format!("c{c}t{i:05}");
    MsrpResponse::ok(&tid, &ue_uri(c), &gw_uri(c))
        .to_vec()
        .expect("a valid 200")
}

/// One MSRP session: a TLS UE and a plain-TCP core connection.
#[derive(Default)]
struct Session {
    ue: Option<TlsPeer>,
    core: Option<mgw_tcp::ConnId>,
    up: Vec<u8>,
    down: Vec<u8>,
    sent_up: usize,
    sent_down: usize,
    at_core: Vec<u8>,
    at_ue: Vec<u8>,
    ue_saw_close_notify: bool,
    core_saw_fin: bool,
}

#[test]
fn msrp_tls_to_tcp_on_two_workers_byte_exact_and_ports_linger_until_closed() {
    const CONTEXTS: u16 = 4;
    const MESSAGES: usize = 60;
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let pool = Pool::new(8192, 2048);
    let link = LinkModel {
        delay: Duration::from_millis(2),
        loss: 0.005,
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let (mut gw, pport) = Gateway::new(&pool, link, 3, || {
        let mut c = WorkerConfig::new(Gateway::edge(MAC_GW));
        c.max_contexts = 16;
        c.tls = Some(TlsContext::new(TlsSettings::default(), gw_id.clone()).unwrap());
        // Short TIME-WAIT so the test sees the lingering ports given back.
        c.tcp.time_wait = Duration::from_secs(1);
        c.tcp.max_rto = Duration::from_secs(2);
        c
    });
    let mut peers = TcpHost::new(
        pport,
        peer_edge(),
        mgw_tcp::Config {
            max_connections: 64,
            ..mgw_tcp::Config::default()
        },
    )
    .unwrap();
    peers.tcp.listen(IpAddress::V4(CORE), 2855).unwrap();
    let ue_fp = PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256));
    let ue_ctx = TlsContext::new(TlsSettings::default(), ue_id.clone()).unwrap();
    let gw_fp = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
    let mut sessions: Vec<Session> = (0..CONTEXTS)
        .map(|c| Session {
            up: (0..MESSAGES).flat_map(|i| msrp_send(c, i)).collect(),
            down: (0..MESSAGES).flat_map(|i| msrp_ok(c, i)).collect(),
            ..Session::default()
        })
        .collect();
    for i in 0..CONTEXTS {
        gw.install(ContextProgram {
            context: u32::from(i),
            generation: 1,
            application: Application::Msrp,
            aware: true,
            legs: [
                LegProgram {
                    tcp_role: TcpRole::Passive,
                    peer_fingerprints: ue_fp,
                    ..udp_leg(sa(GW, gw_a(i)), None, Transport::TlsTcp)
                },
                LegProgram {
                    tcp_role: TcpRole::Active,
                    security_role: SecurityRole::Client,
                    ..udp_leg(sa(GW, gw_b(i)), Some(sa(CORE, 2855)), Transport::Tcp)
                },
            ],
        });
    }
    gw.run(&mut peers, Duration::from_millis(10));
    let mut ue_conns = std::collections::HashMap::new();
    for i in 0..CONTEXTS {
        let t = peers.now();
        let c = peers
            .tcp
            .connect(
                t,
                (IpAddress::V4(UE), ue_port(i)),
                (IpAddress::V4(GW), gw_a(i)),
            )
            .unwrap();
        ue_conns.insert(c, i);
    }
    let mut resets = 0;
    let step = |gw: &mut Gateway,
                peers: &mut TcpHost<MemPort>,
                sessions: &mut [Session],
                resets: &mut usize| {
        let t = peers.now();
        while let Some(ev) = peers.tcp.poll_event() {
            match ev.kind {
                EventKind::Connected => {
                    if let Some(&i) = ue_conns.get(&ev.conn) {
                        sessions[usize::from(i)].ue =
                            Some(TlsPeer::client(&ue_ctx, ev.conn, gw_fp, t).unwrap());
                    }
                }
                EventKind::Accepted { .. } => {
                    let tuple = peers.tcp.tuple(ev.conn).unwrap();
                    let i = (tuple.remote_port - 20001) / 2;
                    sessions[usize::from(i)].core = Some(ev.conn);
                }
                EventKind::PeerClosed => {
                    if let Some(s) = sessions.iter_mut().find(|s| s.core == Some(ev.conn)) {
                        s.core_saw_fin = true;
                    }
                    // Both peers close their side too: the gateway's connections finish.
                    let _ = peers.tcp.close(ev.conn);
                }
                EventKind::Reset => *resets += 1,
                _ => {}
            }
        }
        for s in sessions.iter_mut() {
            if let Some(u) = s.ue.as_mut() {
                u.drive(&mut peers.tcp, t);
                if u.is_established() && s.sent_up < s.up.len() {
                    let end = s.up.len().min(s.sent_up + 4000);
                    s.sent_up += u.send(&mut peers.tcp, &s.up[s.sent_up..end]);
                }
                s.at_ue.append(&mut u.received);
                s.ue_saw_close_notify |= u.is_closed();
            }
            if let Some(c) = s.core {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = peers.tcp.recv(c, &mut buf) {
                    s.at_core.extend_from_slice(&buf[..n]);
                }
                if !s.at_core.is_empty() && s.sent_down < s.down.len() {
                    let end = s.down.len().min(s.sent_down + 4000);
                    s.sent_down += peers.tcp.send(c, &s.down[s.sent_down..end]).unwrap_or(0);
                }
            }
        }
        peers.flush();
        gw.run(peers, Duration::from_millis(10));
    };
    let mut allocs = None;
    for _ in 0..2000 {
        step(&mut gw, &mut peers, &mut sessions, &mut resets);
        // Steady state: every session up and already carrying data both ways.
        let flowing = sessions
            .iter()
            .all(|s| s.at_core.len() > 4000 && !s.at_ue.is_empty());
        if flowing && allocs.is_none() {
            allocs = Some(worker_allocs());
        }
        let done = sessions.iter().all(|s| {
            s.at_core.len() == s.up.len()
                && s.at_ue.len() == s.down.len()
                && s.sent_up == s.up.len()
                && s.sent_down == s.down.len()
        });
        if done {
            break;
        }
    }
    for (i, s) in sessions.iter().enumerate() {
        assert!(
            s.at_core == s.up,
            "context {i}: core got {} of {} bytes",
            s.at_core.len(),
            s.up.len()
        );
        assert!(
            s.at_ue == s.down,
            "context {i}: UE got {} of {} bytes",
            s.at_ue.len(),
            s.down.len()
        );
    }
    gw.assert_redirects();
    assert_eq!(resets, 0);
    let allocs = worker_allocs() - allocs.expect("a steady state was reached");
    assert_eq!(allocs, 0, "steady relay with redirects allocates nothing");

    for i in 0..CONTEXTS {
        gw.release(u32::from(i));
    }
    for _ in 0..100 {
        step(&mut gw, &mut peers, &mut sessions, &mut resets);
    }
    let released = gw.released();
    assert_eq!(released.len(), usize::from(CONTEXTS));
    for (c, st) in &released {
        assert_eq!(st[0].messages_received, MESSAGES as u64, "context {c}");
        assert_eq!(st[1].messages_received, MESSAGES as u64, "context {c}");
    }
    assert!(sessions
        .iter()
        .all(|s| s.ue_saw_close_notify && s.core_saw_fin));
    // One second after release the TCP ports are still held (TIME-WAIT); the peers' last
    // segments reached the stacks holding the connections: no RST anywhere.
    assert_eq!(resets, 0);
    let lingering: usize = gw.workers.iter().map(Worker::lingering_ports).sum();
    assert_eq!(lingering, 2 * usize::from(CONTEXTS));
    assert_eq!(gw.steering.claimed(), 2 * usize::from(CONTEXTS));
    for _ in 0..300 {
        step(&mut gw, &mut peers, &mut sessions, &mut resets);
    }
    assert_eq!(
        gw.steering.claimed(),
        0,
        "every port given back after TIME-WAIT"
    );
    assert!(gw.workers.iter().all(|w| w.lingering_ports() == 0));
    assert_eq!(resets, 0);
    let rst: u64 = gw.workers.iter().map(|w| w.tcp_counters().rst_out).sum();
    assert_eq!(rst, 0, "no worker answered a stranger's segment with RST");
}

#[test]
fn a_port_held_by_one_worker_is_refused_to_another() {
    let pool = Pool::new(256, 2048);
    let (mut gw, pport) = Gateway::new(&pool, ideal_link(), 4, || {
        WorkerConfig::new(Gateway::edge(MAC_GW))
    });
    let mut peers = Host::new(pport, peer_edge());
    let ctx = |context, b_port| ContextProgram {
        context,
        generation: 1,
        application: Application::Opaque,
        aware: false,
        legs: [
            udp_leg(sa(GW, 20000), None, Transport::Udp),
            udp_leg(sa(GW, b_port), Some(sa(CORE, 30000)), Transport::Udp),
        ],
    };
    // Context 0 on worker 0 holds GW:20000; context 1 (worker 1) wants it too.
    gw.install(ctx(0, 20001));
    gw.run(&mut peers, Duration::from_millis(10));
    gw.install(ctx(1, 20003));
    gw.run(&mut peers, Duration::from_millis(10));
    assert!(
        gw.events.iter().any(|(w, e)| *w == 1
            && matches!(
                e,
                FlowEvent::InstallFailed {
                    context: 1,
                    reason: InstallFailure::AddressInUse,
                    ..
                }
            )),
        "{:?}",
        gw.events
    );
    // Nothing of the refused install stays claimed: only context 0's two ports.
    assert_eq!(gw.steering.owner(GW, 20003), None);
    assert_eq!(gw.steering.owner(GW, 20000), Some(0));
    assert_eq!(gw.steering.claimed(), 2);
    gw.release(0);
    gw.run(&mut peers, Duration::from_millis(10));
    assert_eq!(gw.steering.claimed(), 0);
    // Now worker 1 may have it.
    gw.install(ctx(1, 20003));
    gw.run(&mut peers, Duration::from_millis(10));
    assert_eq!(gw.steering.owner(GW, 20000), Some(1));
    assert_eq!(gw.workers[1].contexts(), 1);
}

#[test]
fn a_full_inbox_drops_and_counts() {
    let pool = Pool::new(256, 2048);
    // Every frame lands on queue 0; worker 1's inbox holds 4.
    let (mut gw, pport) = Gateway::with(
        &pool,
        ideal_link(),
        5,
        || WorkerConfig::new(Gateway::edge(MAC_GW)),
        |_| 0,
        4,
    );
    let mut peers = Host::new(pport, peer_edge());
    gw.install(ContextProgram {
        context: 1,
        generation: 1,
        application: Application::Opaque,
        aware: false,
        legs: [
            udp_leg(sa(GW, 20000), None, Transport::Udp),
            udp_leg(sa(GW, 20001), Some(sa(CORE, 30000)), Transport::Udp),
        ],
    });
    gw.run(&mut peers, Duration::from_millis(10));
    peers.edge().add_neighbor(gw.vc.now(), GW, MAC_GW);
    for i in 0..10u8 {
        assert!(peers.send_udp_from(UE, 40000, GW, 20000, &[i]));
    }
    peers.flush();
    // Only worker 0 runs: it takes the burst and can hand worker 1 only what its inbox holds.
    let t = gw.vc.now() + Duration::from_millis(5);
    gw.vc.set(t);
    peers.poll(t); // the peers' link delivers onto the wire
    gw.workers[0].poll(t);
    let s = gw.workers[0].stats();
    assert_eq!((s.redirected_out, s.redirect_dropped), (4, 6), "{s:?}");
    gw.run(&mut peers, Duration::from_millis(10));
    assert_eq!(gw.workers[1].stats().redirected_in, 4);
}

#[test]
fn udp_relay_with_workers_on_their_own_threads() {
    // The same hand-off across real threads: each worker polls its queue on its own thread
    // with the monotonic clock, the peers run here. Bounded: at most 10 s of wall time.
    use std::sync::atomic::{AtomicBool, Ordering};
    const CONTEXTS: u16 = 4;
    const ROUNDS: usize = 50;
    let pool = Pool::new(8192, 2048);
    pool.prefill();
    let mem = MemConfig {
        mac_a: MAC_GW,
        mac_b: MAC_PEERS,
        ..MemConfig::default()
    };
    let (queues, pport) = pair_multiqueue(&pool, &Clock::Monotonic, &mem, WORKERS, rss_4tuple);
    let steering = Steering::new(&[GW], WORKERS, 1024);
    let stop = Arc::new(AtomicBool::new(false));
    let mut ctls = Vec::new();
    let mut threads = Vec::new();
    for (i, q) in queues.into_iter().enumerate() {
        let (ctl, wend) = channel(64, 256);
        let mut w = Worker::new(q, WorkerConfig::new(Gateway::edge(MAC_GW)), wend).unwrap();
        w.set_steering(i, Arc::clone(&steering)).unwrap();
        ctls.push(ctl);
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if !w.run_once(Clock::Monotonic.now()) {
                    std::thread::yield_now();
                }
            }
            w.stats()
        }));
    }
    for i in 0..CONTEXTS {
        ctls[usize::from(i) % WORKERS]
            .send(FlowOp::Install(ContextProgram {
                context: u32::from(i),
                generation: 1,
                application: Application::Opaque,
                aware: false,
                legs: [
                    udp_leg(sa(GW, gw_a(i)), None, Transport::Udp),
                    udp_leg(
                        sa(GW, gw_b(i)),
                        Some(sa(CORE, core_port(i))),
                        Transport::Udp,
                    ),
                ],
            }))
            .unwrap();
    }
    let mut peers = Host::new(pport, peer_edge());
    peers
        .edge()
        .add_neighbor(Clock::Monotonic.now(), GW, MAC_GW);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let poll = |peers: &mut Host<MemPort>, ms: u64| {
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        while std::time::Instant::now() < until {
            peers.poll(Clock::Monotonic.now());
            std::thread::yield_now();
        }
    };
    // Warm-up until every context relays both ways (the workers ARP for the UE and the core;
    // replies land on queue 0 and reach worker 1 as shared neighbours).
    let mut ready = [[false; 2]; CONTEXTS as usize];
    while ready.iter().flatten().any(|r| !r) && std::time::Instant::now() < deadline {
        for i in 0..CONTEXTS {
            peers.send_udp_from(UE, ue_port(i), GW, gw_a(i), b"warm-up");
            peers.send_udp_from(CORE, core_port(i), GW, gw_b(i), b"warm-up");
        }
        poll(&mut peers, 20);
        while let Some(d) = peers.recv() {
            let (ip, port) = d.dst;
            if ip == IpAddress::V4(CORE) {
                ready[usize::from(port - 30000)][0] = true;
            } else {
                ready[usize::from(port - 40000)][1] = true;
            }
        }
    }
    assert!(ready.iter().flatten().all(|r| *r), "warm-up done in time");
    poll(&mut peers, 20);
    while peers.recv().is_some() {}
    let mut at_core: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let mut at_ue: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    let expected = 2 * ROUNDS * usize::from(CONTEXTS);
    let mut got = 0;
    for k in 0..ROUNDS {
        for i in 0..CONTEXTS {
            peers.send_udp_from(
                UE,
                ue_port(i),
                GW,
                gw_a(i),
                format!("up c{i} s{k}").as_bytes(),
            );
            peers.send_udp_from(
                CORE,
                core_port(i),
                GW,
                gw_b(i),
                format!("down c{i} s{k}").as_bytes(),
            );
        }
        peers.flush();
        poll(&mut peers, 1);
    }
    while got < expected && std::time::Instant::now() < deadline {
        poll(&mut peers, 5);
        while let Some(d) = peers.recv() {
            let (ip, port) = d.dst;
            let p = d.payload().to_vec();
            if p == b"warm-up" {
                continue;
            }
            got += 1;
            if ip == IpAddress::V4(CORE) {
                at_core.entry(port - 30000).or_default().push(p);
            } else {
                at_ue.entry(port - 40000).or_default().push(p);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let stats: Vec<WorkerStats> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for i in 0..CONTEXTS {
        let want = |dir: &str| -> Vec<Vec<u8>> {
            (0..ROUNDS)
                .map(|k| format!("{dir} c{i} s{k}").into_bytes())
                .collect()
        };
        // One flow always hashes to one queue and is handed over in order: no reordering.
        assert_eq!(at_core.get(&i), Some(&want("up")), "context {i} uplink");
        assert_eq!(at_ue.get(&i), Some(&want("down")), "context {i} downlink");
    }
    let out: u64 = stats.iter().map(|s| s.redirected_out).sum();
    let inn: u64 = stats.iter().map(|s| s.redirected_in).sum();
    assert!(out > 0 && out == inn, "{stats:?}");
    assert!(stats.iter().all(|s| s.redirect_dropped == 0), "{stats:?}");
}
