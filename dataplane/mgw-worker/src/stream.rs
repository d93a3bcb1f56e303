//! Stream legs: TCP and TLS over TCP, and the relay between the two legs of a context.
//!
//! Data path of one direction, from leg X to leg Y, per poll (VPP-style, over the legs a burst
//! made readable):
//! 1. X's TCP receive ring → X's record buffer (TLS) — or straight to (3) for plain TCP;
//! 2. TLS records opened in place in the record buffer;
//! 3. plaintext appended to X's staging buffer, checked by the application parser (MSRP);
//! 4. staging → Y: sealed into scratch and sent (TLS), or sent as is (TCP), as far as Y's TCP
//!    send ring has room.
//!
//! Back-pressure: X's staging is bounded; when it is full X is not read, its TCP receive ring
//! fills and X's advertised window closes. Y's `Writable` event wakes X again. Nothing is
//! buffered without bound and nothing is dropped.
//!
//! Copies: ring→record buffer, record→staging, staging→Y's ring (plus the cipher's own pass). The
//! staging copy buys simplicity and back-pressure; removing it (open straight into Y's ring) is
//! the first optimisation to measure.
//!
//! **MSRP path rewriting** (aware MSRP, both legs with an [`crate::flow::MsrpRoute`], i.e. not
//! CEMA on both sides, RFC 6714 §4): step 3 splits in two. Plaintext first goes to X's `raw`
//! buffer (plain TCP is received straight into it); then the MSRP parser turns `raw` into
//! staging: each head is written rewritten for Y (To-Path = Y's remote `a=path`, From-Path = the
//! MGW's URI on Y, after checking that To-Path was the MGW's URI on X: RFC 4975 §7.3 session
//! matching, the B2BUA rule of `mgw_app::msrp::MsrpRewriter`), bodies and end-lines are copied
//! as they are. A head can grow, so each parser call takes only as much of `raw` as staging can
//! hold in the worst case ([`rewrite_input_len`]). This stage runs only once Y is up, so Y's
//! route is final (its remote path may come with a Modify after the Add); until then `raw`
//! fills and X's window closes, as with staging. One extra copy (record→raw) for rewritten legs.
//! If a Modify later takes a route away (CEMA learned on both sides), frames pass unchanged.
//!
//! **BFCP** (aware): a stream leg frames messages by the common header's Payload Length
//! (RFC 8855 §5.1) through the same `raw` stage. Towards a stream leg whole valid messages go to
//! staging; towards a UDP or DTLS leg (interworking, RFC 8855 §6.2/§6.3) each message leaves
//! as version-2 datagrams, fragmented above `WorkerConfig::bfcp_mtu`. The other way, the UDP
//! leg reassembles (bounded slots and deadline) and writes version-1 messages straight into the
//! stream's send buffer, or drops and counts them when it is full: BFCP over UDP has its own
//! retransmission (RFC 8855 §6.2), so nothing is queued without bound for a slow stream.
//!
//! **BFCP transactions across transports** (RFC 8855 §8; interworking contexts only — relays
//! between two legs of the same transport stay byte-exact): the gateway is the UDP side's peer
//! for both kinds of transaction, through a [`mgw_app::bfcp::Transactions`] table on the UDP
//! leg (fixed capacity, allocated at install, timers through the worker's timer heap):
//! - stream → UDP: a response (it answers a request relayed from UDP, or is a response
//!   primitive with a non-zero Transaction ID) leaves with R set (§5.1: only Ver 2 has R, and a
//!   UDP receiver takes R clear for a new request). A server-initiated FloorRequestStatus,
//!   FloorStatus or Goodbye (Transaction ID 0 over reliable transports, §8) gets a non-zero ID
//!   chosen by the gateway. Every request sent on UDP is kept and retransmitted on T1 = 500 ms,
//!   doubling, until answered or after 3 retransmissions (§8.3.1). FloorRequestStatusAck and
//!   FloorStatusAck from the stream (they exist only over unreliable transports) are dropped.
//! - UDP → stream: a response (R set) ends the request it answers; the acknowledgement of a
//!   gateway-chosen ID is absorbed (a GoodbyeAck goes on with ID 0), a duplicate answer is
//!   absorbed, R is cleared. A server-initiated FloorRequestStatus/FloorStatus (R clear,
//!   non-zero ID) is acknowledged by the gateway on UDP and relayed with ID 0. A request is
//!   remembered for T2 (8 s) with the stream's answer: its retransmissions are not relayed
//!   again, but answered from that copy (§8.2, §8.3.2). Acknowledgements never reach the
//!   stream.
//!
//! Counted in [`crate::worker::WorkerStats::bfcp_transactions`] (overflow of either table
//! included: a request the full table cannot hold is sent once, untracked).

use crate::flow::{
    Application, ContextProgram, FlowEvent, InstallFailure, LegStats, SecurityFailure, Side,
    TcpFailure, TcpRole, Transport,
};
use crate::worker::{timer_key, Leg, LegKind, Worker};
use mgw_app::bfcp::{
    Fragmenter, FromUnreliable, Pushed, Reassembler, StreamFramer, ToUnreliable, Transactions,
};
use mgw_app::msrp::{rewrite_head_between, LegPathsRef, MsrpEvent, MsrpParser};
use mgw_core::buf::PacketBuffer;
use mgw_core::edge::{Edge, Egress};
use mgw_core::port::{Batch, Port};
use mgw_core::time::Instant;
use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{IpAddress, IpProtocol, TcpPacket, TcpRepr};
use mgw_tcp::{ConnId, Event, EventKind, ListenerId, SegmentSink};
use mgw_tls::{DtlsSession, PeerAuth, Record, SecurityRole, TlsEvent, TlsSession};

/// Scratch size: the most ciphertext sealed in one go plus handshake flights.
pub(crate) const SCRATCH: usize = 64 * 1024 + 8 * 1024;
/// The largest TLS record on the wire (TLS 1.2 allows 2^14 + 2048 of ciphertext, plus header).
const RECORD_MAX: usize = (1 << 14) + 2048 + 5;
/// Sealing overhead per record (header, tag, TLS 1.3 content type, with margin).
const SEAL_OVERHEAD: usize = 64;
/// Plaintext sealed per record.
const RECORD_PLAIN: usize = 1 << 14;
/// The most a rewritten head can grow: both URIs of the outbound route at their bounds.
const MSRP_ROUTE_MAX: usize = crate::flow::MSRP_URI_MAX + crate::flow::MSRP_PATH_MAX;
/// Output an MSRP frame can add beyond its own input bytes in one parser call, besides its
/// head's growth: a carried end-line candidate and a carried end-line (each at most CRLF + 7
/// dashes + a 32-character transaction id + flag + CRLF).
const MSRP_CARRY_OUT: usize = 2 * 44;
/// A lower bound on the input bytes of any frame the rewriter accepts (start line, To-Path and
/// From-Path lines, end-line): bounds how many heads one parser call can complete.
const MSRP_MIN_FRAME: usize = 32;

/// A TCP or TLS-over-TCP leg.
pub(crate) struct StreamLeg {
    conn: Option<ConnId>,
    listener: Option<ListenerId>,
    tls: Option<TlsSession>,
    /// Ciphertext taken from TCP, not yet consumed by TLS: `rec[rec_off..rec_off + rec_len]`.
    rec: Box<[u8]>,
    rec_off: usize,
    rec_len: usize,
    /// Plaintext from this leg waiting for the other: `staged[st_off..st_off + st_len]`.
    staged: Box<[u8]>,
    st_off: usize,
    st_len: usize,
    msrp: Option<MsrpParser>,
    /// MSRP To-Path/From-Path rewriting on frames from this leg (see the module docs).
    rewrite: bool,
    /// Aware BFCP: messages framed by the common header's length (RFC 8855 §5.1).
    bfcp: Option<StreamFramer>,
    /// Plaintext goes through `raw` and an application stage (rewriting, BFCP framing).
    raw_mode: bool,
    /// Raw-mode legs: plaintext not yet parsed, `raw[raw_off..raw_off + raw_len]`.
    raw: Box<[u8]>,
    raw_off: usize,
    raw_len: usize,
    /// TCP is established.
    tcp_up: bool,
    /// The peer sent FIN (or close_notify): once drained, the context goes.
    peer_done: bool,
    /// Already in the worker's dirty list.
    dirty: bool,
}

