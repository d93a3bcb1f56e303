//! eMEDIASEC procedures: from a termination's Local/Remote SDP and package properties, derive
//! the [`LegSpec`] the data plane needs, and the Local SDP the MG answers with.
//!
//! Sources: 3GPP TR 29.828 §4.3 (TLS) and §4.4 (TCP), TS 23.334 §5.16, RFC 4145 (`a=setup`,
//! `a=connection`), RFC 8122 (`a=fingerprint`), RFC 8842 (`a=tls-id`), RFC 4975/6714 (MSRP,
//! CEMA), RFC 8856 (BFCP), RFC 7345 (UDPTL over DTLS).
//!
//! The design rule (docs/ARCHITECTURE.md): everything is derivable from SDP plus a few package
//! properties; both are accepted. `LegSpec` is plain data: the lead turns it into data-plane flow
//! commands.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

pub use mgw_core::leg::{Application, SecurityRole, TcpRole, Transport};

use crate::h248::ast::{PropertyParm, StreamMode};
use crate::h248::packages;
use crate::sdp::{
    Choosable, ConnectionAttr, Fingerprint, Line, Media, MediaLine, Port, Proto, Sdp, Setup,
    T38Params,
};

/// The application a leg carries, with what the MG learnt for it from SDP. Its
/// [`AppParams::kind`] is the [`Application`] the data plane is programmed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppParams {
    /// MSRP (RFC 4975).
    Msrp {
        /// `a=msrp-cema` (RFC 6714) on the remote side. With CEMA on both legs the endpoints
        /// address each other end to end and the MGW does not rewrite paths.
        cema: bool,
        /// Remote `a=path` (empty while the Remote SDP is not known).
        path: Vec<String>,
        /// The MGW's own MSRP URI on this leg, as its Local SDP `a=path` carries it
        /// (RFC 4975 §8.1): `msrp://` (TCP) or `msrps://` (TLS), the leg's local address and
        /// port, a session-id unique to the leg, `;tcp`. Without CEMA the endpoint on this leg
        /// sends to it, and the MGW rewrites To-Path/From-Path between the legs' URIs.
        local_path: String,
    },
    /// BFCP (RFC 8855).
    Bfcp,
    /// T.38 over UDPTL.
    Udptl(T38Params),
    /// An opaque byte stream (`TCP`, `TCP/TLS`).
    Opaque,
}

impl AppParams {
    /// The application, without its parameters.
    pub fn kind(&self) -> Application {
        match self {
            AppParams::Msrp { .. } => Application::Msrp,
            AppParams::Bfcp => Application::Bfcp,
            AppParams::Udptl(_) => Application::Udptl,
            AppParams::Opaque => Application::Opaque,
        }
    }
}

/// When the connection is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Establishment {
    /// At once.
    Immediate,
    /// When the MGC orders it (signal), or when the remote address becomes known.
    Delayed,
    /// `a=setup:holdconn`: not now.
    Hold,
}

/// TCP handling mode (TR 29.828 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpHandling {
    /// Relay segments without terminating TCP state.
    Stateless,
    /// Terminate TCP, keeping the setup direction.
    StateAware,
    /// Terminate TCP, MG passive on both legs ("TCP merge").
    StateAwareChangedSetup,
}

/// Everything the data plane needs about one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegSpec {
    /// From the SDP `m=` proto, on which Local and Remote must agree (449 otherwise).
    pub transport: Transport,
    /// From the `m=` proto too, with the MSRP path attributes for an MSRP leg.
    pub application: AppParams,
    /// IP realm (H.248.41).
    pub realm: String,
    /// MG's address and port for this leg.
    pub local: SocketAddr,
    /// Peer's address, if known.
    pub remote: Option<SocketAddr>,
    /// TCP role (None for UDP).
    pub tcp_role: Option<TcpRole>,
    /// Establishment timing.
    pub establishment: Establishment,
    /// `a=connection:existing`: keep the live connection.
    pub reuse_connection: bool,
    /// TCP handling mode.
    pub handling: TcpHandling,
    /// Learn the remote address from the first packet/connection (H.248.37 latching).
    pub latching: bool,
    /// (D)TLS role (None when not secured).
    pub security_role: Option<SecurityRole>,
    /// Acceptable peer certificate fingerprints (RFC 8122).
    pub peer_fingerprints: Vec<Fingerprint>,
    /// `a=tls-id` of the peer (RFC 8842): a change means a new handshake.
    pub tls_id: Option<String>,
    /// Stream mode.
    pub mode: StreamMode,
}

/// A refused request, with its H.248.8 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcError {
    /// 421, 440, 445, 449, 501 or 510.
    pub code: u16,
    /// The text of the ErrorDescriptor sent with `code`.
    pub reason: &'static str,
}

impl std::fmt::Display for ProcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for ProcError {}

fn err(code: u16, reason: &'static str) -> ProcError {
    ProcError { code, reason }
}

/// One IP realm: its address and a port allocator.
#[derive(Debug, Clone)]
pub struct Realm {
    addr: IpAddr,
    lo: u16,
    hi: u16,
    next: u16,
    used: BTreeSet<u16>,
    /// Keyed allocation only: released ports, oldest first, still in `used` until a quarter
    /// of the range has been released after them (or nothing else is free). A random choice
    /// could otherwise hand a port straight back while the data plane still holds it for
    /// TIME-WAIT (see `worker::steer`).
    cooling: std::collections::VecDeque<u16>,
}

/// The realms of the MG (H.248.41), each with its own port range.
#[derive(Debug, Clone, Default)]
pub struct Realms {
    realms: HashMap<String, Realm>,
    default: Option<String>,
    /// Key of the MSRP session-id generator (see [`Realms::set_msrp_session_key`]).
    msrp_key: [u64; 2],
    /// MSRP session-ids handed out so far: each one is unique in the MG's lifetime.
    msrp_sessions: u64,
    /// Key of the port chooser (see [`Realms::set_port_key`]); `None`: ports in order.
    port_key: Option<[u64; 2]>,
    /// Draws made from the port chooser so far (its counter).
    port_draws: u64,
}

