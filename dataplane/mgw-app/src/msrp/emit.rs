//! Writers for the MSRP frames a peer sends: a SEND request (RFC 4975 §7.1.1), a REPORT request
//! (§7.1.2) and a response (§7.2).
//!
//! Each frame is a small `Copy` struct of borrowed fields. [`MsrpSend::write`] (and the others)
//! appends the frame to a caller's `Vec<u8>`, so a sender in a loop reuses one buffer and
//! allocates nothing once the buffer is large enough; `to_vec` is the one-off convenience.
//! A writer checks what the [`MsrpParser`](super::MsrpParser) of this crate checks (transaction
//! id, header lines, the end-line not occurring in the body), so whatever it writes parses back
//! to the same transaction id, headers, body and continuation flag; when a field would break
//! that it returns an [`MsrpEmitError`] and appends nothing.
//!
//! The parser's size limits ([`MsrpConfig`](super::MsrpConfig)) belong to the receiver and are
//! not checked here.

use core::fmt;

use super::{find_cr_or_lf, valid_transaction_id, Continuation, DASHES};

/// Why a frame was not written. The output is left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsrpEmitError {
    /// The transaction id is not `ALPHANUM 3*31ident-char` (RFC 4975 §9).
    TransactionId,
    /// A header value (a path, the Message-ID, the Content-Type) is empty or holds CR or LF,
    /// or a status comment holds CR or LF: it would not stay on its line.
    HeaderValue,
    /// A status code over 999 (RFC 4975 §9: `status-code = 3DIGIT`).
    StatusCode,
    /// The body holds this transaction's end-line (CRLF, seven dashes, the transaction id, a
    /// continuation flag, CRLF), which would end the frame early (RFC 4975 §7.1: the sender
    /// picks a transaction id that does not occur in the body that way).
    EndLineInBody,
}

impl fmt::Display for MsrpEmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MsrpEmitError::TransactionId => "malformed MSRP transaction id",
            MsrpEmitError::HeaderValue => "MSRP header value empty or with CR or LF",
            MsrpEmitError::StatusCode => "MSRP status code over 999",
            MsrpEmitError::EndLineInBody => "MSRP body holds its own end-line",
        })
    }
}

impl std::error::Error for MsrpEmitError {}

/// A `Byte-Range` value (RFC 4975 §9: `range-start "-" range-end "/" total`, with `*` for an
/// end or a total the sender does not know yet). Positions count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// The position of the chunk's first byte in the message.
    pub start: u64,
    /// The position of its last byte, or `None` for `*`.
    pub end: Option<u64>,
    /// The size of the whole message, or `None` for `*`.
    pub total: Option<u64>,
}

impl ByteRange {
    /// `1-len/len`: a whole message of `len` bytes in one chunk.
    pub const fn whole(len: u64) -> Self {
        ByteRange {
            start: 1,
            end: Some(len),
            total: Some(len),
        }
    }

    /// Octets of the value as written.
    pub fn encoded_len(&self) -> usize {
        dec_len(self.start) + 1 + self.end.map_or(1, dec_len) + 1 + self.total.map_or(1, dec_len)
    }

    fn write(&self, out: &mut Vec<u8>) {
        push_dec(out, self.start);
        out.push(b'-');
        push_dec_or_star(out, self.end);
        out.push(b'/');
        push_dec_or_star(out, self.total);
    }
}

/// What a `Failure-Report` header asks for (RFC 4975 §7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReport {
    /// `yes`: a failure REPORT, and a response to each chunk.
    Yes,
    /// `no`: neither.
    No,
    /// `partial`: a failure REPORT but no success response.
    Partial,
}

impl FailureReport {
    fn text(self) -> &'static [u8] {
        match self {
            FailureReport::Yes => b"yes",
            FailureReport::No => b"no",
            FailureReport::Partial => b"partial",
        }
    }
}

