//! `dpdk-sys`: raw bindings to the system DPDK (≥ 22.11) for mgwd's kernel-bypass port backend.
//!
//! This crate is the FFI floor only. The safe wrapper (EAL, mempool, port, burst I/O) and the
//! `Port` backend built on it live in `mgw-ports`; nothing here enforces an invariant.
//!
//! # Modes
//!
//! | build | what the crate contains |
//! | --- | --- |
//! | feature `dpdk` off (the default) | nothing: an empty crate, so the workspace builds, tests and documents without DPDK |
//! | feature `dpdk` on, env `DOCS_RS` or `MGW_DPDK_OFFLINE` set | nothing (`cfg(mgw_dpdk_offline)`): a documentation-only / offline build on a machine without libdpdk or libclang |
//! | feature `dpdk` on | bindgen output over `src/shim.h` plus the `mgw_*` C shim, linked against `pkg-config libdpdk` |
//!
//! With feature `dpdk` on and no offline variable, a missing `libdpdk` (pkg-config) or libclang
//! is a build error naming the package to install (Debian: `libdpdk-dev`, `libclang-dev`); it never
//! silently falls back to the empty crate. Dependents can test [`BINDINGS`] to know which build
//! they got, and their build scripts can read `DEP_DPDK_BINDINGS` (`1` or `0`; this package has
//! `links = "dpdk"`, so Cargo passes its metadata on) to `cfg` their DPDK backend out of an
//! offline build; `DEP_DPDK_VERSION` carries the libdpdk version. (The binding names in these
//! docs are plain code, not links, because the empty build has none of them.)
//!
//! # What is bound
//!
//! - Exported DPDK functions and their types, by allowlist: `rte_eal_*`, `rte_eth_*`,
//!   `rte_pktmbuf_*`, `rte_mbuf_*`, `rte_mempool_*`, `rte_flow_*`, `rte_ring_*`, `rte_lcore_*`,
//!   `rte_socket_*`, `rte_strerror`, `rte_exit`, `rte_version`, and the `RTE_*` constants
//!   (offload flags, packet types, limits). C enums are plain integer constants without the enum
//!   name prefix (`RTE_FLOW_ITEM_TYPE_END`), so an unknown value from the library is not UB.
//! - The fast-path API that DPDK only has as `static inline` functions, macros or thread-local
//!   variables, through the C shim (`src/shim.c`), each named `mgw_` + the DPDK name:
//!   `mgw_rte_eth_rx_burst`, `mgw_rte_eth_tx_burst`, `mgw_rte_pktmbuf_alloc`,
//!   `mgw_rte_pktmbuf_alloc_bulk`, `mgw_rte_pktmbuf_free`, `mgw_rte_pktmbuf_mtod`,
//!   `mgw_rte_pktmbuf_{data,pkt}_len` and `set_*`, `mgw_rte_pktmbuf_{headroom,tailroom}`,
//!   `mgw_rte_pktmbuf_{prepend,append,adj,trim}`, `mgw_rte_mbuf_{ol_flags,rss_hash,port}`,
//!   `mgw_rte_mempool_{get,put}_bulk`, `mgw_rte_ring_{enqueue,dequeue}_burst`,
//!   `mgw_rte_errno`, `mgw_rte_lcore_id`. The shim is compiled with `-O2` and exactly the
//!   cflags bindgen used, so its view of `struct rte_mbuf` is the Rust one.
//! - Module `fast` (with feature `dpdk`): the per-packet mbuf field accessors (mtod, lengths,
//!   head/tailroom, ol_flags, port) as inlined Rust over the bindgen struct, so the per-packet
//!   path makes no call into C; the shim versions stay for reference and are tested equal.
//!
//! # Drivers (PMDs) and EAL arguments
//!
//! Debian builds DPDK as shared libraries; the poll-mode drivers (`net_null`, `net_ring`,
//! `net_af_packet`, `net_af_xdp`, `net_memif`, `net_pcap`, `net_tap`, the PCI NIC drivers) and the
//! mempool handlers (`ring_mp_mc`) are plugins in `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`.
//! They are not linked into the binary: `rte_eal_init` of a shared-linked EAL loads every plugin of
//! that compiled-in directory itself (it logs "Detected shared linkage of DPDK"), so `--vdev=...`
//! works with no `-d`. Pass `-d <dir|lib.so>` only for drivers installed elsewhere.
//!
//! EAL arguments, as tested by `tests/eal_null.rs` on Debian 12 / DPDK 22.11.11:
//!
//! - tests and CI, no hugepages: `--no-huge --no-shconf --no-pci --no-telemetry -m 256 -l 0
//!   --vdev=net_null0 --vdev=net_ring0`. `--in-memory` is rejected together with `--no-huge`
//!   ("Option --legacy-mem is not compatible with --in-memory"); `--no-shconf` is what keeps
//!   parallel processes apart and leaves no `/var/run/dpdk/<prefix>` directory behind (a
//!   `--file-prefix` also separates them but leaves that directory). Works as non-root too
//!   (EAL only warns that `mlockall` failed), but the test asks for root.
//! - hugepages (production): `--in-memory --huge-dir <hugetlbfs mount>` (no runtime files, no
//!   stale hugepage files after a crash). `MGW_DPDK_HUGE_DIR=<dir>` runs the test this way.
//! - The IOVA mode is VA in both (no physical addresses needed), as with NICs behind vfio-pci.
//!
//! Virtual devices checked with `scripts/dpdk-vdev-check.sh` (testpmd io forwarding, two ports):
//! `net_null`, `net_ring`, `net_memif` (server and client in one process), and, on a veth pair in
//! a private netns, `net_af_packet` and `net_af_xdp` (generic XDP; libxdp falls back to a single
//! program without bpffs). None of them has an rte_flow engine (`rte_flow_validate` fails with
//! `-ENOSYS`), so queue steering on them needs the software redirect ring.
//!
//! Tests: `tests/eal_null.rs` (net_null, net_ring, mbuf shim, rte_ring, rte_errno, rte_flow),
//! `tests/eal_af_packet.rs` and `tests/eal_af_xdp.rs` (frames through a veth pair in a private
//! netns, both directions, byte for byte). The AF_XDP one shows a sizing rule: `net_af_xdp`
//! takes 2048 mbufs per RX queue from the pool into its fill ring at queue setup (a 2047-mbuf
//! pool makes `rte_eth_rx_queue_setup` fail with `-EINVAL`), reclaims sent mbufs only on a
//! later `tx_burst`, and does not give the fill-ring mbufs back on stop/close.
//!
//! Known quirk: `rte_pktmbuf_alloc_bulk`/`rte_mempool_get_bulk` on an exhausted pool return
//! `-ENOBUFS` with the default `ring_mp_mc` handler although DPDK documents `-ENOENT`; treat any
//! negative value as exhaustion.
//!
//! # Safety
//!
//! Every item is a raw C binding. The caller upholds DPDK's contracts: EAL initialised once per
//! process before any other call, mbufs and mempools used only while alive, burst arrays valid for
//! the given counts, a port queue polled by one thread at a time.

#[cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unnecessary_transmutes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    rustdoc::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]
pub use bindings::*;

#[cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]
pub mod fast;

/// True when this build contains the DPDK bindings (feature `dpdk` on and not an offline /
/// docs.rs build); false for the empty crate.
pub const BINDINGS: bool = cfg!(all(feature = "dpdk", not(mgw_dpdk_offline)));

/// The `pkg-config --modversion libdpdk` the bindings were generated against.
#[cfg(all(feature = "dpdk", not(mgw_dpdk_offline)))]
pub const DPDK_VERSION: &str = env!("MGW_DPDK_VERSION");

/// The directory Debian's shared-linked EAL loads poll-mode driver plugins from at
/// `rte_eal_init` (so `--vdev=net_null0` needs no `-d`). For diagnostics and `-d` fallbacks.
pub const DEBIAN_PMD_DIR: &str = "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0";
