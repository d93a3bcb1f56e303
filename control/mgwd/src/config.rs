//! `mgwd run`'s TOML configuration (see `deploy/mgwd.example.toml`).
//!
//! Parsing is strict: an unknown key, a wrong type or a value out of range fails at start with
//! the file, the line and the field named. Every key accepted is applied; a key this build cannot
//! act on yet (`realm.vlan`, `realm.ipv6`, a `dataplane.burst` other than the built-in one, ...)
//! is refused at start naming it, never accepted and ignored.

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[general]`.
    #[serde(default)]
    pub general: General,
    /// `[control]`: the H.248 association.
    pub control: Control,
    /// `[tls]`: the media identity.
    #[serde(default)]
    pub tls: Tls,
    /// `[dataplane]`.
    pub dataplane: Dataplane,
    /// `[dpdk]` (backend `dpdk`).
    #[serde(default)]
    pub dpdk: Option<Dpdk>,
    /// `[[realm]]`: one per interface.
    #[serde(rename = "realm")]
    pub realms: Vec<Realm>,
    /// `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

/// `[general]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// Name in logs.
    pub name: String,
    /// tracing filter.
    pub log: String,
}

impl Default for General {
    fn default() -> Self {
        General {
            name: "mgwd".into(),
            log: "info".into(),
        }
    }
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Our MID, `[ip]:port`.
    pub mid: String,
    /// Local address of the H.248 socket.
    pub listen: SocketAddr,
    /// `udp` or `tcp`.
    #[serde(default = "udp")]
    pub transport: String,
    /// Highest version offered.
    #[serde(default = "three")]
    pub version: u8,
    /// MGCs in priority order.
    pub mgc: Vec<SocketAddr>,
    /// Initial request retransmission timer, ms.
    #[serde(default = "ms500")]
    pub retransmit_initial: u64,
    /// Retransmission timer cap, ms.
    #[serde(default = "ms4000")]
    pub retransmit_max: u64,
    /// Keep retransmitting a request (with backoff) for this long before reporting it failed
    /// (and failing over to the next MGC), ms; over TCP, the wait for its reply.
    #[serde(default = "ms30000")]
    pub transaction_timeout: u64,
    /// Send Pending after this long, ms.
    #[serde(default = "ms100")]
    pub pending_after: u64,
    /// Inactivity timer, ms (0 = off).
    #[serde(default)]
    pub inactivity_timeout: u64,
    /// Upper bound of the restart-avalanche delay, ms.
    #[serde(default = "ms3000")]
    pub max_avalanche_delay: u64,
}

fn udp() -> String {
    "udp".into()
}
fn three() -> u8 {
    3
}
fn ms100() -> u64 {
    100
}
fn ms500() -> u64 {
    500
}
fn ms3000() -> u64 {
    3000
}
fn ms4000() -> u64 {
    4000
}
fn ms30000() -> u64 {
    30_000
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Certificate chain (PEM); empty: a self-signed P-256 certificate is generated at start.
    pub certificate: Option<String>,
    /// Private key (PEM).
    pub private_key: Option<String>,
    /// Hash of the advertised fingerprint (`sha-256`, `sha-384`, `sha-512`).
    pub fingerprint_hash: Option<String>,
    /// Lowest TLS version (`1.2` or `1.3`).
    pub min_version: Option<String>,
    /// Handshake timeout, ms.
    pub handshake_timeout: Option<u64>,
}

/// `[dataplane]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataplane {
    /// `afpacket` (this build), `dpdk`, `afxdp`, `mem`.
    pub backend: String,
    /// Worker threads.
    #[serde(default = "one")]
    pub workers: usize,
    /// Cores to pin workers to.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Core of the control thread.
    #[serde(default)]
    pub control_core: Option<usize>,
    /// `auto`, `rte_flow`, `redirect`.
    #[serde(default)]
    pub steering: Option<String>,
    /// Burst size.
    #[serde(default)]
    pub burst: Option<usize>,
    /// How idle workers wait: `adaptive` (default: spin, yield, then nap) or `busy`.
    #[serde(default)]
    pub poll: Option<String>,
    /// Write every frame of the data-plane port to this pcap file (debugging).
    #[serde(default)]
    pub pcap: Option<String>,
}

