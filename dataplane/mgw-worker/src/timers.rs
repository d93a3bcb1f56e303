//! The worker's leg timers: an indexed binary min-heap of the legs with a pending deadline
//! ((D)TLS retransmission and handshake timers, BFCP transaction timers), keyed by leg
//! (slot × 2 + side). A timer run pops only the legs that are due, so timers cost what is due,
//! not what is installed. Each leg is in the heap at most once (its earliest deadline);
//! re-arming moves it in place (O(log n)), so nothing accumulates and the heap never grows
//! beyond its capacity, fixed at start: no allocation after [`LegTimers::new`].

use mgw_core::time::Instant;

const NONE: u32 = u32::MAX;

pub(crate) struct LegTimers {
    /// (deadline, leg key), a binary min-heap on the deadline.
    heap: Vec<(Instant, u32)>,
    /// Leg key → its index in `heap`, or `NONE`.
    pos: Box<[u32]>,
}

impl LegTimers {
    /// Room for `keys` legs (keys `0..keys`).
    pub(crate) fn new(keys: usize) -> LegTimers {
        LegTimers {
            heap: Vec::with_capacity(keys),
            pos: vec![NONE; keys].into_boxed_slice(),
        }
    }

    /// The earliest deadline, if any leg has one.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.first().map(|e| e.0)
    }

    /// Sets leg `key`'s deadline; `Instant::FAR_FUTURE` takes it out.
    pub(crate) fn set(&mut self, key: usize, at: Instant) {
        let Some(&p) = self.pos.get(key) else {
            return;
        };
        if at == Instant::FAR_FUTURE {
            if p != NONE {
                self.remove_at(p as usize);
            }
            return;
        }
        if p == NONE {
            // Capacity is one entry per key, so this never reallocates.
            self.heap.push((at, key as u32));
            let i = self.heap.len() - 1;
            self.pos[key] = i as u32;
            self.up(i);
        } else {
            let i = p as usize;
            let old = self.heap[i].0;
            self.heap[i].0 = at;
            if at < old {
                self.up(i);
            } else {
                self.down(i);
            }
        }
    }

    /// Brings leg `key`'s deadline forward to `at` if that is earlier (or arms it). Callers
    /// that learn of one of a leg's timers use this; a leg that pops before its real deadline
    /// is re-armed exactly after its run (see `Worker::arm`), so an early entry costs one visit.
    pub(crate) fn earlier(&mut self, key: usize, at: Instant) {
        match self.pos.get(key) {
            Some(&NONE) => self.set(key, at),
            Some(&p) if at < self.heap[p as usize].0 => self.set(key, at),
            _ => {}
        }
    }

    /// Takes out the leg with the earliest deadline if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let &(at, key) = self.heap.first()?;
        if at > now {
            return None;
        }
        self.remove_at(0);
        Some(key as usize)
    }

    fn remove_at(&mut self, i: usize) {
        let last = self.heap.len() - 1;
        self.swap(i, last);
        if let Some((_, key)) = self.heap.pop() {
            self.pos[key as usize] = NONE;
        }
        if i < self.heap.len() {
            self.down(i);
            self.up(i);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32;
        self.pos[self.heap[b].1 as usize] = b as u32;
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.heap[l].0 < self.heap[least].0 {
                least = l;
            }
            if r < self.heap.len() && self.heap[r].0 < self.heap[least].0 {
                least = r;
            }
            if least == i {
                break;
            }
            self.swap(i, least);
            i = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain array of deadlines: any sequence of sets pops legs in deadline
        /// order, each due leg once, and none that is not due.
        #[test]
        fn pops_exactly_the_due_legs_in_order(
            ops in proptest::collection::vec((0usize..32, prop_oneof![Just(u64::MAX), 0u64..1000]), 0..200),
            now in 0u64..1000,
        ) {
            let mut t = LegTimers::new(32);
            let mut model = [Instant::FAR_FUTURE; 32];
            for (key, ms) in ops {
                let at = if ms == u64::MAX { Instant::FAR_FUTURE } else { Instant::from_millis(ms) };
                t.set(key, at);
                model[key] = at;
            }
            let now = Instant::from_millis(now);
            prop_assert_eq!(t.next(), model.iter().copied().filter(|&a| a != Instant::FAR_FUTURE).min());
            let mut popped = Vec::new();
            while let Some(k) = t.pop_due(now) {
                popped.push(k);
            }
            let mut due: Vec<usize> = (0..32).filter(|&k| model[k] <= now).collect();
            due.sort_by_key(|&k| model[k]);
            prop_assert_eq!(popped.iter().map(|&k| model[k]).collect::<Vec<_>>(),
                due.iter().map(|&k| model[k]).collect::<Vec<_>>());
            popped.sort_unstable();
            due.sort_unstable();
            prop_assert_eq!(popped, due);
            prop_assert!(t.heap.len() <= 32);
        }
    }
}
