//! Framing of back-to-back BFCP messages on a TCP or TLS byte stream (RFC 8855 §6.2: no
//! fragmentation; each message is delimited by its Payload Length).

use super::{be16, BfcpError, BfcpStats, Packet, Repr, F_FLAG, HEADER_LEN};

/// Where a framed message's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// Entirely inside the fed slice at `start..end`: forward in place.
    InSlice {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
    /// Assembled in the framer's buffer ([`StreamFeed::buffered`]): it straddled slices.
    Buffered,
}

/// Frames back-to-back BFCP messages on a TCP (or TLS) byte stream (RFC 8855 §6.2: no
/// fragmentation, messages delimited by their Payload Length).
///
/// A message that lies wholly in one slice is reported in place; only a message split across
/// slices is copied (into a buffer of `max_message` bytes allocated once).
#[derive(Debug)]
pub struct StreamFramer {
    buf: Box<[u8]>,
    have: usize,
    /// `buf[..have]` holds a message already handed out; the next call starts afresh.
    done: bool,
    failed: Option<BfcpError>,
    stats: BfcpStats,
}

impl StreamFramer {
    /// A framer refusing messages larger than `max_message` bytes (at least the 12-octet header).
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            buf: vec![0; max_message.max(HEADER_LEN)].into_boxed_slice(),
            have: 0,
            done: false,
            failed: None,
            stats: BfcpStats::default(),
        }
    }

    /// Messages this framer accepted, by primitive, and the malformed ones it dropped.
    pub fn stats(&self) -> &BfcpStats {
        &self.stats
    }

    /// Starts framing the next slice; drain it with [`StreamFeed::next_message`].
    pub fn feed<'p, 'd>(&'p mut self, data: &'d [u8]) -> StreamFeed<'p, 'd> {
        StreamFeed {
            framer: self,
            data,
            pos: 0,
        }
    }

    fn need(&self, header: &[u8]) -> Result<usize, BfcpError> {
        // On a reliable transport the version is 1 and F is never set (RFC 8855 §5.1); anything
        // else means we lost sync, so it is fatal for the stream.
        if header[0] >> 5 != 1 {
            return Err(BfcpError::Version);
        }
        if header[0] & F_FLAG != 0 {
            return Err(BfcpError::Fragment);
        }
        let n = HEADER_LEN + usize::from(be16(&header[2..4])) * 4;
        if n > self.buf.len() {
            return Err(BfcpError::TooLarge);
        }
        Ok(n)
    }
}

/// One slice being framed.
#[derive(Debug)]
pub struct StreamFeed<'p, 'd> {
    framer: &'p mut StreamFramer,
    data: &'d [u8],
    pos: usize,
}

impl StreamFeed<'_, '_> {
    /// True once a framing error failed the stream (after an `Err` from
    /// [`StreamFeed::next_message`]: fatal when true, a dropped message when false).
    pub fn failed(&self) -> bool {
        self.framer.failed.is_some()
    }

    /// The message assembled across slices, after [`Framed::Buffered`].
    pub fn buffered(&self) -> &[u8] {
        &self.framer.buf[..self.framer.have]
    }

    /// The bytes of a framed message.
    pub fn bytes(&self, f: Framed) -> &[u8] {
        match f {
            Framed::InSlice { start, end } => &self.data[start..end],
            Framed::Buffered => self.buffered(),
        }
    }

    /// The next complete message, `Ok(None)` when the slice is used up. Each message's content
    /// is validated ([`Repr::parse`]); a message with bad attributes is reported as
    /// `Err(Attribute)` and counted but the stream stays usable (its length was sound).
    ///
    /// # Errors
    /// Framing errors (bad version, F set, too large) are fatal: the framer stays failed and the
    /// relay releases the leg.
    pub fn next_message(&mut self) -> Result<Option<Framed>, BfcpError> {
        if let Some(e) = self.framer.failed {
            return Err(e);
        }
        if self.framer.done {
            self.framer.done = false;
            self.framer.have = 0;
        }
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let fr = &mut *self.framer;
        if fr.have == 0 {
            let rest = &self.data[self.pos..];
            let n = if rest.len() >= HEADER_LEN {
                match fr.need(&rest[..HEADER_LEN]) {
                    Ok(n) => n,
                    Err(e) => return Err(self.fail(e)),
                }
            } else {
                usize::MAX
            };
            if rest.len() >= n {
                let f = Framed::InSlice {
                    start: self.pos,
                    end: self.pos + n,
                };
                self.pos += n;
                return self.check(f).map(Some);
            }
            // Straddles the end of the slice: keep what we have (n <= buffer size, or the header
            // is still incomplete and fits anyway).
            fr.buf[..rest.len()].copy_from_slice(rest);
            fr.have = rest.len();
            self.pos = self.data.len();
            return Ok(None);
        }
        // Continue a message begun in an earlier slice: header first, then the rest.
        if fr.have < HEADER_LEN {
            let take = (HEADER_LEN - fr.have).min(self.data.len() - self.pos);
            fr.buf[fr.have..fr.have + take].copy_from_slice(&self.data[self.pos..self.pos + take]);
            fr.have += take;
            self.pos += take;
            if fr.have < HEADER_LEN {
                return Ok(None);
            }
        }
        let want = match fr.need(&fr.buf[..HEADER_LEN]) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(e)),
        };
        let take = (want - fr.have).min(self.data.len() - self.pos);
        fr.buf[fr.have..fr.have + take].copy_from_slice(&self.data[self.pos..self.pos + take]);
        fr.have += take;
        self.pos += take;
        if fr.have < want {
            return Ok(None);
        }
        fr.done = true;
        self.check(Framed::Buffered).map(Some)
    }

    fn check(&mut self, f: Framed) -> Result<Framed, BfcpError> {
        let bytes = match f {
            Framed::InSlice { start, end } => &self.data[start..end],
            Framed::Buffered => &self.framer.buf[..self.framer.have],
        };
        let p = Packet::new_unchecked(bytes);
        match Repr::parse(&p) {
            Ok(r) => {
                self.framer.stats.count(r.primitive);
                Ok(f)
            }
            Err(e) => {
                self.framer.stats.malformed += 1;
                Err(e)
            }
        }
    }

    fn fail(&mut self, e: BfcpError) -> BfcpError {
        self.framer.stats.malformed += 1;
        self.framer.failed = Some(e);
        e
    }
}
