//! Real-peer check of MSRP path rewriting: a capture of the worker's port (both legs plain
//! TCP, so every frame is visible) is read by tshark's `msrp` dissector. Every SEND the UE
//! addressed to the MGW's access URI must appear on the core leg with To-Path = the core's
//! `a=path` and From-Path = the MGW's core URI (RFC 4975 §7.1/§8.1, no CEMA); every 200 OK from
//! the core must reach the UE with the UE's paths; tshark must find no malformed packet.
//!
//! Skips when tshark is missing, unless `MGW_REQUIRE_PEERS=1`.

use mgw_app::msrp::{ByteRange, MsrpResponse, MsrpSend};
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::link::LinkModel;
use mgw_core::sim::Sim;
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_ports::mem::{pair, MemConfig};
use mgw_ports::pcap::PcapPort;
use mgw_tcp::EventKind;
use mgw_tls::{PeerFingerprints, SecurityRole};
use mgw_worker::peer::TcpHost;
use mgw_worker::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const GW: Ipv4Address = Ipv4Address([10, 12, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 12, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 12, 0, 3]);
const GW_ACCESS: &str = "msrp://10.12.0.1:2855/gw-a1b2c3;tcp";
const UE_URI: &str = "msrp://10.12.0.2:50000/ue;tcp";
const GW_CORE: &str = "msrp://10.12.0.1:40001/gw-d4e5f6;tcp";
const CORE_URI: &str = "msrp://10.12.0.3:30000/core;tcp";
const FRAMES: usize = 20;

/// A pcap sink the test keeps a handle on while the worker owns the port.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("pcap lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn sa(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip.0, port))
}

fn send(i: usize) -> Vec<u8> {
    let (tid, mid) = (format!("s{i:06}"), format!("m{i}"));
    MsrpSend::new(&tid, GW_ACCESS, UE_URI, &mid)
        .byte_range(ByteRange::whole(5))
        .body("text/plain", b"hello")
        .to_vec()
        .expect("a valid SEND")
}

/// The core's 200 OK to [`send`] `i` (RFC 4975 §7.2: its paths mirror the request's).
fn ok(i: usize) -> Vec<u8> {
    let tid = format!("s{i:06}");
    MsrpResponse::ok(&tid, GW_CORE, CORE_URI)
        .to_vec()
        .expect("a valid 200")
}

