//! `mgwd run --config FILE`: the gateway daemon.
//!
//! `dataplane.workers` poll-mode worker threads, each on its own queue pair of the port (DPDK:
//! an ethdev's RX/TX queues with symmetric RSS; AF_PACKET: one socket per worker in a fanout
//! group), optionally pinned to `dataplane.cores`; the control thread on the main thread
//! registers with the MGC, serves H.248, programs the workers and reports their events. Contexts
//! are spread over the workers by the control thread; a frame the NIC hashed to a worker not
//! owning its leg is handed to the owner over the workers' redirect rings
//! ([`mgw_worker::steer`]). SIGTERM or SIGINT starts a graceful ServiceChange; the process exits
//! when the MGC has been told, or after 10 s.

use crate::config::{parse_prefix, Config};
use crate::gateway::{Awareness, Gateway};
use crate::metrics::{render, Metrics, Published, WorkerCounters, PUBLISH_EVERY};
use crate::poll::PollPolicy;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr, Route};
use mgw_core::port::Port;
use mgw_core::time::{monotonic_now, Clock};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_h248::h248::association::AssociationConfig;
use mgw_h248::h248::ast::Mid;
use mgw_h248::h248::mg::MgConfig;
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::procedures::Realms;
use mgw_h248::server::{Server, ServerConfig, ServerEvent, TransportKind};
use mgw_ports::afpacket::AfPacketPort;
use mgw_ports::multi::MultiPort;
use mgw_ports::pcap::PcapPort;
use mgw_tls::{DtlsConfig, HashFunction, Identity, TlsContext, TlsSettings};
use mgw_worker::{
    channel, ControlEnd, Doorbell, Steering, Worker, WorkerConfig, WorkerEnd, WorkerStats,
};
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use tracing::{error, info, warn};

/// Options of `mgwd run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The configuration file (see deploy/mgwd.example.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Only check the configuration and exit.
    #[arg(long)]
    pub check: bool,
}

fn parse_mid(s: &str) -> Result<Mid> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if h.ends_with(']') || h.ends_with('>') => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| anyhow!("control.mid: bad port in `{s}`"))?,
            ),
        ),
        _ => (s, None),
    };
    if let Some(ip) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return Ok(Mid::Ip {
            addr: ip
                .parse()
                .map_err(|_| anyhow!("control.mid: `{ip}` is not an IP address"))?,
            port,
        });
    }
    if let Some(name) = host.strip_prefix('<').and_then(|h| h.strip_suffix('>')) {
        return Ok(Mid::Domain {
            name: name.to_string(),
            port,
        });
    }
    bail!("control.mid: `{s}` is neither `[ip]:port` nor `<domain>:port`")
}

/// Bytes from the kernel's CSPRNG.
pub(crate) fn urandom<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b)
}

fn random_u64() -> u64 {
    // The restart-avalanche delay and first transaction id only need to differ between MGs.
    urandom::<8>().map_or_else(
        |_| monotonic_now().as_nanos() ^ u64::from(std::process::id()),
        u64::from_le_bytes,
    )
}

/// Pins the calling thread to `core`.
fn pin_to_core(core: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if core >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        bail!("dataplane.cores: core {core} is out of range");
    }
    // SAFETY: `core` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        bail!(
            "dataplane.cores: cannot pin a worker to core {core}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The longest the control thread blocks between looks at the metrics endpoint and the
/// SIGTERM/SIGINT flag. H.248 input and worker events wake it at once; this is not their path.
const CONTROL_HOUSEKEEPING: Duration = Duration::from_millis(5);

/// What every worker thread is started with, besides its port.
struct Launch {
    /// Run first on each worker thread (DPDK: register it as an lcore for the mempool cache).
    thread_init: fn() -> Result<Box<dyn std::any::Any>, String>,
    stop: Arc<AtomicBool>,
    policy: PollPolicy,
    pcap: Option<String>,
    workers: usize,
    /// Rung by the workers to wake the control thread (see `mgw_worker::Doorbell`).
    doorbell: Arc<Doorbell>,
}

/// A running worker thread and the control thread's end of its rings.
struct Running {
    ctl: ControlEnd,
    thread: std::thread::JoinHandle<Result<WorkerStats, String>>,
    /// The worker's counters, refreshed by the worker every `PUBLISH_EVERY` polls.
    published: Arc<Published>,
}

