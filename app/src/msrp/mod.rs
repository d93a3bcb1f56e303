//! MSRP (RFC 4975) frame parsing for the relay, and To-Path/From-Path rewriting (RFC 4976 style).
//!
//! This file owns three things:
//! - [`MsrpParser`]: an incremental, allocation-free (after construction) frame parser for a TCP
//!   byte stream. It is fed successive slices, split anywhere, and reports [`MsrpEvent`]s. It copies
//!   the start line and headers (bounded by [`MsrpConfig::max_header_block`]) into a buffer it
//!   allocated once, and never copies a body: body bytes are reported as ranges of the fed slice so
//!   that the relay forwards them in place.
//! - [`MsrpUri`]: an `msrp:`/`msrps:` URI parser and the RFC 4975 §6.1 comparison.
//! - [`MsrpRewriter`]: the header rewrite an application-aware MGW does when the endpoints do not
//!   use CEMA (RFC 6714), so each endpoint sees the MGW as its MSRP peer.
//!
//! Framing (RFC 4975 §9):
//! ```text
//! req-start  = "MSRP" SP transact-id SP method CRLF
//! resp-start = "MSRP" SP transact-id SP status-code [SP comment] CRLF
//! headers    = To-Path CRLF From-Path CRLF *( header CRLF )
//! body       = CRLF data CRLF            ; only in requests
//! end-line   = "-------" transact-id continuation-flag CRLF   ; flag: "$" / "+" / "#"
//! ```
//! The data of a request ends only at CRLF + `-------` + the *exact* transaction id of this
//! frame + a flag + CRLF (RFC 4975 §7.1); an end-line for another transaction id inside the body is
//! body.

use core::fmt;

/// Where a header, start-line field or body run lies: `start..end` byte offsets.
///
/// For [`MsrpEvent::Header`] and [`FrameHead`] the offsets index [`MsrpParser::head`]; for
/// [`MsrpEvent::Body`] they index the slice passed to [`MsrpParser::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        // Callers only build spans of buffers bounded by `MsrpConfig` limits (u32 sized) or of
        // slices; a slice beyond 4 GiB would be a caller bug, and saturating keeps us panic-free.
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// As a `Range<usize>`, to index with.
    pub fn range(self) -> core::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Number of bytes.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when the span holds no byte.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// A request method (RFC 4975 §9 `method`, RFC 4976 §5 AUTH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `SEND`: carries (a chunk of) a message.
    Send,
    /// `REPORT`: a delivery report.
    Report,
    /// `AUTH` (RFC 4976): a client authenticating to a relay.
    Auth,
    /// Any other `1*UPALPHA` method; its text is [`FrameHead::method`].
    Other,
}

/// What a frame's start line says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A request.
    Request(Method),
    /// A response with its status code (000..=999).
    Response(u16),
}

/// The end-line's continuation flag (RFC 4975 §9 `continuation-flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continuation {
    /// `$`: the last chunk of the message.
    Complete,
    /// `+`: more chunks follow.
    More,
    /// `#`: the sender aborted the message.
    Aborted,
}

impl Continuation {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'$' => Some(Continuation::Complete),
            b'+' => Some(Continuation::More),
            b'#' => Some(Continuation::Aborted),
            _ => None,
        }
    }

    /// The flag character.
    pub fn as_byte(self) -> u8 {
        match self {
            Continuation::Complete => b'$',
            Continuation::More => b'+',
            Continuation::Aborted => b'#',
        }
    }
}

/// Header names the relay cares about; the rest are [`HeaderName::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// `To-Path` (RFC 4975 §8.1).
    ToPath,
    /// `From-Path`.
    FromPath,
    /// `Message-ID`.
    MessageId,
    /// `Byte-Range`.
    ByteRange,
    /// `Content-Type`.
    ContentType,
    /// `Success-Report`.
    SuccessReport,
    /// `Failure-Report`.
    FailureReport,
    /// `Status` (in REPORT).
    Status,
    /// `Use-Path` (RFC 4976 AUTH responses).
    UsePath,
    /// Anything else, passed through untouched.
    Other,
}

impl HeaderName {
    fn classify(name: &[u8]) -> Self {
        // Header names are case-insensitive (RFC 4975 §9 `hname` is a token; §7.1 says
        // implementations compare them case-insensitively, like SIP).
        const TABLE: [(&[u8], HeaderName); 9] = [
            (b"to-path", HeaderName::ToPath),
            (b"from-path", HeaderName::FromPath),
            (b"message-id", HeaderName::MessageId),
            (b"byte-range", HeaderName::ByteRange),
            (b"content-type", HeaderName::ContentType),
            (b"success-report", HeaderName::SuccessReport),
            (b"failure-report", HeaderName::FailureReport),
            (b"status", HeaderName::Status),
            (b"use-path", HeaderName::UsePath),
        ];
        for (n, h) in TABLE {
            if name.eq_ignore_ascii_case(n) {
                return h;
            }
        }
        HeaderName::Other
    }
}

/// One thing the parser found. Spans index either [`MsrpParser::head`] or the fed slice, as each
/// variant says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsrpEvent {
    /// The start line is complete; transaction id and method are in [`MsrpParser::frame`].
    StartLine {
        /// Request (with method) or response (with status).
        kind: FrameKind,
    },
    /// A header line; `name` and `value` index [`MsrpParser::head`].
    Header {
        /// Which header.
        name: HeaderName,
        /// The header name as sent.
        name_span: Span,
        /// The value, without leading/trailing whitespace.
        value: Span,
    },
    /// The header block is complete. When `body` is true, body events follow.
    HeadersEnd {
        /// True when a blank line introduced a body.
        body: bool,
    },
    /// Body bytes at `range` of the slice passed to [`MsrpParser::feed`]: forward them in place.
    Body {
        /// Offsets into the fed slice.
        range: Span,
    },
    /// Body bytes that arrived at the end of an earlier slice and looked like the start of this
    /// frame's end-line, but were not. They are in [`MsrpParser::carried`] (at most 44 bytes) and
    /// come, in stream order, before any `Body` of the current slice that follows this event.
    BodyCarry,
    /// The end-line; the frame is complete.
    End {
        /// The continuation flag.
        continuation: Continuation,
    },
}

/// Why a stream was refused. After an error the parser stays failed: the relay releases the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsrpError {
    /// The start line is not `MSRP SP transact-id SP (method / status-code [SP comment])`.
    StartLine,
    /// The transaction id is not `ALPHANUM 3*31ident-char`.
    TransactionId,
    /// A line ended in LF without CR, or CR was not followed by LF.
    LineEnding,
    /// A header line is not `hname ":" SP hval`.
    HeaderLine,
    /// `To-Path` or `From-Path` is missing (RFC 4975 §7.1 makes both mandatory).
    MissingPath,
    /// A response carried a body (RFC 4975 §7.2: responses have none).
    ResponseBody,
    /// A header-block line starting `-------` is not this frame's end-line.
    EndLine,
    /// The start line plus headers exceed [`MsrpConfig::max_header_block`].
    HeaderBlockTooLarge,
    /// The frame exceeds [`MsrpConfig::max_message_size`].
    MessageTooLarge,
}

impl fmt::Display for MsrpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MsrpError::StartLine => "malformed MSRP start line",
            MsrpError::TransactionId => "malformed MSRP transaction id",
            MsrpError::LineEnding => "bare CR or LF in MSRP header block",
            MsrpError::HeaderLine => "malformed MSRP header line",
            MsrpError::MissingPath => "MSRP To-Path or From-Path missing",
            MsrpError::ResponseBody => "MSRP response with a body",
            MsrpError::EndLine => "MSRP end-line does not match the transaction",
            MsrpError::HeaderBlockTooLarge => "MSRP header block too large",
            MsrpError::MessageTooLarge => "MSRP frame too large",
        })
    }
}

impl std::error::Error for MsrpError {}

/// Limits, set per leg at install time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsrpConfig {
    /// Bytes of start line + headers (+ the end-line of a bodiless frame) the parser buffers.
    pub max_header_block: usize,
    /// Bytes of a whole frame, start line to end-line inclusive.
    pub max_message_size: usize,
}

impl Default for MsrpConfig {
    fn default() -> Self {
        // RFC 4975 §7.1 lets chunks be any size; relays commonly cap frames. 4 KiB of headers is
        // many times a normal head (~200 bytes); 1 MiB covers file-transfer chunks.
        MsrpConfig {
            max_header_block: 4096,
            max_message_size: 1 << 20,
        }
    }
}

/// Counters for one leg (RFC 4975 messages; H.248.69 MSRP statistics are derived from these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsrpStats {
    /// Bytes the parser consumed.
    pub bytes: u64,
    /// Body bytes among them.
    pub body_bytes: u64,
    /// Complete SEND frames.
    pub send: u64,
    /// Complete REPORT frames.
    pub report: u64,
    /// Complete AUTH frames.
    pub auth: u64,
    /// Complete requests with another method.
    pub other_requests: u64,
    /// Complete responses by status class: index `code / 100` (0..=9).
    pub responses: [u64; 10],
    /// Frames ended with `+`.
    pub chunks_more: u64,
    /// Frames ended with `#`.
    pub aborted: u64,
    /// Framing errors (at most one per leg, since the leg is then released).
    pub errors: u64,
}

