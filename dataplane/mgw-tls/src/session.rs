//! One TLS leg as a sans-IO state machine over caller-owned buffers.
//!
//! Phases:
//! - **Handshake**: rustls' unbuffered connection runs the handshake over the caller's receive
//!   buffer; the flights it produces are staged in a handshake outbox (rustls allocates here
//!   anyway) and copied to the caller's transmit buffer as room allows.
//! - **Established**: at the first `WriteTraffic` state the session checks the peer fingerprint
//!   once more (this covers resumed sessions, where no certificate is re-sent), takes the
//!   traffic secrets through rustls' kernel-offload hand-over and from then on protects records
//!   itself ([`crate::record`]): decryption in place in the receive buffer, encryption straight
//!   into the transmit buffer, no allocation per record. rustls stays responsible for
//!   post-handshake key schedule work (TLS 1.3 KeyUpdate secrets, NewSessionTicket storage).
//! - **Closed / Failed**: terminal.
//!
//! The caller contract for [`TlsSession::on_ciphertext`]: after each call, drop
//! `Progress::consumed` bytes from the front of the receive buffer and transmit the first
//! `Progress::written` bytes of the transmit buffer; then drain [`TlsSession::poll_event`] and,
//! while [`TlsSession::wants_transmit`] holds, call [`TlsSession::poll_transmit`]. After an
//! error, call `poll_transmit` to flush the fatal alert, then release the leg.

use core::ops::Range;

use mgw_core::time::Instant;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{CommonState, ExtractedSecrets, HandshakeKind, ProtocolVersion};

use crate::context::{ContextError, TlsContext};
use crate::fingerprint::{Fingerprint, HashFunction, PeerFingerprints};
use crate::profile::{CipherSuite, TlsVersion};
use crate::record::{content_type, DirectionKeys, Opened, RecordLayer, MAX_FRAGMENT};
use crate::verify::{is_mismatch, PeerAuth};

pub use mgw_core::leg::SecurityRole;

/// Alert descriptions we send (RFC 8446 §6).
pub mod alert {
    /// close_notify: sent at level warning when this side closes, and by a TLS 1.2 session that
    /// reaches its key limit.
    pub const CLOSE_NOTIFY: u8 = 0;
    /// unexpected_message: a record or message the session's state does not allow.
    pub const UNEXPECTED_MESSAGE: u8 = 10;
    /// bad_record_mac: a record that does not decrypt and authenticate.
    pub const BAD_RECORD_MAC: u8 = 20;
    /// record_overflow: a record longer than the version's ciphertext limit.
    pub const RECORD_OVERFLOW: u8 = 22;
    /// handshake_failure: the peer offers nothing the profile accepts (DTLS: any handshake error).
    pub const HANDSHAKE_FAILURE: u8 = 40;
    /// bad_certificate: the peer's certificate matches none of the leg's fingerprints (RFC 8122).
    pub const BAD_CERTIFICATE: u8 = 42;
    /// decode_error: a message or alert whose length or fields do not parse.
    pub const DECODE_ERROR: u8 = 50;
    /// internal_error: a failure on this side, such as sequence numbers running out.
    pub const INTERNAL_ERROR: u8 = 80;
    /// user_canceled: never sent; one received is ignored, not fatal (RFC 8446 §6).
    pub const USER_CANCELED: u8 = 90;
    /// no_renegotiation (TLS 1.2 only, always a warning; RFC 5246 §7.2.2).
    pub const NO_RENEGOTIATION: u8 = 100;
}

/// Why a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The peer sent this fatal alert.
    Alert(u8),
    /// The peer's certificate matched none of the leg's fingerprints (RFC 8122 §6.2). We sent a
    /// fatal `bad_certificate` alert.
    FingerprintMismatch,
    /// The handshake did not complete before its deadline.
    Timeout,
    /// A protocol violation on our side of the check; we sent fatal alert `sent_alert`.
    ProtocolError {
        /// The alert description we sent.
        sent_alert: u8,
    },
}

/// Session events, drained with [`TlsSession::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsEvent {
    /// The handshake completed and the peer is authenticated.
    Established {
        /// Negotiated version.
        version: TlsVersion,
        /// Negotiated suite.
        suite: CipherSuite,
        /// The peer certificate's fingerprint (hash of the matching leg fingerprint, SHA-256
        /// when CA-verified).
        peer_fingerprint: Fingerprint,
        /// True for an abbreviated (resumed) handshake.
        resumed: bool,
    },
    /// The session failed; the leg must be released.
    Failed {
        /// A received or sent fatal alert, a fingerprint mismatch, or the handshake deadline.
        reason: FailReason,
    },
    /// The peer sent close_notify: no more data will arrive.
    CloseNotify,
    /// Both directions are closed.
    Closed,
}

