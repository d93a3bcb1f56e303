//! UDPTL (ITU-T T.38 clause 9.1 / Annex D transport of IFP packets over UDP): parse, emit, and
//! per-flow loss/recovery accounting for the relay.
//!
//! ASN.1 (T.38), encoded with ALIGNED PER (X.691):
//! ```text
//! UDPTLPacket ::= SEQUENCE {
//!   seq-number          INTEGER (0..65535),                  -- 2 octets
//!   primary-ifp-packet  TYPE-IDENTIFIER.&Type(IFPPacket),    -- open type: length + octets
//!   error-recovery      CHOICE {                              -- 1 bit, padded to an octet
//!     secondary-ifp-packets SEQUENCE OF TYPE-IDENTIFIER.&Type(IFPPacket),  -- redundancy
//!     fec-info SEQUENCE { fec-npackets INTEGER, fec-data SEQUENCE OF OCTET STRING } } }
//! ```
//! Facts checked against Asterisk's `main/udptl.c` behaviour (no code taken): the choice octet is
//! `0x00` for redundancy and `0x80` for FEC (only the top bit is read); secondaries are the
//! previous IFPs newest first (secondary *k* carries `seq-1-k`) and zero-length ones are ignored;
//! `fec-npackets` (the span) is an unconstrained INTEGER sent as a 1-octet length and value;
//! FEC entry *m* of packet *s* is the XOR of the packets `s + m - entries*span + entries*j`,
//! `j = 0..span`; a zero-length open type is sent as one zero octet (X.691 §10.1); lengths of
//! 16K or more (the fragmented form) are not decoded. We refuse them too.
//!
//! The IFP contents (T.30 indicators and data) are opaque here: the relay forwards them.

use core::fmt;

/// Why a UDPTL datagram was refused. The relay counts it in [`UdptlStats::malformed`] and drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdptlError {
    /// A length or field runs past the end of the datagram.
    Truncated,
    /// A length determinant in the fragmented form (≥ 16K), which T.38 datagrams never need.
    FragmentedLength,
    /// The datagram exceeds the negotiated `T38FaxMaxDatagram`.
    TooLarge,
    /// More secondary IFPs or FEC entries than configured.
    TooManyEntries,
    /// `fec-npackets` is not a 1..=4-octet non-negative integer.
    FecNpackets,
    /// Bytes after the error-recovery field.
    TrailingBytes,
    /// The buffer given to `emit` is too small.
    BufferTooSmall,
}

impl fmt::Display for UdptlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdptlError::Truncated => "truncated UDPTL packet",
            UdptlError::FragmentedLength => "fragmented PER length in UDPTL packet",
            UdptlError::TooLarge => "UDPTL packet larger than T38FaxMaxDatagram",
            UdptlError::TooManyEntries => "too many UDPTL secondary or FEC entries",
            UdptlError::FecNpackets => "malformed UDPTL fec-npackets",
            UdptlError::TrailingBytes => "bytes after the UDPTL packet",
            UdptlError::BufferTooSmall => "buffer too small for UDPTL packet",
        })
    }
}

impl std::error::Error for UdptlError {}

/// Limits for one flow (from SDP: `T38FaxMaxDatagram`, `T38FaxUdpEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdptlConfig {
    /// Largest datagram accepted.
    pub max_datagram: usize,
    /// Most secondary IFPs or FEC entries accepted in one packet.
    pub max_entries: usize,
}

impl Default for UdptlConfig {
    fn default() -> Self {
        // Asterisk's local maximum datagram is 1400 octets; its receive side keeps 16 packets of
        // history, so more redundancy than that is useless.
        UdptlConfig {
            max_datagram: 1400,
            max_entries: 16,
        }
    }
}

/// Reads an ALIGNED PER unconstrained length determinant (X.691 §10.9.3.5–7).
fn read_length(b: &[u8], at: &mut usize) -> Result<usize, UdptlError> {
    let first = *b.get(*at).ok_or(UdptlError::Truncated)?;
    if first & 0x80 == 0 {
        *at += 1;
        return Ok(usize::from(first));
    }
    if first & 0x40 == 0 {
        let second = *b.get(*at + 1).ok_or(UdptlError::Truncated)?;
        *at += 2;
        return Ok(usize::from(first & 0x3f) << 8 | usize::from(second));
    }
    Err(UdptlError::FragmentedLength)
}

