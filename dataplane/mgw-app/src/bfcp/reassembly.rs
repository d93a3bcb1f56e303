//! UDP → TCP: reassembly of fragmented version-2 datagrams (RFC 8855 §5.1) in memory fixed at
//! construction, with a per-message timeout and eviction of the oldest message.

use core::time::Duration;

use mgw_core::time::Instant;

use super::{BfcpError, BfcpStats, Packet, Repr, HEADER_LEN};

/// Reassembly limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Messages reassembled at once; the oldest is evicted (and counted) when a new one starts.
    pub slots: usize,
    /// Largest message accepted, header included.
    pub max_message: usize,
    /// A message not complete this long after its first fragment is dropped.
    pub timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        // RFC 8855 §6.2 retransmission timer T1 is 500 ms with up to 3 retransmissions; a message
        // whose fragments are not all in by ~4 s will be retransmitted whole anyway.
        ReassemblyConfig {
            slots: 4,
            max_message: 16 * 1024,
            timeout: Duration::from_secs(4),
        }
    }
}

#[derive(Debug)]
struct Slot {
    active: bool,
    key: (u32, u16, u16, u8, bool),
    total_units: usize,
    received_units: usize,
    deadline: Instant,
    bitmap: Box<[u64]>,
    buf: Box<[u8]>,
}

/// What [`Reassembler::push`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// An unfragmented, valid message: forward the datagram itself.
    Whole,
    /// A fragment was stored; the message is not complete yet.
    Pending,
    /// The message in [`Reassembler::completed`]`(slot)` is complete and valid (version 2, F
    /// clear). Read it before the next `push`.
    Complete(usize),
}

/// Reassembles fragmented BFCP datagrams (one direction of one UDP leg). Memory is fixed at
/// construction: `slots × (max_message + max_message/32)` bytes.
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    slots: Vec<Slot>,
    stats: BfcpStats,
}

impl Reassembler {
    /// Allocates all slots now (slow path).
    pub fn new(cfg: ReassemblyConfig) -> Self {
        let max = cfg.max_message.max(HEADER_LEN + 4);
        let units = (max - HEADER_LEN).div_ceil(4);
        let slots = (0..cfg.slots.max(1))
            .map(|_| Slot {
                active: false,
                key: (0, 0, 0, 0, false),
                total_units: 0,
                received_units: 0,
                deadline: Instant::FAR_FUTURE,
                bitmap: vec![0u64; units.div_ceil(64)].into_boxed_slice(),
                buf: vec![0u8; HEADER_LEN + units * 4].into_boxed_slice(),
            })
            .collect();
        Reassembler {
            cfg: ReassemblyConfig {
                max_message: max,
                ..cfg
            },
            slots,
            stats: BfcpStats::default(),
        }
    }

    /// Whole messages, fragments, completed and abandoned reassemblies, and malformed datagrams.
    pub fn stats(&self) -> &BfcpStats {
        &self.stats
    }

    /// The message completed in `slot` (see [`Pushed::Complete`]).
    pub fn completed(&self, slot: usize) -> &[u8] {
        match self.slots.get(slot) {
            Some(s) => &s.buf[..HEADER_LEN + s.total_units * 4],
            None => &[],
        }
    }

    /// The earliest reassembly deadline, or [`Instant::FAR_FUTURE`].
    pub fn poll_timeout(&self) -> Instant {
        self.slots
            .iter()
            .filter(|s| s.active)
            .map(|s| s.deadline)
            .min()
            .unwrap_or(Instant::FAR_FUTURE)
    }

    /// Drops reassemblies whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for s in &mut self.slots {
            if s.active && s.deadline <= now {
                s.active = false;
                self.stats.reassembly_dropped += 1;
            }
        }
    }

    /// Takes one received datagram.
    ///
    /// # Errors
    /// The datagram is malformed, inconsistent with earlier fragments of its message, or the
    /// message is larger than allowed. It is counted in [`BfcpStats::malformed`] and dropped.
    pub fn push(&mut self, now: Instant, datagram: &[u8]) -> Result<Pushed, BfcpError> {
        self.handle_timeout(now);
        let r = match Packet::new_checked(datagram).and_then(|p| Repr::parse(&p)) {
            Ok(r) => r,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        if r.version != 2 {
            self.stats.malformed += 1;
            return Err(BfcpError::Version);
        }
        let Some((offset, total)) = r.fragment else {
            self.stats.count(r.primitive);
            return Ok(Pushed::Whole);
        };
        self.stats.fragments += 1;
        let total = usize::from(total);
        if HEADER_LEN + total * 4 > self.cfg.max_message {
            self.stats.malformed += 1;
            return Err(BfcpError::TooLarge);
        }
        let key = (
            r.conference_id,
            r.transaction_id,
            r.user_id,
            u8::from(r.primitive),
            r.responder,
        );
        let idx = match self.slots.iter().position(|s| s.active && s.key == key) {
            Some(i) => i,
            None => {
                let i = match self.slots.iter().position(|s| !s.active) {
                    Some(i) => i,
                    None => {
                        // Evict the reassembly closest to its deadline: it is the oldest.
                        let i = (0..self.slots.len())
                            .min_by_key(|&i| self.slots[i].deadline)
                            .unwrap_or(0);
                        self.stats.reassembly_dropped += 1;
                        i
                    }
                };
                let s = &mut self.slots[i];
                s.active = true;
                s.key = key;
                s.total_units = total;
                s.received_units = 0;
                s.deadline = now + self.cfg.timeout;
                s.bitmap.fill(0);
                // The reassembled header: the fragment's, with F cleared and Payload Length the
                // whole message.
                let h = Repr {
                    fragment: None,
                    payload: &[],
                    ..r
                };
                let _ = h.emit(&mut s.buf[..HEADER_LEN]);
                Packet::new_unchecked(&mut s.buf[..HEADER_LEN]).set_payload_length(total as u16);
                i
            }
        };
        let s = &mut self.slots[idx];
        if s.total_units != total {
            self.stats.malformed += 1;
            return Err(BfcpError::Fragment);
        }
        let off = usize::from(offset);
        let units = r.payload.len() / 4;
        s.buf[HEADER_LEN + off * 4..HEADER_LEN + (off + units) * 4].copy_from_slice(r.payload);
        for u in off..off + units {
            let (w, b) = (u / 64, 1u64 << (u % 64));
            if s.bitmap[w] & b == 0 {
                s.bitmap[w] |= b;
                s.received_units += 1;
            }
        }
        if s.received_units < s.total_units {
            return Ok(Pushed::Pending);
        }
        s.active = false;
        let msg = &s.buf[..HEADER_LEN + total * 4];
        match Repr::parse(&Packet::new_unchecked(msg)) {
            Ok(m) => {
                self.stats.count(m.primitive);
                self.stats.reassembled += 1;
                Ok(Pushed::Complete(idx))
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }
}
