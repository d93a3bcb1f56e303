//! TCP↔UDP interworking: the RFC 8855 §8 transaction layer across transports (R on responses,
//! gateway-chosen Transaction IDs, retransmission on T1, acknowledgements, duplicates absorbed).

use core::time::Duration;

use mgw_core::time::Instant;

use super::{Packet, Primitive, Repr, HEADER_LEN};

/// Limits and timers of one interworking context's [`Transactions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// Requests the gateway sends on the unreliable side and retransmits until answered
    /// (RFC 8855 §8.3.1). Beyond it a request is sent once, untracked, and counted.
    pub requests: usize,
    /// Requests received from the unreliable side, remembered with their answer so that a
    /// retransmission is answered from here and not relayed twice (RFC 8855 §8.2, §8.3.2).
    /// Beyond it the oldest is forgotten, and counted.
    pub answers: usize,
    /// Largest message kept for retransmission or as a cached answer, header included.
    pub max_stored: usize,
    /// T1, the first request retransmission interval; it doubles after each retransmission
    /// (RFC 8855 §8.3.1).
    pub t1: Duration,
    /// Retransmissions of one request before the transaction fails (RFC 8855 §8.3.1).
    pub max_retransmissions: u8,
    /// T2, how long a transaction is remembered after it completes: at least as long as the
    /// requester may still retransmit (T1 × (2^(retransmissions + 1) − 1) = 7.5 s with the
    /// defaults; RFC 8855 §8.3.2).
    pub t2: Duration,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            requests: 4,
            answers: 8,
            max_stored: 2048,
            t1: Duration::from_millis(500),
            max_retransmissions: 3,
            t2: Duration::from_secs(8),
        }
    }
}

/// Counters of the transaction layer (summed over contexts by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransactionStats {
    /// Responses sent on the unreliable side with R set (RFC 8855 §5.1).
    pub responses_marked: u64,
    /// Transaction IDs the gateway chose for server-initiated messages that carried 0 on the
    /// reliable side (RFC 8855 §8).
    pub ids_assigned: u64,
    /// Requests retransmitted on the unreliable side (RFC 8855 §8.3.1).
    pub retransmitted: u64,
    /// Requests given up after the last retransmission went unanswered.
    pub timed_out: u64,
    /// FloorRequestStatusAck/FloorStatusAck the gateway sent for server-initiated messages
    /// from the unreliable side.
    pub acks_sent: u64,
    /// FloorRequestStatusAck/FloorStatusAck from the unreliable side not relayed (they do not
    /// exist over reliable transports).
    pub acks_absorbed: u64,
    /// Retransmitted requests and duplicate responses from the unreliable side not relayed.
    pub duplicates_absorbed: u64,
    /// Cached answers re-sent for a retransmitted request.
    pub answers_resent: u64,
    /// A table was full: a request went untracked, or a remembered one was forgotten early.
    pub overflow: u64,
    /// Messages over [`TransactionConfig::max_stored`]: tracked, but not retransmitted or re-sent.
    pub unstored: u64,
    /// Acknowledgement primitives received on the reliable side, where they do not exist: dropped.
    pub invalid: u64,
}

/// What [`Transactions::to_unreliable`] decided for a message from the reliable side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToUnreliable {
    /// Send the (possibly rewritten) message.
    Send,
    /// Do not send it (counted).
    Drop,
}

/// What [`Transactions::from_unreliable`] decided for a message from the unreliable side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromUnreliable {
    /// Write the (possibly rewritten) message to the reliable side.
    pub relay: bool,
    /// Send this many bytes from the `reply` buffer back on the unreliable side first (an
    /// acknowledgement, or a cached answer); 0 for none.
    pub reply: usize,
}

/// Transaction key: Conference ID, Transaction ID and User ID, which a response copies from
/// its request (RFC 8855 §8.2).
type TxnKey = (u32, u16, u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    Free,
    /// Sent, not answered: retransmit at `next` (after `interval`), `tries` retransmissions
    /// so far.
    Waiting {
        next: Instant,
        interval: Duration,
        tries: u8,
    },
    /// Answered: duplicates of the answer are absorbed until `until`.
    Completed {
        until: Instant,
    },
}

