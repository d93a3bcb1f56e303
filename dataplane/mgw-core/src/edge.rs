//! The L2/L3 edge of the data plane: what a host must do below TCP/UDP.
//!
//! - Answers ARP requests for its own IPv4 addresses and learns from ARP it sees (RFC 826).
//! - Answers ICMP echo requests to its own addresses (RFC 792, RFC 1122 §3.2.2.6), in place in
//!   the received buffer: no allocation.
//! - Keeps a fixed-size neighbour table with expiry, and asks (rate-limited) for unknown next hops.
//! - Routes to the next hop from a small static table (longest prefix match; connected subnets
//!   first).
//! - Hands TCP and UDP for its own addresses up, with the buffer advanced to the L4 header.
//!
//! Anything else is dropped and counted by reason. IPv6 neighbour discovery is not done yet:
//! IPv6 packets to us are delivered, but we resolve no IPv6 next hops (see docs/ARCHITECTURE.md).

use crate::buf::PacketBuffer;
use crate::time::Instant;
use crate::wire::{
    arp, ethernet, ipv4, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress,
    EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
};
use std::time::Duration;

/// An address of ours on this interface, with its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// The address.
    pub addr: Ipv4Address,
    /// Prefix length of the connected subnet.
    pub prefix_len: u8,
}

/// A static route. `gateway: None` means the destination is on-link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network.
    pub dest: Ipv4Address,
    /// Prefix length.
    pub prefix_len: u8,
    /// Next hop, or `None` for on-link.
    pub gateway: Option<Ipv4Address>,
}

/// Edge configuration, fixed at start.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Our MAC.
    pub mac: EthernetAddress,
    /// Our IPv4 addresses.
    pub addrs: Vec<InterfaceAddr>,
    /// Static routes (connected subnets are implicit).
    pub routes: Vec<Route>,
    /// Default gateways by source address: a packet from an address inside one of these
    /// subnets, to a destination not on a connected subnet, goes to that subnet's gateway
    /// before the static routes are consulted. One per IP realm when realms sit on different
    /// networks (each realm's traffic leaves through its own router).
    pub source_gateways: Vec<(InterfaceAddr, Ipv4Address)>,
    /// Neighbour table slots (rounded up to a power of two).
    pub neighbor_capacity: usize,
    /// How long a learned neighbour stays valid.
    pub neighbor_ttl: Duration,
    /// Least time between two ARP requests for the same address.
    pub arp_retry: Duration,
    /// TTL of packets we originate.
    pub hop_limit: u8,
}

impl EdgeConfig {
    /// One address, no static routes, defaults for the rest.
    pub fn single(mac: EthernetAddress, addr: Ipv4Address, prefix_len: u8) -> EdgeConfig {
        EdgeConfig {
            mac,
            addrs: vec![InterfaceAddr { addr, prefix_len }],
            routes: Vec::new(),
            source_gateways: Vec::new(),
            neighbor_capacity: 256,
            neighbor_ttl: Duration::from_secs(300),
            arp_retry: Duration::from_secs(1),
            hop_limit: 64,
        }
    }
}

/// Why a received frame was not delivered. Counted per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Too short or inconsistent lengths at any layer.
    Malformed,
    /// IPv4 header checksum wrong (L4 checksums are the L4's job).
    BadChecksum,
    /// Not for our MAC nor broadcast/multicast.
    NotOurMac,
    /// IP destination not ours.
    NotOurAddr,
    /// An EtherType we do not handle (VLAN tags included).
    UnknownEtherType,
    /// An IP protocol we do not handle.
    UnknownProtocol,
    /// IP fragments (media flows are never fragmented; DF is set on all we send).
    Fragment,
    /// ICMP other than echo request, or ARP not needing an answer.
    Ignored,
}

/// Counters kept by the edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// ARP requests answered.
    pub arp_replies: u64,
    /// ARP requests sent.
    pub arp_requests: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
    /// Packets delivered to L4.
    pub delivered: u64,
    /// Malformed frames.
    pub malformed: u64,
    /// IPv4 header checksum failures.
    pub bad_checksum: u64,
    /// Frames for another MAC.
    pub not_our_mac: u64,
    /// Packets for another IP.
    pub not_our_addr: u64,
    /// Unknown EtherTypes.
    pub unknown_ethertype: u64,
    /// Unknown IP protocols.
    pub unknown_protocol: u64,
    /// IP fragments dropped: mgwd does not reassemble (media flows are never fragmented).
    pub fragments: u64,
    /// Ignored ARP/ICMP.
    pub ignored: u64,
    /// Packets we could not send: no route.
    pub no_route: u64,
    /// Packets we could not send: next hop not resolved yet.
    pub unresolved: u64,
    /// Neighbour table full: an entry was evicted.
    pub neighbor_evictions: u64,
}

/// What became of a received frame.
#[derive(Debug)]
pub enum Ingress<B> {
    /// A TCP or UDP packet for us. `buf` now starts at the L4 header and holds exactly the L4
    /// segment (link padding trimmed).
    Deliver {
        /// TCP or UDP.
        protocol: IpProtocol,
        /// IP source.
        src: IpAddress,
        /// IP destination (one of ours).
        dst: IpAddress,
        /// The L4 segment.
        buf: B,
    },
    /// The frame was turned into an answer (ARP reply, echo reply) in place: transmit it.
    Reply(B),
    /// Dropped, for this reason (the buffer has been freed).
    Dropped(DropReason),
}

