//! mgwd control plane: the H.248.1 text codec, SDP, the H.248 transaction layer, the MGC
//! association, the MG model (contexts, terminations, packages) and the eMEDIASEC procedures
//! that turn descriptors into leg specifications for the data plane.
//!
//! Everything except [`server`] is sans-IO: bytes and `now` in; bytes, events and deadlines
//! out. See [`manual`] for the design decisions, defaults and limits.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod h248;
pub mod manual;
pub mod procedures;
pub mod sdp;
pub mod server;
