//! One direction of a simulated wire, sans-IO: frames go in with `send(now, ..)` and come out of
//! `recv(now)` when their delivery time has come, after the [`LinkModel`] has applied loss,
//! duplication, corruption, reordering, delay, jitter, a bandwidth limit and an MTU. The same
//! seed always gives the same fate to the same sequence of frames. The in-memory port backend
//! carries its frames over a pair of links; the simulator and the lab set their models.

use crate::buf::{PacketBuffer, PktBuf, Pool};
use crate::rng::Rng;
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// What a simulated wire does to frames. Probabilities are per frame, in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct LinkModel {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability a frame is held back and overtaken by later ones.
    pub reorder: f64,
    /// Probability one bit of a frame is flipped.
    pub corrupt: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter) per frame. Jitter alone does not reorder: delivery
    /// times are kept monotonic unless a frame is picked for reordering.
    pub jitter: Duration,
    /// Largest frame the link carries; larger frames are dropped and counted.
    pub mtu: usize,
    /// Serialisation rate; `None` means infinitely fast.
    pub bandwidth_bps: Option<u64>,
    /// Most frames in flight; beyond it frames are tail-dropped (a router queue).
    pub queue_limit: usize,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel::ideal()
    }
}

impl LinkModel {
    /// A perfect wire: no loss, no delay, a 9000-byte MTU plus the Ethernet header.
    pub fn ideal() -> LinkModel {
        LinkModel {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            mtu: 9014,
            bandwidth_bps: None,
            queue_limit: 4096,
        }
    }

    /// An ideal wire with a one-way delay.
    pub fn with_delay(delay: Duration) -> LinkModel {
        LinkModel {
            delay,
            ..LinkModel::ideal()
        }
    }
}

/// What a [`Link`] did, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames offered.
    pub sent: u64,
    /// Frames handed out by `recv` (duplicates included).
    pub delivered: u64,
    /// Lost by the model.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Frames delivered with one bit flipped, at a random position.
    pub corrupted: u64,
    /// Dropped for exceeding the MTU.
    pub too_big: u64,
    /// Dropped because the queue was full or the pool empty.
    pub queue_drops: u64,
}

/// A frame in flight, with its delivery time and a sequence number that keeps ties in send order.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    buf: PktBuf,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// One direction of a simulated wire.
#[derive(Debug)]
pub struct Link {
    model: LinkModel,
    rng: Rng,
    pool: Pool,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// When the transmitter is free again (bandwidth model).
    busy_until: Instant,
    /// Latest delivery time handed out to an in-order frame, so jitter never reorders.
    last_at: Instant,
    stats: LinkStats,
}

impl Link {
    /// A link with its own buffer pool sized for the model's queue limit and MTU.
    pub fn new(model: LinkModel, seed: u64) -> Link {
        let pool = Pool::new(
            model.queue_limit.max(1) * 2,
            model.mtu.max(64) + crate::buf::DEFAULT_HEADROOM + 64,
        );
        Link::with_pool(model, seed, pool)
    }

    /// A link that copies frames into buffers of `pool` (used for `send` of borrowed bytes and
    /// for duplicates).
    pub fn with_pool(model: LinkModel, seed: u64, pool: Pool) -> Link {
        let cap = model.queue_limit.max(1) * 2;
        Link {
            model,
            rng: Rng::new(seed),
            pool,
            queue: BinaryHeap::with_capacity(cap),
            seq: 0,
            busy_until: Instant::ZERO,
            last_at: Instant::ZERO,
            stats: LinkStats::default(),
        }
    }

    /// The model in force.
    pub fn model(&self) -> &LinkModel {
        &self.model
    }

