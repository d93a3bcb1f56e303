//! One hierarchical timer wheel per worker (the Linux/tokio design, fixed size).
//!
//! Six levels of 64 slots; a slot at level `l` spans `64^l` ticks of 1 ms, so the wheel covers
//! 2^36 ms (about 2 years; later deadlines are clamped). Each connection has at most one entry:
//! the earliest of its own timers. Entries are intrusive doubly linked lists through a
//! preallocated link array, so schedule, cancel and expiry are O(1) and never allocate. A 64-bit
//! occupancy bitmap per level finds the next non-empty slot with one `trailing_zeros`.

use mgw_core::time::Instant;

const LEVELS: usize = 6;
const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
const MAX_TICKS: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);
const NIL: u32 = u32::MAX;
const NOT_ARMED: u16 = u16::MAX;

/// Nanoseconds per tick.
pub const TICK_NANOS: u64 = 1_000_000;

/// The tick at or after `t` (deadlines round up, so a timer never fires early).
pub fn tick_ceil(t: Instant) -> u64 {
    t.as_nanos().div_ceil(TICK_NANOS)
}

/// The tick `t` falls in (the present rounds down).
pub fn tick_floor(t: Instant) -> u64 {
    t.as_nanos() / TICK_NANOS
}

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    when: u64,
    slot: u16,
}

/// The wheel. Entry ids are connection slot indices `0..capacity`.
#[derive(Debug)]
pub struct TimerWheel {
    links: Vec<Link>,
    heads: Vec<u32>,
    occupied: [u64; LEVELS],
    elapsed: u64,
}

