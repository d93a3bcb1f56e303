//! The `mgwd` binary's library: the control thread's glue to the workers ([`gateway`]), the
//! daemon ([`run`], configured by [`config`]), the embedded demo ([`lab`]) and the poll loops' idle
//! policy ([`poll`]).

pub mod config;
pub mod gateway;
pub mod lab;
pub mod metrics;
pub mod poll;
pub mod run;
