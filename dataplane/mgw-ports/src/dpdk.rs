//! The `dpdk` backend (feature `dpdk`, issue 7: kernel bypass): a [`Port`] per RX/TX queue pair
//! of a DPDK ethdev, working directly in `rte_mbuf`s.
//!
//! - [`Eal`]: the Environment Abstraction Layer, initialised once per process ([`Eal::init`]).
//! - [`Mempool`]: a pktmbuf pool. Pools live until the process exits (DPDK applications never
//!   free a pool a port may still hold mbufs of; a freed pool under an in-flight mbuf is a
//!   use-after-free that no type can rule out once the driver owns the mbuf).
//! - [`Mbuf`]: an owned single-segment `rte_mbuf` implementing [`PacketBuffer`] with no copy:
//!   `as_ref()` is the mbuf's data window, `prepend`/`append`/`adj`/`trim` are the
//!   `rte_pktmbuf_*` operations, drop is `rte_pktmbuf_free`.
//! - [`DpdkPort`]: one configured and started ethdev (N queue pairs, RSS with a symmetric key
//!   when N > 1 and the device hashes, checksum offloads only where advertised), with the
//!   control-path getters (link, stats, xstats). [`DpdkPort::take_queue`] hands out each queue
//!   pair once as a [`DpdkQueue`], the [`Port`] a worker polls.
//!
//! # Single segment only
//!
//! Every [`Mbuf`] is one segment (`nb_segs == 1`): the protocol layers see one contiguous data
//! room, as [`PacketBuffer`] promises. The port does not enable `RTE_ETH_RX_OFFLOAD_SCATTER`, so
//! a conforming PMD drops frames larger than one mbuf; a chained frame that arrives anyway is
//! freed in `rx_burst` and counted ([`DpdkQueue::rx_chained`] and `PortStats::dropped`). Jumbo
//! frames therefore need pools whose data room holds the MTU (`max_frame` is clamped to it).
//!
//! # Threads
//!
//! A [`DpdkQueue`] is `Send` but not `Sync`: one thread polls it, as DPDK requires of a queue.
//! Mbufs may be freed on any thread (the default `ring_mp_mc` mempool is multi-producer; a
//! thread EAL does not know simply bypasses the per-lcore cache). A worker thread calls
//! [`Eal::register_thread`] first to become an lcore and get that cache.
#![allow(unsafe_code)]

/// The raw bindings, for DPDK calls this module does not wrap (the handles expose their raw
/// pointers: [`Mempool::as_ptr`], [`Mbuf::as_ptr`]).
pub use dpdk_sys as sys;
use mgw_core::buf::PacketBuffer;
use mgw_core::port::{Batch, Port, PortStats};
use mgw_core::wire::EthernetAddress;
use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, OnceLock};

/// Data room of a standard pktmbuf: 2048 bytes of frame after the 128-byte headroom
/// (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Headroom of a fresh mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: usize = sys::RTE_PKTMBUF_HEADROOM as usize;

/// Most mbuf pointers moved per burst call; larger batches are served in several calls.
const SCRATCH: usize = 64;

/// Ethernet header length (no VLAN tag: the edge does not handle tagged frames).
const ETH_HEADER: usize = mgw_core::wire::ethernet::HEADER_LEN;

/// An error of a DPDK control-path operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpdkError {
    /// `rte_eal_init` failed with this `rte_errno`.
    EalInit(i32),
    /// EAL is already initialised in this process with other arguments.
    EalArgsDiffer,
    /// An argument cannot be passed to DPDK (NUL byte, zero count, out of range).
    InvalidArgument(&'static str),
    /// A DPDK call failed with this (positive) errno.
    Call {
        /// The DPDK function.
        op: &'static str,
        /// Its errno (positive).
        errno: i32,
    },
    /// The port is already driven by another [`DpdkPort`].
    PortBusy(u16),
}

fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a NUL-terminated string (static, or in a
    // per-thread buffer valid until this thread's next call); it is copied at once.
    unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpdkError::EalInit(e) => write!(f, "rte_eal_init failed: {} ({e})", strerror(*e)),
            DpdkError::EalArgsDiffer => {
                f.write_str("EAL is already initialised with other arguments")
            }
            DpdkError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            DpdkError::Call { op, errno } => write!(f, "{op}: {} ({errno})", strerror(*errno)),
            DpdkError::PortBusy(p) => write!(f, "port {p} is already in use"),
        }
    }
}

