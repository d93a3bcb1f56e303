//! Criterion micro-benchmarks of the foundation: buffer pool alloc/free and `mem` port bursts.
//! Throughput is reported in elements (packets) per second.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mgw_core::buf::{PacketBuffer, Pool};
use mgw_core::port::{Batch, Port, BURST};
use mgw_core::time::{Clock, VirtualClock};
use mgw_ports::mem::{pair, MemConfig};
use std::hint::black_box;

fn pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool");
    let pool = Pool::new(1024, 2048);
    pool.prefill();
    g.throughput(Throughput::Elements(1));
    g.bench_function("alloc_free", |b| b.iter(|| black_box(pool.alloc())));
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("alloc_free_burst32", |b| {
        let mut batch = Batch::new(BURST);
        b.iter(|| {
            for _ in 0..BURST {
                let _ = batch.push(pool.alloc().expect("pool sized for a burst"));
            }
            batch.clear();
        })
    });
    g.finish();
}

fn mem_port(c: &mut Criterion) {
    let mut g = c.benchmark_group("mem_port");
    let pool = Pool::new(4096, 2048);
    pool.prefill();
    let clock = Clock::Virtual(VirtualClock::new());
    let (mut a, mut b) = pair(&pool, &clock, &MemConfig::default());
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("tx_rx_burst32_64B", |bench| {
        let mut tx = Batch::new(BURST);
        let mut rx = Batch::new(BURST);
        bench.iter_batched(
            || (),
            |()| {
                for _ in 0..BURST {
                    let mut p = pool.alloc().expect("pool sized for a burst");
                    p.append(64).expect("room").fill(0xab);
                    let _ = tx.push(p);
                }
                a.tx_burst(&mut tx);
                b.rx_burst(&mut rx);
                rx.clear();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, pool, mem_port);
criterion_main!(benches);
