//! The data plane's core: packet buffers and pools, the burst [`port::Port`] trait, typed wire
//! views, the L2/L3 edge, time, the simulated link, and the words both planes use for legs
//! ([`leg`]).
//!
//! No I/O and no libc: the port backends are in `mgw-ports`. Everything here that runs per
//! packet is allocation-free once warm, takes no locks and makes no syscalls.
//!
//! With the `testing` feature it also carries test scaffolding: the simulator's driver
//! ([`sim`]), simulated hosts ([`host`]) and the peer-tool check ([`testkit`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buf;
pub mod edge;
#[cfg(any(test, feature = "testing"))]
pub mod host;
pub mod leg;
pub mod link;
pub mod port;
pub mod rng;
#[cfg(any(test, feature = "testing"))]
pub mod sim;
#[cfg(any(test, feature = "testing"))]
pub mod testkit;
pub mod time;
pub mod wire;
