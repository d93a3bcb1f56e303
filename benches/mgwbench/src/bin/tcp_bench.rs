//! mgw-tcp benchmarks, one core, in memory; prints one JSON object.
//!
//! - `bulk`: two stacks, one connection, A → B as fast as it goes. Segments are serialised into
//!   frame buffers (header + payload copy) and parsed back, checksums skipped as with NIC
//!   offload (and once more with software checksums).
//! - `small_segments`: 64-byte messages, Nagle off, one segment each.
//! - `setup_teardown`: connect, handshake, close from both sides, until both report `Closed`.
//! - `memory`: TCP state per idle established connection (`size_of` of the TCB and its share
//!   of the table, wheel and queues; the rings are configured separately).
//!
//! `--callgrind-data N` / `--callgrind-ack N` run N segments of the receive (data) path or the
//! ACK path against a synthetic peer and nothing else, for
//! `valgrind --tool=callgrind tcp_bench --callgrind-data N` (run it for two N and divide the
//! difference to get instructions per segment).

use mgw_core::time::{monotonic_now, Instant};
use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{IpAddress, Ipv4Address, TcpFlags, TcpOptions, TcpPacket, TcpRepr};
use mgw_tcp::{Config, ConnId, EventKind, SegmentSink, Stack};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

const A: IpAddress = IpAddress::V4(Ipv4Address([10, 0, 0, 1]));
const B: IpAddress = IpAddress::V4(Ipv4Address([10, 0, 0, 2]));

/// A FIFO of serialised segments with preallocated frame buffers.
struct Pipe {
    frames: VecDeque<(usize, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    src: IpAddress,
    dst: IpAddress,
    checksums: bool,
}

impl Pipe {
    fn new(src: IpAddress, dst: IpAddress, checksums: bool) -> Pipe {
        Pipe {
            frames: VecDeque::with_capacity(4096),
            spare: (0..4096).map(|_| vec![0u8; 9100]).collect(),
            src,
            dst,
            checksums,
        }
    }
}

impl SegmentSink for Pipe {
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        let Some(mut buf) = self.spare.pop() else {
            return false;
        };
        let n = seg.buffer_len();
        let mut p = TcpPacket::new_unchecked(&mut buf[..n]);
        if self.checksums {
            seg.emit(&mut p, &src, &dst).unwrap();
        } else {
            seg.emit_header(&mut p).unwrap();
            let hl = seg.header_len();
            buf[hl..n].copy_from_slice(seg.payload);
        }
        self.frames.push_back((n, buf));
        true
    }
}

fn deliver(now: Instant, from: &mut Pipe, to: &mut Stack, back: &mut Pipe) -> usize {
    let mut n = 0;
    let check = if from.checksums {
        ChecksumCheck::Verify
    } else {
        ChecksumCheck::Skip
    };
    while let Some((len, buf)) = from.frames.pop_front() {
        {
            let p = TcpPacket::new_checked(&buf[..len]).unwrap();
            let seg = TcpRepr::parse(&p, &from.src, &from.dst, check).unwrap();
            to.on_segment(now, from.src, from.dst, &seg, back);
        }
        from.spare.push(buf);
        n += 1;
    }
    n
}

fn cfg() -> Config {
    Config {
        max_connections: 65_536,
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        mss: 8960,
        ..Config::default()
    }
}

/// Two stacks with one established connection.
struct Pair {
    a: Stack,
    b: Stack,
    ab: Pipe,
    ba: Pipe,
    ca: ConnId,
    cb: ConnId,
}

fn pump(now: Instant, a: &mut Stack, b: &mut Stack, ab: &mut Pipe, ba: &mut Pipe) -> usize {
    a.poll(now, ab);
    b.poll(now, ba);
    let mut n = 0;
    loop {
        let k = deliver(now, ab, b, ba) + deliver(now, ba, a, ab);
        n += k;
        if k == 0 {
            return n;
        }
    }
}

fn pair(cfg: Config, checksums: bool) -> Pair {
    let mut a = Stack::new(cfg.clone()).unwrap();
    let mut b = Stack::new(cfg).unwrap();
    let mut ab = Pipe::new(A, B, checksums);
    let mut ba = Pipe::new(B, A, checksums);
    b.listen(B, 443).unwrap();
    let now = monotonic_now();
    let ca = a.connect(now, (A, 50_000), (B, 443)).unwrap();
    pump(now, &mut a, &mut b, &mut ab, &mut ba);
    let mut cb = None;
    while let Some(e) = b.poll_event() {
        if let EventKind::Accepted { .. } = e.kind {
            cb = Some(e.conn);
        }
    }
    while a.poll_event().is_some() {}
    Pair {
        a,
        b,
        ab,
        ba,
        ca,
        cb: cb.expect("handshake"),
    }
}

