//! The worker's poll loop and its UDP-based legs (UDP and DTLS over UDP).
//!
//! Per poll: drain commands (bounded), receive a burst, hand each frame to the edge, relay
//! datagrams of installed legs, run due (D)TLS timers, transmit the burst.
//!
//! A plain datagram is relayed in place: the received buffer is advanced to the payload, then
//! the other leg's UDP, IPv4 and Ethernet headers are prepended into its headroom. DTLS output
//! (records to send, plaintext received) is written by the session straight into a fresh pool
//! buffer's data room, then framed the same way: one copy, the one the cipher makes.

use crate::flow::{
    Application, ContextId, ContextProgram, FlowEvent, FlowOp, InstallFailure, LegProgram,
    LegStats, SecurityFailure, Side, Transport, WorkerEnd,
};
use crate::timers::LegTimers;
use mgw_app::udptl::{UdptlConfig, UdptlFlow};
use mgw_core::buf::PacketBuffer;
use mgw_core::edge::{Edge, EdgeConfig, Egress, Ingress};
use mgw_core::port::{Batch, Node, Port, BURST};
use mgw_core::time::Instant;
use mgw_core::wire::{udp, IpAddress, IpProtocol, Ipv4Address, UdpPacket, UdpRepr};
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{DtlsConfig, DtlsEvent, DtlsSession};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Worker settings, fixed at start.
pub struct WorkerConfig {
    /// The edge of this worker's port.
    pub edge: EdgeConfig,
    /// Most contexts at once.
    pub max_contexts: usize,
    /// Commands taken per poll (bounds the time a burst of H.248 work can steal from packets).
    pub ops_per_poll: usize,
    /// DTLS settings; DTLS legs are refused without them.
    pub dtls: Option<DtlsConfig>,
    /// UDPTL limits for aware T.38 legs.
    pub udptl: UdptlConfig,
    /// The TCP stack's settings (its connection slots bound the TCP legs). [`WorkerConfig::new`]
    /// leaves the public test secret in it: a binary MUST set `tcp.secret` from the OS (as
    /// `mgwd run` and `mgwd lab` do), or ISNs and SYN cookies are predictable (RFC 6528).
    pub tcp: mgw_tcp::Config,
    /// TLS settings and identity; TLS legs are refused without them.
    pub tls: Option<mgw_tls::TlsContext>,
    /// MSRP limits for aware MSRP legs.
    pub msrp: mgw_app::msrp::MsrpConfig,
    /// Plaintext a stream leg may hold for the other leg when that one cannot take it yet
    /// (per leg; beyond it the leg stops reading and TCP flow control pushes back).
    pub staging_bytes: usize,
    /// BFCP reassembly on UDP legs interworking with a stream leg (RFC 8855 §6.2.1: slots,
    /// largest message, timeout). Its `max_message` also bounds BFCP messages on stream legs.
    pub bfcp: mgw_app::bfcp::ReassemblyConfig,
    /// Largest BFCP datagram (UDP payload, or DTLS plaintext) sent on a UDP leg when messages
    /// from a stream leg are interworked: larger messages are fragmented (RFC 8855 §5.1, F
    /// flag). Over DTLS one message (fragment) must fit one record in one datagram, so this
    /// must stay below the DTLS MTU less the record overhead (13-octet header, 8-octet explicit
    /// nonce and 16-octet tag for AES-GCM): the default 1,150 suits a DTLS MTU of 1,200.
    pub bfcp_mtu: usize,
    /// The RFC 8855 §8 transaction layer of each BFCP interworking context (table sizes, T1,
    /// retransmissions, T2): see [`mgw_app::bfcp::Transactions`] and the `stream` module docs.
    pub bfcp_transactions: mgw_app::bfcp::TransactionConfig,
    /// Frames held while their next hop's ARP answer is awaited (worker-wide; beyond it they
    /// are dropped and counted). Holding them saves a new flow its first packet: a TCP SYN or a
    /// DTLS ClientHello would otherwise wait a whole retransmission timeout (1 s).
    pub arp_hold_frames: usize,
    /// How long a frame waits for its next hop to resolve before it is dropped.
    pub arp_hold_time: std::time::Duration,
}

impl WorkerConfig {
    /// Defaults around an edge: 1,024 contexts, no TLS or DTLS identity.
    pub fn new(edge: EdgeConfig) -> WorkerConfig {
        WorkerConfig {
            edge,
            max_contexts: 1024,
            ops_per_poll: 64,
            dtls: None,
            udptl: UdptlConfig::default(),
            tcp: mgw_tcp::Config {
                max_connections: 2048,
                ..mgw_tcp::Config::default()
            },
            tls: None,
            msrp: mgw_app::msrp::MsrpConfig::default(),
            staging_bytes: 32 * 1024,
            bfcp: mgw_app::bfcp::ReassemblyConfig::default(),
            bfcp_mtu: 1150,
            bfcp_transactions: mgw_app::bfcp::TransactionConfig::default(),
            arp_hold_frames: 64,
            arp_hold_time: std::time::Duration::from_secs(1),
        }
    }
}

