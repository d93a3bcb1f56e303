//! Keyed hashing: initial sequence numbers (RFC 6528), flow-table hashing and SYN cookies.
//!
//! One PRF serves all three: SipHash-1-3 keyed with the worker's secret (passed in through
//! [`crate::Config::secret`]; the core never draws randomness). Each use has its own domain word so
//! that an output of one never predicts another.

use mgw_core::time::Instant;
use mgw_core::wire::IpAddress;

/// A 4-tuple as the hashes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our address.
    pub local_addr: IpAddress,
    /// Our port.
    pub local_port: u16,
    /// The peer's address.
    pub remote_addr: IpAddress,
    /// The peer's port.
    pub remote_port: u16,
}

/// Domain words keep the PRF's uses apart.
pub(crate) const DOMAIN_ISN: u64 = 1;
pub(crate) const DOMAIN_COOKIE: u64 = 3;
pub(crate) const DOMAIN_LISTEN: u64 = 4;
pub(crate) const DOMAIN_TSOFF: u64 = 5;
pub(crate) const DOMAIN_TABLE_KEY: u64 = 6;

fn addr_words(a: &IpAddress) -> (u64, u64) {
    match a {
        IpAddress::V4(v4) => (u64::from(u32::from_be_bytes(v4.0)), 0x4),
        IpAddress::V6(v6) => {
            let hi = u64::from_be_bytes([
                v6.0[0], v6.0[1], v6.0[2], v6.0[3], v6.0[4], v6.0[5], v6.0[6], v6.0[7],
            ]);
            let lo = u64::from_be_bytes([
                v6.0[8], v6.0[9], v6.0[10], v6.0[11], v6.0[12], v6.0[13], v6.0[14], v6.0[15],
            ]);
            (hi, lo ^ 0x6)
        }
    }
}

/// SipHash-1-3 over whole 64-bit words (the inputs here are fixed-shape, so no byte tail).
pub(crate) fn siphash13(key: &[u8; 16], words: &[u64]) -> u64 {
    let k0 = u64::from_le_bytes([
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
    ]);
    let k1 = u64::from_le_bytes([
        key[8], key[9], key[10], key[11], key[12], key[13], key[14], key[15],
    ]);
    let mut v0 = k0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = k1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k1 ^ 0x7465_6462_7974_6573;
    macro_rules! round {
        () => {
            v0 = v0.wrapping_add(v1);
            v1 = v1.rotate_left(13);
            v1 ^= v0;
            v0 = v0.rotate_left(32);
            v2 = v2.wrapping_add(v3);
            v3 = v3.rotate_left(16);
            v3 ^= v2;
            v0 = v0.wrapping_add(v3);
            v3 = v3.rotate_left(21);
            v3 ^= v0;
            v2 = v2.wrapping_add(v1);
            v1 = v1.rotate_left(17);
            v1 ^= v2;
            v2 = v2.rotate_left(32);
        };
    }
    for &m in words {
        v3 ^= m;
        round!();
        v0 ^= m;
    }
    let b = (words.len() as u64 * 8) << 56;
    v3 ^= b;
    round!();
    v0 ^= b;
    v2 ^= 0xff;
    round!();
    round!();
    round!();
    v0 ^ v1 ^ v2 ^ v3
}

/// Keyed hash of a 4-tuple in one domain, with one extra word.
pub(crate) fn tuple_hash(key: &[u8; 16], domain: u64, t: &FourTuple, extra: u64) -> u64 {
    let (la, lb) = addr_words(&t.local_addr);
    let (ra, rb) = addr_words(&t.remote_addr);
    let ports = (u64::from(t.local_port) << 16) | u64::from(t.remote_port);
    siphash13(key, &[domain, la, lb, ra, rb, ports, extra])
}

/// Keyed hash of a 4-tuple in one domain, with two extra words.
pub(crate) fn tuple_hash2(key: &[u8; 16], domain: u64, t: &FourTuple, a: u64, b: u64) -> u64 {
    let (la, lb) = addr_words(&t.local_addr);
    let (ra, rb) = addr_words(&t.remote_addr);
    let ports = (u64::from(t.local_port) << 16) | u64::from(t.remote_port);
    siphash13(key, &[domain, la, lb, ra, rb, ports, a, b])
}

