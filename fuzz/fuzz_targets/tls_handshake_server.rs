//! Fuzz the server handshake entry: arbitrary bytes, fed in two chunks, as what a client sends
//! to a fresh server TlsSession. Any outcome is fine except a panic.
#![no_main]

use mgw_core::time::Instant;
use mgw_tls::{
    Fingerprint, HashFunction, Identity, PeerAuth, PeerFingerprints, TlsContext, TlsSession,
    TlsSettings,
};

/// One context per thread, built once: a `TlsContext` is per-worker state (it caches leg
/// configurations in a `RefCell`), so it is not `Sync` and cannot sit in a `static`. It is
/// leaked so that sessions can borrow it for the life of the process, as a worker's does.
fn ctx() -> &'static TlsContext {
    thread_local! {
        static CTX: &'static TlsContext = Box::leak(Box::new({
            let id = Identity::generate_self_signed("fuzz.mgw").unwrap();
            TlsContext::new(TlsSettings::default(), id).unwrap()
        }));
    }
    CTX.with(|c| *c)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let auth = PeerAuth::fingerprints(PeerFingerprints::one(Fingerprint::of_der(
        HashFunction::Sha256,
        b"peer",
    )));
    let Ok(mut s) = TlsSession::server(ctx(), &auth, Instant::from_millis(1)) else {
        return;
    };
    let mut rx = data.to_vec();
    let mut tx = vec![0u8; 1 << 16];
    let split = rx.len() / 2;
    let mut consumed = 0;
    for end in [split, rx.len()] {
        if consumed > end {
            break;
        }
        match s.on_ciphertext(
            &mut rx[consumed..end],
            Instant::from_millis(2),
            &mut tx,
            &mut |_| {},
        ) {
            Ok(p) => consumed += p.consumed,
            Err(_) => break,
        }
        while s.poll_transmit(&mut tx) > 0 {}
        while s.poll_event().is_some() {}
    }
});
