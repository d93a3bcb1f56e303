//! Support for the end-to-end test of `mgwd run` with real peers: the veth + namespace lab,
//! child processes that die with the test, and a small MGC speaking H.248 text over loopback UDP
//! (its logic follows `mgwd::lab`'s embedded MGC).

pub mod bfcp;
pub mod lab;

use mgw_h248::h248::ast::{
    Command as H248Command, CommandReply, ContextId, MessageBody, ReplyResult, ServiceChangeMethod,
    StatisticsParameter, Transaction, TransactionReply,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs a command to completion; its stdout, or why it failed.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ------------------------------------------------------------------------------------------
// The lab network.

/// A veth pair: `mg_if` stays in the root namespace without an IP address (mgwd's AF_PACKET
/// port); its peer lives in namespace `ns` and carries the peers' addresses. Removed on drop.
pub struct Net {
    /// The peers' namespace.
    pub ns: String,
    /// mgwd's interface (root namespace).
    pub mg_if: String,
    /// The peers' interface (in `ns`).
    pub peer_if: String,
    /// A second veth (mgwd's end, the peers' end), if made.
    pub second: Option<(String, String)>,
}

impl Net {
    /// Creates the namespace and the veth; `peer_addrs` are `a.b.c.d/len` put on the peer end.
    ///
    /// # Errors
    /// Any `ip` command failing.
    pub fn new(tag: &str, peer_addrs: &[&str]) -> Result<Net, String> {
        let pid = std::process::id();
        let net = Net {
            ns: format!("mgwp{tag}{pid}"),
            mg_if: format!("mg{tag}{pid}"),
            peer_if: format!("mgp{tag}{pid}"),
            second: None,
        };
        // From here on Drop removes whatever exists.
        run(&["ip", "netns", "add", &net.ns])?;
        net.veth(&net.mg_if, &net.peer_if, peer_addrs)?;
        Ok(net)
    }

    /// Adds a second veth into the same namespace (a second NIC port of mgwd: one per realm);
    /// `peer_addrs` go on its peer end. Returns mgwd's interface name.
    ///
    /// # Errors
    /// Any `ip` command failing.
    pub fn add_second(&mut self, peer_addrs: &[&str]) -> Result<String, String> {
        let (mg, peer) = (format!("{}b", self.mg_if), format!("{}b", self.peer_if));
        self.second = Some((mg.clone(), peer.clone()));
        self.veth(&mg, &peer, peer_addrs)?;
        Ok(mg)
    }

    fn veth(&self, mg_if: &str, peer_if: &str, peer_addrs: &[&str]) -> Result<(), String> {
        run(&[
            "ip", "link", "add", mg_if, "type", "veth", "peer", "name", peer_if, "netns", &self.ns,
        ])?;
        // The root kernel must stay out of the lab: no IPv6 chatter, no forwarding of frames
        // addressed to mgwd's MAC (it shares the interface's MAC).
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", mg_if),
            "1",
        );
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{}/forwarding", mg_if), "0");
        let ethtool = have("ethtool");
        for (ns, ifname) in [(None, mg_if), (Some(&self.ns), peer_if)] {
            // Offloads off: full checksums, no TSO/GSO/GRO super-frames either side.
            if ethtool {
                let mut args = Vec::new();
                if let Some(ns) = ns {
                    args.extend(["ip", "netns", "exec", ns.as_str()]);
                }
                args.extend([
                    "ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                    "gro", "off",
                ]);
                run(&args)?;
            }
        }
        run(&["ip", "link", "set", mg_if, "up"])?;
        run(&["ip", "-n", &self.ns, "link", "set", "lo", "up"])?;
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", peer_if),
        ]);
        for a in peer_addrs {
            run(&["ip", "-n", &self.ns, "addr", "add", a, "dev", peer_if])?;
        }
        run(&["ip", "-n", &self.ns, "link", "set", peer_if, "up"])?;
        Ok(())
    }

    /// A command run inside the peers' namespace.
    pub fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.mg_if]);
        if let Some((mg, _)) = &self.second {
            let _ = run(&["ip", "link", "del", mg]);
        }
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