impl std::error::Error for DpdkError {}

/// Turns a DPDK return code (negative errno on failure) into a result.
fn check(op: &'static str, rc: c_int) -> Result<(), DpdkError> {
    if rc < 0 {
        Err(DpdkError::Call { op, errno: -rc })
    } else {
        Ok(())
    }
}

/// The calling thread's `rte_errno`.
fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local of this thread through the shim; no preconditions.
    unsafe { sys::mgw_rte_errno() }
}

/// The initialised EAL. Exists once per process; holding `&'static Eal` proves EAL is up.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<Result<Eal, DpdkError>> = OnceLock::new();

impl Eal {
    /// Initialises EAL with `args` (`args[0]` is the program name, as in `argv`), once per
    /// process. The thread that first calls this becomes the main lcore (EAL pins it to the
    /// first core of `-l`). A later call with equal `args` returns the same `Eal` (or the same
    /// error: EAL cannot be retried after a failed init).
    ///
    /// # Errors
    /// [`DpdkError::EalInit`] when `rte_eal_init` fails, [`DpdkError::EalArgsDiffer`] when EAL
    /// was initialised with other arguments, [`DpdkError::InvalidArgument`] for an argument
    /// with a NUL byte or an empty list.
    pub fn init(args: &[String]) -> Result<&'static Eal, DpdkError> {
        let r = EAL.get_or_init(|| Self::init_once(args));
        match r {
            Ok(eal) if eal.args != args => Err(DpdkError::EalArgsDiffer),
            Ok(eal) => Ok(eal),
            Err(e) => Err(e.clone()),
        }
    }

    /// The EAL if [`Eal::init`] succeeded in this process.
    pub fn get() -> Option<&'static Eal> {
        EAL.get().and_then(|r| r.as_ref().ok())
    }

    fn init_once(args: &[String]) -> Result<Eal, DpdkError> {
        if args.is_empty() {
            return Err(DpdkError::InvalidArgument("EAL args need a program name"));
        }
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
        for a in args {
            let c = CString::new(a.as_str())
                .map_err(|_| DpdkError::InvalidArgument("NUL byte in an EAL argument"))?;
            argv.push(c.into_raw());
        }
        // EAL keeps pointers into argv (getopt permutes it; drivers keep devargs) for the
        // process lifetime: the strings and the array are leaked on purpose, once.
        let argv: &'static mut [*mut c_char] = Vec::leak(argv);
        let argc =
            c_int::try_from(argv.len()).map_err(|_| DpdkError::InvalidArgument("EAL args"))?;
        // SAFETY: runs once per process (inside the OnceLock); argv holds argc valid
        // NUL-terminated strings that live forever.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(DpdkError::EalInit(rte_errno()));
        }
        Ok(Eal {
            args: args.to_vec(),
        })
    }

    /// The arguments EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The ethdev port id of the device named `name` (`net_ring0`, a PCI address, ...).
    ///
    /// # Errors
    /// [`DpdkError::Call`] (`ENODEV`) when no such port exists.
    pub fn port_by_name(&self, name: &str) -> Result<u16, DpdkError> {
        let c = CString::new(name).map_err(|_| DpdkError::InvalidArgument("NUL in port name"))?;
        let mut port = u16::MAX;
        // SAFETY: EAL is up (self exists); `c` is a valid C string and `port` a valid out
        // pointer for the duration of the call.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &raw mut port) };
        check("rte_eth_dev_get_port_by_name", rc)?;
        Ok(port)
    }

    /// Ports available (probed, not owned by another DPDK component).
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is up.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Makes the calling thread (not created by EAL) an lcore, so its mbuf allocations and
    /// frees go through the mempools' per-lcore caches instead of their shared rings. The
    /// registration ends when the returned guard drops (on this thread).
    ///
    /// # Errors
    /// [`DpdkError::Call`] when EAL has no free lcore slot left (`RTE_MAX_LCORE`).
    pub fn register_thread(&self) -> Result<LcoreRegistration, DpdkError> {
        // SAFETY: EAL is up; registering the calling thread has no other precondition.
        let rc = unsafe { sys::rte_thread_register() };
        if rc < 0 {
            return Err(DpdkError::Call {
                op: "rte_thread_register",
                errno: rte_errno(),
            });
        }
        Ok(LcoreRegistration {
            _not_send: std::marker::PhantomData,
        })
    }
}

