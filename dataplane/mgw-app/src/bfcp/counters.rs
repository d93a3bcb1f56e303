//! Per-leg BFCP counters, kept by the stream framer and the reassembler.

use super::Primitive;

/// Per-leg BFCP counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BfcpStats {
    /// Whole messages accepted, by primitive 0..=17 (index 0 counts unknown primitives).
    pub messages: [u64; 18],
    /// Fragments received.
    pub fragments: u64,
    /// Messages completed by reassembly.
    pub reassembled: u64,
    /// Reassemblies abandoned: timed out or evicted for lack of slots.
    pub reassembly_dropped: u64,
    /// Malformed messages or datagrams dropped.
    pub malformed: u64,
}

impl BfcpStats {
    /// Counts an accepted whole message.
    pub fn count(&mut self, p: Primitive) {
        let i = match u8::from(p) {
            n @ 1..=17 => usize::from(n),
            _ => 0,
        };
        self.messages[i] += 1;
    }
}
