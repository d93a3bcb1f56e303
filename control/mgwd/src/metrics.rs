//! `[metrics] listen`: a Prometheus text-format endpoint served by the control thread.
//!
//! Workers publish a snapshot of their counters into per-worker atomics every
//! [`PUBLISH_EVERY`] polls (relaxed stores of plain integers: no lock, no allocation on the
//! worker); the control thread polls a non-blocking listener between H.248 turns and answers
//! `GET /metrics` with the workers' counters, the control glue's and, with DPDK, each port's
//! extended statistics. Management traffic only: a handful of connections at a time, each
//! given [`CLIENT_TIMEOUT`] to send its request and read the answer. Sockets are non-blocking
//! both ways: a scraper that stops reading costs the control thread nothing but its slot.

use crate::gateway::GatewayStats;
use mgw_h248::server::{TransactionStats, COMMANDS, LATENCY_BUCKETS_US};
use mgw_worker::WorkerStats;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A worker publishes its counters once per this many polls.
pub const PUBLISH_EVERY: u32 = 1024;

/// The worker counters exported, in a fixed order.
const N_WORKER_FIELDS: usize = 22;

const WORKER_FIELDS: [&str; N_WORKER_FIELDS] = [
    "busy_polls",
    "relayed",
    "no_flow",
    "wrong_source",
    "no_peer",
    "app_errors",
    "bad_l4",
    "tx_failed",
    "installs",
    "releases",
    "updates_refused",
    "updates_live",
    "stream_full",
    "redirected_out",
    "redirected_in",
    "redirect_dropped",
    "neighbors_shared",
    "timer_runs",
    "timer_legs",
    "events_lost",
    "arp_held",
    "arp_expired",
];

fn worker_values(s: &WorkerStats) -> [u64; N_WORKER_FIELDS] {
    [
        s.busy_polls,
        s.relayed,
        s.no_flow,
        s.wrong_source,
        s.no_peer,
        s.app_errors,
        s.bad_l4,
        s.tx_failed,
        s.installs,
        s.releases,
        s.updates_refused,
        s.updates_live,
        s.stream_full,
        s.redirected_out,
        s.redirected_in,
        s.redirect_dropped,
        s.neighbors_shared,
        s.timer_runs,
        s.timer_legs,
        s.events_lost,
        s.arp_held,
        s.arp_expired,
    ]
}

/// A worker's counters as `name=value` pairs (the metrics' names), for the log.
pub struct WorkerCounters<'a>(pub &'a WorkerStats);

impl std::fmt::Display for WorkerCounters<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, v)) in WORKER_FIELDS.iter().zip(worker_values(self.0)).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={v}")?;
        }
        Ok(())
    }
}

/// One worker's published counters.
#[derive(Debug, Default)]
pub struct Published {
    values: [AtomicU64; N_WORKER_FIELDS],
}

impl Published {
    /// Stores a snapshot (the worker's thread).
    pub fn publish(&self, s: &WorkerStats) {
        for (slot, v) in self.values.iter().zip(worker_values(s)) {
            slot.store(v, Ordering::Relaxed);
        }
    }
}

/// The endpoint.
pub struct Metrics {
    listener: TcpListener,
    pending: Vec<Client>,
    /// Scrapes answered.
    pub served: u64,
}

/// One scraper's connection: its request as read so far, then the answer as written so far.
struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    /// Empty until the request is complete.
    response: Vec<u8>,
    written: usize,
    since: Instant,
}

/// Connections served at once; more are refused (closed).
const MAX_PENDING: usize = 8;

/// How long a connection may take to send its request and read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