/// Errors of session operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The session failed (the reason is also queued as a `Failed` event).
    #[error("session failed: {0:?}")]
    Failed(FailReason),
    /// The operation needs an established session.
    #[error("session not established")]
    NotEstablished,
    /// The session is closed or failed.
    #[error("session closed")]
    Closed,
    /// The transmit buffer is too small; nothing was written.
    #[error("transmit buffer too small, need {needed} bytes")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

/// What one [`TlsSession::on_ciphertext`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes to drop from the front of the receive buffer.
    pub consumed: usize,
    /// Bytes written at the front of the transmit buffer.
    pub written: usize,
    /// Plaintext bytes delivered.
    pub delivered: usize,
}

/// A record opened by [`TlsSession::open_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Not a whole record yet (`need` = total record bytes when known, else 0).
    Incomplete {
        /// Bytes the whole record needs.
        need: usize,
    },
    /// Application data, decrypted in place: `plaintext` is a range of the buffer.
    Data {
        /// Bytes the record occupied.
        consumed: usize,
        /// Plaintext range in the buffer.
        plaintext: Range<usize>,
    },
    /// A control record (alert, post-handshake message) handled internally.
    Control {
        /// Bytes the record occupied.
        consumed: usize,
    },
}

enum Conn {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

struct Handshake {
    conn: Conn,
    fps: PeerFingerprints,
    /// Application data rustls decrypted while finishing the handshake, held back until the
    /// peer check at establishment passed.
    early_plain: Vec<u8>,
}

struct Open {
    rec: RecordLayer,
    kernel: Kernel,
    limit: u64,
    sent_close: bool,
    recv_close: bool,
    /// Reassembly for post-handshake handshake messages that span records (rare).
    hs_buf: Vec<u8>,
}

enum Phase {
    Handshake(Box<Handshake>),
    Open(Box<Open>),
    Done,
}

const EVENTS: usize = 4;
/// Room for a few control records (alerts, KeyUpdate): each is under 40 bytes.
const CTL_CAP: usize = 128;

/// One TLS leg. See the module docs for the caller contract.
pub struct TlsSession {
    role: SecurityRole,
    phase: Phase,
    deadline: Instant,
    /// Handshake flights not yet copied out (empty and unallocated once established).
    outbox: Vec<u8>,
    /// Control records sealed after the handshake, not yet copied out.
    ctl: [u8; CTL_CAP],
    ctl_len: usize,
    events: [Option<TlsEvent>; EVENTS],
    ev_head: usize,
    ev_len: usize,
}

impl core::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let phase = match self.phase {
            Phase::Handshake(_) => "handshake",
            Phase::Open(_) => "open",
            Phase::Done => "done",
        };
        f.debug_struct("TlsSession")
            .field("role", &self.role)
            .field("phase", &phase)
            .finish()
    }
}