/// Where the parts of the current frame's head lie in [`MsrpParser::head`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHead {
    /// The transaction id.
    pub transaction_id: Span,
    /// The method text (requests) or status code text (responses).
    pub method: Span,
    /// The request/response kind, once the start line is parsed.
    pub kind: Option<FrameKind>,
    /// The To-Path value.
    pub to_path: Option<Span>,
    /// The From-Path value.
    pub from_path: Option<Span>,
    /// The Message-ID value.
    pub message_id: Option<Span>,
    /// The Byte-Range value.
    pub byte_range: Option<Span>,
    /// The Content-Type value.
    pub content_type: Option<Span>,
    /// True when a body follows the header block.
    pub has_body: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the start line (or waiting for the next frame when `head_len == 0`).
    StartLine,
    /// Reading header lines.
    Headers,
    /// Scanning body bytes for the end-line.
    Body,
}

/// Work queued because one call returns one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    /// Emit `End` (frame done).
    End(Continuation),
}

const DASHES: &[u8; 7] = b"-------";
/// `CRLF` + 7 dashes + up to 32 id chars + flag + CR (the LF completes, never carried).
const CARRY_CAP: usize = 2 + 7 + 32 + 1 + 1;

/// The incremental MSRP frame parser for one direction of one leg.
///
/// Usage (the relay's receive path):
/// ```
/// # use mgw_app::msrp::*;
/// let mut p = MsrpParser::new(MsrpConfig::default());
/// let data = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com:7777/s1;tcp\r\n\
/// From-Path: msrp://a.example.com:7654/s2;tcp\r\nContent-Type: text/plain\r\n\r\nHi\r\n-------a786hjs2$\r\n";
/// let mut feed = p.feed(data);
/// let mut body = Vec::new();
/// while let Some(ev) = feed.next_event().unwrap() {
///     if let MsrpEvent::Body { range } = ev { body.extend_from_slice(&data[range.range()]); }
/// }
/// assert_eq!(body, b"Hi");
/// assert_eq!(p.stats().send, 1);
/// ```
#[derive(Debug)]
pub struct MsrpParser {
    cfg: MsrpConfig,
    state: State,
    /// Start line + header lines (+ blank line) of the current frame; allocated once.
    head: Box<[u8]>,
    head_len: usize,
    /// Where the line being assembled starts in `head`.
    line_start: usize,
    /// Bytes of the current frame so far.
    frame_len: usize,
    frame: FrameHead,
    /// Bytes of `CRLF ------- tid flag CR` matched so far in the body.
    match_len: usize,
    /// The continuation flag seen while matching.
    match_flag: u8,
    /// Matched bytes that came from earlier slices (copied here at the end of each slice).
    carry: [u8; CARRY_CAP],
    carry_len: usize,
    /// Length of the carry emitted with the last `BodyCarry`.
    carried_len: usize,
    pending: Pending,
    /// The next byte starts a new frame (the previous head stays readable until then).
    new_frame: bool,
    /// Report each header line as an event (off: only [`FrameHead`] records them).
    header_events: bool,
    failed: Option<MsrpError>,
    stats: MsrpStats,
}

impl MsrpParser {
    /// A parser with the given limits. Allocates the header buffer once.
    pub fn new(cfg: MsrpConfig) -> Self {
        let cap = cfg.max_header_block.clamp(64, u32::MAX as usize / 2);
        MsrpParser {
            cfg,
            state: State::StartLine,
            head: vec![0u8; cap].into_boxed_slice(),
            head_len: 0,
            line_start: 0,
            frame_len: 0,
            frame: FrameHead::default(),
            match_len: 0,
            match_flag: 0,
            carry: [0; CARRY_CAP],
            carry_len: 0,
            carried_len: 0,
            pending: Pending::None,
            new_frame: true,
            header_events: true,
            failed: None,
            stats: MsrpStats::default(),
        }
    }

    /// Whether to report every header line as [`MsrpEvent::Header`] (the default). A relay that
    /// only needs the paths and the counters turns it off: [`MsrpParser::frame`] still records
    /// To-Path, From-Path, Message-ID, Byte-Range and Content-Type, and the feed returns fewer
    /// events per frame.
    pub fn with_header_events(mut self, on: bool) -> Self {
        self.header_events = on;
        self
    }

    /// Starts parsing the next slice of the stream. Drain the returned [`Feed`] with
    /// [`Feed::next_event`] until it returns `Ok(None)` before feeding the following slice:
    /// a feed dropped early loses the unparsed rest of its slice.
    pub fn feed<'p, 'd>(&'p mut self, data: &'d [u8]) -> Feed<'p, 'd> {
        Feed {
            parser: self,
            data,
            pos: 0,
            run_start: 0,
        }
    }

    /// The current frame's start line and header lines (and the blank line when a body
    /// follows), exactly as received. Valid from `StartLine` until the next frame begins.
    pub fn head(&self) -> &[u8] {
        // The line in progress (and a bodiless frame's end-line) is not part of the head.
        &self.head[..self.head_len.min(self.line_start)]
    }

    /// Where the parts of the current frame's head lie in [`MsrpParser::head`].
    pub fn frame(&self) -> &FrameHead {
        &self.frame
    }

    /// The current frame's transaction id.
    pub fn transaction_id(&self) -> &[u8] {
        &self.head[self.frame.transaction_id.range()]
    }

    /// The bytes announced by the last [`MsrpEvent::BodyCarry`].
    pub fn carried(&self) -> &[u8] {
        &self.carry[..self.carried_len]
    }

    /// Counters so far.
    pub fn stats(&self) -> &MsrpStats {
        &self.stats
    }

    /// The error that failed this stream, if any.
    pub fn error(&self) -> Option<MsrpError> {
        self.failed
    }

    /// Writes this frame's end-line (with the CRLF that ends the body when there is one) into
    /// `out`, for a relay that forwards head, body ranges and end-line separately.
    /// Returns the number of bytes written, or `None` when `out` is too small.
    pub fn write_end_line(&self, continuation: Continuation, out: &mut [u8]) -> Option<usize> {
        let tid = self.transaction_id();
        let pre: &[u8] = if self.frame.has_body { b"\r\n" } else { b"" };
        let n = pre.len() + DASHES.len() + tid.len() + 3;
        let out = out.get_mut(..n)?;
        let (a, rest) = out.split_at_mut(pre.len());
        a.copy_from_slice(pre);
        let (b, rest) = rest.split_at_mut(DASHES.len());
        b.copy_from_slice(DASHES);
        let (c, rest) = rest.split_at_mut(tid.len());
        c.copy_from_slice(tid);
        rest.copy_from_slice(&[continuation.as_byte(), b'\r', b'\n']);
        Some(n)
    }

    fn fail(&mut self, e: MsrpError) -> MsrpError {
        if self.failed.is_none() {
            self.stats.errors += 1;
            self.failed = Some(e);
        }
        e
    }

    /// The `m`-th byte expected while matching `CRLF ------- tid`, or `None` past it.
    #[inline]
    fn pattern_byte(&self, m: usize) -> Option<u8> {
        const PRE: &[u8; 9] = b"\r\n-------";
        if m < PRE.len() {
            return Some(PRE[m]);
        }
        let t = self.frame.transaction_id;
        let i = t.start as usize + (m - PRE.len());
        if i < t.end as usize {
            Some(self.head[i])
        } else {
            None
        }
    }

    fn pattern_len(&self) -> usize {
        9 + self.frame.transaction_id.len()
    }

    fn finish_frame(&mut self, c: Continuation) {
        match self.frame.kind {
            Some(FrameKind::Request(Method::Send)) => self.stats.send += 1,
            Some(FrameKind::Request(Method::Report)) => self.stats.report += 1,
            Some(FrameKind::Request(Method::Auth)) => self.stats.auth += 1,
            Some(FrameKind::Request(Method::Other)) => self.stats.other_requests += 1,
            Some(FrameKind::Response(code)) => {
                self.stats.responses[usize::from(code / 100).min(9)] += 1;
            }
            None => {}
        }
        match c {
            Continuation::More => self.stats.chunks_more += 1,
            Continuation::Aborted => self.stats.aborted += 1,
            Continuation::Complete => {}
        }
        self.state = State::StartLine;
        self.new_frame = true;
        self.frame_len = 0;
        self.match_len = 0;
        self.carry_len = 0;
        // `head`/`frame` stay readable until the next frame's first byte arrives.
    }

    /// Starts a new frame: forget the previous head.
    fn begin_frame(&mut self) {
        self.head_len = 0;
        self.line_start = 0;
        self.frame = FrameHead::default();
    }

