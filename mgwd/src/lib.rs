//! The `mgwd` binary's library: the control thread's glue to the workers ([`gateway`]), the
//! daemon ([`run`], configured by [`config`]) and the embedded demo ([`lab`]).

pub mod config;
pub mod gateway;
pub mod lab;
pub mod run;
