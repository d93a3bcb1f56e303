//! Fuzz the MSRP To-Path/From-Path rewriter (RFC 4975 §7.3, the MGW as back-to-back hop) with
//! hostile frames, as the worker's relay drives it: the incremental parser splits the stream at
//! a data-chosen point, each complete head is rewritten for the other leg, and the frame is
//! rebuilt from the rewritten head, the body ranges and the end-line.
//!
//! Input: byte 0 = flags (bit 0 verify From-Path, bit 1 frames arrive on leg B, bits 2..3 the
//! leg paths, bit 4 leg A's paths come from the input), byte 1 = split point, then (with bit 4)
//! two length-prefixed URIs, then the stream.
//!
//! Invariants: no panic; a rewritten head is at most the old one plus the outbound leg's
//! `max_growth`; a frame rebuilt from a rewritten head parses again, as one frame with the same
//! transaction id and body, whose To-Path is the outbound leg's remote path and whose From-Path
//! is its local URI (the relay never forwards a frame the next hop cannot parse).
#![no_main]

use mgw_app::msrp::{
    Continuation, LegSide, MsrpConfig, MsrpEvent, MsrpLegPaths, MsrpParser, MsrpRewriter,
};

/// Leg path sets: (A local, A remote, B local, B remote).
const PATHS: [(&str, &str, &str, &str); 4] = [
    (
        "msrp://10.0.0.1:2855/gw-a;tcp",
        "msrp://198.51.100.2:9/ue;tcp",
        "msrp://10.0.0.1:40001/gw-b;tcp",
        "msrp://10.9.0.3:2855/core;tcp",
    ),
    (
        "msrps://[2001:db8::1]:2855/a;tcp",
        "msrps://[2001:db8::2]:50000/ue1;tcp",
        "msrp://gw.example.net:2855/b;tcp",
        "msrp://r1.example.net:2855/s1;tcp msrp://r2.example.net:2855/s2;tcp",
    ),
    (
        "MSRP://GW-A.EXAMPLE:2855/Sess;tcp",
        "msrp://ue.example:1/x;tcp",
        "msrp://gw-b.example:2/y;tcp",
        "msrp://core.example:3/z;tcp",
    ),
    (
        "msrp://a:1/a;tcp",
        "msrp://ue-a:1/x;tcp",
        "msrp://b:1/b;tcp",
        "msrp://ue-b:1/y;tcp",
    ),
];

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n).min(rest.len());
    let (v, rest) = rest.split_at(n);
    *data = rest;
    Some(v)
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(s, |e| e + 1);
    &v[s..e.max(s)]
}

/// One frame as rebuilt by a relay.
#[derive(Default)]
struct Rebuilt {
    tid: Vec<u8>,
    to: Vec<u8>,
    from: Vec<u8>,
    wire: Vec<u8>,
    body: Vec<u8>,
}

