//! H.248.1 transaction layer (§8.2, Annex D), sans-IO.
//!
//! Owns what H.248.1 asks of a transport user over UDP (Annex D.1) and TCP (Annex D.2):
//! - duplicate detection: a repeated request is answered from the reply cache (§8.2.3), or with
//!   `Pending` while it is still being worked on;
//! - `TransactionPending` when a request takes longer than the normal MG execution time (§8.2.3,
//!   §D.1.4 `normalMGExecutionTime`), repeated while it is outstanding;
//! - reply retention until `TransactionResponseAck` or the long timer (§D.1.4 `LONG-TIMER`);
//! - `ImmAckRequired` on replies we receive: acknowledge at once with `TransactionResponseAck`
//!   (H.248.1 §8.2, Annex D.1.4);
//! - retransmission of our own requests with exponential backoff (§D.1.3), given up after a
//!   bounded number of tries; a `Pending` from the peer stops retransmission and extends the wait;
//! - v3 segmentation of replies larger than `max_pdu` (§8.1.1), when configured.
//!
//! The caller passes received bytes and `now`, then drains [`TransactionLayer::poll_transmit`]
//! and [`TransactionLayer::poll_event`], and calls [`TransactionLayer::handle_timeout`] at
//! [`TransactionLayer::poll_timeout`]. Over TCP, frames are delimited with [`tpkt`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use mgw_core::time::Instant;

use super::ast::*;
use super::emit::{emit_with_header, header, Style};
use super::parse::{parse_message, salvage_request_ids};

/// Timers and limits.
#[derive(Debug, Clone)]
pub struct TransactionConfig {
    /// `normalMGExecutionTime`: send `Pending` if a request is not answered by then.
    pub pending_after: Duration,
    /// Most `Pending`s sent for one request (H.248.1 §D.1.4 suggests bounding it).
    pub max_pendings: u32,
    /// `LONG-TIMER`: how long a reply is kept for duplicate requests.
    pub long_timer: Duration,
    /// First retransmission timeout of our requests.
    pub initial_rto: Duration,
    /// Backoff ceiling.
    pub max_rto: Duration,
    /// Retransmissions before a request is reported failed (when `request_timeout` is unset).
    pub max_retransmissions: u32,
    /// How long to keep trying a request before reporting it failed (`control.transaction_timeout`
    /// in mgwd): over UDP it is retransmitted with backoff until then, however many times that
    /// takes (the last wait is cut to end on time); over TCP it is the wait for the reply. A
    /// `Pending` from the peer shows it alive and restarts the clock. `None`: over UDP,
    /// `max_retransmissions` bound the attempts; over TCP, `long_timer` bounds the wait.
    pub request_timeout: Option<Duration>,
    /// After the peer's `Pending`, how long to wait for its next message before retransmitting
    /// the request (over UDP the final reply may have been lost; the peer answers the
    /// retransmission from its reply cache, or with another Pending).
    pub pending_wait: Duration,
    /// Most `Pending`s accepted for one request (H.248.1 `MGOriginatedPendingLimit` /
    /// `MGCOriginatedPendingLimit`) before it is reported failed.
    pub max_pendings_received: u32,
    /// Largest message accepted; larger ones are answered with error 510.
    pub max_message: usize,
    /// Largest reply PDU before v3 segmentation (None: never segment). Only replies with
    /// several action replies can be segmented.
    pub max_pdu: Option<usize>,
    /// Most transactions accepted in one message; more are answered with error 413.
    pub max_transactions: usize,
    /// Set `ImmAckRequired` on our replies (the peer then acknowledges, freeing the cache early).
    pub request_acks: bool,
    /// Reliable transport (TCP/TPKT): no retransmission (H.248.1 §D.2).
    pub reliable: bool,
    /// Encoding style of what we send.
    pub style: Style,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            pending_after: Duration::from_millis(100),
            max_pendings: 20,
            long_timer: Duration::from_secs(30),
            initial_rto: Duration::from_millis(500),
            max_rto: Duration::from_secs(4),
            max_retransmissions: 5,
            request_timeout: None,
            pending_wait: Duration::from_secs(2),
            max_pendings_received: 50,
            max_message: 65_507,
            max_pdu: None,
            max_transactions: 64,
            request_acks: false,
            reliable: false,
            style: Style::Compact,
        }
    }
}

/// Bytes to send to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer's address: where a reply goes back to, or where a request is sent.
    pub to: SocketAddr,
    /// One encoded H.248 message (not TPKT-framed).
    pub bytes: Vec<u8>,
}

/// What the transaction layer tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new transaction request to execute; answer with [`TransactionLayer::send_reply`].
    Request {
        /// The peer that sent the request; the reply goes back to it.
        from: SocketAddr,
        /// Sender's protocol version.
        version: u8,
        /// Sender's mId.
        mid: Mid,
        /// The request.
        request: TransactionRequest,
    },
    /// The final reply to one of our requests.
    Reply {
        /// The peer that sent the reply.
        from: SocketAddr,
        /// Sender's protocol version.
        version: u8,
        /// Sender's mId.
        mid: Mid,
        /// The reply.
        reply: TransactionReply,
    },
    /// One of our requests got no reply in time.
    RequestTimedOut {
        /// Peer it was sent to.
        to: SocketAddr,
        /// Its transaction ID.
        id: u32,
    },
    /// A message-level error from a peer (H.248.1 §8.1.1).
    PeerError {
        /// The peer that sent the error.
        from: SocketAddr,
        /// The error.
        error: ErrorDescriptor,
    },
}