/// The calling thread's lcore registration ([`Eal::register_thread`]); unregisters on drop.
/// Not `Send`: it must drop on the thread it registered.
#[derive(Debug)]
pub struct LcoreRegistration {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself (the guard is not Send, so it drops where it
        // was made); unregistering releases that lcore slot.
        unsafe { sys::rte_thread_unregister() };
    }
}

/// A pktmbuf pool (`rte_pktmbuf_pool_create`). A cheap copyable handle; the pool itself lives
/// until the process exits (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Mempool {
    mp: NonNull<sys::rte_mempool>,
    capacity: u32,
    data_room: u16,
}

// SAFETY: a pktmbuf pool with the default ring_mp_mc handler is safe for concurrent get/put from
// any thread; the handle is only a pointer to a pool that is never freed.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation through a shared handle is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool named `name` (unique in the process) of `n_mbufs` mbufs (best a power of
    /// two minus one), with a per-lcore cache of `cache` and `data_room` bytes per mbuf
    /// (headroom included; [`DEFAULT_DATA_ROOM`] for standard frames), on NUMA `socket`
    /// (`None`: the calling lcore's socket).
    ///
    /// # Errors
    /// [`DpdkError::Call`] with the `rte_errno` (`EEXIST` for a taken name, `ENOMEM`, ...);
    /// [`DpdkError::InvalidArgument`] for a data room not larger than the headroom.
    pub fn new(
        _eal: &'static Eal,
        name: &str,
        n_mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: Option<i32>,
    ) -> Result<Mempool, DpdkError> {
        if usize::from(data_room) <= HEADROOM {
            return Err(DpdkError::InvalidArgument(
                "data room not above the headroom",
            ));
        }
        let c = CString::new(name).map_err(|_| DpdkError::InvalidArgument("NUL in pool name"))?;
        // SAFETY: EAL is up (`_eal` exists); rte_socket_id has no preconditions.
        let socket = socket.unwrap_or_else(|| unsafe { sys::rte_socket_id() } as c_int);
        // SAFETY: EAL is up; `c` is a valid C string for the duration of the call (DPDK copies
        // the name). The pool is never freed, so the handle stays valid.
        let mp = unsafe {
            sys::rte_pktmbuf_pool_create(c.as_ptr(), n_mbufs, cache, 0, data_room, socket)
        };
        let mp = NonNull::new(mp).ok_or(DpdkError::Call {
            op: "rte_pktmbuf_pool_create",
            errno: rte_errno(),
        })?;
        Ok(Mempool {
            mp,
            capacity: n_mbufs,
            data_room,
        })
    }

    /// A fresh mbuf (reset, default headroom, no data), or `None` when the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is live (never freed); a NULL result is handled.
        let m = unsafe { sys::mgw_rte_pktmbuf_alloc(self.mp.as_ptr()) };
        NonNull::new(m).map(|m| Mbuf { m })
    }

    /// Mbufs free right now (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is live.
        unsafe { sys::rte_mempool_avail_count(self.mp.as_ptr()) }
    }

    /// Mbufs in the pool.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Bytes of data room per mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    /// The raw pool, for DPDK calls this module does not wrap.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.mp.as_ptr()
    }
}

