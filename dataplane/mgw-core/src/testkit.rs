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

/// A global allocator for zero-allocation tests: it forwards everything to the system
/// allocator and counts the allocations and reallocations a thread makes while that thread
/// has counting switched on. Install it in a test binary with
/// `#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;`, then wrap the
/// code under test in [`CountingAllocator::count`] (or switch counting on and off around it).
/// Per thread, so peers or other tests running on other threads are never counted.
pub struct CountingAllocator;

thread_local! {
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl CountingAllocator {
    /// Switches counting on or off for the calling thread.
    pub fn set_counting(on: bool) {
        COUNTING.with(|c| c.set(on));
    }

    /// Allocations counted on the calling thread so far.
    pub fn allocations() -> u64 {
        COUNT.with(std::cell::Cell::get)
    }

    /// Allocations counted on the calling thread so far, and resets the count to zero.
    pub fn take() -> u64 {
        COUNT.with(|c| c.replace(0))
    }

    /// Runs `f` with counting on; its result and the allocations it made on this thread.
    pub fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
        let before = Self::allocations();
        let was = COUNTING.with(|c| c.replace(true));
        let r = f();
        COUNTING.with(|c| c.set(was));
        (r, Self::allocations() - before)
    }

    fn note() {
        // Const-initialised thread locals without destructors: reading them never allocates.
        if COUNTING.with(std::cell::Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; counting only touches thread-local cells.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        Self::note();
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        Self::note();
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        Self::note();
        // SAFETY: same contract as our caller's.
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}
