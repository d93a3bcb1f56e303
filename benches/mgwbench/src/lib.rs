//! Shared helpers for the mgwd benchmarks.

pub mod msrp_load;