impl StreamLeg {
    fn new(
        tls: bool,
        staging: usize,
        msrp: Option<MsrpParser>,
        rewrite: bool,
        bfcp: Option<StreamFramer>,
    ) -> StreamLeg {
        let raw_mode = rewrite || bfcp.is_some();
        StreamLeg {
            conn: None,
            listener: None,
            tls: None,
            rec: vec![0u8; if tls { 2 * RECORD_MAX } else { 0 }].into_boxed_slice(),
            rec_off: 0,
            rec_len: 0,
            staged: vec![0u8; staging.max(RECORD_MAX)].into_boxed_slice(),
            st_off: 0,
            st_len: 0,
            msrp,
            rewrite,
            bfcp,
            raw_mode,
            raw: vec![0u8; if raw_mode { 2 * RECORD_MAX } else { 0 }].into_boxed_slice(),
            raw_off: 0,
            raw_len: 0,
            tcp_up: false,
            peer_done: false,
            dirty: false,
        }
    }

    /// The TLS handshake's next timer, if one is running (none once established).
    pub(crate) fn tls_deadline(&self) -> Instant {
        match &self.tls {
            Some(t) if t.is_handshaking() => t.poll_timeout(),
            _ => Instant::FAR_FUTURE,
        }
    }

    /// True once the leg has a TCP connection (or is connecting).
    pub(crate) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn staged_room(&self) -> usize {
        self.staged.len() - self.st_off - self.st_len
    }

    /// Moves staged bytes to the front when the tail is short of room.
    fn compact_staged(&mut self) {
        if self.st_off > 0 {
            self.staged
                .copy_within(self.st_off..self.st_off + self.st_len, 0);
            self.st_off = 0;
        }
    }

    /// Room for opened plaintext: in raw when rewriting, else in staging.
    fn plain_room(&self) -> usize {
        if self.raw_mode {
            self.raw_room()
        } else {
            self.staged_room()
        }
    }

    fn raw_room(&self) -> usize {
        self.raw.len() - self.raw_off - self.raw_len
    }

    fn compact_raw(&mut self) {
        if self.raw_off > 0 {
            self.raw
                .copy_within(self.raw_off..self.raw_off + self.raw_len, 0);
            self.raw_off = 0;
        }
    }

    fn compact_rec(&mut self) {
        if self.rec_off > 0 {
            self.rec
                .copy_within(self.rec_off..self.rec_off + self.rec_len, 0);
            self.rec_off = 0;
        }
    }
}

/// The IP layer under the TCP stack: frames a segment into a fresh buffer and queues it.
pub(crate) struct Sink<'a, P: Port> {
    pub(crate) port: &'a mut P,
    pub(crate) edge: &'a mut Edge,
    pub(crate) tx: &'a mut Batch<P::Buffer>,
    pub(crate) now: Instant,
    pub(crate) stats: &'a mut crate::worker::WorkerStats,
    /// Frames waiting for their next hop's ARP answer, and until when.
    pub(crate) arp_hold: &'a mut Vec<(Instant, P::Buffer)>,
    pub(crate) hold_until: Instant,
    /// The port computes TCP checksums on transmit.
    pub(crate) offload: bool,
}

impl<P: Port> SegmentSink for Sink<'_, P> {
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        let (IpAddress::V4(s), IpAddress::V4(d)) = (src, dst) else {
            // IPv6 egress waits for neighbour discovery; the segment is dropped, and counted.
            self.stats.tx_failed += 1;
            return true;
        };
        if self.tx.is_full() {
            self.port.tx_burst(self.tx);
            if self.tx.is_full() {
                return false;
            }
        }
        let Some(mut b) = self.port.alloc() else {
            return false;
        };
        let Some(room) = b.append(seg.buffer_len()) else {
            self.stats.tx_failed += 1;
            return true;
        };
        let mut pkt = TcpPacket::new_unchecked(room);
        let emitted = if self.offload {
            seg.emit_for_offload(&mut pkt, &src, &dst)
        } else {
            seg.emit(&mut pkt, &src, &dst)
        };
        if self.offload {
            b.offload_l4_checksum(mgw_core::wire::ipv4::HEADER_LEN, true);
        }
        if emitted.is_err() {
            self.stats.tx_failed += 1;
            return true;
        }
        match self
            .edge
            .encap_ipv4(self.now, &mut b, s, d, IpProtocol::Tcp)
        {
            Egress::Ready => {
                let _ = self.tx.push(b);
            }
            // Sent once the next hop answers ARP (or dropped, and TCP retransmits).
            Egress::Unresolved => {
                crate::worker::hold(self.arp_hold, self.stats, self.hold_until, b);
            }
            // Unrouted: dropped like a lost segment.
            _ => self.stats.tx_failed += 1,
        }
        true
    }
}

impl<P: Port> Worker<P> {
    /// The TCP stack and the IP layer under it, borrowed together (disjoint fields).
    fn tcp_io(&mut self) -> (&mut mgw_tcp::Stack, Sink<'_, P>) {
        let sink = Sink {
            port: &mut self.port,
            edge: &mut self.edge,
            tx: &mut self.tx,
            now: self.now,
            stats: &mut self.stats,
            arp_hold: &mut self.arp_hold,
            hold_until: self.now + self.cfg.arp_hold_time,
            offload: self.tx_l4_offload,
        };
        (&mut self.tcp, sink)
    }

    fn stream(&mut self, slot: usize, side: Side) -> Option<&mut StreamLeg> {
        match &mut self.slots.get_mut(slot)?.as_mut()?.legs[side.index()].kind {
            LegKind::Stream(s) => Some(s),
            _ => None,
        }
    }

    fn leg(&mut self, slot: usize, side: Side) -> Option<&mut Leg> {
        Some(&mut self.slots.get_mut(slot)?.as_mut()?.legs[side.index()])
    }

