//! The `mem` backend: two in-memory ports joined by a simulated wire.
//!
//! Each direction has a sender-side [`Link`] that applies the [`LinkModel`] and a bounded
//! lock-free queue into the peer. With an ideal model the link is bypassed and a transmitted
//! buffer moves to the peer's queue as is: no copy, no lock, no allocation. The ports read time
//! from a [`Clock`], virtual in the simulator and monotonic in `mgwd lab`, so they can sit on
//! different threads.

use super::{Batch, Port, PortStats};
use crate::buf::{PktBuf, Pool};
use crate::sim::{Clock, Link, LinkModel};
use crate::time::Instant;
use crate::wire::EthernetAddress;
use crossbeam::queue::ArrayQueue;
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
    pub fn link_stats(&self) -> Option<crate::sim::LinkStats> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::VirtualClock;
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
