//! Simulated peers for tests, `mgwd lab` and the load generator: a host with the real TCP stack
//! ([`TcpHost`]) and a TLS endpoint riding one of its connections ([`TlsPeer`]).
//!
//! They use the same crates as the gateway (edge, TCP stack, TLS sessions), so a simulated UE
//! is an independent implementation only in its application logic; interop with independent
//! stacks is what the kernel/openssl tests are for.

use crate::stream::Sink;
use mgw_core::buf::PacketBuffer;
use mgw_core::edge::{Edge, EdgeConfig, Ingress};
use mgw_core::port::{Batch, Node, Port, BURST};
use mgw_core::time::Instant;
use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{IpAddress, IpProtocol, Ipv4Address, TcpPacket, TcpRepr, UdpPacket, UdpRepr};
use mgw_tcp::{ConnId, Stack};
use mgw_tls::{PeerAuth, PeerFingerprints, Record, TlsContext, TlsEvent, TlsSession};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// A host on one port running the TCP stack.
pub struct TcpHost<P: Port> {
    port: P,
    edge: Edge,
    /// The stack; use it to connect, listen, send and receive.
    pub tcp: Stack,
    /// UDP datagrams received: (source, destination, payload).
    pub udp_in: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    rx: Batch<P::Buffer>,
    tx: Batch<P::Buffer>,
    now: Instant,
    /// Only `tx_failed` is used: segments the IP layer could not send.
    stats: crate::worker::WorkerStats,
    /// Empty and never grown: a peer drops frames for unresolved next hops (TCP retransmits).
    arp_hold: Vec<(Instant, P::Buffer)>,
}

impl<P: Port> TcpHost<P> {
    /// Sends a UDP datagram (IPv4) from `src`, one of this host's addresses. Returns false if
    /// it could not be framed or routed.
    pub fn send_udp(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> bool {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
            return false;
        };
        let (s, d) = (Ipv4Address(s.octets()), Ipv4Address(d.octets()));
        let Some(mut b) = self.port.alloc() else {
            return false;
        };
        let Some(room) = b.append(mgw_core::wire::udp::HEADER_LEN + payload.len()) else {
            return false;
        };
        let repr = UdpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
        };
        if repr
            .emit(
                &mut UdpPacket::new_unchecked(room),
                &IpAddress::V4(s),
                &IpAddress::V4(d),
                payload,
            )
            .is_err()
        {
            return false;
        }
        if self
            .edge
            .encap_ipv4(self.now, &mut b, s, d, IpProtocol::Udp)
            != mgw_core::edge::Egress::Ready
        {
            return false;
        }
        if self.tx.push(b).is_err() {
            self.port.tx_burst(&mut self.tx);
            self.tx.clear();
        }
        true
    }

    /// A host on `port`.
    ///
    /// # Errors
    /// The TCP configuration is refused.
    pub fn new(
        port: P,
        edge: EdgeConfig,
        tcp: mgw_tcp::Config,
    ) -> Result<Self, mgw_tcp::ConfigError> {
        Ok(TcpHost {
            port,
            edge: Edge::new(edge),
            tcp: Stack::new(tcp)?,
            udp_in: VecDeque::new(),
            rx: Batch::new(BURST),
            tx: Batch::new(BURST * 4),
            now: Instant::ZERO,
            stats: crate::worker::WorkerStats::default(),
            arp_hold: Vec::new(),
        })
    }

    /// The TCP stack and the IP layer under it, borrowed together (disjoint fields).
    fn tcp_io(&mut self) -> (&mut Stack, Sink<'_, P>) {
        let sink = Sink {
            port: &mut self.port,
            edge: &mut self.edge,
            tx: &mut self.tx,
            now: self.now,
            stats: &mut self.stats,
            arp_hold: &mut self.arp_hold,
            hold_until: self.now,
            offload: false,
        };
        (&mut self.tcp, sink)
    }

    /// The time of the last poll.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Sends what the stack has queued (call after `send`).
    pub fn flush(&mut self) {
        let now = self.now;
        let (tcp, mut sink) = self.tcp_io();
        tcp.poll(now, &mut sink);
        if !self.tx.is_empty() {
            self.port.tx_burst(&mut self.tx);
            self.tx.clear();
        }
    }
}

impl<P: Port> Node for TcpHost<P> {
    fn poll(&mut self, now: Instant) {
        self.now = now;
        loop {
            if self.port.rx_burst(&mut self.rx) == 0 {
                break;
            }
            let mut rx = std::mem::replace(&mut self.rx, Batch::new(0));
            for f in rx.drain() {
                match self.edge.ingress(now, f) {
                    Ingress::Reply(b) => {
                        let _ = self.tx.push(b);
                    }
                    Ingress::Deliver {
                        protocol: IpProtocol::Tcp,
                        src,
                        dst,
                        buf,
                    } => {
                        let Ok(p) = TcpPacket::new_checked(buf.as_ref()) else {
                            continue;
                        };
                        let Ok(repr) = TcpRepr::parse(&p, &src, &dst, ChecksumCheck::Verify) else {
                            continue;
                        };
                        let (tcp, mut sink) = self.tcp_io();
                        tcp.on_segment(now, src, dst, &repr, &mut sink);
                    }
                    Ingress::Deliver {
                        protocol: IpProtocol::Udp,
                        src,
                        dst,
                        buf,
                    } => {
                        let Ok(p) = UdpPacket::new_checked(buf.as_ref()) else {
                            continue;
                        };
                        if UdpRepr::parse(&p, &src, &dst, true).is_ok() {
                            let from = SocketAddr::new(IpAddr::from(src), p.src_port());
                            let to = SocketAddr::new(IpAddr::from(dst), p.dst_port());
                            self.udp_in.push_back((from, to, p.payload().to_vec()));
                        }
                    }
                    _ => {}
                }
            }
            self.rx = rx;
        }
        while let Some(req) = self.edge.poll_arp(now, || self.port.alloc()) {
            let _ = self.tx.push(req);
        }
        self.flush();
    }

