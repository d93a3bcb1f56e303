//! TLS relay throughput over a net_memif pair: a [`Worker`] polls the memif server end; the load
//! generator ([`MsrpLoad`]: [`TcpHost`] with TLS UEs and plain-TCP core listeners, the same simulated
//! peers as `relay_bench`) polls the client end, in this process on this one core, taking turns.
//! Each session: UE --MSRP over TLS--> worker --MSRP over TCP--> core. The worker's time is
//! measured separately, so the figures are given per worker core and for worker plus peers on
//! one core (the peers' TLS sealing costs about what the worker's opening does). Both are scaled
//! by the thread's on-CPU share ([`CpuShare`]); the plain wall-clock rate is given too.

use super::{round3, CpuShare};
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::port::{Node, Port, PortStats};
use mgw_core::time::monotonic_now;
use mgw_ports::dpdk::DpdkQueue;
use mgw_tls::{HashFunction, Identity, PeerFingerprints, TlsContext, TlsSettings};
use mgw_worker::peer::TcpHost;
use mgw_worker::{channel, FlowOp, Worker, WorkerConfig};
use mgwbench::msrp_load::{self, MsrpLoad, CORE, GW, UE};
use serde_json::{json, Value};
use std::time::{Duration, Instant as Wall};

/// Relays for `d` after a warm-up; `sessions` contexts, MSRP bodies of `body_len` bytes.
pub fn run(
    wq: DpdkQueue,
    pq: DpdkQueue,
    sessions: usize,
    body_len: usize,
    d: Duration,
) -> Result<Value, String> {
    let gw_id = Identity::generate_self_signed("mgwd").map_err(|e| e.to_string())?;
    let ue_id = Identity::generate_self_signed("ue").map_err(|e| e.to_string())?;
    let (wmac, pmac) = (wq.mac(), pq.mac());
    let (ctl, wend) = channel(1024, 4096);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(wmac, GW, 24));
    cfg.tls =
        Some(TlsContext::new(TlsSettings::default(), gw_id.clone()).map_err(|e| e.to_string())?);
    cfg.max_contexts = sessions.max(1);
    cfg.tcp.max_connections = 2 * sessions as u32 + 8;
    cfg.tcp.send_buffer = 256 * 1024;
    cfg.tcp.recv_buffer = 256 * 1024;
    cfg.staging_bytes = 128 * 1024;
    let mut worker = Worker::new(wq, cfg, wend).map_err(|e| e.to_string())?;
    let mut pe = EdgeConfig::single(pmac, UE, 24);
    pe.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let tcfg = mgw_tcp::Config {
        max_connections: 2 * sessions as u32 + 8,
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        ..mgw_tcp::Config::default()
    };
    let mut peers = TcpHost::new(pq, pe, tcfg).map_err(|e| e.to_string())?;
    // Resolve both peers before the first SYN (a SYN dropped for want of ARP costs a 1 s RTO):
    // the peers learn the worker's MAC from its requests (RFC 826 merge) and answer them.
    let arp = Wall::now();
    loop {
        let t = monotonic_now();
        let ue = worker.edge().resolve(t, UE).is_some();
        let core = worker.edge().resolve(t, CORE).is_some();
        if ue && core {
            break;
        }
        if arp.elapsed() > Duration::from_secs(2) {
            return Err("ARP over memif did not resolve in 2 s".into());
        }
        worker.poll(t);
        peers.poll(t);
    }
    let ue_ctx =
        TlsContext::new(TlsSettings::default(), ue_id.clone()).map_err(|e| e.to_string())?;
    let ue_fp = PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256));
    let gw_fp = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
    for i in 0..sessions {
        ctl.send(FlowOp::Install(msrp_load::context(i, ue_fp, [None, None])))
            .map_err(|_| "control ring full")?;
    }
    let mut load = MsrpLoad::start(
        &mut peers,
        sessions,
        body_len,
        ue_ctx,
        gw_fp,
        monotonic_now(),
    )?;
    let mut worker_time = Duration::ZERO;
    // Warm-up: until every session relays (handshakes, ARP, slow start), at most 5 s.
    let mut measuring: Option<(Wall, Duration, u64, PortStats, CpuShare)> = None;
    let mut established_at = None;
    let start = Wall::now();
    let mut polls = 0u64;
    loop {
        let elapsed = start.elapsed();
        let all_up = load.established() == sessions && load.core_connections() == sessions;
        if all_up && established_at.is_none() {
            established_at = Some(elapsed);
        }
        if measuring.is_none() {
            let ready = established_at.is_some_and(|e| elapsed >= e + Duration::from_millis(200));
            if ready {
                measuring = Some((
                    Wall::now(),
                    worker_time,
                    load.core_bytes,
                    worker.port().stats(),
                    CpuShare::start(),
                ));
            } else if elapsed > Duration::from_secs(5) {
                return Err(format!(
                    "sessions not up after 5 s: {} of {sessions} TLS established, {} core \
                     connections accepted; worker {:?}",
                    load.established(),
                    load.core_connections(),
                    worker.stats()
                ));
            }
        }
        if let Some((m0, ..)) = measuring {
            if m0.elapsed() >= d {
                break;
            }
        }
        polls += 1;
        let t = monotonic_now();
        load.step(&mut peers, t);
        peers.flush();
        let w0 = Wall::now();
        worker.poll(t);
        worker_time += w0.elapsed();
        peers.poll(t);
    }
    let (m0, wt0, cb0, ps0, cpu) = measuring.ok_or("never measured")?;
    let wall = m0.elapsed().as_secs_f64();
    let share = cpu.share();
    let wt = (worker_time - wt0).as_secs_f64() * share;
    let bytes = load.core_bytes - cb0;
    let msg_len = load.message_len() as f64;
    let msgs = bytes as f64 / msg_len;
    let stats = worker.stats();
    let ps = worker.port().stats();
    if bytes == 0 || stats.app_errors != 0 {
        return Err(format!("nothing relayed or MSRP errors; worker {stats:?}"));
    }
    let (rx, tx) = (
        ps.rx_packets - ps0.rx_packets,
        ps.tx_packets - ps0.tx_packets,
    );
    Ok(json!({
        "sessions": sessions,
        "worker_port_during_measurement": {
            "rx_packets": rx,
            "tx_packets": tx,
            "avg_rx_frame_bytes": round3((ps.rx_bytes - ps0.rx_bytes) as f64 / rx.max(1) as f64),
            "mpps_rx_plus_tx_per_worker_core": round3((rx + tx) as f64 / wt / 1e6),
        },
        "msrp_message_bytes": msg_len,
        "warmup_s_until_all_sessions_up": round3(established_at.map_or(0.0, |e| e.as_secs_f64())),
        "measured_s": round3(wall),
        "thread_on_cpu_share": round3(share),
        "worker_cpu_s": round3(wt),
        "worker_share_of_thread_cpu": round3(wt / (wall * share)),
        "per_worker_core": {
            "msrp_messages_per_s": (msgs / wt).round(),
            "gbit_per_s_relayed": round3(bytes as f64 * 8.0 / wt / 1e9),
        },
        "worker_plus_peers_one_core": {
            "msrp_messages_per_s": (msgs / (wall * share)).round(),
            "gbit_per_s_relayed": round3(bytes as f64 * 8.0 / (wall * share) / 1e9),
            "wall_clock_gbit_per_s_relayed": round3(bytes as f64 * 8.0 / wall / 1e9),
        },
        "relayed_plaintext_bytes_at_core": bytes,
        "messages_sent_by_ues_incl_warmup": load.sent_msgs,
        "polls": polls,
        "worker": {
            "app_errors": stats.app_errors,
            "tx_failed": stats.tx_failed,
            "port_rx_packets": ps.rx_packets,
            "port_tx_packets": ps.tx_packets,
            "port_tx_full": ps.tx_full,
            "tcp_retransmits": worker.tcp_counters().retransmits,
        },
    }))
}
