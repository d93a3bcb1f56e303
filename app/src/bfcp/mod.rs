//! BFCP (RFC 8855) wire views, a TCP stream framer, and TCP↔UDP interworking
//! (fragmentation under an MTU, bounded reassembly).
//!
//! Common header (RFC 8855 §5.1):
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! | Ver |R|F| Res |  Primitive    |        Payload Length         |
//! |                         Conference ID                         |
//! |         Transaction ID        |            User ID            |
//! | Fragment Offset (if F is set) | Fragment Length (if F is set) |
//! ```
//! Ver is 1 over reliable transports (TCP, TLS) and 2 over unreliable ones (UDP, DTLS). Payload
//! Length counts 4-octet units after the common header. With F set (UDP only), this code reads
//! Payload Length as the length of the whole message, Fragment Offset as the units carried by
//! earlier fragments, and Fragment Length as the units carried by this fragment
//! ([`FRAGMENT_SEMANTICS`] — the one place to change if interop says otherwise).
//!
//! Attributes (RFC 8855 §5.2) are TLVs: a 7-bit Type, the M (mandatory) bit, an 8-bit Length
//! counting the 2 header octets and the value but not the padding, and padding to 4 octets.

use core::fmt;
use core::time::Duration;

use dataplane::time::Instant;

/// How this code reads the fragment fields (RFC 8855 §5.1 **(verify)** against a fragmenting peer).
pub const FRAGMENT_SEMANTICS: &str =
    "payload-length = whole message units; fragment-offset = units before; fragment-length = units in this fragment";

/// Common header length without the fragment fields.
pub const HEADER_LEN: usize = 12;
/// Common header length with the fragment fields (F set).
pub const FRAGMENTED_HEADER_LEN: usize = 16;

mod field {
    use core::ops::Range;
    pub const VER_FLAGS: usize = 0;
    pub const PRIMITIVE: usize = 1;
    pub const PAYLOAD_LENGTH: Range<usize> = 2..4;
    pub const CONFERENCE_ID: Range<usize> = 4..8;
    pub const TRANSACTION_ID: Range<usize> = 8..10;
    pub const USER_ID: Range<usize> = 10..12;
    pub const FRAGMENT_OFFSET: Range<usize> = 12..14;
    pub const FRAGMENT_LENGTH: Range<usize> = 14..16;
}

const R_FLAG: u8 = 0x10;
const F_FLAG: u8 = 0x08;

/// Why BFCP bytes were refused. The relay counts these; malformed datagrams are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BfcpError {
    /// Fewer bytes than the header or a length field needs.
    Truncated,
    /// Version is neither 1 nor 2, or does not fit the transport.
    Version,
    /// F set on a version-1 (reliable transport) message, or fragment fields inconsistent.
    Fragment,
    /// An attribute's length is below 2 or runs past the payload.
    Attribute,
    /// Bytes after the message that a length field does not account for.
    TrailingBytes,
    /// The message exceeds the configured maximum.
    TooLarge,
    /// The buffer given to `emit` is too small.
    BufferTooSmall,
}

impl fmt::Display for BfcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BfcpError::Truncated => "truncated BFCP message",
            BfcpError::Version => "bad BFCP version",
            BfcpError::Fragment => "bad BFCP fragment fields",
            BfcpError::Attribute => "malformed BFCP attribute",
            BfcpError::TrailingBytes => "bytes after the BFCP message",
            BfcpError::TooLarge => "BFCP message too large",
            BfcpError::BufferTooSmall => "buffer too small for BFCP message",
        })
    }
}

impl std::error::Error for BfcpError {}

macro_rules! u8_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v,)*
            /// A value this code does not know: data, not an error.
            Unknown(u8),
        }
        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v { $($n => $name::$v,)* other => $name::Unknown(other) }
            }
        }
        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v { $($name::$v => $n,)* $name::Unknown(other) => other }
            }
        }
    };
}

u8_enum! {
    /// BFCP primitives (RFC 8855 §5.1, Table 1).
    Primitive {
        /// 1
        FloorRequest = 1,
        /// 2
        FloorRelease = 2,
        /// 3
        FloorRequestQuery = 3,
        /// 4
        FloorRequestStatus = 4,
        /// 5
        UserQuery = 5,
        /// 6
        UserStatus = 6,
        /// 7
        FloorQuery = 7,
        /// 8
        FloorStatus = 8,
        /// 9
        ChairAction = 9,
        /// 10
        ChairActionAck = 10,
        /// 11
        Hello = 11,
        /// 12
        HelloAck = 12,
        /// 13
        Error = 13,
        /// 14
        FloorRequestStatusAck = 14,
        /// 15
        FloorStatusAck = 15,
        /// 16
        Goodbye = 16,
        /// 17
        GoodbyeAck = 17,
    }
}

u8_enum! {
    /// BFCP attribute types (RFC 8855 §5.2, Table 2).
    AttributeType {
        /// 1
        BeneficiaryId = 1,
        /// 2
        FloorId = 2,
        /// 3
        FloorRequestId = 3,
        /// 4
        Priority = 4,
        /// 5
        RequestStatus = 5,
        /// 6
        ErrorCode = 6,
        /// 7
        ErrorInfo = 7,
        /// 8
        ParticipantProvidedInfo = 8,
        /// 9
        StatusInfo = 9,
        /// 10
        SupportedAttributes = 10,
        /// 11
        SupportedPrimitives = 11,
        /// 12
        UserDisplayName = 12,
        /// 13
        UserUri = 13,
        /// 14
        BeneficiaryInformation = 14,
        /// 15
        FloorRequestInformation = 15,
        /// 16
        RequestedByInformation = 16,
        /// 17
        FloorRequestStatus = 17,
        /// 18
        OverallRequestStatus = 18,
    }
}

