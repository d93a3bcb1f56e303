//! JSON benchmark of the DPDK port backend: io forwarding between two `net_null` ports on ONE
//! core (RX burst on one port, TX burst of the same mbufs on the other, both directions), in
//! forwarded Mpps summed over both directions, through
//! - `dataplane::port::dpdk::DpdkQueue` (the `Port` the workers use), and
//! - the raw burst calls (`mgw_rte_eth_{rx,tx}_burst`, no wrapper) in the same process,
//!
//! then, unless `SKIP_TESTPMD=1`, the same forwarding in `dpdk-testpmd` (io mode, one forwarding
//! core) through `scripts/dpdk-testpmd-ceiling.sh`, as the machine's DPDK ceiling.
//!
//! net_null (size 64, copy=0) makes RX mbufs without touching packet data and frees TX mbufs,
//! so this measures burst-call + mbuf alloc/free + wrapper overhead, not a NIC.
//!
//! `CARGO_TARGET_DIR=... cargo run --profile ci -p mgwbench --features dpdk --bin dpdk_bench`
//! (root). Env: DURATION seconds per figure (default 3). Without feature `dpdk` or root it
//! prints `{"bench":"dpdk_io_fwd","skipped":reason}`.

#[cfg(feature = "dpdk")]
mod imp {
    use dataplane::port::dpdk::{sys, DpdkPort, DpdkPortConfig, DpdkQueue, Eal, Mempool};
    use dataplane::port::{Batch, Port, BURST};
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    fn eal_args() -> Vec<String> {
        [
            "mgw-dpdk-bench",
            "--no-huge",
            "--no-shconf",
            "--no-pci",
            "--no-telemetry",
            "-m",
            "512",
            "-l",
            "0",
            "--log-level=*:warning",
            "--vdev=net_null0",
            "--vdev=net_null1",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Forwards a → b and b → a through DpdkQueues for `d`; returns packets forwarded per second.
    fn fwd_queues(a: &mut DpdkQueue, b: &mut DpdkQueue, d: Duration) -> (f64, u64) {
        let mut batch = Batch::new(BURST);
        let mut fwd = 0u64;
        let start = Instant::now();
        while start.elapsed() < d {
            for _ in 0..1024 {
                a.rx_burst(&mut batch);
                fwd += b.tx_burst(&mut batch) as u64;
                batch.clear();
                b.rx_burst(&mut batch);
                fwd += a.tx_burst(&mut batch) as u64;
                batch.clear();
            }
        }
        (fwd as f64 / start.elapsed().as_secs_f64(), fwd)
    }

    /// The same forwarding with the raw shim calls (what testpmd's io engine does).
    fn fwd_raw(pa: u16, pb: u16, d: Duration) -> (f64, u64) {
        let mut burst = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let mut fwd = 0u64;
        let start = Instant::now();
        while start.elapsed() < d {
            for _ in 0..1024 {
                for (rx, tx) in [(pa, pb), (pb, pa)] {
                    // SAFETY: both ports are started with queue 0, polled only by this thread
                    // (the DpdkQueues of these ports are idle meanwhile); `burst` has room for
                    // BURST pointers; mbufs not taken by TX are ours and freed at once.
                    unsafe {
                        let n = sys::mgw_rte_eth_rx_burst(rx, 0, burst.as_mut_ptr(), BURST as u16);
                        let t = sys::mgw_rte_eth_tx_burst(tx, 0, burst.as_mut_ptr(), n);
                        if t < n {
                            sys::rte_pktmbuf_free_bulk(
                                burst.as_mut_ptr().add(usize::from(t)),
                                u32::from(n - t),
                            );
                        }
                        fwd += u64::from(t);
                    }
                }
            }
        }
        (fwd as f64 / start.elapsed().as_secs_f64(), fwd)
    }

    fn testpmd(duration: u64) -> Value {
        if std::env::var("SKIP_TESTPMD").is_ok_and(|v| v == "1") {
            return json!({"skipped": "SKIP_TESTPMD=1"});
        }
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/dpdk-testpmd-ceiling.sh"
        );
        let out = std::process::Command::new("timeout")
            .args(["-k", "5", &(duration + 30).to_string(), "bash", script])
            .env("DURATION", duration.to_string())
            .output();
        match out {
            Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
                .unwrap_or_else(|e| json!({"error": format!("bad JSON from script: {e}")})),
            Ok(o) => json!({
                "error": format!(
                    "script exit {}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                )
            }),
            Err(e) => json!({"error": e.to_string()}),
        }
    }

    pub fn run() -> Result<Value, String> {
        if !dataplane::testkit::is_root() {
            return Err("not root".into());
        }
        let duration: u64 = std::env::var("DURATION")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let d = Duration::from_secs(duration);
        let eal = Eal::init(&eal_args()).map_err(|e| e.to_string())?;
        let pool =
            Mempool::new(eal, "bench_pool", 8191, 256, 2176, None).map_err(|e| e.to_string())?;
        let mut ports = Vec::new();
        for name in ["net_null0", "net_null1"] {
            let id = eal.port_by_name(name).map_err(|e| e.to_string())?;
            ports.push(
                DpdkPort::new(eal, id, 1, pool, DpdkPortConfig::default())
                    .map_err(|e| e.to_string())?,
            );
        }
        let (pa, pb) = (ports[0].port_id(), ports[1].port_id());
        let mut qa = ports[0].take_queue(0).ok_or("queue")?;
        let mut qb = ports[1].take_queue(0).ok_or("queue")?;
        // Warm up caches and the pool.
        fwd_queues(&mut qa, &mut qb, Duration::from_millis(200));
        let (q_pps, q_pkts) = fwd_queues(&mut qa, &mut qb, d);
        let (r_pps, r_pkts) = fwd_raw(pa, pb, d);
        let leaked = pool.capacity() - pool.available();
        drop((qa, qb, ports));
        let tp = testpmd(duration);
        let ceiling = tp.get("testpmd_io_mpps").and_then(Value::as_f64);
        Ok(json!({
            "bench": "dpdk_io_fwd",
            "vdev": "net_null (size 64, copy=0)",
            "memory": "no-huge",
            "burst": BURST,
            "cores": 1,
            "duration_s": duration,
            "dpdkqueue_mpps": (q_pps / 1e6 * 1000.0).round() / 1000.0,
            "dpdkqueue_packets": q_pkts,
            "raw_burst_mpps": (r_pps / 1e6 * 1000.0).round() / 1000.0,
            "raw_burst_packets": r_pkts,
            "dpdkqueue_vs_raw": (q_pps / r_pps * 1000.0).round() / 1000.0,
            "dpdkqueue_vs_testpmd": ceiling.map(|c| (q_pps / 1e6 / c * 1000.0).round() / 1000.0),
            "mbufs_out_after_run": leaked,
            "testpmd": tp,
        }))
    }
}

fn main() {
    #[cfg(feature = "dpdk")]
    let v = match imp::run() {
        Ok(v) => v,
        Err(why) => serde_json::json!({"bench": "dpdk_io_fwd", "skipped": why}),
    };
    #[cfg(not(feature = "dpdk"))]
    let v = serde_json::json!({"bench": "dpdk_io_fwd", "skipped": "built without feature dpdk"});
    println!("{v}");
}