    fn add_frame_bytes(&mut self, n: usize) -> Result<(), MsrpError> {
        self.stats.bytes += n as u64;
        self.frame_len += n;
        if self.frame_len > self.cfg.max_message_size {
            return Err(self.fail(MsrpError::MessageTooLarge));
        }
        Ok(())
    }

    /// Parses the start line in `head[0..end]` (without CRLF).
    fn parse_start_line(&mut self, end: usize) -> Result<FrameKind, MsrpError> {
        let line = &self.head[..end];
        let rest = line.strip_prefix(b"MSRP ").ok_or(MsrpError::StartLine)?;
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(MsrpError::StartLine)?;
        let tid = &rest[..sp];
        if !valid_transaction_id(tid) {
            return Err(MsrpError::TransactionId);
        }
        let t0 = 5;
        let m0 = t0 + sp + 1;
        let after = &line[m0..];
        self.frame.transaction_id = Span::new(t0, t0 + sp);
        if after.len() >= 3
            && after[..3].iter().all(u8::is_ascii_digit)
            && (after.len() == 3 || after[3] == b' ')
        {
            let code = u16::from(after[0] - b'0') * 100
                + u16::from(after[1] - b'0') * 10
                + u16::from(after[2] - b'0');
            self.frame.method = Span::new(m0, m0 + 3);
            return Ok(FrameKind::Response(code));
        }
        if after.is_empty() || !after.iter().all(u8::is_ascii_uppercase) {
            return Err(MsrpError::StartLine);
        }
        self.frame.method = Span::new(m0, end);
        let m = match after {
            b"SEND" => Method::Send,
            b"REPORT" => Method::Report,
            b"AUTH" => Method::Auth,
            _ => Method::Other,
        };
        Ok(FrameKind::Request(m))
    }

    /// Handles a complete header-block line `head[line_start..end]` (without CRLF).
    fn header_line(&mut self, start: usize, end: usize) -> Result<Option<MsrpEvent>, MsrpError> {
        let line = &self.head[start..end];
        if line.is_empty() {
            // RFC 4975 §9: a blank line separates the headers from the data of a request.
            self.check_paths()?;
            if matches!(self.frame.kind, Some(FrameKind::Response(_))) {
                return Err(MsrpError::ResponseBody);
            }
            self.frame.has_body = true;
            self.state = State::Body;
            self.head_len = end + 2;
            self.line_start = self.head_len;
            return Ok(Some(MsrpEvent::HeadersEnd { body: true }));
        }
        if line.starts_with(DASHES) {
            // A bodiless frame: the end-line follows the headers directly.
            let tid = &self.head[self.frame.transaction_id.range()];
            let l = DASHES.len() + tid.len() + 1;
            if line.len() != l || &line[DASHES.len()..l - 1] != tid {
                return Err(MsrpError::EndLine);
            }
            let c = Continuation::from_byte(line[l - 1]).ok_or(MsrpError::EndLine)?;
            self.check_paths()?;
            self.head_len = start;
            self.line_start = start;
            self.pending = Pending::End(c);
            return Ok(Some(MsrpEvent::HeadersEnd { body: false }));
        }
        // One pass: the name is token characters up to the colon (a colon is not a token char).
        let colon = line
            .iter()
            .position(|&b| !is_token_char(b))
            .filter(|&i| i > 0 && line[i] == b':')
            .ok_or(MsrpError::HeaderLine)?;
        let name = &line[..colon];
        let mut v0 = start + colon + 1;
        let mut v1 = end;
        while v0 < v1 && (self.head[v0] == b' ' || self.head[v0] == b'\t') {
            v0 += 1;
        }
        while v1 > v0 && (self.head[v1 - 1] == b' ' || self.head[v1 - 1] == b'\t') {
            v1 -= 1;
        }
        let h = HeaderName::classify(name);
        let value = Span::new(v0, v1);
        let slot = match h {
            HeaderName::ToPath => Some(&mut self.frame.to_path),
            HeaderName::FromPath => Some(&mut self.frame.from_path),
            HeaderName::MessageId => Some(&mut self.frame.message_id),
            HeaderName::ByteRange => Some(&mut self.frame.byte_range),
            HeaderName::ContentType => Some(&mut self.frame.content_type),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() && matches!(h, HeaderName::ToPath | HeaderName::FromPath) {
                // Two To-Paths would make the rewrite ambiguous.
                return Err(MsrpError::HeaderLine);
            }
            *slot = Some(value);
        }
        if !self.header_events {
            return Ok(None);
        }
        Ok(Some(MsrpEvent::Header {
            name: h,
            name_span: Span::new(start, start + colon),
            value,
        }))
    }

    fn check_paths(&self) -> Result<(), MsrpError> {
        if self.frame.to_path.is_none() || self.frame.from_path.is_none() {
            return Err(MsrpError::MissingPath);
        }
        Ok(())
    }
}

/// One slice being parsed. See [`MsrpParser::feed`].
#[derive(Debug)]
pub struct Feed<'p, 'd> {
    parser: &'p mut MsrpParser,
    data: &'d [u8],
    pos: usize,
    /// Start of the body run not yet reported (body state only).
    run_start: usize,
}

impl Feed<'_, '_> {
    /// The parser, to read [`MsrpParser::head`] and friends between events.
    pub fn parser(&self) -> &MsrpParser {
        self.parser
    }

    /// The next event, `Ok(None)` when the slice is used up (feed the next one).
    ///
    /// # Errors
    /// A framing violation; the parser then stays failed and every later call returns the same
    /// error. The relay releases the leg.
    pub fn next_event(&mut self) -> Result<Option<MsrpEvent>, MsrpError> {
        if let Some(e) = self.parser.failed {
            return Err(e);
        }
        match self.step() {
            Ok(ev) => Ok(ev),
            Err(e) => Err(self.parser.fail(e)),
        }
    }

    fn step(&mut self) -> Result<Option<MsrpEvent>, MsrpError> {
        match core::mem::replace(&mut self.parser.pending, Pending::None) {
            Pending::None => {}
            Pending::End(c) => {
                self.parser.finish_frame(c);
                return Ok(Some(MsrpEvent::End { continuation: c }));
            }
        }
        loop {
            if self.pos >= self.data.len() {
                return Ok(None);
            }
            let ev = match self.parser.state {
                State::StartLine | State::Headers => self.head_step()?,
                State::Body => self.body_step()?,
            };
            if ev.is_some() {
                return Ok(ev);
            }
        }
    }

    /// Copies up to the next LF into the head buffer; handles a completed line.
    fn head_step(&mut self) -> Result<Option<MsrpEvent>, MsrpError> {
        let p = &mut *self.parser;
        if p.new_frame {
            p.new_frame = false;
            p.begin_frame();
        }
        let rest = &self.data[self.pos..];
        // Lines end in CRLF; a CR or LF anywhere else is malformed (RFC 4975 §9: header values
        // and start lines carry no CR/LF). One pass finds the line end and checks this.
        let prev_cr = p.head_len > p.line_start && p.head[p.head_len - 1] == b'\r';
        let (take, line_done) = if prev_cr {
            // The CR ended the previous slice: this slice must start with its LF.
            if rest[0] != b'\n' {
                return Err(MsrpError::LineEnding);
            }
            (1, true)
        } else {
            match find_cr_or_lf(rest) {
                Some(i) if rest[i] == b'\n' => return Err(MsrpError::LineEnding),
                Some(i) if i + 1 < rest.len() => {
                    if rest[i + 1] != b'\n' {
                        return Err(MsrpError::LineEnding);
                    }
                    (i + 2, true)
                }
                Some(i) => (i + 1, false),
                None => (rest.len(), false),
            }
        };
        if p.head_len + take > p.head.len() {
            return Err(MsrpError::HeaderBlockTooLarge);
        }
        p.head[p.head_len..p.head_len + take].copy_from_slice(&rest[..take]);
        p.head_len += take;
        self.pos += take;
        p.add_frame_bytes(take)?;
        if !line_done {
            return Ok(None);
        }
        let start = p.line_start;
        let end = p.head_len;
        p.line_start = end;
        let body_end = end - 2;
        if p.state == State::StartLine {
            let kind = p.parse_start_line(body_end)?;
            p.frame.kind = Some(kind);
            p.state = State::Headers;
            return Ok(Some(MsrpEvent::StartLine { kind }));
        }
        let ev = p.header_line(start, body_end)?;
        if p.state == State::Body {
            self.run_start = self.pos;
        }
        Ok(ev)
    }