/// The flow-table key, derived from the secret through the PRF: the table hash below is not a
/// PRF, so an attacker probing its collisions learns nothing about the ISN/cookie secret.
pub(crate) fn table_key(secret: &[u8; 16]) -> [u8; 16] {
    let a = siphash13(secret, &[DOMAIN_TABLE_KEY, 0]).to_le_bytes();
    let b = siphash13(secret, &[DOMAIN_TABLE_KEY, 1]).to_le_bytes();
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a);
    k[8..].copy_from_slice(&b);
    k
}

/// wyhash's folded multiply: the 128-bit product's halves XORed.
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    #[allow(clippy::cast_possible_truncation)]
    let lo = r as u64;
    #[allow(clippy::cast_possible_truncation)]
    let hi = (r >> 64) as u64;
    lo ^ hi
}

/// The flow-table hash: a keyed folded-multiply hash (wyhash style), about a tenth of
/// SipHash's cost. The key keeps an outsider from aiming tuples at one probe sequence; it is
/// not a PRF, so nothing secret (ISNs, cookies) is derived from it.
pub(crate) fn table_hash(key: &[u8; 16], t: &FourTuple) -> u64 {
    let k0 = u64::from_le_bytes([
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
    ]);
    let k1 = u64::from_le_bytes([
        key[8], key[9], key[10], key[11], key[12], key[13], key[14], key[15],
    ]);
    let (la, lb) = addr_words(&t.local_addr);
    let (ra, rb) = addr_words(&t.remote_addr);
    let ports = (u64::from(t.local_port) << 16) | u64::from(t.remote_port);
    let h = fold_mul(
        la ^ k0 ^ 0xa076_1d64_78bd_642f,
        ra ^ k1 ^ 0xe703_7ed1_a0b4_28db,
    ) ^ fold_mul(
        ports ^ lb ^ k1 ^ 0x8ebc_6af0_9c88_c6e3,
        rb ^ k0 ^ 0x5899_65cc_7537_4cc3,
    );
    fold_mul(h, k0 ^ 0x1d8e_4e27_c47d_124f)
}

/// Keyed hash of a listening endpoint.
pub(crate) fn listen_hash(key: &[u8; 16], addr: &IpAddress, port: u16) -> u64 {
    let (a, b) = addr_words(addr);
    siphash13(key, &[DOMAIN_LISTEN, a, b, u64::from(port)])
}

/// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a
/// timer that ticks every 4 µs (taken from `now`, never from a clock) and F a keyed PRF.
pub fn initial_sequence_number(key: &[u8; 16], t: &FourTuple, now: Instant) -> u32 {
    // Truncation is the point: M runs modulo 2^32 like the sequence space.
    #[allow(clippy::cast_possible_truncation)]
    let m = (now.as_micros() / 4) as u32;
    #[allow(clippy::cast_possible_truncation)]
    let f = tuple_hash(key, DOMAIN_ISN, t, 0) as u32;
    m.wrapping_add(f)
}

/// A per-connection random offset for TSval (RFC 7323 §5.4 recommends one), keyed like the ISN.
pub(crate) fn timestamp_offset(key: &[u8; 16], t: &FourTuple) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let v = tuple_hash(key, DOMAIN_TSOFF, t, 0) as u32;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_core::wire::Ipv4Address;

    fn tuple(port: u16) -> FourTuple {
        FourTuple {
            local_addr: IpAddress::V4(Ipv4Address::new(10, 0, 0, 1)),
            local_port: 80,
            remote_addr: IpAddress::V4(Ipv4Address::new(10, 0, 0, 2)),
            remote_port: port,
        }
    }

    #[test]
    fn isn_depends_on_key_tuple_and_time() {
        let k1 = [1u8; 16];
        let k2 = [2u8; 16];
        let t0 = Instant::from_millis(1);
        let a = initial_sequence_number(&k1, &tuple(1000), t0);
        assert_ne!(a, initial_sequence_number(&k2, &tuple(1000), t0));
        assert_ne!(a, initial_sequence_number(&k1, &tuple(1001), t0));
        // The M part advances by one every 4 µs.
        let later = initial_sequence_number(&k1, &tuple(1000), Instant::from_micros(1_000 + 400));
        assert_eq!(later.wrapping_sub(a), 100);
    }

    #[test]
    fn siphash_is_deterministic_and_keyed() {
        assert_eq!(siphash13(&[0; 16], &[1, 2]), siphash13(&[0; 16], &[1, 2]));
        assert_ne!(siphash13(&[0; 16], &[1, 2]), siphash13(&[0; 16], &[2, 1]));
        assert_ne!(siphash13(&[0; 16], &[1, 2]), siphash13(&[9; 16], &[1, 2]));
    }
}