impl Realms {
    /// Add realm `name` with local address `addr` and ports `lo..=hi`. The first realm added is
    /// the default for terminations that name none.
    pub fn add(&mut self, name: &str, addr: IpAddr, lo: u16, hi: u16) {
        if self.default.is_none() {
            self.default = Some(name.to_owned());
        }
        self.realms.insert(
            name.to_owned(),
            Realm {
                addr,
                lo,
                hi: hi.max(lo),
                next: lo,
                used: BTreeSet::new(),
                cooling: std::collections::VecDeque::new(),
            },
        );
    }

    /// Keys the MSRP session-ids of the MG's own `a=path` URIs. RFC 4975 §14.1 wants them
    /// hard to guess (80 bits of randomness): the caller passes 16 random bytes at start (this
    /// module reads no random source). Without a key the ids are unique but predictable.
    pub fn set_msrp_session_key(&mut self, key: [u8; 16]) {
        let (a, b) = key.split_at(8);
        let word = |s: &[u8]| s.iter().fold(0u64, |w, &x| (w << 8) | u64::from(x));
        self.msrp_key = [word(a), word(b)];
    }

    /// Keys the port chooser: from then on each port is a random choice among the free ports
    /// of the realm's range, so the next leg's port cannot be told from the last one (a
    /// predictable port lets a third party reach a leg first: latching, a DTLS ClientHello,
    /// RFC 6056 §1's reasons for ports). The caller passes 16 random bytes at start (`mgwd
    /// run` reads them from the OS; this module reads no random source). Without a key, ports
    /// go in order through the range (deterministic labs and tests).
    pub fn set_port_key(&mut self, key: [u8; 16]) {
        let (a, b) = key.split_at(8);
        let word = |s: &[u8]| s.iter().fold(0u64, |w, &x| (w << 8) | u64::from(x));
        self.port_key = Some([word(a), word(b)]);
    }

    /// The next MSRP session-id: 20 lowercase hex digits (80 bits) of keyed SipHash-2-4 over
    /// a counter, so unique per leg and, with a random key, unguessable.
    fn next_msrp_session_id(&mut self) -> String {
        #[allow(deprecated)] // std's SipHasher is SipHash-2-4: a keyed PRF, what this needs
        let block = |domain: u64, n: u64, key: [u64; 2]| {
            use std::hash::Hasher;
            let mut h = std::hash::SipHasher::new_with_keys(key[0], key[1]);
            h.write_u64(domain);
            h.write_u64(n);
            h.finish()
        };
        self.msrp_sessions += 1;
        let n = self.msrp_sessions;
        let (hi, lo) = (block(1, n, self.msrp_key), block(2, n, self.msrp_key));
        format!("{:016x}{:04x}", hi, lo & 0xffff)
    }

    /// Ports in use in `realm`.
    pub fn in_use(&self, realm: &str) -> usize {
        self.realms
            .get(realm)
            .map_or(0, |r| r.used.len() - r.cooling.len())
    }

    /// Allocate a port in `realm` (`want`: a specific one).
    ///
    /// # Errors
    /// 449 for an unknown realm, 510 when the range is exhausted or `want` is taken.
    pub fn allocate(&mut self, realm: &str, want: Option<u16>) -> Result<SocketAddr, ProcError> {
        let r = self
            .realms
            .get_mut(realm)
            .ok_or(err(449, "unknown IP realm"))?;
        if let Some(p) = want {
            if p < r.lo || p > r.hi || !r.used.insert(p) {
                return Err(err(510, "requested port unavailable"));
            }
            return Ok(SocketAddr::new(r.addr, p));
        }
        let n = u32::from(r.hi - r.lo) + 1;
        if let Some(key) = self.port_key {
            let mut draw = || {
                #[allow(deprecated)] // SipHash-2-4 as a keyed PRF over a counter, as above
                let mut h = std::hash::SipHasher::new_with_keys(key[0], key[1]);
                std::hash::Hasher::write_u64(&mut h, 3);
                std::hash::Hasher::write_u64(&mut h, self.port_draws);
                self.port_draws += 1;
                std::hash::Hasher::finish(&h)
            };
            // A few uniform draws over the range find a free port at once unless the range is
            // nearly full; then one draw picks uniformly among the free ports, found by
            // walking the range (bounded by its size, 65,536 at most).
            for _ in 0..8 {
                let p = r.lo + (draw() % u64::from(n)) as u16;
                if r.used.insert(p) {
                    return Ok(SocketAddr::new(r.addr, p));
                }
            }
            let free = n as usize - r.used.len();
            if free == 0 {
                // Only cooling ports are left: the one released longest ago.
                return r
                    .cooling
                    .pop_front()
                    .map(|p| SocketAddr::new(r.addr, p))
                    .ok_or(err(510, "no port available in realm"));
            }
            let k = (draw() % free as u64) as usize;
            let used = &r.used;
            if let Some(p) = (r.lo..=r.hi).filter(|p| !used.contains(p)).nth(k) {
                r.used.insert(p);
                return Ok(SocketAddr::new(r.addr, p));
            }
            return Err(err(510, "no port available in realm"));
        }
        for _ in 0..n {
            let p = r.next;
            r.next = if r.next >= r.hi { r.lo } else { r.next + 1 };
            if r.used.insert(p) {
                return Ok(SocketAddr::new(r.addr, p));
            }
        }
        Err(err(510, "no port available in realm"))
    }

    /// Return a port.
    pub fn release(&mut self, realm: &str, port: u16) {
        let keyed = self.port_key.is_some();
        if let Some(r) = self.realms.get_mut(realm) {
            if !keyed {
                r.used.remove(&port);
                return;
            }
            if !r.used.contains(&port) || r.cooling.contains(&port) {
                return;
            }
            r.cooling.push_back(port);
            let cap = (usize::from(r.hi - r.lo) + 1) / 4;
            while r.cooling.len() > cap {
                if let Some(p) = r.cooling.pop_front() {
                    r.used.remove(&p);
                }
            }
        }
    }

    fn default_realm(&self) -> Option<&str> {
        self.default.as_deref()
    }
}