/// An MSRP SEND request (RFC 4975 §7.1.1): start line, To-Path, From-Path, Message-ID, then the
/// optional Byte-Range, Success-Report and Failure-Report, then Content-Type, a blank line and
/// the body when there is a body, then the end-line with the continuation flag.
///
/// ```
/// # use mgw_app::msrp::{ByteRange, MsrpSend};
/// let mut out = Vec::new();
/// MsrpSend::new("a786hjs2", "msrp://b.example.com:7777/s1;tcp", "msrp://a.example.com:7654/s2;tcp", "m1")
///     .byte_range(ByteRange::whole(2))
///     .body("text/plain", b"Hi")
///     .write(&mut out)
///     .unwrap();
/// assert_eq!(
///     out,
///     b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com:7777/s1;tcp\r\n\
/// From-Path: msrp://a.example.com:7654/s2;tcp\r\nMessage-ID: m1\r\nByte-Range: 1-2/2\r\n\
/// Content-Type: text/plain\r\n\r\nHi\r\n-------a786hjs2$\r\n"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsrpSend<'a> {
    /// The transaction id, also the end-line's.
    pub transaction_id: &'a [u8],
    /// The To-Path value: the URIs of the hops to the receiver, space separated.
    pub to_path: &'a [u8],
    /// The From-Path value: the sender's URI (and the hops back to it).
    pub from_path: &'a [u8],
    /// The Message-ID value, the same in every chunk of one message.
    pub message_id: &'a [u8],
    /// The Byte-Range header, if any.
    pub byte_range: Option<ByteRange>,
    /// `Success-Report: yes` / `no`, if any.
    pub success_report: Option<bool>,
    /// The Failure-Report header, if any.
    pub failure_report: Option<FailureReport>,
    /// The Content-Type value, written only with a body.
    pub content_type: &'a [u8],
    /// The body, if any (`Some(b"")` is an empty body: blank line, then the end-line).
    pub body: Option<&'a [u8]>,
    /// The end-line's flag.
    pub continuation: Continuation,
}

impl<'a> MsrpSend<'a> {
    /// A bodiless SEND with these transaction id, paths and Message-ID, ending with `$`; the
    /// setters below add the rest.
    pub fn new<T, U, V, W>(
        transaction_id: &'a T,
        to_path: &'a U,
        from_path: &'a V,
        message_id: &'a W,
    ) -> Self
    where
        T: AsRef<[u8]> + ?Sized,
        U: AsRef<[u8]> + ?Sized,
        V: AsRef<[u8]> + ?Sized,
        W: AsRef<[u8]> + ?Sized,
    {
        MsrpSend {
            transaction_id: transaction_id.as_ref(),
            to_path: to_path.as_ref(),
            from_path: from_path.as_ref(),
            message_id: message_id.as_ref(),
            byte_range: None,
            success_report: None,
            failure_report: None,
            content_type: b"",
            body: None,
            continuation: Continuation::Complete,
        }
    }

    /// With a Byte-Range header.
    pub fn byte_range(mut self, range: ByteRange) -> Self {
        self.byte_range = Some(range);
        self
    }

    /// With a Success-Report header (`yes` when `on`).
    pub fn success_report(mut self, on: bool) -> Self {
        self.success_report = Some(on);
        self
    }

    /// With a Failure-Report header.
    pub fn failure_report(mut self, report: FailureReport) -> Self {
        self.failure_report = Some(report);
        self
    }

    /// With a body of this Content-Type.
    pub fn body<C: AsRef<[u8]> + ?Sized>(mut self, content_type: &'a C, data: &'a [u8]) -> Self {
        self.content_type = content_type.as_ref();
        self.body = Some(data);
        self
    }

    /// Ending with this flag instead of `$`.
    pub fn continuation(mut self, flag: Continuation) -> Self {
        self.continuation = flag;
        self
    }

    fn check(&self) -> Result<(), MsrpEmitError> {
        check_tid(self.transaction_id)?;
        for v in [self.to_path, self.from_path, self.message_id] {
            check_value(v)?;
        }
        if let Some(body) = self.body {
            check_value(self.content_type)?;
            if end_line_in_body(self.transaction_id, body) {
                return Err(MsrpEmitError::EndLineInBody);
            }
        }
        Ok(())
    }

    /// Bytes [`MsrpSend::write`] appends (when the fields are valid).
    pub fn encoded_len(&self) -> usize {
        let mut n = start_line_len(self.transaction_id, b"SEND".len())
            + paths_len(self.to_path, self.from_path)
            + header_len(b"Message-ID", self.message_id.len());
        if let Some(r) = self.byte_range {
            n += header_len(b"Byte-Range", r.encoded_len());
        }
        if let Some(on) = self.success_report {
            n += header_len(b"Success-Report", yes_no(on).len());
        }
        if let Some(f) = self.failure_report {
            n += header_len(b"Failure-Report", f.text().len());
        }
        if let Some(body) = self.body {
            n += header_len(b"Content-Type", self.content_type.len()) + 2 + body.len() + 2;
        }
        n + end_line_len(self.transaction_id)
    }

