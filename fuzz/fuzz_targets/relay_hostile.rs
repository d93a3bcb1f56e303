//! Fuzz the worker's relay with hostile bytes on either leg: a worker and a peer host (real TCP
//! stack) on an in-memory link, three aware contexts (MSRP over TCP with path rewriting, BFCP
//! over UDP, UDPTL over UDP), a UE connected to the MSRP access leg and the core accepting the
//! worker's connection. The input is a sequence of operations: stream bytes from the UE or the
//! core, UDP datagrams from either side to any leg (UDP legs, and the TCP legs' ports), and time
//! steps.
//!
//! Invariants: no panic; the worker never holds more contexts than were installed; after the
//! contexts are released and everything is dropped, every packet buffer is back in the pool.
#![no_main]

use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::link::LinkModel;
use mgw_core::sim::Sim;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig};
use mgw_tcp::EventKind;
use mgw_tls::{PeerFingerprints, SecurityRole};
use mgw_worker::flow::MsrpRoute;
use mgw_worker::peer::TcpHost;
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 8, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 8, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 8, 0, 3]);

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

fn leg(
    local: SocketAddr,
    remote: Option<SocketAddr>,
    transport: Transport,
    tcp_role: TcpRole,
    msrp: Option<MsrpRoute>,
) -> LegProgram {
    LegProgram {
        local,
        remote,
        transport,
        tcp_role,
        establish_now: true,
        latching: remote.is_none(),
        security_role: SecurityRole::Server,
        peer_fingerprints: PeerFingerprints::new(),
        msrp,
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let pool = Pool::new(512, 2048);
    let vc = VirtualClock::new();
    let link = LinkModel {
        delay: Duration::from_millis(1),
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let mem = MemConfig {
        a_to_b: link.clone(),
        b_to_a: link,
        mac_a: EthernetAddress([2, 0, 0, 0, 8, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 8, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &Clock::Virtual(vc.clone()), &mem);
    let (ctl, wend) = channel(16, 256);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.max_contexts = 8;
    cfg.tcp.max_connections = 16;
    let mut worker = Worker::new(wport, cfg, wend).expect("worker");
    let mut pe = EdgeConfig::single(mem.mac_b, UE, 24);
    pe.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let mut peers = TcpHost::new(
        pport,
        pe,
        mgw_tcp::Config {
            max_connections: 16,
            ..mgw_tcp::Config::default()
        },
    )
    .expect("peer host");
    peers.tcp.listen(IpAddress::V4(CORE), 2855).unwrap();
    let route = |l: &str, r: &str| MsrpRoute::new(l.as_bytes(), r.as_bytes());
    let contexts = [
        (
            Application::Msrp,
            [
                leg(
                    sa(GW, 2855),
                    None,
                    Transport::Tcp,
                    TcpRole::Passive,
                    route(
                        "msrp://10.8.0.1:2855/gw1;tcp",
                        "msrp://10.8.0.2:50000/ue1;tcp",
                    ),
                ),
                leg(
                    sa(GW, 40001),
                    Some(sa(CORE, 2855)),
                    Transport::Tcp,
                    TcpRole::Active,
                    route(
                        "msrp://10.8.0.1:40001/gwc;tcp",
                        "msrp://10.8.0.3:2855/core1;tcp",
                    ),
                ),
            ],
        ),
        (
            Application::Bfcp,
            [
                leg(sa(GW, 5002), None, Transport::Udp, TcpRole::Passive, None),
                leg(
                    sa(GW, 5003),
                    Some(sa(CORE, 5003)),
                    Transport::Udp,
                    TcpRole::Passive,
                    None,
                ),
            ],
        ),
        (
            Application::Udptl,
            [
                leg(sa(GW, 5004), None, Transport::Udp, TcpRole::Passive, None),
                leg(
                    sa(GW, 5005),
                    Some(sa(CORE, 5005)),
                    Transport::Udp,
                    TcpRole::Passive,
                    None,
                ),
            ],
        ),
    ];
    for (i, (application, legs)) in contexts.into_iter().enumerate() {
        ctl.send(FlowOp::Install(ContextProgram {
            context: i as u32 + 1,
            generation: 1,
            application,
            aware: true,
            legs,
        }))
        .unwrap();
    }
    let mut t = Instant::ZERO;
    let mut step = |worker: &mut Worker<_>, peers: &mut TcpHost<_>, ms: u64| {
        t += Duration::from_millis(ms.max(1));
        vc.set(t);
        peers.flush();
        let mut sim = Sim::new(vc.clone(), vec![worker, peers]);
        sim.run(t, 2_000, || false);
    };
    step(&mut worker, &mut peers, 2);
    let ue = peers
        .tcp
        .connect(
            peers.now(),
            (IpAddress::V4(UE), 50000),
            (IpAddress::V4(GW), 2855),
        )
        .ok();
    let mut core = None;
    step(&mut worker, &mut peers, 5);
    step(&mut worker, &mut peers, 5);

    let mut input = data;
    let mut rx = vec![0u8; 1 << 14];
    let mut ops = 0;
    while let Some((&op, rest)) = input.split_first() {
        ops += 1;
        if ops > 64 {
            break;
        }
        let n = usize::from(rest.first().copied().unwrap_or(0)).min(rest.len().saturating_sub(1));
        let payload = rest.get(1..1 + n).unwrap_or(&[]);
        input = rest.get(1 + n..).unwrap_or(&[]);
        match op % 5 {
            0 => {
                if let Some(c) = ue {
                    let _ = peers.tcp.send(c, payload);
                }
            }
            1 => {
                if let Some(c) = core {
                    let _ = peers.tcp.send(c, payload);
                }
            }
            2 => {
                let port = [5002, 5004, 5003, 5005, 2855, 40001][usize::from(op >> 3) % 6];
                let _ = peers.send_udp(sa(UE, 7000), sa(GW, port), payload);
            }
            3 => {
                let port = if op & 8 == 0 { 5003 } else { 5005 };
                let _ = peers.send_udp(sa(CORE, port), sa(GW, port), payload);
            }
            _ => step(&mut worker, &mut peers, u64::from(op >> 3) * 10),
        }
        step(&mut worker, &mut peers, 1);
        while let Some(ev) = peers.tcp.poll_event() {
            if let EventKind::Accepted { .. } = ev.kind {
                core = Some(ev.conn);
            }
        }
        // Read what the relay delivers, so flow control never stalls it.
        for c in [ue, core].into_iter().flatten() {
            while peers.tcp.recv(c, &mut rx).is_ok_and(|n| n > 0) {}
        }
        while peers.udp_in.pop_front().is_some() {}
        while ctl.recv().is_some() {}
        assert!(worker.contexts() <= 3, "more contexts than were installed");
    }
    for context in 1..=3 {
        let _ = ctl.send(FlowOp::Release {
            context,
            generation: 1,
        });
    }
    for _ in 0..4 {
        step(&mut worker, &mut peers, 50);
    }
    assert_eq!(worker.contexts(), 0, "a released context lingers");
    drop(worker);
    drop(peers);
    assert_eq!(pool.available(), pool.capacity(), "packet buffers leaked");
});
