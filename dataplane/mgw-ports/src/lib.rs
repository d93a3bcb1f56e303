//! The port backends of the data plane, each an implementation of [`mgw_core::port::Port`]:
//! - [`mem`]: two in-memory ports joined by a simulated link (the simulator, `mgwd lab`,
//!   benches);
//! - [`afpacket`]: a Linux AF_PACKET socket (`mgwd run` without DPDK, the netns tests);
//! - `dpdk` (feature `dpdk`): DPDK ethdev queues on `rte_mbuf`;
//! - [`multi`]: several ports (one per realm) seen as one.
//!
//! Wrappers stack on any port: [`pcap::PcapPort`] records what crosses it,
//! [`fault::FaultInjector`] drops and corrupts. This is the crate of the data plane that does I/O;
//! the protocol cores do not depend on it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod afpacket;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod fault;
pub mod mem;
pub mod multi;
pub mod pcap;
