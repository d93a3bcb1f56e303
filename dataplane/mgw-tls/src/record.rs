//! The TLS record layer after the handshake: in-place AEAD open and seal over caller buffers.
//!
//! rustls 0.23's unbuffered API copies every received application-data record into a fresh
//! `Vec` and builds every sent record in a fresh `Vec` before copying it out. To meet the
//! fast-path rule (no allocation per record) the session lets rustls run the handshake, then
//! takes the traffic secrets through rustls' kernel-offload interface
//! (`dangerous_into_kernel_connection`, the same hand-over kTLS uses) and protects records here
//! with aws-lc-rs directly:
//!
//! - TLS 1.3 (RFC 8446 §5.2-5.3): outer type `application_data`, legacy version 0x0303,
//!   nonce = iv XOR seq, AAD = the 5-byte record header, inner plaintext = content || type ||
//!   zero padding.
//! - TLS 1.2 AES-GCM (RFC 5288 §3, RFC 5246 §6.2.3.3): 8-byte explicit nonce after the header,
//!   nonce = salt(4) || explicit(8), AAD = seq || type || version || plaintext length.
//!   We send explicit = (rustls' random start) XOR seq, as rustls does.
//! - TLS 1.2 ChaCha20-Poly1305 (RFC 7905 §2): no explicit nonce, nonce = iv XOR seq.
//!
//! Decryption happens in place in the caller's receive buffer; the plaintext is returned as a
//! range of that buffer. Encryption writes header, payload and tag straight into the caller's
//! transmit buffer.

use core::ops::Range;

use aws_lc_rs::aead::{
    Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
};
use rustls::ConnectionTrafficSecrets;

use crate::profile::TlsVersion;

/// Record content types (RFC 8446 §5.1).
pub mod content_type {
    /// change_cipher_spec: refused once the session is open (unexpected_message, RFC 8446 §5).
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert: a record holds exactly one, two bytes of level and description (RFC 8446 §6).
    pub const ALERT: u8 = 21;
    /// handshake: once the session is open, only post-handshake messages (RFC 8446 §4.6).
    pub const HANDSHAKE: u8 = 22;
    /// application_data: the relayed bytes, and the outer type of every TLS 1.3 protected record.
    pub const APPLICATION_DATA: u8 = 23;
}

/// Record header length.
pub const HEADER_LEN: usize = 5;
/// Largest plaintext fragment (RFC 8446 §5.1, RFC 5246 §6.2.1).
pub const MAX_FRAGMENT: usize = 1 << 14;
/// Largest TLS 1.3 ciphertext (RFC 8446 §5.2: 2^14 + 256).
pub const MAX_CIPHERTEXT_13: usize = MAX_FRAGMENT + 256;
/// Largest TLS 1.2 ciphertext (RFC 5246 §6.2.3: 2^14 + 2048).
pub const MAX_CIPHERTEXT_12: usize = MAX_FRAGMENT + 2048;
const TAG_LEN: usize = 16;

/// A typed view of a record header (RFC 8446 §5.1 `TLSPlaintext`/`TLSCiphertext`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Content type (outer type for TLS 1.3).
    pub content_type: u8,
    /// legacy_record_version as received; this layer writes 0x0303 on the records it seals.
    pub version: u16,
    /// Length of the fragment that follows.
    pub length: u16,
}

impl RecordHeader {
    /// Parses the first five bytes, or `None` if fewer are present.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let h = buf.get(..HEADER_LEN)?;
        Some(RecordHeader {
            content_type: h[0],
            version: u16::from_be_bytes([h[1], h[2]]),
            length: u16::from_be_bytes([h[3], h[4]]),
        })
    }

    fn emit(self, out: &mut [u8]) {
        out[0] = self.content_type;
        out[1..3].copy_from_slice(&self.version.to_be_bytes());
        out[3..5].copy_from_slice(&self.length.to_be_bytes());
    }
}

/// Why a record could not be opened. Each maps to the fatal alert we send (RFC 8446 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Authentication failed (tampering or wrong keys): `bad_record_mac`.
    #[error("record authentication failed")]
    BadRecordMac,
    /// Ciphertext or plaintext over the limit: `record_overflow`.
    #[error("record exceeds the maximum size")]
    RecordOverflow,
    /// Wrong outer content type, or a TLS 1.3 record of all padding: `unexpected_message`.
    #[error("unexpected record type")]
    UnexpectedMessage,
    /// Malformed record (e.g. shorter than the explicit nonce and tag): `decode_error`.
    #[error("malformed record")]
    DecodeError,
    /// The sequence number would wrap (RFC 8446 §5.3).
    #[error("sequence number exhausted")]
    SequenceExhausted,
}