fn version_of(v: Option<ProtocolVersion>) -> TlsVersion {
    match v {
        Some(ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
        _ => TlsVersion::Tls13,
    }
}

impl TlsSession {
    /// A client leg (we are the `a=setup` active side). `server_name` keys the resumption
    /// store, so use something that identifies the peer (its address); it is sent as SNI only
    /// when it is a DNS name.
    ///
    /// # Errors
    /// [`ContextError`] when the leg has no peer authentication or rustls refuses the config.
    pub fn client(
        ctx: &TlsContext,
        peer: &PeerAuth,
        server_name: ServerName<'static>,
        now: Instant,
    ) -> Result<Self, ContextError> {
        let cfg = ctx.client_config(peer)?;
        let conn = UnbufferedClientConnection::new(cfg, server_name)?;
        Ok(Self::with(
            SecurityRole::Client,
            Conn::Client(conn),
            peer.fingerprints,
            ctx,
            now,
        ))
    }

    /// A server leg (we are the `a=setup` passive side). The client must present a
    /// certificate that matches the leg's fingerprints.
    ///
    /// # Errors
    /// [`ContextError`] when the leg has no peer authentication or rustls refuses the config.
    pub fn server(ctx: &TlsContext, peer: &PeerAuth, now: Instant) -> Result<Self, ContextError> {
        let cfg = ctx.server_config(peer)?;
        let conn = UnbufferedServerConnection::new(cfg)?;
        Ok(Self::with(
            SecurityRole::Server,
            Conn::Server(conn),
            peer.fingerprints,
            ctx,
            now,
        ))
    }

    fn with(
        role: SecurityRole,
        conn: Conn,
        fps: PeerFingerprints,
        ctx: &TlsContext,
        now: Instant,
    ) -> Self {
        TlsSession {
            role,
            phase: Phase::Handshake(Box::new(Handshake {
                conn,
                fps,
                early_plain: Vec::new(),
            })),
            deadline: now + ctx.settings().handshake_timeout,
            outbox: Vec::new(),
            ctl: [0; CTL_CAP],
            ctl_len: 0,
            events: [None; EVENTS],
            ev_head: 0,
            ev_len: 0,
        }
    }

    /// This leg's role.
    pub fn role(&self) -> SecurityRole {
        self.role
    }

    /// True once established and not yet closed or failed.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// True while the handshake runs.
    pub fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshake(_))
    }

    /// True when the session is terminal (closed or failed).
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The next deadline: the handshake timeout while handshaking, else `FAR_FUTURE`.
    pub fn poll_timeout(&self) -> Instant {
        if self.is_handshaking() {
            self.deadline
        } else {
            Instant::FAR_FUTURE
        }
    }

    /// Fires the handshake timeout if `now` is past it.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_handshaking() && now >= self.deadline {
            self.fail(FailReason::Timeout);
        }
    }

    /// Next queued event.
    pub fn poll_event(&mut self) -> Option<TlsEvent> {
        if self.ev_len == 0 {
            return None;
        }
        let e = self.events[self.ev_head].take();
        self.ev_head = (self.ev_head + 1) % EVENTS;
        self.ev_len -= 1;
        e
    }

    fn push_event(&mut self, e: TlsEvent) {
        if self.ev_len == EVENTS {
            // Cannot happen with the events a session emits (at most Established, CloseNotify,
            // Closed or Failed, Closed); drop the oldest rather than panic.
            self.ev_head = (self.ev_head + 1) % EVENTS;
            self.ev_len -= 1;
        }
        self.events[(self.ev_head + self.ev_len) % EVENTS] = Some(e);
        self.ev_len += 1;
    }

    fn fail(&mut self, reason: FailReason) {
        if !self.is_done() {
            self.phase = Phase::Done;
            self.push_event(TlsEvent::Failed { reason });
        }
    }

    /// True when handshake or control bytes wait for [`TlsSession::poll_transmit`].
    pub fn wants_transmit(&self) -> bool {
        !self.outbox.is_empty() || self.ctl_len > 0
    }

    /// Copies pending handshake/control bytes into `tx`; returns bytes written.
    pub fn poll_transmit(&mut self, tx: &mut [u8]) -> usize {
        let mut w = 0;
        if !self.outbox.is_empty() {
            let n = self.outbox.len().min(tx.len());
            tx[..n].copy_from_slice(&self.outbox[..n]);
            self.outbox.drain(..n);
            if self.outbox.is_empty() {
                // Release the handshake allocation: idle legs should be small.
                self.outbox = Vec::new();
            }
            w = n;
        }
        if self.outbox.is_empty() && self.ctl_len > 0 && tx.len() - w >= self.ctl_len {
            tx[w..w + self.ctl_len].copy_from_slice(&self.ctl[..self.ctl_len]);
            w += self.ctl_len;
            self.ctl_len = 0;
        }
        w
    }

    /// Feeds received ciphertext. Application data goes to `deliver` as slices of `rx`
    /// (decrypted in place). See the module docs for what to do with the returned
    /// [`Progress`].
    ///
    /// # Errors
    /// [`TlsError::Failed`] when the session fails now (a fatal alert is then pending for
    /// `poll_transmit`); [`TlsError::Closed`] if it had already ended.
    pub fn on_ciphertext(
        &mut self,
        rx: &mut [u8],
        now: Instant,
        tx: &mut [u8],
        deliver: &mut impl FnMut(&[u8]),
    ) -> Result<Progress, TlsError> {
        let mut p = Progress::default();
        if self.is_handshaking() {
            self.handle_timeout(now);
            if let Phase::Done = self.phase {
                return Err(TlsError::Failed(FailReason::Timeout));
            }
            // On failure the fatal alert stays queued for `poll_transmit`.
            self.drive_handshake(rx, &mut p, deliver)?;
            p.written += self.poll_transmit(tx);
        }
        match self.phase {
            Phase::Open(_) => {}
            Phase::Done if p.consumed > 0 || p.written > 0 => return Ok(p),
            Phase::Done => return Err(TlsError::Closed),
            Phase::Handshake(_) => return Ok(p),
        }
        loop {
            match self.open_record(&mut rx[p.consumed..]) {
                Ok(Record::Incomplete { .. }) => break,
                Ok(Record::Control { consumed }) => p.consumed += consumed,
                Ok(Record::Data {
                    consumed,
                    plaintext,
                }) => {
                    let base = p.consumed;
                    if !plaintext.is_empty() {
                        deliver(&rx[base + plaintext.start..base + plaintext.end]);
                        p.delivered += plaintext.len();
                    }
                    p.consumed += consumed;
                }
                // The fatal alert stays queued for `poll_transmit`.
                Err(e) => return Err(e),
            }
            if !self.is_established() {
                break;
            }
        }
        p.written += self.poll_transmit(&mut tx[p.written..]);
        Ok(p)
    }

    /// Opens the record at the front of `rx` in place (established sessions). Data records
    /// return their plaintext range; alerts and post-handshake messages are handled here.
    /// This is the batching primitive: a worker can open the records of many sessions in one
    /// pass and seal the results in another.
    ///
    /// # Errors
    /// [`TlsError::Failed`] on a fatal condition (alert pending for `poll_transmit`);
    /// [`TlsError::NotEstablished`] / [`TlsError::Closed`] outside the established phase.
    pub fn open_record(&mut self, rx: &mut [u8]) -> Result<Record, TlsError> {
        let open = match &mut self.phase {
            Phase::Open(o) => o,
            Phase::Handshake(_) => return Err(TlsError::NotEstablished),
            Phase::Done => return Err(TlsError::Closed),
        };
        let (consumed, ct, pt) = match open.rec.open(rx) {
            Ok(Opened::Incomplete { need }) => return Ok(Record::Incomplete { need }),
            Ok(Opened::Record {
                consumed,
                content_type,
                plaintext,
            }) => (consumed, content_type, plaintext),
            Err(e) => return Err(self.local_fatal(e.alert())),
        };
        if open.recv_close {
            // RFC 8446 §6.1: data after close_notify is ignored.
            return Ok(Record::Control { consumed });
        }
        match ct {
            content_type::APPLICATION_DATA => Ok(Record::Data {
                consumed,
                plaintext: pt,
            }),
            content_type::ALERT => {
                self.on_alert(&rx[pt])?;
                Ok(Record::Control { consumed })
            }
            content_type::HANDSHAKE => {
                self.on_post_handshake(&rx[pt])?;
                Ok(Record::Control { consumed })
            }
            _ => Err(self.local_fatal(alert::UNEXPECTED_MESSAGE)),
        }
    }

    /// Encrypts `plaintext` (cut into records of at most 16 KiB) straight into `tx`, after any
    /// pending control records. Returns bytes written.
    ///
    /// # Errors
    /// [`TlsError::BufferTooSmall`] (nothing written) when `tx` cannot hold it all;
    /// [`TlsError::NotEstablished`] / [`TlsError::Closed`] outside the established phase.
    pub fn seal(&mut self, plaintext: &[u8], tx: &mut [u8]) -> Result<usize, TlsError> {
        let Phase::Open(open) = &mut self.phase else {
            return Err(if self.is_handshaking() {
                TlsError::NotEstablished
            } else {
                TlsError::Closed
            });
        };
        if open.sent_close {
            return Err(TlsError::Closed);
        }
        // A TLS 1.3 KeyUpdate may be needed first; reserve room for it.
        let needed = self.ctl_len + open.rec.sealed_len(plaintext.len()) + 32;
        if tx.len() < needed {
            return Err(TlsError::BufferTooSmall { needed });
        }
        let mut w = 0;
        if self.ctl_len > 0 {
            tx[..self.ctl_len].copy_from_slice(&self.ctl[..self.ctl_len]);
            w = self.ctl_len;
            self.ctl_len = 0;
        }
        for chunk in plaintext.chunks(MAX_FRAGMENT) {
            let Phase::Open(open) = &mut self.phase else {
                return Err(TlsError::Closed);
            };
            if open.rec.tx.seq >= open.limit {
                w += self.key_limit_reached(&mut tx[w..])?;
            }
            let Phase::Open(open) = &mut self.phase else {
                return Err(TlsError::Closed);
            };
            match open
                .rec
                .seal(content_type::APPLICATION_DATA, chunk, &mut tx[w..])
            {
                Ok(n) => w += n,
                Err(e) => return Err(self.local_fatal(e.alert())),
            }
        }
        Ok(w)
    }

    /// RFC 8446 §5.5: before the AEAD confidentiality limit, TLS 1.3 updates its sending key;
    /// TLS 1.2 has no key update, so the session is closed.
    fn key_limit_reached(&mut self, tx: &mut [u8]) -> Result<usize, TlsError> {
        let Phase::Open(open) = &mut self.phase else {
            return Err(TlsError::Closed);
        };
        if open.rec.version == TlsVersion::Tls12 {
            let n = open
                .rec
                .seal(content_type::ALERT, &[1, alert::CLOSE_NOTIFY], tx)
                .map_err(|_| TlsError::Closed)?;
            open.sent_close = true;
            let _ = n;
            return Err(TlsError::Closed);
        }
        let n = open
            .rec
            .seal(content_type::HANDSHAKE, &[24, 0, 0, 1, 0], tx)
            .map_err(|_| TlsError::Closed)?;
        let ok = match &mut open.kernel {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
        };
        match ok.ok().and_then(|(seq, s)| DirectionKeys::new(seq, &s)) {
            Some((keys, _)) => {
                open.rec.tx = keys;
                Ok(n)
            }
            None => Err(self.local_fatal(alert::INTERNAL_ERROR)),
        }
    }

    /// Sends close_notify (RFC 8446 §6.1) into `tx`; returns bytes written. Idempotent.
    ///
    /// # Errors
    /// [`TlsError::BufferTooSmall`] when `tx` cannot hold the alert.
    pub fn close(&mut self, tx: &mut [u8]) -> Result<usize, TlsError> {
        let Phase::Open(open) = &mut self.phase else {
            if self.is_handshaking() {
                // No keys to protect an alert with yet: just end.
                self.phase = Phase::Done;
                self.push_event(TlsEvent::Closed);
            }
            return Ok(0);
        };
        if open.sent_close {
            return Ok(0);
        }
        let needed = self.ctl_len + open.rec.overhead() + 2;
        if tx.len() < needed {
            return Err(TlsError::BufferTooSmall { needed });
        }
        let mut w = 0;
        if self.ctl_len > 0 {
            tx[..self.ctl_len].copy_from_slice(&self.ctl[..self.ctl_len]);
            w = self.ctl_len;
            self.ctl_len = 0;
        }
        // Level warning(1): RFC 5246 §7.2.1; TLS 1.3 ignores the level (RFC 8446 §6).
        let level = 1;
        match open.rec.seal(
            content_type::ALERT,
            &[level, alert::CLOSE_NOTIFY],
            &mut tx[w..],
        ) {
            Ok(n) => w += n,
            Err(e) => return Err(self.local_fatal(e.alert())),
        }
        open.sent_close = true;
        if open.recv_close {
            self.phase = Phase::Done;
            self.push_event(TlsEvent::Closed);
        }
        Ok(w)
    }

    /// Queues a sealed control record (alert or post-handshake message).
    fn queue_ctl(&mut self, ct: u8, payload: &[u8]) {
        let Phase::Open(open) = &mut self.phase else {
            return;
        };
        if self.ctl_len + payload.len() + open.rec.overhead() > CTL_CAP {
            return;
        }
        if let Ok(n) = open.rec.seal(ct, payload, &mut self.ctl[self.ctl_len..]) {
            self.ctl_len += n;
        }
    }

    /// A fatal condition detected here: send the alert, fail.
    fn local_fatal(&mut self, desc: u8) -> TlsError {
        self.queue_ctl(content_type::ALERT, &[2, desc]);
        let reason = FailReason::ProtocolError { sent_alert: desc };
        self.fail(reason);
        TlsError::Failed(reason)
    }

    fn on_alert(&mut self, a: &[u8]) -> Result<(), TlsError> {
        // RFC 8446 §5.1: alerts are not fragmented and each record holds exactly one.
        let [level, desc] = *a else {
            return Err(self.local_fatal(alert::DECODE_ERROR));
        };
        let Phase::Open(open) = &mut self.phase else {
            return Err(TlsError::Closed);
        };
        let tls12 = open.rec.version == TlsVersion::Tls12;
        if desc == alert::CLOSE_NOTIFY {
            open.recv_close = true;
            let both = open.sent_close;
            self.push_event(TlsEvent::CloseNotify);
            if both {
                self.phase = Phase::Done;
                self.push_event(TlsEvent::Closed);
            }
            return Ok(());
        }
        // RFC 5246 §7.2: warnings other than close_notify may be ignored (e.g.
        // no_renegotiation). RFC 8446 §6: in TLS 1.3 everything but close_notify and
        // user_canceled is fatal regardless of level.
        if desc == alert::USER_CANCELED || (tls12 && level == 1) {
            return Ok(());
        }
        let reason = FailReason::Alert(desc);
        self.fail(reason);
        Err(TlsError::Failed(reason))
    }

    fn on_post_handshake(&mut self, data: &[u8]) -> Result<(), TlsError> {
        let Phase::Open(open) = &mut self.phase else {
            return Err(TlsError::Closed);
        };
        if open.hs_buf.is_empty() {
            let used = self.handshake_messages(data)?;
            self.keep_partial(&data[used..])
        } else {
            let mut joined = core::mem::take(&mut open.hs_buf);
            joined.extend_from_slice(data);
            let used = self.handshake_messages(&joined)?;
            self.keep_partial(&joined[used..])
        }
    }

    /// Keeps the start of a handshake message that continues in the next record.
    fn keep_partial(&mut self, rest: &[u8]) -> Result<(), TlsError> {
        if rest.is_empty() {
            return Ok(());
        }
        let Phase::Open(open) = &mut self.phase else {
            return Err(TlsError::Closed);
        };
        if open.hs_buf.len() + rest.len() > (1 << 16) + 4 {
            return Err(self.local_fatal(alert::DECODE_ERROR));
        }
        open.hs_buf.extend_from_slice(rest);
        Ok(())
    }

    /// Handles the complete handshake messages at the front of `data`; returns bytes used.
    fn handshake_messages(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        let mut used = 0;
        while data.len() - used >= 4 {
            let m = &data[used..];
            let len = u32::from_be_bytes([0, m[1], m[2], m[3]]) as usize;
            if len > 1 << 16 {
                return Err(self.local_fatal(alert::DECODE_ERROR));
            }
            if m.len() < 4 + len {
                break;
            }
            self.on_handshake_message(m[0], &m[4..4 + len], m.len() == 4 + len)?;
            used += 4 + len;
        }
        Ok(used)
    }

    fn on_handshake_message(
        &mut self,
        typ: u8,
        body: &[u8],
        ends_record: bool,
    ) -> Result<(), TlsError> {
        const HELLO_REQUEST: u8 = 0;
        const CLIENT_HELLO: u8 = 1;
        const NEW_SESSION_TICKET: u8 = 4;
        const KEY_UPDATE: u8 = 24;
        let Phase::Open(open) = &mut self.phase else {
            return Err(TlsError::Closed);
        };
        if open.rec.version == TlsVersion::Tls12 {
            // RFC 5746 §4.2, §4.4 and RFC 5246 §7.2.2: renegotiation is not supported. A
            // HelloRequest (to the client) or ClientHello (to the server) is answered with a
            // no_renegotiation warning and the session continues on its current keys; any other
            // handshake message after the handshake is unexpected.
            let is_reneg = (typ == HELLO_REQUEST && self.role == SecurityRole::Client)
                || (typ == CLIENT_HELLO && self.role == SecurityRole::Server);
            if is_reneg {
                self.queue_ctl(content_type::ALERT, &[1, alert::NO_RENEGOTIATION]);
                return Ok(());
            }
            return Err(self.local_fatal(alert::UNEXPECTED_MESSAGE));
        }
        match (typ, &mut open.kernel) {
            (NEW_SESSION_TICKET, Kernel::Client(k)) => {
                if k.handle_new_session_ticket(body).is_err() {
                    return Err(self.local_fatal(alert::DECODE_ERROR));
                }
                Ok(())
            }
            (KEY_UPDATE, _) => {
                // RFC 8446 §4.6.3: KeyUpdate must end its record (§5.1); body is one byte.
                if !ends_record || body.len() != 1 || body[0] > 1 {
                    return Err(self.local_fatal(if ends_record {
                        alert::DECODE_ERROR
                    } else {
                        alert::UNEXPECTED_MESSAGE
                    }));
                }
                let rx = match &mut open.kernel {
                    Kernel::Client(k) => k.update_rx_secret(),
                    Kernel::Server(k) => k.update_rx_secret(),
                };
                match rx.ok().and_then(|(seq, s)| DirectionKeys::new(seq, &s)) {
                    Some((keys, _)) => open.rec.rx = keys,
                    None => return Err(self.local_fatal(alert::INTERNAL_ERROR)),
                }
                if body[0] == 1 {
                    // update_requested: answer with our own KeyUpdate(update_not_requested)
                    // under the old key, then switch.
                    self.queue_ctl(content_type::HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0]);
                    let Phase::Open(open) = &mut self.phase else {
                        return Err(TlsError::Closed);
                    };
                    let tx = match &mut open.kernel {
                        Kernel::Client(k) => k.update_tx_secret(),
                        Kernel::Server(k) => k.update_tx_secret(),
                    };
                    match tx.ok().and_then(|(seq, s)| DirectionKeys::new(seq, &s)) {
                        Some((keys, _)) => open.rec.tx = keys,
                        None => return Err(self.local_fatal(alert::INTERNAL_ERROR)),
                    }
                }
                Ok(())
            }
            // Post-handshake client auth was not offered; anything else is out of place.
            _ => Err(self.local_fatal(alert::UNEXPECTED_MESSAGE)),
        }
    }

    /// Runs rustls over `rx` until it blocks, completes or fails.
    fn drive_handshake(
        &mut self,
        rx: &mut [u8],
        p: &mut Progress,
        deliver: &mut impl FnMut(&[u8]),
    ) -> Result<(), TlsError> {
        let Phase::Handshake(hs) = &mut self.phase else {
            return Ok(());
        };
        loop {
            let buf = &mut rx[p.consumed..];
            let step = match &mut hs.conn {
                Conn::Client(c) => step(
                    c.process_tls_records(buf),
                    &mut self.outbox,
                    &mut hs.early_plain,
                ),
                Conn::Server(c) => step(
                    c.process_tls_records(buf),
                    &mut self.outbox,
                    &mut hs.early_plain,
                ),
            };
            p.consumed += step.discard;
            match step.next {
                Next::Continue => continue,
                Next::Blocked => return Ok(()),
                Next::Established => break,
                Next::Failed(err) => {
                    let reason = self.handshake_failure(&err);
                    self.drain_alert(&mut rx[p.consumed..]);
                    self.fail(reason);
                    return Err(TlsError::Failed(reason));
                }
            }
        }
        self.establish(deliver)
    }

    /// After a rustls error, rustls has queued the alert it sends: encode it out.
    /// `rest` is the unconsumed input: rustls' deframer keeps offsets into it.
    fn drain_alert(&mut self, rest: &mut [u8]) {
        let Phase::Handshake(hs) = &mut self.phase else {
            return;
        };
        let mut off = 0;
        let before = self.outbox.len();
        for _ in 0..4 {
            // The one fatal alert rustls queued is out: stop before rustls reads the bad input
            // again, which would make it try to send a second fatal alert (a debug assertion in
            // rustls; found by the tls_handshake_server fuzz target with a lone `\n`).
            if self.outbox.len() > before {
                break;
            }
            let buf = &mut rest[off..];
            let step = match &mut hs.conn {
                Conn::Client(c) => step(
                    c.process_tls_records(buf),
                    &mut self.outbox,
                    &mut hs.early_plain,
                ),
                Conn::Server(c) => step(
                    c.process_tls_records(buf),
                    &mut self.outbox,
                    &mut hs.early_plain,
                ),
            };
            off += step.discard;
            if !matches!(step.next, Next::Continue) {
                break;
            }
        }
    }

    fn handshake_failure(&self, err: &rustls::Error) -> FailReason {
        if is_mismatch(err) {
            return FailReason::FingerprintMismatch;
        }
        match err {
            rustls::Error::AlertReceived(a) => FailReason::Alert(u8::from(*a)),
            rustls::Error::InvalidCertificate(e) => FailReason::ProtocolError {
                sent_alert: u8::from(rustls::AlertDescription::from(e.clone())),
            },
            rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InappropriateHandshakeMessage { .. } => FailReason::ProtocolError {
                sent_alert: alert::UNEXPECTED_MESSAGE,
            },
            rustls::Error::InvalidMessage(_) => FailReason::ProtocolError {
                sent_alert: alert::DECODE_ERROR,
            },
            rustls::Error::DecryptError => FailReason::ProtocolError {
                sent_alert: alert::BAD_RECORD_MAC,
            },
            rustls::Error::PeerIncompatible(_) => FailReason::ProtocolError {
                sent_alert: alert::HANDSHAKE_FAILURE,
            },
            _ => FailReason::ProtocolError {
                sent_alert: alert::INTERNAL_ERROR,
            },
        }
    }

    /// Handshake complete: verify the peer once more, hand the keys to our record layer.
    fn establish(&mut self, deliver: &mut impl FnMut(&[u8])) -> Result<(), TlsError> {
        let Phase::Handshake(hs) = core::mem::replace(&mut self.phase, Phase::Done) else {
            return Ok(());
        };
        let hs = *hs;
        let common: &CommonState = match &hs.conn {
            Conn::Client(c) => c,
            Conn::Server(c) => c,
        };
        let resumed = common.handshake_kind() == Some(HandshakeKind::Resumed);
        let version = version_of(common.protocol_version());
        let suite = common
            .negotiated_cipher_suite()
            .and_then(CipherSuite::from_rustls);
        let leaf = common
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        // RFC 8122 §6.2 for resumed sessions too: the stored peer certificate must match this
        // leg's fingerprints (a ticket from another leg's peer must not authenticate this one).
        let peer_fp = match &leaf {
            Some(der) if hs.fps.is_empty() => Some(Fingerprint::of_der(HashFunction::Sha256, der)),
            Some(der) => hs.fps.find_match(der),
            None => None,
        };
        let secrets = match hs.conn {
            Conn::Client(c) => c
                .dangerous_into_kernel_connection()
                .map(|(s, k)| (s, Kernel::Client(k))),
            Conn::Server(c) => c
                .dangerous_into_kernel_connection()
                .map(|(s, k)| (s, Kernel::Server(k))),
        };
        let (Ok((ExtractedSecrets { tx, rx }, kernel)), Some(suite)) = (secrets, suite) else {
            self.push_event(TlsEvent::Failed {
                reason: FailReason::ProtocolError {
                    sent_alert: alert::INTERNAL_ERROR,
                },
            });
            return Err(TlsError::Failed(FailReason::ProtocolError {
                sent_alert: alert::INTERNAL_ERROR,
            }));
        };
        let (Some((txk, kind)), Some((rxk, _))) = (
            DirectionKeys::new(tx.0, &tx.1),
            DirectionKeys::new(rx.0, &rx.1),
        ) else {
            self.push_event(TlsEvent::Failed {
                reason: FailReason::ProtocolError {
                    sent_alert: alert::INTERNAL_ERROR,
                },
            });
            return Err(TlsError::Failed(FailReason::ProtocolError {
                sent_alert: alert::INTERNAL_ERROR,
            }));
        };
        let limit = rustls_limit(suite);
        self.phase = Phase::Open(Box::new(Open {
            rec: RecordLayer::new(version, kind, txk, rxk),
            kernel,
            limit,
            sent_close: false,
            recv_close: false,
            hs_buf: Vec::new(),
        }));
        let Some(peer_fingerprint) = peer_fp else {
            let e = self.local_fatal(alert::BAD_CERTIFICATE);
            // Report the precise reason.
            if let Some(ev) = self.events.iter_mut().flatten().last() {
                *ev = TlsEvent::Failed {
                    reason: FailReason::FingerprintMismatch,
                };
            }
            let _ = e;
            return Err(TlsError::Failed(FailReason::FingerprintMismatch));
        };
        self.push_event(TlsEvent::Established {
            version,
            suite,
            peer_fingerprint,
            resumed,
        });
        if !hs.early_plain.is_empty() {
            deliver(&hs.early_plain);
        }
        Ok(())
    }

    /// Test hook: seals an arbitrary record with the live keys (to inject protocol violations).
    #[cfg(test)]
    pub(crate) fn seal_raw(&mut self, ct: u8, payload: &[u8], tx: &mut [u8]) -> usize {
        let Phase::Open(open) = &mut self.phase else {
            return 0;
        };
        open.rec.seal(ct, payload, tx).unwrap_or(0)
    }

    /// Test hook: the session's current sending sequence number.
    #[cfg(test)]
    pub(crate) fn tx_seq(&self) -> u64 {
        match &self.phase {
            Phase::Open(o) => o.rec.tx.seq,
            _ => 0,
        }
    }

    /// Test hook: lower the key-usage limit.
    #[cfg(test)]
    pub(crate) fn set_limit(&mut self, l: u64) {
        if let Phase::Open(o) = &mut self.phase {
            o.limit = l;
        }
    }
}