/// A typed view of a BFCP message (common header + payload), smoltcp style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view with no checks; accessors may panic on short input. Prefer [`Packet::new_checked`].
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// A view after [`Packet::check_len`]: no accessor can panic afterwards.
    ///
    /// # Errors
    /// [`BfcpError::Truncated`] when the buffer is shorter than the header (with fragment fields
    /// when F is set) plus the bytes this message carries.
    pub fn new_checked(buffer: T) -> Result<Self, BfcpError> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the header and the payload it announces are present. Bytes after them are
    /// allowed here (a stream holds the next message there); [`Repr::parse`] refuses them.
    ///
    /// # Errors
    /// [`BfcpError::Truncated`].
    pub fn check_len(&self) -> Result<(), BfcpError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(BfcpError::Truncated);
        }
        if b.len() < self.header_len() || b.len() < self.total_len() {
            return Err(BfcpError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Ver: 1 over reliable, 2 over unreliable transports.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_FLAGS] >> 5
    }

    /// R: the message is sent by the transaction responder (RFC 8855 §5.1).
    pub fn responder(&self) -> bool {
        self.buffer.as_ref()[field::VER_FLAGS] & R_FLAG != 0
    }

    /// F: the message is a fragment (unreliable transports only).
    pub fn fragmented(&self) -> bool {
        self.buffer.as_ref()[field::VER_FLAGS] & F_FLAG != 0
    }

    /// The primitive.
    pub fn primitive(&self) -> Primitive {
        Primitive::from(self.buffer.as_ref()[field::PRIMITIVE])
    }

    /// Payload Length, in 4-octet units.
    pub fn payload_length(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PAYLOAD_LENGTH])
    }

    /// Conference ID.
    pub fn conference_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CONFERENCE_ID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Transaction ID.
    pub fn transaction_id(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::TRANSACTION_ID])
    }

    /// User ID.
    pub fn user_id(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::USER_ID])
    }

    /// Fragment Offset (units) when F is set.
    pub fn fragment_offset(&self) -> Option<u16> {
        self.fragmented()
            .then(|| be16(&self.buffer.as_ref()[field::FRAGMENT_OFFSET]))
    }

    /// Fragment Length (units) when F is set.
    pub fn fragment_length(&self) -> Option<u16> {
        self.fragmented()
            .then(|| be16(&self.buffer.as_ref()[field::FRAGMENT_LENGTH]))
    }

    /// 12, or 16 with the fragment fields.
    pub fn header_len(&self) -> usize {
        if self.fragmented() {
            FRAGMENTED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Bytes of payload this datagram/message carries: the fragment for a fragment, else the
    /// whole payload.
    pub fn carried_len(&self) -> usize {
        let units = match self.fragment_length() {
            Some(l) => l,
            None => self.payload_length(),
        };
        usize::from(units) * 4
    }

    /// Header plus carried payload.
    pub fn total_len(&self) -> usize {
        self.header_len() + self.carried_len()
    }

    /// The carried payload (attributes, or a fragment of them).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets Ver, keeping the flags.
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_FLAGS];
        *b = (*b & 0x1f) | (v << 5);
    }

    /// Sets R.
    pub fn set_responder(&mut self, r: bool) {
        set_bit(&mut self.buffer.as_mut()[field::VER_FLAGS], R_FLAG, r);
    }

    /// Sets F. The caller then writes the fragment fields.
    pub fn set_fragmented(&mut self, f: bool) {
        set_bit(&mut self.buffer.as_mut()[field::VER_FLAGS], F_FLAG, f);
    }

    /// Sets the primitive.
    pub fn set_primitive(&mut self, p: Primitive) {
        self.buffer.as_mut()[field::PRIMITIVE] = p.into();
    }

    /// Sets Payload Length (units).
    pub fn set_payload_length(&mut self, units: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LENGTH].copy_from_slice(&units.to_be_bytes());
    }

    /// Sets Conference ID.
    pub fn set_conference_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::CONFERENCE_ID].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets Transaction ID.
    pub fn set_transaction_id(&mut self, v: u16) {
        self.buffer.as_mut()[field::TRANSACTION_ID].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets User ID.
    pub fn set_user_id(&mut self, v: u16) {
        self.buffer.as_mut()[field::USER_ID].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the fragment fields (F must be set for them to be read).
    pub fn set_fragment(&mut self, offset: u16, length: u16) {
        self.buffer.as_mut()[field::FRAGMENT_OFFSET].copy_from_slice(&offset.to_be_bytes());
        self.buffer.as_mut()[field::FRAGMENT_LENGTH].copy_from_slice(&length.to_be_bytes());
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn set_bit(b: &mut u8, mask: u8, on: bool) {
    if on {
        *b |= mask;
    } else {
        *b &= !mask;
    }
}

/// A typed view of one attribute TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Attribute<T> {
    /// A view with no checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Attribute { buffer }
    }

    /// A view whose Length is at least 2 and whose value fits the buffer.
    ///
    /// # Errors
    /// [`BfcpError::Attribute`] / [`BfcpError::Truncated`].
    pub fn new_checked(buffer: T) -> Result<Self, BfcpError> {
        let b = buffer.as_ref();
        if b.len() < 2 {
            return Err(BfcpError::Truncated);
        }
        let len = usize::from(b[1]);
        if len < 2 {
            return Err(BfcpError::Attribute);
        }
        if len > b.len() {
            return Err(BfcpError::Truncated);
        }
        Ok(Attribute { buffer })
    }

    /// Type.
    pub fn kind(&self) -> AttributeType {
        AttributeType::from(self.buffer.as_ref()[0] >> 1)
    }

    /// M: the receiver must understand this attribute.
    pub fn mandatory(&self) -> bool {
        self.buffer.as_ref()[0] & 1 != 0
    }

    /// Length: header plus value, without padding.
    pub fn length(&self) -> usize {
        usize::from(self.buffer.as_ref()[1])
    }

    /// The value (for grouped attributes, nested attributes follow the value's fixed part).
    pub fn value(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.length()]
    }

    /// Length rounded up to 4 octets: where the next attribute starts.
    pub fn padded_len(&self) -> usize {
        (self.length() + 3) & !3
    }
}

/// Iterates over the attributes of a payload. Yields an error (once) and stops on a malformed
/// attribute.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

/// The attributes of `payload`.
pub fn attributes(payload: &[u8]) -> Attributes<'_> {
    Attributes { rest: payload }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<Attribute<&'a [u8]>, BfcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Attribute::new_checked(self.rest) {
            Ok(a) => {
                let padded = a.padded_len();
                if padded > self.rest.len() {
                    // RFC 8855 §5.2: padding is mandatory; the payload is a whole number of units.
                    self.rest = &[];
                    return Some(Err(BfcpError::Attribute));
                }
                let (this, next) = self.rest.split_at(padded);
                self.rest = next;
                Some(Ok(Attribute::new_unchecked(&this[..a.length()])))
            }
            Err(_) => {
                self.rest = &[];
                Some(Err(BfcpError::Attribute))
            }
        }
    }
}

/// One attribute as a value: parse/emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeRepr<'a> {
    /// Type.
    pub kind: AttributeType,
    /// M bit.
    pub mandatory: bool,
    /// Value (at most 253 octets: Length is 8 bits and counts the 2-octet header).
    pub value: &'a [u8],
}

impl<'a> AttributeRepr<'a> {
    /// Parses a checked attribute view.
    pub fn parse(a: &Attribute<&'a [u8]>) -> Self {
        let b: &'a [u8] = a.buffer;
        AttributeRepr {
            kind: a.kind(),
            mandatory: a.mandatory(),
            value: &b[2..a.length()],
        }
    }

    /// Padded size on the wire.
    pub fn buffer_len(&self) -> usize {
        (2 + self.value.len() + 3) & !3
    }

    /// Writes the TLV with zero padding; returns the padded length.
    ///
    /// # Errors
    /// [`BfcpError::TooLarge`] for a value over 253 octets or a type over 127,
    /// [`BfcpError::BufferTooSmall`].
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, BfcpError> {
        let t = u8::from(self.kind);
        if self.value.len() > 253 || t > 127 {
            return Err(BfcpError::TooLarge);
        }
        let n = self.buffer_len();
        let out = out.get_mut(..n).ok_or(BfcpError::BufferTooSmall)?;
        out[0] = (t << 1) | u8::from(self.mandatory);
        out[1] = (2 + self.value.len()) as u8;
        out[2..2 + self.value.len()].copy_from_slice(self.value);
        out[2 + self.value.len()..].fill(0);
        Ok(n)
    }
}

/// A BFCP message (or fragment) as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Ver (1 reliable, 2 unreliable).
    pub version: u8,
    /// R flag.
    pub responder: bool,
    /// Primitive.
    pub primitive: Primitive,
    /// Conference ID.
    pub conference_id: u32,
    /// Transaction ID.
    pub transaction_id: u16,
    /// User ID.
    pub user_id: u16,
    /// `(fragment offset, whole payload length)` in units, when this is a fragment.
    pub fragment: Option<(u16, u16)>,
    /// Carried payload: all attributes, or for a fragment its slice of them. A multiple of 4.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses and validates one whole datagram or stream message: version 1 or 2, F only with
    /// version 2, fragment inside the message, well-formed attributes (unfragmented messages),
    /// no trailing bytes.
    ///
    /// # Errors
    /// See [`BfcpError`].
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Self, BfcpError> {
        p.check_len()?;
        let version = p.version();
        if version != 1 && version != 2 {
            return Err(BfcpError::Version);
        }
        if p.buffer.len() != p.total_len() {
            return Err(BfcpError::TrailingBytes);
        }
        let b: &'a [u8] = p.buffer;
        let payload = &b[p.header_len()..p.total_len()];
        let fragment = match (p.fragment_offset(), p.fragment_length()) {
            (Some(off), Some(len)) => {
                // RFC 8855 §5.1: fragmentation exists only over unreliable transports (Ver 2).
                if version != 2
                    || len == 0
                    || u32::from(off) + u32::from(len) > u32::from(p.payload_length())
                {
                    return Err(BfcpError::Fragment);
                }
                Some((off, p.payload_length()))
            }
            _ => None,
        };
        if fragment.is_none() {
            for a in attributes(payload) {
                a?;
            }
        }
        Ok(Repr {
            version,
            responder: p.responder(),
            primitive: p.primitive(),
            conference_id: p.conference_id(),
            transaction_id: p.transaction_id(),
            user_id: p.user_id(),
            fragment,
            payload,
        })
    }

    /// Bytes on the wire.
    pub fn buffer_len(&self) -> usize {
        (if self.fragment.is_some() {
            FRAGMENTED_HEADER_LEN
        } else {
            HEADER_LEN
        }) + self.payload.len()
    }

    /// Writes the message into `out`; returns its length.
    ///
    /// # Errors
    /// [`BfcpError::BufferTooSmall`]; [`BfcpError::TooLarge`] when the payload is not a
    /// multiple of 4 or over 65535 units.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, BfcpError> {
        let n = self.buffer_len();
        if self.payload.len() % 4 != 0
            || self.payload.len() / 4 > usize::from(u16::MAX)
            || self.version > 7
        {
            return Err(BfcpError::TooLarge);
        }
        let out = out.get_mut(..n).ok_or(BfcpError::BufferTooSmall)?;
        out[0] = self.version << 5;
        let mut p = Packet::new_unchecked(&mut *out);
        p.set_responder(self.responder);
        p.set_primitive(self.primitive);
        p.set_conference_id(self.conference_id);
        p.set_transaction_id(self.transaction_id);
        p.set_user_id(self.user_id);
        let units = (self.payload.len() / 4) as u16;
        match self.fragment {
            Some((off, total)) => {
                p.set_fragmented(true);
                p.set_payload_length(total);
                p.set_fragment(off, units);
            }
            None => p.set_payload_length(units),
        }
        let h = n - self.payload.len();
        out[h..].copy_from_slice(self.payload);
        Ok(n)
    }
}

