//! Per-packet mbuf accessors in Rust, inlined into the caller.
//!
//! The `mgw_*` shim functions are real calls into C (no cross-language inlining), which is right
//! for per-burst work (`mgw_rte_eth_rx_burst`) but a call per field read is wasted on the
//! per-packet path. These functions do what DPDK's inline functions and macros do, reading the
//! fields of the bindgen `rte_mbuf` directly; bindgen's layout tests check at compile time that
//! those fields sit where the C compiler put them. `ffi/dpdk-sys/tests/eal_null.rs` checks each against its
//! shim twin on live mbufs.
//!
//! Every function takes a raw mbuf pointer and is `unsafe`: the caller guarantees that `m` points
//! to a live mbuf it owns (or at least may read/write, for the setters), as the DPDK function of
//! the same name requires.

use crate::rte_mbuf;
use core::ffi::c_void;

/// `rte_pktmbuf_mtod(m, void *)`: the first data byte of this segment.
///
/// # Safety
/// `m` points to a live, initialised mbuf.
#[inline(always)]
#[must_use]
pub unsafe fn pktmbuf_mtod(m: *const rte_mbuf) -> *mut c_void {
    // SAFETY: the caller guarantees `m` is a live mbuf; buf_addr + data_off is inside its buffer
    // by DPDK's invariant (data_off <= buf_len).
    unsafe {
        (*m).buf_addr
            .cast::<u8>()
            .add(usize::from((*m).data_off))
            .cast()
    }
}

/// `rte_pktmbuf_mtod_offset(m, void *, off)`.
///
/// # Safety
/// `m` points to a live mbuf; `off` stays inside its buffer (not checked, as in DPDK).
#[inline(always)]
#[must_use]
pub unsafe fn pktmbuf_mtod_offset(m: *const rte_mbuf, off: u16) -> *mut c_void {
    // SAFETY: the caller guarantees `m` is live and `off` in bounds.
    unsafe { pktmbuf_mtod(m).cast::<u8>().add(usize::from(off)).cast() }
}

/// `rte_pktmbuf_data_len(m)`: data bytes in this segment.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
#[must_use]
pub unsafe fn pktmbuf_data_len(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is a live mbuf.
    unsafe { (*m).data_len }
}

/// `rte_pktmbuf_pkt_len(m)`: data bytes in the whole chain (first segment only).
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
#[must_use]
pub unsafe fn pktmbuf_pkt_len(m: *const rte_mbuf) -> u32 {
    // SAFETY: the caller guarantees `m` is a live mbuf.
    unsafe { (*m).pkt_len }
}

/// Sets `data_len` and `pkt_len` of a single-segment mbuf together (the usual TX case after
/// writing a frame in place).
///
/// # Safety
/// `m` points to a live single-segment mbuf the caller owns; `len` fits its buffer after
/// `data_off` (not checked).
#[inline(always)]
pub unsafe fn pktmbuf_set_len(m: *mut rte_mbuf, len: u16) {
    // SAFETY: the caller guarantees exclusive access to a live mbuf.
    unsafe {
        (*m).data_len = len;
        (*m).pkt_len = u32::from(len);
    }
}

/// `rte_pktmbuf_headroom(m)`.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
#[must_use]
pub unsafe fn pktmbuf_headroom(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is a live mbuf.
    unsafe { (*m).data_off }
}

/// `rte_pktmbuf_tailroom(m)` of this segment: `buf_len - data_off - data_len`.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
#[must_use]
pub unsafe fn pktmbuf_tailroom(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is a live mbuf. DPDK keeps data_off + data_len <= buf_len;
    // wrapping_sub matches C's unsigned arithmetic if a caller broke that.
    unsafe {
        (*m).buf_len
            .wrapping_sub((*m).data_off)
            .wrapping_sub((*m).data_len)
    }
}

/// `m->ol_flags`: RX offload results / TX offload requests (`RTE_MBUF_F_*`).
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
#[must_use]
pub unsafe fn mbuf_ol_flags(m: *const rte_mbuf) -> u64 {
    // SAFETY: the caller guarantees `m` is a live mbuf.
    unsafe { (*m).ol_flags }
}

/// `m->port`: the port the packet was received on.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
#[must_use]
pub unsafe fn mbuf_port(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is a live mbuf.
    unsafe { (*m).port }
}
