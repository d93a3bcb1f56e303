//! ICMPv4 (RFC 792): mgwd answers echo requests to its own addresses and ignores the rest.

use super::checksum;
use super::{Result, WireError};

/// Header length (type, code, checksum, rest-of-header).
pub const HEADER_LEN: usize = 8;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    /// Wraps and checks the header fits.
    ///
    /// # Errors
    /// [`WireError::Truncated`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// The Code byte, which refines the type (0 for the echo messages, RFC 792).
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }
    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }
    /// Data after the header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True if the checksum over the whole message is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }
}

/// The ICMPv4 messages mgwd parses and emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Type 8.
    EchoRequest {
        /// Identifier (RFC 792), which the reply repeats.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data echoed back.
        data: &'a [u8],
    },
    /// Type 0.
    EchoReply {
        /// Identifier, repeated from the request.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data, repeated from the request.
        data: &'a [u8],
    },
    /// Any other type, kept as data.
    Other {
        /// The Type byte of a message this code does not parse (an echo with a non-zero code too).
        msg_type: u8,
        /// The Code byte, as received.
        code: u8,
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a checked view.
    ///
    /// # Errors
    /// [`WireError::Checksum`] for a bad checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a Icmpv4Packet<&'a T>) -> Result<Icmpv4Repr<'a>> {
        if !p.verify_checksum() {
            return Err(WireError::Checksum);
        }
        let data = &p.buffer.as_ref()[HEADER_LEN..];
        Ok(match (p.msg_type(), p.msg_code()) {
            (8, 0) => Icmpv4Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            },
            (0, 0) => Icmpv4Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            },
            (t, c) => Icmpv4Repr::Other {
                msg_type: t,
                code: c,
            },
        })
    }

    /// Bytes this message takes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv4Repr::Other { .. } => HEADER_LEN,
        }
    }

    /// Writes the message with its checksum.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`]; [`WireError::Malformed`] for `Other`, which mgwd never sends.
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        let (t, ident, seq, data) = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (8u8, ident, seq_no, data),
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (0u8, ident, seq_no, data),
            Icmpv4Repr::Other { .. } => return Err(WireError::Malformed),
        };
        let n = HEADER_LEN + data.len();
        if out.len() < n {
            return Err(WireError::BufferTooSmall);
        }
        out[0] = t;
        out[1] = 0;
        out[2..4].copy_from_slice(&[0, 0]);
        out[4..6].copy_from_slice(&ident.to_be_bytes());
        out[6..8].copy_from_slice(&seq.to_be_bytes());
        out[HEADER_LEN..n].copy_from_slice(data);
        let c = !checksum::sum(&out[..n]);
        out[2..4].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(req: bool, ident: u16, seq_no: u16, data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = if req { Icmpv4Repr::EchoRequest { ident, seq_no, data: &data } } else { Icmpv4Repr::EchoReply { ident, seq_no, data: &data } };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b).unwrap();
            let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(Icmpv4Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = Icmpv4Repr::parse(&p);
            }
        }
    }
}
