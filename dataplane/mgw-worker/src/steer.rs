//! Context affinity across the workers of one port, by software redirect.
//!
//! Both legs of a context live on one worker (its TCP connections, (D)TLS sessions and relay
//! state are that worker's alone). A NIC without flow rules (no `rte_flow`, AF_PACKET fanout)
//! spreads frames by a hash of their addresses and ports (RSS), so a frame for a leg may land on
//! any worker. [`Steering`] is what the workers of one port share to fix that:
//!
//! - an owner table per local IPv4 address, indexed by port: which worker holds the leg
//!   (claimed at install, released at removal);
//! - one bounded lock-free inbox per worker, into which the others push frames that belong to
//!   it ([`Redirect::Frame`]), and neighbours they learned from ARP ([`Redirect::Neighbor`]), so
//!   a worker whose ARP reply was hashed elsewhere can still send.
//!
//! Everything is allocated in [`Steering::new`]; claiming, looking up, pushing and popping are
//! atomic operations on that memory: no lock, no allocation.

use crate::flow::ContextProgram;
use crate::worker::{Leg, LegKind, Worker};
use crossbeam::queue::ArrayQueue;
use mgw_core::port::{Port, BURST};
use mgw_core::time::Instant;
use mgw_core::wire::{ethernet, EtherType, EthernetAddress, IpProtocol, Ipv4Address, Ipv4Packet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// Ports per address.
const PORTS: usize = 1 << 16;

/// What one worker hands another.
#[derive(Debug)]
pub enum Redirect<B> {
    /// A whole received Ethernet frame, untouched, for a leg the receiving worker owns.
    Frame(B),
    /// A neighbour learned from ARP: (IPv4 address, MAC).
    Neighbor(Ipv4Address, EthernetAddress),
}

/// Why a claim was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// The address is not one of the steered ones (the leg is not steered, frames to it are
    /// handled wherever they land).
    UnknownAddress,
    /// Another worker (this index) holds the port.
    Owned(usize),
    /// The worker index is not below [`Steering::workers`].
    NoSuchWorker,
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimError::UnknownAddress => f.write_str("address is not steered"),
            ClaimError::Owned(w) => write!(f, "port is owned by worker {w}"),
            ClaimError::NoSuchWorker => f.write_str("no such worker"),
        }
    }
}

impl std::error::Error for ClaimError {}

/// The owner table and worker inboxes shared by the workers of one port.
pub struct Steering<B> {
    addrs: Box<[Ipv4Address]>,
    /// Per address, per port: 0 = no owner, else worker index + 1.
    owners: Box<[Box<[AtomicU16]>]>,
    inboxes: Box<[ArrayQueue<Redirect<B>>]>,
}

impl<B> std::fmt::Debug for Steering<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("addrs", &self.addrs)
            .field("workers", &self.inboxes.len())
            .finish_non_exhaustive()
    }
}

impl<B> Steering<B> {
    /// Steering for `workers` workers (at most 65,535) owning ports of `addrs`; each worker's
    /// inbox holds `inbox_capacity` messages (at least 1). Allocates 128 KiB per address.
    pub fn new(addrs: &[Ipv4Address], workers: usize, inbox_capacity: usize) -> Arc<Steering<B>> {
        let workers = workers.clamp(1, usize::from(u16::MAX));
        Arc::new(Steering {
            addrs: addrs.into(),
            owners: addrs
                .iter()
                .map(|_| (0..PORTS).map(|_| AtomicU16::new(0)).collect())
                .collect(),
            inboxes: (0..workers)
                .map(|_| ArrayQueue::new(inbox_capacity.max(1)))
                .collect(),
        })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// The steered addresses.
    pub fn addrs(&self) -> &[Ipv4Address] {
        &self.addrs
    }

    fn table(&self, addr: Ipv4Address) -> Option<&[AtomicU16]> {
        // A handful of addresses per port: a linear scan beats hashing.
        let i = self.addrs.iter().position(|a| *a == addr)?;
        Some(&self.owners[i])
    }

    /// The worker owning `(addr, port)`, if any.
    pub fn owner(&self, addr: Ipv4Address, port: u16) -> Option<usize> {
        let v = self.table(addr)?[usize::from(port)].load(Ordering::Acquire);
        (v != 0).then(|| usize::from(v - 1))
    }

    /// Makes `worker` the owner of `(addr, port)`. Claiming again by the same worker succeeds.
    ///
    /// # Errors
    /// [`ClaimError::UnknownAddress`] if `addr` is not steered, [`ClaimError::Owned`] if another
    /// worker holds the port, [`ClaimError::NoSuchWorker`] for an index out of range.
    pub fn claim(&self, addr: Ipv4Address, port: u16, worker: usize) -> Result<(), ClaimError> {
        if worker >= self.workers() {
            return Err(ClaimError::NoSuchWorker);
        }
        let slot = &self.table(addr).ok_or(ClaimError::UnknownAddress)?[usize::from(port)];
        // In range: workers() ≤ u16::MAX, so worker + 1 fits.
        let me = (worker + 1) as u16;
        match slot.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(v) if v == me => Ok(()),
            Err(v) => Err(ClaimError::Owned(usize::from(v - 1))),
        }
    }

