//! Steady state allocates nothing in the worker: with MSRP over TLS flowing UE → worker → core,
//! a counting global allocator sees zero allocations inside `Worker::poll` once the session is
//! up: with heads passed as they are, and with every head's paths rewritten (aware, no CEMA:
//! both legs carry their URIs). The simulated peers allocate freely; only the worker is counted.

use mgw_app::msrp::MsrpSend;
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::port::Node;
use mgw_core::testkit::CountingAllocator;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig};
use mgw_tcp::EventKind;
use mgw_tls::{HashFunction, Identity, PeerFingerprints, SecurityRole, TlsContext, TlsSettings};
use mgw_worker::peer::{TcpHost, TlsPeer};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

/// Counts allocations per thread while switched on (see `mgw_core::testkit`).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const GW: Ipv4Address = Ipv4Address([10, 8, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 8, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 8, 0, 3]);

#[test]
fn relay_steady_state_allocates_nothing() {
    relay_steady_state(false);
}

#[test]
fn rewriting_relay_steady_state_allocates_nothing() {
    let first_at_core = relay_steady_state(true);
    let head = String::from_utf8_lossy(&first_at_core);
    assert!(
        head.contains("To-Path: msrp://10.8.0.3:30000/core;tcp\r\nFrom-Path: msrp://10.8.0.1:40000/gw-core;tcp\r\n"),
        "the core gets rewritten heads: {head}"
    );
}

/// Relays MSRP over TLS → TCP for 6 s of virtual time (rewriting paths if `rewrite`), counting
/// the worker's allocations over the second half; returns the core's first bytes.
fn relay_steady_state(rewrite: bool) -> Vec<u8> {
    let gw_id = Identity::generate_self_signed("mgwd").unwrap();
    let ue_id = Identity::generate_self_signed("ue").unwrap();
    let pool = Pool::new(16_384, 2048);
    pool.prefill();
    let vc = VirtualClock::new();
    let mem = MemConfig {
        mac_a: EthernetAddress([2, 0, 0, 0, 8, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 8, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &Clock::Virtual(vc.clone()), &mem);
    let (ctl, wend) = channel(64, 1024);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.max_contexts = 8;
    cfg.tls = Some(TlsContext::new(TlsSettings::default(), gw_id.clone()).unwrap());
    let mut worker = Worker::new(wport, cfg, wend).unwrap();
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
    .unwrap();
    peers.tcp.listen(IpAddress::V4(CORE), 30_000).unwrap();
    let ue_fp = PeerFingerprints::one(ue_id.fingerprint(HashFunction::Sha256));
    let leg = |local, remote, transport, open, role, fps| LegProgram {
        local,
        remote,
        transport,
        tcp_role: open,
        establish_now: true,
        latching: true,
        security_role: role,
        peer_fingerprints: fps,
        msrp: None,
    };
    let route = |local: &str, remote: &str| {
        rewrite
            .then(|| flow::MsrpRoute::new(local.as_bytes(), remote.as_bytes()))
            .flatten()
    };
    ctl.send(FlowOp::Install(ContextProgram {
        context: 1,
        generation: 1,
        application: Application::Msrp,
        aware: true,
        legs: [
            LegProgram {
                msrp: route(
                    "msrps://10.8.0.1:2855/gw;tcp",
                    "msrps://10.8.0.2:50000/ue;tcp",
                ),
                ..leg(
                    SocketAddr::from((GW.0, 2855)),
                    None,
                    Transport::TlsTcp,
                    TcpRole::Passive,
                    SecurityRole::Server,
                    ue_fp,
                )
            },
            LegProgram {
                msrp: route(
                    "msrp://10.8.0.1:40000/gw-core;tcp",
                    "msrp://10.8.0.3:30000/core;tcp",
                ),
                ..leg(
                    SocketAddr::from((GW.0, 40_000)),
                    Some(SocketAddr::from((CORE.0, 30_000))),
                    Transport::Tcp,
                    TcpRole::Active,
                    SecurityRole::Client,
                    PeerFingerprints::new(),
                )
            },
        ],
    }))
    .unwrap();
    let ue_ctx = TlsContext::new(TlsSettings::default(), ue_id).unwrap();
    let gw_fp = PeerFingerprints::one(gw_id.fingerprint(HashFunction::Sha256));
    let mut t = Instant::from_millis(1);
    // The counter works: installing a context allocates (its legs' buffers, control rate).
    CountingAllocator::set_counting(true);
    worker.poll(t);
    CountingAllocator::set_counting(false);
    assert!(CountingAllocator::take() > 0, "install is counted");
    let ue_conn = peers
        .tcp
        .connect(t, (IpAddress::V4(UE), 50_000), (IpAddress::V4(GW), 2855))
        .unwrap();
    let mut ue: Option<TlsPeer> = None;
    let mut core = None;
    let mut buf = vec![0u8; 65_536];
    let mut first_at_core = Vec::new();
    // The UE addresses the gateway's URI when the gateway rewrites (it checks To-Path).
    let (to, from) = if rewrite {
        (
            "msrps://10.8.0.1:2855/gw;tcp",
            "msrps://10.8.0.2:50000/ue;tcp",
        )
    } else {
        ("msrps://a/b;tcp", "msrps://c/d;tcp")
    };
    let (mut sent, mut got) = (0u64, 0u64);
    let mut counted_polls = 0u32;
    for round in 0..6000u32 {
        t += Duration::from_millis(1);
        vc.set(t);
        while let Some(ev) = peers.tcp.poll_event() {
            match ev.kind {
                EventKind::Connected if ev.conn == ue_conn => {
                    ue = TlsPeer::client(&ue_ctx, ev.conn, gw_fp, t).ok()
                }
                EventKind::Accepted { .. } => core = Some(ev.conn),
                _ => {}
            }
        }
        if let Some(u) = ue.as_mut() {
            u.drive(&mut peers.tcp, t);
            u.received.clear();
            if u.is_established() && peers.tcp.send_space(u.conn).unwrap_or(0) > 8192 {
                let tid = format!("t{round:08}");
                let m = MsrpSend::new(&tid, to, from, &tid)
                    .body("text/plain", &[b'x'; 300])
                    .to_vec()
                    .expect("a valid SEND");
                sent += u.send(&mut peers.tcp, &m) as u64;
            }
        }
        if let Some(c) = core {
            while let Ok(n @ 1..) = peers.tcp.recv(c, &mut buf) {
                got += n as u64;
                if first_at_core.len() < 200 {
                    first_at_core.extend_from_slice(&buf[..n.min(200)]);
                }
            }
        }
        peers.flush();
        // Count from the moment data has been flowing for a while (warm pools and tables).
        let counting = round >= 3000 && got > 0;
        CountingAllocator::set_counting(counting);
        worker.poll(t);
        CountingAllocator::set_counting(false);
        counted_polls += u32::from(counting);
        peers.poll(t);
    }
    assert!(
        sent > 500_000 && got > 400_000,
        "traffic flowed: sent {sent}, core got {got}"
    );
    assert!(counted_polls > 2000);
    assert_eq!(
        CountingAllocator::allocations(),
        0,
        "allocations inside Worker::poll in steady state"
    );
    first_at_core
}
