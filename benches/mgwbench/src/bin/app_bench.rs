//! JSON benchmark of mgw-app's application-awareness parsers (one core, in memory).
//!
//! Figures (median of 3 runs of ~0.3 s each):
//! - `msrp_parse_16k`: 300-byte-body SEND frames fed in 16 KiB slices (like TLS records);
//! - `msrp_parse_16k_no_header_events`: the same with `with_header_events(false)`;
//! - `msrp_parse_per_frame`: the same, one slice per frame;
//! - `msrp_parse_rewrite`: parse + To-Path/From-Path rewrite into an output buffer + end-line;
//! - `bfcp_parse`: `Packet::new_checked` + `Repr::parse` (attributes walked) of a FloorRequest;
//! - `bfcp_stream`: the TCP framer over back-to-back messages in 16 KiB slices;
//! - `udptl_flow`: `UdptlFlow::on_datagram` on 200-byte datagrams with 2 redundant IFPs.
//!
//! Usage: `cargo run --profile ci -p mgwbench --bin app_bench`

use std::hint::black_box;
use std::time::{Duration, Instant};

use mgw_app::bfcp::{Header, MessageWriter, Packet, Primitive, Repr, StreamFramer};
use mgw_app::msrp::{
    ByteRange, LegSide, MsrpConfig, MsrpEvent, MsrpLegPaths, MsrpParser, MsrpRewriter, MsrpSend,
};
use mgw_app::udptl::{ErrorRecovery, IfpList, UdptlConfig, UdptlFlow, UdptlRepr};
use serde_json::json;

const GW_A: &str = "msrp://192.0.2.2:2855/gwA8s7d;tcp";
const UE_A: &str = "msrp://198.51.100.7:7000/ueA9ds8;tcp";
const GW_B: &str = "msrp://192.0.2.1:2855/gwB0sd9;tcp";
const UE_B: &str = "msrp://203.0.113.9:7001/ueBs7d6;tcp";

/// `frames` SEND requests of a 300-byte body, back to back, and the length of one.
fn msrp_stream(frames: usize) -> (Vec<u8>, usize) {
    let body = [b'x'; 300];
    let mut v = Vec::new();
    let mut frame_len = 0;
    for i in 0..frames {
        let (tid, mid) = (format!("t{i:08}"), format!("m{i:08}"));
        frame_len = MsrpSend::new(&tid, GW_A, UE_A, &mid)
            .byte_range(ByteRange::whole(body.len() as u64))
            .body("text/plain", &body)
            .write(&mut v)
            .expect("a valid SEND");
    }
    (v, frame_len)
}

