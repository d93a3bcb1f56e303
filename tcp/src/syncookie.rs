//! SYN cookies: a stateless SYN-ACK when the SYN backlog is full (RFC 4987 §3.6).
//!
//! The cookie is our ISN:
//! - bits 31..27: a 5-bit counter `t` that ticks every 64 s (from `now`);
//! - bits 26..24: an index into [`MSS_TABLE`], the largest entry not above the peer's MSS;
//! - bits 23..0: keyed hash of the 4-tuple, `t`, the peer's ISN and the MSS index.
//!
//! A cookie is accepted for the current and the previous counter value (64 to 128 s). What a
//! cookie cannot carry is lost: window scaling, SACK and timestamps are off on such connections.

use crate::isn::{tuple_hash, FourTuple, DOMAIN_COOKIE};
use dataplane::time::Instant;

/// MSS values a cookie can encode (the common ones, as Linux picks them).
pub const MSS_TABLE: [u16; 8] = [536, 1220, 1300, 1360, 1440, 1460, 4312, 8960];

fn counter(now: Instant) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let t = (now.as_millis() / 64_000) as u32;
    t & 0x1f
}

fn mac(key: &[u8; 16], t: &FourTuple, count: u32, peer_isn: u32, mss_index: u32) -> u32 {
    let extra = (u64::from(count) << 40) | (u64::from(mss_index) << 32) | u64::from(peer_isn);
    #[allow(clippy::cast_possible_truncation)]
    let h = tuple_hash(key, DOMAIN_COOKIE, t, extra) as u32;
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
    let c = counter(now);
    (c << 27) | (idx << 24) | mac(key, t, c, peer_isn, idx)
}

/// Checks the cookie carried by the ACK that completes the handshake (`ack - 1` is our ISN,
/// `seq - 1` the peer's) and returns the MSS it encodes.
pub fn decode(key: &[u8; 16], t: &FourTuple, ack: u32, seq: u32, now: Instant) -> Option<u16> {
    let cookie = ack.wrapping_sub(1);
    let peer_isn = seq.wrapping_sub(1);
    let c = cookie >> 27;
    let idx = (cookie >> 24) & 0x7;
    let cur = counter(now);
    // Only the current and the previous counter values are valid.
    if c != cur && c != (cur.wrapping_sub(1) & 0x1f) {
        return None;
    }
    if mac(key, t, c, peer_isn, idx) != cookie & 0x00ff_ffff {
        return None;
    }
    MSS_TABLE.get(idx as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::{IpAddress, Ipv4Address};

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
