//! `dpdk-testpmd` in io forwarding mode on the same device types as the stack figures, in a
//! separate process (its own `--file-prefix`, `--no-huge --no-shconf`, its own memif socket),
//! bounded by `timeout -s INT` (testpmd prints its final statistics on SIGINT and exits).
//!
//! The figure is packets received per second summed over both ports (each port's RX is sent out
//! of the other), averaged over the 1-second stats periods after the first and after any before
//! forwarding started (memif link-up), and the bits per second likewise: this machine's DPDK I/O
//! ceiling for that device type with one forwarding core. testpmd is stopped (SIGINT) once it
//! has printed the periods asked for; `timeout` bounds it in any case.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One testpmd run.
pub struct Run<'a> {
    /// Label in the JSON (`net_null`, `net_ring`, `net_memif`).
    pub device: &'a str,
    /// `--vdev` arguments (two ports).
    pub vdevs: Vec<String>,
    /// Extra testpmd application arguments (`--tx-first`, `--txpkts=...`).
    pub app_args: Vec<&'a str>,
    /// Stats periods (seconds) of forwarding measured, after the first.
    pub seconds: u64,
}

fn binary() -> Option<String> {
    if let Ok(p) = std::env::var("TESTPMD") {
        return Some(p);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v dpdk-testpmd"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!p.is_empty()).then_some(p)
}

/// Runs testpmd until it has printed `seconds` stats periods after the first (or `seconds + 20`
/// s have passed: start-up on a loaded machine varies), stops it with SIGINT, and returns its
/// figures, or `{"error": ...}` / `{"skipped": ...}`.
pub fn run(r: &Run<'_>) -> Value {
    let Some(bin) = binary() else {
        return json!({"skipped": "dpdk-testpmd not found (apt-get install dpdk-dev)"});
    };
    let prefix = format!("mgwtp{}{}", std::process::id(), r.device.replace('_', ""));
    let limit = r.seconds + 20;
    let mut cmd = Command::new("timeout");
    // `timeout` relays the SIGINT we send it to testpmd; -k kills a testpmd that ignores it.
    cmd.args([
        "-s",
        "INT",
        "-k",
        "5",
        &limit.to_string(),
        &bin,
        "--no-huge",
        "--no-shconf",
        "--file-prefix",
        &prefix,
        "--no-pci",
        "--no-telemetry",
        "-m",
        "256",
        "-l",
        "0,1",
        "--log-level=*:warning",
    ]);
    cmd.args(&r.vdevs);
    cmd.args([
        "--",
        "--forward-mode=io",
        "--auto-start",
        "--stats-period",
        "1",
        "--total-num-mbufs=8192",
    ]);
    cmd.args(&r.app_args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return json!({"error": format!("cannot run timeout/testpmd: {e}")}),
    };
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return json!({"error": "no pipes to testpmd"});
    };
    let (tx, rx) = mpsc::channel::<String>();
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        }),
    ];
    let mut text = String::new();
    let mut periods = Periods::default();
    let mut interrupted = false;
    let start = Instant::now();
    // Lines until both pipes close (testpmd exited) or the hard limit passes.
    while let Ok(line) = rx
        .recv_timeout(Duration::from_millis(200))
        .or_else(|e| match e {
            mpsc::RecvTimeoutError::Timeout if start.elapsed().as_secs() <= limit + 10 => {
                Ok(String::new())
            }
            e => Err(e),
        })
    {
        if line.is_empty() {
            continue;
        }
        periods.line(&line);
        text.push_str(&line);
        text.push('\n');
        if !interrupted && periods.measured.len() as u64 >= r.seconds {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            interrupted = true;
        }
    }
    if start.elapsed().as_secs() > limit + 10 {
        let _ = child.kill();
    }
    let status = child.wait();
    for t in readers {
        let _ = t.join();
    }
    // timeout exits 124 when it had to deliver SIGINT itself; testpmd exits 0 on SIGINT.
    let code = status.ok().and_then(|s| s.code());
    if code != Some(0) && code != Some(124) {
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        return json!({"error": format!("testpmd exit {:?}: {}", code, tail.join(" | "))});
    }
    match periods.average() {
        Some((pps, bps, samples)) => json!({
            "mpps": round3(pps / 1e6),
            "gbit_per_s": round3(bps / 1e9),
            "samples_1s": samples,
            "fwd_cores": 1,
            "vdevs": r.vdevs,
            "app_args": r.app_args,
            "wall_s_incl_startup": round3(start.elapsed().as_secs_f64()),
        }),
        None => json!({"error": "no stats periods in testpmd output", "seconds": r.seconds}),
    }
}

/// Rounds to three decimals (for the JSON).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The periodic "Rx-pps: N  Rx-bps: M" lines, one per port per period (two ports).
#[derive(Default)]
struct Periods {
    /// The first port's line of the current period.
    half: Option<(f64, f64)>,
    /// Periods seen.
    seen: u64,
    /// (packets/s, bits/s) summed over both ports, of the periods that count: not the first
    /// (it has no rate), and none before forwarding started (memif: before the link is up).
    measured: Vec<(f64, f64)>,
}

impl Periods {
    fn line(&mut self, line: &str) {
        let mut it = line.split_whitespace();
        if it.next() != Some("Rx-pps:") {
            return;
        }
        let Some(pps) = it.next().and_then(|v| v.parse::<f64>().ok()) else {
            return;
        };
        let bps = match (it.next(), it.next()) {
            (Some("Rx-bps:"), Some(v)) => v.parse::<f64>().unwrap_or(0.0),
            _ => 0.0,
        };
        match self.half.take() {
            None => self.half = Some((pps, bps)),
            Some((p0, b0)) => {
                self.seen += 1;
                let (p, b) = (p0 + pps, b0 + bps);
                if self.seen > 1 && (p > 0.0 || !self.measured.is_empty()) {
                    self.measured.push((p, b));
                }
            }
        }
    }

    /// (packets/s, bits/s, periods) averaged over the measured periods.
    fn average(&self) -> Option<(f64, f64, usize)> {
        if self.measured.is_empty() {
            return None;
        }
        let n = self.measured.len() as f64;
        let pps = self.measured.iter().map(|p| p.0).sum::<f64>() / n;
        let bps = self.measured.iter().map(|p| p.1).sum::<f64>() / n;
        Some((pps, bps, self.measured.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::Periods;

    #[test]
    fn periods_skip_the_first_and_idle_ones() {
        let mut p = Periods::default();
        for l in [
            "  Rx-pps:            0          Rx-bps:            0",
            "  Rx-pps:            0          Rx-bps:            0",
            "  RX-packets: 5  RX-missed: 0",
            "  Rx-pps:            0          Rx-bps:            0",
            "  Rx-pps:            0          Rx-bps:            0",
            "  Rx-pps:      4704472          Rx-bps:   2408689952",
            "  Rx-pps:      4704445          Rx-bps:   2408679368",
            "  Rx-pps:      4000000          Rx-bps:   2000000000",
            "  Rx-pps:      4000000          Rx-bps:   2000000000",
        ] {
            p.line(l);
        }
        let (pps, bps, n) = p.average().unwrap();
        assert_eq!(n, 2);
        assert!((pps - (9_408_917.0 + 8e6) / 2.0).abs() < 1.0);
        assert!((bps - (4_817_369_320.0 + 4e9) / 2.0).abs() < 1.0);
    }
}
