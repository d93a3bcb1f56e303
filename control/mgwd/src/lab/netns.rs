//! `mgwd lab --netns`: the peers on the Linux kernel's network stack.
//!
//! The lab creates a veth pair and a network namespace, both named after the process id:
//! `mgl<pid>` stays in the root namespace with no IP address and is the worker's AF_PACKET port
//! (the worker owns 10.10.0.1 and 10.20.0.1 on it and answers ARP for them); `mglp<pid>` goes
//! into namespace `mgwlab<pid>` and carries the UEs' 10.10.0.2/16 and the core's 10.20.0.2/16.
//! Offloads are off on both ends (the edge verifies every checksum; a veth would otherwise hand
//! it partial ones) and IPv6 is off (no router or neighbour chatter on the wire).
//!
//! One peers thread enters the namespace with `setns(2)` and opens kernel sockets there: for
//! each MSRP or BFCP session a `TcpListener` for the core (bound before the MGC's Add, because
//! the gateway connects to the core as soon as the context is installed) and, once the Add
//! answered, a `TcpStream` for the UE running a rustls client (client certificate = the UE
//! identity whose fingerprint the MGC put in the Remote SDP; the MG is authenticated by the
//! fingerprint of its Local SDP, RFC 8122); for each T.38 session a UDP socket for the core's
//! fax endpoint and one for the UE running a DTLS 1.2 client (`mgw_tls::DtlsSession`, dimpl).
//! The application traffic is the in-memory lab's ([`super::Exchange`], [`super::FaxApp`]).
//!
//! The network is removed when the lab ends, on error and on Ctrl-C (a drop guard; the signal
//! only sets a flag). A lab killed with SIGKILL leaves its namespace behind: the next `--netns`
//! run removes namespaces of lab processes that no longer exist.

use super::{
    core_port, new_rtt, spawn_worker, ue_fax_port, worker_config, Exchange, FaxApp, GwLeg, Kind,
    LabArgs, Live, PeerCtx, PeersResult, StartPeers, Wire, CORE, UE,
};
use anyhow::{anyhow, bail, Context as _, Result};
use hdrhistogram::Histogram;
use mgw_core::buf::Pool;
use mgw_core::port::Port as _;
use mgw_core::time::{monotonic_now, Instant};
use mgw_ports::afpacket::AfPacketPort;
use mgw_tls::{DtlsConfig, DtlsSession, Fingerprint, Identity, PeerFingerprints, SecurityRole};
use mgw_worker::WorkerEnd;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The error a user without root sees.
///
/// # Errors
/// Not running as root.
pub(super) fn require_root() -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("--netns needs root (network namespaces)");
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The lab network.

