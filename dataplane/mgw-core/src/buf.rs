//! Packet buffers and fixed-size pools.
//!
//! [`PacketBuffer`] is the one buffer abstraction the data plane works on. It is shaped after a
//! DPDK mbuf (headroom, `prepend`/`adj` at the front, `append`/`trim` at the back, one contiguous
//! data room) so that the DPDK backend implements it directly on `rte_mbuf` with no copy, and the
//! protocol layers never know which backend they run on.
//!
//! [`PktBuf`] is the in-process implementation used by the `mem` backend, the simulator and the
//! benchmarks. It comes from a [`Pool`] of fixed capacity and goes back to that pool when dropped,
//! as an mbuf goes back to its mempool on `rte_pktmbuf_free`.

use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Default headroom reserved in front of a fresh buffer, as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;

/// A packet buffer: one contiguous data room with a movable data window.
///
/// `as_ref()`/`as_mut()` give the current data (`len()` bytes). Layers strip headers with
/// [`adj`](PacketBuffer::adj) on receive and push them with [`prepend`](PacketBuffer::prepend)
/// on transmit.
pub trait PacketBuffer: AsRef<[u8]> + AsMut<[u8]> {
    /// Bytes of data.
    fn len(&self) -> usize;
    /// True if there is no data.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Free bytes in front of the data.
    fn headroom(&self) -> usize;
    /// Free bytes after the data.
    fn tailroom(&self) -> usize;
    /// Grows the data window by `n` bytes at the front and returns them (as `rte_pktmbuf_prepend`).
    /// `None` if the headroom is too small; the buffer is then unchanged.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Grows the data window by `n` bytes at the back and returns them (as `rte_pktmbuf_append`).
    /// `None` if the tailroom is too small; the buffer is then unchanged.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front (as `rte_pktmbuf_adj`). False, and unchanged, if `n > len`.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back (as `rte_pktmbuf_trim`). False, and unchanged, if `n > len`.
    fn trim(&mut self, n: usize) -> bool;
    /// Empties the buffer and restores the default headroom (as `rte_pktmbuf_reset`).
    fn reset(&mut self);
    /// True when the NIC verified this received frame's TCP/UDP checksum and found it good
    /// (`RTE_MBUF_F_RX_L4_CKSUM_GOOD`), so software need not check it again.
    fn rx_l4_checksum_good(&self) -> bool {
        false
    }
    /// Asks the NIC to compute the TCP or UDP checksum of this Ethernet + IPv4 frame on
    /// transmit (`l3_len`: the IPv4 header's length); the L4 checksum field must then hold the
    /// pseudo-header sum. Only call it on a port whose [`crate::port::Port::tx_l4_checksum_offload`]
    /// is true. Returns false if this buffer type cannot carry the request.
    fn offload_l4_checksum(&mut self, l3_len: usize, tcp: bool) -> bool {
        let _ = (l3_len, tcp);
        false
    }
}

/// Where a pool keeps its free buffers and its counters; shared by the pool handle and every buffer.
#[derive(Debug)]
struct PoolShared {
    free: ArrayQueue<Box<[u8]>>,
    room: usize,
    headroom: usize,
    capacity: usize,
    created: AtomicUsize,
    alloc_failures: AtomicUsize,
}

/// A fixed-capacity pool of equally sized packet buffers.
///
/// Buffers are created lazily up to `capacity`, then only recycled: once warm, `alloc` and drop do
/// no heap allocation (a pop and a push on a lock-free bounded queue). Cloning the handle is cheap;
/// clones share the buffers. Exhaustion is not an error condition the pool hides: `alloc` returns
/// `None` and the failure is counted.
#[derive(Debug, Clone)]
pub struct Pool {
    shared: Arc<PoolShared>,
}

impl Pool {
    /// A pool of at most `capacity` buffers, each with `data_room` bytes (headroom included).
    ///
    /// # Panics
    /// If `capacity` is zero or `data_room` is not larger than the default headroom (a start-up
    /// configuration error, not a runtime one).
    pub fn new(capacity: usize, data_room: usize) -> Pool {
        assert!(capacity > 0, "pool capacity must be positive");
        assert!(
            data_room > DEFAULT_HEADROOM,
            "data room must exceed the headroom"
        );
        Pool {
            shared: Arc::new(PoolShared {
                free: ArrayQueue::new(capacity),
                room: data_room,
                headroom: DEFAULT_HEADROOM,
                capacity,
                created: AtomicUsize::new(0),
                alloc_failures: AtomicUsize::new(0),
            }),
        }
    }

    /// Creates every buffer now, so that later allocation never touches the heap.
    pub fn prefill(&self) {
        while self.shared.created.load(Ordering::Relaxed) < self.shared.capacity {
            self.shared.created.fetch_add(1, Ordering::Relaxed);
            let data = vec![0u8; self.shared.room].into_boxed_slice();
            if self.shared.free.push(data).is_err() {
                break;
            }
        }
    }

