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
/// pointers into argv (getopt permutes it; some drivers keep their devargs) for the
/// process lifetime.
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

/// A network namespace with a veth pair `vA` <-> `vB`, both up, IPv6 off (so the kernel sends
/// no router solicitations or MLD reports into the test's frames). Removed on drop.
pub struct VethNetns {
    pub name: String,
}

/// Runs a short command with a 10 s bound; Err carries its stderr.
pub fn sh(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("timeout")
        .arg("10")
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl VethNetns {
    pub fn create(name: &str) -> Result<Self, String> {
        sh(&["ip", "netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        let n = name;
        sh(&[
            "ip", "-n", n, "link", "add", "vA", "type", "veth", "peer", "name", "vB",
        ])?;
        for key in ["all", "default"] {
            let k = format!("net.ipv6.conf.{key}.disable_ipv6=1");
            sh(&["ip", "netns", "exec", n, "sysctl", "-qw", &k])?;
        }
        for ifc in ["vA", "vB", "lo"] {
            sh(&["ip", "-n", n, "link", "set", ifc, "up"])?;
        }
        Ok(ns)
    }

    /// Moves the CALLING THREAD into the namespace (setns). EAL must then be initialised from
    /// this thread: the AF_PACKET / AF_XDP sockets its probe opens belong to the namespace of
    /// the thread that opens them, and EAL's own threads inherit it.
    pub fn enter(&self) -> Result<(), String> {
        let path = format!("/var/run/netns/{}", self.name);
        let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: `f` is an open namespace file for the duration of the call; setns only
        // changes this thread's network namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for VethNetns {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth pair with it.
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// Local experimental EtherType (IEEE 802 "Local Experimental Ethertype 1"): nothing else on the
/// veth carries it, so stray kernel frames are told apart from the test's.
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// Writes a broadcast Ethernet frame of `len` bytes with TEST_ETHERTYPE and a payload derived
/// from `tag` into a fresh mbuf.
pub fn build_frame(pool: *mut sys::rte_mempool, tag: u8, len: u16) -> *mut sys::rte_mbuf {
    // SAFETY: the pool is live; a NULL result is checked; the appended region is `len` writable
    // bytes of the new mbuf, owned by this thread.
    unsafe {
        let m = sys::mgw_rte_pktmbuf_alloc(pool);
        assert!(!m.is_null(), "pool exhausted");
        let p = sys::mgw_rte_pktmbuf_append(m, len).cast::<u8>();
        assert!(!p.is_null());
        let f = std::slice::from_raw_parts_mut(p, usize::from(len));
        f[..6].fill(0xff);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        f[12..14].copy_from_slice(&TEST_ETHERTYPE.to_be_bytes());
        for (i, b) in f[14..].iter_mut().enumerate() {
            *b = tag.wrapping_add(i as u8);
        }
        m
    }
}

/// The payload tag of a received test frame, or None for any other frame.
pub fn frame_tag(m: *mut sys::rte_mbuf) -> Option<(u8, u16)> {
    // SAFETY: `m` is a live received mbuf; data_len bytes from mtod are readable.
    let f = unsafe {
        std::slice::from_raw_parts(
            sys::fast::pktmbuf_mtod(m).cast::<u8>(),
            usize::from(sys::fast::pktmbuf_data_len(m)),
        )
    };
    if f.len() < 15 || f[12..14] != TEST_ETHERTYPE.to_be_bytes() {
        return None;
    }
    let tag = f[14];
    for (i, b) in f[14..].iter().enumerate() {
        assert_eq!(
            *b,
            tag.wrapping_add(i as u8),
            "payload byte {i} of frame {tag}"
        );
    }
    Some((tag, f.len() as u16))
}

/// Sends `count` test frames from port `tx` and polls port `rx` (up to 3 s) until they all came
/// back out, checking content and order. Frames of other kinds on `rx` are freed and ignored.
pub fn veth_roundtrip(tx: u16, rx: u16, pool: *mut sys::rte_mempool, count: u8) {
    let mut frames: Vec<*mut sys::rte_mbuf> = (0..count)
        .map(|i| build_frame(pool, i.wrapping_mul(7), 60 + u16::from(i) * 10))
        .collect();
    let n = u16::from(count);
    let mut sent = 0u16;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while sent < n {
        // SAFETY: queue 0 of `tx` is started and used by this thread; the entries from `sent`
        // on are mbufs we still own; accepted ones pass to the driver.
        sent += unsafe {
            sys::mgw_rte_eth_tx_burst(tx, 0, frames.as_mut_ptr().add(usize::from(sent)), n - sent)
        };
        assert!(
            std::time::Instant::now() < deadline,
            "tx stalled at {sent}/{n}"
        );
    }
    let mut got: Vec<(u8, u16)> = Vec::new();
    let mut burst = [ptr::null_mut::<sys::rte_mbuf>(); 32];
    while got.len() < usize::from(count) && std::time::Instant::now() < deadline {
        // SAFETY: queue 0 of `rx` is started; `burst` has room for 32 pointers.
        let k = unsafe { sys::mgw_rte_eth_rx_burst(rx, 0, burst.as_mut_ptr(), 32) };
        for m in &burst[..usize::from(k)] {
            if let Some(t) = frame_tag(*m) {
                got.push(t);
            }
            // SAFETY: each received mbuf is ours to free.
            unsafe { sys::mgw_rte_pktmbuf_free(*m) };
        }
        if k == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let want: Vec<(u8, u16)> = (0..count)
        .map(|i| (i.wrapping_mul(7), 60 + u16::from(i) * 10))
        .collect();
    assert_eq!(got, want, "frames through the veth, in order and intact");
}

/// mbufs in the veth tests' pool. net_af_xdp fills its XDP fill ring from the RX pool at queue
/// setup (2048 descriptors by default): with a pool of 2047 `rte_eth_rx_queue_setup` fails with
/// -EINVAL ("Failed to configure xdp socket"); 8191 serves two ports.
const VETH_POOL: c_uint = 8191;

/// The whole veth test for one PMD kind (`net_af_packet`, `net_af_xdp`): netns + veth, EAL with
/// one port on each end, 20 frames each way, no mbuf leaked. `test` names the test in skips.
pub fn veth_pmd_test(test: &str, kind: &str) {
    let t = test;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 && skip(t, "not root") {
        return;
    }
    let ns = match VethNetns::create(&format!(
        "mgw-{}-{}",
        kind.trim_start_matches("net_"),
        std::process::id()
    )) {
        Ok(ns) => ns,
        Err(e) => {
            skip(t, &format!("cannot create netns/veth: {e}"));
            return;
        }
    };
    ns.enter().expect("setns into the test namespace");
    let v0 = format!("--vdev={kind}0,iface=vA");
    let v1 = format!("--vdev={kind}1,iface=vB");
    let args = [
        "mgw-veth-test",
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "-m",
        "256",
        "-l",
        "0",
        "--log-level=*:warning",
        &v0,
        &v1,
    ];
    if let Err(e) = eal_init(args.map(str::to_owned).to_vec()) {
        skip(t, &format!("DPDK unavailable: {e}"));
        return;
    }
    let a = port_by_name(&format!("{kind}0"));
    let b = port_by_name(&format!("{kind}1"));
    let name = CString::new("veth_pool").expect("no NUL");
    // SAFETY: EAL is up; the pool lives for the rest of the process.
    let pool = unsafe {
        sys::rte_pktmbuf_pool_create(
            name.as_ptr(),
            VETH_POOL,
            0,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id() as c_int,
        )
    };
    assert!(!pool.is_null());
    configure_and_start(a, pool);
    configure_and_start(b, pool);
    let started = avail(pool);

    veth_roundtrip(a, b, pool, 20);
    veth_roundtrip(b, a, pool, 20);
    let after = avail(pool);
    eprintln!("{kind}: pool {VETH_POOL}, after start {started}, after traffic {after}");
    // net_af_packet copies on TX and RX and frees at once: nothing may stay out. net_af_xdp
    // (mempool-backed UMEM) holds 2048 mbufs per port in its fill ring from queue setup on, and
    // reclaims transmitted mbufs only on a later tx_burst (completion ring), so up to the 2 x 20
    // sent frames may still be out; a received frame not returned would show as more.
    let lazy_tx = kind == "net_af_xdp";
    if lazy_tx {
        assert!(
            started - after <= 40,
            "RX mbufs leaked: {started} -> {after}"
        );
    } else {
        assert_eq!(after, started, "mbuf leak");
        assert_eq!(started, VETH_POOL, "queue setup keeps no mbufs");
    }
    assert!(stats(a).opackets >= 20 && stats(b).ipackets >= 20);

    for port in [a, b] {
        // SAFETY: no other thread uses the ports; stopping returns the RX ring's mbufs.
        unsafe {
            assert_eq!(sys::rte_eth_dev_stop(port), 0);
            assert_eq!(sys::rte_eth_dev_close(port), 0);
        }
    }
    // net_af_packet: everything is back after close. net_af_xdp in DPDK 22.11 does not return its
    // fill-ring mbufs (nor unreclaimed TX ones) to the pool on stop/close: the pool must be sized
    // for that, and a port restart with a fresh pool is the only way to get them back.
    if !lazy_tx {
        assert_eq!(avail(pool), VETH_POOL, "mbuf leak");
    }
    // SAFETY: no DPDK object is used after this point.
    assert_eq!(unsafe { sys::rte_eal_cleanup() }, 0);
    drop(ns);
}
