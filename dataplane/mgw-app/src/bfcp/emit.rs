//! Writers for whole BFCP messages (RFC 8855 §5): the common header and the attributes of
//! [`MessageWriter`], and one function per primitive on top of it ([`floor_request`],
//! [`floor_request_status`], [`hello`], …).
//!
//! Everything appends to a caller's `Vec<u8>`, so a sender in a loop reuses one buffer. What is
//! written parses with [`Repr::parse`](super::Repr::parse): version 1 or 2, F clear (a whole
//! message; [`Fragmenter`](super::Fragmenter) cuts fragments from it), Payload Length counting
//! the attributes, every attribute padded to 4 octets. On an error nothing is left in the
//! buffer.
//!
//! The per-primitive functions follow the ABNF of RFC 8855 §5.3 (attributes in its order) for
//! the attributes they take; [`MessageWriter`] writes any primitive with any attributes, in
//! the order the caller gives, for messages outside that grammar.
//!
//! The M (mandatory) bit: set on the identifiers, statuses, error codes, the HelloAck lists and
//! the grouped attributes, clear on the free text (PARTICIPANT-PROVIDED-INFO, STATUS-INFO,
//! ERROR-INFO, USER-DISPLAY-NAME, USER-URI) and on PRIORITY, which a server may ignore.
//! [`MessageWriter::attribute`] sets it as the caller says.

use super::{
    AttributeType, BfcpError, ErrorCode, Packet, Primitive, RequestStatus, HEADER_LEN, R_FLAG,
};

/// The common-header fields a sender chooses (RFC 8855 §5.1); the primitive is the writer's and
/// Payload Length is counted, F is clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Ver: 1 over reliable transports (TCP, TLS), 2 over unreliable ones (UDP, DTLS).
    pub version: u8,
    /// R: set on a message that answers a request (it matters over unreliable transports).
    pub responder: bool,
    /// Conference ID.
    pub conference_id: u32,
    /// Transaction ID (0 for a server-initiated message over a reliable transport).
    pub transaction_id: u16,
    /// User ID.
    pub user_id: u16,
}

impl Header {
    /// A header with R clear.
    pub const fn new(version: u8, conference_id: u32, transaction_id: u16, user_id: u16) -> Self {
        Header {
            version,
            responder: false,
            conference_id,
            transaction_id,
            user_id,
        }
    }

    /// The same header with R set as given.
    pub const fn with_responder(mut self, responder: bool) -> Self {
        self.responder = responder;
        self
    }

    /// The header of a received message (version, R, conference, transaction and user IDs), to
    /// answer it with the same IDs.
    pub fn of<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Header {
            version: p.version(),
            responder: p.responder(),
            conference_id: p.conference_id(),
            transaction_id: p.transaction_id(),
            user_id: p.user_id(),
        }
    }
}

/// Appends one message to a `Vec<u8>`: [`MessageWriter::new`] writes the common header, the
/// attribute methods append padded attributes (RFC 8855 §5.2: Type and M bit in the first
/// octet, Length counting the 2 header octets and the value but not the padding, zero padding
/// to 4 octets), [`MessageWriter::finish`] fills in Payload Length.
///
/// ```
/// # use mgw_app::bfcp::{Header, MessageWriter, Packet, Primitive, Repr};
/// let mut out = Vec::new();
/// let mut w = MessageWriter::new(&mut out, &Header::new(1, 7, 2, 3), Primitive::FloorRequest);
/// w.floor_id(1).priority(2);
/// assert_eq!(w.finish(), Ok(20));
/// let r = Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap();
/// assert_eq!((r.primitive, r.payload.len()), (Primitive::FloorRequest, 8));
/// ```
#[derive(Debug)]
#[must_use = "finish() writes Payload Length"]
pub struct MessageWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Where the message starts in `out`.
    start: usize,
    /// The first error; later writes are skipped and `finish` removes the message.
    error: Option<BfcpError>,
}

