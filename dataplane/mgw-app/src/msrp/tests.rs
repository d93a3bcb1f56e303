//! Tests of the frame parser and of head rewriting, grouped by what they exercise: framing,
//! malformed framing, rewriting, properties.

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

fn collect_with(cfg: MsrpConfig, chunks: &[&[u8]]) -> (Vec<Frame>, Option<MsrpError>, MsrpStats) {
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
                MsrpEvent::BodyCarry => cur.as_mut().unwrap().body.extend_from_slice(pr.carried()),
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

/// A SEND from UE A to GW A (RFC 4975 §7.1.1), the chunk's end and the message's size unknown.
fn send(tid: &str, body: &[u8]) -> Vec<u8> {
    MsrpSend::new(tid, GW_A, UE_A, "87652491")
        .byte_range(ByteRange {
            start: 1,
            end: None,
            total: None,
        })
        .body("text/plain", body)
        .to_vec()
        .unwrap()
}

/// A SEND chunk of `body` from UE A to GW A with this Content-Type and end-line flag.
fn chunk(tid: &str, content_type: &str, body: &[u8], flag: u8) -> Vec<u8> {
    MsrpSend::new(tid, GW_A, UE_A, "m1")
        .body(content_type, body)
        .continuation(Continuation::from_byte(flag).unwrap())
        .to_vec()
        .unwrap()
}

/// A 200 OK with the paths of [`send`], To-Path GW A and From-Path UE A (the parser does not
/// check who answers whom).
fn ok(tid: &str) -> Vec<u8> {
    MsrpResponse::ok(tid, GW_A, UE_A).to_vec().unwrap()
}

/// A frame no writer writes: another method, or a response with a body (which the parser
/// refuses). Paths as in [`send`], end-line flag `$`.
fn raw_frame(tid: &str, start: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut v =
        format!("MSRP {tid} {start}\r\nTo-Path: {GW_A}\r\nFrom-Path: {UE_A}\r\n").into_bytes();
    if let Some(b) = body {
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(b);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(format!("-------{tid}$\r\n").as_bytes());
    v
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
    let data = ok("a786hjs2");
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
    let mut data = chunk("tid00001", "text/plain", b"", b'+');
    data.extend(chunk("tid00002", "text/plain", b"x", b'#'));
    data.extend(
        MsrpReport::new("tid00003", GW_A, UE_A, "m1", ByteRange::whole(1), 200)
            .comment("OK")
            .to_vec()
            .unwrap(),
    );
    data.extend(raw_frame("tid00004", "NICKNAME", None));
    data.extend(raw_frame("tid00005", "AUTH", None));
    data.extend(
        MsrpResponse::new("tid00006", 481, GW_A, UE_A)
            .comment("No session")
            .to_vec()
            .unwrap(),
    );
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
    data.extend(ok("zz99"));
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
    let (_, e, _) = collect(&[b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/s;tcp\r\n-------abcd$\r\n"]);
    assert_eq!(e, Some(MsrpError::MissingPath));
    let data = raw_frame("abcd", "200 OK", Some(b"x"));
    let (_, e, _) = collect(&[&data]);
    assert_eq!(e, Some(MsrpError::ResponseBody));
    let mut data = ok("abcd");
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
    for data in [send("abcd1234", b"hi"), ok("abcd1234")] {
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

// ---- rewriting ----

const GW_A: &str = "msrp://gw-a.example.net:2855/gwA;tcp";
const UE_A: &str = "msrp://ue-a.example.net:7000/ueA;tcp";
const GW_B: &str = "msrp://10.0.0.1:2856/gwB;tcp";
const UE_B: &str = "msrps://relay.core.example:2855/r1;tcp msrp://ue-b.example.com:7001/ueB;tcp";

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

/// A written frame as text.
fn text(frame: Result<Vec<u8>, MsrpEmitError>) -> String {
    String::from_utf8(frame.unwrap()).unwrap()
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
    let resp = text(MsrpResponse::ok("tx123456", GW_B, UE_B).to_vec());
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
    let beyond = format!("{GW_A} {UE_B}");
    let d = text(MsrpSend::new("tx123456", &beyond, UE_A, "m1").to_vec());
    assert_eq!(
        relay(&rw, LegSide::A, d.as_bytes()),
        Err(RewriteError::NotForUs)
    );
    // Spoofed From-Path.
    let d = text(MsrpSend::new("tx123456", GW_A, "msrp://evil:1/x;tcp", "m1").to_vec());
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

// ---- writers: what MsrpSend, MsrpReport and MsrpResponse write parses back ----

#[test]
fn writers_parse_back_with_their_fields() {
    let body = b"Hi Bob!\r\n-------other01$\r\n";
    let send = MsrpSend::new("a786hjs2", GW_A, UE_A, "87652491")
        .byte_range(ByteRange {
            start: 1,
            end: Some(body.len() as u64),
            total: None,
        })
        .success_report(true)
        .failure_report(FailureReport::Partial)
        .body("text/plain", body)
        .continuation(Continuation::More);
    let report = MsrpReport::new(
        "r9f8e7d6",
        UE_A,
        GW_A,
        "87652491",
        ByteRange::whole(4096),
        413,
    )
    .comment("too big");
    let ok = MsrpResponse::ok("a786hjs2", UE_A, GW_A);
    let refused = MsrpResponse::new("a786hjs2", 481, UE_A, GW_A).comment("No session");
    let bare = MsrpSend::new("q-.+%=1", GW_A, UE_A, "m");
    let mut data = b"already there".to_vec();
    let lens = [
        send.write(&mut data).unwrap(),
        report.write(&mut data).unwrap(),
        ok.write(&mut data).unwrap(),
        refused.write(&mut data).unwrap(),
        bare.write(&mut data).unwrap(),
    ];
    assert_eq!(
        lens,
        [
            send.encoded_len(),
            report.encoded_len(),
            ok.encoded_len(),
            refused.encoded_len(),
            bare.encoded_len()
        ]
    );
    assert_eq!(data.len(), 13 + lens.iter().sum::<usize>());
    assert_eq!(send.to_vec().unwrap(), data[13..13 + lens[0]]);
    let (f, e, s) = collect(&[&data[13..]]);
    assert_eq!(e, None);
    assert_eq!(f.len(), 5);
    let hv = |fr: &Frame| -> Vec<(HeaderName, String)> {
        fr.headers
            .iter()
            .map(|(n, _, v)| (*n, String::from_utf8_lossy(v).into_owned()))
            .collect()
    };
    assert_eq!(f[0].kind, FrameKind::Request(Method::Send));
    assert_eq!(f[0].tid, b"a786hjs2");
    assert_eq!(
        hv(&f[0]),
        [
            (HeaderName::ToPath, GW_A.to_owned()),
            (HeaderName::FromPath, UE_A.to_owned()),
            (HeaderName::MessageId, "87652491".to_owned()),
            (HeaderName::ByteRange, format!("1-{}/*", body.len())),
            (HeaderName::SuccessReport, "yes".to_owned()),
            (HeaderName::FailureReport, "partial".to_owned()),
            (HeaderName::ContentType, "text/plain".to_owned()),
        ]
    );
    assert_eq!(
        (f[0].body.as_slice(), f[0].end),
        (&body[..], Continuation::More)
    );
    assert_eq!(f[1].kind, FrameKind::Request(Method::Report));
    assert_eq!(
        hv(&f[1]),
        [
            (HeaderName::ToPath, UE_A.to_owned()),
            (HeaderName::FromPath, GW_A.to_owned()),
            (HeaderName::MessageId, "87652491".to_owned()),
            (HeaderName::ByteRange, "1-4096/4096".to_owned()),
            (HeaderName::Status, "000 413 too big".to_owned()),
        ]
    );
    assert!(!f[1].has_body);
    assert_eq!(f[2].kind, FrameKind::Response(200));
    assert!(f[2].head.starts_with(b"MSRP a786hjs2 200 OK\r\n"));
    assert_eq!(
        hv(&f[2]),
        [
            (HeaderName::ToPath, UE_A.to_owned()),
            (HeaderName::FromPath, GW_A.to_owned()),
        ]
    );
    assert_eq!(f[3].kind, FrameKind::Response(481));
    assert!(f[3].head.starts_with(b"MSRP a786hjs2 481 No session\r\n"));
    assert_eq!(
        (f[4].tid.as_slice(), f[4].has_body),
        (&b"q-.+%=1"[..], false)
    );
    assert_eq!(f[4].end, Continuation::Complete);
    assert_eq!(
        (s.send, s.report, s.responses[2], s.responses[4]),
        (2, 1, 1, 1)
    );
    assert_eq!(s.chunks_more, 1);
}

#[test]
fn writers_refuse_what_would_not_parse_back() {
    let mut out = b"kept".to_vec();
    let bad_tids = ["abc", "-abcd", "ab cd", "abcd/", &"a".repeat(33)];
    for tid in bad_tids {
        assert_eq!(
            MsrpSend::new(tid, GW_A, UE_A, "m").write(&mut out),
            Err(MsrpEmitError::TransactionId),
            "{tid}"
        );
        assert_eq!(
            MsrpResponse::ok(tid, GW_A, UE_A).write(&mut out),
            Err(MsrpEmitError::TransactionId)
        );
    }
    let bad_values = ["", "msrp://a:1/s;tcp\r\nX-Evil: 1", "x\ny", "x\r"];
    for v in bad_values {
        for m in [
            MsrpSend::new("abcd", v, UE_A, "m"),
            MsrpSend::new("abcd", GW_A, v, "m"),
            MsrpSend::new("abcd", GW_A, UE_A, v),
            MsrpSend::new("abcd", GW_A, UE_A, "m").body(v, b"x"),
        ] {
            assert_eq!(m.write(&mut out), Err(MsrpEmitError::HeaderValue), "{v:?}");
        }
        let r = MsrpReport::new("abcd", GW_A, UE_A, v, ByteRange::whole(1), 200);
        assert_eq!(r.write(&mut out), Err(MsrpEmitError::HeaderValue));
    }
    // An empty Content-Type matters only with a body.
    assert!(MsrpSend::new("abcd", GW_A, UE_A, "m").to_vec().is_ok());
    assert_eq!(
        MsrpResponse::new("abcd", 1000, GW_A, UE_A).write(&mut out),
        Err(MsrpEmitError::StatusCode)
    );
    assert_eq!(
        MsrpResponse::new("abcd", 200, GW_A, UE_A)
            .comment("OK\r\n")
            .write(&mut out),
        Err(MsrpEmitError::HeaderValue)
    );
    assert_eq!(
        MsrpReport::new("abcd", GW_A, UE_A, "m", ByteRange::whole(1), 1000).write(&mut out),
        Err(MsrpEmitError::StatusCode)
    );
    // This transaction's end-line in the body, also where the framing's CRLF completes it.
    for body in [
        &b"a\r\n-------abcd$\r\nb"[..],
        b"\r\n-------abcd#\r\n",
        b"x\r\n-------abcd+",
        b"x\r\n-------abcd$",
    ] {
        assert_eq!(
            MsrpSend::new("abcd", GW_A, UE_A, "m")
                .body("text/plain", body)
                .write(&mut out),
            Err(MsrpEmitError::EndLineInBody),
            "{body:?}"
        );
    }
    // Near misses are body.
    for body in [
        &b"\r\n-------abcd$\r"[..],
        b"\r\n-------abcde$\r\n",
        b"\r\n-------abcdX\r\n",
        b"-------abcd$\r\n",
        b"\n-------abcd$\r\n",
    ] {
        let m = MsrpSend::new("abcd", GW_A, UE_A, "m").body("text/plain", body);
        let (f, e, _) = collect(&[&m.to_vec().unwrap()]);
        assert_eq!((e, f.len()), (None, 1), "{body:?}");
        assert_eq!(f[0].body, body);
    }
    assert_eq!(out, b"kept", "a refused frame leaves the buffer as it was");
    assert_eq!(ByteRange::whole(0).encoded_len(), "1-0/0".len());
    assert_eq!(
        MsrpEmitError::EndLineInBody.to_string(),
        "MSRP body holds its own end-line"
    );
}

// ---- properties ----

fn tid_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.+%=-]{3,31}"
}

fn body_strategy(tid: String) -> impl Strategy<Value = Vec<u8>> {
    raw_body_strategy(tid.clone()).prop_filter("must not contain the end-line", {
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

/// Bodies built from pieces that look like end-lines of `tid`, some of which are.
fn raw_body_strategy(tid: String) -> impl Strategy<Value = Vec<u8>> {
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
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
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

fn path_strategy() -> impl Strategy<Value = String> {
    "msrps?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?/[A-Za-z0-9]{1,16};tcp( msrps?://[a-z0-9.]{1,12}:[0-9]{1,5}/[a-z0-9]{1,8};tcp){0,2}"
}

fn range_strategy() -> impl Strategy<Value = ByteRange> {
    (
        1u64..u64::MAX,
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(start, end, total)| ByteRange { start, end, total })
}

proptest! {
    #[test]
    fn prop_emit_parse_round_trip(frames in proptest::collection::vec(frame_strategy(), 1..4), cut in any::<prop::sample::Index>()) {
        let mut data = Vec::new();
        for (tid, body, flag) in &frames {
            data.extend(chunk(tid, "application/octet-stream", body, *flag));
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
        let data = chunk(&tid, "text/plain", &body, flag);
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
        let mut data = chunk(&tid, "text/plain", &body, flag);
        let i = pos.index(data.len());
        data[i] = byte;
        let (_, e, s) = collect(&[&data]);
        prop_assert_eq!(s.errors, u64::from(e.is_some()));
    }
    #[test]
    fn prop_writers_parse_back(
        (tid, body, flag) in frame_strategy(), to in path_strategy(), from in path_strategy(),
        mid in "[A-Za-z0-9+=.-]{1,32}", range in proptest::option::of(range_strategy()),
        reports in (proptest::option::of(any::<bool>()), proptest::option::of(0u8..3)),
        code in 0u16..1000, comment in proptest::option::of("[ -~]{0,30}"),
        cut in any::<prop::sample::Index>(),
    ) {
        let c = Continuation::from_byte(flag).unwrap();
        let mut send = MsrpSend::new(&tid, &to, &from, &mid).body("application/octet-stream", &body).continuation(c);
        send.byte_range = range;
        send.success_report = reports.0;
        send.failure_report = reports.1.map(|k| [FailureReport::Yes, FailureReport::No, FailureReport::Partial][usize::from(k)]);
        let resp = MsrpResponse { transaction_id: tid.as_bytes(), code, comment: comment.as_deref().map(str::as_bytes),
            to_path: from.as_bytes(), from_path: to.as_bytes() };
        let report = MsrpReport { comment: resp.comment, ..MsrpReport::new(&tid, &from, &to, &mid, ByteRange::whole(body.len() as u64), code) };
        let mut data = Vec::new();
        let n = [send.write(&mut data), resp.write(&mut data), report.write(&mut data)];
        prop_assert_eq!(n, [Ok(send.encoded_len()), Ok(resp.encoded_len()), Ok(report.encoded_len())]);
        prop_assert_eq!(data.len(), n.iter().map(|x| x.unwrap()).sum::<usize>());
        let i = cut.index(data.len() + 1);
        let (f, e, s) = collect(&[&data[..i], &data[i..]]);
        prop_assert_eq!(e, None);
        prop_assert_eq!(f.len(), 3);
        for fr in &f {
            prop_assert_eq!(&fr.tid, tid.as_bytes());
        }
        prop_assert_eq!(f[0].kind, FrameKind::Request(Method::Send));
        prop_assert_eq!(&f[0].body, &body);
        prop_assert_eq!(f[0].end, c);
        let value = |fr: &Frame, h: HeaderName| fr.headers.iter().find(|x| x.0 == h).map(|x| x.2.clone());
        prop_assert_eq!(value(&f[0], HeaderName::ToPath), Some(to.clone().into_bytes()));
        prop_assert_eq!(value(&f[0], HeaderName::FromPath), Some(from.clone().into_bytes()));
        prop_assert_eq!(value(&f[0], HeaderName::MessageId), Some(mid.clone().into_bytes()));
        let star = |x: Option<u64>| x.map_or("*".to_owned(), |v| v.to_string());
        prop_assert_eq!(value(&f[0], HeaderName::ByteRange),
            range.map(|r| format!("{}-{}/{}", r.start, star(r.end), star(r.total)).into_bytes()));
        prop_assert_eq!(f[1].kind, FrameKind::Response(code));
        prop_assert_eq!(f[1].end, Continuation::Complete);
        prop_assert_eq!(value(&f[1], HeaderName::ToPath), Some(from.clone().into_bytes()));
        prop_assert_eq!(f[2].kind, FrameKind::Request(Method::Report));
        let status = format!("000 {code:03}{}", comment.as_ref().map_or(String::new(), |c| format!(" {c}")));
        prop_assert_eq!(value(&f[2], HeaderName::Status), Some(status.trim_end().as_bytes().to_vec()));
        prop_assert_eq!((s.send, s.report, s.errors), (1, 1, 0));
    }

    #[test]
    fn prop_send_refuses_exactly_the_bodies_that_end_it_early(
        (tid, body) in tid_strategy().prop_flat_map(|t| (Just(t.clone()), raw_body_strategy(t))),
        flag in prop_oneof![Just(Continuation::Complete), Just(Continuation::More), Just(Continuation::Aborted)],
    ) {
        // The frame with this body spliced in after the blank line, whatever the body holds.
        let empty = MsrpSend::new(&tid, GW_A, UE_A, "m").body("text/plain", b"").continuation(flag).to_vec().unwrap();
        let k = empty.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let spliced = [&empty[..k], &body[..], &empty[k..]].concat();
        let (f, e, _) = collect(&[&spliced]);
        let whole = e.is_none() && f.len() == 1 && f[0].body == body && f[0].end == flag;
        match MsrpSend::new(&tid, GW_A, UE_A, "m").body("text/plain", &body).continuation(flag).to_vec() {
            Ok(v) => {
                prop_assert!(whole, "written, but it does not parse back");
                prop_assert_eq!(v, spliced);
            }
            Err(err) => {
                prop_assert_eq!(err, MsrpEmitError::EndLineInBody);
                prop_assert!(!whole, "refused, but it parses back");
            }
        }
    }
}