/// Worker counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Polls that found something to do.
    pub busy_polls: u64,
    /// Datagrams relayed from one leg to the other.
    pub relayed: u64,
    /// Datagrams to a local address with no leg.
    pub no_flow: u64,
    /// Datagrams from a source other than the leg's (latched or programmed) peer.
    pub wrong_source: u64,
    /// Datagrams that arrived before the other leg knew its peer.
    pub no_peer: u64,
    /// Malformed application units dropped.
    pub app_errors: u64,
    /// L4 checksum or header errors.
    pub bad_l4: u64,
    /// Could not send: no buffer, no route, unresolved next hop, no headroom, full port.
    pub tx_failed: u64,
    /// Contexts installed.
    pub installs: u64,
    /// Contexts released.
    pub releases: u64,
    /// Leg updates refused because the leg is live or its transport or address would change.
    pub updates_refused: u64,
    /// Leg updates applied to a live leg (a UDP or DTLS leg's peer moved; a stream leg's
    /// unchanged peer with `a=connection:existing`).
    pub updates_live: u64,
    /// BFCP messages from a UDP leg dropped because the stream leg they were for had no room
    /// in its TCP send buffer (UDP endpoints retransmit, RFC 8855 §6.2).
    pub stream_full: u64,
    /// Frames received here for a leg another worker owns, handed to it (see [`crate::steer`]).
    pub redirected_out: u64,
    /// Frames another worker handed here.
    pub redirected_in: u64,
    /// Redirects (frames or neighbours) dropped because the other worker's inbox was full.
    pub redirect_dropped: u64,
    /// Neighbours learned here from ARP and handed to the other workers.
    pub neighbors_shared: u64,
    /// Timer runs (polls at which some leg's timer was due).
    pub timer_runs: u64,
    /// Legs looked at by timer runs: what timers cost, which should be the legs that were due,
    /// not the legs installed.
    pub timer_legs: u64,
    /// Events to the control thread dropped because its ring stayed full (acknowledgements are
    /// never dropped: see [`crate::flow::WorkerEnd`]).
    pub events_lost: u64,
    /// Frames held for a next hop's ARP answer (then sent, or expired into `tx_failed`).
    pub arp_held: u64,
    /// Held frames dropped: the next hop did not answer in time, or the hold was full.
    pub arp_expired: u64,
    /// The BFCP transaction layer of interworking contexts (RFC 8855 §8), summed over them:
    /// responses marked R, IDs chosen, retransmissions, acks sent and absorbed, duplicates
    /// absorbed, table overflows.
    pub bfcp_transactions: mgw_app::bfcp::TransactionStats,
}

/// What a leg runs.
pub(crate) enum LegKind {
    Udp,
    Dtls(Box<DtlsSession>),
    Stream(Box<crate::stream::StreamLeg>),
}

pub(crate) struct Leg {
    pub(crate) prog: LegProgram,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) kind: LegKind,
    pub(crate) udptl: Option<UdptlFlow>,
    /// BFCP reassembly of a UDP leg whose other leg is a stream (TCP↔UDP interworking).
    pub(crate) bfcp_rx: Option<Box<mgw_app::bfcp::Reassembler>>,
    /// The RFC 8855 §8 transaction layer of that UDP leg (interworking only).
    pub(crate) bfcp_txn: Option<Box<mgw_app::bfcp::Transactions>>,
    pub(crate) stats: LegStats,
    /// Next (D)TLS timer.
    pub(crate) deadline: Instant,
    /// Ready to carry application data (transport up and, if secured, authenticated).
    pub(crate) up: bool,
    /// A DTLS leg being drained (see [`Worker::drain_dtls`]).
    pub(crate) draining: bool,
}

pub(crate) struct Context {
    pub(crate) prog: ContextProgram,
    pub(crate) legs: [Leg; 2],
    /// Being torn down: output still leaves (close_notify), input and events are ignored.
    pub(crate) closing: bool,
}

/// One worker.
pub struct Worker<P: Port> {
    pub(crate) port: P,
    pub(crate) edge: Edge,
    pub(crate) ring: WorkerEnd,
    pub(crate) cfg: WorkerConfig,
    pub(crate) slots: Vec<Option<Context>>,
    free: Vec<usize>,
    by_id: HashMap<ContextId, usize>,
    /// (local address, local port) → (slot, side).
    pub(crate) udp_flows: HashMap<(IpAddress, u16), (usize, Side)>,
    pub(crate) tcp: mgw_tcp::Stack,
    /// TCP connection → (slot, side).
    pub(crate) conns: HashMap<mgw_tcp::ConnId, (usize, Side)>,
    /// TCP listener → (slot, side).
    pub(crate) listeners: HashMap<mgw_tcp::ListenerId, (usize, Side)>,
    /// Legs with work pending (readable data, staged plaintext).
    pub(crate) dirty: Vec<(usize, Side)>,
    /// Scratch for sealing and copying, sized for the largest TLS flight/records at once.
    pub(crate) scratch: Box<[u8]>,
    pub(crate) rx: Batch<P::Buffer>,
    pub(crate) tx: Batch<P::Buffer>,
    pub(crate) now: Instant,
    /// Legs with a pending timer, by deadline (see [`crate::timers`]).
    pub(crate) timers: LegTimers,
    /// Scratch for the legs one timer run takes (capacity: every leg, so it never grows).
    due: Vec<usize>,
    pub(crate) stats: WorkerStats,
    /// Frames waiting for their next hop's MAC: (give up at, frame with headers in place).
    pub(crate) arp_hold: Vec<(Instant, P::Buffer)>,
    /// The port computes TCP/UDP checksums on transmit: only pseudo-header sums are written.
    pub(crate) tx_l4_offload: bool,
    /// Context affinity with the other workers of this port; `None`: this worker is alone.
    pub(crate) steer: Option<crate::steer::WorkerSteer<P::Buffer>>,
}

