//! mgw-tcp: a sans-IO userspace TCP stack, one instance per worker core.
//!
//! Segments and `now` go in ([`Stack::on_segment`], [`Stack::poll`]); segments leave through a
//! [`SegmentSink`] the IP layer implements, events through [`Stack::poll_event`], and
//! [`Stack::poll_timeout`] says when to call again. Nothing here reads a clock, a socket or a
//! random source: time is passed in and the ISN/cookie/hash secret comes in [`Config::secret`]
//! (drawn from the OS by the binary at start; [`Config::with_secret`]).
//!
//! # Shape
//! - [`Stack`] (stack.rs): the worker's connection table, listeners, timer wheel, event queue,
//!   counters and the preallocated send/receive rings of every connection slot.
//! - `conn/`: the RFC 9293 state machine split by phase, Demikernel style: `active_open`
//!   (connect, SYN-SENT), `passive_open` (LISTEN, SYN-RECEIVED, SYN cookies), `established/`
//!   (`sender`, `receiver`, `rto`, `congestion`) and `close` (FIN states, TIME-WAIT).
//! - [`seq`], [`state`], [`timer`] (hierarchical wheel), [`table`] (open addressing), [`isn`]
//!   (RFC 6528), [`syncookie`].
//!
//! # Manual
//! - **Memory.** Everything is allocated in [`Stack::new`]: `max_connections` TCBs, the rings
//!   (`send_buffer` + `recv_buffer` bytes per slot), the tables, the wheel and the event queue.
//!   After that, no path allocates (tests/no_alloc.rs proves it with a counting allocator).
//! - **Zero copy out.** A data segment handed to the sink borrows its payload from the send ring;
//!   at the ring's wrap point a segment is cut short rather than copied.
//! - **Back-pressure.** The sink returns false when it has no buffer; nothing is lost, the
//!   connection stays queued and the next [`Stack::poll`] retries.
//! - **Receive window = ring space.** A relay that stops reading one leg makes that leg's window
//!   shrink to zero; that is the back-pressure path between legs.
//! - **Defaults.** CUBIC, Nagle off, delayed ACK 40 ms with quick-ACK for the first 16 segments,
//!   SACK, window scaling and timestamps on, min RTO 200 ms, SYN cookies on.
//! - **Handles.** A [`ConnId`] stays valid until its `Closed`/`Reset`/`TimedOut`/
//!   `ConnectFailed` event. `Closed` waits until the app has read everything received, so no
//!   byte is lost to an early close; TIME-WAIT then continues inside the stack.
//! - **Closing.** [`Stack::close`] is a half close: the app keeps reading and the connection
//!   has no close timer. [`Stack::release`] is the full close (a socket descriptor closed): the
//!   handle goes at once, and the stack finishes alone, within `fin_wait2_timeout` in FIN-WAIT-2
//!   and `close_timeout` overall, resetting if data is unread or arrives (RFC 1122 §4.2.2.13).
//!   Any connection whose peer keeps its window shut through `max_persist_probes` probes is
//!   aborted (RFC 9293 §3.8.6.1, RFC 6429). So no peer can hold a slot for ever.
//! - **Timers.** One wheel entry per connection (the earliest of RTO, delayed ACK, persist,
//!   keepalive, TIME-WAIT, close deadline), 1 ms ticks. [`Stack::poll_timeout`] is exact within 64 ms and a
//!   lower bound beyond (the wheel cascades), so a caller may wake once or twice early.
//! - **What is simplified.** RTT is measured with one timed segment per window (Karn), not from
//!   timestamps; SACK recovery treats every un-SACKed hole below the highest SACK as lost (no
//!   RACK, no DSACK-based undo, so heavy reordering causes spurious retransmissions); a
//!   SYN-cookie connection has no window scaling, SACK or timestamps; urgent data is ignored.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
#[doc(hidden)]
pub mod fuzzing;
pub mod isn;
pub mod seq;
mod stack;
pub mod state;
pub mod syncookie;
pub mod table;
pub mod timer;

use core::fmt;
use core::time::Duration;

pub use conn::established::congestion::CongestionAlgorithm;
pub use isn::FourTuple;
pub use seq::SeqNumber;
pub use stack::{MemoryFootprint, Stack};
pub use state::State;

use mgw_core::wire::{IpAddress, TcpRepr};

/// The IP layer's side: it wraps a segment in IP (and L2) and queues it on the port.
pub trait SegmentSink {
    /// Sends `seg` from `src` to `dst`. The payload is borrowed from a connection's send ring and
    /// is only valid for this call. Returns false when there is no buffer (back-pressure): the
    /// stack keeps the segment's data and retries on the next poll.
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool;
}

/// A connection handle: a slot index plus the slot's generation, so a stale handle never
/// reaches a reused slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// Slot index.
    pub index: u32,
    /// Generation of the slot when the handle was made.
    pub generation: u32,
}

/// A listener handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u32);