/// An owned single-segment `rte_mbuf`. Returns to its pool on drop (`rte_pktmbuf_free`).
pub struct Mbuf {
    m: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is exclusively owned (like a Box); its pool accepts frees from any thread.
unsafe impl Send for Mbuf {}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.m)
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .finish()
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` is a live, single-segment mbuf that nothing else owns or frees.
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { m }
    }

    /// Gives up ownership (for handing the mbuf to DPDK); the caller must free it.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let m = self.m;
        std::mem::forget(self);
        m
    }

    /// The raw mbuf, still owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.m.as_ptr()
    }

    /// Offload flags (`RTE_MBUF_F_RX_*` on receive: checksum verdicts, RSS hash valid, ...).
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: `self.m` is a live mbuf owned by self.
        unsafe { sys::fast::mbuf_ol_flags(self.m.as_ptr()) }
    }

    /// The port the frame was received on.
    pub fn port(&self) -> u16 {
        // SAFETY: `self.m` is a live mbuf owned by self.
        unsafe { sys::fast::mbuf_port(self.m.as_ptr()) }
    }

    /// Segments in the chain (1 for every Mbuf this module hands out).
    fn nb_segs(&self) -> u16 {
        // SAFETY: `self.m` is a live mbuf owned by self.
        unsafe { (*self.m.as_ptr()).nb_segs }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and free it exactly once.
        unsafe { sys::mgw_rte_pktmbuf_free(self.m.as_ptr()) }
    }
}

impl AsRef<[u8]> for Mbuf {
    fn as_ref(&self) -> &[u8] {
        let m = self.m.as_ptr();
        // SAFETY: `m` is a live single-segment mbuf owned by self; its data_len bytes from mtod
        // lie inside the data room; the borrow of self keeps them from changing.
        unsafe {
            std::slice::from_raw_parts(
                sys::fast::pktmbuf_mtod(m).cast::<u8>(),
                usize::from(sys::fast::pktmbuf_data_len(m)),
            )
        }
    }
}

impl AsMut<[u8]> for Mbuf {
    fn as_mut(&mut self) -> &mut [u8] {
        let m = self.m.as_ptr();
        // SAFETY: as in as_ref, and the exclusive borrow of self makes the slice unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                sys::fast::pktmbuf_mtod(m).cast::<u8>(),
                usize::from(sys::fast::pktmbuf_data_len(m)),
            )
        }
    }
}

impl PacketBuffer for Mbuf {
    fn len(&self) -> usize {
        // SAFETY: `self.m` is a live mbuf owned by self.
        usize::from(unsafe { sys::fast::pktmbuf_data_len(self.m.as_ptr()) })
    }

    fn headroom(&self) -> usize {
        // SAFETY: `self.m` is a live mbuf owned by self.
        usize::from(unsafe { sys::fast::pktmbuf_headroom(self.m.as_ptr()) })
    }

    fn tailroom(&self) -> usize {
        // SAFETY: `self.m` is a live mbuf owned by self.
        usize::from(unsafe { sys::fast::pktmbuf_tailroom(self.m.as_ptr()) })
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: `self.m` is a live mbuf owned by self; rte_pktmbuf_prepend checks the
        // headroom and changes nothing when it is too small (NULL).
        let p = unsafe { sys::mgw_rte_pktmbuf_prepend(self.m.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: the n bytes from `p` are the new front of the data window, inside the mbuf's
        // data room; the exclusive borrow of self makes the slice unique.
        Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: as in prepend; rte_pktmbuf_append checks the tailroom.
        let p = unsafe { sys::mgw_rte_pktmbuf_append(self.m.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: the n bytes from `p` are the new end of the data window, inside the room.
        Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: `self.m` is live and ours; rte_pktmbuf_adj refuses n > data_len (NULL).
        !unsafe { sys::mgw_rte_pktmbuf_adj(self.m.as_ptr(), n16) }.is_null()
    }

    fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: `self.m` is live and ours; rte_pktmbuf_trim refuses n > data_len (-1).
        unsafe { sys::mgw_rte_pktmbuf_trim(self.m.as_ptr(), n16) == 0 }
    }

    fn rx_l4_checksum_good(&self) -> bool {
        self.ol_flags() & sys::RTE_MBUF_F_RX_L4_CKSUM_MASK == sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD
    }

    fn offload_l4_checksum(&mut self, l3_len: usize, tcp: bool) -> bool {
        let Ok(l3) = u64::try_from(l3_len) else {
            return false;
        };
        let l4 = if tcp {
            sys::RTE_MBUF_F_TX_TCP_CKSUM
        } else {
            sys::RTE_MBUF_F_TX_UDP_CKSUM
        };
        let m = self.m.as_ptr();
        // SAFETY: `m` is a live mbuf owned by self. Receive-side flags are cleared (the buffer
        // may be a received frame relayed in place); tx_offload packs l2_len (7 bits) then
        // l3_len (9 bits), as `rte_mbuf`'s bit-field declares.
        unsafe {
            (*m).ol_flags =
                ((*m).ol_flags & sys::RTE_MBUF_F_EXTERNAL) | sys::RTE_MBUF_F_TX_IPV4 | l4;
            (*m).__bindgen_anon_3.tx_offload = (ETH_HEADER as u64) | ((l3 & 0x1ff) << 7);
        }
        true
    }

    fn reset(&mut self) {
        let m = self.m.as_ptr();
        // rte_pktmbuf_reset() is static inline (no symbol); this is what it does to a
        // single-segment mbuf: no data, default headroom, no offload state.
        // SAFETY: `m` is a live single-segment mbuf owned by self (next is already NULL).
        unsafe {
            (*m).data_off = (sys::RTE_PKTMBUF_HEADROOM as u16).min((*m).buf_len);
            sys::fast::pktmbuf_set_len(m, 0);
            (*m).ol_flags &= sys::RTE_MBUF_F_EXTERNAL;
            (*m).__bindgen_anon_1.packet_type = 0;
            (*m).__bindgen_anon_3.tx_offload = 0;
            (*m).vlan_tci = 0;
            (*m).vlan_tci_outer = 0;
        }
    }
}

/// Settings of [`DpdkPort::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpdkPortConfig {
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// MTU to set; `None` keeps the device default (1500 for most).
    pub mtu: Option<u16>,
    /// Receive frames for any destination MAC (needed when the edge's MAC is not the port's).
    pub promiscuous: bool,
}

