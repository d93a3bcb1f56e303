//! The H.248 transport against peers that misbehave (issue 12, findings 3, 4 and 8), over
//! loopback only: strangers are never answered, a failed send neither stops the server nor loses
//! what it was doing, and over TCP neither an MGC that stops reading nor a connect that never
//! completes can block the control thread.
//!
//! Before the fixes a poll blocked for the whole 2 s connect timeout, and for ever on a full
//! socket; the bounds below tell those apart from a slow machine.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use mgw_h248::h248::association::State;
use mgw_h248::h248::ast::*;
use mgw_h248::h248::parse_message;
use mgw_h248::h248::transaction::{tpkt, TransactionConfig};
use mgw_h248::procedures::Realms;
use mgw_h248::server::{Server, TransportKind, TCP_CONNECT_TIMEOUT};

/// A server on loopback whose MGC list is `mgcs`.
fn server(transport: TransportKind, mgcs: Vec<SocketAddr>) -> Server {
    let mut realms = Realms::default();
    realms.add("core", "127.0.0.1".parse().unwrap(), 52100, 52109);
    Server::bind(
        support::config(
            support::free_loopback_addr(),
            transport,
            mgcs,
            TransactionConfig {
                initial_rto: Duration::from_millis(20),
                max_rto: Duration::from_millis(40),
                ..TransactionConfig::default()
            },
            false,
        ),
        realms,
        "SHA-256 AA:BB".into(),
        3,
    )
    .unwrap()
}

fn registered(srv: &Server) -> bool {
    matches!(srv.association().state(), State::Registered { .. })
}

fn request_id(bytes: &[u8]) -> Option<u32> {
    match parse_message(bytes).ok()?.body {
        MessageBody::Transactions(t) => t.into_iter().find_map(|t| match t {
            Transaction::Request(r) => Some(r.id),
            _ => None,
        }),
        MessageBody::Error(_) => None,
    }
}

/// Polls `srv` for `span`, returning the longest single poll.
fn poll_for(srv: &mut Server, span: Duration) -> Duration {
    let end = StdInstant::now() + span;
    let mut longest = Duration::ZERO;
    while StdInstant::now() < end {
        let t = StdInstant::now();
        srv.poll(Duration::from_millis(10)).expect("poll");
        longest = longest.max(t.elapsed());
    }
    longest
}

#[test]
fn unknown_sources_are_never_answered() {
    let mgc = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    mgc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut srv = server(TransportKind::Udp, vec![mgc.local_addr().unwrap()]);
    let mg = srv.local_addr().unwrap();
    // Register with the real MGC.
    srv.poll(Duration::from_millis(20)).unwrap();
    let mut buf = vec![0; 65_536];
    let (n, _) = mgc.recv_from(&mut buf).expect("ServiceChange");
    let sc = request_id(&buf[..n]).expect("a request");
    mgc.send_to(
        format!("!/3 [127.0.0.9]:9 P={sc}{{C=-{{SC=ROOT}}}}").as_bytes(),
        mg,
    )
    .unwrap();
    poll_for(&mut srv, Duration::from_millis(50));
    assert!(registered(&srv));

    // A stranger: valid requests, a reply, garbage, 64 transaction IDs, a ServiceChange.
    let mut ids = String::from("!/3 [127.0.0.9]:9 ");
    for i in 0..64 {
        ids.push_str(&format!("T={i}{{C=-{{AV=ROOT}}}}"));
    }
    let hostile: Vec<Vec<u8>> = vec![
        b"!/3 [127.0.0.9]:9 T=1{C=-{AV=ROOT}}".to_vec(),
        format!("!/3 [127.0.0.9]:9 P={sc}{{C=-{{SC=ROOT}}}}").into_bytes(),
        b"\x16\x03\x01 garbage".to_vec(),
        ids.into_bytes(),
        b"!/3 [127.0.0.9]:9 T=9{C=-{SC=ROOT{SV{MT=RS,RE=\"901\"}}}}".to_vec(),
        b"!/3 [127.0.0.9]:9 T=10{C=${A=$}}".to_vec(),
    ];
    for m in &hostile {
        stranger.send_to(m, mg).unwrap();
        poll_for(&mut srv, Duration::from_millis(20));
    }
    poll_for(&mut srv, Duration::from_millis(200));
    let mut answered = 0;
    while stranger.recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    assert_eq!(answered, 0, "the stranger got an answer");
    assert_eq!(
        srv.association().counters().rx_unknown_source,
        hostile.len() as u64
    );
    // The MGC's own request, with an ID the stranger used, is executed and answered.
    mgc.send_to(b"!/3 [127.0.0.9]:9 T=1{C=-{AV=ROOT{AT{PG}}}}", mg)
        .unwrap();
    poll_for(&mut srv, Duration::from_millis(50));
    let (n, _) = mgc.recv_from(&mut buf).expect("the MGC is answered");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.contains("P=1") && !text.contains("ER="), "{text}");
}