/// Why an active open failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectFailure {
    /// The peer answered the SYN with RST.
    Refused,
    /// No SYN-ACK after all SYN retransmissions.
    TimedOut,
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Active open completed (SYN-SENT → ESTABLISHED).
    Connected,
    /// Passive open completed on `listener` (SYN-RECEIVED → ESTABLISHED, or a valid SYN cookie).
    Accepted {
        /// The listener the connection arrived on.
        listener: ListenerId,
    },
    /// Active open failed; the handle is gone.
    ConnectFailed {
        /// RST in answer to the SYN, or no SYN-ACK after the last SYN retransmission.
        reason: ConnectFailure,
    },
    /// Data became readable after the receive ring had been empty (edge-triggered).
    Readable,
    /// Send ring space freed after a `send` could not take everything (edge-triggered).
    Writable,
    /// The peer sent FIN: no more data will arrive (what is buffered is still readable).
    PeerClosed,
    /// The peer reset the connection; the handle is gone.
    Reset,
    /// Retransmissions, keepalive probes or zero-window probes went unanswered (the window
    /// never opened); we sent RST and the handle is gone.
    TimedOut,
    /// Both directions are closed and everything received has been read (or the app aborted);
    /// the handle is gone. A connection that goes on to TIME-WAIT stays in the table internally
    /// until 2 MSL pass.
    Closed,
}

/// An event for the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// Which connection.
    pub conn: ConnId,
    /// What happened.
    pub kind: EventKind,
}

/// Keepalive settings (RFC 9293 §3.8.4; off unless configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub probes: u8,
}

/// Stack configuration, fixed at [`Stack::new`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Connection slots (TCBs, rings, table entries). When all are used, SYNs are refused.
    pub max_connections: u32,
    /// Listener slots.
    pub max_listeners: u32,
    /// Connections in SYN-RECEIVED at once before SYN cookies (or drops) take over.
    pub syn_backlog: u32,
    /// Answer SYNs with cookies when the backlog is full (else drop them).
    pub syn_cookies: bool,
    /// Send ring bytes per connection.
    pub send_buffer: u32,
    /// Receive ring bytes per connection (this bounds the receive window).
    pub recv_buffer: u32,
    /// MSS we advertise and the ceiling of what we send (MTU minus 40), for local addresses
    /// not in `local_mss`.
    pub mss: u16,
    /// Per local address (one per realm: links differ in MTU), the MSS advertised and the
    /// ceiling of what is sent on connections from it, instead of `mss`. RFC 9293 §3.7.1: the
    /// MSS option tells the peer what our link takes, and we send min(ours, peer's). Looked up
    /// only when a connection opens.
    pub local_mss: Vec<(IpAddress, u16)>,
    /// RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// RTO floor (RFC 6298 §2.4 says 1 s; Linux and most deployments use 200 ms).
    pub min_rto: Duration,
    /// RTO ceiling.
    pub max_rto: Duration,
    /// SYN retransmissions before `ConnectFailed { TimedOut }` (for an active open, only when
    /// `connect_timeout` is unset).
    pub max_syn_retries: u8,
    /// Give up on an active open this long after [`Stack::connect`] with
    /// `ConnectFailed { TimedOut }`: SYNs are retransmitted with backoff until then, however
    /// many that takes (RFC 9293 §3.8.3 leaves the total to the user's timeout). `None`:
    /// `max_syn_retries` bounds it.
    pub connect_timeout: Option<Duration>,
    /// Data retransmissions of one segment before `TimedOut`.
    pub max_retries: u8,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3 allows up to 500 ms); `None` ACKs every segment.
    pub delayed_ack: Option<Duration>,
    /// Segments ACKed at once at the start of a connection (quick-ACK, as Linux does).
    pub quickack_segments: u16,
    /// Nagle's algorithm (RFC 9293 §3.7.4); off by default, this stack relays
    /// latency-sensitive messages.
    pub nagle: bool,
    /// Congestion control.
    pub congestion: CongestionAlgorithm,
    /// Keepalive, if any.
    pub keepalive: Option<Keepalive>,
    /// TIME-WAIT duration (2 MSL).
    pub time_wait: Duration,
    /// Longest FIN-WAIT-2 (our FIN acknowledged, the peer's FIN awaited), like Linux's
    /// `tcp_fin_timeout`: past it the connection is reset and freed (`TimedOut`).
    pub fin_wait2_timeout: Duration,
    /// Longest a close may take once the app called [`Stack::close`]: FIN-WAIT-1 behind a shut
    /// window, CLOSING, LAST-ACK never acknowledged, or received data the app never reads. Past
    /// it the connection is freed (reset unless both FINs are done) and the app hears
    /// `TimedOut`. Bounds what an orphaned connection can hold.
    pub close_timeout: Duration,
    /// Zero-window probes sent while the peer's window stays shut before the connection is
    /// aborted (`TimedOut`); the count restarts whenever the window opens or data is acked.
    /// RFC 9293 §3.8.6.1 and RFC 6429 allow the abort; like Linux's `tcp_retries2`.
    pub max_persist_probes: u8,
    /// Offer/accept window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer/accept timestamps and PAWS (RFC 7323 §3, §5).
    pub timestamps: bool,
    /// Offer/accept SACK (RFC 2018).
    pub sack: bool,
    /// Out-of-order bytes one connection may hold (reassembly bound per connection).
    pub reassembly_per_connection: u32,
    /// Out-of-order bytes all connections of this worker may hold together.
    pub reassembly_per_worker: u64,
    /// Event queue capacity; events beyond it are counted and dropped.
    pub event_capacity: u32,
    /// Challenge ACKs per second for the whole worker (RFC 5961 §7).
    pub challenge_ack_limit: u32,
    /// Secret for ISNs (RFC 6528), SYN cookies and the flow-table hash key. It must be drawn
    /// from the OS at start, per stack ([`Config::with_secret`]); the core never draws it.
    /// [`Config::default`] carries the public [`Config::TEST_SECRET`], for tests only.
    pub secret: [u8; 16],
}

