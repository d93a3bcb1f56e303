//! Steady state allocates nothing in the worker on a BFCP interworking context with the
//! RFC 8855 §8 transaction layer busy (UE on TCP, core on UDP): the UE's server-initiated
//! FloorStatus (ID chosen, retransmitted until acked, ack absorbed), the core's requests
//! (answered with R set, one in four retransmitted and answered from the cache) and the core's
//! notifications (acked by the gateway, relayed with ID 0). A counting global allocator sees
//! zero allocations inside `Worker::poll` once the flows are up.

use mgw_app::bfcp::{Header, MessageWriter, Primitive};
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::port::Node;
use mgw_core::testkit::CountingAllocator;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig};
use mgw_tcp::EventKind;
use mgw_tls::{PeerFingerprints, SecurityRole};
use mgw_worker::peer::TcpHost;
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

/// Counts allocations per thread while switched on (see `mgw_core::testkit`).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const GW: Ipv4Address = Ipv4Address([10, 6, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 6, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 6, 0, 3]);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

/// Ver `ver`, R `r`, primitive `prim`, Transaction ID `tid`, one FLOOR-ID attribute (`units`
/// 1) or none (`units` 0, an acknowledgement).
fn bfcp(ver: u8, r: bool, prim: u8, tid: u16, units: u8) -> Vec<u8> {
    let mut m = Vec::new();
    let h = Header::new(ver, 9, tid, 7).with_responder(r);
    let mut w = MessageWriter::new(&mut m, &h, Primitive::from(prim));
    if units == 1 {
        w.floor_id(1);
    }
    w.finish().expect("at most one attribute");
    m
}

#[test]
fn interworking_transactions_allocate_nothing_in_steady_state() {
    let pool = Pool::new(8192, 2048);
    pool.prefill();
    let vc = VirtualClock::new();
    let mem = MemConfig {
        mac_a: EthernetAddress([2, 0, 0, 0, 6, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 6, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &Clock::Virtual(vc.clone()), &mem);
    let (ctl, wend) = channel(64, 1024);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.max_contexts = 8;
    let mut worker = Worker::new(wport, cfg, wend).unwrap();
    let mut pe = EdgeConfig::single(mem.mac_b, UE, 24);
    pe.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let mut peers = TcpHost::new(pport, pe, mgw_tcp::Config::default()).unwrap();
    worker.edge().add_neighbor(Instant::ZERO, UE, mem.mac_b);
    worker.edge().add_neighbor(Instant::ZERO, CORE, mem.mac_b);
    let leg = |local, remote, transport| LegProgram {
        local,
        remote,
        transport,
        tcp_role: TcpRole::Passive,
        establish_now: true,
        // The UE's leg has no remote: it learns the UE from its connection (H.248.37).
        latching: remote.is_none(),
        security_role: SecurityRole::Server,
        peer_fingerprints: PeerFingerprints::new(),
        msrp: None,
    };
    ctl.send(FlowOp::Install(ContextProgram {
        context: 1,
        generation: 1,
        application: Application::Bfcp,
        aware: true,
        legs: [
            leg(sa(GW, 2856), None, Transport::Tcp),
            leg(sa(GW, 5002), Some(sa(CORE, 6000)), Transport::Udp),
        ],
    }))
    .unwrap();
    let mut t = Instant::from_millis(1);
    // The counter works: installing a context allocates (its legs' buffers and tables).
    CountingAllocator::set_counting(true);
    worker.poll(t);
    CountingAllocator::set_counting(false);
    assert!(CountingAllocator::take() > 0, "install is counted");
    let ue = peers
        .tcp
        .connect(t, (IpAddress::V4(UE), 40000), (IpAddress::V4(GW), 2856))
        .unwrap();
    let mut up = false;
    let mut ue_buf = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let (mut ue_got, mut core_acks, mut core_answers) = (0u64, 0u64, 0u64);
    let mut counted_polls = 0u32;
    let mut tid = 1u16;
    for round in 0..20_000u32 {
        t += Duration::from_millis(1);
        vc.set(t);
        while let Some(ev) = peers.tcp.poll_event() {
            up |= ev.kind == EventKind::Connected && ev.conn == ue;
        }
        if up {
            // The UE (server over TCP): a FloorStatus notification every 20 ms, and the
            // answer to each FloorQuery it reads.
            while let Ok(n @ 1..) = peers.tcp.recv(ue, &mut buf) {
                ue_buf.extend_from_slice(&buf[..n]);
            }
            while ue_buf.len() >= 12 {
                let n = 12 + 4 * usize::from(u16::from_be_bytes([ue_buf[2], ue_buf[3]]));
                if ue_buf.len() < n {
                    break;
                }
                let m: Vec<u8> = ue_buf.drain(..n).collect();
                ue_got += 1;
                if m[1] == 7 {
                    let id = u16::from_be_bytes([m[8], m[9]]);
                    let _ = peers.tcp.send(ue, &bfcp(1, false, 8, id, 1));
                }
            }
            if round % 20 == 0 {
                let _ = peers.tcp.send(ue, &bfcp(1, false, 8, 0, 1));
            }
            // The core (client over UDP): acks some FloorStatus copies (the others are
            // retransmitted), sends a FloorQuery every 10 ms (one in four twice at once, one
            // in four again 10 ms later) and a FloorRequestStatus notification every 30 ms.
            while let Some((_, _, d)) = peers.udp_in.pop_front() {
                let (r, prim, id) = (d[0] & 0x10 != 0, d[1], u16::from_be_bytes([d[8], d[9]]));
                match (r, prim) {
                    (false, 8) if id % 2 == 0 || round % 3 == 0 => {
                        peers.send_udp(sa(CORE, 6000), sa(GW, 5002), &bfcp(2, true, 15, id, 0));
                    }
                    (true, 8) => core_answers += 1,
                    (true, 14) => core_acks += 1,
                    _ => {}
                }
            }
            if round % 10 == 0 {
                if tid % 4 == 0 {
                    // The previous query again, answered by now: re-sent from the cache.
                    let q = bfcp(2, false, 7, tid, 1);
                    peers.send_udp(sa(CORE, 6000), sa(GW, 5002), &q);
                }
                tid = tid.wrapping_add(1).max(1);
                let q = bfcp(2, false, 7, tid, 1);
                peers.send_udp(sa(CORE, 6000), sa(GW, 5002), &q);
                if tid % 4 == 1 {
                    // Twice at once: the second is absorbed.
                    peers.send_udp(sa(CORE, 6000), sa(GW, 5002), &q);
                }
            }
            if round % 30 == 0 {
                let frs = bfcp(2, false, 4, 0x8000 | tid, 1);
                peers.send_udp(sa(CORE, 6000), sa(GW, 5002), &frs);
            }
        }
        peers.flush();
        // Count once the flows have run for a while (warm pools and tables).
        let counting = round >= 10_000 && ue_got > 0;
        CountingAllocator::set_counting(counting);
        worker.poll(t);
        CountingAllocator::set_counting(false);
        counted_polls += u32::from(counting);
        peers.poll(t);
    }
    let s = worker.stats().bfcp_transactions;
    assert!(counted_polls > 9000);
    assert!(
        s.retransmitted > 20
            && s.acks_absorbed > 100
            && s.acks_sent > 100
            && s.answers_resent > 100
            && s.duplicates_absorbed > 200
            && s.responses_marked > 1000,
        "the transaction layer was busy: {s:?}"
    );
    assert!(ue_got > 1000 && core_acks > 100 && core_answers > 1000);
    assert_eq!(
        CountingAllocator::allocations(),
        0,
        "allocations inside Worker::poll in steady state"
    );
}