impl<P: Port> Worker<P> {
    /// A worker on `port`, taking commands from `ring`. Tables are allocated here, once.
    ///
    /// # Errors
    /// The TCP configuration is refused.
    pub fn new(
        port: P,
        cfg: WorkerConfig,
        ring: WorkerEnd,
    ) -> Result<Worker<P>, mgw_tcp::ConfigError> {
        let n = cfg.max_contexts.max(1);
        let tcp = mgw_tcp::Stack::new(cfg.tcp.clone())?;
        let tx_l4_offload = port.tx_l4_checksum_offload();
        Ok(Worker {
            port,
            edge: Edge::new(cfg.edge.clone()),
            ring,
            slots: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            by_id: HashMap::with_capacity(n),
            udp_flows: HashMap::with_capacity(2 * n),
            tcp,
            conns: HashMap::with_capacity(2 * n),
            listeners: HashMap::with_capacity(2 * n),
            dirty: Vec::with_capacity(4 * n),
            scratch: vec![0u8; crate::stream::SCRATCH].into_boxed_slice(),
            rx: Batch::new(BURST),
            tx: Batch::new(BURST * 4),
            now: Instant::ZERO,
            timers: LegTimers::new(2 * n),
            due: Vec::with_capacity(2 * n),
            stats: WorkerStats::default(),
            arp_hold: Vec::with_capacity(cfg.arp_hold_frames),
            tx_l4_offload,
            steer: None,
            cfg,
        })
    }

    /// The TCP stack's counters.
    pub fn tcp_counters(&self) -> mgw_tcp::Counters {
        *self.tcp.counters()
    }

    /// The counters, with `events_lost` read from the event ring at the time of the call.
    pub fn stats(&self) -> WorkerStats {
        WorkerStats {
            events_lost: self.ring.events_lost,
            ..self.stats
        }
    }

    /// The edge (counters, neighbours).
    pub fn edge(&mut self) -> &mut Edge {
        &mut self.edge
    }

    /// The port.
    pub fn port(&mut self) -> &mut P {
        &mut self.port
    }

    /// Contexts installed now.
    pub fn contexts(&self) -> usize {
        self.by_id.len()
    }

    /// Does all work due at `now`. Returns true if there was any.
    pub fn run_once(&mut self, now: Instant) -> bool {
        self.now = now;
        let mut busy = false;
        for _ in 0..self.cfg.ops_per_poll.max(1) {
            let Some(op) = self.ring.recv() else { break };
            busy = true;
            self.on_op(op);
        }
        busy |= self.steer_poll();
        loop {
            if self.port.rx_burst(&mut self.rx) == 0 {
                break;
            }
            busy = true;
            // Take the batch out of `self` while its frames are handled (Batch::new(0) does not
            // allocate), so the handlers can borrow the rest of the worker.
            let mut rx = std::mem::replace(&mut self.rx, Batch::new(0));
            for f in rx.drain() {
                // A frame for a leg another worker owns goes there untouched.
                if let Some(f) = self.steer_frame(f) {
                    self.on_frame(f);
                }
            }
            self.rx = rx;
            if self.tx.len() >= BURST {
                self.flush();
            }
        }
        if self.timers.next().is_some_and(|t| now >= t) {
            busy = true;
            self.run_timers();
        }
        busy |= self.run_streams();
        while let Some(req) = self.edge.poll_arp(now, || self.port.alloc()) {
            self.queue(req);
        }
        if !self.arp_hold.is_empty() {
            self.release_held();
        }
        self.flush();
        // One wake-up of a parked control thread per poll that reported events, at most.
        self.ring.end_poll();
        if busy {
            self.stats.busy_polls += 1;
        }
        busy
    }

    /// Handles one received Ethernet frame (from the port, or redirected by another worker).
    pub(crate) fn on_frame(&mut self, f: P::Buffer) {
        match self.edge.ingress(self.now, f) {
            Ingress::Reply(b) => self.queue(b),
            Ingress::Deliver {
                protocol: IpProtocol::Udp,
                src,
                dst,
                buf,
            } => self.on_udp(src, dst, buf),
            Ingress::Deliver {
                protocol: IpProtocol::Tcp,
                src,
                dst,
                buf,
            } => self.on_tcp(src, dst, buf),
            Ingress::Deliver { .. } => self.stats.no_flow += 1,
            Ingress::Dropped(_) => {}
        }
        if let Some((ip, mac)) = self.edge.take_learned() {
            self.share_neighbor(ip, mac);
        }
    }

    pub(crate) fn queue(&mut self, b: P::Buffer) {
        if let Err(b) = self.tx.push(b) {
            self.flush();
            if self.tx.push(b).is_err() {
                self.stats.tx_failed += 1;
            }
        }
    }