/// Runs `program args…`; its stdout, or an error naming the command and its stderr.
fn cmd(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const NS_PREFIX: &str = "mgwlab";

/// The veth pair and the peers' namespace; removed on drop.
pub(super) struct LabNet {
    /// The peers' namespace.
    pub ns: String,
    /// The worker's interface (root namespace, no IP address).
    pub mg_if: String,
    /// The peers' interface (in `ns`).
    pub peer_if: String,
}

impl LabNet {
    /// Creates the namespace and the veth, with `netem` on both ends when `loss` or `delay`
    /// are asked for.
    ///
    /// # Errors
    /// Any `ip`, `ethtool` or `tc` command failing (what exists by then is removed).
    fn create(loss: f64, delay: Duration) -> Result<LabNet> {
        remove_stale();
        let pid = std::process::id();
        let net = LabNet {
            ns: format!("{NS_PREFIX}{pid}"),
            mg_if: format!("mgl{pid}"),
            peer_if: format!("mglp{pid}"),
        };
        cmd("ip", &["netns", "add", &net.ns])?;
        // From here on, Drop removes whatever exists.
        let (ns, mg_if, peer_if) = (net.ns.as_str(), net.mg_if.as_str(), net.peer_if.as_str());
        cmd(
            "ip",
            &[
                "link", "add", mg_if, "type", "veth", "peer", "name", peer_if, "netns", ns,
            ],
        )?;
        // The root kernel must stay out of the lab: no IPv6 on the worker's interface, no
        // forwarding of frames that arrive there (they carry the interface's own MAC).
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{mg_if}/disable_ipv6"), "1");
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{mg_if}/forwarding"), "0");
        // Nor answer ARP there for addresses it may own elsewhere: only the worker answers.
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{mg_if}/arp_ignore"), "1");
        let off = [
            "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
        ];
        let mut root = vec!["-K", mg_if];
        root.extend(off);
        cmd("ethtool", &root).context("--netns turns veth offloads off with ethtool")?;
        let mut inner = vec!["netns", "exec", ns, "ethtool", "-K", peer_if];
        inner.extend(off);
        cmd("ip", &inner)?;
        cmd(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{peer_if}.disable_ipv6=1"),
            ],
        )?;
        cmd("ip", &["link", "set", mg_if, "up"])?;
        cmd("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        for a in [format!("{UE}/16"), format!("{CORE}/16")] {
            cmd("ip", &["-n", ns, "addr", "add", &a, "dev", peer_if])?;
        }
        cmd("ip", &["-n", ns, "link", "set", peer_if, "up"])?;
        if loss > 0.0 || !delay.is_zero() {
            // The same loss and one-way delay each way, like the in-memory wire's model.
            let loss = format!("{}%", loss * 100.0);
            let delay = format!("{}us", delay.as_micros());
            let netem = ["root", "netem", "loss", &loss, "delay", &delay];
            let mut root = vec!["qdisc", "add", "dev", mg_if];
            root.extend(netem);
            let mut inner = vec!["-n", ns, "qdisc", "add", "dev", peer_if];
            inner.extend(netem);
            cmd("tc", &root)
                .and_then(|_| cmd("tc", &inner))
                .context("--loss/--delay-us with --netns need tc netem (sch_netem)")?;
        }
        Ok(net)
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        // Deleting either end removes the pair; the namespace goes with its interfaces.
        let _ = cmd("ip", &["link", "del", &self.mg_if]);
        let _ = cmd("ip", &["netns", "del", &self.ns]);
    }
}

/// Removes namespaces of `mgwd lab --netns` processes that no longer run (killed with SIGKILL).
fn remove_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = lab_pid(&name) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = cmd("ip", &["link", "del", &format!("mgl{pid}")]);
            let _ = cmd("ip", &["netns", "del", &name]);
        }
    }
}

/// The pid of the `mgwd lab --netns` process that made namespace `name`, if it is one of ours.
fn lab_pid(name: &str) -> Option<u32> {
    name.strip_prefix(NS_PREFIX)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse().ok())
}