    /// Appends the request to `out`; returns the bytes appended.
    ///
    /// # Errors
    /// An [`MsrpEmitError`] when a field would not parse back; `out` is then unchanged.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<usize, MsrpEmitError> {
        self.check()?;
        let n = self.encoded_len();
        let at = out.len();
        out.reserve(n);
        start_line(out, self.transaction_id, b"SEND");
        paths(out, self.to_path, self.from_path);
        header(out, b"Message-ID", self.message_id);
        if let Some(r) = self.byte_range {
            header_with(out, b"Byte-Range", |o| r.write(o));
        }
        if let Some(on) = self.success_report {
            header(out, b"Success-Report", yes_no(on));
        }
        if let Some(f) = self.failure_report {
            header(out, b"Failure-Report", f.text());
        }
        if let Some(body) = self.body {
            header(out, b"Content-Type", self.content_type);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        end_line(out, self.transaction_id, self.continuation);
        debug_assert_eq!(out.len() - at, n);
        Ok(n)
    }

    /// The request in a new `Vec`.
    ///
    /// # Errors
    /// As [`MsrpSend::write`].
    pub fn to_vec(&self) -> Result<Vec<u8>, MsrpEmitError> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.write(&mut v)?;
        Ok(v)
    }
}

/// An MSRP REPORT request (RFC 4975 §7.1.2): start line, To-Path, From-Path, the Message-ID and
/// Byte-Range of the message reported on, `Status: 000 <code>[ <comment>]`, and the end-line
/// (`$`; a REPORT has no body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsrpReport<'a> {
    /// The transaction id (the REPORT's own, not the reported SEND's).
    pub transaction_id: &'a [u8],
    /// The To-Path value: back to the sender of the reported message.
    pub to_path: &'a [u8],
    /// The From-Path value: the reporter's URI.
    pub from_path: &'a [u8],
    /// The Message-ID of the reported message.
    pub message_id: &'a [u8],
    /// The bytes of the message the report is about.
    pub byte_range: ByteRange,
    /// The status code (200: received).
    pub status: u16,
    /// The status text after the code, if any.
    pub comment: Option<&'a [u8]>,
}

impl<'a> MsrpReport<'a> {
    /// A REPORT of `status` (no comment) on the bytes `byte_range` of message `message_id`.
    pub fn new<T, U, V, W>(
        transaction_id: &'a T,
        to_path: &'a U,
        from_path: &'a V,
        message_id: &'a W,
        byte_range: ByteRange,
        status: u16,
    ) -> Self
    where
        T: AsRef<[u8]> + ?Sized,
        U: AsRef<[u8]> + ?Sized,
        V: AsRef<[u8]> + ?Sized,
        W: AsRef<[u8]> + ?Sized,
    {
        MsrpReport {
            transaction_id: transaction_id.as_ref(),
            to_path: to_path.as_ref(),
            from_path: from_path.as_ref(),
            message_id: message_id.as_ref(),
            byte_range,
            status,
            comment: None,
        }
    }

    /// With this text after the status code.
    pub fn comment<C: AsRef<[u8]> + ?Sized>(mut self, comment: &'a C) -> Self {
        self.comment = Some(comment.as_ref());
        self
    }

    fn check(&self) -> Result<(), MsrpEmitError> {
        check_tid(self.transaction_id)?;
        for v in [self.to_path, self.from_path, self.message_id] {
            check_value(v)?;
        }
        check_status(self.status, self.comment)
    }

    /// Bytes [`MsrpReport::write`] appends (when the fields are valid).
    pub fn encoded_len(&self) -> usize {
        start_line_len(self.transaction_id, b"REPORT".len())
            + paths_len(self.to_path, self.from_path)
            + header_len(b"Message-ID", self.message_id.len())
            + header_len(b"Byte-Range", self.byte_range.encoded_len())
            + header_len(b"Status", 4 + status_len(self.comment))
            + end_line_len(self.transaction_id)
    }

    /// Appends the request to `out`; returns the bytes appended.
    ///
    /// # Errors
    /// An [`MsrpEmitError`] when a field would not parse back; `out` is then unchanged.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<usize, MsrpEmitError> {
        self.check()?;
        let n = self.encoded_len();
        let at = out.len();
        out.reserve(n);
        start_line(out, self.transaction_id, b"REPORT");
        paths(out, self.to_path, self.from_path);
        header(out, b"Message-ID", self.message_id);
        header_with(out, b"Byte-Range", |o| self.byte_range.write(o));
        header_with(out, b"Status", |o| {
            o.extend_from_slice(b"000 ");
            status(o, self.status, self.comment);
        });
        end_line(out, self.transaction_id, Continuation::Complete);
        debug_assert_eq!(out.len() - at, n);
        Ok(n)
    }

    /// The request in a new `Vec`.
    ///
    /// # Errors
    /// As [`MsrpReport::write`].
    pub fn to_vec(&self) -> Result<Vec<u8>, MsrpEmitError> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.write(&mut v)?;
        Ok(v)
    }
}

