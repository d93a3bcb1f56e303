//! The mgwd worker: one per core. It owns a port, the L2/L3 edge, a flow table keyed by local
//! address and port, and the legs of the contexts the control thread installs; it relays
//! application data between the two legs of each context and reports events back.
//!
//! The control thread talks to it only through [`flow`]'s rings. With the `testing` feature it
//! also carries simulated TCP, TLS and DTLS peers ([`peer`]) for tests, benches and `mgwd lab`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod flow;
#[cfg(any(test, feature = "testing"))]
pub mod peer;
pub mod steer;
mod stream;
mod timers;
pub mod worker;

pub use flow::{
    channel, Application, ContextId, ContextProgram, ControlEnd, Doorbell, FlowEvent, FlowOp,
    InstallFailure, LegProgram, LegStats, SecurityFailure, Side, TcpFailure, TcpRole, Transport,
    WorkerEnd,
};
pub use steer::{ClaimError, Redirect, Steering};
pub use worker::{Worker, WorkerConfig, WorkerStats};
