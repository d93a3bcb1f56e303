//! The interface between the control thread and a worker: commands ([`FlowOp`]) in, events
//! ([`FlowEvent`]) out, over a pair of bounded lock-free single-producer/single-consumer rings.
//!
//! Everything that crosses is plain fixed-size data (no heap), so a worker never frees what the
//! control thread allocated, and a full ring is back-pressure, not memory growth. Every command
//! names a context and a generation: a command or event for an older generation of a context
//! (a context id reused after Subtract) is recognised and ignored.

use crossbeam::queue::ArrayQueue;
pub use mgw_core::leg::{Application, SecurityRole, Side, TcpRole, Transport};
use mgw_tls::PeerFingerprints;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// A context as the control thread numbers it (the H.248 ContextID).
pub type ContextId = u32;

/// One leg's program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegProgram {
    /// Our address and port for this leg.
    pub local: SocketAddr,
    /// The peer, when known; with `latching` it is learned from the first packet/connection.
    pub remote: Option<SocketAddr>,
    /// Plain or secured TCP or UDP; `tcp_role` applies to the TCP ones only.
    pub transport: Transport,
    /// TCP role (ignored for UDP transports).
    pub tcp_role: TcpRole,
    /// False when establishment waits for [`FlowOp::Establish`] (delayed establishment).
    pub establish_now: bool,
    /// Learn the peer from the first packet or connection (H.248.37 latch).
    pub latching: bool,
    /// (D)TLS role; the active TCP side is the client.
    pub security_role: SecurityRole,
    /// Acceptable peer certificate fingerprints (Remote SDP `a=fingerprint`).
    pub peer_fingerprints: PeerFingerprints,
    /// This leg's MSRP URIs for To-Path/From-Path rewriting. A context rewrites when it is
    /// aware MSRP and *both* legs carry a route; `None` on either leg keeps frames' paths as
    /// they are (agnostic relay, or CEMA on both legs, RFC 6714 §4, where the endpoints
    /// address each other end to end).
    pub msrp: Option<MsrpRoute>,
}

/// Bytes held inline, at most `N` of them: a bounded, `Copy`, heap-free string for commands
/// that cross the control→worker ring (which carries only fixed-size data).
#[derive(Clone, Copy)]
pub struct InlineBytes<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> InlineBytes<N> {
    /// No bytes.
    pub const EMPTY: Self = InlineBytes {
        len: 0,
        bytes: [0; N],
    };

    /// A copy of `b`, or `None` when it is longer than `N` (or than `u16::MAX`).
    pub fn new(b: &[u8]) -> Option<Self> {
        if b.len() > N || b.len() > usize::from(u16::MAX) {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..b.len()].copy_from_slice(b);
        Some(InlineBytes {
            len: b.len() as u16,
            bytes,
        })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(N)]
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> PartialEq for InlineBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for InlineBytes<N> {}

impl<const N: usize> std::fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Longest MSRP URI of the MGW's own (`msrps://[IPv6]:port/session-id;tcp` fits with room).
pub const MSRP_URI_MAX: usize = 128;
/// Longest remote MSRP path (`a=path`: one URI, or a few when the peer uses relays, RFC 4976).
pub const MSRP_PATH_MAX: usize = 384;

/// One leg's MSRP URIs for To-Path/From-Path rewriting (RFC 4975 §8.1 `a=path`).
///
/// The local URI must parse (the install is refused otherwise). The remote path may be empty
/// while the peer's SDP is not known yet (a later Modify brings it); frames then wait, unread,
/// until the leg they are for is up, and a path that still does not parse then is an
/// application error that releases the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsrpRoute {
    /// The MGW's own URI on this leg: the `a=path` of its Local SDP.
    pub local_uri: InlineBytes<MSRP_URI_MAX>,
    /// The peer's `a=path` from the Remote SDP, space-separated URIs as received.
    pub remote_path: InlineBytes<MSRP_PATH_MAX>,
}

impl MsrpRoute {
    /// A route from the two values, or `None` when one is longer than its bound.
    pub fn new(local_uri: &[u8], remote_path: &[u8]) -> Option<MsrpRoute> {
        Some(MsrpRoute {
            local_uri: InlineBytes::new(local_uri)?,
            remote_path: InlineBytes::new(remote_path)?,
        })
    }