    /// Sends the held frames whose next hop has resolved, drops those past their time. In
    /// order, so a flow's held segments leave as they were made.
    fn release_held(&mut self) {
        let mut i = 0;
        while i < self.arp_hold.len() {
            let until = self.arp_hold[i].0;
            match self.edge.complete_l2(self.now, &mut self.arp_hold[i].1) {
                Some(true) => {
                    let (_, b) = self.arp_hold.remove(i);
                    self.queue(b);
                }
                Some(false) if self.now < until => i += 1,
                _ => {
                    self.arp_hold.remove(i);
                    self.stats.arp_expired += 1;
                    self.stats.tx_failed += 1;
                }
            }
        }
    }

    pub(crate) fn flush(&mut self) {
        if !self.tx.is_empty() {
            self.port.tx_burst(&mut self.tx);
            // What the port could not take now is dropped: datagrams are not retried, and the
            // (D)TLS and TCP layers retransmit on their own timers.
            self.stats.tx_failed += self.tx.len() as u64;
            self.tx.clear();
        }
    }

    fn on_op(&mut self, op: FlowOp) {
        match op {
            FlowOp::Install(p) => self.install(p),
            FlowOp::Establish {
                context,
                generation,
                side,
            } => {
                // UDP legs are live once installed; a delayed TCP connect or DTLS client
                // starts here.
                if let Some(slot) = self.slot_of(context, generation) {
                    self.drain_dtls(slot, side);
                    self.establish_stream(slot, side);
                }
            }
            FlowOp::Update {
                context,
                generation,
                side,
                leg,
            } => {
                if let Some(slot) = self.slot_of(context, generation) {
                    self.update_leg(slot, side, leg);
                }
            }
            FlowOp::Release {
                context,
                generation,
            } => self.release(context, generation),
        }
    }

    fn install(&mut self, p: ContextProgram) {
        if self.steer.is_none() || self.by_id.contains_key(&p.context) {
            return self.install_legs(p);
        }
        // Steered: the legs' ports become this worker's first, so frames for them that land
        // on other workers come here; refused if another worker holds one.
        let Some(fresh) = self.claim_legs(&p) else {
            self.ring.send(FlowEvent::InstallFailed {
                context: p.context,
                generation: p.generation,
                reason: InstallFailure::AddressInUse,
            });
            return;
        };
        self.install_legs(p);
        if !self.by_id.contains_key(&p.context) {
            self.unclaim(fresh);
        }
    }

    fn install_legs(&mut self, p: ContextProgram) {
        let fail = |w: &mut Self, reason| {
            w.ring.send(FlowEvent::InstallFailed {
                context: p.context,
                generation: p.generation,
                reason,
            });
        };
        if self.by_id.contains_key(&p.context) {
            return fail(self, InstallFailure::Duplicate);
        }
        let streams = p.legs.iter().filter(|l| l.transport.is_tcp()).count();
        // Both legs of a relay carry the same kind of transport (TCP↔TCP or UDP↔UDP), except
        // BFCP, which interworks a stream leg with a UDP leg (RFC 8855 §6.2/§6.3; aware only:
        // it needs the message boundaries). MSRP only runs over TCP, UDPTL only over UDP.
        let mismatch = (streams == 1 && !(p.application == Application::Bfcp && p.aware))
            || (streams == 2 && p.application == Application::Udptl)
            || (streams == 0 && p.application == Application::Msrp);
        if mismatch {
            return fail(self, InstallFailure::Unsupported);
        }
        let keys = p
            .legs
            .map(|l| (IpAddress::from(l.local.ip()), l.local.port()));
        if keys[0] == keys[1] || keys.iter().any(|k| self.udp_flows.contains_key(k)) {
            return fail(self, InstallFailure::AddressInUse);
        }
        if streams > 0 {
            return self.install_streams(p);
        }
        let Some(slot) = self.free.pop() else {
            return fail(self, InstallFailure::NoCapacity);
        };
        let mut legs = Vec::with_capacity(2);
        for l in p.legs {
            let kind = match l.transport {
                Transport::DtlsUdp => {
                    let Some(cfg) = self.cfg.dtls.as_ref() else {
                        self.free.push(slot);
                        return fail(self, InstallFailure::Unsupported);
                    };
                    match DtlsSession::new(cfg, l.security_role, l.peer_fingerprints, "", self.now)
                    {
                        Ok(s) => LegKind::Dtls(Box::new(s)),
                        Err(_) => {
                            self.free.push(slot);
                            return fail(self, InstallFailure::Unsupported);
                        }
                    }
                }
                _ => LegKind::Udp,
            };
            let udptl = (p.aware && p.application == Application::Udptl)
                .then(|| UdptlFlow::new(self.cfg.udptl));
            legs.push(Leg {
                prog: l,
                remote: l.remote,
                kind,
                udptl,
                bfcp_rx: None,
                bfcp_txn: None,
                stats: LegStats::default(),
                deadline: self.now,
                up: l.transport == Transport::Udp,
                draining: false,
            });
        }
        let (Some(b), Some(a)) = (legs.pop(), legs.pop()) else {
            return;
        };
        self.slots[slot] = Some(Context {
            prog: p,
            legs: [a, b],
            closing: false,
        });
        self.by_id.insert(p.context, slot);
        self.udp_flows.insert(keys[0], (slot, Side::A));
        self.udp_flows.insert(keys[1], (slot, Side::B));
        self.stats.installs += 1;
        self.ring.send(FlowEvent::Installed {
            context: p.context,
            generation: p.generation,
        });
        // A DTLS client with a known peer and immediate establishment starts its handshake now.
        for side in [Side::A, Side::B] {
            let l = p.legs[side.index()];
            if l.transport == Transport::DtlsUdp && l.establish_now {
                self.drain_dtls(slot, side);
            }
            // A DTLS leg's first timer run is now (its `deadline`), as for any timer it sets.
            if l.transport == Transport::DtlsUdp {
                self.timers.earlier(timer_key(slot, side), self.now);
            }
        }
    }