#[derive(Debug)]
struct OutgoingSlot {
    state: Outgoing,
    key: TxnKey,
    /// The Transaction ID on the reliable side: the same, or 0 when the gateway chose one.
    reliable_id: u16,
    /// The request as sent, for retransmission (`len == 0`: too large to keep).
    len: usize,
    buf: Box<[u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incoming {
    Free,
    /// A request relayed to the reliable side, not answered yet.
    Relayed {
        until: Instant,
    },
    /// Answered; the answer is kept in the slot when it fitted.
    Answered {
        until: Instant,
    },
    /// A server-initiated message the gateway acknowledged and relayed.
    Acked {
        until: Instant,
    },
}

impl Incoming {
    fn until(self) -> Instant {
        match self {
            Incoming::Free => Instant::ZERO,
            Incoming::Relayed { until }
            | Incoming::Answered { until }
            | Incoming::Acked { until } => until,
        }
    }
}

#[derive(Debug)]
struct IncomingSlot {
    state: Incoming,
    key: TxnKey,
    len: usize,
    buf: Box<[u8]>,
}

/// The RFC 8855 §8 transaction layer of one TCP↔UDP interworking context, seen from the
/// gateway, which is the unreliable side's peer for both client- and server-initiated
/// transactions:
/// - a response from the reliable side goes out with R set (§5.1: R marks the transaction
///   responder, and only Ver 2 has it);
/// - a server-initiated FloorRequestStatus, FloorStatus or Goodbye from the reliable side
///   (Transaction ID 0, §8) gets a non-zero ID chosen here and, like every request sent on
///   the unreliable side, is retransmitted on T1, doubling, until answered or after
///   `max_retransmissions` (§8.3.1); the FloorRequestStatusAck/FloorStatusAck that answers it
///   is absorbed (acknowledgements exist only over unreliable transports), a GoodbyeAck goes
///   to the reliable side with ID 0;
/// - a server-initiated FloorRequestStatus/FloorStatus from the unreliable side (non-zero ID,
///   R clear) is acknowledged here and relayed with ID 0;
/// - a retransmitted request from the unreliable side is not relayed twice: it is answered
///   from the remembered response, or ignored while the reliable side has not answered yet
///   (§8.2, §8.3.2).
///
/// Memory is fixed at construction; no call allocates. Time comes in as `now`.
#[derive(Debug)]
pub struct Transactions {
    cfg: TransactionConfig,
    outgoing: Vec<OutgoingSlot>,
    incoming: Vec<IncomingSlot>,
    /// The next Transaction ID the gateway chooses (never 0).
    next_id: u16,
}

fn is_ack(p: Primitive) -> bool {
    matches!(
        p,
        Primitive::FloorRequestStatusAck | Primitive::FloorStatusAck
    )
}

/// Primitives that a floor control server (or a Goodbye's receiver) sends only in answer to a
/// request when their Transaction ID is not 0 (RFC 8855 §5.1 Table 1, §8).
fn is_response(p: Primitive) -> bool {
    matches!(
        p,
        Primitive::FloorRequestStatus
            | Primitive::UserStatus
            | Primitive::FloorStatus
            | Primitive::ChairActionAck
            | Primitive::HelloAck
            | Primitive::Error
            | Primitive::GoodbyeAck
    )
}

/// Server-initiated messages that expect an answer over an unreliable transport (§8.2).
fn expects_answer(p: Primitive) -> bool {
    matches!(
        p,
        Primitive::FloorRequestStatus | Primitive::FloorStatus | Primitive::Goodbye
    )
}

fn key_of<T: AsRef<[u8]>>(p: &Packet<T>) -> TxnKey {
    (p.conference_id(), p.transaction_id(), p.user_id())
}

impl Transactions {
    /// Allocates both tables now (slow path). `first_id` seeds the Transaction IDs the gateway
    /// chooses (0 is taken as 1); the caller passes it in, so the core draws no randomness.
    pub fn new(cfg: TransactionConfig, first_id: u16) -> Self {
        let stored = cfg.max_stored.max(HEADER_LEN);
        Transactions {
            outgoing: (0..cfg.requests.max(1))
                .map(|_| OutgoingSlot {
                    state: Outgoing::Free,
                    key: (0, 0, 0),
                    reliable_id: 0,
                    len: 0,
                    buf: vec![0u8; stored].into_boxed_slice(),
                })
                .collect(),
            incoming: (0..cfg.answers.max(1))
                .map(|_| IncomingSlot {
                    state: Incoming::Free,
                    key: (0, 0, 0),
                    len: 0,
                    buf: vec![0u8; stored].into_boxed_slice(),
                })
                .collect(),
            cfg: TransactionConfig {
                max_stored: stored,
                ..cfg
            },
            next_id: first_id.max(1),
        }
    }

    /// The earliest retransmission or give-up time, or [`Instant::FAR_FUTURE`]. (Remembered
    /// transactions expire lazily: they need no wake-up.)
    pub fn poll_timeout(&self) -> Instant {
        self.outgoing
            .iter()
            .filter_map(|s| match s.state {
                Outgoing::Waiting { next, .. } => Some(next),
                _ => None,
            })
            .min()
            .unwrap_or(Instant::FAR_FUTURE)
    }

    /// Requests sent and not answered yet.
    pub fn waiting(&self) -> usize {
        self.outgoing
            .iter()
            .filter(|s| matches!(s.state, Outgoing::Waiting { .. }))
            .count()
    }

    /// A whole message `msg` from the reliable side, about to leave on the unreliable side:
    /// R set on responses, a Transaction ID chosen for server-initiated messages, requests
    /// remembered for retransmission. Rewrites the header in place; Ver is left to the fragmenter.
    pub fn to_unreliable(
        &mut self,
        now: Instant,
        msg: &mut [u8],
        stats: &mut TransactionStats,
    ) -> ToUnreliable {
        let Ok(mut p) = Packet::new_checked(&mut *msg) else {
            return ToUnreliable::Drop;
        };
        let prim = p.primitive();
        if is_ack(prim) {
            // RFC 8855 §8: acknowledgements exist only over unreliable transports.
            stats.invalid += 1;
            return ToUnreliable::Drop;
        }
        let key = key_of(&p);
        let len = p.total_len();
        if key.1 != 0 {
            // The answer to a request the unreliable side sent (§8.2): R set, remembered for
            // that request's retransmissions.
            let t2 = self.cfg.t2;
            if let Some(s) = self.incoming.iter_mut().find(|s| {
                s.key == key && matches!(s.state, Incoming::Relayed { until } if until > now)
            }) {
                p.set_responder(true);
                s.state = Incoming::Answered { until: now + t2 };
                s.len = 0;
                match s.buf.get_mut(..len) {
                    Some(dst) => {
                        dst.copy_from_slice(&msg[..len]);
                        s.len = len;
                    }
                    None => stats.unstored += 1,
                }
                stats.responses_marked += 1;
                return ToUnreliable::Send;
            }
            if is_response(prim) {
                // An answer to a request not remembered (forgotten early): still a response.
                p.set_responder(true);
                stats.responses_marked += 1;
                return ToUnreliable::Send;
            }
            // A request from the reliable side: retransmitted until answered (§8.3.1).
            p.set_responder(false);
            self.track(now, key, key.1, msg, len, stats);
            return ToUnreliable::Send;
        }
        if !expects_answer(prim) {
            // Nothing answers it on the unreliable side either: sent once, as it is.
            return ToUnreliable::Send;
        }
        // RFC 8855 §8: over an unreliable transport a server-initiated transaction has a
        // non-zero Transaction ID, here chosen by the gateway.
        let id = self.choose_id(key);
        p.set_transaction_id(id);
        p.set_responder(false);
        stats.ids_assigned += 1;
        self.track(now, (key.0, id, key.2), 0, msg, len, stats);
        ToUnreliable::Send
    }

    /// A non-zero ID not in use by a request in flight with the same conference and user.
    fn choose_id(&mut self, key: TxnKey) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self
                .outgoing
                .iter()
                .any(|s| !matches!(s.state, Outgoing::Free) && s.key == (key.0, id, key.2))
            {
                return id;
            }
        }
    }

