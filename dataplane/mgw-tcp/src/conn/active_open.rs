//! Active open: `connect` and the SYN-SENT state (RFC 9293 §3.5, §3.10.7.3).

use super::{flag, Ctx, Disposition, Tcb};
use crate::seq::SeqNumber;
use crate::state::State;
use crate::{Config, ConnectFailure, EventKind};
use established::congestion::Congestion;
use mgw_core::wire::{TcpFlags, TcpOptions, TcpRepr};

use super::established;

impl Tcb {
    /// Starts an active open: the first SYN goes out on the next output pass.
    pub fn open_active(&mut self, cfg: &Config) {
        self.set_state(State::SynSent);
        self.rcv_wscale = if cfg.window_scaling {
            Tcb::wscale_for(cfg.recv_buffer)
        } else {
            0
        };
    }

    /// Applies the peer's SYN options (RFC 9293 §3.7.1 MSS; RFC 7323 §2.2, §3.2; RFC 2018 §2).
    /// Every option is used only if we offered it too (`cfg` decides what we offer).
    pub fn negotiate(&mut self, cfg: &Config, opts: &TcpOptions) {
        // RFC 9293 §3.7.1: 536 (IPv4) or 1220 (IPv6) when the peer sends none; clamp tiny
        // values (as Linux does) so a peer cannot make us send a segment per byte.
        let default_mss = match self.tuple.remote_addr {
            mgw_core::wire::IpAddress::V4(_) => 536,
            mgw_core::wire::IpAddress::V6(_) => 1220,
        };
        let peer_mss = opts.mss.unwrap_or(default_mss).max(64);
        self.snd_mss = peer_mss.min(cfg.mss_for(self.tuple.local_addr));
        if cfg.window_scaling {
            if let Some(ws) = opts.window_scale {
                self.set(flag::WS_OK);
                self.snd_wscale = ws.min(14);
                self.rcv_wscale = Tcb::wscale_for(cfg.recv_buffer);
            } else {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        if cfg.sack && opts.sack_permitted {
            self.set(flag::SACK_OK);
        }
        if cfg.timestamps {
            if let Some((tsval, _)) = opts.timestamps {
                self.set(flag::TS_OK);
                self.ts_recent = tsval;
            }
        }
        self.cc = Congestion::new(cfg.congestion, self.smss());
    }

    /// The options of our SYN or SYN-ACK.
    pub fn syn_options(&self, cfg: &Config, now: mgw_core::time::Instant) -> TcpOptions {
        let active = self.state == State::SynSent;
        let mut o = TcpOptions {
            mss: Some(cfg.mss_for(self.tuple.local_addr)),
            ..TcpOptions::default()
        };
        if active {
            o.window_scale = cfg.window_scaling.then_some(self.rcv_wscale);
            o.sack_permitted = cfg.sack;
            o.timestamps = cfg.timestamps.then(|| (self.ts_val(now), 0));
        } else {
            o.window_scale = self.has(flag::WS_OK).then_some(self.rcv_wscale);
            o.sack_permitted = self.has(flag::SACK_OK);
            o.timestamps = self.ts_option(now);
        }
        o
    }

    /// RFC 9293 §3.10.7.3: a segment arrives in SYN-SENT.
    pub fn on_segment_syn_sent(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Disposition {
        let ack = SeqNumber(seg.ack);
        let has_ack = seg.flags.contains(TcpFlags::ACK);
        // First: the ACK must cover our SYN and nothing we have not sent.
        if has_ack && (ack <= self.iss || ack > self.snd_max) {
            if seg.flags.contains(TcpFlags::RST) {
                return Disposition::Keep;
            }
            return Disposition::KeepAndRst(seg.ack);
        }
        // Second: RST. RFC 5961 §3.2 accepts it in SYN-SENT when its ACK acknowledges the SYN.
        if seg.flags.contains(TcpFlags::RST) {
            ctx.counters.rst_in += 1;
            if has_ack {
                ctx.event(EventKind::ConnectFailed {
                    reason: ConnectFailure::Refused,
                });
                return Disposition::Free;
            }
            return Disposition::Keep;
        }
        // Fourth: SYN.
        if !seg.flags.contains(TcpFlags::SYN) {
            return Disposition::Keep;
        }
        self.irs = SeqNumber(seg.seq);
        self.rcv_nxt = self.irs + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(ctx.cfg, &seg.options);
        if has_ack {
            if self.has(flag::RTT_TIMING) {
                self.rtt_sample(ctx.cfg, ctx.now.saturating_duration_since(self.rtt_start));
                self.clear(flag::RTT_TIMING);
            }
            self.snd_una = ack;
            // RFC 7323 §2.2: the window in a SYN-ACK is not scaled.
            self.snd_wnd = u32::from(seg.window);
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = self.irs;
            self.snd_wl2 = ack;
            self.rto_at = mgw_core::time::Instant::FAR_FUTURE;
            self.connect_at = mgw_core::time::Instant::FAR_FUTURE;
            self.retries = 0;
            self.set_state(if self.has(flag::FIN_QUEUED) {
                State::FinWait1
            } else {
                State::Established
            });
            self.arm_keepalive(ctx);
            ctx.event(EventKind::Connected);
            self.ack_now();
        } else {
            // Simultaneous open (RFC 9293 §3.5 figure 7): answer with SYN-ACK.
            self.set_state(State::SynReceived);
            self.snd_nxt = self.iss;
            self.snd_wnd = u32::from(seg.window);
            self.snd_wl1 = self.irs;
            self.snd_wl2 = self.iss;
        }
        Disposition::Keep
    }
}
