//! In-memory tests: a client and a server of ours, bytes moved by hand, virtual time.
//! Grouped by phase: handshake, established (records), tampering, renegotiation, close.

use super::*;
use crate::context::{TlsContext, TlsSettings};
use crate::fingerprint::{HashFunction, PeerFingerprints};
use crate::identity::Identity;
use crate::profile::TlsProfile;
use crate::verify::PeerAuth;
use mgw_core::time::Instant;
use std::sync::OnceLock;

fn ids() -> &'static (Identity, Identity) {
    static IDS: OnceLock<(Identity, Identity)> = OnceLock::new();
    IDS.get_or_init(|| {
        (
            Identity::generate_self_signed("client.mgw").unwrap(),
            Identity::generate_self_signed("server.mgw").unwrap(),
        )
    })
}

pub(crate) struct Side {
    pub s: TlsSession,
    /// Ciphertext received, not yet consumed.
    pub rx: Vec<u8>,
    pub plain: Vec<u8>,
    pub events: Vec<TlsEvent>,
}

pub(crate) struct Pair {
    pub c: Side,
    pub s: Side,
    pub now: Instant,
}

fn auth_for(id: &Identity) -> PeerAuth {
    PeerAuth::fingerprints(PeerFingerprints::one(id.fingerprint(HashFunction::Sha256)))
}

pub(crate) fn contexts(profile: TlsProfile) -> (TlsContext, TlsContext) {
    let (ci, si) = ids();
    let settings = TlsSettings {
        profile,
        ..TlsSettings::default()
    };
    (
        TlsContext::new(settings.clone(), ci.clone()).unwrap(),
        TlsContext::new(settings, si.clone()).unwrap(),
    )
}

impl Pair {
    pub fn new(cctx: &TlsContext, sctx: &TlsContext) -> Self {
        let (ci, si) = ids();
        Self::with_auth(cctx, sctx, auth_for(si), auth_for(ci))
    }

    pub fn with_auth(
        cctx: &TlsContext,
        sctx: &TlsContext,
        c_auth: PeerAuth,
        s_auth: PeerAuth,
    ) -> Self {
        let now = Instant::from_millis(1000);
        let name = ServerName::try_from("server.mgw").unwrap();
        let c = TlsSession::client(cctx, &c_auth, name, now).unwrap();
        let s = TlsSession::server(sctx, &s_auth, now).unwrap();
        let side = |s| Side {
            s,
            rx: Vec::new(),
            plain: Vec::new(),
            events: Vec::new(),
        };
        Pair {
            c: side(c),
            s: side(s),
            now,
        }
    }

    /// Runs one side over its pending input; returns bytes it sent (to append to the other).
    fn step(side: &mut Side, now: Instant) -> (Vec<u8>, Result<Progress, TlsError>) {
        let mut tx = vec![0u8; 1 << 17];
        let mut plain = Vec::new();
        let r = side.s.on_ciphertext(&mut side.rx, now, &mut tx, &mut |p| {
            plain.extend_from_slice(p)
        });
        let mut out = Vec::new();
        if let Ok(p) = &r {
            out.extend_from_slice(&tx[..p.written]);
            side.rx.drain(..p.consumed);
        }
        loop {
            let n = side.s.poll_transmit(&mut tx);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&tx[..n]);
        }
        side.plain.extend_from_slice(&plain);
        while let Some(e) = side.s.poll_event() {
            side.events.push(e);
        }
        (out, r)
    }

    /// Moves bytes until neither side produces anything.
    pub fn pump(&mut self) {
        // The client speaks first.
        for _ in 0..32 {
            let (c_out, _) = Self::step(&mut self.c, self.now);
            self.s.rx.extend_from_slice(&c_out);
            let (s_out, _) = Self::step(&mut self.s, self.now);
            self.c.rx.extend_from_slice(&s_out);
            if c_out.is_empty() && s_out.is_empty() {
                break;
            }
        }
    }

    pub fn established(&self) -> bool {
        self.c.s.is_established() && self.s.s.is_established()
    }
}

