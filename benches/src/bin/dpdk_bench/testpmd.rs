//! `dpdk-testpmd` in io forwarding mode on the same device types as the stack figures, in a
//! separate process (its own `--file-prefix`, `--no-huge --no-shconf`, its own memif socket),
//! bounded by `timeout -s INT` (testpmd prints its final statistics on SIGINT and exits).
//!
//! The figure is packets received per second summed over both ports (each port's RX is sent out
//! of the other), averaged over the 1-second stats periods after the first (start-up), and the
//! bytes per second likewise: this machine's DPDK I/O ceiling for that device type with one
//! forwarding core.

use serde_json::{json, Value};
use std::process::Command;

/// One testpmd run.
pub struct Run<'a> {
    /// Label in the JSON (`net_null`, `net_ring`, `net_memif`).
    pub device: &'a str,
    /// `--vdev` arguments (two ports).
    pub vdevs: Vec<String>,
    /// Extra testpmd application arguments (`--tx-first`, `--txpkts=...`).
    pub app_args: Vec<&'a str>,
    /// Seconds of forwarding.
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

/// Runs testpmd and returns its figures, or `{"error": ...}` / `{"skipped": ...}`.
pub fn run(r: &Run<'_>) -> Value {
    let Some(bin) = binary() else {
        return json!({"skipped": "dpdk-testpmd not found (apt-get install dpdk-dev)"});
    };
    let prefix = format!("mgwtp{}{}", std::process::id(), r.device.replace('_', ""));
    let mut cmd = Command::new("timeout");
    cmd.args([
        "-s",
        "INT",
        "-k",
        "5",
        &(r.seconds + 1).to_string(),
        &bin,
        "--no-huge",
        "--no-shconf",
        "--file-prefix",
        &prefix,
        "--no-pci",
        "--no-telemetry",
        "-m",
        "512",
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
    cmd.stdin(std::process::Stdio::null());
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return json!({"error": format!("cannot run timeout/testpmd: {e}")}),
    };
    // timeout exits 124 after delivering SIGINT; testpmd itself exits 0 on SIGINT.
    let code = out.status.code();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if code != Some(0) && code != Some(124) {
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        return json!({"error": format!("testpmd exit {:?}: {}", code, tail.join(" | "))});
    }
    match parse(&text) {
        Some((pps, bps, samples)) => json!({
            "mpps": round3(pps / 1e6),
            "gbit_per_s": round3(bps / 1e9),
            "samples": samples,
            "seconds": r.seconds,
            "fwd_cores": 1,
            "vdevs": r.vdevs,
            "app_args": r.app_args,
        }),
        None => json!({"error": "no stats periods in testpmd output", "seconds": r.seconds}),
    }
}

/// Rounds to three decimals (for the JSON).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Parses the periodic "Rx-pps: N  Rx-bps: M" lines (one per port per period, two ports);
/// returns (packets/s, bits/s) summed over the ports and averaged over the periods after the
/// first, and the number of periods used.
fn parse(text: &str) -> Option<(f64, f64, usize)> {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("Rx-pps:") {
            continue;
        }
        let pps: f64 = it.next()?.parse().ok()?;
        if it.next() != Some("Rx-bps:") {
            continue;
        }
        let bps: f64 = it.next()?.parse().ok()?;
        pairs.push((pps, bps));
    }
    // The first period's rates are zero or include start-up.
    let periods: Vec<(f64, f64)> = pairs
        .chunks_exact(2)
        .skip(1)
        .map(|p| (p[0].0 + p[1].0, p[0].1 + p[1].1))
        .collect();
    if periods.is_empty() {
        return None;
    }
    let n = periods.len() as f64;
    let pps = periods.iter().map(|p| p.0).sum::<f64>() / n;
    let bps = periods.iter().map(|p| p.1).sum::<f64>() / n;
    Some((pps, bps, periods.len()))
}