impl Metrics {
    /// Listens on `addr`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn bind(addr: SocketAddr) -> io::Result<Metrics> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Metrics {
            listener,
            pending: Vec::new(),
            served: 0,
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// As `TcpListener::local_addr`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and answers what is ready, never blocking. `body` renders the exposition.
    pub fn poll(&mut self, body: impl Fn() -> String) {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.pending.len() >= MAX_PENDING || stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.pending.push(Client {
                stream,
                request: Vec::new(),
                response: Vec::new(),
                written: 0,
                since: Instant::now(),
            });
        }
        let mut i = 0;
        while i < self.pending.len() {
            let c = &mut self.pending[i];
            let done = if c.response.is_empty() {
                match read_request(c) {
                    Some(request) => {
                        let ok =
                            request.starts_with(b"GET /metrics ") || request.starts_with(b"GET / ");
                        let (status, text) = if ok {
                            self.served += 1;
                            ("200 OK", body())
                        } else {
                            (
                                "404 Not Found",
                                "only GET /metrics is served here\n".to_string(),
                            )
                        };
                        c.response = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                            text.len()
                        )
                        .into_bytes();
                        write_response(c)
                    }
                    None => false,
                }
            } else {
                write_response(c)
            };
            if done || c.since.elapsed() > CLIENT_TIMEOUT {
                // Dropping the stream closes it.
                self.pending.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

/// Reads what has arrived; the request once its head is complete (or the peer stopped, or it
/// grew past 8 kB). A closed or failed connection yields an empty request, answered 404.
fn read_request(c: &mut Client) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 1024];
    let complete = match c.stream.read(&mut chunk) {
        Ok(0) => true,
        Ok(n) => {
            c.request.extend_from_slice(&chunk[..n]);
            c.request.windows(4).any(|w| w == b"\r\n\r\n") || c.request.len() > 8192
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    complete.then(|| std::mem::take(&mut c.request))
}

/// Writes what the socket takes; true when all is written or the connection failed.
fn write_response(c: &mut Client) -> bool {
    while let Some(rest) = c.response.get(c.written..).filter(|r| !r.is_empty()) {
        match c.stream.write(rest) {
            Ok(0) => return true,
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    true
}

/// Renders the workers' and the gateway's counters, the H.248 statistics and, per worker, the
/// depths of its rings (`rings`, as [`crate::gateway::Gateway::ring_depths`] gives them).
pub fn render(
    workers: &[std::sync::Arc<Published>],
    gw: &GatewayStats,
    rings: &[(usize, usize)],
    out: &mut String,
) {
    for (f, name) in WORKER_FIELDS.iter().enumerate() {
        let _ = writeln!(out, "# TYPE mgwd_worker_{name}_total counter");
        for (w, p) in workers.iter().enumerate() {
            let v = p.values[f].load(Ordering::Relaxed);
            let _ = writeln!(out, "mgwd_worker_{name}_total{{worker=\"{w}\"}} {v}");
        }
    }
    let t = &gw.transport;
    for (family, name, v) in [
        ("gateway", "installed", gw.installed),
        ("gateway", "install_failed", gw.install_failed),
        ("gateway", "released", gw.released),
        ("gateway", "notifies", gw.notifies),
        ("gateway", "updates", gw.updates),
        ("gateway", "ring_full", gw.ring_full),
        ("gateway", "secure_up", gw.secure_up),
        ("gateway", "secure_failed", gw.secure_failed),
        ("gateway", "tcp_failed", gw.tcp_failed),
        ("h248", "transmit_errors", t.transmit_errors),
        ("h248", "tcp_connect_failed", t.tcp_connect_failed),
        ("h248", "tcp_queue_overflow", t.tcp_queue_overflow),
        ("h248", "tcp_closed", t.tcp_closed),
        ("h248", "held_expired", t.held_expired),
    ] {
        let _ = writeln!(out, "# TYPE mgwd_{family}_{name}_total counter");
        let _ = writeln!(out, "mgwd_{family}_{name}_total {v}");
    }
    render_transactions(&gw.transactions, out);
    let _ = writeln!(out, "# TYPE mgwd_h248_held_replies gauge");
    let _ = writeln!(out, "mgwd_h248_held_replies {}", gw.held_replies);
    for (name, events) in [("ops", false), ("events", true)] {
        let _ = writeln!(out, "# TYPE mgwd_worker_{name}_ring_depth gauge");
        for (w, &(ops, evs)) in rings.iter().enumerate() {
            let depth = if events { evs } else { ops };
            let _ = writeln!(
                out,
                "mgwd_worker_{name}_ring_depth{{worker=\"{w}\"}} {depth}"
            );
        }
    }
}

/// The H.248 commands answered, by command and result, and the reply latency as a Prometheus
/// histogram (cumulative buckets in seconds).
fn render_transactions(t: &TransactionStats, out: &mut String) {
    let _ = writeln!(out, "# TYPE mgwd_h248_commands_total counter");
    for (c, name) in COMMANDS.iter().enumerate() {
        for (r, result) in ["ok", "error"].iter().enumerate() {
            let _ = writeln!(
                out,
                "mgwd_h248_commands_total{{command=\"{name}\",result=\"{result}\"}} {}",
                t.commands[c][r]
            );
        }
    }
    let _ = writeln!(out, "# TYPE mgwd_h248_reply_latency_seconds histogram");
    let mut cumulative = 0;
    for (i, n) in t.latency_buckets.iter().enumerate() {
        cumulative += n;
        match LATENCY_BUCKETS_US.get(i) {
            Some(us) => {
                let le = *us as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "mgwd_h248_reply_latency_seconds_bucket{{le=\"{le}\"}} {cumulative}"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "mgwd_h248_reply_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "mgwd_h248_reply_latency_seconds_sum {}",
        t.latency_sum_us as f64 / 1e6
    );
    let _ = writeln!(out, "mgwd_h248_reply_latency_seconds_count {}", t.replies);
}

/// Renders one DPDK port's extended statistics (`rte_eth_xstats_get`: names and values).
pub fn render_xstats(port: u16, xstats: &[(String, u64)], out: &mut String) {
    let _ = writeln!(out, "# TYPE mgwd_port_xstat counter");
    for (name, v) in xstats {
        let _ = writeln!(
            out,
            "mgwd_port_xstat{{port=\"{port}\",name=\"{name}\"}} {v}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn scrape_over_http() {
        let mut m = Metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr().unwrap();
        let p = Arc::new(Published::default());
        p.publish(&WorkerStats {
            relayed: 42,
            ..WorkerStats::default()
        });
        let workers = vec![Arc::clone(&p)];
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        });
        let start = Instant::now();
        while m.served == 0 && start.elapsed() < Duration::from_secs(5) {
            m.poll(|| {
                let mut out = String::new();
                let mut gw = GatewayStats::default();
                gw.transactions.commands[0] = [3, 1];
                gw.transactions.latency_buckets[0] = 2;
                gw.transactions.latency_buckets[3] = 1;
                gw.transactions.replies = 3;
                render(&workers, &gw, &[(1, 2)], &mut out);
                out
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = client.join().unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(
            r.contains("mgwd_worker_relayed_total{worker=\"0\"} 42"),
            "{r}"
        );
        assert!(r.contains("mgwd_gateway_installed_total 0"), "{r}");
        for line in [
            "mgwd_h248_commands_total{command=\"add\",result=\"ok\"} 3",
            "mgwd_h248_commands_total{command=\"add\",result=\"error\"} 1",
            "mgwd_h248_reply_latency_seconds_bucket{le=\"0.00005\"} 2",
            "mgwd_h248_reply_latency_seconds_bucket{le=\"0.0005\"} 3",
            "mgwd_h248_reply_latency_seconds_bucket{le=\"+Inf\"} 3",
            "mgwd_h248_reply_latency_seconds_count 3",
            "mgwd_h248_held_replies 0",
            "mgwd_worker_ops_ring_depth{worker=\"0\"} 1",
            "mgwd_worker_events_ring_depth{worker=\"0\"} 2",
        ] {
            assert!(r.contains(line), "{line} missing from\n{r}");
        }
    }

    /// Scrapers that send a request and never read the (large) answer used to hold the control
    /// thread for a 200 ms write timeout each; now a poll never waits on them.
    #[test]
    fn scrapers_that_stop_reading_do_not_block_the_poll() {
        let mut m = Metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr().unwrap();
        let big = "x".repeat(16 << 20);
        let clients: Vec<TcpStream> = (0..MAX_PENDING)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
                s
            })
            .collect();
        let start = Instant::now();
        while m.served < MAX_PENDING as u64 && start.elapsed() < Duration::from_secs(5) {
            m.poll(|| big.clone());
        }
        assert_eq!(m.served, MAX_PENDING as u64);
        // Eight 16 MB answers nobody reads: the polls returned with every one still being
        // written (before, each poll blocked in the write until its 200 ms timeout, then
        // dropped the connection).
        assert_eq!(m.pending.len(), MAX_PENDING, "still being written");
        assert!(m.pending.iter().all(|c| c.written < c.response.len()));
        // Past the client timeout they are dropped.
        std::thread::sleep(CLIENT_TIMEOUT + Duration::from_millis(100));
        m.poll(String::new);
        assert!(m.pending.is_empty());
        drop(clients);
    }
}