    /// The end-line is complete and ends just before `i`: report the body run before it (if
    /// any), then the end.
    fn complete(&mut self, i: usize) -> Result<Option<MsrpEvent>, MsrpError> {
        let p = &mut *self.parser;
        // Body ends where the match began (the carried part of the match lies in earlier slices).
        let in_slice = p.match_len - p.carry_len;
        let body_end = (i - in_slice).max(self.run_start);
        let c = Continuation::from_byte(p.match_flag).unwrap_or(Continuation::Complete);
        let consumed = i - self.pos;
        let body = body_end.saturating_sub(self.run_start);
        // Carried bytes were counted as body only if a mismatch released them.
        p.stats.body_bytes += body as u64;
        self.pos = i;
        p.add_frame_bytes(consumed)?;
        let run = Span::new(self.run_start, body_end);
        self.run_start = i;
        if body > 0 {
            p.pending = Pending::End(c);
            return Ok(Some(MsrpEvent::Body { range: run }));
        }
        p.finish_frame(c);
        Ok(Some(MsrpEvent::End { continuation: c }))
    }

    /// Scans body bytes for `CRLF ------- tid flag CRLF`.
    fn body_step(&mut self) -> Result<Option<MsrpEvent>, MsrpError> {
        let data = self.data;
        let p = &mut *self.parser;
        let plen = p.pattern_len();
        // Bytes of the current match that lie in this slice start here (or at 0 when the match
        // began in an earlier slice and `carry_len > 0`).
        let mut i = self.pos;
        while i < data.len() {
            if p.match_len == 0 {
                match memchr::memchr(b'\r', &data[i..]) {
                    Some(k) => {
                        let j = i + k;
                        // Fast path: the whole end-line candidate lies in this slice, so compare
                        // it at once instead of byte by byte.
                        if let Some(cand) = data.get(j..j + plen + 3) {
                            let tid = &p.head[p.frame.transaction_id.range()];
                            if cand[..9] == *b"\r\n-------"
                                && cand[9..plen] == *tid
                                && Continuation::from_byte(cand[plen]).is_some()
                                && cand[plen + 1..] == *b"\r\n"
                            {
                                p.match_flag = cand[plen];
                                p.match_len = plen + 3;
                                return self.complete(j + plen + 3);
                            }
                            // Not this frame's end-line: the CR is body (the pattern has CR only
                            // at offset 0, so the next candidate is the next CR).
                            i = j + 1;
                            continue;
                        }
                        i = j + 1;
                        p.match_len = 1;
                    }
                    None => {
                        i = data.len();
                        break;
                    }
                }
                continue;
            }
            let b = data[i];
            let m = p.match_len;
            let ok = if m < plen {
                p.pattern_byte(m) == Some(b)
            } else if m == plen {
                if Continuation::from_byte(b).is_some() {
                    p.match_flag = b;
                    true
                } else {
                    false
                }
            } else if m == plen + 1 {
                b == b'\r'
            } else {
                b == b'\n'
            };
            if ok {
                p.match_len += 1;
                i += 1;
                if p.match_len == plen + 3 {
                    return self.complete(i);
                }
                continue;
            }
            // Mismatch: the matched bytes were body. A CR here may start a new match; the
            // pattern has CR only at offset 0, so no shorter restart is possible.
            let had_carry = p.carry_len;
            p.match_len = 0;
            p.carry_len = 0;
            if had_carry > 0 {
                // Those bytes came from earlier slices: report them from the carry buffer before
                // any body of this slice. Body of this slice so far is only match bytes (they
                // followed the carry), so the run starts at `run_start` as before.
                p.carried_len = had_carry;
                p.stats.body_bytes += had_carry as u64;
                let consumed = i - self.pos;
                self.pos = i;
                p.add_frame_bytes(consumed)?;
                return Ok(Some(MsrpEvent::BodyCarry));
            }
        }
        // Slice exhausted. Bytes of an unfinished match are held back (copied to the carry).
        let consumed = i - self.pos;
        let held_in_slice = p.match_len.saturating_sub(p.carry_len);
        let held_start = data.len() - held_in_slice.min(data.len() - self.run_start);
        if p.match_len > 0 {
            let from = data.len() - held_in_slice;
            p.carry[p.carry_len..p.carry_len + held_in_slice].copy_from_slice(&data[from..]);
            p.carry_len = p.match_len;
        }
        self.pos = data.len();
        p.add_frame_bytes(consumed)?;
        let run = Span::new(self.run_start, held_start);
        self.run_start = data.len();
        if run.is_empty() {
            return Ok(None);
        }
        p.stats.body_bytes += run.len() as u64;
        Ok(Some(MsrpEvent::Body { range: run }))
    }
}

impl Iterator for Feed<'_, '_> {
    type Item = Result<MsrpEvent, MsrpError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// RFC 4975 §9: `transact-id = ident`, `ident = ALPHANUM 3*31ident-char`,
/// `ident-char = ALPHANUM / "." / "-" / "+" / "%" / "="`.
pub fn valid_transaction_id(tid: &[u8]) -> bool {
    (4..=32).contains(&tid.len())
        && tid[0].is_ascii_alphanumeric()
        && tid[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'%' | b'='))
}

/// The first CR or LF in `s`. Word-at-a-time (SWAR): header lines are ~40 bytes, too short for
/// SIMD `memchr`'s per-call setup to pay off (callgrind: ~1.3 instructions/byte here against
/// ~180 per call plus ~3 per byte for `memchr`).
fn find_cr_or_lf(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = s.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        let a = x ^ (LO * u64::from(b'\r'));
        let b = x ^ (LO * u64::from(b'\n'));
        // "has a zero byte": exact for the lowest zero byte, which is all we need.
        let m = (a.wrapping_sub(LO) & !a & HI) | (b.wrapping_sub(LO) & !b & HI);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|p| i + p)
}

/// RFC 4975 §9 `hname = ALPHA *token` (RFC 3261 token characters), as a table: one load per byte.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

fn is_token_char(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

// ---------------------------------------------------------------------------------------------
// MSRP URIs (RFC 4975 §6, §9)
// ---------------------------------------------------------------------------------------------

/// Why an MSRP URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UriError {
    /// Not `msrp://` or `msrps://`.
    Scheme,
    /// Empty or malformed host.
    Host,
    /// Port not 1..=5 digits within 0..=65535.
    Port,
    /// A session-id character outside `unreserved / "+" / "=" / "/"`.
    SessionId,
    /// The mandatory `;transport` is missing or not `1*ALPHANUM`.
    Transport,
    /// A URI parameter holds a forbidden character.
    Param,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::Scheme => "MSRP URI scheme is not msrp or msrps",
            UriError::Host => "malformed MSRP URI host",
            UriError::Port => "malformed MSRP URI port",
            UriError::SessionId => "malformed MSRP URI session-id",
            UriError::Transport => "MSRP URI transport missing or malformed",
            UriError::Param => "malformed MSRP URI parameter",
        })
    }
}

impl std::error::Error for UriError {}

/// A parsed `msrp[s]://[userinfo@]host[:port][/session-id];transport[;params]` (RFC 4975 §9),
/// borrowing the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsrpUri<'a> {
    /// `msrps` (TLS) rather than `msrp`.
    pub secure: bool,
    /// The userinfo before `@`, if any.
    pub userinfo: Option<&'a [u8]>,
    /// The host: a name, an IPv4 literal, or an IPv6 literal with its brackets.
    pub host: &'a [u8],
    /// The port, if given.
    pub port: Option<u16>,
    /// The session-id after `/`, if any.
    pub session_id: Option<&'a [u8]>,
    /// The transport parameter (`tcp`).
    pub transport: &'a [u8],
    /// Further `;name[=value]` parameters, with their leading `;` (empty when none).
    pub params: &'a [u8],
}

impl<'a> MsrpUri<'a> {
    /// Parses one URI (no surrounding whitespace).
    ///
    /// # Errors
    /// [`UriError`] names the first part that does not follow RFC 4975 §9.
    pub fn parse(s: &'a [u8]) -> Result<Self, UriError> {
        let (secure, rest) = if s.len() >= 7 && s[..7].eq_ignore_ascii_case(b"msrp://") {
            (false, &s[7..])
        } else if s.len() >= 8 && s[..8].eq_ignore_ascii_case(b"msrps://") {
            (true, &s[8..])
        } else {
            return Err(UriError::Scheme);
        };
        let auth_end = rest
            .iter()
            .position(|&b| b == b'/' || b == b';')
            .unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let (userinfo, hostport) = match authority.iter().rposition(|&b| b == b'@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = if hostport.first() == Some(&b'[') {
            let close = hostport
                .iter()
                .position(|&b| b == b']')
                .ok_or(UriError::Host)?;
            let inner = &hostport[1..close];
            if inner.is_empty()
                || !inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(UriError::Host);
            }
            (&hostport[..=close], &hostport[close + 1..])
        } else {
            let colon = hostport
                .iter()
                .position(|&b| b == b':')
                .unwrap_or(hostport.len());
            (&hostport[..colon], &hostport[colon..])
        };
        if host.is_empty()
            || (host[0] != b'['
                && !host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(UriError::Host);
        }
        let port = match port {
            [] => None,
            [b':', digits @ ..] => Some(parse_port(digits).ok_or(UriError::Port)?),
            _ => return Err(UriError::Host),
        };
        let mut rest = &rest[auth_end..];
        let mut session_id = None;
        if let [b'/', tail @ ..] = rest {
            let end = tail.iter().position(|&b| b == b';').unwrap_or(tail.len());
            let sid = &tail[..end];
            if sid.is_empty()
                || !sid.iter().all(|&b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'=' | b'/')
                })
            {
                return Err(UriError::SessionId);
            }
            session_id = Some(sid);
            rest = &tail[end..];
        }
        let [b';', tail @ ..] = rest else {
            return Err(UriError::Transport);
        };
        let end = tail.iter().position(|&b| b == b';').unwrap_or(tail.len());
        let transport = &tail[..end];
        if transport.is_empty() || !transport.iter().all(u8::is_ascii_alphanumeric) {
            return Err(UriError::Transport);
        }
        let params = &tail[end..];
        if !params.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(UriError::Param);
        }
        Ok(MsrpUri {
            secure,
            userinfo,
            host,
            port,
            session_id,
            transport,
            params,
        })
    }

    /// RFC 4975 §6.1 equivalence: scheme and host compare case-insensitively, ports must both be
    /// absent or equal, the session-id compares exactly (case-sensitively), the transport
    /// case-insensitively. Userinfo and other parameters do not take part.
    pub fn equivalent(&self, other: &MsrpUri<'_>) -> bool {
        self.secure == other.secure
            && self.host.eq_ignore_ascii_case(other.host)
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(other.transport)
    }
}

