//! Design notes for mgw-tls (documentation only).
//!
//! # Why rustls runs only the handshake
//! rustls 0.23's unbuffered API decrypts records in the caller's buffer but then copies every
//! application-data record into a new `Vec`, and builds every outgoing record in a new `Vec`.
//! That is one or two allocations per record, which the fast-path rule forbids. So a
//! [`TlsSession`](crate::TlsSession) drives rustls' unbuffered connection through the
//! handshake, and at its first `WriteTraffic` state hands the connection over through rustls'
//! kernel-offload interface (`dangerous_into_kernel_connection`, the path kTLS uses): rustls
//! gives the traffic keys and sequence numbers, keeps the key schedule for TLS 1.3 KeyUpdate and
//! stores NewSessionTickets, and [`record`](crate::record) does the record protection with
//! aws-lc-rs in the caller's buffers. The `tests/no_alloc.rs` test proves zero allocations per
//! record, both directions, TLS 1.2 and 1.3.
//!
//! What the record layer therefore owns (and tests): AEAD nonce and AAD construction for TLS 1.3
//! (RFC 8446 §5.2-5.3) and TLS 1.2 GCM / ChaCha20 (RFC 5288, RFC 7905); the size limits
//! (`record_overflow` decided from the header, before buffering); alerts (close_notify, fatal
//! alerts with the right description); TLS 1.3 KeyUpdate both ways (RFC 8446 §4.6.3) and the
//! AES-GCM confidentiality limit (§5.5: sending key rolled at 2^23 records; TLS 1.2 closes);
//! refusing renegotiation in TLS 1.2 (RFC 5746: `no_renegotiation` warning to a HelloRequest or
//! ClientHello, anything else fatal) and unexpected post-handshake messages in TLS 1.3.
//!
//! # Peer authentication
//! By SDP fingerprint (RFC 8122 §6.2), both ways: the server requires a client certificate.
//! Verifiers are cached per distinct fingerprint set in the worker's
//! [`TlsContext`](crate::TlsContext), because rustls resumes a session only under the verifier
//! instance that authenticated it. A resumed session is checked again at establishment against
//! the leg's fingerprints. A mismatch during the handshake sends `bad_certificate`; CA-verified
//! legs (core side) verify the chain with webpki against a PEM bundle.
//!
//! # Resumption
//! Stateless tickets only (RFC 8446 §4.6.1; RFC 5077 for TLS 1.2), with one
//! [`WorkerTicketer`](crate::WorkerTicketer) per worker: no lock is shared between cores. Each
//! worker's key is drawn at start and, in this build, never rotated: `mgwd run` does not call
//! [`TlsContext::rotate_ticket_key`](crate::TlsContext::rotate_ticket_key) (which keeps the
//! previous key for opening tickets), so a key lives as long as the process; tickets carry a
//! 2 h lifetime hint. Periodic rotation from the control thread is still to be built. No
//! server session-ID cache (it would be a locked
//! map), no 0-RTT. The client-side store is keyed by the `ServerName` given to
//! [`TlsSession::client`](crate::TlsSession::client): give each peer its own name (its address)
//! or peers evict each other's tickets.
//!
//! # DTLS
//! `dimpl` 0.9 does DTLS 1.2 in both roles, presents our ECDSA certificate and surfaces the
//! peer's; interop with `openssl s_client/s_server -dtls1_2` is tested in both roles. Limits:
//! ECDSA certificates only (no RSA), no resumption, and about three allocations per record in
//! each direction inside dimpl (measured by `tls_bench`). dimpl has no API to send an alert, so
//! a fingerprint mismatch is answered with an epoch-0 `bad_certificate` record we build.
//!
//! # Randomness and time
//! Cores take time as [`mgw_core::time::Instant`]. Randomness (key shares, nonces, tickets) is
//! drawn by aws-lc-rs inside rustls/dimpl/the ticketer: cryptography owns it. dimpl needs
//! `std::time::Instant`; [`DtlsConfig`](crate::DtlsConfig) fixes one origin when it is built and
//! maps our instants onto it, so no session reads a clock.
//!
//! # Past vulnerabilities this design avoids
//! - Renegotiation attacks (CVE-2009-3555): no renegotiation at all.
//! - Truncation: `close_notify` is surfaced as its own event; a peer that just drops TCP is
//!   distinguishable.
//! - Lucky13/POODLE-class CBC padding oracles: AEAD suites only; non-AEAD names are refused at
//!   configuration time.
//! - Nonce reuse: nonces derive from per-direction sequence numbers that refuse to wrap.
