//! JSON benchmark of the H.248 control plane (one thread, in memory, no sockets).
//!
//! Figures (median of 3 runs of ~0.5 s each):
//! - `add_subtract_per_s`: complete Add+Subtract cycles of a TLS MSRP context (access TLS leg +
//!   core TCP leg, SDP in Local/Remote) through the full path: datagram bytes → transaction layer
//!   (duplicate cache, parse) → association → MG model (procedures, port allocation, Local SDP
//!   answer) → reply encoded to bytes. Two transactions per cycle. Target ≥ 50k/s.
//! - `add_latency_p50_us`, `subtract_latency_p50_us`, and `add_subtract_per_s_from_p50`
//!   (1 / sum of the two medians): the per-core rate without time lost to other processes,
//!   which dominates `add_subtract_per_s` on a shared machine.
//! - `txn_latency_p50_us` / `txn_latency_p99_us`: bytes-in → reply-bytes-out time of single
//!   transactions (both Add and Subtract) over one run. The worker-acknowledgement part of the
//!   target (FlowOp ring) is not included: it does not exist yet.
//! - `parse_add_per_s` / `emit_add_per_s`: the codec alone on the Add message.
//!
//! Usage: `cargo run --profile ci -p mgwbench --bin h248_bench`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mgw_core::time::Instant as T;
use mgw_h248::h248::association::{AssocEvent, Association, AssociationConfig};
use mgw_h248::h248::ast::Mid;
use mgw_h248::h248::mg::{Mg, MgConfig};
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::h248::{emit, parse_message, Style};
use mgw_h248::procedures::Realms;
use serde_json::json;

const FP: &str = "SHA-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
const PEER_FP: &str = "SHA-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:5E:1B:82:4F:66:9A:37:C6:61:AD:51:9E";

fn add(id: u32) -> String {
    format!(
        "!/3 [127.0.0.2]:2944 T={id}{{C=${{A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=access}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\na=fingerprint:$\n}},R{{\nv=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=path:msrps://198.51.100.10:7394/jshA7weztas;tcp\na=setup:active\na=connection:new\na=fingerprint:{PEER_FP}\n}}}}}},E=2{{tls/ef}}}},A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}},E=2{{tcp/ef}}}}}}}}"
    )
}

struct Rig {
    a: Association,
    mg: Mg,
    mgc: SocketAddr,
    now_ms: u64,
}

impl Rig {
    fn new() -> Rig {
        let mgc: SocketAddr = "127.0.0.2:2944".parse().unwrap();
        let mut a = Association::new(
            AssociationConfig {
                mgcs: vec![mgc],
                inactivity_timeout: None,
                transaction: TransactionConfig {
                    // Replies are acknowledged in real deployments; keep the cache bounded here
                    // with a short long-timer so memory does not grow for the whole run.
                    long_timer: Duration::from_millis(200),
                    ..TransactionConfig::default()
                },
                ..AssociationConfig::default()
            },
            Mid::Ip {
                addr: "127.0.0.1".parse().unwrap(),
                port: Some(2944),
            },
            1,
            0,
            T::ZERO,
        );
        a.handle_timeout(T::ZERO);
        while a.poll_transmit().is_some() {}
        a.handle_datagram(
            T::ZERO,
            mgc,
            b"!/3 [127.0.0.2]:2944 P=1{C=-{SC=ROOT{SV{V=3}}}}",
        );
        while a.poll_event().is_some() {}
        let mut realms = Realms::default();
        realms.add("access", "192.0.2.1".parse().unwrap(), 1024, 65000);
        realms.add("core", "10.0.0.1".parse().unwrap(), 1024, 65000);
        Rig {
            a,
            mg: Mg::new(MgConfig::default(), realms, FP.into()),
            mgc,
            now_ms: 1,
        }
    }

    /// One request in, one reply out; returns the reply bytes' length.
    fn transact(&mut self, bytes: &[u8]) -> (usize, Option<u32>) {
        self.now_ms += 1;
        let now = T::from_millis(self.now_ms);
        self.a.handle_timeout(now);
        self.a.handle_datagram(now, self.mgc, bytes);
        let mut ctx = None;
        while let Some(e) = self.a.poll_event() {
            if let AssocEvent::Request { from, request } = e {
                let (r, changes) = self.mg.execute(now, &request);
                black_box(&changes);
                if let mgw_h248::h248::ReplyResult::Actions(a) = &r {
                    if let Some(mgw_h248::h248::ContextId::Id(c)) = a.first().map(|a| a.context) {
                        ctx = Some(c);
                    }
                }
                self.a.reply(now, from, request.id, r);
            }
        }
        let mut n = 0;
        while let Some(t) = self.a.poll_transmit() {
            n += t.bytes.len();
        }
        (n, ctx)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut cycles = Vec::new();
    let mut lat = Vec::new();
    let mut lat_add = Vec::new();
    let mut lat_sub = Vec::new();
    let mut id = 10u32;
    for _ in 0..3 {
        let mut rig = Rig::new();
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(500) {
            id += 2;
            let a = add(id);
            let t0 = Instant::now();
            let (len, ctx) = rig.transact(a.as_bytes());
            let d = t0.elapsed().as_nanos() as u64;
            lat.push(d);
            lat_add.push(d);
            assert!(len > 0);
            let ctx = ctx.expect("context created");
            let s = format!("!/3 [127.0.0.2]:2944 T={}{{C={ctx}{{S=*}}}}", id + 1);
            let t0 = Instant::now();
            rig.transact(s.as_bytes());
            let d = t0.elapsed().as_nanos() as u64;
            lat.push(d);
            lat_sub.push(d);
            n += 1;
        }
        assert!(rig.mg.contexts().is_empty());
        cycles.push(n as f64 / start.elapsed().as_secs_f64());
    }
    lat.sort_unstable();
    lat_add.sort_unstable();
    lat_sub.sort_unstable();
    let pct = |v: &[u64], q: f64| v[((v.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    let p = |q: f64| pct(&lat, q);

    let text = add(5);
    let mut parse_rates = Vec::new();
    let mut emit_rates = Vec::new();
    let msg = parse_message(text.as_bytes()).unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            black_box(parse_message(black_box(text.as_bytes())).unwrap());
            n += 1;
        }
        parse_rates.push(n as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            black_box(emit(black_box(&msg), Style::Compact));
            n += 1;
        }
        emit_rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    let report = json!({
        "bench": "h248",
        "add_subtract_per_s": median(cycles).round(),
        "target_add_subtract_per_s": 50000,
        "txn_latency_p50_us": p(0.50),
        "txn_latency_p99_us": p(0.99),
        "add_latency_p50_us": pct(&lat_add, 0.50),
        "subtract_latency_p50_us": pct(&lat_sub, 0.50),
        // What one uncontended core would sustain from the median per-transaction costs.
        "add_subtract_per_s_from_p50": (1e6 / (pct(&lat_add, 0.50) + pct(&lat_sub, 0.50))).round(),
        "parse_add_per_s": median(parse_rates).round(),
        "emit_add_per_s": median(emit_rates).round(),
        "add_message_bytes": text.len(),
    });
    println!("{report}");
}
