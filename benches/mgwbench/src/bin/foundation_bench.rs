//! JSON benchmark of the foundation: buffer pool alloc/free and `mem` port tx/rx bursts, in
//! packets per second on one core. Bounded: each figure runs for about a second.
//!
//! `cargo run --release -p mgwbench --bin foundation_bench`

use mgw_core::buf::{PacketBuffer, Pool};
use mgw_core::port::{Batch, Port, BURST};
use mgw_core::time::{Clock, VirtualClock};
use mgw_ports::mem::{pair, MemConfig};
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs `f` (which does `per_call` units of work) repeatedly for about `budget`, returns units/s.
fn rate(budget: Duration, per_call: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            f();
        }
        calls += 256;
    }
    (calls * per_call) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_millis(1000);
    let pool = Pool::new(4096, 2048);
    pool.prefill();

    let alloc_free = rate(budget, 1, || drop(black_box(pool.alloc())));

    let mut batch = Batch::new(BURST);
    let alloc_free_burst = rate(budget, BURST as u64, || {
        for _ in 0..BURST {
            let _ = batch.push(pool.alloc().expect("pool sized for a burst"));
        }
        batch.clear();
    });

    let clock = Clock::Virtual(VirtualClock::new());
    let (mut a, mut b) = pair(&pool, &clock, &MemConfig::default());
    let mut tx = Batch::new(BURST);
    let mut rx = Batch::new(BURST);
    let mut moved = 0u64;
    let port_pps = rate(budget, BURST as u64, || {
        for _ in 0..BURST {
            let mut p = pool.alloc().expect("pool sized for a burst");
            p.append(64).expect("room").fill(0xab);
            let _ = tx.push(p);
        }
        a.tx_burst(&mut tx);
        moved += b.rx_burst(&mut rx) as u64;
        rx.clear();
    });
    assert!(moved > 0 && pool.available() == pool.capacity());

    let out = json!({
        "benchmark": "foundation",
        "burst": BURST,
        "pool_alloc_free_per_s": alloc_free,
        "pool_alloc_free_burst32_buffers_per_s": alloc_free_burst,
        "mem_port_tx_rx_64B_pps": port_pps,
        "note": "one core; mem port figure includes buffer alloc, 64 B fill, tx_burst, rx_burst and free",
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