/// Writes a length determinant; `value` must be below 16384.
fn write_length(out: &mut [u8], at: &mut usize, value: usize) -> Result<(), UdptlError> {
    if value < 0x80 {
        *out.get_mut(*at).ok_or(UdptlError::BufferTooSmall)? = value as u8;
        *at += 1;
    } else if value < 0x4000 {
        let o = out
            .get_mut(*at..*at + 2)
            .ok_or(UdptlError::BufferTooSmall)?;
        o[0] = 0x80 | (value >> 8) as u8;
        o[1] = value as u8;
        *at += 2;
    } else {
        return Err(UdptlError::TooLarge);
    }
    Ok(())
}

fn read_octets<'a>(b: &'a [u8], at: &mut usize) -> Result<&'a [u8], UdptlError> {
    let n = read_length(b, at)?;
    let v = b.get(*at..*at + n).ok_or(UdptlError::Truncated)?;
    *at += n;
    Ok(v)
}

fn write_octets(out: &mut [u8], at: &mut usize, v: &[u8]) -> Result<(), UdptlError> {
    write_length(out, at, v.len())?;
    out.get_mut(*at..*at + v.len())
        .ok_or(UdptlError::BufferTooSmall)?
        .copy_from_slice(v);
    *at += v.len();
    Ok(())
}

/// An open type: like octets, but an empty value is sent as one zero octet (X.691 §10.1, as
/// Asterisk does).
fn write_open_type(out: &mut [u8], at: &mut usize, v: &[u8]) -> Result<(), UdptlError> {
    write_octets(out, at, if v.is_empty() { &[0] } else { v })
}

/// A list of IFPs or FEC entries: either validated wire bytes (after parse) or caller slices
/// (to emit). Iterating never fails.
#[derive(Debug, Clone, Copy)]
pub enum IfpList<'a> {
    /// `count` length-prefixed items in `bytes` (validated by [`UdptlRepr::parse`]).
    Encoded {
        /// Number of items.
        count: usize,
        /// The encoded items.
        bytes: &'a [u8],
    },
    /// Items given by the caller.
    Items(&'a [&'a [u8]]),
}

impl<'a> IfpList<'a> {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            IfpList::Encoded { count, .. } => *count,
            IfpList::Items(v) => v.len(),
        }
    }

    /// True when there is no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items, in wire order.
    pub fn iter(&self) -> IfpIter<'a> {
        match *self {
            IfpList::Encoded { count, bytes } => IfpIter {
                list: *self,
                left: count,
                at: 0,
                bytes,
            },
            IfpList::Items(v) => IfpIter {
                list: *self,
                left: v.len(),
                at: 0,
                bytes: &[],
            },
        }
    }
}

impl PartialEq for IfpList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for IfpList<'_> {}

/// Iterator over an [`IfpList`].
#[derive(Debug, Clone)]
pub struct IfpIter<'a> {
    list: IfpList<'a>,
    left: usize,
    at: usize,
    bytes: &'a [u8],
}

impl<'a> Iterator for IfpIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match self.list {
            IfpList::Items(v) => {
                let i = v.len() - self.left - 1;
                v.get(i).copied()
            }
            // Validated at parse time, so this cannot fail; stop quietly if it somehow does.
            IfpList::Encoded { .. } => read_octets(self.bytes, &mut self.at).ok(),
        }
    }
}

/// The error-recovery field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorRecovery<'a> {
    /// `secondary-ifp-packets`: earlier IFPs, newest first (item *k* is `seq - 1 - k`).
    Redundancy(IfpList<'a>),
    /// `fec-info`.
    Fec {
        /// `fec-npackets`: the span, how many packets each FEC entry covers.
        fec_npackets: u32,
        /// `fec-data`: the XOR entries.
        fec_data: IfpList<'a>,
    },
}

/// One UDPTL packet as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdptlRepr<'a> {
    /// `seq-number`.
    pub seq_number: u16,
    /// `primary-ifp-packet`: the IFP, opaque.
    pub primary_ifp: &'a [u8],
    /// `error-recovery`.
    pub error_recovery: ErrorRecovery<'a>,
}