/// Inputs for one stream of one termination.
#[derive(Debug, Clone)]
pub struct LegInput<'a> {
    /// Local SDP as the MGC wrote it (may hold `$`), or the stored one on Modify.
    pub local: Option<&'a str>,
    /// Remote SDP, if known.
    pub remote: Option<&'a str>,
    /// LocalControl properties.
    pub properties: &'a [PropertyParm],
    /// Stream mode.
    pub mode: StreamMode,
    /// The leg as it was before this command (Modify), if any.
    pub previous: Option<&'a LegSpec>,
    /// `local` is the MG's own earlier answer (not a new MGC instruction): its `a=setup` is not
    /// an order.
    pub local_is_ours: bool,
}

/// Result of [`derive_leg`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegOutput {
    /// The leg.
    pub spec: LegSpec,
    /// Local SDP to store and return to the MGC, with every `$` filled in.
    pub local_sdp: String,
}

fn parse_sdp(text: Option<&str>) -> Result<Option<Sdp>, ProcError> {
    let Some(t) = text else { return Ok(None) };
    let s = Sdp::parse(t).map_err(|_| err(449, "malformed SDP"))?;
    if s.media.len() > 1 {
        return Err(err(501, "more than one media line per stream"));
    }
    Ok(Some(s))
}

fn classify(p: &Proto) -> Result<(Transport, Application), ProcError> {
    Ok(match p {
        Proto::TcpMsrp => (Transport::Tcp, Application::Msrp),
        Proto::TcpTlsMsrp => (Transport::TlsTcp, Application::Msrp),
        Proto::TcpBfcp => (Transport::Tcp, Application::Bfcp),
        Proto::TcpTlsBfcp => (Transport::TlsTcp, Application::Bfcp),
        Proto::UdpBfcp => (Transport::Udp, Application::Bfcp),
        Proto::UdpTlsBfcp => (Transport::DtlsUdp, Application::Bfcp),
        Proto::Udptl => (Transport::Udp, Application::Udptl),
        Proto::UdpTlsUdptl => (Transport::DtlsUdp, Application::Udptl),
        Proto::Tcp => (Transport::Tcp, Application::Opaque),
        Proto::TcpTls => (Transport::TlsTcp, Application::Opaque),
        Proto::Other(_) => return Err(err(449, "unsupported transport protocol")),
    })
}

/// How many peer fingerprints one leg's TLS/DTLS verifier holds (mirrors
/// `mgw_tls::PeerFingerprints::CAPACITY`; the gateway asserts they agree at compile time).
pub const MAX_PEER_FINGERPRINTS: usize = 4;

/// Whether the data plane can verify a certificate against `fp`: RFC 8122 §5 hash functions
/// the TLS crate accepts (SHA-1, MD5 and MD2 are too weak, RFC 8122 §5 / RFC 5763 §5) with a
/// digest of that function's length.
fn usable_fingerprint(fp: &Fingerprint) -> bool {
    let len = match fp.hash.as_str() {
        "sha-256" => 32,
        "sha-384" => 48,
        "sha-512" => 64,
        _ => return false,
    };
    fp.digest.len() == len
}

