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
//!
//! This file holds the message codec: [`Packet`], [`Repr`], the attribute views and
//! [`BfcpError`]. Each other part has its own file: the message writers the lab, the benchmarks
//! and the tests send with ([`MessageWriter`] and one function per primitive, `emit.rs`), the
//! counters ([`BfcpStats`], `counters.rs`), TCP stream framing ([`StreamFramer`], `stream.rs`),
//! TCP → UDP fragmentation ([`Fragmenter`], `fragment.rs`), UDP → TCP reassembly
//! ([`Reassembler`], `reassembly.rs`) and the TCP↔UDP transaction layer ([`Transactions`],
//! `interwork.rs`).

use core::fmt;

mod counters;
mod emit;
mod fragment;
mod interwork;
mod reassembly;
mod stream;

pub use counters::BfcpStats;
pub use emit::{
    error, floor_query, floor_release, floor_request, floor_request_query, floor_request_status,
    floor_request_status_ack, floor_status, floor_status_ack, goodbye, goodbye_ack, hello,
    hello_ack, FloorRequest, FloorRequestInformation, Header, MessageWriter,
};
pub use fragment::{to_reliable, Fragmenter};
pub use interwork::{
    FromUnreliable, ToUnreliable, TransactionConfig, TransactionStats, Transactions,
};
pub use reassembly::{Pushed, Reassembler, ReassemblyConfig};
pub use stream::{Framed, StreamFeed, StreamFramer};

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
    /// A message to write lacks an attribute its primitive requires (RFC 8855 §5.3), e.g. a
    /// FloorRequest without a floor.
    MissingAttribute,
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
            BfcpError::MissingAttribute => "BFCP message lacks a required attribute",
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
    /// BFCP primitives (RFC 8855 §5.1, Table 1), with the direction each is sent in; a client is
    /// a floor participant or a chair.
    Primitive {
        /// 1, participant → server: asks for one or more floors.
        FloorRequest = 1,
        /// 2, participant → server: cancels a floor request, or releases the floor it granted.
        FloorRelease = 2,
        /// 3, client → server: asks for the status of one floor request.
        FloorRequestQuery = 3,
        /// 4, server → client: the status of a floor request, answered or unsolicited.
        FloorRequestStatus = 4,
        /// 5, client → server: asks about a user and that user's floor requests.
        UserQuery = 5,
        /// 6, server → client: the answer to a UserQuery.
        UserStatus = 6,
        /// 7, client → server: asks to be kept informed of the status of floors.
        FloorQuery = 7,
        /// 8, server → client: the status of a floor, answered or unsolicited.
        FloorStatus = 8,
        /// 9, chair → server: grants, denies or revokes a floor request.
        ChairAction = 9,
        /// 10, server → chair: the answer to a ChairAction.
        ChairActionAck = 10,
        /// 11, client → server: checks that the server is alive and asks what it supports.
        Hello = 11,
        /// 12, server → client: answers Hello, listing the supported primitives and attributes.
        HelloAck = 12,
        /// 13, server → client: a received message was refused; ERROR-CODE says why.
        Error = 13,
        /// 14, client → server: acknowledges a FloorRequestStatus; unreliable transports only (§8).
        FloorRequestStatusAck = 14,
        /// 15, client → server: acknowledges a FloorStatus; unreliable transports only (§8).
        FloorStatusAck = 15,
        /// 16, either direction: the sender is leaving; the peer answers with GoodbyeAck.
        Goodbye = 16,
        /// 17, either direction: the answer to a Goodbye.
        GoodbyeAck = 17,
    }
}

