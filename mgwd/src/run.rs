//! `mgwd run --config FILE`: the gateway daemon.
//!
//! One worker thread on the configured interface (AF_PACKET in this build) and the control
//! thread on the main thread: it registers with the MGC, serves H.248, programs the worker and
//! reports its events. SIGTERM or SIGINT starts a graceful ServiceChange; the process exits when
//! the MGC has been told, or after 10 s.

use crate::config::{parse_prefix, Config};
use crate::gateway::{Awareness, Gateway};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use control::h248::association::AssociationConfig;
use control::h248::ast::Mid;
use control::h248::mg::MgConfig;
use control::h248::transaction::TransactionConfig;
use control::procedures::Realms;
use control::server::{Server, ServerConfig, ServerEvent, TransportKind};
use dataplane::buf::Pool;
use dataplane::edge::{EdgeConfig, InterfaceAddr, Route};
use dataplane::port::afpacket::AfPacketPort;
use dataplane::port::pcap::PcapPort;
use dataplane::port::Port;
use dataplane::sim::Clock;
use dataplane::time::monotonic_now;
use dataplane::wire::Ipv4Address;
use mgw_tls::{DtlsConfig, HashFunction, Identity, TlsContext, TlsSettings};
use mgw_worker::{channel, Worker, WorkerConfig, WorkerEnd, WorkerStats};
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

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // The restart-avalanche delay and first transaction id only need to differ between MGs.
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        b = (monotonic_now().as_nanos() ^ u64::from(std::process::id())).to_le_bytes();
    }
    u64::from_le_bytes(b)
}

fn spawn_worker<P>(
    port: P,
    cfg: WorkerConfig,
    ring: WorkerEnd,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<WorkerStats>>
where
    P: Port + Send + 'static,
    P::Buffer: Send,
{
    let worker = Worker::new(port, cfg, ring)
        .map_err(|e| anyhow!("limits.max_connections_per_worker: {e}"))?;
    Ok(std::thread::Builder::new()
        .name("mgwd-worker-0".into())
        .spawn(move || {
            let mut w = worker;
            let mut idle = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if w.run_once(monotonic_now()) {
                    idle = 0;
                } else {
                    // Adaptive poll: spin, then yield, then nap, so an idle gateway leaves the core.
                    idle = idle.saturating_add(1);
                    if idle > 10_000 {
                        std::thread::sleep(Duration::from_micros(100));
                    } else if idle > 200 {
                        std::thread::yield_now();
                    }
                }
            }
            w.stats()
        })?)
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
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    info!(name = %cfg.general.name, "mgwd starting");
    for k in cfg.not_yet_applied() {
        warn!("configured but not applied by this build: {k}");
    }

    match cfg.dataplane.backend.as_str() {
        "afpacket" => {}
        "mem" => bail!("dataplane.backend = \"mem\": the in-memory backend is for `mgwd lab` and tests"),
        b => bail!("dataplane.backend = \"{b}\": not available in this build of `mgwd run` yet; use \"afpacket\""),
    }
    if cfg.dataplane.workers != 1 {
        bail!(
            "dataplane.workers = {}: this build runs one worker (spreading contexts over workers needs the DPDK backend's steering)",
            cfg.dataplane.workers
        );
    }
    let iface = cfg.realms[0]
        .interface
        .clone()
        .ok_or_else(|| anyhow!("realm[0].interface: needed with backend afpacket"))?;
    for (i, r) in cfg.realms.iter().enumerate() {
        if r.interface.as_deref() != Some(iface.as_str()) {
            bail!("realm[{i}] ({}).interface: with backend afpacket all realms share one interface (`{iface}`)", r.name);
        }
    }

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
    let pool = Pool::new(16_384, mtu + 14 + dataplane::buf::DEFAULT_HEADROOM + 64);
    pool.prefill();
    let port = AfPacketPort::open(&iface, pool)
        .with_context(|| format!("realm[0].interface `{iface}`"))?;
    let mut edge = EdgeConfig::single(port.mac(), Ipv4Address::UNSPECIFIED, 32);
    edge.addrs.clear();
    let mut realms = Realms::default();
    for r in &cfg.realms {
        let (addr, len) = parse_prefix(&r.ipv4).ok_or_else(|| anyhow!("realm {}: ipv4", r.name))?;
        edge.addrs.push(InterfaceAddr {
            addr: Ipv4Address(addr.octets()),
            prefix_len: len,
        });
        if let Some(gw) = r.gateway_v4 {
            if edge.routes.is_empty() {
                edge.routes.push(Route {
                    dest: Ipv4Address::UNSPECIFIED,
                    prefix_len: 0,
                    gateway: Some(Ipv4Address(gw.octets())),
                });
            } else {
                warn!(realm = %r.name, "only the first realm's gateway_v4 is the default route");
            }
        }
        realms.add(&r.name, IpAddr::V4(addr), r.port_min, r.port_max);
    }
    let (ctl_end, w_end) = channel(4096, 16_384);
    let mut wcfg = WorkerConfig::new(edge);
    wcfg.max_contexts = cfg.limits.max_contexts;
    wcfg.tcp.max_connections = cfg.limits.max_connections_per_worker;
    wcfg.tls = Some(TlsContext::new(tls_settings, identity.clone())?);
    wcfg.dtls = Some(DtlsConfig::new(
        &identity,
        mtu.saturating_sub(28),
        handshake_timeout,
    )?);
    wcfg.msrp.max_message_size = cfg.limits.max_msrp_message;
    wcfg.udptl.max_datagram = cfg.limits.max_udptl_datagram;
    let stop = Arc::new(AtomicBool::new(false));
    let worker = match &cfg.dataplane.pcap {
        Some(path) => {
            let file =
                std::fs::File::create(path).with_context(|| format!("dataplane.pcap: {path}"))?;
            let port = PcapPort::new(port, std::io::BufWriter::new(file), Clock::Monotonic)?;
            spawn_worker(port, wcfg, w_end, Arc::clone(&stop))?
        }
        None => spawn_worker(port, wcfg, w_end, Arc::clone(&stop))?,
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
        vec![ctl_end],
        Awareness {
            msrp: true,
            bfcp: true,
            udptl: true,
        },
    );

    let term = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&term))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&term))?;
    let mut deadline: Option<StdInstant> = None;
    loop {
        let events = match gateway.poll(Duration::from_millis(5)) {
            Ok(e) => e,
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
    stop.store(true, Ordering::Relaxed);
    let ws = worker
        .join()
        .map_err(|_| anyhow!("worker thread panicked"))?;
    let gs = gateway.stats();
    info!(?gs, ?ws, "mgwd stopped");
    Ok(())
}