    fn track(
        &mut self,
        now: Instant,
        key: TxnKey,
        reliable_id: u16,
        msg: &[u8],
        len: usize,
        stats: &mut TransactionStats,
    ) {
        // A free slot, else the completed one that expires first; requests in flight are
        // never evicted.
        let slot = self
            .outgoing
            .iter()
            .position(|s| s.state == Outgoing::Free)
            .or_else(|| {
                self.outgoing
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s.state {
                        Outgoing::Completed { until } => Some((until, i)),
                        _ => None,
                    })
                    .min()
                    .map(|(_, i)| i)
            });
        let Some(i) = slot else {
            stats.overflow += 1;
            return;
        };
        let s = &mut self.outgoing[i];
        s.key = key;
        s.reliable_id = reliable_id;
        s.len = 0;
        match s.buf.get_mut(..len) {
            Some(dst) => {
                dst.copy_from_slice(&msg[..len]);
                s.len = len;
                s.state = Outgoing::Waiting {
                    next: now + self.cfg.t1,
                    interval: self.cfg.t1,
                    tries: 0,
                };
            }
            None => {
                // Kept for matching its answer, never retransmitted.
                stats.unstored += 1;
                s.state = Outgoing::Waiting {
                    next: now + self.cfg.t2,
                    interval: self.cfg.t2,
                    tries: self.cfg.max_retransmissions,
                };
            }
        }
    }

    /// The next request due for retransmission at `now`, copied into `out` (its length
    /// returned); requests past their last retransmission are given up on the way. Call until
    /// `None`.
    pub fn poll_retransmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
        stats: &mut TransactionStats,
    ) -> Option<usize> {
        let max = self.cfg.max_retransmissions;
        for s in &mut self.outgoing {
            let Outgoing::Waiting {
                next,
                interval,
                tries,
            } = s.state
            else {
                continue;
            };
            if next > now {
                continue;
            }
            if tries >= max || s.len == 0 {
                // RFC 8855 §8.3.1: the transaction fails.
                s.state = Outgoing::Free;
                stats.timed_out += 1;
                continue;
            }
            let Some(dst) = out.get_mut(..s.len) else {
                continue;
            };
            dst.copy_from_slice(&s.buf[..s.len]);
            let interval = interval * 2;
            s.state = Outgoing::Waiting {
                next: now + interval,
                interval,
                tries: tries + 1,
            };
            stats.retransmitted += 1;
            return Some(s.len);
        }
        None
    }

    /// A whole message `msg` (Ver 2, reassembled if it was fragmented) from the unreliable
    /// side: decides whether it goes to the reliable side (rewritten in place: R cleared, the
    /// Transaction ID 0 for server-initiated transactions) and what the gateway answers on the
    /// unreliable side itself, written into `reply` (an acknowledgement, or a cached answer).
    pub fn from_unreliable(
        &mut self,
        now: Instant,
        msg: &mut [u8],
        reply: &mut [u8],
        stats: &mut TransactionStats,
    ) -> FromUnreliable {
        const NONE: FromUnreliable = FromUnreliable {
            relay: false,
            reply: 0,
        };
        const RELAY: FromUnreliable = FromUnreliable {
            relay: true,
            reply: 0,
        };
        let Ok(mut p) = Packet::new_checked(&mut *msg) else {
            return NONE;
        };
        let prim = p.primitive();
        let key = key_of(&p);
        if p.responder() {
            // A response (§5.1): to a request the gateway sent and retransmits.
            p.set_responder(false);
            let t2 = self.cfg.t2;
            // The request in flight first, else one answered already.
            let i = self
                .outgoing
                .iter()
                .position(|s| s.key == key && matches!(s.state, Outgoing::Waiting { .. }))
                .or_else(|| {
                    self.outgoing
                        .iter()
                        .position(|s| s.key == key && s.state != Outgoing::Free)
                });
            if let Some(s) = i.map(|i| &mut self.outgoing[i]) {
                match s.state {
                    Outgoing::Waiting { .. } => {
                        s.state = Outgoing::Completed { until: now + t2 };
                        if is_ack(prim) {
                            stats.acks_absorbed += 1;
                            return NONE;
                        }
                        p.set_transaction_id(s.reliable_id);
                        return RELAY;
                    }
                    Outgoing::Completed { until } if until > now => {
                        // The answer to a retransmission whose original was answered too.
                        if is_ack(prim) {
                            stats.acks_absorbed += 1;
                        } else {
                            stats.duplicates_absorbed += 1;
                        }
                        return NONE;
                    }
                    _ => {}
                }
            }
            if is_ack(prim) {
                stats.acks_absorbed += 1;
                return NONE;
            }
            return RELAY;
        }
        if is_ack(prim) {
            // An acknowledgement without R (a peer of RFC 4582 ways): never relayed.
            stats.acks_absorbed += 1;
            return NONE;
        }
        if key.1 == 0 {
            // Not a transaction the unreliable side expects answered: relayed as it is.
            return RELAY;
        }
        let notification = matches!(prim, Primitive::FloorRequestStatus | Primitive::FloorStatus);
        let ack = if notification {
            // §8: the receiving client acknowledges a server-initiated FloorRequestStatus or
            // FloorStatus; the gateway is that client on the unreliable side.
            let h = Repr {
                version: 2,
                responder: true,
                primitive: if prim == Primitive::FloorStatus {
                    Primitive::FloorStatusAck
                } else {
                    Primitive::FloorRequestStatusAck
                },
                conference_id: key.0,
                transaction_id: key.1,
                user_id: key.2,
                fragment: None,
                payload: &[],
            };
            match h.emit(reply) {
                Ok(n) => {
                    stats.acks_sent += 1;
                    n
                }
                Err(_) => 0,
            }
        } else {
            0
        };
        if let Some(s) = self
            .incoming
            .iter_mut()
            .find(|s| s.key == key && s.state.until() > now)
        {
            // A retransmission (§8.3.1): not relayed again.
            stats.duplicates_absorbed += 1;
            return match s.state {
                Incoming::Answered { .. } if s.len > 0 && s.len <= reply.len() => {
                    reply[..s.len].copy_from_slice(&s.buf[..s.len]);
                    stats.answers_resent += 1;
                    FromUnreliable {
                        relay: false,
                        reply: s.len,
                    }
                }
                _ => FromUnreliable {
                    relay: false,
                    reply: ack,
                },
            };
        }
        let until = now + self.cfg.t2;
        // A free or expired slot, else the one that expires first (forgotten early, counted).
        let i = match self
            .incoming
            .iter()
            .position(|s| s.state == Incoming::Free || s.state.until() <= now)
        {
            Some(i) => i,
            None => {
                stats.overflow += 1;
                (0..self.incoming.len())
                    .min_by_key(|&i| self.incoming[i].state.until())
                    .unwrap_or(0)
            }
        };
        let s = &mut self.incoming[i];
        s.key = key;
        s.len = 0;
        s.state = if notification {
            Incoming::Acked { until }
        } else {
            Incoming::Relayed { until }
        };
        if notification {
            // §8: server-initiated transactions carry Transaction ID 0 over reliable transports.
            p.set_transaction_id(0);
        }
        FromUnreliable {
            relay: true,
            reply: ack,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The RFC 8855 §8 transaction layer across transports, grouped by direction.
    use super::*;
    use crate::bfcp::{Header, MessageWriter};

    const CONF: u32 = 9;
    const USER: u16 = 7;

    /// A message of any primitive with one FLOOR-ID attribute: the transaction layer looks at
    /// the common header only.
    fn msg(ver: u8, r: bool, prim: Primitive, tid: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let h = Header::new(ver, CONF, tid, USER).with_responder(r);
        let mut w = MessageWriter::new(&mut out, &h, prim);
        w.floor_id(1);
        w.finish().unwrap();
        out
    }

    fn header(m: &[u8]) -> (bool, Primitive, u16) {
        let p = Packet::new_checked(m).unwrap();
        (p.responder(), p.primitive(), p.transaction_id())
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    // ---- reliable → unreliable ----

    #[test]
    fn response_to_an_unreliable_request_gets_r_and_answers_its_retransmission() {
        let mut x = Transactions::new(TransactionConfig::default(), 100);
        let mut st = TransactionStats::default();
        let mut reply = [0u8; 256];
        let mut req = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(0), &mut req, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: true,
                reply: 0
            }
        );
        assert_eq!(header(&req), (false, Primitive::FloorRequest, 5));
        // Retransmitted before the answer: not relayed again, nothing to answer yet.
        let mut again = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(500), &mut again, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: 0
            }
        );
        let mut resp = msg(1, false, Primitive::FloorRequestStatus, 5);
        assert_eq!(
            x.to_unreliable(t(600), &mut resp, &mut st),
            ToUnreliable::Send
        );
        assert_eq!(
            header(&resp),
            (true, Primitive::FloorRequestStatus, 5),
            "R set (§5.1)"
        );
        // Retransmitted after the answer: the answer is re-sent, the request not relayed.
        let mut again = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(1500), &mut again, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: resp.len()
            }
        );
        assert_eq!(&reply[..resp.len()], &resp[..]);
        assert_eq!(
            (
                st.duplicates_absorbed,
                st.answers_resent,
                st.responses_marked
            ),
            (2, 1, 1)
        );
        // After T2 the ID may be used again: a new request.
        let mut late = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(600 + 8001), &mut late, &mut reply, &mut st);
        assert!(v.relay);
    }

    #[test]
    fn server_initiated_message_gets_an_id_is_retransmitted_and_its_ack_absorbed() {
        let mut x = Transactions::new(TransactionConfig::default(), 0x4000);
        let mut st = TransactionStats::default();
        let mut m = msg(1, false, Primitive::FloorStatus, 0);
        assert_eq!(x.to_unreliable(t(0), &mut m, &mut st), ToUnreliable::Send);
        assert_eq!(header(&m), (false, Primitive::FloorStatus, 0x4000));
        assert_eq!(x.poll_timeout(), t(500), "T1 (§8.3.1)");
        let mut out = [0u8; 256];
        assert_eq!(x.poll_retransmit(t(499), &mut out, &mut st), None);
        assert_eq!(x.poll_retransmit(t(500), &mut out, &mut st), Some(m.len()));
        assert_eq!(&out[..m.len()], &m[..]);
        assert_eq!(x.poll_timeout(), t(1500), "doubled");
        assert_eq!(x.poll_retransmit(t(1500), &mut out, &mut st), Some(m.len()));
        // The ack: absorbed, the retransmissions stop.
        let mut ack = msg(2, true, Primitive::FloorStatusAck, 0x4000);
        let mut reply = [0u8; 64];
        let v = x.from_unreliable(t(1600), &mut ack, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: 0
            }
        );
        assert_eq!(x.poll_timeout(), Instant::FAR_FUTURE);
        // A late ack of the retransmission: absorbed too.
        let mut ack = msg(2, true, Primitive::FloorStatusAck, 0x4000);
        assert!(
            !x.from_unreliable(t(1700), &mut ack, &mut reply, &mut st)
                .relay
        );
        assert_eq!(
            (st.ids_assigned, st.retransmitted, st.acks_absorbed),
            (1, 2, 2)
        );
        // The next one gets the next ID.
        let mut m2 = msg(1, false, Primitive::FloorRequestStatus, 0);
        x.to_unreliable(t(2000), &mut m2, &mut st);
        assert_eq!(header(&m2).2, 0x4001);
    }

    #[test]
    fn unanswered_request_fails_after_the_last_retransmission() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut m = msg(1, false, Primitive::Hello, 3);
        x.to_unreliable(t(0), &mut m, &mut st);
        assert_eq!(
            header(&m),
            (false, Primitive::Hello, 3),
            "a request keeps its ID"
        );
        let mut out = [0u8; 256];
        let mut sent_at = Vec::new();
        let mut now = t(0);
        while x.poll_timeout() != Instant::FAR_FUTURE {
            now = x.poll_timeout();
            while x.poll_retransmit(now, &mut out, &mut st).is_some() {
                sent_at.push(now);
            }
        }
        assert_eq!(sent_at, [t(500), t(1500), t(3500)]);
        assert_eq!(now, t(7500));
        assert_eq!((st.retransmitted, st.timed_out), (3, 1));
    }

    #[test]
    fn goodbye_ack_for_a_gateway_id_goes_back_with_id_zero() {
        let mut x = Transactions::new(TransactionConfig::default(), 77);
        let mut st = TransactionStats::default();
        let mut bye = msg(1, false, Primitive::Goodbye, 0);
        x.to_unreliable(t(0), &mut bye, &mut st);
        assert_eq!(header(&bye).2, 77);
        let mut ack = msg(2, true, Primitive::GoodbyeAck, 77);
        let mut reply = [0u8; 64];
        let v = x.from_unreliable(t(10), &mut ack, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: true,
                reply: 0
            }
        );
        assert_eq!(header(&ack), (false, Primitive::GoodbyeAck, 0));
    }

    #[test]
    fn acks_from_the_reliable_side_are_dropped() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut m = msg(1, false, Primitive::FloorRequestStatusAck, 4);
        assert_eq!(x.to_unreliable(t(0), &mut m, &mut st), ToUnreliable::Drop);
        assert_eq!(st.invalid, 1);
    }

    // ---- unreliable → reliable ----

    #[test]
    fn server_initiated_from_unreliable_is_acked_and_relayed_once_with_id_zero() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut reply = [0u8; 64];
        let mut m = msg(2, false, Primitive::FloorRequestStatus, 0x4001);
        let v = x.from_unreliable(t(0), &mut m, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: true,
                reply: HEADER_LEN
            }
        );
        assert_eq!(
            header(&m),
            (false, Primitive::FloorRequestStatus, 0),
            "ID 0 (§8)"
        );
        let ack = Packet::new_checked(&reply[..HEADER_LEN]).unwrap();
        assert_eq!(
            (
                ack.version(),
                ack.responder(),
                ack.primitive(),
                ack.transaction_id()
            ),
            (2, true, Primitive::FloorRequestStatusAck, 0x4001)
        );
        assert_eq!(
            (ack.conference_id(), ack.user_id(), ack.payload_length()),
            (CONF, USER, 0)
        );
        // Its retransmission (our ack was lost): acked again, not relayed.
        let mut m = msg(2, false, Primitive::FloorRequestStatus, 0x4001);
        let v = x.from_unreliable(t(500), &mut m, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: HEADER_LEN
            }
        );
        assert_eq!((st.acks_sent, st.duplicates_absorbed), (2, 1));
    }

    #[test]
    fn unsolicited_acks_from_unreliable_are_never_relayed() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut reply = [0u8; 64];
        for (r, p) in [
            (true, Primitive::FloorRequestStatusAck),
            (false, Primitive::FloorStatusAck),
        ] {
            let mut m = msg(2, r, p, 9);
            assert!(!x.from_unreliable(t(0), &mut m, &mut reply, &mut st).relay);
        }
        assert_eq!(st.acks_absorbed, 2);
        // A response to a request not tracked: relayed, R cleared.
        let mut m = msg(2, true, Primitive::HelloAck, 9);
        assert!(x.from_unreliable(t(0), &mut m, &mut reply, &mut st).relay);
        assert_eq!(header(&m), (false, Primitive::HelloAck, 9));
    }

    // ---- any input ----

    proptest::proptest! {
        /// Any sequence of messages both ways and timer turns: no panic, acknowledgements
        /// never reach the reliable side, R is clear there, gateway-chosen IDs are non-zero,
        /// the tables stay bounded (the fuzz target `bfcp_transactions` checks the same).
        #[test]
        fn prop_any_sequence_keeps_the_rules(
            ops in proptest::collection::vec(
                (0u8..3, 0u8..20, 0u16..6, proptest::bool::ANY, 0u8..24, 0u64..1200),
                0..200,
            )
        ) {
            let cfg = TransactionConfig {
                requests: 3,
                answers: 3,
                max_stored: 64,
                ..TransactionConfig::default()
            };
            let mut x = Transactions::new(cfg, 0xfffe);
            let mut st = TransactionStats::default();
            let (mut now, mut reply, mut out) = (t(0), [0u8; 128], [0u8; 128]);
            for (kind, prim, tid, r, units, dt) in ops {
                now += Duration::from_millis(dt);
                let mut m = vec![0u8; HEADER_LEN + 4 * usize::from(units)];
                m[0] = if kind == 0 { 0x20 } else { 0x40 } | if r { 0x10 } else { 0 };
                m[1] = prim;
                m[3] = units;
                m[8..10].copy_from_slice(&tid.to_be_bytes());
                match kind {
                    0 => {
                        if x.to_unreliable(now, &mut m, &mut st) == ToUnreliable::Send {
                            let p = Packet::new_checked(&m[..]).unwrap();
                            proptest::prop_assert!(!is_ack(p.primitive()));
                            if tid == 0 && expects_answer(p.primitive()) {
                                proptest::prop_assert_ne!(p.transaction_id(), 0);
                            }
                        }
                    }
                    1 => {
                        let v = x.from_unreliable(now, &mut m, &mut reply, &mut st);
                        if v.relay {
                            let p = Packet::new_checked(&m[..]).unwrap();
                            proptest::prop_assert!(!p.responder() && !is_ack(p.primitive()));
                        }
                        if v.reply > 0 {
                            let a = Packet::new_checked(&reply[..v.reply]).unwrap();
                            proptest::prop_assert!(a.responder());
                        }
                    }
                    _ => while x.poll_retransmit(now, &mut out, &mut st).is_some() {},
                }
                proptest::prop_assert!(x.waiting() <= cfg.requests);
            }
        }
    }

    // ---- bounds ----

    #[test]
    fn tables_are_bounded_and_overflow_is_counted() {
        let cfg = TransactionConfig {
            requests: 2,
            answers: 2,
            max_stored: 64,
            ..TransactionConfig::default()
        };
        let mut x = Transactions::new(cfg, 1);
        let mut st = TransactionStats::default();
        for tid in 1..=3 {
            let mut m = msg(1, false, Primitive::FloorRequest, tid);
            assert_eq!(x.to_unreliable(t(0), &mut m, &mut st), ToUnreliable::Send);
        }
        assert_eq!(
            (x.waiting(), st.overflow),
            (2, 1),
            "in-flight requests are not evicted"
        );
        let mut reply = [0u8; 64];
        for tid in 1..=3 {
            let mut m = msg(2, false, Primitive::FloorQuery, tid);
            assert!(x.from_unreliable(t(0), &mut m, &mut reply, &mut st).relay);
        }
        assert_eq!(st.overflow, 2, "the oldest remembered request forgotten");
        // Too large to keep: tracked for its answer, never retransmitted.
        let mut big = msg(1, false, Primitive::FloorRequest, 50);
        big.resize(200, 0);
        let units = ((200 - HEADER_LEN) / 4) as u16;
        Packet::new_unchecked(&mut big[..]).set_payload_length(units);
        let mut x = Transactions::new(cfg, 1);
        x.to_unreliable(t(0), &mut big, &mut st);
        assert_eq!(st.unstored, 1);
        let mut out = [0u8; 256];
        assert_eq!(x.poll_retransmit(t(8000), &mut out, &mut st), None);
    }
}
