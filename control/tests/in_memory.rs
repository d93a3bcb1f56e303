//! The in-memory server (`Server::in_memory`): a registration and a held Add run with no socket
//! and no clock, on the time the test sets.

use std::net::SocketAddr;
use std::time::Duration;

use control::h248::association::AssociationConfig;
use control::h248::ast::*;
use control::h248::mg::MgConfig;
use control::h248::parse_message;
use control::procedures::Realms;
use control::server::{Server, ServerConfig, ServerEvent, TransportKind};
use dataplane::time::Instant;

fn transactions(bytes: &[u8]) -> Vec<Transaction> {
    match parse_message(bytes).unwrap().body {
        MessageBody::Transactions(t) => t,
        MessageBody::Error(e) => panic!("{e:?}"),
    }
}

#[test]
fn in_memory_server_registers_and_holds_a_reply_on_the_callers_clock() {
    let mgc: SocketAddr = "127.0.0.2:2944".parse().unwrap();
    let mut realms = Realms::default();
    realms.add("core", "10.0.0.1".parse().unwrap(), 50000, 50009);
    let mut srv = Server::in_memory(
        ServerConfig {
            bind: "127.0.0.1:2944".parse().unwrap(),
            transport: TransportKind::Udp,
            mid: Mid::Ip {
                addr: "127.0.0.1".parse().unwrap(),
                port: Some(2944),
            },
            association: AssociationConfig {
                mgcs: vec![mgc],
                max_avalanche_delay: Duration::from_millis(1),
                ..AssociationConfig::default()
            },
            mg: MgConfig::default(),
            defer_replies: true,
        },
        realms,
        "SHA-256 AA:BB".into(),
        0,
    );
    assert_eq!(srv.now(), Instant::ZERO);
    srv.set_now(Instant::from_millis(10));
    assert!(srv.poll(Duration::from_secs(10)).unwrap().is_empty());
    srv.set_now(Instant::from_millis(5));
    assert_eq!(
        srv.now(),
        Instant::from_millis(10),
        "the clock never goes back"
    );
    let (to, sc) = srv.pop_transmit().expect("ServiceChange");
    assert_eq!(to, mgc);
    let Transaction::Request(r) = &transactions(&sc)[0] else {
        panic!()
    };
    srv.push_datagram(
        mgc,
        format!("!/3 [127.0.0.2]:2944 P={}{{C=-{{SC=ROOT}}}}", r.id).as_bytes(),
    );
    let ev = srv.poll(Duration::ZERO).unwrap();
    assert!(matches!(ev[..], [ServerEvent::Registered { mgc: m, .. }] if m == mgc));
    srv.push_datagram(
        mgc,
        b"!/3 [127.0.0.2]:2944 T=7{C=${A=$ {M{L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}",
    );
    let ev = srv.poll(Duration::ZERO).unwrap();
    let [ServerEvent::Execute { token, .. }] = ev[..] else {
        panic!("{ev:?}")
    };
    assert!(srv.pop_transmit().is_none(), "the reply is held");
    assert!(srv.complete(token, Ok(())));
    let (_, reply) = srv.pop_transmit().expect("reply");
    assert!(matches!(&transactions(&reply)[0], Transaction::Reply(r) if r.id == 7));
}