fn bulk(checksums: bool, seconds: f64) -> serde_json::Value {
    let mut p = pair(cfg(), checksums);
    let chunk = vec![0xa5u8; 64 * 1024];
    let start = std::time::Instant::now();
    let mut moved = 0u64;
    let mut segs = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..64 {
            let now = monotonic_now();
            while p.a.send(p.ca, &chunk).unwrap_or(0) > 0 {}
            segs += pump(now, &mut p.a, &mut p.b, &mut p.ab, &mut p.ba);
            let (x, y) = p.b.peek(p.cb).unwrap();
            let n = x.len() + y.len();
            black_box((x, y));
            p.b.consume(p.cb, n).unwrap();
            moved += n as u64;
        }
    }
    let s = start.elapsed().as_secs_f64();
    if std::env::var("MGW_BENCH_DEBUG").is_ok() {
        eprintln!("a {:?}\nb {:?}", p.a.counters(), p.b.counters());
        eprintln!("A {}", p.a.debug_tcb(p.ca.index));
        eprintln!("B {}", p.b.debug_tcb(p.cb.index));
    }
    serde_json::json!({
        "bytes": moved,
        "seconds": s,
        "gbit_per_s": moved as f64 * 8.0 / s / 1e9,
        "segments_per_s": segs as f64 / s,
        "mss": 8960,
        "software_checksums": checksums,
    })
}

fn small_segments(seconds: f64) -> serde_json::Value {
    let mut p = pair(Config { mss: 1460, ..cfg() }, false);
    let msg = [0x42u8; 64];
    let start = std::time::Instant::now();
    let mut msgs = 0u64;
    let mut segs = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        let now = monotonic_now();
        for _ in 0..32 {
            if p.a.send(p.ca, &msg).unwrap_or(0) == 64 {
                msgs += 1;
            }
            p.a.poll(now, &mut p.ab);
        }
        segs += pump(now, &mut p.a, &mut p.b, &mut p.ab, &mut p.ba);
        let (x, y) = p.b.peek(p.cb).unwrap();
        let n = x.len() + y.len();
        p.b.consume(p.cb, n).unwrap();
    }
    let s = start.elapsed().as_secs_f64();
    serde_json::json!({
        "messages": msgs,
        "message_bytes": 64,
        "seconds": s,
        "messages_per_s": msgs as f64 / s,
        "segments_per_s": segs as f64 / s,
        "mpps": segs as f64 / s / 1e6,
    })
}

fn setup_teardown(seconds: f64) -> serde_json::Value {
    let c = Config {
        send_buffer: 4096,
        recv_buffer: 4096,
        time_wait: Duration::from_millis(100),
        ..cfg()
    };
    let mut a = Stack::new(c.clone()).unwrap();
    let mut b = Stack::new(c).unwrap();
    let mut ab = Pipe::new(A, B, false);
    let mut ba = Pipe::new(B, A, false);
    b.listen(B, 443).unwrap();
    let start = std::time::Instant::now();
    let mut done = 0u64;
    let mut port = 1024u16;
    while start.elapsed().as_secs_f64() < seconds {
        let now = monotonic_now();
        // 64 connections at a time.
        for _ in 0..64 {
            port = if port == u16::MAX { 1024 } else { port + 1 };
            let _ = a.connect(now, (A, port), (B, 443));
        }
        for _ in 0..8 {
            pump(now, &mut a, &mut b, &mut ab, &mut ba);
            while let Some(e) = a.poll_event() {
                match e.kind {
                    EventKind::Connected => a.close(e.conn).unwrap(),
                    EventKind::Closed => done += 1,
                    _ => {}
                }
            }
            while let Some(e) = b.poll_event() {
                if e.kind == EventKind::PeerClosed {
                    b.close(e.conn).unwrap();
                }
            }
        }
    }
    let s = start.elapsed().as_secs_f64();
    serde_json::json!({
        "connections": done,
        "seconds": s,
        "per_s": done as f64 / s,
        "note": "connect + 3-way handshake + FIN both ways, both ends in one core",
    })
}

struct NullSink {
    segs: u64,
    last_seq: u32,
}

impl SegmentSink for NullSink {
    fn transmit(&mut self, _s: IpAddress, _d: IpAddress, seg: &TcpRepr<'_>) -> bool {
        self.segs += 1;
        self.last_seq = seg.seq;
        black_box(seg.payload.len());
        true
    }
}

fn peer_seg(seq: u32, ack: u32, flags: TcpFlags, window: u16, payload: &[u8]) -> TcpRepr<'_> {
    TcpRepr {
        src_port: 40_000,
        dst_port: 443,
        seq,
        ack,
        flags,
        window,
        urgent: 0,
        options: TcpOptions::default(),
        payload,
    }
}