impl RecordError {
    /// The alert description we send for this error.
    pub fn alert(self) -> u8 {
        match self {
            RecordError::BadRecordMac => 20,
            RecordError::RecordOverflow => 22,
            RecordError::UnexpectedMessage => 10,
            RecordError::DecodeError => 50,
            RecordError::SequenceExhausted => 80,
        }
    }
}

/// One direction's key, IV and sequence number.
pub(crate) struct DirectionKeys {
    key: LessSafeKey,
    iv: [u8; 12],
    pub(crate) seq: u64,
}

impl DirectionKeys {
    pub(crate) fn new(seq: u64, secrets: &ConnectionTrafficSecrets) -> Option<(Self, AeadKind)> {
        let (alg, key, iv, kind) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                (&AES_128_GCM, key, iv, AeadKind::Gcm)
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (&AES_256_GCM, key, iv, AeadKind::Gcm)
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&CHACHA20_POLY1305, key, iv, AeadKind::ChaCha)
            }
            _ => return None,
        };
        let key = LessSafeKey::new(UnboundKey::new(alg, key.as_ref()).ok()?);
        let iv: [u8; 12] = iv.as_ref().try_into().ok()?;
        Some((DirectionKeys { key, iv, seq }, kind))
    }

    fn xor_nonce(&self, seq: u64) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn next_seq(&mut self) -> Result<u64, RecordError> {
        let s = self.seq;
        self.seq = s.checked_add(1).ok_or(RecordError::SequenceExhausted)?;
        Ok(s)
    }
}

/// AEAD family (decides the TLS 1.2 nonce layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AeadKind {
    Gcm,
    ChaCha,
}

/// A record opened in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Not a whole record yet; `need` is the total length of the record in front, when the
    /// header is present (so a caller can size its buffer), else 0.
    Incomplete {
        /// Bytes the whole record needs, or 0 if the header itself is incomplete.
        need: usize,
    },
    /// A record was opened.
    Record {
        /// Bytes of the buffer this record occupied (header included).
        consumed: usize,
        /// Inner content type.
        content_type: u8,
        /// The plaintext, as a range of the buffer passed in.
        plaintext: Range<usize>,
    },
}

/// Record protection for both directions of an established session.
pub(crate) struct RecordLayer {
    pub(crate) version: TlsVersion,
    kind: AeadKind,
    pub(crate) tx: DirectionKeys,
    pub(crate) rx: DirectionKeys,
}

impl RecordLayer {
    pub(crate) fn new(
        version: TlsVersion,
        kind: AeadKind,
        tx: DirectionKeys,
        rx: DirectionKeys,
    ) -> Self {
        RecordLayer {
            version,
            kind,
            tx,
            rx,
        }
    }

    /// Bytes a record carrying `n` plaintext bytes takes on the wire.
    pub(crate) fn overhead(&self) -> usize {
        match (self.version, self.kind) {
            (TlsVersion::Tls13, _) => HEADER_LEN + 1 + TAG_LEN,
            (TlsVersion::Tls12, AeadKind::Gcm) => HEADER_LEN + 8 + TAG_LEN,
            (TlsVersion::Tls12, AeadKind::ChaCha) => HEADER_LEN + TAG_LEN,
        }
    }

    /// Wire size of `n` plaintext bytes cut into maximum-size records.
    pub(crate) fn sealed_len(&self, n: usize) -> usize {
        let records = n.div_ceil(MAX_FRAGMENT).max(1);
        n + records * self.overhead()
    }

    /// Opens the record at the front of `buf` in place.
    pub(crate) fn open(&mut self, buf: &mut [u8]) -> Result<Opened, RecordError> {
        let Some(h) = RecordHeader::parse(buf) else {
            return Ok(Opened::Incomplete { need: 0 });
        };
        let len = usize::from(h.length);
        let max = match self.version {
            TlsVersion::Tls13 => MAX_CIPHERTEXT_13,
            TlsVersion::Tls12 => MAX_CIPHERTEXT_12,
        };
        // RFC 8446 §5.2 / RFC 5246 §6.2.3: over-long ciphertext is record_overflow, decided from
        // the header alone so a peer cannot make us wait for (or buffer) an oversized record.
        if len > max {
            return Err(RecordError::RecordOverflow);
        }
        let total = HEADER_LEN + len;
        if buf.len() < total {
            return Ok(Opened::Incomplete { need: total });
        }
        match self.version {
            TlsVersion::Tls13 => self.open13(h, &mut buf[..total]),
            TlsVersion::Tls12 => self.open12(h, &mut buf[..total]),
        }
    }