/// Moves the calling thread into namespace `ns` (made by `ip netns add`); sockets it opens
/// afterwards live there, whichever thread uses them later.
fn enter(ns: &str) -> Result<()> {
    let path = format!("/run/netns/{ns}");
    let f = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    // SAFETY: `f` is an open namespace file for the duration of the call; setns(2) only
    // changes the calling thread's network namespace (CLONE_NEWNET), no memory is shared.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("setns into {ns}"));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The wire.

/// The veth, the worker on its root end and the kernel peers in the namespace. Returns once
/// the core side listens, so the MGC's Adds may follow.
///
/// # Errors
/// The network, the AF_PACKET port or the peers' sockets cannot be had.
pub(super) fn wire(
    args: &LabArgs,
    mg_id: &Identity,
    ring: WorkerEnd,
    ctx: PeerCtx,
) -> Result<Wire> {
    let net = LabNet::create(args.loss, Duration::from_micros(args.delay_us))?;
    let pool = Pool::new(16_384, 2048);
    pool.prefill();
    let port = AfPacketPort::open(&net.mg_if, pool)
        .with_context(|| format!("AF_PACKET on {}", net.mg_if))?;
    // The worker shares the interface's MAC: the namespace's ARP finds it there.
    let mac = port.mac();
    let worker = spawn_worker(port, worker_config(mac, mg_id)?, ring, &ctx.stop)?;

    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    let (gws_tx, gws_rx) = mpsc::channel::<Vec<GwLeg>>();
    let ns = net.ns.clone();
    let thread = std::thread::Builder::new()
        .name("lab-peers-netns".into())
        .spawn(move || -> PeersResult {
            let bound = enter(&ns).and_then(|()| Bound::bind(&ctx.plan));
            let bound = match bound {
                Ok(b) => {
                    let _ = ready_tx.send(Ok(()));
                    b
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    let _ = ready_tx.send(Err(e));
                    bail!(text);
                }
            };
            // No addresses: the lab ended before its sessions were set up.
            let Ok(gws) = gws_rx.recv() else {
                return Ok(new_rtt());
            };
            let mut peers = KernelPeers::connect(bound, &ctx, &gws)?;
            peers.run(&ctx);
            Ok(peers.rtt)
        })?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("the peers did not start in namespace {}", net.ns))??;
    let start_peers: StartPeers = Box::new(move |gws| {
        gws_tx
            .send(gws)
            .map_err(|_| anyhow!("the peers thread ended early"))?;
        Ok(thread)
    });
    Ok(Wire {
        describe: format!(
            "veth {} (AF_PACKET) ↔ netns {} (Linux TCP/UDP, rustls, dimpl)",
            net.mg_if, net.ns
        ),
        kind: "netns",
        worker,
        start_peers,
        _keep: Some(Box::new(net)),
    })
}

// ------------------------------------------------------------------------------------------
// The UEs' TLS: rustls, authenticating the MG by the fingerprint in its SDP.

/// Accepts exactly the certificate whose fingerprint the MG's Local SDP carried (RFC 8122
/// §5: self-signed certificates are authenticated by fingerprint, not by a CA); signatures are
/// verified as usual.
#[derive(Debug)]
struct FingerprintVerifier {
    fingerprint: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.fingerprint.matches_der(end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The UEs' client configuration: the UE identity as client certificate, the MG trusted
/// by fingerprint.
fn ue_tls_config(ue_id: &Identity, mg_fp: Fingerprint) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(FingerprintVerifier {
            fingerprint: mg_fp,
            provider,
        }))
        .with_client_auth_cert(ue_id.chain().to_vec(), ue_id.key().clone_key())?;
    Ok(Arc::new(config))
}

// ------------------------------------------------------------------------------------------
// The kernel peers.

/// The sockets opened before the Adds: the core side of every session.
struct Bound {
    listeners: Vec<Option<TcpListener>>,
    fax_cores: Vec<Option<UdpSocket>>,
}

impl Bound {
    fn bind(plan: &[Kind]) -> Result<Bound> {
        let mut b = Bound {
            listeners: Vec::new(),
            fax_cores: Vec::new(),
        };
        for (i, kind) in plan.iter().copied().enumerate() {
            let at = SocketAddr::from((CORE.0, core_port(kind, i)));
            match kind {
                Kind::Msrp | Kind::Bfcp => {
                    let l = TcpListener::bind(at).with_context(|| format!("core listener {at}"))?;
                    l.set_nonblocking(true)?;
                    b.listeners.push(Some(l));
                    b.fax_cores.push(None);
                }
                Kind::T38 => {
                    let u = UdpSocket::bind(at).with_context(|| format!("core fax socket {at}"))?;
                    u.set_nonblocking(true)?;
                    b.listeners.push(None);
                    b.fax_cores.push(Some(u));
                }
            }
        }
        Ok(b)
    }
}

