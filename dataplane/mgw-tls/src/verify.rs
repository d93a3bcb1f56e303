//! Peer authentication by SDP fingerprint (RFC 8122 §6.2, TS 33.328 eMEDIASEC), optionally
//! together with CA-based verification for core-side legs.
//!
//! The peer's certificate is normally self-signed: what authenticates it is that its hash
//! matches an `a=fingerprint` of the Remote SDP for this leg. So the verifiers here do not build
//! a chain; they hash the end-entity certificate and compare. Handshake signatures are still
//! verified with the provider's algorithms, which proves possession of the key. When a CA
//! bundle is configured for the leg, the chain must also verify against it.
//!
//! A verifier carries one set of peer fingerprints. The worker's [`crate::TlsContext`] keeps one
//! verifier per distinct set, because rustls only resumes a session with the same verifier
//! instance that authenticated it: a new leg to the same peer certificate can then resume.
//! A mismatch is reported as `CertificateError::NotValidForName` (alert `bad_certificate`); CA
//! path name errors are re-labelled so that error means "fingerprint mismatch" only.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::fingerprint::PeerFingerprints;

/// How the peer of a leg is authenticated.
#[derive(Debug, Clone, Default)]
pub struct PeerAuth {
    /// Fingerprints from Remote SDP; if non-empty the leaf must match one.
    pub fingerprints: PeerFingerprints,
    /// Verify the chain against the context's CA roots (core-side legs).
    pub use_ca: bool,
}

impl PeerAuth {
    /// Authenticate by fingerprint only.
    pub fn fingerprints(fps: PeerFingerprints) -> Self {
        PeerAuth {
            fingerprints: fps,
            use_ca: false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct FingerprintServerVerifier {
    pub(crate) fps: PeerFingerprints,
    pub(crate) ca: Option<Arc<dyn ServerCertVerifier>>,
    pub(crate) algs: WebPkiSupportedAlgorithms,
}

#[derive(Debug)]
pub(crate) struct FingerprintClientVerifier {
    pub(crate) fps: PeerFingerprints,
    pub(crate) ca: Option<Arc<dyn ClientCertVerifier>>,
    pub(crate) algs: WebPkiSupportedAlgorithms,
}

/// The error a mismatch is reported with. `BadCertificate`-class alert: rustls maps
/// `CertificateError::NotValidForName` to `bad_certificate` (RFC 8446 §6.2), which is the alert
/// RFC 8122 §6.2 implies for a certificate that does not match the offered fingerprint.
pub(crate) fn mismatch() -> Error {
    Error::InvalidCertificate(CertificateError::NotValidForName)
}

/// True for the error [`mismatch`] makes.
pub(crate) fn is_mismatch(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidCertificate(CertificateError::NotValidForName)
    )
}

/// Keeps `NotValidForName` reserved for fingerprint mismatches.
fn relabel_ca(e: Error) -> Error {
    match e {
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        }
        e => e,
    }
}

fn check_fingerprint(fps: &PeerFingerprints, end_entity: &CertificateDer<'_>) -> Result<(), Error> {
    if fps.is_empty() {
        return Ok(());
    }
    if fps.find_match(end_entity.as_ref()).is_some() {
        Ok(())
    } else {
        Err(mismatch())
    }
}

impl ServerCertVerifier for FingerprintServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        check_fingerprint(&self.fps, end_entity)?;
        if let Some(ca) = &self.ca {
            ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(relabel_ca)?;
        } else if self.fps.is_empty() {
            // Neither a fingerprint nor a CA: nothing authenticates the peer.
            return Err(mismatch());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for FingerprintClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Both ends are authenticated by fingerprint: the client MUST present a certificate.
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.ca {
            Some(ca) => ca.root_hint_subjects(),
            None => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        check_fingerprint(&self.fps, end_entity)?;
        if let Some(ca) = &self.ca {
            ca.verify_client_cert(end_entity, intermediates, now)
                .map_err(relabel_ca)?;
        } else if self.fps.is_empty() {
            return Err(mismatch());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