    /// Gives up `(addr, port)` if `worker` still owns it; returns whether it did.
    pub fn release(&self, addr: Ipv4Address, port: u16, worker: usize) -> bool {
        let Some(t) = self.table(addr) else {
            return false;
        };
        let Ok(me) = u16::try_from(worker + 1) else {
            return false;
        };
        t[usize::from(port)]
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// How many ports are owned now, over all addresses (a full scan: for tests and reports,
    /// not the fast path).
    pub fn claimed(&self) -> usize {
        self.owners
            .iter()
            .map(|t| t.iter().filter(|o| o.load(Ordering::Relaxed) != 0).count())
            .sum()
    }

    /// Pushes `msg` into `worker`'s inbox.
    ///
    /// # Errors
    /// The message itself when the inbox is full or there is no such worker.
    pub fn push(&self, worker: usize, msg: Redirect<B>) -> Result<(), Redirect<B>> {
        match self.inboxes.get(worker) {
            Some(q) => q.push(msg),
            None => Err(msg),
        }
    }

    /// Takes the oldest message from `worker`'s inbox.
    pub fn pop(&self, worker: usize) -> Option<Redirect<B>> {
        self.inboxes.get(worker)?.pop()
    }

    /// True if `worker`'s inbox holds something.
    pub fn has_pending(&self, worker: usize) -> bool {
        self.inboxes.get(worker).is_some_and(|q| !q.is_empty())
    }

    /// The worker that should handle `frame`: the owner of its IPv4 destination and TCP/UDP
    /// destination port, if that is a steered address and the port is owned. Frames that are
    /// not IPv4 TCP/UDP, fragments (only the first carries ports; the edge drops them all
    /// anyway) and anything malformed give `None`: they are handled where they landed.
    pub fn owner_of_frame(&self, frame: &[u8]) -> Option<usize> {
        let (dst, port) = peek_ipv4_l4_dst(frame)?;
        self.owner(dst, port)
    }
}

/// The IPv4 destination and TCP/UDP destination port of an Ethernet frame, read in place.
/// `None` for anything else (ARP, IPv6, ICMP, fragments, truncated headers).
pub fn peek_ipv4_l4_dst(frame: &[u8]) -> Option<(Ipv4Address, u16)> {
    // EtherType at bytes 12..14 (no VLAN tags: the edge does not handle them either).
    let et = frame.get(12..ethernet::HEADER_LEN)?;
    if EtherType::from(u16::from_be_bytes([et[0], et[1]])) != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..]).ok()?;
    if ip.is_fragment() || !matches!(ip.protocol(), IpProtocol::Tcp | IpProtocol::Udp) {
        return None;
    }
    // TCP and UDP both carry the destination port at bytes 2..4 of their header.
    let l4 = ip.payload().get(2..4)?;
    Some((ip.dst_addr(), u16::from_be_bytes([l4[0], l4[1]])))
}

