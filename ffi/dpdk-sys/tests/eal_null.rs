//! Integration test against the real system DPDK: EAL without hugepages, a pktmbuf pool, the
//! `net_null` and `net_ring` virtual PMDs (loaded by EAL from Debian's plugin directory, no `-d`),
//! burst TX/RX through the C shim, the mbuf shim operations, rte_ring and rte_errno.
//!
//! Needs feature `dpdk` (otherwise this file is empty) and root. Skips with a printed reason when
//! not root or when EAL cannot start, unless `MGW_REQUIRE_PEERS=1`, which turns a skip into a
//! failure. Everything runs in ONE test function on one thread: EAL can be initialised once per
//! process, and the thread that calls `rte_eal_init` becomes the main lcore (checked below).
#![cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]

use std::ffi::{c_int, c_uint, c_void, CStr, CString};
use std::ptr;

use dpdk_sys as sys;

mod common;
use common::{avail, configure_and_start, eal_init, errno_str, port_by_name, skip, stats};

/// The EAL arguments that work in an unprivileged-hardware sandbox: no hugepages (anonymous
/// memory, IOVA as VA), no PCI scan, no shared runtime config (so parallel test processes and
/// a running mgwd do not collide), no telemetry socket. `--in-memory` is NOT usable here: EAL
/// rejects it with `--no-huge` (which implies legacy memory).
///
/// With `MGW_DPDK_HUGE_DIR=<mounted hugetlbfs>` the test runs on hugepages instead, with
/// `--in-memory --huge-dir <dir>` (the production memory setup; still no runtime files).
fn eal_args() -> Vec<String> {
    let mut args = vec!["mgw-dpdk-sys-test".to_owned()];
    match std::env::var("MGW_DPDK_HUGE_DIR") {
        Ok(dir) if !dir.is_empty() => {
            args.extend(["--in-memory".to_owned(), "--huge-dir".to_owned(), dir]);
        }
        _ => args.extend(["--no-huge".to_owned(), "--no-shconf".to_owned()]),
    }
    args.extend(
        [
            "--no-pci",
            "--no-telemetry",
            "-m",
            "256",
            "-l",
            "0",
            "--log-level=*:warning",
            "--vdev=net_null0",
            "--vdev=net_ring0",
        ]
        .map(str::to_owned),
    );
    args
}

const BURST: usize = 32;
const POOL_SIZE: c_uint = 1023;
const FRAME_LEN: u16 = 64;

/// The inlined Rust accessors of `dpdk_sys::fast` must read exactly what the C shim reads.
fn assert_fast_matches(m: *mut sys::rte_mbuf) {
    // SAFETY: `m` is a live mbuf owned by this thread; all calls only read its header.
    unsafe {
        assert_eq!(sys::fast::pktmbuf_mtod(m), sys::mgw_rte_pktmbuf_mtod(m));
        assert_eq!(
            sys::fast::pktmbuf_mtod_offset(m, 14),
            sys::mgw_rte_pktmbuf_mtod_offset(m, 14)
        );
        assert_eq!(
            sys::fast::pktmbuf_data_len(m),
            sys::mgw_rte_pktmbuf_data_len(m)
        );
        assert_eq!(
            sys::fast::pktmbuf_pkt_len(m),
            sys::mgw_rte_pktmbuf_pkt_len(m)
        );
        assert_eq!(
            sys::fast::pktmbuf_headroom(m),
            sys::mgw_rte_pktmbuf_headroom(m)
        );
        assert_eq!(
            sys::fast::pktmbuf_tailroom(m),
            sys::mgw_rte_pktmbuf_tailroom(m)
        );
        assert_eq!(sys::fast::mbuf_ol_flags(m), sys::mgw_rte_mbuf_ol_flags(m));
        assert_eq!(sys::fast::mbuf_port(m), sys::mgw_rte_mbuf_port(m));
    }
}

