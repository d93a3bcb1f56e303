//! The seeded simulator matrix: two stacks over `mgw_core::link::Link`s with loss (0-20%),
//! reordering, duplication, corruption, MTUs from 576 to 9000, bandwidth limits and receivers
//! that stop reading for a while (zero windows). Each run transfers data both ways, closes both
//! ends, and checks that every byte arrived exactly once and in order (SHA-256 of the streams)
//! and that both stacks end with no connection at all. Virtual time jumps to the next deadline,
//! so a run of minutes of virtual time takes milliseconds.
//!
//! `MGW_TCP_SEEDS=n` sets the number of seeds (default 1,000 in an optimised build, 100 in an
//! unoptimised one); `MGW_TCP_SEED=s` runs one seed verbosely.

mod support;

use core::time::Duration;
use mgw_core::link::{Link, LinkModel};
use mgw_core::rng::Rng;
use mgw_core::time::Instant;
use mgw_core::wire::{
    tcp::ChecksumCheck, IpAddress, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};
use mgw_tcp::{Config, CongestionAlgorithm, ConnId, EventKind, SegmentSink, Stack};
use sha2::{Digest, Sha256};
use support::wire::{ipv4_frame, v4};

const A_ADDR: Ipv4Address = Ipv4Address([10, 1, 0, 1]);
const B_ADDR: Ipv4Address = Ipv4Address([10, 1, 0, 2]);
const B_PORT: u16 = 5060;

struct WireSink<'a> {
    link: &'a mut Link,
    now: Instant,
    scratch: Vec<u8>,
}

impl SegmentSink for WireSink<'_> {
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        let n = ipv4_frame(v4(src), v4(dst), seg, &mut self.scratch);
        // A tail-drop at the link's queue is loss on the wire, not back-pressure.
        self.link.send(self.now, &self.scratch[..n]);
        true
    }
}

/// One end: its stack, its app state and the streams it sends and receives.
struct End {
    stack: Stack,
    conn: Option<ConnId>,
    to_send: Vec<u8>,
    sent: usize,
    closed_sent: bool,
    got: Sha256,
    got_len: usize,
    peer_closed: bool,
    closed: bool,
    pauses: Vec<(Instant, Instant)>,
    failure: Option<EventKind>,
}

impl End {
    fn new(cfg: Config, to_send: Vec<u8>, pauses: Vec<(Instant, Instant)>) -> End {
        End {
            stack: Stack::new(cfg).unwrap(),
            conn: None,
            to_send,
            sent: 0,
            closed_sent: false,
            got: Sha256::new(),
            got_len: 0,
            peer_closed: false,
            closed: false,
            pauses,
            failure: None,
        }
    }

    fn paused(&self, now: Instant) -> bool {
        self.pauses.iter().any(|&(s, e)| s <= now && now < e)
    }

