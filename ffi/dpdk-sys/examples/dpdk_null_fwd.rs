//! io forwarding between two `net_null` ports through dpdk-sys, the Rust twin of
//! `scripts/dpdk-testpmd-ceiling.sh`: how much of testpmd's rate survives our FFI path.
//! Prints one JSON object: `{"rust_io_mpps": X, "mode": ..., ...}`.
//!
//! Run (root, feature dpdk):
//! `CARGO_TARGET_DIR=/work/targets/ffi cargo run -p dpdk-sys --features dpdk --profile ci --example dpdk_null_fwd`
//!
//! Env: `DURATION` seconds (default 5, the first second is warm-up and not counted);
//! `MODE` = `io` (forward without looking at packets, like testpmd), `touch` (read length and the
//! first 8 data bytes of every packet with the inlined `dpdk_sys::fast` accessors) or `touch-shim`
//! (the same through the C shim calls, to price a call per field); `LCORE` (default 1: the core
//! testpmd's forwarding lcore uses); `MGW_DPDK_HUGE_DIR` (hugetlbfs mount: run on hugepages).
//!
//! This is a measurement tool, not a test: it belongs with the benchmarks, and lives here only
//! because it needs the `dpdk` feature of this crate.
#![cfg_attr(not(all(feature = "dpdk", not(mgw_dpdk_offline))), allow(unused))]

#[cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]
mod run {
    use std::ffi::{c_char, c_int, c_uint, CString};
    use std::time::{Duration, Instant};

    use dpdk_sys as sys;

    const BURST: u16 = 32;