/// Fills a fresh mbuf with `len` bytes of `tag`-derived pattern via append, checking the
/// length bookkeeping and room accounting of the shim.
fn fill(m: *mut sys::rte_mbuf, tag: u8, len: u16) {
    // SAFETY: `m` is a freshly allocated, reset, single-segment mbuf owned by this thread.
    unsafe {
        assert_eq!(sys::mgw_rte_pktmbuf_data_len(m), 0);
        assert_eq!(sys::mgw_rte_pktmbuf_pkt_len(m), 0);
        assert_eq!(
            u32::from(sys::mgw_rte_pktmbuf_headroom(m)),
            sys::RTE_PKTMBUF_HEADROOM
        );
        let tail_before = sys::mgw_rte_pktmbuf_tailroom(m);
        let p = sys::mgw_rte_pktmbuf_append(m, len).cast::<u8>();
        assert!(!p.is_null(), "append {len} into a fresh mbuf");
        assert_eq!(p.cast::<c_void>(), sys::mgw_rte_pktmbuf_mtod(m));
        // The appended region is `len` writable bytes inside the mbuf's data room.
        let data = std::slice::from_raw_parts_mut(p, usize::from(len));
        for (i, b) in data.iter_mut().enumerate() {
            *b = tag ^ (i as u8);
        }
        assert_eq!(sys::mgw_rte_pktmbuf_data_len(m), len);
        assert_eq!(sys::mgw_rte_pktmbuf_pkt_len(m), u32::from(len));
        assert_eq!(sys::mgw_rte_pktmbuf_tailroom(m), tail_before - len);
        assert_eq!(sys::mgw_rte_pktmbuf_is_contiguous(m), 1);
    }
    assert_fast_matches(m);
}

fn check_pattern(m: *mut sys::rte_mbuf, tag: u8, len: u16) {
    // SAFETY: `m` is a live mbuf we own (just received); data_len bytes from mtod are readable.
    let data = unsafe {
        assert_eq!(sys::mgw_rte_pktmbuf_data_len(m), len);
        std::slice::from_raw_parts(
            sys::mgw_rte_pktmbuf_mtod(m).cast::<u8>(),
            usize::from(sys::mgw_rte_pktmbuf_data_len(m)),
        )
    };
    for (i, b) in data.iter().enumerate() {
        assert_eq!(*b, tag ^ (i as u8), "byte {i} of packet tagged {tag}");
    }
}