fn level_for(elapsed: u64, when: u64) -> usize {
    let mut masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    if masked >= MAX_TICKS {
        masked = MAX_TICKS - 1;
    }
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

impl TimerWheel {
    /// A wheel for `capacity` entries, starting at tick `start`.
    pub fn new(capacity: usize, start: u64) -> Self {
        TimerWheel {
            links: vec![
                Link {
                    prev: NIL,
                    next: NIL,
                    when: 0,
                    slot: NOT_ARMED,
                };
                capacity
            ],
            heads: vec![NIL; LEVELS * SLOTS],
            occupied: [0; LEVELS],
            elapsed: start,
        }
    }

    /// Bytes of link state per entry.
    pub const fn link_bytes() -> usize {
        core::mem::size_of::<Link>()
    }

    /// The tick an entry is armed for, if it is.
    pub fn armed_at(&self, id: u32) -> Option<u64> {
        let l = self.links.get(id as usize)?;
        (l.slot != NOT_ARMED).then_some(l.when)
    }

    /// Arms (or re-arms) entry `id` for tick `when` (a tick already passed means the next one).
    pub fn schedule(&mut self, id: u32, when: u64) {
        self.cancel(id);
        let when = when.max(self.elapsed + 1).min(self.elapsed + MAX_TICKS - 1);
        self.insert(id, when);
    }

    fn insert(&mut self, id: u32, when: u64) {
        let level = level_for(self.elapsed, when);
        let slot = ((when >> (SLOT_BITS as usize * level)) & (SLOTS as u64 - 1)) as usize;
        let s = level * SLOTS + slot;
        let head = self.heads[s];
        {
            let l = &mut self.links[id as usize];
            l.prev = NIL;
            l.next = head;
            l.when = when;
            #[allow(clippy::cast_possible_truncation)]
            {
                l.slot = s as u16;
            }
        }
        if head != NIL {
            self.links[head as usize].prev = id;
        }
        self.heads[s] = id;
        self.occupied[level] |= 1 << slot;
    }

    /// Disarms entry `id` (no-op if it is not armed).
    pub fn cancel(&mut self, id: u32) {
        let Some(&l) = self.links.get(id as usize) else {
            return;
        };
        if l.slot == NOT_ARMED {
            return;
        }
        let s = l.slot as usize;
        if l.prev == NIL {
            self.heads[s] = l.next;
        } else {
            self.links[l.prev as usize].next = l.next;
        }
        if l.next != NIL {
            self.links[l.next as usize].prev = l.prev;
        }
        if self.heads[s] == NIL {
            self.occupied[s / SLOTS] &= !(1 << (s % SLOTS));
        }
        let e = &mut self.links[id as usize];
        e.slot = NOT_ARMED;
        e.prev = NIL;
        e.next = NIL;
    }

    /// The next non-empty slot: `(level, slot, first tick it covers)`.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let occ = self.occupied[level];
            if occ == 0 {
                continue;
            }
            let shift = SLOT_BITS as usize * level;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
            let zeros = occ.rotate_right(now_slot).trailing_zeros();
            let slot = ((zeros + now_slot) as usize) % SLOTS;
            let level_start = self.elapsed & !(level_range - 1);
            let mut deadline = level_start + slot as u64 * slot_range;
            if deadline <= self.elapsed && level > 0 {
                deadline += level_range;
            }
            return Some((level, slot, deadline));
        }
        None
    }

    /// A lower bound on the next expiry tick (exact for entries within 64 ms).
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_expiration()
            .map(|(_, _, d)| d.max(self.elapsed + 1))
    }

    /// Moves the wheel to tick `now`, pushing every expired entry id into `fired` (which the
    /// caller preallocates to the wheel's capacity; each id appears at most once).
    pub fn advance(&mut self, now: u64, fired: &mut Vec<u32>) {
        while let Some((level, slot, deadline)) = self.next_expiration() {
            if deadline > now {
                break;
            }
            self.elapsed = self.elapsed.max(deadline);
            let s = level * SLOTS + slot;
            let mut id = self.heads[s];
            self.heads[s] = NIL;
            self.occupied[level] &= !(1 << slot);
            while id != NIL {
                let l = self.links[id as usize];
                let e = &mut self.links[id as usize];
                e.slot = NOT_ARMED;
                e.prev = NIL;
                e.next = NIL;
                if l.when <= now {
                    fired.push(id);
                } else {
                    // Cascade down to a finer level.
                    self.insert(id, l.when);
                }
                id = l.next;
            }
        }
        self.elapsed = self.elapsed.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_across_levels() {
        let mut w = TimerWheel::new(8, 0);
        let whens = [3u64, 70, 5000, 300_000, 64, 1];
        for (i, &t) in whens.iter().enumerate() {
            w.schedule(i as u32, t);
        }
        let mut fired = Vec::with_capacity(8);
        let mut got = Vec::new();
        while let Some(d) = w.next_deadline() {
            fired.clear();
            w.advance(d, &mut fired);
            for &id in &fired {
                // Never early, and never more than a tick late.
                assert!(whens[id as usize] <= d);
                got.push(whens[id as usize]);
            }
        }
        let mut sorted = whens.to_vec();
        sorted.sort_unstable();
        assert_eq!(got, sorted);
    }

    #[test]
    fn cancel_and_reschedule() {
        let mut w = TimerWheel::new(4, 100);
        w.schedule(0, 150);
        w.schedule(1, 120);
        w.cancel(1);
        assert_eq!(w.armed_at(1), None);
        w.schedule(0, 110);
        let mut fired = Vec::with_capacity(4);
        w.advance(109, &mut fired);
        assert!(fired.is_empty());
        w.advance(110, &mut fired);
        assert_eq!(fired, vec![0]);
        assert_eq!(w.next_deadline(), None);
        // A deadline in the past fires on the next tick.
        w.schedule(2, 5);
        assert_eq!(w.next_deadline(), Some(111));
    }

    #[test]
    fn big_jump_fires_everything_due() {
        let mut w = TimerWheel::new(100, 0);
        for i in 0..100u32 {
            w.schedule(i, u64::from(i) * 997 + 1);
        }
        let mut fired = Vec::with_capacity(100);
        w.advance(50_000, &mut fired);
        assert_eq!(fired.len(), 51);
        w.advance(200_000, &mut fired);
        assert_eq!(fired.len(), 100);
    }
}