fn rustls_limit(suite: CipherSuite) -> u64 {
    // RFC 8446 §5.5 / RFC 9147 Appendix B: AES-GCM 2^24.5 full-size records; rustls uses 2^23
    // for margin. ChaCha20-Poly1305's limit exceeds 2^64 in practice.
    match suite {
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => u64::MAX,
        _ => 1 << 23,
    }
}

enum Next {
    Continue,
    Blocked,
    Established,
    Failed(rustls::Error),
}

struct Step {
    discard: usize,
    next: Next,
}

fn step<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    outbox: &mut Vec<u8>,
    early: &mut Vec<u8>,
) -> Step {
    let mut discard = status.discard;
    let next = match status.state {
        Err(e) => Next::Failed(e),
        Ok(ConnectionState::EncodeTlsData(mut enc)) => {
            let start = outbox.len();
            let mut room = 4096;
            loop {
                outbox.resize(start + room, 0);
                match enc.encode(&mut outbox[start..]) {
                    Ok(n) => {
                        outbox.truncate(start + n);
                        break Next::Continue;
                    }
                    Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
                    Err(_) => {
                        outbox.truncate(start);
                        break Next::Continue;
                    }
                }
            }
        }
        Ok(ConnectionState::TransmitTlsData(t)) => {
            // The bytes are in the outbox; the caller will copy them to the wire.
            t.done();
            Next::Continue
        }
        Ok(ConnectionState::ReadTraffic(mut r)) => {
            while let Some(Ok(rec)) = r.next_record() {
                discard += rec.discard;
                early.extend_from_slice(rec.payload);
            }
            Next::Continue
        }
        // 0-RTT is disabled (max_early_data_size = 0), so this cannot be reached.
        Ok(ConnectionState::ReadEarlyData(_)) => Next::Failed(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::TooMuchEarlyDataReceived,
        )),
        Ok(ConnectionState::BlockedHandshake) => Next::Blocked,
        Ok(ConnectionState::WriteTraffic(_)) => Next::Established,
        Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => Next::Failed(
            rustls::Error::AlertReceived(rustls::AlertDescription::CloseNotify),
        ),
        Ok(_) => Next::Blocked,
    };
    Step { discard, next }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
