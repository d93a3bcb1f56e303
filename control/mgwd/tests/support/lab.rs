//! The end-to-end lab: `mgwd run` on one end of a veth, real peers (openssl, python3 kernel
//! sockets) in a namespace on the other, this test process as the MGC.

use super::{make_cert, run, Added, Mgc, Net, Proc, TempDir};
use mgw_h248::h248::ast::{ServiceChangeMethod, StatisticsParameter};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The UE's address (access realm, in the namespace).
pub const UE: &str = "10.79.0.2";
/// The core peer's address (core realm, in the namespace).
pub const CORE: &str = "10.79.1.2";
const CORE_PEER_PY: &str = include_str!("core_peer.py");

/// How mgwd reaches the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
pub enum Backend {
    /// AF_PACKET on one veth carrying both realms, one worker.
    AfPacket,
    /// AF_PACKET on two veths, one per realm (access, core): one worker drives both as one
    /// port (`MultiPort`), each realm leaving through its own interface with its own MAC.
    AfPacketPerRealm,
    /// DPDK's `net_af_packet` virtual device on the veth (`--no-huge --no-pci --no-shconf`),
    /// `workers` poll-mode workers on as many queue pairs, contexts spread over them and packets
    /// redirected in software to the context's worker.
    Dpdk {
        /// Worker threads (and queue pairs).
        workers: usize,
    },
    /// As `Dpdk`, with one `net_af_packet` device per realm on two veths: each worker drives a
    /// queue pair of each.
    DpdkPerRealm {
        /// Worker threads (and queue pairs per device).
        workers: usize,
    },
    /// DPDK's `net_tap` device, one worker. The tap's kernel side is moved into the peers'
    /// namespace and carries their addresses. `net_tap` advertises TCP/UDP checksum offloads
    /// (it completes them in the driver), so mgwd sends pseudo-header sums only and trusts the
    /// driver's receive verdicts: the kernel peers accepting the traffic proves that path.
    DpdkTap,
}

impl Backend {
    /// Distinguishes interface and namespace names of labs running at once.
    fn tag(&self) -> &'static str {
        match self {
            Backend::AfPacket => "a",
            Backend::AfPacketPerRealm => "r",
            Backend::Dpdk { .. } => "d",
            Backend::DpdkPerRealm { .. } => "e",
            Backend::DpdkTap => "t",
        }
    }

    /// One port (veth) per realm.
    fn per_realm(&self) -> bool {
        matches!(
            self,
            Backend::AfPacketPerRealm | Backend::DpdkPerRealm { .. }
        )
    }

    /// The `[dataplane]` keys (and any section the backend needs, which must come after).
    fn dataplane(&self) -> String {
        match self {
            Backend::AfPacket | Backend::AfPacketPerRealm => "backend = \"afpacket\"\n".into(),
            Backend::Dpdk { workers } | Backend::DpdkPerRealm { workers } => {
                format!("backend = \"dpdk\"\nworkers = {workers}\nsteering = \"redirect\"\n")
            }
            Backend::DpdkTap => "backend = \"dpdk\"\n".into(),
        }
    }

    /// The realm key naming realm `i`'s device, on mgwd's interfaces `ifs`.
    fn device(&self, ifs: &[String], i: usize) -> String {
        let k = if self.per_realm() { i } else { 0 };
        match self {
            Backend::AfPacket | Backend::AfPacketPerRealm => format!("interface = \"{}\"", ifs[k]),
            Backend::Dpdk { .. } | Backend::DpdkPerRealm { .. } => {
                format!("vdev = \"net_af_packet{k}\"")
            }
            Backend::DpdkTap => "vdev = \"net_tap0\"".into(),
        }
    }

    /// The tap interface mgwd creates (`DpdkTap`).
    fn tap_name(&self) -> String {
        format!("mgtap{}", std::process::id())
    }

    /// Extra top-level sections.
    fn sections(&self, ifs: &[String]) -> String {
        match self {
            Backend::DpdkTap => format!(
                "[dpdk]\nno_huge = true\nmemory_mb = 256\nmbufs = 16383\nmbuf_cache = 128\neal_extra_args = [\"--no-pci\", \"--no-shconf\", \"--no-telemetry\"]\n\
                 vdevs = [\"net_tap0,iface={}\"]\n\n",
                self.tap_name()
            ),
            Backend::AfPacket | Backend::AfPacketPerRealm => String::new(),
            Backend::Dpdk { workers } | Backend::DpdkPerRealm { workers } => {
                let vdevs: Vec<String> = ifs
                    .iter()
                    .enumerate()
                    .map(|(k, ifname)| {
                        format!("\"net_af_packet{k},iface={ifname},qpairs={workers}\"")
                    })
                    .collect();
                format!(
                    "[dpdk]\nno_huge = true\nmemory_mb = 256\nmbufs = 16383\nmbuf_cache = 128\neal_extra_args = [\"--no-pci\", \"--no-shconf\", \"--no-telemetry\"]\n\
                     vdevs = [{}]\n\n",
                    vdevs.join(", ")
                )
            }
        }
    }
}