    fn release(&mut self, context: ContextId, generation: u32) {
        let Some(&slot) = self.by_id.get(&context) else {
            return;
        };
        if self.slots[slot]
            .as_ref()
            .is_none_or(|c| c.prog.generation != generation)
        {
            return;
        }
        self.close_context(slot);
    }

    /// Closes both legs (close_notify on secured ones, sent before the flows go), then removes
    /// the context and reports its statistics. Per TS 29.334 a failure or release of one leg
    /// takes the whole context.
    pub(crate) fn close_context(&mut self, slot: usize) {
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        if ctx.closing {
            return;
        }
        ctx.closing = true;
        for l in ctx.legs.iter_mut() {
            // The context goes now, even from inside a leg's drain: close_notify must leave.
            l.draining = false;
            if let LegKind::Dtls(s) = &mut l.kind {
                if !s.is_done() {
                    let _ = s.close();
                }
            }
        }
        self.drain_dtls(slot, Side::A);
        self.drain_dtls(slot, Side::B);
        self.close_streams(slot);
        self.remove(slot);
    }

    /// Applies a Modify (H.248 Modify with new Remote SDP or properties) to a leg.
    ///
    /// A leg with no live connection or session yet takes the new peer, fingerprints,
    /// establishment, latching and MSRP route, and an active leg connects now. A live leg:
    /// - UDP or DTLS: the peer may move (the new Remote `c=`/`m=`): datagrams go to the new
    ///   address at once and only it is accepted afterwards; latching follows the new program.
    ///   The (D)TLS association, its fingerprints and MSRP/BFCP state are kept (a new `tls-id`,
    ///   RFC 8842, needs a new termination: not supported in place).
    /// - TCP or TLS: the connection is kept (`a=connection:existing`, RFC 4145 §5) when the peer
    ///   is unchanged; anything that would need a new connection is refused and counted.
    ///
    /// A change of transport or local address is always refused and counted.
    fn update_leg(&mut self, slot: usize, side: Side, new: LegProgram) {
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        let leg = &mut ctx.legs[side.index()];
        let live = match &leg.kind {
            LegKind::Stream(s) => s.is_connected(),
            _ => leg.up,
        };
        if new.transport != leg.prog.transport || new.local != leg.prog.local {
            self.stats.updates_refused += 1;
            return;
        }
        if live {
            match &leg.kind {
                LegKind::Udp | LegKind::Dtls(_) => {
                    if let Some(r) = new.remote {
                        leg.prog.remote = Some(r);
                        leg.remote = Some(r);
                    }
                    leg.prog.latching = new.latching;
                    self.stats.updates_live += 1;
                }
                LegKind::Stream(_) => {
                    if new.remote.is_none() || new.remote == leg.remote {
                        self.stats.updates_live += 1;
                    } else {
                        self.stats.updates_refused += 1;
                    }
                }
            }
            return;
        }
        leg.prog.remote = new.remote;
        leg.prog.peer_fingerprints = new.peer_fingerprints;
        leg.prog.establish_now = new.establish_now;
        leg.prog.latching = new.latching;
        // The peer's a=path may come with the Remote SDP, too. A route that does not parse is
        // refused here, as at install; with it the rewrite stage would release the context.
        match new.msrp {
            Some(r) if !r.remote_path.is_empty() && r.paths().validate().is_err() => {
                self.stats.updates_refused += 1;
            }
            _ => leg.prog.msrp = new.msrp,
        }
        if new.remote.is_some() {
            leg.remote = new.remote;
        }
        if new.establish_now {
            self.establish_stream(slot, side);
            self.drain_dtls(slot, side);
        }
    }

    /// Takes a free slot for `prog` with `legs`, indexes it and reports it installed.
    pub(crate) fn register(&mut self, prog: ContextProgram, legs: [Leg; 2]) -> Option<usize> {
        let slot = self.free.pop()?;
        self.slots[slot] = Some(Context {
            prog,
            legs,
            closing: false,
        });
        self.by_id.insert(prog.context, slot);
        self.stats.installs += 1;
        self.ring.send(FlowEvent::Installed {
            context: prog.context,
            generation: prog.generation,
        });
        Some(slot)
    }

    /// The slot of `context` in `generation`, if installed.
    pub(crate) fn slot_of(&self, context: ContextId, generation: u32) -> Option<usize> {
        let &slot = self.by_id.get(&context)?;
        self.slots[slot]
            .as_ref()
            .is_some_and(|c| c.prog.generation == generation)
            .then_some(slot)
    }

