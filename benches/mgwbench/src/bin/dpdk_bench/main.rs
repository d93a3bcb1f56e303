//! JSON benchmark of mgwd on DPDK (issue 7), one process, one core (lcore 0), no hugepages, and
//! beside each figure `dpdk-testpmd` io forwarding on the same device type in the same run,
//! which is this machine's DPDK I/O ceiling for it:
//!
//! - `io_fwd_net_null`: io forwarding between two `net_null` ports through
//!   `mgw_ports::dpdk::DpdkQueue` (the `Port` the workers use) and through the raw burst
//!   calls (`mgw_rte_eth_{rx,tx}_burst`, no wrapper), forwarded Mpps over both directions.
//! - `tcp_net_null`: the TCP stack's per-core rate for crafted ACK-only and 64-byte data
//!   segments of an established connection (net_null is RX source and TX sink), see `tcp.rs`.
//! - `tcp_net_ring`: two stacks over a back-to-back ring pair, 64-byte messages, see `tcp.rs`.
//! - `tls_relay_net_memif`: a worker relaying MSRP over TLS to MSRP over TCP on one memif end,
//!   the peers on the other, see `relay.rs`; `tls_relay_net_memif_2k_body` the same with 2 KiB
//!   MSRP bodies (full runs only).
//! - `testpmd_io_fwd`: net_null pair, net_ring pair (loopback rings, `--tx-first`), memif pair
//!   (`--tx-first`, 1514-byte frames) in testpmd with one forwarding core.
//!
//! net_null (size 64, copy=0) hands out mbufs without touching their data and frees what it is
//! given; net_ring moves mbuf pointers through `rte_ring`s; memif copies frames through shared
//! memory (non-zero-copy mode). None of them is a NIC: they bound the software path.
//!
//! `CARGO_TARGET_DIR=... cargo run --profile ci -p mgwbench --features dpdk --bin dpdk_bench
//! [-- --quick] [-- --seconds S --sessions N --size B --only fwd,tcp_null,tcp_ring,tls,testpmd]`
//! as root. `--quick` (CI smoke, under
//! ~15 s) shortens every measurement. Env: `SKIP_TESTPMD=1`, `TESTPMD=<path>`. Without feature
//! `dpdk` or root it prints `{"bench":"dpdk","skipped":reason}` and exits 0 (1 under
//! `MGW_REQUIRE_PEERS=1`, which also fails a run without dpdk-testpmd). A section that fails is
//! `{"error": ...}` in the JSON and makes the exit status 1.

#[cfg(feature = "dpdk")]
mod relay;
#[cfg(feature = "dpdk")]
mod tcp;
#[cfg(feature = "dpdk")]
mod testpmd;

/// Rounds to three decimals (for the JSON).
#[cfg(feature = "dpdk")]
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The share of wall-clock time this thread was on a CPU between `start` and `share`, from
/// `/proc/thread-self/schedstat` (nanoseconds on CPU). The per-core figures divide by time
/// measured with the wall clock around the code under test; on a shared machine part of that is
/// time the thread was preempted, so they are scaled by this share (assuming preemption falls
/// evenly). 1.0 when the kernel does not say.
#[cfg(feature = "dpdk")]
pub struct CpuShare {
    wall: std::time::Instant,
    cpu: Option<u64>,
}

#[cfg(feature = "dpdk")]
impl CpuShare {
    fn on_cpu_ns() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Starts measuring.
    pub fn start() -> CpuShare {
        CpuShare {
            wall: std::time::Instant::now(),
            cpu: Self::on_cpu_ns(),
        }
    }

    /// On-CPU time / wall time since `start`, in (0, 1].
    pub fn share(&self) -> f64 {
        let wall = self.wall.elapsed().as_nanos() as f64;
        match (self.cpu, Self::on_cpu_ns()) {
            (Some(a), Some(b)) if b > a && wall > 0.0 => ((b - a) as f64 / wall).min(1.0),
            _ => 1.0,
        }
    }
}

