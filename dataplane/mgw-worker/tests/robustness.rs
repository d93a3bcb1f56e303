//! Nothing a peer sends crashes the worker: random frames, and valid frames with random
//! mutations, aimed at installed UDP, DTLS, TCP and TLS legs, are dropped and counted.

use mgw_core::buf::{PacketBuffer, Pool};
use mgw_core::edge::{Edge, EdgeConfig, Egress};
use mgw_core::port::{Batch, Node, Port};
use mgw_core::rng::Rng;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{
    EthernetAddress, IpAddress, IpProtocol, Ipv4Address, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
    UdpPacket, UdpRepr,
};
use mgw_ports::mem::{pair, MemConfig, MemPort};
use mgw_tls::{
    DtlsConfig, HashFunction, Identity, PeerFingerprints, SecurityRole, TlsContext, TlsSettings,
};
use mgw_worker::*;
use std::net::SocketAddr;
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 6, 0, 1]);
const PEER: Ipv4Address = Ipv4Address([10, 6, 0, 2]);

fn frame(
    edge: &mut Edge,
    pool: &Pool,
    proto: IpProtocol,
    l4: &[u8],
) -> Option<mgw_core::buf::PktBuf> {
    let mut b = pool.alloc_from(l4)?;
    (edge.encap_ipv4(Instant::ZERO, &mut b, PEER, GW, proto) == Egress::Ready).then_some(b)
}

#[test]
fn random_and_mutated_traffic_never_crashes_the_worker() {
    let id = Identity::generate_self_signed("mgwd").unwrap();
    let pool = Pool::new(8192, 2048);
    let vc = VirtualClock::new();
    let mem = MemConfig {
        mac_a: EthernetAddress([2, 0, 0, 0, 6, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 6, 2]),
        ..MemConfig::default()
    };
    let (wport, mut pport): (MemPort, MemPort) = pair(&pool, &Clock::Virtual(vc.clone()), &mem);
    let (ctl, wend) = channel(64, 4096);
    let mut cfg = WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24));
    cfg.tls = Some(TlsContext::new(TlsSettings::default(), id.clone()).unwrap());
    cfg.dtls = Some(DtlsConfig::new(&id, 1200, Duration::from_secs(5)).unwrap());
    let mut worker = Worker::new(wport, cfg, wend).unwrap();
    let fps = PeerFingerprints::one(id.fingerprint(HashFunction::Sha256));
    let leg = |port: u16, transport, open| LegProgram {
        local: SocketAddr::from((GW.0, port)),
        remote: None,
        transport,
        tcp_role: open,
        establish_now: true,
        latching: true,
        security_role: SecurityRole::Server,
        peer_fingerprints: fps,
        msrp: None,
    };
    let contexts = [
        (
            Application::Udptl,
            [
                leg(5000, Transport::DtlsUdp, TcpRole::Passive),
                leg(5001, Transport::Udp, TcpRole::Passive),
            ],
        ),
        (
            Application::Bfcp,
            [
                leg(5002, Transport::Udp, TcpRole::Passive),
                leg(5003, Transport::Udp, TcpRole::Passive),
            ],
        ),
        (
            Application::Msrp,
            [
                leg(6000, Transport::TlsTcp, TcpRole::Passive),
                leg(6001, Transport::Tcp, TcpRole::Passive),
            ],
        ),
    ];
    for (i, (app, legs)) in contexts.into_iter().enumerate() {
        ctl.send(FlowOp::Install(ContextProgram {
            context: i as u32,
            generation: 1,
            application: app,
            aware: true,
            legs,
        }))
        .unwrap();
    }
    let mut edge = Edge::new(EdgeConfig::single(mem.mac_b, PEER, 24));
    edge.add_neighbor(Instant::ZERO, GW, mem.mac_a);
    worker.edge().add_neighbor(Instant::ZERO, PEER, mem.mac_b);
    let mut rng = Rng::new(0x5eed);
    let (src, dst) = (IpAddress::V4(PEER), IpAddress::V4(GW));
    let mut t = Instant::ZERO;
    for round in 0..3000u32 {
        let mut batch = Batch::new(32);
        for _ in 0..8 {
            let mut payload = vec![0u8; rng.below(300) as usize];
            rng.fill(&mut payload);
            let port = [5000, 5001, 5002, 5003, 6000, 6001][rng.below(6) as usize];
            let f = match rng.below(4) {
                // Raw garbage as an Ethernet frame.
                0 => pool.alloc_from(&payload),
                // A valid UDP datagram with a random payload.
                1 => {
                    let mut d = vec![0u8; 8 + payload.len()];
                    UdpRepr {
                        src_port: 7000,
                        dst_port: port,
                    }
                    .emit(
                        &mut UdpPacket::new_unchecked(&mut d[..]),
                        &src,
                        &dst,
                        &payload,
                    )
                    .unwrap();
                    frame(&mut edge, &pool, IpProtocol::Udp, &d)
                }
                // A TCP segment with random flags, numbers and payload.
                2 => {
                    let r = TcpRepr {
                        src_port: 40_000 + (round % 4) as u16,
                        dst_port: port,
                        seq: rng.next_u64() as u32,
                        ack: rng.next_u64() as u32,
                        flags: TcpFlags(rng.next_u64() as u8),
                        window: rng.next_u64() as u16,
                        urgent: 0,
                        options: TcpOptions {
                            mss: Some(1460),
                            ..TcpOptions::default()
                        },
                        payload: &payload,
                    };
                    let mut d = vec![0u8; r.buffer_len()];
                    r.emit(&mut TcpPacket::new_unchecked(&mut d[..]), &src, &dst)
                        .unwrap();
                    frame(&mut edge, &pool, IpProtocol::Tcp, &d)
                }
                // A valid-looking frame with one byte flipped anywhere.
                _ => {
                    let mut d = vec![0u8; 8 + payload.len()];
                    UdpRepr {
                        src_port: 7000,
                        dst_port: port,
                    }
                    .emit(
                        &mut UdpPacket::new_unchecked(&mut d[..]),
                        &src,
                        &dst,
                        &payload,
                    )
                    .unwrap();
                    frame(&mut edge, &pool, IpProtocol::Udp, &d).map(|mut b| {
                        let n = b.len();
                        let i = rng.below(n as u64) as usize;
                        b.as_mut()[i] ^= 1 << rng.below(8);
                        b
                    })
                }
            };
            if let Some(f) = f {
                let _ = batch.push(f);
            }
        }
        pport.tx_burst(&mut batch);
        t += Duration::from_millis(3);
        vc.set(t);
        worker.poll(t);
        // Drain what the worker sends back (SYN-ACKs, RSTs, alerts).
        let mut rx = Batch::new(64);
        while pport.rx_burst(&mut rx) > 0 {
            rx.clear();
        }
        while ctl.recv().is_some() {}
    }
    let s = worker.stats();
    let tcp = worker.tcp_counters();
    assert!(
        s.bad_l4 > 0 && s.no_flow + s.app_errors + s.wrong_source > 0,
        "{s:?}"
    );
    assert!(tcp.segments_in > 0, "{tcp:?}");
    // The worker is still serving: pool buffers come back.
    drop(worker);
    assert_eq!(pool.available(), pool.capacity());
}
