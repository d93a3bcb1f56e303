//! The control-plane driver: a UDP socket around the sans-IO [`Association`] and [`Mg`].
//!
//! This is the only I/O in the crate. It reads the clock once per [`Server::poll`], feeds
//! datagrams and timeouts to the association, executes requests on the MG model, answers them,
//! and hands the resulting [`LegChange`]s to the caller (the `mgwd` binary turns them into data
//! plane flow commands). Over TCP (H.248.1 Annex D.2) the MG connects to the MGC and frames
//! every message with [`tpkt`] as Erlang's `megaco_tcp` does; set
//! [`TransactionConfig::reliable`](crate::h248::transaction::TransactionConfig::reliable) then,
//! so that requests are not retransmitted.
//!
//! Nothing here waits on a peer. Over UDP a failed `send_to` is counted and the datagram is left
//! to H.248 retransmission. Over TCP the sockets are non-blocking (mio): a connect that has not
//! completed within [`TCP_CONNECT_TIMEOUT`] is abandoned, what the MGC has not read yet waits in
//! a queue of at most [`TCP_QUEUE_MAX`] bytes, and an MGC that lets it fill is cut off, after
//! which the association's timers fail over as they would for a lost MGC. A poll reads at most
//! [`TCP_READS_PER_POLL`] buffers per connection. A held reply (see
//! [`ServerConfig::defer_replies`]) that the caller does not complete within
//! `pending_after × max_pendings` (the time the MG keeps the MGC waiting with Pending) is
//! answered with error 500 and reported as [`ServerEvent::Expired`]. [`Server::in_memory`] swaps the socket and the clock
//! for queues and a time the caller sets, so a whole session (with the `mgwd` glue) runs in
//! memory: the fuzz target `h248_gateway_session` and tests drive it that way.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::h248::transaction::tpkt;

use mgw_core::time::Instant;

use crate::h248::association::{AssocEvent, Association, AssociationConfig};
use crate::h248::ast::{
    Command, CommandReply, ErrorDescriptor, Mid, PropertyParm, ReplyResult, TransactionRequest,
};
use crate::h248::mg::{LegChange, Mg, MgConfig, TerminationStats};
use crate::procedures::Realms;

/// H.248 transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// UDP (Annex D.1).
    #[default]
    Udp,
    /// TCP with TPKT framing (Annex D.2); the MG connects to the MGC.
    Tcp,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Local UDP address for H.248 (normally port 2944); for TCP, only its IP is used.
    pub bind: SocketAddr,
    /// UDP or TCP.
    pub transport: TransportKind,
    /// Our mId (written in every message header).
    pub mid: Mid,
    /// Association settings (MGC list, timers).
    pub association: AssociationConfig,
    /// MG model limits.
    pub mg: MgConfig,
    /// Hold each reply until the caller confirms the data plane applied its leg changes
    /// ([`ServerEvent::Execute`] + [`Server::complete`]); the transaction layer sends Pending
    /// meanwhile. When false, replies go out at once and changes come as [`ServerEvent::Leg`].
    /// A held reply not completed within `pending_after × max_pendings` of the association's
    /// transaction settings (at least [`HELD_TIMEOUT_MIN`]) is answered with error 500.
    pub defer_replies: bool,
}

/// Most bytes queued towards one peer over TCP. An MGC that leaves this much unread is cut off.
pub const TCP_QUEUE_MAX: usize = 1 << 20;

/// How long a TCP connect to the MGC may take before it is abandoned.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads (of up to 64 kB) per TCP connection per poll: the bound on one poll's input work.
pub const TCP_READS_PER_POLL: usize = 16;

/// Datagrams read per poll over UDP: the bound on one poll's input work.
pub const UDP_READS_PER_POLL: usize = 64;

/// The poll token of the [`ServerWaker`]; TCP connections count up from 0, the UDP socket is 0.
const WAKE: Token = Token(usize::MAX);

