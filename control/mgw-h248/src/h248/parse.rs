//! Recursive-descent parser for the H.248.1 text encoding (Annex B ABNF, RFC 3525 for v1).
//!
//! The grammar has fixed nesting depth, so the parser's recursion is bounded no matter what the
//! input is. Every index goes through `get`, so no input can make it panic. Errors carry the H.248
//! error code to answer with (400 syntax, 406 version, 501 not implemented) and the byte offset,
//! line and column of the offending token.

use std::fmt;
use std::net::IpAddr;

use super::ast::*;
use super::token::Tok;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// H.248.8 error code to answer with: 400 (syntax), 406 (version) or 501 (not implemented).
    pub code: u16,
    /// Byte offset of the offending token.
    pub pos: usize,
    /// 1-based line of the offending token.
    pub line: u32,
    /// 1-based column (in bytes) of the offending token.
    pub column: u32,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {} (byte {}): {}",
            self.code, self.line, self.column, self.pos, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// H.248.8 code 400: syntax error in message.
pub const SYNTAX: u16 = 400;

/// The longest termination ID (pathNAME) of the text encoding, H.248.1 Annex B.2.
pub const TERMINATION_ID_MAX: usize = 64;
/// H.248.8 code 406: version not supported.
pub const VERSION: u16 = 406;
/// H.248.8 code 501: not implemented.
pub const NOT_IMPLEMENTED: u16 = 501;

type R<T> = Result<T, ParseError>;

/// Parse one complete H.248 text message.
///
/// # Errors
/// Returns a [`ParseError`] with code 400 for syntax errors, 406 for a version above 3, and 501
/// for constructs the codec does not implement (Modem, Mux, signal lists, embedded events,
/// authentication headers, v3 individual audits).
pub fn parse_message(input: &[u8]) -> R<Message> {
    let mut p = Parser { s: input, pos: 0 };
    let m = p.message()?;
    p.ws();
    if p.pos < p.s.len() {
        return Err(p.err(SYNTAX, "trailing bytes after message"));
    }
    Ok(m)
}

/// Best-effort scan of a message that failed to parse: the IDs of the transaction requests it
/// appears to contain (`Transaction = n` / `T=n`), so each can be answered with an error reply.
pub fn salvage_request_ids(input: &[u8]) -> Vec<u32> {
    let mut p = Parser { s: input, pos: 0 };
    let mut ids = Vec::new();
    while p.pos < p.s.len() && ids.len() < 64 {
        p.ws();
        let start = p.pos;
        let w = p.raw_word();
        if w.is_empty() {
            // Skip one byte that is not a word character.
            p.pos += 1;
            continue;
        }
        if Tok::Trans.is(w) && p.eat(b'=') {
            if let Ok(id) = p.u32() {
                ids.push(id);
            }
        }
        if p.pos == start {
            p.pos += 1;
        }
    }
    ids
}

/// `SafeChar` of Annex B, the characters of a `VALUE` word.
fn is_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'+' | b'-'
                | b'&'
                | b'!'
                | b'_'
                | b'/'
                | b'\''
                | b'?'
                | b'@'
                | b'^'
                | b'`'
                | b'~'
                | b'*'
                | b'$'
                | b'\\'
                | b'('
                | b')'
                | b'%'
                | b'|'
                | b'.'
        )
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

fn text(w: &[u8]) -> String {
    // Words are made of ASCII SafeChars, so this is lossless.
    String::from_utf8_lossy(w).into_owned()
}

impl<'a> Parser<'a> {
    fn err_at(&self, pos: usize, code: u16, reason: &'static str) -> ParseError {
        let upto = self.s.get(..pos).unwrap_or(self.s);
        let line = 1 + upto.iter().filter(|&&c| c == b'\n').count();
        let col = 1 + upto.iter().rev().take_while(|&&c| c != b'\n').count();
        ParseError {
            code,
            pos,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(col).unwrap_or(u32::MAX),
            reason,
        }
    }

    fn err(&self, code: u16, reason: &'static str) -> ParseError {
        self.err_at(self.pos, code, reason)
    }

    /// `LWSP = *(WSP / COMMENT / EOL)`; `COMMENT = ";" ... EOL`.
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b';' => {
                    while let Some(&c) = self.s.get(self.pos) {
                        self.pos += 1;
                        if c == b'\n' {
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(SYNTAX, reason))
        }
    }