impl<'o> MessageWriter<'o> {
    /// Appends the common header of a `primitive` message (Payload Length 0 until
    /// [`MessageWriter::finish`]). A version other than 1 or 2 makes `finish` fail with
    /// [`BfcpError::Version`].
    pub fn new(out: &'o mut Vec<u8>, header: &Header, primitive: Primitive) -> Self {
        let start = out.len();
        let error = (!matches!(header.version, 1 | 2)).then_some(BfcpError::Version);
        let r = if header.responder { R_FLAG } else { 0 };
        out.reserve(HEADER_LEN + 16);
        out.extend_from_slice(&[(header.version << 5) | r, u8::from(primitive), 0, 0]);
        out.extend_from_slice(&header.conference_id.to_be_bytes());
        out.extend_from_slice(&header.transaction_id.to_be_bytes());
        out.extend_from_slice(&header.user_id.to_be_bytes());
        MessageWriter { out, start, error }
    }

    fn fail(&mut self, e: BfcpError) {
        self.error.get_or_insert(e);
    }

    /// Writes a TLV whose value the closure appends: header, value, Length, padding.
    fn tlv(&mut self, kind: AttributeType, mandatory: bool, value: impl FnOnce(&mut Vec<u8>)) {
        if self.error.is_some() {
            return;
        }
        let t = u8::from(kind);
        if t > 127 {
            return self.fail(BfcpError::TooLarge);
        }
        let at = self.out.len();
        self.out
            .extend_from_slice(&[(t << 1) | u8::from(mandatory), 0]);
        value(self.out);
        let len = self.out.len() - at;
        let Ok(l) = u8::try_from(len) else {
            return self.fail(BfcpError::TooLarge);
        };
        self.out[at + 1] = l;
        self.out.resize(at + ((len + 3) & !3), 0);
    }

    /// An attribute with this type, M bit and value (at most 253 octets: Length is 8 bits and
    /// counts the 2-octet header), zero padded.
    pub fn attribute(&mut self, kind: AttributeType, mandatory: bool, value: &[u8]) -> &mut Self {
        self.tlv(kind, mandatory, |o| o.extend_from_slice(value));
        self
    }

    fn u16_attribute(&mut self, kind: AttributeType, value: u16) -> &mut Self {
        self.attribute(kind, true, &value.to_be_bytes())
    }

    /// FLOOR-ID (§5.2.2), M set.
    pub fn floor_id(&mut self, floor_id: u16) -> &mut Self {
        self.u16_attribute(AttributeType::FloorId, floor_id)
    }

    /// FLOOR-REQUEST-ID (§5.2.3), M set.
    pub fn floor_request_id(&mut self, floor_request_id: u16) -> &mut Self {
        self.u16_attribute(AttributeType::FloorRequestId, floor_request_id)
    }

    /// BENEFICIARY-ID (§5.2.1), M set.
    pub fn beneficiary_id(&mut self, beneficiary_id: u16) -> &mut Self {
        self.u16_attribute(AttributeType::BeneficiaryId, beneficiary_id)
    }

    /// PRIORITY (§5.2.4), M clear: `priority` (0 lowest, 2 normal, 4 highest; at most 7) in the
    /// top 3 bits of the 16-bit value.
    pub fn priority(&mut self, priority: u8) -> &mut Self {
        if priority > 7 {
            self.fail(BfcpError::TooLarge);
            return self;
        }
        self.attribute(AttributeType::Priority, false, &[priority << 5, 0])
    }

    /// REQUEST-STATUS (§5.2.5), M set: the status and the queue position (0 when not queued).
    pub fn request_status(&mut self, status: RequestStatus, queue_position: u8) -> &mut Self {
        self.attribute(
            AttributeType::RequestStatus,
            true,
            &[u8::from(status), queue_position],
        )
    }

    /// ERROR-CODE (§5.2.6), M set: the code and its details (for
    /// [`ErrorCode::UnknownMandatoryAttribute`], one octet per unknown type, type << 1).
    pub fn error_code(&mut self, code: ErrorCode, details: &[u8]) -> &mut Self {
        self.tlv(AttributeType::ErrorCode, true, |o| {
            o.push(u8::from(code));
            o.extend_from_slice(details);
        });
        self
    }

    /// ERROR-INFO (§5.2.7), M clear: UTF-8 text about an error.
    pub fn error_info(&mut self, text: &[u8]) -> &mut Self {
        self.attribute(AttributeType::ErrorInfo, false, text)
    }

