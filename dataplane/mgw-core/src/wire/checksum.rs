//! The Internet checksum (RFC 1071) and the TCP/UDP pseudo-headers (RFC 9293 §3.1, RFC 8200 §8.1).

use super::{IpAddress, IpProtocol};

/// One's-complement sum of `data` as big-endian 16-bit words, folded to 16 bits, not inverted.
/// An odd trailing byte is padded with zero.
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four 16-bit words at a time; the u64 accumulator cannot overflow for any packet size.
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(acc)
}

/// Folds a wide one's-complement accumulator into 16 bits.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// One's-complement addition of two folded sums.
pub fn combine(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// The pseudo-header sum for TCP/UDP over IPv4 or IPv6 (not inverted).
pub fn pseudo_header(src: &IpAddress, dst: &IpAddress, proto: IpProtocol, length: u32) -> u16 {
    let proto = u64::from(u8::from(proto));
    match (src, dst) {
        (IpAddress::V4(s), IpAddress::V4(d)) => {
            let acc = u64::from(sum(&s.0)) + u64::from(sum(&d.0)) + proto + u64::from(length);
            fold(acc)
        }
        (IpAddress::V6(s), IpAddress::V6(d)) => {
            let acc = u64::from(sum(&s.0))
                + u64::from(sum(&d.0))
                + proto
                + u64::from(length >> 16)
                + u64::from(length & 0xffff);
            fold(acc)
        }
        // Mixed families cannot share a packet; sum what there is so the checksum simply fails.
        (IpAddress::V4(s), IpAddress::V6(d)) => combine(sum(&s.0), sum(&d.0)),
        (IpAddress::V6(s), IpAddress::V4(d)) => combine(sum(&s.0), sum(&d.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 numerical example: 0001 + f203 + f4f5 + f6f7 = 2ddf0, folded to ddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }
}
