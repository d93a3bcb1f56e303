//! The sending half: ACK processing, the SACK scoreboard, fast retransmit and recovery
//! (RFC 5681, RFC 6582 NewReno, RFC 6675 SACK-based recovery), and choosing the next segment.

use crate::conn::{flag, insert_range, ranges_bytes, Ctx, Plan, SegKind, Tcb, SCOREBOARD};
use crate::seq::SeqNumber;
use crate::state::State;
use crate::{Config, EventKind};
use mgw_core::time::Instant;
use mgw_core::wire::{TcpFlags, TcpOptions, TcpRepr};

/// The highest DupThresh reordering may raise a connection's to.
const MAX_DUP_THRESH: u8 = 15;

impl Tcb {
    /// RFC 9293 §3.10.7.4 fifth check for the synchronized states. Returns false when the
    /// segment must be dropped here.
    pub fn on_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, seq: SeqNumber) -> bool {
        let ack = SeqNumber(seg.ack);
        if ack > self.snd_max {
            // Acknowledges something not yet sent: send an ACK, drop the segment.
            self.ack_now();
            return false;
        }
        // RFC 5961 §5.2: an ACK older than the largest window the peer has offered is forged or
        // ancient; challenge it.
        if ack < self.snd_una - self.max_snd_wnd.max(1) {
            self.challenge_ack(ctx);
            return false;
        }
        if self.has(flag::SACK_OK) && seg.options.sack_len > 0 {
            self.update_scoreboard(seg.options.sack());
        }
        let window = u32::from(seg.window) << self.snd_wscale;
        let smss = self.smss();
        if ack > self.snd_una {
            let acked = ack.since(self.snd_una);
            let mut data_acked = 0;
            if ack > self.sbuf_seq {
                data_acked = ack.since(self.sbuf_seq).min(self.sbuf_len);
                self.sbuf_head = (self.sbuf_head + data_acked) % ctx.cfg.send_buffer.max(1);
                self.sbuf_len -= data_acked;
                self.sbuf_seq = self.sbuf_seq + data_acked;
            }
            // RFC 6298 §3 with Karn's algorithm: only the timed, never-retransmitted segment.
            if self.has(flag::RTT_TIMING) && ack >= self.rtt_seq {
                self.rtt_sample(ctx.cfg, ctx.now.saturating_duration_since(self.rtt_start));
                self.clear(flag::RTT_TIMING);
            }
            self.snd_una = ack;
            if self.snd_nxt < ack {
                self.snd_nxt = ack;
            }
            if self.high_rxt < ack {
                self.high_rxt = ack;
            }
            self.prune_scoreboard();
            self.retries = 0;
            self.persist_backoff = 0;
            self.zwp_probes = 0;
            if self.has(flag::UNDO) {
                self.clear(flag::UNDO);
                // RFC 3522 Eifel detection: the first new ACK after a fast retransmit echoes a
                // TSval older than the retransmission's, so the original arrived: the
                // "loss" was reordering. Undo the reduction and expect more reordering.
                if let Some((_, ecr)) = seg.options.timestamps {
                    #[allow(clippy::cast_possible_wrap)]
                    if (ecr.wrapping_sub(self.retrans_ts) as i32) < 0 {
                        self.cc.cwnd = self.cc.cwnd.max(self.undo_cwnd);
                        self.cc.ssthresh = self.undo_ssthresh;
                        self.clear(flag::IN_RECOVERY | flag::REXMIT_UNA);
                        self.dupthresh = (self.dupthresh + 1).min(MAX_DUP_THRESH);
                        ctx.counters.spurious_retransmits += 1;
                    }
                }
            }
            if self.has(flag::IN_RECOVERY) {
                if ack >= self.recover {
                    // Full acknowledgment: leave recovery (RFC 6582 §3.2 step 3; RFC 6675 §5).
                    self.clear(flag::IN_RECOVERY | flag::REXMIT_UNA);
                    let flight = self.snd_max.since(self.snd_una);
                    self.cc.cwnd = if self.has(flag::SACK_OK) {
                        self.cc.ssthresh
                    } else {
                        self.cc.ssthresh.min(flight.max(smss) + smss)
                    };
                } else {
                    // Partial acknowledgment.
                    if !self.has(flag::SACK_OK) {
                        // RFC 6582 §3.2 step 3: retransmit the next hole, deflate.
                        self.set(flag::REXMIT_UNA);
                        self.cc.cwnd = self.cc.cwnd.saturating_sub(acked).max(smss) + smss;
                    }
                    self.rto_at = ctx.now + self.rto_eff(ctx.cfg);
                }
            } else {
                self.cc.on_ack(acked, smss, ctx.now, self.srtt_us);
            }
            self.dupacks = 0;
            self.rto_at = if self.snd_una == self.snd_max {
                Instant::FAR_FUTURE
            } else {
                ctx.now + self.rto_eff(ctx.cfg)
            };
            if data_acked > 0 && self.has(flag::WANT_WRITABLE) && !self.has(flag::APP_GONE) {
                self.clear(flag::WANT_WRITABLE);
                ctx.event(EventKind::Writable);
            }
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.intersects(TcpFlags::SYN.with(TcpFlags::FIN))
            && window == self.snd_wnd
            && self.snd_max > self.snd_una
        {
            // RFC 5681 §2 duplicate ACK.
            self.dupacks = self.dupacks.saturating_add(1);
            if self.has(flag::IN_RECOVERY) {
                if !self.has(flag::SACK_OK) {
                    // RFC 6582 §3.2 step 4: inflate by one segment per duplicate.
                    self.cc.cwnd = self.cc.cwnd.saturating_add(smss);
                }
            } else if (self.dupacks >= self.dupthresh && self.snd_una >= self.recover)
                || (self.has(flag::SACK_OK)
                    && self.sacked_bytes() >= u32::from(self.dupthresh) * smss)
            {
                // RFC 6582 §3.2 gates dupack-triggered recovery on `recover` so that the
                // duplicates a go-back retransmission provokes do not trigger it. SACK evidence
                // is different: the scoreboard was cleared at the timeout, so SACKed octets above
                // snd_una mean a retransmission was lost again; waiting for another timeout
                // would only stall.
                self.enter_recovery(ctx);
            }
        }
        // Window update (RFC 9293 §3.10.7.4: SND.WL1 < SEG.SEQ, or equal and SND.WL2 =< SEG.ACK).
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.snd_wnd = window;
            if window > 0 {
                self.zwp_probes = 0;
            }
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
        }
        true
    }

    fn enter_recovery(&mut self, ctx: &mut Ctx<'_>) {
        let smss = self.smss();
        let flight = self.snd_max.since(self.snd_una);
        self.recover = self.snd_max;
        if self.has(flag::TS_OK) {
            self.set(flag::UNDO);
            self.undo_cwnd = self.cc.cwnd;
            self.undo_ssthresh = self.cc.ssthresh;
            self.retrans_ts = self.ts_val(ctx.now);
        }
        self.cc.on_loss(flight, smss);
        if self.has(flag::SACK_OK) {
            // RFC 6675 §5 step 4.2: cwnd = ssthresh; the pipe decides what may be sent.
            self.cc.cwnd = self.cc.ssthresh;
            self.high_rxt = self.snd_una;
        } else {
            // RFC 6582 §3.2 step 2.
            self.cc.cwnd = self.cc.ssthresh + 3 * smss;
        }
        // Both: retransmit the first unacknowledged segment now.
        self.set(flag::IN_RECOVERY | flag::REXMIT_UNA);
        self.clear(flag::RTT_TIMING);
        ctx.counters.fast_retransmits += 1;
    }

    fn update_scoreboard(&mut self, blocks: &[(u32, u32)]) {
        for &(l, r) in blocks {
            let (l, r) = (SeqNumber(l), SeqNumber(r));
            // Ignore D-SACKs and blocks outside what is outstanding (RFC 2018 §5, RFC 6675 §4).
            if l >= r || r <= self.snd_una || r > self.snd_max {
                continue;
            }
            let l = l.max(self.snd_una);
            // A full scoreboard loses the new block; recovery still progresses via RTO.
            let _ = insert_range::<SCOREBOARD>(&mut self.sacked, &mut self.sacked_len, l, r);
        }
    }

    fn prune_scoreboard(&mut self) {
        let mut keep = 0usize;
        for i in 0..usize::from(self.sacked_len) {
            let (l, r) = self.sacked[i];
            if r > self.snd_una {
                self.sacked[keep] = (l.max(self.snd_una), r);
                keep += 1;
            }
        }
        #[allow(clippy::cast_possible_truncation)]
        {
            self.sacked_len = keep as u8;
        }
    }

    pub fn sacked_bytes(&self) -> u32 {
        ranges_bytes(&self.sacked[..usize::from(self.sacked_len)])
    }

    /// RFC 6675 §4 NextSeg() rule 1, simplified: the first un-SACKed range at or above
    /// HighRxt and below the highest SACKed sequence is presumed lost.
    fn next_hole(&self) -> Option<(SeqNumber, u32)> {
        let mut start = self.high_rxt.max(self.snd_una);
        for &(l, r) in &self.sacked[..usize::from(self.sacked_len)] {
            if r <= start {
                continue;
            }
            if start < l {
                return Some((start, l.since(start)));
            }
            start = r;
        }
        None
    }

    /// RFC 6675 §4 SetPipe(): outstanding octets, less SACKed ones, less those presumed lost and
    /// not yet retransmitted.
    pub fn pipe(&self) -> u32 {
        let out = self.snd_max.since(self.snd_una);
        let sacked = self.sacked_bytes();
        let mut lost = 0u32;
        let mut start = self.high_rxt.max(self.snd_una);
        for &(l, r) in &self.sacked[..usize::from(self.sacked_len)] {
            if r <= start {
                continue;
            }
            if start < l {
                lost += l.since(start);
            }
            start = r;
        }
        out.saturating_sub(sacked).saturating_sub(lost)
    }

    /// The application queues data; returns how much fit in the send ring.
    pub fn app_send(&mut self, sbuf: &mut [u8], data: &[u8]) -> usize {
        let cap = u32::try_from(sbuf.len()).unwrap_or(0);
        let free = cap - self.sbuf_len;
        let n = u32::try_from(data.len()).unwrap_or(u32::MAX).min(free);
        if n > 0 {
            let pos = (self.sbuf_head + self.sbuf_len) as usize;
            super::receiver::ring_write(sbuf, pos, &data[..n as usize]);
            self.sbuf_len += n;
        }
        if (n as usize) < data.len() {
            self.set(flag::WANT_WRITABLE);
        }
        n as usize
    }

    /// Bytes of options on a non-SYN segment: timestamps, then as many SACK blocks as fit
    /// (the same arithmetic as `TcpOptions::len`, without building the options).
    pub fn data_options_len(&self) -> u32 {
        let ts = if self.has(flag::TS_OK) { 12 } else { 0 };
        let blocks = if self.has(flag::SACK_OK) {
            u32::from(self.ooo_len)
        } else {
            0
        };
        if blocks == 0 {
            return ts;
        }
        let room = 40 - ts;
        let fit = if room < 12 {
            0
        } else {
            ((room - 4) / 8).min(blocks)
        };
        ts + if fit > 0 { 4 + 8 * fit } else { 0 }
    }

    /// A data (or FIN) segment starting at `seq`, at most `max` octets of data.
    fn data_plan(
        &self,
        cfg: &Config,
        now: Instant,
        seq: SeqNumber,
        max: u32,
        kind: SegKind,
    ) -> Option<Plan> {
        let data_end = self.data_end();
        // A retransmission resends only what was sent before: it must never carry new octets
        // (or a FIN) past snd_max, since commit() would not account for them.
        let (end, fin_ok) = if kind == SegKind::New {
            (data_end, true)
        } else {
            (data_end.min(self.snd_max), self.snd_max > data_end)
        };
        let avail = if seq < end { end.since(seq) } else { 0 };
        let off = seq.since(self.sbuf_seq);
        let pos = (self.sbuf_head + off) % cfg.send_buffer.max(1);
        let contiguous = cfg.send_buffer - pos;
        // The options are only built once a segment is certain (this is the hot path).
        let mss = u32::from(self.snd_mss)
            .saturating_sub(self.data_options_len())
            .max(1);
        let len = avail.min(max).min(mss).min(contiguous);
        let fin = self.has(flag::FIN_QUEUED) && fin_ok && seq + len == data_end && avail == len;
        if len == 0 && !fin {
            return None;
        }
        let mut flags = TcpFlags::ACK;
        if fin {
            flags = flags.with(TcpFlags::FIN);
        }
        if len > 0 && seq + len == data_end {
            flags = flags.with(TcpFlags::PSH);
        }
        let mut options = TcpOptions {
            timestamps: self.ts_option(now),
            ..TcpOptions::default()
        };
        self.add_sack_blocks(&mut options);
        debug_assert_eq!(options.len() as u32, self.data_options_len());
        Some(Plan {
            seq,
            len,
            flags,
            kind,
            options,
        })
    }

    fn ack_plan(&self, now: Instant, seq: SeqNumber, kind: SegKind) -> Plan {
        let mut options = TcpOptions {
            timestamps: self.ts_option(now),
            ..TcpOptions::default()
        };
        self.add_sack_blocks(&mut options);
        Plan {
            seq,
            len: 0,
            flags: TcpFlags::ACK,
            kind,
            options,
        }
    }

    /// The next segment this connection should send, if any (nothing is changed until
    /// [`Tcb::commit`], so a sink that refuses costs nothing).
    pub fn plan(&self, cfg: &Config, now: Instant) -> Option<Plan> {
        match self.state {
            State::Closed | State::Listen => return None,
            State::SynSent | State::SynReceived => {
                if self.snd_nxt == self.iss {
                    let flags = if self.state == State::SynSent {
                        TcpFlags::SYN
                    } else {
                        TcpFlags::SYN.with(TcpFlags::ACK)
                    };
                    return Some(Plan {
                        seq: self.iss,
                        len: 0,
                        flags,
                        kind: SegKind::Syn,
                        options: self.syn_options(cfg, now),
                    });
                }
                if self.state == State::SynReceived && self.has(flag::ACK_NOW) {
                    return Some(self.ack_plan(now, self.snd_max, SegKind::Ack));
                }
                return None;
            }
            State::TimeWait => {
                return self
                    .has(flag::ACK_NOW)
                    .then(|| self.ack_plan(now, self.snd_max, SegKind::Ack));
            }
            _ => {}
        }
        // Fast exit for the common ACK-only case: nothing new, nothing to repeat, no ACK owed.
        if self.flags & (flag::ACK_NOW | flag::PROBE | flag::REXMIT_UNA | flag::IN_RECOVERY) == 0
            && self.snd_nxt == self.data_end()
            && !self.has(flag::FIN_QUEUED)
        {
            return None;
        }
        let smss = self.smss();
        // Retransmission of the first unacknowledged segment (fast retransmit, NewReno partial ACK).
        if self.has(flag::REXMIT_UNA) {
            if let Some(p) = self.data_plan(cfg, now, self.snd_una, smss, SegKind::Una) {
                return Some(p);
            }
        }
        let sack_recovery = self.has(flag::IN_RECOVERY) && self.has(flag::SACK_OK);
        let flight = if sack_recovery {
            self.pipe()
        } else {
            self.snd_nxt.since(self.snd_una)
        };
        // RFC 3042 limited transmit: the first two duplicate ACKs each let one new segment out
        // beyond cwnd, so that a small window still produces the three duplicates fast
        // retransmit needs instead of waiting for a timeout.
        let limited = if self.has(flag::IN_RECOVERY) {
            0
        } else {
            u32::from(self.dupacks.min(2)) * smss
        };
        let cwnd_allow = (self.cc.cwnd + limited).saturating_sub(flight);
        if sack_recovery && cwnd_allow >= smss {
            if let Some((hole, len)) = self.next_hole() {
                if let Some(p) = self.data_plan(cfg, now, hole, len, SegKind::Hole) {
                    return Some(p);
                }
            }
        }
        // New data, or going back over data after a timeout.
        let s = self.snd_nxt;
        let edge = self.snd_wl2 + self.snd_wnd;
        let wnd_allow = if edge > s { edge.since(s) } else { 0 };
        let allow = wnd_allow.min(cwnd_allow);
        let data_end = self.data_end();
        let avail = if s < data_end { data_end.since(s) } else { 0 };
        if avail > 0 && allow > 0 {
            if let Some(p) = self.data_plan(cfg, now, s, allow, SegKind::New) {
                // A segment cut short at the send ring's wrap point counts as full: the rest
                // follows at once from the ring's start.
                let pos = (self.sbuf_head + s.since(self.sbuf_seq)) % cfg.send_buffer.max(1);
                let full = p.len >= self.mss_for(&p.options) || p.len == cfg.send_buffer - pos;
                let all = s + p.len == data_end;
                // Sender SWS avoidance (RFC 9293 §3.8.6.2.1) and Nagle (§3.7.4): with data in
                // flight, hold back a small segment; the next ACK releases it.
                let sws_wait = !full && !all && flight > 0 && p.len * 2 < self.max_snd_wnd;
                let nagle_wait = cfg.nagle && !full && flight > 0;
                if !(sws_wait || nagle_wait) {
                    return Some(p);
                }
            }
        } else if avail == 0 && self.has(flag::FIN_QUEUED) && s == data_end {
            // A lone FIN (the window does not limit it).
            if let Some(p) = self.data_plan(cfg, now, s, 0, SegKind::New) {
                return Some(p);
            }
        }
        if self.has(flag::PROBE) {
            // Zero-window and keepalive probes: an old sequence number makes the peer answer
            // with an ACK that carries its current window (as Linux does).
            return Some(self.ack_plan(now, self.snd_una - 1, SegKind::Probe));
        }
        if self.has(flag::ACK_NOW) {
            return Some(self.ack_plan(now, self.snd_max, SegKind::Ack));
        }
        None
    }

    /// Records that `p` went out.
    pub fn commit(&mut self, cfg: &Config, now: Instant, p: &Plan) {
        let fin = u32::from(p.flags.contains(TcpFlags::FIN));
        let end = p.seq + p.len + fin;
        match p.kind {
            SegKind::Syn => {
                if self.snd_max == self.iss {
                    self.set(flag::RTT_TIMING);
                    self.rtt_seq = self.iss + 1;
                    self.rtt_start = now;
                } else {
                    self.clear(flag::RTT_TIMING);
                }
                self.snd_nxt = self.iss + 1;
                self.snd_max = self.snd_max.max(self.snd_nxt);
                if self.rto_at == Instant::FAR_FUTURE {
                    self.rto_at = now + self.rto_eff(cfg);
                }
            }
            SegKind::New => {
                if p.seq < self.snd_max {
                    if self.has(flag::RTT_TIMING) && p.seq < self.rtt_seq {
                        self.clear(flag::RTT_TIMING);
                    }
                } else if !self.has(flag::RTT_TIMING) && p.len > 0 {
                    self.set(flag::RTT_TIMING);
                    self.rtt_seq = end;
                    self.rtt_start = now;
                }
                self.snd_nxt = end;
                self.snd_max = self.snd_max.max(end);
                if self.rto_at == Instant::FAR_FUTURE && end != p.seq {
                    self.rto_at = now + self.rto_eff(cfg);
                }
                self.persist_at = Instant::FAR_FUTURE;
            }
            SegKind::Hole | SegKind::Una => {
                self.high_rxt = self.high_rxt.max(end);
                if p.kind == SegKind::Una {
                    self.clear(flag::REXMIT_UNA);
                }
                if self.has(flag::RTT_TIMING) && p.seq < self.rtt_seq {
                    self.clear(flag::RTT_TIMING);
                }
                if self.rto_at == Instant::FAR_FUTURE {
                    self.rto_at = now + self.rto_eff(cfg);
                }
            }
            SegKind::Probe => self.clear(flag::PROBE),
            SegKind::Ack => {}
        }
        if p.flags.contains(TcpFlags::ACK) {
            self.clear(flag::ACK_NOW);
            self.delack_at = Instant::FAR_FUTURE;
            self.segs_unacked = 0;
            self.last_ack_sent = self.rcv_nxt;
        }
    }

    /// True if this segment is a retransmission (for the counters).
    pub fn is_retransmission(&self, p: &Plan) -> bool {
        match p.kind {
            SegKind::Hole | SegKind::Una => true,
            SegKind::New => p.seq < self.snd_max,
            SegKind::Syn => self.snd_max != self.iss,
            _ => false,
        }
    }

    /// RFC 9293 §3.8.6.1: with data waiting, nothing in flight and no usable window, probe the
    /// window on a backed-off timer.
    pub fn update_persist(&mut self, cfg: &Config, now: Instant) {
        let data_waiting = self.snd_nxt < self.data_end()
            || (self.has(flag::FIN_QUEUED) && self.snd_nxt == self.data_end());
        // Nothing in flight from where we stand (after a timeout's go-back, snd_max may still be
        // ahead while the window is zero).
        let idle = self.snd_nxt == self.snd_una && self.rto_at == Instant::FAR_FUTURE;
        if self.state.is_synchronized() && self.state != State::TimeWait && data_waiting && idle {
            if self.persist_at == Instant::FAR_FUTURE {
                let base = self.rto_eff(cfg);
                let d = base
                    .saturating_mul(1 << self.persist_backoff.min(10))
                    .min(cfg.max_rto);
                self.persist_at = now + d;
            }
        } else {
            self.persist_at = Instant::FAR_FUTURE;
        }
    }
}