    /// The URIs as the MSRP rewriter takes them.
    pub fn paths(&self) -> mgw_app::msrp::LegPathsRef<'_> {
        mgw_app::msrp::LegPathsRef {
            local_uri: self.local_uri.as_bytes(),
            remote_path: self.remote_path.as_bytes(),
        }
    }
}

/// A context's program: two legs and what runs between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextProgram {
    /// The context.
    pub context: ContextId,
    /// Generation of this context id (bumped by control each time the id is reused).
    pub generation: u32,
    /// Application awareness.
    pub application: Application,
    /// Relay in application-aware mode (validate, count, rewrite) rather than agnostic.
    pub aware: bool,
    /// The two legs.
    pub legs: [LegProgram; 2],
}

/// A command from the control thread to a worker.
// Commands are deliberately inline and fixed-size (no Box): the ring's slots are allocated once
// and a worker never frees memory the control thread allocated.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowOp {
    /// Install a context (H.248 Add of its second termination, or Add of both).
    Install(ContextProgram),
    /// Start a delayed establishment on one leg (the MGC's establish signal).
    Establish {
        /// The H.248 ContextID the command is for.
        context: ContextId,
        /// Must equal the installed context's generation, or the worker ignores the command.
        generation: u32,
        /// Which leg.
        side: Side,
    },
    /// Update a leg that is not connected yet (H.248 Modify that brings the Remote SDP): its
    /// peer address and fingerprints are replaced and an active leg connects now. A live leg
    /// keeps its connection (`a=connection:existing`); changing its transport is not supported.
    Update {
        /// The H.248 ContextID the command is for.
        context: ContextId,
        /// Must equal the installed context's generation, or the worker ignores the command.
        generation: u32,
        /// Which leg.
        side: Side,
        /// The leg's new program.
        leg: LegProgram,
    },
    /// Release a context: close_notify, FIN, drain, then report [`FlowEvent::Released`]
    /// (H.248 Subtract).
    Release {
        /// The H.248 ContextID to release.
        context: ContextId,
        /// Must equal the installed context's generation, or the worker ignores the release.
        generation: u32,
    },
}

/// Why a TCP connection could not be established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFailure {
    /// No answer to our SYNs.
    Timeout,
    /// The peer answered with RST.
    Refused,
    /// Nobody connected to our passive leg in time.
    NoConnection,
    /// No connection slot or the 4-tuple is in use.
    Resources,
}

/// Why a (D)TLS session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityFailure {
    /// The peer certificate matched no fingerprint of the leg.
    FingerprintMismatch,
    /// A fatal alert (sent or received), by its TLS code.
    Alert(u8),
    /// The handshake did not finish in time.
    Timeout,
    /// Anything else the protocol forbids.
    Protocol,
}

impl From<mgw_tls::FailReason> for SecurityFailure {
    fn from(r: mgw_tls::FailReason) -> Self {
        match r {
            mgw_tls::FailReason::Alert(a) => SecurityFailure::Alert(a),
            mgw_tls::FailReason::FingerprintMismatch => SecurityFailure::FingerprintMismatch,
            mgw_tls::FailReason::Timeout => SecurityFailure::Timeout,
            mgw_tls::FailReason::ProtocolError { .. } => SecurityFailure::Protocol,
        }
    }
}

/// Why a context was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallFailure {
    /// The worker's context table is full.
    NoCapacity,
    /// A local address and port is already in use by another leg.
    AddressInUse,
    /// The context already exists in this generation.
    Duplicate,
    /// The program cannot be carried out (e.g. a TCP leg on a UDP-only application).
    Unsupported,
}

/// Per-leg traffic statistics, reported on release (H.248 `nt/os`, `nt/or`, MSRP stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Application bytes received from the peer (after decryption).
    pub octets_received: u64,
    /// Application bytes sent to the peer (before encryption).
    pub octets_sent: u64,
    /// Application messages received (MSRP frames, BFCP messages, UDPTL packets; datagrams
    /// or zero for opaque streams).
    pub messages_received: u64,
    /// Application messages sent.
    pub messages_sent: u64,
    /// Malformed application units dropped or leading to release.
    pub app_errors: u64,
    /// UDPTL packets lost (sequence gaps not recovered).
    pub lost: u64,
    /// UDPTL packets recovered from redundancy/FEC.
    pub recovered: u64,
}