const CFG: MsrpConfig = MsrpConfig {
    max_header_block: 1024,
    max_message_size: 8192,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [flags, split, ref rest @ ..] = *data else {
        return;
    };
    let mut data = rest;
    let (al, ar, bl, br) = PATHS[usize::from(flags >> 2) & 3];
    let mut a = MsrpLegPaths {
        local_uri: al.as_bytes().to_vec(),
        remote_path: ar.as_bytes().to_vec(),
    };
    let b = MsrpLegPaths {
        local_uri: bl.as_bytes().to_vec(),
        remote_path: br.as_bytes().to_vec(),
    };
    if flags & 0x10 != 0 {
        let (Some(l), Some(r)) = (take(&mut data), take(&mut data)) else {
            return;
        };
        a = MsrpLegPaths {
            local_uri: l.to_vec(),
            remote_path: r.to_vec(),
        };
    }
    let from = if flags & 2 == 0 {
        LegSide::A
    } else {
        LegSide::B
    };
    let Ok(rw) = MsrpRewriter::new(a.clone(), b.clone(), flags & 1 != 0) else {
        return;
    };
    let outbound = if from == LegSide::A { &b } else { &a };
    let growth = outbound.as_paths_ref().max_growth();
    let cut = usize::from(split) % (data.len() + 1);
    let mut p = MsrpParser::new(CFG);
    let mut out = vec![0u8; CFG.max_header_block + growth];
    let mut end = [0u8; 64];
    let mut cur: Option<Rebuilt> = None;
    let mut done = Vec::new();
    for chunk in [&data[..cut], &data[cut..]] {
        let mut f = p.feed(chunk);
        while let Ok(Some(ev)) = f.next_event() {
            let pr = f.parser();
            match ev {
                MsrpEvent::StartLine { .. } => cur = None,
                MsrpEvent::HeadersEnd { .. } => {
                    let head = pr.head();
                    if let Ok(n) = rw.rewrite_head(from, head, pr.frame(), &mut out) {
                        assert!(n <= head.len() + growth, "grew beyond max_growth");
                        cur = Some(Rebuilt {
                            tid: pr.transaction_id().to_vec(),
                            to: trim(&outbound.remote_path).to_vec(),
                            from: trim(&outbound.local_uri).to_vec(),
                            wire: out[..n].to_vec(),
                            body: Vec::new(),
                        });
                    }
                }
                MsrpEvent::Body { range } => {
                    if let Some(c) = cur.as_mut() {
                        c.body.extend_from_slice(&chunk[range.range()]);
                    }
                }
                MsrpEvent::BodyCarry => {
                    if let Some(c) = cur.as_mut() {
                        c.body.extend_from_slice(pr.carried());
                    }
                }
                MsrpEvent::End { continuation } => {
                    if let Some(mut c) = cur.take() {
                        let n = pr.write_end_line(continuation, &mut end).expect("64 bytes");
                        let body = c.body.clone();
                        c.wire.extend_from_slice(&body);
                        c.wire.extend_from_slice(&end[..n]);
                        done.push((c, continuation));
                    }
                }
                MsrpEvent::Header { .. } => {}
            }
        }
    }
    for (c, continuation) in done {
        check(&c, continuation, growth);
    }
});

/// The rebuilt frame parses as exactly that frame, with the outbound leg's paths.
fn check(c: &Rebuilt, continuation: Continuation, growth: usize) {
    let mut p = MsrpParser::new(MsrpConfig {
        max_header_block: CFG.max_header_block + growth,
        max_message_size: CFG.max_message_size + growth,
    });
    let mut f = p.feed(&c.wire);
    let mut body = Vec::new();
    let mut ended = None;
    let mut paths = (Vec::new(), Vec::new());
    loop {
        let ev = match f.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => panic!(
                "a rewritten frame does not parse ({e:?}): {:?}",
                String::from_utf8_lossy(&c.wire)
            ),
        };
        let pr = f.parser();
        match ev {
            MsrpEvent::HeadersEnd { .. } => {
                let fr = pr.frame();
                let head = pr.head();
                paths = (
                    fr.to_path
                        .map(|s| head[s.range()].to_vec())
                        .unwrap_or_default(),
                    fr.from_path
                        .map(|s| head[s.range()].to_vec())
                        .unwrap_or_default(),
                );
                assert_eq!(pr.transaction_id(), &c.tid[..]);
            }
            MsrpEvent::Body { range } => body.extend_from_slice(&c.wire[range.range()]),
            MsrpEvent::BodyCarry => body.extend_from_slice(pr.carried()),
            MsrpEvent::End { continuation } => {
                assert!(ended.is_none(), "one frame became two");
                ended = Some(continuation);
            }
            _ => {}
        }
    }
    assert_eq!(ended, Some(continuation), "the rebuilt frame does not end");
    assert_eq!(
        paths.0, c.to,
        "To-Path is not the outbound leg's remote path"
    );
    assert_eq!(
        paths.1, c.from,
        "From-Path is not the outbound leg's local URI"
    );
    assert_eq!(body, c.body, "the body changed");
}
