//! `mgwd`: the media gateway data plane.
//!
//! - `mgwd lab` runs the embedded demo: a whole system in one process on in-memory ports.
//! - `mgwd run --config FILE` (the daemon) arrives with the relay issue; until then it is not a
//!   subcommand, rather than a stub.

mod gateway;
mod lab;

use clap::{Parser, Subcommand};

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
    /// Run the embedded lab: the data plane and simulated peers in one process, on in-memory ports.
    Lab(lab::LabArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Lab(args) => lab::run(&args),
    }
}