/// prepend/adj/append/trim and the length setters on one mbuf: the shim must move the data
/// pointer and lengths exactly as DPDK documents, and refuse what does not fit.
fn mbuf_ops(pool: *mut sys::rte_mempool) {
    // SAFETY: EAL is up and `pool` is live; the mbuf is owned here and freed at the end; every
    // pointer dereferenced is inside the data room as the shim's return values guarantee.
    unsafe {
        let m = sys::mgw_rte_pktmbuf_alloc(pool);
        assert!(!m.is_null());
        fill(m, 0x5a, 100);
        let start = sys::mgw_rte_pktmbuf_mtod(m).cast::<u8>();

        // Prepend an 8-byte "header": data start moves back by 8, lengths grow.
        let h = sys::mgw_rte_pktmbuf_prepend(m, 8).cast::<u8>();
        assert_eq!(h, start.sub(8));
        assert_eq!(sys::mgw_rte_pktmbuf_headroom(m), 128 - 8);
        assert_eq!(sys::mgw_rte_pktmbuf_data_len(m), 108);
        assert_eq!(sys::mgw_rte_pktmbuf_pkt_len(m), 108);
        // More than the headroom left: refused, nothing changes.
        assert!(sys::mgw_rte_pktmbuf_prepend(m, 121).is_null());
        assert_eq!(sys::mgw_rte_pktmbuf_data_len(m), 108);

        assert_fast_matches(m);

        // Strip it again with adj: back to the original start and pattern.
        let s = sys::mgw_rte_pktmbuf_adj(m, 8).cast::<u8>();
        assert_eq!(s, start);
        check_pattern(m, 0x5a, 100);
        // adj beyond data_len is refused.
        assert!(sys::mgw_rte_pktmbuf_adj(m, 101).is_null());

        // trim 10 from the tail; trimming more than is left fails with -1.
        assert_eq!(sys::mgw_rte_pktmbuf_trim(m, 10), 0);
        assert_eq!(sys::mgw_rte_pktmbuf_pkt_len(m), 90);
        assert_eq!(sys::mgw_rte_pktmbuf_trim(m, 91), -1);
        check_pattern(m, 0x5a, 90);

        // Setters write the fields the getters read.
        sys::mgw_rte_pktmbuf_set_data_len(m, 60);
        sys::mgw_rte_pktmbuf_set_pkt_len(m, 60);
        assert_eq!(sys::mgw_rte_pktmbuf_data_len(m), 60);
        assert_eq!(sys::mgw_rte_pktmbuf_pkt_len(m), 60);
        assert_eq!(
            sys::mgw_rte_pktmbuf_mtod_offset(m, 10),
            start.add(10).cast::<c_void>()
        );

        // ol_flags round trip (a TX checksum request as the port backend will set it).
        let flags = sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM;
        sys::mgw_rte_mbuf_set_ol_flags(m, flags);
        assert_eq!(sys::mgw_rte_mbuf_ol_flags(m), flags);
        assert_fast_matches(m);

        // The Rust length setter writes what the shim getters read.
        sys::fast::pktmbuf_set_len(m, 42);
        assert_eq!(sys::mgw_rte_pktmbuf_data_len(m), 42);
        assert_eq!(sys::mgw_rte_pktmbuf_pkt_len(m), 42);
        assert_fast_matches(m);

        // Appending more than the tailroom is refused.
        let tail = sys::mgw_rte_pktmbuf_tailroom(m);
        assert!(sys::mgw_rte_pktmbuf_append(m, tail + 1).is_null());

        sys::mgw_rte_pktmbuf_free(m);
        // Freeing NULL is a no-op, as in DPDK.
        sys::mgw_rte_pktmbuf_free(ptr::null_mut());
    }
}

/// net_null: TX accepts and frees everything; RX returns `BURST` fresh 64-byte mbufs from the
/// queue's pool. Pool accounting must balance.
fn null_port(port: u16, pool: *mut sys::rte_mempool) {
    let full = avail(pool);
    let mut tx = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    // SAFETY: `tx` has room for BURST pointers; the pool is live.
    let rc = unsafe { sys::mgw_rte_pktmbuf_alloc_bulk(pool, tx.as_mut_ptr(), BURST as c_uint) };
    assert_eq!(rc, 0, "alloc_bulk of {BURST}");
    assert_eq!(avail(pool), full - BURST as c_uint);
    for (i, m) in tx.iter().enumerate() {
        fill(*m, i as u8, FRAME_LEN);
    }
    // SAFETY: port 0 queue 0 is started and used by this thread only; `tx` holds BURST valid
    // mbufs whose ownership passes to the driver for every one it accepts.
    let sent = unsafe { sys::mgw_rte_eth_tx_burst(port, 0, tx.as_mut_ptr(), BURST as u16) };
    assert_eq!(usize::from(sent), BURST, "net_null accepts every packet");
    assert_eq!(avail(pool), full, "net_null TX frees what it sends");

    let mut rx = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    // SAFETY: queue 0 started; `rx` has room for BURST pointers, filled with owned mbufs.
    let got = unsafe { sys::mgw_rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), BURST as u16) };
    assert_eq!(usize::from(got), BURST, "net_null RX fills the whole burst");
    assert_eq!(avail(pool), full - BURST as c_uint);
    for m in &rx[..usize::from(got)] {
        // SAFETY: each of the first `got` entries is a valid mbuf the driver handed us.
        unsafe {
            assert_eq!(
                sys::mgw_rte_pktmbuf_pkt_len(*m),
                64,
                "net_null default size"
            );
            assert_eq!(sys::mgw_rte_mbuf_port(*m), port);
        }
        assert_fast_matches(*m);
    }
    // SAFETY: the `got` mbufs are ours; rte_pktmbuf_free_bulk is the exported bulk free.
    unsafe { sys::rte_pktmbuf_free_bulk(rx.as_mut_ptr(), c_uint::from(got)) };
    assert_eq!(avail(pool), full);

    let s = stats(port);
    assert_eq!(s.opackets, BURST as u64);
    assert_eq!(s.ipackets, BURST as u64);
}