    /// Changes the model from now on (frames in flight keep their fate).
    pub fn set_model(&mut self, model: LinkModel) {
        self.model = model;
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Offers a copy of `frame` to the link. Returns false if it was dropped at the door (MTU,
    /// full queue, empty pool); loss by the model still returns true, as on a real wire.
    pub fn send(&mut self, now: Instant, frame: &[u8]) -> bool {
        if frame.len() > self.model.mtu {
            self.stats.sent += 1;
            self.stats.too_big += 1;
            return false;
        }
        match self.pool.alloc_from(frame) {
            Some(b) => self.send_buf(now, b),
            None => {
                self.stats.sent += 1;
                self.stats.queue_drops += 1;
                false
            }
        }
    }

    /// Offers a buffer to the link (no copy unless it is duplicated).
    pub fn send_buf(&mut self, now: Instant, mut buf: PktBuf) -> bool {
        self.stats.sent += 1;
        if buf.len() > self.model.mtu {
            self.stats.too_big += 1;
            return false;
        }
        if self.queue.len() >= self.model.queue_limit {
            self.stats.queue_drops += 1;
            return false;
        }
        // Serialisation: the frame leaves when the transmitter is free.
        let mut depart = now.max(self.busy_until);
        if let Some(bps) = self.model.bandwidth_bps.filter(|b| *b > 0) {
            let nanos = (buf.len() as u128 * 8 * 1_000_000_000 / u128::from(bps)) as u64;
            depart += Duration::from_nanos(nanos);
            self.busy_until = depart;
        }
        if self.rng.chance(self.model.loss) {
            self.stats.lost += 1;
            return true;
        }
        if self.rng.chance(self.model.corrupt) && !buf.is_empty() {
            let bit = self.rng.below(buf.len() as u64 * 8);
            buf.as_mut()[(bit / 8) as usize] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
        }
        let jitter = self.jitter();
        let mut at = depart + self.model.delay + jitter;
        if self.rng.chance(self.model.reorder) {
            // Held back by up to two delays (at least 1 ms), so later frames overtake it.
            self.stats.reordered += 1;
            let hold = (self.model.delay * 2).max(Duration::from_millis(1));
            at += Duration::from_nanos(1 + self.rng.below(hold.as_nanos() as u64));
        } else {
            at = at.max(self.last_at);
            self.last_at = at;
        }
        if self.rng.chance(self.model.duplicate) {
            if let Some(copy) = buf.try_clone() {
                self.stats.duplicated += 1;
                let dup_at = at + self.jitter() + Duration::from_micros(1);
                self.push(dup_at, copy);
            }
        }
        self.push(at, buf);
        true
    }

    fn jitter(&mut self) -> Duration {
        let j = self.model.jitter.as_nanos() as u64;
        Duration::from_nanos(self.rng.below(j))
    }

    fn push(&mut self, at: Instant, buf: PktBuf) {
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at,
            seq: self.seq,
            buf,
        }));
    }

    /// The next frame whose delivery time is at or before `now`.
    pub fn recv(&mut self, now: Instant) -> Option<PktBuf> {
        if self.queue.peek().is_some_and(|Reverse(f)| f.at <= now) {
            self.stats.delivered += 1;
            self.queue.pop().map(|Reverse(f)| f.buf)
        } else {
            None
        }
    }

    /// When the next frame is due, if any is in flight.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fates(seed: u64) -> (Vec<Vec<u8>>, LinkStats) {
        let model = LinkModel {
            loss: 0.1,
            duplicate: 0.1,
            reorder: 0.1,
            corrupt: 0.1,
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(1),
            ..LinkModel::ideal()
        };
        let mut link = Link::new(model, seed);
        let mut out = Vec::new();
        let mut now = Instant::ZERO;
        for i in 0..500u32 {
            link.send(now, &i.to_be_bytes());
            now += Duration::from_micros(100);
            while let Some(f) = link.recv(now) {
                out.push(f.as_ref().to_vec());
            }
        }
        while let Some(t) = link.next_delivery() {
            while let Some(f) = link.recv(t) {
                out.push(f.as_ref().to_vec());
            }
        }
        (out, link.stats())
    }

    #[test]
    fn same_seed_same_fate() {
        assert_eq!(fates(42), fates(42));
        assert_ne!(fates(42).0, fates(43).0);
    }

    #[test]
    fn impairments_happen_and_are_counted() {
        let (out, s) = fates(1);
        assert!(
            s.lost > 20 && s.duplicated > 20 && s.reordered > 20 && s.corrupted > 20,
            "{s:?}"
        );
        assert_eq!(s.delivered as usize, out.len());
        assert_eq!(s.delivered, s.sent - s.lost + s.duplicated);
        let in_order = out.windows(2).filter(|w| w[0] <= w[1]).count();
        assert!(in_order < out.len() - 1, "something was reordered");
    }

    #[test]
    fn delay_bandwidth_and_mtu() {
        let model = LinkModel {
            delay: Duration::from_millis(10),
            bandwidth_bps: Some(8_000_000), // 1 byte per microsecond
            mtu: 1500,
            ..LinkModel::ideal()
        };
        let mut link = Link::new(model, 0);
        assert!(!link.send(Instant::ZERO, &[0u8; 1501]));
        assert!(link.send(Instant::ZERO, &[0u8; 1000]));
        assert!(link.send(Instant::ZERO, &[0u8; 1000]));
        assert!(link.recv(Instant::from_millis(10)).is_none());
        assert_eq!(link.next_delivery(), Some(Instant::from_micros(11_000)));
        assert!(link.recv(Instant::from_micros(11_000)).is_some());
        assert_eq!(link.next_delivery(), Some(Instant::from_micros(12_000)));
        assert_eq!(link.stats().too_big, 1);
    }
}
