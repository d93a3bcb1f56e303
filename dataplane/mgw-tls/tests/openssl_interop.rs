//! Interop with OpenSSL (`openssl s_client` / `s_server`) over kernel loopback sockets.
//!
//! These tests are about the TLS/DTLS layer alone: the kernel provides TCP/UDP on 127.0.0.1 and
//! our sans-IO sessions are driven over blocking sockets by the test. Both sides present
//! self-signed certificates; our side checks the OpenSSL certificate against its SHA-256
//! fingerprint, as it would against `a=fingerprint` from Remote SDP. OpenSSL requests and
//! receives our certificate (`-Verify 1` on s_server, `-cert/-key` on s_client).
//!
//! They skip (printing why) when `openssl` is missing, unless `MGW_REQUIRE_PEERS=1`, in which
//! case they fail. Every child has a timeout and is killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mgw_core::time::monotonic_now;
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{
    CipherSuite, DtlsConfig, DtlsEvent, DtlsSession, FailReason, Fingerprint, HashFunction,
    Identity, PeerAuth, PeerFingerprints, SecurityRole, ServerName, TlsContext, TlsEvent,
    TlsProfile, TlsSession, TlsSettings, TlsVersion,
};

const STEP: Duration = Duration::from_millis(20);
const DEADLINE: Duration = Duration::from_secs(8);

fn openssl_present() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("MGW_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("openssl is required (MGW_REQUIRE_PEERS=1) but not found");
        }
        eprintln!("SKIP: openssl binary not found");
    }
    ok
}

/// A child process killed (and reaped) on drop; its stdout+stderr collected by a thread.
struct Peer {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Peer {
        let mut child = Command::new("timeout")
            .arg("20")
            .arg("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn openssl");
        let out = Arc::new(Mutex::new(String::new()));
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut r = r;
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Peer { child, out }
    }