impl Default for DpdkPortConfig {
    fn default() -> Self {
        DpdkPortConfig {
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: false,
        }
    }
}

/// What [`DpdkPort::new`] enabled on the device, from what it advertised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortFeatures {
    /// The driver name (`net_null`, `net_ring`, `net_ice`, ...).
    pub driver: &'static str,
    /// RSS hash functions enabled (`RTE_ETH_RSS_*`); 0 when RSS is off (one queue, or the
    /// device does not hash: then each queue receives only what the device puts on it).
    pub rss_hf: u64,
    /// RX checksum offloads enabled (`RTE_ETH_RX_OFFLOAD_{IPV4,UDP,TCP}_CKSUM` subset).
    pub rx_cksum: u64,
    /// TX checksum offloads enabled (`RTE_ETH_TX_OFFLOAD_{IPV4,UDP,TCP}_CKSUM` subset). The
    /// edge computes checksums in software today; these are enabled for a later per-mbuf use.
    pub tx_cksum: u64,
    /// Promiscuous mode is on.
    pub promiscuous: bool,
}

impl PortFeatures {
    /// Both TCP and UDP transmit checksum offloads are enabled: what the workers need to leave
    /// L4 checksums to the device ([`Port::tx_l4_checksum_offload`]).
    pub fn tx_l4_checksum(&self) -> bool {
        let l4 = sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM | sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
        self.tx_cksum & l4 == l4
    }
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// The Toeplitz key of Woo and Park ("Scalable TCP Session Monitoring with Symmetric
/// Receive-side Scaling", 2012): 0x6d5a repeated makes the hash of (src, dst) equal to that of
/// (dst, src), so both directions of a flow land on the same queue.
fn symmetric_rss_key(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i % 2 == 0 { 0x6d } else { 0x5a })
        .collect()
}

/// Ports currently driven by a [`DpdkPort`] (control path only).
static CLAIMED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// The started device, shared by the port handle and its queues; stopped when the last drops.
#[derive(Debug)]
struct PortShared {
    port_id: u16,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // SAFETY: no queue handle is left (this is the last Arc), so nothing polls the port;
        // stopping a started port is always allowed. The port stays configured (not closed), so
        // a new DpdkPort can configure it again.
        let _ = unsafe { sys::rte_eth_dev_stop(self.port_id) };
        if let Ok(mut c) = CLAIMED.lock() {
            c.retain(|p| *p != self.port_id);
        }
    }
}

/// A configured and started DPDK ethdev. Stopped when it and all its queues are dropped.
#[derive(Debug)]
pub struct DpdkPort {
    shared: Arc<PortShared>,
    queues: Vec<Option<DpdkQueue>>,
    features: PortFeatures,
    mac: EthernetAddress,
    max_frame: usize,
}

fn driver_name(info: &sys::rte_eth_dev_info) -> &'static str {
    if info.driver_name.is_null() {
        return "";
    }
    // SAFETY: a non-NULL driver_name points to the driver's static NUL-terminated name, which
    // lives as long as the (never unloaded) driver.
    unsafe { CStr::from_ptr(info.driver_name) }
        .to_str()
        .unwrap_or("")
}