    fn open13(&mut self, h: RecordHeader, rec: &mut [u8]) -> Result<Opened, RecordError> {
        // RFC 8446 §5.2: protected records always carry outer type application_data; a
        // change_cipher_spec after the handshake is unexpected_message (§5).
        if h.content_type != content_type::APPLICATION_DATA {
            return Err(RecordError::UnexpectedMessage);
        }
        if rec.len() < HEADER_LEN + TAG_LEN + 1 {
            return Err(RecordError::BadRecordMac);
        }
        let seq = self.rx.seq;
        let nonce = Nonce::assume_unique_for_key(self.rx.xor_nonce(seq));
        let (hdr, body) = rec.split_at_mut(HEADER_LEN);
        let plain_len = self
            .rx
            .key
            .open_in_place(nonce, Aad::from(&hdr[..]), body)
            .map_err(|_| RecordError::BadRecordMac)?
            .len();
        self.rx.next_seq()?;
        // Strip zero padding; the last non-zero byte is the real content type (§5.4).
        let mut end = plain_len;
        while end > 0 && body[end - 1] == 0 {
            end -= 1;
        }
        if end == 0 {
            return Err(RecordError::UnexpectedMessage);
        }
        let ct = body[end - 1];
        let content_len = end - 1;
        if content_len > MAX_FRAGMENT {
            return Err(RecordError::RecordOverflow);
        }
        Ok(Opened::Record {
            consumed: rec.len(),
            content_type: ct,
            plaintext: HEADER_LEN..HEADER_LEN + content_len,
        })
    }

    fn open12(&mut self, h: RecordHeader, rec: &mut [u8]) -> Result<Opened, RecordError> {
        match h.content_type {
            content_type::APPLICATION_DATA | content_type::ALERT | content_type::HANDSHAKE => {}
            _ => return Err(RecordError::UnexpectedMessage),
        }
        let explicit = if self.kind == AeadKind::Gcm { 8 } else { 0 };
        if rec.len() < HEADER_LEN + explicit + TAG_LEN {
            return Err(RecordError::DecodeError);
        }
        let plain_len = rec.len() - HEADER_LEN - explicit - TAG_LEN;
        if plain_len > MAX_FRAGMENT {
            return Err(RecordError::RecordOverflow);
        }
        let seq = self.rx.seq;
        let nonce = match self.kind {
            AeadKind::Gcm => {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&self.rx.iv[..4]);
                n[4..].copy_from_slice(&rec[HEADER_LEN..HEADER_LEN + 8]);
                n
            }
            AeadKind::ChaCha => self.rx.xor_nonce(seq),
        };
        let aad = aad12(seq, h.content_type, h.version, plain_len);
        let start = HEADER_LEN + explicit;
        self.rx
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut rec[start..],
            )
            .map_err(|_| RecordError::BadRecordMac)?;
        self.rx.next_seq()?;
        Ok(Opened::Record {
            consumed: rec.len(),
            content_type: h.content_type,
            plaintext: start..start + plain_len,
        })
    }

    /// Seals one record of `content_type` carrying `payload` (at most [`MAX_FRAGMENT`] bytes)
    /// into the front of `out`. Returns bytes written. `out` must hold
    /// `payload.len() + overhead()` bytes; the caller checks.
    pub(crate) fn seal(
        &mut self,
        content_type: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RecordError> {
        let seq = self.tx.next_seq()?;
        match self.version {
            TlsVersion::Tls13 => {
                let body_len = payload.len() + 1 + TAG_LEN;
                let total = HEADER_LEN + body_len;
                let (hdr, body) = out[..total].split_at_mut(HEADER_LEN);
                RecordHeader {
                    content_type: content_type::APPLICATION_DATA,
                    version: 0x0303,
                    length: body_len as u16,
                }
                .emit(hdr);
                body[..payload.len()].copy_from_slice(payload);
                body[payload.len()] = content_type;
                let (inner, tag_out) = body.split_at_mut(payload.len() + 1);
                let nonce = Nonce::assume_unique_for_key(self.tx.xor_nonce(seq));
                let tag = self
                    .tx
                    .key
                    .seal_in_place_separate_tag(nonce, Aad::from(&hdr[..]), inner)
                    .map_err(|_| RecordError::SequenceExhausted)?;
                tag_out.copy_from_slice(tag.as_ref());
                Ok(total)
            }
            TlsVersion::Tls12 => {
                let explicit = if self.kind == AeadKind::Gcm { 8 } else { 0 };
                let body_len = explicit + payload.len() + TAG_LEN;
                let total = HEADER_LEN + body_len;
                let nonce = self.tx.xor_nonce(seq);
                let (hdr, body) = out[..total].split_at_mut(HEADER_LEN);
                RecordHeader {
                    content_type,
                    version: 0x0303,
                    length: body_len as u16,
                }
                .emit(hdr);
                body[..explicit].copy_from_slice(&nonce[4..4 + explicit]);
                let (inner, tag_out) = body[explicit..].split_at_mut(payload.len());
                inner.copy_from_slice(payload);
                let aad = aad12(seq, content_type, 0x0303, payload.len());
                let tag = self
                    .tx
                    .key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        inner,
                    )
                    .map_err(|_| RecordError::SequenceExhausted)?;
                tag_out.copy_from_slice(tag.as_ref());
                Ok(total)
            }
        }
    }
}