fn established_event(events: &[TlsEvent]) -> Option<(TlsVersion, CipherSuite, bool)> {
    events.iter().find_map(|e| match *e {
        TlsEvent::Established {
            version,
            suite,
            resumed,
            ..
        } => Some((version, suite, resumed)),
        _ => None,
    })
}

fn failed(events: &[TlsEvent]) -> Option<FailReason> {
    events.iter().find_map(|e| match *e {
        TlsEvent::Failed { reason } => Some(reason),
        _ => None,
    })
}

fn send(from: &mut Side, to: &mut Side, data: &[u8]) {
    let mut tx = vec![0u8; data.len() + 4096];
    let n = from.s.seal(data, &mut tx).unwrap();
    to.rx.extend_from_slice(&tx[..n]);
}

// ----- HANDSHAKE -----

#[test]
fn handshake_every_suite_both_versions() {
    for suite in CipherSuite::ALL {
        // Our identities are ECDSA: the RSA TLS 1.2 suites cannot be negotiated with them.
        if suite.iana_name().contains("_RSA_") {
            continue;
        }
        let profile = TlsProfile {
            versions: vec![suite.version()],
            suites: vec![suite],
            ..TlsProfile::default()
        };
        let (cc, sc) = contexts(profile);
        let mut p = Pair::new(&cc, &sc);
        p.pump();
        assert!(
            p.established(),
            "{suite:?}: {:?} / {:?}",
            p.c.events,
            p.s.events
        );
        assert_eq!(
            established_event(&p.c.events),
            Some((suite.version(), suite, false))
        );
        assert_eq!(
            established_event(&p.s.events),
            Some((suite.version(), suite, false))
        );
        send(&mut p.c, &mut p.s, b"ping");
        send(&mut p.s, &mut p.c, b"pong");
        p.pump();
        assert_eq!(p.s.plain, b"ping");
        assert_eq!(p.c.plain, b"pong");
    }
}

#[test]
fn established_event_carries_peer_fingerprint() {
    let (cc, sc) = contexts(TlsProfile::default());
    let mut p = Pair::new(&cc, &sc);
    p.pump();
    let fp = |ev: &[TlsEvent]| {
        ev.iter().find_map(|e| match e {
            TlsEvent::Established {
                peer_fingerprint, ..
            } => Some(*peer_fingerprint),
            _ => None,
        })
    };
    assert_eq!(
        fp(&p.c.events),
        Some(ids().1.fingerprint(HashFunction::Sha256))
    );
    assert_eq!(
        fp(&p.s.events),
        Some(ids().0.fingerprint(HashFunction::Sha256))
    );
}

#[test]
fn server_fingerprint_mismatch_fails_client_with_alert_and_no_data() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let profile = TlsProfile {
            versions: vec![v],
            ..TlsProfile::default()
        };
        let (cc, sc) = contexts(profile);
        let wrong = PeerAuth::fingerprints(PeerFingerprints::one(crate::Fingerprint::of_der(
            HashFunction::Sha256,
            b"other",
        )));
        let mut p = Pair::with_auth(&cc, &sc, wrong, auth_for(&ids().0));
        p.pump();
        assert_eq!(
            failed(&p.c.events),
            Some(FailReason::FingerprintMismatch),
            "{v:?}"
        );
        // The server saw our fatal alert (bad_certificate).
        assert_eq!(
            failed(&p.s.events),
            Some(FailReason::Alert(alert::BAD_CERTIFICATE)),
            "{v:?}"
        );
        assert!(p.c.plain.is_empty() && p.s.plain.is_empty());
        assert!(!p.c.s.is_established() && !p.s.s.is_established());
    }
}

