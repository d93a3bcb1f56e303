//! DTLS 1.2 legs (RFC 6347) over datagrams, with `dimpl` as the protocol engine.
//!
//! dimpl is sans-IO: datagrams in, datagrams/plaintext/timers out. It surfaces the peer's leaf
//! certificate and leaves validation to us, which is exactly the fingerprint model of RFC 8122
//! §6.2 / RFC 8842. What this wrapper adds:
//!
//! - time: dimpl uses `std::time::Instant`; we map our [`Instant`] onto it with a fixed origin
//!   taken once when the [`DtlsConfig`] is built (control thread), so cores never read a clock;
//! - fingerprint verification on `PeerCert`, before any later flight of ours is released. On a
//!   mismatch we send a fatal `bad_certificate` alert ourselves (dimpl has no API for sending
//!   alerts): during the handshake the alert goes in epoch 0, in the clear (RFC 6347 §4.1), with
//!   a sequence number far above anything dimpl used so the peer's replay window accepts it;
//! - events mirroring [`crate::TlsEvent`];
//! - a new association when `a=tls-id` changes (RFC 8842 §5.2): [`DtlsSession::rekey_for_tls_id`]
//!   restarts the handshake in the same role.
//!
//! dimpl implements the DTLS 1.2 AEAD suites with ECDSA certificates only (no RSA), ECDHE with
//! P-256/P-384/X25519, extended master secret, no renegotiation and no resumption.

use std::sync::Arc;
use std::time::Duration;

use mgw_core::time::Instant;

use crate::fingerprint::{Fingerprint, PeerFingerprints};
use crate::identity::Identity;
use crate::session::{alert, FailReason, SecurityRole};

/// Shared DTLS settings (one per worker, cheap to clone).
#[derive(Clone)]
pub struct DtlsConfig {
    dimpl: Arc<dimpl::Config>,
    cert: dimpl::DtlsCertificate,
    origin: std::time::Instant,
}

impl core::fmt::Debug for DtlsConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DtlsConfig")
            .field("mtu", &self.dimpl.mtu())
            .finish()
    }
}

/// Why a DTLS config or operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtlsError {
    /// dimpl refused the configuration.
    #[error("DTLS config: {0}")]
    Config(String),
    /// The session failed (also queued as a `Failed` event).
    #[error("DTLS session failed: {0:?}")]
    Failed(FailReason),
    /// The operation needs an established session.
    #[error("DTLS session not established")]
    NotEstablished,
    /// The session is closed or failed.
    #[error("DTLS session closed")]
    Closed,
}

impl DtlsConfig {
    /// Settings from our identity (must be ECDSA: dimpl does not sign with RSA). `mtu` bounds
    /// the datagrams produced; `handshake_timeout` bounds the whole handshake including
    /// retransmissions (RFC 6347 §4.2.4: initial timer 1 s, doubling).
    ///
    /// # Errors
    /// [`DtlsError::Config`] when dimpl refuses the settings.
    pub fn new(
        identity: &Identity,
        mtu: usize,
        handshake_timeout: Duration,
    ) -> Result<Self, DtlsError> {
        let cfg = dimpl::Config::builder()
            .mtu(mtu)
            .require_client_certificate(true)
            .handshake_timeout(handshake_timeout)
            .build()
            .map_err(|e| DtlsError::Config(format!("{e:?}")))?;
        Ok(DtlsConfig {
            dimpl: Arc::new(cfg),
            cert: dimpl::DtlsCertificate {
                certificate: identity.leaf_der().to_vec(),
                private_key: identity.key().secret_der().to_vec(),
            },
            // The one clock reading: the origin our Instant is mapped onto for dimpl.
            origin: std::time::Instant::now(),
        })
    }

    fn to_std(&self, t: Instant) -> std::time::Instant {
        self.origin + Duration::from_nanos(t.as_nanos())
    }

