//! A two-namespace lab joined by a veth pair, removed on drop (also when a test panics), and a
//! guard that moves the calling thread into a namespace and back.
#![allow(unsafe_code)]

use std::process::{Command, Stdio};

/// Runs a command to completion; Err carries its stderr.
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

/// Why the lab cannot run here.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["ip", "tc", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} not installed"));
        }
    }
    None
}

/// Namespace `ours` holds interface `ours_if` (no IP address: the kernel there must not answer
/// for our stack); namespace `kernel` holds `kernel_if` with the kernel peer's address.
pub struct Lab {
    pub ours: String,
    pub kernel: String,
    pub ours_if: String,
    pub kernel_if: String,
    pub ours_mac: [u8; 6],
    pub kernel_mac: [u8; 6],
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut m = [0u8; 6];
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?}"));
    }
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|e| format!("bad MAC {s:?}: {e}"))?;
    }
    Ok(m)
}

impl Lab {
    /// Creates the namespaces and the veth; `ours_ip`/`kernel_ip` are dotted quads in a /24.
    pub fn new(ours_ip: &str, kernel_ip: &str) -> Result<Lab, String> {
        let pid = std::process::id();
        let lab = Lab {
            ours: format!("mgwo{pid}"),
            kernel: format!("mgwk{pid}"),
            ours_if: format!("vo{pid}"),
            kernel_if: format!("vk{pid}"),
            ours_mac: [0; 6],
            kernel_mac: [0; 6],
        };
        // From here on, Drop cleans up whatever was created.
        let mut lab = lab;
        run(&["ip", "netns", "add", &lab.ours])?;
        run(&["ip", "netns", "add", &lab.kernel])?;
        run(&[
            "ip",
            "link",
            "add",
            &lab.ours_if,
            "netns",
            &lab.ours,
            "type",
            "veth",
            "peer",
            "name",
            &lab.kernel_if,
            "netns",
            &lab.kernel,
        ])?;
        for (ns, ifname) in [(&lab.ours, &lab.ours_if), (&lab.kernel, &lab.kernel_if)] {
            // Offloads off: full checksums, no TSO/GSO/GRO super-frames on either side.
            if Command::new("sh")
                .args(["-c", "command -v ethtool"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                run(&[
                    "ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off", "rx", "off",
                    "tso", "off", "gso", "off", "gro", "off",
                ])?;
            }
            run(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        run(&[
            "ip",
            "-n",
            &lab.kernel,
            "addr",
            "add",
            &format!("{kernel_ip}/24"),
            "dev",
            &lab.kernel_if,
        ])?;
        lab.ours_mac = parse_mac(&run(&[
            "ip",
            "netns",
            "exec",
            &lab.ours,
            "cat",
            &format!("/sys/class/net/{}/address", lab.ours_if),
        ])?)?;
        lab.kernel_mac = parse_mac(&run(&[
            "ip",
            "netns",
            "exec",
            &lab.kernel,
            "cat",
            &format!("/sys/class/net/{}/address", lab.kernel_if),
        ])?)?;
        let mac = lab
            .ours_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        // A static neighbour entry: no ARP needed towards our stack.
        run(&[
            "ip",
            "-n",
            &lab.kernel,
            "neigh",
            "replace",
            ours_ip,
            "lladdr",
            &mac,
            "dev",
            &lab.kernel_if,
            "nud",
            "permanent",
        ])?;
        Ok(lab)
    }

    /// Applies (or with `None`, removes) a netem qdisc on both veth ends.
    pub fn netem(&self, spec: Option<&str>) -> Result<(), String> {
        for (ns, ifname) in [(&self.ours, &self.ours_if), (&self.kernel, &self.kernel_if)] {
            let _ = run(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", ifname, "root",
            ]);
            if let Some(spec) = spec {
                let mut args = vec![
                    "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", ifname, "root", "netem",
                ];
                args.extend(spec.split_whitespace());
                run(&args)?;
            }
        }
        Ok(())
    }
}

impl Lab {
    /// Packets the root qdisc of our interface has sent (`tc -s qdisc show`), or `None` when
    /// the interface has none (veth default: noqueue).
    pub fn ours_qdisc_sent_packets(&self) -> Result<Option<u64>, String> {
        let out = run(&[
            "ip",
            "netns",
            "exec",
            &self.ours,
            "tc",
            "-s",
            "qdisc",
            "show",
            "dev",
            &self.ours_if,
        ])?;
        // "qdisc pfifo 8001: root refcnt 2 limit 1000p\n Sent 1234 bytes 56 pkt (dropped ...".
        let Some(sent) = out.split(" Sent ").nth(1) else {
            return Ok(None);
        };
        let mut words = sent.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some(_), Some("bytes"), Some(n), Some("pkt")) => n
                .parse()
                .map(Some)
                .map_err(|e| format!("tc output {out:?}: {e}")),
            _ => Err(format!("unexpected tc output {out:?}")),
        }
    }

    /// Runs `tc <args>` in our namespace.
    pub fn tc_ours(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = vec!["ip", "netns", "exec", &self.ours, "tc"];
        cmd.extend_from_slice(args);
        run(&cmd).map(|_| ())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it (and so the pair).
        let _ = run(&["ip", "netns", "del", &self.ours]);
        let _ = run(&["ip", "netns", "del", &self.kernel]);
    }
}

/// Moves the calling thread into a named namespace until dropped.
pub struct InNetns {
    original: libc::c_int,
}

impl InNetns {
    pub fn enter(name: &str) -> Result<InNetns, String> {
        let open = |p: &str| -> Result<libc::c_int, String> {
            let c = std::ffi::CString::new(p).map_err(|e| e.to_string())?;
            // SAFETY: `c` is a valid NUL-terminated path.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                Err(format!("open {p}: {}", std::io::Error::last_os_error()))
            } else {
                Ok(fd)
            }
        };
        let original = open("/proc/thread-self/ns/net")?;
        let target = open(&format!("/var/run/netns/{name}"))?;
        // SAFETY: `target` is an open namespace fd; setns only affects this thread.
        let rc = unsafe { libc::setns(target, libc::CLONE_NEWNET) };
        // SAFETY: we own `target` and close it once.
        unsafe { libc::close(target) };
        if rc != 0 {
            // SAFETY: we own `original` and close it once.
            unsafe { libc::close(original) };
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(InNetns { original })
    }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        // SAFETY: `original` is the namespace fd we saved; we restore and close it once.
        unsafe {
            libc::setns(self.original, libc::CLONE_NEWNET);
            libc::close(self.original);
        }
    }
}