/// Builds a message payload from attributes into `out`; returns its length.
///
/// # Errors
/// As [`AttributeRepr::emit`].
pub fn emit_attributes(attrs: &[AttributeRepr<'_>], out: &mut [u8]) -> Result<usize, BfcpError> {
    let mut at = 0;
    for a in attrs {
        at += a.emit(out.get_mut(at..).ok_or(BfcpError::BufferTooSmall)?)?;
    }
    Ok(at)
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// Per-leg BFCP counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BfcpStats {
    /// Whole messages accepted, by primitive 0..=17 (index 0 counts unknown primitives).
    pub messages: [u64; 18],
    /// Fragments received.
    pub fragments: u64,
    /// Messages completed by reassembly.
    pub reassembled: u64,
    /// Reassemblies abandoned: timed out or evicted for lack of slots.
    pub reassembly_dropped: u64,
    /// Malformed messages or datagrams dropped.
    pub malformed: u64,
}

impl BfcpStats {
    /// Counts an accepted whole message.
    pub fn count(&mut self, p: Primitive) {
        let i = match u8::from(p) {
            n @ 1..=17 => usize::from(n),
            _ => 0,
        };
        self.messages[i] += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// TCP stream framing
// ---------------------------------------------------------------------------------------------

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

    /// Counters.
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

// ---------------------------------------------------------------------------------------------
// TCP → UDP: fragmentation under an MTU
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// UDP → TCP: reassembly with bounded memory
// ---------------------------------------------------------------------------------------------

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

    /// Counters.
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

// ---------------------------------------------------------------------------------------------
// TCP↔UDP interworking: the transaction layer across transports (RFC 8855 §8)
// ---------------------------------------------------------------------------------------------

/// Limits and timers of one interworking context's [`Transactions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// Requests the gateway sends on the unreliable side and retransmits until answered
    /// (RFC 8855 §8.3.1). Beyond it a request is sent once, untracked, and counted.
    pub requests: usize,
    /// Requests received from the unreliable side, remembered with their answer so that a
    /// retransmission is answered from here and not relayed twice (RFC 8855 §8.2, §8.3.2).
    /// Beyond it the oldest is forgotten, and counted.
    pub answers: usize,
    /// Largest message kept for retransmission or as a cached answer, header included.
    pub max_stored: usize,
    /// T1, the first request retransmission interval; it doubles after each retransmission
    /// (RFC 8855 §8.3.1).
    pub t1: Duration,
    /// Retransmissions of one request before the transaction fails (RFC 8855 §8.3.1).
    pub max_retransmissions: u8,
    /// T2, how long a transaction is remembered after it completes: at least as long as the
    /// requester may still retransmit (T1 × (2^(retransmissions + 1) − 1) = 7.5 s with the
    /// defaults; RFC 8855 §8.3.2).
    pub t2: Duration,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            requests: 4,
            answers: 8,
            max_stored: 2048,
            t1: Duration::from_millis(500),
            max_retransmissions: 3,
            t2: Duration::from_secs(8),
        }
    }
}

/// Counters of the transaction layer (summed over contexts by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransactionStats {
    /// Responses sent on the unreliable side with R set (RFC 8855 §5.1).
    pub responses_marked: u64,
    /// Transaction IDs the gateway chose for server-initiated messages that carried 0 on the
    /// reliable side (RFC 8855 §8).
    pub ids_assigned: u64,
    /// Requests retransmitted on the unreliable side (RFC 8855 §8.3.1).
    pub retransmitted: u64,
    /// Requests given up after the last retransmission went unanswered.
    pub timed_out: u64,
    /// FloorRequestStatusAck/FloorStatusAck the gateway sent for server-initiated messages
    /// from the unreliable side.
    pub acks_sent: u64,
    /// FloorRequestStatusAck/FloorStatusAck from the unreliable side not relayed (they do not
    /// exist over reliable transports).
    pub acks_absorbed: u64,
    /// Retransmitted requests and duplicate responses from the unreliable side not relayed.
    pub duplicates_absorbed: u64,
    /// Cached answers re-sent for a retransmitted request.
    pub answers_resent: u64,
    /// A table was full: a request went untracked, or a remembered one was forgotten early.
    pub overflow: u64,
    /// Messages over [`TransactionConfig::max_stored`]: tracked, but not retransmitted or
    /// re-sent.
    pub unstored: u64,
    /// Acknowledgement primitives received on the reliable side, where they do not exist:
    /// dropped.
    pub invalid: u64,
}

/// What [`Transactions::to_unreliable`] decided for a message from the reliable side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToUnreliable {
    /// Send the (possibly rewritten) message.
    Send,
    /// Do not send it (counted).
    Drop,
}

/// What [`Transactions::from_unreliable`] decided for a message from the unreliable side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromUnreliable {
    /// Write the (possibly rewritten) message to the reliable side.
    pub relay: bool,
    /// Send this many bytes from the `reply` buffer back on the unreliable side first (an
    /// acknowledgement, or a cached answer); 0 for none.
    pub reply: usize,
}

/// Transaction key: Conference ID, Transaction ID and User ID, which a response copies from
/// its request (RFC 8855 §8.2).
type TxnKey = (u32, u16, u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    Free,
    /// Sent, not answered: retransmit at `next` (after `interval`), `tries` retransmissions
    /// so far.
    Waiting {
        next: Instant,
        interval: Duration,
        tries: u8,
    },
    /// Answered: duplicates of the answer are absorbed until `until`.
    Completed {
        until: Instant,
    },
}

