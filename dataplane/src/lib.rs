//! The mgwd data plane: packet buffers and pools, the burst [`port::Port`] trait and its backends,
//! typed wire views, the L2/L3 edge, and the deterministic simulator.
//!
//! Everything here that runs per packet is allocation-free once warm, takes no locks and makes no
//! syscalls, except the backends whose job is I/O (pcap file writing is a debugging wrapper).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buf;
pub mod edge;
pub mod host;
pub mod port;
pub mod rng;
pub mod sim;
pub mod testkit;
pub mod time;
pub mod wire;