/// What became of an outgoing packet handed to [`Edge::encap_ipv4`].
#[derive(Debug, PartialEq, Eq)]
pub enum Egress {
    /// Ethernet and IPv4 headers are prepended: transmit the buffer.
    Ready,
    /// No route to the destination: drop it.
    NoRoute,
    /// The next hop is not resolved; an ARP request is due (see [`Edge::poll_arp`]). The
    /// headers are in place with a zero destination MAC: drop the buffer (the upper layer
    /// retransmits) or hold it a short while and send it once [`Edge::complete_l2`] succeeds.
    Unresolved,
    /// Not enough headroom for the headers.
    NoHeadroom,
}

#[derive(Debug, Clone, Copy, Default)]
struct Neighbor {
    ip: Ipv4Address,
    mac: EthernetAddress,
    /// Valid until; `Instant::ZERO` marks a free slot.
    expires: Instant,
    /// Resolved (false while we are asking).
    resolved: bool,
    /// When we last asked for it.
    asked: Instant,
    /// True if a request is due.
    want: bool,
}

/// The L2/L3 edge of one interface.
#[derive(Debug)]
pub struct Edge {
    cfg: EdgeConfig,
    neighbors: Vec<Neighbor>,
    mask: usize,
    stats: EdgeStats,
    ident: u16,
    /// The neighbour the last ARP frame taught or refreshed, until taken.
    learned: Option<(Ipv4Address, EthernetAddress)>,
}

impl Edge {
    /// An edge with `cfg`; the neighbour table is allocated here, once.
    pub fn new(cfg: EdgeConfig) -> Edge {
        let cap = cfg.neighbor_capacity.max(8).next_power_of_two();
        Edge {
            neighbors: vec![Neighbor::default(); cap],
            mask: cap - 1,
            cfg,
            stats: EdgeStats::default(),
            ident: 0,
            learned: None,
        }
    }

    /// A copy of the counters since the edge was built.
    pub fn stats(&self) -> EdgeStats {
        self.stats
    }

    /// Our MAC.
    pub fn mac(&self) -> EthernetAddress {
        self.cfg.mac
    }

    /// Our first IPv4 address.
    pub fn primary_addr(&self) -> Option<Ipv4Address> {
        self.cfg.addrs.first().map(|a| a.addr)
    }

    /// True if `a` is one of our addresses.
    pub fn is_ours(&self, a: Ipv4Address) -> bool {
        self.cfg.addrs.iter().any(|i| i.addr == a)
    }

    fn drop<B>(&mut self, r: DropReason) -> Ingress<B> {
        let s = &mut self.stats;
        match r {
            DropReason::Malformed => s.malformed += 1,
            DropReason::BadChecksum => s.bad_checksum += 1,
            DropReason::NotOurMac => s.not_our_mac += 1,
            DropReason::NotOurAddr => s.not_our_addr += 1,
            DropReason::UnknownEtherType => s.unknown_ethertype += 1,
            DropReason::UnknownProtocol => s.unknown_protocol += 1,
            DropReason::Fragment => s.fragments += 1,
            DropReason::Ignored => s.ignored += 1,
        }
        Ingress::Dropped(r)
    }

    /// Handles one received Ethernet frame.
    pub fn ingress<B: PacketBuffer>(&mut self, now: Instant, mut buf: B) -> Ingress<B> {
        let eth = match EthernetFrame::new_checked(buf.as_ref()) {
            Ok(f) => EthernetRepr::parse(&f),
            Err(_) => return self.drop(DropReason::Malformed),
        };
        if eth.dst_addr != self.cfg.mac && !eth.dst_addr.is_multicast() {
            return self.drop(DropReason::NotOurMac);
        }
        match eth.ethertype {
            EtherType::Arp => self.arp_in(now, eth, buf),
            EtherType::Ipv4 => {
                buf.adj(ethernet::HEADER_LEN);
                self.ipv4_in(eth, buf)
            }
            EtherType::Ipv6 => {
                buf.adj(ethernet::HEADER_LEN);
                self.ipv6_in(buf)
            }
            EtherType::Unknown(_) => self.drop(DropReason::UnknownEtherType),
        }
    }