    pub(crate) fn mark_dirty(&mut self, slot: usize, side: Side) {
        if let Some(s) = self.stream(slot, side) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push((slot, side));
            }
        }
    }

    /// Installs a context whose two legs are TCP or TLS over TCP, or (BFCP interworking) one
    /// stream leg and one UDP or DTLS leg.
    pub(crate) fn install_streams(&mut self, p: ContextProgram) {
        let fail = |w: &mut Self, reason| {
            w.ring.send(FlowEvent::InstallFailed {
                context: p.context,
                generation: p.generation,
                reason,
            });
        };
        if p.legs.iter().any(|l| l.transport == Transport::TlsTcp) && self.cfg.tls.is_none() {
            return fail(self, InstallFailure::Unsupported);
        }
        // Listen first, so a refused address fails the install before anything is registered.
        let mut listeners = [None, None];
        for (i, l) in p.legs.iter().enumerate() {
            if l.transport.is_tcp() && l.tcp_role == TcpRole::Passive {
                match self
                    .tcp
                    .listen(IpAddress::from(l.local.ip()), l.local.port())
                {
                    Ok(id) => listeners[i] = Some(id),
                    Err(_) => {
                        for id in listeners.iter().flatten() {
                            self.tcp.unlisten(*id);
                        }
                        return fail(self, InstallFailure::AddressInUse);
                    }
                }
            }
        }
        let aware_msrp = p.aware && p.application == Application::Msrp;
        // Path rewriting needs both legs' URIs (CEMA on both sides: none are sent). Our own URIs
        // must parse; a remote path may still be unknown (empty) and come with a Modify.
        let rewrite = aware_msrp && p.legs.iter().all(|l| l.msrp.is_some());
        if rewrite
            && !p.legs.iter().flat_map(|l| l.msrp).all(|r| {
                let paths = r.paths();
                mgw_app::msrp::MsrpUri::parse(paths.local_uri).is_ok()
                    && (paths.remote_path.is_empty() || paths.validate().is_ok())
            })
        {
            for id in listeners.iter().flatten() {
                self.tcp.unlisten(*id);
            }
            return fail(self, InstallFailure::Unsupported);
        }
        // Staging must hold the largest rewritten head with room to spare (module docs).
        let staging = if rewrite {
            self.cfg
                .staging_bytes
                .max(self.cfg.msrp.max_header_block + MSRP_CARRY_OUT + MSRP_ROUTE_MAX + 4096)
        } else {
            self.cfg.staging_bytes
        };
        let aware_bfcp = p.aware && p.application == Application::Bfcp;
        let interworking = p.legs.iter().any(|l| !l.transport.is_tcp());
        let bfcp_max = self.cfg.bfcp.max_message;
        let mk = |i: usize, w: &Self| -> Option<Leg> {
            let l = p.legs[i];
            if !l.transport.is_tcp() {
                // The UDP side of BFCP interworking: datagrams are reassembled (RFC 8855 §6.2.1)
                // before they become version-1 messages on the stream.
                let kind = match l.transport {
                    Transport::DtlsUdp => {
                        let cfg = w.cfg.dtls.as_ref()?;
                        let d =
                            DtlsSession::new(cfg, l.security_role, l.peer_fingerprints, "", w.now)
                                .ok()?;
                        LegKind::Dtls(Box::new(d))
                    }
                    _ => LegKind::Udp,
                };
                return Some(Leg {
                    prog: l,
                    remote: l.remote,
                    kind,
                    udptl: None,
                    bfcp_rx: Some(Box::new(Reassembler::new(w.cfg.bfcp))),
                    bfcp_txn: Some(Box::new(Transactions::new(
                        w.cfg.bfcp_transactions,
                        first_transaction_id(p.context, p.generation, w.now),
                    ))),
                    stats: LegStats::default(),
                    deadline: w.now,
                    up: l.transport == Transport::Udp,
                    draining: false,
                });
            }
            let parser =
                aware_msrp.then(|| MsrpParser::new(w.cfg.msrp).with_header_events(!rewrite));
            let framer = aware_bfcp.then(|| StreamFramer::new(bfcp_max));
            let mut s = StreamLeg::new(
                l.transport == Transport::TlsTcp,
                staging,
                parser,
                rewrite,
                framer,
            );
            s.listener = listeners[i];
            Some(Leg {
                prog: l,
                remote: l.remote,
                kind: LegKind::Stream(Box::new(s)),
                udptl: None,
                bfcp_rx: None,
                bfcp_txn: None,
                stats: LegStats::default(),
                deadline: Instant::FAR_FUTURE,
                up: false,
                draining: false,
            })
        };
        let (Some(a), Some(b)) = (mk(0, self), mk(1, self)) else {
            for id in listeners.iter().flatten() {
                self.tcp.unlisten(*id);
            }
            return fail(self, InstallFailure::Unsupported);
        };
        let Some(slot) = self.register(p, [a, b]) else {
            for id in listeners.iter().flatten() {
                self.tcp.unlisten(*id);
            }
            return fail(self, InstallFailure::NoCapacity);
        };
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            let l = p.legs[i];
            if let Some(id) = listeners[i] {
                self.listeners.insert(id, (slot, side));
            }
            if !l.transport.is_tcp() {
                self.udp_flows.insert(
                    (IpAddress::from(l.local.ip()), l.local.port()),
                    (slot, side),
                );
                if l.transport == Transport::DtlsUdp && l.establish_now {
                    self.drain_dtls(slot, side);
                }
            } else if l.tcp_role == TcpRole::Active && l.establish_now {
                self.establish_stream(slot, side);
            }
        }
        if interworking {
            // The BFCP transaction tables' timers (RFC 8855 §8) start with a run now.
            for side in [Side::A, Side::B] {
                self.timers.earlier(timer_key(slot, side), self.now);
            }
        }
    }

    /// Opens the TCP connection of an active leg (immediately, or on the MGC's signal).
    pub(crate) fn establish_stream(&mut self, slot: usize, side: Side) {
        let now = self.now;
        let Some(leg) = self.leg(slot, side) else {
            return;
        };
        let (local, remote, open) = (leg.prog.local, leg.remote, leg.prog.tcp_role);
        let LegKind::Stream(s) = &leg.kind else {
            return;
        };
        if s.conn.is_some() || open != TcpRole::Active {
            return;
        }
        let Some(remote) = remote else { return };
        match self.tcp.connect(
            now,
            (IpAddress::from(local.ip()), local.port()),
            (IpAddress::from(remote.ip()), remote.port()),
        ) {
            Ok(id) => {
                if let Some(s) = self.stream(slot, side) {
                    s.conn = Some(id);
                }
                self.conns.insert(id, (slot, side));
            }
            Err(_) => {
                let context = self.slots[slot].as_ref().map_or(0, |c| c.prog.context);
                self.ring.send(FlowEvent::TcpFailed {
                    context,
                    side,
                    reason: TcpFailure::Resources,
                });
                self.close_context(slot);
            }
        }
    }

    /// A TCP segment for one of our addresses.
    pub(crate) fn on_tcp(&mut self, src: IpAddress, dst: IpAddress, buf: P::Buffer) {
        let Ok(pkt) = TcpPacket::new_checked(buf.as_ref()) else {
            self.stats.bad_l4 += 1;
            return;
        };
        // The NIC may have checked the checksum already (RX offload).
        let check = if buf.rx_l4_checksum_good() {
            ChecksumCheck::Skip
        } else {
            ChecksumCheck::Verify
        };
        let Ok(repr) = TcpRepr::parse(&pkt, &src, &dst, check) else {
            self.stats.bad_l4 += 1;
            return;
        };
        let now = self.now;
        let (tcp, mut sink) = self.tcp_io();
        tcp.on_segment(now, src, dst, &repr, &mut sink);
    }

    /// TCP events, the relay over dirty legs, then TCP output. Returns true if anything ran.
    pub(crate) fn run_streams(&mut self) -> bool {
        let mut busy = false;
        for _ in 0..4 {
            let mut any = false;
            while let Some(ev) = self.tcp.poll_event() {
                any = true;
                self.on_tcp_event(ev);
            }
            let n = self.dirty.len();
            for i in 0..n {
                let (slot, side) = self.dirty[i];
                if let Some(s) = self.stream(slot, side) {
                    s.dirty = false;
                }
                self.pump(slot, side);
            }
            self.dirty.drain(..n);
            any |= n > 0;
            let now = self.now;
            let (tcp, mut sink) = self.tcp_io();
            tcp.poll(now, &mut sink);
            busy |= any;
            if !any {
                break;
            }
        }
        busy
    }

    fn on_tcp_event(&mut self, ev: Event) {
        let by_conn = self.conns.get(&ev.conn).copied();
        match ev.kind {
            EventKind::Accepted { listener } => {
                let Some(&(slot, side)) = self.listeners.get(&listener) else {
                    let (tcp, mut sink) = self.tcp_io();
                    let _ = tcp.abort(ev.conn, &mut sink);
                    return;
                };
                self.accepted(slot, side, ev.conn, listener);
            }
            EventKind::Connected => {
                if let Some((slot, side)) = by_conn {
                    self.tcp_up(slot, side);
                }
            }
            EventKind::ConnectFailed { reason } => {
                self.conns.remove(&ev.conn);
                if let Some((slot, side)) = by_conn {
                    let reason = match reason {
                        mgw_tcp::ConnectFailure::Refused => TcpFailure::Refused,
                        mgw_tcp::ConnectFailure::TimedOut => TcpFailure::Timeout,
                    };
                    if let Some(s) = self.stream(slot, side) {
                        s.conn = None;
                    }
                    let context = self.slots[slot].as_ref().map_or(0, |c| c.prog.context);
                    self.ring.send(FlowEvent::TcpFailed {
                        context,
                        side,
                        reason,
                    });
                    self.close_context(slot);
                }
            }
            EventKind::Readable => {
                if let Some((slot, side)) = by_conn {
                    self.mark_dirty(slot, side);
                }
            }
            EventKind::Writable => {
                if let Some((slot, side)) = by_conn {
                    // Room on this leg: the other leg's staged data can move.
                    self.mark_dirty(slot, side.other());
                }
            }
            EventKind::PeerClosed => {
                if let Some((slot, side)) = by_conn {
                    if let Some(s) = self.stream(slot, side) {
                        s.peer_done = true;
                    }
                    let context = self.slots[slot].as_ref().map_or(0, |c| c.prog.context);
                    self.ring.send(FlowEvent::PeerClosed { context, side });
                    self.mark_dirty(slot, side);
                }
            }
            EventKind::Reset | EventKind::TimedOut => {
                self.conns.remove(&ev.conn);
                if let Some((slot, side)) = by_conn {
                    let up = self.stream(slot, side).is_some_and(|s| {
                        s.conn = None;
                        s.tcp_up
                    });
                    let context = self.slots[slot].as_ref().map_or(0, |c| c.prog.context);
                    let ev = if up {
                        FlowEvent::PeerClosed { context, side }
                    } else {
                        FlowEvent::TcpFailed {
                            context,
                            side,
                            reason: TcpFailure::Refused,
                        }
                    };
                    self.ring.send(ev);
                    self.close_context(slot);
                }
            }
            EventKind::Closed => {
                self.conns.remove(&ev.conn);
            }
        }
    }

    fn accepted(&mut self, slot: usize, side: Side, conn: ConnId, listener: ListenerId) {
        let tuple = self.tcp.tuple(conn).ok();
        let Some(leg) = self.leg(slot, side) else {
            return;
        };
        let from = tuple.map(|t| std::net::SocketAddr::new(t.remote_addr.into(), t.remote_port));
        let expected = leg.remote;
        // A connection is accepted only on a passive leg, so its peer is the active end, whose
        // port means nothing (RFC 4145 §4: an active endpoint's port is 9, discard): the
        // programmed remote's address is what identifies it. A leg with no remote takes a
        // connection only when latching (H.248.37) is on; the handshake that completed is the
        // validation (RFC 9293 §3.5: a SYN acknowledged by the peer's ACK of our SYN-ACK).
        let ok = match (expected, from) {
            (Some(e), Some(f)) => e.ip() == f.ip(),
            (None, Some(_)) => leg.prog.latching,
            _ => false,
        };
        if !ok {
            // Not the programmed peer (gate): refuse this connection, keep listening.
            self.stats.wrong_source += 1;
            let (tcp, mut sink) = self.tcp_io();
            let _ = tcp.abort(conn, &mut sink);
            return;
        }
        let context = self.slots[slot].as_ref().map_or(0, |c| c.prog.context);
        if let (Some(f), true) = (from, expected != from) {
            if let Some(leg) = self.leg(slot, side) {
                leg.remote = Some(f);
            }
            self.ring.send(FlowEvent::Latched {
                context,
                side,
                remote: f,
            });
        }
        // One connection per leg: stop listening once the peer is in.
        self.tcp.unlisten(listener);
        self.listeners.remove(&listener);
        if let Some(s) = self.stream(slot, side) {
            s.listener = None;
            s.conn = Some(conn);
        }
        self.conns.insert(conn, (slot, side));
        self.tcp_up(slot, side);
    }

    fn tcp_up(&mut self, slot: usize, side: Side) {
        let now = self.now;
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        let context = ctx.prog.context;
        let leg = &mut ctx.legs[side.index()];
        let (transport, role, fps, remote) = (
            leg.prog.transport,
            leg.prog.security_role,
            leg.prog.peer_fingerprints,
            leg.remote,
        );
        let LegKind::Stream(s) = &mut leg.kind else {
            return;
        };
        s.tcp_up = true;
        self.ring.send(FlowEvent::TcpUp { context, side });
        if transport == Transport::TlsTcp {
            let Some(tls_ctx) = self.cfg.tls.as_ref() else {
                return;
            };
            let auth = PeerAuth::fingerprints(fps);
            let session = match role {
                SecurityRole::Client => {
                    // Peers are authenticated by fingerprint. The server name keys the
                    // resumption store, so it is the peer's address: one ticket per peer.
                    let name = remote.map_or_else(
                        || {
                            mgw_tls::ServerName::try_from("mgwd.invalid")
                                .map(|n| n.to_owned())
                                .ok()
                        },
                        |r| Some(mgw_tls::ServerName::from(r.ip())),
                    );
                    name.and_then(|n| TlsSession::client(tls_ctx, &auth, n, now).ok())
                }
                SecurityRole::Server => TlsSession::server(tls_ctx, &auth, now).ok(),
            };
            match session {
                Some(t) => {
                    self.timers.earlier(timer_key(slot, side), t.poll_timeout());
                    s.tls = Some(t);
                }
                None => {
                    self.ring.send(FlowEvent::SecureFailed {
                        context,
                        side,
                        reason: SecurityFailure::Protocol,
                    });
                    return self.close_context(slot);
                }
            }
        } else {
            leg.up = true;
        }
        self.mark_dirty(slot, side);
        self.mark_dirty(slot, side.other());
    }

    /// Moves data from leg `side` towards the other leg as far as buffers allow, and flushes
    /// TLS handshake output. Bounded: it stops when nothing moves.
    fn pump(&mut self, slot: usize, side: Side) {
        for _ in 0..64 {
            let moved_in = self.read_leg(slot, side);
            let moved_in = self.app_pending(slot, side) || moved_in;
            let moved_out = self.flush_staged(slot, side);
            if self.slots[slot].is_none() {
                return;
            }
            if !moved_in && !moved_out {
                break;
            }
        }
        // Drained after the peer's FIN or close_notify: the context goes (TS 29.334).
        let done = self
            .stream(slot, side)
            .is_some_and(|s| s.peer_done && s.st_len == 0 && s.rec_len == 0 && s.raw_len == 0)
            && self.tcp_readable(slot, side) == 0;
        if done {
            self.close_context(slot);
        }
    }

    fn tcp_readable(&mut self, slot: usize, side: Side) -> usize {
        let conn = self.stream(slot, side).and_then(|s| s.conn);
        conn.and_then(|c| self.tcp.recv_available(c).ok())
            .unwrap_or(0)
    }

    /// Reads leg `side`: TCP → (TLS) → staging. Returns true if anything moved.
    fn read_leg(&mut self, slot: usize, side: Side) -> bool {
        let now = self.now;
        let Some(ctx) = self.slots[slot].as_mut() else {
            return false;
        };
        if ctx.closing {
            return false;
        }
        let context = ctx.prog.context;
        let leg = &mut ctx.legs[side.index()];
        let LegKind::Stream(s) = &mut leg.kind else {
            return false;
        };
        let Some(conn) = s.conn else { return false };
        let mut moved = false;
        if s.tls.is_none() && s.raw_mode {
            // Plain TCP, raw mode: ring → raw; the application stage moves it on.
            if s.raw_room() < 2048 {
                s.compact_raw();
            }
            let start = s.raw_off + s.raw_len;
            let room = s.raw_room();
            if room == 0 {
                return false;
            }
            let n = self
                .tcp
                .recv(conn, &mut s.raw[start..start + room])
                .unwrap_or(0);
            s.raw_len += n;
            leg.stats.octets_received += n as u64;
            return n > 0;
        }
        if s.tls.is_none() {
            // Plain TCP: ring → staging.
            if s.staged_room() < 2048 {
                s.compact_staged();
            }
            let room = s.staged_room();
            if room == 0 {
                return false;
            }
            let start = s.st_off + s.st_len;
            let n = self
                .tcp
                .recv(conn, &mut s.staged[start..start + room])
                .unwrap_or(0);
            if n > 0 {
                s.st_len += n;
                leg.stats.octets_received += n as u64;
                moved = true;
                if !check_msrp(s, start, n, &mut leg.stats) {
                    return self.app_failure(slot, side);
                }
            }
            return moved;
        }
        // TLS: ring → record buffer.
        if s.rec_off + s.rec_len + 4096 > s.rec.len() {
            s.compact_rec();
        }
        let free = s.rec.len() - s.rec_off - s.rec_len;
        if free > 0 {
            let start = s.rec_off + s.rec_len;
            let n = self
                .tcp
                .recv(conn, &mut s.rec[start..start + free])
                .unwrap_or(0);
            s.rec_len += n;
            moved |= n > 0;
        }
        // The session is taken out of the leg while it works on the leg's buffers, and put back
        // below (a move, no allocation).
        let Some(mut tls) = s.tls.take() else {
            return moved;
        };
        let mut failed = None;
        if !tls.is_established() {
            // Handshake: feed everything; early application data goes to staging.
            let space = self
                .tcp
                .send_space(conn)
                .unwrap_or(0)
                .min(self.scratch.len());
            if s.staged_room() < RECORD_MAX {
                s.compact_staged();
            }
            s.compact_raw();
            let before = s.st_len;
            let raw_before = s.raw_len;
            // Early application data: to staging, or to raw on a rewriting leg.
            let (st, st_off, st_len) = if s.raw_mode {
                (&mut s.raw, s.raw_off, &mut s.raw_len)
            } else {
                (&mut s.staged, s.st_off, &mut s.st_len)
            };
            let mut overflow = false;
            let mut deliver = |d: &[u8]| {
                let at = st_off + *st_len;
                if at + d.len() <= st.len() {
                    st[at..at + d.len()].copy_from_slice(d);
                    *st_len += d.len();
                } else {
                    overflow = true;
                }
            };
            let rec = &mut s.rec[s.rec_off..s.rec_off + s.rec_len];
            match tls.on_ciphertext(rec, now, &mut self.scratch[..space], &mut deliver) {
                Ok(p) => {
                    s.rec_off += p.consumed;
                    s.rec_len -= p.consumed;
                    if p.written > 0 {
                        let _ = self.tcp.send(conn, &self.scratch[..p.written]);
                    }
                    moved |= p.consumed > 0 || p.written > 0 || p.delivered > 0;
                    let added = s.st_len - before;
                    leg.stats.octets_received += (added + s.raw_len - raw_before) as u64;
                    if added > 0 && !check_msrp(s, s.st_off + before, added, &mut leg.stats) {
                        s.tls = Some(tls);
                        return self.app_failure(slot, side);
                    }
                }
                Err(mgw_tls::TlsError::Failed(r)) => failed = Some(SecurityFailure::from(r)),
                Err(_) => failed = Some(SecurityFailure::Protocol),
            }
            if overflow {
                failed = failed.or(Some(SecurityFailure::Protocol));
            }
        } else if s.plain_room() >= RECORD_MAX || {
            s.compact_staged();
            s.compact_raw();
            s.plain_room() >= RECORD_MAX
        } {
            // Established: open whole records in place while staging (raw when rewriting) has
            // room for one more.
            while s.rec_len > 0 && s.plain_room() >= RECORD_MAX {
                let rec = &mut s.rec[s.rec_off..s.rec_off + s.rec_len];
                match tls.open_record(rec) {
                    Ok(Record::Incomplete { .. }) => break,
                    Ok(Record::Data {
                        consumed,
                        plaintext,
                    }) if s.raw_mode => {
                        let n = plaintext.len();
                        let at = s.raw_off + s.raw_len;
                        let src = s.rec_off + plaintext.start;
                        s.raw[at..at + n].copy_from_slice(&s.rec[src..src + n]);
                        s.raw_len += n;
                        s.rec_off += consumed;
                        s.rec_len -= consumed;
                        leg.stats.octets_received += n as u64;
                        moved = true;
                    }
                    Ok(Record::Data {
                        consumed,
                        plaintext,
                    }) => {
                        let n = plaintext.len();
                        let at = s.st_off + s.st_len;
                        let src = s.rec_off + plaintext.start;
                        s.staged[at..at + n].copy_from_slice(&s.rec[src..src + n]);
                        s.st_len += n;
                        s.rec_off += consumed;
                        s.rec_len -= consumed;
                        leg.stats.octets_received += n as u64;
                        moved = true;
                        if !check_msrp(s, at, n, &mut leg.stats) {
                            s.tls = Some(tls);
                            return self.app_failure(slot, side);
                        }
                    }
                    Ok(Record::Control { consumed }) => {
                        s.rec_off += consumed;
                        s.rec_len -= consumed;
                        moved = true;
                    }
                    Err(mgw_tls::TlsError::Failed(r)) => {
                        failed = Some(SecurityFailure::from(r));
                        break;
                    }
                    Err(_) => {
                        failed = Some(SecurityFailure::Protocol);
                        break;
                    }
                }
            }
            if s.rec_len == 0 {
                s.rec_off = 0;
            }
        }
        // Control output (alerts, KeyUpdate, the rest of a flight) and events.
        while tls.wants_transmit() {
            let space = self
                .tcp
                .send_space(conn)
                .unwrap_or(0)
                .min(self.scratch.len());
            let n = tls.poll_transmit(&mut self.scratch[..space]);
            if n == 0 {
                break;
            }
            let _ = self.tcp.send(conn, &self.scratch[..n]);
            moved = true;
        }
        let mut established = false;
        let mut closed = false;
        while let Some(e) = tls.poll_event() {
            match e {
                TlsEvent::Established { .. } => established = true,
                TlsEvent::Failed { reason } => failed = Some(SecurityFailure::from(reason)),
                TlsEvent::CloseNotify | TlsEvent::Closed => closed = true,
            }
        }
        self.timers
            .earlier(timer_key(slot, side), tls.poll_timeout());
        s.tls = Some(tls);
        if closed {
            s.peer_done = true;
        }
        if let Some(reason) = failed {
            self.ring.send(FlowEvent::SecureFailed {
                context,
                side,
                reason,
            });
            // The fatal alert is already queued on TCP; FIN follows in close_context.
            self.close_context(slot);
            return true;
        }
        if established {
            leg.up = true;
            self.ring.send(FlowEvent::SecureUp { context, side });
            self.mark_dirty(slot, side.other());
            moved = true;
        }
        if closed {
            self.ring.send(FlowEvent::PeerClosed { context, side });
        }
        moved
    }

    /// Staged plaintext of leg `side` → the other leg. Returns true if anything moved.
    fn flush_staged(&mut self, slot: usize, side: Side) -> bool {
        let Some(ctx) = self.slots[slot].as_mut() else {
            return false;
        };
        let [a, b] = &mut ctx.legs;
        let (from, to) = if side == Side::A { (a, b) } else { (b, a) };
        let (LegKind::Stream(src), LegKind::Stream(dst)) = (&mut from.kind, &mut to.kind) else {
            return false;
        };
        if src.st_len == 0 || !to.up {
            return false;
        }
        let Some(conn) = dst.conn else { return false };
        let space = self.tcp.send_space(conn).unwrap_or(0);
        let data = &src.staged[src.st_off..src.st_off + src.st_len];
        let sent = match dst.tls.as_mut() {
            None => self.tcp.send(conn, data).unwrap_or(0),
            Some(tls) => {
                let budget = space.min(self.scratch.len());
                let records = budget / (RECORD_PLAIN + SEAL_OVERHEAD) + 1;
                let m = data
                    .len()
                    .min(budget.saturating_sub(records * SEAL_OVERHEAD));
                if m == 0 {
                    0
                } else {
                    match tls.seal(&data[..m], &mut self.scratch[..budget]) {
                        Ok(w) => {
                            let taken = self.tcp.send(conn, &self.scratch[..w]).unwrap_or(0);
                            debug_assert_eq!(taken, w, "send space was checked");
                            m
                        }
                        Err(_) => 0,
                    }
                }
            }
        };
        if sent == 0 {
            return false;
        }
        src.st_off += sent;
        src.st_len -= sent;
        if src.st_len == 0 {
            src.st_off = 0;
        }
        to.stats.octets_sent += sent as u64;
        true
    }

    /// The application stage of a raw-mode leg: MSRP rewriting or BFCP framing.
    fn app_pending(&mut self, slot: usize, side: Side) -> bool {
        match self.stream(slot, side) {
            Some(s) if s.rewrite => self.rewrite_pending(slot, side),
            Some(s) if s.bfcp.is_some() => self.bfcp_pending(slot, side),
            _ => false,
        }
    }

    /// Aware BFCP on stream leg `side`: raw → framer (RFC 8855 §5.1, messages delimited by
    /// the common header's Payload Length). Whole valid messages go on: to the other stream
    /// leg's staging as they are, or to a UDP leg as version-2 datagrams, fragmented above
    /// [`crate::worker::WorkerConfig::bfcp_mtu`] (RFC 8855 §5.1 F flag, §6.2 interworking). A
    /// message with a sound length but bad attributes is dropped and counted; framing loss
    /// (bad version, F set, too large) is counted and releases the context, as for MSRP.
    fn bfcp_pending(&mut self, slot: usize, side: Side) -> bool {
        let mut moved = false;
        for _ in 0..64 {
            let mut scratch = std::mem::take(&mut self.scratch);
            let step = self.bfcp_step(slot, side, &mut scratch);
            match step {
                BfcpStep::Idle => {
                    self.scratch = scratch;
                    break;
                }
                BfcpStep::Fatal => {
                    self.scratch = scratch;
                    return self.app_failure(slot, side);
                }
                BfcpStep::Staged => moved = true,
                BfcpStep::Datagrams(len) => {
                    self.bfcp_send_datagrams(slot, side.other(), &mut scratch[..len]);
                    moved = true;
                }
            }
            self.scratch = scratch;
        }
        moved
    }

    /// One framer call over as much raw input as the output can take in the worst case (the
    /// input plus one message begun in an earlier call).
    fn bfcp_step(&mut self, slot: usize, side: Side, scratch: &mut [u8]) -> BfcpStep {
        let max = self.cfg.bfcp.max_message;
        let Some(ctx) = self.slots[slot].as_mut() else {
            return BfcpStep::Idle;
        };
        let [a, b] = &mut ctx.legs;
        let (from, to) = if side == Side::A { (a, b) } else { (b, a) };
        let LegKind::Stream(s) = &mut from.kind else {
            return BfcpStep::Idle;
        };
        let s: &mut StreamLeg = s;
        let datagrams = !matches!(to.kind, LegKind::Stream(_));
        // Towards UDP, wait (reading nothing more) until the datagram leg can send: its
        // peer known and, for DTLS, the session up.
        if s.raw_len == 0 || (datagrams && !(to.up && to.remote.is_some())) {
            return BfcpStep::Idle;
        }
        if !datagrams && s.staged_room() < max + 4096 {
            s.compact_staged();
        }
        let (out, at0) = if datagrams {
            (scratch, 0)
        } else {
            let at = s.st_off + s.st_len;
            (&mut s.staged[..], at)
        };
        let n = (out.len() - at0).saturating_sub(max).min(s.raw_len);
        let Some(framer) = s.bfcp.as_mut() else {
            return BfcpStep::Idle;
        };
        if n == 0 {
            return BfcpStep::Idle;
        }
        let input = &s.raw[s.raw_off..s.raw_off + n];
        let mut feed = framer.feed(input);
        let (mut at, mut messages, mut dropped, mut fatal) = (at0, 0u64, 0u64, false);
        loop {
            match feed.next_message() {
                Ok(None) => break,
                Ok(Some(f)) => {
                    let m = feed.bytes(f);
                    out[at..at + m.len()].copy_from_slice(m);
                    at += m.len();
                    messages += 1;
                }
                Err(_) if feed.failed() => {
                    fatal = true;
                    break;
                }
                // Sound length, bad content: this message is dropped, the stream goes on.
                Err(_) => dropped += 1,
            }
        }
        s.raw_off += n;
        s.raw_len -= n;
        if s.raw_len == 0 {
            s.raw_off = 0;
        }
        from.stats.messages_received += messages;
        from.stats.app_errors += dropped + u64::from(fatal);
        self.stats.app_errors += dropped;
        if fatal {
            return BfcpStep::Fatal;
        }
        if datagrams {
            BfcpStep::Datagrams(at)
        } else {
            s.st_len += at - at0;
            BfcpStep::Staged
        }
    }

    /// Sends back-to-back version-1 messages as version-2 datagrams on UDP leg `side`, each
    /// through the leg's transaction layer first (RFC 8855 §8: R on responses, an ID for
    /// server-initiated messages, requests kept for retransmission).
    fn bfcp_send_datagrams(&mut self, slot: usize, side: Side, mut msgs: &mut [u8]) {
        let now = self.now;
        while msgs.len() >= mgw_app::bfcp::HEADER_LEN {
            let units = usize::from(u16::from_be_bytes([msgs[2], msgs[3]]));
            let len = (mgw_app::bfcp::HEADER_LEN + 4 * units).min(msgs.len());
            let (msg, rest) = std::mem::take(&mut msgs).split_at_mut(len);
            msgs = rest;
            let verdict = match self.slots[slot].as_mut() {
                Some(ctx) => match ctx.legs[side.index()].bfcp_txn.as_mut() {
                    Some(txn) => {
                        let v = txn.to_unreliable(now, msg, &mut self.stats.bfcp_transactions);
                        self.timers
                            .earlier(timer_key(slot, side), txn.poll_timeout());
                        v
                    }
                    None => ToUnreliable::Send,
                },
                None => return,
            };
            if verdict == ToUnreliable::Send {
                self.bfcp_send_message(slot, side, msg);
            }
        }
    }

    /// Sends one whole message on UDP leg `side` as version-2 datagrams, fragmented above
    /// [`crate::worker::WorkerConfig::bfcp_mtu`].
    fn bfcp_send_message(&mut self, slot: usize, side: Side, msg: &[u8]) {
        let Ok(mut frag) = Fragmenter::new(msg, self.cfg.bfcp_mtu) else {
            self.stats.tx_failed += 1;
            return;
        };
        loop {
            let Some(mut b) = self.port.alloc() else {
                self.stats.tx_failed += 1;
                break;
            };
            let cap = b.tailroom();
            let Some(room) = b.append(cap) else {
                self.stats.tx_failed += 1;
                break;
            };
            match frag.next_fragment(room) {
                None => break,
                Some(Ok(w)) => {
                    b.trim(cap - w);
                    self.relay_out(slot, side, b);
                }
                Some(Err(_)) => {
                    self.stats.tx_failed += 1;
                    break;
                }
            }
        }
    }

    /// Retransmits the requests of BFCP UDP leg `side` that are due (RFC 8855 §8.3.1: T1,
    /// doubling, bounded), and gives up those past their last retransmission.
    pub(crate) fn bfcp_retransmit(&mut self, slot: usize, side: Side) {
        let now = self.now;
        let due = |w: &Self| {
            w.slots[slot]
                .as_ref()
                .and_then(|c| c.legs[side.index()].bfcp_txn.as_ref())
                .map(|t| t.poll_timeout())
        };
        // Re-armed by the caller (`Worker::arm`) with whatever is left pending.
        match due(self) {
            Some(t) if t <= now => {}
            _ => return,
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(ctx) = self.slots[slot].as_mut() {
            let Some(txn) = ctx.legs[side.index()].bfcp_txn.as_mut() else {
                break;
            };
            match txn.poll_retransmit(now, &mut scratch, &mut self.stats.bfcp_transactions) {
                Some(len) => self.bfcp_send_message(slot, side, &scratch[..len]),
                None => break,
            }
        }
        self.scratch = scratch;
    }

    /// A datagram (UDP payload or DTLS plaintext) on BFCP UDP leg `side` whose other leg is a
    /// stream: reassembled when fragmented (bounded slots and deadline), made version 1
    /// (RFC 8855 §5.1: version 1 on reliable transports) and written to the stream. Malformed
    /// datagrams are dropped and counted.
    pub(crate) fn bfcp_datagram_in(&mut self, slot: usize, side: Side, payload: &[u8]) {
        let now = self.now;
        let mut scratch = std::mem::take(&mut self.scratch);
        let len = 'msg: {
            let Some(ctx) = self.slots[slot].as_mut() else {
                break 'msg None;
            };
            let leg = &mut ctx.legs[side.index()];
            let Some(r) = leg.bfcp_rx.as_mut() else {
                break 'msg None;
            };
            leg.stats.octets_received += payload.len() as u64;
            let m = match r.push(now, payload) {
                Ok(Pushed::Whole) => payload,
                Ok(Pushed::Complete(i)) => r.completed(i),
                Ok(Pushed::Pending) => break 'msg None,
                Err(_) => {
                    leg.stats.app_errors += 1;
                    self.stats.app_errors += 1;
                    break 'msg None;
                }
            };
            let Some(dst) = scratch.get_mut(..m.len()) else {
                break 'msg None;
            };
            dst.copy_from_slice(m);
            leg.stats.messages_received += 1;
            Some(m.len())
        };
        if let Some(len) = len {
            // RFC 8855 §8 across transports: acks and cached answers go back on this leg, acks
            // and retransmitted requests stop here, IDs and R are made right for the stream.
            let verdict = match self.slots[slot].as_mut() {
                Some(ctx) => match ctx.legs[side.index()].bfcp_txn.as_mut() {
                    Some(txn) => {
                        let (msg, reply) = scratch.split_at_mut(len);
                        let v =
                            txn.from_unreliable(now, msg, reply, &mut self.stats.bfcp_transactions);
                        self.timers
                            .earlier(timer_key(slot, side), txn.poll_timeout());
                        v
                    }
                    None => FromUnreliable {
                        relay: true,
                        reply: 0,
                    },
                },
                None => FromUnreliable {
                    relay: false,
                    reply: 0,
                },
            };
            if verdict.reply > 0 {
                let (_, reply) = scratch.split_at(len);
                let reply = &reply[..verdict.reply];
                self.bfcp_send_message(slot, side, reply);
            }
            if verdict.relay && mgw_app::bfcp::to_reliable(&mut scratch[..len]).is_ok() {
                self.stream_write(slot, side.other(), &mut scratch, len);
            }
        }
        self.scratch = scratch;
    }

    /// Writes the message `buf[..len]` to stream leg `side` (sealed into `buf[len..]` for TLS),
    /// whole or not at all: without room in the TCP send buffer it is dropped and counted.
    fn stream_write(&mut self, slot: usize, side: Side, buf: &mut [u8], len: usize) {
        let Some(ctx) = self.slots[slot].as_mut() else {
            return;
        };
        let leg = &mut ctx.legs[side.index()];
        let up = leg.up;
        let LegKind::Stream(s) = &mut leg.kind else {
            return;
        };
        let Some(conn) = s.conn.filter(|_| up) else {
            self.stats.no_peer += 1;
            return;
        };
        let space = self.tcp.send_space(conn).unwrap_or(0);
        let (msg, rest) = buf.split_at_mut(len);
        let budget = space.min(rest.len());
        let wire: &[u8] = match s.tls.as_mut() {
            None if space >= len => msg,
            None => {
                self.stats.stream_full += 1;
                return;
            }
            Some(tls) => match tls.seal(msg, &mut rest[..budget]) {
                Ok(w) => &rest[..w],
                Err(_) => {
                    self.stats.stream_full += 1;
                    return;
                }
            },
        };
        let _ = self.tcp.send(conn, wire);
        leg.stats.octets_sent += len as u64;
        leg.stats.messages_sent += 1;
    }

    /// Rewriting legs: raw plaintext of leg `side` → MSRP parser → staging, heads rewritten for
    /// the other leg (module docs). Runs only once the other leg is up (its route is then
    /// final). Returns true if anything moved; malformed framing or a frame not addressed to
    /// the MGW on this leg releases the context.
    fn rewrite_pending(&mut self, slot: usize, side: Side) -> bool {
        let Some(ctx) = self.slots[slot].as_mut() else {
            return false;
        };
        let max_head = self.cfg.msrp.max_header_block;
        let [a, b] = &mut ctx.legs;
        let (from, to) = if side == Side::A { (a, b) } else { (b, a) };
        let LegKind::Stream(s) = &mut from.kind else {
            return false;
        };
        let s: &mut StreamLeg = s;
        if !s.rewrite || s.raw_len == 0 || !to.up {
            return false;
        }
        let (Some(inbound), Some(outbound)) = (from.prog.msrp.as_ref(), to.prog.msrp.as_ref())
        else {
            // A Modify took a route away (both endpoints turned out to use CEMA): frames pass
            // as they are from now on, still checked and counted.
            let mut moved = false;
            while s.raw_len > 0 {
                if s.staged_room() < s.raw_len {
                    s.compact_staged();
                }
                let n = s.staged_room().min(s.raw_len);
                if n == 0 {
                    break;
                }
                let at = s.st_off + s.st_len;
                s.staged[at..at + n].copy_from_slice(&s.raw[s.raw_off..s.raw_off + n]);
                s.st_len += n;
                s.raw_off += n;
                s.raw_len -= n;
                moved = true;
                if !check_msrp(s, at, n, &mut from.stats) {
                    return self.app_failure(slot, side);
                }
            }
            if s.raw_len == 0 {
                s.raw_off = 0;
            }
            return moved;
        };
        let (inbound, outbound) = (inbound.paths(), outbound.paths());
        let mut ok = !outbound.remote_path.is_empty();
        let mut moved = false;
        while ok && s.raw_len > 0 {
            if s.staged_room() < s.staged.len() / 2 {
                s.compact_staged();
            }
            let n =
                rewrite_input_len(s.staged_room(), max_head, outbound.max_growth()).min(s.raw_len);
            if n == 0 {
                break;
            }
            let Some(parser) = s.msrp.as_mut() else {
                break;
            };
            let input = &s.raw[s.raw_off..s.raw_off + n];
            let out = &mut s.staged[s.st_off + s.st_len..];
            let Some((at, frames)) = rewrite_chunk(parser, input, inbound, outbound, out) else {
                ok = false;
                break;
            };
            from.stats.messages_received += frames;
            s.st_len += at;
            s.raw_off += n;
            s.raw_len -= n;
            if s.raw_len == 0 {
                s.raw_off = 0;
            }
            moved = true;
        }
        if !ok {
            from.stats.app_errors += 1;
            return self.app_failure(slot, side);
        }
        moved
    }

    /// Malformed application data on `side`: nothing of what that leg has staged is relayed
    /// (it may hold the bad bytes), and the context goes.
    fn app_failure(&mut self, slot: usize, side: Side) -> bool {
        if let Some(s) = self.stream(slot, side) {
            s.st_off = 0;
            s.st_len = 0;
            s.raw_off = 0;
            s.raw_len = 0;
        }
        self.stats.app_errors += 1;
        self.close_context(slot);
        true
    }

    /// Closes the stream legs of a closing context: what is staged goes first, then
    /// close_notify (TLS) and FIN. Their connections finish closing in the stack on their own.
    pub(crate) fn close_streams(&mut self, slot: usize) {
        for side in [Side::A, Side::B] {
            // Drain towards the other leg what is already staged (Subtract drains), after
            // rewriting what was received but not parsed yet.
            let _ = self.app_pending(slot, side.other());
            if self.slots[slot].is_none() {
                return;
            }
            let _ = self.flush_staged(slot, side.other());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        for side in [Side::A, Side::B] {
            let Some(s) = self.stream(slot, side) else {
                continue;
            };
            let (conn, listener) = (s.conn.take(), s.listener.take());
            let notify = match (s.tls.as_mut(), conn) {
                (Some(tls), Some(_)) if tls.is_established() => {
                    tls.close(&mut scratch[..64]).unwrap_or(0)
                }
                (Some(tls), Some(_)) => tls.poll_transmit(&mut scratch[..1024]),
                _ => 0,
            };
            if let Some(c) = conn {
                if notify > 0 {
                    let _ = self.tcp.send(c, &scratch[..notify]);
                }
                // A full close: the worker forgets the connection, so the stack must finish
                // it alone, bounded by its FIN-WAIT-2/close timeouts (a half close would hold
                // the slot for as long as the peer liked).
                let (tcp, mut sink) = self.tcp_io();
                let _ = tcp.release(c, &mut sink);
                self.conns.remove(&c);
            }
            if let Some(l) = listener {
                self.tcp.unlisten(l);
                self.listeners.remove(&l);
            }
        }
        self.scratch = scratch;
    }

    /// The TLS handshake timer of stream leg `side`, if due: runs it and says so (the leg
    /// then has output to move).
    pub(crate) fn stream_timeout(&mut self, slot: usize, side: Side) -> bool {
        let now = self.now;
        match self.stream(slot, side).and_then(|s| s.tls.as_mut()) {
            Some(t) if t.is_handshaking() && t.poll_timeout() <= now => {
                t.handle_timeout(now);
                true
            }
            _ => false,
        }
    }
}