/// Counters (exposed for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages received.
    pub rx_messages: u64,
    /// Messages that failed to parse.
    pub rx_parse_errors: u64,
    /// Messages over the size limit.
    pub rx_oversize: u64,
    /// Duplicate requests answered from the cache.
    pub duplicate_requests: u64,
    /// Duplicate requests answered with Pending.
    pub duplicate_in_progress: u64,
    /// Pendings sent.
    pub pendings_sent: u64,
    /// Our requests retransmitted.
    pub retransmissions: u64,
    /// Our requests that timed out.
    pub request_timeouts: u64,
    /// Replies/pendings/acks that matched nothing.
    pub unmatched: u64,
    /// Acks received for our replies.
    pub acks_received: u64,
    /// Replies sent in segments.
    pub segmented_replies: u64,
    /// Segment replies received.
    pub segment_replies: u64,
    /// Cache probes spent on TransactionResponseAcks (work, bounded by ranges + cache size).
    pub ack_work: u64,
}

/// Errors of [`TransactionLayer::send_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// No request with that ID from that peer is being processed.
    UnknownTransaction,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no such transaction in progress")
    }
}

impl std::error::Error for ReplyError {}

type InKey = (SocketAddr, u32);

enum InState {
    /// Being executed by the user.
    Processing { pendings: u32 },
    /// Answered; the reply is kept for duplicates.
    /// `bytes` holds one message, or one per segment of a segmented reply.
    Replied {
        bytes: Vec<Vec<u8>>,
        expires: Instant,
    },
}

struct Outgoing {
    to: SocketAddr,
    bytes: Vec<u8>,
    rto: Duration,
    retransmissions: u32,
    /// When the next retransmission or timeout fires.
    deadline: Instant,
    /// When the request is reported failed (`request_timeout` after it was sent, or after
    /// the peer's last Pending).
    give_up_at: Option<Instant>,
    /// Pendings received so far.
    pendings: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Send Pending for (peer, id) if still processing.
    Pending(SocketAddr, u32),
    /// Forget the cached reply for (peer, id).
    Expire(SocketAddr, u32),
    /// Retransmit or time out our request `id`.
    Retransmit(u32),
}

/// The transaction layer of one H.248 endpoint (MG or MGC side).
pub struct TransactionLayer {
    cfg: TransactionConfig,
    mid: Mid,
    version: u8,
    /// `MEGACO/<version> <mid>` encoded once.
    header: String,
    next_id: u32,
    incoming: HashMap<InKey, InState>,
    outgoing: HashMap<u32, Outgoing>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl TransactionLayer {
    /// A layer that sends as `mid` with protocol `version`; our transaction IDs start at
    /// `first_id` (pass a random value so restarts do not reuse IDs).
    pub fn new(cfg: TransactionConfig, mid: Mid, version: u8, first_id: u32) -> Self {
        TransactionLayer {
            header: header(version, &mid, cfg.style),
            cfg,
            mid,
            version,
            next_id: first_id.max(1),
            incoming: HashMap::new(),
            outgoing: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The protocol version we send.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Change the version we send (after negotiation in ServiceChange).
    pub fn set_version(&mut self, v: u8) {
        self.version = v;
        self.header = header(v, &self.mid, self.cfg.style);
    }

    /// Our mId.
    pub fn mid(&self) -> &Mid {
        &self.mid
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Number of our requests awaiting a reply.
    pub fn outstanding_requests(&self) -> usize {
        self.outgoing.len()
    }

    /// Number of cached or in-progress incoming transactions.
    pub fn incoming_transactions(&self) -> usize {
        self.incoming.len()
    }

    fn encode(&self, body: MessageBody) -> Vec<u8> {
        self.encode_ref(&body)
    }

    fn encode_ref(&self, body: &MessageBody) -> Vec<u8> {
        emit_with_header(&self.header, body, self.cfg.style).into_bytes()
    }

    fn send(&mut self, to: SocketAddr, body: MessageBody) -> Vec<u8> {
        let bytes = self.encode(body);
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.clone(),
        });
        bytes
    }

    fn timer(&mut self, at: Instant, t: Timer) {
        self.timers.push(Reverse((at, t)));
    }

    /// Feed one received message (a UDP datagram, or one TPKT payload over TCP).
    pub fn handle_message(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.counters.rx_messages += 1;
        if bytes.len() > self.cfg.max_message {
            self.counters.rx_oversize += 1;
            let head = bytes.get(..4096).unwrap_or(bytes);
            self.reject(from, head, 510, "message exceeds maximum size");
            return;
        }
        let msg = match parse_message(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.counters.rx_parse_errors += 1;
                let text = e.to_string();
                self.reject(from, bytes, e.code, &text);
                return;
            }
        };
        let Message { version, mid, body } = msg;
        let ts = match body {
            MessageBody::Error(error) => {
                self.events.push_back(Event::PeerError { from, error });
                return;
            }
            MessageBody::Transactions(ts) => ts,
        };
        if ts.len() > self.cfg.max_transactions {
            self.reject(from, bytes, 413, "too many transactions in message");
            return;
        }
        for t in ts {
            match t {
                Transaction::Request(request) => {
                    self.incoming_request(now, from, version, &mid, request)
                }
                Transaction::Reply(reply) => self.incoming_reply(from, version, &mid, reply),
                Transaction::Pending(id) => self.incoming_pending(now, from, id),
                Transaction::ResponseAck(acks) => self.incoming_ack(from, &acks),
                // v3 segment acknowledgements: counted. Lost segments are recovered by the
                // peer repeating its request, which replays every segment.
                Transaction::SegmentReply(_) => self.counters.segment_replies += 1,
            }
        }
    }

    /// Answer an unparseable message: an error reply per transaction ID we can find, else a
    /// message-level error (H.248.1 §8.1.1, §8.2.2).
    fn reject(&mut self, from: SocketAddr, bytes: &[u8], code: u16, text: &str) {
        let ids = salvage_request_ids(bytes);
        let error = ErrorDescriptor::new(code, text);
        if ids.is_empty() {
            self.send(from, MessageBody::Error(error));
            return;
        }
        for id in ids {
            if self.incoming.contains_key(&(from, id)) {
                // A duplicate of a request we have: answer as a duplicate would be.
                self.duplicate(from, id);
                continue;
            }
            let reply = TransactionReply {
                id,
                segment: None,
                imm_ack_required: false,
                result: ReplyResult::Error(error.clone()),
            };
            // Not cached: the message failed to parse as a whole, so no transaction was
            // identified or executed (H.248.1 §8.2.2). Caching this reply let a garbage
            // datagram naming IDs answer the MGC's later real transactions unexecuted; a
            // retransmission of the same bytes gets the same error again anyway.
            self.send(
                from,
                MessageBody::Transactions(vec![Transaction::Reply(reply)]),
            );
        }
    }

    fn duplicate(&mut self, from: SocketAddr, id: u32) {
        match self.incoming.get(&(from, id)) {
            Some(InState::Replied { bytes, .. }) => {
                self.counters.duplicate_requests += 1;
                let all = bytes.clone();
                self.transmits
                    .extend(all.into_iter().map(|bytes| Transmit { to: from, bytes }));
            }
            Some(InState::Processing { .. }) => {
                self.counters.duplicate_in_progress += 1;
                self.counters.pendings_sent += 1;
                self.send(
                    from,
                    MessageBody::Transactions(vec![Transaction::Pending(id)]),
                );
            }
            None => {}
        }
    }

    fn incoming_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        version: u8,
        mid: &Mid,
        request: TransactionRequest,
    ) {
        let key = (from, request.id);
        if self.incoming.contains_key(&key) {
            self.duplicate(from, request.id);
            return;
        }
        self.incoming
            .insert(key, InState::Processing { pendings: 0 });
        self.timer(
            now + self.cfg.pending_after,
            Timer::Pending(from, request.id),
        );
        self.events.push_back(Event::Request {
            from,
            version,
            mid: mid.clone(),
            request,
        });
    }