/// One MSRP or BFCP session: the UE's TLS over a kernel TCP connection to the gateway's access
/// side, and the core's plain TCP connection the gateway opened.
struct KStream {
    ex: Exchange,
    listener: TcpListener,
    core: Option<TcpStream>,
    /// Answers the kernel has not taken yet.
    core_tx: Vec<u8>,
    ue: TcpStream,
    tls: ClientConnection,
    handshake_counted: bool,
    /// The UE or the core connection ended or failed: nothing more to drive.
    done: bool,
}

/// One T.38 session: the UE's DTLS over a UDP socket connected to the gateway, and the core's
/// fax endpoint.
struct KFax {
    ue: UdpSocket,
    core: UdpSocket,
    dtls: DtlsSession,
    app: FaxApp,
}

struct KernelPeers {
    streams: Vec<KStream>,
    faxes: Vec<KFax>,
    rtt: Histogram<u64>,
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

impl KernelPeers {
    /// Connects every UE to the gateway address the MGC learned for its session.
    fn connect(bound: Bound, ctx: &PeerCtx, gws: &[GwLeg]) -> Result<KernelPeers> {
        let tls = ue_tls_config(&ctx.ue_id, ctx.mg_fp)?;
        let dtls_ue = DtlsConfig::new(&ctx.ue_id, 1200, Duration::from_secs(10))?;
        let mut peers = KernelPeers {
            streams: Vec::new(),
            faxes: Vec::new(),
            rtt: new_rtt(),
        };
        let sessions = ctx.plan.iter().copied().zip(gws);
        let sockets = bound.listeners.into_iter().zip(bound.fax_cores);
        for (i, ((kind, leg), (listener, fax_core))) in sessions.zip(sockets).enumerate() {
            let gw = leg.addr;
            match (listener, fax_core) {
                (Some(listener), _) => {
                    let ue = TcpStream::connect_timeout(&gw, Duration::from_secs(5))
                        .with_context(|| format!("{kind:?} session {i}: UE connect to {gw}"))?;
                    ue.set_nodelay(true)?;
                    ue.set_nonblocking(true)?;
                    let mut conn =
                        ClientConnection::new(Arc::clone(&tls), ServerName::from(gw.ip()))?;
                    // The window bounds what is queued; a request is always taken whole.
                    conn.set_buffer_limit(None);
                    peers.streams.push(KStream {
                        ex: Exchange::new(kind, i, leg.msrp_path.as_deref()),
                        listener,
                        core: None,
                        core_tx: Vec::new(),
                        ue,
                        tls: conn,
                        handshake_counted: false,
                        done: false,
                    });
                }
                (None, Some(core)) => {
                    let ue = UdpSocket::bind(SocketAddr::from((UE.0, ue_fax_port(i))))
                        .with_context(|| format!("T.38 session {i}: UE socket"))?;
                    ue.connect(gw)?;
                    ue.set_nonblocking(true)?;
                    peers.faxes.push(KFax {
                        ue,
                        core,
                        dtls: DtlsSession::new(
                            &dtls_ue,
                            SecurityRole::Client,
                            PeerFingerprints::one(ctx.mg_fp),
                            &format!("lab{i}"),
                            monotonic_now(),
                        )?,
                        app: FaxApp::new(),
                    });
                }
                (None, None) => bail!("session {i} has no core socket"),
            }
        }
        Ok(peers)
    }