fn one() -> usize {
    1
}

/// `[dpdk]`: EAL and mbuf pools (backend `dpdk`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dpdk {
    /// hugetlbfs mount (EAL `--huge-dir`).
    pub huge_dir: Option<String>,
    /// Run without hugepages (EAL `--no-huge`: test machines, CI).
    pub no_huge: bool,
    /// Memory to take at start, MiB (EAL `-m`).
    pub memory_mb: u32,
    /// mbufs in the pool.
    pub mbufs: u32,
    /// Per-lcore mbuf cache.
    pub mbuf_cache: u32,
    /// RX descriptors per queue.
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    pub tx_descriptors: u16,
    /// Virtual devices to create (EAL `--vdev`), e.g. `net_af_packet0,iface=eth1,qpairs=2`.
    pub vdevs: Vec<String>,
    /// EAL file prefix (several DPDK processes on one host).
    pub file_prefix: Option<String>,
    /// Appended to the EAL arguments mgwd builds.
    pub eal_extra_args: Vec<String>,
}

impl Default for Dpdk {
    fn default() -> Self {
        Dpdk {
            huge_dir: None,
            no_huge: false,
            memory_mb: 1024,
            mbufs: 65_535,
            mbuf_cache: 256,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            vdevs: Vec::new(),
            file_prefix: None,
            eal_extra_args: Vec::new(),
        }
    }
}

/// `[[realm]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Realm {
    /// Name the MGC uses in `ipdc/realm`.
    pub name: String,
    /// Linux interface (backend `afpacket`).
    #[serde(default)]
    pub interface: Option<String>,
    /// PCI address of the NIC port (backend `dpdk`).
    #[serde(default)]
    pub pci: Option<String>,
    /// Name of a DPDK virtual device from `dpdk.vdevs` (backend `dpdk`), e.g. `net_af_packet0`.
    #[serde(default)]
    pub vdev: Option<String>,
    /// Our IPv4 address and prefix, `a.b.c.d/len`.
    pub ipv4: String,
    /// Next hop for destinations off the subnet.
    #[serde(default)]
    pub gateway_v4: Option<Ipv4Addr>,
    /// Our IPv6 address: refused at start (this build's edge has no IPv6 yet).
    #[serde(default)]
    pub ipv6: Option<String>,
    /// IPv6 next hop: refused at start, as `ipv6`.
    #[serde(default)]
    pub gateway_v6: Option<String>,
    /// VLAN id; only 0 (untagged) is accepted until 802.1Q is supported.
    #[serde(default)]
    pub vlan: u16,
    /// IP MTU of the realm's link in bytes, 576..=9000 (default 1500); the largest sizes buffers.
    #[serde(default = "mtu")]
    pub mtu: usize,
    /// Media port range.
    #[serde(default = "port_min")]
    pub port_min: u16,
    /// Media port range.
    #[serde(default = "port_max")]
    pub port_max: u16,
}

fn mtu() -> usize {
    1500
}
fn port_min() -> u16 {
    20_000
}
fn port_max() -> u16 {
    59_999
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most contexts at once, in the MG model and in each worker's table (default 10 000).
    pub max_contexts: usize,
    /// Most terminations in the MG; an Add beyond it is refused with 510 (default 20 000).
    pub max_terminations: usize,
    /// TCP connections per worker.
    pub max_connections_per_worker: u32,
    /// Active open timeout, ms.
    pub tcp_connect_timeout: u64,
    /// Idle release, s (0 = never).
    pub idle_timeout_s: u64,
    /// SYNs per second per realm: refused at start (no per-realm SYN limiter yet).
    pub syn_rate_per_realm: Option<u64>,
    /// Largest MSRP message.
    pub max_msrp_message: usize,
    /// Largest UDPTL datagram.
    pub max_udptl_datagram: usize,
    /// Plaintext a stream leg may hold for the other leg when that one cannot take it yet,
    /// bytes per leg; beyond it the leg stops reading and TCP flow control pushes back.
    pub relay_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_contexts: 10_000,
            max_terminations: 20_000,
            max_connections_per_worker: 20_000,
            tcp_connect_timeout: 5000,
            idle_timeout_s: 0,
            syn_rate_per_realm: None,
            max_msrp_message: 65_536,
            max_udptl_datagram: 1500,
            relay_buffer: 32 * 1024,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Prometheus endpoint.
    pub listen: String,
}

