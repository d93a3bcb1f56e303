//! The `mem` backend: two in-memory ports joined by a simulated wire.
//!
//! Each direction has a sender-side [`Link`] that applies the [`LinkModel`] and a bounded
//! lock-free queue into the peer. With an ideal model the link is bypassed and a transmitted
//! buffer moves to the peer's queue as is: no copy, no lock, no allocation. The ports read time
//! from a [`Clock`], virtual in the simulator and monotonic in `mgwd lab`, so they can sit on
//! different threads.

use crossbeam::queue::ArrayQueue;
use mgw_core::buf::{PktBuf, Pool};
use mgw_core::link::{Link, LinkModel};
use mgw_core::port::{Batch, Port, PortStats};
use mgw_core::time::{Clock, Instant};
use mgw_core::wire::EthernetAddress;
use std::sync::Arc;

/// How to build a pair of joined ports.
#[derive(Debug, Clone)]
pub struct MemConfig {
    /// Model for frames from port A to port B.
    pub a_to_b: LinkModel,
    /// Model for frames from port B to port A.
    pub b_to_a: LinkModel,
    /// Seed for both links' random fates (B→A uses `seed ^ 1`).
    pub seed: u64,
    /// Frames each receive queue holds before tail-dropping.
    pub queue_len: usize,
    /// MAC of port A.
    pub mac_a: EthernetAddress,
    /// MAC of port B.
    pub mac_b: EthernetAddress,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            a_to_b: LinkModel::ideal(),
            b_to_a: LinkModel::ideal(),
            seed: 0,
            queue_len: 4096,
            mac_a: EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]),
            mac_b: EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]),
        }
    }
}

fn is_ideal(m: &LinkModel) -> bool {
    m.loss == 0.0
        && m.duplicate == 0.0
        && m.reorder == 0.0
        && m.corrupt == 0.0
        && m.delay.is_zero()
        && m.jitter.is_zero()
        && m.bandwidth_bps.is_none()
}

/// One end of a simulated wire.
#[derive(Debug)]
pub struct MemPort {
    pool: Pool,
    clock: Clock,
    /// Impairment for what we send; `None` on an ideal wire.
    link: Option<Link>,
    mtu: usize,
    to_peer: Arc<ArrayQueue<PktBuf>>,
    from_peer: Arc<ArrayQueue<PktBuf>>,
    mac: EthernetAddress,
    stats: PortStats,
}

/// Two ports joined by a simulated wire, both allocating from `pool`.
pub fn pair(pool: &Pool, clock: &Clock, cfg: &MemConfig) -> (MemPort, MemPort) {
    let ab = Arc::new(ArrayQueue::new(cfg.queue_len.max(1)));
    let ba = Arc::new(ArrayQueue::new(cfg.queue_len.max(1)));
    let mk = |model: &LinkModel,
              seed: u64,
              to: &Arc<ArrayQueue<PktBuf>>,
              from: &Arc<ArrayQueue<PktBuf>>,
              mac| MemPort {
        pool: pool.clone(),
        clock: clock.clone(),
        link: (!is_ideal(model)).then(|| Link::with_pool(model.clone(), seed, pool.clone())),
        mtu: model.mtu,
        to_peer: Arc::clone(to),
        from_peer: Arc::clone(from),
        mac,
        stats: PortStats::default(),
    };
    let a = mk(&cfg.a_to_b, cfg.seed, &ab, &ba, cfg.mac_a);
    let b = mk(&cfg.b_to_a, cfg.seed ^ 1, &ba, &ab, cfg.mac_b);
    (a, b)
}

impl MemPort {
    /// Moves frames whose delivery time has come from our link into the peer's queue.
    fn pump(&mut self, now: Instant) {
        if let Some(link) = self.link.as_mut() {
            while let Some(f) = link.recv(now) {
                if self.to_peer.push(f).is_err() {
                    self.stats.dropped += 1;
                }
            }
        }
    }

