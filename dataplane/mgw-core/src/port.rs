//! The burst I/O abstraction. Its backends live in the `mgw-ports` crate.
//!
//! A [`Port`] moves whole bursts: `rx_burst` fills a fixed-capacity [`Batch`], `tx_burst` takes
//! buffers from the front of one and says how many it took (the rest stay with the caller, as
//! with `rte_eth_tx_burst`). Backends (in `mgw-ports`):
//! - `mem`: two in-memory ports joined by a simulated [`crate::link::Link`] (the simulator,
//!   `mgwd lab`, benches);
//! - `afpacket`: a Linux AF_PACKET socket; `dpdk` (feature `dpdk`) on `rte_mbuf`.
//!
//! Wrappers stack on any port: `pcap` records what crosses it, `fault` drops and corrupts.
//! A [`Node`] is what a driver polls: a worker, or a simulated host with its ports.

use crate::buf::PacketBuffer;
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// Default burst size, as DPDK applications commonly use.
pub const BURST: usize = 32;

/// A fixed-capacity burst of buffers. Its storage is allocated once, at construction; pushing
/// beyond capacity is refused, never grown.
#[derive(Debug)]
pub struct Batch<B> {
    bufs: Vec<B>,
    cap: usize,
}

impl<B> Batch<B> {
    /// A batch that holds up to `cap` buffers.
    pub fn new(cap: usize) -> Batch<B> {
        Batch {
            bufs: Vec::with_capacity(cap),
            cap,
        }
    }

    /// Adds a buffer; gives it back if the batch is full.
    ///
    /// # Errors
    /// The buffer itself, when full.
    pub fn push(&mut self, b: B) -> Result<(), B> {
        if self.bufs.len() >= self.cap {
            return Err(b);
        }
        self.bufs.push(b);
        Ok(())
    }

    /// Removes and returns the last buffer.
    pub fn pop(&mut self) -> Option<B> {
        self.bufs.pop()
    }

    /// Buffers held.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The most buffers the batch holds, fixed at construction.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        self.cap - self.bufs.len()
    }

    /// True if no slot is free.
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= self.cap
    }

    /// The buffers, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, B> {
        self.bufs.iter()
    }

    /// The buffers, writable.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, B> {
        self.bufs.iter_mut()
    }

    /// Removes the first `n` buffers (all if fewer) and hands them out in order.
    pub fn drain_front(&mut self, n: usize) -> std::vec::Drain<'_, B> {
        let n = n.min(self.bufs.len());
        self.bufs.drain(..n)
    }

    /// Removes every buffer.
    pub fn drain(&mut self) -> std::vec::Drain<'_, B> {
        self.bufs.drain(..)
    }

    /// Drops every buffer (returning pool buffers to their pool).
    pub fn clear(&mut self) {
        self.bufs.clear();
    }

    /// Keeps only the buffers for which `f` is true, preserving order.
    pub fn retain(&mut self, f: impl FnMut(&B) -> bool) {
        self.bufs.retain(f);
    }
}

/// Per-port counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted (taken by the port).
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames the port could not take (ring full) and left with the caller.
    pub tx_full: u64,
    /// Frames dropped inside the port or its link (drops by a wrapper are counted there).
    pub dropped: u64,
}

/// A network port with a burst API.
pub trait Port {
    /// The packet buffer this backend works in (a pool buffer, or an mbuf).
    type Buffer: PacketBuffer;

    /// Receives up to `batch.room()` frames, appending them to `batch`. Returns how many arrived.
    fn rx_burst(&mut self, batch: &mut Batch<Self::Buffer>) -> usize;

    /// Transmits frames from the front of `batch`, removing those taken. Returns how many were
    /// taken; the rest stay in `batch` for the caller to retry or drop.
    fn tx_burst(&mut self, batch: &mut Batch<Self::Buffer>) -> usize;

    /// A fresh buffer from this port's pool, with default headroom, or `None` if it is exhausted.
    fn alloc(&mut self) -> Option<Self::Buffer>;

    /// This port's MAC address.
    fn mac(&self) -> EthernetAddress;

    /// Largest frame (Ethernet header included, FCS excluded) the port carries.
    fn max_frame(&self) -> usize;

    /// This port's frame, byte and drop counters so far.
    fn stats(&self) -> PortStats;

    /// When something will next arrive without any action on this side (a simulated link's next
    /// delivery). Hardware ports return `None`: they are polled continuously.
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// True when the device computes TCP and UDP checksums of IPv4 frames on transmit (enabled
    /// offload): senders then write only the pseudo-header sum and mark the buffer
    /// ([`crate::buf::PacketBuffer::offload_l4_checksum`]). False: software computes them.
    fn tx_l4_checksum_offload(&self) -> bool {
        false
    }
}

/// Something the simulator drives: a host with ports, stacks and applications.
pub trait Node {
    /// Does all the work due at `now`: receive, process, transmit.
    fn poll(&mut self, now: Instant);
    /// When this node next needs polling (its earliest timer or frame delivery), if ever.
    fn poll_at(&self) -> Option<Instant>;
}
