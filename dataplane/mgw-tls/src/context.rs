//! Per-worker TLS context: the profile, our identity, CA roots, the ticketer and the
//! client-side resumption store. One per worker core, so nothing here is shared across cores
//! on the fast path; per-leg rustls configs are derived from it at leg setup (slow path).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, ProducesTickets};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::fingerprint::PeerFingerprints;
use crate::fingerprint::{Fingerprint, HashFunction};
use crate::identity::Identity;
use crate::profile::TlsProfile;
use crate::ticket::{TicketError, TicketKey, WorkerTicketer};
use crate::verify::{FingerprintClientVerifier, FingerprintServerVerifier, PeerAuth};
use std::cell::RefCell;
use std::collections::HashMap;

/// Most distinct peer-fingerprint sets whose verifiers and configs are kept.
const VERIFIER_CACHE: usize = 4096;

/// Per peer-fingerprint set: the verifiers and the rustls configs built on them (lazily).
#[derive(Clone)]
struct LegConfigs {
    server_verifier: Arc<FingerprintServerVerifier>,
    client_verifier: Arc<FingerprintClientVerifier>,
    client: Option<Arc<ClientConfig>>,
    server: Option<Arc<ServerConfig>>,
}

/// Settings for a [`TlsContext`].
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Versions, suites, groups.
    pub profile: TlsProfile,
    /// How long a handshake may take before it fails with `Timeout`.
    pub handshake_timeout: Duration,
    /// TLS 1.3 tickets a server sends after a full handshake (0 disables resumption).
    pub tls13_tickets: usize,
    /// Ticket lifetime hint, seconds.
    pub ticket_lifetime_s: u32,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            profile: TlsProfile::default(),
            handshake_timeout: Duration::from_secs(10),
            tls13_tickets: 1,
            ticket_lifetime_s: 7200,
        }
    }
}

/// Why a context or a per-leg config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The profile is invalid.
    #[error("profile: {0}")]
    Profile(#[from] crate::profile::ProfileError),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA bundle is unreadable or empty, or a verifier could not be built.
    #[error("CA roots: {0}")]
    Ca(String),
    /// Ticket key setup failed.
    #[error("ticket key: {0}")]
    Ticket(#[from] TicketError),
    /// The leg names neither a fingerprint nor CA verification.
    #[error("leg has no peer authentication (no fingerprint, no CA)")]
    NoPeerAuth,
}

/// Per-worker TLS state and configuration factory.
pub struct TlsContext {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    identity: Identity,
    client_base: ClientConfig,
    server_cert: Arc<rustls::sign::SingleCertAndKey>,
    ticketer: Arc<dyn ProducesTickets>,
    ticket_key: TicketKey,
    ca_server: Option<Arc<dyn ServerCertVerifier>>,
    ca_client: Option<Arc<dyn ClientCertVerifier>>,
    /// One verifier pair (and the configs using it) per distinct (fingerprints, use_ca): rustls
    /// resumes only under the same verifier instance (see [`crate::verify`]), and building a
    /// config per leg would cost time and memory for nothing when a peer reconnects.
    verifiers: RefCell<HashMap<(PeerFingerprints, bool), LegConfigs>>,
}

impl core::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsContext")
            .field("profile", &self.settings.profile)
            .field(
                "fingerprint",
                &self.identity.fingerprint(HashFunction::Sha256),
            )
            .field("ticket_key", &self.ticket_key)
            .finish()
    }
}

impl TlsContext {
    /// Builds a worker context with a fresh random ticket key.
    ///
    /// # Errors
    /// [`ContextError`] when the profile or identity is unusable.
    pub fn new(settings: TlsSettings, identity: Identity) -> Result<Self, ContextError> {
        settings.profile.validate()?;
        let provider = Arc::new(settings.profile.provider());
        let versions = settings.profile.rustls_versions();
        let algs = provider.signature_verification_algorithms;
        // Placeholder verifier: every leg's config replaces it with its own.
        let placeholder = Arc::new(FingerprintServerVerifier {
            fps: Default::default(),
            ca: None,
            algs,
        });
        let mut client_base = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?
            .dangerous()
            .with_custom_certificate_verifier(placeholder)
            .with_client_auth_cert(identity.chain().to_vec(), identity.key().clone_key())?;
        client_base.enable_secret_extraction = true;
        // RFC 8446 §4.2.10: no 0-RTT (its data has no replay protection).
        client_base.enable_early_data = false;
        let ticket_key = TicketKey::generate(1)?;
        let ticketer = Arc::new(WorkerTicketer::new(
            &ticket_key,
            None,
            settings.ticket_lifetime_s,
        )?);
        let server_cert = Arc::new(rustls::sign::SingleCertAndKey::from(identity.certified()));
        Ok(TlsContext {
            settings,
            provider,
            versions,
            identity,
            client_base,
            server_cert,
            ticketer,
            ticket_key,
            ca_server: None,
            ca_client: None,
            verifiers: RefCell::new(HashMap::new()),
        })
    }