    pub(crate) fn remove(&mut self, slot: usize) {
        let Some(ctx) = self.slots[slot].take() else {
            return;
        };
        for l in &ctx.legs {
            self.udp_flows
                .remove(&(IpAddress::from(l.prog.local.ip()), l.prog.local.port()));
        }
        for side in [Side::A, Side::B] {
            self.timers.set(timer_key(slot, side), Instant::FAR_FUTURE);
        }
        self.release_legs(&ctx.legs);
        self.by_id.remove(&ctx.prog.context);
        self.free.push(slot);
        self.stats.releases += 1;
        let stats = [ctx.legs[0].stats, ctx.legs[1].stats];
        self.ring.send(FlowEvent::Released {
            context: ctx.prog.context,
            generation: ctx.prog.generation,
            stats,
        });
    }

    fn on_udp(&mut self, src: IpAddress, dst: IpAddress, mut buf: P::Buffer) {
        let (sport, dport) = match UdpPacket::new_checked(buf.as_ref()) {
            // The NIC may have checked the checksum already (RX offload).
            Ok(p) if UdpRepr::parse(&p, &src, &dst, !buf.rx_l4_checksum_good()).is_ok() => {
                (p.src_port(), p.dst_port())
            }
            _ => {
                self.stats.bad_l4 += 1;
                return;
            }
        };
        let Some(&(slot, side)) = self.udp_flows.get(&(dst, dport)) else {
            self.stats.no_flow += 1;
            return;
        };
        let from = SocketAddr::new(IpAddr::from(src), sport);
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        let (id, application) = (ctx.prog.context, ctx.prog.application);
        let leg = &mut ctx.legs[side.index()];
        let mut latched = false;
        match leg.remote {
            Some(r) if r == from => {}
            // H.248.37 latching, only when the program asks for it: the first source that
            // sends something valid for this leg becomes the peer. Without latching a leg with
            // no remote yet takes nothing (the ports are guessable; the remote comes with a
            // Modify), and anything not from the programmed remote is dropped below.
            None if leg.prog.latching
                && latch_candidate(
                    &leg.kind,
                    application,
                    &self.cfg.udptl,
                    buf.as_ref().get(udp::HEADER_LEN..).unwrap_or_default(),
                ) =>
            {
                leg.remote = Some(from);
                self.ring.send(FlowEvent::Latched {
                    context: id,
                    side,
                    remote: from,
                });
                // A stream leg waiting to send BFCP here can go on (interworking).
                latched = true;
            }
            _ => {
                self.stats.wrong_source += 1;
                return;
            }
        }
        buf.adj(udp::HEADER_LEN);
        let is_dtls = matches!(leg.kind, LegKind::Dtls(_));
        if is_dtls {
            if let LegKind::Dtls(s) = &mut leg.kind {
                // Errors are also queued as events, which drain_dtls turns into FlowEvents.
                let _ = s.handle_datagram(buf.as_ref(), self.now);
            }
            drop(buf);
            if latched {
                self.mark_dirty(slot, side.other());
            }
            self.drain_dtls(slot, side);
        } else {
            if latched {
                self.mark_dirty(slot, side.other());
            }
            self.plaintext_in(slot, side, buf);
        }
    }

    /// Plaintext `payload` arrived on `side`: check it, count it, relay it to the other leg.
    fn plaintext_in(&mut self, slot: usize, side: Side, payload: P::Buffer) {
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        let leg = &mut ctx.legs[side.index()];
        if leg.bfcp_rx.is_some() {
            // The other leg is a stream: reassemble, then write a version-1 message to it.
            return self.bfcp_datagram_in(slot, side, payload.as_ref());
        }
        let valid = match (&mut leg.udptl, ctx.prog.application) {
            (Some(flow), _) => match flow.on_datagram(payload.as_ref()) {
                Ok((_, _arrival)) => {
                    let s = flow.stats();
                    leg.stats.lost = s.unrecovered();
                    leg.stats.recovered = s.recovered;
                    true
                }
                Err(_) => false,
            },
            (None, Application::Bfcp) if ctx.prog.aware => {
                mgw_app::bfcp::Packet::new_checked(payload.as_ref())
                    .is_ok_and(|p| mgw_app::bfcp::Repr::parse(&p).is_ok())
            }
            _ => true,
        };
        if !valid {
            leg.stats.app_errors += 1;
            self.stats.app_errors += 1;
            return;
        }
        leg.stats.octets_received += payload.len() as u64;
        leg.stats.messages_received += 1;
        self.relay_out(slot, side.other(), payload);
    }

    /// Sends plaintext `payload` to the peer of `side`.
    pub(crate) fn relay_out(&mut self, slot: usize, side: Side, payload: P::Buffer) {
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        let leg = &mut ctx.legs[side.index()];
        let Some(remote) = leg.remote else {
            self.stats.no_peer += 1;
            return;
        };
        if !leg.up {
            // A secured leg not yet established: nothing leaves in the clear, nothing is queued.
            self.stats.no_peer += 1;
            return;
        }
        leg.stats.octets_sent += payload.len() as u64;
        leg.stats.messages_sent += 1;
        self.stats.relayed += 1;
        let local = leg.prog.local;
        match &mut leg.kind {
            LegKind::Udp => self.send_datagram(local, remote, payload),
            LegKind::Dtls(s) => {
                let _ = s.send(payload.as_ref());
                drop(payload);
                self.drain_dtls(slot, side);
            }
            // Datagrams reach a stream leg only through BFCP interworking (stream.rs), never
            // as such.
            LegKind::Stream(_) => {}
        }
    }