    fn poll_at(&self) -> Option<Instant> {
        [
            self.port.poll_at(),
            self.edge.poll_at(),
            self.tcp.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.max(self.now))
    }
}

/// A TLS endpoint over one connection of a [`TcpHost`]'s stack (a UE or a TLS core peer).
pub struct TlsPeer {
    /// The connection.
    pub conn: ConnId,
    session: TlsSession,
    rec: Vec<u8>,
    out: Vec<u8>,
    /// Plaintext received and not yet taken.
    pub received: Vec<u8>,
    established: bool,
    failed: Option<mgw_tls::FailReason>,
    closed: bool,
}

impl TlsPeer {
    /// A TLS client on `conn` (already connected) that trusts `fingerprints`.
    ///
    /// # Errors
    /// The TLS context refuses the settings.
    pub fn client(
        ctx: &TlsContext,
        conn: ConnId,
        fingerprints: PeerFingerprints,
        now: Instant,
    ) -> Result<Self, mgw_tls::ContextError> {
        let name = mgw_tls::ServerName::try_from("mgwd.invalid")
            .expect("a valid DNS name")
            .to_owned();
        let session = TlsSession::client(ctx, &PeerAuth::fingerprints(fingerprints), name, now)?;
        Ok(Self::with(conn, session))
    }

    /// A TLS server on `conn` (already accepted) that trusts `fingerprints`.
    ///
    /// # Errors
    /// The TLS context refuses the settings.
    pub fn server(
        ctx: &TlsContext,
        conn: ConnId,
        fingerprints: PeerFingerprints,
        now: Instant,
    ) -> Result<Self, mgw_tls::ContextError> {
        let session = TlsSession::server(ctx, &PeerAuth::fingerprints(fingerprints), now)?;
        Ok(Self::with(conn, session))
    }

    fn with(conn: ConnId, session: TlsSession) -> Self {
        TlsPeer {
            conn,
            session,
            rec: Vec::with_capacity(64 * 1024),
            out: vec![0u8; 80 * 1024],
            received: Vec::new(),
            established: false,
            failed: None,
            closed: false,
        }
    }

    /// True once the handshake is done and the peer authenticated.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// Why the session failed, if it did.
    pub fn failure(&self) -> Option<mgw_tls::FailReason> {
        self.failed
    }

    /// True once the peer sent close_notify.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads the connection, runs the handshake or opens records; call on every poll.
    pub fn drive(&mut self, tcp: &mut Stack, now: Instant) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = tcp.recv(self.conn, &mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.rec.extend_from_slice(&buf[..n]);
        }
        if !self.session.is_established() && self.failed.is_none() {
            let received = &mut self.received;
            let space = tcp.send_space(self.conn).unwrap_or(0).min(self.out.len());
            // A failure is queued as an event, read below.
            let progress =
                self.session
                    .on_ciphertext(&mut self.rec, now, &mut self.out[..space], &mut |d| {
                        received.extend_from_slice(d)
                    });
            if let Ok(p) = progress {
                self.rec.drain(..p.consumed);
                let _ = tcp.send(self.conn, &self.out[..p.written]);
            }
        }
        while self.session.is_established() && !self.rec.is_empty() {
            match self.session.open_record(&mut self.rec) {
                Ok(Record::Data {
                    consumed,
                    plaintext,
                }) => {
                    self.received.extend_from_slice(&self.rec[plaintext]);
                    self.rec.drain(..consumed);
                }
                Ok(Record::Control { consumed }) => {
                    self.rec.drain(..consumed);
                }
                _ => break,
            }
        }
        while self.session.wants_transmit() {
            let space = tcp.send_space(self.conn).unwrap_or(0).min(self.out.len());
            let n = self.session.poll_transmit(&mut self.out[..space]);
            if n == 0 {
                break;
            }
            let _ = tcp.send(self.conn, &self.out[..n]);
        }
        while let Some(e) = self.session.poll_event() {
            match e {
                TlsEvent::Established { .. } => self.established = true,
                TlsEvent::Failed { reason } => self.failed = Some(reason),
                TlsEvent::CloseNotify | TlsEvent::Closed => self.closed = true,
            }
        }
    }

    /// Seals and sends as much of `plaintext` as the connection has room for; returns the
    /// plaintext bytes taken.
    pub fn send(&mut self, tcp: &mut Stack, plaintext: &[u8]) -> usize {
        if !self.established {
            return 0;
        }
        let space = tcp.send_space(self.conn).unwrap_or(0).min(self.out.len());
        let m = plaintext
            .len()
            .min(space.saturating_sub((space / (16 * 1024) + 1) * 64));
        if m == 0 {
            return 0;
        }
        match self.session.seal(&plaintext[..m], &mut self.out[..space]) {
            Ok(w) => {
                let _ = tcp.send(self.conn, &self.out[..w]);
                m
            }
            Err(_) => 0,
        }
    }

    /// Sends close_notify.
    pub fn close(&mut self, tcp: &mut Stack) {
        if let Ok(n) = self.session.close(&mut self.out[..64]) {
            let _ = tcp.send(self.conn, &self.out[..n]);
        }
    }
}