    fn write_stdin(&mut self, s: &str) {
        if let Some(i) = self.child.stdin.as_mut() {
            let _ = i.write_all(s.as_bytes());
            let _ = i.flush();
        }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_output(&self, needle: &str, t: Duration) -> bool {
        let end = std::time::Instant::now() + t;
        while std::time::Instant::now() < end {
            if self.output().contains(needle) {
                return true;
            }
            std::thread::sleep(STEP);
        }
        false
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Files {
    dir: PathBuf,
    peer: Identity,
}

impl Files {
    fn new(tag: &str) -> Files {
        let dir =
            std::env::temp_dir().join(format!("mgw-tls-interop-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let peer = Identity::generate_self_signed("openssl.peer").unwrap();
        let (c, k) = peer.to_pem();
        std::fs::write(dir.join("peer.crt"), c).unwrap();
        std::fs::write(dir.join("peer.key"), k).unwrap();
        Files { dir, peer }
    }
    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
    fn peer_fp(&self) -> PeerFingerprints {
        PeerFingerprints::one(self.peer.fingerprint(HashFunction::Sha256))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn our_identity() -> Identity {
    Identity::generate_self_signed("mgw.local").unwrap()
}

fn ctx_for(profile: TlsProfile) -> TlsContext {
    TlsContext::new(
        TlsSettings {
            profile,
            ..TlsSettings::default()
        },
        our_identity(),
    )
    .unwrap()
}

/// Outcome of driving one of our TLS sessions over a socket.
#[derive(Default, Debug)]
struct Run {
    events: Vec<TlsEvent>,
    plain: Vec<u8>,
}

/// Drives `s` over `stream`: sends `send` once established, stops when `expect` was received,
/// on failure, or at the deadline. `on_established` runs once (e.g. to feed the peer's stdin).
fn drive(
    s: &mut TlsSession,
    stream: &mut TcpStream,
    send: &[u8],
    expect: &[u8],
    mut on_established: impl FnMut(),
) -> Run {
    stream.set_read_timeout(Some(STEP)).unwrap();
    let mut run = Run::default();
    let mut rx = vec![0u8; 1 << 17];
    let mut rx_len = 0;
    let mut tx = vec![0u8; 1 << 17];
    let mut sent = false;
    let end = std::time::Instant::now() + DEADLINE;
    // The client's first flight.
    let n = s.poll_transmit(&mut tx);
    stream.write_all(&tx[..n]).unwrap();
    while std::time::Instant::now() < end {
        match stream.read(&mut rx[rx_len..]) {
            Ok(0) => break,
            Ok(n) => rx_len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        let mut plain = Vec::new();
        let r = s.on_ciphertext(&mut rx[..rx_len], monotonic_now(), &mut tx, &mut |p| {
            plain.extend_from_slice(p)
        });
        run.plain.extend_from_slice(&plain);
        match r {
            Ok(p) => {
                rx.copy_within(p.consumed..rx_len, 0);
                rx_len -= p.consumed;
                let _ = stream.write_all(&tx[..p.written]);
            }
            Err(_) => {
                let n = s.poll_transmit(&mut tx);
                let _ = stream.write_all(&tx[..n]);
            }
        }
        loop {
            let n = s.poll_transmit(&mut tx);
            if n == 0 {
                break;
            }
            let _ = stream.write_all(&tx[..n]);
        }
        while let Some(e) = s.poll_event() {
            if matches!(e, TlsEvent::Established { .. }) {
                on_established();
            }
            run.events.push(e);
        }
        if s.is_established() && !sent {
            let n = s.seal(send, &mut tx).unwrap();
            stream.write_all(&tx[..n]).unwrap();
            sent = true;
        }
        if s.is_done() || (!expect.is_empty() && contains(&run.plain, expect)) {
            break;
        }
    }
    if s.is_established() {
        let n = s.close(&mut tx).unwrap();
        let _ = stream.write_all(&tx[..n]);
    }
    run
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

fn established(events: &[TlsEvent]) -> Option<(TlsVersion, CipherSuite, Fingerprint)> {
    events.iter().find_map(|e| match *e {
        TlsEvent::Established {
            version,
            suite,
            peer_fingerprint,
            ..
        } => Some((version, suite, peer_fingerprint)),
        _ => None,
    })
}

/// The OpenSSL name of a suite (TLS 1.3 names are IANA; TLS 1.2 use OpenSSL's spelling).
fn openssl_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
    }
}

/// The ECDSA suites (our and the peer's certificates are ECDSA P-256).
fn ecdsa_suites() -> impl Iterator<Item = CipherSuite> {
    CipherSuite::ALL
        .into_iter()
        .filter(|s| !s.iana_name().contains("_RSA_"))
}

fn version_flag(s: CipherSuite) -> (&'static str, &'static str) {
    match s.version() {
        TlsVersion::Tls13 => ("-tls1_3", "-ciphersuites"),
        TlsVersion::Tls12 => ("-tls1_2", "-cipher"),
    }
}

fn connect_retry(port: u16) -> TcpStream {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < end => {
                let _ = e;
                std::thread::sleep(STEP);
            }
            Err(e) => panic!("connect to openssl s_server: {e}"),
        }
    }
}

/// Our client against `openssl s_server`, every ECDSA suite of the profile, TLS 1.2 and 1.3.
#[test]
fn our_client_against_openssl_s_server_each_suite() {
    if !openssl_present() {
        return;
    }
    let f = Files::new("cli");
    for suite in ecdsa_suites() {
        let (vflag, cflag) = version_flag(suite);
        let port = free_port();
        let accept = format!("127.0.0.1:{port}");
        let mut peer = Peer::spawn(&[
            "s_server",
            "-accept",
            &accept,
            "-naccept",
            "1",
            "-cert",
            &f.path("peer.crt"),
            "-key",
            &f.path("peer.key"),
            "-Verify",
            "1",
            "-verify_quiet",
            vflag,
            cflag,
            openssl_name(suite),
        ]);
        let profile = TlsProfile {
            versions: vec![suite.version()],
            suites: vec![suite],
            ..TlsProfile::default()
        };
        let ctx = ctx_for(profile);
        let mut stream = connect_retry(port);
        let mut s = TlsSession::client(
            &ctx,
            &PeerAuth::fingerprints(f.peer_fp()),
            ServerName::try_from("openssl.peer").unwrap(),
            monotonic_now(),
        )
        .unwrap();
        let run = drive(
            &mut s,
            &mut stream,
            b"ping-from-mgw\n",
            b"pong-from-openssl",
            || peer.write_stdin("pong-from-openssl\n"),
        );
        let est = established(&run.events);
        assert_eq!(
            est.map(|e| (e.0, e.1)),
            Some((suite.version(), suite)),
            "{suite:?}: {:?}\n{}",
            run.events,
            peer.output()
        );
        assert_eq!(est.unwrap().2, f.peer.fingerprint(HashFunction::Sha256));
        assert!(contains(&run.plain, b"pong-from-openssl"), "{suite:?}");
        assert!(
            peer.wait_output("ping-from-mgw", Duration::from_secs(3)),
            "{suite:?}: {}",
            peer.output()
        );
    }
}

/// `openssl s_client` against our server, every ECDSA suite, TLS 1.2 and 1.3; s_client
/// presents its certificate and we check its fingerprint.
#[test]
fn openssl_s_client_against_our_server_each_suite() {
    if !openssl_present() {
        return;
    }
    let f = Files::new("srv");
    for suite in ecdsa_suites() {
        let (vflag, cflag) = version_flag(suite);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connect = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let mut peer = Peer::spawn(&[
            "s_client",
            "-connect",
            &connect,
            "-cert",
            &f.path("peer.crt"),
            "-key",
            &f.path("peer.key"),
            vflag,
            cflag,
            openssl_name(suite),
            "-quiet",
        ]);
        let (mut stream, _) = listener.accept().unwrap();
        let profile = TlsProfile {
            versions: vec![suite.version()],
            suites: vec![suite],
            ..TlsProfile::default()
        };
        let ctx = ctx_for(profile);
        let mut s = TlsSession::server(&ctx, &PeerAuth::fingerprints(f.peer_fp()), monotonic_now())
            .unwrap();
        let run = drive(
            &mut s,
            &mut stream,
            b"hello-from-mgw\n",
            b"hello-from-openssl",
            || peer.write_stdin("hello-from-openssl\n"),
        );
        let est = established(&run.events);
        assert_eq!(
            est.map(|e| (e.0, e.1)),
            Some((suite.version(), suite)),
            "{suite:?}: {:?}\n{}",
            run.events,
            peer.output()
        );
        assert!(
            contains(&run.plain, b"hello-from-openssl"),
            "{suite:?}: {}",
            peer.output()
        );
        assert!(
            peer.wait_output("hello-from-mgw", Duration::from_secs(3)),
            "{suite:?}: {}",
            peer.output()
        );
    }
}

/// A wrong fingerprint for the s_server certificate: our client aborts with a fatal
/// bad_certificate alert (OpenSSL reports alert 42), a Failed event, and no plaintext.
#[test]
fn fingerprint_mismatch_against_openssl_fails_cleanly() {
    if !openssl_present() {
        return;
    }
    let f = Files::new("mis");
    for v in ["-tls1_3", "-tls1_2"] {
        let port = free_port();
        let accept = format!("127.0.0.1:{port}");
        let mut peer = Peer::spawn(&[
            "s_server",
            "-accept",
            &accept,
            "-naccept",
            "1",
            "-cert",
            &f.path("peer.crt"),
            "-key",
            &f.path("peer.key"),
            "-Verify",
            "1",
            "-verify_quiet",
            v,
        ]);
        peer.write_stdin("must-not-arrive\n");
        let ctx = ctx_for(TlsProfile::default());
        let wrong = PeerFingerprints::one(Fingerprint::of_der(
            HashFunction::Sha256,
            b"some other certificate",
        ));
        let mut stream = connect_retry(port);
        let mut s = TlsSession::client(
            &ctx,
            &PeerAuth::fingerprints(wrong),
            ServerName::try_from("openssl.peer").unwrap(),
            monotonic_now(),
        )
        .unwrap();
        let run = drive(&mut s, &mut stream, b"x", b"", || {});
        assert!(
            run.events.contains(&TlsEvent::Failed {
                reason: FailReason::FingerprintMismatch
            }),
            "{v}: {:?}",
            run.events
        );
        assert!(run.plain.is_empty());
        assert!(
            peer.wait_output("bad certificate", Duration::from_secs(3)),
            "{v}: OpenSSL did not report our alert:\n{}",
            peer.output()
        );
    }
}

// ----- DTLS 1.2 -----

fn dtls_drive(
    s: &mut DtlsSession,
    sock: &UdpSocket,
    send: &[u8],
    expect: &[u8],
    mut on_established: impl FnMut(),
) -> (Vec<DtlsEvent>, Vec<u8>) {
    sock.set_read_timeout(Some(STEP)).unwrap();
    let mut events = Vec::new();
    let mut plain = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut rbuf = vec![0u8; 2048];
    let mut sent = false;
    let end = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < end {
        loop {
            match s.poll(&mut buf) {
                DtlsOutput::Transmit(d) => {
                    let _ = sock.send(d);
                }
                DtlsOutput::Data(d) => plain.extend_from_slice(d),
                DtlsOutput::Event(e) => {
                    if matches!(e, DtlsEvent::Established { .. }) {
                        on_established();
                    }
                    events.push(e);
                }
                DtlsOutput::BufferTooSmall { needed } => buf.resize(needed, 0),
                DtlsOutput::Wait(_) => break,
            }
        }
        if s.is_established() && !sent {
            s.send(send).unwrap();
            sent = true;
            continue;
        }
        if s.is_done() || (!expect.is_empty() && contains(&plain, expect)) {
            break;
        }
        match sock.recv(&mut rbuf) {
            Ok(n) => {
                let _ = s.handle_datagram(&rbuf[..n], monotonic_now());
            }
            Err(_) => {
                let _ = s.handle_timeout(monotonic_now());
            }
        }
    }
    (events, plain)
}

fn dtls_established(events: &[DtlsEvent]) -> Option<Fingerprint> {
    events.iter().find_map(|e| match *e {
        DtlsEvent::Established { peer_fingerprint } => Some(peer_fingerprint),
        _ => None,
    })
}

/// Our DTLS client (dimpl) against `openssl s_server -dtls1_2`, mutual certificates.
#[test]
fn dtls_our_client_against_openssl_s_server() {
    if !openssl_present() {
        return;
    }
    let f = Files::new("dcli");
    let port = free_udp_port();
    let accept = format!("127.0.0.1:{port}");
    let mut peer = Peer::spawn(&[
        "s_server",
        "-dtls1_2",
        "-accept",
        &accept,
        "-naccept",
        "1",
        "-cert",
        &f.path("peer.crt"),
        "-key",
        &f.path("peer.key"),
        "-Verify",
        "1",
        "-verify_quiet",
    ]);
    assert!(
        peer.wait_output("ACCEPT", Duration::from_secs(5)),
        "{}",
        peer.output()
    );
    let cfg = DtlsConfig::new(&our_identity(), 1200, Duration::from_secs(8)).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    let mut s = DtlsSession::new(
        &cfg,
        SecurityRole::Client,
        f.peer_fp(),
        "tls-id-1",
        monotonic_now(),
    )
    .unwrap();
    let (events, plain) = dtls_drive(&mut s, &sock, b"dtls-ping-from-mgw\n", b"dtls-pong", || {
        peer.write_stdin("dtls-pong\n")
    });
    assert_eq!(
        dtls_established(&events),
        Some(f.peer.fingerprint(HashFunction::Sha256)),
        "{events:?}\n{}",
        peer.output()
    );
    assert!(contains(&plain, b"dtls-pong"), "{}", peer.output());
    assert!(
        peer.wait_output("dtls-ping-from-mgw", Duration::from_secs(3)),
        "{}",
        peer.output()
    );
}

/// `openssl s_client -dtls1_2` against our DTLS server (dimpl).
#[test]
fn dtls_openssl_s_client_against_our_server() {
    if !openssl_present() {
        return;
    }
    let f = Files::new("dsrv");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let connect = format!("127.0.0.1:{}", sock.local_addr().unwrap().port());
    let mut peer = Peer::spawn(&[
        "s_client",
        "-dtls1_2",
        "-connect",
        &connect,
        "-cert",
        &f.path("peer.crt"),
        "-key",
        &f.path("peer.key"),
        "-quiet",
    ]);
    // Learn the client's address from its first datagram.
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = vec![0u8; 2048];
    let (n, from) = sock
        .recv_from(&mut first)
        .expect("ClientHello from s_client");
    sock.connect(from).unwrap();
    let cfg = DtlsConfig::new(&our_identity(), 1200, Duration::from_secs(8)).unwrap();
    let mut s = DtlsSession::new(
        &cfg,
        SecurityRole::Server,
        f.peer_fp(),
        "tls-id-1",
        monotonic_now(),
    )
    .unwrap();
    s.handle_datagram(&first[..n], monotonic_now()).unwrap();
    let (events, plain) = dtls_drive(
        &mut s,
        &sock,
        b"dtls-hello-from-mgw\n",
        b"dtls-hello-from-openssl",
        || peer.write_stdin("dtls-hello-from-openssl\n"),
    );
    assert_eq!(
        dtls_established(&events),
        Some(f.peer.fingerprint(HashFunction::Sha256)),
        "{events:?}\n{}",
        peer.output()
    );
    assert!(
        contains(&plain, b"dtls-hello-from-openssl"),
        "{}",
        peer.output()
    );
    assert!(
        peer.wait_output("dtls-hello-from-mgw", Duration::from_secs(3)),
        "{}",
        peer.output()
    );
}

/// DTLS fingerprint mismatch against s_server: Failed event, our epoch-0 bad_certificate alert
/// reaches OpenSSL, no plaintext.
#[test]
fn dtls_fingerprint_mismatch_against_openssl() {
    if !openssl_present() {
        return;
    }
    let f = Files::new("dmis");
    let port = free_udp_port();
    let accept = format!("127.0.0.1:{port}");
    let peer = Peer::spawn(&[
        "s_server",
        "-dtls1_2",
        "-accept",
        &accept,
        "-naccept",
        "1",
        "-cert",
        &f.path("peer.crt"),
        "-key",
        &f.path("peer.key"),
        "-Verify",
        "1",
        "-verify_quiet",
    ]);
    assert!(peer.wait_output("ACCEPT", Duration::from_secs(5)));
    let cfg = DtlsConfig::new(&our_identity(), 1200, Duration::from_secs(8)).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    let wrong = PeerFingerprints::one(Fingerprint::of_der(HashFunction::Sha256, b"nope"));
    let mut s = DtlsSession::new(
        &cfg,
        SecurityRole::Client,
        wrong,
        "tls-id-1",
        monotonic_now(),
    )
    .unwrap();
    let (events, plain) = dtls_drive(&mut s, &sock, b"x", b"", || {});
    assert!(
        events.contains(&DtlsEvent::Failed {
            reason: FailReason::FingerprintMismatch
        }),
        "{events:?}"
    );
    assert!(plain.is_empty());
    assert!(
        peer.wait_output("bad certificate", Duration::from_secs(3)),
        "OpenSSL did not report our alert:\n{}",
        peer.output()
    );
}

/// The ECDHE-RSA suites (TLS 1.2): RSA certificates made by `openssl req` for both sides, our
/// identity loaded from those PEM files; our client against s_server and s_client against our
/// server, with the peer checked by fingerprint.
#[test]
fn rsa_suites_with_openssl_made_certificates_both_roles() {
    if !openssl_present() {
        return;
    }
    let f = Files::new("rsa");
    for who in ["ours", "peer"] {
        let st = Command::new("timeout")
            .args([
                "20", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj",
            ])
            .arg(format!("/CN={who}"))
            .args([
                "-keyout",
                &f.path(&format!("{who}.key")),
                "-out",
                &f.path(&format!("{who}.crt")),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl req failed");
    }
    let ours = Identity::from_pem_files(&f.dir.join("ours.crt"), &f.dir.join("ours.key")).unwrap();
    let peer_id =
        Identity::from_pem_files(&f.dir.join("peer.crt"), &f.dir.join("peer.key")).unwrap();
    let peer_fp = PeerFingerprints::one(peer_id.fingerprint(HashFunction::Sha384));
    let rsa_suites = CipherSuite::ALL
        .into_iter()
        .filter(|s| s.iana_name().contains("_RSA_"));
    for suite in rsa_suites {
        let profile = TlsProfile {
            versions: vec![TlsVersion::Tls12],
            suites: vec![suite],
            ..TlsProfile::default()
        };
        let ctx = TlsContext::new(
            TlsSettings {
                profile,
                ..TlsSettings::default()
            },
            ours.clone(),
        )
        .unwrap();

        // Our client, OpenSSL server.
        let port = free_port();
        let accept = format!("127.0.0.1:{port}");
        let mut peer = Peer::spawn(&[
            "s_server",
            "-accept",
            &accept,
            "-naccept",
            "1",
            "-cert",
            &f.path("peer.crt"),
            "-key",
            &f.path("peer.key"),
            "-Verify",
            "1",
            "-verify_quiet",
            "-tls1_2",
            "-cipher",
            openssl_name(suite),
        ]);
        let mut stream = connect_retry(port);
        let mut s = TlsSession::client(
            &ctx,
            &PeerAuth::fingerprints(peer_fp),
            ServerName::try_from("peer").unwrap(),
            monotonic_now(),
        )
        .unwrap();
        let run = drive(&mut s, &mut stream, b"rsa-ping\n", b"rsa-pong", || {
            peer.write_stdin("rsa-pong\n")
        });
        let est = established(&run.events);
        assert_eq!(
            est.map(|e| e.1),
            Some(suite),
            "{suite:?}: {:?}\n{}",
            run.events,
            peer.output()
        );
        assert_eq!(est.unwrap().2, peer_id.fingerprint(HashFunction::Sha384));
        assert!(
            peer.wait_output("rsa-ping", Duration::from_secs(3)),
            "{}",
            peer.output()
        );
        drop(peer);

        // OpenSSL client, our server.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connect = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let mut peer = Peer::spawn(&[
            "s_client",
            "-connect",
            &connect,
            "-cert",
            &f.path("peer.crt"),
            "-key",
            &f.path("peer.key"),
            "-tls1_2",
            "-cipher",
            openssl_name(suite),
            "-quiet",
        ]);
        let (mut stream, _) = listener.accept().unwrap();
        let mut s =
            TlsSession::server(&ctx, &PeerAuth::fingerprints(peer_fp), monotonic_now()).unwrap();
        let run = drive(
            &mut s,
            &mut stream,
            b"rsa-hello-mgw\n",
            b"rsa-hello-openssl",
            || peer.write_stdin("rsa-hello-openssl\n"),
        );
        assert_eq!(
            established(&run.events).map(|e| e.1),
            Some(suite),
            "{suite:?}: {:?}\n{}",
            run.events,
            peer.output()
        );
        assert!(contains(&run.plain, b"rsa-hello-openssl"));
        assert!(
            peer.wait_output("rsa-hello-mgw", Duration::from_secs(3)),
            "{}",
            peer.output()
        );
    }
}