#[cfg(feature = "dpdk")]
mod imp {
    use super::{relay, round3, tcp, testpmd, CpuShare};
    use mgw_core::buf::PacketBuffer;
    use mgw_core::port::{Batch, Port, BURST};
    use mgw_ports::dpdk::{sys, DpdkPort, DpdkPortConfig, DpdkQueue, Eal, Mempool};
    use serde_json::{json, Value};
    use std::ffi::{c_char, c_int, c_uint, CString};
    use std::time::{Duration, Instant};

    #[link(name = "rte_net_ring")]
    extern "C" {
        /// `rte_eth_ring.h`: an ethdev whose RX queues dequeue from `rx_queues` and whose TX
        /// queues enqueue to `tx_queues`. Returns the port id, or -1 with `rte_errno` set.
        fn rte_eth_from_rings(
            name: *const c_char,
            rx_queues: *const *mut sys::rte_ring,
            nb_rx_queues: c_uint,
            tx_queues: *const *mut sys::rte_ring,
            nb_tx_queues: c_uint,
            numa_node: c_uint,
        ) -> c_int;
    }

    /// Durations of one run.
    struct Plan {
        quick: bool,
        fwd: Duration,
        tcp: Duration,
        relay: Duration,
        testpmd_s: u64,
        sessions: usize,
        body: usize,
        /// `--only a,b`: the sections to run (fwd, tcp_null, tcp_ring, tls, testpmd).
        only: Option<String>,
    }

    impl Plan {
        fn wants(&self, section: &str) -> bool {
            self.only
                .as_ref()
                .is_none_or(|o| o.split(',').any(|s| s == section))
        }
    }

    fn arg(name: &str) -> Option<u64> {
        let args: Vec<String> = std::env::args().collect();
        args.windows(2)
            .find(|w| w[0] == name)
            .and_then(|w| w[1].parse().ok())
    }

    fn plan() -> Plan {
        let quick = std::env::args().any(|a| a == "--quick");
        let secs = arg("--seconds");
        let d = |quick_ms: u64, full_s: u64| {
            secs.map_or_else(
                || {
                    if quick {
                        Duration::from_millis(quick_ms)
                    } else {
                        Duration::from_secs(full_s)
                    }
                },
                Duration::from_secs,
            )
        };
        Plan {
            quick,
            fwd: d(300, 3),
            tcp: d(500, 3),
            relay: d(600, 3),
            testpmd_s: secs.unwrap_or(if quick { 1 } else { 5 }).max(1),
            sessions: arg("--sessions").unwrap_or(8) as usize,
            body: arg("--size").unwrap_or(200) as usize,
            only: {
                let args: Vec<String> = std::env::args().collect();
                args.windows(2)
                    .find(|w| w[0] == "--only")
                    .map(|w| w[1].clone())
            },
        }
    }

    fn memif_socket() -> String {
        format!("/tmp/mgw-dpdk-bench-{}.sock", std::process::id())
    }

    fn eal_args() -> Vec<String> {
        let sock = memif_socket();
        [
            "mgw-dpdk-bench".to_owned(),
            "--no-huge".into(),
            "--no-shconf".into(),
            "--no-pci".into(),
            "--no-telemetry".into(),
            "-m".into(),
            "1024".into(),
            "-l".into(),
            "0".into(),
            "--log-level=*:warning".into(),
            "--vdev=net_null0".into(),
            "--vdev=net_null1".into(),
            "--vdev=net_null2".into(),
            format!("--vdev=net_memif0,role=server,id=0,rsize=12,socket={sock}"),
            format!("--vdev=net_memif1,role=client,id=0,rsize=12,socket={sock}"),
            // A second pair for the second relay run (a stopped memif pair does not reconnect
            // when started again).
            format!("--vdev=net_memif2,role=server,id=1,rsize=12,socket={sock}"),
            format!("--vdev=net_memif3,role=client,id=1,rsize=12,socket={sock}"),
        ]
        .to_vec()
    }