    fn env_or(name: &str, default: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| default.to_owned())
    }

    fn eal_init(lcore: &str) -> Result<&'static str, String> {
        let mut args = vec!["dpdk_null_fwd".to_owned()];
        let memory = match std::env::var("MGW_DPDK_HUGE_DIR") {
            Ok(dir) if !dir.is_empty() => {
                args.extend(["--in-memory".into(), "--huge-dir".into(), dir]);
                "hugepages"
            }
            _ => {
                args.extend(["--no-huge".into(), "--no-shconf".into()]);
                "no-huge"
            }
        };
        args.extend(
            [
                "--no-pci",
                "--no-telemetry",
                "-m",
                "512",
                "-l",
                lcore,
                "--log-level=*:warning",
                "--vdev=net_null0",
                "--vdev=net_null1",
            ]
            .map(str::to_owned),
        );
        let argv: Vec<*mut c_char> = args
            .into_iter()
            .map(|a| CString::new(a).expect("no NUL").into_raw())
            .collect();
        // EAL keeps pointers into argv for the process lifetime.
        let argv: &'static mut [*mut c_char] = Vec::leak(argv);
        let argc = c_int::try_from(argv.len()).expect("few args");
        // SAFETY: first and only EAL init of this process; argv holds argc leaked C strings.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            // SAFETY: reads this thread's rte_errno.
            return Err(format!("rte_eal_init failed, rte_errno {}", unsafe {
                sys::mgw_rte_errno()
            }));
        }
        Ok(memory)
    }

    fn start_port(port: u16, pool: *mut sys::rte_mempool) -> Result<(), String> {
        let conf = sys::rte_eth_conf::default();
        // SAFETY: EAL is up; `port` exists (checked by the caller via count_avail); every
        // pointer argument outlives its call; `pool` lives for the whole process.
        unsafe {
            let socket = sys::rte_eth_dev_socket_id(port) as c_uint;
            let steps = [
                sys::rte_eth_dev_configure(port, 1, 1, &raw const conf),
                sys::rte_eth_rx_queue_setup(port, 0, 1024, socket, std::ptr::null(), pool),
                sys::rte_eth_tx_queue_setup(port, 0, 1024, socket, std::ptr::null()),
                sys::rte_eth_dev_start(port),
            ];
            match steps.iter().find(|rc| **rc != 0) {
                Some(rc) => Err(format!("port {port} setup failed: {rc}")),
                None => Ok(()),
            }
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Io,
        Touch,
        TouchShim,
    }

    /// Reads what a classifier reads first: the length and the first 8 bytes.
    #[inline(always)]
    fn touch(m: *mut sys::rte_mbuf, mode: Mode) -> u64 {
        // SAFETY: `m` is a live mbuf just received; net_null frames are 64 bytes, so 8 bytes from
        // the data start are inside the buffer.
        unsafe {
            let (len, p) = if mode == Mode::TouchShim {
                (
                    sys::mgw_rte_pktmbuf_data_len(m),
                    sys::mgw_rte_pktmbuf_mtod(m),
                )
            } else {
                (sys::fast::pktmbuf_data_len(m), sys::fast::pktmbuf_mtod(m))
            };
            u64::from(len) ^ p.cast::<u64>().read_unaligned()
        }
    }

    pub fn main() -> Result<(), String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root".into());
        }
        let secs: u64 = env_or("DURATION", "5")
            .parse()
            .map_err(|e| format!("DURATION: {e}"))?;
        let mode = match env_or("MODE", "io").as_str() {
            "io" => Mode::Io,
            "touch" => Mode::Touch,
            "touch-shim" => Mode::TouchShim,
            m => return Err(format!("MODE {m}: io | touch | touch-shim")),
        };
        let lcore = env_or("LCORE", "1");
        let memory = eal_init(&lcore)?;
        // SAFETY: EAL is up.
        if unsafe { sys::rte_eth_dev_count_avail() } != 2 {
            return Err("expected 2 net_null ports".into());
        }
        let name = CString::new("fwd_pool").expect("no NUL");
        // SAFETY: EAL is up; the pool lives for the process.
        let pool = unsafe {
            sys::rte_pktmbuf_pool_create(
                name.as_ptr(),
                8191,
                256,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                sys::rte_socket_id() as c_int,
            )
        };
        if pool.is_null() {
            return Err("rte_pktmbuf_pool_create failed".into());
        }
        start_port(0, pool)?;
        start_port(1, pool)?;

        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST as usize];
        let mut forwarded: u64 = 0;
        let mut sink: u64 = 0;
        let start = Instant::now();
        let warmup = start + Duration::from_secs(1);
        let end = warmup + Duration::from_secs(secs.saturating_sub(1).max(1));
        let mut counting_since = None;
        let mut iter: u32 = 0;
        loop {
            for (rx, tx) in [(0u16, 1u16), (1, 0)] {
                // SAFETY: queue 0 of both ports is started and polled only by this thread;
                // `bufs` has room for BURST pointers.
                let n = unsafe { sys::mgw_rte_eth_rx_burst(rx, 0, bufs.as_mut_ptr(), BURST) };
                if n == 0 {
                    continue;
                }
                if mode != Mode::Io {
                    for m in &bufs[..usize::from(n)] {
                        sink ^= touch(*m, mode);
                    }
                }
                // SAFETY: the first n entries are mbufs we own; accepted ones pass to the driver.
                let sent = unsafe { sys::mgw_rte_eth_tx_burst(tx, 0, bufs.as_mut_ptr(), n) };
                if sent < n {
                    // SAFETY: entries sent..n are still ours; freeing returns them to the pool.
                    unsafe {
                        sys::rte_pktmbuf_free_bulk(
                            bufs.as_mut_ptr().add(usize::from(sent)),
                            c_uint::from(n - sent),
                        );
                    }
                }
                if counting_since.is_some() {
                    forwarded += u64::from(sent);
                }
            }
            iter = iter.wrapping_add(1);
            if iter % 4096 == 0 {
                let now = Instant::now();
                if counting_since.is_none() && now >= warmup {
                    counting_since = Some(now);
                } else if now >= end {
                    break;
                }
            }
        }
        let elapsed = counting_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let mpps = forwarded as f64 / elapsed / 1e6;
        println!(
            "{{\"rust_io_mpps\": {mpps:.3}, \"mode\": \"{}\", \"memory\": \"{memory}\", \"burst\": {BURST}, \"lcore\": \"{lcore}\", \"seconds\": {elapsed:.2}, \"forwarded\": {forwarded}, \"sink\": {}}}",
            match mode {
                Mode::Io => "io",
                Mode::Touch => "touch",
                Mode::TouchShim => "touch-shim",
            },
            sink & 1
        );
        Ok(())
    }
}

fn main() {
    #[cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]
    if let Err(e) = run::main() {
        eprintln!("dpdk_null_fwd: {e}");
        std::process::exit(2);
    }
    #[cfg(not(all(feature = "dpdk", not(mgw_dpdk_offline))))]
    {
        eprintln!("dpdk_null_fwd: built without DPDK bindings (feature `dpdk` off or offline)");
        std::process::exit(2);
    }
}
