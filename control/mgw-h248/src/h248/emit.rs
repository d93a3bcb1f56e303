//! Emitter for the H.248.1 text encoding: pretty (long tokens, one item per line, indented) or
//! compact (short tokens, no optional white space), per H.248.1 Annex B.
//!
//! Everything the emitter writes parses back to the same AST (`parse(emit(m)) == m`), which the
//! property tests check. Strings that cannot be written as a `VALUE` word are quoted.

use std::fmt::Write as _;

use super::ast::*;
use super::token::Tok;

/// Output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Long tokens, new lines and indentation: easy to read in logs and traces.
    #[default]
    Pretty,
    /// Short tokens and no optional white space: smallest on the wire.
    Compact,
}

/// Encode a message as text.
pub fn emit(m: &Message, style: Style) -> String {
    let mut w = W {
        out: String::with_capacity(256),
        compact: style == Style::Compact,
        depth: 0,
    };
    w.message(m);
    w.out
}

/// The message header (`MEGACO/3 [ip]:port` plus separator) alone. With
/// [`emit_with_header`] a sender formats its header once instead of per message.
pub fn header(version: u8, mid: &Mid, style: Style) -> String {
    let mut w = W {
        out: String::with_capacity(48),
        compact: style == Style::Compact,
        depth: 0,
    };
    w.header(version, mid);
    w.out
}

/// Encode a message whose header was made by [`header`] with the same style.
pub fn emit_with_header(header: &str, body: &MessageBody, style: Style) -> String {
    let mut w = W {
        out: String::with_capacity(256 + header.len()),
        compact: style == Style::Compact,
        depth: 0,
    };
    w.out.push_str(header);
    w.body(body);
    w.out
}

struct W {
    out: String,
    compact: bool,
    depth: usize,
}

fn safe_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
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
        })
}