#[test]
fn client_fingerprint_mismatch_fails_server_with_alert() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let profile = TlsProfile {
            versions: vec![v],
            ..TlsProfile::default()
        };
        let (cc, sc) = contexts(profile);
        let wrong = PeerAuth::fingerprints(PeerFingerprints::one(crate::Fingerprint::of_der(
            HashFunction::Sha384,
            b"x",
        )));
        let mut p = Pair::with_auth(&cc, &sc, auth_for(&ids().1), wrong);
        p.pump();
        assert_eq!(
            failed(&p.s.events),
            Some(FailReason::FingerprintMismatch),
            "{v:?}"
        );
        assert!(
            matches!(
                failed(&p.c.events),
                Some(FailReason::Alert(alert::BAD_CERTIFICATE))
            ),
            "{v:?} {:?}",
            p.c.events
        );
        assert!(p.s.plain.is_empty());
        assert!(!p.s.s.is_established());
    }
}

#[test]
fn handshake_times_out_on_virtual_clock() {
    let (cc, _) = contexts(TlsProfile::default());
    let now = Instant::from_millis(0);
    let mut c = TlsSession::client(
        &cc,
        &auth_for(&ids().1),
        ServerName::try_from("x.mgw").unwrap(),
        now,
    )
    .unwrap();
    let deadline = c.poll_timeout();
    assert_eq!(deadline, now + cc.settings().handshake_timeout);
    c.handle_timeout(Instant::from_millis(1));
    assert!(c.is_handshaking());
    c.handle_timeout(deadline);
    assert_eq!(
        c.poll_event(),
        Some(TlsEvent::Failed {
            reason: FailReason::Timeout
        })
    );
    assert!(c.is_done());
    assert_eq!(c.poll_timeout(), Instant::FAR_FUTURE);
}

#[test]
fn leg_without_peer_authentication_is_refused() {
    let (cc, _) = contexts(TlsProfile::default());
    let r = TlsSession::client(
        &cc,
        &PeerAuth::default(),
        ServerName::try_from("x.mgw").unwrap(),
        Instant::ZERO,
    );
    assert!(matches!(r, Err(ContextError::NoPeerAuth)));
}

// ----- RESUMPTION -----

#[test]
fn tls13_resumption_between_our_client_and_server() {
    let profile = TlsProfile {
        versions: vec![TlsVersion::Tls13],
        ..TlsProfile::default()
    };
    let (cc, mut sc) = contexts(profile);
    let mut p = Pair::new(&cc, &sc);
    p.pump();
    assert!(p.established());
    // The ticket arrives after the handshake, through our record layer.
    send(&mut p.c, &mut p.s, b"x");
    p.pump();
    let mut p2 = Pair::new(&cc, &sc);
    p2.pump();
    assert_eq!(
        established_event(&p2.c.events).map(|e| e.2),
        Some(true),
        "{:?}",
        p2.c.events
    );
    assert_eq!(established_event(&p2.s.events).map(|e| e.2), Some(true));
    send(&mut p2.c, &mut p2.s, b"after resumption");
    p2.pump();
    assert_eq!(p2.s.plain, b"after resumption");

    // After a rotation the previous key still opens tickets; two rotations retire it.
    sc.rotate_ticket_key(crate::TicketKey::generate(7).unwrap())
        .unwrap();
    let mut p3 = Pair::new(&cc, &sc);
    p3.pump();
    assert_eq!(established_event(&p3.s.events).map(|e| e.2), Some(true));
}

#[test]
fn resumed_session_still_checks_this_legs_fingerprint() {
    let profile = TlsProfile {
        versions: vec![TlsVersion::Tls13],
        ..TlsProfile::default()
    };
    let (cc, sc) = contexts(profile);
    let mut p = Pair::new(&cc, &sc);
    p.pump();
    send(&mut p.c, &mut p.s, b"x");
    p.pump();
    // Same server name (same resumption entry) but this leg expects another certificate.
    let wrong = PeerAuth::fingerprints(PeerFingerprints::one(crate::Fingerprint::of_der(
        HashFunction::Sha256,
        b"z",
    )));
    let mut p2 = Pair::with_auth(&cc, &sc, wrong, auth_for(&ids().0));
    p2.pump();
    assert_eq!(failed(&p2.c.events), Some(FailReason::FingerprintMismatch));
    assert!(p2.s.plain.is_empty() && p2.c.plain.is_empty());
}

