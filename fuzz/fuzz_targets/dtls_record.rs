//! Fuzz a DTLS 1.2 server leg (mgw-tls over dimpl) with records from a peer: a real client runs
//! the handshake in memory, and the input decides, step by step, whether the server gets the
//! client's next datagram as sent, the same datagram with a byte changed or cut short, a
//! datagram made of input bytes, or a jump in time; once established the client sends data.
//!
//! Invariants: no panic; `poll` drains to `Wait` in a bounded number of calls; no datagram
//! exceeds the MTU; no plaintext is delivered before the handshake completed; a failed or
//! closed session stays done.
#![no_main]

use mgw_core::time::Instant;
use mgw_tls::{
    dtls::DtlsOutput, DtlsConfig, DtlsSession, HashFunction, Identity, PeerFingerprints,
    SecurityRole,
};
use std::collections::VecDeque;
use std::time::Duration;

const MTU: usize = 1200;

struct Setup {
    cfg_server: DtlsConfig,
    cfg_client: DtlsConfig,
    server_fp: PeerFingerprints,
    client_fp: PeerFingerprints,
}

/// Identities are costly to make (key generation); one per thread, leaked like the TLS target's.
fn setup() -> &'static Setup {
    thread_local! {
        static SETUP: &'static Setup = Box::leak(Box::new({
            let s = Identity::generate_self_signed("gw.fuzz").unwrap();
            let c = Identity::generate_self_signed("peer.fuzz").unwrap();
            Setup {
                cfg_server: DtlsConfig::new(&s, MTU, Duration::from_secs(10)).unwrap(),
                cfg_client: DtlsConfig::new(&c, MTU, Duration::from_secs(10)).unwrap(),
                server_fp: PeerFingerprints::one(s.fingerprint(HashFunction::Sha256)),
                client_fp: PeerFingerprints::one(c.fingerprint(HashFunction::Sha256)),
            }
        }));
    }
    SETUP.with(|s| *s)
}

/// Drains a session; returns (datagrams sent, plaintext bytes received).
fn drain(s: &mut DtlsSession, buf: &mut [u8], sent: &mut VecDeque<Vec<u8>>, check: bool) -> usize {
    let mut data = 0;
    for _ in 0..256 {
        let established = s.is_established();
        match s.poll(buf) {
            DtlsOutput::Transmit(d) => {
                if check {
                    assert!(d.len() <= MTU, "datagram of {} bytes over the MTU", d.len());
                }
                if sent.len() < 64 {
                    sent.push_back(d.to_vec());
                }
            }
            DtlsOutput::Data(d) => {
                if check {
                    assert!(established, "plaintext before the handshake completed");
                }
                data += d.len();
            }
            DtlsOutput::Event(_) => {}
            DtlsOutput::BufferTooSmall { needed } => panic!("{needed} bytes do not fit 64 KiB"),
            DtlsOutput::Wait(_) => return data,
        }
    }
    panic!("poll never reached Wait");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let st = setup();
    let mut now = Instant::from_millis(1);
    let Ok(mut server) = DtlsSession::new(
        &st.cfg_server,
        SecurityRole::Server,
        st.client_fp,
        "fuzz",
        now,
    ) else {
        return;
    };
    let Ok(mut client) = DtlsSession::new(
        &st.cfg_client,
        SecurityRole::Client,
        st.server_fp,
        "fuzz",
        now,
    ) else {
        return;
    };
    let mut buf = vec![0u8; 1 << 16];
    let (mut to_server, mut to_client) = (VecDeque::new(), VecDeque::new());
    let mut input = data;
    let mut next = || {
        let (&b, rest) = input.split_first()?;
        input = rest;
        Some(b)
    };
    drain(&mut client, &mut buf, &mut to_server, false);
    let mut steps = 0;
    while let Some(op) = next() {
        steps += 1;
        if steps > 256 {
            break;
        }
        match op % 6 {
            // The client's next datagram, as sent.
            0 | 1 => {
                if let Some(d) = to_server.pop_front() {
                    let _ = server.handle_datagram(&d, now);
                }
            }
            // The same with one byte changed, or cut short.
            2 => {
                if let Some(mut d) = to_server.pop_front() {
                    let (at, x) = (next().unwrap_or(0), next().unwrap_or(1));
                    if !d.is_empty() {
                        let i = usize::from(at) * d.len() / 256;
                        if x == 0 {
                            d.truncate(i);
                        } else {
                            d[i] ^= x;
                        }
                    }
                    let _ = server.handle_datagram(&d, now);
                }
            }
            // A datagram of input bytes (a record header then anything).
            3 => {
                let n = usize::from(next().unwrap_or(0));
                let mut d = Vec::with_capacity(n);
                for _ in 0..n {
                    match next() {
                        Some(b) => d.push(b),
                        None => break,
                    }
                }
                let _ = server.handle_datagram(&d, now);
            }
            // Time passes (RFC 6347 §4.2.4 retransmission timers, the handshake deadline).
            4 => {
                now += Duration::from_millis(u64::from(next().unwrap_or(0)) * 20);
                let _ = server.handle_timeout(now);
                let _ = client.handle_timeout(now);
            }
            // Application data from the client, once it can send.
            _ => {
                let n = usize::from(next().unwrap_or(0)) * 4;
                let _ = client.send(&vec![0x42; n.min(1100)]);
            }
        }
        let was_done = server.is_done();
        drain(&mut server, &mut buf, &mut to_client, true);
        assert!(
            !was_done || server.is_done(),
            "a finished session came back"
        );
        // The server's flights reach the client unchanged: the handshake can progress.
        while let Some(d) = to_client.pop_front() {
            let _ = client.handle_datagram(&d, now);
        }
        drain(&mut client, &mut buf, &mut to_server, false);
    }
});