/// `a.b.c.d/len`.
pub fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let len: u8 = l.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((a.parse().ok()?, len))
}

/// The DPDK device the realms are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpdkDevice {
    /// A NIC port by PCI address (EAL `-a`).
    Pci(String),
    /// A virtual device from `dpdk.vdevs`, by name (`net_af_packet0`).
    Vdev(String),
}

impl DpdkDevice {
    /// The ethdev name DPDK knows the port by.
    pub fn name(&self) -> &str {
        match self {
            DpdkDevice::Pci(n) | DpdkDevice::Vdev(n) => n,
        }
    }
}

/// The DPDK device realm `i` names (`pci` or `vdev`). Realms may share a device or each have
/// their own (one NIC port per realm); every worker drives one queue pair of each.
///
/// # Errors
/// The realm names no device or both kinds, or its `vdev` is not declared in `dpdk.vdevs`.
pub fn dpdk_device_of(cfg: &Config, i: usize) -> Result<DpdkDevice> {
    let r = &cfg.realms[i];
    let dev = match (&r.pci, &r.vdev) {
        (Some(p), None) => DpdkDevice::Pci(p.clone()),
        (None, Some(v)) => DpdkDevice::Vdev(v.clone()),
        (None, None) => bail!(
            "realm[{i}] ({}): backend dpdk needs `pci` or `vdev`",
            r.name
        ),
        (Some(_), Some(_)) => bail!("realm[{i}] ({}): give `pci` or `vdev`, not both", r.name),
    };
    if let DpdkDevice::Vdev(v) = &dev {
        let declared = cfg.dpdk.as_ref().is_some_and(|d| {
            d.vdevs
                .iter()
                .any(|s| s.split(',').next() == Some(v.as_str()))
        });
        if !declared {
            bail!("realm[{i}] ({}).vdev: `{v}` is not in dpdk.vdevs", r.name);
        }
    }
    Ok(dev)
}

