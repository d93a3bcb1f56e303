//! Proves the data path allocates nothing once a connection is up: a counting global allocator
//! wraps a steady-state bulk transfer (both directions, with ACKs, delayed ACKs, window updates
//! and ring wrap-around) between two stacks over a preallocated in-memory pipe.

mod support;

use mgw_core::testkit::CountingAllocator;
use mgw_core::time::Instant;
use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{IpAddress, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr};
use mgw_tcp::{Config, ConnId, EventKind, SegmentSink, Stack};
use support::wire::{ipv4_frame, v4};

/// Counts allocations per thread while switched on (see `mgw_core::testkit`).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// A preallocated ring of frames.
struct Pipe {
    slots: Vec<Vec<u8>>,
    lens: Vec<usize>,
    head: usize,
    count: usize,
}

impl Pipe {
    fn new(n: usize) -> Pipe {
        Pipe {
            slots: (0..n).map(|_| vec![0u8; 2048]).collect(),
            lens: vec![0; n],
            head: 0,
            count: 0,
        }
    }
}

impl SegmentSink for Pipe {
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        if self.count == self.slots.len() {
            return false;
        }
        let i = (self.head + self.count) % self.slots.len();
        self.lens[i] = ipv4_frame(v4(src), v4(dst), seg, &mut self.slots[i]);
        self.count += 1;
        true
    }
}

fn deliver(now: Instant, from: &mut Pipe, to: &mut Stack, back: &mut Pipe) {
    while from.count > 0 {
        let i = from.head;
        from.head = (from.head + 1) % from.slots.len();
        from.count -= 1;
        let bytes = &from.slots[i][..from.lens[i]];
        let ip = Ipv4Packet::new_checked(bytes).unwrap();
        let ipr = Ipv4Repr::parse(&ip, true).unwrap();
        let (src, dst) = (IpAddress::V4(ipr.src_addr), IpAddress::V4(ipr.dst_addr));
        let tp = TcpPacket::new_checked(ip.payload()).unwrap();
        let seg = TcpRepr::parse(&tp, &src, &dst, ChecksumCheck::Verify).unwrap();
        to.on_segment(now, src, dst, &seg, back);
    }
}

#[test]
fn steady_state_transfer_allocates_nothing() {
    let cfg = Config {
        max_connections: 4,
        send_buffer: 64 * 1024,
        recv_buffer: 64 * 1024,
        ..Config::default()
    };
    let mut a = Stack::new(cfg.clone()).unwrap();
    let mut b = Stack::new(cfg).unwrap();
    let mut ab = Pipe::new(1024);
    let mut ba = Pipe::new(1024);
    let a_addr = IpAddress::V4(Ipv4Address([10, 9, 0, 1]));
    let b_addr = IpAddress::V4(Ipv4Address([10, 9, 0, 2]));
    b.listen(b_addr, 443).unwrap();
    let mut now = Instant::from_millis(1000);
    let ca = a.connect(now, (a_addr, 50_000), (b_addr, 443)).unwrap();
    let mut cb: Option<ConnId> = None;
    let chunk = [0x5au8; 1000];
    let mut sink_buf = [0u8; 16 * 1024];
    let mut moved = [0u64; 2];
    let mut step = |now: Instant,
                    a: &mut Stack,
                    b: &mut Stack,
                    ab: &mut Pipe,
                    ba: &mut Pipe,
                    cb: &mut Option<ConnId>,
                    moved: &mut [u64; 2]| {
        a.poll(now, ab);
        b.poll(now, ba);
        deliver(now, ab, b, ba);
        deliver(now, ba, a, ab);
        while let Some(e) = b.poll_event() {
            if let EventKind::Accepted { .. } = e.kind {
                *cb = Some(e.conn);
            }
        }
        while a.poll_event().is_some() {}
        // Both directions: A sends bulk, B echoes a trickle back.
        while let Ok(n) = a.send(ca, &chunk) {
            if n == 0 {
                break;
            }
        }
        if let Some(cb) = *cb {
            let _ = b.send(cb, &chunk[..100]);
            let n = b.recv(cb, &mut sink_buf).unwrap();
            moved[0] += n as u64;
        }
        let n = a.recv(ca, &mut sink_buf).unwrap();
        moved[1] += n as u64;
    };
    // Warm up: handshake and a few MB, so every lazily-touched structure is in use.
    for _ in 0..500 {
        now += core::time::Duration::from_micros(50);
        step(now, &mut a, &mut b, &mut ab, &mut ba, &mut cb, &mut moved);
    }
    assert!(cb.is_some(), "connection never came up");
    assert!(
        moved[0] > 1_000_000,
        "warm-up moved only {} bytes",
        moved[0]
    );
    let before = moved;
    CountingAllocator::set_counting(true);
    // The counter itself works: one box, one allocation.
    drop(std::hint::black_box(Box::new(1u64)));
    assert_eq!(CountingAllocator::take(), 1);
    for _ in 0..3_000 {
        now += core::time::Duration::from_micros(50);
        step(now, &mut a, &mut b, &mut ab, &mut ba, &mut cb, &mut moved);
    }
    CountingAllocator::set_counting(false);
    let allocs = CountingAllocator::allocations();
    let bulk = moved[0] - before[0];
    let back = moved[1] - before[1];
    eprintln!("steady state: {bulk} bytes A→B, {back} bytes B→A, {allocs} allocations");
    assert!(bulk > 10_000_000, "only {bulk} bytes moved");
    assert!(back > 100_000, "only {back} bytes moved back");
    assert_eq!(allocs, 0, "the data path allocated");
}
