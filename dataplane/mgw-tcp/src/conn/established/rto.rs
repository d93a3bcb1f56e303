//! Retransmission timeout (RFC 6298), and the other per-connection timers: delayed ACK,
//! persist, keepalive and TIME-WAIT.

use crate::conn::{duration_us, flag, Ctx, Disposition, Tcb};
use crate::state::State;
use crate::{Config, ConnectFailure, EventKind};
use core::time::Duration;
use mgw_core::time::Instant;

impl Tcb {
    /// RFC 6298 §2.2/§2.3: fold in one RTT measurement.
    pub fn rtt_sample(&mut self, cfg: &Config, rtt: Duration) {
        let r = duration_us(rtt).max(1);
        if self.srtt_us == 0 {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            let diff = self.srtt_us.abs_diff(r);
            self.rttvar_us = self.rttvar_us - self.rttvar_us / 4 + diff / 4;
            self.srtt_us = self.srtt_us - self.srtt_us / 8 + r / 8;
        }
        // G (clock granularity) is the wheel's 1 ms tick.
        let rto = self
            .srtt_us
            .saturating_add(self.rttvar_us.saturating_mul(4).max(1_000));
        self.rto_us = rto.clamp(duration_us(cfg.min_rto), duration_us(cfg.max_rto));
    }

    /// The RTO with exponential backoff (RFC 6298 §5.5), capped at `max_rto`.
    pub fn rto_eff(&self, cfg: &Config) -> Duration {
        let base = Duration::from_micros(u64::from(self.rto_us));
        base.saturating_mul(1 << self.retries.min(16))
            .min(cfg.max_rto)
    }

    /// Keepalive restarts on every segment from the peer.
    pub fn arm_keepalive(&mut self, ctx: &Ctx<'_>) {
        if let Some(k) = ctx.cfg.keepalive {
            self.probes = 0;
            self.keepalive_at = ctx.now + k.idle;
        }
    }

    /// Runs every timer of this TCB that is due.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>) -> Disposition {
        let now = ctx.now;
        if self.timewait_at <= now {
            return Disposition::Free;
        }
        if self.close_at <= now {
            return self.on_close_timeout(ctx);
        }
        if self.connect_at <= now {
            self.connect_at = Instant::FAR_FUTURE;
            // Still opening actively (SYN-SENT, or SYN-RECEIVED after a simultaneous open).
            let opening = self.state == State::SynSent
                || (self.state == State::SynReceived && !self.has(flag::PASSIVE));
            if opening {
                ctx.event(EventKind::ConnectFailed {
                    reason: ConnectFailure::TimedOut,
                });
                return Disposition::Free;
            }
        }
        if self.rto_at <= now {
            self.rto_at = Instant::FAR_FUTURE;
            let d = self.on_rto(ctx);
            if d != Disposition::Keep {
                return d;
            }
        }
        if self.delack_at <= now {
            self.delack_at = Instant::FAR_FUTURE;
            self.ack_now();
        }
        if self.persist_at <= now {
            self.persist_at = Instant::FAR_FUTURE;
            // RFC 9293 §3.8.6.1 / RFC 6429: a window that stays shut through
            // `max_persist_probes` probes ends the connection, however faithfully the peer
            // answers them; otherwise any peer could pin a slot and its rings for ever.
            if self.zwp_probes >= ctx.cfg.max_persist_probes {
                ctx.counters.timeouts += 1;
                if !self.has(flag::APP_GONE) {
                    ctx.event(EventKind::TimedOut);
                }
                return Disposition::FreeAndRst;
            }
            self.zwp_probes += 1;
            self.set(flag::PROBE);
            self.persist_backoff = self.persist_backoff.saturating_add(1).min(10);
            ctx.counters.persist_probes += 1;
        }
        if self.keepalive_at <= now {
            self.keepalive_at = Instant::FAR_FUTURE;
            if let Some(k) = ctx.cfg.keepalive {
                if self.state.is_synchronized() && self.state != State::TimeWait {
                    if self.probes >= k.probes {
                        ctx.counters.timeouts += 1;
                        if !self.has(flag::APP_GONE) {
                            ctx.event(EventKind::TimedOut);
                        }
                        return Disposition::FreeAndRst;
                    }
                    self.probes += 1;
                    ctx.counters.keepalive_probes += 1;
                    self.set(flag::PROBE);
                    self.keepalive_at = now + k.interval;
                }
            }
        }
        Disposition::Keep
    }

    /// RFC 6298 §5.4-5.7 on expiry: back off, go back to `snd_una`, collapse the window.
    fn on_rto(&mut self, ctx: &mut Ctx<'_>) -> Disposition {
        ctx.counters.rto_expirations += 1;
        self.retries = self.retries.saturating_add(1);
        match self.state {
            State::SynSent | State::SynReceived => {
                // An active open with a connect timeout is bounded by `connect_at` instead.
                let timed = self.connect_at != Instant::FAR_FUTURE;
                if self.retries > ctx.cfg.max_syn_retries && !timed {
                    if self.state == State::SynReceived && self.has(flag::PASSIVE) {
                        return Disposition::Free;
                    }
                    ctx.event(EventKind::ConnectFailed {
                        reason: ConnectFailure::TimedOut,
                    });
                    return Disposition::Free;
                }
                self.snd_nxt = self.iss;
                self.clear(flag::RTT_TIMING);
                Disposition::Keep
            }
            _ => {
                if self.snd_max == self.snd_una {
                    return Disposition::Keep;
                }
                if self.retries > ctx.cfg.max_retries {
                    ctx.counters.timeouts += 1;
                    if !self.has(flag::APP_GONE) {
                        ctx.event(EventKind::TimedOut);
                    }
                    return Disposition::FreeAndRst;
                }
                let flight = self.snd_max.since(self.snd_una);
                self.cc.on_rto(flight, self.smss());
                // RFC 6582 §3.2 step 4 (after a timeout, recover = highest sent), and RFC 2018
                // §8: the receiver may renege, so SACK information is dropped.
                self.recover = self.snd_max;
                self.clear(flag::IN_RECOVERY | flag::REXMIT_UNA | flag::RTT_TIMING | flag::UNDO);
                self.dupacks = 0;
                self.sacked_len = 0;
                self.snd_nxt = self.snd_una;
                self.high_rxt = self.snd_una;
                Disposition::Keep
            }
        }
    }
}
