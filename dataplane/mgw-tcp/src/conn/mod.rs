//! The transmission control block and the RFC 9293 §3.10.7 segment-arrival procedure.
//!
//! Split by phase: `active_open` (SYN-SENT), `passive_open` (SYN-RECEIVED, cookies),
//! `established/` (sender, receiver, rto, congestion) and `close` (FIN states, TIME-WAIT). This
//! file owns the TCB layout and the checks that apply in every synchronized state (PAWS, sequence
//! acceptability, RST and SYN handling per RFC 5961).

pub(crate) mod active_open;
pub(crate) mod close;
pub mod established;
pub(crate) mod passive_open;

use crate::isn::FourTuple;
use crate::seq::SeqNumber;
use crate::state::State;
use crate::{Config, ConnId, Counters, Event, EventKind};
use established::congestion::{Congestion, CongestionAlgorithm};
use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address, TcpFlags, TcpOptions, TcpRepr};
use std::collections::VecDeque;

/// SACK scoreboard entries kept per connection.
pub(crate) const SCOREBOARD: usize = 6;
/// Out-of-order ranges kept per connection.
pub(crate) const OOO_RANGES: usize = 4;

/// TCB flag bits.
pub(crate) mod flag {
    pub const ACK_NOW: u32 = 1 << 0;
    pub const PASSIVE: u32 = 1 << 1;
    pub const FIN_QUEUED: u32 = 1 << 2;
    pub const RCV_FIN: u32 = 1 << 3;
    pub const TS_OK: u32 = 1 << 4;
    pub const SACK_OK: u32 = 1 << 5;
    pub const IN_RECOVERY: u32 = 1 << 6;
    pub const RTT_TIMING: u32 = 1 << 7;
    pub const QUEUED: u32 = 1 << 8;
    pub const WANT_WRITABLE: u32 = 1 << 9;
    pub const REXMIT_UNA: u32 = 1 << 10;
    pub const APP_GONE: u32 = 1 << 11;
    pub const PROBE: u32 = 1 << 12;
    pub const IN_BACKLOG: u32 = 1 << 13;
    pub const PEER_FIN: u32 = 1 << 14;
    pub const WS_OK: u32 = 1 << 15;
    pub const CLOSE_PENDING: u32 = 1 << 16;
    pub const UNDO: u32 = 1 << 17;
    /// The app released the connection (`Stack::release`): it finishes closing on its own,
    /// within `fin_wait2_timeout`/`close_timeout`.
    pub const ORPHAN: u32 = 1 << 18;
}

/// The fixed-capacity event queue (allocated once; a full queue counts and drops).
#[derive(Debug)]
pub(crate) struct EventQueue {
    q: VecDeque<Event>,
    cap: usize,
}

impl EventQueue {
    pub fn new(cap: usize) -> Self {
        EventQueue {
            q: VecDeque::with_capacity(cap),
            cap,
        }
    }
    pub fn push(&mut self, counters: &mut Counters, conn: ConnId, kind: EventKind) {
        if self.q.len() >= self.cap {
            counters.events_dropped += 1;
        } else {
            self.q.push_back(Event { conn, kind });
        }
    }
    pub fn pop(&mut self) -> Option<Event> {
        self.q.pop_front()
    }
}

/// What the caller (the stack) needs while a TCB processes something.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub counters: &'a mut Counters,
    pub events: &'a mut EventQueue,
    pub ooo_total: &'a mut u64,
    pub challenge: &'a mut ChallengeBudget,
    pub id: ConnId,
}

impl Ctx<'_> {
    pub fn event(&mut self, kind: EventKind) {
        self.events.push(self.counters, self.id, kind);
    }
}

/// Inserts `[l, r)` into a sorted list of disjoint ranges, merging overlapping and adjacent
/// ones. Returns false (and changes nothing) if the result would not fit.
pub(crate) fn insert_range<const N: usize>(
    ranges: &mut [(SeqNumber, SeqNumber); N],
    len: &mut u8,
    l: SeqNumber,
    r: SeqNumber,
) -> bool {
    let mut out = [(SeqNumber(0), SeqNumber(0)); 8];
    let mut n = 0usize;
    let (mut nl, mut nr) = (l, r);
    let mut placed = false;
    for &(bl, br) in &ranges[..usize::from(*len)] {
        if br < nl {
            out[n] = (bl, br);
            n += 1;
        } else if bl > nr {
            if !placed {
                out[n] = (nl, nr);
                n += 1;
                placed = true;
            }
            out[n] = (bl, br);
            n += 1;
        } else {
            nl = nl.min(bl);
            nr = nr.max(br);
        }
        if n >= 7 {
            return false;
        }
    }
    if !placed {
        out[n] = (nl, nr);
        n += 1;
    }
    if n > N {
        return false;
    }
    ranges[..n].copy_from_slice(&out[..n]);
    #[allow(clippy::cast_possible_truncation)]
    {
        *len = n as u8;
    }
    true
}

