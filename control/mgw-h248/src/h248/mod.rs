//! H.248.1 (Megaco) text protocol: typed AST, parser, emitter, and the layers built on them.
//!
//! - [`ast`]: the message tree.
//! - [`parse`](mod@parse): text → AST, with error code and position on failure.
//! - [`emit`](mod@emit): AST → text, pretty or compact.
//! - [`transaction`]: the sans-IO transaction layer (Annex D) and TPKT framing.
//! - [`association`]: registration with and failover between MGCs (§11).
//! - [`mg`]: contexts, terminations and command execution.
//! - [`packages`]: the package registry table.

pub mod association;
pub mod ast;
pub mod emit;
pub mod mg;
pub mod packages;
pub mod parse;
pub mod token;
pub mod transaction;

pub use ast::*;
pub use emit::{emit, emit_with_header, header, Style};
pub use parse::{parse_message, ParseError};

#[cfg(test)]
mod tests;