impl Launch {
    /// `dataplane.pcap` for worker `index`: the name itself with one worker, else `name.w<index>`
    /// (`mergecap` joins them).
    fn pcap_path(&self, index: usize) -> Option<String> {
        let p = self.pcap.as_ref()?;
        Some(if self.workers == 1 {
            p.clone()
        } else {
            format!("{p}.w{index}")
        })
    }

    /// Starts worker `index` on its queue of each realm port: the queue itself when there is
    /// one port, else all of them as one `MultiPort` routed by `by_source`.
    fn spawn_on<P>(
        &self,
        index: usize,
        mut ports: Vec<P>,
        by_source: &BySource,
        cfg: WorkerConfig,
        steering: &Option<Arc<Steering<P::Buffer>>>,
        core: Option<usize>,
    ) -> Result<Running>
    where
        P: Port + Send + 'static,
        P::Buffer: Send,
    {
        if ports.len() == 1 {
            let port = ports.remove(0);
            self.spawn(index, port, cfg, steering.clone(), core)
        } else {
            let port = MultiPort::new(ports, by_source.clone());
            self.spawn(index, port, cfg, steering.clone(), core)
        }
    }

    /// Starts worker `index` on `port`.
    fn spawn<P>(
        &self,
        index: usize,
        port: P,
        cfg: WorkerConfig,
        steering: Option<Arc<Steering<P::Buffer>>>,
        core: Option<usize>,
    ) -> Result<Running>
    where
        P: Port + Send + 'static,
        P::Buffer: Send,
    {
        let (ctl, ring) = channel(4096, 16_384);
        let ring = ring.with_doorbell(Arc::clone(&self.doorbell));
        let published = Arc::new(Published::default());
        let p = Arc::clone(&published);
        let thread = match self.pcap_path(index) {
            Some(path) => {
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("dataplane.pcap: {path}"))?;
                let port = PcapPort::new(port, std::io::BufWriter::new(file), Clock::Monotonic)?;
                self.thread(index, port, cfg, ring, steering, core, p)?
            }
            None => self.thread(index, port, cfg, ring, steering, core, p)?,
        };
        Ok(Running {
            ctl,
            thread,
            published,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn thread<P>(
        &self,
        index: usize,
        port: P,
        cfg: WorkerConfig,
        ring: WorkerEnd,
        steering: Option<Arc<Steering<P::Buffer>>>,
        core: Option<usize>,
        published: Arc<Published>,
    ) -> Result<std::thread::JoinHandle<Result<WorkerStats, String>>>
    where
        P: Port + Send + 'static,
        P::Buffer: Send,
    {
        let mut worker = Worker::new(port, cfg, ring)
            .map_err(|e| anyhow!("limits.max_connections_per_worker: {e}"))?;
        if let Some(st) = steering {
            worker
                .set_steering(index, st)
                .map_err(|e| anyhow!("worker {index}: steering: {e}"))?;
        }
        let (stop, policy, init) = (Arc::clone(&self.stop), self.policy, self.thread_init);
        Ok(std::thread::Builder::new()
            .name(format!("mgwd-worker-{index}"))
            .spawn(move || {
                if let Some(c) = core {
                    pin_to_core(c).map_err(|e| e.to_string())?;
                }
                let _registration = init()?;
                let mut w = worker;
                let (mut idle, mut polls) = (0u32, 0u32);
                while !stop.load(Ordering::Relaxed) {
                    let busy = w.run_once(monotonic_now());
                    policy.after_poll(&mut idle, busy);
                    polls = polls.wrapping_add(1);
                    if polls % PUBLISH_EVERY == 0 {
                        published.publish(&w.stats());
                    }
                }
                published.publish(&w.stats());
                Ok(w.stats())
            })?)
    }
}

/// The edge of every worker's port and the realms control allocates from: one interface
/// carrying every realm's addresses.
fn edge_and_realms(cfg: &Config, mac: EthernetAddress) -> Result<(EdgeConfig, Realms)> {
    let mut edge = EdgeConfig::single(mac, Ipv4Address::UNSPECIFIED, 32);
    edge.addrs.clear();
    let mut realms = Realms::default();
    // RFC 4975 §14.1: the session-ids of the MG's own MSRP URIs must be hard to guess.
    realms.set_msrp_session_key(urandom::<16>()?);
    // Ports are chosen at random among the free ones: a guessable next port lets a third party
    // reach a leg before its peer does.
    realms.set_port_key(urandom::<16>()?);
    for r in &cfg.realms {
        let (addr, len) = parse_prefix(&r.ipv4).ok_or_else(|| anyhow!("realm {}: ipv4", r.name))?;
        edge.addrs.push(InterfaceAddr {
            addr: Ipv4Address(addr.octets()),
            prefix_len: len,
        });
        if let Some(gw) = r.gateway_v4 {
            let gw = Ipv4Address(gw.octets());
            // Each realm's traffic leaves through its own router; the first realm's is also
            // the default for anything else.
            edge.source_gateways.push((
                InterfaceAddr {
                    addr: Ipv4Address(addr.octets()),
                    prefix_len: len,
                },
                gw,
            ));
            if edge.routes.is_empty() {
                edge.routes.push(Route {
                    dest: Ipv4Address::UNSPECIFIED,
                    prefix_len: 0,
                    gateway: Some(gw),
                });
            }
        }
        realms.add(&r.name, IpAddr::V4(addr), r.port_min, r.port_max);
    }
    Ok((edge, realms))
}

/// The worker core for worker `i` (`dataplane.cores`, if given).
fn core_of(cfg: &Config, i: usize) -> Option<usize> {
    cfg.dataplane.cores.get(i).copied()
}

/// Which port a realm's source addresses use: (realm subnet, port index).
type BySource = Vec<(InterfaceAddr, usize)>;

/// The realms' devices (realm order, deduplicated) and each realm's subnet with the index of
/// its device.
fn realm_ports<T: PartialEq + Clone>(
    cfg: &Config,
    device_of: impl Fn(usize) -> Result<T>,
) -> Result<(Vec<T>, BySource)> {
    let mut devices: Vec<T> = Vec::new();
    let mut by_source = Vec::new();
    for (i, r) in cfg.realms.iter().enumerate() {
        let d = device_of(i)?;
        let idx = match devices.iter().position(|x| *x == d) {
            Some(k) => k,
            None => {
                devices.push(d);
                devices.len() - 1
            }
        };
        let (addr, len) = parse_prefix(&r.ipv4).ok_or_else(|| anyhow!("realm {}: ipv4", r.name))?;
        by_source.push((
            InterfaceAddr {
                addr: Ipv4Address(addr.octets()),
                prefix_len: len,
            },
            idx,
        ));
    }
    Ok((devices, by_source))
}

/// The AF_PACKET backend: per worker, one socket on each realm's interface (in one fanout
/// group per interface when there are several workers); a worker whose realms are on several
/// interfaces drives them as one `MultiPort`.
fn start_afpacket(
    cfg: &Config,
    launch: &Launch,
    new_worker: &dyn Fn(EdgeConfig) -> Result<WorkerConfig>,
) -> Result<(Vec<Running>, Realms)> {
    let (ifaces, by_source) = realm_ports(cfg, |i| {
        let r = &cfg.realms[i];
        r.interface.clone().ok_or_else(|| {
            anyhow!(
                "realm[{i}] ({}).interface: needed with backend afpacket",
                r.name
            )
        })
    })?;
    let n = cfg.dataplane.workers;
    let mtu = cfg.realms.iter().map(|r| r.mtu).max().unwrap_or(1500);
    let pool = Pool::new(
        16_384 * n * ifaces.len(),
        mtu + 14 + mgw_core::buf::DEFAULT_HEADROOM + 64,
    );
    pool.prefill();
    let mut per_worker: Vec<Vec<AfPacketPort>> = (0..n).map(|_| Vec::new()).collect();
    for (k, iface) in ifaces.iter().enumerate() {
        // A fanout group id private to this process and interface.
        let group = ((std::process::id() as usize + k) & 0xffff) as u16;
        for ports in &mut per_worker {
            let mut port = AfPacketPort::open(iface, pool.clone())
                .with_context(|| format!("realm interface `{iface}`"))?;
            if n > 1 {
                port.join_fanout(group)
                    .with_context(|| format!("realm interface `{iface}`: PACKET_FANOUT"))?;
            }
            ports.push(port);
        }
    }
    let (edge, realms) = edge_and_realms(cfg, per_worker[0][0].mac())?;
    let steering = (n > 1).then(|| Steering::new(&edge_addrs(&edge), n, 8192));
    let mut running = Vec::with_capacity(n);
    for (i, ports) in per_worker.into_iter().enumerate() {
        let wcfg = new_worker(edge.clone())?;
        running.push(launch.spawn_on(i, ports, &by_source, wcfg, &steering, core_of(cfg, i))?);
    }
    Ok((running, realms))
}

fn edge_addrs(edge: &EdgeConfig) -> Vec<Ipv4Address> {
    edge.addrs.iter().map(|a| a.addr).collect()
}

/// Registers a DPDK worker thread as an lcore (its mbuf cache); the guard unregisters it.
#[cfg(feature = "dpdk")]
fn dpdk_thread_init() -> Result<Box<dyn std::any::Any>, String> {
    let eal = mgw_ports::dpdk::Eal::get().ok_or("EAL is not initialised")?;
    let reg = eal.register_thread().map_err(|e| e.to_string())?;
    Ok(Box::new(reg))
}

/// The DPDK backend: EAL from `[dpdk]`, one ethdev (every realm on it), one RX/TX queue pair
/// per worker with symmetric RSS where the device hashes.
#[cfg(feature = "dpdk")]
fn start_dpdk(
    cfg: &Config,
    launch: &Launch,
    new_worker: &dyn Fn(EdgeConfig) -> Result<WorkerConfig>,
) -> Result<(Vec<Running>, Realms, Vec<mgw_ports::dpdk::DpdkPort>)> {
    use mgw_ports::dpdk::{DpdkPort, DpdkPortConfig, Eal, Mempool};
    let d = cfg.dpdk.clone().unwrap_or_default();
    let (devices, by_source) = realm_ports(cfg, |i| crate::config::dpdk_device_of(cfg, i))?;
    let mut eal = vec![
        "mgwd".to_string(),
        "-l".into(),
        cfg.dataplane.control_core.unwrap_or(0).to_string(),
        "-m".into(),
        d.memory_mb.to_string(),
    ];
    if d.no_huge {
        eal.push("--no-huge".into());
    } else {
        // One process, no secondary processes: no shared runtime files (`--in-memory` cannot
        // be combined with `--no-huge`).
        eal.push("--in-memory".into());
        if let Some(dir) = &d.huge_dir {
            eal.extend(["--huge-dir".into(), dir.clone()]);
        }
    }
    if let Some(p) = &d.file_prefix {
        eal.extend(["--file-prefix".into(), p.clone()]);
    }
    let mut any_pci = false;
    for dev in &devices {
        if let crate::config::DpdkDevice::Pci(pci) = dev {
            eal.extend(["-a".into(), pci.clone()]);
            any_pci = true;
        }
    }
    if !any_pci && !d.eal_extra_args.iter().any(|a| a == "--no-pci") {
        eal.push("--no-pci".into());
    }
    for v in &d.vdevs {
        eal.push(format!("--vdev={v}"));
    }
    eal.extend(d.eal_extra_args.iter().cloned());
    info!(args = ?eal, "starting DPDK EAL");
    let eal = Eal::init(&eal).map_err(|e| anyhow!("[dpdk]: EAL: {e}"))?;
    let n = cfg.dataplane.workers;
    let mtu = cfg.realms.iter().map(|r| r.mtu).max().unwrap_or(1500);
    // At least DPDK's default mbuf (2,048 B + headroom): some PMDs (net_af_packet) size their
    // receive frames by it and refuse smaller mbufs.
    let room = u16::try_from((mtu + 14 + 64).max(2048) + 128).unwrap_or(u16::MAX);
    let pool = Mempool::new(eal, "mgwd_mbufs", d.mbufs, d.mbuf_cache, room, None)
        .map_err(|e| anyhow!("dpdk.mbufs/mbuf_cache: mempool: {e}"))?;
    let queues = u16::try_from(n).map_err(|_| anyhow!("dataplane.workers: too many"))?;
    let mut ports = Vec::with_capacity(devices.len());
    for dev in &devices {
        let name = dev.name();
        let port_id = eal
            .port_by_name(name)
            .map_err(|e| anyhow!("realm device `{name}`: not a DPDK port: {e}"))?;
        let port = DpdkPort::new(
            eal,
            port_id,
            queues,
            pool,
            DpdkPortConfig {
                rx_desc: d.rx_descriptors,
                tx_desc: d.tx_descriptors,
                mtu: (mtu != 1500).then(|| u16::try_from(mtu).unwrap_or(1500)),
                promiscuous: false,
            },
        )
        .map_err(|e| anyhow!("realm device `{name}` (port {port_id}): {e}"))?;
        let f = port.features();
        info!(
            port = port_id,
            device = name,
            driver = f.driver,
            queues,
            rss_hf = format_args!("{:#x}", f.rss_hf),
            rx_cksum = format_args!("{:#x}", f.rx_cksum),
            tx_cksum = format_args!("{:#x}", f.tx_cksum),
            tx_l4_checksum_offload = f.tx_l4_checksum(),
            mac = %port.mac(),
            "DPDK port started"
        );
        if let Ok(l) = port.link() {
            info!(port = port_id, up = l.up, speed_mbps = l.speed_mbps, "link");
        }
        ports.push(port);
    }
    let (edge, realms) = edge_and_realms(cfg, ports[0].mac())?;
    let steering = (n > 1).then(|| Steering::new(&edge_addrs(&edge), n, 8192));
    let mut running = Vec::with_capacity(n);
    for i in 0..n {
        let mut qs = Vec::with_capacity(ports.len());
        for p in &mut ports {
            qs.push(
                p.take_queue(i as u16)
                    .ok_or_else(|| anyhow!("queue {i} of port {} missing", p.port_id()))?,
            );
        }
        let wcfg = new_worker(edge.clone())?;
        running.push(launch.spawn_on(i, qs, &by_source, wcfg, &steering, core_of(cfg, i))?);
    }
    // The port handles stay alive (the devices started) until the daemon exits.
    Ok((running, realms, ports))
}

/// One worker's TCP stack settings: the configured limits and a secret of its own for ISNs
/// (RFC 6528), SYN cookies and the flow-table key, so that neither can be predicted or
/// computed offline. Called once per worker at each start.
///
/// # Errors
/// The kernel's random source cannot be read.
fn worker_tcp_config(limits: &crate::config::Limits) -> Result<mgw_tcp::Config> {
    Ok(mgw_tcp::Config {
        max_connections: limits.max_connections_per_worker,
        // Every passive TCP leg listens until its peer connects: as many listeners as legs.
        max_listeners: limits.max_connections_per_worker,
        ..mgw_tcp::Config::with_secret(urandom::<16>().context("TCP secret")?)
    })
}

/// The worker settings `[limits]` and the realms decide.
fn apply_limits(cfg: &Config, wcfg: &mut WorkerConfig) {
    wcfg.max_contexts = cfg.limits.max_contexts;
    wcfg.tcp.max_connections = cfg.limits.max_connections_per_worker;
    // Every passive TCP leg listens until its peer connects: as many listeners as legs.
    wcfg.tcp.max_listeners = cfg.limits.max_connections_per_worker;
    wcfg.msrp.max_message_size = cfg.limits.max_msrp_message;
    wcfg.udptl.max_datagram = cfg.limits.max_udptl_datagram;
    wcfg.staging_bytes = cfg.limits.relay_buffer;
    // RFC 9293 §3.8.3: the user's timeout on the open; then TcpFailed reaches the MGC.
    wcfg.tcp.connect_timeout = Some(Duration::from_millis(cfg.limits.tcp_connect_timeout));
    // RFC 9293 §3.7.1: each realm's MSS is its link MTU less the IPv4 and TCP headers (no
    // PMTUD here: a larger segment would be black-holed on a smaller link).
    let mss_of = |mtu: usize| u16::try_from(mtu - 40).unwrap_or(u16::MAX);
    wcfg.tcp.local_mss = cfg
        .realms
        .iter()
        .filter_map(|r| {
            let (addr, _) = parse_prefix(&r.ipv4)?;
            Some((IpAddress::V4(Ipv4Address(addr.octets())), mss_of(r.mtu)))
        })
        .collect();
    let min_mtu = cfg.realms.iter().map(|r| r.mtu).min().unwrap_or(1500);
    wcfg.tcp.mss = mss_of(min_mtu);
}

/// Runs the daemon.
///
/// # Errors
/// A bad configuration (naming the field), or a resource that cannot be had at start
/// (interface, socket, certificate).
pub fn run(args: &RunArgs) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    if args.check {
        println!("{}: configuration OK", args.config.display());
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.general.log));
    // Colours only on a terminal: journald and log files get plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
    info!(name = %cfg.general.name, "mgwd starting");