impl W {
    fn t(&mut self, t: Tok) {
        self.out.push_str(t.form(self.compact));
    }
    fn s(&mut self, s: &str) {
        self.out.push_str(s);
    }
    fn eq(&mut self) {
        self.s(if self.compact { "=" } else { " = " });
    }
    fn tok_eq(&mut self, t: Tok) {
        self.t(t);
        self.eq();
    }
    /// Decimal without going through `fmt` (it showed in profiles).
    fn num(&mut self, n: impl Into<u64>) {
        let mut n: u64 = n.into();
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
        for &c in &buf[i..] {
            self.out.push(char::from(c));
        }
    }
    fn nl(&mut self) {
        if !self.compact {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        }
    }
    fn open(&mut self) {
        self.s(if self.compact { "{" } else { " {" });
        self.depth += 1;
        self.nl();
    }
    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.nl();
        self.out.push('}');
    }
    fn comma(&mut self) {
        self.out.push(',');
        self.nl();
    }
    /// A VALUE: bare if it is all SafeChars, else quoted (a DQUOTE inside cannot be encoded
    /// and is replaced by `'`).
    fn value(&mut self, v: &str) {
        if safe_word(v) {
            self.s(v);
        } else {
            self.quoted(v);
        }
    }
    fn quoted(&mut self, v: &str) {
        self.out.push('"');
        for c in v.chars() {
            self.out.push(match c {
                '"' => '\'',
                '\r' | '\n' => ' ',
                c => c,
            });
        }
        self.out.push('"');
    }
    /// Items separated by commas.
    fn items<T>(&mut self, v: &[T], mut f: impl FnMut(&mut Self, &T)) {
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.comma();
            }
            f(self, x);
        }
    }
    /// Writes the separator before every item but the first.
    fn sep(&mut self, first: &mut bool) {
        if !*first {
            self.comma();
        }
        *first = false;
    }

    fn message(&mut self, m: &Message) {
        self.header(m.version, &m.mid);
        self.body(&m.body);
    }

    fn header(&mut self, version: u8, mid: &Mid) {
        self.t(Tok::Megacop);
        self.out.push('/');
        self.num(version);
        self.out.push(' ');
        self.mid(mid);
        if self.compact {
            self.out.push(' ');
        } else {
            self.out.push('\n');
        }
    }

    fn body(&mut self, body: &MessageBody) {
        match body {
            MessageBody::Error(e) => self.error(e),
            MessageBody::Transactions(ts) => {
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        self.nl();
                    }
                    self.transaction(t);
                }
            }
        }
        if !self.compact {
            self.out.push('\n');
        }
    }

    fn mid(&mut self, m: &Mid) {
        let port = match m {
            Mid::Ip { addr, port } => {
                let _ = write!(self.out, "[{addr}]");
                port
            }
            Mid::Domain { name, port } => {
                let _ = write!(self.out, "<{name}>");
                port
            }
            Mid::Device(d) => {
                self.s(d);
                &None
            }
        };
        if let Some(p) = port {
            let _ = write!(self.out, ":{p}");
        }
    }

    fn transaction(&mut self, t: &Transaction) {
        match t {
            Transaction::Request(r) => {
                self.tok_eq(Tok::Trans);
                self.num(r.id);
                self.open();
                self.items(&r.actions, W::action_request);
                self.close();
            }
            Transaction::Reply(r) => {
                self.tok_eq(Tok::Reply);
                self.num(r.id);
                if let Some(s) = r.segment {
                    self.segment(s);
                }
                self.open();
                if r.imm_ack_required {
                    self.t(Tok::ImmAckRequired);
                    if !matches!(&r.result, ReplyResult::Actions(a) if a.is_empty()) {
                        self.comma();
                    }
                }
                match &r.result {
                    ReplyResult::Error(e) => self.error(e),
                    ReplyResult::Actions(a) => self.items(a, W::action_reply),
                }
                self.close();
            }
            Transaction::Pending(id) => {
                self.tok_eq(Tok::Pending);
                self.num(*id);
                self.s("{}");
            }
            Transaction::ResponseAck(acks) => {
                self.t(Tok::ResponseAck);
                self.open();
                self.items(acks, |w, a| {
                    w.num(a.first);
                    if a.last != a.first {
                        w.out.push('-');
                        w.num(a.last);
                    }
                });
                self.close();
            }
            Transaction::SegmentReply(s) => {
                self.tok_eq(Tok::Segment);
                self.num(s.id);
                self.segment(s.segment);
            }
        }
    }

    fn segment(&mut self, s: Segment) {
        self.out.push('/');
        self.num(s.number);
        if s.complete {
            self.s("/END");
        }
    }

    fn context_id(&mut self, c: ContextId) {
        match c {
            ContextId::Null => self.s("-"),
            ContextId::Choose => self.s("$"),
            ContextId::All => self.s("*"),
            ContextId::Id(n) => self.num(n),
        }
    }

    fn context_props(&mut self, p: &ContextProperties, first: &mut bool) {
        if !p.topology.is_empty() {
            self.sep(first);
            self.t(Tok::Topology);
            self.open();
            self.items(&p.topology, |w, t| {
                w.s(&t.from.0);
                w.s(if w.compact { "," } else { ", " });
                w.s(&t.to.0);
                w.s(if w.compact { "," } else { ", " });
                w.t(match t.direction {
                    TopologyDirection::Bothway => Tok::Bothway,
                    TopologyDirection::Isolate => Tok::Isolate,
                    TopologyDirection::Oneway => Tok::Oneway,
                });
            });
            self.close();
        }
        if let Some(pr) = p.priority {
            self.sep(first);
            self.tok_eq(Tok::Priority);
            self.num(pr);
        }
        if let Some(e) = p.emergency {
            self.sep(first);
            self.t(if e { Tok::Emergency } else { Tok::EmergencyOff });
        }
    }

    fn action_request(&mut self, a: &ActionRequest) {
        self.tok_eq(Tok::Ctx);
        self.context_id(a.context);
        if a.properties.is_empty() && a.commands.is_empty() {
            self.s("{}");
            return;
        }
        self.open();
        let mut first = true;
        self.context_props(&a.properties, &mut first);
        for c in &a.commands {
            self.sep(&mut first);
            self.command(c);
        }
        self.close();
    }

    fn command(&mut self, c: &CommandRequest) {
        if c.optional {
            self.s("O-");
        }
        if c.wildcard_reply {
            self.s("W-");
        }
        match &c.command {
            Command::Add(r) => self.amm(Tok::Add, r),
            Command::Modify(r) => self.amm(Tok::Modify, r),
            Command::Move(r) => self.amm(Tok::Move, r),
            Command::Subtract(r) => {
                self.tok_eq(Tok::Subtract);
                self.s(&r.termination.0);
                if let Some(a) = &r.audit {
                    self.open();
                    self.audit(a);
                    self.close();
                }
            }
            Command::AuditValue(r) | Command::AuditCapabilities(r) => {
                self.tok_eq(if matches!(c.command, Command::AuditValue(_)) {
                    Tok::AuditValue
                } else {
                    Tok::AuditCap
                });
                self.s(&r.termination.0);
                self.open();
                self.audit(&r.audit);
                self.close();
            }
            Command::Notify(r) => {
                self.tok_eq(Tok::Notify);
                self.s(&r.termination.0);
                self.open();
                self.observed_events(&r.observed_events);
                if let Some(e) = &r.error {
                    self.comma();
                    self.error(e);
                }
                self.close();
            }
            Command::ServiceChange(r) => {
                self.tok_eq(Tok::ServiceChange);
                self.s(&r.termination.0);
                self.open();
                self.services(&r.parms);
                self.close();
            }
        }
    }

    fn amm(&mut self, t: Tok, r: &AmmRequest) {
        self.tok_eq(t);
        self.s(&r.termination.0);
        let any = r.media.is_some()
            || r.events.is_some()
            || r.signals.is_some()
            || r.digit_map.is_some()
            || r.audit.is_some()
            || r.statistics.is_some();
        if !any {
            return;
        }
        self.open();
        let mut first = true;
        if let Some(m) = &r.media {
            self.sep(&mut first);
            self.media(m);
        }
        if let Some(e) = &r.events {
            self.sep(&mut first);
            self.events(e);
        }
        if let Some(s) = &r.signals {
            self.sep(&mut first);
            self.signals(s);
        }
        if let Some(d) = &r.digit_map {
            self.sep(&mut first);
            self.digit_map(d);
        }
        if let Some(a) = &r.audit {
            self.sep(&mut first);
            self.audit(a);
        }
        if let Some(s) = &r.statistics {
            self.sep(&mut first);
            self.statistics(s);
        }
        self.close();
    }

    fn media(&mut self, m: &MediaDescriptor) {
        self.t(Tok::Media);
        let has_short = m.streams.iter().any(|s| s.id.is_none());
        if m.termination_state.is_none()
            && (m.streams.is_empty()
                || (m.streams.len() == 1 && has_short && stream_empty(&m.streams[0])))
        {
            self.s("{}");
            return;
        }
        self.open();
        let mut first = true;
        if let Some(ts) = &m.termination_state {
            self.sep(&mut first);
            self.termination_state(ts);
        }
        // The shorthand parameters come first so that they parse back as the shorthand.
        for s in m.streams.iter().filter(|s| s.id.is_none()) {
            if !stream_empty(s) {
                self.sep(&mut first);
                self.stream_parms(s);
            }
        }
        for s in m.streams.iter().filter(|s| s.id.is_some()) {
            self.sep(&mut first);
            self.tok_eq(Tok::Stream);
            self.num(s.id.unwrap_or(1));
            if stream_empty(s) {
                self.s("{}");
            } else {
                self.open();
                self.stream_parms(s);
                self.close();
            }
        }
        self.close();
    }

    fn stream_parms(&mut self, s: &StreamDescriptor) {
        let mut first = true;
        if let Some(lc) = &s.local_control {
            self.sep(&mut first);
            self.local_control(lc);
        }
        if let Some(l) = &s.local {
            self.sep(&mut first);
            self.t(Tok::Local);
            self.octets(l);
        }
        if let Some(r) = &s.remote {
            self.sep(&mut first);
            self.t(Tok::Remote);
            self.octets(r);
        }
        if let Some(st) = &s.statistics {
            self.sep(&mut first);
            self.statistics(st);
        }
    }

    /// `LBRKT octetString RBRKT`: the SDP as it is, unindented, with `}` escaped as `\}`. Its
    /// line ends are kept (CRLF or LF, RFC 4566 §5 allows both to be read), so that what was
    /// parsed is what is written.
    fn octets(&mut self, sdp: &str) {
        self.s(if self.compact { "{\n" } else { " {\n" });
        let body = sdp.trim();
        if body.contains('}') {
            self.s(&body.replace('}', "\\}"));
        } else {
            self.s(body);
        }
        self.out.push('\n');
        // The closing brace starts its own line: white space before it would be handed to the
        // SDP parser as a (malformed) line.
        self.out.push('}');
    }

    fn local_control(&mut self, lc: &LocalControlDescriptor) {
        self.t(Tok::LocalControl);
        if lc.mode.is_none()
            && lc.reserve_value.is_none()
            && lc.reserve_group.is_none()
            && lc.properties.is_empty()
        {
            self.s("{}");
            return;
        }
        self.open();
        let mut first = true;
        if let Some(m) = lc.mode {
            self.sep(&mut first);
            self.tok_eq(Tok::Mode);
            self.t(match m {
                StreamMode::SendOnly => Tok::SendOnly,
                StreamMode::RecvOnly => Tok::RecvOnly,
                StreamMode::SendRecv => Tok::SendRecv,
                StreamMode::Inactive => Tok::Inactive,
                StreamMode::Loopback => Tok::Loopback,
            });
        }
        if let Some(v) = lc.reserve_value {
            self.sep(&mut first);
            self.tok_eq(Tok::ReservedValue);
            self.s(if v { "ON" } else { "OFF" });
        }
        if let Some(v) = lc.reserve_group {
            self.sep(&mut first);
            self.tok_eq(Tok::ReservedGroup);
            self.s(if v { "ON" } else { "OFF" });
        }
        for p in &lc.properties {
            self.sep(&mut first);
            self.property(p);
        }
        self.close();
    }

    fn property(&mut self, p: &PropertyParm) {
        self.s(&p.name);
        match p.relation {
            Relation::Equal => self.eq(),
            Relation::Greater => self.s(">"),
            Relation::Less => self.s("<"),
            Relation::NotEqual => self.s("#"),
        }
        match &p.value {
            PropertyValue::Single(v) => self.value(v),
            PropertyValue::Alternatives(v) => {
                self.out.push('[');
                self.items(v, |w, x| w.value(x));
                self.out.push(']');
            }
            PropertyValue::Range(a, b) => {
                self.out.push('[');
                self.value(a);
                self.out.push(':');
                self.value(b);
                self.out.push(']');
            }
            PropertyValue::Sublist(v) => {
                self.out.push('{');
                self.items(v, |w, x| w.value(x));
                self.out.push('}');
            }
        }
    }

    fn termination_state(&mut self, t: &TerminationStateDescriptor) {
        self.t(Tok::TerminationState);
        if t.service_state.is_none() && t.event_buffer_control.is_none() && t.properties.is_empty()
        {
            self.s("{}");
            return;
        }
        self.open();
        let mut first = true;
        if let Some(s) = t.service_state {
            self.sep(&mut first);
            self.tok_eq(Tok::ServiceStates);
            self.t(match s {
                ServiceState::Test => Tok::Test,
                ServiceState::OutOfService => Tok::OutOfSvc,
                ServiceState::InService => Tok::InSvc,
            });
        }
        if let Some(b) = t.event_buffer_control {
            self.sep(&mut first);
            self.tok_eq(Tok::Buffer);
            if b {
                self.t(Tok::LockStep);
            } else {
                self.s("OFF");
            }
        }
        for p in &t.properties {
            self.sep(&mut first);
            self.property(p);
        }
        self.close();
    }

    fn events(&mut self, e: &EventsDescriptor) {
        self.t(Tok::Events);
        let Some(id) = e.request_id else { return };
        self.eq();
        self.num(id);
        self.open();
        self.items(&e.events, |w, ev| {
            w.s(&ev.name);
            if ev.stream.is_none() && !ev.keep_active && ev.parameters.is_empty() {
                return;
            }
            w.open();
            let mut first = true;
            if let Some(s) = ev.stream {
                w.sep(&mut first);
                w.tok_eq(Tok::Stream);
                w.num(s);
            }
            if ev.keep_active {
                w.sep(&mut first);
                w.t(Tok::KeepActive);
            }
            for p in &ev.parameters {
                w.sep(&mut first);
                w.property(p);
            }
            w.close();
        });
        self.close();
    }

    fn signals(&mut self, s: &SignalsDescriptor) {
        self.t(Tok::Signals);
        if s.signals.is_empty() {
            self.s("{}");
            return;
        }
        self.open();
        self.items(&s.signals, |w, sg| {
            w.s(&sg.name);
            if sg.stream.is_none()
                && sg.signal_type.is_none()
                && sg.duration.is_none()
                && sg.notify_completion.is_empty()
                && !sg.keep_active
                && sg.parameters.is_empty()
            {
                return;
            }
            w.open();
            let mut first = true;
            if let Some(s) = sg.stream {
                w.sep(&mut first);
                w.tok_eq(Tok::Stream);
                w.num(s);
            }
            if let Some(t) = sg.signal_type {
                w.sep(&mut first);
                w.tok_eq(Tok::SignalType);
                w.t(match t {
                    SignalType::OnOff => Tok::OnOff,
                    SignalType::TimeOut => Tok::TimeOut,
                    SignalType::Brief => Tok::Brief,
                });
            }
            if let Some(d) = sg.duration {
                w.sep(&mut first);
                w.tok_eq(Tok::Duration);
                w.num(d);
            }
            if !sg.notify_completion.is_empty() {
                w.sep(&mut first);
                w.tok_eq(Tok::NotifyCompletion);
                w.out.push('{');
                w.items(&sg.notify_completion, |w, r| {
                    w.t(match r {
                        NotifyReason::TimeOut => Tok::TimeOut,
                        NotifyReason::InterruptByEvent => Tok::IntByEvent,
                        NotifyReason::InterruptByNewSignalsDescr => Tok::IntBySigDescr,
                        NotifyReason::OtherReason => Tok::OtherReason,
                        NotifyReason::Iteration => Tok::Iteration,
                    });
                });
                w.out.push('}');
            }
            if sg.keep_active {
                w.sep(&mut first);
                w.t(Tok::KeepActive);
            }
            for p in &sg.parameters {
                w.sep(&mut first);
                w.property(p);
            }
            w.close();
        });
        self.close();
    }

    fn observed_events(&mut self, o: &ObservedEventsDescriptor) {
        self.tok_eq(Tok::ObservedEvents);
        self.num(o.request_id);
        self.open();
        self.items(&o.events, |w, ev| {
            if let Some(ts) = &ev.timestamp {
                w.s(ts);
                w.s(if w.compact { ":" } else { ": " });
            }
            w.s(&ev.name);
            if ev.stream.is_none() && ev.parameters.is_empty() {
                return;
            }
            w.open();
            let mut first = true;
            if let Some(s) = ev.stream {
                w.sep(&mut first);
                w.tok_eq(Tok::Stream);
                w.num(s);
            }
            for p in &ev.parameters {
                w.sep(&mut first);
                w.property(p);
            }
            w.close();
        });
        self.close();
    }

    fn statistics(&mut self, s: &[StatisticsParameter]) {
        self.t(Tok::Stats);
        if s.is_empty() {
            self.s("{}");
            return;
        }
        self.open();
        self.items(s, |w, p| {
            w.s(&p.name);
            match p.values.as_slice() {
                [] => {}
                [v] => {
                    w.eq();
                    w.value(v);
                }
                vs => {
                    w.eq();
                    w.out.push('[');
                    w.items(vs, |w, v| w.value(v));
                    w.out.push(']');
                }
            }
        });
        self.close();
    }

    fn error(&mut self, e: &ErrorDescriptor) {
        self.tok_eq(Tok::Error);
        self.num(e.code);
        self.out.push('{');
        if let Some(t) = &e.text {
            self.quoted(t);
        }
        self.out.push('}');
    }

    fn audit(&mut self, a: &AuditDescriptor) {
        self.t(Tok::Audit);
        if a.items.is_empty() {
            self.s("{}");
            return;
        }
        self.open();
        self.items(&a.items, |w, i| {
            w.t(match i {
                AuditItem::Media => Tok::Media,
                AuditItem::Events => Tok::Events,
                AuditItem::Signals => Tok::Signals,
                AuditItem::DigitMap => Tok::DigitMap,
                AuditItem::Statistics => Tok::Stats,
                AuditItem::ObservedEvents => Tok::ObservedEvents,
                AuditItem::Packages => Tok::Packages,
                AuditItem::EventBuffer => Tok::EventBuffer,
            });
        });
        self.close();
    }

    fn digit_map(&mut self, d: &DigitMapDescriptor) {
        self.tok_eq(Tok::DigitMap);
        if let Some(n) = &d.name {
            self.s(n);
        }
        if let Some(v) = &d.value {
            self.out.push('{');
            self.s(&v.replace('}', ""));
            self.out.push('}');
        }
    }

    fn services(&mut self, p: &ServiceChangeParms) {
        self.t(Tok::Services);
        if p == &ServiceChangeParms::default() {
            self.s("{}");
            return;
        }
        let mut first = true;
        self.open();
        if let Some(m) = &p.method {
            self.sep(&mut first);
            self.tok_eq(Tok::Method);
            match m {
                ServiceChangeMethod::Failover => self.t(Tok::Failover),
                ServiceChangeMethod::Forced => self.t(Tok::Forced),
                ServiceChangeMethod::Graceful => self.t(Tok::Graceful),
                ServiceChangeMethod::Restart => self.t(Tok::Restart),
                ServiceChangeMethod::Disconnected => self.t(Tok::Disconnected),
                ServiceChangeMethod::HandOff => self.t(Tok::HandOff),
                ServiceChangeMethod::Extension(x) => self.s(x),
            }
        }
        if let Some(r) = &p.reason {
            self.sep(&mut first);
            self.tok_eq(Tok::Reason);
            // Reasons are conventionally quoted ("901 Cold Boot").
            self.quoted(r);
        }
        if let Some(d) = p.delay {
            self.sep(&mut first);
            self.tok_eq(Tok::Delay);
            self.num(d);
        }
        if let Some(a) = &p.address {
            self.sep(&mut first);
            self.tok_eq(Tok::ServiceChangeAddress);
            match a {
                ServiceChangeAddress::Mid(m) => self.mid(m),
                ServiceChangeAddress::Port(n) => self.num(*n),
            }
        }
        if let Some(pf) = &p.profile {
            self.sep(&mut first);
            self.tok_eq(Tok::Profile);
            self.s(pf);
        }
        if let Some(v) = p.version {
            self.sep(&mut first);
            self.tok_eq(Tok::Version);
            self.num(v);
        }
        if let Some(m) = &p.mgc_id {
            self.sep(&mut first);
            self.tok_eq(Tok::MgcId);
            self.mid(m);
        }
        if let Some(ts) = &p.timestamp {
            self.sep(&mut first);
            self.s(ts);
        }
        self.close();
    }

    fn action_reply(&mut self, a: &ActionReply) {
        self.tok_eq(Tok::Ctx);
        self.context_id(a.context);
        if a.properties.is_empty() && a.replies.is_empty() && a.error.is_none() {
            self.s("{}");
            return;
        }
        self.open();
        let mut first = true;
        self.context_props(&a.properties, &mut first);
        for r in &a.replies {
            self.sep(&mut first);
            self.command_reply(r);
        }
        if let Some(e) = &a.error {
            self.sep(&mut first);
            self.error(e);
        }
        self.close();
    }

    fn command_reply(&mut self, r: &CommandReply) {
        let (t, amms) = match r {
            CommandReply::Add(a) => (Tok::Add, a),
            CommandReply::Modify(a) => (Tok::Modify, a),
            CommandReply::Move(a) => (Tok::Move, a),
            CommandReply::Subtract(a) => (Tok::Subtract, a),
            CommandReply::AuditValue(a) => (Tok::AuditValue, a),
            CommandReply::AuditCapabilities(a) => (Tok::AuditCap, a),
            CommandReply::Notify(n) => {
                self.tok_eq(Tok::Notify);
                self.s(&n.termination.0);
                if let Some(e) = &n.error {
                    self.open();
                    self.error(e);
                    self.close();
                }
                return;
            }
            CommandReply::ServiceChange(s) => {
                self.tok_eq(Tok::ServiceChange);
                self.s(&s.termination.0);
                match &s.result {
                    ServiceChangeResult::Accepted => {}
                    ServiceChangeResult::Error(e) => {
                        self.open();
                        self.error(e);
                        self.close();
                    }
                    ServiceChangeResult::Parms(p) => {
                        self.open();
                        self.services(p);
                        self.close();
                    }
                }
                return;
            }
        };
        self.tok_eq(t);
        self.s(&amms.termination.0);
        if amms.audit.is_empty() {
            return;
        }
        let a = &amms.audit;
        self.open();
        let mut first = true;
        if let Some(m) = &a.media {
            self.sep(&mut first);
            self.media(m);
        }
        if let Some(e) = &a.events {
            self.sep(&mut first);
            self.events(e);
        }
        if let Some(s) = &a.signals {
            self.sep(&mut first);
            self.signals(s);
        }
        if let Some(d) = &a.digit_map {
            self.sep(&mut first);
            self.digit_map(d);
        }
        if let Some(o) = &a.observed_events {
            self.sep(&mut first);
            self.observed_events(o);
        }
        if let Some(s) = &a.statistics {
            self.sep(&mut first);
            self.statistics(s);
        }
        if let Some(p) = &a.packages {
            self.sep(&mut first);
            self.t(Tok::Packages);
            if p.is_empty() {
                self.s("{}");
            } else {
                self.open();
                self.items(p, |w, i| {
                    let _ = write!(w.out, "{}-{}", i.name, i.version);
                });
                self.close();
            }
        }
        if let Some(e) = &a.error {
            self.sep(&mut first);
            self.error(e);
        }
        self.close();
    }
}

fn stream_empty(s: &StreamDescriptor) -> bool {
    s.local_control.is_none() && s.local.is_none() && s.remote.is_none() && s.statistics.is_none()
}