#[test]
fn a_failed_send_neither_fails_the_poll_nor_stops_the_server() {
    // Port 0 is refused by the kernel (EINVAL) at every send_to: the first MGC of the list.
    let mgc = UdpSocket::bind("127.0.0.1:0").unwrap();
    mgc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let bad: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut srv = server(TransportKind::Udp, vec![bad, mgc.local_addr().unwrap()]);
    // The ServiceChange to the bad MGC fails, is retransmitted (and fails) until the association
    // gives up on it and registers with the next one.
    let end = StdInstant::now() + Duration::from_secs(20);
    let mut buf = vec![0; 65_536];
    mgc.set_nonblocking(true).unwrap();
    let got = loop {
        assert!(StdInstant::now() < end, "never moved on to the second MGC");
        srv.poll(Duration::from_millis(10))
            .expect("a failed send is not a poll error");
        if let Ok((n, _)) = mgc.recv_from(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    assert!(
        request_id(&got).is_some(),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(srv.counters().transmit_errors >= 1, "{:?}", srv.counters());
}

/// Registers `srv` over TCP with the MGC listening on `listener`; returns the MGC's end.
fn tcp_register(srv: &mut Server, listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let end = StdInstant::now() + Duration::from_secs(5);
    let mut conn = loop {
        assert!(StdInstant::now() < end, "the MG did not connect");
        srv.poll(Duration::from_millis(10)).unwrap();
        if let Ok((s, _)) = listener.accept() {
            break s;
        }
    };
    conn.set_nonblocking(true).unwrap();
    let mut decoder = tpkt::Decoder::default();
    let mut buf = vec![0; 65_536];
    let sc = loop {
        assert!(StdInstant::now() < end, "no ServiceChange");
        srv.poll(Duration::from_millis(10)).unwrap();
        if let Ok(n) = conn.read(&mut buf) {
            decoder.push(&buf[..n]);
        }
        if let Some(f) = decoder.next_frame().unwrap() {
            break request_id(&f).expect("a request");
        }
    };
    let reply = format!("!/3 [127.0.0.9]:9 P={sc}{{C=-{{SC=ROOT}}}}");
    conn.set_nonblocking(false).unwrap();
    conn.write_all(&tpkt::encode(reply.as_bytes()).unwrap())
        .unwrap();
    while !registered(srv) {
        assert!(StdInstant::now() < end, "not registered");
        srv.poll(Duration::from_millis(10)).unwrap();
    }
    conn
}

#[test]
fn an_mgc_that_stops_reading_is_cut_off_without_blocking_the_control_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut srv = server(TransportKind::Tcp, vec![listener.local_addr().unwrap()]);
    let mut conn = tcp_register(&mut srv, &listener);
    // The MGC now only writes: messages of 50 audits each, whose replies it never reads.
    let mut msg = String::from("!/3 [127.0.0.9]:9 ");
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let end = StdInstant::now() + Duration::from_secs(60);
        let mut longest = Duration::ZERO;
        while srv.counters().tcp_queue_overflow == 0 && StdInstant::now() < end {
            let t = StdInstant::now();
            srv.poll(Duration::from_millis(10)).unwrap();
            longest = longest.max(t.elapsed());
        }
        let _ = tx.send((longest, srv.counters()));
    });
    conn.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut id = 100u32;
    let mut result = None;
    for _ in 0..20_000 {
        msg.truncate("!/3 [127.0.0.9]:9 ".len());
        for _ in 0..50 {
            msg.push_str(&format!("T={id}{{C=-{{AV=ROOT{{AT{{PG}}}}}}}}"));
            id += 1;
        }
        if conn
            .write_all(&tpkt::encode(msg.as_bytes()).unwrap())
            .is_err()
        {
            break; // cut off
        }
        if let Ok(r) = rx.try_recv() {
            result = Some(r);
            break;
        }
    }
    let (longest, counters) = match result {
        Some(r) => r,
        None => rx
            .recv_timeout(Duration::from_secs(70))
            .expect("the control thread is stuck in a write"),
    };
    server.join().unwrap();
    // Cut off (then connected again, and cut off again while the replies keep coming).
    assert!(counters.tcp_queue_overflow >= 1, "{counters:?}");
    // Generous: the point is that the polls returned at all (before, one blocked for ever).
    assert!(longest < Duration::from_secs(5), "a poll took {longest:?}");
}

#[test]
fn a_connect_that_never_completes_does_not_block_the_control_thread() {
    // A listener whose accept queue is full drops SYNs: the MG's connect stays in SYN-SENT.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..1_000 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(_) => break, // the queue is full
        }
    }
    assert!(fillers.len() < 1_000, "the accept queue never filled");
    let mut srv = server(TransportKind::Tcp, vec![addr]);
    let longest = poll_for(&mut srv, TCP_CONNECT_TIMEOUT + Duration::from_millis(500));
    // Before, the first poll sat in connect_timeout for the whole TCP_CONNECT_TIMEOUT.
    assert!(longest < TCP_CONNECT_TIMEOUT, "a poll took {longest:?}");
    assert!(
        srv.counters().tcp_connect_failed >= 1,
        "{:?}",
        srv.counters()
    );
    drop(listener);
}