#[derive(Debug)]
struct OutgoingSlot {
    state: Outgoing,
    key: TxnKey,
    /// The Transaction ID on the reliable side: the same, or 0 when the gateway chose one.
    reliable_id: u16,
    /// The request as sent, for retransmission (`len == 0`: too large to keep).
    len: usize,
    buf: Box<[u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incoming {
    Free,
    /// A request relayed to the reliable side, not answered yet.
    Relayed {
        until: Instant,
    },
    /// Answered; the answer is kept in the slot when it fitted.
    Answered {
        until: Instant,
    },
    /// A server-initiated message the gateway acknowledged and relayed.
    Acked {
        until: Instant,
    },
}

impl Incoming {
    fn until(self) -> Instant {
        match self {
            Incoming::Free => Instant::ZERO,
            Incoming::Relayed { until }
            | Incoming::Answered { until }
            | Incoming::Acked { until } => until,
        }
    }
}

#[derive(Debug)]
struct IncomingSlot {
    state: Incoming,
    key: TxnKey,
    len: usize,
    buf: Box<[u8]>,
}

/// The RFC 8855 §8 transaction layer of one TCP↔UDP interworking context, seen from the
/// gateway, which is the unreliable side's peer for both client- and server-initiated
/// transactions:
/// - a response from the reliable side goes out with R set (§5.1: R marks the transaction
///   responder, and only Ver 2 has it);
/// - a server-initiated FloorRequestStatus, FloorStatus or Goodbye from the reliable side
///   (Transaction ID 0, §8) gets a non-zero ID chosen here and, like every request sent on
///   the unreliable side, is retransmitted on T1, doubling, until answered or after
///   `max_retransmissions` (§8.3.1); the FloorRequestStatusAck/FloorStatusAck that answers it
///   is absorbed (acknowledgements exist only over unreliable transports), a GoodbyeAck goes
///   to the reliable side with ID 0;
/// - a server-initiated FloorRequestStatus/FloorStatus from the unreliable side (non-zero ID,
///   R clear) is acknowledged here and relayed with ID 0;
/// - a retransmitted request from the unreliable side is not relayed twice: it is answered
///   from the remembered response, or ignored while the reliable side has not answered yet
///   (§8.2, §8.3.2).
///
/// Memory is fixed at construction; no call allocates. Time comes in as `now`.
#[derive(Debug)]
pub struct Transactions {
    cfg: TransactionConfig,
    outgoing: Vec<OutgoingSlot>,
    incoming: Vec<IncomingSlot>,
    /// The next Transaction ID the gateway chooses (never 0).
    next_id: u16,
}

fn is_ack(p: Primitive) -> bool {
    matches!(
        p,
        Primitive::FloorRequestStatusAck | Primitive::FloorStatusAck
    )
}

/// Primitives that a floor control server (or a Goodbye's receiver) sends only in answer to a
/// request when their Transaction ID is not 0 (RFC 8855 §5.1 Table 1, §8).
fn is_response(p: Primitive) -> bool {
    matches!(
        p,
        Primitive::FloorRequestStatus
            | Primitive::UserStatus
            | Primitive::FloorStatus
            | Primitive::ChairActionAck
            | Primitive::HelloAck
            | Primitive::Error
            | Primitive::GoodbyeAck
    )
}

/// Server-initiated messages that expect an answer over an unreliable transport (§8.2).
fn expects_answer(p: Primitive) -> bool {
    matches!(
        p,
        Primitive::FloorRequestStatus | Primitive::FloorStatus | Primitive::Goodbye
    )
}

fn key_of<T: AsRef<[u8]>>(p: &Packet<T>) -> TxnKey {
    (p.conference_id(), p.transaction_id(), p.user_id())
}

impl Transactions {
    /// Allocates both tables now (slow path). `first_id` seeds the Transaction IDs the gateway
    /// chooses (0 is taken as 1); the caller passes it in, so the core draws no randomness.
    pub fn new(cfg: TransactionConfig, first_id: u16) -> Self {
        let stored = cfg.max_stored.max(HEADER_LEN);
        Transactions {
            outgoing: (0..cfg.requests.max(1))
                .map(|_| OutgoingSlot {
                    state: Outgoing::Free,
                    key: (0, 0, 0),
                    reliable_id: 0,
                    len: 0,
                    buf: vec![0u8; stored].into_boxed_slice(),
                })
                .collect(),
            incoming: (0..cfg.answers.max(1))
                .map(|_| IncomingSlot {
                    state: Incoming::Free,
                    key: (0, 0, 0),
                    len: 0,
                    buf: vec![0u8; stored].into_boxed_slice(),
                })
                .collect(),
            cfg: TransactionConfig {
                max_stored: stored,
                ..cfg
            },
            next_id: first_id.max(1),
        }
    }

    /// The earliest retransmission or give-up time, or [`Instant::FAR_FUTURE`]. (Remembered
    /// transactions expire lazily: they need no wake-up.)
    pub fn poll_timeout(&self) -> Instant {
        self.outgoing
            .iter()
            .filter_map(|s| match s.state {
                Outgoing::Waiting { next, .. } => Some(next),
                _ => None,
            })
            .min()
            .unwrap_or(Instant::FAR_FUTURE)
    }

    /// Requests sent and not answered yet.
    pub fn waiting(&self) -> usize {
        self.outgoing
            .iter()
            .filter(|s| matches!(s.state, Outgoing::Waiting { .. }))
            .count()
    }

    /// A whole message `msg` from the reliable side, about to leave on the unreliable side:
    /// R set on responses, a Transaction ID chosen for server-initiated messages, requests
    /// remembered for retransmission. Rewrites the header in place; Ver is left to the
    /// fragmenter.
    pub fn to_unreliable(
        &mut self,
        now: Instant,
        msg: &mut [u8],
        stats: &mut TransactionStats,
    ) -> ToUnreliable {
        let Ok(mut p) = Packet::new_checked(&mut *msg) else {
            return ToUnreliable::Drop;
        };
        let prim = p.primitive();
        if is_ack(prim) {
            // RFC 8855 §8: acknowledgements exist only over unreliable transports.
            stats.invalid += 1;
            return ToUnreliable::Drop;
        }
        let key = key_of(&p);
        let len = p.total_len();
        if key.1 != 0 {
            // The answer to a request the unreliable side sent (§8.2): R set, remembered for
            // that request's retransmissions.
            let t2 = self.cfg.t2;
            if let Some(s) = self.incoming.iter_mut().find(|s| {
                s.key == key && matches!(s.state, Incoming::Relayed { until } if until > now)
            }) {
                p.set_responder(true);
                s.state = Incoming::Answered { until: now + t2 };
                s.len = 0;
                match s.buf.get_mut(..len) {
                    Some(dst) => {
                        dst.copy_from_slice(&msg[..len]);
                        s.len = len;
                    }
                    None => stats.unstored += 1,
                }
                stats.responses_marked += 1;
                return ToUnreliable::Send;
            }
            if is_response(prim) {
                // An answer to a request not remembered (forgotten early): still a response.
                p.set_responder(true);
                stats.responses_marked += 1;
                return ToUnreliable::Send;
            }
            // A request from the reliable side: retransmitted until answered (§8.3.1).
            p.set_responder(false);
            self.track(now, key, key.1, msg, len, stats);
            return ToUnreliable::Send;
        }
        if !expects_answer(prim) {
            // Nothing answers it on the unreliable side either: sent once, as it is.
            return ToUnreliable::Send;
        }
        // RFC 8855 §8: over an unreliable transport a server-initiated transaction has a
        // non-zero Transaction ID, here chosen by the gateway.
        let id = self.choose_id(key);
        p.set_transaction_id(id);
        p.set_responder(false);
        stats.ids_assigned += 1;
        self.track(now, (key.0, id, key.2), 0, msg, len, stats);
        ToUnreliable::Send
    }

    /// A non-zero ID not in use by a request in flight with the same conference and user.
    fn choose_id(&mut self, key: TxnKey) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self
                .outgoing
                .iter()
                .any(|s| !matches!(s.state, Outgoing::Free) && s.key == (key.0, id, key.2))
            {
                return id;
            }
        }
    }