    /// Drives every session until the lab stops; sleeps in poll(2) when nothing moves.
    fn run(&mut self, ctx: &PeerCtx) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !ctx.stop.load(Ordering::Relaxed) {
            let now = monotonic_now();
            let traffic = ctx.traffic.load(Ordering::Relaxed);
            let mut busy = false;
            for s in &mut self.streams {
                busy |= s.step(now, traffic, ctx, &mut self.rtt);
            }
            for f in &mut self.faxes {
                busy |= f.step(now, traffic, ctx, &mut self.rtt);
            }
            if !busy {
                fds.clear();
                for s in self.streams.iter().filter(|s| !s.done) {
                    let out = if s.tls.wants_write() {
                        libc::POLLOUT
                    } else {
                        0
                    };
                    push_fd(&mut fds, s.ue.as_raw_fd(), libc::POLLIN | out);
                    match &s.core {
                        None => push_fd(&mut fds, s.listener.as_raw_fd(), libc::POLLIN),
                        Some(c) => {
                            let out = if s.core_tx.is_empty() {
                                0
                            } else {
                                libc::POLLOUT
                            };
                            push_fd(&mut fds, c.as_raw_fd(), libc::POLLIN | out);
                        }
                    }
                }
                for f in &self.faxes {
                    push_fd(&mut fds, f.ue.as_raw_fd(), libc::POLLIN);
                    push_fd(&mut fds, f.core.as_raw_fd(), libc::POLLIN);
                }
                // At most 1 ms: DTLS retransmission timers and the stop flag are checked then.
                // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfd entries
                // that outlives the call; poll(2) only writes their `revents`.
                unsafe {
                    libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1);
                }
            }
        }
    }
}

fn push_fd(fds: &mut Vec<libc::pollfd>, fd: RawFd, events: libc::c_short) {
    fds.push(libc::pollfd {
        fd,
        events,
        revents: 0,
    });
}

