//! IPv6 fixed header view and representation (RFC 8200 §3). Extension headers are not walked:
//! a packet whose next header is not TCP, UDP or ICMPv6 is dropped and counted by the classifier.

use super::ipv4::IpProtocol;
use super::{Result, WireError};
use core::fmt;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// An IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ipv6Address(pub [u8; 16]);

impl Ipv6Address {
    /// ::
    pub const UNSPECIFIED: Ipv6Address = Ipv6Address([0; 16]);
}

impl From<std::net::Ipv6Addr> for Ipv6Address {
    fn from(a: std::net::Ipv6Addr) -> Self {
        Ipv6Address(a.octets())
    }
}

impl fmt::Display for Ipv6Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        std::net::Ipv6Addr::from(self.0).fmt(f)
    }
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps and checks that the fixed header and the payload length fit.
    ///
    /// # Errors
    /// [`WireError::Truncated`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(p.payload_len()) {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Version (6).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.b()[0] << 4) | (self.b()[1] >> 4)
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.b()[1] & 0x0f, self.b()[2], self.b()[3]])
    }
    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }
    /// Next header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.b()[6])
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[7]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Address {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[8..24]);
        Ipv6Address(a)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Address {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[24..40]);
        Ipv6Address(a)
    }
    /// Payload bounded by the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + n]
    }
}

/// A parsed IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Address,
    /// Destination address.
    pub dst_addr: Ipv6Address,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Parses a checked view.
    ///
    /// # Errors
    /// [`WireError::Malformed`] if the version is not 6.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        if p.version() != 6 {
            return Err(WireError::Malformed);
        }
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        })
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the fixed header.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if the buffer cannot hold it, or the payload exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) -> Result<()> {
        let pl = u16::try_from(self.payload_len).map_err(|_| WireError::BufferTooSmall)?;
        let b = p.buffer.as_mut();
        // Only the fixed header is written; the payload may already sit behind it.
        if b.len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        b[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        b[4..6].copy_from_slice(&pl.to_be_bytes());
        b[6] = self.next_header.into();
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src_addr.0);
        b[24..40].copy_from_slice(&self.dst_addr.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(src: [u8; 16], dst: [u8; 16], nh: u8, hl: u8, len in 0usize..1500) {
            let r = Ipv6Repr { src_addr: Ipv6Address(src), dst_addr: Ipv6Address(dst), next_header: nh.into(), payload_len: len, hop_limit: hl };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..])).unwrap();
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = Ipv6Repr::parse(&p);
                let _ = (p.payload(), p.flow_label(), p.traffic_class());
            }
        }
    }
}