// ----- ESTABLISHED: records -----

fn established_pair(v: TlsVersion) -> Pair {
    let profile = TlsProfile {
        versions: vec![v],
        ..TlsProfile::default()
    };
    let (cc, sc) = contexts(profile);
    let mut p = Pair::new(&cc, &sc);
    p.pump();
    assert!(p.established());
    p
}

#[test]
fn large_writes_are_cut_into_16k_records_and_reassembled() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut p = established_pair(v);
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        send(&mut p.c, &mut p.s, &data);
        p.pump();
        assert_eq!(p.s.plain, data);
    }
}

#[test]
fn truncated_record_waits_for_more_bytes() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut p = established_pair(v);
        let mut tx = vec![0u8; 1024];
        let n = p.c.s.seal(b"hello world", &mut tx).unwrap();
        let mut plain = Vec::new();
        let mut out = vec![0u8; 1024];
        for cut in [0, 3, 5, n - 1] {
            let mut rx = tx[..cut].to_vec();
            let pr =
                p.s.s
                    .on_ciphertext(&mut rx, p.now, &mut out, &mut |d| {
                        plain.extend_from_slice(d)
                    })
                    .unwrap();
            assert_eq!(pr, Progress::default());
        }
        let mut rx = tx[..n].to_vec();
        let pr =
            p.s.s
                .on_ciphertext(&mut rx, p.now, &mut out, &mut |d| {
                    plain.extend_from_slice(d)
                })
                .unwrap();
        assert_eq!((pr.consumed, pr.delivered), (n, 11));
        assert_eq!(plain, b"hello world");
    }
}

#[test]
fn flipped_bit_yields_bad_record_mac_alert_and_no_plaintext() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut p = established_pair(v);
        let mut tx = vec![0u8; 1024];
        let n = p.c.s.seal(b"do not deliver me", &mut tx).unwrap();
        for bit in [5 * 8 + 3, (n - 1) * 8, (n / 2) * 8 + 7] {
            let mut q = established_pair(v);
            let n2 = q.c.s.seal(b"do not deliver me", &mut tx).unwrap();
            assert_eq!(n, n2);
            tx[bit / 8] ^= 1 << (bit % 8);
            q.s.rx.extend_from_slice(&tx[..n]);
            let (out, r) = Pair::step(&mut q.s, q.now);
            assert_eq!(
                r,
                Err(TlsError::Failed(FailReason::ProtocolError {
                    sent_alert: alert::BAD_RECORD_MAC
                }))
            );
            assert!(q.s.plain.is_empty());
            assert!(q.s.s.is_done());
            // The alert reaches the client, which fails with it.
            q.c.rx.extend_from_slice(&out);
            let _ = Pair::step(&mut q.c, q.now);
            assert_eq!(
                failed(&q.c.events),
                Some(FailReason::Alert(alert::BAD_RECORD_MAC)),
                "{v:?}"
            );
        }
        let _ = &mut p;
    }
}

#[test]
fn oversized_record_yields_record_overflow() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut p = established_pair(v);
        let max = if v == TlsVersion::Tls13 {
            crate::record::MAX_CIPHERTEXT_13
        } else {
            crate::record::MAX_CIPHERTEXT_12
        };
        let len = (max + 1) as u16;
        let mut rec = vec![23u8, 3, 3];
        rec.extend_from_slice(&len.to_be_bytes());
        p.s.rx.extend_from_slice(&rec);
        let (out, r) = Pair::step(&mut p.s, p.now);
        assert_eq!(
            r,
            Err(TlsError::Failed(FailReason::ProtocolError {
                sent_alert: alert::RECORD_OVERFLOW
            }))
        );
        p.c.rx.extend_from_slice(&out);
        let _ = Pair::step(&mut p.c, p.now);
        assert_eq!(
            failed(&p.c.events),
            Some(FailReason::Alert(alert::RECORD_OVERFLOW))
        );
    }
}