    fn arp_in<B: PacketBuffer>(
        &mut self,
        now: Instant,
        eth: EthernetRepr,
        mut buf: B,
    ) -> Ingress<B> {
        let repr = match ArpPacket::new_checked(&buf.as_ref()[ethernet::HEADER_LEN..])
            .map(|p| ArpRepr::parse(&p))
        {
            Ok(Ok(r)) => r,
            _ => return self.drop(DropReason::Malformed),
        };
        let (spa, tpa) = (repr.source_protocol_addr, repr.target_protocol_addr);
        let for_us = self.is_ours(tpa);
        // RFC 826 "merge": refresh a sender we already know; add it if the packet is for us.
        // Only within one realm's subnet: the sender must be on the connected subnet of one of
        // our addresses and the ARP must be about that same subnet, so neither an off-link
        // host nor an ARP on one realm's network can bind an address of another realm (each
        // realm's neighbours are learned only from its own network). An entry is created only
        // when the ARP is for that realm's own address.
        let realm = self
            .cfg
            .addrs
            .iter()
            .find(|a| {
                a.addr.same_prefix(spa, a.prefix_len) && a.addr.same_prefix(tpa, a.prefix_len)
            })
            .map(|a| a.addr);
        let sender_ok = repr.source_hardware_addr.is_unicast()
            && spa != Ipv4Address::UNSPECIFIED
            && !self.is_ours(spa);
        if realm.is_some_and(|realm| {
            sender_ok && self.learn(now, spa, repr.source_hardware_addr, realm == tpa)
        }) {
            self.learned = Some((repr.source_protocol_addr, repr.source_hardware_addr));
        }
        if !(for_us && repr.operation == ArpOperation::Request) {
            return self.drop(DropReason::Ignored);
        }
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: repr.target_protocol_addr,
            target_hardware_addr: repr.source_hardware_addr,
            target_protocol_addr: repr.source_protocol_addr,
        };
        let frame = buf.as_mut();
        let e = EthernetRepr {
            src_addr: self.cfg.mac,
            dst_addr: eth.src_addr,
            ethertype: EtherType::Arp,
        };
        if e.emit(&mut EthernetFrame::new_unchecked(&mut *frame))
            .is_err()
            || reply.emit(&mut frame[ethernet::HEADER_LEN..]).is_err()
        {
            return self.drop(DropReason::Malformed);
        }
        let keep = ethernet::HEADER_LEN + arp::PACKET_LEN;
        let extra = buf.len() - keep;
        buf.trim(extra);
        self.stats.arp_replies += 1;
        Ingress::Reply(buf)
    }

    fn ipv4_in<B: PacketBuffer>(&mut self, eth: EthernetRepr, mut buf: B) -> Ingress<B> {
        let (repr, hl, frag) = match Ipv4Packet::new_checked(buf.as_ref()) {
            Ok(p) => match Ipv4Repr::parse(&p, true) {
                Ok(r) => (r, p.header_len(), p.is_fragment()),
                Err(crate::wire::WireError::Checksum) => return self.drop(DropReason::BadChecksum),
                Err(_) => return self.drop(DropReason::Malformed),
            },
            Err(_) => return self.drop(DropReason::Malformed),
        };
        if !self.is_ours(repr.dst_addr) {
            return self.drop(DropReason::NotOurAddr);
        }
        if frag {
            return self.drop(DropReason::Fragment);
        }
        // Trim link-layer padding, then strip the IP header.
        let extra = buf.len() - (hl + repr.payload_len);
        buf.trim(extra);
        buf.adj(hl);
        let (src, dst) = (IpAddress::V4(repr.src_addr), IpAddress::V4(repr.dst_addr));
        match repr.protocol {
            IpProtocol::Tcp | IpProtocol::Udp => {
                // Neighbours are learned from ARP only: a TCP/UDP frame's source MAC is not
                // checked by anything (the L4 checks come later, and a forged datagram passes
                // the edge), so it must not rebind an address. Entries in use are asked for
                // again before they expire instead (see `resolve`).
                self.stats.delivered += 1;
                Ingress::Deliver {
                    protocol: repr.protocol,
                    src,
                    dst,
                    buf,
                }
            }
            IpProtocol::Icmp => self.icmp_in(eth, repr, buf),
            _ => self.drop(DropReason::UnknownProtocol),
        }
    }

    fn icmp_in<B: PacketBuffer>(
        &mut self,
        eth: EthernetRepr,
        ip: Ipv4Repr,
        mut buf: B,
    ) -> Ingress<B> {
        match Icmpv4Packet::new_checked(buf.as_ref()) {
            Ok(p) => match Icmpv4Repr::parse(&p) {
                Ok(Icmpv4Repr::EchoRequest { .. }) => {}
                Ok(_) => return self.drop(DropReason::Ignored),
                Err(_) => return self.drop(DropReason::Malformed),
            },
            Err(_) => return self.drop(DropReason::Malformed),
        };
        // Turn the request into the reply in place: type 0, checksum adjusted by recomputation.
        let msg = buf.as_mut();
        msg[0] = 0;
        msg[2] = 0;
        msg[3] = 0;
        let c = !crate::wire::checksum::sum(msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let reply_ip = Ipv4Repr {
            src_addr: ip.dst_addr,
            dst_addr: ip.src_addr,
            protocol: IpProtocol::Icmp,
            payload_len: buf.len(),
            hop_limit: self.cfg.hop_limit,
            dscp_ecn: 0,
        };
        // Any IP options of the request are not echoed: we prepend a plain 20-byte header into
        // the room the old header (hl ≥ 20 bytes) and Ethernet header left.
        let Some(h) = buf.prepend(ipv4::HEADER_LEN) else {
            return self.drop(DropReason::Malformed);
        };
        if reply_ip
            .emit(&mut Ipv4Packet::new_unchecked(&mut *h))
            .is_err()
        {
            return self.drop(DropReason::Malformed);
        }
        // Reply straight to the MAC that asked (RFC 1122 §3.3.1.2 lets us skip routing here).
        let Some(h) = buf.prepend(ethernet::HEADER_LEN) else {
            return self.drop(DropReason::Malformed);
        };
        let e = EthernetRepr {
            src_addr: self.cfg.mac,
            dst_addr: eth.src_addr,
            ethertype: EtherType::Ipv4,
        };
        if e.emit(&mut EthernetFrame::new_unchecked(h)).is_err() {
            return self.drop(DropReason::Malformed);
        }
        self.stats.echo_replies += 1;
        Ingress::Reply(buf)
    }

    fn ipv6_in<B: PacketBuffer>(&mut self, mut buf: B) -> Ingress<B> {
        let repr = match Ipv6Packet::new_checked(buf.as_ref()).map(|p| Ipv6Repr::parse(&p)) {
            Ok(Ok(r)) => r,
            _ => return self.drop(DropReason::Malformed),
        };
        match repr.next_header {
            IpProtocol::Tcp | IpProtocol::Udp => {
                let extra = buf.len() - (crate::wire::ipv6::HEADER_LEN + repr.payload_len);
                buf.trim(extra);
                buf.adj(crate::wire::ipv6::HEADER_LEN);
                self.stats.delivered += 1;
                Ingress::Deliver {
                    protocol: repr.next_header,
                    src: IpAddress::V6(repr.src_addr),
                    dst: IpAddress::V6(repr.dst_addr),
                    buf,
                }
            }
            _ => self.drop(DropReason::UnknownProtocol),
        }
    }

    fn slot(&self, ip: Ipv4Address) -> usize {
        // Fibonacci hashing of the address spreads neighbours over the table.
        (u64::from(ip.to_u32()).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & self.mask
    }

    /// Finds `ip`'s slot, or the slot to put it in (first free or expired in its probe run, else
    /// the one expiring soonest, which is then evicted).
    fn find(&self, now: Instant, ip: Ipv4Address) -> (usize, bool) {
        let start = self.slot(ip);
        let mut candidate = None;
        let mut oldest = (start, Instant::FAR_FUTURE);
        for i in 0..8.min(self.neighbors.len()) {
            let s = (start + i) & self.mask;
            let n = &self.neighbors[s];
            if n.expires != Instant::ZERO && n.ip == ip {
                return (s, true);
            }
            let free = n.expires == Instant::ZERO || n.expires <= now;
            if free && candidate.is_none() {
                candidate = Some(s);
            }
            if n.expires < oldest.1 {
                oldest = (s, n.expires);
            }
        }
        (candidate.unwrap_or(oldest.0), false)
    }

    /// Stores or refreshes `ip`'s MAC; returns false if it was not known and `create` is false.
    fn learn(&mut self, now: Instant, ip: Ipv4Address, mac: EthernetAddress, create: bool) -> bool {
        let (s, found) = self.find(now, ip);
        if !found && !create {
            return false;
        }
        let n = &mut self.neighbors[s];
        if !found && n.expires > now {
            self.stats.neighbor_evictions += 1;
        }
        *n = Neighbor {
            ip,
            mac,
            expires: now + self.cfg.neighbor_ttl,
            resolved: true,
            asked: n.asked,
            want: false,
        };
        true
    }

    /// Adds a permanent-until-expiry neighbour (static configuration, tests, and neighbours
    /// another worker of the same port learned).
    pub fn add_neighbor(&mut self, now: Instant, ip: Ipv4Address, mac: EthernetAddress) {
        self.learn(now, ip, mac, true);
    }

    /// The neighbour the last received ARP frame taught or refreshed, once: the workers of a
    /// port share it, since the ARP reply to one worker's request may be received by another
    /// (multi-queue receive spreads frames by hash). Only ARP sets it, never
    /// [`Edge::add_neighbor`], so sharing does not echo.
    pub fn take_learned(&mut self) -> Option<(Ipv4Address, EthernetAddress)> {
        self.learned.take()
    }

    /// The next hop for a packet from `src` to `dst`: on-link if a connected subnet covers
    /// `dst`, else the gateway of `src`'s subnet in `source_gateways`, else the gateway of the
    /// longest matching static route (as [`Edge::next_hop`]).
    pub fn next_hop_from(&self, src: Ipv4Address, dst: Ipv4Address) -> Option<Ipv4Address> {
        if self.on_link(dst) {
            return Some(dst);
        }
        if let Some((_, gw)) = self
            .cfg
            .source_gateways
            .iter()
            .find(|(a, _)| a.addr.same_prefix(src, a.prefix_len))
        {
            return Some(*gw);
        }
        self.static_route(dst)
    }

    /// The next hop for `dst`: on-link if a connected subnet or an on-link route covers it, else
    /// the gateway of the longest matching static route.
    pub fn next_hop(&self, dst: Ipv4Address) -> Option<Ipv4Address> {
        if self.on_link(dst) {
            return Some(dst);
        }
        self.static_route(dst)
    }

    /// A connected subnet covers `dst`.
    fn on_link(&self, dst: Ipv4Address) -> bool {
        self.cfg
            .addrs
            .iter()
            .any(|a| a.addr.same_prefix(dst, a.prefix_len))
    }

    /// The longest matching static route's next hop (`dst` itself for an on-link route).
    fn static_route(&self, dst: Ipv4Address) -> Option<Ipv4Address> {
        self.cfg
            .routes
            .iter()
            .filter(|r| r.dest.same_prefix(dst, r.prefix_len))
            .max_by_key(|r| r.prefix_len)
            .map(|r| r.gateway.unwrap_or(dst))
    }

    /// The MAC for next hop `ip`, if known and fresh. If not, marks it to be asked for.
    pub fn resolve(&mut self, now: Instant, ip: Ipv4Address) -> Option<EthernetAddress> {
        let (s, found) = self.find(now, ip);
        let retry = self.cfg.arp_retry;
        let n = &mut self.neighbors[s];
        if found && n.resolved && n.expires > now {
            // RFC 1122 §2.3.2.1: an entry in use is revalidated. Within three retries of its
            // expiry a request is made (at most one per `arp_retry`) while its MAC is still
            // used; the answer renews it, so traffic sees no gap.
            let stale = now + retry * 3 >= n.expires;
            if stale && !n.want && (n.asked == Instant::ZERO || now >= n.asked + retry) {
                n.want = true;
            }
            return Some(n.mac);
        }
        if !found {
            if n.expires > now {
                self.stats.neighbor_evictions += 1;
            }
            *n = Neighbor {
                ip,
                mac: EthernetAddress::BROADCAST,
                expires: now + self.cfg.arp_retry * 3,
                resolved: false,
                asked: Instant::ZERO,
                want: true,
            };
        } else if n.expires <= now || !n.resolved {
            n.want = true;
            n.resolved = false;
            n.expires = n.expires.max(now + self.cfg.arp_retry * 3);
        }
        None
    }

    /// Prepends IPv4 and Ethernet headers to an L4 segment in `buf` (checksums of the L4 header
    /// already filled), routed to `dst`. TTL from the config, DF set.
    pub fn encap_ipv4<B: PacketBuffer>(
        &mut self,
        now: Instant,
        buf: &mut B,
        src: Ipv4Address,
        dst: Ipv4Address,
        protocol: IpProtocol,
    ) -> Egress {
        let Some(hop) = self.next_hop_from(src, dst) else {
            self.stats.no_route += 1;
            return Egress::NoRoute;
        };
        let mac = self.resolve(now, hop);
        if mac.is_none() {
            self.stats.unresolved += 1;
        }
        self.ident = self.ident.wrapping_add(1);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len: buf.len(),
            hop_limit: self.cfg.hop_limit,
            dscp_ecn: 0,
        };
        let Some(h) = buf.prepend(ipv4::HEADER_LEN) else {
            return Egress::NoHeadroom;
        };
        if ip.emit(&mut Ipv4Packet::new_unchecked(&mut *h)).is_err() {
            return Egress::NoHeadroom;
        }
        let Some(h) = buf.prepend(ethernet::HEADER_LEN) else {
            return Egress::NoHeadroom;
        };
        let e = EthernetRepr {
            src_addr: self.cfg.mac,
            dst_addr: mac.unwrap_or(EthernetAddress([0; 6])),
            ethertype: EtherType::Ipv4,
        };
        if e.emit(&mut EthernetFrame::new_unchecked(h)).is_err() {
            return Egress::NoHeadroom;
        }
        if mac.is_none() {
            return Egress::Unresolved;
        }
        Egress::Ready
    }

    /// For a frame [`Edge::encap_ipv4`] left [`Egress::Unresolved`]: fills in the destination
    /// MAC once its next hop is resolved. `Some(true)`: ready to send; `Some(false)`: not yet
    /// (the request stays due); `None`: not an IPv4 frame of ours, or no route any more (drop).
    pub fn complete_l2<B: PacketBuffer>(&mut self, now: Instant, buf: &mut B) -> Option<bool> {
        let frame = buf.as_mut();
        let (src, dst) = {
            let eth = EthernetFrame::new_checked(&*frame).ok()?;
            if eth.ethertype() != EtherType::Ipv4 {
                return None;
            }
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            (ip.src_addr(), ip.dst_addr())
        };
        let hop = self.next_hop_from(src, dst)?;
        let Some(mac) = self.resolve(now, hop) else {
            return Some(false);
        };
        EthernetFrame::new_unchecked(frame).set_dst_addr(mac);
        Some(true)
    }

    /// Builds at most one due ARP request into a buffer from `alloc`. Call until it returns
    /// `None` each poll. Requests for one address go out at most once per `arp_retry`.
    pub fn poll_arp<B: PacketBuffer>(
        &mut self,
        now: Instant,
        alloc: impl FnOnce() -> Option<B>,
    ) -> Option<B> {
        let retry = self.cfg.arp_retry;
        let src_ip = self.primary_addr()?;
        let i = self.neighbors.iter().position(|n| {
            n.want && n.expires > now && (n.asked == Instant::ZERO || now >= n.asked + retry)
        })?;
        let target = self.neighbors[i].ip;
        let mut buf = alloc()?;
        let src_ip = self
            .cfg
            .addrs
            .iter()
            .find(|a| a.addr.same_prefix(target, a.prefix_len))
            .map_or(src_ip, |a| a.addr);
        let req = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: src_ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let e = EthernetRepr {
            src_addr: self.cfg.mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        };
        let f = buf.append(ethernet::HEADER_LEN + arp::PACKET_LEN)?;
        e.emit(&mut EthernetFrame::new_unchecked(&mut *f)).ok()?;
        req.emit(&mut f[ethernet::HEADER_LEN..]).ok()?;
        let n = &mut self.neighbors[i];
        n.asked = now;
        n.want = false;
        self.stats.arp_requests += 1;
        Some(buf)
    }

    /// When an ARP request will next be due, if any is waiting.
    pub fn poll_at(&self) -> Option<Instant> {
        let retry = self.cfg.arp_retry;
        self.neighbors
            .iter()
            .filter(|n| n.want)
            .map(|n| {
                if n.asked == Instant::ZERO {
                    Instant::ZERO
                } else {
                    n.asked + retry
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{PktBuf, Pool};
    use crate::wire::{UdpPacket, UdpRepr};

    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const IP_A: Ipv4Address = Ipv4Address([192, 0, 2, 1]);
    const IP_B: Ipv4Address = Ipv4Address([192, 0, 2, 2]);

    fn edge() -> Edge {
        Edge::new(EdgeConfig::single(MAC_B, IP_B, 24))
    }

    fn arp_request(pool: &Pool, target: Ipv4Address) -> PktBuf {
        arp_frame(pool, ArpOperation::Request, MAC_A, IP_A, target)
    }

    fn ipv4_frame(pool: &Pool, proto: IpProtocol, l4: &[u8], pad: usize) -> PktBuf {
        let mut b = pool.alloc_from(l4).unwrap();
        let mut e = Edge::new(EdgeConfig::single(MAC_A, IP_A, 24));
        e.add_neighbor(Instant::ZERO, IP_B, MAC_B);
        assert_eq!(
            e.encap_ipv4(Instant::ZERO, &mut b, IP_A, IP_B, proto),
            Egress::Ready
        );
        b.append(pad).unwrap().fill(0);
        b
    }

    #[test]
    fn answers_arp_for_own_address_only_and_learns_sender() {
        let pool = Pool::new(8, 256);
        let mut e = edge();
        let Ingress::Reply(r) = e.ingress(Instant::ZERO, arp_request(&pool, IP_B)) else {
            panic!("no reply")
        };
        let f = EthernetFrame::new_checked(r.as_ref()).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr()), (MAC_A, MAC_B));
        let a = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()).unwrap();
        assert_eq!(a.operation, ArpOperation::Reply);
        assert_eq!(
            (a.source_protocol_addr, a.source_hardware_addr),
            (IP_B, MAC_B)
        );
        assert_eq!(e.resolve(Instant::ZERO, IP_A), Some(MAC_A));
        // Reported once, for the other workers of the port; a static entry is not reported.
        assert_eq!(e.take_learned(), Some((IP_A, MAC_A)));
        assert_eq!(e.take_learned(), None);
        e.add_neighbor(Instant::ZERO, Ipv4Address([192, 0, 2, 7]), MAC_A);
        assert_eq!(e.take_learned(), None);
        assert!(matches!(
            e.ingress(
                Instant::ZERO,
                arp_request(&pool, Ipv4Address([192, 0, 2, 9]))
            ),
            Ingress::Dropped(DropReason::Ignored)
        ));
        assert_eq!(e.stats().arp_replies, 1);
    }

    #[test]
    fn answers_echo_in_place() {
        let pool = Pool::new(8, 256);
        let mut icmp = [0u8; 8 + 5];
        Icmpv4Repr::EchoRequest {
            ident: 7,
            seq_no: 9,
            data: b"hello",
        }
        .emit(&mut icmp)
        .unwrap();
        let mut e = edge();
        let Ingress::Reply(r) =
            e.ingress(Instant::ZERO, ipv4_frame(&pool, IpProtocol::Icmp, &icmp, 4))
        else {
            panic!("no echo reply")
        };
        let f = EthernetFrame::new_checked(r.as_ref()).unwrap();
        assert_eq!(f.dst_addr(), MAC_A);
        let ip = Ipv4Packet::new_checked(f.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (IP_B, IP_A));
        let p = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p).unwrap(),
            Icmpv4Repr::EchoReply {
                ident: 7,
                seq_no: 9,
                data: b"hello"
            }
        );
    }

    #[test]
    fn delivers_udp_trimmed_and_drops_what_is_not_ours() {
        let pool = Pool::new(8, 256);
        let mut udp = [0u8; 8 + 3];
        let (s, d) = (IpAddress::V4(IP_A), IpAddress::V4(IP_B));
        UdpRepr {
            src_port: 5000,
            dst_port: 6000,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut udp[..]), &s, &d, b"abc")
        .unwrap();
        let mut e = edge();
        match e.ingress(Instant::ZERO, ipv4_frame(&pool, IpProtocol::Udp, &udp, 20)) {
            Ingress::Deliver {
                protocol, src, buf, ..
            } => {
                assert_eq!((protocol, src), (IpProtocol::Udp, s));
                assert_eq!(buf.as_ref(), &udp[..]);
            }
            other => panic!("{other:?}"),
        }
        let mut other = edge();
        other.cfg.addrs[0].addr = Ipv4Address([192, 0, 2, 3]);
        assert!(matches!(
            other.ingress(Instant::ZERO, ipv4_frame(&pool, IpProtocol::Udp, &udp, 0)),
            Ingress::Dropped(DropReason::NotOurAddr)
        ));
        let mut bad = ipv4_frame(&pool, IpProtocol::Udp, &udp, 0);
        bad.as_mut()[14 + 8] ^= 0x40; // TTL: header checksum now wrong
        assert!(matches!(
            e.ingress(Instant::ZERO, bad),
            Ingress::Dropped(DropReason::BadChecksum)
        ));
        let short = pool.alloc_from(&[0u8; 10]).unwrap();
        assert!(matches!(
            e.ingress(Instant::ZERO, short),
            Ingress::Dropped(DropReason::Malformed)
        ));
    }

    #[test]
    fn routes_by_longest_prefix_and_asks_for_unknown_next_hops() {
        let mut cfg = EdgeConfig::single(MAC_B, IP_B, 24);
        cfg.routes.push(Route {
            dest: Ipv4Address([0, 0, 0, 0]),
            prefix_len: 0,
            gateway: Some(Ipv4Address([192, 0, 2, 254])),
        });
        cfg.routes.push(Route {
            dest: Ipv4Address([198, 51, 100, 0]),
            prefix_len: 24,
            gateway: Some(Ipv4Address([192, 0, 2, 253])),
        });
        let mut e = Edge::new(cfg);
        assert_eq!(e.next_hop(IP_A), Some(IP_A));
        assert_eq!(
            e.next_hop(Ipv4Address([198, 51, 100, 7])),
            Some(Ipv4Address([192, 0, 2, 253]))
        );
        assert_eq!(
            e.next_hop(Ipv4Address([8, 8, 8, 8])),
            Some(Ipv4Address([192, 0, 2, 254]))
        );
        let pool = Pool::new(8, 256);
        let mut seg = pool.alloc_from(&[0u8; 20]).unwrap();
        assert_eq!(
            e.encap_ipv4(Instant::ZERO, &mut seg, IP_B, IP_A, IpProtocol::Tcp),
            Egress::Unresolved
        );
        assert_eq!(e.poll_at(), Some(Instant::ZERO));
        let req = e
            .poll_arp(Instant::ZERO, || pool.alloc())
            .expect("an ARP request");
        assert!(
            e.poll_arp(Instant::ZERO, || pool.alloc()).is_none(),
            "rate limited"
        );
        // Feed the request to A's edge; its reply teaches B.
        let mut a = Edge::new(EdgeConfig::single(MAC_A, IP_A, 24));
        let Ingress::Reply(rep) = a.ingress(Instant::ZERO, req) else {
            panic!()
        };
        assert!(matches!(
            e.ingress(Instant::ZERO, rep),
            Ingress::Dropped(DropReason::Ignored)
        ));
        assert_eq!(e.resolve(Instant::ZERO, IP_A), Some(MAC_A));
        let mut fresh = pool.alloc_from(&[0u8; 20]).unwrap();
        assert_eq!(
            e.encap_ipv4(Instant::ZERO, &mut fresh, IP_B, IP_A, IpProtocol::Tcp),
            Egress::Ready
        );
    }

    #[test]
    fn a_frame_held_for_an_unresolved_next_hop_is_completed_when_it_resolves() {
        let mut e = Edge::new(EdgeConfig::single(MAC_B, IP_B, 24));
        let pool = Pool::new(8, 256);
        let mut seg = pool.alloc_from(&[0u8; 20]).unwrap();
        assert_eq!(
            e.encap_ipv4(Instant::ZERO, &mut seg, IP_B, IP_A, IpProtocol::Udp),
            Egress::Unresolved
        );
        // Headers are in place, the destination MAC is not known yet.
        assert_eq!(seg.len(), 14 + 20 + 20);
        assert_eq!(
            EthernetFrame::new_checked(seg.as_ref()).unwrap().dst_addr(),
            EthernetAddress([0; 6])
        );
        assert_eq!(e.complete_l2(Instant::ZERO, &mut seg), Some(false));
        e.add_neighbor(Instant::ZERO, IP_A, MAC_A);
        assert_eq!(e.complete_l2(Instant::ZERO, &mut seg), Some(true));
        let eth = EthernetFrame::new_checked(seg.as_ref()).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (MAC_A, MAC_B));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (IP_B, IP_A));
        // Not an IPv4 frame: nothing to complete.
        let mut junk = pool.alloc_from(&[0u8; 10]).unwrap();
        assert_eq!(e.complete_l2(Instant::ZERO, &mut junk), None);
    }

    const MAC_EVIL: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x66]);

    /// An ARP `op` from `sha`/`spa` asking for (or answering to) `tpa`.
    fn arp_frame(
        pool: &Pool,
        op: ArpOperation,
        sha: EthernetAddress,
        spa: Ipv4Address,
        tpa: Ipv4Address,
    ) -> PktBuf {
        let mut b = pool.alloc().unwrap();
        let f = b.append(42).unwrap();
        EthernetRepr {
            src_addr: sha,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut *f))
        .unwrap();
        ArpRepr {
            operation: op,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: tpa,
        }
        .emit(&mut f[14..])
        .unwrap();
        b
    }

    #[test]
    fn a_tcp_or_udp_frame_with_a_spoofed_source_mac_does_not_change_the_neighbour() {
        let pool = Pool::new(8, 256);
        let mut e = edge();
        let _ = e.ingress(
            Instant::ZERO,
            arp_frame(&pool, ArpOperation::Request, MAC_A, IP_A, IP_B),
        );
        assert_eq!(e.resolve(Instant::ZERO, IP_A), Some(MAC_A));
        let mut udp = [0u8; 8 + 3];
        let (s, d) = (IpAddress::V4(IP_A), IpAddress::V4(IP_B));
        UdpRepr {
            src_port: 5000,
            dst_port: 6000,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut udp[..]), &s, &d, b"abc")
        .unwrap();
        for proto in [IpProtocol::Udp, IpProtocol::Tcp] {
            // Any frame claiming IP_A's address, from another MAC (and not even a valid L4
            // segment for TCP): delivered for the L4 to judge, but it teaches nothing.
            let mut f = ipv4_frame(&pool, proto, &udp, 0);
            f.as_mut()[6..12].copy_from_slice(&MAC_EVIL.0);
            assert!(matches!(
                e.ingress(Instant::from_millis(5), f),
                Ingress::Deliver { .. }
            ));
            assert_eq!(e.resolve(Instant::from_millis(5), IP_A), Some(MAC_A));
        }
        assert_eq!(e.take_learned(), Some((IP_A, MAC_A)), "only the ARP taught");
        assert_eq!(e.take_learned(), None);
    }

    #[test]
    fn an_arp_from_off_the_realm_subnet_is_not_learned() {
        let pool = Pool::new(8, 256);
        let mut e = edge();
        let far = Ipv4Address([203, 0, 113, 9]);
        // Asked for our address by someone off our subnet: it is answered (RFC 826), but a
        // host we cannot reach on-link is not a neighbour.
        assert!(matches!(
            e.ingress(
                Instant::ZERO,
                arp_frame(&pool, ArpOperation::Request, MAC_EVIL, far, IP_B)
            ),
            Ingress::Reply(_)
        ));
        assert_eq!(e.take_learned(), None);
        assert_eq!(e.resolve(Instant::ZERO, far), None, "not learned");
    }

    #[test]
    fn an_arp_for_one_realm_does_not_create_or_update_another_realms_neighbour() {
        let pool = Pool::new(16, 256);
        let access = Ipv4Address([192, 0, 2, 10]);
        let core = Ipv4Address([198, 51, 100, 10]);
        let core_peer = Ipv4Address([198, 51, 100, 5]);
        let mut cfg = EdgeConfig::single(MAC_B, access, 24);
        cfg.addrs.push(InterfaceAddr {
            addr: core,
            prefix_len: 24,
        });
        let mut e = Edge::new(cfg);
        // The core peer asks for the core address: learned.
        let _ = e.ingress(
            Instant::ZERO,
            arp_frame(&pool, ArpOperation::Request, MAC_A, core_peer, core),
        );
        assert_eq!(e.resolve(Instant::ZERO, core_peer), Some(MAC_A));
        let t = Instant::from_millis(10);
        // An ARP for the access realm claiming the core peer's address (a request to the
        // access address, a reply, and a broadcast for somebody else on the access subnet).
        for (op, tpa) in [
            (ArpOperation::Request, access),
            (ArpOperation::Reply, access),
            (ArpOperation::Request, Ipv4Address([192, 0, 2, 99])),
        ] {
            let _ = e.ingress(t, arp_frame(&pool, op, MAC_EVIL, core_peer, tpa));
            assert_eq!(e.resolve(t, core_peer), Some(MAC_A), "{op:?} to {tpa}");
        }
        // Nor does it create an entry for a core-realm address it has not seen.
        let other_core = Ipv4Address([198, 51, 100, 6]);
        let _ = e.ingress(
            t,
            arp_frame(&pool, ArpOperation::Request, MAC_EVIL, other_core, access),
        );
        assert_eq!(e.resolve(t, other_core), None);
        assert_eq!(e.take_learned(), Some((core_peer, MAC_A)));
        assert_eq!(e.take_learned(), None);
    }

    #[test]
    fn a_used_neighbour_is_asked_for_again_before_it_expires() {
        // With no refresh from data traffic, an entry in use is re-verified by ARP ahead of
        // its expiry (RFC 1122 §2.3.2.1) while its MAC is still used.
        let pool = Pool::new(8, 256);
        let mut e = edge();
        let _ = e.ingress(
            Instant::ZERO,
            arp_frame(&pool, ArpOperation::Request, MAC_A, IP_A, IP_B),
        );
        let ttl = e.cfg.neighbor_ttl;
        assert!(e.poll_arp(Instant::ZERO, || pool.alloc()).is_none());
        let late = Instant::ZERO + (ttl - Duration::from_secs(1));
        assert_eq!(e.resolve(late, IP_A), Some(MAC_A), "still used");
        let req = e.poll_arp(late, || pool.alloc()).expect("asked again");
        let f = EthernetFrame::new_checked(req.as_ref()).unwrap();
        let a = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()).unwrap();
        assert_eq!(a.target_protocol_addr, IP_A);
        // The answer renews it.
        let _ = e.ingress(
            late,
            arp_frame(&pool, ArpOperation::Reply, MAC_A, IP_A, IP_B),
        );
        assert_eq!(e.resolve(late + ttl / 2, IP_A), Some(MAC_A));
    }

    #[test]
    fn each_realm_leaves_through_its_own_gateway() {
        let access = Ipv4Address([192, 0, 2, 10]);
        let core = Ipv4Address([198, 51, 100, 10]);
        let mut cfg = EdgeConfig::single(MAC_B, access, 24);
        cfg.addrs.push(InterfaceAddr {
            addr: core,
            prefix_len: 24,
        });
        cfg.routes.push(Route {
            dest: Ipv4Address::UNSPECIFIED,
            prefix_len: 0,
            gateway: Some(Ipv4Address([192, 0, 2, 1])),
        });
        cfg.source_gateways.push((
            InterfaceAddr {
                addr: core,
                prefix_len: 24,
            },
            Ipv4Address([198, 51, 100, 1]),
        ));
        let e = Edge::new(cfg);
        let far = Ipv4Address([203, 0, 113, 5]);
        assert_eq!(
            e.next_hop_from(core, far),
            Some(Ipv4Address([198, 51, 100, 1]))
        );
        assert_eq!(
            e.next_hop_from(access, far),
            Some(Ipv4Address([192, 0, 2, 1]))
        );
        // On-link destinations stay on-link whatever the source.
        let near = Ipv4Address([192, 0, 2, 77]);
        assert_eq!(e.next_hop_from(core, near), Some(near));
    }
}
