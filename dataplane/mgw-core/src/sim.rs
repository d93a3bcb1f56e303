//! The deterministic network simulator's driver (quinn's `Pair`, generalised to N nodes):
//! [`Sim`] polls every [`Node`] at the current virtual time, asks each for its next deadline,
//! and jumps there. A scenario of minutes of virtual time runs in milliseconds, identically for
//! the same seed. The wires are [`crate::link::Link`]s and the clock a
//! [`crate::time::VirtualClock`]. Test scaffolding: built with the `testing` feature.

use crate::port::Node;
use crate::time::{Instant, VirtualClock};

/// Why a [`Sim::run`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The `done` predicate returned true.
    Done,
    /// No node has anything left to do.
    Idle,
    /// Virtual time reached the limit.
    TimeLimit,
    /// The step limit was reached (a livelock guard).
    StepLimit,
}

/// Drives N nodes in virtual time.
pub struct Sim<'a> {
    clock: VirtualClock,
    nodes: Vec<&'a mut dyn Node>,
    steps: u64,
}

impl<'a> Sim<'a> {
    /// A simulation over `nodes`, all sharing `clock`.
    pub fn new(clock: VirtualClock, nodes: Vec<&'a mut dyn Node>) -> Sim<'a> {
        Sim {
            clock,
            nodes,
            steps: 0,
        }
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Runs until `done()` is true, nothing is scheduled, virtual time passes `until`, or
    /// `max_steps` polling rounds have been made.
    pub fn run(
        &mut self,
        until: Instant,
        max_steps: u64,
        mut done: impl FnMut() -> bool,
    ) -> RunEnd {
        let mut taken = 0;
        loop {
            let now = self.clock.now();
            for n in self.nodes.iter_mut() {
                n.poll(now);
            }
            self.steps += 1;
            taken += 1;
            if done() {
                return RunEnd::Done;
            }
            if taken >= max_steps {
                return RunEnd::StepLimit;
            }
            let next = self.nodes.iter().filter_map(|n| n.poll_at()).min();
            match next {
                None => return RunEnd::Idle,
                Some(t) if t > until => {
                    self.clock.set(until);
                    return RunEnd::TimeLimit;
                }
                // A deadline already due means more work at the same instant.
                Some(t) => self.clock.set(t.max(now)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::Node;
    use crate::time::{Instant, VirtualClock};
    use std::time::Duration;

    struct Ticker {
        period: Duration,
        next: Instant,
        ticks: u32,
        limit: u32,
    }

    impl Node for Ticker {
        fn poll(&mut self, now: Instant) {
            if now >= self.next && self.ticks < self.limit {
                self.ticks += 1;
                self.next = now + self.period;
            }
        }
        fn poll_at(&self) -> Option<Instant> {
            (self.ticks < self.limit).then_some(self.next)
        }
    }

    #[test]
    fn driver_jumps_to_deadlines() {
        let clock = VirtualClock::new();
        let mut a = Ticker {
            period: Duration::from_secs(60),
            next: Instant::ZERO,
            ticks: 0,
            limit: 1000,
        };
        let mut b = Ticker {
            period: Duration::from_secs(7),
            next: Instant::ZERO,
            ticks: 0,
            limit: 10,
        };
        let mut sim = Sim::new(clock.clone(), vec![&mut a, &mut b]);
        let end = sim.run(Instant::from_millis(3_600_000 * 24), 100_000, || false);
        assert_eq!(end, RunEnd::Idle);
        // 1000 minutes of virtual time in well under 2000 steps.
        assert!(sim.steps() < 2000);
        assert!(clock.now() >= Instant::from_millis(999 * 60_000));
    }
}