/// Derive the leg for one stream, allocate its local port, and build the Local SDP answer.
///
/// `own_fingerprint` is the MG's certificate fingerprint as it goes after `a=fingerprint:`
/// (e.g. `SHA-256 AB:CD:...`), computed by the TLS crate.
///
/// # Errors
/// [`ProcError`] with 421 (illegal combination, e.g. `a=connection:existing` with no
/// connection), 440/445/449 (unknown package, property or value; contradictory SDP; missing
/// fingerprint), 501 (several media lines) or 510 (no port).
pub fn derive_leg(
    input: &LegInput<'_>,
    realms: &mut Realms,
    own_fingerprint: &str,
) -> Result<LegOutput, ProcError> {
    let local = parse_sdp(input.local)?;
    let remote = parse_sdp(input.remote)?;
    let lm = local.as_ref().and_then(|s| s.media.first());
    let rm = remote.as_ref().and_then(|s| s.media.first());
    let (lp, rp) = (lm.map(Media::proto), rm.map(Media::proto));
    let proto = match (&lp, &rp) {
        (Some(a), Some(b)) if a != b => {
            return Err(err(449, "Local and Remote SDP disagree on the transport"))
        }
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => return Err(err(449, "no media line in Local or Remote SDP")),
    };
    let (transport, app) = classify(&proto)?;

    // Package properties (LocalControl).
    let mut realm = None;
    let mut latching = false;
    let mut handling = TcpHandling::StateAware;
    let mut delayed = false;
    for p in input.properties {
        let v = p
            .single()
            .ok_or(err(449, "property value must be single"))?;
        packages::check_property(&p.name, v).map_err(|e| ProcError {
            code: e.code(packages::ItemKind::Property),
            reason: "property refused",
        })?;
        match p.name.to_ascii_lowercase().as_str() {
            "ipdc/realm" => realm = Some(v.to_owned()),
            "ipnapt/latch" => latching = matches!(v.to_ascii_uppercase().as_str(), "ON" | "TRUE"),
            "tcp/mode" => {
                handling = match v.to_ascii_lowercase().as_str() {
                    "stateless" => TcpHandling::Stateless,
                    "merge" => TcpHandling::StateAwareChangedSetup,
                    _ => TcpHandling::StateAware,
                }
            }
            "tcp/estab" => delayed = v.eq_ignore_ascii_case("delayed"),
            _ => {}
        }
    }
    if handling == TcpHandling::Stateless && transport.is_secure() {
        return Err(err(421, "stateless TCP handling cannot terminate TLS"));
    }
    let realm = match (realm, input.previous) {
        (Some(r), _) => r,
        (None, Some(prev)) => prev.realm.clone(),
        (None, None) => realms
            .default_realm()
            .ok_or(err(449, "no IP realm configured"))?
            .to_owned(),
    };

    // Remote transport address.
    let remote_addr = match (&remote, rm) {
        (Some(s), Some(m)) => match (m.connection(s).map(|c| c.address), m.m.port) {
            (Some(Choosable::Value(ip)), Port::Number(port)) if port != 0 => {
                Some(SocketAddr::new(ip, port))
            }
            _ => None,
        },
        _ => None,
    };

    // RFC 4145 §4: roles. The remote's a=setup fixes ours; a=setup absent means active.
    if lm.is_some_and(Media::setup_invalid) || rm.is_some_and(Media::setup_invalid) {
        return Err(err(449, "bad a=setup value"));
    }
    let local_setup = if input.local_is_ours {
        None
    } else {
        lm.and_then(Media::setup)
    };
    // RFC 4145 §5: a=connection.
    let conn = rm.and_then(Media::connection_attr).or_else(|| {
        lm.and_then(Media::connection_attr)
            .filter(|_| !input.local_is_ours)
    });
    let reuse_connection = conn == Some(ConnectionAttr::Existing);
    if reuse_connection && input.previous.is_none() {
        return Err(err(421, "a=connection:existing but there is no connection"));
    }
    let kept_role = input
        .previous
        .and_then(|p| p.tcp_role)
        .filter(|_| reuse_connection);
    let remote_setup = rm.map(|m| m.setup().unwrap_or(Setup::Active));
    let mut hold = false;
    let role = if let Some(r) = kept_role {
        // The live connection is kept, and with it the roles.
        r
    } else if handling == TcpHandling::StateAwareChangedSetup && transport.is_tcp() {
        // TCP merge: the MG is passive on every leg (UEs behind NAT connect to it).
        TcpRole::Passive
    } else {
        let from_remote = match remote_setup {
            Some(Setup::Active) => Some(TcpRole::Passive),
            Some(Setup::Passive) => Some(TcpRole::Active),
            Some(Setup::HoldConn) => {
                hold = true;
                None
            }
            Some(Setup::ActPass) | None => None,
        };
        let from_local = match local_setup {
            Some(Setup::Active) => Some(TcpRole::Active),
            Some(Setup::Passive) => Some(TcpRole::Passive),
            Some(Setup::HoldConn) => {
                hold = true;
                None
            }
            Some(Setup::ActPass) | None => None,
        };
        match (from_remote, from_local) {
            (Some(a), Some(b)) if a != b => {
                return Err(err(449, "Local and Remote a=setup contradict"))
            }
            (Some(r), _) => r,
            (None, Some(l)) => l,
            // Remote offered actpass: the answerer picks active (RFC 4145 §4.1) as it knows
            // where to connect; with no remote yet the MG listens.
            (None, None) if remote_setup == Some(Setup::ActPass) => TcpRole::Active,
            (None, None) => input
                .previous
                .and_then(|p| p.tcp_role)
                .unwrap_or(TcpRole::Passive),
        }
    };

    let establishment = if hold {
        Establishment::Hold
    } else if delayed || (role == TcpRole::Active && remote_addr.is_none() && !latching) {
        Establishment::Delayed
    } else {
        Establishment::Immediate
    };

    // RFC 8122 §6 / RFC 5763: the active (connecting) side is the (D)TLS client.
    let security_role = transport.is_secure().then_some(match role {
        TcpRole::Active => SecurityRole::Client,
        TcpRole::Passive => SecurityRole::Server,
    });
    let (peer_fingerprints, tls_id) = match (&remote, rm) {
        (Some(s), Some(m)) if transport.is_secure() => {
            let mut fp = m
                .fingerprints(s)
                .map_err(|_| err(449, "malformed a=fingerprint"))?;
            if fp.is_empty() {
                return Err(err(
                    449,
                    "secure transport needs a=fingerprint in Remote SDP",
                ));
            }
            // Answer at the Add what would otherwise fail at the handshake: keep only the
            // fingerprints the verifier can check, and refuse (449, unsupported property
            // value, H.248.1 Annex D) when none is left or more are left than the
            // verifier holds (dropping some could drop the one the peer's certificate has).
            fp.retain(usable_fingerprint);
            if fp.is_empty() {
                return Err(err(
                    449,
                    "no usable a=fingerprint in Remote SDP (sha-256/384/512 only)",
                ));
            }
            if fp.len() > MAX_PEER_FINGERPRINTS {
                return Err(err(449, "more a=fingerprint than the MG can hold"));
            }
            (fp, m.tls_id().map(str::to_owned))
        }
        _ => (Vec::new(), None),
    };

    // Local address: keep the previous one in the same realm, else allocate.
    let local_addr = match input.previous {
        Some(p) if p.realm == realm => p.local,
        _ => {
            let want = match lm.map(|m| m.m.port) {
                Some(Port::Number(n)) if n != 0 => Some(n),
                _ => None,
            };
            realms.allocate(&realm, want)?
        }
    };

    let application = match app {
        Application::Msrp => AppParams::Msrp {
            cema: rm.is_some_and(Media::msrp_cema),
            path: rm
                .map(|m| m.path().into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
            local_path: local_msrp_path(
                lm.filter(|_| !input.local_is_ours),
                input.previous,
                transport,
                local_addr,
                realms,
            ),
        },
        Application::Bfcp => AppParams::Bfcp,
        Application::Udptl => AppParams::Udptl(rm.or(lm).map(Media::t38).unwrap_or_default()),
        Application::Opaque => AppParams::Opaque,
    };

    let spec = LegSpec {
        transport,
        application,
        realm,
        local: local_addr,
        remote: remote_addr,
        tcp_role: transport.is_tcp().then_some(role),
        establishment,
        reuse_connection,
        handling,
        latching,
        security_role,
        peer_fingerprints,
        tls_id,
        mode: input.mode,
    };
    let local_sdp = answer_sdp(local, rm, &proto, &spec, own_fingerprint, hold);
    Ok(LegOutput { spec, local_sdp })
}

/// The MGW's own MSRP URI on a leg (RFC 4975 §8.1 `a=path` of the Local SDP).
///
/// A concrete `a=path` in the MGC's Local SDP is kept: the MGC chose it. Otherwise the previous
/// URI of this leg is kept while its local address stays, so a Modify does not change the URI
/// the endpoint already uses (`lm` is `None` when the Local is the MG's own answer); else a new
/// one is made: `msrps://` for TLS (RFC 4975 §6), `msrp://` for TCP, the leg's address and
/// port (IPv6 in brackets), a fresh session-id, and the `;tcp` transport parameter.
fn local_msrp_path(
    lm: Option<&Media>,
    previous: Option<&LegSpec>,
    transport: Transport,
    local: SocketAddr,
    realms: &mut Realms,
) -> String {
    if let Some(given) = lm
        .and_then(|m| m.attr("path"))
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "$")
    {
        return given.to_owned();
    }
    if let Some(LegSpec {
        application: AppParams::Msrp { local_path, .. },
        local: prev_local,
        ..
    }) = previous
    {
        if *prev_local == local && !local_path.is_empty() {
            return local_path.clone();
        }
    }
    let scheme = if transport == Transport::TlsTcp {
        "msrps"
    } else {
        "msrp"
    };
    // SocketAddr's Display writes IPv6 in brackets, as the URI's host needs (RFC 3986 §3.2.2).
    format!("{scheme}://{local}/{};tcp", realms.next_msrp_session_id())
}

