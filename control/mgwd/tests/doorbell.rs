//! The control thread wakes on a worker's event, not at its poll timeout: a reply held for the
//! worker's acknowledgement leaves as soon as the worker acknowledges (issue 15).
//!
//! A real UDP server on loopback, the real gateway, and this test playing the MGC and the
//! worker. The gateway polls with a 60 s bound and the H.248 timers (Pending, the held-reply
//! deadline) are set beyond it, so nothing but the doorbell can wake the poll: without it the
//! reply would wait a minute.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgw_h248::h248::association::AssociationConfig;
use mgw_h248::h248::ast::{MessageBody, Mid, Transaction};
use mgw_h248::h248::mg::MgConfig;
use mgw_h248::h248::parse_message;
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::procedures::Realms;
use mgw_h248::server::{Server, ServerConfig, TransportKind};
use mgw_worker::{channel, Doorbell, FlowEvent, FlowOp};
use mgwd::gateway::{Awareness, Gateway};

const ADD: &str = include_str!("../../../fuzz/corpus-seed/h248/add_tls_msrp.txt");

fn transactions(bytes: &[u8]) -> Vec<Transaction> {
    match parse_message(bytes).expect("the MG sends valid H.248").body {
        MessageBody::Transactions(t) => t,
        MessageBody::Error(e) => panic!("error message from the MG: {e:?}"),
    }
}

/// Receives from the MG until `want` accepts a transaction of a message, or 20 s pass.
fn recv_until(sock: &UdpSocket, want: impl Fn(&Transaction) -> bool) -> Option<Transaction> {
    let until = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < until {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .ok()?;
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(t) = transactions(&buf[..n]).into_iter().find(|t| want(t)) {
            return Some(t);
        }
    }
    None
}

#[test]
fn a_held_reply_leaves_when_the_worker_acknowledges_not_at_the_poll_timeout() {
    let mgc = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mgc_addr = mgc.local_addr().unwrap();
    let mut realms = Realms::default();
    realms.add("access", IpAddr::from([127, 0, 0, 1]), 40_000, 40_099);
    realms.add("core", IpAddr::from([127, 0, 0, 1]), 40_100, 40_199);
    let server = Server::bind(
        ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            transport: TransportKind::Udp,
            mid: Mid::Ip {
                addr: IpAddr::from([127, 0, 0, 1]),
                port: None,
            },
            association: AssociationConfig {
                mgcs: vec![mgc_addr],
                max_avalanche_delay: Duration::from_millis(1),
                transaction: TransactionConfig {
                    // No Pending and no held-reply deadline before the poll's own bound.
                    pending_after: Duration::from_secs(100),
                    max_pendings: 2,
                    ..TransactionConfig::default()
                },
                ..AssociationConfig::default()
            },
            mg: MgConfig::default(),
            defer_replies: true,
        },
        realms,
        "SHA-256 AA:BB".into(),
        7,
    )
    .unwrap();
    let mg_addr: SocketAddr = server.local_addr().unwrap();
    let (ctl, worker) = channel(16, 16);
    let bell = Arc::new(Doorbell::new());
    let mut worker = worker.with_doorbell(Arc::clone(&bell));
    let mut gateway = Gateway::new(
        server,
        vec![ctl],
        Awareness {
            msrp: true,
            bfcp: true,
            udptl: true,
        },
    )
    .with_doorbell(Arc::clone(&bell));
    let stop = Arc::new(AtomicBool::new(false));
    let control = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                gateway.poll(Duration::from_secs(60)).unwrap();
            }
        })
    };

    // Registration.
    let Some(Transaction::Request(sc)) = recv_until(&mgc, |t| matches!(t, Transaction::Request(_)))
    else {
        panic!("no ServiceChange from the MG");
    };
    let mid = format!("[127.0.0.1]:{}", mgc_addr.port());
    mgc.send_to(
        format!("!/3 {mid} P={}{{C=-{{SC=ROOT}}}}", sc.id).as_bytes(),
        mg_addr,
    )
    .unwrap();

    // The Add; the gateway sends the worker its Install and holds the reply.
    let add = ADD.replacen("MEGACO/3 [127.0.0.2]:2944", &format!("MEGACO/3 {mid}"), 1);
    mgc.send_to(add.as_bytes(), mg_addr).unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let (context, generation) = loop {
        match worker.recv() {
            Some(FlowOp::Install(p)) => break (p.context, p.generation),
            Some(_) => {}
            None if Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
            None => panic!("no Install from the gateway"),
        }
    };
    // Let the control thread go back to sleep in its 60 s poll (the H.248 layer's short timers
    // of the registration run out within the first half second), then acknowledge. Without
    // the doorbell no reply comes within the 20 s this test waits (checked).
    std::thread::sleep(Duration::from_millis(1000));
    let acked = Instant::now();
    worker.send(FlowEvent::Installed {
        context,
        generation,
    });
    worker.end_poll();
    let reply = recv_until(&mgc, |t| matches!(t, Transaction::Reply(r) if r.id == 42));
    let waited = acked.elapsed();
    assert!(reply.is_some(), "no reply to the Add");
    assert!(
        waited < Duration::from_secs(20),
        "the reply waited {waited:?} after the acknowledgement: the doorbell did not wake the poll"
    );
    assert!(bell.rings() >= 1, "the worker rang");

    stop.store(true, Ordering::Relaxed);
    // The control thread's last poll ends at the next doorbell ring.
    bell.park();
    worker.send(FlowEvent::Installed {
        context,
        generation,
    });
    worker.end_poll();
    control.join().unwrap();
}
