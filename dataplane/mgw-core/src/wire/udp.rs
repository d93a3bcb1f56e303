//! UDP header view and representation (RFC 768; checksum over the pseudo-header, mandatory over
//! IPv6 per RFC 8200 §8.1).

use super::checksum;
use super::{IpAddress, IpProtocol, Result, WireError};

/// UDP header length.
pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps and checks: header present, 8 ≤ length field ≤ buffer.
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Malformed`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = usize::from(p.len());
        if l < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if l > len {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }
    /// True if the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    /// Payload bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..usize::from(self.len())]
    }
    /// True if the checksum is right, or absent (zero) over IPv4.
    pub fn verify_checksum(&self, src: &IpAddress, dst: &IpAddress) -> bool {
        if self.checksum() == 0 {
            return matches!(src, IpAddress::V4(_));
        }
        let data = &self.b()[..usize::from(self.len())];
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(self.len()));
        checksum::combine(ph, checksum::sum(data)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
    /// Writes only the pseudo-header sum (not complemented) into the checksum field: what a NIC
    /// computing the UDP checksum on transmit expects (`RTE_MBUF_F_TX_UDP_CKSUM`).
    pub fn fill_pseudo_header_checksum(&mut self, src: &IpAddress, dst: &IpAddress) {
        let l = u32::from(self.len());
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Udp, l);
        self.buffer.as_mut()[6..8].copy_from_slice(&ph.to_be_bytes());
    }

    /// Computes and writes the checksum (0 is sent as 0xffff, RFC 768).
    pub fn fill_checksum(&mut self, src: &IpAddress, dst: &IpAddress) {
        let l = usize::from(self.len());
        let b = self.buffer.as_mut();
        b[6] = 0;
        b[7] = 0;
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Udp, l as u32);
        let mut c = !checksum::combine(ph, checksum::sum(&b[..l]));
        if c == 0 {
            c = 0xffff;
        }
        b[6..8].copy_from_slice(&c.to_be_bytes());
    }
}

/// A parsed UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a checked view.
    ///
    /// # Errors
    /// [`WireError::Checksum`] (when `verify`), [`WireError::Malformed`] for a zero destination port.
    pub fn parse<T: AsRef<[u8]>>(
        p: &UdpPacket<T>,
        src: &IpAddress,
        dst: &IpAddress,
        verify: bool,
    ) -> Result<UdpRepr> {
        if p.dst_port() == 0 {
            return Err(WireError::Malformed);
        }
        if verify && !p.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Writes the header for a payload of `payload_len` bytes that already follows it in the
    /// buffer, and fills the checksum over both: the zero-copy path for payloads received or
    /// decrypted in place.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if the buffer is shorter than header plus payload, or the
    /// datagram would exceed 65535 bytes.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        src: &IpAddress,
        dst: &IpAddress,
        payload_len: usize,
    ) -> Result<()> {
        let total = HEADER_LEN + payload_len;
        let l = u16::try_from(total).map_err(|_| WireError::BufferTooSmall)?;
        let b = p.buffer.as_mut();
        if b.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..6].copy_from_slice(&l.to_be_bytes());
        p.fill_checksum(src, dst);
        Ok(())
    }

    /// As [`UdpRepr::emit_header`], for a port that computes UDP checksums on transmit: the
    /// checksum field gets the pseudo-header sum only, and the NIC completes it.
    ///
    /// # Errors
    /// As [`UdpRepr::emit_header`].
    pub fn emit_header_for_offload<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        src: &IpAddress,
        dst: &IpAddress,
        payload_len: usize,
    ) -> Result<()> {
        self.emit_header(p, src, dst, payload_len)?;
        p.fill_pseudo_header_checksum(src, dst);
        Ok(())
    }

    /// Writes the header, copies `payload` behind it and fills the checksum.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        src: &IpAddress,
        dst: &IpAddress,
        payload: &[u8],
    ) -> Result<()> {
        let total = HEADER_LEN + payload.len();
        let l = u16::try_from(total).map_err(|_| WireError::BufferTooSmall)?;
        let b = p.buffer.as_mut();
        if b.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..6].copy_from_slice(&l.to_be_bytes());
        b[HEADER_LEN..total].copy_from_slice(payload);
        p.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Address, Ipv6Address};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(sp: u16, dp in 1u16.., v6: bool, payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (s, d) = if v6 {
                (IpAddress::V6(Ipv6Address([1; 16])), IpAddress::V6(Ipv6Address([2; 16])))
            } else {
                (IpAddress::V4(Ipv4Address([10, 0, 0, 1])), IpAddress::V4(Ipv4Address([10, 0, 0, 2])))
            };
            let r = UdpRepr { src_port: sp, dst_port: dp };
            let mut buf = vec![0u8; HEADER_LEN + payload.len()];
            r.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &s, &d, &payload).unwrap();
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(UdpRepr::parse(&p, &s, &d, true).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let a = IpAddress::V4(Ipv4Address([1, 2, 3, 4]));
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = UdpRepr::parse(&p, &a, &a, true);
                let _ = p.payload();
            }
        }
    }
}
