//! TCP → UDP: one whole message cut into version-2 datagrams under an MTU (RFC 8855 §5.1, the
//! F flag), and [`to_reliable`], the version rewrite a whole message needs to go back onto TCP.

use super::{BfcpError, Packet, Repr, FRAGMENTED_HEADER_LEN, HEADER_LEN};

/// Splits one whole message into version-2 datagrams of at most `mtu` bytes (RFC 8855 §5.1 F
/// flag; fragments cut the payload at 4-octet boundaries). A message that fits goes out as one
/// unfragmented version-2 datagram.
#[derive(Debug, Clone)]
pub struct Fragmenter<'a> {
    repr: Repr<'a>,
    units_per_fragment: usize,
    offset: usize,
    whole: bool,
    done: bool,
}

impl<'a> Fragmenter<'a> {
    /// Prepares to send `msg` (a whole message of either version, F clear) under `mtu`.
    ///
    /// # Errors
    /// `msg` malformed or itself a fragment ([`BfcpError::Fragment`]); `mtu` below 20 bytes
    /// ([`BfcpError::BufferTooSmall`]: a fragment must carry at least one unit).
    pub fn new(msg: &'a [u8], mtu: usize) -> Result<Self, BfcpError> {
        let p = Packet::new_checked(msg)?;
        let mut repr = Repr::parse(&p)?;
        if repr.fragment.is_some() {
            return Err(BfcpError::Fragment);
        }
        repr.version = 2;
        let whole = HEADER_LEN + repr.payload.len() <= mtu;
        if !whole && mtu < FRAGMENTED_HEADER_LEN + 4 {
            return Err(BfcpError::BufferTooSmall);
        }
        Ok(Fragmenter {
            repr,
            units_per_fragment: mtu.saturating_sub(FRAGMENTED_HEADER_LEN) / 4,
            offset: 0,
            whole,
            done: false,
        })
    }

    /// Writes the next datagram into `out` and returns its length; `None` when all are out.
    pub fn next_fragment(&mut self, out: &mut [u8]) -> Option<Result<usize, BfcpError>> {
        if self.done {
            return None;
        }
        if self.whole {
            self.done = true;
            return Some(self.repr.emit(out));
        }
        let total = self.repr.payload.len() / 4;
        let units = self.units_per_fragment.min(total - self.offset);
        let payload = &self.repr.payload[self.offset * 4..(self.offset + units) * 4];
        let frag = Repr {
            fragment: Some((self.offset as u16, total as u16)),
            payload,
            ..self.repr
        };
        let r = frag.emit(out);
        if r.is_ok() {
            self.offset += units;
            self.done = self.offset >= total;
        }
        Some(r)
    }
}

/// Turns a whole version-2 message (unfragmented or reassembled) into a version-1 message for a
/// reliable transport, in place.
///
/// # Errors
/// [`BfcpError::Fragment`] when F is set; [`BfcpError::Truncated`].
pub fn to_reliable(msg: &mut [u8]) -> Result<(), BfcpError> {
    let mut p = Packet::new_checked(msg)?;
    if p.fragmented() {
        return Err(BfcpError::Fragment);
    }
    p.set_version(1);
    Ok(())
}