    fn incoming_reply(
        &mut self,
        from: SocketAddr,
        version: u8,
        mid: &Mid,
        reply: TransactionReply,
    ) {
        if reply.imm_ack_required {
            // Acknowledge even a duplicate: our earlier ack may have been lost.
            self.send(
                from,
                MessageBody::Transactions(vec![Transaction::ResponseAck(vec![AckRange {
                    first: reply.id,
                    last: reply.id,
                }])]),
            );
        }
        match self.outgoing.get(&reply.id) {
            Some(o) if o.to == from => {
                self.outgoing.remove(&reply.id);
                self.events.push_back(Event::Reply {
                    from,
                    version,
                    mid: mid.clone(),
                    reply,
                });
            }
            _ => self.counters.unmatched += 1,
        }
    }

    fn incoming_pending(&mut self, now: Instant, from: SocketAddr, id: u32) {
        let (max, wait) = (
            self.cfg.max_pendings_received,
            if self.cfg.reliable {
                self.cfg.long_timer
            } else {
                self.cfg.pending_wait
            },
        );
        match self.outgoing.get_mut(&id) {
            Some(o) if o.to == from => {
                // §D.1.3: the peer is working on it. Stop the backoff (the peer showed
                // progress), and wait; if nothing more arrives the final reply was probably
                // lost, so the request is sent again.
                o.pendings += 1;
                o.retransmissions = 0;
                o.rto = self.cfg.initial_rto;
                o.give_up_at = self.cfg.request_timeout.map(|t| now + t);
                o.deadline = if o.pendings > max { now } else { now + wait };
                let d = o.deadline;
                if o.pendings > max {
                    // The peer exceeded the Pending limit: give up at once.
                    o.retransmissions = u32::MAX;
                }
                self.timer(d, Timer::Retransmit(id));
            }
            _ => self.counters.unmatched += 1,
        }
    }

    fn incoming_ack(&mut self, from: SocketAddr, acks: &[AckRange]) {
        // §D.1.3 / Annex D: a TransactionResponseAck names ranges of IDs. Range width is
        // attacker-chosen (one 64 kB message of `0-5000` ranges was ~1 s of CPU when every ID
        // was probed), so the work is bounded by what is cached, not by the widths: probe IDs
        // one by one only while that is cheaper than one pass over the cache.
        let width: u64 = acks
            .iter()
            .map(|a| u64::from(a.last.saturating_sub(a.first)) + 1)
            .fold(0, u64::saturating_add);
        let cached = self.incoming.len() as u64;
        if width <= cached + acks.len() as u64 {
            for a in acks {
                for id in a.first..=a.last {
                    self.counters.ack_work += 1;
                    if let Some(InState::Replied { .. }) = self.incoming.get(&(from, id)) {
                        self.counters.acks_received += 1;
                        self.incoming.remove(&(from, id));
                    }
                }
            }
            return;
        }
        // One pass over the cache, each entry checked against the sorted ranges by binary
        // search: O(cached * log ranges + ranges * log ranges).
        let mut ranges: Vec<(u32, u32)> = acks.iter().map(|a| (a.first, a.last)).collect();
        ranges.sort_unstable();
        // Ranges may overlap: `max_end[i]` is the largest end among the first i+1 ranges.
        let mut max_end: Vec<u32> = Vec::with_capacity(ranges.len());
        let mut m = 0;
        for r in &ranges {
            m = m.max(r.1);
            max_end.push(m);
        }
        self.counters.ack_work += cached + ranges.len() as u64;
        let before = self.incoming.len();
        self.incoming.retain(|(f, id), st| {
            if *f != from || !matches!(st, InState::Replied { .. }) {
                return true;
            }
            let i = ranges.partition_point(|r| r.0 <= *id);
            !(i > 0 && max_end[i - 1] >= *id)
        });
        self.counters.acks_received += (before - self.incoming.len()) as u64;
    }

