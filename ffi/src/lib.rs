//! DPDK bindings (see issue 7). Without feature `dpdk` this crate is empty so docs and the default build work without DPDK.
