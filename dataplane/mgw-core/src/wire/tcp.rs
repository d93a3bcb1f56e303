//! TCP header view and representation (RFC 9293 §3.1), with the options mgwd speaks:
//! MSS (RFC 9293 §3.7.1), window scale and timestamps (RFC 7323), SACK-permitted and SACK
//! (RFC 2018).

use super::checksum;
use super::{IpAddress, IpProtocol, Result, WireError};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Longest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;
/// Most SACK blocks one option can carry (RFC 2018 §3: 4, or 3 beside timestamps).
pub const MAX_SACK_BLOCKS: usize = 4;

mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// The TCP control bits (RFC 9293 §3.1; CWR/ECE from RFC 3168).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);
    /// No flags.
    pub const NONE: TcpFlags = TcpFlags(0);

    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any bit of `other` is set in `self`.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// `self` with the bits of `other` set.
    pub const fn with(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }

    /// `self` with the bits of `other` cleared.
    pub const fn without(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        self.with(rhs)
    }
}

/// A read/write view of a TCP segment (header, options and payload).
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking anything. Accessors may panic on short buffers; use
    /// [`TcpPacket::new_checked`] on untrusted bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` and checks that the header (including options, as the data offset says) fits.
    /// After this no accessor panics.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than the header, [`WireError::Malformed`]
    /// if the data offset is below 5 words.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the length invariants that make the accessors panic-free.
    ///
    /// # Errors
    /// As [`TcpPacket::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len < hl {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn be16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[r.start], b[r.start + 1]])
    }

    fn be32(&self, r: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.be16(field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.be16(field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        self.be32(field::SEQ)
    }
    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        self.be32(field::ACK)
    }
    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF] >> 4) * 4
    }
    /// The control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }
    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        self.be16(field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        self.be16(field::URGENT)
    }
    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }
    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True if the checksum over the pseudo-header and the whole segment is right.
    pub fn verify_checksum(&self, src: &IpAddress, dst: &IpAddress) -> bool {
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Tcp, len);
        checksum::combine(ph, checksum::sum(data)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_be16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    fn set_be32(&mut self, r: core::ops::Range<usize>, v: u32) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.set_be16(field::SRC_PORT, v)
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.set_be16(field::DST_PORT, v)
    }
    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        self.set_be32(field::SEQ, v)
    }
    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: u32) {
        self.set_be32(field::ACK, v)
    }
    /// Sets the header length in bytes; must be a multiple of 4 between 20 and 60.
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(len % 4 == 0 && (HEADER_LEN..=MAX_HEADER_LEN).contains(&len));
        let b = self.buffer.as_mut();
        b[field::OFF] = ((len / 4) as u8) << 4;
    }
    /// Sets the control bits.
    pub fn set_flags(&mut self, f: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }
    /// Sets the window field.
    pub fn set_window_len(&mut self, v: u16) {
        self.set_be16(field::WINDOW, v)
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.set_be16(field::CHECKSUM, v)
    }
    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        self.set_be16(field::URGENT, v)
    }
    /// The option bytes, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..hl]
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
    /// Writes only the pseudo-header sum (not complemented) into the checksum field: what a NIC
    /// computing the TCP checksum on transmit expects (`RTE_MBUF_F_TX_TCP_CKSUM`).
    pub fn fill_pseudo_header_checksum(&mut self, src: &IpAddress, dst: &IpAddress) {
        let len = u32::try_from(self.buffer.as_ref().len()).unwrap_or(u32::MAX);
        self.set_checksum(checksum::pseudo_header(src, dst, IpProtocol::Tcp, len));
    }

    /// Computes and writes the checksum over the pseudo-header and the whole segment.
    pub fn fill_checksum(&mut self, src: &IpAddress, dst: &IpAddress) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let ph = checksum::pseudo_header(src, dst, IpProtocol::Tcp, len);
        let c = !checksum::combine(ph, checksum::sum(data));
        self.set_checksum(c);
    }
}

/// The TCP options mgwd understands. Unknown options are skipped on parse and never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift count as received (SYN only; RFC 7323 §2.3 caps its use at 14).
    pub window_scale: Option<u8>,
    /// SACK-permitted (SYN only).
    pub sack_permitted: bool,
    /// SACK blocks `(left edge, right edge)`; the first `sack_len` are valid.
    pub sack_blocks: [(u32, u32); MAX_SACK_BLOCKS],
    /// How many of `sack_blocks` are valid.
    pub sack_len: u8,
    /// Timestamps `(TSval, TSecr)`.
    pub timestamps: Option<(u32, u32)>,
}

