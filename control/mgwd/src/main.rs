//! `mgwd`: the media gateway data plane.
//!
//! - `mgwd lab` runs the embedded demo: the whole gateway and simulated peers in one process,
//!   on in-memory ports (`--netns`: peers on the Linux stack in a namespace), driven by an
//!   embedded MGC over H.248.
//! - `mgwd run --config FILE` runs the gateway daemon.

use clap::{Parser, Subcommand};
use mgwd::{lab, run};

#[derive(Parser)]
#[command(
    name = "mgwd",
    version,
    about = "mgwd: carrier-grade media gateway data plane (MSRP, BFCP, T.38 over TLS/DTLS)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the embedded lab: gateway, MGC and simulated peers in one process, on in-memory
    /// ports (or, with `--netns`, with the peers on the kernel stack in a network namespace).
    Lab(lab::LabArgs),
    /// Run the gateway daemon from a TOML configuration file.
    Run(run::RunArgs),
}

fn main() {
    let result = match Cli::parse().cmd {
        Cmd::Lab(args) => lab::run(&args),
        Cmd::Run(args) => run::run(&args),
    };
    if let Err(e) = result {
        // One line per cause, the outermost first: "bad configuration in F: realm[0].ipv4: ...".
        eprintln!("mgwd: {e:#}");
        std::process::exit(1);
    }
}