    /// The application: drain events, write what fits, read unless paused, close when done.
    fn app(&mut self, now: Instant) {
        while let Some(e) = self.stack.poll_event() {
            match e.kind {
                EventKind::Connected | EventKind::Accepted { .. } => self.conn = Some(e.conn),
                EventKind::PeerClosed => self.peer_closed = true,
                EventKind::Closed => self.closed = true,
                EventKind::Readable | EventKind::Writable => {}
                other => self.failure = Some(other),
            }
        }
        let Some(id) = self.conn else { return };
        if self.closed {
            return;
        }
        while self.sent < self.to_send.len() {
            match self.stack.send(id, &self.to_send[self.sent..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.sent += n,
            }
        }
        if self.sent == self.to_send.len() && !self.closed_sent {
            self.stack.close(id).unwrap();
            self.closed_sent = true;
        }
        if !self.paused(now) {
            if let Ok((a, b)) = self.stack.peek(id) {
                let n = a.len() + b.len();
                self.got.update(a);
                self.got.update(b);
                self.got_len += n;
                self.stack.consume(id, n).unwrap();
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.pauses
            .iter()
            .flat_map(|&(s, e)| [s, e])
            .filter(|&t| t > now)
            .min()
    }
}

fn deliver(now: Instant, link: &mut Link, to: &mut End, back: &mut Link, scratch: &mut Vec<u8>) {
    while let Some(frame) = link.recv(now) {
        let bytes: &[u8] = frame.as_ref();
        let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
            continue;
        };
        let Ok(ipr) = Ipv4Repr::parse(&ip, true) else {
            continue;
        };
        let (src, dst) = (IpAddress::V4(ipr.src_addr), IpAddress::V4(ipr.dst_addr));
        let payload = ip.payload();
        let Ok(tp) = TcpPacket::new_checked(payload) else {
            continue;
        };
        let Ok(seg) = TcpRepr::parse(&tp, &src, &dst, ChecksumCheck::Verify) else {
            continue; // corrupted: the IP layer counts and drops it
        };
        if std::env::var("MGW_TCP_TRACE").is_ok() {
            eprintln!(
                "{:>10.3} {}→ seq {} ack {} len {} {:?} win {} sack {:?}",
                now.as_micros() as f64 / 1000.0,
                seg.src_port,
                seg.seq,
                seg.ack,
                seg.payload.len(),
                seg.flags,
                seg.window,
                seg.options.sack()
            );
        }
        let mut sink = WireSink {
            link: back,
            now,
            scratch: core::mem::take(scratch),
        };
        to.stack.on_segment(now, src, dst, &seg, &mut sink);
        *scratch = sink.scratch;
    }
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in failure messages
struct Params {
    model: LinkModel,
    a_bytes: usize,
    b_bytes: usize,
    cfg_a: String,
    cfg_b: String,
}

fn random_cfg(rng: &mut Rng, mtu: usize) -> Config {
    let bufs = [4096u32, 8192, 16384, 65536, 200_000];
    Config {
        max_connections: 4,
        send_buffer: bufs[rng.below(bufs.len() as u64) as usize],
        recv_buffer: bufs[rng.below(bufs.len() as u64) as usize],
        mss: u16::try_from(mtu - 40).unwrap(),
        congestion: if rng.chance(0.5) {
            CongestionAlgorithm::Cubic
        } else {
            CongestionAlgorithm::NewReno
        },
        sack: rng.chance(0.8),
        timestamps: rng.chance(0.7),
        window_scaling: rng.chance(0.8),
        delayed_ack: if rng.chance(0.7) {
            Some(Duration::from_millis(40))
        } else {
            None
        },
        nagle: rng.chance(0.2),
        max_retries: 30,
        max_syn_retries: 30,
        time_wait: Duration::from_secs(60),
        secret: {
            let mut k = [0u8; 16];
            rng.fill(&mut k);
            k
        },
        ..Config::default()
    }
}

/// Runs one seed; returns an error describing the failure.
fn run_seed(seed: u64, verbose: bool) -> Result<Duration, String> {
    let mut rng = Rng::new(seed);
    let mtus = [576usize, 1280, 1500, 4000, 9000];
    let mtu = mtus[rng.below(mtus.len() as u64) as usize];
    let lossy = rng.chance(0.8);
    let model = LinkModel {
        loss: if lossy { rng.next_f64() * 0.2 } else { 0.0 },
        duplicate: if lossy { rng.next_f64() * 0.05 } else { 0.0 },
        reorder: if lossy { rng.next_f64() * 0.1 } else { 0.0 },
        corrupt: if lossy { rng.next_f64() * 0.05 } else { 0.0 },
        delay: Duration::from_micros(500 + rng.below(30_000)),
        jitter: Duration::from_micros(rng.below(3_000)),
        mtu,
        bandwidth_bps: if rng.chance(0.3) {
            Some(10_000_000 + rng.below(990_000_000))
        } else {
            None
        },
        queue_limit: 512,
    };
    let a_bytes = 20_000 + rng.below(180_000) as usize;
    let b_bytes = if rng.chance(0.7) {
        rng.below(100_000) as usize
    } else {
        0
    };
    let mut a_data = vec![0u8; a_bytes];
    rng.fill(&mut a_data);
    let mut b_data = vec![0u8; b_bytes];
    rng.fill(&mut b_data);
    let cfg_a = random_cfg(&mut rng, mtu);
    let mut cfg_b = random_cfg(&mut rng, mtu);
    // On clean links, half the runs go through a SYN cookie (backlog 0): the whole transfer then
    // runs without window scaling, SACK or timestamps. (Over lossy links a cookie connection can
    // be reset if the completing ACK and the first data segment are both lost, as in Linux.)
    let cookie = !lossy && rng.chance(0.5);
    if cookie {
        cfg_b.syn_backlog = 0;
    }
    let t0 = Instant::from_millis(1_000);
    let pauses = |rng: &mut Rng| -> Vec<(Instant, Instant)> {
        if !rng.chance(0.3) {
            return Vec::new();
        }
        (0..1 + rng.below(3))
            .map(|_| {
                let s = t0 + Duration::from_millis(rng.below(5_000));
                (s, s + Duration::from_millis(100 + rng.below(5_000)))
            })
            .collect()
    };
    let pa = pauses(&mut rng);
    let pb = pauses(&mut rng);
    let params = Params {
        model: model.clone(),
        a_bytes,
        b_bytes,
        cfg_a: format!("{cfg_a:?}"),
        cfg_b: format!("{cfg_b:?}"),
    };
    if verbose {
        eprintln!("seed {seed}: {params:#?}");
    }
    let mut ab = Link::new(model.clone(), seed ^ 0xa);
    let mut ba = Link::new(model, seed ^ 0xb);
    let mut a = End::new(cfg_a, a_data.clone(), pa);
    let mut b = End::new(cfg_b, b_data.clone(), pb);
    b.stack.listen(IpAddress::V4(B_ADDR), B_PORT).unwrap();
    let mut now = t0;
    let a_port = 20_000 + u16::try_from(seed % 40_000).unwrap();
    a.conn = Some(
        a.stack
            .connect(
                now,
                (IpAddress::V4(A_ADDR), a_port),
                (IpAddress::V4(B_ADDR), B_PORT),
            )
            .unwrap(),
    );
    let mut scratch = vec![0u8; 9100];
    let limit = t0 + Duration::from_secs(3_600);
    let mut steps = 0u64;
    loop {
        steps += 1;
        deliver(now, &mut ab, &mut b, &mut ba, &mut scratch);
        deliver(now, &mut ba, &mut a, &mut ab, &mut scratch);
        for (end, link) in [(&mut a, &mut ab), (&mut b, &mut ba)] {
            end.app(now);
            let mut sink = WireSink {
                link,
                now,
                scratch: core::mem::take(&mut scratch),
            };
            end.stack.poll(now, &mut sink);
            scratch = sink.scratch;
            end.app(now);
        }
        for (name, end) in [("a", &a), ("b", &b)] {
            if let Some(f) = end.failure {
                if verbose {
                    for i in 0..4 {
                        eprintln!("A[{i}] {}", a.stack.debug_tcb(i));
                        eprintln!("B[{i}] {}", b.stack.debug_tcb(i));
                    }
                    eprintln!("a: {:?}\nb: {:?}", a.stack.counters(), b.stack.counters());
                }
                return Err(format!("{name}: event {f:?} at {now:?}; {params:#?}"));
            }
        }
        let done = a.closed
            && b.closed
            && a.stack.connection_count() == 0
            && b.stack.connection_count() == 0;
        if done {
            break;
        }
        let next = [
            a.stack.poll_timeout(),
            b.stack.poll_timeout(),
            ab.next_delivery(),
            ba.next_delivery(),
            a.next_wake(now),
            b.next_wake(now),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            if verbose {
                for i in 0..4 {
                    eprintln!("A[{i}] {}", a.stack.debug_tcb(i));
                    eprintln!("B[{i}] {}", b.stack.debug_tcb(i));
                }
            }
            return Err(format!(
                "stalled at {now:?}: a sent {}/{} got {} closed {}; b sent {}/{} got {} closed {}; {params:#?}",
                a.sent, a_bytes, a.got_len, a.closed, b.sent, b_bytes, b.got_len, b.closed
            ));
        };
        now = now.max(next);
        if now > limit || steps > 5_000_000 {
            return Err(format!(
                "not done by {now:?} (steps {steps}): a sent {}/{} got {}/{} closed {}; b sent {}/{} got {}/{} closed {}; {params:#?}",
                a.sent, a_bytes, a.got_len, b_bytes, a.closed, b.sent, b_bytes, b.got_len, a_bytes, b.closed
            ));
        }
    }
    // Every byte exactly once and in order, both ways.
    let want_b: [u8; 32] = Sha256::digest(&a_data).into();
    let want_a: [u8; 32] = Sha256::digest(&b_data).into();
    let got_b: [u8; 32] = b.got.finalize().into();
    let got_a: [u8; 32] = a.got.finalize().into();
    if b.got_len != a_bytes || got_b != want_b {
        return Err(format!(
            "A→B stream differs ({} of {a_bytes} bytes); {params:#?}",
            b.got_len
        ));
    }
    if a.got_len != b_bytes || got_a != want_a {
        return Err(format!(
            "B→A stream differs ({} of {b_bytes} bytes); {params:#?}",
            a.got_len
        ));
    }
    if !a.peer_closed || !b.peer_closed {
        return Err(format!("a FIN was not seen; {params:#?}"));
    }
    if a.stack.reassembly_bytes() != 0 || b.stack.reassembly_bytes() != 0 {
        return Err("reassembly accounting leaked".into());
    }
    if ab.stats().too_big != 0 || ba.stats().too_big != 0 {
        return Err(format!("a segment exceeded the MTU; {params:#?}"));
    }
    if cookie && b.stack.counters().syn_cookies_accepted != 1 {
        return Err(format!("the cookie path was not taken; {params:#?}"));
    }
    if verbose {
        eprintln!("a: {:#?}\nb: {:#?}", a.stack.counters(), b.stack.counters());
        eprintln!("links: {:?} {:?}", ab.stats(), ba.stats());
    }
    Ok(now - t0)
}

fn seed_count() -> u64 {
    if let Ok(v) = std::env::var("MGW_TCP_SEEDS") {
        return v.parse().expect("MGW_TCP_SEEDS must be a number");
    }
    if cfg!(mgw_tcp_optimized) {
        1_000
    } else {
        100
    }
}

#[test]
fn simulator_matrix() {
    if let Ok(s) = std::env::var("MGW_TCP_SEED") {
        let seed: u64 = s.parse().unwrap();
        let r = run_seed(seed, true);
        assert!(r.is_ok(), "seed {seed}: {}", r.unwrap_err());
        return;
    }
    let n = seed_count();
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut virtual_total = Duration::ZERO;
    for seed in 0..n {
        match run_seed(seed, false) {
            Ok(d) => virtual_total += d,
            Err(e) => failures.push((seed, e)),
        }
    }
    eprintln!(
        "simulator: {n} seeds, {} failed, {:?} virtual, {:?} wall",
        failures.len(),
        virtual_total,
        started.elapsed()
    );
    if let Some((seed, e)) = failures.first() {
        panic!(
            "{} of {n} seeds failed; first: seed {seed} (rerun with MGW_TCP_SEED={seed}): {e}",
            failures.len()
        );
    }
}
