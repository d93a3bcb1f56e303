//! One [`Port`] over one queue of each of several NIC ports: a worker serving IP realms that
//! sit on different ports (access on one NIC port, core on another) drives them as one.
//!
//! The edge above keeps one MAC and one set of addresses; this adapter makes that right on each
//! wire:
//! - **Transmit:** a frame leaves through the port of its source address's realm (IPv4 source,
//!   or the ARP sender address), with that port's own MAC as the Ethernet source (and as the
//!   ARP sender hardware address), so each network sees the MAC of the port it is cabled to.
//!   Frames of no known realm leave through the first port.
//! - **Receive:** the ports are polled in turn; a frame addressed to a port's own MAC is
//!   re-addressed to the edge's MAC (the first port's) before the edge sees it.
//!
//! Everything per packet is a few header bytes read and written in place: no allocation, no
//! copy. The adapter takes every frame offered to `tx_burst`; what a port cannot take now is
//! dropped and counted (`tx_full`), as the worker drops what its port refuses.

use mgw_core::edge::InterfaceAddr;
use mgw_core::port::{Batch, Port, PortStats, BURST};
use mgw_core::time::Instant;
use mgw_core::wire::{EthernetAddress, Ipv4Address};

const ETH_SRC: core::ops::Range<usize> = 6..12;
const ETH_DST: core::ops::Range<usize> = 0..6;
const ETHERTYPE: core::ops::Range<usize> = 12..14;
/// IPv4 source address in a frame (14-octet Ethernet header, then IPv4 bytes 12..16).
const IPV4_SRC: core::ops::Range<usize> = 26..30;
/// ARP (RFC 826, Ethernet/IPv4): sender hardware address and sender protocol address.
const ARP_SHA: core::ops::Range<usize> = 22..28;
const ARP_SPA: core::ops::Range<usize> = 28..32;

/// Several ports driven as one (see the module docs).
pub struct MultiPort<P: Port> {
    ports: Vec<P>,
    macs: Vec<EthernetAddress>,
    /// Which port a source address leaves through: (realm subnet, port index).
    by_source: Vec<(InterfaceAddr, usize)>,
    out: Vec<Batch<P::Buffer>>,
    next_rx: usize,
    tx_dropped: u64,
}

impl<P: Port> MultiPort<P> {
    /// Drives `ports` (at least one) as one; `by_source` maps each realm's subnet to the index
    /// of its port. The edge must use `ports[0]`'s MAC ([`Port::mac`] of the result).
    ///
    /// # Panics
    /// If `ports` is empty (a start-up configuration error).
    pub fn new(ports: Vec<P>, by_source: Vec<(InterfaceAddr, usize)>) -> MultiPort<P> {
        assert!(!ports.is_empty(), "MultiPort needs a port");
        MultiPort {
            macs: ports.iter().map(Port::mac).collect(),
            out: ports.iter().map(|_| Batch::new(BURST)).collect(),
            ports,
            by_source,
            next_rx: 0,
            tx_dropped: 0,
        }
    }

    /// The ports, in order.
    pub fn ports(&self) -> &[P] {
        &self.ports
    }

    fn port_of(&self, src: Ipv4Address) -> usize {
        self.by_source
            .iter()
            .find(|(a, _)| a.addr.same_prefix(src, a.prefix_len))
            .map_or(0, |(_, i)| *i)
            .min(self.ports.len() - 1)
    }

    /// Picks the port of an outgoing frame and gives it that port's MAC.
    fn route(&self, frame: &mut [u8]) -> usize {
        if frame.len() < 14 {
            return 0;
        }
        let ethertype = u16::from_be_bytes([frame[ETHERTYPE.start], frame[ETHERTYPE.start + 1]]);
        let (src, arp) = match ethertype {
            0x0800 if frame.len() >= IPV4_SRC.end => (&frame[IPV4_SRC], false),
            0x0806 if frame.len() >= ARP_SPA.end => (&frame[ARP_SPA], true),
            _ => return 0,
        };
        let src = Ipv4Address([src[0], src[1], src[2], src[3]]);
        let i = self.port_of(src);
        if i != 0 {
            let (edge, own) = (self.macs[0].0, self.macs[i].0);
            if frame[ETH_SRC] == edge {
                frame[ETH_SRC].copy_from_slice(&own);
            }
            if arp && frame[ARP_SHA] == edge {
                frame[ARP_SHA].copy_from_slice(&own);
            }
        }
        i
    }

    fn send(&mut self, i: usize) {
        if self.out[i].is_empty() {
            return;
        }
        self.ports[i].tx_burst(&mut self.out[i]);
        self.tx_dropped += self.out[i].len() as u64;
        self.out[i].clear();
    }
}

impl<P: Port> Port for MultiPort<P> {
    type Buffer = P::Buffer;

    fn rx_burst(&mut self, batch: &mut Batch<P::Buffer>) -> usize {
        let n = self.ports.len();
        let start = batch.len();
        for k in 0..n {
            if batch.is_full() {
                break;
            }
            let i = (self.next_rx + k) % n;
            let before = batch.len();
            self.ports[i].rx_burst(batch);
            if i != 0 {
                let (edge, own) = (self.macs[0].0, self.macs[i].0);
                for f in batch.iter_mut().skip(before) {
                    let frame = f.as_mut();
                    if frame.len() >= 14 && frame[ETH_DST] == own {
                        frame[ETH_DST].copy_from_slice(&edge);
                    }
                }
            }
        }
        // Start with the next port next time, so no port is starved by a busy one.
        self.next_rx = (self.next_rx + 1) % n;
        batch.len() - start
    }