/// A worker's side of [`Steering`]: its index, and the stream-leg ports it still holds after
/// their context went.
pub(crate) struct WorkerSteer<B> {
    index: usize,
    shared: Arc<Steering<B>>,
    /// (address, port, release at): TCP legs keep their port after removal until their
    /// connection has finished closing in the stack (FIN exchange, TIME-WAIT), so the last
    /// segments still reach the stack that holds the connection, not a stranger's (which would
    /// answer RST).
    linger: Vec<(Ipv4Address, u16, Instant)>,
    /// Earliest release in `linger`.
    linger_next: Instant,
}

/// Ports newly claimed for one install (to give back if the install fails).
pub(crate) type Fresh = [Option<(Ipv4Address, u16)>; 2];

/// Messages taken from the inbox per poll (the port's burst, twice: one worker's receive burst
/// may be all redirects, and neighbours ride along).
const INBOX_PER_POLL: usize = 2 * BURST;

fn v4(a: std::net::SocketAddr) -> Option<(Ipv4Address, u16)> {
    match a.ip() {
        IpAddr::V4(ip) => Some((Ipv4Address(ip.octets()), a.port())),
        // Steering is by IPv4 address; IPv6 legs are handled where their frames land.
        IpAddr::V6(_) => None,
    }
}

impl<P: Port> Worker<P> {
    /// Makes this worker number `index` of the workers sharing `steering` (all on queues of one
    /// port). From now on it claims its legs' local ports at install and gives them back at
    /// removal, hands frames for other workers' legs to them, takes the frames they hand it,
    /// and shares the neighbours it learns from ARP. Call before any context is installed.
    /// Allocates the linger table (one entry per possible leg) here, once.
    ///
    /// # Errors
    /// [`ClaimError::NoSuchWorker`] if `index` is not below `steering.workers()`.
    pub fn set_steering(
        &mut self,
        index: usize,
        steering: Arc<Steering<P::Buffer>>,
    ) -> Result<(), ClaimError> {
        if index >= steering.workers() {
            return Err(ClaimError::NoSuchWorker);
        }
        self.steer = Some(WorkerSteer {
            index,
            shared: steering,
            linger: Vec::with_capacity(2 * self.slots.len()),
            linger_next: Instant::FAR_FUTURE,
        });
        Ok(())
    }

    /// This worker's index among the steered workers, if steered.
    pub fn steering_index(&self) -> Option<usize> {
        self.steer.as_ref().map(|s| s.index)
    }

    /// Ports of removed TCP legs this worker still holds until their connections have closed.
    pub fn lingering_ports(&self) -> usize {
        self.steer.as_ref().map_or(0, |s| s.linger.len())
    }

    /// Routes a received frame: `Some(frame)` to handle here, `None` if it went to (or, inbox
    /// full, was dropped for) the worker owning its destination port.
    pub(crate) fn steer_frame(&mut self, f: P::Buffer) -> Option<P::Buffer> {
        let Some(st) = self.steer.as_ref() else {
            return Some(f);
        };
        match st.shared.owner_of_frame(f.as_ref()) {
            Some(w) if w != st.index => {
                match st.shared.push(w, Redirect::Frame(f)) {
                    Ok(()) => self.stats.redirected_out += 1,
                    // The frame is freed here; TCP and (D)TLS recover as from a loss.
                    Err(_) => self.stats.redirect_dropped += 1,
                }
                None
            }
            _ => Some(f),
        }
    }

    /// Hands a neighbour this worker's edge learned from ARP to the other workers.
    pub(crate) fn share_neighbor(&mut self, ip: Ipv4Address, mac: EthernetAddress) {
        let Some(st) = self.steer.as_ref() else {
            return;
        };
        for w in (0..st.shared.workers()).filter(|&w| w != st.index) {
            match st.shared.push(w, Redirect::Neighbor(ip, mac)) {
                Ok(()) => self.stats.neighbors_shared += 1,
                Err(_) => self.stats.redirect_dropped += 1,
            }
        }
    }

