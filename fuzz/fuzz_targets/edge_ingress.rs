//! Fuzzes the L2/L3 edge with arbitrary frames: it must never panic and every frame must end as
//! exactly one of deliver, reply or a counted drop.
#![no_main]

use mgw_core::buf::Pool;
use mgw_core::edge::{Edge, EdgeConfig, Ingress};
use mgw_core::time::Instant;
use mgw_core::wire::{EthernetAddress, Ipv4Address};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let pool = Pool::new(2, 16_384);
    let mut edge = Edge::new(EdgeConfig::single(
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        Ipv4Address([10, 0, 0, 1]),
        24,
    ));
    if let Some(buf) = pool.alloc_from(&data[..data.len().min(16_000)]) {
        match edge.ingress(Instant::ZERO, buf) {
            Ingress::Deliver { .. } | Ingress::Reply(_) | Ingress::Dropped(_) => {}
        }
    }
});