impl DpdkPort {
    /// Configures port `port_id` with `queues` RX/TX queue pairs fed from `pool`, starts it and
    /// waits for nothing (see [`DpdkPort::link`]).
    ///
    /// With `queues > 1` and a device that hashes, RSS is on over IP/UDP/TCP (what the device
    /// supports of it) with a symmetric Toeplitz key. IPv4/UDP/TCP checksum offloads are enabled
    /// where advertised; [`DpdkPort::features`] records what was enabled.
    ///
    /// # Errors
    /// [`DpdkError::PortBusy`] if another `DpdkPort` drives the port,
    /// [`DpdkError::InvalidArgument`] for zero or too many queues, [`DpdkError::Call`] with the
    /// failing DPDK call.
    pub fn new(
        _eal: &'static Eal,
        port_id: u16,
        queues: u16,
        pool: Mempool,
        cfg: DpdkPortConfig,
    ) -> Result<DpdkPort, DpdkError> {
        {
            let mut c = CLAIMED
                .lock()
                .map_err(|_| DpdkError::InvalidArgument("port registry poisoned"))?;
            if c.contains(&port_id) {
                return Err(DpdkError::PortBusy(port_id));
            }
            c.push(port_id);
        }
        // From here on, dropping `shared` (on any error) stops the port and releases the claim.
        let shared = Arc::new(PortShared { port_id });
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: EAL is up; `info` is a valid out pointer. An invalid port id is an error.
        check("rte_eth_dev_info_get", unsafe {
            sys::rte_eth_dev_info_get(port_id, &raw mut info)
        })?;
        if queues == 0 || queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(DpdkError::InvalidArgument(
                "queue count is zero or above the device maximum",
            ));
        }
        let mut features = PortFeatures {
            driver: driver_name(&info),
            ..PortFeatures::default()
        };
        let mut conf = sys::rte_eth_conf::default();
        // The key must outlive rte_eth_dev_configure (DPDK copies it into the device).
        let mut key = Vec::new();
        if queues > 1 && info.flow_type_rss_offloads != 0 {
            let hf = (sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_UDP | sys::RTE_ETH_RSS_TCP)
                & info.flow_type_rss_offloads;
            if hf != 0 {
                key = symmetric_rss_key(match info.hash_key_size {
                    0 => 40,
                    n => usize::from(n),
                });
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
                features.rss_hf = hf;
            }
        }
        features.rx_cksum = (sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM
            | sys::RTE_ETH_RX_OFFLOAD_UDP_CKSUM
            | sys::RTE_ETH_RX_OFFLOAD_TCP_CKSUM)
            & info.rx_offload_capa;
        features.tx_cksum = (sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM
            | sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM
            | sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM)
            & info.tx_offload_capa;
        conf.rxmode.offloads = features.rx_cksum;
        conf.txmode.offloads = features.tx_cksum;
        if let Some(mtu) = cfg.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: the port is stopped (we claimed it; a previous DpdkPort stopped it on drop);
        // `conf` and the key it points to outlive the call.
        check("rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(port_id, queues, queues, &raw const conf)
        })?;
        drop(key);
        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: the port is configured; both are valid in/out pointers.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &raw mut nb_rx, &raw mut nb_tx)
        })?;
        // SAFETY: EAL is up; port id valid. SOCKET_ID_ANY (-1) reinterpreted as unsigned is what
        // DPDK itself expects for "any socket".
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) } as c_uint;
        for q in 0..queues {
            // SAFETY: the port is configured with `queues` RX queues; NULL rx_conf = driver
            // defaults; the pool is never freed, so it outlives the queue.
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(port_id, q, nb_rx, socket, ptr::null(), pool.as_ptr())
            })?;
            // SAFETY: as above for TX.
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(port_id, q, nb_tx, socket, ptr::null())
            })?;
        }
        // SAFETY: every queue is set up.
        check("rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(port_id)
        })?;
        if cfg.promiscuous {
            // SAFETY: the port is started.
            check("rte_eth_promiscuous_enable", unsafe {
                sys::rte_eth_promiscuous_enable(port_id)
            })?;
            features.promiscuous = true;
        }
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port, valid out pointer.
        check("rte_eth_macaddr_get", unsafe {
            sys::rte_eth_macaddr_get(port_id, &raw mut addr)
        })?;
        let mac = EthernetAddress(addr.addr_bytes);
        let mut mtu = 0u16;
        // SAFETY: valid port, valid out pointer.
        check("rte_eth_dev_get_mtu", unsafe {
            sys::rte_eth_dev_get_mtu(port_id, &raw mut mtu)
        })?;
        // Single segment: a frame must fit one mbuf after the headroom.
        let max_frame = (usize::from(mtu) + ETH_HEADER)
            .min(usize::from(pool.data_room()).saturating_sub(HEADROOM));
        let tx_l4_csum = features.tx_l4_checksum();
        let queues = (0..queues)
            .map(|q| {
                Some(DpdkQueue {
                    shared: Arc::clone(&shared),
                    queue: q,
                    pool,
                    mac,
                    max_frame,
                    stats: PortStats::default(),
                    rx_chained: 0,
                    alloc_failures: 0,
                    ptrs: [ptr::null_mut(); SCRATCH],
                    lens: [0; SCRATCH],
                    tx_l4_csum,
                })
            })
            .collect();
        Ok(DpdkPort {
            shared,
            queues,
            features,
            mac,
            max_frame,
        })
    }

    /// Hands out queue pair `q` (once; `None` afterwards or if out of range).
    pub fn take_queue(&mut self, q: u16) -> Option<DpdkQueue> {
        self.queues.get_mut(usize::from(q))?.take()
    }

    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.shared.port_id
    }

    /// What was enabled at configuration.
    pub fn features(&self) -> PortFeatures {
        self.features
    }

    /// The port's MAC.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// Largest frame a queue receives or sends (MTU + Ethernet header, clamped to one mbuf).
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The link state now (does not wait for autonegotiation).
    ///
    /// # Errors
    /// [`DpdkError::Call`] if the driver cannot say.
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port, valid out pointer.
        check("rte_eth_link_get_nowait", unsafe {
            sys::rte_eth_link_get_nowait(self.shared.port_id, &raw mut link)
        })?;
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// The device's basic counters (`rte_eth_stats_get`): all queues, including what the
    /// device dropped before any queue saw it (`imissed`, `rx_nombuf`).
    ///
    /// # Errors
    /// [`DpdkError::Call`] if the driver cannot say.
    pub fn eth_stats(&self) -> Result<sys::rte_eth_stats, DpdkError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port, valid out pointer.
        check("rte_eth_stats_get", unsafe {
            sys::rte_eth_stats_get(self.shared.port_id, &raw mut s)
        })?;
        Ok(s)
    }

    /// A snapshot of the driver's extended counters, by name. Control path only: it allocates.
    ///
    /// # Errors
    /// [`DpdkError::Call`] if the driver cannot say.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let port = self.shared.port_id;
        // SAFETY: NULL with size 0 asks for the count only.
        let n = unsafe { sys::rte_eth_xstats_get_names(port, ptr::null_mut(), 0) };
        check("rte_eth_xstats_get_names", n)?;
        let n = n as usize;
        let mut names = vec![sys::rte_eth_xstat_name::default(); n];
        let mut vals = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: `names` has room for n entries.
        let got = unsafe { sys::rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as c_uint) };
        check("rte_eth_xstats_get_names", got)?;
        // SAFETY: `vals` has room for n entries.
        let got2 = unsafe { sys::rte_eth_xstats_get(port, vals.as_mut_ptr(), n as c_uint) };
        check("rte_eth_xstats_get", got2)?;
        let k = (got as usize).min(got2 as usize).min(n);
        Ok(vals[..k]
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                // SAFETY: DPDK writes NUL-terminated names into the 64-byte arrays; the slice
                // reinterprets c_char as u8 of the same size.
                let bytes: &[u8] = unsafe {
                    std::slice::from_raw_parts(name.name.as_ptr().cast(), name.name.len())
                };
                let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                Some((String::from_utf8_lossy(&bytes[..end]).into_owned(), v.value))
            })
            .collect())
    }
}