    fn tx_burst(&mut self, batch: &mut Batch<P::Buffer>) -> usize {
        let taken = batch.len();
        for mut f in batch.drain() {
            let i = self.route(f.as_mut());
            if let Err(f) = self.out[i].push(f) {
                self.send(i);
                // Cannot fail: the batch was just emptied.
                let _ = self.out[i].push(f);
            }
        }
        for i in 0..self.ports.len() {
            self.send(i);
        }
        taken
    }

    fn alloc(&mut self) -> Option<P::Buffer> {
        self.ports[0].alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.macs[0]
    }

    fn max_frame(&self) -> usize {
        self.ports.iter().map(Port::max_frame).min().unwrap_or(0)
    }

    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for p in &self.ports {
            let x = p.stats();
            s.rx_packets += x.rx_packets;
            s.rx_bytes += x.rx_bytes;
            s.tx_packets += x.tx_packets;
            s.tx_bytes += x.tx_bytes;
            s.tx_full += x.tx_full;
            s.dropped += x.dropped;
        }
        s.tx_full += self.tx_dropped;
        s
    }

    fn poll_at(&self) -> Option<Instant> {
        self.ports.iter().filter_map(Port::poll_at).min()
    }

    fn tx_l4_checksum_offload(&self) -> bool {
        self.ports.iter().all(Port::tx_l4_checksum_offload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{pair, MemConfig};
    use mgw_core::buf::Pool;
    use mgw_core::time::{Clock, VirtualClock};

    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 1, 1]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 2, 1]);

    fn frame_v4(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 34];
        f[ETH_DST].copy_from_slice(&dst_mac.0);
        f[ETH_SRC].copy_from_slice(&src_mac.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[IPV4_SRC].copy_from_slice(&src);
        f
    }

    #[test]
    fn each_realm_uses_its_own_port_and_mac() {
        let pool = Pool::new(64, 2048);
        let clock = Clock::Virtual(VirtualClock::new());
        let cfg_a = MemConfig {
            mac_a: MAC_A,
            ..MemConfig::default()
        };
        let cfg_b = MemConfig {
            mac_a: MAC_B,
            ..MemConfig::default()
        };
        let (a, mut wire_a) = pair(&pool, &clock, &cfg_a);
        let (b, mut wire_b) = pair(&pool, &clock, &cfg_b);
        let realm = |o: [u8; 4]| InterfaceAddr {
            addr: Ipv4Address(o),
            prefix_len: 24,
        };
        let mut m = MultiPort::new(
            vec![a, b],
            vec![(realm([10, 1, 0, 1]), 0), (realm([10, 2, 0, 1]), 1)],
        );
        assert_eq!(m.mac(), MAC_A);
        let peer = EthernetAddress([2, 0, 0, 0, 9, 9]);
        // Out: the core realm's packet leaves on port B with B's MAC; access on A unchanged.
        let mut out = Batch::new(4);
        let _ = out.push(
            pool.alloc_from(&frame_v4(MAC_A, peer, [10, 2, 0, 1]))
                .unwrap(),
        );
        let _ = out.push(
            pool.alloc_from(&frame_v4(MAC_A, peer, [10, 1, 0, 1]))
                .unwrap(),
        );
        // An ARP request from the core address: sender hardware address rewritten too.
        let mut arp = vec![0u8; 42];
        arp[ETH_DST].copy_from_slice(&EthernetAddress::BROADCAST.0);
        arp[ETH_SRC].copy_from_slice(&MAC_A.0);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        arp[ARP_SHA].copy_from_slice(&MAC_A.0);
        arp[ARP_SPA].copy_from_slice(&[10, 2, 0, 1]);
        let _ = out.push(pool.alloc_from(&arp).unwrap());
        assert_eq!(m.tx_burst(&mut out), 3);
        assert!(out.is_empty());
        let mut got = Batch::new(8);
        wire_b.rx_burst(&mut got);
        let frames: Vec<Vec<u8>> = got.drain().map(|f| f.as_ref().to_vec()).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0][ETH_SRC], MAC_B.0);
        assert_eq!(frames[0][IPV4_SRC], [10, 2, 0, 1]);
        assert_eq!(frames[1][ETH_SRC], MAC_B.0);
        assert_eq!(frames[1][ARP_SHA], MAC_B.0);
        wire_a.rx_burst(&mut got);
        let frames: Vec<Vec<u8>> = got.drain().map(|f| f.as_ref().to_vec()).collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0][ETH_SRC], MAC_A.0);
        // In: a frame to B's MAC reaches the edge addressed to the edge's MAC (A's).
        let mut back = Batch::new(2);
        let _ = back.push(
            pool.alloc_from(&frame_v4(peer, MAC_B, [10, 2, 0, 9]))
                .unwrap(),
        );
        wire_b.tx_burst(&mut back);
        let mut rx = Batch::new(8);
        assert_eq!(m.rx_burst(&mut rx), 1);
        let f = rx.drain().next().unwrap();
        assert_eq!(f.as_ref()[ETH_DST], MAC_A.0);
        assert_eq!(m.stats().tx_packets, 3);
    }
}
