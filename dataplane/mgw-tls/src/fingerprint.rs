//! Certificate fingerprints as SDP carries them (RFC 8122 §5, RFC 4572 §5).
//!
//! `a=fingerprint:sha-256 AB:CD:...` names a hash function (from the IANA "Hash Function
//! Textual Names" registry) and the hash of the DER certificate in upper-case hex octets
//! separated by colons. This module computes that value for our certificate (Local SDP) and
//! parses the peer's value (Remote SDP). Parsing is case-insensitive for both the hash name
//! (RFC 8122 §5: "hash-func" is a token, compared case-insensitively) and the hex digits.
//!
//! Only SHA-256 and stronger are accepted: RFC 8122 §5 says SHA-256 MUST be supported and
//! 3GPP TS 33.328 requires it; SHA-1 (and MD5/MD2) fingerprints are refused at parse time.

use core::fmt;
use sha2::Digest;

/// Longest digest we carry (SHA-512).
pub const MAX_DIGEST_LEN: usize = 64;

/// A hash function from the RFC 8122 registry that we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFunction {
    /// `sha-256`.
    Sha256,
    /// `sha-384`.
    Sha384,
    /// `sha-512`.
    Sha512,
}

impl HashFunction {
    /// The textual name as written in SDP (lower case, RFC 8122 §5).
    pub const fn name(self) -> &'static str {
        match self {
            HashFunction::Sha256 => "sha-256",
            HashFunction::Sha384 => "sha-384",
            HashFunction::Sha512 => "sha-512",
        }
    }

    /// Digest length in octets.
    pub const fn digest_len(self) -> usize {
        match self {
            HashFunction::Sha256 => 32,
            HashFunction::Sha384 => 48,
            HashFunction::Sha512 => 64,
        }
    }

    /// Looks a textual name up, ignoring ASCII case.
    ///
    /// # Errors
    /// [`FingerprintError::UnsupportedHash`] for names outside the accepted set (including the
    /// registered but too weak `sha-1`, `md5`, `md2`).
    pub fn from_name(name: &str) -> Result<Self, FingerprintError> {
        [
            HashFunction::Sha256,
            HashFunction::Sha384,
            HashFunction::Sha512,
        ]
        .into_iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .ok_or(FingerprintError::UnsupportedHash)
    }
}

/// A certificate fingerprint: hash function plus digest. `Copy` and allocation-free, so it can
/// travel in session events on the fast path.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    hash: HashFunction,
    digest: [u8; MAX_DIGEST_LEN],
}

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate with `hash`.
    pub fn of_der(hash: HashFunction, der: &[u8]) -> Self {
        let mut digest = [0u8; MAX_DIGEST_LEN];
        match hash {
            HashFunction::Sha256 => digest[..32].copy_from_slice(&sha2::Sha256::digest(der)),
            HashFunction::Sha384 => digest[..48].copy_from_slice(&sha2::Sha384::digest(der)),
            HashFunction::Sha512 => digest.copy_from_slice(&sha2::Sha512::digest(der)),
        }
        Fingerprint { hash, digest }
    }

    /// A fingerprint from a raw digest.
    ///
    /// # Errors
    /// [`FingerprintError::BadLength`] when `digest` is not `hash.digest_len()` octets.
    pub fn from_digest(hash: HashFunction, digest: &[u8]) -> Result<Self, FingerprintError> {
        if digest.len() != hash.digest_len() {
            return Err(FingerprintError::BadLength);
        }
        let mut d = [0u8; MAX_DIGEST_LEN];
        d[..digest.len()].copy_from_slice(digest);
        Ok(Fingerprint { hash, digest: d })
    }

    /// Parses an SDP `a=fingerprint` attribute value: `hash-func SP fingerprint`
    /// (RFC 8122 §5). Leading/trailing whitespace is ignored; the hash name and hex digits
    /// are case-insensitive.
    ///
    /// # Errors
    /// [`FingerprintError`] naming what is wrong.
    pub fn parse(value: &str) -> Result<Self, FingerprintError> {
        let value = value.trim();
        let (name, hex) = value
            .split_once([' ', '\t'])
            .ok_or(FingerprintError::Syntax)?;
        let hash = HashFunction::from_name(name)?;
        let hex = hex.trim();
        let mut digest = [0u8; MAX_DIGEST_LEN];
        let mut n = 0usize;
        for octet in hex.split(':') {
            let b = octet.as_bytes();
            if b.len() != 2 {
                return Err(FingerprintError::Syntax);
            }
            let v = (hex_val(b[0])? << 4) | hex_val(b[1])?;
            if n >= hash.digest_len() {
                return Err(FingerprintError::BadLength);
            }
            digest[n] = v;
            n += 1;
        }
        if n != hash.digest_len() {
            return Err(FingerprintError::BadLength);
        }
        Ok(Fingerprint { hash, digest })
    }

    /// The hash function.
    pub fn hash(&self) -> HashFunction {
        self.hash
    }

    /// The digest octets.
    pub fn digest(&self) -> &[u8] {
        &self.digest[..self.hash.digest_len()]
    }

    /// True when `der` hashes (with this fingerprint's function) to this digest.
    /// The comparison is constant-time in the digest.
    pub fn matches_der(&self, der: &[u8]) -> bool {
        let other = Fingerprint::of_der(self.hash, der);
        let mut diff = 0u8;
        for (a, b) in self.digest().iter().zip(other.digest()) {
            diff |= a ^ b;
        }
        diff == 0
    }
}

