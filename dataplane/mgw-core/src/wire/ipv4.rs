//! IPv4 header view and representation (RFC 791). mgwd neither sends nor reassembles fragments:
//! fragments are handed up as such and the classifier drops and counts them.

use super::checksum;
use super::{Result, WireError};
use core::fmt;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// An IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ipv4Address(pub [u8; 4]);

impl Ipv4Address {
    /// 0.0.0.0
    pub const UNSPECIFIED: Ipv4Address = Ipv4Address([0; 4]);
    /// 255.255.255.255
    pub const BROADCAST: Ipv4Address = Ipv4Address([255; 4]);

    /// Builds an address from its four octets.
    pub const fn new(a: u8, b: u8, c: u8, d: u8) -> Self {
        Ipv4Address([a, b, c, d])
    }

    /// The address as a host-order integer.
    pub const fn to_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }

    /// True for 224.0.0.0/4.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0xf0 == 0xe0
    }

    /// True if `self` and `other` share the first `prefix_len` bits.
    pub fn same_prefix(self, other: Ipv4Address, prefix_len: u8) -> bool {
        if prefix_len == 0 {
            return true;
        }
        let shift = 32 - u32::from(prefix_len.min(32));
        (self.to_u32() ^ other.to_u32()) >> shift == 0
    }
}

impl From<std::net::Ipv4Addr> for Ipv4Address {
    fn from(a: std::net::Ipv4Addr) -> Self {
        Ipv4Address(a.octets())
    }
}

impl From<Ipv4Address> for std::net::Ipv4Addr {
    fn from(a: Ipv4Address) -> Self {
        std::net::Ipv4Addr::from(a.0)
    }
}

impl fmt::Display for Ipv4Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// IP protocol numbers (IANA), shared by IPv4 `protocol` and IPv6 `next header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// ICMP (1).
    Icmp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMPv6 (58).
    Icmpv6,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            n => IpProtocol::Unknown(n),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(n) => n,
        }
    }
}

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps and checks lengths: the buffer holds the header, IHL ≥ 5, total length ≥ IHL and
    /// ≤ buffer length. After this no accessor panics.
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Malformed`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// See [`Ipv4Packet::new_checked`].
    ///
    /// # Errors
    /// As there.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        let tl = usize::from(self.total_len());
        if hl < HEADER_LEN || tl < hl {
            return Err(WireError::Malformed);
        }
        if len < hl || len < tl {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }
    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.b()[field::DSCP_ECN]
    }
    /// Total length (header + payload).
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// Identification (RFC 791): the same on every fragment of one datagram.
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.b()[6] & 0x20 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (u16::from_be_bytes([self.b()[6], self.b()[7]]) & 0x1fff) * 8
    }
    /// True if this is a fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    /// Time to live.
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::TTL]
    }
    /// Payload protocol.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.b()[field::PROTOCOL])
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[10], self.b()[11]])
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Address {
        let b = self.b();
        Ipv4Address([b[12], b[13], b[14], b[15]])
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Address {
        let b = self.b();
        Ipv4Address([b[16], b[17], b[18], b[19]])
    }
    /// True if the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.b()[..self.header_len()]) == 0xffff
    }
    /// The payload, bounded by the total length (link padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Sets version 4 and the header length (multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, hl: usize) {
        self.bm()[field::VER_IHL] = 0x40 | ((hl / 4) as u8 & 0x0f);
    }
    /// Sets DSCP/ECN.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.bm()[field::DSCP_ECN] = v;
    }
    /// Sets total length.
    pub fn set_total_len(&mut self, v: u16) {
        self.bm()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets identification.
    pub fn set_ident(&mut self, v: u16) {
        self.bm()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets flags (DF only; we never fragment) and a zero offset.
    pub fn set_dont_frag(&mut self, df: bool) {
        let v: u16 = if df { 0x4000 } else { 0 };
        self.bm()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets TTL.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.bm()[field::TTL] = v;
    }
    /// Sets protocol.
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.bm()[field::PROTOCOL] = p.into();
    }
    /// Sets source address.
    pub fn set_src_addr(&mut self, a: Ipv4Address) {
        self.bm()[field::SRC].copy_from_slice(&a.0);
    }
    /// Sets destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Address) {
        self.bm()[field::DST].copy_from_slice(&a.0);
    }
    /// Computes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.bm()[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let hl = self.header_len();
        let c = !checksum::sum(&self.b()[..hl]);
        self.bm()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let tl = usize::from(self.total_len());
        &mut self.bm()[hl..tl]
    }
}

/// A parsed IPv4 header (options are not kept: mgwd neither needs nor emits them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Address,
    /// Destination address.
    pub dst_addr: Ipv4Address,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live (RFC 791), in hops.
    pub hop_limit: u8,
    /// DSCP/ECN byte.
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Parses a checked view.
    ///
    /// # Errors
    /// [`WireError::Malformed`] for a version other than 4; [`WireError::Checksum`] for a bad header
    /// checksum when `verify` is set.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, verify: bool) -> Result<Ipv4Repr> {
        if p.version() != 4 {
            return Err(WireError::Malformed);
        }
        if verify && !p.verify_checksum() {
            return Err(WireError::Checksum);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
            hop_limit: p.hop_limit(),
            dscp_ecn: p.dscp_ecn(),
        })
    }

    /// Header length when emitted.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header (DF set, ident 0 as RFC 6864 allows for atomic datagrams) and its
    /// checksum. Only the header bytes are touched, so `p` may be a view of just the header that
    /// was prepended in front of a payload already in place.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if the buffer cannot hold the header, or the total length
    /// exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) -> Result<()> {
        let total = u16::try_from(self.buffer_len()).map_err(|_| WireError::BufferTooSmall)?;
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len(total);
        p.set_ident(0);
        p.set_dont_frag(true);
        p.set_hop_limit(self.hop_limit);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn checks_lengths() {
        let mut b = [0u8; 20];
        b[0] = 0x45;
        b[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        b[3] = 40;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
        b[0] = 0x44;
        b[3] = 20;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn prefix_match() {
        let a = Ipv4Address::new(10, 1, 2, 3);
        assert!(a.same_prefix(Ipv4Address::new(10, 1, 9, 9), 16));
        assert!(!a.same_prefix(Ipv4Address::new(10, 2, 9, 9), 16));
        assert!(a.same_prefix(Ipv4Address::new(1, 1, 1, 1), 0));
        assert!(a.same_prefix(a, 32));
    }

    proptest! {
        #[test]
        fn round_trip(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, tos: u8, len in 0usize..1500) {
            let r = Ipv4Repr { src_addr: Ipv4Address(src), dst_addr: Ipv4Address(dst), protocol: proto.into(), payload_len: len, hop_limit: ttl, dscp_ecn: tos };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])).unwrap();
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p, true).unwrap(), r);
            prop_assert_eq!(p.payload().len(), len);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = Ipv4Repr::parse(&p, true);
                let _ = (p.payload(), p.frag_offset(), p.is_fragment());
            }
        }
    }
}
