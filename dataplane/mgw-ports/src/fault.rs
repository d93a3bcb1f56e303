//! A fault injector that stacks on any port: seeded drops and bit flips on receive and transmit,
//! for failure tests over real backends (the `mem` link has its own, richer model).

use mgw_core::buf::PacketBuffer;
use mgw_core::port::{Batch, Port, PortStats};
use mgw_core::rng::Rng;
use mgw_core::time::Instant;
use mgw_core::wire::EthernetAddress;

/// What to inject. Probabilities per frame, in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultConfig {
    /// Drop a received frame.
    pub drop_rx: f64,
    /// Drop a frame offered for transmission (it counts as taken).
    pub drop_tx: f64,
    /// Flip one bit of a received frame.
    pub corrupt_rx: f64,
    /// Flip one bit of a transmitted frame.
    pub corrupt_tx: f64,
    /// Frames larger than this are dropped on transmit (0 = no limit): an MTU black hole.
    pub max_tx_frame: usize,
}

/// What the injector did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Received frames dropped.
    pub rx_dropped: u64,
    /// Transmitted frames dropped.
    pub tx_dropped: u64,
    /// Received frames corrupted.
    pub rx_corrupted: u64,
    /// Transmitted frames corrupted.
    pub tx_corrupted: u64,
}

/// Wraps a port and injects faults.
#[derive(Debug)]
pub struct FaultInjector<P> {
    inner: P,
    cfg: FaultConfig,
    rng: Rng,
    stats: FaultStats,
}

impl<P: Port> FaultInjector<P> {
    /// Wraps `inner` with `cfg`, fates drawn from `seed`.
    pub fn new(inner: P, cfg: FaultConfig, seed: u64) -> Self {
        FaultInjector {
            inner,
            cfg,
            rng: Rng::new(seed),
            stats: FaultStats::default(),
        }
    }

    /// Changes what is injected from now on.
    pub fn set_config(&mut self, cfg: FaultConfig) {
        self.cfg = cfg;
    }

    /// How many frames were dropped or corrupted, each way, so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.stats
    }

    /// The wrapped port.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    fn flip(rng: &mut Rng, b: &mut P::Buffer) {
        let len = b.len() as u64;
        if len > 0 {
            let bit = rng.below(len * 8);
            b.as_mut()[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
    }
}

impl<P: Port> Port for FaultInjector<P> {
    type Buffer = P::Buffer;

    fn rx_burst(&mut self, batch: &mut Batch<P::Buffer>) -> usize {
        let before = batch.len();
        self.inner.rx_burst(batch);
        let (cfg, rng, stats) = (self.cfg, &mut self.rng, &mut self.stats);
        let mut idx = 0usize;
        batch.retain(|_| {
            idx += 1;
            if idx <= before {
                return true;
            }
            let drop = rng.chance(cfg.drop_rx);
            stats.rx_dropped += u64::from(drop);
            !drop
        });
        for b in batch.iter_mut().skip(before) {
            if rng.chance(cfg.corrupt_rx) {
                Self::flip(rng, b);
                stats.rx_corrupted += 1;
            }
        }
        batch.len() - before
    }

    fn tx_burst(&mut self, batch: &mut Batch<P::Buffer>) -> usize {
        let offered = batch.len();
        let (cfg, rng, stats) = (self.cfg, &mut self.rng, &mut self.stats);
        batch.retain(|b| {
            let too_big = cfg.max_tx_frame > 0 && b.len() > cfg.max_tx_frame;
            let drop = too_big || rng.chance(cfg.drop_tx);
            stats.tx_dropped += u64::from(drop);
            !drop
        });
        let dropped = offered - batch.len();
        for b in batch.iter_mut() {
            if rng.chance(cfg.corrupt_tx) {
                Self::flip(rng, b);
                stats.tx_corrupted += 1;
            }
        }
        dropped + self.inner.tx_burst(batch)
    }

    fn alloc(&mut self) -> Option<P::Buffer> {
        self.inner.alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.inner.mac()
    }

    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }

    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }

    fn tx_l4_checksum_offload(&self) -> bool {
        self.inner.tx_l4_checksum_offload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{pair, MemConfig};
    use mgw_core::buf::Pool;
    use mgw_core::time::{Clock, VirtualClock};

    #[test]
    fn drops_and_corrupts_are_counted() {
        let pool = Pool::new(512, 256);
        let clock = Clock::Virtual(VirtualClock::new());
        let (a, mut b) = pair(&pool, &clock, &MemConfig::default());
        let cfg = FaultConfig {
            drop_tx: 0.3,
            corrupt_tx: 0.3,
            ..FaultConfig::default()
        };
        let mut a = FaultInjector::new(a, cfg, 9);
        let mut sent = 0;
        for _ in 0..10 {
            let mut batch = Batch::new(20);
            for _ in 0..20 {
                batch.push(pool.alloc_from(&[0u8; 32]).unwrap()).unwrap();
            }
            sent += a.tx_burst(&mut batch);
        }
        assert_eq!(sent, 200);
        let mut got = 0;
        let mut corrupted = 0;
        loop {
            let mut rx = Batch::new(32);
            if b.rx_burst(&mut rx) == 0 {
                break;
            }
            got += rx.len() as u64;
            corrupted += rx
                .iter()
                .filter(|f| f.as_ref().iter().any(|&x| x != 0))
                .count() as u64;
        }
        let s = a.fault_stats();
        assert!(s.tx_dropped > 30 && s.tx_corrupted > 30, "{s:?}");
        assert_eq!(got, 200 - s.tx_dropped);
        assert_eq!(corrupted, s.tx_corrupted);
    }
}