    match cfg.dataplane.backend.as_str() {
        "afpacket" => {}
        "dpdk" if cfg!(feature = "dpdk") => {}
        "dpdk" => bail!("dataplane.backend = \"dpdk\": this mgwd was built without DPDK (cargo build --features dpdk)"),
        "mem" => bail!("dataplane.backend = \"mem\": the in-memory backend is for `mgwd lab` and tests"),
        b => bail!("dataplane.backend = \"{b}\": not available in this build of `mgwd run`; use \"dpdk\" or \"afpacket\""),
    }
    let policy = PollPolicy::from_name(cfg.dataplane.poll.as_deref().unwrap_or("adaptive"))
        .map_err(|e| anyhow!("dataplane.poll: {e}"))?;

    // Identity.
    let identity = match (&cfg.tls.certificate, &cfg.tls.private_key) {
        (Some(c), Some(k)) => Identity::from_pem_files(c.as_ref(), k.as_ref())
            .with_context(|| format!("tls.certificate/tls.private_key: {c}, {k}"))?,
        _ => {
            warn!("tls.certificate not set: generating a self-signed P-256 certificate");
            Identity::generate_self_signed(&cfg.general.name)?
        }
    };
    let hash = HashFunction::from_name(cfg.tls.fingerprint_hash.as_deref().unwrap_or("sha-256"))
        .map_err(|e| anyhow!("tls.fingerprint_hash: {e}"))?;
    let fingerprint = identity.fingerprint(hash);
    info!(%fingerprint, "media identity");
    let handshake_timeout = Duration::from_millis(cfg.tls.handshake_timeout.unwrap_or(10_000));
    let mut tls_settings = TlsSettings {
        handshake_timeout,
        ..TlsSettings::default()
    };
    if cfg.tls.min_version.as_deref() == Some("1.3") {
        tls_settings.profile = mgw_tls::TlsProfile::from_names(&["1.3"], &[], &[])
            .map_err(|e| anyhow!("tls.min_version: {e}"))?;
    }

