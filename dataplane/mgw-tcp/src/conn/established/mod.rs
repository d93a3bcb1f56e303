//! ESTABLISHED and the data-carrying states: sending, receiving, timers, congestion control.

pub mod congestion;
pub(crate) mod receiver;
pub(crate) mod rto;
pub(crate) mod sender;