/// Wakes a [`Server`] blocked in [`Server::poll`] from another thread (an eventfd write): the
/// poll returns at once, so the caller can look at its other inputs (the workers' events).
#[derive(Clone, Debug)]
pub struct ServerWaker(Arc<Waker>);

impl ServerWaker {
    /// Wakes the server's poll (or its next one, if it is not blocked now). A failed wake (the
    /// eventfd gone) is ignored: the poll still returns at its timeout.
    pub fn wake(&self) {
        let _ = self.0.wake();
    }
}

/// The UDP transport: the socket and its readiness poller.
struct Udp {
    socket: UdpSocket,
    poll: Poll,
    events: Events,
}

/// The shortest deadline of a held reply.
pub const HELD_TIMEOUT_MIN: Duration = Duration::from_millis(500);

/// Transport counters of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// Messages that could not be sent (a `send_to` error, a reply too large for TPKT, no
    /// connection to the peer).
    pub transmit_errors: u64,
    /// TCP connects that failed or did not complete in time.
    pub tcp_connect_failed: u64,
    /// TCP connections cut because the peer left [`TCP_QUEUE_MAX`] bytes unread.
    pub tcp_queue_overflow: u64,
    /// TCP connections closed: by the peer, on an I/O error, or on a framing error.
    pub tcp_closed: u64,
    /// Held replies answered with error 500 because the caller did not complete them in time.
    pub held_expired: u64,
}

/// The commands counted in [`TransactionStats::commands`], in its order (the metric label).
pub const COMMANDS: [&str; 8] = [
    "add",
    "modify",
    "move",
    "subtract",
    "audit_value",
    "audit_capabilities",
    "notify",
    "service_change",
];

/// Upper bounds, in µs, of the reply-latency histogram's buckets
/// ([`TransactionStats::latency_buckets`]); a last bucket takes the rest.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// What the MG answered to the MGC's requests, and how long each answer took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionStats {
    /// Commands answered, by [`COMMANDS`] index, as `[succeeded, failed]`. A command fails
    /// when its action stops at it (an error descriptor) or the whole transaction fails (a
    /// transaction error, a data-plane refusal, a held reply's deadline); commands an action
    /// never reached are not counted.
    pub commands: [[u64; 2]; COMMANDS.len()],
    /// Replies by latency, the time from the request's arrival to its reply (for a held reply,
    /// until the data plane confirmed): one count per [`LATENCY_BUCKETS_US`] bucket (a reply
    /// falls in the first whose bound it does not exceed), then one for the rest. Not
    /// cumulative.
    pub latency_buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    /// The sum of the latencies counted, µs.
    pub latency_sum_us: u64,
    /// Replies counted in the histogram.
    pub replies: u64,
}

/// The [`COMMANDS`] index of a command.
fn command_index(c: &Command) -> u8 {
    match c {
        Command::Add(_) => 0,
        Command::Modify(_) => 1,
        Command::Move(_) => 2,
        Command::Subtract(_) => 3,
        Command::AuditValue(_) => 4,
        Command::AuditCapabilities(_) => 5,
        Command::Notify(_) => 6,
        Command::ServiceChange(_) => 7,
    }
}

/// A request's commands, per action, by [`COMMANDS`] index: what its reply is counted against.
fn request_shape(r: &TransactionRequest) -> Vec<Vec<u8>> {
    r.actions
        .iter()
        .map(|a| {
            a.commands
                .iter()
                .map(|c| command_index(&c.command))
                .collect()
        })
        .collect()
}