/// Total bytes in a range list.
pub(crate) fn ranges_bytes(ranges: &[(SeqNumber, SeqNumber)]) -> u32 {
    ranges.iter().map(|&(l, r)| r.since(l)).sum()
}

/// RFC 5961 §7: a per-worker budget of challenge ACKs per second.
#[derive(Debug, Default)]
pub(crate) struct ChallengeBudget {
    pub second: u64,
    pub used: u32,
}

/// What the stack must do after a TCB handled a segment or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Keep the TCB.
    Keep,
    /// Release the TCB (its events are already queued).
    Free,
    /// Keep the TCB and send `<SEQ=seq><CTL=RST>` (RFC 9293: unacceptable ACK in SYN states).
    KeepAndRst(u32),
    /// Send `<SEQ=SND.NXT><CTL=RST>` and release the TCB (abort, give-up).
    FreeAndRst,
}

/// What one outgoing segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegKind {
    Syn,
    New,
    Hole,
    Una,
    Probe,
    Ack,
}

/// A planned segment; `Stack` builds it with the payload borrowed from the send ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub seq: SeqNumber,
    pub len: u32,
    pub flags: TcpFlags,
    pub kind: SegKind,
    pub options: TcpOptions,
}

/// The transmission control block. Kept small: see `benches/mgwbench/src/bin/tcp_bench.rs` for its size.
#[derive(Debug, Clone)]
pub(crate) struct Tcb {
    pub tuple: FourTuple,
    pub hash: u32,
    pub generation: u32,
    pub listener: u32,
    pub state: State,
    pub flags: u32,

    // Send sequence space (RFC 9293 §3.3.1). `snd_max` is the highest sequence ever sent:
    // `snd_nxt` steps back to `snd_una` after a timeout (go-back-N), `snd_max` never does.
    pub iss: SeqNumber,
    pub snd_una: SeqNumber,
    pub snd_nxt: SeqNumber,
    pub snd_max: SeqNumber,
    pub snd_wl1: SeqNumber,
    pub snd_wl2: SeqNumber,
    pub snd_wnd: u32,
    pub max_snd_wnd: u32,
    pub snd_mss: u16,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    /// Send ring: `sbuf_len` bytes starting at ring offset `sbuf_head`, the first being sequence
    /// `sbuf_seq`.
    pub sbuf_head: u32,
    pub sbuf_len: u32,
    pub sbuf_seq: SeqNumber,

    // Receive sequence space.
    pub irs: SeqNumber,
    pub rcv_nxt: SeqNumber,
    /// Right edge of the window we advertised (never moves left: RFC 9293 §3.8.6.2.2).
    pub rcv_adv: SeqNumber,
    pub last_ack_sent: SeqNumber,
    pub rcv_fin: SeqNumber,
    /// Receive ring: `rbuf_len` in-order unread bytes starting at ring offset `rbuf_head`.
    pub rbuf_head: u32,
    pub rbuf_len: u32,
    /// Out-of-order ranges already written into the ring beyond `rcv_nxt`, sorted.
    pub ooo: [(SeqNumber, SeqNumber); OOO_RANGES],
    pub ooo_len: u8,
    pub ooo_bytes: u32,
    pub last_ooo: SeqNumber,

    // SACK scoreboard (RFC 6675): ranges above snd_una the peer holds, sorted.
    pub sacked: [(SeqNumber, SeqNumber); SCOREBOARD],
    pub sacked_len: u8,
    pub dupacks: u8,
    /// Duplicate ACKs that mean loss (RFC 5681's DupThresh, raised when reordering is seen).
    pub dupthresh: u8,
    /// Eifel undo state (RFC 3522): cwnd/ssthresh before the last fast retransmit and the TSval
    /// the retransmission carried.
    pub undo_cwnd: u32,
    pub undo_ssthresh: u32,
    pub retrans_ts: u32,
    pub recover: SeqNumber,
    pub high_rxt: SeqNumber,

