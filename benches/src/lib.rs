//! Shared helpers for the mgwd benchmarks.