impl<'a> UdptlRepr<'a> {
    /// Parses and validates a whole datagram against `cfg`.
    ///
    /// # Errors
    /// See [`UdptlError`].
    pub fn parse(b: &'a [u8], cfg: &UdptlConfig) -> Result<Self, UdptlError> {
        if b.len() > cfg.max_datagram {
            return Err(UdptlError::TooLarge);
        }
        let seq = b.get(..2).ok_or(UdptlError::Truncated)?;
        let seq_number = u16::from_be_bytes([seq[0], seq[1]]);
        let mut at = 2;
        let primary_ifp = read_octets(b, &mut at)?;
        let choice = *b.get(at).ok_or(UdptlError::Truncated)?;
        at += 1;
        let list = |at: &mut usize| -> Result<IfpList<'a>, UdptlError> {
            let count = read_length(b, at)?;
            if count > cfg.max_entries {
                return Err(UdptlError::TooManyEntries);
            }
            let start = *at;
            for _ in 0..count {
                read_octets(b, at)?;
            }
            Ok(IfpList::Encoded {
                count,
                bytes: &b[start..*at],
            })
        };
        let error_recovery = if choice & 0x80 == 0 {
            ErrorRecovery::Redundancy(list(&mut at)?)
        } else {
            // fec-npackets: unconstrained INTEGER = length octet + two's-complement value.
            let n = read_octets(b, &mut at)?;
            if n.is_empty() || n.len() > 4 || n[0] & 0x80 != 0 {
                return Err(UdptlError::FecNpackets);
            }
            let fec_npackets = n.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x));
            ErrorRecovery::Fec {
                fec_npackets,
                fec_data: list(&mut at)?,
            }
        };
        if at != b.len() {
            return Err(UdptlError::TrailingBytes);
        }
        Ok(UdptlRepr {
            seq_number,
            primary_ifp,
            error_recovery,
        })
    }

    /// Writes the packet into `out`; returns its length.
    ///
    /// # Errors
    /// [`UdptlError::BufferTooSmall`]; [`UdptlError::TooLarge`] for an item of 16K or more.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, UdptlError> {
        let seq = out.get_mut(..2).ok_or(UdptlError::BufferTooSmall)?;
        seq.copy_from_slice(&self.seq_number.to_be_bytes());
        let mut at = 2;
        write_open_type(out, &mut at, self.primary_ifp)?;
        match self.error_recovery {
            ErrorRecovery::Redundancy(list) => {
                *out.get_mut(at).ok_or(UdptlError::BufferTooSmall)? = 0x00;
                at += 1;
                write_length(out, &mut at, list.len())?;
                for ifp in list.iter() {
                    write_open_type(out, &mut at, ifp)?;
                }
            }
            ErrorRecovery::Fec {
                fec_npackets,
                fec_data,
            } => {
                *out.get_mut(at).ok_or(UdptlError::BufferTooSmall)? = 0x80;
                at += 1;
                // Minimal two's-complement octets of a non-negative integer.
                let v = fec_npackets.to_be_bytes();
                let mut first = v.iter().position(|&x| x != 0).unwrap_or(3);
                if v[first] & 0x80 != 0 {
                    first -= 1;
                }
                write_octets(out, &mut at, &v[first..])?;
                write_length(out, &mut at, fec_data.len())?;
                for e in fec_data.iter() {
                    write_octets(out, &mut at, e)?;
                }
            }
        }
        Ok(at)
    }

    /// Bytes [`UdptlRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        fn len_len(n: usize) -> usize {
            if n < 0x80 {
                1
            } else {
                2
            }
        }
        fn open(v: &[u8]) -> usize {
            let n = v.len().max(1);
            len_len(n) + n
        }
        let mut n = 2 + open(self.primary_ifp) + 1;
        match self.error_recovery {
            ErrorRecovery::Redundancy(l) => {
                n += len_len(l.len()) + l.iter().map(open).sum::<usize>()
            }
            ErrorRecovery::Fec {
                fec_npackets,
                fec_data,
            } => {
                let v = fec_npackets.to_be_bytes();
                let mut first = v.iter().position(|&x| x != 0).unwrap_or(3);
                if v[first] & 0x80 != 0 {
                    first -= 1;
                }
                n += 1
                    + (4 - first)
                    + len_len(fec_data.len())
                    + fec_data
                        .iter()
                        .map(|e| len_len(e.len()) + e.len())
                        .sum::<usize>();
            }
        }
        n
    }
}