    // RTT (RFC 6298), microseconds.
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub rto_us: u32,
    pub retries: u8,
    pub probes: u8,
    pub persist_backoff: u8,
    /// Zero-window probes sent since the peer's window was last open or data last acked
    /// (bounded by `Config::max_persist_probes`).
    pub zwp_probes: u8,
    pub segs_unacked: u8,
    pub quickack: u16,
    pub rtt_seq: SeqNumber,
    pub rtt_start: Instant,

    // Timestamps (RFC 7323).
    pub ts_recent: u32,
    pub ts_offset: u32,

    pub cc: Congestion,

    // Timers; `Instant::FAR_FUTURE` = off.
    pub rto_at: Instant,
    pub delack_at: Instant,
    pub persist_at: Instant,
    pub keepalive_at: Instant,
    pub timewait_at: Instant,
    /// An orphan's close deadline: `close_timeout` after `Stack::release`, brought forward to
    /// `fin_wait2_timeout` in FIN-WAIT-2; off in TIME-WAIT (which has its own).
    pub close_at: Instant,
    /// An active open gives up here (`Config::connect_timeout`).
    pub connect_at: Instant,
}

impl Tcb {
    /// A free slot.
    pub fn empty() -> Self {
        let unspec = IpAddress::V4(Ipv4Address::UNSPECIFIED);
        Tcb {
            tuple: FourTuple {
                local_addr: unspec,
                local_port: 0,
                remote_addr: unspec,
                remote_port: 0,
            },
            hash: 0,
            generation: 0,
            listener: u32::MAX,
            state: State::Closed,
            flags: 0,
            iss: SeqNumber(0),
            snd_una: SeqNumber(0),
            snd_nxt: SeqNumber(0),
            snd_max: SeqNumber(0),
            snd_wl1: SeqNumber(0),
            snd_wl2: SeqNumber(0),
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_mss: 536,
            snd_wscale: 0,
            rcv_wscale: 0,
            sbuf_head: 0,
            sbuf_len: 0,
            sbuf_seq: SeqNumber(0),
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            last_ack_sent: SeqNumber(0),
            rcv_fin: SeqNumber(0),
            rbuf_head: 0,
            rbuf_len: 0,
            ooo: [(SeqNumber(0), SeqNumber(0)); OOO_RANGES],
            ooo_len: 0,
            ooo_bytes: 0,
            last_ooo: SeqNumber(0),
            sacked: [(SeqNumber(0), SeqNumber(0)); SCOREBOARD],
            sacked_len: 0,
            dupacks: 0,
            dupthresh: 3,
            undo_cwnd: 0,
            undo_ssthresh: 0,
            retrans_ts: 0,
            recover: SeqNumber(0),
            high_rxt: SeqNumber(0),
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: 1_000_000,
            retries: 0,
            probes: 0,
            persist_backoff: 0,
            zwp_probes: 0,
            segs_unacked: 0,
            quickack: 0,
            rtt_seq: SeqNumber(0),
            rtt_start: Instant::ZERO,
            ts_recent: 0,
            ts_offset: 0,
            cc: Congestion::new(CongestionAlgorithm::Cubic, 536),
            rto_at: Instant::FAR_FUTURE,
            delack_at: Instant::FAR_FUTURE,
            persist_at: Instant::FAR_FUTURE,
            keepalive_at: Instant::FAR_FUTURE,
            timewait_at: Instant::FAR_FUTURE,
            close_at: Instant::FAR_FUTURE,
            connect_at: Instant::FAR_FUTURE,
        }
    }