fn parse_port(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = d
        .iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
    u16::try_from(v).ok()
}

/// The URIs of a To-Path/From-Path value or an SDP `a=path` (space-separated, RFC 4975 §9).
pub fn path_uris(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|s| !s.is_empty())
}

/// True when two paths have the same number of URIs and each pair is [`MsrpUri::equivalent`].
/// A URI that does not parse makes the paths unequal.
pub fn paths_equivalent(a: &[u8], b: &[u8]) -> bool {
    let mut ia = path_uris(a);
    let mut ib = path_uris(b);
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => match (MsrpUri::parse(x), MsrpUri::parse(y)) {
                (Ok(x), Ok(y)) if x.equivalent(&y) => {}
                _ => return false,
            },
            _ => return false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// To-Path / From-Path rewriting (aware mode without CEMA)
// ---------------------------------------------------------------------------------------------

/// One leg of a relayed MSRP session, as the MGC's SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpLegPaths {
    /// The MGW's own URI on this leg: what it put in the Local SDP `a=path`.
    pub local_uri: Vec<u8>,
    /// The peer's `a=path` from the Remote SDP (one URI, or several when the peer uses relays).
    pub remote_path: Vec<u8>,
}

impl MsrpLegPaths {
    /// The same URIs, borrowed.
    pub fn as_paths_ref(&self) -> LegPathsRef<'_> {
        LegPathsRef {
            local_uri: &self.local_uri,
            remote_path: &self.remote_path,
        }
    }
}

/// One leg's URIs, borrowed: for a relay that keeps them in its own fixed-size storage (the
/// worker carries them inline in its install command) instead of an [`MsrpLegPaths`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegPathsRef<'a> {
    /// The MGW's own URI on this leg (its Local SDP `a=path`).
    pub local_uri: &'a [u8],
    /// The peer's `a=path` (one URI, or several when the peer uses relays).
    pub remote_path: &'a [u8],
}

impl LegPathsRef<'_> {
    /// Checks that the local URI and every URI of the remote path parse (RFC 4975 §9), and that
    /// the remote path is not empty. Slow path: call it at install time.
    ///
    /// # Errors
    /// The first URI that does not parse ([`UriError::Scheme`] for an empty remote path).
    pub fn validate(&self) -> Result<(), UriError> {
        MsrpUri::parse(self.local_uri)?;
        let mut n = 0;
        for u in path_uris(self.remote_path) {
            MsrpUri::parse(u)?;
            n += 1;
        }
        if n == 0 {
            return Err(UriError::Scheme);
        }
        Ok(())
    }

    /// The most a head can grow when it leaves on this leg: its To-Path becomes this leg's
    /// remote path and its From-Path this leg's local URI (the old values are at least one
    /// byte each, so this bounds the growth from above).
    pub fn max_growth(&self) -> usize {
        self.local_uri.len() + self.remote_path.len()
    }
}

/// Which leg a frame arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegSide {
    /// Leg A (for example the access side).
    A,
    /// Leg B (for example the core side).
    B,
}

impl LegSide {
    /// The other leg.
    pub fn other(self) -> LegSide {
        match self {
            LegSide::A => LegSide::B,
            LegSide::B => LegSide::A,
        }
    }
}

/// Why a frame's head could not be rewritten. The relay counts it and releases the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RewriteError {
    /// The head lacks To-Path or From-Path (the parser would have refused it; a caller bug).
    MissingPath,
    /// The To-Path is not exactly this leg's own URI: the frame is not for this session
    /// (RFC 4975 §7.3 session matching).
    NotForUs,
    /// From-Path does not match the peer's `a=path` (only when verification is on).
    FromPathMismatch,
    /// `out` cannot hold the rewritten head; nothing useful was written.
    BufferTooSmall,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RewriteError::MissingPath => "MSRP head lacks To-Path or From-Path",
            RewriteError::NotForUs => "MSRP To-Path is not this leg's URI",
            RewriteError::FromPathMismatch => "MSRP From-Path does not match the peer's path",
            RewriteError::BufferTooSmall => "output buffer too small for the rewritten head",
        })
    }
}

impl std::error::Error for RewriteError {}

/// Rewrites the To-Path and From-Path of frames crossing the MGW, B2BUA style.
///
/// **The rule.** Without CEMA each endpoint's SDP names the MGW as its MSRP peer: the MGC put the
/// MGW's own URI for leg X (`legX.local_uri`) into the `a=path` it sent to the endpoint on leg X.
/// So the MGW terminates the MSRP hop on each leg, as a back-to-back relay (the model of RFC 4976
/// §3, with the MGW as the last hop on each side). For every request *and* response arriving on
/// leg X and leaving on leg Y:
/// - the incoming `To-Path` must be exactly one URI equivalent to `legX.local_uri`
///   (RFC 4975 §6.1), else [`RewriteError::NotForUs`];
/// - optionally, the incoming `From-Path` must equal `legX.remote_path`, URI by URI;
/// - the outgoing `To-Path` becomes `legY.remote_path` (the far endpoint's `a=path`, verbatim,
///   so relays beyond it stay in the route) and the outgoing `From-Path` becomes
///   `legY.local_uri`.
///
/// Responses follow the same rule: a response travels back over the hop its request came on,
/// so its To-Path names the MGW on the leg it arrives on. Every other byte of the head (start
/// line, Message-ID, Byte-Range, reports, unknown headers, the blank line) is copied unchanged,
/// and the body is not touched at all: the relay forwards it from the parser's body ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpRewriter {
    legs: [MsrpLegPaths; 2],
    verify_from_path: bool,
}

impl MsrpRewriter {
    /// Builds a rewriter for one context. Allocates (slow path, at install time).
    ///
    /// # Errors
    /// A local URI or a remote path URI that does not parse.
    pub fn new(a: MsrpLegPaths, b: MsrpLegPaths, verify_from_path: bool) -> Result<Self, UriError> {
        for leg in [&a, &b] {
            leg.as_paths_ref().validate()?;
        }
        Ok(MsrpRewriter {
            legs: [a, b],
            verify_from_path,
        })
    }

    fn leg(&self, s: LegSide) -> &MsrpLegPaths {
        match s {
            LegSide::A => &self.legs[0],
            LegSide::B => &self.legs[1],
        }
    }

    /// Writes the rewritten head of a frame that arrived on `from` into `out`, and returns its
    /// length. `head` and `frame` are [`MsrpParser::head`] and [`MsrpParser::frame`] after
    /// [`MsrpEvent::HeadersEnd`]. No allocation.
    ///
    /// # Errors
    /// See [`RewriteError`]; `out` then holds nothing useful.
    pub fn rewrite_head(
        &self,
        from: LegSide,
        head: &[u8],
        frame: &FrameHead,
        out: &mut [u8],
    ) -> Result<usize, RewriteError> {
        rewrite_head_between(
            self.leg(from).as_paths_ref(),
            self.leg(from.other()).as_paths_ref(),
            self.verify_from_path,
            head,
            frame,
            out,
        )
    }
}