#[test]
fn plaintext_over_16k_inside_a_valid_record_is_record_overflow() {
    let mut p = established_pair(TlsVersion::Tls12);
    // A correctly protected record whose plaintext is 2^14 + 1 bytes.
    let big = vec![7u8; MAX_FRAGMENT + 1];
    let mut tx = vec![0u8; big.len() + 64];
    let n =
        p.c.s
            .seal_raw(content_type::APPLICATION_DATA, &big, &mut tx);
    p.s.rx.extend_from_slice(&tx[..n]);
    let (_, r) = Pair::step(&mut p.s, p.now);
    assert_eq!(
        r,
        Err(TlsError::Failed(FailReason::ProtocolError {
            sent_alert: alert::RECORD_OVERFLOW
        }))
    );
    assert!(p.s.plain.is_empty());
}

#[test]
fn tls13_key_update_requested_by_peer_is_answered() {
    let mut p = established_pair(TlsVersion::Tls13);
    // Client asks for a key update; its own sending key changes per RFC 8446 §4.6.3.
    let mut tx = vec![0u8; 256];
    let n =
        p.c.s
            .seal_raw(content_type::HANDSHAKE, &[24, 0, 0, 1, 1], &mut tx);
    p.s.rx.extend_from_slice(&tx[..n]);
    let (out, r) = Pair::step(&mut p.s, p.now);
    r.unwrap();
    assert!(!out.is_empty(), "server answers with its own KeyUpdate");
    // The raw injection did not switch the client's keys, so do it as the real flow would:
    if let Phase::Open(o) = &mut p.c.s.phase {
        let Kernel::Client(k) = &mut o.kernel else {
            panic!()
        };
        let (seq, s) = k.update_tx_secret().unwrap();
        o.rec.tx = DirectionKeys::new(seq, &s).unwrap().0;
    }
    p.c.rx.extend_from_slice(&out);
    send(&mut p.s, &mut p.c, b"new keys from server");
    send(&mut p.c, &mut p.s, b"new keys from client");
    p.pump();
    assert_eq!(p.c.plain, b"new keys from server");
    assert_eq!(p.s.plain, b"new keys from client");
}

#[test]
fn tls13_sending_key_rolls_over_at_the_confidentiality_limit() {
    let mut p = established_pair(TlsVersion::Tls13);
    p.c.s.set_limit(3);
    for i in 0..6u8 {
        send(&mut p.c, &mut p.s, &[i; 10]);
    }
    assert!(p.c.s.tx_seq() < 4);
    p.pump();
    assert_eq!(p.s.plain.len(), 60);
    assert!(p.s.s.is_established());
}

// ----- RENEGOTIATION -----

#[test]
fn tls12_hello_request_is_refused_with_no_renegotiation() {
    let mut p = established_pair(TlsVersion::Tls12);
    let mut tx = vec![0u8; 256];
    let n =
        p.s.s
            .seal_raw(content_type::HANDSHAKE, &[0, 0, 0, 0], &mut tx);
    p.c.rx.extend_from_slice(&tx[..n]);
    let (out, r) = Pair::step(&mut p.c, p.now);
    r.unwrap();
    assert!(!out.is_empty(), "warning alert sent");
    p.s.rx.extend_from_slice(&out);
    let (_, r) = Pair::step(&mut p.s, p.now);
    r.unwrap();
    // The session survives on its original keys.
    send(&mut p.c, &mut p.s, b"still here");
    p.pump();
    assert_eq!(p.s.plain, b"still here");
    assert!(p.c.s.is_established());
}