u8_enum! {
    /// BFCP attribute types (RFC 8855 §5.2, Table 2).
    AttributeType {
        /// 1, Unsigned16: the user a chair's third-party request is made for.
        BeneficiaryId = 1,
        /// 2, Unsigned16: the floor the message is about.
        FloorId = 2,
        /// 3, Unsigned16: the floor request the message is about, as the server numbered it.
        FloorRequestId = 3,
        /// 4, OctetString16: the priority asked for a floor request, in its top 3 bits.
        Priority = 4,
        /// 5, OctetString16: a floor request's status and its position in the queue.
        RequestStatus = 5,
        /// 6, OctetString: the error code of an Error message, with optional details.
        ErrorCode = 6,
        /// 7, OctetString: UTF-8 text about an error, for humans.
        ErrorInfo = 7,
        /// 8, OctetString: UTF-8 text a participant adds to a floor request.
        ParticipantProvidedInfo = 8,
        /// 9, OctetString: UTF-8 text about a floor request's status.
        StatusInfo = 9,
        /// 10, OctetString: the attribute types a server supports (in HelloAck).
        SupportedAttributes = 10,
        /// 11, OctetString: the primitives a server supports (in HelloAck).
        SupportedPrimitives = 11,
        /// 12, OctetString: a user's display name, UTF-8.
        UserDisplayName = 12,
        /// 13, OctetString: a user's URI.
        UserUri = 13,
        /// 14, Grouped: a beneficiary's ID, display name and URI.
        BeneficiaryInformation = 14,
        /// 15, Grouped: one floor request, its statuses and who made it.
        FloorRequestInformation = 15,
        /// 16, Grouped: the user who made a third-party request.
        RequestedByInformation = 16,
        /// 17, Grouped: the status of one floor within a floor request.
        FloorRequestStatus = 17,
        /// 18, Grouped: the status of a floor request as a whole.
        OverallRequestStatus = 18,
    }
}

u8_enum! {
    /// The Request Status of a REQUEST-STATUS attribute (RFC 8855 §5.2.5).
    RequestStatus {
        /// 1: queued, not yet accepted.
        Pending = 1,
        /// 2: accepted, waiting for the floor.
        Accepted = 2,
        /// 3: the floor is the requester's.
        Granted = 3,
        /// 4: refused.
        Denied = 4,
        /// 5: withdrawn by the requester before it was granted.
        Cancelled = 5,
        /// 6: given back by the requester after it was granted.
        Released = 6,
        /// 7: taken back by the chair.
        Revoked = 7,
    }
}

u8_enum! {
    /// The Error Code of an ERROR-CODE attribute (RFC 8855 §5.2.6, Table 5).
    ErrorCode {
        /// 1: the conference does not exist.
        ConferenceDoesNotExist = 1,
        /// 2: the user does not exist.
        UserDoesNotExist = 2,
        /// 3: the primitive is unknown.
        UnknownPrimitive = 3,
        /// 4: mandatory attributes are unknown; the details list their types.
        UnknownMandatoryAttribute = 4,
        /// 5: the sender may not do that.
        UnauthorizedOperation = 5,
        /// 6: no such floor.
        InvalidFloorId = 6,
        /// 7: no such floor request.
        FloorRequestIdDoesNotExist = 7,
        /// 8: the user already has the most floor requests this floor allows.
        MaxFloorRequestsReached = 8,
        /// 9: use TLS.
        UseTls = 9,
        /// 10: the message could not be parsed.
        UnableToParseMessage = 10,
        /// 11: use DTLS.
        UseDtls = 11,
        /// 12: the version is not supported.
        UnsupportedVersion = 12,
        /// 13: the message length is wrong.
        IncorrectMessageLength = 13,
        /// 14: any other error.
        GenericError = 14,
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

    /// The 7-bit Type, from the first octet's high bits (RFC 8855 §5.2).
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

/// Iterates over the attributes of a payload. Yields an error (once) and stops on a
/// malformed attribute.
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
    /// The Type; [`AttributeRepr::emit`] refuses a value over 127 (it has 7 bits on the wire).
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
    /// The primitive; an unknown value is kept as [`Primitive::Unknown`] and emitted as it was.
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

#[cfg(test)]
mod tests;
