//! Session-ticket protection, one key set per worker (RFC 8446 §4.6.1, RFC 5077 §4).
//!
//! rustls' own `Ticketer` rotates keys behind a lock shared by every connection of a config.
//! Here each worker owns its ticketer: keys are fixed for the ticketer's lifetime and rotation
//! means the control thread builds a new ticketer (new key, previous key kept for decryption)
//! and installs it into that worker's [`TlsContext`](crate::TlsContext). There is no lock and
//! no state shared between cores. Ticket format: `key_id(4) || nonce(12) || AES-256-GCM(state)
//! || tag(16)`, with `key_id` as additional data.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rustls::server::ProducesTickets;

/// A 256-bit ticket protection key with its identifier.
#[derive(Clone)]
pub struct TicketKey {
    /// Identifier written in front of every ticket.
    pub id: u32,
    /// AES-256-GCM key.
    pub key: [u8; 32],
}

impl core::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TicketKey({})", self.id)
    }
}

impl TicketKey {
    /// A fresh random key (randomness from aws-lc-rs; called by control, not by a core).
    ///
    /// # Errors
    /// [`TicketError`] if the system random source fails.
    pub fn generate(id: u32) -> Result<Self, TicketError> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| TicketError)?;
        Ok(TicketKey { id, key })
    }
}

/// The random source or key setup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ticket key setup failed")]
pub struct TicketError;

struct Slot {
    id: u32,
    key: LessSafeKey,
}

/// A per-worker ticketer: encrypts with the current key, decrypts with current or previous.
pub struct WorkerTicketer {
    current: Slot,
    previous: Option<Slot>,
    lifetime_s: u32,
}

impl core::fmt::Debug for WorkerTicketer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WorkerTicketer")
            .field("current", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|p| p.id))
            .finish()
    }
}

fn slot(k: &TicketKey) -> Result<Slot, TicketError> {
    let key = UnboundKey::new(&AES_256_GCM, &k.key).map_err(|_| TicketError)?;
    Ok(Slot {
        id: k.id,
        key: LessSafeKey::new(key),
    })
}

impl WorkerTicketer {
    /// A ticketer with `current` and, during rotation, the `previous` key still accepted.
    /// `lifetime_s` is the ticket lifetime hint (RFC 8446 §4.6.1 caps it at 7 days).
    ///
    /// # Errors
    /// [`TicketError`] if aws-lc-rs refuses the key.
    pub fn new(
        current: &TicketKey,
        previous: Option<&TicketKey>,
        lifetime_s: u32,
    ) -> Result<Self, TicketError> {
        Ok(WorkerTicketer {
            current: slot(current)?,
            previous: previous.map(slot).transpose()?,
            lifetime_s: lifetime_s.min(604_800),
        })
    }
}

impl ProducesTickets for WorkerTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime_s
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let id = self.current.id.to_be_bytes();
        let mut out = Vec::with_capacity(4 + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .current
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id),
                &mut out[4 + NONCE_LEN..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < 4 + NONCE_LEN + 16 {
            return None;
        }
        let id = u32::from_be_bytes([cipher[0], cipher[1], cipher[2], cipher[3]]);
        let slot = if id == self.current.id {
            &self.current
        } else {
            self.previous.as_ref().filter(|p| p.id == id)?
        };
        let nonce = Nonce::try_assume_unique_for_key(&cipher[4..4 + NONCE_LEN]).ok()?;
        let mut buf = cipher[4 + NONCE_LEN..].to_vec();
        let plain = slot
            .key
            .open_in_place(nonce, Aad::from(id.to_be_bytes()), &mut buf)
            .ok()?;
        let n = plain.len();
        buf.truncate(n);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_with_current_and_previous_key_only() {
        let k1 = TicketKey::generate(1).unwrap();
        let k2 = TicketKey::generate(2).unwrap();
        let k3 = TicketKey::generate(3).unwrap();
        let t1 = WorkerTicketer::new(&k1, None, 3600).unwrap();
        let ticket = t1.encrypt(b"state").unwrap();
        assert_eq!(t1.decrypt(&ticket).unwrap(), b"state");
        let t2 = WorkerTicketer::new(&k2, Some(&k1), 3600).unwrap();
        assert_eq!(t2.decrypt(&ticket).unwrap(), b"state");
        let t3 = WorkerTicketer::new(&k3, Some(&k2), 3600).unwrap();
        assert!(t3.decrypt(&ticket).is_none());
        let mut bad = ticket.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(t1.decrypt(&bad).is_none());
        assert!(t1.decrypt(&[]).is_none());
    }
}