/// N in-order 1448-byte data segments into an established connection (ACKs every second one).
fn callgrind_data(n: u64) -> serde_json::Value {
    let mut s = Stack::new(Config {
        max_connections: 16,
        timestamps: false,
        ..cfg()
    })
    .unwrap();
    let mut sink = NullSink {
        segs: 0,
        last_seq: 0,
    };
    s.listen(B, 443).unwrap();
    let mut now = Instant::from_millis(1000);
    let mut syn = peer_seg(1000, 0, TcpFlags::SYN, 65535, &[]);
    syn.options.mss = Some(1460);
    syn.options.window_scale = Some(7);
    syn.options.sack_permitted = true;
    s.on_segment(now, A, B, &syn, &mut sink);
    let iss = sink.last_seq;
    s.on_segment(
        now,
        A,
        B,
        &peer_seg(1001, iss + 1, TcpFlags::ACK, 2048, &[]),
        &mut sink,
    );
    let conn = s.poll_event().unwrap().conn;
    let payload = [7u8; 1448];
    let mut seq = 1001u32;
    for _ in 0..n {
        now += Duration::from_micros(1);
        let seg = peer_seg(seq, iss + 1, TcpFlags::ACK, 2048, &payload);
        s.on_segment(now, A, B, &seg, &mut sink);
        seq = seq.wrapping_add(1448);
        let (x, y) = s.peek(conn).unwrap();
        let k = x.len() + y.len();
        s.consume(conn, k).unwrap();
    }
    serde_json::json!({"mode": "data", "segments": n, "acks_sent": sink.segs})
}

/// N pure ACKs (each acknowledging two full segments) into a bulk sender, which answers each
/// with about two new data segments (to a sink that only counts).
fn callgrind_ack(n: u64) -> serde_json::Value {
    let mut s = Stack::new(Config {
        max_connections: 16,
        timestamps: false,
        send_buffer: 1 << 20,
        mss: 1460,
        ..cfg()
    })
    .unwrap();
    let mut sink = NullSink {
        segs: 0,
        last_seq: 0,
    };
    let mut now = Instant::from_millis(1000);
    let conn = s.connect(now, (B, 443), (A, 40_000)).unwrap();
    s.poll(now, &mut sink);
    let iss = sink.last_seq;
    let mut sa = peer_seg(5000, iss + 1, TcpFlags::SYN.with(TcpFlags::ACK), 65535, &[]);
    sa.src_port = 40_000;
    sa.dst_port = 443;
    sa.options.mss = Some(1460);
    sa.options.window_scale = Some(10);
    sa.options.sack_permitted = true;
    s.on_segment(now, A, B, &sa, &mut sink);
    while s.poll_event().is_some() {}
    let chunk = vec![1u8; 1 << 20];
    s.send(conn, &chunk).unwrap();
    s.poll(now, &mut sink);
    let mss = 1460u32;
    let mut acked = iss.wrapping_add(1);
    for _ in 0..n {
        now += Duration::from_micros(1);
        acked = acked.wrapping_add(2 * mss);
        let ack = peer_seg(5001, acked, TcpFlags::ACK, 65535, &[]);
        s.on_segment(now, A, B, &ack, &mut sink);
        // Keep the ring full so every ACK releases new data.
        s.send(conn, &chunk[..2 * mss as usize]).unwrap();
        s.poll(now, &mut sink);
    }
    serde_json::json!({"mode": "ack", "acks": n, "segments_sent": sink.segs})
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_arg = |i: usize| -> u64 { args.get(i).and_then(|v| v.parse().ok()).unwrap_or(100_000) };
    match args.get(1).map(String::as_str) {
        Some("--callgrind-data") => {
            println!("{}", callgrind_data(n_arg(2)));
            return;
        }
        Some("--callgrind-ack") => {
            println!("{}", callgrind_ack(n_arg(2)));
            return;
        }
        _ => {}
    }
    let secs = std::env::var("MGW_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let m = Stack::state_bytes_per_connection();
    let out = serde_json::json!({
        "bench": "tcp",
        "bulk": bulk(false, secs),
        "bulk_software_checksums": bulk(true, secs),
        "small_segments": small_segments(secs),
        "setup_teardown": setup_teardown(secs),
        "memory_per_idle_connection": {
            "tcb_bytes": m.tcb,
            "table_bytes": m.table,
            "timer_bytes": m.timer,
            "queue_bytes": m.queues,
            "total_state_bytes": m.total,
            "target_bytes": 1024,
            "rings_not_included": "send_buffer + recv_buffer as configured",
        },
    });
    println!("{out}");
}
