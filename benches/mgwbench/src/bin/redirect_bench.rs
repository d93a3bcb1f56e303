//! JSON benchmark of software redirect between workers (issue 7, `mgw_worker::steer`).
//!
//! A frame received by the wrong worker costs: peek (Ethernet → IPv4 → L4 destination port),
//! owner lookup, push into the owner's lock-free inbox, pop there. Figures:
//! - `steer_decision`: peek + owner lookup alone, one thread (what every received frame pays
//!   once steering is on, redirected or not);
//! - `peek_only`: the header peek alone;
//! - `push_pop_1thread`: push + pop on one thread (the queue without cross-core traffic);
//! - `local_2threads`: two receiver threads; each takes a pool buffer, writes a 60-byte UDP
//!   frame into it (standing in for the NIC's DMA), decides (owned here), touches and frees it;
//! - `redirect_2threads`: the same receivers, but every frame is owned by the other thread:
//!   pushed into its inbox, popped, touched and freed there (the buffer returns to the shared
//!   pool from the other core, as an mbuf would);
//! - `redirect_cost_ns`: the difference per frame between the two: the price of one redirect.
//!
//! Every figure is the fastest of many rounds of 4,096 frames (so that a busy machine's
//! preemptions do not count). In the two-thread figures the send and the handle phases are
//! separated by a barrier (so the scheduler does not turn them into waiting times); they count
//! the cross-core cache traffic of the hand-off when the threads run on different cores.
//!
//! Usage: `cargo run --profile ci -p mgwbench --bin redirect_bench`

use mgw_core::buf::{PacketBuffer, PktBuf, Pool};
use mgw_core::wire::Ipv4Address;
use mgw_worker::steer::peek_ipv4_l4_dst;
use mgw_worker::{Redirect, Steering};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GW: Ipv4Address = Ipv4Address([192, 0, 2, 1]);
const RUN: Duration = Duration::from_millis(400);

/// A 60-byte Ethernet/IPv4/UDP frame to GW:`dport`.
fn frame(dport: u16) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 51, 100, 7]);
    ip[16..20].copy_from_slice(&GW.0);
    f[34..36].copy_from_slice(&7000u16.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// Frames per second through `f` (which handles one frame), one thread: the fastest of many
/// short rounds (a busy machine preempts some rounds; the fastest is the cost itself).
fn rate_1(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    let start = Instant::now();
    while start.elapsed() < RUN {
        let t = Instant::now();
        for _ in 0..4096 {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 4096.0);
    }
    1e9 / best
}

/// Frames per round and thread (the inbox holds a whole round: no waiting inside the timing).
const BATCH: usize = 4096;
/// Rounds; the fastest is kept (a round the scheduler interrupted is slow, not representative).
const ROUNDS: usize = 200;

/// Two receiver threads (workers 0 and 1), each receiving `BATCH` frames per round to its own
/// port (`redirect` false: decided local and handled) or to the other's (pushed into its inbox,
/// then, after a barrier, the other's frames popped from its own inbox and handled). Handling
/// is touching the frame and freeing it to the shared pool. Returns the fastest round's
/// nanoseconds per frame per thread (receive side plus owner side), and the redirects made.
fn two_workers(redirect: bool) -> (f64, u64) {
    let steering = Steering::<PktBuf>::new(&[GW], 2, BATCH);
    let pool = Pool::new(4 * BATCH + 64, 2048);
    pool.prefill();
    // Port 5000 is worker 0's, 5001 worker 1's.
    steering.claim(GW, 5000, 0).unwrap();
    steering.claim(GW, 5001, 1).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2usize)
        .map(|me| {
            let (steering, pool, barrier) =
                (Arc::clone(&steering), pool.clone(), Arc::clone(&barrier));
            let dport = if redirect {
                5001 - me as u16
            } else {
                5000 + me as u16
            };
            let template = frame(dport);
            std::thread::spawn(move || {
                let (mut best, mut out) = (f64::MAX, 0u64);
                for _ in 0..ROUNDS {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..BATCH {
                        let Some(mut b) = pool.alloc() else { continue };
                        let Some(room) = b.append(template.len()) else {
                            continue;
                        };
                        room.copy_from_slice(&template);
                        match steering.owner_of_frame(b.as_ref()) {
                            Some(w) if w != me => {
                                out += 1;
                                // Cannot be full: it holds a whole round.
                                let _ = steering.push(w, Redirect::Frame(b));
                            }
                            _ => {
                                black_box(b.as_ref()[0]);
                            }
                        }
                    }
                    let sent = start.elapsed();
                    barrier.wait();
                    let start = Instant::now();
                    while let Some(m) = steering.pop(me) {
                        if let Redirect::Frame(b) = m {
                            black_box(b.as_ref()[0]);
                        }
                    }
                    let handled = start.elapsed();
                    best = best.min((sent + handled).as_nanos() as f64 / BATCH as f64);
                }
                (best, out)
            })
        })
        .collect();
    let mut ns = 0.0;
    let mut redirects = 0;
    for h in handles {
        let (best, out) = h.join().unwrap();
        ns += best / 2.0;
        redirects += out;
    }
    (ns, redirects)
}

fn main() {
    let steering = Steering::<PktBuf>::new(&[GW, Ipv4Address([192, 0, 2, 2])], 2, 1024);
    steering.claim(GW, 5000, 0).unwrap();
    let f = frame(5000);
    let decision = rate_1(|| {
        black_box(steering.owner_of_frame(black_box(&f[..])));
    });
    let peek = rate_1(|| {
        black_box(peek_ipv4_l4_dst(black_box(&f[..])));
    });

    let pool = Pool::new(64, 2048);
    pool.prefill();
    let buf = pool.alloc_from(&f).unwrap();
    let mut slot = Some(buf);
    let push_pop = rate_1(|| {
        if let Some(b) = slot.take() {
            let _ = steering.push(1, Redirect::Frame(b));
        }
        if let Some(Redirect::Frame(b)) = steering.pop(1) {
            slot = Some(b);
        }
    });

    let (local, _) = two_workers(false);
    let (redirected, redirects) = two_workers(true);
    let ns = |r: f64| 1e9 / r;
    let out = json!({
        "bench": "redirect",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "steer_decision": { "frames_per_s": decision, "ns_per_frame": ns(decision) },
        "peek_only": { "frames_per_s": peek, "ns_per_frame": ns(peek) },
        "push_pop_1thread": { "frames_per_s": push_pop, "ns_per_frame": ns(push_pop) },
        "local_2threads": { "ns_per_frame": local, "frames_per_s_per_core": 1e9 / local },
        "redirect_2threads": {
            "ns_per_frame": redirected,
            "frames_per_s_per_core": 1e9 / redirected,
            "redirects": redirects,
        },
        "redirect_cost_ns": redirected - local,
    });
    println!("{out}");
}