impl TransactionStats {
    /// Counts one reply to a request of `shape`, sent `latency` after the request arrived.
    fn count(&mut self, shape: &[Vec<u8>], result: &ReplyResult, latency: Duration) {
        for (i, commands) in shape.iter().enumerate() {
            let (answered, failed) = match result {
                ReplyResult::Error(_) => (0, true),
                ReplyResult::Actions(actions) => actions
                    .get(i)
                    .map_or((0, true), |a| (a.replies.len(), a.error.is_some())),
            };
            for (k, &c) in commands.iter().enumerate() {
                let slot = &mut self.commands[usize::from(c)];
                if k < answered {
                    slot[0] += 1;
                } else if failed {
                    slot[1] += 1;
                    break;
                }
            }
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency_buckets[bucket] += 1;
        self.latency_sum_us = self.latency_sum_us.saturating_add(us);
        self.replies += 1;
    }
}

/// Identifies a held reply (see [`ServerConfig::defer_replies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyToken(u64);

/// What happened during a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// (Deferred replies) apply these leg changes, then call [`Server::complete`] with the
    /// token. The reply to the MGC is held until then.
    Execute {
        /// Pass to [`Server::complete`].
        token: ReplyToken,
        /// Changes to apply, in order.
        changes: Vec<LegChange>,
    },
    /// A leg to install, update or release.
    Leg(Box<LegChange>),
    /// Registered with an MGC.
    Registered {
        /// The MGC.
        mgc: SocketAddr,
        /// Negotiated version.
        version: u8,
    },
    /// Lost the MGC; re-registering elsewhere.
    Failover {
        /// The MGC lost.
        from: SocketAddr,
    },
    /// A Notify we sent was never answered.
    NotifyFailed {
        /// Its transaction ID.
        id: u32,
    },
    /// Out of service after shutdown.
    Down,
    /// A held reply was not completed in time and went out as error 500; the token is void.
    Expired {
        /// The token that [`ServerEvent::Execute`] gave.
        token: ReplyToken,
    },
}

/// One TCP connection to a peer (the MG connects; it never accepts).
struct TcpConn {
    stream: TcpStream,
    token: Token,
    /// When the connect started; `None` once it completed.
    connecting: Option<Instant>,
    decoder: tpkt::Decoder,
    /// Frames not yet written; `out[..sent]` is already on the wire.
    out: Vec<u8>,
    sent: usize,
    /// The last poll left input unread (readiness is edge-triggered).
    readable: bool,
}

