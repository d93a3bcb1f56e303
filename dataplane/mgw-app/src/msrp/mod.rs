//! MSRP (RFC 4975) frame parsing for the relay, and To-Path/From-Path rewriting (RFC 4976 style).
//!
//! This module owns four things, each in its own file:
//! - [`MsrpParser`]: an incremental, allocation-free (after construction) frame parser for a TCP
//!   byte stream. It is fed successive slices, split anywhere, and reports [`MsrpEvent`]s. It copies
//!   the start line and headers (bounded by [`MsrpConfig::max_header_block`]) into a buffer it
//!   allocated once, and never copies a body: body bytes are reported as ranges of the fed slice so
//!   that the relay forwards them in place. It lives in this file.
//! - [`MsrpUri`]: an `msrp:`/`msrps:` URI parser and the RFC 4975 §6.1 comparison (`uri.rs`).
//! - [`MsrpRewriter`]: the header rewrite an application-aware MGW does when the endpoints do not
//!   use CEMA (RFC 6714), so each endpoint sees the MGW as its MSRP peer (`rewrite.rs`).
//! - [`MsrpSend`], [`MsrpReport`], [`MsrpResponse`]: writers of the frames a peer sends (the lab,
//!   the benchmarks and the tests use them), each appending to a caller's `Vec<u8>` what
//!   [`MsrpParser`] parses back (`emit.rs`).
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

mod emit;
mod rewrite;
mod uri;

pub use emit::{ByteRange, FailureReport, MsrpEmitError, MsrpReport, MsrpResponse, MsrpSend};

pub use rewrite::{
    rewrite_head_between, LegPathsRef, LegSide, MsrpLegPaths, MsrpRewriter, RewriteError,
};
pub use uri::{path_uris, paths_equivalent, MsrpUri, UriError};

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

#[cfg(test)]
mod tests;
