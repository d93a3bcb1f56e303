//! `mgwd lab --netns` (issue 6): the lab with its peers on the Linux kernel's TCP/UDP stack in
//! a network namespace, the worker on a veth through AF_PACKET.
//!
//! Runs the built binary. Skips (printing why) when not root or when `ip` or `ethtool` is
//! missing, unless `MGW_REQUIRE_PEERS=1`, which turns a skip into a failure. Every run is
//! bounded (the child is killed on drop) and must leave no namespace or veth behind.

use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn require_peers() -> bool {
    std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces need root)".into());
    }
    ["ip", "ethtool"]
        .into_iter()
        .find(|t| !have(t))
        .map(|t| format!("`{t}` not installed"))
}

/// True when the test must skip (it printed why).
fn skip(test: &str) -> bool {
    match missing() {
        None => false,
        Some(why) if require_peers() => panic!("{test}: MGW_REQUIRE_PEERS=1 but {why}"),
        Some(why) => {
            eprintln!("{test}: SKIP: {why}");
            true
        }
    }
}

/// The `mgwd` child, killed on drop.
struct Mgwd(Child);

impl Drop for Mgwd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Mgwd {
    fn spawn(args: &[&str]) -> Mgwd {
        let child = Command::new(env!("CARGO_BIN_EXE_mgwd"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mgwd");
        Mgwd(child)
    }

    /// Waits up to `timeout` for the exit; (success, stdout, stderr).
    fn finish(mut self, timeout: Duration) -> (bool, String, String) {
        let until = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.0.try_wait().expect("wait mgwd") {
                break s;
            }
            assert!(
                Instant::now() < until,
                "mgwd did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.success(), out, err)
    }
}

fn namespaces() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn links() -> String {
    let out = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab's names for process `pid` (see `mgwd::lab` netns).
fn lab_names(pid: u32) -> (String, String) {
    (format!("mgwlab{pid}"), format!("mgl{pid}"))
}

fn assert_removed(pid: u32) {
    let (ns, veth) = lab_names(pid);
    let nss = namespaces();
    assert!(
        !nss.split_whitespace().any(|w| w == ns),
        "namespace {ns} left behind: {nss}"
    );
    let l = links();
    assert!(
        !l.contains(&format!(" {veth}:")) && !l.contains(&format!(" {veth}@")),
        "veth {veth} left behind: {l}"
    );
}

fn number(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{} is not a number in {v:#}", path.join(".")))
}

#[test]
fn lab_netns_relays_all_three_kinds_over_the_kernel_stack() {
    if skip("lab_netns_relays_all_three_kinds_over_the_kernel_stack") {
        return;
    }
    let mgwd = Mgwd::spawn(&[
        "lab",
        "--netns",
        "--seconds",
        "3",
        "--json",
        "--sessions",
        "msrp=2,bfcp=1,t38=1",
    ]);
    let pid = mgwd.0.id();
    let (ok, out, err) = mgwd.finish(Duration::from_secs(90));
    assert!(ok, "mgwd lab --netns failed:\n{err}\n{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["wire"], "netns", "{v:#}");
    for kind in ["msrp", "bfcp", "t38"] {
        for dir in ["ue_to_core", "core_to_ue"] {
            assert!(
                number(&v, &["messages", kind, dir]) > 0,
                "no {kind} {dir} traffic: {v:#}"
            );
        }
    }
    assert_eq!(number(&v, &["handshakes"]), 4, "{v:#}");
    assert_eq!(number(&v, &["gateway", "contexts_installed"]), 4, "{v:#}");
    assert!(number(&v, &["worker", "relayed_datagrams"]) > 0, "{v:#}");
    assert!(number(&v, &["worker", "tcp_segments_in"]) > 0, "{v:#}");
    let checks = v["checks"].as_object().expect("checks");
    assert!(!checks.is_empty());
    for (name, value) in checks {
        assert_eq!(value, &Value::Bool(true), "check {name} failed: {v:#}");
    }
    assert_removed(pid);
}

#[test]
fn lab_netns_ctrl_c_tears_down_and_removes_the_network() {
    if skip("lab_netns_ctrl_c_tears_down_and_removes_the_network") {
        return;
    }
    let mgwd = Mgwd::spawn(&[
        "lab",
        "--netns",
        "--seconds",
        "60",
        "--json",
        "--sessions",
        "msrp=1,t38=1",
    ]);
    let pid = mgwd.0.id();
    let (ns, _) = lab_names(pid);
    // Wait for the lab's namespace, then give the sessions a moment to carry traffic.
    let until = Instant::now() + Duration::from_secs(20);
    while !namespaces().split_whitespace().any(|w| w == ns) {
        assert!(Instant::now() < until, "namespace {ns} never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) }, 0);
    let (ok, out, err) = mgwd.finish(Duration::from_secs(30));
    assert!(ok, "mgwd exits 0 after Ctrl-C:\n{err}\n{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["interrupted"], true, "{v:#}");
    assert!(v["seconds"].as_f64().is_some_and(|s| s < 30.0), "{v:#}");
    assert_eq!(v["checks"]["all_subtracted"], true, "{v:#}");
    assert_eq!(v["checks"]["all_released"], true, "{v:#}");
    assert_removed(pid);
}

#[test]
fn lab_netns_refuses_without_root() {
    use std::os::unix::process::CommandExt;
    if skip("lab_netns_refuses_without_root") {
        return;
    }
    // Root drops to `nobody` for the child.
    let out = match Command::new(env!("CARGO_BIN_EXE_mgwd"))
        .args(["lab", "--netns", "--seconds", "1"])
        .uid(65_534)
        .gid(65_534)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        // A target directory `nobody` may not enter: nothing to learn here (not a peer).
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("lab_netns_refuses_without_root: SKIP: nobody cannot run the binary: {e}");
            return;
        }
        Err(e) => panic!("start mgwd as nobody: {e}"),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "mgwd lab --netns as nobody must fail"
    );
    assert!(
        err.contains("--netns needs root (network namespaces)"),
        "stderr: {err}"
    );
}