    /// Takes what other workers handed this one (bounded), and gives back lingering ports that
    /// are due. Returns true if anything was done.
    pub(crate) fn steer_poll(&mut self) -> bool {
        let now = self.now;
        let Some(st) = self.steer.as_mut() else {
            return false;
        };
        let mut busy = false;
        if now >= st.linger_next {
            busy = true;
            let (shared, index) = (&st.shared, st.index);
            let mut next = Instant::FAR_FUTURE;
            st.linger.retain(|&(a, p, at)| {
                if at <= now {
                    shared.release(a, p, index);
                    false
                } else {
                    next = next.min(at);
                    true
                }
            });
            st.linger_next = next;
        }
        for _ in 0..INBOX_PER_POLL {
            let Some(msg) = self.steer.as_ref().and_then(|s| s.shared.pop(s.index)) else {
                break;
            };
            busy = true;
            match msg {
                Redirect::Frame(f) => {
                    self.stats.redirected_in += 1;
                    self.on_frame(f);
                }
                Redirect::Neighbor(ip, mac) => self.edge.add_neighbor(now, ip, mac),
            }
        }
        busy
    }

    /// When steering next has work: now if the inbox holds something, else the next linger release.
    pub(crate) fn steer_poll_at(&self) -> Option<Instant> {
        let st = self.steer.as_ref()?;
        if st.shared.has_pending(st.index) {
            return Some(self.now);
        }
        (st.linger_next != Instant::FAR_FUTURE).then_some(st.linger_next)
    }

    /// Claims both legs' local ports for this worker. `None` if another worker holds one (what
    /// this call claimed is given back); else the ports this call newly claimed.
    pub(crate) fn claim_legs(&mut self, p: &ContextProgram) -> Option<Fresh> {
        let st = self.steer.as_mut()?;
        let mut fresh: Fresh = [None, None];
        for (i, l) in p.legs.iter().enumerate() {
            let Some((a, port)) = v4(l.local) else {
                continue;
            };
            let mine = st.shared.owner(a, port) == Some(st.index);
            match st.shared.claim(a, port, st.index) {
                Ok(()) => {
                    if !mine {
                        fresh[i] = Some((a, port));
                    }
                    // A port lingering from an earlier context is live again: keep it.
                    st.linger.retain(|&(la, lp, _)| (la, lp) != (a, port));
                }
                Err(ClaimError::UnknownAddress) => {}
                Err(_) => {
                    for (a, port) in fresh.into_iter().flatten() {
                        st.shared.release(a, port, st.index);
                    }
                    return None;
                }
            }
        }
        Some(fresh)
    }

    /// Gives back ports claimed for an install that failed.
    pub(crate) fn unclaim(&mut self, fresh: Fresh) {
        if let Some(st) = self.steer.as_ref() {
            for (a, port) in fresh.into_iter().flatten() {
                st.shared.release(a, port, st.index);
            }
        }
    }