/// The whole lab; fields drop in order: mgwd first, the network, then the files.
pub struct Lab {
    /// mgwd's metrics endpoint (`[metrics] listen`).
    pub metrics: SocketAddr,
    pub mgwd: Proc,
    pub mgc: Mgc,
    pub net: Net,
    pub dir: TempDir,
    pub script: PathBuf,
    pub ue_crt: PathBuf,
    pub ue_key: PathBuf,
    pub ue_fp: String,
    /// The fingerprint of a certificate the UE does not have (case 2).
    pub other_fp: String,
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

impl Lab {
    pub fn up(backend: &Backend) -> Lab {
        let dir = TempDir::new(&format!("mgwd-e2e{}", backend.tag()));
        // One veth with both peers (/16 realms), or one veth per realm (/24 each).
        let (net, ifs, len) = if backend.per_realm() {
            let mut net =
                Net::new(backend.tag(), &[&format!("{UE}/24")]).expect("lab network (access)");
            let second = net
                .add_second(&[&format!("{CORE}/24")])
                .expect("lab network (core)");
            let ifs = vec![net.mg_if.clone(), second];
            (net, ifs, 24)
        } else if *backend == Backend::DpdkTap {
            // The namespace (its veth stays unused); the tap joins it once mgwd made it.
            let net = Net::new(backend.tag(), &[]).expect("lab network");
            (net, vec![backend.tap_name()], 16)
        } else {
            let net = Net::new(backend.tag(), &[&format!("{UE}/16"), &format!("{CORE}/16")])
                .expect("lab network");
            let ifs = vec![net.mg_if.clone()];
            (net, ifs, 16)
        };
        let (ue_crt, ue_key, ue_fp) = make_cert(&dir.0, "ue").expect("UE certificate");
        let (_, _, other_fp) = make_cert(&dir.0, "other").expect("second certificate");
        let script = dir.join("core_peer.py");
        std::fs::write(&script, CORE_PEER_PY).expect("write core_peer.py");
        let mut mgc = Mgc::bind();
        let ctl = free_udp_port();
        let metrics_port = free_tcp_port();
        let config = format!(
            r#"[general]
name = "mgwd-e2e"
log = "info"

[control]
mid = "[127.0.0.1]:{ctl}"
listen = "127.0.0.1:{ctl}"
mgc = ["{mgc}"]
max_avalanche_delay = 0
retransmit_initial = 200

[tls]
handshake_timeout = 3000

[metrics]
listen = "127.0.0.1:{metrics}"

[dataplane]
{dataplane}pcap = "{pcap}"

{sections}[[realm]]
name = "access"
{device0}
ipv4 = "10.79.0.1/{len}"

[[realm]]
name = "core"
{device1}
ipv4 = "10.79.1.1/{len}"
"#,
            mgc = mgc.addr(),
            metrics = metrics_port,
            pcap = dir.join("mgwd.pcap").display(),
            dataplane = backend.dataplane(),
            device0 = backend.device(&ifs, 0),
            device1 = backend.device(&ifs, 1),
            sections = backend.sections(&ifs),
        );
        let cfg_path = dir.join("mgwd.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mgwd"));
        cmd.arg("run").arg("--config").arg(&cfg_path);
        let mut mgwd = Proc::spawn("mgwd", cmd);
        if let Err(e) = mgc.accept_registration(Duration::from_secs(10)) {
            mgwd.kill();
            panic!("{e}\nmgwd stderr:\n{}", mgwd.stderr());
        }
        if *backend == Backend::DpdkTap {
            // mgwd registers after its port is up, so the tap exists now: hand its kernel side
            // to the peers' namespace with their addresses.
            let tap = backend.tap_name();
            let ns = net.ns.clone();
            let setup = [
                vec!["ip", "link", "set", tap.as_str(), "netns", ns.as_str()],
                vec![
                    "ip",
                    "-n",
                    ns.as_str(),
                    "addr",
                    "add",
                    "10.79.0.2/16",
                    "dev",
                    tap.as_str(),
                ],
                vec![
                    "ip",
                    "-n",
                    ns.as_str(),
                    "addr",
                    "add",
                    "10.79.1.2/16",
                    "dev",
                    tap.as_str(),
                ],
                vec!["ip", "-n", ns.as_str(), "link", "set", tap.as_str(), "up"],
            ];
            for cmd in setup {
                if let Err(e) = run(&cmd) {
                    mgwd.kill();
                    panic!("{e}\nmgwd output:\n{}", mgwd.stderr());
                }
            }
        }
        Lab {
            metrics: SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            mgwd,
            mgc,
            net,
            dir,
            script,
            ue_crt,
            ue_key,
            ue_fp,
            other_fp,
        }
    }

