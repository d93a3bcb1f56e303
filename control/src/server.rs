//! The control-plane driver: a UDP socket around the sans-IO [`Association`] and [`Mg`].
//!
//! This is the only I/O in the crate. It reads the clock once per [`Server::poll`], feeds
//! datagrams and timeouts to the association, executes requests on the MG model, answers them,
//! and hands the resulting [`LegChange`]s to the caller (the `mgwd` binary turns them into data
//! plane flow commands). Over TCP (H.248.1 Annex D.2) the MG connects to the MGC and frames
//! every message with [`tpkt`] as Erlang's `megaco_tcp` does; set
//! [`TransactionConfig::reliable`](crate::h248::transaction::TransactionConfig::reliable) then,
//! so that requests are not retransmitted. [`Server::in_memory`] swaps the socket and the clock
//! for queues and a time the caller sets, so a whole session (with the `mgwd` glue) runs in
//! memory: the fuzz target `h248_gateway_session` and tests drive it that way.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::h248::transaction::tpkt;

use dataplane::time::Instant;

use crate::h248::association::{AssocEvent, Association, AssociationConfig};
use crate::h248::ast::{CommandReply, Mid, PropertyParm, ReplyResult};
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
    pub defer_replies: bool,
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
}

struct TcpConn {
    stream: TcpStream,
    decoder: tpkt::Decoder,
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
    socket: Option<UdpSocket>,
    memory: Option<Memory>,
    tcp: HashMap<SocketAddr, TcpConn>,
    assoc: Association,
    mg: Mg,
    origin: std::time::Instant,
    buf: Vec<u8>,
    defer: bool,
    held: HashMap<ReplyToken, (SocketAddr, u32, ReplyResult)>,
    next_token: u64,
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
        let socket = match cfg.transport {
            TransportKind::Udp => Some(UdpSocket::bind(cfg.bind)?),
            TransportKind::Tcp => None,
        };
        let origin = std::time::Instant::now();
        let first_id = u32::try_from(random >> 40).unwrap_or(1).max(1);
        let assoc = Association::new(cfg.association, cfg.mid, first_id, random, Instant::ZERO);
        Ok(Server {
            socket,
            memory: None,
            tcp: HashMap::new(),
            assoc,
            mg: Mg::new(cfg.mg, realms, fingerprint),
            origin,
            buf: vec![0; 65_536],
            defer: cfg.defer_replies,
            held: HashMap::new(),
            next_token: 1,
        })
    }

    /// A server without a socket or a clock: datagrams go in with [`Server::push_datagram`]
    /// and come out of [`Server::pop_transmit`], and time is what [`Server::set_now`] last
    /// said (from [`Instant::ZERO`]). `cfg.bind` and `cfg.transport` are ignored. A poll
    /// handles at most one datagram and never waits.
    pub fn in_memory(cfg: ServerConfig, realms: Realms, fingerprint: String, random: u64) -> Self {
        let first_id = u32::try_from(random >> 40).unwrap_or(1).max(1);
        let assoc = Association::new(cfg.association, cfg.mid, first_id, random, Instant::ZERO);
        Server {
            socket: None,
            memory: Some(Memory::default()),
            tcp: HashMap::new(),
            assoc,
            mg: Mg::new(cfg.mg, realms, fingerprint),
            origin: std::time::Instant::now(),
            buf: Vec::new(),
            defer: cfg.defer_replies,
            held: HashMap::new(),
            next_token: 1,
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
        match &self.socket {
            Some(s) => s.local_addr(),
            None => self
                .tcp
                .values()
                .next()
                .map_or(Err(io::ErrorKind::NotConnected.into()), |c| {
                    c.stream.local_addr()
                }),
        }
    }

    /// Current time on the cores' clock.
    pub fn now(&self) -> Instant {
        if let Some(m) = &self.memory {
            return m.now;
        }
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The MG model.
    pub fn mg(&self) -> &Mg {
        &self.mg
    }

    /// The association.
    pub fn association(&self) -> &Association {
        &self.assoc
    }

    fn flush(&mut self) -> io::Result<()> {
        while let Some(t) = self.assoc.poll_transmit() {
            if let Some(m) = &mut self.memory {
                m.outbox.push_back((t.to, t.bytes));
                continue;
            }
            if let Some(sock) = &self.socket {
                // A lost datagram is recovered by H.248 retransmission; only hard errors surface.
                if let Err(e) = sock.send_to(&t.bytes, t.to) {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        return Err(e);
                    }
                }
                continue;
            }
            let Some(frame) = tpkt::encode(&t.bytes) else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(v) = self.tcp.entry(t.to) {
                match TcpStream::connect_timeout(&t.to, Duration::from_secs(2)) {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        v.insert(TcpConn {
                            stream,
                            decoder: tpkt::Decoder::default(),
                        });
                    }
                    // The MGC is unreachable: the request times out and the association fails
                    // over, exactly as with a lost datagram.
                    Err(_) => continue,
                }
            }
            let failed = self
                .tcp
                .get_mut(&t.to)
                .is_some_and(|c| c.stream.write_all(&frame).is_err());
            if failed {
                self.tcp.remove(&t.to);
            }
        }
        Ok(())
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
        if let Some(sock) = &self.socket {
            sock.set_read_timeout(Some(wait))?;
            match sock.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let now = self.now();
                    let data = self.buf.get(..n).unwrap_or(&[]).to_vec();
                    self.assoc.handle_datagram(now, from, &data);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
            return Ok(());
        }
        if self.tcp.is_empty() {
            std::thread::sleep(wait);
            return Ok(());
        }
        // Share the wait among the connections (normally there is one: the MGC).
        let per = (wait / u32::try_from(self.tcp.len()).unwrap_or(1)).max(Duration::from_millis(1));
        let mut closed = Vec::new();
        let mut frames = Vec::new();
        for (peer, c) in &mut self.tcp {
            c.stream.set_read_timeout(Some(per))?;
            match c.stream.read(&mut self.buf) {
                Ok(0) => closed.push(*peer),
                Ok(n) => {
                    c.decoder.push(self.buf.get(..n).unwrap_or(&[]));
                    loop {
                        match c.decoder.next_frame() {
                            Ok(Some(f)) => frames.push((*peer, f)),
                            Ok(None) => break,
                            Err(_) => {
                                // RFC 1006 framing lost: the stream cannot be resynchronised.
                                closed.push(*peer);
                                break;
                            }
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => closed.push(*peer),
            }
        }
        for p in closed {
            self.tcp.remove(&p);
        }
        let now = self.now();
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
        self.flush()?;
        let now = self.now();
        let wait = match self.assoc.poll_timeout() {
            Some(t) => t.saturating_duration_since(now).min(max_wait),
            None => max_wait,
        }
        .max(Duration::from_millis(1));
        self.receive(wait)?;
        let now = self.now();
        if self.assoc.poll_timeout().is_some_and(|t| t <= now) {
            self.assoc.handle_timeout(now);
        }
        let mut out = Vec::new();
        while let Some(ev) = self.assoc.poll_event() {
            match ev {
                AssocEvent::Request { from, request } => {
                    let (result, changes) = self.mg.execute(now, &request);
                    if self.defer && !changes.is_empty() {
                        let token = ReplyToken(self.next_token);
                        self.next_token += 1;
                        self.held.insert(token, (from, request.id, result));
                        out.push(ServerEvent::Execute { token, changes });
                    } else {
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
        self.flush()?;
        Ok(out)
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
        let _ = self.flush();
        id
    }

    /// Release a held reply. `Ok(())`: the data plane applied the changes, the MG's reply goes
    /// out as computed. `Err(e)`: it could not (e.g. no worker capacity); the MGC gets a
    /// transaction error `e` instead. The MG model is not rolled back in that case: the MGC is
    /// expected to Subtract what it added.
    ///
    /// Returns false for an unknown token.
    pub fn complete(
        &mut self,
        token: ReplyToken,
        outcome: Result<(), crate::h248::ast::ErrorDescriptor>,
    ) -> bool {
        let Some((to, id, result)) = self.held.remove(&token) else {
            return false;
        };
        let result = match outcome {
            Ok(()) => result,
            Err(e) => ReplyResult::Error(e),
        };
        let now = self.now();
        self.assoc.reply(now, to, id, result);
        let _ = self.flush();
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
        if let Some((_, _, ReplyResult::Actions(actions))) = self.held.get_mut(&token) {
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
        let _ = self.flush();
    }
}
