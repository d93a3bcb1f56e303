//! `mgwd lab`: the embedded demo.
//!
//! What it runs today (foundation stage, honestly labelled in its output): a gateway-side host
//! (the data plane's L2/L3 edge with a UDP echo service) and a simulated peer, each on its own
//! thread, joined by a `mem` link with an optional loss/delay model. The peer resolves the
//! gateway by ARP, pings it, then keeps a window of timestamped UDP datagrams in flight and
//! measures round trips. The MSRP/BFCP/T.38 relays through TCP, TLS and DTLS join this view as
//! their issues land.

use anyhow::{bail, Result};
use clap::Args;
use dataplane::buf::Pool;
use dataplane::edge::EdgeConfig;
use dataplane::host::Host;
use dataplane::port::mem::{pair, MemConfig, MemPort};
use dataplane::port::Port;
use dataplane::sim::{Clock, LinkModel, Node};
use dataplane::time::monotonic_now;
use dataplane::wire::{EthernetAddress, Ipv4Address};
use hdrhistogram::Histogram;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

const GW_IP: Ipv4Address = Ipv4Address([198, 51, 100, 1]);
const PEER_IP: Ipv4Address = Ipv4Address([198, 51, 100, 2]);
const ECHO_PORT: u16 = 7;

/// Options of `mgwd lab`.
#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Print one JSON summary at the end instead of the live view.
    #[arg(long)]
    pub json: bool,
    /// Datagrams kept in flight by the simulated peer.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// UDP payload size in bytes (16..=1400).
    #[arg(long, default_value_t = 300)]
    pub size: usize,
    /// Loss probability on the simulated link, each way (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// One-way delay of the simulated link, in microseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_us: u64,
}

#[derive(Default)]
struct Live {
    sent: AtomicU64,
    received: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    p50_ns: AtomicU64,
    p99_ns: AtomicU64,
    p999_ns: AtomicU64,
}

struct PeerResult {
    rtt: Histogram<u64>,
    arp_resolved: bool,
}

struct GatewayResult {
    echo_replies: u64,
    arp_replies: u64,
    udp_out: u64,
    dropped: u64,
}

fn gateway(port: MemPort, stop: Arc<AtomicBool>) -> GatewayResult {
    let mut host = Host::new(
        port,
        EdgeConfig::single(EthernetAddress([2, 0x6d, 0x67, 0x77, 0x64, 1]), GW_IP, 24),
    );
    host.udp_echo_port = Some(ECHO_PORT);
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let before = host.port().stats().rx_packets;
        host.poll(monotonic_now());
        // Adaptive poll: spin while busy, yield the core when idle (the lab shares 2 cores).
        if host.port().stats().rx_packets == before {
            idle += 1;
            if idle > 64 {
                std::thread::yield_now();
            }
        } else {
            idle = 0;
        }
    }
    let e = host.edge().stats();
    let s = host.stats();
    GatewayResult {
        echo_replies: e.echo_replies,
        arp_replies: e.arp_replies,
        udp_out: s.udp_out,
        dropped: e.malformed + e.bad_checksum + e.not_our_addr + e.unknown_protocol + s.bad_l4,
    }
}

fn peer(port: MemPort, args: &LabArgs, live: &Live, stop: &AtomicBool) -> PeerResult {
    let mut host = Host::new(
        port,
        EdgeConfig::single(EthernetAddress([2, 0x6d, 0x67, 0x77, 0x64, 2]), PEER_IP, 24),
    );
    let mut rtt =
        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds");
    let mut interval = rtt.clone();
    let mut payload = vec![0u8; args.size];
    let mut seq: u64 = 0;
    let mut in_flight = 0usize;
    let mut last_publish = StdInstant::now();
    let mut last_send = monotonic_now();
    let mut arp_resolved = false;
    let mut last_ping: Option<dataplane::time::Instant> = None;
    let mut ping_seq = 0u16;
    while !stop.load(Ordering::Relaxed) {
        let now = monotonic_now();
        // A ping every 250 ms (the first ones also make the peer resolve the gateway by ARP).
        if last_ping.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(250))
        {
            ping_seq = ping_seq.wrapping_add(1);
            host.send_ping(GW_IP, 0x6c61, ping_seq, b"mgwd lab");
            last_ping = Some(now);
        }
        host.poll(now);
        while let Some(d) = host.recv() {
            let p = d.payload();
            if p.len() >= 16 {
                let sent_at = u64::from_be_bytes(p[8..16].try_into().unwrap_or([0; 8]));
                let ns = now.as_nanos().saturating_sub(sent_at).max(1);
                let _ = rtt.record(ns);
                let _ = interval.record(ns);
                live.received.fetch_add(1, Ordering::Relaxed);
                live.bytes_in.fetch_add(p.len() as u64, Ordering::Relaxed);
                in_flight = in_flight.saturating_sub(1);
                arp_resolved = true;
            }
        }
        // A datagram lost on the simulated link is given up after 200 ms.
        if in_flight > 0 && now.saturating_duration_since(last_send) > Duration::from_millis(200) {
            in_flight = 0;
        }
        while in_flight < args.window {
            seq += 1;
            payload[0..8].copy_from_slice(&seq.to_be_bytes());
            payload[8..16].copy_from_slice(&monotonic_now().as_nanos().to_be_bytes());
            if !host.send_udp(40000, GW_IP, ECHO_PORT, &payload) {
                break;
            }
            in_flight += 1;
            last_send = now;
            live.sent.fetch_add(1, Ordering::Relaxed);
            live.bytes_out
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
        }
        host.flush();
        if in_flight >= args.window || seq == 0 {
            std::thread::yield_now();
        }
        if last_publish.elapsed() >= Duration::from_millis(500) {
            live.p50_ns
                .store(interval.value_at_quantile(0.5), Ordering::Relaxed);
            live.p99_ns
                .store(interval.value_at_quantile(0.99), Ordering::Relaxed);
            live.p999_ns
                .store(interval.value_at_quantile(0.999), Ordering::Relaxed);
            interval.reset();
            last_publish = StdInstant::now();
        }
    }
    PeerResult { rtt, arp_resolved }
}

