//! ARP over Ethernet for IPv4 (RFC 826): the only hardware/protocol pair mgwd answers.

use super::{EthernetAddress, Ipv4Address, Result, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who has this protocol address? (RFC 826 `ar$op`)
    Request,
    /// 2: this protocol address is at this hardware address.
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            n => ArpOperation::Unknown(n),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(o: ArpOperation) -> u16 {
        match o {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(n) => n,
        }
    }
}

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Wraps and checks the length.
    ///
    /// # Errors
    /// [`WireError::Truncated`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        Ok(ArpPacket { buffer })
    }
    fn be16(&self, i: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[i], b[i + 1]])
    }
    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.be16(0)
    }
    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        self.be16(2)
    }
    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[4]
    }
    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[5]
    }
    /// The operation, `ar$op` (bytes 6–7).
    pub fn operation(&self) -> ArpOperation {
        self.be16(6).into()
    }
    fn mac(&self, i: usize) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[i..i + 6]);
        EthernetAddress(a)
    }
    fn ip(&self, i: usize) -> Ipv4Address {
        let b = self.buffer.as_ref();
        Ipv4Address([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }
    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        self.mac(8)
    }
    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Address {
        self.ip(14)
    }
    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        self.mac(18)
    }
    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Address {
        self.ip(24)
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4.
    pub source_protocol_addr: Ipv4Address,
    /// Target MAC.
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4.
    pub target_protocol_addr: Ipv4Address,
}

impl ArpRepr {
    /// Parses a checked view.
    ///
    /// # Errors
    /// [`WireError::Malformed`] for anything but Ethernet/IPv4 ARP.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr> {
        if p.hardware_type() != 1
            || p.protocol_type() != 0x0800
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(WireError::Malformed);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    /// Packet length.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`].
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        if out.len() < PACKET_LEN {
            return Err(WireError::BufferTooSmall);
        }
        out[0..2].copy_from_slice(&1u16.to_be_bytes());
        out[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        out[4] = 6;
        out[5] = 4;
        out[6..8].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        out[8..14].copy_from_slice(&self.source_hardware_addr.0);
        out[14..18].copy_from_slice(&self.source_protocol_addr.0);
        out[18..24].copy_from_slice(&self.target_hardware_addr.0);
        out[24..28].copy_from_slice(&self.target_protocol_addr.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(op: u16, sm: [u8; 6], si: [u8; 4], tm: [u8; 6], ti: [u8; 4]) {
            let r = ArpRepr {
                operation: op.into(),
                source_hardware_addr: EthernetAddress(sm), source_protocol_addr: Ipv4Address(si),
                target_hardware_addr: EthernetAddress(tm), target_protocol_addr: Ipv4Address(ti),
            };
            let mut b = [0u8; PACKET_LEN];
            r.emit(&mut b).unwrap();
            prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()).unwrap(), r);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = ArpPacket::new_checked(&data[..]) {
                let _ = ArpRepr::parse(&p);
            }
        }
    }
}