/// An event from a worker to the control thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowEvent {
    /// The context is installed; its local addresses are live.
    Installed {
        /// The ContextID of the [`FlowOp::Install`] this answers.
        context: ContextId,
        /// The generation of that Install, which tells a late answer for a reused id apart.
        generation: u32,
    },
    /// The context could not be installed.
    InstallFailed {
        /// The ContextID of the [`FlowOp::Install`] this answers.
        context: ContextId,
        /// The generation of that Install, which tells a late answer for a reused id apart.
        generation: u32,
        /// Which resource or rule refused the program.
        reason: InstallFailure,
    },
    /// A leg's TCP connection is up.
    TcpUp {
        /// The ContextID that holds the leg.
        context: ContextId,
        /// The leg whose connection is up.
        side: Side,
    },
    /// A leg's TCP connection could not be established.
    TcpFailed {
        /// The ContextID that holds the leg.
        context: ContextId,
        /// The leg that could not connect.
        side: Side,
        /// A refused connection, no answer or no connection in time, or no slot for it.
        reason: TcpFailure,
    },
    /// A leg's (D)TLS session is up and the peer matched its fingerprint.
    SecureUp {
        /// The ContextID that holds the leg.
        context: ContextId,
        /// The leg whose session is up.
        side: Side,
    },
    /// A leg's (D)TLS session failed.
    SecureFailed {
        /// The ContextID that holds the leg.
        context: ContextId,
        /// The leg whose session failed.
        side: Side,
        /// A fingerprint mismatch, a fatal alert (by TLS code), a timeout, or another violation.
        reason: SecurityFailure,
    },
    /// A latching leg learned its peer.
    Latched {
        /// The ContextID that holds the leg.
        context: ContextId,
        /// The latching leg.
        side: Side,
        /// The peer.
        remote: SocketAddr,
    },
    /// The peer of a leg closed (FIN, RST, close_notify); the context is being released.
    PeerClosed {
        /// The ContextID that holds the leg.
        context: ContextId,
        /// The leg whose peer closed.
        side: Side,
    },
    /// The context is gone; its statistics, leg A then leg B.
    Released {
        /// The ContextID, free again in the worker.
        context: ContextId,
        /// The generation the context was installed with.
        generation: u32,
        /// Leg A's statistics at index 0, leg B's at 1 (as [`Side::index`] numbers them).
        stats: [LegStats; 2],
    },
}

impl FlowEvent {
    /// An event that answers a command (`Installed`, `InstallFailed`, `Released`): the control
    /// thread holds an H.248 reply until it comes, so it is never dropped.
    pub fn is_acknowledgement(&self) -> bool {
        matches!(
            self,
            FlowEvent::Installed { .. }
                | FlowEvent::InstallFailed { .. }
                | FlowEvent::Released { .. }
        )
    }
}

/// How workers wake the control thread when it blocks waiting for input, so that an event (an
/// acknowledgement that releases a held H.248 reply, a Notify) is handled as soon as it is
/// pushed, not at the control thread's next timeout.
///
/// The control thread [`park`](Doorbell::park)s before it blocks, looks at the event rings once
/// more, and [`unpark`](Doorbell::unpark)s when it wakes. A worker that pushed events during a
/// poll calls [`WorkerEnd::end_poll`], which rings only when the control thread is parked, and
/// only the first worker to see it parked rings: at most one wake-up (one syscall, an eventfd
/// write) per park, never one per event, and none at all while the control thread is busy.
pub struct Doorbell {
    parked: AtomicBool,
    ring: OnceLock<Box<dyn Fn() + Send + Sync>>,
    rings: AtomicU64,
}

