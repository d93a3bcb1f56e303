//! The `afpacket` backend: a Linux AF_PACKET raw socket on one interface, for hosts without
//! DPDK and for the interop tests on veths in namespaces.
//!
//! It costs one `recvfrom`/`send` syscall per frame, so it is a functional backend, not a fast
//! one (DPDK is the fast one). Frames land directly in pool buffers (no intermediate copy). The
//! kernel must not own the data-plane addresses on the interface: leave it without those IPs
//! (link up only), or the kernel answers our peers with RSTs and ARP replies of its own.
//! Offloads that hand us partial checksums (veth TX checksum offload) must be off on the peer
//! side; the edge verifies every checksum and drops what is wrong.
#![allow(unsafe_code)]

use mgw_core::buf::{PacketBuffer, PktBuf, Pool};
use mgw_core::port::{Batch, Port, PortStats};
use mgw_core::wire::EthernetAddress;
use std::io;

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `sockaddr_ll` want it.
fn eth_p_all_be() -> u16 {
    (libc::ETH_P_ALL as u16).to_be()
}

/// A port on one Linux interface through AF_PACKET.
#[derive(Debug)]
pub struct AfPacketPort {
    fd: libc::c_int,
    ifindex: libc::c_int,
    mac: EthernetAddress,
    max_frame: usize,
    pool: Pool,
    stats: PortStats,
}

/// The interface's MAC and MTU, asked of the kernel through the packet socket `fd`. Not from
/// sysfs: `/sys/class/net` shows the network namespace sysfs was mounted in, not the calling
/// thread's, so after `setns(2)` into another namespace it would name the wrong (or no) device.
fn link_info(fd: libc::c_int, ifname: &str) -> io::Result<(EthernetAddress, usize)> {
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value (and NUL-terminates the name).
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `fd` is an open socket; `req` is a valid ifreq with a NUL-terminated name.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &raw mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful SIOCGIFHWADDR filled the ifru_hwaddr member.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(hw.sa_data) {
        *m = b as u8;
    }
    // SAFETY: as above; SIOCGIFMTU reads the name and fills ifru_mtu.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &raw mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful SIOCGIFMTU filled the ifru_mtu member.
    let mtu = usize::try_from(unsafe { req.ifr_ifru.ifru_mtu })
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad MTU"))?;
    Ok((EthernetAddress(mac), mtu))
}

impl AfPacketPort {
    /// Opens interface `ifname` (in the calling thread's network namespace), with buffers from
    /// `pool`, whose data room must hold the interface's MTU plus the Ethernet header.
    ///
    /// # Errors
    /// The interface does not exist, the process may not open raw sockets (needs CAP_NET_RAW),
    /// or the pool's buffers are too small for the MTU.
    pub fn open(ifname: &str, pool: Pool) -> io::Result<AfPacketPort> {
        let cname = std::ffi::CString::new(ifname).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENODEV) => io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{ifname}: no such interface"),
                ),
                _ => e,
            });
        }
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(eth_p_all_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // From here on, dropping `port` (on any error) closes the socket.
        let mut port = AfPacketPort {
            fd,
            ifindex: ifindex as libc::c_int,
            mac: EthernetAddress([0; 6]),
            max_frame: 0,
            pool,
            stats: PortStats::default(),
        };
        let (mac, mtu) = link_info(fd, ifname)?;
        let max_frame = mtu + mgw_core::wire::ethernet::HEADER_LEN;
        if port.pool.data_room() < max_frame + mgw_core::buf::DEFAULT_HEADROOM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{ifname}: MTU {mtu} needs buffers of {} bytes",
                    max_frame + mgw_core::buf::DEFAULT_HEADROOM
                ),
            ));
        }
        port.mac = mac;
        port.max_frame = max_frame;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = eth_p_all_be();
        sll.sll_ifindex = port.ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll and we pass its exact size.
        let rc = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // Do not read back what we send (Linux ≥ 4.20); on older kernels outgoing frames are
        // skipped by their packet type in rx_burst instead.
        let one: libc::c_int = 1;
        // SAFETY: a valid c_int option value and its size; failure is harmless (see above).
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                (&one as *const libc::c_int).cast(),
                core::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            let size: libc::c_int = 8 << 20;
            // SAFETY: as above; without CAP_NET_ADMIN this fails and the default size stays.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    core::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        Ok(port)
    }

    /// Joins fanout group `group` (`PACKET_FANOUT_HASH`): the kernel spreads the interface's
    /// received frames over the group's sockets by a hash of their addresses and ports, the
    /// AF_PACKET counterpart of a NIC's RSS queues. One socket per worker, all in one group;
    /// the workers' steering takes care of frames hashed to the worker not owning their leg.
    ///
    /// # Errors
    /// The kernel refuses the group (another process uses the id with other settings).
    pub fn join_fanout(&mut self, group: u16) -> io::Result<()> {
        // Defragment before hashing, so every fragment of a datagram reaches the same socket.
        const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
        let arg = (u32::from(group)
            | ((libc::PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16))
            as libc::c_int;
        // SAFETY: a valid c_int option value and its exact size on our own socket.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                (&arg as *const libc::c_int).cast(),
                core::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one frame into `buf`'s tailroom; `Ok(false)` when nothing is waiting.
    fn recv_one(&mut self, buf: &mut PktBuf) -> io::Result<bool> {
        loop {
            let room = buf.spare_mut();
            // SAFETY: all-zero sockaddr_ll is valid.
            let mut from: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
            let mut len = core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `room` is valid for writes of `room.len()` bytes; `from`/`len` describe a
            // valid sockaddr_ll buffer. MSG_TRUNC makes the return value the real frame length.
            let n = unsafe {
                libc::recvfrom(
                    self.fd,
                    room.as_mut_ptr().cast(),
                    room.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(false),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            let n = n as usize;
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            if n > room.len() {
                // Larger than our buffers: counted and dropped, as a NIC drops oversize frames.
                self.stats.dropped += 1;
                continue;
            }
            buf.set_len(n);
            return Ok(true);
        }
    }
}

impl Drop for AfPacketPort {
    fn drop(&mut self) {
        // SAFETY: we own `fd` and close it exactly once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

impl Port for AfPacketPort {
    type Buffer = PktBuf;

    fn rx_burst(&mut self, batch: &mut Batch<PktBuf>) -> usize {
        let mut n = 0;
        while !batch.is_full() {
            let Some(mut b) = self.pool.alloc() else {
                self.stats.dropped += 1;
                break;
            };
            match self.recv_one(&mut b) {
                Ok(true) => {
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += b.len() as u64;
                    let _ = batch.push(b);
                    n += 1;
                }
                Ok(false) => break,
                Err(_) => {
                    self.stats.dropped += 1;
                    break;
                }
            }
        }
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<PktBuf>) -> usize {
        let mut taken = 0;
        for b in batch.iter() {
            let frame = b.as_ref();
            // SAFETY: `frame` is valid for reads of `frame.len()` bytes; the socket is bound,
            // so no destination address is needed.
            let rc = unsafe {
                libc::send(
                    self.fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    break; // The socket buffer is full: the rest stays with the caller.
                }
                // Anything else (oversize, link down) loses this frame, as a NIC would.
                self.stats.dropped += 1;
            } else {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += frame.len() as u64;
            }
            taken += 1;
        }
        batch.drain_front(taken);
        self.stats.tx_full += batch.len() as u64;
        taken
    }

    fn alloc(&mut self) -> Option<PktBuf> {
        self.pool.alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_a_clear_error() {
        let e = AfPacketPort::open("mgwd-no-such-if0", Pool::new(4, 2048)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
