//! Open-addressing index tables: the per-worker connection table (keyed by 4-tuple) and the
//! listener table (keyed by local address and port).
//!
//! Linear probing over a power-of-two array sized at start to at least twice the capacity, so the
//! load factor stays at or under 1/2 and a probe sequence is short. A slot packs the key's 32-bit
//! hash beside the entry index, so a lookup compares keys only on a hash match. Removal shifts the
//! following entries back (no tombstones), so lookups never slow down with churn.

const EMPTY: u64 = u64::MAX;

/// Maps a keyed hash to entry indices; the caller compares the actual keys.
#[derive(Debug)]
pub struct IndexTable {
    slots: Vec<u64>,
    mask: usize,
}

fn pack(hash: u32, idx: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(idx)
}

impl IndexTable {
    /// A table for up to `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        let n = (capacity.max(1) * 2).next_power_of_two();
        IndexTable {
            slots: vec![EMPTY; n],
            mask: n - 1,
        }
    }

    fn home(&self, hash: u32) -> usize {
        hash as usize & self.mask
    }

    /// The entry whose hash is `hash` and for which `eq` holds.
    pub fn find(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            #[allow(clippy::cast_possible_truncation)]
            if (s >> 32) as u32 == hash && eq(s as u32) {
                return Some(s as u32);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Adds an entry (the caller keeps the number of entries within capacity).
    pub fn insert(&mut self, hash: u32, idx: u32) {
        let mut i = self.home(hash);
        while self.slots[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = pack(hash, idx);
    }

    /// Removes the entry `(hash, idx)`; returns false if it is not there.
    pub fn remove(&mut self, hash: u32, idx: u32) -> bool {
        let target = pack(hash, idx);
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return false;
            }
            if s == target {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: move later members of the cluster into the hole when their
        // home position does not lie cyclically in (hole, j].
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            #[allow(clippy::cast_possible_truncation)]
            let home = self.home((s >> 32) as u32);
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_with_collisions() {
        let mut t = IndexTable::new(16);
        // Force collisions: hashes that share a home slot.
        for i in 0..16u32 {
            t.insert(i % 3 * 64, i);
        }
        for i in 0..16u32 {
            assert_eq!(t.find(i % 3 * 64, |x| x == i), Some(i));
        }
        for i in (0..16u32).step_by(2) {
            assert!(t.remove(i % 3 * 64, i));
        }
        for i in 0..16u32 {
            let found = t.find(i % 3 * 64, |x| x == i);
            assert_eq!(found.is_some(), i % 2 == 1, "entry {i}");
        }
        assert!(!t.remove(0, 0));
    }

    #[test]
    fn random_churn_matches_model() {
        let mut t = IndexTable::new(64);
        let mut model = std::collections::HashSet::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let idx = (x % 64) as u32;
            let hash = ((x >> 8) % 7) as u32 * 0x1000_0001;
            let hash = hash ^ idx.wrapping_mul(0x9e37_79b9) & 0xff;
            if model.contains(&(hash, idx)) {
                assert!(t.remove(hash, idx));
                model.remove(&(hash, idx));
            } else if model.len() < 64 && !model.iter().any(|&(_, i)| i == idx) {
                t.insert(hash, idx);
                model.insert((hash, idx));
            }
            for &(h, i) in &model {
                assert_eq!(t.find(h, |v| v == i), Some(i));
            }
        }
    }
}