impl Config {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML for this schema (the error names line and
    /// key), or a value is out of range (the error names the field).
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("bad configuration in {}", path.display()))
    }

    /// Parses and validates a configuration text.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        match self.control.transport.as_str() {
            "udp" | "tcp" => {}
            t => bail!("control.transport: `{t}` is neither `udp` nor `tcp`"),
        }
        if !(1..=3).contains(&self.control.version) {
            bail!(
                "control.version: {} is not an H.248 version (1-3)",
                self.control.version
            );
        }
        if self.control.transaction_timeout < self.control.retransmit_initial {
            bail!(
                "control.transaction_timeout: {} ms is shorter than control.retransmit_initial ({} ms)",
                self.control.transaction_timeout,
                self.control.retransmit_initial
            );
        }
        if self.control.mgc.is_empty() {
            bail!("control.mgc: at least one MGC address is needed");
        }
        if !self.control.mid.starts_with('[') && !self.control.mid.starts_with('<') {
            bail!(
                "control.mid: `{}` is neither `[ip]:port` nor `<domain>`",
                self.control.mid
            );
        }
        match self.dataplane.backend.as_str() {
            "afpacket" | "dpdk" | "afxdp" | "mem" => {}
            b => bail!("dataplane.backend: unknown backend `{b}` (dpdk, afxdp, afpacket, mem)"),
        }
        if self.dataplane.workers == 0 {
            bail!("dataplane.workers: must be at least 1");
        }
        if !self.dataplane.cores.is_empty() && self.dataplane.cores.len() != self.dataplane.workers
        {
            bail!(
                "dataplane.cores: {} cores for {} workers (give one per worker, or none)",
                self.dataplane.cores.len(),
                self.dataplane.workers
            );
        }
        match self.dataplane.steering.as_deref() {
            None | Some("auto" | "redirect") => {}
            Some("rte_flow") => bail!(
                "dataplane.steering: `rte_flow` is not implemented by this build; use `redirect` or `auto`"
            ),
            Some(s) => bail!("dataplane.steering: `{s}` is not auto, rte_flow or redirect"),
        }
        if let Some(p) = &self.dataplane.poll {
            if let Err(e) = crate::poll::PollPolicy::from_name(p) {
                bail!("dataplane.poll: {e}");
            }
        }
        if self.realms.is_empty() {
            bail!("realm: at least one [[realm]] is needed");
        }
        for (i, r) in self.realms.iter().enumerate() {
            if parse_prefix(&r.ipv4).is_none() {
                bail!(
                    "realm[{i}] ({}).ipv4: `{}` is not `a.b.c.d/len`",
                    r.name,
                    r.ipv4
                );
            }
            if r.port_min == 0 || r.port_min > r.port_max {
                bail!(
                    "realm[{i}] ({}).port_min/port_max: {}..{} is not a port range",
                    r.name,
                    r.port_min,
                    r.port_max
                );
            }
            if !(576..=9000).contains(&r.mtu) {
                bail!("realm[{i}] ({}).mtu: {} outside 576..=9000", r.name, r.mtu);
            }
            if self.realms[..i].iter().any(|o| o.name == r.name) {
                bail!("realm[{i}].name: `{}` is used twice", r.name);
            }
            // Refused rather than ignored: an accepted key must change behaviour.
            if r.vlan != 0 {
                bail!(
                    "realm[{i}] ({}).vlan: realm.vlan is not supported yet (802.1Q tagging, issue 19); remove it or set 0",
                    r.name
                );
            }
            if r.ipv6.is_some() {
                bail!(
                    "realm[{i}] ({}).ipv6: IPv6 is not supported by this build's edge yet; remove it",
                    r.name
                );
            }
            if r.gateway_v6.is_some() {
                bail!(
                    "realm[{i}] ({}).gateway_v6: IPv6 is not supported by this build's edge yet; remove it",
                    r.name
                );
            }
        }
        if let Some(b) = self.dataplane.burst {
            if b != mgw_core::port::BURST {
                bail!(
                    "dataplane.burst: {b} is not supported (the burst is {}, fixed at build)",
                    mgw_core::port::BURST
                );
            }
        }
        if self.limits.syn_rate_per_realm.is_some() {
            bail!("limits.syn_rate_per_realm: a per-realm SYN rate limit is not supported yet; remove it (SYN floods meet the syn_backlog and SYN cookies)");
        }
        if self.limits.tcp_connect_timeout == 0 {
            bail!("limits.tcp_connect_timeout: must be at least 1 ms");
        }
        if self.limits.idle_timeout_s != 0 {
            bail!("limits.idle_timeout_s: idle release is not supported yet; remove it or set 0");
        }
        if self.dataplane.backend != "dpdk" && self.dpdk.is_some() {
            bail!(
                "[dpdk]: only used with dataplane.backend = \"dpdk\" (backend is `{}`); remove the section",
                self.dataplane.backend
            );
        }
        match self.tls.min_version.as_deref() {
            None | Some("1.2" | "1.3") => {}
            Some(v) => bail!("tls.min_version: `{v}` is neither `1.2` nor `1.3`"),
        }
        if !(4096..=16 << 20).contains(&self.limits.relay_buffer) {
            bail!(
                "limits.relay_buffer: {} outside 4096..=16777216 bytes",
                self.limits.relay_buffer
            );
        }
        if let Some(h) = &self.tls.fingerprint_hash {
            if mgw_tls::HashFunction::from_name(h).is_err() {
                bail!("tls.fingerprint_hash: `{h}` is not sha-256, sha-384 or sha-512");
            }
        }
        if self.dataplane.backend == "dpdk" {
            for i in 0..self.realms.len() {
                dpdk_device_of(self, i)?;
            }
        }
        if self.tls.certificate.is_some() != self.tls.private_key.is_some() {
            bail!("tls.certificate and tls.private_key: give both or neither");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../deploy/mgwd.example.toml");
        let cfg = Config::parse(text).expect("deploy/mgwd.example.toml is valid");
        assert_eq!(cfg.realms.len(), 2);
        assert_eq!(cfg.control.mgc.len(), 2);
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let base = include_str!("../../../deploy/mgwd.example.toml");
        let e = Config::parse(&base.replace("transport = \"udp\"", "transport = \"sctp\""))
            .unwrap_err();
        assert!(e.to_string().contains("control.transport"), "{e}");
        let e =
            Config::parse(&base.replace("ipv4 = \"203.0.113.10/24\"", "ipv4 = \"203.0.113.10\""))
                .unwrap_err();
        assert!(e.to_string().contains("realm[0] (access).ipv4"), "{e}");
        let e =
            Config::parse(&base.replace("[general]", "[general]\ncolour = \"blue\"")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("colour") && msg.contains("line"), "{msg}");
        let e = Config::parse(&base.replace("version = 3", "version = \"three\"")).unwrap_err();
        assert!(format!("{e:#}").contains("version"), "{e:#}");
    }

    #[test]
    fn dpdk_settings_are_checked() {
        let base = include_str!("../../../deploy/mgwd.example.toml");
        let e = Config::parse(&base.replace("cores = [2, 3, 4, 5]", "cores = [2, 3]")).unwrap_err();
        assert!(e.to_string().contains("dataplane.cores"), "{e}");
        let e = Config::parse(&base.replace("steering = \"auto\"", "steering = \"rte_flow\""))
            .unwrap_err();
        assert!(e.to_string().contains("rte_flow"), "{e}");
        let e = Config::parse(&base.replace("poll = \"busy\"", "poll = \"lazy\"")).unwrap_err();
        assert!(e.to_string().contains("dataplane.poll"), "{e}");
        let e = Config::parse(&base.replacen(
            "pci = \"0000:3b:00.0\"",
            "pci = \"0000:3b:00.0\"\nvdev = \"net_null0\"",
            1,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        // One port per realm, as in the example.
        let cfg = Config::parse(base).unwrap();
        assert_eq!(
            dpdk_device_of(&cfg, 1).unwrap(),
            DpdkDevice::Pci("0000:3b:00.1".into())
        );
        let vdev = base
            .replace("pci = \"0000:3b:00.0\"", "vdev = \"net_af_packet0\"")
            .replace("vdevs = []", "vdevs = [\"net_af_packet1,iface=eth1\"]");
        let e = Config::parse(&vdev).unwrap_err();
        assert!(format!("{e:#}").contains("not in dpdk.vdevs"), "{e:#}");
    }

    /// A key this build cannot act on is refused at start, naming it (never accepted and
    /// silently ignored).
    #[test]
    fn keys_this_build_cannot_apply_are_refused() {
        let base = include_str!("../../../deploy/mgwd.example.toml");
        let refused = |text: String, want: &str| {
            let e = Config::parse(&text).expect_err(want);
            let msg = format!("{e:#}");
            assert!(msg.contains(want), "{msg}");
        };
        let realm = "gateway_v4 = \"203.0.113.1\"";
        refused(
            base.replacen(realm, &format!("{realm}\nvlan = 100"), 1),
            "realm[0] (access).vlan",
        );
        refused(
            base.replacen(realm, &format!("{realm}\nipv6 = \"2001:db8:a::10/64\""), 1),
            "realm[0] (access).ipv6",
        );
        refused(
            base.replacen(
                realm,
                &format!("{realm}\ngateway_v6 = \"2001:db8:a::1\""),
                1,
            ),
            "realm[0] (access).gateway_v6",
        );
        refused(base.replace("burst = 32", "burst = 64"), "dataplane.burst");
        refused(
            base.replace(
                "relay_buffer = 32768",
                "relay_buffer = 32768\nsyn_rate_per_realm = 50000",
            ),
            "limits.syn_rate_per_realm",
        );
        refused(
            base.replace("idle_timeout_s = 0", "idle_timeout_s = 30"),
            "limits.idle_timeout_s",
        );
        refused(
            base.replace("backend = \"dpdk\"", "backend = \"afpacket\""),
            "[dpdk]",
        );
        refused(
            base.replace("min_version = \"1.2\"", "min_version = \"1.1\""),
            "tls.min_version",
        );
        // The values this build does apply still parse.
        let cfg = Config::parse(&base.replacen(realm, &format!("{realm}\nvlan = 0"), 1)).unwrap();
        assert_eq!(cfg.realms[0].vlan, 0);
    }
}