/// net_ring created by `--vdev=net_ring0` uses one rte_ring for both its RX and TX queue: what
/// is sent comes back, byte for byte, in order. This proves data really crosses the PMD.
fn ring_port(port: u16, pool: *mut sys::rte_mempool) {
    let full = avail(pool);
    let mut tx = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    for (i, slot) in tx.iter_mut().enumerate() {
        // SAFETY: the pool is live; a NULL result is checked.
        let m = unsafe { sys::mgw_rte_pktmbuf_alloc(pool) };
        assert!(!m.is_null());
        fill(m, 0x80 | i as u8, FRAME_LEN + i as u16);
        *slot = m;
    }
    // SAFETY: queue 0 started; BURST valid mbufs, ownership to the driver for accepted ones.
    let sent = unsafe { sys::mgw_rte_eth_tx_burst(port, 0, tx.as_mut_ptr(), BURST as u16) };
    assert_eq!(usize::from(sent), BURST);
    let mut rx = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    // SAFETY: queue 0 started; `rx` has room for BURST pointers.
    let got = unsafe { sys::mgw_rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), BURST as u16) };
    assert_eq!(usize::from(got), BURST, "net_ring loops TX back to RX");
    for (i, m) in rx.iter().enumerate() {
        check_pattern(*m, 0x80 | i as u8, FRAME_LEN + i as u16);
        // SAFETY: each received mbuf is ours to free.
        unsafe { sys::mgw_rte_pktmbuf_free(*m) };
    }
    // SAFETY: queue 0 started; the ring is now empty.
    let again = unsafe { sys::mgw_rte_eth_rx_burst(port, 0, rx.as_mut_ptr(), BURST as u16) };
    assert_eq!(again, 0);
    assert_eq!(avail(pool), full);
}

