//! The in-memory server (`Server::in_memory`): a registration and a held Add run with no socket
//! and no clock, on the time the test sets.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mgw_core::time::Instant;
use mgw_h248::h248::ast::*;
use mgw_h248::h248::parse_message;
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::procedures::Realms;
use mgw_h248::server::{ReplyToken, Server, ServerEvent, TransportKind};

fn transactions(bytes: &[u8]) -> Vec<Transaction> {
    match parse_message(bytes).unwrap().body {
        MessageBody::Transactions(t) => t,
        MessageBody::Error(e) => panic!("{e:?}"),
    }
}

fn mgc() -> SocketAddr {
    "127.0.0.2:2944".parse().unwrap()
}

fn server() -> Server {
    let mut realms = Realms::default();
    realms.add("core", "10.0.0.1".parse().unwrap(), 50000, 50009);
    Server::in_memory(
        support::config(
            "127.0.0.1:2944".parse().unwrap(),
            TransportKind::Udp,
            vec![mgc()],
            TransactionConfig::default(),
            true,
        ),
        realms,
        "SHA-256 AA:BB".into(),
        0,
    )
}

/// Registers `srv` (the clock at 10 ms).
fn register(srv: &mut Server) {
    srv.set_now(Instant::from_millis(10));
    assert!(srv.poll(Duration::from_secs(10)).unwrap().is_empty());
    let (_, sc) = srv.pop_transmit().expect("ServiceChange");
    let Transaction::Request(r) = &transactions(&sc)[0] else {
        panic!()
    };
    srv.push_datagram(
        mgc(),
        format!("!/3 [127.0.0.2]:2944 P={}{{C=-{{SC=ROOT}}}}", r.id).as_bytes(),
    );
    let ev = srv.poll(Duration::ZERO).unwrap();
    assert!(matches!(ev[..], [ServerEvent::Registered { .. }]), "{ev:?}");
}

/// A registered server holding the reply to an Add; the token of that reply.
fn held_add() -> (Server, ReplyToken) {
    let mut srv = server();
    register(&mut srv);
    srv.push_datagram(mgc(), ADD);
    let ev = srv.poll(Duration::ZERO).unwrap();
    let [ServerEvent::Execute { token, .. }] = ev[..] else {
        panic!("{ev:?}")
    };
    (srv, token)
}

const ADD: &[u8] =
    b"!/3 [127.0.0.2]:2944 T=7{C=${A=$ {M{L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}}";

#[test]
fn in_memory_server_registers_and_holds_a_reply_on_the_callers_clock() {
    let mgc = mgc();
    let mut srv = server();
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

/// Finding 4 of issue 12: a held reply the caller never completes (a worker that never
/// acknowledges) used to be held for ever: the MGC got Pendings, then nothing. It now goes out as
/// error 500 at its deadline (`pending_after × max_pendings`, 2 s by default), once.
#[test]
fn a_held_reply_never_completed_is_answered_500_at_its_deadline() {
    let (mut srv, token) = held_add();
    assert_eq!(srv.held_replies(), 1);
    let mut replies = Vec::new();
    let mut expired = Vec::new();
    // 3 s in 100 ms steps: Pendings, then the error at 2 s.
    for ms in (110..3_010).step_by(100) {
        srv.set_now(Instant::from_millis(ms));
        for e in srv.poll(Duration::ZERO).unwrap() {
            if let ServerEvent::Expired { token } = e {
                expired.push((ms, token));
            }
        }
        while let Some((_, m)) = srv.pop_transmit() {
            for t in transactions(&m) {
                if let Transaction::Reply(r) = t {
                    replies.push((ms, r));
                }
            }
        }
    }
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].1, token);
    assert!((2_000..2_200).contains(&expired[0].0), "{expired:?}");
    assert_eq!(replies.len(), 1, "exactly one reply: {replies:?}");
    assert_eq!(replies[0].1.id, 7);
    assert!(
        matches!(&replies[0].1.result, ReplyResult::Error(e) if e.code == 500),
        "{:?}",
        replies[0].1
    );
    assert_eq!(srv.held_replies(), 0);
    assert_eq!(srv.counters().held_expired, 1);
    assert!(!srv.complete(token, Ok(())), "the token is void");
    assert!(srv.pop_transmit().is_none(), "and no second reply");
}

/// A reply completed in time is not touched by its deadline passing later.
#[test]
fn a_completed_reply_is_not_expired() {
    let (mut srv, token) = held_add();
    assert!(srv.complete(token, Ok(())));
    while srv.pop_transmit().is_some() {}
    srv.set_now(Instant::from_millis(5_000));
    let ev = srv.poll(Duration::ZERO).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(srv.counters().held_expired, 0);
}

/// The transaction statistics count each answered command by its outcome, and each reply's
/// latency from the request's arrival to its reply (for a held one, to its completion).
#[test]
fn commands_and_reply_latency_are_counted_by_outcome() {
    use mgw_h248::server::{COMMANDS, LATENCY_BUCKETS_US};
    let add = COMMANDS.iter().position(|c| *c == "add").unwrap();
    let subtract = COMMANDS.iter().position(|c| *c == "subtract").unwrap();
    let (mut srv, token) = held_add();
    assert_eq!(srv.transaction_stats().replies, 0, "held: not answered yet");
    // Completed 3 ms after the Add arrived (at 10 ms).
    srv.set_now(Instant::from_millis(13));
    assert!(srv.complete(token, Ok(())));
    let s = srv.transaction_stats();
    assert_eq!(s.commands[add], [1, 0]);
    assert_eq!(s.replies, 1);
    assert_eq!(s.latency_sum_us, 3_000);
    let bucket = LATENCY_BUCKETS_US.iter().position(|&b| b == 5_000).unwrap();
    assert_eq!(s.latency_buckets[bucket], 1, "{:?}", s.latency_buckets);
    // A Subtract of a context that does not exist fails at once (answered, not held).
    srv.push_datagram(mgc(), b"!/3 [127.0.0.2]:2944 T=8{C=99{S=*}}");
    srv.poll(Duration::ZERO).unwrap();
    let s = srv.transaction_stats();
    assert_eq!(s.commands[subtract], [0, 1]);
    assert_eq!(s.replies, 2);
    assert_eq!(s.latency_buckets[0], 1, "answered at once");
}