/// One RX/TX queue pair of a [`DpdkPort`]: the [`Port`] a worker polls. Keeps the device
/// started while it lives.
pub struct DpdkQueue {
    shared: Arc<PortShared>,
    queue: u16,
    pool: Mempool,
    mac: EthernetAddress,
    max_frame: usize,
    stats: PortStats,
    rx_chained: u64,
    alloc_failures: u64,
    /// Burst pointer array handed to rx/tx_burst (allocated with the queue, reused).
    ptrs: [*mut sys::rte_mbuf; SCRATCH],
    /// Frame lengths of a TX burst, read before the driver may free the mbufs.
    lens: [u32; SCRATCH],
    /// TCP and UDP TX checksum offloads are enabled on the port.
    tx_l4_csum: bool,
}

// SAFETY: the queue is polled by whichever single thread owns it (not Sync); the raw pointers in
// `ptrs` are scratch, never live across calls; the pool handle is Send.
unsafe impl Send for DpdkQueue {}

impl fmt::Debug for DpdkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkQueue")
            .field("port", &self.shared.port_id)
            .field("queue", &self.queue)
            .field("stats", &self.stats)
            .finish()
    }
}

impl DpdkQueue {
    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.shared.port_id
    }

    /// The queue index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// The pool this queue allocates from.
    pub fn pool(&self) -> Mempool {
        self.pool
    }

    /// Multi-segment frames received and dropped (single-segment only; see the module docs).
    pub fn rx_chained(&self) -> u64 {
        self.rx_chained
    }

    /// `alloc` calls that found the pool empty.
    pub fn alloc_failures(&self) -> u64 {
        self.alloc_failures
    }
}