/// rte_ring through the shim (the software redirect ring between workers may use it), and
/// rte_errno: creating an object whose name exists fails with EEXIST.
fn ring_and_errno(pool: *mut sys::rte_mempool) {
    let name = CString::new("mgw_test_ring").expect("no NUL");
    let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ;
    // SAFETY: EAL is up; `name` is a valid C string.
    let r = unsafe { sys::rte_ring_create(name.as_ptr(), 64, sys::SOCKET_ID_ANY, flags) };
    assert!(!r.is_null(), "rte_ring_create");
    let objs: Vec<*mut c_void> = (1..=100usize).map(|i| i as *mut c_void).collect();
    // SAFETY: `r` is live; `objs` holds 100 readable pointers (never dereferenced by the ring).
    let n = unsafe { sys::mgw_rte_ring_enqueue_burst(r, objs.as_ptr(), 100) };
    // A ring of count 64 holds 63 entries (one slot distinguishes full from empty).
    assert_eq!(n, 63);
    // SAFETY: `r` is live.
    assert_eq!(unsafe { sys::mgw_rte_ring_count(r) }, 63);
    let mut out = vec![ptr::null_mut::<c_void>(); 100];
    // SAFETY: `out` has room for 100 pointers.
    let n = unsafe { sys::mgw_rte_ring_dequeue_burst(r, out.as_mut_ptr(), 100) };
    assert_eq!(n, 63);
    assert_eq!(&out[..63], &objs[..63], "FIFO order");

    // SAFETY: errno setter/getter of this thread; a second ring with the same name must fail
    // and set rte_errno = EEXIST.
    unsafe {
        sys::mgw_rte_errno_set(0);
        let dup = sys::rte_ring_create(name.as_ptr(), 64, sys::SOCKET_ID_ANY, flags);
        assert!(dup.is_null());
        assert_eq!(sys::mgw_rte_errno(), libc::EEXIST);
        sys::rte_ring_free(r);
    }

    // mempool get/put bulk: raw objects of the pktmbuf pool, all or nothing.
    let full = avail(pool);
    let mut objs = [ptr::null_mut::<c_void>(); 8];
    // SAFETY: `objs` has room for 8; the objects go straight back with put_bulk.
    unsafe {
        assert_eq!(sys::mgw_rte_mempool_get_bulk(pool, objs.as_mut_ptr(), 8), 0);
        assert_eq!(avail(pool), full - 8);
        sys::mgw_rte_mempool_put_bulk(pool, objs.as_ptr(), 8);
    }
    assert_eq!(avail(pool), full);
    // More than the pool has: a negative errno and nothing taken. DPDK documents -ENOENT, but
    // 22.11 with the default ring_mp_mc handler returns the ring's -ENOBUFS; callers must treat
    // any negative value as "pool exhausted".
    let mut many = vec![ptr::null_mut::<sys::rte_mbuf>(); POOL_SIZE as usize + 1];
    // SAFETY: `many` has room for POOL_SIZE + 1 pointers.
    let rc = unsafe { sys::mgw_rte_pktmbuf_alloc_bulk(pool, many.as_mut_ptr(), POOL_SIZE + 1) };
    assert!(
        rc == -libc::ENOENT || rc == -libc::ENOBUFS,
        "alloc_bulk over capacity: {rc}"
    );
    assert_eq!(avail(pool), full);
}

/// rte_flow: the steering rule the port backend installs per local media address (IPv4 dst +
/// UDP dst port -> queue k). The virtual PMDs have no flow engine, which is why the design keeps
/// a software redirect ring for them: validate must refuse cleanly with an error, not crash.
fn flow_rule_refused_on_vdev(port: u16) {
    let mut attr = sys::rte_flow_attr::default();
    attr.set_ingress(1);
    let ipv4_spec = sys::rte_flow_item_ipv4 {
        hdr: sys::rte_ipv4_hdr {
            dst_addr: u32::from_ne_bytes([192, 0, 2, 10]),
            ..Default::default()
        },
    };
    let ipv4_mask = sys::rte_flow_item_ipv4 {
        hdr: sys::rte_ipv4_hdr {
            dst_addr: u32::MAX,
            ..Default::default()
        },
    };
    let udp_spec = sys::rte_flow_item_udp {
        hdr: sys::rte_udp_hdr {
            dst_port: 20000u16.to_be(),
            ..Default::default()
        },
    };
    let udp_mask = sys::rte_flow_item_udp {
        hdr: sys::rte_udp_hdr {
            dst_port: u16::MAX,
            ..Default::default()
        },
    };
    let item = |type_, spec: *const c_void, mask: *const c_void| sys::rte_flow_item {
        type_,
        spec,
        last: ptr::null(),
        mask,
    };
    let pattern = [
        item(sys::RTE_FLOW_ITEM_TYPE_ETH, ptr::null(), ptr::null()),
        item(
            sys::RTE_FLOW_ITEM_TYPE_IPV4,
            (&raw const ipv4_spec).cast(),
            (&raw const ipv4_mask).cast(),
        ),
        item(
            sys::RTE_FLOW_ITEM_TYPE_UDP,
            (&raw const udp_spec).cast(),
            (&raw const udp_mask).cast(),
        ),
        item(sys::RTE_FLOW_ITEM_TYPE_END, ptr::null(), ptr::null()),
    ];
    let queue = sys::rte_flow_action_queue { index: 0 };
    let actions = [
        sys::rte_flow_action {
            type_: sys::RTE_FLOW_ACTION_TYPE_QUEUE,
            conf: (&raw const queue).cast(),
        },
        sys::rte_flow_action {
            type_: sys::RTE_FLOW_ACTION_TYPE_END,
            conf: ptr::null(),
        },
    ];
    let mut error = sys::rte_flow_error::default();
    // SAFETY: `port` is a started port; attr, pattern (END-terminated), actions (END-terminated)
    // and the specs they point to outlive the call; `error` is a valid out pointer.
    let rc = unsafe {
        sys::rte_flow_validate(
            port,
            &raw const attr,
            pattern.as_ptr(),
            actions.as_ptr(),
            &raw mut error,
        )
    };
    assert!(rc < 0, "a virtual PMD accepted an rte_flow rule");
    assert_ne!(error.type_, sys::RTE_FLOW_ERROR_TYPE_NONE);
    let why = if error.message.is_null() {
        String::new()
    } else {
        // SAFETY: a non-NULL message is a static NUL-terminated string set by DPDK.
        unsafe { CStr::from_ptr(error.message) }
            .to_string_lossy()
            .into_owned()
    };
    eprintln!(
        "rte_flow_validate on port {port}: {} ({rc}): {why}",
        errno_str(-rc)
    );
}