    fn std_to_ours(&self, t: std::time::Instant) -> Instant {
        let d = t.saturating_duration_since(self.origin);
        Instant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// DTLS session events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsEvent {
    /// Handshake complete and the peer matched a fingerprint.
    Established {
        /// The peer certificate's fingerprint (the matching entry's hash function).
        peer_fingerprint: Fingerprint,
    },
    /// The session failed.
    Failed {
        /// A received or sent fatal alert, a fingerprint mismatch, or the handshake deadline.
        reason: FailReason,
    },
    /// The peer sent close_notify.
    CloseNotify,
    /// The session is closed.
    Closed,
}

/// What [`DtlsSession::poll`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum DtlsOutput<'a> {
    /// Send this datagram.
    Transmit(&'a [u8]),
    /// Received application data.
    Data(&'a [u8]),
    /// An event.
    Event(DtlsEvent),
    /// The buffer is too small for the next datagram; poll again with `needed` bytes.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// Nothing more now; call [`DtlsSession::handle_timeout`] at this time.
    Wait(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Open,
    Done,
}

/// One DTLS leg.
pub struct DtlsSession {
    cfg: DtlsConfig,
    dtls: dimpl::Dtls,
    role: SecurityRole,
    fps: PeerFingerprints,
    tls_id: String,
    state: State,
    peer_fp: Option<Fingerprint>,
    pending_alert: Option<[u8; 15]>,
    events: [Option<DtlsEvent>; 4],
    ev_len: usize,
    now: Instant,
}

impl core::fmt::Debug for DtlsSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DtlsSession")
            .field("role", &self.role)
            .field("state", &self.state)
            .finish()
    }
}

fn new_engine(cfg: &DtlsConfig, role: SecurityRole, now: Instant) -> dimpl::Dtls {
    let mut d = dimpl::Dtls::new_12(cfg.dimpl.clone(), cfg.cert.clone(), cfg.to_std(now));
    d.set_active(role == SecurityRole::Client);
    d
}

impl DtlsSession {
    /// A leg in `role` (client = `a=setup` active side), authenticating the peer by `fps`, for
    /// the association named by `tls_id` (RFC 8842 `a=tls-id`).
    ///
    /// # Errors
    /// [`DtlsError::Config`] when `fps` is empty (nothing would authenticate the peer).
    pub fn new(
        cfg: &DtlsConfig,
        role: SecurityRole,
        fps: PeerFingerprints,
        tls_id: &str,
        now: Instant,
    ) -> Result<Self, DtlsError> {
        if fps.is_empty() {
            return Err(DtlsError::Config("no peer fingerprint".into()));
        }
        let mut s = DtlsSession {
            cfg: cfg.clone(),
            dtls: new_engine(cfg, role, now),
            role,
            fps,
            tls_id: tls_id.to_string(),
            state: State::Handshake,
            peer_fp: None,
            pending_alert: None,
            events: [None; 4],
            ev_len: 0,
            now,
        };
        // The client's first flight is produced on the first timeout tick.
        s.handle_timeout(now)?;
        Ok(s)
    }

    /// This leg's role.
    pub fn role(&self) -> SecurityRole {
        self.role
    }

    /// True when established.
    pub fn is_established(&self) -> bool {
        self.state == State::Open
    }

    /// True when closed or failed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The association's tls-id.
    pub fn tls_id(&self) -> &str {
        &self.tls_id
    }

    /// RFC 8842 §5.2: a changed `a=tls-id` in a new offer/answer means a new DTLS
    /// association. If `tls_id` differs from the current one, the session restarts its
    /// handshake in the same role (any established keys are dropped) and returns true.
    ///
    /// # Errors
    /// As [`DtlsSession::handle_timeout`].
    pub fn rekey_for_tls_id(
        &mut self,
        tls_id: &str,
        fps: PeerFingerprints,
        now: Instant,
    ) -> Result<bool, DtlsError> {
        if tls_id == self.tls_id && fps == self.fps {
            return Ok(false);
        }
        self.tls_id = tls_id.to_string();
        self.fps = fps;
        self.dtls = new_engine(&self.cfg, self.role, now);
        self.state = State::Handshake;
        self.peer_fp = None;
        self.pending_alert = None;
        self.handle_timeout(now)?;
        Ok(true)
    }

    fn push(&mut self, e: DtlsEvent) {
        if self.ev_len < self.events.len() {
            self.events[self.ev_len] = Some(e);
            self.ev_len += 1;
        }
    }

    fn pop(&mut self) -> Option<DtlsEvent> {
        if self.ev_len == 0 {
            return None;
        }
        let e = self.events[0].take();
        self.events.rotate_left(1);
        self.ev_len -= 1;
        e
    }