/// Runs `f` (which processes `items` items) repeatedly for ~0.3 s; returns items per second,
/// median of 3.
///
/// With `APP_BENCH_ONLY=<name>` and `APP_BENCH_ITERS=<n>`, only the named figure runs, exactly
/// `n` times, so that `perf stat -e instructions:u` gives a load-independent cost per item.
fn rate(name: &str, items: u64, mut f: impl FnMut()) -> f64 {
    if let Ok(only) = std::env::var("APP_BENCH_ONLY") {
        if only != name {
            return 0.0;
        }
        let iters: u64 = std::env::var("APP_BENCH_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        return (iters * items) as f64 / start.elapsed().as_secs_f64();
    }
    let mut rates = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            f();
            n += items;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[1]
}

fn main() {
    const FRAMES: usize = 1000;
    let (stream, frame_len) = msrp_stream(FRAMES);
    let mut parser = MsrpParser::new(MsrpConfig::default());

    let msrp_16k = rate("msrp_16k", FRAMES as u64, || {
        let mut ends = 0;
        for chunk in stream.chunks(16 * 1024) {
            let mut f = parser.feed(chunk);
            while let Some(ev) = f.next_event().expect("valid stream") {
                if let MsrpEvent::End { .. } = ev {
                    ends += 1;
                }
            }
        }
        assert_eq!(ends, FRAMES);
    });

    let mut quiet = MsrpParser::new(MsrpConfig::default()).with_header_events(false);
    let msrp_16k_quiet = rate("msrp_16k_quiet", FRAMES as u64, || {
        let mut ends = 0;
        for chunk in stream.chunks(16 * 1024) {
            let mut f = quiet.feed(chunk);
            while let Some(ev) = f.next_event().expect("valid stream") {
                if let MsrpEvent::End { .. } = ev {
                    ends += 1;
                }
            }
        }
        assert_eq!(ends, FRAMES);
    });

    let msrp_per_frame = rate("msrp_per_frame", FRAMES as u64, || {
        for chunk in stream.chunks(frame_len) {
            let mut f = parser.feed(chunk);
            while let Some(ev) = f.next_event().expect("valid stream") {
                black_box(ev);
            }
        }
    });

    let rw = MsrpRewriter::new(
        MsrpLegPaths {
            local_uri: GW_A.into(),
            remote_path: UE_A.into(),
        },
        MsrpLegPaths {
            local_uri: GW_B.into(),
            remote_path: UE_B.into(),
        },
        true,
    )
    .expect("valid URIs");
    let mut out = vec![0u8; 64 * 1024];
    let msrp_rewrite = rate("msrp_rewrite", FRAMES as u64, || {
        let mut at = 0;
        for chunk in stream.chunks(16 * 1024) {
            let mut f = parser.feed(chunk);
            while let Some(ev) = f.next_event().expect("valid stream") {
                match ev {
                    MsrpEvent::HeadersEnd { .. } => {
                        at = 0;
                        at += rw
                            .rewrite_head(
                                LegSide::A,
                                f.parser().head(),
                                f.parser().frame(),
                                &mut out[at..],
                            )
                            .expect("rewrite");
                    }
                    MsrpEvent::Body { range } => {
                        // The relay forwards body ranges in place; here we only touch them.
                        black_box(range);
                    }
                    MsrpEvent::End { continuation } => {
                        at += f
                            .parser()
                            .write_end_line(continuation, &mut out[at..])
                            .expect("end-line");
                    }
                    _ => {}
                }
            }
        }
        black_box(at);
    });

    // BFCP FloorRequest with FLOOR-ID, USER-URI, PRIORITY (the attribute walk has three
    // attributes of two sizes to go through).
    let mut msg = Vec::new();
    let mut w = MessageWriter::new(&mut msg, &Header::new(1, 1, 2, 3), Primitive::FloorRequest);
    w.floor_id(1)
        .user_uri(b"bfcp:alice@example.com")
        .priority(2);
    w.finish().expect("three attributes");
    let bfcp_parse = rate("bfcp_parse", 1000, || {
        for _ in 0..1000 {
            let p = Packet::new_checked(black_box(&msg[..])).expect("valid");
            black_box(Repr::parse(&p).expect("valid"));
        }
    });
    let bfcp_stream_bytes: Vec<u8> = msg.iter().copied().cycle().take(msg.len() * 1000).collect();
    let mut framer = StreamFramer::new(4096);
    let bfcp_stream = rate("bfcp_stream", 1000, || {
        let mut k = 0;
        for chunk in bfcp_stream_bytes.chunks(16 * 1024) {
            let mut f = framer.feed(chunk);
            while let Some(m) = f.next_message().expect("valid") {
                black_box(m);
                k += 1;
            }
        }
        assert_eq!(k, 1000);
    });

    // UDPTL: 200-byte datagrams, primary ~64 B + 2 secondaries.
    let ifps: Vec<Vec<u8>> = (0..3u8).map(|i| vec![0xc0 | i; 63]).collect();
    let mut dgrams = Vec::new();
    for seq in 0..1000u16 {
        let sec: [&[u8]; 2] = [&ifps[1], &ifps[2]];
        let u = UdptlRepr {
            seq_number: seq,
            primary_ifp: &ifps[0],
            error_recovery: ErrorRecovery::Redundancy(IfpList::Items(&sec)),
        };
        let mut b = vec![0u8; u.buffer_len()];
        u.emit(&mut b).expect("emit");
        dgrams.push(b);
    }
    let udptl_len = dgrams[0].len();
    let mut flow = UdptlFlow::new(UdptlConfig::default());
    let udptl = rate("udptl", 1000, || {
        for d in &dgrams {
            black_box(flow.on_datagram(black_box(d)).expect("valid"));
        }
    });

    let report = json!({
        "bench": "app_bench",
        "msrp_frame_bytes": frame_len,
        "msrp_parse_16k_frames_per_s": msrp_16k.round(),
        "msrp_parse_16k_gbit_per_s": msrp_16k * frame_len as f64 * 8.0 / 1e9,
        "msrp_parse_16k_no_header_events_frames_per_s": msrp_16k_quiet.round(),
        "msrp_parse_per_frame_frames_per_s": msrp_per_frame.round(),
        "msrp_parse_rewrite_frames_per_s": msrp_rewrite.round(),
        "bfcp_message_bytes": msg.len(),
        "bfcp_parse_msgs_per_s": bfcp_parse.round(),
        "bfcp_stream_msgs_per_s": bfcp_stream.round(),
        "udptl_datagram_bytes": udptl_len,
        "udptl_flow_pkts_per_s": udptl.round(),
        "msrp_stats_errors": parser.stats().errors,
    });
    println!("{report}");
}