impl KStream {
    /// One round: accept the core, answer its requests, run the UE's TLS, keep the window
    /// full. True when anything moved.
    fn step(
        &mut self,
        now: Instant,
        traffic: bool,
        ctx: &PeerCtx,
        rtt: &mut Histogram<u64>,
    ) -> bool {
        if self.done {
            return false;
        }
        let live: &Live = &ctx.live;
        let mut busy = false;
        let mut buf = [0u8; 16 * 1024];
        // Core side: the gateway's connection, requests in, answers out.
        if self.core.is_none() {
            match self.listener.accept() {
                Ok((c, _)) => {
                    let _ = c.set_nodelay(true);
                    let _ = c.set_nonblocking(true);
                    self.core = Some(c);
                    busy = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => self.fail(traffic, live),
            }
        }
        if let Some(c) = self.core.as_mut() {
            loop {
                match c.read(&mut buf) {
                    Ok(0) => {
                        // The gateway closed the core leg (after Subtract).
                        self.end(traffic, live);
                        return true;
                    }
                    Ok(n) => {
                        busy = true;
                        for a in self.ex.core_received(&buf[..n], live) {
                            self.core_tx.extend_from_slice(&a);
                        }
                    }
                    Err(e) if would_block(&e) => break,
                    Err(_) => {
                        self.fail(traffic, live);
                        return true;
                    }
                }
            }
            while !self.core_tx.is_empty() {
                match c.write(&self.core_tx) {
                    Ok(n) => {
                        self.core_tx.drain(..n);
                        busy = true;
                    }
                    Err(e) if would_block(&e) => break,
                    Err(_) => {
                        self.fail(traffic, live);
                        return true;
                    }
                }
            }
        }
        // UE side: TLS records in, answers counted.
        loop {
            match self.tls.read_tls(&mut self.ue) {
                Ok(0) => {
                    self.end(traffic, live);
                    return true;
                }
                Ok(_) => {
                    busy = true;
                    if self.tls.process_new_packets().is_err() {
                        // A TLS alert or a certificate that is not the MG's.
                        live.errors.fetch_add(1, Ordering::Relaxed);
                        let _ = self.tls.write_tls(&mut self.ue);
                        self.done = true;
                        return true;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(_) => {
                    self.fail(traffic, live);
                    return true;
                }
            }
        }
        let mut got = Vec::new();
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        self.ex.ue_received(&got, now, rtt, live);
        let established = !self.tls.is_handshaking();
        if established && !self.handshake_counted {
            self.handshake_counted = true;
            live.handshakes.fetch_add(1, Ordering::Relaxed);
        }
        if traffic && established {
            while let Some(msg) = self.ex.next_request(ctx.window, &ctx.body) {
                if self.tls.writer().write_all(&msg).is_err() {
                    break;
                }
                self.ex.sent(now);
                busy = true;
            }
        }
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.ue) {
                Ok(_) => busy = true,
                Err(e) if would_block(&e) => break,
                Err(_) => {
                    self.fail(traffic, live);
                    return true;
                }
            }
        }
        busy
    }

    /// A connection failed: an error while traffic runs (afterwards the gateway tears down).
    fn fail(&mut self, traffic: bool, live: &Live) {
        if traffic {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.done = true;
    }

    /// A connection ended (FIN): expected after the Subtract, an error while traffic runs.
    fn end(&mut self, traffic: bool, live: &Live) {
        self.fail(traffic, live);
    }
}

impl KFax {
    fn step(
        &mut self,
        now: Instant,
        traffic: bool,
        ctx: &PeerCtx,
        rtt: &mut Histogram<u64>,
    ) -> bool {
        let live: &Live = &ctx.live;
        let mut busy = false;
        let mut buf = [0u8; 2048];
        loop {
            match self.ue.recv(&mut buf) {
                Ok(n) => {
                    busy = true;
                    let _ = self.dtls.handle_datagram(&buf[..n], now);
                }
                Err(e) if would_block(&e) => break,
                // ICMP port unreachable from the gateway's address: counted while it matters.
                Err(_) => {
                    if traffic {
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
            }
        }
        loop {
            match self.core.recv_from(&mut buf) {
                Ok((n, from)) => {
                    busy = true;
                    let answer = FaxApp::core_answer(&buf[..n], live);
                    let _ = self.core.send_to(&answer, from);
                }
                Err(e) if would_block(&e) => break,
                Err(_) => break,
            }
        }
        let ue = &self.ue;
        self.app.drive(&mut self.dtls, now, rtt, live, |d| {
            let _ = ue.send(d);
        });
        if traffic {
            let before = self.app.outstanding.len();
            self.app.send_page(&mut self.dtls, now, ctx.window, |d| {
                let _ = ue.send(d);
            });
            busy |= self.app.outstanding.len() != before;
        }
        busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgw_tls::HashFunction;

    // --- The UEs' TLS: the MG is whoever holds the certificate of the SDP fingerprint.

    #[test]
    fn fingerprint_verifier_accepts_only_the_sdp_fingerprint() {
        let mg = Identity::generate_self_signed("mg").expect("mg identity");
        let other = Identity::generate_self_signed("other").expect("other identity");
        let v = FingerprintVerifier {
            fingerprint: mg.fingerprint(HashFunction::Sha256),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        };
        let name = ServerName::from(std::net::IpAddr::from([10, 10, 0, 1]));
        let now = UnixTime::now();
        let ok = v.verify_server_cert(&mg.chain()[0], &[], &name, &[], now);
        assert!(ok.is_ok(), "{ok:?}");
        let bad = v.verify_server_cert(&other.chain()[0], &[], &name, &[], now);
        assert!(
            matches!(
                bad,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure
                ))
            ),
            "{bad:?}"
        );
        assert!(!v.supported_verify_schemes().is_empty());
    }

    #[test]
    fn ue_config_presents_the_ue_certificate() {
        let ue = Identity::generate_self_signed("ue").expect("ue identity");
        let mg = Identity::generate_self_signed("mg").expect("mg identity");
        let cfg = ue_tls_config(&ue, mg.fingerprint(HashFunction::Sha256)).expect("config");
        assert!(cfg.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn stale_names_are_ours_only() {
        assert_eq!(lab_pid("mgwlab4242"), Some(4242));
        // Other tests' and helpers' namespaces are never touched.
        for other in [
            "mgwp123",
            "mgwo18590",
            "mgwk18590",
            "mgwlab",
            "mgwlabx",
            "mgwlab+1",
        ] {
            assert_eq!(lab_pid(other), None, "{other}");
        }
    }
}
