//! The control-plane driver: a UDP socket around the sans-IO [`Association`] and [`Mg`].
//!
//! This is the only I/O in the crate. It reads the clock once per [`Server::poll`], feeds
//! datagrams and timeouts to the association, executes requests on the MG model, answers them,
//! and hands the resulting [`LegChange`]s to the caller (the `mgwd` binary turns them into data
//! plane flow commands). Over TCP the same cores are used with [`tpkt`](crate::h248::transaction::tpkt)
//! framing; only UDP is wired up here.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dataplane::time::Instant;

use crate::h248::association::{AssocEvent, Association, AssociationConfig};
use crate::h248::ast::{Mid, PropertyParm};
use crate::h248::mg::{LegChange, Mg, MgConfig, TerminationStats};
use crate::procedures::Realms;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Local UDP address for H.248 (normally port 2944).
    pub bind: SocketAddr,
    /// Our mId (written in every message header).
    pub mid: Mid,
    /// Association settings (MGC list, timers).
    pub association: AssociationConfig,
    /// MG model limits.
    pub mg: MgConfig,
}

/// What happened during a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
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

/// The H.248 control server.
pub struct Server {
    socket: UdpSocket,
    assoc: Association,
    mg: Mg,
    origin: std::time::Instant,
    buf: Vec<u8>,
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
        let socket = UdpSocket::bind(cfg.bind)?;
        let origin = std::time::Instant::now();
        let first_id = u32::try_from(random >> 40).unwrap_or(1).max(1);
        let assoc = Association::new(cfg.association, cfg.mid, first_id, random, Instant::ZERO);
        Ok(Server {
            socket,
            assoc,
            mg: Mg::new(cfg.mg, realms, fingerprint),
            origin,
            buf: vec![0; 65_536],
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// Socket errors.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Current time on the cores' clock.
    pub fn now(&self) -> Instant {
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
            // A lost datagram is recovered by H.248 retransmission; only hard errors surface.
            if let Err(e) = self.socket.send_to(&t.bytes, t.to) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Wait up to `max_wait` for a datagram or a timer, process it, and return what happened.
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
        self.socket.set_read_timeout(Some(wait))?;
        match self.socket.recv_from(&mut self.buf) {
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
        let now = self.now();
        if self.assoc.poll_timeout().is_some_and(|t| t <= now) {
            self.assoc.handle_timeout(now);
        }
        let mut out = Vec::new();
        while let Some(ev) = self.assoc.poll_event() {
            match ev {
                AssocEvent::Request { from, request } => {
                    let (result, changes) = self.mg.execute(now, &request);
                    self.assoc.reply(now, from, request.id, result);
                    out.extend(changes.into_iter().map(|c| ServerEvent::Leg(Box::new(c))));
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
