//! Deferred replies over the real UDP server: the reply to an Add is held until the caller
//! confirms the data plane applied the legs; meanwhile the MGC receives Pending. A refusal turns
//! the reply into a transaction error.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mgw_h248::h248::ast::*;
use mgw_h248::h248::parse_message;
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::procedures::Realms;
use mgw_h248::server::{Server, ServerEvent, TransportKind};

const HDR: &str = "!/3 [127.0.0.1]:9 ";
const ADD: &str = "C=${A=$ {M{L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}";

fn transactions(bytes: &[u8]) -> Vec<Transaction> {
    match parse_message(bytes).unwrap().body {
        MessageBody::Transactions(t) => t,
        MessageBody::Error(e) => panic!("{e:?}"),
    }
}

/// Poll the server until `mgc` has a datagram; return it.
fn pump(srv: &mut Server, mgc: &UdpSocket, events: &mut Vec<ServerEvent>) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0; 65536];
    loop {
        assert!(Instant::now() < deadline, "no datagram");
        events.extend(srv.poll(Duration::from_millis(5)).unwrap());
        if let Ok((n, _)) = mgc.recv_from(&mut buf) {
            return buf[..n].to_vec();
        }
    }
}

#[test]
fn held_reply_sends_pending_then_the_reply_or_an_error() {
    let mgc = UdpSocket::bind("127.0.0.1:0").unwrap();
    mgc.set_nonblocking(true).unwrap();
    let mg_addr: SocketAddr = support::free_loopback_addr();
    let mut realms = Realms::default();
    realms.add("core", "127.0.0.1".parse().unwrap(), 53000, 53009);
    let mut srv = Server::bind(
        support::config(
            mg_addr,
            TransportKind::Udp,
            vec![mgc.local_addr().unwrap()],
            TransactionConfig::default(),
            true,
        ),
        realms,
        "SHA-256 AA:BB".into(),
        0,
    )
    .unwrap();
    let mut events = Vec::new();
    // Register.
    let sc = transactions(&pump(&mut srv, &mgc, &mut events));
    let Transaction::Request(r) = &sc[0] else {
        panic!()
    };
    mgc.send_to(
        format!("{HDR}P={}{{C=-{{SC=ROOT}}}}", r.id).as_bytes(),
        mg_addr,
    )
    .unwrap();
    // Add: held.
    mgc.send_to(format!("{HDR}T=10{{{ADD}}}").as_bytes(), mg_addr)
        .unwrap();
    let first = transactions(&pump(&mut srv, &mgc, &mut events));
    assert_eq!(
        first[0],
        Transaction::Pending(10),
        "Pending while the reply is held"
    );
    let token = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Execute { token, changes } => {
                assert_eq!(changes.len(), 1);
                Some(*token)
            }
            _ => None,
        })
        .expect("Execute event");
    assert!(srv.complete(token, Ok(())));
    assert!(!srv.complete(token, Ok(())), "a token completes once");
    let reply = loop {
        let t = transactions(&pump(&mut srv, &mgc, &mut events));
        if let Transaction::Reply(r) = &t[0] {
            break r.clone();
        }
    };
    assert_eq!(reply.id, 10);
    let ReplyResult::Actions(a) = &reply.result else {
        panic!()
    };
    assert_eq!(a[0].error, None);

    // Refused by the data plane: the MGC gets the error.
    events.clear();
    mgc.send_to(format!("{HDR}T=11{{{ADD}}}").as_bytes(), mg_addr)
        .unwrap();
    let token = loop {
        events.extend(srv.poll(Duration::from_millis(5)).unwrap());
        if let Some(t) = events.iter().find_map(|e| match e {
            ServerEvent::Execute { token, .. } => Some(*token),
            _ => None,
        }) {
            break t;
        }
    };
    srv.complete(token, Err(ErrorDescriptor::new(510, "no worker capacity")));
    let reply = loop {
        let t = transactions(&pump(&mut srv, &mgc, &mut events));
        if let Transaction::Reply(r) = &t[0] {
            break r.clone();
        }
    };
    assert_eq!(
        reply.result,
        ReplyResult::Error(ErrorDescriptor::new(510, "no worker capacity"))
    );
}