    /// PARTICIPANT-PROVIDED-INFO (§5.2.8), M clear: UTF-8 text from the requester.
    pub fn participant_provided_info(&mut self, text: &[u8]) -> &mut Self {
        self.attribute(AttributeType::ParticipantProvidedInfo, false, text)
    }

    /// STATUS-INFO (§5.2.9), M clear: UTF-8 text about a status.
    pub fn status_info(&mut self, text: &[u8]) -> &mut Self {
        self.attribute(AttributeType::StatusInfo, false, text)
    }

    /// SUPPORTED-ATTRIBUTES (§5.2.10), M set: one octet per type (type << 1, R bit clear).
    pub fn supported_attributes(&mut self, kinds: &[AttributeType]) -> &mut Self {
        self.tlv(AttributeType::SupportedAttributes, true, |o| {
            o.extend(kinds.iter().map(|&k| u8::from(k) << 1));
        });
        self
    }

    /// SUPPORTED-PRIMITIVES (§5.2.11), M set: one octet per primitive.
    pub fn supported_primitives(&mut self, primitives: &[Primitive]) -> &mut Self {
        self.tlv(AttributeType::SupportedPrimitives, true, |o| {
            o.extend(primitives.iter().map(|&p| u8::from(p)));
        });
        self
    }

    /// USER-DISPLAY-NAME (§5.2.12), M clear.
    pub fn user_display_name(&mut self, name: &[u8]) -> &mut Self {
        self.attribute(AttributeType::UserDisplayName, false, name)
    }

    /// USER-URI (§5.2.13), M clear.
    pub fn user_uri(&mut self, uri: &[u8]) -> &mut Self {
        self.attribute(AttributeType::UserUri, false, uri)
    }

    /// A grouped attribute (§5.2.14 to §5.2.18): the header, the 16-bit identifier that opens
    /// it, then the attributes `nested` writes. Its Length counts the header, the identifier and
    /// the nested attributes with their padding, and must fit 8 bits (255 octets).
    pub fn group(
        &mut self,
        kind: AttributeType,
        mandatory: bool,
        id: u16,
        nested: impl FnOnce(&mut Self),
    ) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        let t = u8::from(kind);
        if t > 127 {
            self.fail(BfcpError::TooLarge);
            return self;
        }
        let at = self.out.len();
        self.out
            .extend_from_slice(&[(t << 1) | u8::from(mandatory), 0]);
        self.out.extend_from_slice(&id.to_be_bytes());
        nested(self);
        // Every nested attribute is padded: the group is a whole number of 4-octet units.
        match u8::try_from(self.out.len() - at) {
            Ok(l) => self.out[at + 1] = l,
            Err(_) => self.fail(BfcpError::TooLarge),
        }
        self
    }

    /// BENEFICIARY-INFORMATION (§5.2.14), M set: the beneficiary, then `nested` (USER-DISPLAY-NAME,
    /// USER-URI).
    pub fn beneficiary_information(
        &mut self,
        beneficiary_id: u16,
        nested: impl FnOnce(&mut Self),
    ) -> &mut Self {
        self.group(
            AttributeType::BeneficiaryInformation,
            true,
            beneficiary_id,
            nested,
        )
    }

    /// FLOOR-REQUEST-INFORMATION (§5.2.15), M set: the floor request, then `nested`
    /// (OVERALL-REQUEST-STATUS, one FLOOR-REQUEST-STATUS per floor, …).
    pub fn floor_request_information(
        &mut self,
        floor_request_id: u16,
        nested: impl FnOnce(&mut Self),
    ) -> &mut Self {
        self.group(
            AttributeType::FloorRequestInformation,
            true,
            floor_request_id,
            nested,
        )
    }

    /// FLOOR-REQUEST-STATUS (§5.2.17), M set: the floor, then `nested` (REQUEST-STATUS,
    /// STATUS-INFO).
    pub fn floor_request_status(
        &mut self,
        floor_id: u16,
        nested: impl FnOnce(&mut Self),
    ) -> &mut Self {
        self.group(AttributeType::FloorRequestStatus, true, floor_id, nested)
    }

    /// OVERALL-REQUEST-STATUS (§5.2.18), M set: the floor request, then `nested`
    /// (REQUEST-STATUS, STATUS-INFO).
    pub fn overall_request_status(
        &mut self,
        floor_request_id: u16,
        nested: impl FnOnce(&mut Self),
    ) -> &mut Self {
        self.group(
            AttributeType::OverallRequestStatus,
            true,
            floor_request_id,
            nested,
        )
    }

    /// Fills in Payload Length; returns the message's length.
    ///
    /// # Errors
    /// [`BfcpError::Version`] for a version other than 1 or 2, [`BfcpError::TooLarge`] for an
    /// attribute value over 253 octets, a grouped attribute over 255, a type over 127, a
    /// priority over 7 or a payload over 65535 units. The message is then removed from the
    /// buffer.
    pub fn finish(self) -> Result<usize, BfcpError> {
        let len = self.out.len() - self.start;
        let units = u16::try_from((len - HEADER_LEN) / 4);
        match (self.error, units) {
            (None, Ok(units)) => {
                debug_assert_eq!(len % 4, 0);
                self.out[self.start + 2..self.start + 4].copy_from_slice(&units.to_be_bytes());
                Ok(len)
            }
            (e, _) => {
                self.out.truncate(self.start);
                Err(e.unwrap_or(BfcpError::TooLarge))
            }
        }
    }
}