    /// Answer request `id` from `to` (returned earlier as [`Event::Request`]).
    ///
    /// # Errors
    /// [`ReplyError::UnknownTransaction`] if no such request is in progress.
    pub fn send_reply(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: u32,
        result: ReplyResult,
    ) -> Result<(), ReplyError> {
        match self.incoming.get(&(to, id)) {
            Some(InState::Processing { .. }) => {}
            _ => return Err(ReplyError::UnknownTransaction),
        }
        let imm = self.cfg.request_acks;
        let single = |result| {
            MessageBody::Transactions(vec![Transaction::Reply(TransactionReply {
                id,
                segment: None,
                imm_ack_required: imm,
                result,
            })])
        };
        let body = single(result);
        let whole = self.encode_ref(&body);
        let bytes = match (&body, self.cfg.max_pdu) {
            (MessageBody::Transactions(t), Some(max)) if whole.len() > max && self.version >= 3 => {
                match t.first() {
                    Some(Transaction::Reply(TransactionReply {
                        result: ReplyResult::Actions(actions),
                        ..
                    })) if actions.len() > 1 => self.segments(id, actions, max),
                    _ => vec![whole],
                }
            }
            _ => vec![whole],
        };
        for b in &bytes {
            self.transmits.push_back(Transmit {
                to,
                bytes: b.clone(),
            });
        }
        let expires = now + self.cfg.long_timer;
        self.incoming
            .insert((to, id), InState::Replied { bytes, expires });
        self.timer(expires, Timer::Expire(to, id));
        Ok(())
    }