/// An MSRP response (RFC 4975 §7.2): `MSRP <tid> <code>[ <comment>]`, To-Path, From-Path and
/// the end-line (`$`; a response has no body). Its transaction id is the request's; its To-Path
/// is the first URI of the request's From-Path and its From-Path the responder's own URI.
///
/// ```
/// # use mgw_app::msrp::MsrpResponse;
/// let ok = MsrpResponse::ok("a786hjs2", "msrp://a.example.com:7654/s2;tcp", "msrp://b.example.com:7777/s1;tcp");
/// assert_eq!(
///     ok.to_vec().unwrap(),
///     b"MSRP a786hjs2 200 OK\r\nTo-Path: msrp://a.example.com:7654/s2;tcp\r\n\
/// From-Path: msrp://b.example.com:7777/s1;tcp\r\n-------a786hjs2$\r\n"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsrpResponse<'a> {
    /// The transaction id of the request answered.
    pub transaction_id: &'a [u8],
    /// The status code.
    pub code: u16,
    /// The text after the code, if any (`OK` after 200).
    pub comment: Option<&'a [u8]>,
    /// The To-Path value.
    pub to_path: &'a [u8],
    /// The From-Path value.
    pub from_path: &'a [u8],
}

impl<'a> MsrpResponse<'a> {
    /// A response with this code and no comment.
    pub fn new<T, U, V>(transaction_id: &'a T, code: u16, to_path: &'a U, from_path: &'a V) -> Self
    where
        T: AsRef<[u8]> + ?Sized,
        U: AsRef<[u8]> + ?Sized,
        V: AsRef<[u8]> + ?Sized,
    {
        MsrpResponse {
            transaction_id: transaction_id.as_ref(),
            code,
            comment: None,
            to_path: to_path.as_ref(),
            from_path: from_path.as_ref(),
        }
    }

    /// `200 OK`.
    pub fn ok<T, U, V>(transaction_id: &'a T, to_path: &'a U, from_path: &'a V) -> Self
    where
        T: AsRef<[u8]> + ?Sized,
        U: AsRef<[u8]> + ?Sized,
        V: AsRef<[u8]> + ?Sized,
    {
        MsrpResponse::new(transaction_id, 200, to_path, from_path).comment("OK")
    }

    /// With this text after the code.
    pub fn comment<C: AsRef<[u8]> + ?Sized>(mut self, comment: &'a C) -> Self {
        self.comment = Some(comment.as_ref());
        self
    }

    fn check(&self) -> Result<(), MsrpEmitError> {
        check_tid(self.transaction_id)?;
        for v in [self.to_path, self.from_path] {
            check_value(v)?;
        }
        check_status(self.code, self.comment)
    }

    /// Bytes [`MsrpResponse::write`] appends (when the fields are valid).
    pub fn encoded_len(&self) -> usize {
        start_line_len(self.transaction_id, status_len(self.comment))
            + paths_len(self.to_path, self.from_path)
            + end_line_len(self.transaction_id)
    }

    /// Appends the response to `out`; returns the bytes appended.
    ///
    /// # Errors
    /// An [`MsrpEmitError`] when a field would not parse back; `out` is then unchanged.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<usize, MsrpEmitError> {
        self.check()?;
        let n = self.encoded_len();
        let at = out.len();
        out.reserve(n);
        out.extend_from_slice(b"MSRP ");
        out.extend_from_slice(self.transaction_id);
        out.push(b' ');
        status(out, self.code, self.comment);
        out.extend_from_slice(b"\r\n");
        paths(out, self.to_path, self.from_path);
        end_line(out, self.transaction_id, Continuation::Complete);
        debug_assert_eq!(out.len() - at, n);
        Ok(n)
    }

    /// The response in a new `Vec`.
    ///
    /// # Errors
    /// As [`MsrpResponse::write`].
    pub fn to_vec(&self) -> Result<Vec<u8>, MsrpEmitError> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.write(&mut v)?;
        Ok(v)
    }
}

