//! SYN cookies: a stateless SYN-ACK when the SYN backlog is full (RFC 4987 §3.6).
//!
//! The cookie is our ISN:
//! - bits 31..27: the low 5 bits of the cookie epoch, a counter that ticks every
//!   [`PERIOD_MS`] (64 s, Linux's period) of `now`;
//! - bits 26..24: an index into [`MSS_TABLE`], the largest entry not above the peer's MSS;
//! - bits 23..0: keyed hash of the 4-tuple, the *whole* epoch, the peer's ISN and the MSS index.
//!
//! The key rotates with the epoch: the MAC covers the full 64-bit epoch number (equivalent to
//! one key per epoch derived from the secret), so a cookie is accepted only in the epoch it was
//! made in and the next one (64 to 128 s), never again when the 5-bit field wraps (every 34
//! minutes). The stack further checks cookies only on a listener that sent one in that window
//! (Linux's "recent overflow" test), so an ACK to a listener that never overflowed is not a
//! chance to guess one. What a cookie cannot carry is lost: window scaling, SACK and timestamps
//! are off on such connections.

use crate::isn::{tuple_hash2, FourTuple, DOMAIN_COOKIE};
use mgw_core::time::Instant;

/// MSS values a cookie can encode (the common ones, as Linux picks them).
pub const MSS_TABLE: [u16; 8] = [536, 1220, 1300, 1360, 1440, 1460, 4312, 8960];

/// Length of one cookie epoch.
pub const PERIOD_MS: u64 = 64_000;

/// The cookie epoch `now` falls in.
pub fn epoch(now: Instant) -> u64 {
    now.as_millis() / PERIOD_MS
}

fn mac(key: &[u8; 16], t: &FourTuple, epoch: u64, peer_isn: u32, mss_index: u32) -> u32 {
    let extra = (u64::from(mss_index) << 32) | u64::from(peer_isn);
    #[allow(clippy::cast_possible_truncation)]
    let h = tuple_hash2(key, DOMAIN_COOKIE, t, extra, epoch) as u32;
    h & 0x00ff_ffff
}

/// Builds the cookie ISN for a SYN from `t` with sequence `peer_isn` and MSS option `peer_mss`.
pub fn encode(key: &[u8; 16], t: &FourTuple, peer_isn: u32, peer_mss: u16, now: Instant) -> u32 {
    let mut idx = 0u32;
    for (i, &m) in MSS_TABLE.iter().enumerate() {
        if m <= peer_mss {
            #[allow(clippy::cast_possible_truncation)]
            {
                idx = i as u32;
            }
        }
    }
    let e = epoch(now);
    #[allow(clippy::cast_possible_truncation)]
    let low = (e & 0x1f) as u32;
    (low << 27) | (idx << 24) | mac(key, t, e, peer_isn, idx)
}

/// Checks the cookie carried by the ACK that completes the handshake (`ack - 1` is our ISN,
/// `seq - 1` the peer's) and returns the MSS it encodes.
pub fn decode(key: &[u8; 16], t: &FourTuple, ack: u32, seq: u32, now: Instant) -> Option<u16> {
    let cookie = ack.wrapping_sub(1);
    let peer_isn = seq.wrapping_sub(1);
    let low = u64::from(cookie >> 27);
    let idx = (cookie >> 24) & 0x7;
    // Only the current and the previous epoch are valid; the 5-bit field says which.
    let cur = epoch(now);
    let e = if cur & 0x1f == low {
        cur
    } else if cur >= 1 && (cur - 1) & 0x1f == low {
        cur - 1
    } else {
        return None;
    };
    if mac(key, t, e, peer_isn, idx) != cookie & 0x00ff_ffff {
        return None;
    }
    MSS_TABLE.get(idx as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::wire::{IpAddress, Ipv4Address};

    fn tuple() -> FourTuple {
        FourTuple {
            local_addr: IpAddress::V4(Ipv4Address::new(10, 0, 0, 1)),
            local_port: 443,
            remote_addr: IpAddress::V4(Ipv4Address::new(10, 0, 0, 9)),
            remote_port: 40000,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let key = [7u8; 16];
        let now = Instant::from_millis(1_000_000);
        let c = encode(&key, &tuple(), 5000, 1460, now);
        let ack = c.wrapping_add(1);
        assert_eq!(decode(&key, &tuple(), ack, 5001, now), Some(1460));
        // Still valid one counter tick later, not two.
        assert_eq!(
            decode(
                &key,
                &tuple(),
                ack,
                5001,
                Instant::from_millis(1_000_000 + 64_000)
            ),
            Some(1460)
        );
        assert_eq!(
            decode(
                &key,
                &tuple(),
                ack,
                5001,
                Instant::from_millis(1_000_000 + 140_000)
            ),
            None
        );
        // 32 epochs later the 5-bit field matches again, but the epoch is long gone.
        assert_eq!(
            decode(
                &key,
                &tuple(),
                ack,
                5001,
                Instant::from_millis(1_000_000 + 32 * PERIOD_MS)
            ),
            None
        );
        // Wrong peer ISN, wrong key, flipped bit: refused.
        assert_eq!(decode(&key, &tuple(), ack, 5002, now), None);
        assert_eq!(decode(&[8; 16], &tuple(), ack, 5001, now), None);
        assert_eq!(decode(&key, &tuple(), ack ^ 1, 5001, now), None);
    }

    #[test]
    fn mss_rounds_down_to_table() {
        let key = [7u8; 16];
        let now = Instant::from_millis(5);
        let c = encode(&key, &tuple(), 1, 1400, now);
        assert_eq!(
            decode(&key, &tuple(), c.wrapping_add(1), 2, now),
            Some(1360)
        );
        let c = encode(&key, &tuple(), 1, 100, now);
        assert_eq!(decode(&key, &tuple(), c.wrapping_add(1), 2, now), Some(536));
    }
}
