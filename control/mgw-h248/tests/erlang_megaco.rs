//! Interop with a real MGC: Erlang/OTP megaco (text encoding, UDP and TCP/TPKT, loopback) drives our
//! `mgw_h248::server::Server` through ServiceChange, Add (TLS MSRP access leg + TCP MSRP core
//! leg), Notify, Modify, an erroneous Modify, Subtract with statistics, and a request on the
//! deleted context.
//!
//! The Notify is triggered from the model (`Server::observe` with `tcp/ef` when the core leg is
//! installed), standing in for the data plane's TCP-failure event.
//!
//! Skips when `escript`/megaco is missing, unless `MGW_REQUIRE_PEERS=1`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mgw_h248::h248::association::AssociationConfig;
use mgw_h248::h248::ast::PropertyParm;
use mgw_h248::h248::mg::{LegChange, TerminationStats};
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::h248::Style;
use mgw_h248::procedures::{Realms, Transport};
use mgw_h248::server::{Server, ServerConfig, ServerEvent, TransportKind};

const FP: &str = "SHA-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
const PEER_FP: &str = "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:5E:1B:82:4F:66:9A:37:C6:61:AD:51:9E";

struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_peers() -> bool {
    std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn megaco_available() -> bool {
    Command::new("erl")
        .args([
            "-noshell",
            "-eval",
            "case application:load(megaco) of ok -> halt(0); _ -> halt(1) end.",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port(transport: TransportKind) -> u16 {
    match transport {
        TransportKind::Udp => UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        TransportKind::Tcp => std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    }
}

fn server(mgc: SocketAddr, transport: TransportKind, style: Style) -> Server {
    let mut realms = Realms::default();
    realms.add("access", "127.0.0.1".parse().unwrap(), 40000, 40099);
    realms.add("core", "127.0.0.1".parse().unwrap(), 50000, 50099);
    let cfg = support::config(
        support::free_loopback_addr(),
        transport,
        vec![mgc],
        TransactionConfig {
            style,
            ..TransactionConfig::default()
        },
        false,
    );
    Server::bind(
        ServerConfig {
            association: AssociationConfig {
                max_avalanche_delay: Duration::from_millis(50),
                ..cfg.association
            },
            ..cfg
        },
        realms,
        FP.into(),
        7,
    )
    .unwrap()
}

/// `encoder`: the MGC's text encoder; `style`: ours.
fn run_with(encoder: &str, transport: TransportKind, style: Style) {
    if !megaco_available() {
        assert!(
            !require_peers(),
            "erlang megaco missing and MGW_REQUIRE_PEERS=1"
        );
        eprintln!("SKIP: erl with the megaco application not installed");
        return;
    }
    let port = free_port(transport);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mgc/mgc.escript");
    let child = Command::new("escript")
        .args([
            script,
            &port.to_string(),
            encoder,
            PEER_FP,
            if transport == TransportKind::Tcp {
                "tcp"
            } else {
                "udp"
            },
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn escript");
    let mut child = Killer(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for the MGC to listen.
    loop {
        let l = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("MGC did not start");
        eprintln!("mgc: {l}");
        if l == "READY" {
            break;
        }
    }
    let mgc: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut srv = server(mgc, transport, style);
    let mut lines = Vec::new();
    let mut registered = false;
    let mut notified = false;
    let mut installs = Vec::new();
    let mut releases = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "interop timed out; lines so far: {lines:#?}"
        );
        for ev in srv.poll(Duration::from_millis(20)).unwrap() {
            match ev {
                ServerEvent::Registered { version, .. } => {
                    assert_eq!(version, 3);
                    registered = true;
                }
                ServerEvent::Leg(change) => match *change {
                    LegChange::Install {
                        termination, spec, ..
                    } => {
                        if spec.transport == Transport::Tcp && !notified {
                            srv.update_stats(
                                &termination,
                                TerminationStats {
                                    octets_sent: 1000,
                                    octets_received: 2000,
                                },
                            );
                            let id = srv.observe(
                                &termination,
                                "tcp/ef",
                                vec![PropertyParm::eq("cause", "timeout")],
                            );
                            assert!(id.is_some(), "tcp/ef was armed on the core leg");
                            notified = true;
                        }
                        installs.push(spec);
                    }
                    LegChange::Release { .. } => releases += 1,
                    _ => {}
                },
                _ => {}
            }
        }
        while let Ok(l) = rx.try_recv() {
            eprintln!("mgc: {l}");
            lines.push(l);
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                eprintln!("mgc: {l}");
                lines.push(l);
            }
            assert!(status.success(), "MGC failed: {lines:#?}");
            break;
        }
    }
    assert!(registered);
    let find = |p: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} line in {lines:#?}"))
            .clone()
    };
    assert!(find("SC ").contains("method=restart"));
    assert!(find("ADD ").contains("t1=ip/1 t2=ip/2"));
    let l1 = find("LOCAL1 ");
    assert!(l1.contains("m=message 40000 TCP/TLS/MSRP *"), "{l1}");
    assert!(l1.contains(&format!("a=fingerprint:{FP}")), "{l1}");
    assert!(l1.contains("a=setup:passive"), "{l1}");
    assert!(l1.contains("c=IN IP4 127.0.0.1"), "{l1}");
    let l2 = find("LOCAL2 ");
    assert!(l2.contains("m=message 50000 TCP/MSRP *"), "{l2}");
    assert!(!l2.contains("fingerprint"), "{l2}");
    assert!(find("NOTIFY ").contains("event=tcp/ef"));
    find("MODIFY ok");
    assert_eq!(find("BADMODIFY "), "BADMODIFY code=430");
    let subs: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("SUBTRACT "))
        .collect();
    assert_eq!(subs.len(), 2, "{lines:#?}");
    assert!(
        subs[1].contains("nt/os=1000,nt/or=2000,nt/dur="),
        "{}",
        subs[1]
    );
    assert_eq!(find("GONE "), "GONE code=411");
    find("DONE");
    assert_eq!(installs.len(), 2);
    assert_eq!(installs[0].transport, Transport::TlsTcp);
    assert_eq!(installs[0].peer_fingerprints.len(), 1);
    assert_eq!(releases, 2);
    assert!(srv.mg().contexts().is_empty());
}

#[test]
fn erlang_megaco_mgc_pretty_text_udp() {
    run_with("pretty", TransportKind::Udp, Style::Compact);
}

#[test]
fn erlang_megaco_mgc_compact_text_udp() {
    run_with("compact", TransportKind::Udp, Style::Pretty);
}

/// H.248.1 Annex D.2: TCP with TPKT framing against Erlang's `megaco_tcp`.
#[test]
fn erlang_megaco_mgc_pretty_text_tcp_tpkt() {
    run_with("pretty", TransportKind::Tcp, Style::Pretty);
}