/// RFC 5246 §6.2.3.3: additional_data = seq_num + type + version + length.
fn aad12(seq: u64, ct: u8, version: u16, len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = ct;
    a[9..11].copy_from_slice(&version.to_be_bytes());
    a[11..13].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    fn pair(
        version: TlsVersion,
        secrets: fn() -> ConnectionTrafficSecrets,
    ) -> (RecordLayer, RecordLayer) {
        let mk = || {
            let (a, kind) = DirectionKeys::new(0, &secrets()).unwrap();
            let (b, _) = DirectionKeys::new(0, &secrets()).unwrap();
            RecordLayer::new(version, kind, a, b)
        };
        (mk(), mk())
    }

    fn aes() -> ConnectionTrafficSecrets {
        ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([7u8; 32]),
            iv: Iv::new([9u8; 12]),
        }
    }
    fn chacha() -> ConnectionTrafficSecrets {
        ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: AeadKey::from([7u8; 32]),
            iv: Iv::new([9u8; 12]),
        }
    }

    #[test]
    fn seal_open_round_trip_every_layout() {
        for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for s in [aes as fn() -> _, chacha] {
                let (mut a, mut b) = pair(v, s);
                let mut wire = vec![0u8; 2048];
                let n = a
                    .seal(content_type::APPLICATION_DATA, b"hello", &mut wire)
                    .unwrap();
                assert_eq!(n, 5 + a.overhead());
                // Truncated: waits.
                assert_eq!(
                    b.open(&mut wire[..n - 1]).unwrap(),
                    Opened::Incomplete { need: n }
                );
                let Opened::Record {
                    consumed,
                    content_type: ct,
                    plaintext,
                } = b.open(&mut wire[..n]).unwrap()
                else {
                    panic!()
                };
                assert_eq!((consumed, ct), (n, content_type::APPLICATION_DATA));
                assert_eq!(&wire[plaintext], b"hello");
            }
        }
    }

    #[test]
    fn flipped_bit_is_bad_record_mac() {
        for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let (mut a, mut b) = pair(v, aes);
            let mut wire = vec![0u8; 256];
            let n = a
                .seal(content_type::APPLICATION_DATA, b"secret data", &mut wire)
                .unwrap();
            wire[n - 20] ^= 0x10;
            assert_eq!(b.open(&mut wire[..n]), Err(RecordError::BadRecordMac));
        }
    }

    #[test]
    fn oversized_header_is_record_overflow_before_body_arrives() {
        let (_, mut b) = pair(TlsVersion::Tls13, aes);
        let mut hdr = [23u8, 3, 3, 0x42, 0x01];
        assert_eq!(b.open(&mut hdr), Err(RecordError::RecordOverflow));
    }
}

/// Fuzzing entry: opens every record in `data` with fixed keys, for each version and AEAD
/// layout, until the first error or incomplete record. Never panics on any input.
#[doc(hidden)]
pub fn fuzz_open_records(data: &[u8]) {
    use rustls::crypto::cipher::{AeadKey, Iv};
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        for chacha in [false, true] {
            let secrets = || {
                if chacha {
                    ConnectionTrafficSecrets::Chacha20Poly1305 {
                        key: AeadKey::from([1u8; 32]),
                        iv: Iv::new([2u8; 12]),
                    }
                } else {
                    ConnectionTrafficSecrets::Aes256Gcm {
                        key: AeadKey::from([1u8; 32]),
                        iv: Iv::new([2u8; 12]),
                    }
                }
            };
            let (Some((tx, kind)), Some((rx, _))) = (
                DirectionKeys::new(0, &secrets()),
                DirectionKeys::new(0, &secrets()),
            ) else {
                return;
            };
            let mut layer = RecordLayer::new(version, kind, tx, rx);
            let mut buf = data.to_vec();
            let mut off = 0;
            while let Ok(Opened::Record {
                consumed,
                plaintext,
                ..
            }) = layer.open(&mut buf[off..])
            {
                assert!(plaintext.end <= consumed);
                off += consumed;
            }
        }
    }
}

#[cfg(test)]
mod fuzz_smoke {
    proptest::proptest! {
        /// The fuzz entry on random input (stable-toolchain stand-in for cargo-fuzz).
        #[test]
        fn open_records_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            super::fuzz_open_records(&data);
        }

        #[test]
        fn open_records_with_plausible_headers(ct in 20u8..25, len in 0u16..400, body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut d = vec![ct, 3, 3];
            d.extend_from_slice(&len.to_be_bytes());
            d.extend_from_slice(&body);
            super::fuzz_open_records(&d);
        }
    }
}