/// Whether the frame `\r\n body \r\n -------tid$\r\n` would end before the end of `body`: the
/// parser ends the data at the first CRLF + seven dashes + `tid` + a flag + CRLF, and that
/// closing CRLF may be the one the frame puts after the body.
fn end_line_in_body(tid: &[u8], body: &[u8]) -> bool {
    // CRLF, dashes, tid, flag: the part that must lie in the body.
    let n = 2 + DASHES.len() + tid.len() + 1;
    let mut from = 0;
    while let Some(k) = memchr::memchr(b'\r', &body[from..]) {
        let i = from + k;
        if let Some(c) = body.get(i..i + n) {
            if c[..2] == *b"\r\n"
                && c[2..9] == *DASHES
                && &c[9..n - 1] == tid
                && Continuation::from_byte(c[n - 1]).is_some()
            {
                let after = &body[i + n..];
                if after.is_empty() || after.starts_with(b"\r\n") {
                    return true;
                }
            }
        }
        from = i + 1;
    }
    false
}

fn check_tid(tid: &[u8]) -> Result<(), MsrpEmitError> {
    if valid_transaction_id(tid) {
        Ok(())
    } else {
        Err(MsrpEmitError::TransactionId)
    }
}

/// A header value stays on its line and is not empty (RFC 4975 §9 makes every header we write
/// non-empty).
#[inline]
fn check_value(v: &[u8]) -> Result<(), MsrpEmitError> {
    if v.is_empty() || has_cr_or_lf(v) {
        return Err(MsrpEmitError::HeaderValue);
    }
    Ok(())
}

fn check_status(code: u16, comment: Option<&[u8]>) -> Result<(), MsrpEmitError> {
    if code > 999 {
        return Err(MsrpEmitError::StatusCode);
    }
    if comment.is_some_and(has_cr_or_lf) {
        return Err(MsrpEmitError::HeaderValue);
    }
    Ok(())
}

/// The parser's word-at-a-time search: header values are short, too short for `memchr`'s
/// per-call setup to pay off.
#[inline]
fn has_cr_or_lf(v: &[u8]) -> bool {
    find_cr_or_lf(v).is_some()
}

fn yes_no(on: bool) -> &'static [u8] {
    if on {
        b"yes"
    } else {
        b"no"
    }
}

/// `MSRP tid <rest>` CRLF, `rest` bytes long.
#[inline]
fn start_line_len(tid: &[u8], rest: usize) -> usize {
    5 + tid.len() + 1 + rest + 2
}

#[inline]
fn start_line(out: &mut Vec<u8>, tid: &[u8], method: &[u8]) {
    out.extend_from_slice(b"MSRP ");
    out.extend_from_slice(tid);
    out.push(b' ');
    out.extend_from_slice(method);
    out.extend_from_slice(b"\r\n");
}

#[inline]
fn header_len(name: &[u8], value: usize) -> usize {
    name.len() + 2 + value + 2
}

#[inline]
fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    header_with(out, name, |o| o.extend_from_slice(value));
}

#[inline]
fn header_with(out: &mut Vec<u8>, name: &[u8], value: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    value(out);
    out.extend_from_slice(b"\r\n");
}

#[inline]
fn paths_len(to: &[u8], from: &[u8]) -> usize {
    header_len(b"To-Path", to.len()) + header_len(b"From-Path", from.len())
}

#[inline]
fn paths(out: &mut Vec<u8>, to: &[u8], from: &[u8]) {
    header(out, b"To-Path", to);
    header(out, b"From-Path", from);
}

/// The three digits of `code` and ` comment`.
#[inline]
fn status_len(comment: Option<&[u8]>) -> usize {
    3 + comment.map_or(0, |c| 1 + c.len())
}

#[inline]
fn status(out: &mut Vec<u8>, code: u16, comment: Option<&[u8]>) {
    // `check_status` keeps `code` under 1000: three digits.
    let d = |x: u16| b'0' + (x % 10) as u8;
    out.extend_from_slice(&[d(code / 100), d(code / 10), d(code)]);
    if let Some(c) = comment {
        out.push(b' ');
        out.extend_from_slice(c);
    }
}

#[inline]
fn end_line_len(tid: &[u8]) -> usize {
    DASHES.len() + tid.len() + 3
}

#[inline]
fn end_line(out: &mut Vec<u8>, tid: &[u8], flag: Continuation) {
    out.extend_from_slice(DASHES);
    out.extend_from_slice(tid);
    out.extend_from_slice(&[flag.as_byte(), b'\r', b'\n']);
}

#[inline]
fn dec_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

#[inline]
fn push_dec(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[inline]
fn push_dec_or_star(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => push_dec(out, n),
        None => out.push(b'*'),
    }
}