#[test]
fn tls12_client_renegotiation_attempt_is_refused() {
    let mut p = established_pair(TlsVersion::Tls12);
    let mut tx = vec![0u8; 256];
    // A (truncated-body) ClientHello after the handshake.
    let n =
        p.c.s
            .seal_raw(content_type::HANDSHAKE, &[1, 0, 0, 2, 3, 3], &mut tx);
    p.s.rx.extend_from_slice(&tx[..n]);
    let (out, r) = Pair::step(&mut p.s, p.now);
    r.unwrap();
    assert!(!out.is_empty());
    // Anything else that continues a handshake is fatal.
    let n =
        p.c.s
            .seal_raw(content_type::HANDSHAKE, &[16, 0, 0, 1, 0], &mut tx);
    p.s.rx.extend_from_slice(&tx[..n]);
    let (_, r) = Pair::step(&mut p.s, p.now);
    assert_eq!(
        r,
        Err(TlsError::Failed(FailReason::ProtocolError {
            sent_alert: alert::UNEXPECTED_MESSAGE
        }))
    );
}

#[test]
fn tls13_unexpected_post_handshake_message_is_fatal() {
    let mut p = established_pair(TlsVersion::Tls13);
    let mut tx = vec![0u8; 256];
    let n =
        p.c.s
            .seal_raw(content_type::HANDSHAKE, &[1, 0, 0, 0], &mut tx);
    p.s.rx.extend_from_slice(&tx[..n]);
    let (_, r) = Pair::step(&mut p.s, p.now);
    assert_eq!(
        r,
        Err(TlsError::Failed(FailReason::ProtocolError {
            sent_alert: alert::UNEXPECTED_MESSAGE
        }))
    );
}

// ----- CLOSE -----

#[test]
fn close_notify_both_ways() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut p = established_pair(v);
        let mut tx = vec![0u8; 256];
        let n = p.c.s.close(&mut tx).unwrap();
        assert!(n > 0);
        assert_eq!(p.c.s.seal(b"x", &mut tx), Err(TlsError::Closed));
        p.s.rx.extend_from_slice(&tx[..n]);
        let _ = Pair::step(&mut p.s, p.now);
        assert_eq!(p.s.events.last(), Some(&TlsEvent::CloseNotify));
        // The server may still send, then closes too.
        send(&mut p.s, &mut p.c, b"last words");
        let n = p.s.s.close(&mut tx).unwrap();
        p.c.rx.extend_from_slice(&tx[..n]);
        while let Some(e) = p.s.s.poll_event() {
            p.s.events.push(e);
        }
        let _ = Pair::step(&mut p.c, p.now);
        assert_eq!(p.c.plain, b"last words");
        assert_eq!(
            &p.c.events[p.c.events.len() - 2..],
            &[TlsEvent::CloseNotify, TlsEvent::Closed]
        );
        assert_eq!(p.s.events.last(), Some(&TlsEvent::Closed));
        assert!(p.c.s.is_done() && p.s.s.is_done());
    }
}

#[test]
fn seal_with_small_buffer_writes_nothing() {
    let mut p = established_pair(TlsVersion::Tls13);
    let mut tx = vec![0u8; 10];
    assert!(matches!(
        p.c.s.seal(b"hello", &mut tx),
        Err(TlsError::BufferTooSmall { .. })
    ));
    send(&mut p.c, &mut p.s, b"hello");
    p.pump();
    assert_eq!(p.s.plain, b"hello");
}

#[test]
fn tickets_from_a_retired_key_fall_back_to_a_full_handshake() {
    let profile = TlsProfile {
        versions: vec![TlsVersion::Tls13],
        ..TlsProfile::default()
    };
    let (cc, mut sc) = contexts(profile);
    let mut p = Pair::new(&cc, &sc);
    p.pump();
    send(&mut p.c, &mut p.s, b"x");
    p.pump();
    sc.rotate_ticket_key(crate::TicketKey::generate(2).unwrap())
        .unwrap();
    sc.rotate_ticket_key(crate::TicketKey::generate(3).unwrap())
        .unwrap();
    let mut p2 = Pair::new(&cc, &sc);
    p2.pump();
    assert_eq!(
        established_event(&p2.s.events).map(|e| e.2),
        Some(false),
        "{:?}",
        p2.s.events
    );
}

