//! Helpers shared by the DPDK integration tests (each test binary is its own process, because
//! EAL can be initialised only once per process).
#![allow(dead_code)] // each test binary uses a subset

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::ptr;

use dpdk_sys as sys;

pub fn require_peers() -> bool {
    std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Skips (returns `true`) with a printed reason, or panics under MGW_REQUIRE_PEERS=1.
pub fn skip(test: &str, reason: &str) -> bool {
    assert!(!require_peers(), "MGW_REQUIRE_PEERS=1 but: {reason}");
    eprintln!("SKIP {test}: {reason}");
    true
}

pub fn errno_str(code: c_int) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string
    // for any int, valid until the next rte_strerror call on this thread; copied at once.
    unsafe { CStr::from_ptr(sys::rte_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

/// Initialises EAL with `args` (`args[0]` is the program name). The argument strings are leaked on purpose: EAL keeps
/// pointers into argv (getopt permutes it; some drivers keep their devargs) for the process
/// lifetime.
pub fn eal_init(args: Vec<String>) -> Result<(), String> {
    eprintln!("EAL args: {}", args.join(" "));
    let argv: Vec<*mut c_char> = args
        .into_iter()
        .map(|a| CString::new(a).expect("no NUL in EAL args").into_raw())
        .collect();
    let argv: &'static mut [*mut c_char] = Vec::leak(argv);
    let argc = c_int::try_from(argv.len()).expect("few args");
    // SAFETY: called once per process (each test binary has one test), argv holds argc valid
    // NUL-terminated strings that live forever (leaked above).
    let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if rc < 0 {
        // SAFETY: plain read of this thread's rte_errno through the shim.
        let errno = unsafe { sys::mgw_rte_errno() };
        return Err(format!(
            "rte_eal_init failed: {} ({errno})",
            errno_str(errno)
        ));
    }
    Ok(())
}

pub fn port_by_name(name: &str) -> u16 {
    let c = CString::new(name).expect("no NUL");
    let mut port = u16::MAX;
    // SAFETY: EAL is up; `c` is a valid C string and `port` a valid out pointer for the call.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &raw mut port) };
    assert_eq!(rc, 0, "no ethdev named {name}: {}", errno_str(-rc));
    port
}

/// rte_eth_dev_configure with 1 RX and 1 TX queue, both fed from `pool`, then start.
pub fn configure_and_start(port: u16, pool: *mut sys::rte_mempool) {
    let conf = sys::rte_eth_conf::default();
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: EAL is up, `port` is a valid port id, `info` is a valid out pointer.
    let rc = unsafe { sys::rte_eth_dev_info_get(port, &raw mut info) };
    assert_eq!(rc, 0, "rte_eth_dev_info_get: {}", errno_str(-rc));
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);
    // SAFETY: `port` is valid and stopped (never started); `conf` outlives the call.
    let rc = unsafe { sys::rte_eth_dev_configure(port, 1, 1, &raw const conf) };
    assert_eq!(rc, 0, "rte_eth_dev_configure: {}", errno_str(-rc));
    // SAFETY: EAL is up; the socket id of a vdev is SOCKET_ID_ANY or a NUMA node.
    let socket = unsafe { sys::rte_eth_dev_socket_id(port) };
    // SOCKET_ID_ANY (-1) reinterpreted as unsigned is what DPDK's own examples pass.
    let socket = socket as c_uint;
    // SAFETY: port configured with 1 RX queue; null rx_conf means driver defaults; `pool` is a
    // live pktmbuf pool that outlives the port (never freed in this process).
    let rc = unsafe { sys::rte_eth_rx_queue_setup(port, 0, 256, socket, ptr::null(), pool) };
    assert_eq!(rc, 0, "rte_eth_rx_queue_setup: {}", errno_str(-rc));
    // SAFETY: port configured with 1 TX queue; null tx_conf means driver defaults.
    let rc = unsafe { sys::rte_eth_tx_queue_setup(port, 0, 256, socket, ptr::null()) };
    assert_eq!(rc, 0, "rte_eth_tx_queue_setup: {}", errno_str(-rc));
    // SAFETY: all queues of the port are set up.
    let rc = unsafe { sys::rte_eth_dev_start(port) };
    assert_eq!(rc, 0, "rte_eth_dev_start: {}", errno_str(-rc));
}

pub fn avail(pool: *mut sys::rte_mempool) -> c_uint {
    // SAFETY: `pool` is a live mempool; the count includes per-lcore caches.
    unsafe { sys::rte_mempool_avail_count(pool) }
}

pub fn stats(port: u16) -> sys::rte_eth_stats {
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: `port` is a valid started port, `s` a valid out pointer.
    let rc = unsafe { sys::rte_eth_stats_get(port, &raw mut s) };
    assert_eq!(rc, 0, "rte_eth_stats_get: {}", errno_str(-rc));
    s
}