    /// A context is gone: its UDP ports are given back now, its TCP ports once their
    /// connections can have finished closing (TIME-WAIT plus one maximal retransmission).
    pub(crate) fn release_legs(&mut self, legs: &[Leg; 2]) {
        let linger = self.cfg.tcp.time_wait + self.cfg.tcp.max_rto;
        let now = self.now;
        let Some(st) = self.steer.as_mut() else {
            return;
        };
        for l in legs {
            let Some((a, port)) = v4(l.prog.local) else {
                continue;
            };
            let stream = matches!(l.kind, LegKind::Stream(_));
            if stream && st.linger.len() < st.linger.capacity() {
                let at = now + linger;
                st.linger.push((a, port, at));
                st.linger_next = st.linger_next.min(at);
            } else {
                st.shared.release(a, port, st.index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Address = Ipv4Address([192, 0, 2, 1]);
    const B: Ipv4Address = Ipv4Address([192, 0, 2, 2]);

    #[test]
    fn claim_release_owner() {
        let s = Steering::<u32>::new(&[A, B], 3, 4);
        assert_eq!(s.workers(), 3);
        assert_eq!(s.owner(A, 5000), None);
        s.claim(A, 5000, 2).unwrap();
        s.claim(A, 5000, 2).unwrap();
        assert_eq!(s.owner(A, 5000), Some(2));
        assert_eq!(s.owner(B, 5000), None);
        assert_eq!(s.claim(A, 5000, 0), Err(ClaimError::Owned(2)));
        assert_eq!(
            s.claim(Ipv4Address([1, 1, 1, 1]), 1, 0),
            Err(ClaimError::UnknownAddress)
        );
        assert_eq!(s.claim(A, 1, 3), Err(ClaimError::NoSuchWorker));
        assert!(!s.release(A, 5000, 0), "not the owner");
        assert_eq!(s.owner(A, 5000), Some(2));
        s.claim(B, 0, 0).unwrap();
        s.claim(B, 65535, 1).unwrap();
        assert_eq!(s.claimed(), 3);
        assert!(s.release(A, 5000, 2));
        assert!(s.release(B, 0, 0));
        assert!(s.release(B, 65535, 1));
        assert_eq!(s.claimed(), 0);
    }

    #[test]
    fn inbox_is_bounded_and_ordered() {
        let s = Steering::<u32>::new(&[A], 2, 2);
        assert!(s.push(1, Redirect::Frame(1)).is_ok());
        assert!(s
            .push(
                1,
                Redirect::Neighbor(B, EthernetAddress([2, 0, 0, 0, 0, 1]))
            )
            .is_ok());
        assert!(matches!(
            s.push(1, Redirect::Frame(3)),
            Err(Redirect::Frame(3))
        ));
        assert!(s.push(7, Redirect::Frame(4)).is_err());
        assert!(!s.has_pending(0));
        assert!(s.has_pending(1));
        assert!(matches!(s.pop(1), Some(Redirect::Frame(1))));
        assert!(matches!(s.pop(1), Some(Redirect::Neighbor(ip, _)) if ip == B));
        assert!(s.pop(1).is_none());
    }

    fn frame(proto: u8, frag: bool, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&28u16.to_be_bytes());
        if frag {
            ip[6] = 0x20; // more fragments
        }
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&B.0);
        ip[16..20].copy_from_slice(&A.0);
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn peeks_tcp_and_udp_only() {
        assert_eq!(peek_ipv4_l4_dst(&frame(17, false, 5000)), Some((A, 5000)));
        assert_eq!(peek_ipv4_l4_dst(&frame(6, false, 80)), Some((A, 80)));
        assert_eq!(peek_ipv4_l4_dst(&frame(1, false, 80)), None);
        assert_eq!(peek_ipv4_l4_dst(&frame(17, true, 5000)), None);
        let mut arp = frame(17, false, 5000);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(peek_ipv4_l4_dst(&arp), None);
        for n in 0..42 {
            assert_eq!(peek_ipv4_l4_dst(&frame(17, false, 5000)[..n]), None, "{n}");
        }
        let s = Steering::<u32>::new(&[A], 2, 2);
        s.claim(A, 5000, 1).unwrap();
        assert_eq!(s.owner_of_frame(&frame(17, false, 5000)), Some(1));
        assert_eq!(s.owner_of_frame(&frame(17, false, 5001)), None);
    }

    #[test]
    fn shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Steering<mgw_core::buf::PktBuf>>();
    }

    proptest::proptest! {
        /// Any bytes: no panic, and an answer only for what the edge would deliver as TCP/UDP.
        #[test]
        fn peek_never_panics_and_agrees_with_a_full_parse(
            mut bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..80),
            ipv4 in proptest::bool::ANY,
        ) {
            if ipv4 && bytes.len() >= 14 {
                bytes[12] = 0x08;
                bytes[13] = 0x00;
            }
            // Mostly well-formed IPv4 headers too, so the positive path is exercised.
            if ipv4 && bytes.len() >= 34 && bytes[0] & 3 != 0 {
                let total = (bytes.len() - 14) as u16;
                bytes[14] = 0x45;
                bytes[16..18].copy_from_slice(&total.to_be_bytes());
                bytes[23] = if bytes[1] & 1 == 0 { 6 } else { 17 };
            }
            if let Some((dst, port)) = peek_ipv4_l4_dst(&bytes) {
                let ip = Ipv4Packet::new_checked(&bytes[14..]).unwrap();
                proptest::prop_assert_eq!(ip.dst_addr(), dst);
                proptest::prop_assert!(!ip.is_fragment());
                proptest::prop_assert_eq!(&ip.payload()[2..4], &port.to_be_bytes()[..]);
            }
        }
    }
}