// ---------------------------------------------------------------------------------------------
// Per-flow accounting
// ---------------------------------------------------------------------------------------------

/// Counters for one UDPTL flow direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdptlStats {
    /// Well-formed datagrams received (duplicates included).
    pub received: u64,
    /// Sequence numbers skipped over when a gap was seen.
    pub lost: u64,
    /// Of those, filled later from another packet's redundancy or FEC.
    pub recovered: u64,
    /// Of those, arriving late (reordered), not lost after all.
    pub late: u64,
    /// Datagrams whose sequence number was already seen (or recovered).
    pub duplicates: u64,
    /// Jumps too large to be loss (a sender restart): tracking restarts, nothing counted lost.
    pub resyncs: u64,
    /// Malformed datagrams dropped.
    pub malformed: u64,
}

impl UdptlStats {
    /// Sequence numbers lost and never recovered (so far).
    pub fn unrecovered(&self) -> u64 {
        self.lost.saturating_sub(self.recovered + self.late)
    }
}

/// How a well-formed datagram fits the flow's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// In order or ahead (a gap before it counts as lost).
    New,
    /// Older than the highest seen, and missing until now.
    Late,
    /// Seen (or recovered) before.
    Duplicate,
}

/// Jumps larger than this are a sender restart, not loss.
const MAX_GAP: u16 = 1024;

/// Tracks one direction of a UDPTL flow: parses each datagram and counts loss, recovery and
/// duplicates over a 64-packet window. No allocation.
#[derive(Debug, Clone, Default)]
pub struct UdptlFlow {
    cfg: UdptlConfig,
    stats: UdptlStats,
    highest: Option<u16>,
    /// Bit *i* set: `highest - i` was received or recovered.
    window: u64,
}

impl UdptlFlow {
    /// A flow with the given limits.
    pub fn new(cfg: UdptlConfig) -> Self {
        UdptlFlow {
            cfg,
            stats: UdptlStats::default(),
            highest: None,
            window: 0,
        }
    }

    /// The counters, kept since construction.
    pub fn stats(&self) -> &UdptlStats {
        &self.stats
    }

