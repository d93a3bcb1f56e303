//! Closing: FIN-WAIT-1/2, CLOSING, CLOSE-WAIT, LAST-ACK, TIME-WAIT (RFC 9293 §3.6, §3.10.4,
//! §3.10.7.4 eighth check).

use super::{flag, Ctx, Disposition, Tcb};
use crate::seq::SeqNumber;
use crate::state::State;
use crate::EventKind;
use mgw_core::time::Instant;

impl Tcb {
    /// After an ACK: our FIN may now be acknowledged.
    pub fn after_ack_state_change(&mut self, ctx: &mut Ctx<'_>) -> Option<Disposition> {
        if !self.fin_acked() {
            return None;
        }
        match self.state {
            State::FinWait1 => {
                self.set_state(State::FinWait2);
                self.rto_at = Instant::FAR_FUTURE;
                None
            }
            State::Closing => {
                self.enter_time_wait(ctx);
                None
            }
            State::LastAck => {
                if self.has(flag::APP_GONE) || self.app_finished(ctx) {
                    Some(Disposition::Free)
                } else {
                    // Unread data remains: the TCB stays (timers off) until the app drains it.
                    self.rto_at = Instant::FAR_FUTURE;
                    self.keepalive_at = Instant::FAR_FUTURE;
                    None
                }
            }
            _ => None,
        }
    }

    /// A FIN at `fin_seq` arrived (it may be ahead of `rcv_nxt` if data before it is missing).
    pub fn on_fin(&mut self, ctx: &mut Ctx<'_>, fin_seq: SeqNumber) {
        match self.state {
            State::Established | State::FinWait1 | State::FinWait2 => {
                if fin_seq == self.rcv_nxt {
                    self.clear(flag::RCV_FIN);
                    self.process_fin(ctx);
                } else if fin_seq > self.rcv_nxt {
                    self.set(flag::RCV_FIN);
                    self.rcv_fin = fin_seq;
                }
            }
            State::CloseWait | State::Closing | State::LastAck => self.ack_now(),
            _ => {}
        }
    }

    /// The peer's FIN is next in sequence: consume it.
    pub fn process_fin(&mut self, ctx: &mut Ctx<'_>) {
        if self.has(flag::PEER_FIN) {
            return;
        }
        self.set(flag::PEER_FIN);
        self.rcv_nxt = self.rcv_nxt + 1;
        self.ack_now();
        if !self.has(flag::APP_GONE) {
            ctx.event(EventKind::PeerClosed);
        }
        match self.state {
            State::Established => self.set_state(State::CloseWait),
            State::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(ctx);
                } else {
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(ctx),
            _ => {}
        }
    }

    /// Both directions are done: wait 2 MSL, answering retransmitted FINs. The application is
    /// told `Closed` now; the TCB lingers without it.
    pub fn enter_time_wait(&mut self, ctx: &mut Ctx<'_>) {
        self.set_state(State::TimeWait);
        self.timewait_at = ctx.now + ctx.cfg.time_wait;
        self.rto_at = Instant::FAR_FUTURE;
        self.persist_at = Instant::FAR_FUTURE;
        self.keepalive_at = Instant::FAR_FUTURE;
        // TIME-WAIT is bounded by its own 2 MSL timer.
        self.close_at = Instant::FAR_FUTURE;
        if !self.has(flag::APP_GONE) {
            self.app_finished(ctx);
        }
    }

    /// Arms an orphan's close deadline (called after every output pass, which has `now`). The
    /// bound is absolute, not restarted by progress, so a peer trickling ACKs cannot stretch
    /// it. A connection the app still holds (half-closed with `Stack::close`, still reading)
    /// gets none: like a socket descriptor, it is the app's to keep or release.
    pub fn update_close_timer(&mut self, cfg: &crate::Config, now: Instant) {
        if !self.has(flag::ORPHAN) || matches!(self.state, State::TimeWait | State::Closed) {
            return;
        }
        if self.close_at == Instant::FAR_FUTURE {
            self.close_at = now + cfg.close_timeout;
        }
        if self.state == State::FinWait2 {
            // Linux's tcp_fin_timeout: RFC 9293 puts no bound on FIN-WAIT-2, but a peer that
            // never sends its FIN must not hold an orphan's slot and rings for ever.
            self.close_at = self.close_at.min(now + cfg.fin_wait2_timeout);
        }
    }

    /// An orphan's close deadline passed (FIN-WAIT-2 without the peer's FIN, or a close not
    /// done within `close_timeout`): free the TCB. Reset the peer unless both FINs are done (then
    /// only unread data was holding it, and the peer has nothing left to hear).
    pub fn on_close_timeout(&mut self, ctx: &mut Ctx<'_>) -> Disposition {
        ctx.counters.timeouts += 1;
        if !self.has(flag::APP_GONE) {
            ctx.event(EventKind::TimedOut);
        }
        if self.has(flag::PEER_FIN) && self.fin_acked() {
            Disposition::Free
        } else {
            Disposition::FreeAndRst
        }
    }

    /// Both directions are closed. The app hears `Closed` (and the handle dies) once it has
    /// read everything; until then the handle stays readable. Returns true if it heard it now.
    pub fn app_finished(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.rbuf_len == 0 {
            self.clear(flag::CLOSE_PENDING);
            self.set(flag::APP_GONE);
            ctx.event(EventKind::Closed);
            true
        } else {
            self.set(flag::CLOSE_PENDING);
            false
        }
    }

    /// The application closes its sending direction (RFC 9293 §3.10.4).
    pub fn app_close(&mut self, ctx: &mut Ctx<'_>) -> Disposition {
        match self.state {
            // RFC 9293 §3.10.4: with nothing queued, SYN-SENT just deletes the TCB...
            State::SynSent if self.sbuf_len == 0 => {
                ctx.event(EventKind::Closed);
                Disposition::Free
            }
            // ...otherwise (and in SYN-RECEIVED) the FIN waits until the handshake completes.
            State::SynSent | State::SynReceived => {
                self.set(flag::FIN_QUEUED);
                Disposition::Keep
            }
            State::Established => {
                self.set(flag::FIN_QUEUED);
                self.set_state(State::FinWait1);
                Disposition::Keep
            }
            State::CloseWait => {
                self.set(flag::FIN_QUEUED);
                self.set_state(State::LastAck);
                Disposition::Keep
            }
            _ => Disposition::Keep,
        }
    }
}