/// The first Transaction ID the gateway chooses on an interworking context's UDP leg (RFC 8855
/// §8): non-zero, and different across contexts and generations, so that a peer still holding
/// a previous incarnation's transactions (T2) does not take a new notification for a
/// retransmission. Derived from what the worker is given, not drawn (cores take no randomness).
fn first_transaction_id(context: u32, generation: u32, now: Instant) -> u16 {
    let mix = context
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(generation.wrapping_mul(0x85eb_ca6b))
        .wrapping_add(now.as_millis() as u32);
    ((mix >> 16) as u16).max(1)
}

/// What one BFCP framer call produced.
enum BfcpStep {
    /// Nothing to do, or no room yet.
    Idle,
    /// Messages appended to staging (towards a stream leg).
    Staged,
    /// Messages written back to back at the front of scratch, this many bytes (towards a UDP
    /// leg).
    Datagrams(usize),
    /// The stream lost its framing.
    Fatal,
}

/// How much raw input one MSRP parser call may take so that its output fits in `room` bytes of
/// staging, whatever the input holds. Output is at most the input, plus the head of the first
/// frame begun in an earlier call (`max_head`), plus carried end-line bytes, plus one head's
/// `growth` for each frame the call completes (at most `n / MSRP_MIN_FRAME + 1`).
fn rewrite_input_len(room: usize, max_head: usize, growth: usize) -> usize {
    let reserve = max_head + MSRP_CARRY_OUT + growth;
    // n + (n / MIN) * growth <= room - reserve
    room.saturating_sub(reserve) * MSRP_MIN_FRAME / (MSRP_MIN_FRAME + growth)
}