/// What a FloorRequest (RFC 8855 §5.3.1) asks for: `1*FLOOR-ID [BENEFICIARY-ID]
/// [PARTICIPANT-PROVIDED-INFO] [PRIORITY]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FloorRequest<'a> {
    /// The floors asked for (at least one).
    pub floor_ids: &'a [u16],
    /// The user a chair asks on behalf of, if any.
    pub beneficiary_id: Option<u16>,
    /// Text for the chair, if any.
    pub participant_provided_info: Option<&'a [u8]>,
    /// The priority asked for (0 lowest, 2 normal, 4 highest), if any.
    pub priority: Option<u8>,
}

impl<'a> FloorRequest<'a> {
    /// A request for `floor_ids` with nothing else.
    pub const fn new(floor_ids: &'a [u16]) -> Self {
        FloorRequest {
            floor_ids,
            beneficiary_id: None,
            participant_provided_info: None,
            priority: None,
        }
    }
}

/// One floor request as a FloorRequestStatus or FloorStatus reports it: a
/// FLOOR-REQUEST-INFORMATION (RFC 8855 §5.2.15) holding an OVERALL-REQUEST-STATUS (its
/// REQUEST-STATUS and optional STATUS-INFO) and one FLOOR-REQUEST-STATUS per floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FloorRequestInformation<'a> {
    /// The floor request, as the server numbered it.
    pub floor_request_id: u16,
    /// Its status.
    pub status: RequestStatus,
    /// Its position in the queue (0 when not queued).
    pub queue_position: u8,
    /// Text about the status, if any.
    pub status_info: Option<&'a [u8]>,
    /// The floors it is for (at least one).
    pub floor_ids: &'a [u16],
}

impl FloorRequestInformation<'_> {
    fn write(&self, w: &mut MessageWriter<'_>) {
        if self.floor_ids.is_empty() {
            w.fail(BfcpError::MissingAttribute);
            return;
        }
        w.floor_request_information(self.floor_request_id, |w| {
            w.overall_request_status(self.floor_request_id, |w| {
                w.request_status(self.status, self.queue_position);
                if let Some(text) = self.status_info {
                    w.status_info(text);
                }
            });
            for &f in self.floor_ids {
                w.floor_request_status(f, |_| {});
            }
        });
    }
}

/// FloorRequest (§5.3.1).
///
/// # Errors
/// [`BfcpError::MissingAttribute`] without a floor; as [`MessageWriter::finish`].
pub fn floor_request(
    out: &mut Vec<u8>,
    header: &Header,
    request: &FloorRequest<'_>,
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::FloorRequest);
    if request.floor_ids.is_empty() {
        w.fail(BfcpError::MissingAttribute);
    }
    for &f in request.floor_ids {
        w.floor_id(f);
    }
    if let Some(b) = request.beneficiary_id {
        w.beneficiary_id(b);
    }
    if let Some(text) = request.participant_provided_info {
        w.participant_provided_info(text);
    }
    if let Some(p) = request.priority {
        w.priority(p);
    }
    w.finish()
}