    fn fail(&mut self, reason: FailReason) -> DtlsError {
        if self.state != State::Done {
            self.state = State::Done;
            self.push(DtlsEvent::Failed { reason });
        }
        DtlsError::Failed(reason)
    }

    fn map_err(&mut self, e: dimpl::Error) -> DtlsError {
        let reason = match e {
            dimpl::Error::Timeout(_) => FailReason::Timeout,
            dimpl::Error::SecurityError(dimpl::SecurityError::FatalAlert { description }) => {
                FailReason::Alert(description)
            }
            dimpl::Error::ConnectionClosed => {
                if self.state != State::Done {
                    self.state = State::Done;
                    self.push(DtlsEvent::Closed);
                }
                return DtlsError::Closed;
            }
            dimpl::Error::RenegotiationAttempt => FailReason::ProtocolError {
                sent_alert: alert::NO_RENEGOTIATION,
            },
            _ => FailReason::ProtocolError {
                sent_alert: alert::HANDSHAKE_FAILURE,
            },
        };
        self.fail(reason)
    }

    /// Feeds one received datagram.
    ///
    /// # Errors
    /// [`DtlsError::Failed`] when dimpl reports a fatal error; [`DtlsError::Closed`] after
    /// the session ended.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), DtlsError> {
        if self.state == State::Done {
            return Err(DtlsError::Closed);
        }
        self.now = now;
        let t = self.cfg.to_std(now);
        if let Err(e) = self.dtls.handle_timeout(t) {
            return Err(self.map_err(e));
        }
        match self.dtls.handle_packet(datagram) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Advances time: retransmissions and the handshake deadline.
    ///
    /// # Errors
    /// [`DtlsError::Failed`] with [`FailReason::Timeout`] when the handshake gave up.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.state == State::Done {
            return Ok(());
        }
        self.now = now;
        let t = self.cfg.to_std(now);
        match self.dtls.handle_timeout(t) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Queues application data as one DTLS record (RFC 6347 §4.1.1: one datagram per record
    /// at most the MTU). It comes out of [`DtlsSession::poll`] as `Transmit`.
    ///
    /// # Errors
    /// [`DtlsError::NotEstablished`] before the handshake completed; `Closed` after the end.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), DtlsError> {
        match self.state {
            State::Handshake => return Err(DtlsError::NotEstablished),
            State::Done => return Err(DtlsError::Closed),
            State::Open => {}
        }
        match self.dtls.send_application_data(plaintext) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Sends close_notify (comes out of `poll`).
    ///
    /// # Errors
    /// [`DtlsError::Closed`] when already ended.
    pub fn close(&mut self) -> Result<(), DtlsError> {
        if self.state == State::Done {
            return Err(DtlsError::Closed);
        }
        let r = self.dtls.close();
        if self.state == State::Handshake {
            self.state = State::Done;
            self.push(DtlsEvent::Closed);
        }
        r.map_err(|e| self.map_err(e))
    }

    /// Drains output: datagrams to send, plaintext, events; ends with `Wait(deadline)`.
    /// Call until it returns `Wait`.
    pub fn poll<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        enum Out {
            Transmit(core::ops::Range<usize>),
            Data(core::ops::Range<usize>),
            Event(DtlsEvent),
            Small(usize),
            Wait(Instant),
        }
        let base = buf.as_ptr() as usize;
        let range_in = |part: &[u8]| {
            let start = (part.as_ptr() as usize).saturating_sub(base);
            start..start + part.len()
        };
        let out = loop {
            if let Some(a) = self.pending_alert.take() {
                if buf.len() < a.len() {
                    self.pending_alert = Some(a);
                    break Out::Small(a.len());
                }
                buf[..a.len()].copy_from_slice(&a);
                break Out::Transmit(0..a.len());
            }
            if let Some(e) = self.pop() {
                break Out::Event(e);
            }
            if self.state == State::Done && !self.dtls.is_closing() {
                break Out::Wait(Instant::FAR_FUTURE);
            }
            match self.dtls.poll_output(buf) {
                dimpl::Output::Packet(p) => {
                    if self.state == State::Done && !self.dtls.is_closing() {
                        continue;
                    }
                    break Out::Transmit(range_in(p));
                }
                dimpl::Output::ApplicationData(d) if self.state == State::Open => {
                    break Out::Data(range_in(d));
                }
                dimpl::Output::PeerCert(der) => {
                    match self.fps.find_match(der) {
                        Some(fp) => self.peer_fp = Some(fp),
                        None => {
                            // RFC 8122 §6.2: abort with a fatal alert; none of our later
                            // flights leave (they stay queued in the dropped engine).
                            self.pending_alert = Some(epoch0_alert(alert::BAD_CERTIFICATE));
                            self.fail(FailReason::FingerprintMismatch);
                        }
                    }
                }
                dimpl::Output::Connected => match self.peer_fp {
                    Some(fp) if self.state == State::Handshake => {
                        self.state = State::Open;
                        self.push(DtlsEvent::Established {
                            peer_fingerprint: fp,
                        });
                    }
                    Some(_) => {}
                    None => {
                        self.pending_alert = Some(epoch0_alert(alert::BAD_CERTIFICATE));
                        self.fail(FailReason::FingerprintMismatch);
                    }
                },
                dimpl::Output::CloseNotify => {
                    self.push(DtlsEvent::CloseNotify);
                    if self.state != State::Done {
                        self.state = State::Done;
                        self.push(DtlsEvent::Closed);
                    }
                }
                dimpl::Output::Timeout(t) => {
                    let t = if self.state == State::Done {
                        Instant::FAR_FUTURE
                    } else {
                        self.cfg.std_to_ours(t)
                    };
                    break Out::Wait(t);
                }
                dimpl::Output::BufferTooSmall { needed } => break Out::Small(needed),
                _ => {}
            }
        };
        match out {
            Out::Transmit(r) => DtlsOutput::Transmit(&buf[r]),
            Out::Data(r) => DtlsOutput::Data(&buf[r]),
            Out::Event(e) => DtlsOutput::Event(e),
            Out::Small(n) => DtlsOutput::BufferTooSmall { needed: n },
            Out::Wait(t) => DtlsOutput::Wait(t),
        }
    }
}