impl TcpOptions {
    /// The valid SACK blocks.
    pub fn sack(&self) -> &[(u32, u32)] {
        &self.sack_blocks[..usize::from(self.sack_len).min(MAX_SACK_BLOCKS)]
    }

    /// Appends a SACK block; returns false when all slots are used.
    pub fn push_sack(&mut self, block: (u32, u32)) -> bool {
        let n = usize::from(self.sack_len);
        if n >= MAX_SACK_BLOCKS {
            return false;
        }
        self.sack_blocks[n] = block;
        self.sack_len += 1;
        true
    }

    /// Parses option bytes.
    ///
    /// # Errors
    /// [`WireError::Malformed`] for an option whose length byte is missing, below 2, runs past the
    /// header, or is wrong for a known kind.
    pub fn parse(mut bytes: &[u8]) -> Result<TcpOptions> {
        let mut o = TcpOptions::default();
        while let Some((&k, rest)) = bytes.split_first() {
            match k {
                kind::EOL => break,
                kind::NOP => {
                    bytes = rest;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*rest.first().ok_or(WireError::Malformed)?);
            if len < 2 || len > bytes.len() {
                return Err(WireError::Malformed);
            }
            let body = &bytes[2..len];
            match (k, len) {
                (kind::MSS, 4) => o.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                (kind::WINDOW_SCALE, 3) => o.window_scale = Some(body[0]),
                (kind::SACK_PERMITTED, 2) => o.sack_permitted = true,
                (kind::TIMESTAMPS, 10) => {
                    let v = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let e = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    o.timestamps = Some((v, e));
                }
                (kind::SACK, _) => {
                    if body.len() % 8 != 0 || body.is_empty() || body.len() > 8 * MAX_SACK_BLOCKS {
                        return Err(WireError::Malformed);
                    }
                    o.sack_len = 0;
                    for b in body.chunks_exact(8) {
                        let l = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        let r = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                        o.push_sack((l, r));
                    }
                }
                (kind::MSS | kind::WINDOW_SCALE | kind::SACK_PERMITTED | kind::TIMESTAMPS, _) => {
                    return Err(WireError::Malformed)
                }
                _ => {} // RFC 9293 §3.1: unknown options are skipped by their length.
            }
            bytes = &bytes[len..];
        }
        Ok(o)
    }

    /// How many SACK blocks fit beside the other options in 40 bytes.
    fn sack_blocks_that_fit(&self) -> usize {
        let used = self.fixed_len();
        let room = MAX_OPTIONS_LEN.saturating_sub(used);
        if room < 4 + 8 {
            0
        } else {
            ((room - 4) / 8).min(self.sack().len())
        }
    }

    fn fixed_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.window_scale.is_some() {
            n += 4;
        }
        if self.sack_permitted {
            n += 4;
        }
        if self.timestamps.is_some() {
            n += 12;
        }
        n
    }

    /// Bytes these options take when emitted (always a multiple of 4, at most 40).
    pub fn len(&self) -> usize {
        let sack = self.sack_blocks_that_fit();
        self.fixed_len() + if sack > 0 { 4 + 8 * sack } else { 0 }
    }

    /// True if no option is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the options, each aligned with NOPs, as Linux lays them out. SACK blocks that do not
    /// fit in 40 bytes are left out (the newest first are kept: the caller orders them).
    /// Returns the bytes written.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if `out` is shorter than [`TcpOptions::len`].
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let total = self.len();
        if out.len() < total {
            return Err(WireError::BufferTooSmall);
        }
        let mut i = 0;
        if let Some(mss) = self.mss {
            out[i..i + 4].copy_from_slice(&[kind::MSS, 4, (mss >> 8) as u8, mss as u8]);
            i += 4;
        }
        if self.sack_permitted {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
            i += 4;
        }
        if let Some((v, e)) = self.timestamps {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::TIMESTAMPS, 10]);
            out[i + 4..i + 8].copy_from_slice(&v.to_be_bytes());
            out[i + 8..i + 12].copy_from_slice(&e.to_be_bytes());
            i += 12;
        }
        if let Some(ws) = self.window_scale {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::WINDOW_SCALE, 3, ws]);
            i += 4;
        }
        let n = self.sack_blocks_that_fit();
        if n > 0 {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK, (2 + 8 * n) as u8]);
            i += 4;
            for &(l, r) in &self.sack()[..n] {
                out[i..i + 4].copy_from_slice(&l.to_be_bytes());
                out[i + 4..i + 8].copy_from_slice(&r.to_be_bytes());
                i += 8;
            }
        }
        debug_assert_eq!(i, total);
        Ok(i)
    }
}

