//! A simulated IPv4 host: one port, the [`Edge`], and a UDP/ICMP socket layer small enough for
//! tests, `mgwd lab` and benchmarks. It is a [`Node`] for the simulator.
//!
//! Everything the gateway's workers do per packet happens here too (burst receive, edge ingress,
//! in-place replies, burst transmit), so a simulated exchange exercises the real code paths.

use crate::buf::PacketBuffer;
use crate::edge::{Edge, EdgeConfig, Egress, Ingress};
use crate::port::{Batch, Node, Port, BURST};
use crate::time::Instant;
use crate::wire::{IpAddress, IpProtocol, Ipv4Address, TcpPacket, TcpRepr, UdpPacket, UdpRepr};
use std::collections::VecDeque;

/// A datagram delivered to the host.
#[derive(Debug)]
pub struct Datagram<B> {
    /// The sender's IP address and UDP port.
    pub src: (IpAddress, u16),
    /// Receiver (us).
    pub dst: (IpAddress, u16),
    /// The UDP segment; `payload()` gives the data.
    pub buf: B,
}

impl<B: PacketBuffer> Datagram<B> {
    /// The UDP payload.
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        b.get(crate::wire::udp::HEADER_LEN..).unwrap_or(&[])
    }
}

/// Counters of the host's own sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    /// UDP datagrams delivered to the inbox.
    pub udp_in: u64,
    /// UDP datagrams sent.
    pub udp_out: u64,
    /// TCP segments delivered to the inbox.
    pub tcp_in: u64,
    /// Segments or datagrams with a bad L4 checksum.
    pub bad_l4: u64,
    /// Inbox full: dropped.
    pub inbox_full: u64,
    /// Could not send (no buffer, no route, unresolved, port full).
    pub send_failed: u64,
}

/// A simulated host on one port.
pub struct Host<P: Port> {
    port: P,
    edge: Edge,
    rx: Batch<P::Buffer>,
    tx: Batch<P::Buffer>,
    inbox: VecDeque<Datagram<P::Buffer>>,
    inbox_cap: usize,
    now: Instant,
    /// When set, every UDP datagram to this port is echoed back (an RFC 862 echo service).
    pub udp_echo_port: Option<u16>,
    stats: HostStats,
}

impl<P: Port> Host<P> {
    /// A host on `port` with the edge configuration `cfg`.
    pub fn new(port: P, cfg: EdgeConfig) -> Host<P> {
        Host {
            port,
            edge: Edge::new(cfg),
            rx: Batch::new(BURST),
            tx: Batch::new(BURST * 4),
            inbox: VecDeque::with_capacity(1024),
            inbox_cap: 1024,
            now: Instant::ZERO,
            udp_echo_port: None,
            stats: HostStats::default(),
        }
    }

    /// The edge (for its counters and neighbour table).
    pub fn edge(&mut self) -> &mut Edge {
        &mut self.edge
    }

    /// The port.
    pub fn port(&mut self) -> &mut P {
        &mut self.port
    }

    /// Gives the port back (to finish a capture, say).
    pub fn into_port(self) -> P {
        self.port
    }

    /// Socket counters.
    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// Takes the oldest delivered datagram or TCP segment.
    pub fn recv(&mut self) -> Option<Datagram<P::Buffer>> {
        self.inbox.pop_front()
    }

    fn queue(&mut self, b: P::Buffer) {
        if let Err(b) = self.tx.push(b) {
            self.port.tx_burst(&mut self.tx);
            if self.tx.push(b).is_err() {
                self.stats.send_failed += 1;
            }
        }
    }

    fn my_addr(&self) -> Ipv4Address {
        self.edge.primary_addr().unwrap_or(Ipv4Address::UNSPECIFIED)
    }

    /// Sends a UDP datagram from our primary address.
    pub fn send_udp(
        &mut self,
        src_port: u16,
        dst: Ipv4Address,
        dst_port: u16,
        payload: &[u8],
    ) -> bool {
        let src = self.my_addr();
        self.send_udp_from(src, src_port, dst, dst_port, payload)
    }

    /// Sends a UDP datagram from `src`, one of our addresses (a host standing for several peers).
    pub fn send_udp_from(
        &mut self,
        src: Ipv4Address,
        src_port: u16,
        dst: Ipv4Address,
        dst_port: u16,
        payload: &[u8],
    ) -> bool {
        let Some(mut b) = self.port.alloc() else {
            self.stats.send_failed += 1;
            return false;
        };
        let (s, d) = (IpAddress::V4(src), IpAddress::V4(dst));
        let ok = match b.append(crate::wire::udp::HEADER_LEN + payload.len()) {
            Some(room) => UdpRepr { src_port, dst_port }
                .emit(&mut UdpPacket::new_unchecked(room), &s, &d, payload)
                .is_ok(),
            None => false,
        };
        if ok
            && self
                .edge
                .encap_ipv4(self.now, &mut b, src, dst, IpProtocol::Udp)
                == Egress::Ready
        {
            self.stats.udp_out += 1;
            self.queue(b);
            true
        } else {
            self.stats.send_failed += 1;
            false
        }
    }

