//! Passive open: a SYN on a listener, SYN-RECEIVED, and SYN-cookie connections
//! (RFC 9293 §3.10.7.2; RFC 4987 §3.6).

use super::established::congestion::Congestion;
use super::{flag, Ctx, Tcb};
use crate::seq::SeqNumber;
use crate::state::State;
use crate::{Config, EventKind, ListenerId};
use mgw_core::wire::TcpRepr;

impl Tcb {
    /// LISTEN → SYN-RECEIVED on an acceptable SYN; the SYN-ACK goes out on the next output pass.
    pub fn open_passive(&mut self, cfg: &Config, seg: &TcpRepr<'_>, listener: u32) {
        self.set_state(State::SynReceived);
        self.set(flag::PASSIVE | flag::IN_BACKLOG);
        self.listener = listener;
        self.irs = SeqNumber(seg.seq);
        self.rcv_nxt = self.irs + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(cfg, &seg.options);
        self.snd_wnd = u32::from(seg.window);
        self.snd_wl1 = self.irs;
        self.snd_wl2 = self.iss;
    }

    /// LISTEN → ESTABLISHED on an ACK carrying a valid cookie (our ISN was `ack - 1`).
    pub fn open_from_cookie(&mut self, cfg: &Config, seg: &TcpRepr<'_>, mss: u16, listener: u32) {
        self.set_state(State::Established);
        self.set(flag::PASSIVE);
        self.listener = listener;
        self.snd_una = self.iss + 1;
        self.snd_nxt = self.snd_una;
        self.snd_max = self.snd_una;
        self.recover = self.snd_una;
        self.high_rxt = self.snd_una;
        self.irs = SeqNumber(seg.seq) - 1;
        self.rcv_nxt = SeqNumber(seg.seq);
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.snd_mss = mss.min(cfg.mss_for(self.tuple.local_addr));
        self.snd_wscale = 0;
        self.rcv_wscale = 0;
        self.snd_wnd = u32::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = SeqNumber(seg.seq);
        self.snd_wl2 = SeqNumber(seg.ack);
        self.cc = Congestion::new(cfg.congestion, self.smss());
    }

    /// SYN-RECEIVED → ESTABLISHED (or FIN-WAIT-1 if the app already closed) on an acceptable
    /// ACK (RFC 9293 §3.10.7.4 fifth check). The caller then runs the ordinary ACK processing.
    pub fn established_from_syn_received(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) {
        let state = if self.has(flag::FIN_QUEUED) {
            State::FinWait1
        } else {
            State::Established
        };
        self.set_state(state);
        self.snd_wl1 = SeqNumber(seg.seq);
        self.snd_wl2 = SeqNumber(seg.ack);
        self.retries = 0;
        self.arm_keepalive(ctx);
        if self.has(flag::PASSIVE) {
            ctx.event(EventKind::Accepted {
                listener: ListenerId(self.listener),
            });
        } else {
            ctx.event(EventKind::Connected);
        }
    }
}