#[test]
fn tshark_sees_rewritten_paths_on_both_legs() {
    if !mgw_core::testkit::require(
        "tshark_sees_rewritten_paths_on_both_legs",
        &["tshark", "timeout"],
        false,
    ) {
        return;
    }
    let pool = Pool::new(4096, 2048);
    let vc = VirtualClock::new();
    let clock = Clock::Virtual(vc.clone());
    let link = LinkModel {
        delay: Duration::from_millis(1),
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let mem = MemConfig {
        a_to_b: link.clone(),
        b_to_a: link,
        mac_a: EthernetAddress([2, 0, 0, 0, 12, 1]),
        mac_b: EthernetAddress([2, 0, 0, 0, 12, 2]),
        ..MemConfig::default()
    };
    let (wport, pport) = pair(&pool, &clock, &mem);
    let pcap = Shared::default();
    let wport = PcapPort::new(wport, pcap.clone(), clock.clone()).unwrap();
    let (ctl, wend) = channel(16, 256);
    let mut worker = Worker::new(
        wport,
        WorkerConfig::new(EdgeConfig::single(mem.mac_a, GW, 24)),
        wend,
    )
    .unwrap();
    let mut pe = EdgeConfig::single(mem.mac_b, UE, 24);
    pe.addrs.push(InterfaceAddr {
        addr: CORE,
        prefix_len: 24,
    });
    let mut peers = TcpHost::new(pport, pe, mgw_tcp::Config::default()).unwrap();
    worker.edge().add_neighbor(Instant::ZERO, UE, mem.mac_b);
    worker.edge().add_neighbor(Instant::ZERO, CORE, mem.mac_b);
    peers.tcp.listen(IpAddress::V4(CORE), 30000).unwrap();
    let leg = |local, remote, open, route: (&str, &str)| LegProgram {
        local,
        remote,
        transport: Transport::Tcp,
        tcp_role: open,
        establish_now: true,
        latching: remote.is_none(),
        security_role: SecurityRole::Server,
        peer_fingerprints: PeerFingerprints::new(),
        msrp: flow::MsrpRoute::new(route.0.as_bytes(), route.1.as_bytes()),
    };
    ctl.send(FlowOp::Install(ContextProgram {
        context: 1,
        generation: 1,
        application: Application::Msrp,
        aware: true,
        legs: [
            leg(sa(GW, 2855), None, TcpRole::Passive, (GW_ACCESS, UE_URI)),
            leg(
                sa(GW, 40001),
                Some(sa(CORE, 30000)),
                TcpRole::Active,
                (GW_CORE, CORE_URI),
            ),
        ],
    }))
    .unwrap();

    let mut t = Instant::ZERO;
    let (mut ue, mut core) = (None, None);
    let (mut ue_got, mut core_got) = (Vec::new(), Vec::new());
    // One frame per segment each way: tshark 4.0's msrp dissector decodes one frame per TCP
    // segment, and the worker forwards what it gets as it gets it.
    let (mut sent, mut answered) = (0, 0);
    let mut buf = [0u8; 16384];
    for round in 0..300u32 {
        vc.set(t);
        if round == 1 {
            ue = Some(
                peers
                    .tcp
                    .connect(t, (IpAddress::V4(UE), 50000), (IpAddress::V4(GW), 2855))
                    .unwrap(),
            );
        }
        while let Some(ev) = peers.tcp.poll_event() {
            if let EventKind::Accepted { .. } = ev.kind {
                core = Some(ev.conn);
            }
        }
        if let Some(c) = ue {
            if sent < FRAMES
                && core.is_some()
                && round % 2 == 0
                && peers.tcp.send(c, &send(sent)) == Ok(send(sent).len())
            {
                sent += 1;
            }
            while let Ok(n @ 1..) = peers.tcp.recv(c, &mut buf) {
                ue_got.extend_from_slice(&buf[..n]);
            }
        }
        if let Some(c) = core {
            while let Ok(n @ 1..) = peers.tcp.recv(c, &mut buf) {
                core_got.extend_from_slice(&buf[..n]);
            }
            // One 200 OK per complete SEND seen (RFC 4975 §7.2: its paths mirror the request's).
            let seen = String::from_utf8_lossy(&core_got)
                .matches(" SEND\r\n")
                .count();
            if answered < seen {
                let _ = peers.tcp.send(c, &ok(answered));
                answered += 1;
            }
        }
        peers.flush();
        let mut sim = Sim::new(vc.clone(), vec![&mut worker, &mut peers]);
        sim.run(t + Duration::from_millis(9), 100_000, || false);
        t += Duration::from_millis(10);
        if answered == FRAMES && ue_got.len() >= (0..FRAMES).map(|i| ok(i).len()).sum() {
            break;
        }
    }
    assert_eq!(answered, FRAMES, "the core saw every SEND");
    let dir = std::env::temp_dir().join(format!("mgw-msrp-rewrite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rewrite.pcap");
    std::fs::write(&file, pcap.0.lock().unwrap().as_slice()).unwrap();
    let tshark = |extra: &[&str]| {
        let out = Command::new("timeout")
            .arg("60")
            .arg("tshark")
            .args([
                "-r",
                file.to_str().unwrap(),
                "-o",
                "tcp.desegment_tcp_streams:TRUE",
            ])
            .args(["-d", "tcp.port==2855,msrp", "-d", "tcp.port==30000,msrp"])
            .args(extra)
            .output()
            .expect("run tshark");
        assert!(out.status.success(), "tshark {extra:?}: {}", out.status);
        String::from_utf8(out.stdout).unwrap()
    };
    let malformed = tshark(&["-Y", "_ws.malformed || _ws.expert.severity >= error"]);
    assert_eq!(malformed.trim(), "", "tshark found malformed packets");
    let fields = tshark(&[
        "-Y",
        "msrp",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-e",
        "tcp.dstport",
        "-e",
        "msrp.to.path",
        "-e",
        "msrp.from.path",
    ]);
    let mut per_port = std::collections::BTreeMap::<String, Vec<(String, String)>>::new();
    for line in fields.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (to, from) = (f[1].split('|'), f[2].split('|'));
        for (to, from) in to.zip(from) {
            per_port
                .entry(f[0].to_string())
                .or_default()
                .push((to.to_string(), from.to_string()));
        }
    }
    let expect = |port: &str, to: &str, from: &str| {
        let v = per_port.get(port).cloned().unwrap_or_default();
        assert_eq!(v.len(), FRAMES, "frames to port {port}: {v:?}");
        assert!(
            v.iter().all(|(t, f)| t == to && f == from),
            "paths to port {port}: {v:?}"
        );
    };
    // UE → MGW (as sent), MGW → core (rewritten), core → MGW (as sent), MGW → UE (rewritten).
    expect("2855", GW_ACCESS, UE_URI);
    expect("30000", CORE_URI, GW_CORE);
    expect("40001", GW_CORE, CORE_URI);
    expect("50000", UE_URI, GW_ACCESS);
    let _ = std::fs::remove_dir_all(&dir);
}
