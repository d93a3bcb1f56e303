//! JSON benchmark of the relay through one worker: MSRP over TLS (UE) → worker → plain TCP
//! (core), in memory, one thread. The worker and the simulated peers take turns on the same core;
//! the time spent inside `Worker::run_once` is measured separately, so the figures are given
//! both per worker-core (the gateway's cost) and per wall-clock (worker plus peers).
//!
//! `cargo run --profile ci -p mgwbench --bin relay_bench [-- --seconds S --sessions N --size B]`

use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::port::Node;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::EthernetAddress;
use mgw_ports::mem::{pair, MemConfig};
use mgw_tls::{HashFunction, Identity, PeerFingerprints, TlsContext, TlsSettings};
use mgw_worker::peer::TcpHost;
use mgw_worker::*;
use mgwbench::msrp_load::{self, MsrpLoad, CORE, GW, UE};
use serde_json::json;
use std::time::{Duration, Instant as Wall};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = arg("--seconds", 3);
    let sessions = arg("--sessions", 8) as usize;
    let body_len = arg("--size", 200) as usize;
    let gw_id = Identity::generate_self_signed("mgwd").expect("cert");
    let ue_id = Identity::generate_self_signed("ue").expect("cert");
    let pool = Pool::new(65_536, 2048);
    pool.prefill();
    let vc = VirtualClock::new();
    let mem = MemConfig {
        queue_len: 32_768,
        mac_a: EthernetAddress([2, 0, 0, 0, 8, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 8, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &Clock::Virtual(vc.clone()), &mem);
    let (ctl, wend) = channel(1024, 4096);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.tls = Some(TlsContext::new(TlsSettings::default(), gw_id.clone()).expect("tls"));
    cfg.tcp.send_buffer = 256 * 1024;
    cfg.tcp.recv_buffer = 256 * 1024;
    cfg.staging_bytes = 128 * 1024;
    let mut worker = Worker::new(wport, cfg, wend).expect("worker");
    let mut pe = EdgeConfig::single(mem.mac_b, UE, 24);
    pe.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let tcfg = mgw_tcp::Config {
        max_connections: 4096,
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        ..mgw_tcp::Config::default()
    };
    let mut peers = TcpHost::new(pport, pe, tcfg).expect("peers");
    let ue_ctx = TlsContext::new(TlsSettings::default(), ue_id.clone()).expect("tls");
    let ue_fp = PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256));
    let gw_fp = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
    for i in 0..sessions {
        ctl.send(FlowOp::Install(msrp_load::context(i, ue_fp, [None, None])))
            .expect("ring");
    }
    let mut t = Instant::from_millis(1);
    let mut load =
        MsrpLoad::start(&mut peers, sessions, body_len, ue_ctx, gw_fp, t).expect("peers");
    let mut worker_time = Duration::ZERO;
    let mut measuring: Option<(Wall, Duration, u64, u64)> = None;
    let start = Wall::now();
    let warmup = Duration::from_millis(500);
    loop {
        let elapsed = start.elapsed();
        if measuring.is_none() && elapsed >= warmup {
            measuring = Some((Wall::now(), worker_time, load.core_bytes, load.sent_msgs));
        }
        if elapsed >= warmup + Duration::from_secs(seconds) {
            break;
        }
        t += Duration::from_micros(20);
        vc.set(t);
        load.step(&mut peers, t);
        peers.flush();
        let w0 = Wall::now();
        worker.poll(t);
        worker_time += w0.elapsed();
        peers.poll(t);
    }
    let (m0, wt0, cb0, _) = measuring.expect("measured");
    let wall = m0.elapsed().as_secs_f64();
    let wt = (worker_time - wt0).as_secs_f64();
    let bytes = load.core_bytes - cb0;
    let msg_len = load.message_len() as f64;
    let msgs = bytes as f64 / msg_len;
    let stats = worker.stats();
    let out = json!({
        "benchmark": "relay: MSRP over TLS -> worker -> TCP, in memory, one thread",
        "sessions": sessions,
        "msrp_message_bytes": msg_len,
        "measured_s": wall,
        "worker_cpu_s": wt,
        "worker_share_of_thread": wt / wall,
        "per_worker_core": {
            "msrp_messages_per_s": msgs / wt,
            "gbps_tls_in": bytes as f64 * 8.0 / wt / 1e9,
        },
        "wall_clock_worker_plus_peers": {
            "msrp_messages_per_s": msgs / wall,
            "gbps": bytes as f64 * 8.0 / wall / 1e9,
        },
        "sent_by_ues": { "messages": load.sent_msgs, "bytes": load.sent_bytes },
        "worker": { "app_errors": stats.app_errors, "tx_failed": stats.tx_failed },
        "note": "per_worker_core divides by the time spent inside Worker::poll only (edge, TCP both legs, TLS open, MSRP parse, relay); the peers' TLS seal and TCP run on the same thread outside that time",
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
