//! Sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).
//!
//! `a < b` means "b is ahead of a by less than 2^31", which is the only comparison TCP ever needs.
//! The order is not transitive over the whole circle, so `PartialOrd` is the honest trait.

use core::cmp::Ordering;
use core::ops::{Add, Sub};

/// A TCP sequence (or acknowledgment) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Octets from `earlier` up to `self` (wrapping); meaningful when `earlier <= self`.
    pub const fn since(self, earlier: SeqNumber) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// The later of the two.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self < other {
            other
        } else {
            self
        }
    }

    /// The earlier of the two.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self < other {
            self
        } else {
            other
        }
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        // Reinterpreting the wrapped difference as signed is the RFC 1982 serial comparison.
        #[allow(clippy::cast_possible_wrap)]
        let d = self.0.wrapping_sub(other.0) as i32;
        Some(d.cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_across_wrap() {
        let a = SeqNumber(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b.0, 4);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.since(a), 10);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert!(a <= a);
    }
}