/// Runs the lab.
///
/// # Errors
/// Bad arguments.
pub fn run(args: &LabArgs) -> Result<()> {
    if !(16..=1400).contains(&args.size) {
        bail!("--size {} out of range: 16..=1400", args.size);
    }
    if !(0.0..1.0).contains(&args.loss) {
        bail!("--loss {} out of range: 0 <= loss < 1", args.loss);
    }
    if args.window == 0 || args.window > 4096 {
        bail!("--window {} out of range: 1..=4096", args.window);
    }
    let pool = Pool::new(16_384, 2048);
    pool.prefill();
    let model = LinkModel {
        loss: args.loss,
        delay: Duration::from_micros(args.delay_us),
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let cfg = MemConfig {
        a_to_b: model.clone(),
        b_to_a: model,
        seed: 1,
        ..MemConfig::default()
    };
    let (peer_port, gw_port) = pair(&pool, &Clock::Monotonic, &cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());

    let gw = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("mgwd-worker-0".into())
            .spawn(move || gateway(gw_port, stop))?
    };
    let pr = {
        let (stop, live, args) = (Arc::clone(&stop), Arc::clone(&live), args.clone());
        std::thread::Builder::new()
            .name("lab-peer".into())
            .spawn(move || peer(peer_port, &args, &live, &stop))?
    };

    let started = StdInstant::now();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut out = std::io::stdout();
    while started.elapsed() < Duration::from_secs(args.seconds) {
        std::thread::sleep(
            Duration::from_secs(1)
                .min(Duration::from_secs(args.seconds).saturating_sub(started.elapsed())),
        );
        if args.json {
            continue;
        }
        let now = (
            live.sent.load(Ordering::Relaxed),
            live.received.load(Ordering::Relaxed),
            live.bytes_out.load(Ordering::Relaxed),
            live.bytes_in.load(Ordering::Relaxed),
        );
        let (dp_out, dp_in) = (now.0 - last.0, now.1 - last.1);
        let (gb_out, gb_in) = (
            (now.2 - last.2) as f64 * 8e-9,
            (now.3 - last.3) as f64 * 8e-9,
        );
        last = now;
        let us = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1000.0;
        // A refreshing view: clear the screen and redraw.
        let _ = write!(
            out,
            "\x1b[2J\x1b[H mgwd lab — stage: foundation (L2/L3 edge + UDP echo over a mem link)\n\
             MSRP/TLS, BFCP and T.38/DTLS relays: not built yet (issues 3-6)\n\n\
             t={:>4}s   peer→gw {:>9} msg/s {:>7.3} Gbps   gw→peer {:>9} msg/s {:>7.3} Gbps\n\
             round trip  p50 {:>8.1} µs   p99 {:>8.1} µs   p99.9 {:>8.1} µs\n",
            started.elapsed().as_secs(),
            dp_out,
            gb_out,
            dp_in,
            gb_in,
            us(&live.p50_ns),
            us(&live.p99_ns),
            us(&live.p999_ns),
        );
        let _ = out.flush();
    }
    stop.store(true, Ordering::Relaxed);
    let g = gw
        .join()
        .map_err(|_| anyhow::anyhow!("worker thread panicked"))?;
    let p = pr
        .join()
        .map_err(|_| anyhow::anyhow!("peer thread panicked"))?;
    let secs = started.elapsed().as_secs_f64();
    let sent = live.sent.load(Ordering::Relaxed);
    let received = live.received.load(Ordering::Relaxed);
    let bytes = live.bytes_out.load(Ordering::Relaxed) + live.bytes_in.load(Ordering::Relaxed);
    let q = |x: f64| p.rtt.value_at_quantile(x) as f64 / 1000.0;
    let summary = json!({
        "stage": "foundation: L2/L3 edge and UDP echo over a mem link; MSRP/BFCP/T.38 relays not built yet",
        "seconds": secs,
        "udp_echo": {
            "payload_bytes": args.size,
            "window": args.window,
            "sent": sent,
            "received": received,
            "messages_per_s_each_way": received as f64 / secs,
            "gbps_both_ways": bytes as f64 * 8.0 / secs / 1e9,
            "rtt_us": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": p.rtt.max() as f64 / 1000.0 },
        },
        "gateway_edge": {
            "arp_replies": g.arp_replies,
            "echo_replies": g.echo_replies,
            "udp_echoed": g.udp_out,
            "dropped": g.dropped,
        },
        "checks": {
            "arp_resolved": p.arp_resolved && g.arp_replies > 0,
            "ping_answered": g.echo_replies > 0,
            "traffic_both_ways": sent > 0 && received > 0,
            "pool_not_leaking": pool.available() == pool.capacity(),
        },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("\nsummary:\n{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}