    fn track(
        &mut self,
        now: Instant,
        key: TxnKey,
        reliable_id: u16,
        msg: &[u8],
        len: usize,
        stats: &mut TransactionStats,
    ) {
        // A free slot, else the completed one that expires first; requests in flight are
        // never evicted.
        let slot = self
            .outgoing
            .iter()
            .position(|s| s.state == Outgoing::Free)
            .or_else(|| {
                self.outgoing
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s.state {
                        Outgoing::Completed { until } => Some((until, i)),
                        _ => None,
                    })
                    .min()
                    .map(|(_, i)| i)
            });
        let Some(i) = slot else {
            stats.overflow += 1;
            return;
        };
        let s = &mut self.outgoing[i];
        s.key = key;
        s.reliable_id = reliable_id;
        s.len = 0;
        match s.buf.get_mut(..len) {
            Some(dst) => {
                dst.copy_from_slice(&msg[..len]);
                s.len = len;
                s.state = Outgoing::Waiting {
                    next: now + self.cfg.t1,
                    interval: self.cfg.t1,
                    tries: 0,
                };
            }
            None => {
                // Kept for matching its answer, never retransmitted.
                stats.unstored += 1;
                s.state = Outgoing::Waiting {
                    next: now + self.cfg.t2,
                    interval: self.cfg.t2,
                    tries: self.cfg.max_retransmissions,
                };
            }
        }
    }

    /// The next request due for retransmission at `now`, copied into `out` (its length
    /// returned); requests past their last retransmission are given up on the way. Call until
    /// `None`.
    pub fn poll_retransmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
        stats: &mut TransactionStats,
    ) -> Option<usize> {
        let max = self.cfg.max_retransmissions;
        for s in &mut self.outgoing {
            let Outgoing::Waiting {
                next,
                interval,
                tries,
            } = s.state
            else {
                continue;
            };
            if next > now {
                continue;
            }
            if tries >= max || s.len == 0 {
                // RFC 8855 §8.3.1: the transaction fails.
                s.state = Outgoing::Free;
                stats.timed_out += 1;
                continue;
            }
            let Some(dst) = out.get_mut(..s.len) else {
                continue;
            };
            dst.copy_from_slice(&s.buf[..s.len]);
            let interval = interval * 2;
            s.state = Outgoing::Waiting {
                next: now + interval,
                interval,
                tries: tries + 1,
            };
            stats.retransmitted += 1;
            return Some(s.len);
        }
        None
    }

    /// A whole message `msg` (Ver 2, reassembled if it was fragmented) from the unreliable
    /// side: decides whether it goes to the reliable side (rewritten in place: R cleared, the
    /// Transaction ID 0 for server-initiated transactions) and what the gateway answers on the
    /// unreliable side itself, written into `reply` (an acknowledgement, or a cached answer).
    pub fn from_unreliable(
        &mut self,
        now: Instant,
        msg: &mut [u8],
        reply: &mut [u8],
        stats: &mut TransactionStats,
    ) -> FromUnreliable {
        const NONE: FromUnreliable = FromUnreliable {
            relay: false,
            reply: 0,
        };
        const RELAY: FromUnreliable = FromUnreliable {
            relay: true,
            reply: 0,
        };
        let Ok(mut p) = Packet::new_checked(&mut *msg) else {
            return NONE;
        };
        let prim = p.primitive();
        let key = key_of(&p);
        if p.responder() {
            // A response (§5.1): to a request the gateway sent and retransmits.
            p.set_responder(false);
            let t2 = self.cfg.t2;
            // The request in flight first, else one answered already.
            let i = self
                .outgoing
                .iter()
                .position(|s| s.key == key && matches!(s.state, Outgoing::Waiting { .. }))
                .or_else(|| {
                    self.outgoing
                        .iter()
                        .position(|s| s.key == key && s.state != Outgoing::Free)
                });
            if let Some(s) = i.map(|i| &mut self.outgoing[i]) {
                match s.state {
                    Outgoing::Waiting { .. } => {
                        s.state = Outgoing::Completed { until: now + t2 };
                        if is_ack(prim) {
                            stats.acks_absorbed += 1;
                            return NONE;
                        }
                        p.set_transaction_id(s.reliable_id);
                        return RELAY;
                    }
                    Outgoing::Completed { until } if until > now => {
                        // The answer to a retransmission whose original was answered too.
                        if is_ack(prim) {
                            stats.acks_absorbed += 1;
                        } else {
                            stats.duplicates_absorbed += 1;
                        }
                        return NONE;
                    }
                    _ => {}
                }
            }
            if is_ack(prim) {
                stats.acks_absorbed += 1;
                return NONE;
            }
            return RELAY;
        }
        if is_ack(prim) {
            // An acknowledgement without R (a peer of RFC 4582 ways): never relayed.
            stats.acks_absorbed += 1;
            return NONE;
        }
        if key.1 == 0 {
            // Not a transaction the unreliable side expects answered: relayed as it is.
            return RELAY;
        }
        let notification = matches!(prim, Primitive::FloorRequestStatus | Primitive::FloorStatus);
        let ack = if notification {
            // §8: the receiving client acknowledges a server-initiated FloorRequestStatus or
            // FloorStatus; the gateway is that client on the unreliable side.
            let h = Repr {
                version: 2,
                responder: true,
                primitive: if prim == Primitive::FloorStatus {
                    Primitive::FloorStatusAck
                } else {
                    Primitive::FloorRequestStatusAck
                },
                conference_id: key.0,
                transaction_id: key.1,
                user_id: key.2,
                fragment: None,
                payload: &[],
            };
            match h.emit(reply) {
                Ok(n) => {
                    stats.acks_sent += 1;
                    n
                }
                Err(_) => 0,
            }
        } else {
            0
        };
        if let Some(s) = self
            .incoming
            .iter_mut()
            .find(|s| s.key == key && s.state.until() > now)
        {
            // A retransmission (§8.3.1): not relayed again.
            stats.duplicates_absorbed += 1;
            return match s.state {
                Incoming::Answered { .. } if s.len > 0 && s.len <= reply.len() => {
                    reply[..s.len].copy_from_slice(&s.buf[..s.len]);
                    stats.answers_resent += 1;
                    FromUnreliable {
                        relay: false,
                        reply: s.len,
                    }
                }
                _ => FromUnreliable {
                    relay: false,
                    reply: ack,
                },
            };
        }
        let until = now + self.cfg.t2;
        // A free or expired slot, else the one that expires first (forgotten early, counted).
        let i = match self
            .incoming
            .iter()
            .position(|s| s.state == Incoming::Free || s.state.until() <= now)
        {
            Some(i) => i,
            None => {
                stats.overflow += 1;
                (0..self.incoming.len())
                    .min_by_key(|&i| self.incoming[i].state.until())
                    .unwrap_or(0)
            }
        };
        let s = &mut self.incoming[i];
        s.key = key;
        s.len = 0;
        s.state = if notification {
            Incoming::Acked { until }
        } else {
            Incoming::Relayed { until }
        };
        if notification {
            // §8: server-initiated transactions carry Transaction ID 0 over reliable transports.
            p.set_transaction_id(0);
        }
        FromUnreliable {
            relay: true,
            reply: ack,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn floor_request(version: u8, uri: &[u8]) -> Vec<u8> {
        let attrs = [
            AttributeRepr {
                kind: AttributeType::FloorId,
                mandatory: true,
                value: &[0, 1],
            },
            AttributeRepr {
                kind: AttributeType::UserUri,
                mandatory: false,
                value: uri,
            },
            AttributeRepr {
                kind: AttributeType::Priority,
                mandatory: false,
                value: &[0x40, 0],
            },
        ];
        let mut payload = [0u8; 1024];
        let n = emit_attributes(&attrs, &mut payload).unwrap();
        let r = Repr {
            version,
            responder: false,
            primitive: Primitive::FloorRequest,
            conference_id: 0x0102_0304,
            transaction_id: 77,
            user_id: 9,
            fragment: None,
            payload: &payload[..n],
        };
        let mut out = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut out).unwrap(), out.len());
        out
    }

    // ---- wire view ----

    #[test]
    fn header_and_attributes_round_trip() {
        let m = floor_request(1, b"bfcp:alice@example.com");
        assert_eq!(m[0], 0x20, "Ver 1, R=0, F=0");
        let p = Packet::new_checked(&m[..]).unwrap();
        assert_eq!(
            (p.version(), p.responder(), p.fragmented()),
            (1, false, false)
        );
        assert_eq!(p.primitive(), Primitive::FloorRequest);
        assert_eq!(
            (p.conference_id(), p.transaction_id(), p.user_id()),
            (0x0102_0304, 77, 9)
        );
        assert_eq!(p.payload_length() as usize * 4, m.len() - 12);
        let attrs: Vec<_> = attributes(p.payload())
            .map(|a| AttributeRepr::parse(&a.unwrap()))
            .collect();
        assert_eq!(attrs.len(), 3);
        assert_eq!(
            attrs[0],
            AttributeRepr {
                kind: AttributeType::FloorId,
                mandatory: true,
                value: &[0, 1]
            }
        );
        assert_eq!(attrs[1].value, b"bfcp:alice@example.com");
        let r = Repr::parse(&p).unwrap();
        let mut again = vec![0u8; r.buffer_len()];
        r.emit(&mut again).unwrap();
        assert_eq!(again, m);
        assert_eq!(Primitive::from(99), Primitive::Unknown(99));
        assert_eq!(u8::from(Primitive::Unknown(99)), 99);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let m = floor_request(1, b"x");
        assert_eq!(
            Packet::new_checked(&m[..11]).err(),
            Some(BfcpError::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&m[..m.len() - 4]).err(),
            Some(BfcpError::Truncated)
        );
        let mut bad = m.clone();
        bad[0] = 0x60; // Ver 3
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(BfcpError::Version)
        );
        let mut bad = m.clone();
        bad[13] = 1; // first attribute length 1
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(BfcpError::Attribute)
        );
        let mut bad = m.clone();
        bad[13] = 200; // runs past the payload
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(BfcpError::Attribute)
        );
        let mut bad = m.clone();
        bad.extend_from_slice(&[0; 4]);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(BfcpError::TrailingBytes)
        );
        let mut bad = m.clone();
        bad[0] |= F_FLAG; // F on version 1
        bad.extend_from_slice(&[0; 4]);
        let p = Packet::new_checked(&bad[..]);
        assert!(p.is_err() || Repr::parse(&p.unwrap()).is_err());
    }

    // ---- TCP stream framing ----

    fn frame_all(framer: &mut StreamFramer, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<BfcpError>) {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for c in chunks {
            let mut f = framer.feed(c);
            loop {
                match f.next_message() {
                    Ok(Some(m)) => out.push(f.bytes(m).to_vec()),
                    Ok(None) => break,
                    Err(e) => {
                        errs.push(e);
                        if framer_failed(&e) {
                            return (out, errs);
                        }
                    }
                }
            }
        }
        (out, errs)
    }

    fn framer_failed(e: &BfcpError) -> bool {
        matches!(
            e,
            BfcpError::Version | BfcpError::Fragment | BfcpError::TooLarge
        )
    }

    #[test]
    fn stream_split_at_every_position() {
        let a = floor_request(1, b"bfcp:alice@example.com");
        let b = floor_request(1, b"");
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&a);
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let mut fr = StreamFramer::new(1024);
                let (msgs, errs) = frame_all(&mut fr, &[&stream[..i], &stream[i..j], &stream[j..]]);
                assert!(errs.is_empty(), "{i} {j}: {errs:?}");
                assert_eq!(msgs, vec![a.clone(), b.clone(), a.clone()], "{i} {j}");
                assert_eq!(fr.stats().messages[1], 3);
            }
        }
    }

    #[test]
    fn stream_bad_attributes_are_dropped_but_sync_is_kept() {
        let a = floor_request(1, b"abc");
        let mut bad = a.clone();
        bad[13] = 0;
        let mut stream = bad.clone();
        stream.extend_from_slice(&a);
        let mut fr = StreamFramer::new(1024);
        let (msgs, errs) = frame_all(&mut fr, &[&stream]);
        assert_eq!(errs, vec![BfcpError::Attribute]);
        assert_eq!(msgs, vec![a.clone()]);
        assert_eq!(fr.stats().malformed, 1);
        // Version 2 on TCP or an oversized message breaks framing: fatal.
        let mut fr = StreamFramer::new(1024);
        let v2 = floor_request(2, b"abc");
        let (_, errs) = frame_all(&mut fr, &[&v2]);
        assert_eq!(errs, vec![BfcpError::Version]);
        assert_eq!(fr.feed(&a).next_message(), Err(BfcpError::Version));
        let mut fr = StreamFramer::new(16);
        let (_, errs) = frame_all(&mut fr, &[&a[..5], &a[5..]]);
        assert_eq!(errs, vec![BfcpError::TooLarge]);
    }

    // ---- TCP↔UDP interworking ----

    #[test]
    fn fragment_and_reassemble_out_of_order_with_duplicates() {
        let uri = vec![b'u'; 200];
        let m = floor_request(1, &uri);
        let mut frag = Fragmenter::new(&m, 64).unwrap();
        let mut dgrams = Vec::new();
        let mut buf = [0u8; 64];
        while let Some(r) = frag.next_fragment(&mut buf) {
            let n = r.unwrap();
            assert!(n <= 64);
            dgrams.push(buf[..n].to_vec());
        }
        assert!(dgrams.len() > 3);
        for d in &dgrams {
            let p = Packet::new_checked(&d[..]).unwrap();
            assert_eq!((p.version(), p.fragmented()), (2, true));
            assert_eq!(
                Repr::parse(&p).unwrap().fragment.unwrap().1 as usize * 4,
                m.len() - 12
            );
        }
        let mut re = Reassembler::new(ReassemblyConfig::default());
        let t0 = Instant::from_millis(1000);
        let mut order: Vec<usize> = (0..dgrams.len()).rev().collect();
        order.insert(1, dgrams.len() - 1); // a duplicate
        let mut done = None;
        for (k, &i) in order.iter().enumerate() {
            match re.push(t0, &dgrams[i]).unwrap() {
                Pushed::Pending => assert!(k + 1 < order.len()),
                Pushed::Complete(s) => done = Some(re.completed(s).to_vec()),
                Pushed::Whole => panic!("fragment reported whole"),
            }
        }
        let mut whole = done.expect("complete");
        assert_eq!(whole[0] >> 5, 2);
        to_reliable(&mut whole).unwrap();
        assert_eq!(
            whole, m,
            "reassembled + version 1 = the original TCP message"
        );
        assert_eq!((re.stats().reassembled, re.stats().messages[1]), (1, 1));
        // A small message is not fragmented.
        let small = floor_request(1, b"x");
        let mut f = Fragmenter::new(&small, 1400).unwrap();
        let n = f.next_fragment(&mut buf).unwrap().unwrap();
        assert!(f.next_fragment(&mut buf).is_none());
        assert_eq!(re.push(t0, &buf[..n]), Ok(Pushed::Whole));
    }

    #[test]
    fn reassembly_times_out_and_evicts() {
        let m = floor_request(1, &[b'v'; 120]);
        let mut frag = Fragmenter::new(&m, 40).unwrap();
        let mut buf = [0u8; 40];
        let n = frag.next_fragment(&mut buf).unwrap().unwrap();
        let first = buf[..n].to_vec();
        let cfg = ReassemblyConfig {
            slots: 1,
            max_message: 1024,
            timeout: Duration::from_millis(500),
        };
        let mut re = Reassembler::new(cfg);
        assert_eq!(
            re.push(Instant::from_millis(0), &first),
            Ok(Pushed::Pending)
        );
        assert_eq!(re.poll_timeout(), Instant::from_millis(500));
        re.handle_timeout(Instant::from_millis(499));
        assert_eq!(re.stats().reassembly_dropped, 0);
        re.handle_timeout(Instant::from_millis(500));
        assert_eq!(re.stats().reassembly_dropped, 1);
        assert_eq!(re.poll_timeout(), Instant::FAR_FUTURE);
        // Eviction: a second message while the only slot is busy.
        assert_eq!(
            re.push(Instant::from_millis(600), &first),
            Ok(Pushed::Pending)
        );
        let mut other = first.clone();
        other[9] ^= 1; // another transaction id
        assert_eq!(
            re.push(Instant::from_millis(601), &other),
            Ok(Pushed::Pending)
        );
        assert_eq!(re.stats().reassembly_dropped, 2);
        // Too large for the configuration.
        let mut re = Reassembler::new(ReassemblyConfig {
            slots: 1,
            max_message: 64,
            timeout: Duration::from_secs(1),
        });
        assert_eq!(re.push(Instant::ZERO, &first), Err(BfcpError::TooLarge));
        assert_eq!(re.stats().malformed, 1);
    }

    proptest! {
        #[test]
        fn prop_random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                if let Ok(r) = Repr::parse(&p) {
                    // emit(parse(x)) == x but for the reserved bits (sent as zero); the fuzz
                    // target asserts the same.
                    let mut out = vec![0u8; r.buffer_len()];
                    prop_assert_eq!(r.emit(&mut out), Ok(data.len()));
                    prop_assert_eq!(out[0], data[0] & 0xf8);
                    prop_assert_eq!(&out[1..], &data[1..]);
                }
                let _ = (p.primitive(), p.fragment_offset(), p.payload().len());
            }
            for a in attributes(&data).flatten() {
                let _ = (a.kind(), a.value().len());
            }
            let mut fr = StreamFramer::new(256);
            let i = cut.index(data.len() + 1);
            let _ = frame_all(&mut fr, &[&data[..i], &data[i..]]);
            let mut re = Reassembler::new(ReassemblyConfig { slots: 2, max_message: 256, timeout: Duration::from_secs(1) });
            let _ = re.push(Instant::ZERO, &data);
            let _ = Fragmenter::new(&data, 40).map(|mut f| { let mut b = [0u8; 40]; while let Some(Ok(_)) = f.next_fragment(&mut b) {} });
        }

        #[test]
        fn prop_emit_parse_and_fragment_round_trip(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..8),
            prim in 1u8..=17, conf in any::<u32>(), tid in any::<u16>(), uid in any::<u16>(), r in any::<bool>(),
            mtu in 20usize..200, seed in any::<u64>(),
        ) {
            let attrs: Vec<_> = values.iter().enumerate().map(|(i, v)| AttributeRepr {
                kind: AttributeType::from((i % 18 + 1) as u8), mandatory: i % 2 == 0, value: v }).collect();
            let mut payload = vec![0u8; 4096];
            let n = emit_attributes(&attrs, &mut payload).unwrap();
            let repr = Repr { version: 1, responder: r, primitive: Primitive::from(prim), conference_id: conf,
                transaction_id: tid, user_id: uid, fragment: None, payload: &payload[..n] };
            let mut m = vec![0u8; repr.buffer_len()];
            repr.emit(&mut m).unwrap();
            let parsed = Repr::parse(&Packet::new_checked(&m[..]).unwrap()).unwrap();
            prop_assert_eq!(parsed, repr);
            let got: Vec<_> = attributes(parsed.payload).map(|a| AttributeRepr::parse(&a.unwrap())).collect();
            prop_assert_eq!(got, attrs);
            // Fragment, shuffle deterministically, reassemble.
            let mut frag = Fragmenter::new(&m, mtu).unwrap();
            let mut dgrams = Vec::new();
            let mut buf = vec![0u8; mtu];
            while let Some(x) = frag.next_fragment(&mut buf) { let k = x.unwrap(); prop_assert!(k <= mtu); dgrams.push(buf[..k].to_vec()); }
            let len = dgrams.len();
            for i in (1..len).rev() { let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize; dgrams.swap(i, j); }
            let mut re = Reassembler::new(ReassemblyConfig::default());
            let mut whole = None;
            for d in &dgrams {
                match re.push(Instant::ZERO, d).unwrap() {
                    Pushed::Whole => whole = Some(d.clone()),
                    Pushed::Complete(s) => whole = Some(re.completed(s).to_vec()),
                    Pushed::Pending => {}
                }
            }
            let mut whole = whole.unwrap();
            to_reliable(&mut whole).unwrap();
            prop_assert_eq!(whole, m);
        }
    }
}