fn hex_val(c: u8) -> Result<u8, FingerprintError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(FingerprintError::Syntax),
    }
}

/// Formats as the SDP attribute value, e.g. `sha-256 AB:CD:...` (upper-case hex, RFC 8122 §5).
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hash.name())?;
        f.write_str(" ")?;
        for (i, b) in self.digest().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why an `a=fingerprint` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// Not `hash-func SP XX:XX:...` with two hex digits per octet.
    #[error("fingerprint syntax is not `hash-func XX:XX:...`")]
    Syntax,
    /// The hash function is unknown or weaker than SHA-256.
    #[error("fingerprint hash function unsupported (need sha-256, sha-384 or sha-512)")]
    UnsupportedHash,
    /// The number of octets does not match the hash function.
    #[error("fingerprint length does not match its hash function")]
    BadLength,
}

/// The peer fingerprints given for one leg: RFC 8122 §5 allows several `a=fingerprint`
/// lines; the certificate is accepted when it matches any of them. Fixed capacity, so a leg's
/// verification state never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PeerFingerprints {
    list: [Option<Fingerprint>; PeerFingerprints::CAPACITY],
}

impl PeerFingerprints {
    /// How many fingerprints one leg can carry.
    pub const CAPACITY: usize = 4;

    /// An empty set (matches nothing).
    pub const fn new() -> Self {
        PeerFingerprints {
            list: [None; Self::CAPACITY],
        }
    }

    /// A set of one.
    pub fn one(fp: Fingerprint) -> Self {
        let mut s = Self::new();
        s.list[0] = Some(fp);
        s
    }

    /// Adds a fingerprint.
    ///
    /// # Errors
    /// Returns the fingerprint back when the set is full.
    pub fn push(&mut self, fp: Fingerprint) -> Result<(), Fingerprint> {
        match self.list.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(fp);
                Ok(())
            }
            None => Err(fp),
        }
    }

    /// True when no fingerprint is set.
    pub fn is_empty(&self) -> bool {
        self.list.iter().all(Option::is_none)
    }

    /// Iterates the fingerprints.
    pub fn iter(&self) -> impl Iterator<Item = &Fingerprint> {
        self.list.iter().flatten()
    }

    /// The fingerprint `der` matched, computed with that entry's hash function.
    pub fn find_match(&self, der: &[u8]) -> Option<Fingerprint> {
        self.iter().find(|fp| fp.matches_der(der)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_then_parse_round_trips_for_each_hash() {
        for h in [
            HashFunction::Sha256,
            HashFunction::Sha384,
            HashFunction::Sha512,
        ] {
            let fp = Fingerprint::of_der(h, b"certificate bytes");
            let text = fp.to_string();
            assert!(text.starts_with(h.name()));
            assert_eq!(text.split(':').count(), h.digest_len());
            assert_eq!(Fingerprint::parse(&text).unwrap(), fp);
            assert!(fp.matches_der(b"certificate bytes"));
            assert!(!fp.matches_der(b"certificate bytez"));
        }
    }

    #[test]
    fn parse_is_case_insensitive() {
        let fp = Fingerprint::of_der(HashFunction::Sha256, b"x");
        let upper = fp.to_string().replace("sha-256", "SHA-256");
        let lower = fp.to_string().to_ascii_lowercase();
        assert_eq!(Fingerprint::parse(&upper).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&lower).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&format!("  {lower}  ")).unwrap(), fp);
    }

    #[test]
    fn parse_refuses_bad_values() {
        assert_eq!(Fingerprint::parse("sha-256"), Err(FingerprintError::Syntax));
        assert_eq!(
            Fingerprint::parse("sha-1 AB:CD"),
            Err(FingerprintError::UnsupportedHash)
        );
        assert_eq!(
            Fingerprint::parse("sha-256 AB:CD"),
            Err(FingerprintError::BadLength)
        );
        assert_eq!(
            Fingerprint::parse("sha-256 ABC:D"),
            Err(FingerprintError::Syntax)
        );
        assert_eq!(
            Fingerprint::parse("sha-256 G0:00"),
            Err(FingerprintError::Syntax)
        );
        let long = format!("sha-256 {}", vec!["00"; 33].join(":"));
        assert_eq!(Fingerprint::parse(&long), Err(FingerprintError::BadLength));
        assert_eq!(
            Fingerprint::parse("sha-256 é"),
            Err(FingerprintError::Syntax)
        );
    }

    #[test]
    fn peer_set_matches_any_entry() {
        let a = Fingerprint::of_der(HashFunction::Sha256, b"a");
        let b = Fingerprint::of_der(HashFunction::Sha512, b"b");
        let mut set = PeerFingerprints::one(a);
        set.push(b).unwrap();
        assert_eq!(set.find_match(b"b"), Some(b));
        assert_eq!(set.find_match(b"a"), Some(a));
        assert_eq!(set.find_match(b"c"), None);
        assert!(PeerFingerprints::new().find_match(b"a").is_none());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = Fingerprint::parse(&s);
        }
    }
}