/// A parsed TCP segment: header fields, options and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags` has ACK).
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Window field as on the wire (unscaled).
    pub window: u16,
    /// Urgent pointer (mgwd never sets URG; kept for round trips).
    pub urgent: u16,
    /// The options mgwd understands; unknown ones are skipped on parse.
    pub options: TcpOptions,
    /// The bytes after the header, borrowed from the segment.
    pub payload: &'a [u8],
}

/// Whether `parse` checks the checksum (skip it when the NIC has verified it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumCheck {
    /// Verify in software.
    Verify,
    /// Trust an earlier check (hardware offload).
    Skip,
}

impl<'a> TcpRepr<'a> {
    /// Parses a checked view.
    ///
    /// # Errors
    /// [`WireError::Checksum`] on a bad checksum (when asked to verify), [`WireError::Malformed`]
    /// on bad options or a zero port.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &'a TcpPacket<&'a T>,
        src: &IpAddress,
        dst: &IpAddress,
        check: ChecksumCheck,
    ) -> Result<TcpRepr<'a>> {
        if check == ChecksumCheck::Verify && !packet.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        if packet.src_port() == 0 || packet.dst_port() == 0 {
            return Err(WireError::Malformed);
        }
        let buf: &'a [u8] = packet.buffer.as_ref();
        let hl = packet.header_len();
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(&buf[field::OPTIONS..hl])?,
            payload: &buf[hl..],
        })
    }

    /// Header length this segment needs, options included.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space this segment occupies: payload plus one for SYN and one for FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len()
            + usize::from(self.flags.contains(TcpFlags::SYN))
            + usize::from(self.flags.contains(TcpFlags::FIN))
    }

    /// Writes header, options and payload into `packet` (whose buffer must be exactly
    /// [`TcpRepr::buffer_len`] long, or longer if the caller trims after) and fills the checksum.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if the buffer is too short.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: &IpAddress,
        dst: &IpAddress,
    ) -> Result<()> {
        self.emit_segment(packet)?;
        packet.fill_checksum(src, dst);
        Ok(())
    }

    /// As [`TcpRepr::emit`], for a port that computes TCP checksums on transmit: the checksum
    /// field gets the pseudo-header sum only, and the NIC completes it.
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if the buffer is too short.
    pub fn emit_for_offload<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: &IpAddress,
        dst: &IpAddress,
    ) -> Result<()> {
        self.emit_segment(packet)?;
        packet.fill_pseudo_header_checksum(src, dst);
        Ok(())
    }

    /// Header, options and payload; the checksum is the caller's.
    fn emit_segment<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) -> Result<()> {
        self.emit_header(packet)?;
        let hl = self.header_len();
        packet.buffer.as_mut()[hl..hl + self.payload.len()].copy_from_slice(self.payload);
        Ok(())
    }

    /// Writes header and options only (not the payload, not the checksum): for callers that put
    /// the payload in place themselves and then call [`TcpPacket::fill_checksum`].
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if the buffer cannot hold header and payload.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
    ) -> Result<()> {
        let hl = self.header_len();
        if packet.buffer.as_ref().len() < hl + self.payload.len() {
            return Err(WireError::BufferTooSmall);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq);
        packet.set_ack_number(self.ack);
        packet.set_header_len(hl);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent);
        self.options
            .emit(&mut packet.buffer.as_mut()[field::OPTIONS..hl])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv4Address;
    use proptest::prelude::*;

    const SRC: IpAddress = IpAddress::V4(Ipv4Address([192, 0, 2, 1]));
    const DST: IpAddress = IpAddress::V4(Ipv4Address([192, 0, 2, 2]));

    fn syn() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 49152,
            dst_port: 2855,
            seq: 0x0102_0304,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 65535,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 0)),
                ..TcpOptions::default()
            },
            payload: &[],
        }
    }

    #[test]
    fn syn_round_trips_with_all_options() {
        let r = syn();
        let mut buf = vec![0u8; r.buffer_len()];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        r.emit(&mut p, &SRC, &DST).unwrap();
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 44);
        let back = TcpRepr::parse(&p, &SRC, &DST, ChecksumCheck::Verify).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.segment_len(), 1);
    }

    #[test]
    fn bad_checksum_is_refused() {
        let r = syn();
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST)
            .unwrap();
        buf[4] ^= 1;
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            TcpRepr::parse(&p, &SRC, &DST, ChecksumCheck::Verify),
            Err(WireError::Checksum)
        );
    }

    #[test]
    fn short_data_offset_and_truncation() {
        let mut buf = [0u8; 20];
        buf[12] = 4 << 4;
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).unwrap_err(),
            WireError::Malformed
        );
        buf[12] = 6 << 4;
        assert_eq!(
            TcpPacket::new_checked(&buf[..]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            TcpPacket::new_checked(&buf[..10]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn sack_blocks_are_capped_beside_timestamps() {
        let mut o = TcpOptions {
            timestamps: Some((5, 6)),
            ..TcpOptions::default()
        };
        for i in 0..4 {
            o.push_sack((i * 100, i * 100 + 50));
        }
        assert_eq!(o.len(), 12 + 4 + 3 * 8);
        let mut out = [0u8; 40];
        o.emit(&mut out).unwrap();
        let back = TcpOptions::parse(&out).unwrap();
        assert_eq!(back.sack(), &o.sack()[..3]);
    }

    #[test]
    fn bad_option_lengths() {
        assert_eq!(TcpOptions::parse(&[2, 3, 0]), Err(WireError::Malformed));
        assert_eq!(TcpOptions::parse(&[2]), Err(WireError::Malformed));
        assert_eq!(TcpOptions::parse(&[30, 1]), Err(WireError::Malformed));
        assert_eq!(TcpOptions::parse(&[30, 9, 0]), Err(WireError::Malformed));
        // Unknown kind skipped by length; EOL ends parsing.
        assert!(TcpOptions::parse(&[30, 3, 0, 0, 99, 99]).is_ok());
    }

    fn arb_options() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=2),
        )
            .prop_map(|(mss, ws, sp, ts, sacks)| {
                let mut o = TcpOptions {
                    mss,
                    window_scale: ws,
                    sack_permitted: sp,
                    timestamps: ts,
                    ..TcpOptions::default()
                };
                for s in sacks {
                    o.push_sack(s);
                }
                o
            })
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(
            src_port in 1u16.., dst_port in 1u16.., seq: u32, ack: u32, flags: u8, window: u16,
            options in arb_options(), payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let r = TcpRepr { src_port, dst_port, seq, ack, flags: TcpFlags(flags), window, urgent: 0, options, payload: &payload };
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST).unwrap();
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            let back = TcpRepr::parse(&p, &SRC, &DST, ChecksumCheck::Verify).unwrap();
            // Options that could not fit are dropped on emit; everything that fits comes back.
            prop_assert_eq!(back.header_len(), r.header_len());
            prop_assert_eq!(back.seq, seq);
            prop_assert_eq!(back.payload, &payload[..]);
            prop_assert_eq!(back.options.mss, r.options.mss);
            prop_assert_eq!(back.options.timestamps, r.options.timestamps);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(p) = TcpPacket::new_checked(&data[..]) {
                let _ = TcpRepr::parse(&p, &SRC, &DST, ChecksumCheck::Skip);
                let _ = (p.payload(), p.options(), p.flags(), p.window_len());
            }
        }
    }

    #[test]
    fn a_nic_completing_the_pseudo_header_sum_gets_the_software_checksum() {
        let src = IpAddress::V4(crate::wire::Ipv4Address([10, 0, 0, 1]));
        let dst = IpAddress::V4(crate::wire::Ipv4Address([10, 0, 0, 2]));
        let payload = b"offloaded checksum, odd length!";
        let repr = TcpRepr { payload, ..syn() };
        let mut soft = vec![0u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut soft), &src, &dst)
            .unwrap();
        let mut off = vec![0u8; repr.buffer_len()];
        repr.emit_for_offload(&mut TcpPacket::new_unchecked(&mut off), &src, &dst)
            .unwrap();
        // What the NIC does (DPDK's contract): complement of the sum over the segment with the
        // pseudo-header sum already in the checksum field.
        let nic = !checksum::sum(&off);
        assert_eq!(nic.to_be_bytes(), [soft[16], soft[17]]);
    }
}