    /// Read a run of SafeChars without skipping whitespace first (may be empty).
    fn raw_word(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|&c| is_safe(c)) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or(&[])
    }

    /// Skip whitespace and read a non-empty word.
    fn word(&mut self, reason: &'static str) -> R<(usize, &'a [u8])> {
        self.ws();
        let start = self.pos;
        let w = self.raw_word();
        if w.is_empty() {
            Err(self.err(SYNTAX, reason))
        } else {
            Ok((start, w))
        }
    }

    /// The next word, without consuming it.
    fn peek_word(&mut self) -> &'a [u8] {
        self.ws();
        let save = self.pos;
        let w = self.raw_word();
        self.pos = save;
        w
    }

    fn tok(&mut self, t: Tok, reason: &'static str) -> R<()> {
        let (start, w) = self.word(reason)?;
        if t.is(w) {
            Ok(())
        } else {
            Err(self.err_at(start, SYNTAX, reason))
        }
    }

    fn u32(&mut self) -> R<u32> {
        let (start, w) = self.word("expected a number")?;
        parse_num(w).ok_or_else(|| self.err_at(start, SYNTAX, "expected a number"))
    }

    fn u16(&mut self) -> R<u16> {
        let (start, w) = self.word("expected a number")?;
        parse_num(w)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| self.err_at(start, SYNTAX, "expected a 16-bit number"))
    }

    /// `VALUE = quotedString / 1*(SafeChar)`.
    fn value(&mut self) -> R<String> {
        if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            Ok(text(self.word("expected a value")?.1))
        }
    }

    /// `quotedString = DQUOTE *(SafeChar / RestChar / WSP) DQUOTE`.
    fn quoted(&mut self) -> R<String> {
        let start = self.pos;
        self.expect(b'"', "expected a quoted string")?;
        let body_start = self.pos;
        while let Some(&c) = self.s.get(self.pos) {
            if c == b'"' {
                let body = self.s.get(body_start..self.pos).unwrap_or(&[]);
                self.pos += 1;
                return String::from_utf8(body.to_vec())
                    .map_err(|_| self.err_at(start, SYNTAX, "quoted string is not UTF-8"));
            }
            if c == b'\r' || c == b'\n' {
                break;
            }
            self.pos += 1;
        }
        Err(self.err_at(start, SYNTAX, "unterminated quoted string"))
    }

    /// `octetString` of Local/Remote: everything up to an unescaped `}`; `\}` stands for `}`.
    fn octets(&mut self) -> R<String> {
        let start = self.pos;
        let rest = self.s.get(start..).unwrap_or(&[]);
        let mut out = Vec::new();
        let mut from = 0;
        let mut i = 0;
        while let Some(off) = rest
            .get(i..)
            .and_then(|r| r.iter().position(|&c| c == b'}'))
        {
            let at = i + off;
            if at > 0 && rest.get(at - 1) == Some(&b'\\') {
                // `\}` stands for `}`: keep what precedes the backslash, then the brace.
                out.extend_from_slice(rest.get(from..at - 1).unwrap_or(&[]));
                out.push(b'}');
                from = at + 1;
                i = at + 1;
                continue;
            }
            out.extend_from_slice(rest.get(from..at).unwrap_or(&[]));
            self.pos = start + at + 1;
            let s = String::from_utf8(out)
                .map_err(|_| self.err_at(start, SYNTAX, "SDP is not UTF-8"))?;
            return Ok(s.trim().to_owned());
        }
        self.pos = self.s.len();
        Err(self.err_at(start, SYNTAX, "unterminated octet string"))
    }

    /// Comma-separated list inside braces; `{` already consumed. Calls `item` for each element.
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        loop {
            item(self)?;
            if self.eat(b',') {
                continue;
            }
            return self.expect(b'}', "expected ',' or '}'");
        }
    }

    fn once<T>(&self, slot: &mut Option<T>, v: T, start: usize) -> R<()> {
        if slot.is_some() {
            return Err(self.err_at(start, SYNTAX, "descriptor appears twice"));
        }
        *slot = Some(v);
        Ok(())
    }

    // ---- message ----

    fn message(&mut self) -> R<Message> {
        let (start, w) = self.word("expected MEGACO/version")?;
        if Tok::Auth.is(w) {
            return Err(self.err_at(start, NOT_IMPLEMENTED, "authentication header"));
        }
        let (tok, ver) = split_once(w, b'/')
            .ok_or_else(|| self.err_at(start, SYNTAX, "expected MEGACO/version"))?;
        if !Tok::Megacop.is(tok) {
            return Err(self.err_at(start, SYNTAX, "expected MEGACO/version"));
        }
        let version: u8 = parse_num(ver)
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| *v >= 1 && ver.len() <= 2)
            .ok_or_else(|| self.err_at(start, SYNTAX, "bad version"))?;
        if version > 3 {
            return Err(self.err_at(start, VERSION, "version not supported"));
        }
        // SEP: at least one white space, EOL or comment.
        if !self
            .s
            .get(self.pos)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b';'))
        {
            return Err(self.err(SYNTAX, "expected separator after version"));
        }
        let mid = self.mid()?;
        let body = if Tok::Error.is(self.peek_word()) {
            MessageBody::Error(self.error_descriptor()?)
        } else {
            let mut ts = Vec::new();
            while self.peek().is_some() {
                ts.push(self.transaction()?);
            }
            if ts.is_empty() {
                return Err(self.err(SYNTAX, "message has no transactions"));
            }
            MessageBody::Transactions(ts)
        };
        Ok(Message { version, mid, body })
    }

    /// `mId`.
    fn mid(&mut self) -> R<Mid> {
        self.ws();
        let start = self.pos;
        match self.s.get(self.pos) {
            Some(b'[') => {
                self.pos += 1;
                let a = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
                {
                    self.pos += 1;
                }
                let addr: IpAddr = std::str::from_utf8(self.s.get(a..self.pos).unwrap_or(&[]))
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| self.err_at(start, SYNTAX, "bad IP address in mId"))?;
                if self.s.get(self.pos) != Some(&b']') {
                    return Err(self.err(SYNTAX, "expected ']'"));
                }
                self.pos += 1;
                let port = self.opt_port()?;
                Ok(Mid::Ip { addr, port })
            }
            Some(b'<') => {
                self.pos += 1;
                let a = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
                {
                    self.pos += 1;
                }
                let name = self.s.get(a..self.pos).unwrap_or(&[]);
                if name.is_empty()
                    || name.len() > 64
                    || !name.first().is_some_and(u8::is_ascii_alphanumeric)
                    || self.s.get(self.pos) != Some(&b'>')
                {
                    return Err(self.err_at(start, SYNTAX, "bad domain name in mId"));
                }
                self.pos += 1;
                let port = self.opt_port()?;
                Ok(Mid::Domain {
                    name: text(name),
                    port,
                })
            }
            _ => {
                let (start, w) = self.word("expected mId")?;
                if w.eq_ignore_ascii_case(b"MTP") {
                    return Err(self.err_at(start, NOT_IMPLEMENTED, "MTP address"));
                }
                if !w.first().is_some_and(u8::is_ascii_alphabetic) {
                    return Err(self.err_at(start, SYNTAX, "bad device name in mId"));
                }
                Ok(Mid::Device(text(w)))
            }
        }
    }

    fn opt_port(&mut self) -> R<Option<u16>> {
        if self.s.get(self.pos) != Some(&b':') {
            return Ok(None);
        }
        self.pos += 1;
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        parse_num(self.s.get(start..self.pos).unwrap_or(&[]))
            .and_then(|n| u16::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.err_at(start, SYNTAX, "bad port"))
    }

    // ---- transactions ----

    fn transaction(&mut self) -> R<Transaction> {
        let (start, w) = self.word("expected a transaction")?;
        match Tok::lookup(w) {
            Some(Tok::Trans) => {
                self.expect(b'=', "expected '='")?;
                let id = self.u32()?;
                self.expect(b'{', "expected '{'")?;
                let mut actions = Vec::new();
                self.list(|p| {
                    actions.push(p.action_request()?);
                    Ok(())
                })?;
                Ok(Transaction::Request(TransactionRequest { id, actions }))
            }
            Some(Tok::Reply) => {
                self.expect(b'=', "expected '='")?;
                let (id, segment) = self.trans_id_segment()?;
                self.expect(b'{', "expected '{'")?;
                let mut imm_ack_required = false;
                if Tok::ImmAckRequired.is(self.peek_word()) {
                    self.word("")?;
                    imm_ack_required = true;
                    if !self.eat(b',') {
                        // `Reply = 1 { ImmAckRequired }` is not in the ABNF, but tolerate the
                        // empty reply only if it is closed at once.
                        self.expect(b'}', "expected ','")?;
                        return Ok(Transaction::Reply(TransactionReply {
                            id,
                            segment,
                            imm_ack_required,
                            result: ReplyResult::Actions(Vec::new()),
                        }));
                    }
                }
                let result = if Tok::Error.is(self.peek_word()) {
                    let e = self.error_descriptor()?;
                    self.expect(b'}', "expected '}'")?;
                    ReplyResult::Error(e)
                } else {
                    let mut actions = Vec::new();
                    self.list(|p| {
                        actions.push(p.action_reply()?);
                        Ok(())
                    })?;
                    ReplyResult::Actions(actions)
                };
                Ok(Transaction::Reply(TransactionReply {
                    id,
                    segment,
                    imm_ack_required,
                    result,
                }))
            }
            Some(Tok::Pending) => {
                self.expect(b'=', "expected '='")?;
                let id = self.u32()?;
                self.expect(b'{', "expected '{'")?;
                self.expect(b'}', "expected '}'")?;
                Ok(Transaction::Pending(id))
            }
            Some(Tok::ResponseAck) => {
                self.expect(b'{', "expected '{'")?;
                let mut acks = Vec::new();
                self.list(|p| {
                    let (s, w) = p.word("expected a transaction ID")?;
                    let bad = || p.err_at(s, SYNTAX, "bad transaction ack");
                    let (a, b) = split_once(w, b'-').unwrap_or((w, w));
                    let first = parse_num(a).ok_or_else(bad)?;
                    let last = parse_num(b).ok_or_else(bad)?;
                    acks.push(AckRange { first, last });
                    Ok(())
                })?;
                Ok(Transaction::ResponseAck(acks))
            }
            Some(Tok::Segment) => {
                self.expect(b'=', "expected '='")?;
                let s = self.pos;
                let (id, segment) = self.trans_id_segment()?;
                let segment = segment.ok_or_else(|| self.err_at(s, SYNTAX, "segment number"))?;
                Ok(Transaction::SegmentReply(SegmentReply { id, segment }))
            }
            _ => Err(self.err_at(start, SYNTAX, "expected a transaction")),
        }
    }

    /// `TransactionID [SLASH SegmentNumber [SLASH SegmentationCompleteToken]]` (one word).
    fn trans_id_segment(&mut self) -> R<(u32, Option<Segment>)> {
        let (start, w) = self.word("expected a transaction ID")?;
        let bad = |p: &Self| p.err_at(start, SYNTAX, "bad transaction ID");
        let mut parts = w.split(|&c| c == b'/');
        let id = parts.next().and_then(parse_num).ok_or_else(|| bad(self))?;
        let segment = match parts.next() {
            None => None,
            Some(n) => {
                let number = parse_num(n)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| bad(self))?;
                let complete = match parts.next() {
                    None => false,
                    Some(e) if e.eq_ignore_ascii_case(b"END") => true,
                    Some(_) => return Err(bad(self)),
                };
                Some(Segment { number, complete })
            }
        };
        if parts.next().is_some() {
            return Err(bad(self));
        }
        Ok((id, segment))
    }

    fn context_id(&mut self) -> R<ContextId> {
        let (start, w) = self.word("expected a context ID")?;
        Ok(match w {
            b"-" => ContextId::Null,
            b"$" => ContextId::Choose,
            b"*" => ContextId::All,
            _ => ContextId::Id(
                parse_num(w).ok_or_else(|| self.err_at(start, SYNTAX, "bad context ID"))?,
            ),
        })
    }

    /// Context properties shared by action requests and replies; returns false if the next
    /// word is not one.
    fn context_property(&mut self, props: &mut ContextProperties) -> R<bool> {
        let w = self.peek_word();
        let start = self.pos;
        match Tok::lookup(w) {
            Some(Tok::Topology) => {
                self.word("")?;
                self.expect(b'{', "expected '{'")?;
                let mut t = Vec::new();
                self.list(|p| {
                    let from = p.termination_id()?;
                    p.expect(b',', "expected ','")?;
                    let to = p.termination_id()?;
                    p.expect(b',', "expected ','")?;
                    let (s, d) = p.word("expected a topology direction")?;
                    let direction = match Tok::lookup(d) {
                        Some(Tok::Bothway) => TopologyDirection::Bothway,
                        Some(Tok::Isolate) => TopologyDirection::Isolate,
                        Some(Tok::Oneway) => TopologyDirection::Oneway,
                        _ => return Err(p.err_at(s, NOT_IMPLEMENTED, "topology direction")),
                    };
                    if p.peek() == Some(b',') {
                        let save = p.pos;
                        p.pos += 1;
                        if Tok::Stream.is(p.peek_word()) {
                            return Err(p.err(NOT_IMPLEMENTED, "topology stream"));
                        }
                        p.pos = save;
                    }
                    t.push(TopologyTriple {
                        from,
                        to,
                        direction,
                    });
                    Ok(())
                })?;
                if !props.topology.is_empty() {
                    return Err(self.err_at(start, SYNTAX, "descriptor appears twice"));
                }
                props.topology = t;
            }
            Some(Tok::Priority) => {
                self.word("")?;
                self.expect(b'=', "expected '='")?;
                let v = self.u16()?;
                self.once(&mut props.priority, v, start)?;
            }
            Some(Tok::Emergency) => {
                self.word("")?;
                self.once(&mut props.emergency, true, start)?;
            }
            Some(Tok::EmergencyOff) => {
                self.word("")?;
                self.once(&mut props.emergency, false, start)?;
            }
            Some(Tok::ContextAudit) => {
                return Err(self.err(NOT_IMPLEMENTED, "context audit"));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn action_request(&mut self) -> R<ActionRequest> {
        self.tok(Tok::Ctx, "expected Context")?;
        self.expect(b'=', "expected '='")?;
        let context = self.context_id()?;
        self.expect(b'{', "expected '{'")?;
        let mut properties = ContextProperties::default();
        let mut commands = Vec::new();
        if !self.eat(b'}') {
            self.list(|p| {
                if !p.context_property(&mut properties)? {
                    commands.push(p.command_request()?);
                }
                Ok(())
            })?;
        }
        Ok(ActionRequest {
            context,
            properties,
            commands,
        })
    }

    fn termination_id(&mut self) -> R<TerminationId> {
        let (start, w) = self.word("expected a termination ID")?;
        // H.248.1 Annex B.2: "Total length of pathNAME must not exceed 64 chars". The bound also
        // caps what a wildcard match over installed names can cost.
        if w.len() > TERMINATION_ID_MAX {
            return Err(self.err_at(start, SYNTAX, "termination ID longer than 64 characters"));
        }
        let ok = w == b"$"
            || w == b"*"
            || w.first()
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'*' || c == b'$');
        if !ok {
            return Err(self.err_at(start, SYNTAX, "bad termination ID"));
        }
        Ok(TerminationId(text(w)))
    }

    fn command_request(&mut self) -> R<CommandRequest> {
        let (start, mut w) = self.word("expected a command")?;
        let mut optional = false;
        let mut wildcard_reply = false;
        loop {
            match w {
                [b'O' | b'o', b'-', rest @ ..] if !optional => {
                    optional = true;
                    w = rest;
                }
                [b'W' | b'w', b'-', rest @ ..] if !wildcard_reply => {
                    wildcard_reply = true;
                    w = rest;
                }
                _ => break,
            }
        }
        let tok = Tok::lookup(w);
        let command = match tok {
            Some(t @ (Tok::Add | Tok::Modify | Tok::Move)) => {
                self.expect(b'=', "expected '='")?;
                let mut r = AmmRequest {
                    termination: self.termination_id()?,
                    ..AmmRequest::default()
                };
                if self.eat(b'{') {
                    self.list(|p| p.amm_parameter(&mut r))?;
                }
                match t {
                    Tok::Add => Command::Add(r),
                    Tok::Modify => Command::Modify(r),
                    _ => Command::Move(r),
                }
            }
            Some(Tok::Subtract) => {
                self.expect(b'=', "expected '='")?;
                let termination = self.termination_id()?;
                let mut audit = None;
                if self.eat(b'{') {
                    audit = Some(self.audit_descriptor()?);
                    self.expect(b'}', "expected '}'")?;
                }
                Command::Subtract(SubtractRequest { termination, audit })
            }
            Some(t @ (Tok::AuditValue | Tok::AuditCap)) => {
                self.expect(b'=', "expected '='")?;
                let termination = self.termination_id()?;
                self.expect(b'{', "expected '{'")?;
                let audit = self.audit_descriptor()?;
                self.expect(b'}', "expected '}'")?;
                let r = AuditRequest { termination, audit };
                if t == Tok::AuditValue {
                    Command::AuditValue(r)
                } else {
                    Command::AuditCapabilities(r)
                }
            }
            Some(Tok::Notify) => {
                self.expect(b'=', "expected '='")?;
                let termination = self.termination_id()?;
                self.expect(b'{', "expected '{'")?;
                let observed_events = self.observed_events()?;
                let error = if self.eat(b',') {
                    Some(self.error_descriptor()?)
                } else {
                    None
                };
                self.expect(b'}', "expected '}'")?;
                Command::Notify(NotifyRequest {
                    termination,
                    observed_events,
                    error,
                })
            }
            Some(Tok::ServiceChange) => {
                self.expect(b'=', "expected '='")?;
                let termination = self.termination_id()?;
                self.expect(b'{', "expected '{'")?;
                let parms = self.services()?;
                self.expect(b'}', "expected '}'")?;
                Command::ServiceChange(ServiceChangeRequest { termination, parms })
            }
            _ => return Err(self.err_at(start, SYNTAX, "unknown command")),
        };
        Ok(CommandRequest {
            optional,
            wildcard_reply,
            command,
        })
    }

    fn amm_parameter(&mut self, r: &mut AmmRequest) -> R<()> {
        let w = self.peek_word();
        let start = self.pos;
        match Tok::lookup(w) {
            Some(Tok::Media) => {
                let m = self.media()?;
                self.once(&mut r.media, m, start)
            }
            Some(Tok::Events) => {
                let e = self.events()?;
                self.once(&mut r.events, e, start)
            }
            Some(Tok::Signals) => {
                let s = self.signals()?;
                self.once(&mut r.signals, s, start)
            }
            Some(Tok::DigitMap) => {
                let d = self.digit_map()?;
                self.once(&mut r.digit_map, d, start)
            }
            Some(Tok::Audit) => {
                let a = self.audit_descriptor()?;
                self.once(&mut r.audit, a, start)
            }
            Some(Tok::Stats) => {
                let s = self.statistics()?;
                self.once(&mut r.statistics, s, start)
            }
            Some(Tok::Modem | Tok::Mux | Tok::EventBuffer) => {
                Err(self.err(NOT_IMPLEMENTED, "Modem/Mux/EventBuffer descriptor"))
            }
            _ => Err(self.err(SYNTAX, "expected a descriptor")),
        }
    }

    // ---- descriptors ----

    fn media(&mut self) -> R<MediaDescriptor> {
        self.tok(Tok::Media, "expected Media")?;
        self.expect(b'{', "expected '{'")?;
        let mut m = MediaDescriptor::default();
        let mut shorthand = StreamDescriptor::default();
        let mut has_shorthand = false;
        if self.eat(b'}') {
            return Ok(m);
        }
        self.list(|p| {
            let start = p.pos;
            match Tok::lookup(p.peek_word()) {
                Some(Tok::Stream) => {
                    p.word("")?;
                    p.expect(b'=', "expected '='")?;
                    let id = p.u16()?;
                    if m.streams.iter().any(|s| s.id == Some(id)) {
                        return Err(p.err_at(start, SYNTAX, "stream appears twice"));
                    }
                    let mut s = StreamDescriptor {
                        id: Some(id),
                        ..StreamDescriptor::default()
                    };
                    p.expect(b'{', "expected '{'")?;
                    if !p.eat(b'}') {
                        p.list(|p| p.stream_parm(&mut s))?;
                    }
                    m.streams.push(s);
                    Ok(())
                }
                Some(Tok::TerminationState) => {
                    let t = p.termination_state()?;
                    p.once(&mut m.termination_state, t, start)
                }
                _ => {
                    has_shorthand = true;
                    p.stream_parm(&mut shorthand)
                }
            }
        })?;
        if has_shorthand {
            m.streams.insert(0, shorthand);
        }
        Ok(m)
    }

    fn stream_parm(&mut self, s: &mut StreamDescriptor) -> R<()> {
        let (start, w) = self.word("expected a stream parameter")?;
        match Tok::lookup(w) {
            Some(Tok::Local) => {
                self.expect(b'{', "expected '{'")?;
                let o = self.octets()?;
                self.once(&mut s.local, o, start)
            }
            Some(Tok::Remote) => {
                self.expect(b'{', "expected '{'")?;
                let o = self.octets()?;
                self.once(&mut s.remote, o, start)
            }
            Some(Tok::LocalControl) => {
                self.expect(b'{', "expected '{'")?;
                let mut lc = LocalControlDescriptor::default();
                if !self.eat(b'}') {
                    self.list(|p| p.local_parm(&mut lc))?;
                }
                self.once(&mut s.local_control, lc, start)
            }
            Some(Tok::Stats) => {
                self.pos = start;
                let st = self.statistics()?;
                self.once(&mut s.statistics, st, start)
            }
            _ => Err(self.err_at(start, SYNTAX, "expected a stream parameter")),
        }
    }

    fn local_parm(&mut self, lc: &mut LocalControlDescriptor) -> R<()> {
        let (start, w) = self.word("expected a LocalControl parameter")?;
        match Tok::lookup(w) {
            Some(Tok::Mode) => {
                self.expect(b'=', "expected '='")?;
                let (s, m) = self.word("expected a stream mode")?;
                let mode = match Tok::lookup(m) {
                    Some(Tok::SendOnly) => StreamMode::SendOnly,
                    Some(Tok::RecvOnly) => StreamMode::RecvOnly,
                    Some(Tok::SendRecv) => StreamMode::SendRecv,
                    Some(Tok::Inactive) => StreamMode::Inactive,
                    Some(Tok::Loopback) => StreamMode::Loopback,
                    _ => return Err(self.err_at(s, SYNTAX, "bad stream mode")),
                };
                self.once(&mut lc.mode, mode, start)
            }
            Some(t @ (Tok::ReservedValue | Tok::ReservedGroup)) => {
                self.expect(b'=', "expected '='")?;
                let v = self.on_off()?;
                let slot = if t == Tok::ReservedValue {
                    &mut lc.reserve_value
                } else {
                    &mut lc.reserve_group
                };
                if slot.is_some() {
                    return Err(self.err_at(start, SYNTAX, "parameter appears twice"));
                }
                *slot = Some(v);
                Ok(())
            }
            _ => {
                let p = self.property_rest(w)?;
                lc.properties.push(p);
                Ok(())
            }
        }
    }

    fn on_off(&mut self) -> R<bool> {
        let (s, w) = self.word("expected ON or OFF")?;
        if w.eq_ignore_ascii_case(b"ON") {
            Ok(true)
        } else if w.eq_ignore_ascii_case(b"OFF") {
            Ok(false)
        } else {
            Err(self.err_at(s, SYNTAX, "expected ON or OFF"))
        }
    }

    /// `parmValue` after the name `name` has been read.
    fn property_rest(&mut self, name: &[u8]) -> R<PropertyParm> {
        let name = text(name);
        let relation = match self.peek() {
            Some(b'=') => Relation::Equal,
            Some(b'>') => Relation::Greater,
            Some(b'<') => Relation::Less,
            Some(b'#') => Relation::NotEqual,
            _ => return Err(self.err(SYNTAX, "expected '=' after parameter name")),
        };
        self.pos += 1;
        let value = if relation != Relation::Equal {
            PropertyValue::Single(self.value()?)
        } else if self.eat(b'[') {
            let first = self.value()?;
            if self.eat(b':') {
                let second = self.value()?;
                self.expect(b']', "expected ']'")?;
                PropertyValue::Range(first, second)
            } else {
                let mut v = vec![first];
                while self.eat(b',') {
                    v.push(self.value()?);
                }
                self.expect(b']', "expected ']'")?;
                PropertyValue::Alternatives(v)
            }
        } else if self.eat(b'{') {
            let mut v = vec![self.value()?];
            while self.eat(b',') {
                v.push(self.value()?);
            }
            self.expect(b'}', "expected '}'")?;
            PropertyValue::Sublist(v)
        } else {
            PropertyValue::Single(self.value()?)
        };
        Ok(PropertyParm {
            name,
            relation,
            value,
        })
    }

    fn termination_state(&mut self) -> R<TerminationStateDescriptor> {
        self.tok(Tok::TerminationState, "expected TerminationState")?;
        self.expect(b'{', "expected '{'")?;
        let mut t = TerminationStateDescriptor::default();
        if self.eat(b'}') {
            return Ok(t);
        }
        self.list(|p| {
            let (start, w) = p.word("expected a TerminationState parameter")?;
            match Tok::lookup(w) {
                Some(Tok::ServiceStates) => {
                    p.expect(b'=', "expected '='")?;
                    let (s, v) = p.word("expected a service state")?;
                    let st = match Tok::lookup(v) {
                        Some(Tok::Test) => ServiceState::Test,
                        Some(Tok::OutOfSvc) => ServiceState::OutOfService,
                        Some(Tok::InSvc) => ServiceState::InService,
                        _ => return Err(p.err_at(s, SYNTAX, "bad service state")),
                    };
                    p.once(&mut t.service_state, st, start)
                }
                Some(Tok::Buffer) => {
                    p.expect(b'=', "expected '='")?;
                    let (s, v) = p.word("expected LockStep or OFF")?;
                    let b = if Tok::LockStep.is(v) {
                        true
                    } else if v.eq_ignore_ascii_case(b"OFF") {
                        false
                    } else {
                        return Err(p.err_at(s, SYNTAX, "expected LockStep or OFF"));
                    };
                    p.once(&mut t.event_buffer_control, b, start)
                }
                _ => {
                    let prop = p.property_rest(w)?;
                    t.properties.push(prop);
                    Ok(())
                }
            }
        })?;
        Ok(t)
    }

    fn events(&mut self) -> R<EventsDescriptor> {
        self.tok(Tok::Events, "expected Events")?;
        let mut e = EventsDescriptor::default();
        if !self.eat(b'=') {
            return Ok(e);
        }
        e.request_id = Some(self.u32()?);
        self.expect(b'{', "expected '{'")?;
        self.list(|p| {
            let (_, name) = p.word("expected an event name")?;
            let mut ev = RequestedEvent {
                name: text(name),
                stream: None,
                keep_active: false,
                parameters: Vec::new(),
            };
            if p.eat(b'{') {
                p.list(|p| {
                    let (start, w) = p.word("expected an event parameter")?;
                    match Tok::lookup(w) {
                        Some(Tok::Stream) => {
                            p.expect(b'=', "expected '='")?;
                            let id = p.u16()?;
                            p.once(&mut ev.stream, id, start)
                        }
                        Some(Tok::KeepActive) => {
                            ev.keep_active = true;
                            Ok(())
                        }
                        Some(Tok::Embed | Tok::DigitMap) => {
                            Err(p.err_at(start, NOT_IMPLEMENTED, "embedded descriptor"))
                        }
                        _ => {
                            let prop = p.property_rest(w)?;
                            ev.parameters.push(prop);
                            Ok(())
                        }
                    }
                })?;
            }
            e.events.push(ev);
            Ok(())
        })?;
        Ok(e)
    }

    fn signals(&mut self) -> R<SignalsDescriptor> {
        self.tok(Tok::Signals, "expected Signals")?;
        let mut sg = SignalsDescriptor::default();
        if !self.eat(b'{') {
            return Ok(sg);
        }
        if self.eat(b'}') {
            return Ok(sg);
        }
        self.list(|p| {
            let (start, name) = p.word("expected a signal name")?;
            if Tok::SignalList.is(name) {
                return Err(p.err_at(start, NOT_IMPLEMENTED, "signal list"));
            }
            let mut s = SignalRequest {
                name: text(name),
                stream: None,
                signal_type: None,
                duration: None,
                notify_completion: Vec::new(),
                keep_active: false,
                parameters: Vec::new(),
            };
            if p.eat(b'{') {
                p.list(|p| p.sig_parameter(&mut s))?;
            }
            sg.signals.push(s);
            Ok(())
        })?;
        Ok(sg)
    }

    fn sig_parameter(&mut self, s: &mut SignalRequest) -> R<()> {
        let (start, w) = self.word("expected a signal parameter")?;
        match Tok::lookup(w) {
            Some(Tok::Stream) => {
                self.expect(b'=', "expected '='")?;
                let id = self.u16()?;
                self.once(&mut s.stream, id, start)
            }
            Some(Tok::SignalType) => {
                self.expect(b'=', "expected '='")?;
                let (st, v) = self.word("expected a signal type")?;
                let t = match Tok::lookup(v) {
                    Some(Tok::OnOff) => SignalType::OnOff,
                    Some(Tok::TimeOut) => SignalType::TimeOut,
                    Some(Tok::Brief) => SignalType::Brief,
                    _ => return Err(self.err_at(st, SYNTAX, "bad signal type")),
                };
                self.once(&mut s.signal_type, t, start)
            }
            Some(Tok::Duration) => {
                self.expect(b'=', "expected '='")?;
                let d = self.u32()?;
                self.once(&mut s.duration, d, start)
            }
            Some(Tok::NotifyCompletion) => {
                self.expect(b'=', "expected '='")?;
                self.expect(b'{', "expected '{'")?;
                if !s.notify_completion.is_empty() {
                    return Err(self.err_at(start, SYNTAX, "parameter appears twice"));
                }
                let mut v = Vec::new();
                self.list(|p| {
                    let (rs, r) = p.word("expected a notification reason")?;
                    v.push(match Tok::lookup(r) {
                        Some(Tok::TimeOut) => NotifyReason::TimeOut,
                        Some(Tok::IntByEvent) => NotifyReason::InterruptByEvent,
                        Some(Tok::IntBySigDescr) => NotifyReason::InterruptByNewSignalsDescr,
                        Some(Tok::OtherReason) => NotifyReason::OtherReason,
                        Some(Tok::Iteration) => NotifyReason::Iteration,
                        _ => return Err(p.err_at(rs, SYNTAX, "bad notification reason")),
                    });
                    Ok(())
                })?;
                s.notify_completion = v;
                Ok(())
            }
            Some(Tok::KeepActive) => {
                s.keep_active = true;
                Ok(())
            }
            _ => {
                let prop = self.property_rest(w)?;
                s.parameters.push(prop);
                Ok(())
            }
        }
    }

    fn observed_events(&mut self) -> R<ObservedEventsDescriptor> {
        self.tok(Tok::ObservedEvents, "expected ObservedEvents")?;
        self.expect(b'=', "expected '='")?;
        let request_id = self.u32()?;
        self.expect(b'{', "expected '{'")?;
        let mut events = Vec::new();
        self.list(|p| {
            let (start, mut w) = p.word("expected an observed event")?;
            let mut timestamp = None;
            if p.eat(b':') {
                if !is_timestamp(w) {
                    return Err(p.err_at(start, SYNTAX, "bad time stamp"));
                }
                timestamp = Some(text(w));
                w = p.word("expected an event name")?.1;
            }
            let mut ev = ObservedEvent {
                timestamp,
                name: text(w),
                stream: None,
                parameters: Vec::new(),
            };
            if p.eat(b'{') {
                p.list(|p| {
                    let (start, w) = p.word("expected an event parameter")?;
                    if Tok::Stream.is(w) {
                        p.expect(b'=', "expected '='")?;
                        let id = p.u16()?;
                        p.once(&mut ev.stream, id, start)
                    } else {
                        let prop = p.property_rest(w)?;
                        ev.parameters.push(prop);
                        Ok(())
                    }
                })?;
            }
            events.push(ev);
            Ok(())
        })?;
        Ok(ObservedEventsDescriptor { request_id, events })
    }

    fn statistics(&mut self) -> R<Vec<StatisticsParameter>> {
        self.tok(Tok::Stats, "expected Statistics")?;
        self.expect(b'{', "expected '{'")?;
        let mut v = Vec::new();
        if self.eat(b'}') {
            return Ok(v);
        }
        self.list(|p| {
            let (_, name) = p.word("expected a statistic name")?;
            let mut values = Vec::new();
            if p.eat(b'=') {
                if p.eat(b'[') {
                    values.push(p.value()?);
                    while p.eat(b',') {
                        values.push(p.value()?);
                    }
                    p.expect(b']', "expected ']'")?;
                } else {
                    values.push(p.value()?);
                }
            }
            v.push(StatisticsParameter {
                name: text(name),
                values,
            });
            Ok(())
        })?;
        Ok(v)
    }

    fn error_descriptor(&mut self) -> R<ErrorDescriptor> {
        self.tok(Tok::Error, "expected Error")?;
        self.expect(b'=', "expected '='")?;
        let (start, w) = self.word("expected an error code")?;
        let code = parse_num(w)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|_| w.len() <= 4)
            .ok_or_else(|| self.err_at(start, SYNTAX, "bad error code"))?;
        self.expect(b'{', "expected '{'")?;
        let text = if self.peek() == Some(b'"') {
            Some(self.quoted()?)
        } else {
            None
        };
        self.expect(b'}', "expected '}'")?;
        Ok(ErrorDescriptor { code, text })
    }

    fn audit_descriptor(&mut self) -> R<AuditDescriptor> {
        self.tok(Tok::Audit, "expected Audit")?;
        self.expect(b'{', "expected '{'")?;
        let mut a = AuditDescriptor::default();
        if self.eat(b'}') {
            return Ok(a);
        }
        self.list(|p| {
            let (start, w) = p.word("expected an audit item")?;
            let item = match Tok::lookup(w) {
                Some(Tok::Media) => AuditItem::Media,
                Some(Tok::Events) => AuditItem::Events,
                Some(Tok::Signals) => AuditItem::Signals,
                Some(Tok::DigitMap) => AuditItem::DigitMap,
                Some(Tok::Stats) => AuditItem::Statistics,
                Some(Tok::ObservedEvents) => AuditItem::ObservedEvents,
                Some(Tok::Packages) => AuditItem::Packages,
                Some(Tok::EventBuffer) => AuditItem::EventBuffer,
                Some(_) => return Err(p.err_at(start, NOT_IMPLEMENTED, "audit item")),
                None => return Err(p.err_at(start, SYNTAX, "bad audit item")),
            };
            if p.peek() == Some(b'{') {
                return Err(p.err(NOT_IMPLEMENTED, "individual audit descriptor"));
            }
            a.items.push(item);
            Ok(())
        })?;
        Ok(a)
    }

    fn packages(&mut self) -> R<Vec<PackagesItem>> {
        self.tok(Tok::Packages, "expected Packages")?;
        self.expect(b'{', "expected '{'")?;
        let mut v = Vec::new();
        if self.eat(b'}') {
            return Ok(v);
        }
        self.list(|p| {
            let (start, w) = p.word("expected a package item")?;
            let dash = w.iter().rposition(|&c| c == b'-');
            let item = dash.and_then(|d| {
                let name = w.get(..d)?;
                let version = parse_num(w.get(d + 1..)?).and_then(|n| u16::try_from(n).ok())?;
                (!name.is_empty()).then(|| PackagesItem {
                    name: text(name),
                    version,
                })
            });
            v.push(item.ok_or_else(|| p.err_at(start, SYNTAX, "bad package item"))?);
            Ok(())
        })?;
        Ok(v)
    }

    fn digit_map(&mut self) -> R<DigitMapDescriptor> {
        self.tok(Tok::DigitMap, "expected DigitMap")?;
        self.expect(b'=', "expected '='")?;
        let mut d = DigitMapDescriptor::default();
        if self.peek() != Some(b'{') {
            d.name = Some(text(self.word("expected a digit map name")?.1));
        }
        if self.eat(b'{') {
            let start = self.pos;
            while let Some(&c) = self.s.get(self.pos) {
                if c == b'}' {
                    break;
                }
                self.pos += 1;
            }
            let body = self.s.get(start..self.pos).unwrap_or(&[]);
            self.expect(b'}', "unterminated digit map")?;
            let body = std::str::from_utf8(body)
                .map_err(|_| self.err_at(start, SYNTAX, "digit map is not UTF-8"))?;
            d.value = Some(body.trim().to_owned());
        }
        Ok(d)
    }

    fn services(&mut self) -> R<ServiceChangeParms> {
        self.tok(Tok::Services, "expected Services")?;
        self.expect(b'{', "expected '{'")?;
        let mut sc = ServiceChangeParms::default();
        if self.eat(b'}') {
            return Ok(sc);
        }
        self.list(|p| {
            let (start, w) = p.word("expected a ServiceChange parameter")?;
            match Tok::lookup(w) {
                Some(Tok::Method) => {
                    p.expect(b'=', "expected '='")?;
                    let (ms, m) = p.word("expected a method")?;
                    let method = match Tok::lookup(m) {
                        Some(Tok::Failover) => ServiceChangeMethod::Failover,
                        Some(Tok::Forced) => ServiceChangeMethod::Forced,
                        Some(Tok::Graceful) => ServiceChangeMethod::Graceful,
                        Some(Tok::Restart) => ServiceChangeMethod::Restart,
                        Some(Tok::Disconnected) => ServiceChangeMethod::Disconnected,
                        Some(Tok::HandOff) => ServiceChangeMethod::HandOff,
                        _ if m.len() > 2 && matches!(m, [b'X' | b'x', b'-' | b'+', ..]) => {
                            ServiceChangeMethod::Extension(text(m))
                        }
                        _ => return Err(p.err_at(ms, SYNTAX, "bad ServiceChange method")),
                    };
                    p.once(&mut sc.method, method, start)
                }
                Some(Tok::Reason) => {
                    p.expect(b'=', "expected '='")?;
                    let v = p.value()?;
                    p.once(&mut sc.reason, v, start)
                }
                Some(Tok::Delay) => {
                    p.expect(b'=', "expected '='")?;
                    let v = p.u32()?;
                    p.once(&mut sc.delay, v, start)
                }
                Some(Tok::ServiceChangeAddress) => {
                    p.expect(b'=', "expected '='")?;
                    let w = p.peek_word();
                    let a = if !w.is_empty() && w.iter().all(u8::is_ascii_digit) {
                        ServiceChangeAddress::Port(p.u16()?)
                    } else {
                        ServiceChangeAddress::Mid(p.mid()?)
                    };
                    p.once(&mut sc.address, a, start)
                }
                Some(Tok::Profile) => {
                    p.expect(b'=', "expected '='")?;
                    let (ps, v) = p.word("expected a profile")?;
                    if split_once(v, b'/').is_none() {
                        return Err(p.err_at(ps, SYNTAX, "profile needs name/version"));
                    }
                    p.once(&mut sc.profile, text(v), start)
                }
                Some(Tok::Version) => {
                    p.expect(b'=', "expected '='")?;
                    let (vs, v) = p.word("expected a version")?;
                    let n = parse_num(v)
                        .and_then(|n| u8::try_from(n).ok())
                        .filter(|_| v.len() <= 2)
                        .ok_or_else(|| p.err_at(vs, SYNTAX, "bad version"))?;
                    p.once(&mut sc.version, n, start)
                }
                Some(Tok::MgcId) => {
                    p.expect(b'=', "expected '='")?;
                    let m = p.mid()?;
                    p.once(&mut sc.mgc_id, m, start)
                }
                _ if is_timestamp(w) => p.once(&mut sc.timestamp, text(w), start),
                _ => Err(p.err_at(start, SYNTAX, "unknown ServiceChange parameter")),
            }
        })?;
        Ok(sc)
    }

    // ---- replies ----

    fn action_reply(&mut self) -> R<ActionReply> {
        self.tok(Tok::Ctx, "expected Context")?;
        self.expect(b'=', "expected '='")?;
        let context = self.context_id()?;
        self.expect(b'{', "expected '{'")?;
        let mut r = ActionReply {
            context,
            properties: ContextProperties::default(),
            replies: Vec::new(),
            error: None,
        };
        if self.eat(b'}') {
            return Ok(r);
        }
        self.list(|p| {
            if r.error.is_some() {
                return Err(p.err(SYNTAX, "error descriptor must be last"));
            }
            if Tok::Error.is(p.peek_word()) {
                r.error = Some(p.error_descriptor()?);
                return Ok(());
            }
            if p.context_property(&mut r.properties)? {
                return Ok(());
            }
            r.replies.push(p.command_reply()?);
            Ok(())
        })?;
        Ok(r)
    }

    fn command_reply(&mut self) -> R<CommandReply> {
        let (start, w) = self.word("expected a command reply")?;
        let tok = Tok::lookup(w);
        match tok {
            Some(
                t @ (Tok::Add
                | Tok::Modify
                | Tok::Move
                | Tok::Subtract
                | Tok::AuditValue
                | Tok::AuditCap),
            ) => {
                self.expect(b'=', "expected '='")?;
                if Tok::Ctx.is(self.peek_word()) {
                    return Err(self.err(NOT_IMPLEMENTED, "context termination audit"));
                }
                let termination = self.termination_id()?;
                let mut audit = TerminationAudit::default();
                if self.eat(b'{') && !self.eat(b'}') {
                    self.list(|p| p.audit_return(&mut audit))?;
                }
                let r = AmmsReply { termination, audit };
                Ok(match t {
                    Tok::Add => CommandReply::Add(r),
                    Tok::Modify => CommandReply::Modify(r),
                    Tok::Move => CommandReply::Move(r),
                    Tok::Subtract => CommandReply::Subtract(r),
                    Tok::AuditValue => CommandReply::AuditValue(r),
                    _ => CommandReply::AuditCapabilities(r),
                })
            }
            Some(Tok::Notify) => {
                self.expect(b'=', "expected '='")?;
                let termination = self.termination_id()?;
                let mut error = None;
                if self.eat(b'{') {
                    error = Some(self.error_descriptor()?);
                    self.expect(b'}', "expected '}'")?;
                }
                Ok(CommandReply::Notify(NotifyReply { termination, error }))
            }
            Some(Tok::ServiceChange) => {
                self.expect(b'=', "expected '='")?;
                let termination = self.termination_id()?;
                let mut result = ServiceChangeResult::Accepted;
                if self.eat(b'{') {
                    result = if Tok::Error.is(self.peek_word()) {
                        ServiceChangeResult::Error(self.error_descriptor()?)
                    } else {
                        ServiceChangeResult::Parms(self.services()?)
                    };
                    self.expect(b'}', "expected '}'")?;
                }
                Ok(CommandReply::ServiceChange(ServiceChangeReply {
                    termination,
                    result,
                }))
            }
            _ => Err(self.err_at(start, SYNTAX, "unknown command reply")),
        }
    }

    fn audit_return(&mut self, a: &mut TerminationAudit) -> R<()> {
        let start = self.pos;
        match Tok::lookup(self.peek_word()) {
            Some(Tok::Media) => {
                let m = self.media()?;
                self.once(&mut a.media, m, start)
            }
            Some(Tok::Events) => {
                let e = self.events()?;
                self.once(&mut a.events, e, start)
            }
            Some(Tok::Signals) => {
                let s = self.signals()?;
                self.once(&mut a.signals, s, start)
            }
            Some(Tok::DigitMap) => {
                let d = self.digit_map()?;
                self.once(&mut a.digit_map, d, start)
            }
            Some(Tok::ObservedEvents) => {
                let o = self.observed_events()?;
                self.once(&mut a.observed_events, o, start)
            }
            Some(Tok::Stats) => {
                let s = self.statistics()?;
                self.once(&mut a.statistics, s, start)
            }
            Some(Tok::Packages) => {
                let p = self.packages()?;
                self.once(&mut a.packages, p, start)
            }
            Some(Tok::Error) => {
                let e = self.error_descriptor()?;
                self.once(&mut a.error, e, start)
            }
            Some(_) => Err(self.err(NOT_IMPLEMENTED, "audit return item")),
            None => Err(self.err(SYNTAX, "expected a descriptor")),
        }
    }
}

fn split_once(w: &[u8], c: u8) -> Option<(&[u8], &[u8])> {
    let i = w.iter().position(|&x| x == c)?;
    Some((w.get(..i)?, w.get(i + 1..)?))
}

/// `UINT32` in decimal (at most 10 digits, no overflow).
fn parse_num(w: &[u8]) -> Option<u32> {
    if w.is_empty() || w.len() > 10 || !w.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(w).ok()?.parse().ok()
}

/// `TimeStamp = Date "T" Time` — 8 digits, `T`, 8 digits.
fn is_timestamp(w: &[u8]) -> bool {
    w.len() == 17
        && w.iter().enumerate().all(|(i, c)| {
            if i == 8 {
                c.eq_ignore_ascii_case(&b'T')
            } else {
                c.is_ascii_digit()
            }
        })
}