    /// Parses one datagram and updates the counters. The relay forwards `Ok` datagrams (it may
    /// choose to drop duplicates) and drops `Err` ones.
    ///
    /// # Errors
    /// A malformed datagram, counted in [`UdptlStats::malformed`].
    pub fn on_datagram<'a>(&mut self, b: &'a [u8]) -> Result<(UdptlRepr<'a>, Arrival), UdptlError> {
        let r = match UdptlRepr::parse(b, &self.cfg) {
            Ok(r) => r,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        self.stats.received += 1;
        let seq = r.seq_number;
        let arrival = match self.highest {
            None => {
                // Everything before the first packet counts as seen: it was never ours to lose.
                self.highest = Some(seq);
                self.window = u64::MAX;
                Arrival::New
            }
            Some(h) => {
                let d = seq.wrapping_sub(h);
                if d == 0 {
                    Arrival::Duplicate
                } else if d < 0x8000 {
                    if d > MAX_GAP {
                        self.stats.resyncs += 1;
                        self.window = u64::MAX;
                    } else {
                        self.stats.lost += u64::from(d - 1);
                        self.window = if d >= 64 { 1 } else { (self.window << d) | 1 };
                    }
                    self.highest = Some(seq);
                    Arrival::New
                } else {
                    let age = h.wrapping_sub(seq);
                    if age < 64 {
                        let bit = 1u64 << age;
                        if self.window & bit != 0 {
                            Arrival::Duplicate
                        } else {
                            self.window |= bit;
                            self.stats.late += 1;
                            Arrival::Late
                        }
                    } else {
                        // Beyond the window: too old to tell; treat as a duplicate.
                        Arrival::Duplicate
                    }
                }
            }
        };
        if arrival == Arrival::Duplicate {
            self.stats.duplicates += 1;
        }
        self.recover(&r);
        Ok((r, arrival))
    }

    /// Whether `s` is inside the window; its bit mask if so.
    fn bit(&self, s: u16) -> Option<u64> {
        let age = self.highest?.wrapping_sub(s);
        (age < 64).then(|| 1u64 << age)
    }

    fn recover(&mut self, r: &UdptlRepr<'_>) {
        let seq = r.seq_number;
        match r.error_recovery {
            ErrorRecovery::Redundancy(list) => {
                for (k, ifp) in list.iter().enumerate() {
                    // Zero-length secondaries carry nothing (Asterisk ignores them too); the
                    // one-zero-octet form is an empty open type.
                    if ifp.is_empty() || ifp == [0] {
                        continue;
                    }
                    let s = seq.wrapping_sub(1).wrapping_sub(k as u16);
                    if let Some(bit) = self.bit(s) {
                        if self.window & bit == 0 {
                            self.window |= bit;
                            self.stats.recovered += 1;
                        }
                    }
                }
            }
            ErrorRecovery::Fec {
                fec_npackets,
                fec_data,
            } => {
                let entries = fec_data.len() as u16;
                let span = fec_npackets.min(64) as u16;
                if entries == 0 || span == 0 {
                    return;
                }
                // Entry m covers seq + m - entries*span + entries*j, j in 0..span. It repairs
                // its packet set when exactly one of them is missing.
                for m in 0..entries {
                    let base = seq.wrapping_add(m).wrapping_sub(entries.wrapping_mul(span));
                    let mut missing = None;
                    let mut n_missing = 0;
                    for j in 0..span {
                        let s = base.wrapping_add(entries.wrapping_mul(j));
                        match self.bit(s) {
                            Some(bit) if self.window & bit == 0 => {
                                n_missing += 1;
                                missing = Some(bit);
                            }
                            Some(_) => {}
                            None => n_missing += 2, // out of the window: cannot tell
                        }
                    }
                    if let (1, Some(bit)) = (n_missing, missing) {
                        self.window |= bit;
                        self.stats.recovered += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn redundant<'a>(seq: u16, primary: &'a [u8], sec: &'a [&'a [u8]]) -> Vec<u8> {
        let r = UdptlRepr {
            seq_number: seq,
            primary_ifp: primary,
            error_recovery: ErrorRecovery::Redundancy(IfpList::Items(sec)),
        };
        let mut out = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut out).unwrap(), out.len());
        out
    }

    // ---- encoding ----

    #[test]
    fn redundancy_packet_layout_and_round_trip() {
        // A CED indicator (T.38 IFP 0x04), redundancy with two earlier IFPs.
        let d = redundant(0x0102, &[0x04], &[&[0x02], &[0x00]]);
        assert_eq!(
            d,
            [0x01, 0x02, 0x01, 0x04, 0x00, 0x02, 0x01, 0x02, 0x01, 0x00]
        );
        let r = UdptlRepr::parse(&d, &UdptlConfig::default()).unwrap();
        assert_eq!(r.seq_number, 0x0102);
        assert_eq!(r.primary_ifp, [0x04]);
        let ErrorRecovery::Redundancy(l) = r.error_recovery else {
            panic!()
        };
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&[0x02][..], &[0x00][..]]);
        assert_eq!(
            r,
            UdptlRepr {
                seq_number: 0x0102,
                primary_ifp: &[4],
                error_recovery: ErrorRecovery::Redundancy(IfpList::Items(&[&[2], &[0]]))
            }
        );
    }

    #[test]
    fn fec_packet_layout_and_long_lengths() {
        let big = vec![0xaa; 300];
        let entries: [&[u8]; 2] = [&big, &[1, 2, 3]];
        let r = UdptlRepr {
            seq_number: 7,
            primary_ifp: &big,
            error_recovery: ErrorRecovery::Fec {
                fec_npackets: 3,
                fec_data: IfpList::Items(&entries),
            },
        };
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out).unwrap();
        assert_eq!(
            &out[..4],
            &[0x00, 0x07, 0x81, 0x2c],
            "300 = two-octet length 0x812c"
        );
        assert_eq!(&out[304..309], &[0x80, 0x01, 0x03, 0x02, 0x81]);
        let p = UdptlRepr::parse(
            &out,
            &UdptlConfig {
                max_datagram: 2000,
                max_entries: 5,
            },
        )
        .unwrap();
        assert_eq!(p, r);
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        let cfg = UdptlConfig::default();
        let good = redundant(1, &[0x04], &[&[0x02]]);
        for cut in 0..good.len() {
            assert!(UdptlRepr::parse(&good[..cut], &cfg).is_err(), "cut {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            UdptlRepr::parse(&trailing, &cfg),
            Err(UdptlError::TrailingBytes)
        );
        assert_eq!(
            UdptlRepr::parse(&[0, 1, 0xc1, 0], &cfg),
            Err(UdptlError::FragmentedLength)
        );
        assert_eq!(
            UdptlRepr::parse(&[0, 1, 1, 4, 0x80, 0, 0], &cfg),
            Err(UdptlError::FecNpackets)
        );
        assert_eq!(
            UdptlRepr::parse(&[0, 1, 1, 4, 0x80, 1, 0x80, 0], &cfg),
            Err(UdptlError::FecNpackets)
        );
        let many: Vec<&[u8]> = vec![&[1]; 17];
        let d = redundant(1, &[4], &many);
        assert_eq!(UdptlRepr::parse(&d, &cfg), Err(UdptlError::TooManyEntries));
        assert_eq!(
            UdptlRepr::parse(&vec![0; 1401], &cfg),
            Err(UdptlError::TooLarge)
        );
        let mut flow = UdptlFlow::new(cfg);
        assert!(flow.on_datagram(&trailing).is_err());
        assert_eq!(flow.stats().malformed, 1);
    }

    // ---- flow accounting ----

    #[test]
    fn loss_recovery_by_redundancy_and_duplicates() {
        let mut f = UdptlFlow::new(UdptlConfig::default());
        let ifp = |s: u16| vec![(s & 0xff) as u8 | 1];
        let pkt = |s: u16, k: u16| {
            let sec: Vec<Vec<u8>> = (1..=k).map(|i| ifp(s.wrapping_sub(i))).collect();
            let refs: Vec<&[u8]> = sec.iter().map(|v| v.as_slice()).collect();
            redundant(s, &ifp(s), &refs)
        };
        for s in [65530u16, 65531] {
            assert_eq!(f.on_datagram(&pkt(s, 2)).unwrap().1, Arrival::New);
        }
        // 65532 and 65533 lost; 65534 carries both as secondaries.
        f.on_datagram(&pkt(65534, 2)).unwrap();
        assert_eq!((f.stats().lost, f.stats().recovered), (2, 2));
        // 65535, 0 lost; 1 carries only one secondary (0): 65535 stays lost.
        f.on_datagram(&pkt(1, 1)).unwrap();
        assert_eq!(
            (f.stats().lost, f.stats().recovered, f.stats().unrecovered()),
            (4, 3, 1)
        );
        // 65535 arrives late; 1 again is a duplicate; 0 again (recovered before) is a duplicate.
        assert_eq!(f.on_datagram(&pkt(65535, 0)).unwrap().1, Arrival::Late);
        assert_eq!(f.on_datagram(&pkt(1, 1)).unwrap().1, Arrival::Duplicate);
        assert_eq!(f.on_datagram(&pkt(0, 0)).unwrap().1, Arrival::Duplicate);
        let s = f.stats();
        assert_eq!(
            (
                s.received,
                s.lost,
                s.recovered,
                s.late,
                s.duplicates,
                s.unrecovered()
            ),
            (7, 4, 3, 1, 2, 0)
        );
        // A restart far away is a resync, not 30000 losses.
        f.on_datagram(&pkt(30000, 0)).unwrap();
        assert_eq!((f.stats().lost, f.stats().resyncs), (4, 1));
    }

    #[test]
    fn first_packet_secondaries_recover_nothing() {
        let mut f = UdptlFlow::new(UdptlConfig::default());
        f.on_datagram(&redundant(10, &[4], &[&[2], &[2]])).unwrap();
        assert_eq!(f.stats().recovered, 0);
    }

    #[test]
    fn loss_recovery_by_fec() {
        // entries = 2, span = 3: entry m of packet s covers s+m-6, s+m-4, s+m-2.
        let mut f = UdptlFlow::new(UdptlConfig::default());
        let fec = |s: u16| {
            let e: [&[u8]; 2] = [&[9], &[9]];
            let r = UdptlRepr {
                seq_number: s,
                primary_ifp: &[4],
                error_recovery: ErrorRecovery::Fec {
                    fec_npackets: 3,
                    fec_data: IfpList::Items(&e),
                },
            };
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut out).unwrap();
            out
        };
        for s in [100u16, 101, 102, 103] {
            f.on_datagram(&fec(s)).unwrap();
        }
        // 104 lost; 105's entry 1 covers 100, 102, 104: exactly one missing, repaired.
        f.on_datagram(&fec(105)).unwrap();
        assert_eq!((f.stats().lost, f.stats().recovered), (1, 1));
        // A burst of 6 (104..=109) on a fresh flow: 113's entry 1 (108, 110, 112) and 114's
        // entry 1 (109, 111, 113) each miss exactly one; 104..=107 stay lost.
        let mut f = UdptlFlow::new(UdptlConfig::default());
        for s in (100u16..=103).chain(110..=112) {
            f.on_datagram(&fec(s)).unwrap();
        }
        assert_eq!((f.stats().lost, f.stats().recovered), (6, 0));
        f.on_datagram(&fec(113)).unwrap();
        assert_eq!(f.stats().recovered, 1);
        for s in 114u16..=116 {
            f.on_datagram(&fec(s)).unwrap();
        }
        assert_eq!(
            (f.stats().lost, f.stats().recovered, f.stats().unrecovered()),
            (6, 2, 4)
        );
    }

    proptest! {
        #[test]
        fn prop_round_trip(seq in any::<u16>(), primary in proptest::collection::vec(any::<u8>(), 1..300),
                           items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 0..5),
                           fec in any::<bool>(), span in 0u32..100_000) {
            let refs: Vec<&[u8]> = items.iter().map(|v| v.as_slice()).collect();
            let er = if fec { ErrorRecovery::Fec { fec_npackets: span, fec_data: IfpList::Items(&refs) } } else { ErrorRecovery::Redundancy(IfpList::Items(&refs)) };
            let r = UdptlRepr { seq_number: seq, primary_ifp: &primary, error_recovery: er };
            let mut out = vec![0u8; r.buffer_len()];
            prop_assert_eq!(r.emit(&mut out).unwrap(), out.len());
            let cfg = UdptlConfig { max_datagram: 4096, max_entries: 16 };
            prop_assert_eq!(UdptlRepr::parse(&out, &cfg).unwrap(), r);
            let mut small = vec![0u8; out.len() - 1];
            prop_assert_eq!(r.emit(&mut small), Err(UdptlError::BufferTooSmall));
        }

        #[test]
        fn prop_random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut f = UdptlFlow::new(UdptlConfig::default());
            let _ = f.on_datagram(&data);
            if let Ok(r) = UdptlRepr::parse(&data, &UdptlConfig::default()) {
                // Re-encoding keeps the value (unless an IFP is empty: sent as one zero octet).
                let empty = r.primary_ifp.is_empty()
                    || matches!(r.error_recovery, ErrorRecovery::Redundancy(l) if l.iter().any(<[u8]>::is_empty));
                if !empty {
                    let mut out = vec![0u8; r.buffer_len()];
                    let n = r.emit(&mut out).unwrap();
                    prop_assert_eq!(UdptlRepr::parse(&out[..n], &UdptlConfig::default()), Ok(r));
                }
                match r.error_recovery {
                    ErrorRecovery::Redundancy(l) | ErrorRecovery::Fec { fec_data: l, .. } => { let _ = l.iter().count(); }
                }
            }
        }

        #[test]
        fn prop_accounting_is_consistent(seqs in proptest::collection::vec(0u16..200, 1..300), red in 0u16..4) {
            // Whatever the order, lost = recovered + late + unrecovered and nothing panics.
            let mut f = UdptlFlow::new(UdptlConfig::default());
            for s in seqs {
                let sec: Vec<Vec<u8>> = (1..=red).map(|i| vec![(i as u8) | 1]).collect();
                let refs: Vec<&[u8]> = sec.iter().map(|v| v.as_slice()).collect();
                f.on_datagram(&redundant(s, &[4], &refs)).unwrap();
            }
            let st = f.stats();
            prop_assert!(st.recovered + st.late <= st.lost + 64 * (st.resyncs + 1));
            prop_assert_eq!(st.malformed, 0);
        }
    }
}