    // Data plane.
    let mtu = cfg.realms.iter().map(|r| r.mtu).max().unwrap_or(1500);
    let new_worker = |edge: EdgeConfig| -> Result<WorkerConfig> {
        let mut wcfg = WorkerConfig::new(edge);
        wcfg.tcp = worker_tcp_config(&cfg.limits)?;
        apply_limits(&cfg, &mut wcfg);
        wcfg.tls = Some(TlsContext::new(tls_settings.clone(), identity.clone())?);
        wcfg.dtls = Some(DtlsConfig::new(
            &identity,
            mtu.saturating_sub(28),
            handshake_timeout,
        )?);
        Ok(wcfg)
    };
    let launch = Launch {
        thread_init: match cfg.dataplane.backend.as_str() {
            #[cfg(feature = "dpdk")]
            "dpdk" => dpdk_thread_init,
            _ => || Ok(Box::new(())),
        },
        stop: Arc::new(AtomicBool::new(false)),
        policy,
        pcap: cfg.dataplane.pcap.clone(),
        workers: cfg.dataplane.workers,
        doorbell: Arc::new(Doorbell::new()),
    };
    #[cfg(feature = "dpdk")]
    let mut devices: Vec<mgw_ports::dpdk::DpdkPort> = Vec::new();
    let (running, realms) = match cfg.dataplane.backend.as_str() {
        #[cfg(feature = "dpdk")]
        "dpdk" => {
            let (r, realms, dev) = start_dpdk(&cfg, &launch, &new_worker)?;
            devices = dev;
            (r, realms)
        }
        _ => start_afpacket(&cfg, &launch, &new_worker)?,
    };
    info!(
        workers = running.len(),
        backend = %cfg.dataplane.backend,
        steering = if running.len() > 1 { "redirect" } else { "none" },
        "data plane up"
    );
    let published: Vec<Arc<Published>> = running.iter().map(|r| Arc::clone(&r.published)).collect();
    let (ctl_ends, threads): (Vec<ControlEnd>, Vec<_>) =
        running.into_iter().map(|r| (r.ctl, r.thread)).unzip();
    let mut metrics = match cfg.metrics.as_ref().map(|m| m.listen.as_str()) {
        None | Some("") => None,
        Some(l) => {
            let addr: std::net::SocketAddr = l
                .parse()
                .map_err(|_| anyhow!("metrics.listen: `{l}` is not ip:port"))?;
            let m = Metrics::bind(addr).with_context(|| format!("metrics.listen {addr}"))?;
            info!(listen = %addr, "metrics endpoint up (GET /metrics)");
            Some(m)
        }
    };