    /// mgwd's capture; with several workers (one file each) merged by time with `mergecap`.
    pub fn pcap(&self) -> PathBuf {
        let path = self.dir.join("mgwd.pcap");
        let parts: Vec<String> = (0..64)
            .map(|i| format!("{}.w{i}", path.display()))
            .take_while(|p| std::path::Path::new(p).exists())
            .collect();
        if !parts.is_empty() {
            let out = path.display().to_string();
            let mut args = vec!["timeout", "30", "mergecap", "-w", out.as_str()];
            args.extend(parts.iter().map(String::as_str));
            run(&args).expect("mergecap");
        }
        path
    }

    /// `GET /metrics` from mgwd's endpoint (Prometheus text), body only.
    pub fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2))
            .expect("connect to the metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: mgwd\r\n\r\n")
            .expect("send the request");
        let mut r = String::new();
        s.read_to_string(&mut r).expect("read the answer");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        r.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// mgwd's output so far (its log on stdout, then stderr).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.mgwd.stdout()).into_owned() + &self.mgwd.stderr()
    }

    /// The core peer (kernel TCP or UDP in the namespace), listening when this returns.
    pub fn core_peer(&self, kind: &str, port: u16, mode: &str) -> (Proc, PathBuf) {
        let out = self.dir.join(&format!("core-{port}.bin"));
        let mut cmd = self.net.exec("python3");
        cmd.arg(&self.script)
            .args([kind, CORE, &port.to_string()])
            .arg(&out);
        if kind == "tcp" {
            cmd.arg(mode);
        }
        let p = Proc::spawn(&format!("core peer {port}"), cmd);
        assert!(
            p.wait_stdout(Duration::from_secs(5), |o| o.starts_with(b"ready")),
            "core peer did not start: {}",
            p.stderr()
        );
        (p, out)
    }

    /// `openssl s_client` as the UE in the namespace (TLS, or DTLS 1.2 bound to `bind`).
    pub fn ue(&self, gw: SocketAddr, dtls_bind: Option<u16>) -> Proc {
        let mut cmd = self.net.exec("openssl");
        cmd.arg("s_client");
        if let Some(port) = dtls_bind {
            cmd.args(["-dtls1_2", "-bind", &format!("{UE}:{port}")]);
        }
        cmd.args(["-connect", &gw.to_string(), "-cert"])
            .arg(&self.ue_crt)
            .arg("-key")
            .arg(&self.ue_key)
            .args(["-quiet", "-nocommands"]);
        Proc::spawn("openssl s_client", cmd)
    }

    pub fn add(&mut self, body: &str) -> Added {
        match self.mgc.add(body) {
            Ok(a) => a,
            Err(e) => panic!("{e}\nmgwd stderr:\n{}", self.mgwd.stderr()),
        }
    }

    pub fn subtract(&mut self, ctx: u32) -> Vec<(String, Vec<StatisticsParameter>)> {
        let stats = self.mgc.subtract(ctx).expect("Subtract");
        assert_eq!(stats.len(), 2, "Subtract answers both terminations");
        for (term, st) in &stats {
            assert!(
                st.iter().any(|s| s.name == "nt/os") && st.iter().any(|s| s.name == "nt/or"),
                "Subtract reply for {term} has statistics: {st:?}"
            );
        }
        stats
    }

    /// SIGTERM: mgwd must tell the MGC (graceful ServiceChange) and exit 0.
    pub fn stop(&mut self) {
        run(&["kill", "-TERM", &self.mgwd.pid().to_string()]).expect("kill -TERM");
        let until = Instant::now() + Duration::from_secs(8);
        while self.mgwd.wait_exit(Duration::ZERO).is_none() && Instant::now() < until {
            self.mgc.serve_for(Duration::from_millis(50));
        }
        let status = self.mgwd.wait_exit(Duration::from_millis(100));
        assert!(
            status.is_some_and(|s| s.success()),
            "mgwd exits 0 after SIGTERM, got {status:?}; stderr:\n{}",
            self.mgwd.stderr()
        );
        assert!(
            self.mgc
                .requests
                .iter()
                .any(|r| r.service_changes.iter().any(|m| matches!(
                    m,
                    Some(ServiceChangeMethod::Graceful | ServiceChangeMethod::Forced)
                ))),
            "the MGC received a Graceful/Forced ServiceChange: {:#?}",
            self.mgc.requests
        );
    }

    /// Whether the MGC has received (answering meanwhile) a Notify of `event` on `term`.
    pub fn wait_notify(
        &mut self,
        term: &str,
        event: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        self.mgc
            .wait_request(timeout, |r| {
                r.notifies
                    .iter()
                    .any(|(t, ev)| t == term && ev.contains(event))
            })
            .map(|_| ())
    }
}