impl fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Doorbell")
            .field("parked", &self.parked.load(Ordering::Relaxed))
            .field("connected", &self.ring.get().is_some())
            .field("rings", &self.rings.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for Doorbell {
    fn default() -> Self {
        Doorbell::new()
    }
}

impl Doorbell {
    /// A doorbell not yet connected to anything: it rings nothing until [`Doorbell::connect`].
    pub fn new() -> Doorbell {
        Doorbell {
            parked: AtomicBool::new(false),
            ring: OnceLock::new(),
            rings: AtomicU64::new(0),
        }
    }

    /// Sets what ringing does (for `mgwd`, a write to the control thread's eventfd). Only the
    /// first call takes effect; false for a later one.
    pub fn connect(&self, ring: impl Fn() + Send + Sync + 'static) -> bool {
        self.ring.set(Box::new(ring)).is_ok()
    }

    /// (Control thread) about to block. The caller must look at every event ring after this
    /// and before it blocks: an event pushed before the park is found there, one pushed after
    /// it rings.
    pub fn park(&self) {
        self.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// (Control thread) awake again: workers stop ringing.
    pub fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// (Worker) events were pushed: wake the control thread if it is parked. The fence orders
    /// the pushes before the look at `parked`, pairing with the one in [`Doorbell::park`].
    fn ring_if_parked(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            self.rings.fetch_add(1, Ordering::Relaxed);
            if let Some(ring) = self.ring.get() {
                ring();
            }
        }
    }

    /// How many times workers have rung (wake-ups of a parked control thread).
    pub fn rings(&self) -> u64 {
        self.rings.load(Ordering::Relaxed)
    }
}

/// The control thread's end of one worker's rings.
#[derive(Debug, Clone)]
pub struct ControlEnd {
    ops: Arc<ArrayQueue<FlowOp>>,
    events: Arc<ArrayQueue<FlowEvent>>,
}

/// The worker's end of its rings.
///
/// Events that find the ring full wait in a backlog of fixed capacity (allocated here, never
/// grown), in order. While the backlog is half full the worker takes no new commands, so an
/// acknowledgement (`Installed`, `InstallFailed`, `Released`) always finds room: each command
/// causes at most one at once. Other events are dropped, and counted, once the backlog is
/// half full.
#[derive(Debug)]
pub struct WorkerEnd {
    ops: Arc<ArrayQueue<FlowOp>>,
    events: Arc<ArrayQueue<FlowEvent>>,
    backlog: VecDeque<FlowEvent>,
    /// Events dropped because the ring and the backlog's lower half were full (the control
    /// thread fell far behind).
    pub events_lost: u64,
    doorbell: Option<Arc<Doorbell>>,
    /// Events were pushed to the ring since the last [`WorkerEnd::end_poll`].
    pushed: bool,
}

/// The least backlog capacity, so that even a one-slot event ring leaves room for the
/// acknowledgements of the commands a worker takes before it sees the backlog half full.
pub const BACKLOG_MIN: usize = 64;

/// A pair of rings: `ops_len` commands towards the worker, `events_len` events back.
pub fn channel(ops_len: usize, events_len: usize) -> (ControlEnd, WorkerEnd) {
    let ops = Arc::new(ArrayQueue::new(ops_len.max(1)));
    let events = Arc::new(ArrayQueue::new(events_len.max(1)));
    (
        ControlEnd {
            ops: Arc::clone(&ops),
            events: Arc::clone(&events),
        },
        WorkerEnd {
            ops,
            events,
            backlog: VecDeque::with_capacity(events_len.max(BACKLOG_MIN)),
            events_lost: 0,
            doorbell: None,
            pushed: false,
        },
    )
}

impl ControlEnd {
    /// Queues a command.
    ///
    /// # Errors
    /// The command back, when the ring is full.
    #[allow(clippy::result_large_err)] // the command itself, handed back for a retry
    pub fn send(&self, op: FlowOp) -> Result<(), FlowOp> {
        self.ops.push(op)
    }

    /// The next event, if any.
    pub fn recv(&self) -> Option<FlowEvent> {
        self.events.pop()
    }

    /// Commands queued that the worker has not taken yet.
    pub fn pending_ops(&self) -> usize {
        self.ops.len()
    }

    /// Events the worker pushed that have not been received yet (its backlog not included).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }
}

impl WorkerEnd {
    /// The next command, if any. None also while the backlog of events is half full: the
    /// control thread must catch up first.
    pub fn recv(&mut self) -> Option<FlowOp> {
        self.drain_backlog();
        if self.backlog.len() >= self.backlog.capacity() / 2 {
            return None;
        }
        self.ops.pop()
    }

    /// Rings `doorbell` (see [`Doorbell`]) after each poll that pushed events.
    #[must_use]
    pub fn with_doorbell(mut self, doorbell: Arc<Doorbell>) -> WorkerEnd {
        self.doorbell = Some(doorbell);
        self
    }

    /// The end of one worker poll: if events were pushed during it, wake the control thread
    /// when it is parked. No syscall otherwise.
    pub fn end_poll(&mut self) {
        if std::mem::take(&mut self.pushed) {
            if let Some(d) = &self.doorbell {
                d.ring_if_parked();
            }
        }
    }

    /// Reports an event, in order after those waiting in the backlog.
    pub fn send(&mut self, ev: FlowEvent) {
        self.drain_backlog();
        let ev = if self.backlog.is_empty() {
            match self.events.push(ev) {
                Ok(()) => {
                    self.pushed = true;
                    return;
                }
                Err(ev) => ev,
            }
        } else {
            ev
        };
        let room = if ev.is_acknowledgement() {
            self.backlog.capacity()
        } else {
            self.backlog.capacity() / 2
        };
        if self.backlog.len() < room {
            self.backlog.push_back(ev);
        } else {
            self.events_lost += 1;
        }
    }

    /// Events waiting for room in the ring.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    fn drain_backlog(&mut self) {
        while let Some(ev) = self.backlog.pop_front() {
            if let Err(ev) = self.events.push(ev) {
                self.backlog.push_front(ev);
                return;
            }
            self.pushed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(context: ContextId) -> FlowEvent {
        FlowEvent::Installed {
            context,
            generation: 1,
        }
    }

    /// The control thread is woken once per park, by the first poll that reports events while
    /// it is parked; never while it is awake, never by a poll without events.
    #[test]
    fn the_doorbell_rings_once_per_park_and_only_after_events() {
        let rung = Arc::new(AtomicU64::new(0));
        let bell = Arc::new(Doorbell::new());
        let r = Arc::clone(&rung);
        assert!(bell.connect(move || {
            r.fetch_add(1, Ordering::Relaxed);
        }));
        assert!(!bell.connect(|| {}), "only the first connect takes effect");
        let (ctl, w) = channel(8, 8);
        let mut w = w.with_doorbell(Arc::clone(&bell));
        let rung = || rung.load(Ordering::Relaxed);
        w.send(installed(1));
        w.end_poll();
        assert_eq!(rung(), 0, "awake: no ring");
        bell.park();
        w.end_poll();
        assert_eq!(rung(), 0, "a poll without events does not ring");
        w.send(installed(2));
        w.send(installed(3));
        w.end_poll();
        assert_eq!(rung(), 1, "one ring for a poll's events");
        w.send(installed(4));
        w.end_poll();
        assert_eq!(
            rung(),
            1,
            "woken already: no second ring before the next park"
        );
        bell.unpark();
        bell.park();
        w.send(installed(5));
        w.end_poll();
        assert_eq!(rung(), 2);
        assert_eq!(bell.rings(), 2);
        let mut n = 0;
        while ctl.recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 5);
    }

    /// Finding 4 of issue 12: with the event ring full, acknowledgements used to be dropped, so
    /// the H.248 replies waiting for them were never sent. Now they wait, in order, and the
    /// worker takes no new command until the control thread catches up.
    #[test]
    fn acknowledgements_survive_a_full_event_ring() {
        let (ctl, mut w) = channel(8, 1);
        for c in 0..3 {
            w.send(installed(c));
        }
        assert_eq!(w.backlog(), 2);
        assert_eq!(w.events_lost, 0);
        // Informational events are dropped once the backlog is half full; acknowledgements not.
        let half = w.backlog.capacity() / 2;
        for c in 3..u32::try_from(half).unwrap() + 10 {
            w.send(FlowEvent::TcpUp {
                context: c,
                side: Side::A,
            });
        }
        assert_eq!(w.backlog(), half);
        assert_eq!(w.events_lost, 9, "half + 7 sent, half - 2 kept");
        w.send(installed(99));
        assert_eq!(w.backlog(), half + 1);
        // Half full: commands wait.
        assert!(ctl
            .send(FlowOp::Release {
                context: 1,
                generation: 1,
            })
            .is_ok());
        assert!(
            w.recv().is_none(),
            "no command while the backlog is half full"
        );
        let mut got = Vec::new();
        while let Some(ev) = ctl.recv() {
            got.push(ev);
            let _ = w.recv();
        }
        assert_eq!(got.len(), half + 2);
        assert_eq!(&got[..3], &[installed(0), installed(1), installed(2)]);
        assert_eq!(got.last(), Some(&installed(99)));
        assert_eq!(w.backlog(), 0);
    }
}
