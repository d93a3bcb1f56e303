//! The MGW's own certificate and key, and its fingerprint for Local SDP.
//!
//! Either loaded from PEM files (operator-provided, possibly CA-issued) or generated at start as
//! a self-signed ECDSA P-256 certificate (RFC 8122 §6.1: self-signed certificates are normal for
//! fingerprint-authenticated media; the fingerprint in SDP is what binds the key to the session).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use crate::fingerprint::{Fingerprint, HashFunction};

/// Certificate chain plus private key.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    certified: Arc<CertifiedKey>,
}

/// Why an identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A PEM file could not be read or held no certificate / key.
    #[error("PEM: {0}")]
    Pem(String),
    /// The key is not usable with the aws-lc-rs provider (or does not match).
    #[error("private key unusable: {0}")]
    Key(rustls::Error),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(String),
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            certified: self.certified.clone(),
        }
    }
}

impl Identity {
    /// Loads a certificate chain (leaf first) and a private key (PKCS#8, SEC1 or PKCS#1) from
    /// PEM files.
    ///
    /// # Errors
    /// [`IdentityError`] when a file is unreadable, empty, or the key is unusable.
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, IdentityError> {
        let chain = CertificateDer::pem_file_iter(cert_chain)
            .map_err(|e| IdentityError::Pem(format!("{}: {e}", cert_chain.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IdentityError::Pem(format!("{}: {e}", cert_chain.display())))?;
        if chain.is_empty() {
            return Err(IdentityError::Pem(format!(
                "{}: no certificate",
                cert_chain.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| IdentityError::Pem(format!("{}: {e}", key.display())))?;
        Self::from_der(chain, key)
    }

    /// Builds an identity from DER values.
    ///
    /// # Errors
    /// [`IdentityError::Key`] when the key is unusable or does not match the leaf.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, IdentityError> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let certified = CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
            .map_err(IdentityError::Key)?;
        Ok(Identity {
            chain,
            key,
            certified: Arc::new(certified),
        })
    }

    /// Generates a self-signed ECDSA P-256 certificate (rcgen, aws-lc-rs key generation).
    /// `common_name` goes into the subject and as a DNS SAN.
    ///
    /// # Errors
    /// [`IdentityError::Generate`] if key or certificate generation fails.
    pub fn generate_self_signed(common_name: &str) -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![common_name.to_string()])
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params
            .self_signed(&key)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Self::from_der(vec![cert.der().clone()], key_der)
    }

    /// The leaf certificate (DER).
    pub fn leaf_der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key (DER).
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The fingerprint of the leaf for Local SDP `a=fingerprint` (RFC 8122 §5).
    pub fn fingerprint(&self, hash: HashFunction) -> Fingerprint {
        Fingerprint::of_der(hash, self.leaf_der())
    }

    /// The key and chain in the form rustls signs with.
    pub(crate) fn certified(&self) -> Arc<CertifiedKey> {
        self.certified.clone()
    }

    /// PEM encodings (certificate chain, PKCS#8 key), e.g. to hand to a test peer.
    pub fn to_pem(&self) -> (String, String) {
        let mut cert = String::new();
        for c in &self.chain {
            cert.push_str(&pem_block("CERTIFICATE", c.as_ref()));
        }
        let label = match &self.key {
            PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "RSA PRIVATE KEY",
        };
        (cert, pem_block(label, self.key.secret_der()))
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(core::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trips_through_pem_files() {
        let id = Identity::generate_self_signed("mgw.test").unwrap();
        let dir = std::env::temp_dir().join(format!("mgw-tls-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = id.to_pem();
        std::fs::write(dir.join("c.pem"), cert).unwrap();
        std::fs::write(dir.join("k.pem"), key).unwrap();
        let back = Identity::from_pem_files(&dir.join("c.pem"), &dir.join("k.pem")).unwrap();
        assert_eq!(back.leaf_der(), id.leaf_der());
        assert_eq!(
            back.fingerprint(HashFunction::Sha256),
            id.fingerprint(HashFunction::Sha256)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_are_errors() {
        let e = Identity::from_pem_files(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        );
        assert!(matches!(e, Err(IdentityError::Pem(_))));
    }
}