    /// Two ethdevs joined back to back by two single-producer/single-consumer rings.
    fn ring_pair() -> Result<(u16, u16), String> {
        // SAFETY: EAL is up (checked by the caller); rte_socket_id has no preconditions.
        let socket = unsafe { sys::rte_socket_id() };
        let mut rings = Vec::new();
        for name in ["mgw_ring_ab", "mgw_ring_ba"] {
            let c = CString::new(name).map_err(|e| e.to_string())?;
            // SAFETY: EAL is up; `c` is a valid C string (DPDK copies the name). The rings live
            // until the process exits (ethdevs keep pointers to them).
            let r = unsafe {
                sys::rte_ring_create(
                    c.as_ptr(),
                    4096,
                    socket as c_int,
                    sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
                )
            };
            if r.is_null() {
                return Err(format!("rte_ring_create {name} failed"));
            }
            rings.push(r);
        }
        let mut ids = Vec::new();
        for (name, rx, tx) in [
            ("net_ring_a", rings[1], rings[0]),
            ("net_ring_b", rings[0], rings[1]),
        ] {
            let c = CString::new(name).map_err(|e| e.to_string())?;
            // SAFETY: EAL is up; `c` and the two one-element ring arrays are valid for the call
            // (the driver copies the pointers); the rings are never freed.
            let id = unsafe {
                rte_eth_from_rings(c.as_ptr(), &raw const rx, 1, &raw const tx, 1, socket)
            };
            let id = u16::try_from(id).map_err(|_| format!("rte_eth_from_rings {name} failed"))?;
            ids.push(id);
        }
        Ok((ids[0], ids[1]))
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

    fn io_fwd(eal: &'static Eal, p: &Plan) -> Result<Value, String> {
        let pool =
            Mempool::new(eal, "fwd_pool", 8191, 256, 2176, None).map_err(|e| e.to_string())?;
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
        fwd_queues(&mut qa, &mut qb, Duration::from_millis(100));
        let cpu = CpuShare::start();
        let (q_pps, q_pkts) = fwd_queues(&mut qa, &mut qb, p.fwd);
        let q_share = cpu.share();
        let cpu = CpuShare::start();
        let (r_pps, r_pkts) = fwd_raw(pa, pb, p.fwd);
        let r_share = cpu.share();
        let (q_pps, r_pps) = (q_pps / q_share, r_pps / r_share);
        drop((qa, qb, ports));
        Ok(json!({
            "vdev": "net_null (size 64, copy=0)",
            "seconds": p.fwd.as_secs_f64(),
            "dpdkqueue_mpps": round3(q_pps / 1e6),
            "dpdkqueue_packets": q_pkts,
            "raw_burst_mpps": round3(r_pps / 1e6),
            "raw_burst_packets": r_pkts,
            "dpdkqueue_vs_raw": round3(q_pps / r_pps),
            "mbufs_out_after_run": pool.capacity() - pool.available(),
            "thread_on_cpu_share": [round3(q_share), round3(r_share)],
        }))
    }

    fn tcp_null(eal: &'static Eal, p: &Plan) -> Result<Value, String> {
        let pool =
            Mempool::new(eal, "tcp_null_pool", 8191, 256, 2176, None).map_err(|e| e.to_string())?;
        let id = eal.port_by_name("net_null2").map_err(|e| e.to_string())?;
        let mut out = json!({
            "what": "one stack, one core; net_null mbufs overwritten with a virtual peer's \
                     segments (crafting time excluded from stack_cpu_s); stack output to net_null",
        });
        for (key, mode) in [
            ("ack_only", tcp::NullMode::AckOnly),
            ("small_data_64B", tcp::NullMode::SmallData),
        ] {
            let mut port = DpdkPort::new(eal, id, 1, pool, DpdkPortConfig::default())
                .map_err(|e| e.to_string())?;
            let q = port.take_queue(0).ok_or("queue")?;
            out[key] = tcp::null_run(q, mode, p.tcp).unwrap_or_else(|e| json!({"error": e}));
            drop(port);
        }
        out["mbufs_out_after_run"] = json!(pool.capacity() - pool.available());
        Ok(out)
    }

    fn tcp_ring(eal: &'static Eal, p: &Plan, ids: (u16, u16)) -> Result<Value, String> {
        let pool = Mempool::new(eal, "tcp_ring_pool", 16383, 256, 2176, None)
            .map_err(|e| e.to_string())?;
        let mut pa = DpdkPort::new(eal, ids.0, 1, pool, DpdkPortConfig::default())
            .map_err(|e| e.to_string())?;
        let mut pb = DpdkPort::new(eal, ids.1, 1, pool, DpdkPortConfig::default())
            .map_err(|e| e.to_string())?;
        let mut qa = pa.take_queue(0).ok_or("queue")?;
        let mut qb = pb.take_queue(0).ok_or("queue")?;
        // io forwarding on these very ports through DpdkQueue first (testpmd cannot open
        // rte_eth_from_rings ports): 64 frames seeded, forwarded around a → b → a.
        let mut seed = Batch::new(2 * BURST);
        for _ in 0..2 * BURST {
            let mut m = qa.alloc().ok_or("pool empty")?;
            m.append(64).ok_or("no room")?.fill(0);
            let _ = seed.push(m);
        }
        qa.tx_burst(&mut seed);
        drop(seed);
        let cpu = CpuShare::start();
        let (fwd_pps, _) = fwd_queues(&mut qb, &mut qa, p.fwd);
        let fwd_share = cpu.share();
        let mut drain = Batch::new(BURST);
        for _ in 0..16 {
            qa.rx_burst(&mut drain);
            qb.rx_burst(&mut drain);
            drain.clear();
        }
        let mut v = tcp::ring_run(qa, qb, p.tcp)?;
        drop((pa, pb));
        v["vdev"] = json!("two rte_eth_from_rings ports over two SP/SC rte_rings of 4096");
        v["dpdkqueue_io_fwd_mpps_same_ports"] = json!(round3(fwd_pps / fwd_share / 1e6));
        v["mbufs_out_after_run"] = json!(pool.capacity() - pool.available());
        Ok(v)
    }

    fn tls_memif(
        eal: &'static Eal,
        p: &Plan,
        pool: Mempool,
        pair: [&str; 2],
        body: usize,
    ) -> Result<Value, String> {
        let mut ports = Vec::new();
        for name in pair {
            let id = eal.port_by_name(name).map_err(|e| e.to_string())?;
            ports.push(
                DpdkPort::new(eal, id, 1, pool, DpdkPortConfig::default())
                    .map_err(|e| e.to_string())?,
            );
        }
        // The memif control channel (EAL interrupt thread) connects the two ends.
        let t = Instant::now();
        while !ports
            .iter()
            .all(|p| p.link().map(|l| l.up).unwrap_or(false))
        {
            if t.elapsed() > Duration::from_secs(5) {
                return Err("memif link not up after 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let link_ms = t.elapsed().as_secs_f64() * 1e3;
        let wq = ports[0].take_queue(0).ok_or("queue")?;
        let pq = ports[1].take_queue(0).ok_or("queue")?;
        let mut v = relay::run(wq, pq, p.sessions, body, p.relay)?;
        drop(ports);
        v["vdev"] = json!("net_memif pair in this process (server: worker, client: peers)");
        v["memif_link_up_ms"] = json!(round3(link_ms));
        Ok(v)
    }

    fn testpmd_all(p: &Plan) -> Value {
        if std::env::var("SKIP_TESTPMD").is_ok_and(|v| v == "1") {
            return json!({"skipped": "SKIP_TESTPMD=1"});
        }
        let sock = format!("/tmp/mgw-testpmd-{}.sock", std::process::id());
        let runs = [
            testpmd::Run {
                device: "net_null",
                vdevs: vec!["--vdev=net_null0".into(), "--vdev=net_null1".into()],
                app_args: vec![],
                seconds: p.testpmd_s,
            },
            testpmd::Run {
                device: "net_ring",
                vdevs: vec!["--vdev=net_ring0".into(), "--vdev=net_ring1".into()],
                app_args: vec!["--tx-first"],
                seconds: p.testpmd_s,
            },
            testpmd::Run {
                device: "net_memif",
                vdevs: vec![
                    format!("--vdev=net_memif0,role=server,id=0,rsize=12,socket={sock}"),
                    format!("--vdev=net_memif1,role=client,id=0,rsize=12,socket={sock}"),
                ],
                app_args: vec!["--tx-first", "--txpkts=1514"],
                seconds: p.testpmd_s,
            },
        ];
        let mut out = json!({});
        for r in &runs {
            out[r.device] = testpmd::run(r);
        }
        out["note"] = json!(
            "net_ring: each port loops its TX back to its RX (one ring), so testpmd forwards \
             the --tx-first bursts around the two ports; memif: the two ends of one socket, \
             1514-byte frames copied through shared memory"
        );
        out
    }

    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    fn section(v: Result<Value, String>, failed: &mut bool) -> Value {
        v.unwrap_or_else(|e| {
            *failed = true;
            json!({"error": e})
        })
    }

    fn get(v: &Value, path: &[&str]) -> Value {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Runs everything; the second value is true if a section failed.
    pub fn run() -> Result<(Value, bool), String> {
        if !mgw_core::testkit::is_root() {
            return Err("not root".into());
        }
        let p = plan();
        let load_before = loadavg();
        let eal = Eal::init(&eal_args()).map_err(|e| e.to_string())?;
        let mut failed = false;
        let started = Instant::now();
        let skipped = || Ok(json!({"skipped": "not in --only"}));
        let fwd = section(
            if p.wants("fwd") {
                io_fwd(eal, &p)
            } else {
                skipped()
            },
            &mut failed,
        );
        let tnull = section(
            if p.wants("tcp_null") {
                tcp_null(eal, &p)
            } else {
                skipped()
            },
            &mut failed,
        );
        if ["ack_only", "small_data_64B"]
            .iter()
            .any(|k| tnull.get(k).is_some_and(|v| v.get("error").is_some()))
        {
            failed = true;
        }
        let ring = section(
            if p.wants("tcp_ring") {
                ring_pair().and_then(|ids| tcp_ring(eal, &p, ids))
            } else {
                skipped()
            },
            &mut failed,
        );
        let memif_pool = if p.wants("tls") {
            Mempool::new(eal, "memif_pool", 32767, 256, 2176, None).map_err(|e| e.to_string())
        } else {
            Err("not in --only".to_owned())
        };
        let memif = section(
            match memif_pool {
                Ok(pool) => tls_memif(eal, &p, pool, ["net_memif0", "net_memif1"], p.body),
                Err(_) => skipped(),
            },
            &mut failed,
        );
        // Bulk-sized MSRP chunks (2 KiB bodies: fewer, larger frames per byte) in full runs.
        let memif_2k = section(
            match memif_pool {
                Ok(pool) if !p.quick => {
                    tls_memif(eal, &p, pool, ["net_memif2", "net_memif3"], 2048)
                }
                _ => Ok(json!({"skipped": "quick mode or not in --only"})),
            },
            &mut failed,
        );
        let ours_s = started.elapsed().as_secs_f64();
        let tp = if p.wants("testpmd") {
            testpmd_all(&p)
        } else {
            json!({"skipped": "not in --only"})
        };
        // CI (MGW_REQUIRE_PEERS=1) wants the ceiling: a missing testpmd fails there.
        let require = std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        for k in ["net_null", "net_ring", "net_memif"] {
            if tp.get(k).is_some_and(|v| {
                v.get("error").is_some() || (require && v.get("skipped").is_some())
            }) {
                failed = true;
            }
        }
        let summary = json!({
            "net_null": {
                "testpmd_io_fwd_mpps": get(&tp, &["net_null", "mpps"]),
                "dpdkqueue_io_fwd_mpps": get(&fwd, &["dpdkqueue_mpps"]),
                "tcp_ack_only_mpps_per_core": get(&tnull, &["ack_only", "stack_mpps_in"]),
                "tcp_small_data_64B_mpps_per_core": get(&tnull, &["small_data_64B", "stack_mpps_in"]),
            },
            "net_ring": {
                "testpmd_io_fwd_mpps": get(&tp, &["net_ring", "mpps"]),
                "tcp_receiver_data_64B_mpps_per_core": get(&ring, &["receiver_b", "mpps_in"]),
                "tcp_sender_ack_only_mpps_per_core": get(&ring, &["sender_a", "mpps_in"]),
                "tcp_both_stacks_one_core_mpps": get(&ring, &["wall_mpps_both_directions"]),
                "dpdkqueue_io_fwd_mpps_same_ports":
                    get(&ring, &["dpdkqueue_io_fwd_mpps_same_ports"]),
            },
            "net_memif": {
                "testpmd_io_fwd_mpps_1514B": get(&tp, &["net_memif", "mpps"]),
                "testpmd_io_fwd_gbit_per_s_1514B": get(&tp, &["net_memif", "gbit_per_s"]),
                "tls_relay_gbit_per_s_per_worker_core":
                    get(&memif, &["per_worker_core", "gbit_per_s_relayed"]),
                "tls_relay_msrp_messages_per_s_per_worker_core":
                    get(&memif, &["per_worker_core", "msrp_messages_per_s"]),
                "tls_relay_2k_body_gbit_per_s_per_worker_core":
                    get(&memif_2k, &["per_worker_core", "gbit_per_s_relayed"]),
                "tls_relay_2k_body_msrp_messages_per_s_per_worker_core":
                    get(&memif_2k, &["per_worker_core", "msrp_messages_per_s"]),
                "tls_relay_gbit_per_s_worker_plus_peers_one_core":
                    get(&memif, &["worker_plus_peers_one_core", "gbit_per_s_relayed"]),
            },
        });
        Ok((
            json!({
                "bench": "dpdk",
                "mode": if p.quick { "quick" } else { "full" },
                "memory": "no-huge",
                "lcores": "0 (everything of ours on one core); testpmd: main lcore 0 + 1 forwarding lcore",
                "loadavg_before": load_before,
                "loadavg_after": loadavg(),
                "our_sections_s": round3(ours_s),
                "summary": summary,
                "io_fwd_net_null": fwd,
                "tcp_net_null": tnull,
                "tcp_net_ring": ring,
                "tls_relay_net_memif": memif,
                "tls_relay_net_memif_2k_body": memif_2k,
                "testpmd_io_fwd": tp,
            }),
            failed,
        ))
    }
}

fn main() {
    #[cfg(feature = "dpdk")]
    let (v, failed) = match imp::run() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("dpdk_bench skipped: {why}");
            // Under MGW_REQUIRE_PEERS=1 (CI) a run that cannot happen is a failure.
            let require = std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1");
            (
                serde_json::json!({"bench": "dpdk", "skipped": why}),
                require,
            )
        }
    };
    #[cfg(not(feature = "dpdk"))]
    let (v, failed) = (
        serde_json::json!({"bench": "dpdk", "skipped": "built without feature dpdk"}),
        false,
    );
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    if failed {
        std::process::exit(1);
    }
}
