//! A simulated exchange between two hosts over a lossy `mem` link: ARP, ICMP echo, UDP echo and
//! hand-made TCP segments, recorded by the pcap wrapper. The capture must be identical for the
//! same seed, and must open in `tshark -r` with no malformed packet.

use mgw_core::buf::Pool;
use mgw_core::edge::EdgeConfig;
use mgw_core::host::Host;
use mgw_core::link::LinkModel;
use mgw_core::sim::{RunEnd, Sim};
use mgw_core::time::{Clock, Instant, VirtualClock};
use mgw_core::wire::{EthernetAddress, Ipv4Address, TcpFlags, TcpOptions, TcpRepr};
use mgw_ports::mem::{pair, MemConfig, MemPort};
use mgw_ports::pcap::PcapPort;
use std::cell::Cell;
use std::io::BufWriter;
use std::process::Command;
use std::time::Duration;

const IP_A: Ipv4Address = Ipv4Address([192, 0, 2, 1]);
const IP_B: Ipv4Address = Ipv4Address([192, 0, 2, 2]);

struct Outcome {
    pcap: Vec<u8>,
    echoes: usize,
    udp_back: Vec<Vec<u8>>,
    tcp_at_b: usize,
}

fn exchange(seed: u64) -> Outcome {
    let pool = Pool::new(1024, 2048);
    let vc = VirtualClock::new();
    let clock = Clock::Virtual(vc.clone());
    let lossy = LinkModel {
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        delay: Duration::from_millis(2),
        jitter: Duration::from_micros(300),
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let cfg = MemConfig {
        a_to_b: lossy.clone(),
        b_to_a: lossy,
        seed,
        mac_a: EthernetAddress([2, 0, 0, 0, 0, 0xa]),
        mac_b: EthernetAddress([2, 0, 0, 0, 0, 0xb]),
        ..MemConfig::default()
    };
    let (pa, pb) = pair(&pool, &clock, &cfg);
    let pa = PcapPort::new(pa, BufWriter::new(Vec::new()), clock.clone()).unwrap();
    let mut a: Host<PcapPort<MemPort, BufWriter<Vec<u8>>>> =
        Host::new(pa, EdgeConfig::single(cfg.mac_a, IP_A, 24));
    let mut b = Host::new(pb, EdgeConfig::single(cfg.mac_b, IP_B, 24));
    b.udp_echo_port = Some(7);

    let mut echoes = 0;
    let mut udp_back = Vec::new();
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 2855,
        seq: 1000,
        ack: 0,
        flags: TcpFlags::SYN,
        window: 64240,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((1, 0)),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    // Retry each step once per 50 ms of virtual time until it gets through the lossy link (the
    // first attempts also trigger ARP resolution).
    for round in 0..40u16 {
        let now = Instant::from_millis(u64::from(round) * 50);
        vc.set(now);
        use mgw_core::port::Node;
        a.poll(now);
        if echoes < 3 {
            a.send_ping(IP_B, 0x4d47, round, b"mgwd ping");
        }
        if udp_back.len() < 3 {
            a.send_udp(
                5000 + round,
                IP_B,
                7,
                format!("udp echo {round}").as_bytes(),
            );
        }
        a.send_tcp(
            IP_B,
            &TcpRepr {
                seq: 1000 + u32::from(round),
                ..syn
            },
        );
        a.flush();
        let done = Cell::new(false);
        let mut sim = Sim::new(vc.clone(), vec![&mut a, &mut b]);
        let end = sim.run(now + Duration::from_millis(49), 10_000, || done.get());
        assert_ne!(end, RunEnd::StepLimit);
        while let Some(d) = a.recv() {
            if d.dst.1 >= 5000 {
                udp_back.push(d.payload().to_vec());
            }
        }
        echoes = b.edge().stats().echo_replies as usize;
    }
    let mut tcp_at_b = 0;
    while let Some(d) = b.recv() {
        tcp_at_b += usize::from(d.dst.1 == 2855);
    }
    let (_, out) = a.port_into_inner();
    Outcome {
        pcap: out,
        echoes,
        udp_back,
        tcp_at_b,
    }
}

trait IntoCapture {
    fn port_into_inner(self) -> (MemPort, Vec<u8>);
}

impl IntoCapture for Host<PcapPort<MemPort, BufWriter<Vec<u8>>>> {
    fn port_into_inner(self) -> (MemPort, Vec<u8>) {
        let (port, w) = self.into_port().finish().unwrap();
        (port, w.into_inner().unwrap())
    }
}

#[test]
fn exchange_gets_through_loss_and_is_deterministic() {
    let one = exchange(7);
    assert!(one.echoes >= 3, "echo replies: {}", one.echoes);
    assert!(one.udp_back.len() >= 3);
    assert!(one.udp_back.iter().all(|p| p.starts_with(b"udp echo ")));
    assert!(
        one.tcp_at_b >= 20,
        "tcp segments delivered: {}",
        one.tcp_at_b
    );
    let again = exchange(7);
    assert_eq!(one.pcap, again.pcap, "same seed, same capture");
    assert_ne!(one.pcap, exchange(8).pcap);
}

#[test]
fn capture_opens_in_tshark_without_malformed_packets() {
    if !mgw_core::testkit::require("capture_opens_in_tshark", &["tshark"], false) {
        return;
    }
    let out = exchange(11);
    let path = std::env::temp_dir().join(format!("mgwd-sim-exchange-{}.pcap", std::process::id()));
    std::fs::write(&path, &out.pcap).unwrap();
    let run = |args: &[&str]| {
        let o = Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(&path)
            .args(args)
            .output()
            .expect("tshark runs");
        assert!(
            o.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let malformed = run(&["-Y", "_ws.malformed || _ws.expert.severity >= 8388608"]);
    let protocols = run(&["-T", "fields", "-e", "frame.protocols"]);
    let total = protocols.lines().count();
    let _ = std::fs::remove_file(&path);
    assert!(
        malformed.trim().is_empty(),
        "malformed or error-level packets:\n{malformed}"
    );
    assert!(total > 50, "only {total} frames captured");
    for p in ["eth:ethertype:arp", "ip:icmp", "ip:udp", "ip:tcp"] {
        assert!(
            protocols.contains(p),
            "no {p} frame in the capture:\n{protocols}"
        );
    }
}