#[test]
fn eal_null_ring_roundtrip() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 && skip("eal_null", "not root") {
        return;
    }
    if let Err(e) = eal_init(eal_args()) {
        skip("eal_null", &format!("DPDK unavailable: {e}"));
        return;
    }
    // The thread that ran rte_eal_init is the main lcore (-l 0); others are LCORE_ID_ANY.
    // SAFETY: shim reads of per-lcore variables; rte_get_main_lcore has no preconditions.
    unsafe {
        assert_eq!(sys::mgw_rte_lcore_id(), sys::rte_get_main_lcore());
        assert_eq!(sys::mgw_rte_lcore_id(), 0);
        assert_eq!(sys::rte_lcore_count(), 1);
    }
    let other = std::thread::spawn(|| {
        // SAFETY: as above; a non-EAL thread.
        unsafe { sys::mgw_rte_lcore_id() }
    })
    .join()
    .expect("thread");
    assert_eq!(other, sys::LCORE_ID_ANY);

    // SAFETY: EAL is up.
    let ports = unsafe { sys::rte_eth_dev_count_avail() };
    assert_eq!(ports, 2, "both vdevs probed without -d: PMDs autoloaded");
    let null = port_by_name("net_null0");
    let ring = port_by_name("net_ring0");
    assert_ne!(null, ring);

    let name = CString::new("mgw_test_pool").expect("no NUL");
    // SAFETY: EAL is up, `name` valid; the pool lives for the rest of the process.
    let pool = unsafe {
        sys::rte_pktmbuf_pool_create(
            name.as_ptr(),
            POOL_SIZE,
            32,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id() as c_int,
        )
    };
    assert!(
        !pool.is_null(),
        "rte_pktmbuf_pool_create: {}",
        // SAFETY: reads this thread's rte_errno.
        errno_str(unsafe { sys::mgw_rte_errno() })
    );
    assert_eq!(avail(pool), POOL_SIZE);

    configure_and_start(null, pool);
    configure_and_start(ring, pool);
    mbuf_ops(pool);
    null_port(null, pool);
    ring_port(ring, pool);
    ring_and_errno(pool);
    flow_rule_refused_on_vdev(null);

    for port in [null, ring] {
        // SAFETY: the ports are started and no other thread uses them; all mbufs are back.
        unsafe {
            assert_eq!(sys::rte_eth_dev_stop(port), 0);
            assert_eq!(sys::rte_eth_dev_close(port), 0);
        }
    }
    assert_eq!(avail(pool), POOL_SIZE, "no mbuf leaked");
    // SAFETY: no DPDK object is used after this point.
    assert_eq!(unsafe { sys::rte_eal_cleanup() }, 0);
}