    /// Prepends UDP/IPv4/Ethernet to `payload` and queues it.
    fn send_datagram(&mut self, local: SocketAddr, remote: SocketAddr, mut payload: P::Buffer) {
        let (IpAddr::V4(l), IpAddr::V4(r)) = (local.ip(), remote.ip()) else {
            // IPv6 egress needs neighbour discovery, which the edge does not do yet.
            self.stats.tx_failed += 1;
            return;
        };
        let (s, d) = (Ipv4Address(l.octets()), Ipv4Address(r.octets()));
        let n = payload.len();
        let Some(_) = payload.prepend(udp::HEADER_LEN) else {
            self.stats.tx_failed += 1;
            return;
        };
        let repr = UdpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
        };
        let mut pkt = UdpPacket::new_unchecked(payload.as_mut());
        let (sa, da) = (IpAddress::V4(s), IpAddress::V4(d));
        let emitted = if self.tx_l4_offload {
            repr.emit_header_for_offload(&mut pkt, &sa, &da, n)
        } else {
            repr.emit_header(&mut pkt, &sa, &da, n)
        };
        if self.tx_l4_offload {
            payload.offload_l4_checksum(mgw_core::wire::ipv4::HEADER_LEN, false);
        }
        if emitted.is_err() {
            self.stats.tx_failed += 1;
            return;
        }
        match self
            .edge
            .encap_ipv4(self.now, &mut payload, s, d, IpProtocol::Udp)
        {
            Egress::Ready => self.queue(payload),
            Egress::Unresolved => {
                let until = self.now + self.cfg.arp_hold_time;
                hold(&mut self.arp_hold, &mut self.stats, until, payload);
            }
            _ => self.stats.tx_failed += 1,
        }
    }

    /// Drains a DTLS leg: datagrams to send, plaintext to relay, events to report.
    ///
    /// Not re-entered for the same leg: when handling its plaintext makes the worker send on
    /// that same leg (a BFCP acknowledgement or cached answer, see `stream.rs`), the drain
    /// already running picks the new records up in its next turn. A nested drain would take
    /// the session's next plaintext while the scratch buffer is out, and lose it.
    pub(crate) fn drain_dtls(&mut self, slot: usize, side: Side) {
        let Some(leg) = self.slots[slot].as_mut().map(|c| &mut c.legs[side.index()]) else {
            return;
        };
        if leg.draining {
            return;
        }
        leg.draining = true;
        self.drain_dtls_once(slot, side);
        if let Some(ctx) = self.slots[slot].as_mut() {
            ctx.legs[side.index()].draining = false;
        }
    }

    fn drain_dtls_once(&mut self, slot: usize, side: Side) {
        loop {
            let Some(mut b) = self.port.alloc() else {
                self.stats.tx_failed += 1;
                return;
            };
            let Some(ctx) = self.slots[slot].as_mut() else {
                return;
            };
            let (id, closing) = (ctx.prog.context, ctx.closing);
            let leg = &mut ctx.legs[side.index()];
            let LegKind::Dtls(s) = &mut leg.kind else {
                return;
            };
            let cap = b.tailroom();
            let Some(room) = b.append(cap) else { return };
            let base = room.as_ptr() as usize;
            enum Next {
                Send(usize, usize),
                Data(usize, usize),
                Event(DtlsEvent),
                Wait(Instant),
                Stuck,
            }
            let next = match s.poll(room) {
                DtlsOutput::Transmit(d) => Next::Send(d.as_ptr() as usize - base, d.len()),
                DtlsOutput::Data(d) => Next::Data(d.as_ptr() as usize - base, d.len()),
                DtlsOutput::Event(e) => Next::Event(e),
                DtlsOutput::Wait(t) => Next::Wait(t),
                DtlsOutput::BufferTooSmall { .. } => Next::Stuck,
            };
            match next {
                Next::Send(off, len) => {
                    b.trim(cap - (off + len));
                    b.adj(off);
                    let (local, remote) = (leg.prog.local, leg.remote);
                    match remote {
                        Some(r) => self.send_datagram(local, r, b),
                        None => self.stats.no_peer += 1,
                    }
                }
                Next::Data(..) | Next::Event(_) if closing => drop(b),
                Next::Data(off, len) => {
                    b.trim(cap - (off + len));
                    b.adj(off);
                    self.plaintext_in(slot, side, b);
                }
                Next::Event(e) => {
                    drop(b);
                    match e {
                        DtlsEvent::Established { .. } => {
                            leg.up = true;
                            self.ring.send(FlowEvent::SecureUp { context: id, side });
                            self.mark_dirty(slot, side.other());
                        }
                        DtlsEvent::Failed { reason } => {
                            self.ring.send(FlowEvent::SecureFailed {
                                context: id,
                                side,
                                reason: SecurityFailure::from(reason),
                            });
                            return self.close_context(slot);
                        }
                        DtlsEvent::CloseNotify | DtlsEvent::Closed => {
                            self.ring.send(FlowEvent::PeerClosed { context: id, side });
                            return self.close_context(slot);
                        }
                    }
                }
                Next::Wait(t) => {
                    leg.deadline = t;
                    self.timers.earlier(timer_key(slot, side), t);
                    return;
                }
                Next::Stuck => {
                    self.stats.tx_failed += 1;
                    return;
                }
            }
        }
    }

    /// Runs the timers of the legs that are due, and only those: the legs come off the timer
    /// heap in deadline order (O(log n) each), so a run costs the legs due, not the contexts
    /// installed. Each leg is re-armed with its exact next deadline afterwards; one still due
    /// (a timer that came due again at once) runs at the next poll, not in a loop here.
    fn run_timers(&mut self) {
        let now = self.now;
        self.stats.timer_runs += 1;
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        while let Some(key) = self.timers.pop_due(now) {
            // Each leg is in the heap once, and `due` holds every leg: no reallocation.
            due.push(key);
        }
        self.stats.timer_legs += due.len() as u64;
        for &key in &due {
            let (slot, side) = (key / 2, if key % 2 == 0 { Side::A } else { Side::B });
            self.leg_timeout(slot, side);
            self.arm(slot, side);
        }
        self.due = due;
    }

    /// The timers of one leg at `now`: DTLS retransmission, TLS handshake, BFCP transactions.
    fn leg_timeout(&mut self, slot: usize, side: Side) {
        let now = self.now;
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        let leg = &mut ctx.legs[side.index()];
        let dtls_due = match &mut leg.kind {
            LegKind::Dtls(s) if leg.deadline <= now => {
                let _ = s.handle_timeout(now);
                true
            }
            _ => false,
        };
        if dtls_due {
            self.drain_dtls(slot, side);
        }
        if self.stream_timeout(slot, side) {
            self.mark_dirty(slot, side);
        }
        self.bfcp_retransmit(slot, side);
    }

    /// Puts leg `side` of `slot` in the timer heap at its earliest pending deadline, or takes
    /// it out when it has none (or the context is gone).
    pub(crate) fn arm(&mut self, slot: usize, side: Side) {
        let at = match self.slots[slot].as_ref() {
            Some(ctx) => {
                let leg = &ctx.legs[side.index()];
                let own = match &leg.kind {
                    LegKind::Dtls(_) => leg.deadline,
                    LegKind::Stream(s) => s.tls_deadline(),
                    LegKind::Udp => Instant::FAR_FUTURE,
                };
                leg.bfcp_txn
                    .as_ref()
                    .map_or(own, |t| own.min(t.poll_timeout()))
            }
            None => Instant::FAR_FUTURE,
        };
        self.timers.set(timer_key(slot, side), at);
    }
}

