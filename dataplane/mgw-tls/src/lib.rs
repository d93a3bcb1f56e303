//! mgw-tls: sans-IO TLS and DTLS sessions for mgwd legs, with peer authentication by SDP
//! fingerprint (3GPP eMEDIASEC, RFC 8122).
//!
//! - [`TlsSession`]: TLS 1.2/1.3 over a byte stream. rustls 0.23 (aws-lc-rs) runs the
//!   handshake through its unbuffered API; after it, records are opened in place in the
//!   caller's receive buffer and sealed straight into the caller's transmit buffer by
//!   [`record`], with no allocation per record.
//! - [`DtlsSession`]: DTLS 1.2 over datagrams with `dimpl`.
//! - [`TlsContext`]: one per worker: profile, identity, CA roots, ticketer (rotatable).
//! - [`Fingerprint`]: `a=fingerprint` values, computed and parsed.
//!
//! No core reads a clock: time comes in as [`mgw_core::time::Instant`]. Randomness for key
//! exchange, nonces and tickets comes from aws-lc-rs inside rustls/dimpl; that is the one
//! accepted exception to "randomness is passed in", because the cryptographic libraries own it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod context;
pub mod dtls;
pub mod fingerprint;
pub mod identity;
pub mod manual;
pub mod profile;
pub mod record;
pub mod session;
pub mod ticket;
pub mod verify;

pub use context::{ContextError, TlsContext, TlsSettings};
pub use dtls::{DtlsConfig, DtlsError, DtlsEvent, DtlsSession};
pub use fingerprint::{Fingerprint, FingerprintError, HashFunction, PeerFingerprints};
pub use identity::{Identity, IdentityError};
pub use profile::{CipherSuite, KxGroup, ProfileError, TlsProfile, TlsVersion};
pub use rustls::pki_types::ServerName;
pub use session::{FailReason, Progress, Record, SecurityRole, TlsError, TlsEvent, TlsSession};
pub use ticket::{TicketKey, WorkerTicketer};
pub use verify::PeerAuth;

/// The AEAD library the record layer uses, re-exported so benchmarks can measure the raw
/// seal/open ceiling with exactly the same implementation.
#[doc(hidden)]
pub use aws_lc_rs;