/// The Local SDP to return: the MGC's Local with `$` filled in, or one built from the Remote.
fn answer_sdp(
    local: Option<Sdp>,
    rm: Option<&Media>,
    proto: &Proto,
    spec: &LegSpec,
    own_fingerprint: &str,
    hold: bool,
) -> String {
    let mut sdp = local.unwrap_or_else(|| Sdp {
        session: vec![Line {
            kind: b'v',
            value: "0".into(),
        }],
        media: Vec::new(),
    });
    if sdp.media.is_empty() {
        let (media, formats) = rm.map_or_else(
            || (default_media(proto).to_owned(), vec!["*".to_owned()]),
            |m| (m.m.media.clone(), m.m.formats.clone()),
        );
        sdp.media.push(Media {
            m: MediaLine {
                media,
                port: Port::Choose,
                port_count: None,
                proto: rm.map_or_else(|| proto.as_str().to_owned(), |m| m.m.proto.clone()),
                formats,
            },
            lines: Vec::new(),
        });
    }
    let ip = spec.local.ip();
    let c_value = format!("IN {} {ip}", if ip.is_ipv4() { "IP4" } else { "IP6" });
    let mut session_c = false;
    for l in sdp.session.iter_mut().filter(|l| l.kind == b'c') {
        l.value.clone_from(&c_value);
        session_c = true;
    }
    if let Some(m) = sdp.media.first_mut() {
        m.m.port = Port::Number(spec.local.port());
        if !session_c || m.lines.iter().any(|l| l.kind == b'c') {
            m.set_connection(ip);
        }
        if let Some(role) = spec.tcp_role {
            let setup = if hold {
                Setup::HoldConn
            } else if role == TcpRole::Active {
                Setup::Active
            } else {
                Setup::Passive
            };
            m.set_attr("setup", Some(setup.as_str()));
            m.set_attr(
                "connection",
                Some(if spec.reuse_connection {
                    "existing"
                } else {
                    "new"
                }),
            );
        } else if let Some(r) = spec.security_role {
            // DTLS: a=setup carries the DTLS role (RFC 5763 §5).
            let setup = if r == SecurityRole::Client {
                Setup::Active
            } else {
                Setup::Passive
            };
            m.set_attr("setup", Some(setup.as_str()));
        }
        if spec.transport.is_secure() {
            m.set_attr("fingerprint", Some(own_fingerprint));
        }
        // RFC 4975 §8.1: the MGW's own URI, where the endpoint on this leg sends.
        if let AppParams::Msrp { local_path, .. } = &spec.application {
            m.set_attr("path", Some(local_path));
        }
    }
    sdp.to_text("\n")
}