    /// Takes a buffer with the default headroom and no data, or `None` if all are in use.
    pub fn alloc(&self) -> Option<PktBuf> {
        let s = &self.shared;
        let data = match s.free.pop() {
            Some(d) => d,
            None => {
                // Lazily create up to capacity; compare-and-swap so racing allocators cannot
                // overshoot it.
                let mut n = s.created.load(Ordering::Relaxed);
                loop {
                    if n >= s.capacity {
                        s.alloc_failures.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    match s.created.compare_exchange_weak(
                        n,
                        n + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(cur) => n = cur,
                    }
                }
                vec![0u8; s.room].into_boxed_slice()
            }
        };
        Some(PktBuf {
            data: Some(data),
            head: s.headroom,
            len: 0,
            pool: Arc::clone(&self.shared),
        })
    }

    /// Takes a buffer and copies `bytes` into it.
    pub fn alloc_from(&self, bytes: &[u8]) -> Option<PktBuf> {
        let mut b = self.alloc()?;
        b.append(bytes.len())?.copy_from_slice(bytes);
        Some(b)
    }

    /// Most buffers this pool will hold.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Bytes of data room per buffer.
    pub fn data_room(&self) -> usize {
        self.shared.room
    }

    /// Buffers free right now (created and returned, or not created yet).
    pub fn available(&self) -> usize {
        let s = &self.shared;
        s.free.len() + (s.capacity - s.created.load(Ordering::Relaxed).min(s.capacity))
    }

    /// How many `alloc` calls found the pool empty.
    pub fn alloc_failures(&self) -> usize {
        self.shared.alloc_failures.load(Ordering::Relaxed)
    }
}

/// A buffer from a [`Pool`]; returns to it on drop.
#[derive(Debug)]
pub struct PktBuf {
    // Always `Some` until drop takes it back to the pool.
    data: Option<Box<[u8]>>,
    head: usize,
    len: usize,
    pool: Arc<PoolShared>,
}

impl PktBuf {
    fn room(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }

    fn room_mut(&mut self) -> &mut [u8] {
        self.data.as_deref_mut().unwrap_or(&mut [])
    }

    /// Sets the data length from the current start (for receive paths that fill the tailroom
    /// directly, such as a socket `recv` into [`PktBuf::spare_mut`]). Clamped to the room.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.room().len() - self.head);
    }

    /// The data window plus all tailroom, writable: fill it, then call [`PktBuf::set_len`].
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let h = self.head;
        &mut self.room_mut()[h..]
    }

    /// A copy of this buffer from the same pool, or `None` if the pool is empty.
    pub fn try_clone(&self) -> Option<PktBuf> {
        let pool = Pool {
            shared: Arc::clone(&self.pool),
        };
        let mut b = pool.alloc()?;
        b.head = self.head;
        b.len = self.len;
        let (h, l) = (self.head, self.len);
        b.room_mut()[h..h + l].copy_from_slice(&self.room()[h..h + l]);
        Some(b)
    }
}

impl Drop for PktBuf {
    fn drop(&mut self) {
        if let Some(d) = self.data.take() {
            // The queue holds `capacity` slots and at most `capacity` buffers exist, so this
            // push cannot fail; if it somehow did, the buffer is simply freed.
            let _ = self.pool.free.push(d);
        }
    }
}

impl AsRef<[u8]> for PktBuf {
    fn as_ref(&self) -> &[u8] {
        let (h, l) = (self.head, self.len);
        &self.room()[h..h + l]
    }
}

impl AsMut<[u8]> for PktBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        let (h, l) = (self.head, self.len);
        &mut self.room_mut()[h..h + l]
    }
}

impl PacketBuffer for PktBuf {
    fn len(&self) -> usize {
        self.len
    }
    fn headroom(&self) -> usize {
        self.head
    }
    fn tailroom(&self) -> usize {
        self.room().len() - self.head - self.len
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.head {
            return None;
        }
        self.head -= n;
        self.len += n;
        let h = self.head;
        Some(&mut self.room_mut()[h..h + n])
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let start = self.head + self.len;
        self.len += n;
        Some(&mut self.room_mut()[start..start + n])
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.len -= n;
        true
    }
    fn reset(&mut self) {
        self.head = self.pool.headroom.min(self.room().len());
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_prepend_adj_append_trim() {
        let pool = Pool::new(4, 256);
        let mut b = pool.alloc().unwrap();
        assert_eq!((b.len(), b.headroom(), b.tailroom()), (0, 128, 128));
        b.append(10).unwrap().copy_from_slice(b"0123456789");
        b.prepend(2).unwrap().copy_from_slice(b"hd");
        assert_eq!(b.as_ref(), b"hd0123456789");
        assert!(b.adj(2));
        assert!(b.trim(4));
        assert_eq!(b.as_ref(), b"012345");
        assert!(b.prepend(200).is_none());
        assert!(b.append(200).is_none());
        assert!(!b.adj(7) && !b.trim(7));
        assert_eq!(b.as_ref(), b"012345");
        b.reset();
        assert_eq!((b.len(), b.headroom()), (0, 128));
    }

    #[test]
    fn buffers_return_to_the_pool_on_drop() {
        let pool = Pool::new(2, 256);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        assert_eq!(pool.alloc_failures(), 1);
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.alloc().unwrap();
        drop((b, c));
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn clone_copies_data_and_window() {
        let pool = Pool::new(2, 256);
        let mut a = pool.alloc_from(b"abc").unwrap();
        a.prepend(1).unwrap()[0] = b'x';
        let b = a.try_clone().unwrap();
        assert_eq!(b.as_ref(), b"xabc");
        assert_eq!(b.headroom(), a.headroom());
    }
}