#[cfg(test)]
mod transaction_tests {
    //! The RFC 8855 §8 transaction layer across transports, grouped by direction.
    use super::*;

    const CONF: u32 = 9;
    const USER: u16 = 7;

    /// A message with one FLOOR-ID attribute.
    fn msg(ver: u8, r: bool, prim: Primitive, tid: u16) -> Vec<u8> {
        let attr = [AttributeRepr {
            kind: AttributeType::FloorId,
            mandatory: true,
            value: &[0, 1],
        }];
        let mut payload = [0u8; 4];
        let n = emit_attributes(&attr, &mut payload).unwrap();
        let repr = Repr {
            version: ver,
            responder: r,
            primitive: prim,
            conference_id: CONF,
            transaction_id: tid,
            user_id: USER,
            fragment: None,
            payload: &payload[..n],
        };
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out).unwrap();
        out
    }

    fn header(m: &[u8]) -> (bool, Primitive, u16) {
        let p = Packet::new_checked(m).unwrap();
        (p.responder(), p.primitive(), p.transaction_id())
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    // ---- reliable → unreliable ----

    #[test]
    fn response_to_an_unreliable_request_gets_r_and_answers_its_retransmission() {
        let mut x = Transactions::new(TransactionConfig::default(), 100);
        let mut st = TransactionStats::default();
        let mut reply = [0u8; 256];
        let mut req = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(0), &mut req, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: true,
                reply: 0
            }
        );
        assert_eq!(header(&req), (false, Primitive::FloorRequest, 5));
        // Retransmitted before the answer: not relayed again, nothing to answer yet.
        let mut again = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(500), &mut again, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: 0
            }
        );
        let mut resp = msg(1, false, Primitive::FloorRequestStatus, 5);
        assert_eq!(
            x.to_unreliable(t(600), &mut resp, &mut st),
            ToUnreliable::Send
        );
        assert_eq!(
            header(&resp),
            (true, Primitive::FloorRequestStatus, 5),
            "R set (§5.1)"
        );
        // Retransmitted after the answer: the answer is re-sent, the request not relayed.
        let mut again = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(1500), &mut again, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: resp.len()
            }
        );
        assert_eq!(&reply[..resp.len()], &resp[..]);
        assert_eq!(
            (
                st.duplicates_absorbed,
                st.answers_resent,
                st.responses_marked
            ),
            (2, 1, 1)
        );
        // After T2 the ID may be used again: a new request.
        let mut late = msg(2, false, Primitive::FloorRequest, 5);
        let v = x.from_unreliable(t(600 + 8001), &mut late, &mut reply, &mut st);
        assert!(v.relay);
    }

    #[test]
    fn server_initiated_message_gets_an_id_is_retransmitted_and_its_ack_absorbed() {
        let mut x = Transactions::new(TransactionConfig::default(), 0x4000);
        let mut st = TransactionStats::default();
        let mut m = msg(1, false, Primitive::FloorStatus, 0);
        assert_eq!(x.to_unreliable(t(0), &mut m, &mut st), ToUnreliable::Send);
        assert_eq!(header(&m), (false, Primitive::FloorStatus, 0x4000));
        assert_eq!(x.poll_timeout(), t(500), "T1 (§8.3.1)");
        let mut out = [0u8; 256];
        assert_eq!(x.poll_retransmit(t(499), &mut out, &mut st), None);
        assert_eq!(x.poll_retransmit(t(500), &mut out, &mut st), Some(m.len()));
        assert_eq!(&out[..m.len()], &m[..]);
        assert_eq!(x.poll_timeout(), t(1500), "doubled");
        assert_eq!(x.poll_retransmit(t(1500), &mut out, &mut st), Some(m.len()));
        // The ack: absorbed, the retransmissions stop.
        let mut ack = msg(2, true, Primitive::FloorStatusAck, 0x4000);
        let mut reply = [0u8; 64];
        let v = x.from_unreliable(t(1600), &mut ack, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: 0
            }
        );
        assert_eq!(x.poll_timeout(), Instant::FAR_FUTURE);
        // A late ack of the retransmission: absorbed too.
        let mut ack = msg(2, true, Primitive::FloorStatusAck, 0x4000);
        assert!(
            !x.from_unreliable(t(1700), &mut ack, &mut reply, &mut st)
                .relay
        );
        assert_eq!(
            (st.ids_assigned, st.retransmitted, st.acks_absorbed),
            (1, 2, 2)
        );
        // The next one gets the next ID.
        let mut m2 = msg(1, false, Primitive::FloorRequestStatus, 0);
        x.to_unreliable(t(2000), &mut m2, &mut st);
        assert_eq!(header(&m2).2, 0x4001);
    }

    #[test]
    fn unanswered_request_fails_after_the_last_retransmission() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut m = msg(1, false, Primitive::Hello, 3);
        x.to_unreliable(t(0), &mut m, &mut st);
        assert_eq!(
            header(&m),
            (false, Primitive::Hello, 3),
            "a request keeps its ID"
        );
        let mut out = [0u8; 256];
        let mut sent_at = Vec::new();
        let mut now = t(0);
        while x.poll_timeout() != Instant::FAR_FUTURE {
            now = x.poll_timeout();
            while x.poll_retransmit(now, &mut out, &mut st).is_some() {
                sent_at.push(now);
            }
        }
        assert_eq!(sent_at, [t(500), t(1500), t(3500)]);
        assert_eq!(now, t(7500));
        assert_eq!((st.retransmitted, st.timed_out), (3, 1));
    }

    #[test]
    fn goodbye_ack_for_a_gateway_id_goes_back_with_id_zero() {
        let mut x = Transactions::new(TransactionConfig::default(), 77);
        let mut st = TransactionStats::default();
        let mut bye = msg(1, false, Primitive::Goodbye, 0);
        x.to_unreliable(t(0), &mut bye, &mut st);
        assert_eq!(header(&bye).2, 77);
        let mut ack = msg(2, true, Primitive::GoodbyeAck, 77);
        let mut reply = [0u8; 64];
        let v = x.from_unreliable(t(10), &mut ack, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: true,
                reply: 0
            }
        );
        assert_eq!(header(&ack), (false, Primitive::GoodbyeAck, 0));
    }

    #[test]
    fn acks_from_the_reliable_side_are_dropped() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut m = msg(1, false, Primitive::FloorRequestStatusAck, 4);
        assert_eq!(x.to_unreliable(t(0), &mut m, &mut st), ToUnreliable::Drop);
        assert_eq!(st.invalid, 1);
    }

    // ---- unreliable → reliable ----

    #[test]
    fn server_initiated_from_unreliable_is_acked_and_relayed_once_with_id_zero() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut reply = [0u8; 64];
        let mut m = msg(2, false, Primitive::FloorRequestStatus, 0x4001);
        let v = x.from_unreliable(t(0), &mut m, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: true,
                reply: HEADER_LEN
            }
        );
        assert_eq!(
            header(&m),
            (false, Primitive::FloorRequestStatus, 0),
            "ID 0 (§8)"
        );
        let ack = Packet::new_checked(&reply[..HEADER_LEN]).unwrap();
        assert_eq!(
            (
                ack.version(),
                ack.responder(),
                ack.primitive(),
                ack.transaction_id()
            ),
            (2, true, Primitive::FloorRequestStatusAck, 0x4001)
        );
        assert_eq!(
            (ack.conference_id(), ack.user_id(), ack.payload_length()),
            (CONF, USER, 0)
        );
        // Its retransmission (our ack was lost): acked again, not relayed.
        let mut m = msg(2, false, Primitive::FloorRequestStatus, 0x4001);
        let v = x.from_unreliable(t(500), &mut m, &mut reply, &mut st);
        assert_eq!(
            v,
            FromUnreliable {
                relay: false,
                reply: HEADER_LEN
            }
        );
        assert_eq!((st.acks_sent, st.duplicates_absorbed), (2, 1));
    }

    #[test]
    fn unsolicited_acks_from_unreliable_are_never_relayed() {
        let mut x = Transactions::new(TransactionConfig::default(), 1);
        let mut st = TransactionStats::default();
        let mut reply = [0u8; 64];
        for (r, p) in [
            (true, Primitive::FloorRequestStatusAck),
            (false, Primitive::FloorStatusAck),
        ] {
            let mut m = msg(2, r, p, 9);
            assert!(!x.from_unreliable(t(0), &mut m, &mut reply, &mut st).relay);
        }
        assert_eq!(st.acks_absorbed, 2);
        // A response to a request not tracked: relayed, R cleared.
        let mut m = msg(2, true, Primitive::HelloAck, 9);
        assert!(x.from_unreliable(t(0), &mut m, &mut reply, &mut st).relay);
        assert_eq!(header(&m), (false, Primitive::HelloAck, 9));
    }

    // ---- any input ----

    proptest::proptest! {
        /// Any sequence of messages both ways and timer turns: no panic, acknowledgements
        /// never reach the reliable side, R is clear there, gateway-chosen IDs are non-zero,
        /// the tables stay bounded (the fuzz target `bfcp_transactions` checks the same).
        #[test]
        fn prop_any_sequence_keeps_the_rules(
            ops in proptest::collection::vec(
                (0u8..3, 0u8..20, 0u16..6, proptest::bool::ANY, 0u8..24, 0u64..1200),
                0..200,
            )
        ) {
            let cfg = TransactionConfig {
                requests: 3,
                answers: 3,
                max_stored: 64,
                ..TransactionConfig::default()
            };
            let mut x = Transactions::new(cfg, 0xfffe);
            let mut st = TransactionStats::default();
            let (mut now, mut reply, mut out) = (t(0), [0u8; 128], [0u8; 128]);
            for (kind, prim, tid, r, units, dt) in ops {
                now += Duration::from_millis(dt);
                let mut m = vec![0u8; HEADER_LEN + 4 * usize::from(units)];
                m[0] = if kind == 0 { 0x20 } else { 0x40 } | if r { 0x10 } else { 0 };
                m[1] = prim;
                m[3] = units;
                m[8..10].copy_from_slice(&tid.to_be_bytes());
                match kind {
                    0 => {
                        if x.to_unreliable(now, &mut m, &mut st) == ToUnreliable::Send {
                            let p = Packet::new_checked(&m[..]).unwrap();
                            proptest::prop_assert!(!is_ack(p.primitive()));
                            if tid == 0 && expects_answer(p.primitive()) {
                                proptest::prop_assert_ne!(p.transaction_id(), 0);
                            }
                        }
                    }
                    1 => {
                        let v = x.from_unreliable(now, &mut m, &mut reply, &mut st);
                        if v.relay {
                            let p = Packet::new_checked(&m[..]).unwrap();
                            proptest::prop_assert!(!p.responder() && !is_ack(p.primitive()));
                        }
                        if v.reply > 0 {
                            let a = Packet::new_checked(&reply[..v.reply]).unwrap();
                            proptest::prop_assert!(a.responder());
                        }
                    }
                    _ => while x.poll_retransmit(now, &mut out, &mut st).is_some() {},
                }
                proptest::prop_assert!(x.waiting() <= cfg.requests);
            }
        }
    }

    // ---- bounds ----

    #[test]
    fn tables_are_bounded_and_overflow_is_counted() {
        let cfg = TransactionConfig {
            requests: 2,
            answers: 2,
            max_stored: 64,
            ..TransactionConfig::default()
        };
        let mut x = Transactions::new(cfg, 1);
        let mut st = TransactionStats::default();
        for tid in 1..=3 {
            let mut m = msg(1, false, Primitive::FloorRequest, tid);
            assert_eq!(x.to_unreliable(t(0), &mut m, &mut st), ToUnreliable::Send);
        }
        assert_eq!(
            (x.waiting(), st.overflow),
            (2, 1),
            "in-flight requests are not evicted"
        );
        let mut reply = [0u8; 64];
        for tid in 1..=3 {
            let mut m = msg(2, false, Primitive::FloorQuery, tid);
            assert!(x.from_unreliable(t(0), &mut m, &mut reply, &mut st).relay);
        }
        assert_eq!(st.overflow, 2, "the oldest remembered request forgotten");
        // Too large to keep: tracked for its answer, never retransmitted.
        let mut big = msg(1, false, Primitive::FloorRequest, 50);
        big.resize(200, 0);
        let units = ((200 - HEADER_LEN) / 4) as u16;
        Packet::new_unchecked(&mut big[..]).set_payload_length(units);
        let mut x = Transactions::new(cfg, 1);
        x.to_unreliable(t(0), &mut big, &mut st);
        assert_eq!(st.unstored, 1);
        let mut out = [0u8; 256];
        assert_eq!(x.poll_retransmit(t(8000), &mut out, &mut st), None);
    }
}
