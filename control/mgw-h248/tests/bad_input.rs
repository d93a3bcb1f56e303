//! Bad-input corpus against the running control server over loopback UDP: each bad message gets
//! the right H.248.8 error code and the MG keeps serving. The "MGC" here is a plain UDP socket
//! speaking H.248 text, so the test needs no external peer.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mgw_h248::h248::ast::*;
use mgw_h248::h248::parse_message;
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::procedures::Realms;
use mgw_h248::server::{Server, TransportKind};

struct Harness {
    mgc: UdpSocket,
    mg: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start() -> Harness {
    let mgc = UdpSocket::bind("127.0.0.1:0").unwrap();
    mgc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mgc_addr = mgc.local_addr().unwrap();
    let mut realms = Realms::default();
    realms.add("core", "127.0.0.1".parse().unwrap(), 52000, 52009);
    let mg_addr = support::free_loopback_addr();
    let mut srv = Server::bind(
        support::config(
            mg_addr,
            TransportKind::Udp,
            vec![mgc_addr],
            TransactionConfig {
                max_message: 8192,
                ..TransactionConfig::default()
            },
            false,
        ),
        realms,
        "SHA-256 AA:BB".into(),
        0,
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            srv.poll(Duration::from_millis(10)).unwrap();
        }
    });
    Harness {
        mgc,
        mg: mg_addr,
        stop,
        thread: Some(thread),
    }
}

fn recv(h: &Harness) -> Message {
    let mut buf = vec![0; 65536];
    let (n, from) = h.mgc.recv_from(&mut buf).expect("answer from MG");
    assert_eq!(from, h.mg);
    parse_message(&buf[..n])
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf[..n])))
}

fn send(h: &Harness, text: &[u8]) {
    h.mgc.send_to(text, h.mg).unwrap();
}

fn transactions(m: Message) -> Vec<Transaction> {
    match m.body {
        MessageBody::Transactions(t) => t,
        MessageBody::Error(e) => panic!("message error {e:?}"),
    }
}

/// The error code of the reply to `id` (transaction-level or action-level), skipping Pendings.
fn reply_code(h: &Harness, id: u32) -> Option<u16> {
    loop {
        for t in transactions(recv(h)) {
            match t {
                Transaction::Pending(_) => continue,
                Transaction::Reply(r) => {
                    assert_eq!(r.id, id);
                    return match r.result {
                        ReplyResult::Error(e) => Some(e.code),
                        ReplyResult::Actions(a) => {
                            a.into_iter().find_map(|a| a.error).map(|e| e.code)
                        }
                    };
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

const HDR: &str = "!/3 [127.0.0.1]:9 ";
const GOOD_ADD: &str = "C=${A=$ {M{L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}}}}";

#[test]
fn bad_inputs_get_the_right_codes_and_the_mg_keeps_serving() {
    let h = start();
    // Before registration completes: 505.
    let ts = transactions(recv(&h));
    let Transaction::Request(sc) = &ts[0] else {
        panic!()
    };
    send(&h, format!("{HDR}T=50{{{GOOD_ADD}}}").as_bytes());
    // The SC may be retransmitted meanwhile; skip requests.
    let code = loop {
        let m = recv(&h);
        match transactions(m).remove(0) {
            Transaction::Reply(r) => {
                let ReplyResult::Error(e) = r.result else {
                    panic!()
                };
                break e.code;
            }
            _ => continue,
        }
    };
    assert_eq!(code, 505);
    send(
        &h,
        format!("{HDR}P={}{{C=-{{SC=ROOT{{SV{{V=3}}}}}}}}", sc.id).as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(50));

    // Truncated.
    send(&h, format!("{HDR}T=101{{C=${{A=$ {{M{{").as_bytes());
    assert_eq!(reply_code(&h, 101), Some(400));
    // Wrong tokens.
    send(
        &h,
        format!("{HDR}T=102{{C=1{{Frobnicate=ip/1}}}}").as_bytes(),
    );
    assert_eq!(reply_code(&h, 102), Some(400));
    // Unknown package.
    send(
        &h,
        format!("{HDR}T=103{{C=${{A=$ {{E=1{{xyz/ev}}}}}}}}").as_bytes(),
    );
    assert_eq!(reply_code(&h, 103), Some(440));
    // Unknown property value / realm.
    send(&h, format!("{HDR}T=104{{C=${{A=$ {{M{{O{{ipdc/realm=mars}},L{{\nv=0\nm=message $ TCP/MSRP *\n}}}}}}}}}}").as_bytes());
    assert_eq!(reply_code(&h, 104), Some(449));
    // Unknown context.
    send(&h, format!("{HDR}T=105{{C=77{{MF=ip/1}}}}").as_bytes());
    assert_eq!(reply_code(&h, 105), Some(411));
    // Duplicate transaction ID (even with other content): the cached reply is replayed.
    send(
        &h,
        format!("{HDR}T=105{{C=-{{AV=ROOT{{AT{{PG}}}}}}}}").as_bytes(),
    );
    assert_eq!(reply_code(&h, 105), Some(411));
    // Oversize.
    let mut big = format!("{HDR}T=106{{C=-{{").into_bytes();
    big.resize(10_000, b' ');
    send(&h, &big);
    assert_eq!(reply_code(&h, 106), Some(510));
    // Unsupported version.
    send(&h, b"MEGACO/9 [127.0.0.1]:9 T=107{C=-{AV=ROOT{AT{}}}}");
    assert_eq!(reply_code(&h, 107), Some(406));
    // Not implemented construct.
    send(
        &h,
        format!("{HDR}T=108{{C=${{A=$ {{MX{{}}}}}}}}").as_bytes(),
    );
    assert_eq!(reply_code(&h, 108), Some(501));
    // Garbage: a message-level error.
    send(&h, b"\x16\x03\x01 hello");
    let m = recv(&h);
    assert!(matches!(
        m.body,
        MessageBody::Error(ErrorDescriptor { code: 400, .. })
    ));
    // A stranger is ignored.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stranger
        .send_to(
            format!("{HDR}T=1{{C=-{{AV=ROOT{{AT{{}}}}}}}}").as_bytes(),
            h.mg,
        )
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(stranger.recv_from(&mut buf).is_err(), "stranger answered");

    // Still serving.
    send(&h, format!("{HDR}T=200{{{GOOD_ADD}}}").as_bytes());
    assert_eq!(reply_code(&h, 200), None);
}

#[test]
fn registration_is_retried_until_answered() {
    let h = start();
    let first = transactions(recv(&h));
    let second = transactions(recv(&h));
    assert_eq!(first, second, "retransmission of the same ServiceChange");
    drop(first);
    // Answer the retransmission; registration completes.
    let Transaction::Request(r) = &second[0] else {
        panic!()
    };
    send(&h, format!("{HDR}P={}{{C=-{{SC=ROOT}}}}", r.id).as_bytes());
    std::thread::sleep(Duration::from_millis(50));
    send(&h, format!("{HDR}T=300{{{GOOD_ADD}}}").as_bytes());
    assert_eq!(reply_code(&h, 300), None);
}