#[test]
fn ca_verified_leg_accepts_a_chain_and_refuses_a_stranger() {
    // A CA and a server leaf it issued; the client leg verifies by CA (core side, no SDP
    // fingerprint), the server leg by the client's fingerprint.
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mgw test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["server.mgw".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server_id = Identity::from_der(
        vec![leaf.der().clone(), ca.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("mgw-tls-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();

    let (ci, _) = ids();
    let mut cc = TlsContext::new(TlsSettings::default(), ci.clone()).unwrap();
    assert_eq!(cc.load_ca_bundle(&dir.join("ca.pem")).unwrap(), 1);
    let sc = TlsContext::new(TlsSettings::default(), server_id).unwrap();
    let by_ca = PeerAuth {
        fingerprints: PeerFingerprints::new(),
        use_ca: true,
    };
    let mut p = Pair::with_auth(&cc, &sc, by_ca.clone(), auth_for(ci));
    p.pump();
    assert!(p.established(), "{:?} {:?}", p.c.events, p.s.events);

    // A self-signed server the CA did not issue is refused.
    let (_, stranger_ctx) = contexts(TlsProfile::default());
    let mut p = Pair::with_auth(&cc, &stranger_ctx, by_ca, auth_for(ci));
    p.pump();
    assert!(
        matches!(failed(&p.c.events), Some(FailReason::ProtocolError { .. })),
        "{:?}",
        p.c.events
    );
    assert!(!p.c.s.is_established());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls12_resumption_with_tickets() {
    let profile = TlsProfile {
        versions: vec![TlsVersion::Tls12],
        ..TlsProfile::default()
    };
    let (cc, sc) = contexts(profile);
    let mut p = Pair::new(&cc, &sc);
    p.pump();
    assert!(p.established());
    let mut p2 = Pair::new(&cc, &sc);
    p2.pump();
    assert_eq!(
        established_event(&p2.c.events).map(|e| e.2),
        Some(true),
        "{:?}",
        p2.c.events
    );
    assert_eq!(established_event(&p2.s.events).map(|e| e.2), Some(true));
    send(&mut p2.s, &mut p2.c, b"resumed 1.2");
    p2.pump();
    assert_eq!(p2.c.plain, b"resumed 1.2");
}

// ---- hostile first bytes to a server (found by the tls_handshake_server fuzz target) ----

/// A client whose first bytes are not a TLS record (a lone `\n`) or an empty handshake record:
/// the server fails the handshake with exactly one fatal alert. Before the fix, draining that
/// alert made rustls read the bad input again and try a second fatal alert (a debug assertion).
#[test]
fn garbage_first_bytes_fail_the_handshake_with_one_alert() {
    let (_, sctx) = contexts(TlsProfile::default());
    let (_, ci) = ids();
    for first in [&b"\n"[..], &[0x16, 0x03, 0x01, 0x00, 0x00][..]] {
        let now = Instant::from_millis(1);
        let mut s = TlsSession::server(&sctx, &auth_for(ci), now).unwrap();
        let mut rx = first.to_vec();
        let mut tx = vec![0u8; 1 << 16];
        let r = s.on_ciphertext(&mut rx, now, &mut tx, &mut |_| {});
        assert!(r.is_err(), "garbage {first:?} must fail the handshake");
        let mut out = Vec::new();
        loop {
            let n = s.poll_transmit(&mut tx);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&tx[..n]);
        }
        // One alert record: type 21, then version, length 2, level fatal (2), description.
        assert_eq!(out.len(), 7, "one alert record, got {out:?}");
        assert_eq!((out[0], out[3], out[4], out[5]), (21, 0, 2, 2));
        let mut failed = 0;
        while let Some(e) = s.poll_event() {
            failed += usize::from(matches!(e, TlsEvent::Failed { .. }));
        }
        assert_eq!(failed, 1);
    }
}