    // Control.
    let transport = if cfg.control.transport == "tcp" {
        TransportKind::Tcp
    } else {
        TransportKind::Udp
    };
    let transaction = TransactionConfig {
        initial_rto: Duration::from_millis(cfg.control.retransmit_initial),
        max_rto: Duration::from_millis(cfg.control.retransmit_max),
        pending_after: Duration::from_millis(cfg.control.pending_after),
        request_timeout: Some(Duration::from_millis(cfg.control.transaction_timeout)),
        reliable: transport == TransportKind::Tcp,
        ..TransactionConfig::default()
    };
    let server = Server::bind(
        ServerConfig {
            bind: cfg.control.listen,
            transport,
            mid: parse_mid(&cfg.control.mid)?,
            association: AssociationConfig {
                mgcs: cfg.control.mgc.clone(),
                max_avalanche_delay: Duration::from_millis(cfg.control.max_avalanche_delay),
                version: cfg.control.version,
                inactivity_timeout: (cfg.control.inactivity_timeout > 0)
                    .then(|| Duration::from_millis(cfg.control.inactivity_timeout)),
                transaction,
                ..AssociationConfig::default()
            },
            mg: MgConfig {
                max_contexts: cfg.limits.max_contexts,
                max_terminations: cfg.limits.max_terminations,
                ..MgConfig::default()
            },
            defer_replies: true,
        },
        realms,
        fingerprint.to_string(),
        random_u64(),
    )
    .with_context(|| format!("control.listen {}", cfg.control.listen))?;
    info!(listen = %cfg.control.listen, mgc = ?cfg.control.mgc, "H.248 control up");
    let mut gateway = Gateway::new(
        server,
        ctl_ends,
        Awareness {
            msrp: true,
            bfcp: true,
            udptl: true,
        },
    )
    .with_doorbell(Arc::clone(&launch.doorbell));

