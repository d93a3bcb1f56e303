//! The TLS profile: which versions, cipher suites and key-exchange groups a leg may use.
//!
//! Defaults follow 3GPP TS 33.210 §6.2 / TS 33.310 Annex E (the TLS profile for network
//! domain security): TLS 1.2 and TLS 1.3 only, AEAD cipher suites only (AES-GCM and
//! ChaCha20-Poly1305), ephemeral ECDH key exchange (X25519, P-256, P-384), no compression and
//! no renegotiation. Names given in configuration are matched against the IANA names; a name
//! that denotes a non-AEAD suite (CBC, RC4, NULL, static RSA key transport) is refused with
//! [`ProfileError::NonAeadSuite`] rather than silently dropped.

use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::SupportedCipherSuite;

/// A protocol version of the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

/// An AEAD cipher suite of the profile. TLS 1.2 suites are ECDHE with ECDSA or RSA
/// signatures; TLS 1.3 suites name only the AEAD and hash (RFC 8446 §B.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)] // IANA names are the clearest spelling here.
pub enum CipherSuite {
    /// TLS_AES_128_GCM_SHA256 (TLS 1.3).
    TLS13_AES_128_GCM_SHA256,
    /// TLS_AES_256_GCM_SHA384 (TLS 1.3).
    TLS13_AES_256_GCM_SHA384,
    /// TLS_CHACHA20_POLY1305_SHA256 (TLS 1.3).
    TLS13_CHACHA20_POLY1305_SHA256,
    /// TLS 1.2 only, IANA 0xC02B (RFC 5289).
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    /// TLS 1.2 only, IANA 0xC02C (RFC 5289).
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    /// TLS 1.2 only, IANA 0xCCA9 (RFC 7905).
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    /// TLS 1.2 only, IANA 0xC02F (RFC 5289).
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    /// TLS 1.2 only, IANA 0xC030 (RFC 5289).
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    /// TLS 1.2 only, IANA 0xCCA8 (RFC 7905).
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

impl CipherSuite {
    /// Every suite of the profile, TLS 1.3 first, in default preference order.
    pub const ALL: [CipherSuite; 9] = [
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];

    /// The IANA name (TLS 1.3 suites without the `13`).
    pub const fn iana_name(self) -> &'static str {
        match self {
            CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
            CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            }
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
            }
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            }
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            }
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            }
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            }
        }
    }

    /// The version this suite belongs to.
    pub const fn version(self) -> TlsVersion {
        match self {
            CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => TlsVersion::Tls13,
            _ => TlsVersion::Tls12,
        }
    }

    /// Looks up an IANA name (ASCII case ignored).
    ///
    /// # Errors
    /// [`ProfileError::NonAeadSuite`] for a known suite that is not AEAD + ECDHE (anything with
    /// `CBC`, `RC4`, `NULL`, `3DES`, or static-RSA/DHE key exchange);
    /// [`ProfileError::UnknownSuite`] for anything else.
    pub fn from_iana_name(name: &str) -> Result<Self, ProfileError> {
        if let Some(s) = Self::ALL
            .into_iter()
            .find(|s| s.iana_name().eq_ignore_ascii_case(name))
        {
            return Ok(s);
        }
        let upper = name.to_ascii_uppercase();
        let non_aead = [
            "CBC", "RC4", "NULL", "3DES", "DES_", "_SHA1", "EXPORT", "CCM",
        ]
        .iter()
        .any(|m| upper.contains(m))
            || (upper.starts_with("TLS_RSA_") || upper.starts_with("TLS_DHE_"));
        if upper.starts_with("TLS_") && non_aead {
            Err(ProfileError::NonAeadSuite)
        } else {
            Err(ProfileError::UnknownSuite)
        }
    }

    fn rustls(self) -> SupportedCipherSuite {
        match self {
            CipherSuite::TLS13_AES_128_GCM_SHA256 => cs::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS13_AES_256_GCM_SHA384 => cs::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => cs::TLS13_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            }
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            }
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            }
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
                cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            }
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
                cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            }
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
                cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            }
        }
    }

    /// Maps a negotiated rustls suite back to ours.
    pub(crate) fn from_rustls(s: SupportedCipherSuite) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.rustls().suite() == s.suite())
    }
}

/// An ECDHE group of the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KxGroup {
    /// X25519 (RFC 7748).
    X25519,
    /// secp256r1 / P-256.
    Secp256r1,
    /// secp384r1 / P-384.
    Secp384r1,
}

impl KxGroup {
    /// All groups, default preference order.
    pub const ALL: [KxGroup; 3] = [KxGroup::X25519, KxGroup::Secp256r1, KxGroup::Secp384r1];

    /// Looks up `x25519`, `secp256r1`/`p-256`/`prime256v1`, `secp384r1`/`p-384` (case ignored).
    ///
    /// # Errors
    /// [`ProfileError::UnknownGroup`] for anything else (finite-field DHE is not in the profile).
    pub fn from_name(name: &str) -> Result<Self, ProfileError> {
        match name.to_ascii_lowercase().as_str() {
            "x25519" => Ok(KxGroup::X25519),
            "secp256r1" | "p-256" | "p256" | "prime256v1" => Ok(KxGroup::Secp256r1),
            "secp384r1" | "p-384" | "p384" => Ok(KxGroup::Secp384r1),
            _ => Err(ProfileError::UnknownGroup),
        }
    }

    fn rustls(self) -> &'static dyn SupportedKxGroup {
        match self {
            KxGroup::X25519 => kx_group::X25519,
            KxGroup::Secp256r1 => kx_group::SECP256R1,
            KxGroup::Secp384r1 => kx_group::SECP384R1,
        }
    }
}

