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

/// Emits a frame per RFC 4975 §9.
fn emit(tid: &str, start: &str, extra: &[(&str, &str)], body: Option<&[u8]>, flag: u8) -> Vec<u8> {
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
    let (_, e, _) = collect(&[b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/s;tcp\r\n-------abcd$\r\n"]);
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
    let d = format!(
        "MSRP tx123456 SEND\r\nTo-Path: {GW_A} {UE_B}\r\nFrom-Path: {UE_A}\r\n-------tx123456$\r\n"
    );
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