/// Feeds `input` to `parser` and writes the frames' bytes to `out`, heads rewritten from the
/// `inbound` leg's to the `outbound` leg's URIs, bodies and end-lines as they are. Returns the
/// bytes written and the frames completed; `None` on malformed framing, a frame not addressed
/// to the MGW on the inbound leg, or an `out` too small (impossible within
/// [`rewrite_input_len`]).
fn rewrite_chunk(
    parser: &mut MsrpParser,
    input: &[u8],
    inbound: LegPathsRef<'_>,
    outbound: LegPathsRef<'_>,
    out: &mut [u8],
) -> Option<(usize, u64)> {
    let (mut at, mut frames) = (0, 0);
    let mut feed = parser.feed(input);
    loop {
        let w = match feed.next_event() {
            Ok(None) => return Some((at, frames)),
            Ok(Some(MsrpEvent::HeadersEnd { .. })) => {
                let p = feed.parser();
                rewrite_head_between(
                    inbound,
                    outbound,
                    false,
                    p.head(),
                    p.frame(),
                    &mut out[at..],
                )
                .ok()?
            }
            Ok(Some(MsrpEvent::Body { range })) => copy_into(out, at, &input[range.range()])?,
            Ok(Some(MsrpEvent::BodyCarry)) => copy_into(out, at, feed.parser().carried())?,
            Ok(Some(MsrpEvent::End { continuation })) => {
                frames += 1;
                feed.parser().write_end_line(continuation, &mut out[at..])?
            }
            Ok(Some(_)) => 0,
            Err(_) => return None,
        };
        at += w;
    }
}