/// A plaintext DTLS 1.2 fatal alert record in epoch 0 (RFC 6347 §4.1). The sequence number
/// (2^40) is far above any epoch-0 number a handshake uses, so the peer's anti-replay window
/// (§4.1.2.6) accepts it.
fn epoch0_alert(desc: u8) -> [u8; 15] {
    [21, 0xfe, 0xfd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 2, desc]
}

/// True if `datagram` opens with a DTLS handshake record carrying the first fragment of a
/// ClientHello: what a DTLS server leg may latch its peer on (H.248.37), since a peer starts
/// an association with nothing else.
///
/// Checked, without state (RFC 6347 §4.1, §4.2.2): record type handshake (22), a DTLS record
/// version (major 0xfe: 1.0 is 0xfeff, 1.2 is 0xfefd; a ClientHello may use either), epoch 0,
/// a record length that fits the datagram and holds a 12-octet handshake header, message type
/// client_hello (1), fragment offset 0 and a fragment that fits both the record and the
/// message length.
pub fn is_client_hello(datagram: &[u8]) -> bool {
    const RECORD_HEADER: usize = 13;
    const HANDSHAKE_HEADER: usize = 12;
    let be = |b: &[u8]| b.iter().fold(0usize, |n, &x| (n << 8) | usize::from(x));
    let Some(h) = datagram.get(..RECORD_HEADER + HANDSHAKE_HEADER) else {
        return false;
    };
    let record_len = be(&h[11..13]);
    let (msg_len, frag_off, frag_len) = (be(&h[14..17]), be(&h[19..22]), be(&h[22..25]));
    h[0] == 22
        && h[1] == 0xfe
        && (h[2] == 0xff || h[2] == 0xfd)
        && h[3..5] == [0, 0]
        && record_len >= HANDSHAKE_HEADER
        && RECORD_HEADER + record_len <= datagram.len()
        && h[13] == 1
        && frag_off == 0
        && frag_len <= msg_len
        && HANDSHAKE_HEADER + frag_len <= record_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::HashFunction;

    #[test]
    fn a_client_hello_is_recognised_and_nothing_else_is() {
        let now = Instant::from_millis(1000);
        let (mut c, mut s) = pair(fps(&ids().1), fps(&ids().0), now);
        let hello = drain(&mut c);
        assert!(is_client_hello(&hello[0]), "the client's first flight");
        for d in &hello {
            let _ = s.s.handle_datagram(d, now);
        }
        // The server's answer is a handshake record too, but not a ClientHello.
        let answer = drain(&mut s);
        assert!(!answer.is_empty() && answer.iter().all(|d| !is_client_hello(d)));
        assert!(!is_client_hello(&epoch0_alert(42)));
        assert!(!is_client_hello(b"\x16\xfe\xfdgarbage"));
        let mut truncated = hello[0].clone();
        truncated.truncate(30);
        assert!(
            !is_client_hello(&truncated),
            "record length beyond the datagram"
        );
        let mut epoch1 = hello[0].clone();
        epoch1[4] = 1;
        assert!(!is_client_hello(&epoch1));
    }
    use std::sync::OnceLock;

    fn ids() -> &'static (Identity, Identity) {
        static IDS: OnceLock<(Identity, Identity)> = OnceLock::new();
        IDS.get_or_init(|| {
            (
                Identity::generate_self_signed("c").unwrap(),
                Identity::generate_self_signed("s").unwrap(),
            )
        })
    }

    struct End {
        s: DtlsSession,
        events: Vec<DtlsEvent>,
        plain: Vec<Vec<u8>>,
    }

    fn drain(e: &mut End) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        loop {
            match e.s.poll(&mut buf) {
                DtlsOutput::Transmit(d) => out.push(d.to_vec()),
                DtlsOutput::Data(d) => e.plain.push(d.to_vec()),
                DtlsOutput::Event(ev) => e.events.push(ev),
                DtlsOutput::BufferTooSmall { needed } => buf.resize(needed, 0),
                DtlsOutput::Wait(_) => return out,
            }
        }
    }

    fn pair(c_fps: PeerFingerprints, s_fps: PeerFingerprints, now: Instant) -> (End, End) {
        let (ci, si) = ids();
        let ccfg = DtlsConfig::new(ci, 1200, Duration::from_secs(10)).unwrap();
        let scfg = DtlsConfig::new(si, 1200, Duration::from_secs(10)).unwrap();
        let c = DtlsSession::new(&ccfg, SecurityRole::Client, c_fps, "id-1", now).unwrap();
        let s = DtlsSession::new(&scfg, SecurityRole::Server, s_fps, "id-1", now).unwrap();
        let e = |s| End {
            s,
            events: Vec::new(),
            plain: Vec::new(),
        };
        (e(c), e(s))
    }

    fn pump(c: &mut End, s: &mut End, now: Instant) {
        for _ in 0..20 {
            let a = drain(c);
            for d in &a {
                let _ = s.s.handle_datagram(d, now);
            }
            let b = drain(s);
            for d in &b {
                let _ = c.s.handle_datagram(d, now);
            }
            if a.is_empty() && b.is_empty() {
                break;
            }
        }
    }

    fn fps(id: &Identity) -> PeerFingerprints {
        PeerFingerprints::one(id.fingerprint(HashFunction::Sha256))
    }

    #[test]
    fn handshake_and_data_both_ways() {
        let now = Instant::from_millis(1000);
        let (mut c, mut s) = pair(fps(&ids().1), fps(&ids().0), now);
        pump(&mut c, &mut s, now);
        assert!(
            c.s.is_established() && s.s.is_established(),
            "{:?} {:?}",
            c.events,
            s.events
        );
        c.s.send(b"fax page").unwrap();
        s.s.send(b"ack").unwrap();
        pump(&mut c, &mut s, now);
        assert_eq!(s.plain, vec![b"fax page".to_vec()]);
        assert_eq!(c.plain, vec![b"ack".to_vec()]);
    }

    #[test]
    fn mismatch_fails_with_epoch0_alert_and_no_data() {
        let now = Instant::from_millis(1000);
        let wrong = PeerFingerprints::one(Fingerprint::of_der(HashFunction::Sha256, b"x"));
        let (mut c, mut s) = pair(wrong, fps(&ids().0), now);
        let hello = drain(&mut c);
        for d in &hello {
            s.s.handle_datagram(d, now).unwrap();
        }
        pump(&mut c, &mut s, now);
        assert!(c.events.contains(&DtlsEvent::Failed {
            reason: FailReason::FingerprintMismatch
        }));
        assert!(!s.s.is_established());
        assert!(c.plain.is_empty() && s.plain.is_empty());
        assert_eq!(epoch0_alert(alert::BAD_CERTIFICATE)[14], 42);
    }

    #[test]
    fn server_side_mismatch_fails_the_server_and_the_client_sees_an_alert() {
        let now = Instant::from_millis(1000);
        let wrong = PeerFingerprints::one(Fingerprint::of_der(HashFunction::Sha512, b"y"));
        let (mut c, mut s) = pair(fps(&ids().1), wrong, now);
        pump(&mut c, &mut s, now);
        assert!(
            s.events.contains(&DtlsEvent::Failed {
                reason: FailReason::FingerprintMismatch
            }),
            "{:?}",
            s.events
        );
        assert!(!c.s.is_established(), "{:?}", c.events);
        assert!(
            c.events.contains(&DtlsEvent::Failed {
                reason: FailReason::Alert(alert::BAD_CERTIFICATE)
            }),
            "{:?}",
            c.events
        );
        assert!(c.plain.is_empty() && s.plain.is_empty());
    }

    #[test]
    fn lost_flight_is_retransmitted_on_our_clock_then_times_out() {
        let now = Instant::from_millis(1000);
        let (mut c, _s) = pair(fps(&ids().1), fps(&ids().0), now);
        let first = drain(&mut c);
        assert!(!first.is_empty());
        // Nothing answers. Walk virtual time to each deadline: the ClientHello is resent.
        let mut t = now;
        let mut resent = 0;
        let mut buf = vec![0u8; 2048];
        for _ in 0..64 {
            let deadline = loop {
                match c.s.poll(&mut buf) {
                    DtlsOutput::Transmit(_) => resent += 1,
                    DtlsOutput::Event(e) => c.events.push(e),
                    DtlsOutput::Wait(d) => break d,
                    _ => {}
                }
            };
            if deadline == Instant::FAR_FUTURE {
                break;
            }
            assert!(deadline > t);
            t = deadline;
            let _ = c.s.handle_timeout(t);
        }
        assert!(resent >= 2, "retransmissions: {resent}");
        assert!(
            c.events.contains(&DtlsEvent::Failed {
                reason: FailReason::Timeout
            }),
            "{:?}",
            c.events
        );
        assert!(t.saturating_duration_since(now) <= Duration::from_secs(11));
    }

    #[test]
    fn new_tls_id_restarts_the_handshake() {
        let now = Instant::from_millis(1000);
        let (mut c, mut s) = pair(fps(&ids().1), fps(&ids().0), now);
        pump(&mut c, &mut s, now);
        assert!(c.s.is_established());
        // Same tls-id: nothing happens.
        assert!(!c.s.rekey_for_tls_id("id-1", fps(&ids().1), now).unwrap());
        // New tls-id on both ends (new offer/answer): a fresh association.
        let later = now + Duration::from_secs(1);
        assert!(c.s.rekey_for_tls_id("id-2", fps(&ids().1), later).unwrap());
        assert!(s.s.rekey_for_tls_id("id-2", fps(&ids().0), later).unwrap());
        assert!(!c.s.is_established());
        c.events.clear();
        pump(&mut c, &mut s, later);
        assert!(c.s.is_established() && s.s.is_established());
        assert!(matches!(
            c.events.first(),
            Some(DtlsEvent::Established { .. })
        ));
        assert_eq!(c.s.tls_id(), "id-2");
        c.s.send(b"after rekey").unwrap();
        pump(&mut c, &mut s, later);
        assert_eq!(s.plain.last().unwrap(), b"after rekey");
    }

    #[test]
    fn send_before_established_is_refused() {
        let now = Instant::from_millis(1000);
        let (mut c, _) = pair(fps(&ids().1), fps(&ids().0), now);
        assert_eq!(c.s.send(b"x"), Err(DtlsError::NotEstablished));
        assert!(DtlsSession::new(
            &c.s.cfg,
            SecurityRole::Client,
            PeerFingerprints::new(),
            "i",
            now
        )
        .is_err());
    }
}
