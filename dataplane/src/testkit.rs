//! Support for tests that need a real peer (tshark, openssl, erl, root for namespaces).
//!
//! Such a test calls [`require`] first. When the tool is missing it prints why and the test
//! returns early, so `cargo test` on a bare machine passes; when `MGW_REQUIRE_PEERS=1` is set (as
//! `scripts/test.sh` does) a missing tool fails the test instead, so CI never silently skips.

use std::process::Command;

/// True when skipping is forbidden (`MGW_REQUIRE_PEERS=1`).
pub fn peers_required() -> bool {
    std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// True if `tool` runs (`tool --version` or `tool -version` exits at all).
pub fn have_tool(tool: &str) -> bool {
    ["--version", "-version", "version"]
        .iter()
        .any(|arg| Command::new(tool).arg(arg).output().is_ok())
}

/// True if the process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Checks that every tool in `tools` is present (and root, if `root`). Returns false, after
/// printing the reason, when the test should skip.
///
/// # Panics
/// When something is missing and [`peers_required`] is true.
pub fn require(test: &str, tools: &[&str], root: bool) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| !have_tool(t))
        .map(|t| (*t).to_string())
        .collect();
    if root && !is_root() {
        missing.push("root".into());
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: skipped, missing {}", missing.join(", "));
    assert!(
        !peers_required(),
        "{why} (MGW_REQUIRE_PEERS=1 forbids skipping)"
    );
    eprintln!("{why}");
    false
}