// ------------------------------------------------------------------------------------------
// Child processes.

/// A child process with captured output, killed on drop.
pub struct Proc {
    /// For messages.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
}

fn pump(mut r: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut v) = into.lock() {
                v.extend_from_slice(&buf[..n]);
            }
        }
    });
}

impl Proc {
    /// Spawns `cmd` with piped stdin, stdout and stderr.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        if let Some(o) = child.stdout.take() {
            pump(o, Arc::clone(&out));
        }
        if let Some(e) = child.stderr.take() {
            pump(e, Arc::clone(&err));
        }
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            out,
            err,
            status: None,
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.out.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Everything written to stderr so far, as text.
    pub fn stderr(&self) -> String {
        self.err
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }

    /// Waits until `pred(stdout)` holds; false on timeout.
    pub fn wait_stdout(&self, timeout: Duration, pred: impl Fn(&[u8]) -> bool) -> bool {
        wait_until(timeout, || pred(&self.stdout()))
    }

    /// Writes to stdin.
    ///
    /// # Panics
    /// If stdin is closed or the write fails.
    pub fn write(&mut self, b: &[u8]) {
        let name = self.name.clone();
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(b)
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{name}: write to stdin: {e}"));
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            if self.status.is_none() {
                self.status = self.child.try_wait().ok().flatten();
            }
            if self.status.is_some() || Instant::now() >= until {
                return self.status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills (SIGKILL) and reaps the process if it still runs.
    pub fn kill(&mut self) {
        self.stdin = None;
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory, removed on drop unless the test failed (then kept for diagnosis).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `/tmp/<prefix>-<pid>`.
    ///
    /// # Panics
    /// If it cannot be created.
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("e2e: kept {} for diagnosis", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A self-signed P-256 certificate and key made by openssl; returns the SDP fingerprint
/// (`SHA-256 AA:BB:…`, RFC 8122).
///
/// # Errors
/// openssl failing.
pub fn make_cert(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf, String), String> {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let (c, k) = (crt.to_string_lossy(), key.to_string_lossy());
    run(&[
        "timeout",
        "30",
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &k,
        "-out",
        &c,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
    ])?;
    let fp = run(&[
        "timeout",
        "30",
        "openssl",
        "x509",
        "-in",
        &c,
        "-fingerprint",
        "-sha256",
        "-noout",
    ])?;
    let hex = fp
        .trim()
        .split_once('=')
        .map(|(_, h)| h.to_string())
        .ok_or_else(|| format!("unexpected fingerprint output {fp:?}"))?;
    Ok((crt, key, format!("SHA-256 {hex}")))
}

// ------------------------------------------------------------------------------------------
// The MGC.

/// A request the MG sent (Notify, ServiceChange), as received.
#[derive(Debug, Clone)]
pub struct MgRequest {
    /// The message text.
    pub text: String,
    /// Notify: (termination, observed events rendered with Debug).
    pub notifies: Vec<(String, String)>,
    /// ServiceChange methods.
    pub service_changes: Vec<Option<ServiceChangeMethod>>,
}

/// What an Add created.
#[derive(Debug, Clone)]
pub struct Added {
    /// Context id.
    pub context: u32,
    /// The access termination's name.
    pub access: String,
    /// The core termination's name.
    pub core: String,
    /// Where the UE connects (access Local SDP).
    pub access_local: SocketAddr,
    /// The gateway's core-side address (core Local SDP).
    pub core_local: SocketAddr,
    /// The access termination's Local SDP as the MG answered it.
    pub access_sdp: String,
    /// The core termination's Local SDP.
    pub core_sdp: String,
}

/// The first `a=path` of an SDP (RFC 4975 §8.1), if any.
pub fn sdp_path(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=path:"))
        .map(|p| p.trim().to_string())
}

/// The test's MGC: answers every request of the MG and records it.
pub struct Mgc {
    sock: UdpSocket,
    /// The MG's control address, learned from its first message.
    pub mg: Option<SocketAddr>,
    mid: String,
    next_id: u32,
    /// Every request the MG sent, in order.
    pub requests: Vec<MgRequest>,
}

impl Mgc {
    /// Binds 127.0.0.1:0.
    ///
    /// # Panics
    /// If the socket cannot be had.
    pub fn bind() -> Mgc {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind MGC socket");
        let port = sock.local_addr().expect("local addr").port();
        Mgc {
            sock,
            mg: None,
            mid: format!("[127.0.0.1]:{port}"),
            next_id: 0,
            requests: Vec::new(),
        }
    }

    /// The MGC's address.
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local addr")
    }

    /// Receives one message until `until`, answering requests; returns the replies to ours.
    fn pump(&mut self, until: Instant) -> Result<Option<Vec<TransactionReply>>, String> {
        let mut buf = vec![0u8; 65_536];
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        self.sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let (n, from) = match self.sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Some(Vec::new()))
            }
            Err(e) => return Err(e.to_string()),
        };
        if self.mg.is_some_and(|m| m != from) {
            return Ok(Some(Vec::new()));
        }
        self.mg = Some(from);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let msg = mgw_h248::h248::parse_message(text.as_bytes())
            .map_err(|e| format!("MG sent bad H.248 ({e}): {text}"))?;
        let MessageBody::Transactions(ts) = msg.body else {
            return Err(format!("MG sent an error message: {text}"));
        };
        let mut replies = Vec::new();
        for t in ts {
            match t {
                Transaction::Reply(r) => replies.push(r),
                Transaction::Request(req) => {
                    let mut rec = MgRequest {
                        text: text.clone(),
                        notifies: Vec::new(),
                        service_changes: Vec::new(),
                    };
                    let mut actions = Vec::new();
                    for a in &req.actions {
                        let ctx = match a.context {
                            ContextId::Id(c) => c.to_string(),
                            ContextId::Null => "-".into(),
                            ContextId::All => "*".into(),
                            ContextId::Choose => "$".into(),
                        };
                        let mut cmds = Vec::new();
                        for c in &a.commands {
                            match &c.command {
                                H248Command::Notify(n) => {
                                    rec.notifies.push((
                                        n.termination.0.clone(),
                                        format!("{:?}", n.observed_events),
                                    ));
                                    cmds.push(format!("N={}", n.termination.0));
                                }
                                H248Command::ServiceChange(s) => {
                                    rec.service_changes.push(s.parms.method.clone());
                                    cmds.push(format!("SC={}", s.termination.0));
                                }
                                other => {
                                    return Err(format!("MG sent an unexpected {other:?}"));
                                }
                            }
                        }
                        actions.push(format!("C={ctx}{{{}}}", cmds.join(",")));
                    }
                    let reply = format!("!/3 {} P={}{{{}}}", self.mid, req.id, actions.join(","));
                    self.sock
                        .send_to(reply.as_bytes(), from)
                        .map_err(|e| e.to_string())?;
                    self.requests.push(rec);
                }
                _ => {}
            }
        }
        Ok(Some(replies))
    }

    /// Waits for the MG's ServiceChange (Restart) and accepts it.
    ///
    /// # Errors
    /// None within `timeout`.
    pub fn accept_registration(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_request(timeout, |r| !r.service_changes.is_empty())
            .map(|_| ())
    }

    /// Answers the MG until a recorded request satisfies `pred` (also one already recorded).
    ///
    /// # Errors
    /// None within `timeout`.
    pub fn wait_request(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&MgRequest) -> bool,
    ) -> Result<MgRequest, String> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(r) = self.requests.iter().find(|r| pred(r)) {
                return Ok(r.clone());
            }
            if self.pump(until)?.is_none() {
                let got: Vec<&str> = self.requests.iter().map(|r| r.text.as_str()).collect();
                return Err(format!(
                    "no such request from the MG within {timeout:?}; got {got:#?}"
                ));
            }
        }
    }

    /// Answers whatever the MG sends for `d`.
    pub fn serve_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Ok(Some(_)) = self.pump(until) {}
    }

    /// Sends a transaction and returns its reply, answering the MG's requests meanwhile.
    ///
    /// # Errors
    /// No reply within 10 s, or a transport error.
    pub fn transact(&mut self, body: &str) -> Result<TransactionReply, String> {
        let mg = self.mg.ok_or("the MG has not registered")?;
        self.next_id += 1;
        let id = self.next_id;
        let text = format!("!/3 {} T={id}{{{body}}}", self.mid);
        self.sock
            .send_to(text.as_bytes(), mg)
            .map_err(|e| e.to_string())?;
        let until = Instant::now() + Duration::from_secs(10);
        while let Some(replies) = self.pump(until)? {
            if let Some(r) = replies.into_iter().find(|r| r.id == id) {
                return Ok(r);
            }
        }
        Err(format!("no reply to transaction {id}: {body}"))
    }

    /// Adds a context with an access and a core termination.
    ///
    /// # Errors
    /// The MG refusing or answering without what is needed.
    pub fn add(&mut self, body: &str) -> Result<Added, String> {
        let reply = self.transact(body)?;
        let ReplyResult::Actions(actions) = reply.result else {
            return Err(format!("Add refused: {:?}", reply.result));
        };
        let a = actions.first().ok_or("empty Add reply")?;
        if let Some(e) = &a.error {
            return Err(format!("Add refused: {} {:?}", e.code, e.text));
        }
        let ContextId::Id(context) = a.context else {
            return Err("Add reply without a context id".into());
        };
        let mut terms = Vec::new();
        for r in &a.replies {
            let CommandReply::Add(x) = r else {
                return Err(format!("unexpected reply {r:?}"));
            };
            let local = x
                .audit
                .media
                .as_ref()
                .and_then(|m| m.streams.first())
                .and_then(|s| s.local.clone())
                .ok_or("Add reply without Local SDP")?;
            terms.push((x.termination.0.clone(), local_addr(&local)?, local));
        }
        let [(access, access_local, access_sdp), (core, core_local, core_sdp)] =
            <[_; 2]>::try_from(terms)
                .map_err(|t| format!("Add reply with {} terminations", t.len()))?;
        Ok(Added {
            context,
            access,
            core,
            access_local,
            core_local,
            access_sdp,
            core_sdp,
        })
    }

    /// Subtracts every termination of `ctx`; returns each Subtract reply's statistics.
    ///
    /// # Errors
    /// The MG refusing.
    pub fn subtract(
        &mut self,
        ctx: u32,
    ) -> Result<Vec<(String, Vec<StatisticsParameter>)>, String> {
        let reply = self.transact(&format!("C={ctx}{{S=*}}"))?;
        let ReplyResult::Actions(actions) = reply.result else {
            return Err(format!("Subtract refused: {:?}", reply.result));
        };
        let mut out = Vec::new();
        for a in &actions {
            if let Some(e) = &a.error {
                return Err(format!("Subtract refused: {} {:?}", e.code, e.text));
            }
            for r in &a.replies {
                if let CommandReply::Subtract(x) = r {
                    out.push((
                        x.termination.0.clone(),
                        x.audit.statistics.clone().unwrap_or_default(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// The address in an SDP's `c=` and `m=` lines.
///
/// # Errors
/// Either line missing or malformed.
pub fn local_addr(sdp: &str) -> Result<SocketAddr, String> {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .ok_or_else(|| format!("Local SDP without c=: {sdp}"))?;
    let port = sdp
        .lines()
        .find_map(|l| {
            l.strip_prefix("m=")
                .and_then(|m| m.split_whitespace().nth(1))
        })
        .ok_or_else(|| format!("Local SDP without m=: {sdp}"))?;
    let ip: std::net::IpAddr = ip.trim().parse().map_err(|e| format!("{ip}: {e}"))?;
    let port: u16 = port.parse().map_err(|e| format!("{port}: {e}"))?;
    Ok(SocketAddr::new(ip, port))
}