impl Config {
    /// The secret [`Config::default`] carries. It is public, so with it ISNs are predictable and
    /// SYN cookies can be computed offline: for tests and simulations only, never for a stack
    /// that faces a network (`mgwd run` and `mgwd lab` draw theirs from the OS).
    pub const TEST_SECRET: [u8; 16] = [0x5a; 16];

    /// The defaults with `secret`, which the caller has drawn from the OS (e.g. `getrandom(2)`
    /// or /dev/urandom). This is the constructor for production stacks.
    pub fn with_secret(secret: [u8; 16]) -> Config {
        Config {
            secret,
            ..Config::default()
        }
    }

    /// The MSS of connections from `local`: its `local_mss` entry, else `mss`.
    pub fn mss_for(&self, local: IpAddress) -> u16 {
        self.local_mss
            .iter()
            .find(|(a, _)| *a == local)
            .map_or(self.mss, |&(_, m)| m)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 1024,
            max_listeners: 16,
            syn_backlog: 256,
            syn_cookies: true,
            send_buffer: 64 * 1024,
            recv_buffer: 64 * 1024,
            mss: 1460,
            local_mss: Vec::new(),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            max_syn_retries: 6,
            connect_timeout: None,
            max_retries: 15,
            delayed_ack: Some(Duration::from_millis(40)),
            quickack_segments: 16,
            nagle: false,
            congestion: CongestionAlgorithm::Cubic,
            keepalive: None,
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(120),
            max_persist_probes: 15,
            window_scaling: true,
            timestamps: true,
            sack: true,
            reassembly_per_connection: 64 * 1024,
            reassembly_per_worker: 64 * 1024 * 1024,
            event_capacity: 4096,
            challenge_ack_limit: 1000,
            secret: Config::TEST_SECRET,
        }
    }
}

/// Per-worker counters. Plain `u64`s: the worker owns them; the control thread gets copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Counters {
    pub segments_in: u64,
    pub segments_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub retransmits: u64,
    pub rto_expirations: u64,
    pub fast_retransmits: u64,
    pub spurious_retransmits: u64,
    pub dropped_out_of_window: u64,
    pub dropped_paws: u64,
    pub dropped_no_ack: u64,
    pub bad_checksum: u64,
    pub malformed: u64,
    pub challenge_acks: u64,
    pub challenge_acks_suppressed: u64,
    pub rst_in: u64,
    pub rst_out: u64,
    pub syn_cookies_sent: u64,
    pub syn_cookies_accepted: u64,
    pub syn_cookies_rejected: u64,
    pub syn_backlog_drops: u64,
    pub table_full_refusals: u64,
    pub no_listener: u64,
    pub reassembly_drops: u64,
    pub ooo_segments: u64,
    pub sink_refusals: u64,
    pub events_dropped: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub time_wait_reused: u64,
    pub persist_probes: u64,
    pub keepalive_probes: u64,
    pub timeouts: u64,
}

/// Why `connect` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// No free connection slot.
    TableFull,
    /// The 4-tuple is already in use.
    InUse,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectError::TableFull => "connection table full",
            ConnectError::InUse => "4-tuple already in use",
        })
    }
}
impl std::error::Error for ConnectError {}

/// Why `listen` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenError {
    /// No free listener slot.
    TableFull,
    /// Already listening on that address and port.
    InUse,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenError::TableFull => "listener table full",
            ListenError::InUse => "already listening there",
        })
    }
}
impl std::error::Error for ListenError {}

/// Why an I/O call on a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The handle is stale or never existed.
    InvalidHandle,
    /// The connection's state does not allow this (e.g. send after close).
    InvalidState,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnError::InvalidHandle => "stale or invalid connection handle",
            ConnError::InvalidState => "operation not allowed in this state",
        })
    }
}
impl std::error::Error for ConnError {}

/// Why [`Stack::new`] refused a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// A size is zero or too large for 32-bit ring arithmetic.
    BadSize,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bad size in TCP configuration")
    }
}
impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests;