    /// H.248.1 v3 §8.1.1 segmentation: split the action replies over as few messages as fit
    /// in `max` bytes each (an action reply is never split; one larger than `max` goes alone).
    /// Segments are numbered from 1; the last carries `SegmentationComplete` (`END`).
    fn segments(&mut self, id: u32, actions: &[ActionReply], max: usize) -> Vec<Vec<u8>> {
        let imm = self.cfg.request_acks;
        let encode = |me: &Self, part: &[ActionReply], number: u16, complete: bool| {
            me.encode(MessageBody::Transactions(vec![Transaction::Reply(
                TransactionReply {
                    id,
                    segment: Some(Segment { number, complete }),
                    imm_ack_required: imm,
                    result: ReplyResult::Actions(part.to_vec()),
                },
            )]))
        };
        let mut groups: Vec<&[ActionReply]> = Vec::new();
        let mut start = 0;
        while start < actions.len() {
            let mut end = start + 1;
            // Grow the segment while it still fits (the size of a middle segment bounds the
            // last one's: `/END` adds four bytes, allowed for here).
            while end < actions.len()
                && encode(self, &actions[start..=end], u16::MAX, true).len() <= max
            {
                end += 1;
            }
            groups.push(&actions[start..end]);
            start = end;
        }
        self.counters.segmented_replies += 1;
        let n = groups.len();
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let number = u16::try_from(i + 1).unwrap_or(u16::MAX);
                encode(self, g, number, i + 1 == n)
            })
            .collect()
    }

    /// Send a new request to `to`; returns its transaction ID.
    pub fn send_request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        actions: Vec<ActionRequest>,
    ) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let bytes = self.send(
            to,
            MessageBody::Transactions(vec![Transaction::Request(TransactionRequest {
                id,
                actions,
            })]),
        );
        let rto = self.cfg.initial_rto;
        let give_up_at = self.cfg.request_timeout.map(|t| now + t);
        let deadline = match (self.cfg.reliable, give_up_at) {
            (true, Some(g)) => g,
            (true, None) => now + self.cfg.long_timer,
            (false, g) => g.map_or(now + rto, |g| g.min(now + rto)),
        };
        self.outgoing.insert(
            id,
            Outgoing {
                to,
                bytes,
                rto,
                retransmissions: 0,
                deadline,
                give_up_at,
                pendings: 0,
            },
        );
        self.timer(deadline, Timer::Retransmit(id));
        id
    }

    /// Forget one of our requests (e.g. when failing over to another MGC).
    pub fn cancel_request(&mut self, id: u32) {
        self.outgoing.remove(&id);
    }

    /// Send a message-level error to `to`.
    pub fn send_message_error(&mut self, to: SocketAddr, error: ErrorDescriptor) {
        self.send(to, MessageBody::Error(error));
    }

    /// The earliest time [`TransactionLayer::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, t))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match t {
                Timer::Pending(from, id) => {
                    let max = self.cfg.max_pendings;
                    if let Some(InState::Processing { pendings }) =
                        self.incoming.get_mut(&(from, id))
                    {
                        if *pendings < max {
                            *pendings += 1;
                            self.counters.pendings_sent += 1;
                            self.send(
                                from,
                                MessageBody::Transactions(vec![Transaction::Pending(id)]),
                            );
                            self.timer(now + self.cfg.pending_after, Timer::Pending(from, id));
                        }
                    }
                }
                Timer::Expire(from, id) => {
                    if let Some(InState::Replied { expires, .. }) = self.incoming.get(&(from, id)) {
                        if *expires <= now {
                            self.incoming.remove(&(from, id));
                        }
                    }
                }
                Timer::Retransmit(id) => self.retransmit(now, id),
            }
        }
    }

    fn retransmit(&mut self, now: Instant, id: u32) {
        let (max, max_rto, reliable) = (
            self.cfg.max_retransmissions,
            self.cfg.max_rto,
            self.cfg.reliable,
        );
        let Some(o) = self.outgoing.get_mut(&id) else {
            return;
        };
        if o.deadline > now {
            // A stale timer entry (the deadline moved).
            return;
        }
        // `u32::MAX` marks a request whose peer exceeded the Pending limit.
        let out_of_time = match o.give_up_at {
            Some(g) => now >= g,
            None => o.retransmissions >= max,
        };
        if reliable || out_of_time || o.retransmissions == u32::MAX {
            let to = o.to;
            self.outgoing.remove(&id);
            self.counters.request_timeouts += 1;
            self.events.push_back(Event::RequestTimedOut { to, id });
            return;
        }
        o.retransmissions += 1;
        o.rto = o.rto.saturating_mul(2).min(max_rto);
        // The last wait ends when the request is given up, not a whole RTO later.
        o.deadline = o.give_up_at.map_or(now + o.rto, |g| g.min(now + o.rto));
        let (to, bytes, d) = (o.to, o.bytes.clone(), o.deadline);
        self.counters.retransmissions += 1;
        self.transmits.push_back(Transmit { to, bytes });
        self.timer(d, Timer::Retransmit(id));
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// TPKT framing (RFC 1006 §6) for H.248 over TCP, as H.248.1 Annex D.2 and Erlang's
/// `megaco_tcp` use it: a 4-byte header (version 3, reserved 0, 16-bit length including the
/// header) before each message.
pub mod tpkt {
    /// Header length.
    pub const HEADER: usize = 4;

    /// Frame `payload`.
    ///
    /// # Errors
    /// `None` if the payload does not fit in one TPKT (65 531 bytes).
    pub fn encode(payload: &[u8]) -> Option<Vec<u8>> {
        let len = u16::try_from(payload.len() + HEADER).ok()?;
        let mut v = Vec::with_capacity(payload.len() + HEADER);
        v.extend_from_slice(&[3, 0]);
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(payload);
        Some(v)
    }

    /// Framing error: the stream cannot be resynchronised and must be closed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TpktError {
        /// Version byte was not 3.
        BadVersion(u8),
        /// Length shorter than the header.
        BadLength(u16),
    }

    impl std::fmt::Display for TpktError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                TpktError::BadVersion(v) => write!(f, "TPKT version {v}"),
                TpktError::BadLength(l) => write!(f, "TPKT length {l}"),
            }
        }
    }

    impl std::error::Error for TpktError {}

    /// Reassembles TPKT frames from a byte stream. Taking a frame costs its own length: the
    /// consumed prefix is dropped once per [`Decoder::push`], not once per frame.
    #[derive(Debug, Default)]
    pub struct Decoder {
        buf: Vec<u8>,
        /// Bytes of `buf` already returned as frames.
        start: usize,
    }

    impl Decoder {
        /// Append received bytes.
        pub fn push(&mut self, bytes: &[u8]) {
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.extend_from_slice(bytes);
        }

        /// Bytes received but not yet returned as frames.
        pub fn buffered(&self) -> usize {
            self.buf.len() - self.start
        }

        /// The next complete payload, if any.
        ///
        /// # Errors
        /// [`TpktError`] when the header is invalid.
        pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, TpktError> {
            let rest = self.buf.get(self.start..).unwrap_or(&[]);
            let Some(h) = rest.get(..HEADER) else {
                return Ok(None);
            };
            if h[0] != 3 {
                return Err(TpktError::BadVersion(h[0]));
            }
            let len = u16::from_be_bytes([h[2], h[3]]);
            if usize::from(len) < HEADER {
                return Err(TpktError::BadLength(len));
            }
            let len = usize::from(len);
            let Some(frame) = rest.get(HEADER..len) else {
                return Ok(None);
            };
            let payload = frame.to_vec();
            self.start += len;
            Ok(Some(payload))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mg() -> SocketAddr {
        "127.0.0.1:2944".parse().unwrap()
    }
    fn mgc() -> SocketAddr {
        "127.0.0.2:2944".parse().unwrap()
    }
    fn layer(cfg: TransactionConfig) -> TransactionLayer {
        TransactionLayer::new(
            cfg,
            Mid::Ip {
                addr: mg().ip(),
                port: Some(2944),
            },
            3,
            1000,
        )
    }
    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }
    fn drain(l: &mut TransactionLayer) -> Vec<String> {
        std::iter::from_fn(|| l.poll_transmit())
            .map(|t| String::from_utf8(t.bytes).unwrap())
            .collect()
    }
    const ADD: &[u8] = b"!/3 [127.0.0.2]:2944 T=7{C=${A=ip/$}}";

    fn ok_reply() -> ReplyResult {
        ReplyResult::Actions(vec![ActionReply {
            context: ContextId::Id(1),
            properties: ContextProperties::default(),
            replies: vec![CommandReply::Add(AmmsReply {
                termination: TerminationId("ip/1".into()),
                audit: TerminationAudit::default(),
            })],
            error: None,
        }])
    }

    // ---- incoming requests: processing ----

    #[test]
    fn new_request_is_delivered_once() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), ADD);
        assert!(matches!(l.poll_event(), Some(Event::Request { request, .. }) if request.id == 7));
        assert_eq!(l.poll_event(), None);
        assert!(drain(&mut l).is_empty());
    }

    #[test]
    fn slow_request_gets_pending_repeatedly() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), ADD);
        l.poll_event();
        assert_eq!(l.poll_timeout(), Some(ms(100)));
        l.handle_timeout(ms(100));
        assert_eq!(drain(&mut l), vec!["!/3 [127.0.0.1]:2944 PN=7{}"]);
        l.handle_timeout(ms(200));
        assert_eq!(drain(&mut l).len(), 1);
        l.send_reply(ms(250), mgc(), 7, ok_reply()).unwrap();
        assert_eq!(drain(&mut l), vec!["!/3 [127.0.0.1]:2944 P=7{C=1{A=ip/1}}"]);
        l.handle_timeout(ms(300));
        assert!(drain(&mut l).is_empty(), "no Pending after the reply");
    }

    #[test]
    fn duplicate_while_processing_gets_pending() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), ADD);
        l.handle_message(ms(10), mgc(), ADD);
        assert!(l.poll_event().is_some());
        assert_eq!(l.poll_event(), None, "duplicate not delivered");
        assert_eq!(drain(&mut l), vec!["!/3 [127.0.0.1]:2944 PN=7{}"]);
        assert_eq!(l.counters().duplicate_in_progress, 1);
    }

    // ---- incoming requests: replied ----

    #[test]
    fn duplicate_after_reply_replays_the_cached_reply() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), ADD);
        l.poll_event();
        l.send_reply(ms(5), mgc(), 7, ok_reply()).unwrap();
        let first = drain(&mut l);
        l.handle_message(ms(1000), mgc(), ADD);
        assert_eq!(l.poll_event(), None);
        assert_eq!(drain(&mut l), first);
        // Another peer using the same ID is a different transaction.
        l.handle_message(ms(1000), mg(), ADD);
        assert!(matches!(l.poll_event(), Some(Event::Request { .. })));
    }

    #[test]
    fn reply_is_forgotten_after_long_timer() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), ADD);
        l.poll_event();
        l.send_reply(ms(5), mgc(), 7, ok_reply()).unwrap();
        drain(&mut l);
        l.handle_timeout(ms(30_005));
        assert_eq!(l.incoming_transactions(), 0);
        l.handle_message(ms(30_006), mgc(), ADD);
        assert!(
            matches!(l.poll_event(), Some(Event::Request { .. })),
            "new transaction"
        );
    }

    #[test]
    fn response_ack_frees_the_reply_and_imm_ack_is_set() {
        let mut l = layer(TransactionConfig {
            request_acks: true,
            ..TransactionConfig::default()
        });
        l.handle_message(ms(0), mgc(), ADD);
        l.poll_event();
        l.send_reply(ms(5), mgc(), 7, ok_reply()).unwrap();
        assert_eq!(
            drain(&mut l),
            vec!["!/3 [127.0.0.1]:2944 P=7{IA,C=1{A=ip/1}}"]
        );
        l.handle_message(ms(6), mgc(), b"!/3 [127.0.0.2]:2944 K{5-8}");
        assert_eq!(l.incoming_transactions(), 0);
        assert_eq!(l.counters().acks_received, 1);
    }

    /// Issue 12 finding 3: an ack of thousands of wide ranges cost ~1 s of CPU (every ID
    /// probed). The work is now bounded by ranges + cached entries, and acks still free
    /// the replies they name.
    #[test]
    fn wide_ack_ranges_cost_is_bounded_by_cache_not_width() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), ADD);
        l.poll_event();
        l.send_reply(ms(5), mgc(), 7, ok_reply()).unwrap();
        drain(&mut l);
        let mut msg = String::from("!/3 [127.0.0.2]:2944 K{");
        let ranges = 6000;
        for i in 0..ranges {
            if i > 0 {
                msg.push(',');
            }
            msg.push_str("0-5000");
        }
        msg.push('}');
        l.handle_message(ms(6), mgc(), msg.as_bytes());
        assert_eq!(l.incoming_transactions(), 0, "the ack freed reply 7");
        assert_eq!(l.counters().acks_received, 1);
        assert!(
            l.counters().ack_work <= ranges + 1,
            "ack work {} for {ranges} ranges and 1 cached reply",
            l.counters().ack_work
        );
    }

    #[test]
    fn send_reply_to_unknown_transaction_fails() {
        let mut l = layer(TransactionConfig::default());
        assert_eq!(
            l.send_reply(ms(0), mgc(), 99, ok_reply()),
            Err(ReplyError::UnknownTransaction)
        );
    }

    // ---- bad input ----

    #[test]
    fn syntax_error_is_answered_per_transaction() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), b"!/3 [127.0.0.2]:2944 T=9{C=1{Bogus=x}}");
        let out = drain(&mut l);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with("!/3 [127.0.0.1]:2944 P=9{ER=400{"),
            "{}",
            out[0]
        );
        assert_eq!(l.counters().rx_parse_errors, 1);
        // Retransmission of the same bad request replays the same answer.
        l.handle_message(ms(1), mgc(), b"!/3 [127.0.0.2]:2944 T=9{C=1{Bogus=x}}");
        assert_eq!(drain(&mut l), out);
    }

    #[test]
    fn garbage_gets_a_message_level_error() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), b"\x00\x01garbage");
        let out = drain(&mut l);
        assert!(
            out[0].starts_with("!/3 [127.0.0.1]:2944 ER=400{"),
            "{}",
            out[0]
        );
    }

    /// Issue 12 finding 3: a garbage datagram naming `T=7` cached an error reply for 7, which
    /// then answered the MGC's real transaction 7 without executing it.
    #[test]
    fn garbage_naming_an_id_does_not_preempt_the_real_transaction() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), b"!/3 [127.0.0.2]:2944 T=7{\x00garbage T=8{");
        let out = drain(&mut l);
        assert!(out.iter().any(|o| o.contains("P=7{ER=")), "{out:?}");
        assert_eq!(
            l.incoming_transactions(),
            0,
            "nothing cached for a failed parse"
        );
        l.handle_message(ms(1), mgc(), ADD);
        assert!(
            matches!(l.poll_event(), Some(Event::Request { .. })),
            "the real transaction 7 executes"
        );
    }

    #[test]
    fn oversize_and_too_many_transactions() {
        let mut l = layer(TransactionConfig {
            max_message: 64,
            max_transactions: 2,
            ..TransactionConfig::default()
        });
        let mut big = b"!/3 [127.0.0.2]:2944 T=11{C=-{".to_vec();
        big.resize(200, b' ');
        l.handle_message(ms(0), mgc(), &big);
        assert!(drain(&mut l)[0].contains("P=11{ER=510"));
        l.handle_message(
            ms(0),
            mgc(),
            b"!/3 [1.2.3.4]:1 T=1{C=-{}}T=2{C=-{}}T=3{C=-{}}",
        );
        let out = drain(&mut l);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out.iter().all(|o| o.contains("ER=413")), "{out:?}");
    }

    #[test]
    fn version_4_gets_406() {
        let mut l = layer(TransactionConfig::default());
        l.handle_message(ms(0), mgc(), b"MEGACO/4 [127.0.0.2]:2944 T=3{C=-{}}");
        assert!(drain(&mut l)[0].contains("P=3{ER=406"));
    }

    // ---- v3 segmentation ----

    #[test]
    fn large_reply_is_segmented_and_replayed_whole() {
        let mut l = layer(TransactionConfig {
            max_pdu: Some(120),
            ..TransactionConfig::default()
        });
        l.handle_message(ms(0), mgc(), ADD);
        l.poll_event();
        let action = |c| ActionReply {
            context: ContextId::Id(c),
            properties: ContextProperties::default(),
            replies: vec![CommandReply::Add(AmmsReply {
                termination: TerminationId(format!("ip/{c}")),
                audit: TerminationAudit::default(),
            })],
            error: None,
        };
        let actions: Vec<ActionReply> = (1..=8).map(action).collect();
        l.send_reply(ms(5), mgc(), 7, ReplyResult::Actions(actions.clone()))
            .unwrap();
        let out = drain(&mut l);
        assert!(out.len() > 1, "{out:?}");
        let mut got = Vec::new();
        for (i, m) in out.iter().enumerate() {
            assert!(m.len() <= 120, "{m}");
            let msg = crate::h248::parse_message(m.as_bytes()).unwrap();
            let MessageBody::Transactions(t) = msg.body else {
                panic!()
            };
            let Transaction::Reply(r) = &t[0] else {
                panic!()
            };
            assert_eq!(
                r.segment,
                Some(Segment {
                    number: u16::try_from(i + 1).unwrap(),
                    complete: i + 1 == out.len()
                })
            );
            let ReplyResult::Actions(a) = &r.result else {
                panic!()
            };
            got.extend(a.iter().cloned());
        }
        assert_eq!(got, actions, "segments carry every action reply in order");
        l.handle_message(ms(10), mgc(), ADD);
        assert_eq!(
            drain(&mut l),
            out,
            "a repeated request replays every segment"
        );
        l.handle_message(ms(11), mgc(), b"!/3 [127.0.0.2]:2944 SM=7/1");
        assert_eq!(l.counters().segment_replies, 1);
    }

    #[test]
    fn no_segmentation_below_v3_or_for_one_action() {
        let mut l = layer(TransactionConfig {
            max_pdu: Some(40),
            ..TransactionConfig::default()
        });
        l.handle_message(ms(0), mgc(), ADD);
        l.poll_event();
        l.send_reply(ms(5), mgc(), 7, ok_reply()).unwrap();
        let out = drain(&mut l);
        assert_eq!(out.len(), 1);
        assert!(!out[0].contains("P=7/"), "{}", out[0]);
        // Version 2 has no segmentation.
        l.set_version(2);
        l.handle_message(ms(6), mgc(), b"!/2 [127.0.0.2]:2944 T=8{C=${A=ip/$}}");
        l.poll_event();
        let two = match ok_reply() {
            ReplyResult::Actions(a) => ReplyResult::Actions(vec![a[0].clone(), a[0].clone()]),
            r => r,
        };
        l.send_reply(ms(7), mgc(), 8, two).unwrap();
        let out = drain(&mut l);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with("!/2 [127.0.0.1]:2944 P=8{"),
            "{}",
            out[0]
        );
    }

    // ---- our requests ----

    #[test]
    fn our_request_is_retransmitted_with_backoff_then_times_out() {
        let mut l = layer(TransactionConfig::default());
        let id = l.send_request(ms(0), mgc(), vec![]);
        assert_eq!(id, 1000);
        assert_eq!(drain(&mut l).len(), 1);
        let mut t = 0;
        let mut gaps = Vec::new();
        while let Some(next) = l.poll_timeout() {
            gaps.push(next.as_millis() - t);
            t = next.as_millis();
            l.handle_timeout(next);
            drain(&mut l);
        }
        assert_eq!(gaps, vec![500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(l.counters().retransmissions, 5);
        assert_eq!(
            l.poll_event(),
            Some(Event::RequestTimedOut { to: mgc(), id })
        );
    }

    /// Every gap between the transmissions of one request, until it times out.
    fn retry_gaps(l: &mut TransactionLayer) -> Vec<u64> {
        let mut t = 0;
        let mut gaps = Vec::new();
        while let Some(next) = l.poll_timeout() {
            gaps.push(next.as_millis() - t);
            t = next.as_millis();
            l.handle_timeout(next);
            drain(l);
        }
        gaps
    }

    #[test]
    fn request_timeout_bounds_how_long_a_request_is_retried() {
        // mgwd's defaults: 500 ms doubling to 4 s, for 30 s in all.
        let mut l = layer(TransactionConfig {
            request_timeout: Some(Duration::from_secs(30)),
            ..TransactionConfig::default()
        });
        let id = l.send_request(ms(0), mgc(), vec![]);
        drain(&mut l);
        let gaps = retry_gaps(&mut l);
        assert_eq!(
            gaps,
            vec![500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 2500]
        );
        assert_eq!(gaps.iter().sum::<u64>(), 30_000);
        assert_eq!(l.counters().retransmissions, 9);
        assert_eq!(
            l.poll_event(),
            Some(Event::RequestTimedOut { to: mgc(), id })
        );
        // A shorter timeout gives up sooner.
        let mut l = layer(TransactionConfig {
            request_timeout: Some(Duration::from_secs(3)),
            ..TransactionConfig::default()
        });
        l.send_request(ms(0), mgc(), vec![]);
        drain(&mut l);
        assert_eq!(retry_gaps(&mut l), vec![500, 1000, 1500]);
        assert_eq!(l.counters().retransmissions, 2);
        // Over TCP it is the wait for the reply.
        let mut l = layer(TransactionConfig {
            request_timeout: Some(Duration::from_secs(5)),
            reliable: true,
            ..TransactionConfig::default()
        });
        let id = l.send_request(ms(0), mgc(), vec![]);
        drain(&mut l);
        assert_eq!(retry_gaps(&mut l), vec![5000]);
        assert_eq!(l.counters().retransmissions, 0);
        assert_eq!(
            l.poll_event(),
            Some(Event::RequestTimedOut { to: mgc(), id })
        );
    }

    #[test]
    fn pending_stops_retransmission_and_reply_completes() {
        let mut l = layer(TransactionConfig::default());
        let id = l.send_request(ms(0), mgc(), vec![]);
        drain(&mut l);
        l.handle_message(
            ms(100),
            mgc(),
            format!("!/3 [127.0.0.2]:2944 PN={id}{{}}").as_bytes(),
        );
        l.handle_timeout(ms(600));
        assert!(drain(&mut l).is_empty(), "no retransmission after Pending");
        l.handle_message(
            ms(5000),
            mgc(),
            format!("!/3 [127.0.0.2]:2944 P={id}{{IA,C=-{{SC=ROOT}}}}").as_bytes(),
        );
        assert!(matches!(l.poll_event(), Some(Event::Reply { reply, .. }) if reply.id == id));
        assert_eq!(
            drain(&mut l),
            vec![format!("!/3 [127.0.0.1]:2944 K{{{id}}}")]
        );
        assert_eq!(l.outstanding_requests(), 0);
        // A duplicate reply is acknowledged again but not delivered.
        l.handle_message(
            ms(5001),
            mgc(),
            format!("!/3 [127.0.0.2]:2944 P={id}{{IA,C=-{{SC=ROOT}}}}").as_bytes(),
        );
        assert_eq!(l.poll_event(), None);
        assert_eq!(drain(&mut l).len(), 1);
    }

    #[test]
    fn reliable_transport_does_not_retransmit() {
        let mut l = layer(TransactionConfig {
            reliable: true,
            ..TransactionConfig::default()
        });
        let id = l.send_request(ms(0), mgc(), vec![]);
        drain(&mut l);
        let t = l.poll_timeout().unwrap();
        assert_eq!(t, ms(30_000));
        l.handle_timeout(t);
        assert!(drain(&mut l).is_empty());
        assert_eq!(
            l.poll_event(),
            Some(Event::RequestTimedOut { to: mgc(), id })
        );
    }

    #[test]
    fn reply_from_wrong_peer_is_ignored() {
        let mut l = layer(TransactionConfig::default());
        let id = l.send_request(ms(0), mgc(), vec![]);
        l.handle_message(
            ms(1),
            mg(),
            format!("!/3 [1.2.3.4]:2944 P={id}{{C=-{{SC=ROOT}}}}").as_bytes(),
        );
        assert_eq!(l.poll_event(), None);
        assert_eq!(l.counters().unmatched, 1);
    }

    // ---- TPKT ----

    #[test]
    fn tpkt_round_trip_across_split_reads() {
        let a = tpkt::encode(b"hello").unwrap();
        let b = tpkt::encode(b"world!").unwrap();
        assert_eq!(&a[..4], &[3, 0, 0, 9]);
        let stream: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        let mut d = tpkt::Decoder::default();
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            d.push(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![b"hello".to_vec(), b"world!".to_vec()]);
        let mut d = tpkt::Decoder::default();
        d.push(&[4, 0, 0, 9]);
        assert_eq!(d.next_frame(), Err(tpkt::TpktError::BadVersion(4)));
        let mut d = tpkt::Decoder::default();
        d.push(&[3, 0, 0, 2]);
        assert_eq!(d.next_frame(), Err(tpkt::TpktError::BadLength(2)));
    }
}