/// FloorRelease (§5.3.2) of one floor request.
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn floor_release(
    out: &mut Vec<u8>,
    header: &Header,
    floor_request_id: u16,
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::FloorRelease);
    w.floor_request_id(floor_request_id);
    w.finish()
}

/// FloorRequestQuery (§5.3.3) about one floor request.
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn floor_request_query(
    out: &mut Vec<u8>,
    header: &Header,
    floor_request_id: u16,
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::FloorRequestQuery);
    w.floor_request_id(floor_request_id);
    w.finish()
}

/// FloorRequestStatus (§5.3.4): the status of one floor request.
///
/// # Errors
/// [`BfcpError::MissingAttribute`] without a floor; as [`MessageWriter::finish`].
pub fn floor_request_status(
    out: &mut Vec<u8>,
    header: &Header,
    info: &FloorRequestInformation<'_>,
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::FloorRequestStatus);
    info.write(&mut w);
    w.finish()
}

/// FloorQuery (§5.3.7): asks to be told about these floors (none: stop being told).
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn floor_query(
    out: &mut Vec<u8>,
    header: &Header,
    floor_ids: &[u16],
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::FloorQuery);
    for &f in floor_ids {
        w.floor_id(f);
    }
    w.finish()
}

/// FloorStatus (§5.3.8): the floor, if any, and the floor requests for it.
///
/// # Errors
/// [`BfcpError::MissingAttribute`] for a request without a floor; as [`MessageWriter::finish`].
pub fn floor_status(
    out: &mut Vec<u8>,
    header: &Header,
    floor_id: Option<u16>,
    requests: &[FloorRequestInformation<'_>],
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::FloorStatus);
    if let Some(f) = floor_id {
        w.floor_id(f);
    }
    for r in requests {
        r.write(&mut w);
    }
    w.finish()
}

/// Hello (§5.3.11): the common header alone.
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn hello(out: &mut Vec<u8>, header: &Header) -> Result<usize, BfcpError> {
    MessageWriter::new(out, header, Primitive::Hello).finish()
}

/// HelloAck (§5.3.12): the primitives and attributes the sender supports.
///
/// # Errors
/// As [`MessageWriter::finish`] (at most 253 of each).
pub fn hello_ack(
    out: &mut Vec<u8>,
    header: &Header,
    primitives: &[Primitive],
    attributes: &[AttributeType],
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::HelloAck);
    w.supported_primitives(primitives)
        .supported_attributes(attributes);
    w.finish()
}

/// Error (§5.3.13): ERROR-CODE with its details, and ERROR-INFO when `info` is given.
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn error(
    out: &mut Vec<u8>,
    header: &Header,
    code: ErrorCode,
    details: &[u8],
    info: Option<&[u8]>,
) -> Result<usize, BfcpError> {
    let mut w = MessageWriter::new(out, header, Primitive::Error);
    w.error_code(code, details);
    if let Some(text) = info {
        w.error_info(text);
    }
    w.finish()
}

/// FloorRequestStatusAck (§5.3.14): the common header alone (unreliable transports; the
/// header echoes the FloorRequestStatus's IDs with R set).
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn floor_request_status_ack(out: &mut Vec<u8>, header: &Header) -> Result<usize, BfcpError> {
    MessageWriter::new(out, header, Primitive::FloorRequestStatusAck).finish()
}

/// FloorStatusAck (§5.3.15): the common header alone (unreliable transports).
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn floor_status_ack(out: &mut Vec<u8>, header: &Header) -> Result<usize, BfcpError> {
    MessageWriter::new(out, header, Primitive::FloorStatusAck).finish()
}

/// Goodbye (§5.3.16): the common header alone.
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn goodbye(out: &mut Vec<u8>, header: &Header) -> Result<usize, BfcpError> {
    MessageWriter::new(out, header, Primitive::Goodbye).finish()
}

/// GoodbyeAck (§5.3.17): the common header alone.
///
/// # Errors
/// As [`MessageWriter::finish`].
pub fn goodbye_ack(out: &mut Vec<u8>, header: &Header) -> Result<usize, BfcpError> {
    MessageWriter::new(out, header, Primitive::GoodbyeAck).finish()
}
