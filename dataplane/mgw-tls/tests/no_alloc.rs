//! The fast path allocates nothing: once a TLS session is established, opening records in place
//! and sealing records into the caller's buffer makes zero heap allocations (counting global
//! allocator, this test binary only).

use mgw_core::testkit::CountingAllocator;

use mgw_core::time::Instant;
use mgw_tls::{
    HashFunction, Identity, PeerAuth, PeerFingerprints, ServerName, TlsContext, TlsProfile,
    TlsSession, TlsSettings, TlsVersion,
};

/// Counts allocations per thread while switched on (see `mgw_core::testkit`).
#[global_allocator]
static A: CountingAllocator = CountingAllocator;

/// One side consumes its input; what it sends is appended to `peer_rx`. True if it sent.
fn step(sess: &mut TlsSession, rx: &mut Vec<u8>, peer_rx: &mut Vec<u8>, tx: &mut [u8]) -> bool {
    let mut moved = false;
    if let Ok(p) = sess.on_ciphertext(rx, Instant::from_millis(5), tx, &mut |_| {}) {
        rx.drain(..p.consumed);
        peer_rx.extend_from_slice(&tx[..p.written]);
        moved |= p.written > 0;
    }
    loop {
        let n = sess.poll_transmit(tx);
        if n == 0 {
            break;
        }
        peer_rx.extend_from_slice(&tx[..n]);
        moved = true;
    }
    while sess.poll_event().is_some() {}
    moved
}

fn pump(c: &mut TlsSession, s: &mut TlsSession) {
    let (mut c_rx, mut s_rx) = (Vec::new(), Vec::new());
    let mut tx = vec![0u8; 1 << 16];
    for _ in 0..16 {
        let a = step(c, &mut c_rx, &mut s_rx, &mut tx);
        let b = step(s, &mut s_rx, &mut c_rx, &mut tx);
        if !a && !b {
            break;
        }
    }
}

#[test]
fn established_record_path_makes_no_allocation() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let ci = Identity::generate_self_signed("c").unwrap();
        let si = Identity::generate_self_signed("s").unwrap();
        let settings = TlsSettings {
            profile: TlsProfile {
                versions: vec![v],
                ..TlsProfile::default()
            },
            ..TlsSettings::default()
        };
        let cctx = TlsContext::new(settings.clone(), ci.clone()).unwrap();
        let sctx = TlsContext::new(settings, si.clone()).unwrap();
        let auth = |id: &Identity| {
            PeerAuth::fingerprints(PeerFingerprints::one(id.fingerprint(HashFunction::Sha256)))
        };
        let mut c = TlsSession::client(
            &cctx,
            &auth(&si),
            ServerName::try_from("s.mgw").unwrap(),
            Instant::ZERO,
        )
        .unwrap();
        let mut s = TlsSession::server(&sctx, &auth(&ci), Instant::ZERO).unwrap();
        pump(&mut c, &mut s);
        assert!(c.is_established() && s.is_established());
        // Let post-handshake tickets (TLS 1.3) pass first: storing them is slow-path work.
        let mut wire = vec![0u8; 1 << 20];
        let mut tx = vec![0u8; 1 << 16];
        let n = s.seal(b"warm-up", &mut wire).unwrap();
        let _ = c.on_ciphertext(&mut wire[..n], Instant::ZERO, &mut tx, &mut |_| {});

        let msg = [0xabu8; 300];
        CountingAllocator::set_counting(true);
        let before = CountingAllocator::allocations();
        let mut delivered = 0;
        for _ in 0..1000 {
            let n = c.seal(&msg, &mut wire).unwrap();
            let p = s
                .on_ciphertext(&mut wire[..n], Instant::ZERO, &mut tx, &mut |d| {
                    delivered += d.len()
                })
                .unwrap();
            assert_eq!(p.consumed, n);
            let n = s.seal(&msg, &mut wire).unwrap();
            let _ = c
                .on_ciphertext(&mut wire[..n], Instant::ZERO, &mut tx, &mut |d| {
                    delivered += d.len()
                })
                .unwrap();
        }
        let allocs = CountingAllocator::allocations() - before;
        CountingAllocator::set_counting(false);
        assert_eq!(delivered, 2 * 1000 * 300);
        assert_eq!(
            allocs, 0,
            "{v:?}: allocations on the established record path"
        );
    }
}