impl Port for DpdkQueue {
    type Buffer = Mbuf;

    fn tx_l4_checksum_offload(&self) -> bool {
        self.tx_l4_csum
    }

    fn rx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        let mut total = 0;
        loop {
            let want = batch.room().min(SCRATCH);
            if want == 0 {
                break;
            }
            // SAFETY: the queue is set up on a started port (kept started by `shared`) and
            // polled only by this thread (&mut self); `ptrs` has room for `want` pointers.
            let got = unsafe {
                sys::mgw_rte_eth_rx_burst(
                    self.shared.port_id,
                    self.queue,
                    self.ptrs.as_mut_ptr(),
                    want as u16,
                )
            };
            for &p in &self.ptrs[..usize::from(got)] {
                let Some(p) = NonNull::new(p) else { continue };
                // SAFETY: the driver hands us ownership of each received mbuf.
                let m = unsafe { Mbuf::from_raw(p) };
                if m.nb_segs() != 1 {
                    // Chained (scattered) frame: not representable as one data room.
                    self.rx_chained += 1;
                    self.stats.dropped += 1;
                    continue; // dropping `m` frees the whole chain
                }
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += m.len() as u64;
                if batch.push(m).is_ok() {
                    total += 1;
                }
            }
            if usize::from(got) < want {
                break;
            }
        }
        total
    }

    fn tx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        let mut total = 0;
        while !batch.is_empty() {
            let n = batch.len().min(SCRATCH);
            for (i, m) in batch.iter().take(n).enumerate() {
                self.ptrs[i] = m.as_ptr();
                self.lens[i] = m.len() as u32;
            }
            // SAFETY: as in rx_burst; the first n entries of `ptrs` are live mbufs owned by the
            // batch. The driver takes ownership of the first `sent` of them.
            let sent = usize::from(unsafe {
                sys::mgw_rte_eth_tx_burst(
                    self.shared.port_id,
                    self.queue,
                    self.ptrs.as_mut_ptr(),
                    n as u16,
                )
            });
            for m in batch.drain_front(sent) {
                // Owned by the driver now (it may already have freed it): do not free.
                let _ = m.into_raw();
            }
            self.stats.tx_packets += sent as u64;
            self.stats.tx_bytes += self.lens[..sent].iter().map(|l| u64::from(*l)).sum::<u64>();
            total += sent;
            if sent < n {
                break;
            }
        }
        self.stats.tx_full += batch.len() as u64;
        total
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        let m = self.pool.alloc();
        if m.is_none() {
            self.alloc_failures += 1;
        }
        m
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_key_is_symmetric_pattern() {
        let k = symmetric_rss_key(40);
        assert_eq!(k.len(), 40);
        assert!(k.chunks(2).all(|c| c == [0x6d, 0x5a]));
        assert_eq!(symmetric_rss_key(52).len(), 52);
    }

    #[test]
    fn errors_display_the_dpdk_reason() {
        let e = DpdkError::Call {
            op: "rte_eth_dev_configure",
            errno: libc::EINVAL,
        };
        let s = e.to_string();
        assert!(s.starts_with("rte_eth_dev_configure: "), "{s}");
        assert!(s.ends_with(&format!("({})", libc::EINVAL)), "{s}");
        assert_eq!(
            DpdkError::PortBusy(3).to_string(),
            "port 3 is already in use"
        );
    }
}