/// [`MsrpRewriter::rewrite_head`] over borrowed URIs: the head of a frame that arrived on the
/// leg described by `inbound` is written into `out` for the leg described by `outbound`. Same
/// rule, same checks, no allocation.
///
/// # Errors
/// See [`RewriteError`]; `out` then holds nothing useful.
pub fn rewrite_head_between(
    inbound: LegPathsRef<'_>,
    outbound: LegPathsRef<'_>,
    verify_from_path: bool,
    head: &[u8],
    frame: &FrameHead,
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    let (Some(to), Some(fp)) = (frame.to_path, frame.from_path) else {
        return Err(RewriteError::MissingPath);
    };
    // Spans from a parser are ordered and inside `head`; refuse anything else rather than
    // panic on a caller's mistake.
    let ordered = |a: Span, b: Span| a.end <= b.start || b.end <= a.start;
    if to.start > to.end
        || fp.start > fp.end
        || to.end as usize > head.len()
        || fp.end as usize > head.len()
        || !ordered(to, fp)
    {
        return Err(RewriteError::MissingPath);
    }
    // Fast path: byte-identical values (what conforming peers send) need no URI parsing.
    let to_value = &head[to.range()];
    if to_value != inbound.local_uri {
        let mut uris = path_uris(to_value);
        let ours = MsrpUri::parse(inbound.local_uri).map_err(|_| RewriteError::NotForUs)?;
        match (uris.next().map(MsrpUri::parse), uris.next()) {
            (Some(Ok(u)), None) if u.equivalent(&ours) => {}
            _ => return Err(RewriteError::NotForUs),
        }
    }
    let from_value = &head[fp.range()];
    if verify_from_path
        && from_value != inbound.remote_path
        && !paths_equivalent(from_value, inbound.remote_path)
    {
        return Err(RewriteError::FromPathMismatch);
    }
    let (first, first_new, second, second_new): (Span, &[u8], Span, &[u8]) = if to.start < fp.start
    {
        (to, outbound.remote_path, fp, outbound.local_uri)
    } else {
        (fp, outbound.local_uri, to, outbound.remote_path)
    };
    let parts: [&[u8]; 5] = [
        &head[..first.start as usize],
        first_new,
        &head[first.end as usize..second.start as usize],
        second_new,
        &head[second.end as usize..],
    ];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total > out.len() {
        return Err(RewriteError::BufferTooSmall);
    }
    let mut at = 0;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One frame as the events describe it, normalised so that split points do not matter.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Frame {
        kind: FrameKind,
        tid: Vec<u8>,
        head: Vec<u8>,
        headers: Vec<(HeaderName, Vec<u8>, Vec<u8>)>,
        has_body: bool,
        body: Vec<u8>,
        end: Continuation,
    }

    fn collect_with(
        cfg: MsrpConfig,
        chunks: &[&[u8]],
    ) -> (Vec<Frame>, Option<MsrpError>, MsrpStats) {
        let mut p = MsrpParser::new(cfg);
        let mut frames = Vec::new();
        let mut cur: Option<Frame> = None;
        for chunk in chunks {
            let mut f = p.feed(chunk);
            loop {
                let ev = match f.next_event() {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(e) => {
                        let s = *f.parser().stats();
                        return (frames, Some(e), s);
                    }
                };
                let pr = f.parser();
                match ev {
                    MsrpEvent::StartLine { kind } => {
                        assert!(cur.is_none());
                        cur = Some(Frame {
                            kind,
                            tid: pr.transaction_id().to_vec(),
                            head: Vec::new(),
                            headers: Vec::new(),
                            has_body: false,
                            body: Vec::new(),
                            end: Continuation::Complete,
                        });
                    }
                    MsrpEvent::Header {
                        name,
                        name_span,
                        value,
                    } => {
                        let h = pr.head();
                        cur.as_mut().unwrap().headers.push((
                            name,
                            h[name_span.range()].to_vec(),
                            h[value.range()].to_vec(),
                        ));
                    }
                    MsrpEvent::HeadersEnd { body } => {
                        let c = cur.as_mut().unwrap();
                        c.has_body = body;
                        c.head = pr.head().to_vec();
                        assert_eq!(body, pr.frame().has_body);
                    }
                    MsrpEvent::Body { range } => cur
                        .as_mut()
                        .unwrap()
                        .body
                        .extend_from_slice(&chunk[range.range()]),
                    MsrpEvent::BodyCarry => {
                        cur.as_mut().unwrap().body.extend_from_slice(pr.carried())
                    }
                    MsrpEvent::End { continuation } => {
                        let mut c = cur.take().unwrap();
                        c.end = continuation;
                        frames.push(c);
                    }
                }
            }
        }
        let s = *p.stats();
        (frames, None, s)
    }

    fn collect(chunks: &[&[u8]]) -> (Vec<Frame>, Option<MsrpError>, MsrpStats) {
        collect_with(MsrpConfig::default(), chunks)
    }

    /// Emits a frame per RFC 4975 §9.
    fn emit(
        tid: &str,
        start: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
        flag: u8,
    ) -> Vec<u8> {
        let mut v = format!("MSRP {tid} {start}\r\nTo-Path: msrp://gw-a.example.net:2855/gwA;tcp\r\nFrom-Path: msrp://ue-a.example.net:7000/ueA;tcp\r\n").into_bytes();
        for (n, val) in extra {
            v.extend_from_slice(format!("{n}: {val}\r\n").as_bytes());
        }
        if let Some(b) = body {
            v.extend_from_slice(b"\r\n");
            v.extend_from_slice(b);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(format!("-------{tid}").as_bytes());
        v.push(flag);
        v.extend_from_slice(b"\r\n");
        v
    }

    fn send(tid: &str, body: &[u8]) -> Vec<u8> {
        emit(
            tid,
            "SEND",
            &[
                ("Message-ID", "87652491"),
                ("Byte-Range", "1-*/*"),
                ("Content-Type", "text/plain"),
            ],
            Some(body),
            b'$',
        )
    }

    // ---- framing: start line, headers, body, end-line ----

    #[test]
    fn send_request_with_body() {
        let data = send("a786hjs2", b"Hey Bob, are you there?");
        let (f, e, s) = collect(&[&data]);
        assert_eq!(e, None);
        assert_eq!(f.len(), 1);
        let fr = &f[0];
        assert_eq!(fr.kind, FrameKind::Request(Method::Send));
        assert_eq!(fr.tid, b"a786hjs2");
        assert_eq!(fr.body, b"Hey Bob, are you there?");
        assert!(fr.has_body);
        assert_eq!(fr.end, Continuation::Complete);
        let names: Vec<_> = fr.headers.iter().map(|h| h.0).collect();
        assert_eq!(
            names,
            [
                HeaderName::ToPath,
                HeaderName::FromPath,
                HeaderName::MessageId,
                HeaderName::ByteRange,
                HeaderName::ContentType
            ]
        );
        assert_eq!(fr.headers[3].2, b"1-*/*");
        assert!(fr.head.ends_with(b"Content-Type: text/plain\r\n\r\n"));
        assert_eq!(s.send, 1);
        assert_eq!(s.bytes, data.len() as u64);
        assert_eq!(s.body_bytes, 23);
    }

    #[test]
    fn response_without_body() {
        let data = emit("a786hjs2", "200 OK", &[], None, b'$');
        let (f, e, s) = collect(&[&data]);
        assert_eq!(e, None);
        assert_eq!(f[0].kind, FrameKind::Response(200));
        assert!(!f[0].has_body);
        assert!(
            f[0].head.ends_with(b";tcp\r\n"),
            "end-line is not part of the head"
        );
        assert_eq!(s.responses[2], 1);
    }

    #[test]
    fn empty_body_and_continuation_flags() {
        let mut data = emit(
            "tid00001",
            "SEND",
            &[("Content-Type", "text/plain")],
            Some(b""),
            b'+',
        );
        data.extend(emit(
            "tid00002",
            "SEND",
            &[("Content-Type", "text/plain")],
            Some(b"x"),
            b'#',
        ));
        data.extend(emit(
            "tid00003",
            "REPORT",
            &[("Status", "000 200 OK")],
            None,
            b'$',
        ));
        data.extend(emit("tid00004", "NICKNAME", &[], None, b'$'));
        data.extend(emit("tid00005", "AUTH", &[], None, b'$'));
        data.extend(emit("tid00006", "481 No session", &[], None, b'$'));
        let (f, e, s) = collect(&[&data]);
        assert_eq!(e, None);
        assert_eq!(f.len(), 6);
        assert_eq!(f[0].body, b"");
        assert_eq!(f[0].end, Continuation::More);
        assert_eq!(f[1].end, Continuation::Aborted);
        assert_eq!(
            (s.send, s.report, s.other_requests, s.auth, s.responses[4]),
            (2, 1, 1, 1, 1)
        );
        assert_eq!((s.chunks_more, s.aborted), (1, 1));
    }

    #[test]
    fn body_with_other_transaction_end_line_is_body() {
        // RFC 4975 §7.1: only this transaction's end-line ends the body.
        let body = b"line1\r\n-------other123$\r\nline2\r\n-------abcd1234X\r\n-------abcd1234$nope\r\n-------abcd123$\r\n\r\r\n";
        let data = send("abcd1234", body);
        let (f, e, _) = collect(&[&data]);
        assert_eq!(e, None);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].body, body);
    }

    #[test]
    fn split_at_every_position_gives_same_events() {
        let mut data = send(
            "abcd1234",
            b"x\r\n-------abcd123\r\n-------abcd1234+\rq\r\n-------abcd1234",
        );
        data.extend(emit("zz99", "200 OK", &[], None, b'$'));
        data.extend(send("q-.+%=1", b"\r\n\r\n-------"));
        let (whole, e, ws) = collect(&[&data]);
        assert_eq!(e, None);
        assert_eq!(whole.len(), 3);
        for i in 0..=data.len() {
            let (a, b) = data.split_at(i);
            let (f, e, s) = collect(&[a, b]);
            assert_eq!(e, None, "split at {i}");
            assert_eq!(f, whole, "split at {i}");
            assert_eq!(s, ws, "split at {i}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let (f, e, s) = collect(&bytes);
        assert_eq!((f, e, s), (whole, None, ws));
    }

    // ---- malformed framing: counted errors ----

    #[test]
    fn malformed_start_lines() {
        for bad in [
            &b"MSRQ abcd SEND\r\n"[..],
            b"MSRP abc SEND\r\n",
            b"MSRP abcd send\r\n",
            b"MSRP abcd\r\n",
            b"MSRP abcd 20 OK\r\n",
            b"\r\n",
        ] {
            let (_, e, s) = collect(&[bad]);
            assert!(
                matches!(e, Some(MsrpError::StartLine | MsrpError::TransactionId)),
                "{bad:?} -> {e:?}"
            );
            assert_eq!(s.errors, 1);
        }
    }

    #[test]
    fn bare_lf_and_bad_header_and_missing_path() {
        let (_, e, _) = collect(&[b"MSRP abcd SEND\n"]);
        assert_eq!(e, Some(MsrpError::LineEnding));
        let (_, e, _) = collect(&[b"MSRP abcd SEND\r\nTo-Path msrp://a:1/s;tcp\r\n"]);
        assert_eq!(e, Some(MsrpError::HeaderLine));
        let (_, e, _) =
            collect(&[b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/s;tcp\r\n-------abcd$\r\n"]);
        assert_eq!(e, Some(MsrpError::MissingPath));
        let data = emit("abcd", "200 OK", &[], Some(b"x"), b'$');
        let (_, e, _) = collect(&[&data]);
        assert_eq!(e, Some(MsrpError::ResponseBody));
        let mut data = emit("abcd", "200 OK", &[], None, b'$');
        let n = data.len();
        data[n - 4] = b'e';
        let (_, e, _) = collect(&[&data]);
        assert_eq!(e, Some(MsrpError::EndLine));
    }

    #[test]
    fn limits_are_enforced_and_errors_stick() {
        let cfg = MsrpConfig {
            max_header_block: 100,
            max_message_size: 300,
        };
        let data = send("abcd1234", b"short");
        let (_, e, _) = collect_with(cfg, &[&data]);
        assert_eq!(e, Some(MsrpError::HeaderBlockTooLarge));
        let cfg = MsrpConfig {
            max_header_block: 1000,
            max_message_size: 300,
        };
        let data = send("abcd1234", &[b'x'; 400]);
        let (_, e, s) = collect_with(cfg, &[&data[..250], &data[250..]]);
        assert_eq!(e, Some(MsrpError::MessageTooLarge));
        assert_eq!(s.errors, 1);
        let mut p = MsrpParser::new(cfg);
        let mut f = p.feed(&data);
        while let Ok(Some(_)) = f.next_event() {}
        assert_eq!(f.next_event(), Err(MsrpError::MessageTooLarge));
        assert_eq!(
            p.feed(b"MSRP").next_event(),
            Err(MsrpError::MessageTooLarge)
        );
        assert_eq!(p.stats().errors, 1);
    }

    #[test]
    fn end_line_writer_matches_received_frame() {
        for data in [
            send("abcd1234", b"hi"),
            emit("abcd1234", "200 OK", &[], None, b'$'),
        ] {
            let mut p = MsrpParser::new(MsrpConfig::default());
            let mut out = Vec::new();
            let mut f = p.feed(&data);
            while let Some(ev) = f.next_event().unwrap() {
                match ev {
                    MsrpEvent::HeadersEnd { .. } => out.extend_from_slice(f.parser().head()),
                    MsrpEvent::Body { range } => out.extend_from_slice(&data[range.range()]),
                    MsrpEvent::End { continuation } => {
                        let mut buf = [0u8; 64];
                        let n = f.parser().write_end_line(continuation, &mut buf).unwrap();
                        out.extend_from_slice(&buf[..n]);
                    }
                    _ => {}
                }
            }
            assert_eq!(out, data);
        }
    }

    #[test]
    fn find_cr_or_lf_matches_naive_search() {
        let mut v = vec![b'a'; 40];
        for i in 0..40 {
            for b in [b'\r', b'\n'] {
                v[i] = b;
                assert_eq!(find_cr_or_lf(&v), Some(i));
                assert_eq!(find_cr_or_lf(&v[..i]), None);
                v[i] = 0x8d; // high bytes must not match
                assert_eq!(find_cr_or_lf(&v), None);
                v[i] = b'a';
            }
        }
    }

    // ---- URIs ----

    #[test]
    fn uri_parse_and_compare() {
        let u = MsrpUri::parse(b"msrps://alice@[2001:db8::1]:12763/kjhd37s2s20w2a;tcp;foo=bar")
            .unwrap();
        assert!(u.secure);
        assert_eq!(u.userinfo, Some(&b"alice"[..]));
        assert_eq!(u.host, b"[2001:db8::1]");
        assert_eq!(u.port, Some(12763));
        assert_eq!(u.session_id, Some(&b"kjhd37s2s20w2a"[..]));
        assert_eq!(u.transport, b"tcp");
        assert_eq!(u.params, b";foo=bar");
        let v = MsrpUri::parse(b"MSRPS://Bob@[2001:DB8::1]:12763/kjhd37s2s20w2a;TCP").unwrap();
        assert!(
            u.equivalent(&v),
            "scheme/host/transport are case-insensitive, userinfo ignored"
        );
        let w = MsrpUri::parse(b"msrps://[2001:db8::1]:12763/KJHD37s2s20w2a;tcp").unwrap();
        assert!(!u.equivalent(&w), "session-id is case-sensitive");
        let n = MsrpUri::parse(b"msrp://relay.example.net;tcp").unwrap();
        assert_eq!((n.port, n.session_id, n.secure), (None, None, false));
        for bad in [
            &b"sip://a:1/s;tcp"[..],
            b"msrp://a:1/s",
            b"msrp://:1/s;tcp",
            b"msrp://a:99999/s;tcp",
            b"msrp://a:1/s s;tcp",
            b"msrp://[zz]:1/s;tcp",
            b"msrp://a:1/s;",
            b"msrp://a b/s;tcp",
        ] {
            assert!(MsrpUri::parse(bad).is_err(), "{bad:?}");
        }
        assert!(paths_equivalent(
            b"msrp://r:1/x;tcp  msrp://a:2/y;tcp",
            b"MSRP://R:1/x;tcp msrp://a:2/y;TCP"
        ));
        assert!(!paths_equivalent(
            b"msrp://r:1/x;tcp",
            b"msrp://r:1/x;tcp msrp://a:2/y;tcp"
        ));
    }

    // ---- rewriting ----

    const GW_A: &str = "msrp://gw-a.example.net:2855/gwA;tcp";
    const UE_A: &str = "msrp://ue-a.example.net:7000/ueA;tcp";
    const GW_B: &str = "msrp://10.0.0.1:2856/gwB;tcp";
    const UE_B: &str =
        "msrps://relay.core.example:2855/r1;tcp msrp://ue-b.example.com:7001/ueB;tcp";

    fn rewriter(verify: bool) -> MsrpRewriter {
        MsrpRewriter::new(
            MsrpLegPaths {
                local_uri: GW_A.into(),
                remote_path: UE_A.into(),
            },
            MsrpLegPaths {
                local_uri: GW_B.into(),
                remote_path: UE_B.into(),
            },
            verify,
        )
        .unwrap()
    }

    /// Relays `data` received on `from` through parser + rewriter, as the relay would.
    fn relay(rw: &MsrpRewriter, from: LegSide, data: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let mut p = MsrpParser::new(MsrpConfig::default());
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        for chunk in data.chunks(7) {
            let mut f = p.feed(chunk);
            while let Some(ev) = f.next_event().unwrap() {
                match ev {
                    MsrpEvent::HeadersEnd { .. } => {
                        let n =
                            rw.rewrite_head(from, f.parser().head(), f.parser().frame(), &mut buf)?;
                        out.extend_from_slice(&buf[..n]);
                    }
                    MsrpEvent::Body { range } => out.extend_from_slice(&chunk[range.range()]),
                    MsrpEvent::BodyCarry => out.extend_from_slice(f.parser().carried()),
                    MsrpEvent::End { continuation } => {
                        let n = f.parser().write_end_line(continuation, &mut buf).unwrap();
                        out.extend_from_slice(&buf[..n]);
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn rewrite_request_a_to_b_and_response_b_to_a() {
        let rw = rewriter(true);
        let body = b"hello\r\n-------nottid$\r\n";
        let data = send("tx123456", body);
        let out = relay(&rw, LegSide::A, &data).unwrap();
        let (f, e, _) = collect(&[&out]);
        assert_eq!(e, None);
        let h = &f[0].headers;
        assert_eq!(
            (h[0].0, h[0].2.as_slice()),
            (HeaderName::ToPath, UE_B.as_bytes())
        );
        assert_eq!(
            (h[1].0, h[1].2.as_slice()),
            (HeaderName::FromPath, GW_B.as_bytes())
        );
        assert_eq!(h[2..], f[0].headers[2..]);
        assert_eq!(f[0].body, body);
        assert_eq!(f[0].tid, b"tx123456");
        // The response from UE-B comes back on leg B addressed to gw B, from UE-B's path.
        let resp = format!(
            "MSRP tx123456 200 OK\r\nTo-Path: {GW_B}\r\nFrom-Path: {UE_B}\r\n-------tx123456$\r\n"
        );
        let out = relay(&rw, LegSide::B, resp.as_bytes()).unwrap();
        let expect = format!(
            "MSRP tx123456 200 OK\r\nTo-Path: {UE_A}\r\nFrom-Path: {GW_A}\r\n-------tx123456$\r\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expect);
        // From-Path before To-Path is rewritten in place too.
        let resp =
            format!("MSRP tx99 200 OK\r\nFrom-Path: {UE_B}\r\nTo-Path: {GW_B}\r\n-------tx99$\r\n");
        let out = relay(&rw, LegSide::B, resp.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("MSRP tx99 200 OK\r\nFrom-Path: {GW_A}\r\nTo-Path: {UE_A}\r\n-------tx99$\r\n")
        );
    }

    #[test]
    fn rewrite_refuses_foreign_frames() {
        let rw = rewriter(true);
        // Spans that no parser produces (overlapping, reversed, out of range) are refused.
        let head = b"MSRP abcd SEND\r\nTo-Path: x\r\nFrom-Path: y\r\n";
        let mut out = [0u8; 256];
        for (to, fp) in [
            ((16, 27), (20, 30)),
            ((27, 16), (30, 40)),
            ((16, 27), (30, 400)),
        ] {
            let fh = FrameHead {
                to_path: Some(Span {
                    start: to.0,
                    end: to.1,
                }),
                from_path: Some(Span {
                    start: fp.0,
                    end: fp.1,
                }),
                ..FrameHead::default()
            };
            assert_eq!(
                rw.rewrite_head(LegSide::A, head, &fh, &mut out),
                Err(RewriteError::MissingPath)
            );
        }
        // Arrived on B but addressed to gw A: not for this leg.
        let data = send("tx123456", b"x");
        assert_eq!(relay(&rw, LegSide::B, &data), Err(RewriteError::NotForUs));
        // To-Path with an extra hop beyond us.
        let d = format!("MSRP tx123456 SEND\r\nTo-Path: {GW_A} {UE_B}\r\nFrom-Path: {UE_A}\r\n-------tx123456$\r\n");
        assert_eq!(
            relay(&rw, LegSide::A, d.as_bytes()),
            Err(RewriteError::NotForUs)
        );
        // Spoofed From-Path.
        let d = format!("MSRP tx123456 SEND\r\nTo-Path: {GW_A}\r\nFrom-Path: msrp://evil:1/x;tcp\r\n-------tx123456$\r\n");
        assert_eq!(
            relay(&rw, LegSide::A, d.as_bytes()),
            Err(RewriteError::FromPathMismatch)
        );
        assert!(relay(&rewriter(false), LegSide::A, d.as_bytes()).is_ok());
        // Output too small.
        let mut p = MsrpParser::new(MsrpConfig::default());
        let mut f = p.feed(&data);
        while let Some(ev) = f.next_event().unwrap() {
            if let MsrpEvent::HeadersEnd { .. } = ev {
                let mut small = [0u8; 40];
                assert_eq!(
                    rw.rewrite_head(
                        LegSide::A,
                        f.parser().head(),
                        f.parser().frame(),
                        &mut small
                    ),
                    Err(RewriteError::BufferTooSmall)
                );
            }
        }
        assert!(MsrpRewriter::new(
            MsrpLegPaths {
                local_uri: b"msrp://x;tcp".to_vec(),
                remote_path: b"".to_vec()
            },
            MsrpLegPaths {
                local_uri: GW_B.into(),
                remote_path: UE_B.into()
            },
            false
        )
        .is_err());
    }

    // ---- properties ----

    fn tid_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9.+%=-]{3,31}"
    }

    fn body_strategy(tid: String) -> impl Strategy<Value = Vec<u8>> {
        // Bodies built from pieces that look like end-lines: the parser must not stop early.
        let piece = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20),
            Just(b"\r\n".to_vec()),
            Just(b"\r\n-------".to_vec()),
            Just(format!("\r\n-------{tid}").into_bytes()),
            Just(format!("\r\n-------{tid}X\r\n").into_bytes()),
            Just(format!("-------{tid}$\r\n").into_bytes()),
            Just(format!("\r\n-------{}$\r\n", &tid[..tid.len() - 1]).into_bytes()),
            Just(format!("\r\n-------{tid}$\r").into_bytes()),
        ];
        proptest::collection::vec(piece, 0..8)
            .prop_map(move |v| v.concat())
            .prop_filter("must not contain the end-line", {
                let tid = tid.clone();
                move |b| {
                    let mut framed = b"\r\n".to_vec();
                    framed.extend_from_slice(b);
                    framed.extend_from_slice(b"\r\n");
                    !["$", "+", "#"].iter().any(|f| {
                        let pat = format!("\r\n-------{tid}{f}\r\n").into_bytes();
                        framed[..framed.len() - 2]
                            .windows(pat.len())
                            .any(|w| w == pat.as_slice())
                            || framed
                                .windows(pat.len())
                                .take(framed.len().saturating_sub(pat.len()))
                                .any(|w| w == pat.as_slice())
                    })
                }
            })
    }

    fn frame_strategy() -> impl Strategy<Value = (String, Vec<u8>, u8)> {
        tid_strategy().prop_flat_map(|tid| {
            (
                Just(tid.clone()),
                body_strategy(tid),
                prop_oneof![Just(b'$'), Just(b'+'), Just(b'#')],
            )
        })
    }

    proptest! {
        #[test]
        fn prop_emit_parse_round_trip(frames in proptest::collection::vec(frame_strategy(), 1..4), cut in any::<prop::sample::Index>()) {
            let mut data = Vec::new();
            for (tid, body, flag) in &frames {
                data.extend(emit(tid, "SEND", &[("Content-Type", "application/octet-stream")], Some(body), *flag));
            }
            let (f, e, s) = collect(&[&data]);
            prop_assert_eq!(e, None);
            prop_assert_eq!(f.len(), frames.len());
            for (got, (tid, body, flag)) in f.iter().zip(&frames) {
                prop_assert_eq!(&got.tid, tid.as_bytes());
                prop_assert_eq!(&got.body, body);
                prop_assert_eq!(got.end.as_byte(), *flag);
            }
            prop_assert_eq!(s.bytes, data.len() as u64);
            // Any single split point gives the same events.
            let i = cut.index(data.len() + 1);
            let (f2, e2, s2) = collect(&[&data[..i], &data[i..]]);
            prop_assert_eq!(e2, None);
            prop_assert_eq!(f2, f);
            prop_assert_eq!(s2, s);
        }

        #[test]
        fn prop_many_splits_same_events(frame in frame_strategy(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let (tid, body, flag) = frame;
            let data = emit(&tid, "SEND", &[("Content-Type", "text/plain")], Some(&body), flag);
            let (whole, e, _) = collect(&[&data]);
            prop_assert_eq!(e, None);
            let mut idx: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            idx.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for i in idx { chunks.push(&data[last..i]); last = i; }
            chunks.push(&data[last..]);
            let (f, e, _) = collect(&chunks);
            prop_assert_eq!(e, None);
            prop_assert_eq!(f, whole);
        }

        #[test]
        fn prop_random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), cut in any::<prop::sample::Index>()) {
            let i = cut.index(data.len() + 1);
            let cfg = MsrpConfig { max_header_block: 128, max_message_size: 400 };
            let _ = collect_with(cfg, &[&data[..i], &data[i..]]);
            let _ = MsrpUri::parse(&data);
        }

        #[test]
        fn prop_mutated_frames_never_panic(frame in frame_strategy(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let (tid, body, flag) = frame;
            let mut data = emit(&tid, "SEND", &[], Some(&body), flag);
            let i = pos.index(data.len());
            data[i] = byte;
            let (_, e, s) = collect(&[&data]);
            prop_assert_eq!(s.errors, u64::from(e.is_some()));
        }
    }
}