/// Why a profile was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The configuration names a cipher suite that is not an AEAD suite with ECDHE.
    #[error("cipher suite is not AEAD with ECDHE: the TS 33.210 profile allows AES-GCM and ChaCha20-Poly1305 only")]
    NonAeadSuite,
    /// The suite name is not known.
    #[error("unknown cipher suite name")]
    UnknownSuite,
    /// The group name is not one of x25519, secp256r1, secp384r1.
    #[error("unknown or non-ECDHE key exchange group")]
    UnknownGroup,
    /// The version name is not TLS 1.2 or TLS 1.3.
    #[error("unknown TLS version (the profile allows TLSv1.2 and TLSv1.3)")]
    UnknownVersion,
    /// After filtering, no suite is left for any enabled version, or no group is left.
    #[error("profile leaves no usable cipher suite or group")]
    Empty,
}

/// Versions, suites and groups for a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProfile {
    /// Enabled versions.
    pub versions: Vec<TlsVersion>,
    /// Enabled suites in preference order.
    pub suites: Vec<CipherSuite>,
    /// Enabled groups in preference order.
    pub groups: Vec<KxGroup>,
}

impl Default for TlsProfile {
    /// TLS 1.2 + 1.3, every AEAD suite, X25519/P-256/P-384 (TS 33.210 §6.2).
    fn default() -> Self {
        TlsProfile {
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            suites: CipherSuite::ALL.to_vec(),
            groups: KxGroup::ALL.to_vec(),
        }
    }
}

impl TlsProfile {
    /// Builds a profile from configuration names (`"TLSv1.2"`, `"TLSv1.3"`; IANA suite names;
    /// group names).
    ///
    /// # Errors
    /// The first [`ProfileError`] met; a non-AEAD suite name is a hard error.
    pub fn from_names(
        versions: &[&str],
        suites: &[&str],
        groups: &[&str],
    ) -> Result<Self, ProfileError> {
        let versions = versions
            .iter()
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "tlsv1.2" | "tls1.2" | "1.2" => Ok(TlsVersion::Tls12),
                "tlsv1.3" | "tls1.3" | "1.3" => Ok(TlsVersion::Tls13),
                _ => Err(ProfileError::UnknownVersion),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let suites = suites
            .iter()
            .map(|s| CipherSuite::from_iana_name(s))
            .collect::<Result<Vec<_>, _>>()?;
        let groups = groups
            .iter()
            .map(|g| KxGroup::from_name(g))
            .collect::<Result<Vec<_>, _>>()?;
        let p = TlsProfile {
            versions,
            suites,
            groups,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks that every enabled version keeps at least one suite and that a group is left.
    ///
    /// # Errors
    /// [`ProfileError::Empty`].
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.groups.is_empty() || self.versions.is_empty() {
            return Err(ProfileError::Empty);
        }
        for v in &self.versions {
            if !self.suites.iter().any(|s| s.version() == *v) {
                return Err(ProfileError::Empty);
            }
        }
        Ok(())
    }

    /// The rustls crypto provider (aws-lc-rs) restricted to this profile.
    pub(crate) fn provider(&self) -> CryptoProvider {
        let base = rustls::crypto::aws_lc_rs::default_provider();
        CryptoProvider {
            cipher_suites: self
                .suites
                .iter()
                .filter(|s| self.versions.contains(&s.version()))
                .map(|s| s.rustls())
                .collect(),
            kx_groups: self.groups.iter().map(|g| g.rustls()).collect(),
            ..base
        }
    }

    /// The rustls protocol versions of this profile.
    pub(crate) fn rustls_versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let mut v = Vec::new();
        if self.versions.contains(&TlsVersion::Tls13) {
            v.push(&rustls::version::TLS13);
        }
        if self.versions.contains(&TlsVersion::Tls12) {
            v.push(&rustls::version::TLS12);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_is_aead_ecdhe_tls12_and_13() {
        let p = TlsProfile::default();
        p.validate().unwrap();
        let prov = p.provider();
        assert_eq!(prov.cipher_suites.len(), 9);
        assert_eq!(prov.kx_groups.len(), 3);
        assert_eq!(p.rustls_versions().len(), 2);
    }

    #[test]
    fn non_aead_suite_names_are_refused_clearly() {
        for bad in [
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
            "TLS_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_RSA_WITH_RC4_128_SHA",
            "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
            "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        ] {
            let err = TlsProfile::from_names(&["TLSv1.2"], &[bad], &["x25519"]).unwrap_err();
            assert_eq!(err, ProfileError::NonAeadSuite, "{bad}");
            assert!(err.to_string().contains("AEAD"));
        }
        assert_eq!(
            CipherSuite::from_iana_name("bogus"),
            Err(ProfileError::UnknownSuite)
        );
    }

    #[test]
    fn names_select_a_subset() {
        let p = TlsProfile::from_names(
            &["tlsv1.2"],
            &["tls_ecdhe_ecdsa_with_chacha20_poly1305_sha256"],
            &["P-256"],
        )
        .unwrap();
        assert_eq!(
            p.suites,
            vec![CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]
        );
        // A version with no suite left is an error.
        assert_eq!(
            TlsProfile::from_names(
                &["TLSv1.3"],
                &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                &["x25519"]
            ),
            Err(ProfileError::Empty)
        );
        assert_eq!(
            KxGroup::from_name("ffdhe2048"),
            Err(ProfileError::UnknownGroup)
        );
    }
}