    /// Sends a TCP segment from our primary address (for tests that script TCP by hand).
    pub fn send_tcp(&mut self, dst: Ipv4Address, seg: &TcpRepr<'_>) -> bool {
        let src = self.my_addr();
        let Some(mut b) = self.port.alloc() else {
            self.stats.send_failed += 1;
            return false;
        };
        let (s, d) = (IpAddress::V4(src), IpAddress::V4(dst));
        let ok = match b.append(seg.buffer_len()) {
            Some(room) => seg
                .emit(&mut TcpPacket::new_unchecked(room), &s, &d)
                .is_ok(),
            None => false,
        };
        if ok
            && self
                .edge
                .encap_ipv4(self.now, &mut b, src, dst, IpProtocol::Tcp)
                == Egress::Ready
        {
            self.queue(b);
            true
        } else {
            self.stats.send_failed += 1;
            false
        }
    }

    /// Sends an ICMP echo request.
    pub fn send_ping(&mut self, dst: Ipv4Address, ident: u16, seq_no: u16, data: &[u8]) -> bool {
        let src = self.my_addr();
        let Some(mut b) = self.port.alloc() else {
            return false;
        };
        let req = crate::wire::Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let ok = b
            .append(req.buffer_len())
            .is_some_and(|room| req.emit(room).is_ok());
        if ok
            && self
                .edge
                .encap_ipv4(self.now, &mut b, src, dst, IpProtocol::Icmp)
                == Egress::Ready
        {
            self.queue(b);
            true
        } else {
            self.stats.send_failed += 1;
            false
        }
    }

    fn deliver(&mut self, protocol: IpProtocol, src: IpAddress, dst: IpAddress, buf: P::Buffer) {
        let (sport, dport, ok) = match protocol {
            IpProtocol::Udp => match UdpPacket::new_checked(buf.as_ref()) {
                Ok(p) => (
                    p.src_port(),
                    p.dst_port(),
                    UdpRepr::parse(&p, &src, &dst, true).is_ok(),
                ),
                Err(_) => (0, 0, false),
            },
            _ => match TcpPacket::new_checked(buf.as_ref()) {
                Ok(p) => (p.src_port(), p.dst_port(), p.verify_checksum(&src, &dst)),
                Err(_) => (0, 0, false),
            },
        };
        if !ok {
            self.stats.bad_l4 += 1;
            return;
        }
        if protocol == IpProtocol::Udp && self.udp_echo_port == Some(dport) {
            if let IpAddress::V4(peer) = src {
                let d = Datagram {
                    src: (src, sport),
                    dst: (dst, dport),
                    buf,
                };
                let payload = d.payload();
                // The echo copies into a fresh buffer so that the request's buffer goes straight
                // back to the pool.
                let mut tmp = [0u8; 2048];
                let n = payload.len().min(tmp.len());
                tmp[..n].copy_from_slice(&payload[..n]);
                drop(d);
                self.send_udp(dport, peer, sport, &tmp[..n]);
            }
            return;
        }
        if self.inbox.len() >= self.inbox_cap {
            self.stats.inbox_full += 1;
            return;
        }
        match protocol {
            IpProtocol::Udp => self.stats.udp_in += 1,
            _ => self.stats.tcp_in += 1,
        }
        self.inbox.push_back(Datagram {
            src: (src, sport),
            dst: (dst, dport),
            buf,
        });
    }

    /// Sends whatever is queued.
    pub fn flush(&mut self) {
        if !self.tx.is_empty() {
            self.port.tx_burst(&mut self.tx);
        }
    }
}

impl<P: Port> Node for Host<P> {
    fn poll(&mut self, now: Instant) {
        self.now = now;
        loop {
            let n = self.port.rx_burst(&mut self.rx);
            if n == 0 {
                break;
            }
            // Take the batch out of `self` while its frames are handled (Batch::new(0) does not
            // allocate), so the handlers can borrow the rest of the host.
            let mut rx = std::mem::replace(&mut self.rx, Batch::new(0));
            for f in rx.drain() {
                match self.edge.ingress(now, f) {
                    Ingress::Reply(b) => self.queue(b),
                    Ingress::Deliver {
                        protocol,
                        src,
                        dst,
                        buf,
                    } => self.deliver(protocol, src, dst, buf),
                    Ingress::Dropped(_) => {}
                }
            }
            self.rx = rx;
        }
        while let Some(req) = self.edge.poll_arp(now, || self.port.alloc()) {
            self.queue(req);
        }
        self.flush();
    }

    fn poll_at(&self) -> Option<Instant> {
        let port = self.port.poll_at();
        let edge = self.edge.poll_at().map(|t| t.max(self.now));
        match (port, edge) {
            (Some(a), Some(b)) => Some(a.min(b).max(self.now)),
            (a, b) => a.or(b).map(|t| t.max(self.now)),
        }
    }
}