fn default_media(p: &Proto) -> &'static str {
    match p {
        Proto::TcpMsrp | Proto::TcpTlsMsrp => "message",
        Proto::Udptl | Proto::UdpTlsUdptl => "image",
        _ => "application",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    const PEER_FP: &str = "SHA-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:5E:1B:82:4F:66:9A:37:C6:61:AD:51:9E";

    fn realms() -> Realms {
        let mut r = Realms::default();
        r.add("access", "192.0.2.1".parse().unwrap(), 40000, 40003);
        r.add("core", "10.0.0.1".parse().unwrap(), 50000, 59999);
        r
    }

    fn keyed(key: [u8; 16], lo: u16, hi: u16) -> Realms {
        let mut r = Realms::default();
        r.add("r", "192.0.2.1".parse().unwrap(), lo, hi);
        r.set_port_key(key);
        r
    }

    fn draw(r: &mut Realms, n: usize) -> Vec<u16> {
        (0..n)
            .map(|_| r.allocate("r", None).unwrap().port())
            .collect()
    }

    #[test]
    fn keyed_port_allocation_is_unpredictable_and_never_returns_a_port_in_use() {
        // Two MGs with different keys allocate different sequences, neither one sequential.
        let a = draw(&mut keyed(*b"0123456789abcdef", 40000, 49999), 32);
        let b = draw(&mut keyed(*b"fedcba9876543210", 40000, 49999), 32);
        assert_ne!(a, b);
        for seq in [&a, &b] {
            let steps = seq
                .windows(2)
                .filter(|w| w[1] == w[0].wrapping_add(1))
                .count();
            assert!(steps < 4, "next port predictable from the last: {seq:?}");
            assert!(seq.iter().all(|p| (40000..=49999).contains(p)));
        }
        // Over a small range, every port is handed out once, then the range is exhausted;
        // a released port is the only one left to hand out, and a port asked for by number
        // is never handed out again.
        let mut r = keyed(*b"0123456789abcdef", 40000, 40015);
        assert_eq!(r.allocate("r", Some(40007)).unwrap().port(), 40007);
        let mut got = draw(&mut r, 15);
        got.sort_unstable();
        let expect: Vec<u16> = (40000..=40015).filter(|&p| p != 40007).collect();
        assert_eq!(got, expect);
        assert_eq!(r.allocate("r", None).unwrap_err().code, 510);
        r.release("r", 40011);
        assert_eq!(r.in_use("r"), 15);
        assert_eq!(r.allocate("r", None).unwrap().port(), 40011);
        assert_eq!(r.allocate("r", None).unwrap_err().code, 510);
        // A released port cools: it is not handed out again while others are free.
        let mut r = keyed(*b"0123456789abcdef", 40000, 40099);
        let first = r.allocate("r", None).unwrap().port();
        r.release("r", first);
        let next: Vec<u16> = draw(&mut r, 50);
        assert!(!next.contains(&first), "{first} reused at once");
    }

    fn props(v: &[(&str, &str)]) -> Vec<PropertyParm> {
        v.iter().map(|(n, v)| PropertyParm::eq(n, v)).collect()
    }

    fn leg(
        local: Option<&str>,
        remote: Option<&str>,
        p: &[(&str, &str)],
        r: &mut Realms,
    ) -> Result<LegOutput, ProcError> {
        let properties = props(p);
        derive_leg(
            &LegInput {
                local,
                remote,
                properties: &properties,
                mode: StreamMode::SendRecv,
                previous: None,
                local_is_ours: false,
            },
            r,
            FP,
        )
    }

    fn remote_tls(setup: &str) -> String {
        format!("v=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=path:msrps://198.51.100.10:7394/abc;tcp\na=setup:{setup}\na=fingerprint:{PEER_FP}\na=msrp-cema")
    }

    // ---- TLS access leg ----

    #[test]
    fn tls_msrp_remote_active_makes_mg_passive_tls_server() {
        let mut r = realms();
        let out = leg(
            Some("v=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\na=fingerprint:$"),
            Some(&remote_tls("active")),
            &[("ipdc/realm", "access")],
            &mut r,
        )
        .unwrap();
        let s = &out.spec;
        assert_eq!(s.transport, Transport::TlsTcp);
        assert_eq!(s.tcp_role, Some(TcpRole::Passive));
        assert_eq!(s.security_role, Some(SecurityRole::Server));
        assert_eq!(s.local, "192.0.2.1:40000".parse().unwrap());
        assert_eq!(s.remote, Some("198.51.100.10:7394".parse().unwrap()));
        assert_eq!(s.peer_fingerprints.len(), 1);
        assert_eq!(s.establishment, Establishment::Immediate);
        assert!(
            matches!(&s.application, AppParams::Msrp { cema: true, path, .. } if path.len() == 1)
        );
        let AppParams::Msrp { local_path, .. } = &s.application else {
            unreachable!()
        };
        assert_eq!(
            out.local_sdp,
            format!("v=0\nc=IN IP4 192.0.2.1\nm=message 40000 TCP/TLS/MSRP *\na=fingerprint:{FP}\na=setup:passive\na=connection:new\na=path:{local_path}")
        );
    }

    #[test]
    fn remote_passive_makes_mg_active_tls_client() {
        let mut r = realms();
        let out = leg(None, Some(&remote_tls("passive")), &[], &mut r).unwrap();
        assert_eq!(out.spec.tcp_role, Some(TcpRole::Active));
        assert_eq!(out.spec.security_role, Some(SecurityRole::Client));
        assert_eq!(out.spec.realm, "access", "first realm is the default");
        assert!(out.local_sdp.contains("a=setup:active"));
        assert!(out.local_sdp.contains(&format!("a=fingerprint:{FP}")));
    }

    #[test]
    fn actpass_lets_the_mg_choose_active() {
        let mut r = realms();
        let out = leg(None, Some(&remote_tls("actpass")), &[], &mut r).unwrap();
        assert_eq!(out.spec.tcp_role, Some(TcpRole::Active));
    }

    #[test]
    fn missing_peer_fingerprint_is_449() {
        let mut r = realms();
        let e = leg(
            None,
            Some("v=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=setup:active"),
            &[],
            &mut r,
        )
        .unwrap_err();
        assert_eq!(e.code, 449);
    }

    #[test]
    fn only_sha1_fingerprints_in_remote_sdp_is_449() {
        let mut r = realms();
        let sha1 = "SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB";
        let remote = format!("v=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=path:msrps://198.51.100.10:7394/abc;tcp\na=setup:active\na=fingerprint:{sha1}");
        let e = leg(None, Some(&remote), &[], &mut r).unwrap_err();
        assert_eq!(e.code, 449);
    }

    #[test]
    fn sha256_fingerprint_with_wrong_digest_length_is_449() {
        let mut r = realms();
        let short = "SHA-256 4A:AD:B9:B1";
        let remote = format!("v=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=path:msrps://198.51.100.10:7394/abc;tcp\na=setup:active\na=fingerprint:{short}");
        let e = leg(None, Some(&remote), &[], &mut r).unwrap_err();
        assert_eq!(e.code, 449);
    }

    #[test]
    fn more_usable_fingerprints_than_the_table_holds_is_449() {
        let mut r = realms();
        let many: String = (0..=MAX_PEER_FINGERPRINTS)
            .map(|_| format!("\na=fingerprint:{PEER_FP}"))
            .collect();
        let remote = format!("v=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=path:msrps://198.51.100.10:7394/abc;tcp\na=setup:active{many}");
        let e = leg(None, Some(&remote), &[], &mut r).unwrap_err();
        assert_eq!(e.code, 449);
    }

    #[test]
    fn sha1_next_to_a_sha256_fingerprint_keeps_only_the_usable_one() {
        let mut r = realms();
        let sha1 = "SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB";
        let remote = format!("v=0\nc=IN IP4 198.51.100.10\nm=message 7394 TCP/TLS/MSRP *\na=path:msrps://198.51.100.10:7394/abc;tcp\na=setup:active\na=fingerprint:{sha1}\na=fingerprint:{PEER_FP}");
        let out = leg(None, Some(&remote), &[], &mut r).unwrap();
        assert_eq!(out.spec.peer_fingerprints.len(), 1);
        assert_eq!(out.spec.peer_fingerprints[0].hash, "sha-256");
    }

    // ---- MSRP a=path (RFC 4975 §8.1) ----

    fn msrp_paths(spec: &LegSpec) -> (&str, &[String], bool) {
        match &spec.application {
            AppParams::Msrp {
                local_path,
                path,
                cema,
            } => (local_path, path, *cema),
            other => panic!("not MSRP: {other:?}"),
        }
    }

    #[test]
    fn msrp_local_sdp_carries_the_mgw_path_per_leg() {
        let mut r = realms();
        r.set_msrp_session_key(*b"0123456789abcdef");
        let remote = remote_tls("active").replace("\na=msrp-cema", "");
        let access = leg(None, Some(&remote), &[("ipdc/realm", "access")], &mut r).unwrap();
        let (ours, theirs, cema) = msrp_paths(&access.spec);
        assert!(!cema);
        assert_eq!(theirs, ["msrps://198.51.100.10:7394/abc;tcp"]);
        // msrps for TLS, the leg's own address and port, ;tcp (RFC 4975 §6, §9).
        let sid = ours
            .strip_prefix("msrps://192.0.2.1:40000/")
            .and_then(|r| r.strip_suffix(";tcp"))
            .unwrap_or_else(|| panic!("unexpected path {ours}"));
        assert_eq!(sid.len(), 20, "80-bit session-id (RFC 4975 §14.1)");
        assert!(sid.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(access.local_sdp.contains(&format!("\na=path:{ours}")));
        // The core leg: plain TCP gives msrp://, and another session-id.
        let core = leg(
            Some("v=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\na=path:$"),
            None,
            &[("ipdc/realm", "core")],
            &mut r,
        )
        .unwrap();
        let (core_path, core_remote, _) = msrp_paths(&core.spec);
        assert!(
            core_path.starts_with("msrp://10.0.0.1:50000/"),
            "{core_path}"
        );
        assert!(core_path.ends_with(";tcp"));
        assert!(core_remote.is_empty(), "no Remote yet");
        assert_ne!(&core_path[22..], &ours[24..], "session-ids differ per leg");
        assert!(core.local_sdp.contains(&format!("\na=path:{core_path}")));
        assert!(!core.local_sdp.contains("a=path:$"));
        // Another key gives other ids; the same key and counter the same (deterministic).
        let mut r2 = realms();
        r2.set_msrp_session_key(*b"0123456789abcdef");
        let again = leg(None, Some(&remote), &[("ipdc/realm", "access")], &mut r2).unwrap();
        assert_eq!(msrp_paths(&again.spec).0, ours);
        let mut r3 = realms();
        r3.set_msrp_session_key(*b"fedcba9876543210");
        let other = leg(None, Some(&remote), &[("ipdc/realm", "access")], &mut r3).unwrap();
        assert_ne!(msrp_paths(&other.spec).0, ours);
    }

    #[test]
    fn msrp_path_given_by_the_mgc_is_kept_and_modify_keeps_ours() {
        let mut r = realms();
        let given = "msrp://mgw.example.net:40000/chosen;tcp";
        let out = leg(
            Some(&format!(
                "v=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\na=path:{given}"
            )),
            None,
            &[],
            &mut r,
        )
        .unwrap();
        assert_eq!(msrp_paths(&out.spec).0, given);
        // Modify with the Remote: our Local (with our path) comes back; the path stays.
        let first = leg(
            Some("v=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *"),
            None,
            &[],
            &mut r,
        )
        .unwrap();
        let props = Vec::new();
        let remote = remote_tls("passive");
        let second = derive_leg(
            &LegInput {
                local: Some(&first.local_sdp),
                remote: Some(&remote),
                properties: &props,
                mode: StreamMode::SendRecv,
                previous: Some(&first.spec),
                local_is_ours: true,
            },
            &mut r,
            FP,
        )
        .unwrap();
        assert_eq!(msrp_paths(&second.spec).0, msrp_paths(&first.spec).0);
        let (_, theirs, cema) = msrp_paths(&second.spec);
        assert_eq!(theirs, ["msrps://198.51.100.10:7394/abc;tcp"]);
        assert!(cema);
    }

    #[test]
    fn msrp_path_over_ipv6_has_brackets() {
        let mut r = Realms::default();
        r.add("v6", "2001:db8::1".parse().unwrap(), 7000, 7001);
        let out = leg(
            None,
            Some("v=0\nc=IN IP6 2001:db8::2\nm=message 7394 TCP/MSRP *\na=path:msrp://[2001:db8::2]:7394/x;tcp"),
            &[],
            &mut r,
        )
        .unwrap();
        let (ours, _, _) = msrp_paths(&out.spec);
        assert!(ours.starts_with("msrp://[2001:db8::1]:7000/"), "{ours}");
    }

    #[test]
    fn non_msrp_legs_get_no_path() {
        let mut r = realms();
        let remote = format!("v=0\nc=IN IP4 198.51.100.7\nm=application 50000 TCP/TLS/BFCP *\na=setup:passive\na=fingerprint:{PEER_FP}");
        let out = leg(None, Some(&remote), &[], &mut r).unwrap();
        assert!(!out.local_sdp.contains("a=path"));
    }

    // ---- TCP core leg ----

    #[test]
    fn core_tcp_leg_without_remote_listens() {
        let mut r = realms();
        let out = leg(
            Some("v=0\nc=IN IP4 $\nm=message $ TCP/MSRP *"),
            None,
            &[("ipdc/realm", "core")],
            &mut r,
        )
        .unwrap();
        assert_eq!(out.spec.transport, Transport::Tcp);
        assert_eq!(out.spec.tcp_role, Some(TcpRole::Passive));
        assert_eq!(out.spec.security_role, None);
        assert_eq!(out.spec.local.ip().to_string(), "10.0.0.1");
        assert!(out.local_sdp.contains("a=setup:passive"));
        assert!(!out.local_sdp.contains("fingerprint"));
    }

    #[test]
    fn active_without_remote_is_delayed_and_estab_property_delays() {
        let mut r = realms();
        let out = leg(
            Some("v=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\na=setup:active"),
            None,
            &[],
            &mut r,
        )
        .unwrap();
        assert_eq!(out.spec.establishment, Establishment::Delayed);
        let out = leg(
            None,
            Some("v=0\nc=IN IP4 10.9.9.9\nm=message 2855 TCP/MSRP *\na=setup:passive"),
            &[("tcp/estab", "delayed")],
            &mut r,
        )
        .unwrap();
        assert_eq!(out.spec.establishment, Establishment::Delayed);
    }

    #[test]
    fn merge_mode_is_passive_and_latch_is_read() {
        let mut r = realms();
        let out = leg(
            None,
            Some(&remote_tls("passive")),
            &[("tcp/mode", "merge"), ("ipnapt/latch", "ON")],
            &mut r,
        )
        .unwrap();
        assert_eq!(out.spec.tcp_role, Some(TcpRole::Passive));
        assert_eq!(out.spec.handling, TcpHandling::StateAwareChangedSetup);
        assert!(out.spec.latching);
    }

    #[test]
    fn holdconn() {
        let mut r = realms();
        let out = leg(None, Some(&remote_tls("holdconn")), &[], &mut r).unwrap();
        assert_eq!(out.spec.establishment, Establishment::Hold);
        assert!(out.local_sdp.contains("a=setup:holdconn"));
    }

    // ---- Modify ----

    #[test]
    fn connection_existing_keeps_role_and_address() {
        let mut r = realms();
        let first = leg(None, Some(&remote_tls("active")), &[], &mut r).unwrap();
        let remote2 = remote_tls("passive").replace("a=msrp-cema", "a=connection:existing");
        let props = Vec::new();
        let out = derive_leg(
            &LegInput {
                local: Some(&first.local_sdp),
                remote: Some(&remote2),
                properties: &props,
                mode: StreamMode::SendOnly,
                previous: Some(&first.spec),
                local_is_ours: true,
            },
            &mut r,
            FP,
        )
        .unwrap();
        assert!(out.spec.reuse_connection);
        assert_eq!(
            out.spec.tcp_role,
            Some(TcpRole::Passive),
            "existing connection keeps role"
        );
        assert_eq!(out.spec.local, first.spec.local);
        assert_eq!(r.in_use("access"), 1);
    }

    #[test]
    fn connection_existing_on_add_is_421() {
        let mut r = realms();
        let remote = remote_tls("active").replace("a=msrp-cema", "a=connection:existing");
        assert_eq!(leg(None, Some(&remote), &[], &mut r).unwrap_err().code, 421);
    }

    // ---- refusals ----

    #[test]
    fn refusals_have_the_right_codes() {
        let mut r = realms();
        let remote = remote_tls("active");
        let l = |p: &[(&str, &str)], r: &mut Realms| leg(None, Some(&remote), p, r);
        assert_eq!(l(&[("foo/bar", "1")], &mut r).unwrap_err().code, 440);
        assert_eq!(l(&[("tcp/nosuch", "1")], &mut r).unwrap_err().code, 445);
        assert_eq!(
            l(&[("ipnapt/latch", "maybe")], &mut r).unwrap_err().code,
            449
        );
        assert_eq!(l(&[("ipdc/realm", "mars")], &mut r).unwrap_err().code, 449);
        assert_eq!(
            l(&[("tcp/mode", "stateless")], &mut r).unwrap_err().code,
            421
        );
        let e = leg(
            Some("v=0\nm=message $ TCP/MSRP *"),
            Some(&remote),
            &[],
            &mut r,
        )
        .unwrap_err();
        assert_eq!(e.code, 449, "proto mismatch");
        let e = leg(None, Some("v=0\nm=audio 4000 RTP/AVP 0"), &[], &mut r).unwrap_err();
        assert_eq!(e.code, 449);
        let e = leg(
            Some("v=0\nm=message $ TCP/TLS/MSRP *\na=setup:active"),
            Some(&remote),
            &[],
            &mut r,
        )
        .unwrap_err();
        assert_eq!(e.code, 449, "both active");
    }

    #[test]
    fn port_exhaustion_is_510_and_release_frees() {
        let mut r = realms();
        let remote = remote_tls("active");
        let mut ports = Vec::new();
        for _ in 0..4 {
            ports.push(
                leg(None, Some(&remote), &[], &mut r)
                    .unwrap()
                    .spec
                    .local
                    .port(),
            );
        }
        assert_eq!(ports, vec![40000, 40001, 40002, 40003]);
        assert_eq!(leg(None, Some(&remote), &[], &mut r).unwrap_err().code, 510);
        r.release("access", 40002);
        assert_eq!(
            leg(None, Some(&remote), &[], &mut r)
                .unwrap()
                .spec
                .local
                .port(),
            40002
        );
    }

    // ---- UDP / DTLS ----

    #[test]
    fn t38_over_dtls_and_plain_udptl() {
        let mut r = realms();
        let remote = format!("v=0\nc=IN IP4 203.0.113.5\nm=image 5004 UDP/TLS/UDPTL t38\na=setup:actpass\na=tls-id:abc\na=fingerprint:{PEER_FP}\na=T38FaxVersion:0\na=T38FaxMaxDatagram:320");
        let out = leg(None, Some(&remote), &[], &mut r).unwrap();
        assert_eq!(out.spec.transport, Transport::DtlsUdp);
        assert_eq!(out.spec.tcp_role, None);
        assert_eq!(out.spec.security_role, Some(SecurityRole::Client));
        assert_eq!(out.spec.tls_id.as_deref(), Some("abc"));
        assert!(
            matches!(&out.spec.application, AppParams::Udptl(t) if t.max_datagram == Some(320))
        );
        assert!(out
            .local_sdp
            .starts_with("v=0\nm=image 40000 UDP/TLS/UDPTL t38\nc=IN IP4 192.0.2.1"));
        assert!(out.local_sdp.contains("a=setup:active"));
        let out = leg(
            None,
            Some("v=0\nc=IN IP4 10.1.1.1\nm=image 6000 udptl t38"),
            &[("ipdc/realm", "core")],
            &mut r,
        )
        .unwrap();
        assert_eq!(out.spec.transport, Transport::Udp);
        assert_eq!(out.spec.security_role, None);
    }

    #[test]
    fn bfcp_over_tcp_tls() {
        let mut r = realms();
        let remote = format!("v=0\nc=IN IP4 198.51.100.7\nm=application 50000 TCP/TLS/BFCP *\na=setup:passive\na=fingerprint:{PEER_FP}\na=floorctrl:c-only\na=confid:1\na=userid:2\na=floorid:1 mstrm:10");
        let out = leg(None, Some(&remote), &[], &mut r).unwrap();
        assert_eq!(out.spec.application, AppParams::Bfcp);
        assert_eq!(out.spec.transport, Transport::TlsTcp);
        assert_eq!(out.spec.security_role, Some(SecurityRole::Client));
    }
}
