//! How a polling thread waits when it finds nothing to do.

use std::time::Duration;

/// The idle policy of a poll loop (`dataplane.poll` for workers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollPolicy {
    /// Never leave the core: lowest latency, one core burnt per worker (isolated cores).
    Busy,
    /// Spin for `spins` idle polls, then yield until `yields`, then nap `nap` per idle poll,
    /// so a lab or a shared host stays usable. Any work resets the count.
    Adaptive {
        /// Idle polls spent spinning.
        spins: u32,
        /// Idle polls after which the thread naps instead of yielding.
        yields: u32,
        /// Sleep per idle poll once napping.
        nap: Duration,
    },
}

impl PollPolicy {
    /// The daemon's default: naps of 100 µs after ~10,000 idle polls.
    pub const DAEMON: PollPolicy = PollPolicy::Adaptive {
        spins: 200,
        yields: 10_000,
        nap: Duration::from_micros(100),
    };

    /// The lab's: it shares 2 cores between the worker, the control thread, the MGC and the
    /// peers, so it gives the core up sooner.
    pub const LAB: PollPolicy = PollPolicy::Adaptive {
        spins: 100,
        yields: 2000,
        nap: Duration::from_micros(50),
    };

    /// `busy` or `adaptive` (the daemon's default).
    ///
    /// # Errors
    /// Any other name.
    pub fn from_name(s: &str) -> Result<PollPolicy, String> {
        match s {
            "busy" => Ok(PollPolicy::Busy),
            "adaptive" => Ok(PollPolicy::DAEMON),
            p => Err(format!("`{p}` is neither `busy` nor `adaptive`")),
        }
    }

    /// Called after each poll; `busy` says whether it found work; `idle` is the loop's count.
    pub fn after_poll(self, idle: &mut u32, busy: bool) {
        if busy {
            *idle = 0;
            return;
        }
        match self {
            PollPolicy::Busy => std::hint::spin_loop(),
            PollPolicy::Adaptive { spins, yields, nap } => {
                *idle = idle.saturating_add(1);
                if *idle > yields {
                    std::thread::sleep(nap);
                } else if *idle > spins {
                    std::thread::yield_now();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_reset() {
        assert_eq!(PollPolicy::from_name("busy"), Ok(PollPolicy::Busy));
        assert_eq!(PollPolicy::from_name("adaptive"), Ok(PollPolicy::DAEMON));
        assert!(PollPolicy::from_name("lazy").is_err());
        let mut idle = 0;
        for _ in 0..5 {
            PollPolicy::LAB.after_poll(&mut idle, false);
        }
        assert_eq!(idle, 5);
        PollPolicy::LAB.after_poll(&mut idle, true);
        assert_eq!(idle, 0);
    }
}