    /// Resets the slot for a new connection (keeps the generation, which the stack bumps).
    pub fn init(&mut self, cfg: &Config, tuple: FourTuple, hash: u32, iss: u32, ts_offset: u32) {
        let generation = self.generation;
        *self = Tcb::empty();
        self.generation = generation;
        self.tuple = tuple;
        self.hash = hash;
        self.iss = SeqNumber(iss);
        self.snd_una = self.iss;
        self.snd_nxt = self.iss;
        self.snd_max = self.iss;
        self.sbuf_seq = self.iss + 1;
        self.recover = self.iss;
        self.high_rxt = self.iss;
        self.ts_offset = ts_offset;
        self.rto_us = duration_us(cfg.initial_rto);
        self.quickack = cfg.quickack_segments;
        self.snd_mss = cfg.mss_for(tuple.local_addr).min(536);
        self.cc = Congestion::new(cfg.congestion, u32::from(self.snd_mss));
    }

    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }
    pub fn set(&mut self, f: u32) {
        self.flags |= f;
    }
    pub fn clear(&mut self, f: u32) {
        self.flags &= !f;
    }

    /// The earliest of this TCB's timers.
    pub fn deadline(&self) -> Instant {
        self.rto_at
            .min(self.delack_at)
            .min(self.persist_at)
            .min(self.keepalive_at)
            .min(self.timewait_at)
            .min(self.close_at)
            .min(self.connect_at)
    }

    /// Our TSval: milliseconds from `now`, offset per connection (RFC 7323 §5.4).
    pub fn ts_val(&self, now: Instant) -> u32 {
        #[allow(clippy::cast_possible_truncation)]
        let ms = now.as_millis() as u32;
        ms.wrapping_add(self.ts_offset)
    }

    /// Sequence number one past the last byte the application queued.
    pub fn data_end(&self) -> SeqNumber {
        self.sbuf_seq + self.sbuf_len
    }

    /// Our FIN's sequence number (meaningful once FIN_QUEUED).
    pub fn fin_seq(&self) -> SeqNumber {
        self.data_end()
    }

    /// True once our FIN has been sent and acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.has(flag::FIN_QUEUED) && self.snd_una == self.fin_seq() + 1
    }

    /// Effective MSS for a segment carrying `options` (RFC 6691: options come out of the MSS).
    pub fn mss_for(&self, options: &TcpOptions) -> u32 {
        let o = u32::try_from(options.len()).unwrap_or(40);
        u32::from(self.snd_mss).saturating_sub(o).max(1)
    }

    /// The congestion-control MSS (payload of a full segment with the usual options).
    pub fn smss(&self) -> u32 {
        let ts = if self.has(flag::TS_OK) { 12 } else { 0 };
        u32::from(self.snd_mss).saturating_sub(ts).max(1)
    }

    /// Queues an immediate ACK.
    pub fn ack_now(&mut self) {
        self.set(flag::ACK_NOW);
    }

    /// RFC 5961 §7: a challenge ACK, if the worker's budget for this second allows.
    pub fn challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        let sec = ctx.now.as_millis() / 1000;
        if ctx.challenge.second != sec {
            ctx.challenge.second = sec;
            ctx.challenge.used = 0;
        }
        if ctx.challenge.used < ctx.cfg.challenge_ack_limit {
            ctx.challenge.used += 1;
            ctx.counters.challenge_acks += 1;
            self.ack_now();
        } else {
            ctx.counters.challenge_acks_suppressed += 1;
        }
    }

    /// Moves to a new state; leaving SYN-RECEIVED frees a backlog place (the stack counts them).
    pub fn set_state(&mut self, s: State) {
        self.state = s;
    }

    /// RFC 9293 §3.10.7.4, for every state but SYN-SENT (and the stateless ones the stack
    /// handles). `rcap` is the receive ring size.
    pub fn on_segment(
        &mut self,
        ctx: &mut Ctx<'_>,
        seg: &TcpRepr<'_>,
        rbuf: &mut [u8],
    ) -> Disposition {
        if self.state == State::SynSent {
            return self.on_segment_syn_sent(ctx, seg);
        }
        let mut seq = SeqNumber(seg.seq);
        let mut flags = seg.flags;
        let mut payload = seg.payload;

        // Simultaneous open and retransmitted SYNs in SYN-RECEIVED: a SYN carrying the peer's
        // ISN again is its retransmission (or, with an acceptable ACK, its SYN-ACK).
        if self.state == State::SynReceived
            && flags.contains(TcpFlags::SYN)
            && seq == self.irs
            && !flags.contains(TcpFlags::RST)
        {
            let ack = SeqNumber(seg.ack);
            if flags.contains(TcpFlags::ACK) && self.snd_una < ack && ack <= self.snd_max {
                seq = seq + 1;
                flags = flags.without(TcpFlags::SYN);
            } else {
                // Our SYN-ACK was lost: send it again.
                self.snd_nxt = self.iss;
                return Disposition::Keep;
            }
        }

        // RFC 7323 §5.3 PAWS: R1-R3 before the sequence check.
        if self.has(flag::TS_OK) && !flags.contains(TcpFlags::RST) {
            if let Some((tsval, _)) = seg.options.timestamps {
                #[allow(clippy::cast_possible_wrap)]
                let older = (tsval.wrapping_sub(self.ts_recent) as i32) < 0;
                if older {
                    ctx.counters.dropped_paws += 1;
                    self.ack_now();
                    return Disposition::Keep;
                }
            }
        }

        // First: is the segment acceptable (RFC 9293 §3.10.7.4 table)?
        let seg_len = u32::try_from(payload.len()).unwrap_or(u32::MAX)
            + u32::from(flags.contains(TcpFlags::SYN))
            + u32::from(flags.contains(TcpFlags::FIN));
        let wnd = self.rcv_space(ctx.cfg);
        let in_window = |s: SeqNumber| self.rcv_nxt <= s && s < self.rcv_nxt + wnd;
        let acceptable = if seg_len == 0 {
            if wnd == 0 {
                seq == self.rcv_nxt
            } else {
                in_window(seq)
            }
        } else if wnd == 0 {
            false
        } else {
            in_window(seq) || in_window(seq + (seg_len - 1))
        };
        if !acceptable {
            // A zero window still takes ACKs and RSTs (RFC 9293 §3.10.7.4): strip the text.
            if wnd == 0 && seq == self.rcv_nxt {
                // ...and answer, as to any unacceptable segment (this is how a zero-window
                // probe carrying data learns the window).
                self.ack_now();
                payload = &[];
                flags = flags.without(TcpFlags::FIN);
            } else {
                if !flags.contains(TcpFlags::RST) {
                    ctx.counters.dropped_out_of_window += 1;
                    self.ack_now();
                    if self.state == State::TimeWait {
                        // RFC 9293 §3.10.7.4: a retransmitted FIN restarts the 2 MSL wait.
                        self.timewait_at = ctx.now + ctx.cfg.time_wait;
                    }
                } else {
                    ctx.counters.dropped_out_of_window += 1;
                }
                return Disposition::Keep;
            }
        }

        // RFC 7323 §4.3: remember the newest TSval of a segment that covers Last.ACK.sent.
        if self.has(flag::TS_OK) {
            if let Some((tsval, _)) = seg.options.timestamps {
                if seq <= self.last_ack_sent {
                    self.ts_recent = tsval;
                }
            }
        }

        // Second: RST (RFC 5961 §3.2: only an exact match resets; in-window gets a challenge).
        if flags.contains(TcpFlags::RST) {
            ctx.counters.rst_in += 1;
            if seq != self.rcv_nxt {
                self.challenge_ack(ctx);
                return Disposition::Keep;
            }
            return self.on_reset(ctx);
        }

        // Fourth: SYN in a synchronized state → challenge ACK (RFC 5961 §4.2).
        if flags.contains(TcpFlags::SYN) {
            self.challenge_ack(ctx);
            return Disposition::Keep;
        }

        // Fifth: ACK.
        if !flags.contains(TcpFlags::ACK) {
            ctx.counters.dropped_no_ack += 1;
            return Disposition::Keep;
        }
        if self.state == State::SynReceived {
            let ack = SeqNumber(seg.ack);
            if ack <= self.snd_una || ack > self.snd_max {
                return Disposition::KeepAndRst(seg.ack);
            }
            self.established_from_syn_received(ctx, seg);
        }
        if self.state == State::TimeWait {
            // Only a retransmitted FIN can be new here; acknowledge it and restart 2 MSL.
            if flags.contains(TcpFlags::FIN) {
                self.ack_now();
                self.timewait_at = ctx.now + ctx.cfg.time_wait;
            }
            return Disposition::Keep;
        }
        if !self.on_ack(ctx, seg, seq) {
            return Disposition::Keep;
        }
        if let Some(d) = self.after_ack_state_change(ctx) {
            return d;
        }

        // Seventh: segment text.
        if self.has(flag::ORPHAN)
            && !payload.is_empty()
            && seq + u32::try_from(payload.len()).unwrap_or(u32::MAX) > self.rcv_nxt
        {
            // RFC 1122 §4.2.2.13: new data after a full close has no reader: reset, so the
            // peer learns it was lost (as Linux does for an orphan).
            return Disposition::FreeAndRst;
        }
        if !payload.is_empty() {
            if self.state.can_receive() {
                self.receive_data(ctx, seq, payload, flags.contains(TcpFlags::FIN), rbuf);
            } else {
                // Data after the peer's FIN: a retransmission; acknowledge it.
                self.ack_now();
            }
        }

        // Eighth: FIN.
        if flags.contains(TcpFlags::FIN) {
            let fin_seq = seq + u32::try_from(payload.len()).unwrap_or(0);
            self.on_fin(ctx, fin_seq);
        }
        if self.has(flag::RCV_FIN) && self.rcv_nxt == self.rcv_fin {
            self.clear(flag::RCV_FIN);
            self.process_fin(ctx);
        }
        Disposition::Keep
    }

    /// An acceptable RST (RFC 9293 §3.10.7.4 second check, by state).
    fn on_reset(&mut self, ctx: &mut Ctx<'_>) -> Disposition {
        match self.state {
            // RFC 1337: ignore RST in TIME-WAIT (TIME-WAIT assassination).
            State::TimeWait => Disposition::Keep,
            State::SynReceived if self.has(flag::PASSIVE) => {
                // Return to LISTEN: the listener still stands; just forget this attempt.
                Disposition::Free
            }
            State::SynReceived => {
                ctx.event(EventKind::ConnectFailed {
                    reason: crate::ConnectFailure::Refused,
                });
                Disposition::Free
            }
            State::Closing | State::LastAck => {
                if !self.has(flag::APP_GONE) {
                    ctx.event(EventKind::Closed);
                }
                Disposition::Free
            }
            _ => {
                if !self.has(flag::APP_GONE) {
                    ctx.event(EventKind::Reset);
                }
                Disposition::Free
            }
        }
    }

    /// Free space in the receive ring: what may be stored beyond `rcv_nxt`.
    pub fn rcv_space(&self, cfg: &Config) -> u32 {
        cfg.recv_buffer.saturating_sub(self.rbuf_len)
    }

    /// The window we may offer: ring space minus the slack that window-scale rounding needs.
    pub fn rcv_window_capacity(&self, cfg: &Config) -> u32 {
        if self.has(flag::WS_OK) {
            cfg.recv_buffer.saturating_sub(1 << self.rcv_wscale)
        } else {
            cfg.recv_buffer.min(65_535)
        }
    }

    /// Computes the window field for an outgoing segment and moves `rcv_adv`.
    pub fn window_field(&mut self, cfg: &Config, syn: bool) -> u16 {
        let cap = self.rcv_window_capacity(cfg);
        let free = cap.saturating_sub(self.rbuf_len);
        // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): only move the edge by a useful amount.
        let threshold = (cap / 2).min(u32::from(cfg.mss));
        let candidate = self.rcv_nxt + free;
        if candidate > self.rcv_adv && candidate.since(self.rcv_adv) >= threshold {
            self.rcv_adv = candidate;
        }
        if self.rcv_adv < self.rcv_nxt {
            self.rcv_adv = self.rcv_nxt;
        }
        let win = self.rcv_adv.since(self.rcv_nxt);
        if syn {
            // RFC 7323 §2.2: the window in a SYN is never scaled.
            return u16::try_from(win).unwrap_or(u16::MAX);
        }
        let shift = if self.has(flag::WS_OK) {
            self.rcv_wscale
        } else {
            0
        };
        let field = win.div_ceil(1 << shift);
        u16::try_from(field).unwrap_or(u16::MAX)
    }

    /// Our window-scale shift for a receive ring of `cap` bytes (RFC 7323 §2.3, at most 14).
    pub fn wscale_for(cap: u32) -> u8 {
        let mut s = 0u8;
        while s < 14 && (cap >> s) > 65_535 {
            s += 1;
        }
        s
    }

    /// Timestamps option for an outgoing segment.
    pub fn ts_option(&self, now: Instant) -> Option<(u32, u32)> {
        self.has(flag::TS_OK)
            .then(|| (self.ts_val(now), self.ts_recent))
    }
}

/// A duration in microseconds, saturating.
pub(crate) fn duration_us(d: core::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