    let term = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&term))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&term))?;
    let mut deadline: Option<StdInstant> = None;
    loop {
        if let Some(m) = metrics.as_mut() {
            let gs = gateway.stats();
            let rings = gateway.ring_depths();
            m.poll(|| {
                let mut out = String::new();
                render(&published, &gs, &rings, &mut out);
                #[cfg(feature = "dpdk")]
                for port in &devices {
                    if let Ok(x) = port.xstats() {
                        crate::metrics::render_xstats(port.port_id(), &x, &mut out);
                    }
                }
                out
            });
        }
        // The poll returns on H.248 input, on a worker's event (the doorbell) or at a timer of
        // the H.248 layer; the bound is for the metrics endpoint and the signal flag only.
        let events = match gateway.poll(CONTROL_HOUSEKEEPING) {
            Ok(e) => e,
            // A signal (SIGTERM, SIGINT) interrupted the wait: the flag is checked below.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Vec::new(),
            Err(e) => {
                error!("H.248 transport: {e}");
                Vec::new()
            }
        };
        let mut down = false;
        for ev in events {
            match ev {
                ServerEvent::Registered { mgc, version } => {
                    info!(%mgc, version, "registered with the MGC")
                }
                ServerEvent::Failover { from } => warn!(%from, "MGC lost, failing over"),
                ServerEvent::NotifyFailed { id } => warn!(id, "a Notify was never answered"),
                ServerEvent::Down => down = true,
                // Leg changes and held replies are the gateway's.
                _ => {}
            }
        }
        if term.load(Ordering::Relaxed) && deadline.is_none() {
            info!("shutting down: graceful ServiceChange");
            gateway.shutdown(Some(Duration::from_millis(500)));
            deadline = Some(StdInstant::now() + Duration::from_secs(10));
        }
        if down || deadline.is_some_and(|d| StdInstant::now() >= d) {
            break;
        }
    }
    launch.stop.store(true, Ordering::Relaxed);
    let mut ws = Vec::with_capacity(threads.len());
    for (i, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(Ok(s)) => {
                info!(worker = i, counters = %WorkerCounters(&s), "worker stopped");
                ws.push(s);
            }
            Ok(Err(e)) => error!("worker {i}: {e}"),
            Err(_) => error!("worker {i} panicked"),
        }
    }
    #[cfg(feature = "dpdk")]
    for port in &devices {
        // The device's extended statistics (drops, errors, per-queue counts), non-zero ones.
        match port.xstats() {
            Ok(x) => {
                for (name, value) in x.into_iter().filter(|(_, v)| *v != 0) {
                    info!(port = port.port_id(), %name, value, "xstat");
                }
            }
            Err(e) => warn!("xstats: {e}"),
        }
    }
    let gs = gateway.stats();
    info!(?gs, workers = ws.len(), "mgwd stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_gives_every_worker_stack_its_own_tcp_secret() {
        let limits = crate::config::Limits::default();
        let a = worker_tcp_config(&limits).unwrap();
        let b = worker_tcp_config(&limits).unwrap();
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.secret, mgw_tcp::Config::TEST_SECRET);
        assert_ne!(b.secret, mgw_tcp::Config::TEST_SECRET);
        assert_eq!(a.max_connections, limits.max_connections_per_worker);
        // The ISNs two such stacks pick for the same 4-tuple at the same instant differ.
        let t = mgw_tcp::FourTuple {
            local_addr: mgw_core::wire::IpAddress::V4(Ipv4Address::new(192, 0, 2, 1)),
            local_port: 2855,
            remote_addr: mgw_core::wire::IpAddress::V4(Ipv4Address::new(192, 0, 2, 9)),
            remote_port: 40_000,
        };
        let now = mgw_core::time::Instant::from_millis(5);
        assert_ne!(
            mgw_tcp::isn::initial_sequence_number(&a.secret, &t, now),
            mgw_tcp::isn::initial_sequence_number(&b.secret, &t, now)
        );
    }

    fn worker_config(text: &str) -> WorkerConfig {
        let cfg = Config::parse(text).unwrap();
        let mut wcfg = WorkerConfig::new(EdgeConfig::single(
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            Ipv4Address([192, 0, 2, 1]),
            24,
        ));
        apply_limits(&cfg, &mut wcfg);
        wcfg
    }

    #[test]
    fn limits_and_realm_mtu_reach_the_worker_tcp_stack() {
        let base = include_str!("../../../deploy/mgwd.example.toml");
        // The core realm on a 1,400-byte link (a tunnel, say), the access realm at 1,500.
        let text = base
            .replacen(
                "tcp_connect_timeout = 5000",
                "tcp_connect_timeout = 2500",
                1,
            )
            .replacen(
                "gateway_v4 = \"198.51.100.1\"\nmtu = 1500",
                "gateway_v4 = \"198.51.100.1\"\nmtu = 1400",
                1,
            );
        let w = worker_config(&text);
        assert_eq!(w.tcp.connect_timeout, Some(Duration::from_millis(2500)));
        // RFC 9293 §3.7.1: MTU - 20 (IPv4) - 20 (TCP) per realm address.
        assert_eq!(
            w.tcp.local_mss,
            vec![
                (IpAddress::V4(Ipv4Address([203, 0, 113, 10])), 1460),
                (IpAddress::V4(Ipv4Address([198, 51, 100, 10])), 1360),
            ]
        );
        // Any other local address: the smallest realm's.
        assert_eq!(w.tcp.mss, 1360);
        assert_eq!(w.tcp.max_connections, 65536);
    }
}