    /// Adds CA-based verification roots from a PEM bundle (for legs with `use_ca`).
    ///
    /// # Errors
    /// [`ContextError::Ca`] when the bundle is unreadable or holds no usable certificate.
    pub fn load_ca_bundle(&mut self, pem: &Path) -> Result<usize, ContextError> {
        let certs = CertificateDer::pem_file_iter(pem)
            .map_err(|e| ContextError::Ca(format!("{}: {e}", pem.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ContextError::Ca(format!("{}: {e}", pem.display())))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ContextError::Ca(format!(
                "{}: no usable CA certificate",
                pem.display()
            )));
        }
        let roots = Arc::new(roots);
        self.ca_server = Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                self.provider.clone(),
            )
            .build()
            .map_err(|e| ContextError::Ca(e.to_string()))?,
        );
        self.ca_client = Some(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots,
                self.provider.clone(),
            )
            .build()
            .map_err(|e| ContextError::Ca(e.to_string()))?,
        );
        self.verifiers.borrow_mut().clear();
        Ok(added)
    }

    /// The settings.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Our identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Our fingerprint for Local SDP.
    pub fn local_fingerprint(&self, hash: HashFunction) -> Fingerprint {
        self.identity.fingerprint(hash)
    }

    /// Installs a ticketer built elsewhere (control-thread rotation). Sessions created from now
    /// on use it; established sessions are unaffected.
    pub fn install_ticketer(&mut self, ticketer: Arc<dyn ProducesTickets>) {
        self.ticketer = ticketer;
        for v in self.verifiers.get_mut().values_mut() {
            v.server = None;
        }
    }

    /// Rotates to `key`, keeping the current key for decrypting tickets already issued.
    ///
    /// # Errors
    /// [`ContextError::Ticket`] if the key is refused.
    pub fn rotate_ticket_key(&mut self, key: TicketKey) -> Result<(), ContextError> {
        let t = WorkerTicketer::new(
            &key,
            Some(&self.ticket_key),
            self.settings.ticket_lifetime_s,
        )?;
        self.ticket_key = key;
        self.install_ticketer(Arc::new(t));
        Ok(())
    }

    fn check_auth(&self, peer: &PeerAuth) -> Result<(), ContextError> {
        if peer.fingerprints.is_empty() && !(peer.use_ca && self.ca_server.is_some()) {
            return Err(ContextError::NoPeerAuth);
        }
        if peer.use_ca && self.ca_server.is_none() {
            return Err(ContextError::Ca(
                "leg asks for CA verification but no bundle is loaded".into(),
            ));
        }
        Ok(())
    }

    /// Runs `f` on the cache entry for `peer`, creating it if needed.
    fn with_entry<T>(&self, peer: &PeerAuth, f: impl FnOnce(&mut LegConfigs) -> T) -> T {
        let key = (peer.fingerprints, peer.use_ca);
        let mut map = self.verifiers.borrow_mut();
        if !map.contains_key(&key) {
            if map.len() >= VERIFIER_CACHE {
                map.clear();
            }
            let algs = self.provider.signature_verification_algorithms;
            map.insert(
                key,
                LegConfigs {
                    server_verifier: Arc::new(FingerprintServerVerifier {
                        fps: peer.fingerprints,
                        ca: if peer.use_ca {
                            self.ca_server.clone()
                        } else {
                            None
                        },
                        algs,
                    }),
                    client_verifier: Arc::new(FingerprintClientVerifier {
                        fps: peer.fingerprints,
                        ca: if peer.use_ca {
                            self.ca_client.clone()
                        } else {
                            None
                        },
                        algs,
                    }),
                    client: None,
                    server: None,
                },
            );
        }
        match map.get_mut(&key) {
            Some(e) => f(e),
            None => unreachable_entry(),
        }
    }

    /// A client config for one leg (slow path; cached per peer-fingerprint set).
    pub(crate) fn client_config(&self, peer: &PeerAuth) -> Result<Arc<ClientConfig>, ContextError> {
        self.check_auth(peer)?;
        Ok(self.with_entry(peer, |e| {
            e.client
                .get_or_insert_with(|| {
                    let mut cfg = self.client_base.clone();
                    cfg.dangerous()
                        .set_certificate_verifier(e.server_verifier.clone());
                    Arc::new(cfg)
                })
                .clone()
        }))
    }

    /// A server config for one leg (slow path; cached per peer-fingerprint set).
    pub(crate) fn server_config(&self, peer: &PeerAuth) -> Result<Arc<ServerConfig>, ContextError> {
        self.check_auth(peer)?;
        if let Some(cfg) = self.with_entry(peer, |e| e.server.clone()) {
            return Ok(cfg);
        }
        let verifier = self.with_entry(peer, |e| e.client_verifier.clone());
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&self.versions)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.server_cert.clone());
        cfg.enable_secret_extraction = true;
        cfg.ticketer = self.ticketer.clone();
        // Stateless resumption only (tickets): a session-ID cache would be a shared, locked map.
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        cfg.send_tls13_tickets = self.settings.tls13_tickets;
        cfg.max_early_data_size = 0;
        let cfg = Arc::new(cfg);
        self.with_entry(peer, |e| e.server = Some(cfg.clone()));
        Ok(cfg)
    }
}

/// The entry was inserted just before under the same borrow; this cannot run.
#[cold]
fn unreachable_entry<T>() -> T {
    unreachable!("verifier cache entry vanished under its own borrow")
}