    /// The link's counters, if this direction is impaired.
    pub fn link_stats(&self) -> Option<mgw_core::link::LinkStats> {
        self.link.as_ref().map(Link::stats)
    }

    /// The pool this port allocates from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Port for MemPort {
    type Buffer = PktBuf;

    fn rx_burst(&mut self, batch: &mut Batch<PktBuf>) -> usize {
        let now = self.clock.now();
        self.pump(now);
        let mut n = 0;
        while !batch.is_full() {
            let Some(b) = self.from_peer.pop() else { break };
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += b.as_ref().len() as u64;
            // Cannot fail: we checked for room.
            let _ = batch.push(b);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<PktBuf>) -> usize {
        let now = self.clock.now();
        let mut taken = 0;
        match self.link.as_mut() {
            None => {
                // Take only what the peer's queue has room for; the rest stays with the caller.
                taken = batch
                    .len()
                    .min(self.to_peer.capacity() - self.to_peer.len());
                for b in batch.drain_front(taken) {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += b.as_ref().len() as u64;
                    // Oversize frames die on the wire, as they would on a real one.
                    if b.as_ref().len() > self.mtu || self.to_peer.push(b).is_err() {
                        self.stats.dropped += 1;
                    }
                }
            }
            Some(link) => {
                for b in batch.drain() {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += b.as_ref().len() as u64;
                    taken += 1;
                    link.send_buf(now, b);
                }
            }
        }
        self.stats.tx_full += batch.len() as u64;
        self.pump(now);
        taken
    }

    fn alloc(&mut self) -> Option<PktBuf> {
        self.pool.alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn max_frame(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    fn poll_at(&self) -> Option<Instant> {
        let pending = if self.from_peer.is_empty() {
            None
        } else {
            Some(Instant::ZERO)
        };
        let link = self.link.as_ref().and_then(Link::next_delivery);
        match (pending, link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Receive-side scaling over a mem wire: `queues` receive queues at end A, like a multi-queue
/// NIC with RSS (or AF_PACKET fanout by hash) and no flow rules. Each frame arriving at A goes
/// to queue `rss(frame) % queues`; every queue transmits onto the one wire. End B is a plain
/// [`MemPort`]. Queues may be polled from different threads (the hand-off is lock-free).
///
/// Each queue's transmit direction has its own link (seeded `cfg.seed + 2 × index`).
pub fn pair_multiqueue(
    pool: &Pool,
    clock: &Clock,
    cfg: &MemConfig,
    queues: usize,
    rss: fn(&[u8]) -> usize,
) -> (Vec<MemQueue>, MemPort) {
    let queues = queues.max(1);
    let (first, b) = pair(pool, clock, cfg);
    let rings: Arc<[ArrayQueue<PktBuf>]> = (0..queues)
        .map(|_| ArrayQueue::new(cfg.queue_len.max(1)))
        .collect();
    let mut out = Vec::with_capacity(queues);
    for index in 0..queues {
        let seed = cfg.seed.wrapping_add(2 * index as u64);
        let port = MemPort {
            pool: pool.clone(),
            clock: clock.clone(),
            link: (!is_ideal(&cfg.a_to_b))
                .then(|| Link::with_pool(cfg.a_to_b.clone(), seed, pool.clone())),
            mtu: cfg.a_to_b.mtu,
            to_peer: Arc::clone(&first.to_peer),
            from_peer: Arc::clone(&first.from_peer),
            mac: cfg.mac_a,
            stats: PortStats::default(),
        };
        out.push(MemQueue {
            port,
            index,
            rings: Arc::clone(&rings),
            rss,
        });
    }
    (out, b)
}

/// A hash of an Ethernet frame's IPv4 source, destination, protocol and TCP/UDP ports, as RSS
/// computes one (not symmetric: the two directions of a connection may differ, and a
/// connection's frames and those of the other leg of its context land on unrelated queues).
/// Frames that are not IPv4 TCP/UDP (ARP, ICMP, fragments) hash to 0.
pub fn rss_4tuple(frame: &[u8]) -> usize {
    use mgw_core::wire::{IpProtocol, Ipv4Packet};
    if frame.get(12..14) != Some(&[0x08, 0x00][..]) {
        return 0;
    }
    let Ok(ip) = Ipv4Packet::new_checked(&frame[14..]) else {
        return 0;
    };
    if ip.is_fragment() || !matches!(ip.protocol(), IpProtocol::Tcp | IpProtocol::Udp) {
        return 0;
    }
    let Some(ports) = ip.payload().get(..4) else {
        return 0;
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ip
        .src_addr()
        .0
        .iter()
        .chain(ip.dst_addr().0.iter())
        .chain(ports.iter())
        .chain(std::iter::once(&u8::from(ip.protocol())))
    {
        // FNV-1a.
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize
}

/// One receive queue of [`pair_multiqueue`]'s end A.
#[derive(Debug)]
pub struct MemQueue {
    port: MemPort,
    index: usize,
    rings: Arc<[ArrayQueue<PktBuf>]>,
    rss: fn(&[u8]) -> usize,
}

impl MemQueue {
    /// This queue's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Moves what arrived on the wire into the queues its hash picks (bounded by one queue's
    /// capacity per call).
    fn spread(&mut self) {
        let n = self.rings.len();
        for _ in 0..self.port.from_peer.capacity() {
            let Some(b) = self.port.from_peer.pop() else {
                break;
            };
            let q = (self.rss)(b.as_ref()) % n;
            if self.rings[q].push(b).is_err() {
                self.port.stats.dropped += 1;
            }
        }
    }
}

impl Port for MemQueue {
    type Buffer = PktBuf;

    fn rx_burst(&mut self, batch: &mut Batch<PktBuf>) -> usize {
        let now = self.port.clock.now();
        self.port.pump(now);
        self.spread();
        let mut n = 0;
        while !batch.is_full() {
            let Some(b) = self.rings[self.index].pop() else {
                break;
            };
            self.port.stats.rx_packets += 1;
            self.port.stats.rx_bytes += b.as_ref().len() as u64;
            let _ = batch.push(b);
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<PktBuf>) -> usize {
        self.port.tx_burst(batch)
    }

    fn alloc(&mut self) -> Option<PktBuf> {
        self.port.alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.port.mac
    }

    fn max_frame(&self) -> usize {
        self.port.mtu
    }

    fn stats(&self) -> PortStats {
        self.port.stats
    }

    fn poll_at(&self) -> Option<Instant> {
        if !self.rings[self.index].is_empty() {
            return Some(Instant::ZERO);
        }
        self.port.poll_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::time::VirtualClock;
    use std::time::Duration;

    #[test]
    fn ideal_pair_moves_buffers_both_ways() {
        let pool = Pool::new(64, 2048);
        let clock = Clock::Virtual(VirtualClock::new());
        let (mut a, mut b) = pair(&pool, &clock, &MemConfig::default());
        let mut batch = Batch::new(8);
        for i in 0..8u8 {
            batch.push(pool.alloc_from(&[i; 60]).unwrap()).unwrap();
        }
        assert_eq!(a.tx_burst(&mut batch), 8);
        assert!(batch.is_empty());
        let mut rx = Batch::new(4);
        assert_eq!(b.rx_burst(&mut rx), 4);
        assert_eq!(
            rx.iter().map(|f| f.as_ref()[0]).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        rx.clear();
        assert_eq!(b.rx_burst(&mut rx), 4);
        assert_eq!(b.stats().rx_packets, 8);
        // And back.
        let mut back = Batch::new(1);
        back.push(pool.alloc_from(b"pong").unwrap()).unwrap();
        b.tx_burst(&mut back);
        rx.clear();
        assert_eq!(a.rx_burst(&mut rx), 1);
        assert_eq!(rx.iter().next().unwrap().as_ref(), b"pong");
    }

    #[test]
    fn full_queue_leaves_frames_with_the_caller() {
        let pool = Pool::new(64, 2048);
        let clock = Clock::Virtual(VirtualClock::new());
        let cfg = MemConfig {
            queue_len: 3,
            ..MemConfig::default()
        };
        let (mut a, _b) = pair(&pool, &clock, &cfg);
        let mut batch = Batch::new(5);
        for _ in 0..5 {
            batch.push(pool.alloc().unwrap()).unwrap();
        }
        assert_eq!(a.tx_burst(&mut batch), 3);
        assert_eq!(batch.len(), 2);
        assert_eq!(a.stats().tx_full, 2);
    }

    #[test]
    fn multiqueue_spreads_by_hash_and_shares_the_wire() {
        let pool = Pool::new(64, 2048);
        let clock = Clock::Virtual(VirtualClock::new());
        let (mut qs, mut b) = pair_multiqueue(&pool, &clock, &MemConfig::default(), 2, |f| {
            usize::from(f[0])
        });
        let mut batch = Batch::new(8);
        for i in 0..6u8 {
            batch.push(pool.alloc_from(&[i; 60]).unwrap()).unwrap();
        }
        assert_eq!(b.tx_burst(&mut batch), 6);
        let mut rx = Batch::new(8);
        // Whichever queue polls first spreads for both.
        assert_eq!(qs[1].rx_burst(&mut rx), 3);
        assert!(rx.iter().all(|f| f.as_ref()[0] % 2 == 1));
        rx.clear();
        assert_eq!(qs[0].poll_at(), Some(Instant::ZERO));
        assert_eq!(qs[0].rx_burst(&mut rx), 3);
        assert!(rx.iter().all(|f| f.as_ref()[0] % 2 == 0));
        rx.clear();
        // Both queues send on the one wire.
        for q in qs.iter_mut() {
            batch
                .push(pool.alloc_from(&[q.index() as u8; 60]).unwrap())
                .unwrap();
            assert_eq!(q.tx_burst(&mut batch), 1);
        }
        assert_eq!(b.rx_burst(&mut rx), 2);
    }

    #[test]
    fn rss_4tuple_hashes_ports_and_sends_the_rest_to_queue_0() {
        let mut f = [0u8; 14 + 20 + 8];
        f[12] = 0x08;
        f[14] = 0x45;
        f[17] = 28;
        f[23] = 17;
        f[34..38].copy_from_slice(&[0x13, 0x88, 0x17, 0x70]);
        let h = rss_4tuple(&f);
        let spread: std::collections::HashSet<usize> = (0..64u8)
            .map(|p| {
                f[37] = p;
                rss_4tuple(&f) % 4
            })
            .collect();
        assert_eq!(spread.len(), 4, "ports move frames between queues");
        f[37] = 0x70;
        assert_eq!(rss_4tuple(&f), h);
        f[13] = 0x06; // ARP
        assert_eq!(rss_4tuple(&f), 0);
    }

    #[test]
    fn delayed_link_delivers_at_its_time() {
        let pool = Pool::new(64, 2048);
        let vc = VirtualClock::new();
        let clock = Clock::Virtual(vc.clone());
        let cfg = MemConfig {
            a_to_b: LinkModel::with_delay(Duration::from_millis(3)),
            ..MemConfig::default()
        };
        let (mut a, mut b) = pair(&pool, &clock, &cfg);
        let mut batch = Batch::new(1);
        batch.push(pool.alloc_from(b"x").unwrap()).unwrap();
        a.tx_burst(&mut batch);
        assert_eq!(a.poll_at(), Some(Instant::from_millis(3)));
        let mut rx = Batch::new(4);
        assert_eq!(b.rx_burst(&mut rx), 0);
        vc.set(Instant::from_millis(3));
        a.rx_burst(&mut rx); // any poll of the sender pumps its link
        assert_eq!(b.rx_burst(&mut rx), 1);
        assert_eq!(pool.available(), 63);
    }
}