impl TcpConn {
    /// Writes what is queued, until the socket would block.
    fn write_queued(&mut self) -> io::Result<()> {
        if self.connecting.is_some() {
            return Ok(());
        }
        while let Some(rest) = self.out.get(self.sent..).filter(|r| !r.is_empty()) {
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        Ok(())
    }

    /// Queues a frame; false if that would put more than [`TCP_QUEUE_MAX`] bytes in the queue.
    fn queue(&mut self, frame: &[u8]) -> bool {
        if self.out.len() - self.sent + frame.len() > TCP_QUEUE_MAX {
            return false;
        }
        self.out.drain(..self.sent);
        self.sent = 0;
        self.out.extend_from_slice(frame);
        true
    }

    /// A pending connect completed: true when connected, an error when it failed.
    fn connected(&mut self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connecting = None;
                self.stream.set_nodelay(true)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The TCP transport: the connections and their readiness poller.
struct Tcp {
    poll: Poll,
    events: Events,
    conns: HashMap<SocketAddr, TcpConn>,
    next_token: usize,
}

/// A reply held for the caller's confirmation.
struct HeldReply {
    to: SocketAddr,
    id: u32,
    result: ReplyResult,
    /// The request's commands, for [`TransactionStats`].
    shape: Vec<Vec<u8>>,
    /// When the request arrived.
    received: Instant,
}

/// The transport of [`Server::in_memory`]: datagrams both ways, and the clock.
#[derive(Default)]
struct Memory {
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    now: Instant,
}

/// The H.248 control server.
pub struct Server {
    udp: Option<Udp>,
    waker: Option<ServerWaker>,
    memory: Option<Memory>,
    tcp: Option<Tcp>,
    assoc: Association,
    mg: Mg,
    origin: std::time::Instant,
    buf: Vec<u8>,
    defer: bool,
    held: HashMap<ReplyToken, HeldReply>,
    /// Deadlines of held replies, oldest first (a completed token stays until its deadline).
    held_deadlines: VecDeque<(Instant, ReplyToken)>,
    held_timeout: Duration,
    next_token: u64,
    counters: ServerCounters,
    transactions: TransactionStats,
}

/// The cores' clock: the time since `origin`.
fn since(origin: std::time::Instant) -> Instant {
    Instant::from_nanos(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// The deadline of a held reply: as long as the MG keeps the MGC waiting with Pending.
fn held_timeout(cfg: &ServerConfig) -> Duration {
    let t = &cfg.association.transaction;
    t.pending_after
        .saturating_mul(t.max_pendings)
        .max(HELD_TIMEOUT_MIN)
}

impl Server {
    /// Bind the socket and start the association. `random` seeds the restart-avalanche delay
    /// and the first transaction ID.
    ///
    /// # Errors
    /// Socket errors.
    pub fn bind(
        cfg: ServerConfig,
        realms: Realms,
        fingerprint: String,
        random: u64,
    ) -> io::Result<Self> {
        // The waker is registered with the poll of whichever transport is set up.
        let (udp, tcp, waker) = match cfg.transport {
            TransportKind::Udp => {
                let mut socket = UdpSocket::bind(cfg.bind)?;
                let poll = Poll::new()?;
                poll.registry()
                    .register(&mut socket, Token(0), Interest::READABLE)?;
                let waker = Waker::new(poll.registry(), WAKE)?;
                let udp = Udp {
                    socket,
                    poll,
                    events: Events::with_capacity(8),
                };
                (Some(udp), None, waker)
            }
            TransportKind::Tcp => {
                let poll = Poll::new()?;
                let waker = Waker::new(poll.registry(), WAKE)?;
                let tcp = Tcp {
                    poll,
                    events: Events::with_capacity(64),
                    conns: HashMap::new(),
                    next_token: 0,
                };
                (None, Some(tcp), waker)
            }
        };
        let waker = ServerWaker(Arc::new(waker));
        let origin = std::time::Instant::now();
        let first_id = u32::try_from(random >> 40).unwrap_or(1).max(1);
        let held_timeout = held_timeout(&cfg);
        let assoc = Association::new(cfg.association, cfg.mid, first_id, random, Instant::ZERO);
        Ok(Server {
            udp,
            waker: Some(waker),
            memory: None,
            tcp,
            assoc,
            mg: Mg::new(cfg.mg, realms, fingerprint),
            origin,
            buf: vec![0; 65_536],
            defer: cfg.defer_replies,
            held: HashMap::new(),
            held_deadlines: VecDeque::new(),
            held_timeout,
            next_token: 1,
            counters: ServerCounters::default(),
            transactions: TransactionStats::default(),
        })
    }

    /// A server without a socket or a clock: datagrams go in with [`Server::push_datagram`]
    /// and come out of [`Server::pop_transmit`], and time is what [`Server::set_now`] last
    /// said (from [`Instant::ZERO`]). `cfg.bind` and `cfg.transport` are ignored. A poll
    /// handles at most one datagram and never waits.
    pub fn in_memory(cfg: ServerConfig, realms: Realms, fingerprint: String, random: u64) -> Self {
        let first_id = u32::try_from(random >> 40).unwrap_or(1).max(1);
        let held_timeout = held_timeout(&cfg);
        let assoc = Association::new(cfg.association, cfg.mid, first_id, random, Instant::ZERO);
        Server {
            udp: None,
            waker: None,
            memory: Some(Memory::default()),
            tcp: None,
            assoc,
            mg: Mg::new(cfg.mg, realms, fingerprint),
            origin: std::time::Instant::now(),
            buf: Vec::new(),
            defer: cfg.defer_replies,
            held: HashMap::new(),
            held_deadlines: VecDeque::new(),
            held_timeout,
            next_token: 1,
            counters: ServerCounters::default(),
            transactions: TransactionStats::default(),
        }
    }

    /// (In memory) queues a datagram from `from` for the next poll. No-op for a socket server.
    pub fn push_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        if let Some(m) = &mut self.memory {
            m.inbox.push_back((from, bytes.to_vec()));
        }
    }

    /// (In memory) the next message the server sent: its destination and bytes.
    pub fn pop_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.memory.as_mut()?.outbox.pop_front()
    }

    /// (In memory) sets the clock; it never goes backwards (an earlier `now` is ignored).
    pub fn set_now(&mut self, now: Instant) {
        if let Some(m) = &mut self.memory {
            m.now = m.now.max(now);
        }
    }

    /// The bound address.
    ///
    /// # Errors
    /// Socket errors.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.udp {
            Some(u) => u.socket.local_addr(),
            None => self
                .tcp
                .as_ref()
                .and_then(|t| t.conns.values().find(|c| c.connecting.is_none()))
                .map_or(Err(io::ErrorKind::NotConnected.into()), |c| {
                    c.stream.local_addr()
                }),
        }
    }

    /// Transport counters.
    pub fn counters(&self) -> ServerCounters {
        self.counters
    }

    /// The commands answered and the reply latencies.
    pub fn transaction_stats(&self) -> TransactionStats {
        self.transactions
    }

    /// Replies held for [`Server::complete`].
    pub fn held_replies(&self) -> usize {
        self.held.len()
    }

    /// Current time on the cores' clock.
    pub fn now(&self) -> Instant {
        if let Some(m) = &self.memory {
            return m.now;
        }
        since(self.origin)
    }

    /// The MG model.
    pub fn mg(&self) -> &Mg {
        &self.mg
    }

    /// The association.
    pub fn association(&self) -> &Association {
        &self.assoc
    }

    /// Sends what the association queued. Never fails: what cannot be sent is counted and left
    /// to the transaction layer's timers.
    fn flush(&mut self) {
        let now = self.now();
        while let Some(t) = self.assoc.poll_transmit() {
            if let Some(m) = &mut self.memory {
                m.outbox.push_back((t.to, t.bytes));
            } else if let Some(udp) = &self.udp {
                // A lost datagram (a full socket buffer included) is recovered by H.248
                // retransmission.
                if udp.socket.send_to(&t.bytes, t.to).is_err() {
                    self.counters.transmit_errors += 1;
                }
            } else if !self.tcp_queue(now, t.to, &t.bytes) {
                self.counters.transmit_errors += 1;
            }
        }
        self.tcp_write();
    }

    /// Queues a message towards `to` over TCP, connecting first if need be. False if it could
    /// not be queued.
    fn tcp_queue(&mut self, now: Instant, to: SocketAddr, bytes: &[u8]) -> bool {
        let (Some(tcp), Some(frame)) = (self.tcp.as_mut(), tpkt::encode(bytes)) else {
            return false;
        };
        if !tcp.conns.contains_key(&to) {
            let token = Token(tcp.next_token);
            tcp.next_token = tcp.next_token.wrapping_add(1);
            let started = TcpStream::connect(to).and_then(|mut stream| {
                tcp.poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
            let Ok(stream) = started else {
                self.counters.tcp_connect_failed += 1;
                return false;
            };
            tcp.conns.insert(
                to,
                TcpConn {
                    stream,
                    token,
                    connecting: Some(now),
                    decoder: tpkt::Decoder::default(),
                    out: Vec::new(),
                    sent: 0,
                    readable: false,
                },
            );
        }
        let Some(c) = tcp.conns.get_mut(&to) else {
            return false;
        };
        if c.queue(&frame) {
            return true;
        }
        self.counters.tcp_queue_overflow += 1;
        Self::tcp_close(tcp, to);
        false
    }

    /// Writes every connection's queue as far as its socket takes it.
    fn tcp_write(&mut self) {
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        let failed: Vec<SocketAddr> = tcp
            .conns
            .iter_mut()
            .filter_map(|(a, c)| c.write_queued().is_err().then_some(*a))
            .collect();
        for a in failed {
            self.counters.tcp_closed += 1;
            Self::tcp_close(tcp, a);
        }
    }

    fn tcp_close(tcp: &mut Tcp, peer: SocketAddr) {
        if let Some(mut c) = tcp.conns.remove(&peer) {
            let _ = tcp.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Wait up to `wait` for input; feed what arrives to the association.
    fn receive(&mut self, wait: Duration) -> io::Result<()> {
        if let Some(m) = &mut self.memory {
            if let Some((from, data)) = m.inbox.pop_front() {
                let now = m.now;
                self.assoc.handle_datagram(now, from, &data);
            }
            return Ok(());
        }
        if self.udp.is_some() {
            return self.udp_receive(wait);
        }
        self.tcp_receive(wait)
    }

    /// The UDP side of [`Server::receive`]: reads what is queued (at most
    /// [`UDP_READS_PER_POLL`] datagrams); only when nothing is, waits up to `wait` for a
    /// datagram or a [`ServerWaker`], then reads again. Readiness is edge-triggered, so the
    /// socket is read until it would block before the poll waits.
    fn udp_receive(&mut self, wait: Duration) -> io::Result<()> {
        if self.udp_read()? > 0 || wait.is_zero() {
            return Ok(());
        }
        let Some(udp) = self.udp.as_mut() else {
            return Ok(());
        };
        match udp.poll.poll(&mut udp.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.udp_read().map(|_| ())
    }

    /// Reads and handles up to [`UDP_READS_PER_POLL`] datagrams; how many were read.
    fn udp_read(&mut self) -> io::Result<usize> {
        let Some(udp) = self.udp.as_ref() else {
            return Ok(0);
        };
        let mut n = 0;
        while n < UDP_READS_PER_POLL {
            match udp.socket.recv_from(&mut self.buf) {
                Ok((len, from)) => {
                    n += 1;
                    let now = since(self.origin);
                    let data = self.buf.get(..len).unwrap_or(&[]);
                    self.assoc.handle_datagram(now, from, data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error reported on the socket (a port unreachable for an earlier
                // send) says nothing about the next datagram.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// A handle that wakes this server's [`Server::poll`] from another thread. None for
    /// [`Server::in_memory`], whose poll never waits.
    pub fn waker(&self) -> Option<ServerWaker> {
        self.waker.clone()
    }

    /// The TCP side of [`Server::receive`]: waits for readiness, completes connects, writes
    /// queues and reads (a bounded amount) from every connection.
    fn tcp_receive(&mut self, wait: Duration) -> io::Result<()> {
        let origin = self.origin;
        let Some(tcp) = self.tcp.as_mut() else {
            return Ok(());
        };
        // Input left over from the last poll is read at once.
        let wait = if tcp.conns.values().any(|c| c.readable) {
            Duration::ZERO
        } else {
            wait
        };
        match tcp.poll.poll(&mut tcp.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for ev in tcp.events.iter() {
            if let Some(c) = tcp.conns.values_mut().find(|c| c.token == ev.token()) {
                c.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
            }
        }
        let now = since(origin);
        let mut closed = Vec::new();
        let mut frames = Vec::new();
        for (peer, c) in &mut tcp.conns {
            if let Some(since) = c.connecting {
                match c.connected() {
                    Ok(true) => {}
                    Ok(false) if now.saturating_duration_since(since) < TCP_CONNECT_TIMEOUT => {
                        continue;
                    }
                    Ok(false) | Err(_) => {
                        self.counters.tcp_connect_failed += 1;
                        closed.push(*peer);
                        continue;
                    }
                }
            }
            if c.write_queued().is_err() {
                self.counters.tcp_closed += 1;
                closed.push(*peer);
                continue;
            }
            if !c.readable {
                continue;
            }
            let mut open = true;
            let mut drained = false;
            for _ in 0..TCP_READS_PER_POLL {
                match c.stream.read(&mut self.buf) {
                    Ok(0) => open = false,
                    Ok(n) => {
                        c.decoder.push(self.buf.get(..n).unwrap_or(&[]));
                        loop {
                            match c.decoder.next_frame() {
                                Ok(Some(f)) => frames.push((*peer, f)),
                                Ok(None) => break,
                                Err(_) => {
                                    // RFC 1006 framing lost: the stream cannot be resynchronised.
                                    open = false;
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => drained = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => open = false,
                }
                if !open || drained {
                    break;
                }
            }
            c.readable = !drained;
            if !open {
                self.counters.tcp_closed += 1;
                closed.push(*peer);
            }
        }
        for p in closed {
            Self::tcp_close(tcp, p);
        }
        for (peer, f) in frames {
            self.assoc.handle_datagram(now, peer, &f);
        }
        Ok(())
    }

    /// Wait up to `max_wait` for a message or a timer, process it, and return what happened.
    ///
    /// # Errors
    /// Socket errors other than timeouts.
    pub fn poll(&mut self, max_wait: Duration) -> io::Result<Vec<ServerEvent>> {
        self.flush();
        let now = self.now();
        let wake = [
            self.assoc.poll_timeout(),
            self.held_deadlines.front().map(|(d, _)| *d),
        ];
        // A zero `max_wait` (the caller has other input waiting) never blocks; otherwise a
        // deadline already due still waits a millisecond, so a deadline that cannot advance
        // does not spin.
        let wait = if max_wait.is_zero() {
            Duration::ZERO
        } else {
            wake.into_iter()
                .flatten()
                .map(|t| t.saturating_duration_since(now))
                .fold(max_wait, Duration::min)
                .max(Duration::from_millis(1))
        };
        // An input error (a signal, a socket error) is returned only after what is already
        // queued has been processed, so that no event is lost with it.
        let received = self.receive(wait);
        let now = self.now();
        if self.assoc.poll_timeout().is_some_and(|t| t <= now) {
            self.assoc.handle_timeout(now);
        }
        let mut out = Vec::new();
        while let Some(ev) = self.assoc.poll_event() {
            match ev {
                AssocEvent::Request { from, request } => {
                    let (result, changes) = self.mg.execute(now, &request);
                    let shape = request_shape(&request);
                    if self.defer && !changes.is_empty() {
                        let token = ReplyToken(self.next_token);
                        self.next_token += 1;
                        self.held.insert(
                            token,
                            HeldReply {
                                to: from,
                                id: request.id,
                                result,
                                shape,
                                received: now,
                            },
                        );
                        self.held_deadlines
                            .push_back((now + self.held_timeout, token));
                        out.push(ServerEvent::Execute { token, changes });
                    } else {
                        let latency = self.now().saturating_duration_since(now);
                        self.transactions.count(&shape, &result, latency);
                        self.assoc.reply(now, from, request.id, result);
                        out.extend(changes.into_iter().map(|c| ServerEvent::Leg(Box::new(c))));
                    }
                }
                AssocEvent::Registered { mgc, version } => {
                    out.push(ServerEvent::Registered { mgc, version });
                }
                AssocEvent::Failover { from } => out.push(ServerEvent::Failover { from }),
                AssocEvent::RequestFailed { id } => out.push(ServerEvent::NotifyFailed { id }),
                AssocEvent::Reply { .. } => {}
                AssocEvent::Down => out.push(ServerEvent::Down),
            }
        }
        self.expire_held(now, &mut out);
        self.flush();
        match received {
            Err(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Answers, with error 500, every held reply whose deadline has passed.
    fn expire_held(&mut self, now: Instant, out: &mut Vec<ServerEvent>) {
        while let Some(&(deadline, token)) = self.held_deadlines.front() {
            if deadline > now {
                break;
            }
            self.held_deadlines.pop_front();
            let Some(h) = self.held.remove(&token) else {
                continue; // completed in time
            };
            self.counters.held_expired += 1;
            let error = ReplyResult::Error(ErrorDescriptor {
                code: 500,
                text: Some("the data plane did not confirm in time".into()),
            });
            let latency = now.saturating_duration_since(h.received);
            self.transactions.count(&h.shape, &error, latency);
            self.assoc.reply(now, h.to, h.id, error);
            out.push(ServerEvent::Expired { token });
        }
    }

    /// Report a data-plane event on a termination; sends a Notify if the MGC armed it. Returns
    /// the Notify's transaction ID.
    pub fn observe(
        &mut self,
        termination: &str,
        event: &str,
        parameters: Vec<PropertyParm>,
    ) -> Option<u32> {
        let action = self.mg.observe(termination, event, parameters, None)?;
        let now = self.now();
        let id = self.assoc.send_request(now, vec![action]);
        self.flush();
        id
    }

    /// Release a held reply. `Ok(())`: the data plane applied the changes, the MG's reply goes
    /// out as computed. `Err(e)`: it could not (e.g. no worker capacity); the MGC gets a
    /// transaction error `e` instead. The MG model is not rolled back in that case: the MGC is
    /// expected to Subtract what it added.
    ///
    /// Returns false for an unknown token.
    pub fn complete(&mut self, token: ReplyToken, outcome: Result<(), ErrorDescriptor>) -> bool {
        let Some(HeldReply {
            to,
            id,
            result,
            shape,
            received,
        }) = self.held.remove(&token)
        else {
            return false;
        };
        let result = match outcome {
            Ok(()) => result,
            Err(e) => ReplyResult::Error(e),
        };
        let now = self.now();
        self.transactions
            .count(&shape, &result, now.saturating_duration_since(received));
        self.assoc.reply(now, to, id, result);
        self.flush();
        true
    }

    /// Like [`Server::complete`] with `Ok(())`, after writing the data plane's final counters
    /// into the held reply: the `nt/os` and `nt/or` statistics of each Subtract whose
    /// termination is named in `stats`. A Subtract's counters only exist once the data plane has
    /// released the legs, which is after the MG model built the reply.
    ///
    /// Returns false for an unknown token.
    pub fn complete_with_stats(
        &mut self,
        token: ReplyToken,
        stats: &[(String, TerminationStats)],
    ) -> bool {
        if let Some(HeldReply {
            result: ReplyResult::Actions(actions),
            ..
        }) = self.held.get_mut(&token)
        {
            for reply in actions.iter_mut().flat_map(|a| a.replies.iter_mut()) {
                let CommandReply::Subtract(x) = reply else {
                    continue;
                };
                let Some((_, s)) = stats.iter().find(|(t, _)| *t == x.termination.0) else {
                    continue;
                };
                for p in x.audit.statistics.iter_mut().flatten() {
                    match p.name.as_str() {
                        "nt/os" => p.values = vec![s.octets_sent.to_string()],
                        "nt/or" => p.values = vec![s.octets_received.to_string()],
                        _ => {}
                    }
                }
            }
        }
        self.complete(token, Ok(()))
    }

    /// Update a termination's traffic counters.
    pub fn update_stats(&mut self, termination: &str, stats: TerminationStats) {
        self.mg.update_stats(termination, stats);
    }

    /// Begin shutdown (Forced, or Graceful after `graceful`).
    pub fn shutdown(&mut self, graceful: Option<Duration>) {
        let now = self.now();
        self.assoc.shutdown(now, graceful);
        self.flush();
    }
}
