//! mgw-app: application awareness for mgwd's relay: MSRP (RFC 4975/4976), BFCP (RFC 8855) and
//! T.38 UDPTL (ITU-T T.38 clause 9 / Annex D style over UDP).
//!
//! Every parser here is sans-IO: bytes (and, for reassembly, `now`) in; events, ranges and
//! counters out. Nothing allocates once a flow is set up (buffers are sized at construction),
//! nothing reads a clock, and no input can make a parser panic: bad input is a small error enum
//! that the relay counts.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bfcp;
pub mod msrp;
pub mod udptl;