/// A leg's key in the timer heap.
pub(crate) fn timer_key(slot: usize, side: Side) -> usize {
    slot * 2 + side.index()
}

impl<P: Port> Node for Worker<P> {
    fn poll(&mut self, now: Instant) {
        // Run until nothing is left at this instant; bounded, so a timer that keeps coming due
        // at the same instant cannot stall the simulation (the driver calls again).
        for _ in 0..256 {
            if !self.run_once(now) {
                break;
            }
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        let t = [
            self.port.poll_at(),
            self.edge.poll_at(),
            self.timers.next(),
            self.steer_poll_at(),
            self.arp_hold.iter().map(|h| h.0).min(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(t.max(self.now))
    }
}

/// May a datagram from an unknown source latch a leg? Only one that validates for the leg, so
/// that a stray or forged packet cannot take a leg it guessed the port of:
/// - DTLS: the first fragment of a ClientHello (RFC 6347 §4.2.2); a peer opens an association
///   with nothing else, and anything else would also break the handshake with the real peer;
/// - BFCP: a well-formed common header (RFC 8855 §5.1) and, unless it is a fragment, a message
///   whose attributes parse;
/// - UDPTL: a well-formed packet (T.38 §9.1) within the configured limits;
/// - opaque datagrams have no format to check.
fn latch_candidate(
    kind: &LegKind,
    application: Application,
    udptl: &UdptlConfig,
    payload: &[u8],
) -> bool {
    match (kind, application) {
        (LegKind::Dtls(_), _) => mgw_tls::dtls::is_client_hello(payload),
        (LegKind::Stream(_), _) => false,
        (LegKind::Udp, Application::Bfcp) => mgw_app::bfcp::Packet::new_checked(payload)
            .is_ok_and(|p| p.fragmented() || mgw_app::bfcp::Repr::parse(&p).is_ok()),
        (LegKind::Udp, Application::Udptl) => {
            mgw_app::udptl::UdptlRepr::parse(payload, udptl).is_ok()
        }
        (LegKind::Udp, Application::Opaque | Application::Msrp) => true,
    }
}

/// Holds a frame for its next hop's ARP answer if there is room (never allocates: the hold is
/// sized at start); else drops it and counts.
pub(crate) fn hold<B>(held: &mut Vec<(Instant, B)>, stats: &mut WorkerStats, until: Instant, b: B) {
    if held.len() < held.capacity() {
        held.push((until, b));
        stats.arp_held += 1;
    } else {
        stats.arp_expired += 1;
        stats.tx_failed += 1;
    }
}