/// Copies `src` to `out[at..]`; `None` if it does not fit (cannot happen within the bound of
/// [`rewrite_input_len`]; treated as an error rather than a panic).
fn copy_into(out: &mut [u8], at: usize, src: &[u8]) -> Option<usize> {
    out.get_mut(at..at + src.len())?.copy_from_slice(src);
    Some(src.len())
}

/// Feeds `n` bytes at `at` of the staging buffer to the leg's MSRP parser (aware mode):
/// counts frames, and says false on malformed framing.
fn check_msrp(s: &mut StreamLeg, at: usize, n: usize, stats: &mut LegStats) -> bool {
    let Some(parser) = s.msrp.as_mut() else {
        return true;
    };
    let mut feed = parser.feed(&s.staged[at..at + n]);
    loop {
        match feed.next_event() {
            Ok(Some(MsrpEvent::End { .. })) => stats.messages_received += 1,
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => {
                stats.app_errors += 1;
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_app::msrp::{MsrpConfig, MsrpResponse, MsrpSend};
    use proptest::prelude::*;

    const GW_A: &str = "msrps://10.0.0.1:2855/gw;tcp";
    const UE: &str = "msrps://10.0.0.2:5000/ue;tcp";

    /// One frame as the UE writes it, and as the core must get it: a SEND of `body`, or
    /// without a body a 200 OK.
    fn frame(i: usize, body: Option<&[u8]>, gw_b: &str, core: &str) -> (Vec<u8>, Vec<u8>) {
        let (tid, mid) = (format!("t{i:05}"), format!("m{i}"));
        let build = |to: &str, from: &str| {
            match body {
                Some(b) => MsrpSend::new(&tid, to, from, &mid)
                    .body("text/plain", b)
                    .to_vec(),
                None => MsrpResponse::ok(&tid, to, from).to_vec(),
            }
            .expect("a valid frame")
        };
        (build(GW_A, UE), build(core, gw_b))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the frames, the outbound URIs' lengths and the staging room left, one call
        /// sized by `rewrite_input_len` never writes more than the room, and the calls together
        /// give exactly the rewritten stream.
        #[test]
        fn rewrite_chunks_fit_their_room_and_rewrite_exactly(
            // Mostly small bodiless frames (many heads per call: the growth bound matters),
            // some bodies with CR, LF and dashes (end-line candidates carried across calls).
            bodies in prop::collection::vec(
                prop::option::weighted(0.3, prop::collection::vec(
                    prop::sample::select(vec![b'a', b'\r', b'\n', b'-', b'x']), 0..3000)),
                1..200),
            core_len in 0usize..300,
            gw_len in 0usize..80,
            extra_rooms in prop::collection::vec(1usize..6000, 1..50),
        ) {
            let core = format!("msrp://10.0.0.3:2855/{};tcp", "c".repeat(core_len));
            let gw_b = format!("msrp://10.0.0.1:4000/{};tcp", "g".repeat(gw_len));
            let (mut input, mut want) = (Vec::new(), Vec::new());
            for (i, b) in bodies.iter().enumerate() {
                let (x, y) = frame(i, b.as_deref(), &gw_b, &core);
                input.extend(x);
                want.extend(y);
            }
            let inbound = LegPathsRef { local_uri: GW_A.as_bytes(), remote_path: UE.as_bytes() };
            let outbound = LegPathsRef { local_uri: gw_b.as_bytes(), remote_path: core.as_bytes() };
            let cfg = MsrpConfig::default();
            let mut parser = MsrpParser::new(cfg).with_header_events(false);
            let reserve = cfg.max_header_block + MSRP_CARRY_OUT + outbound.max_growth();
            let (mut got, mut pos, mut frames, mut k) = (Vec::new(), 0, 0, 0);
            while pos < input.len() {
                let room = reserve + MSRP_MIN_FRAME + extra_rooms[k % extra_rooms.len()];
                k += 1;
                let n = rewrite_input_len(room, cfg.max_header_block, outbound.max_growth())
                    .min(input.len() - pos);
                prop_assert!(n > 0);
                let mut out = vec![0u8; room];
                let r = rewrite_chunk(&mut parser, &input[pos..pos + n], inbound, outbound, &mut out);
                let Some((w, f)) = r else {
                    return Err(TestCaseError::fail(format!("call at {pos} of {n} bytes into {room}")));
                };
                got.extend_from_slice(&out[..w]);
                frames += f;
                pos += n;
            }
            prop_assert_eq!(frames as usize, bodies.len());
            prop_assert!(got == want, "rewritten stream differs");
        }
    }

    #[test]
    fn a_frame_for_someone_else_is_refused() {
        let (x, _) = frame(
            1,
            Some(b"hi"),
            "msrp://10.0.0.1:4000/g;tcp",
            "msrp://c/d;tcp",
        );
        let x = String::from_utf8(x)
            .unwrap()
            .replace("/gw;tcp", "/other;tcp");
        let inbound = LegPathsRef {
            local_uri: GW_A.as_bytes(),
            remote_path: UE.as_bytes(),
        };
        let outbound = LegPathsRef {
            local_uri: b"msrp://10.0.0.1:4000/g;tcp",
            remote_path: b"msrp://c/d;tcp",
        };
        let mut parser = MsrpParser::new(MsrpConfig::default());
        let mut out = vec![0u8; 8192];
        assert!(rewrite_chunk(&mut parser, x.as_bytes(), inbound, outbound, &mut out).is_none());
    }
}
