//! An AF_PACKET raw socket bound to one interface: the smallest way to put a userspace stack on
//! a veth in tests. Every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::io;

/// `ETH_P_ALL` in network byte order, as `socket(2)` wants it.
fn eth_p_all_be() -> u16 {
    (libc::ETH_P_ALL as u16).to_be()
}

/// A raw packet socket on one interface.
pub struct RawSocket {
    fd: libc::c_int,
    ifindex: libc::c_int,
}

impl RawSocket {
    /// Opens a socket on `ifname` in the calling thread's network namespace.
    pub fn open(ifname: &str) -> io::Result<RawSocket> {
        let cname = std::ffi::CString::new(ifname).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain socket(2) call with constant arguments.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(eth_p_all_be())) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = RawSocket {
            fd,
            ifindex: ifindex as libc::c_int,
        };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = eth_p_all_be();
        sll.sll_ifindex = sock.ifindex;
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
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            let size: libc::c_int = 16 << 20;
            // SAFETY: `size` is a valid c_int and we pass its size; failure is harmless.
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
        Ok(sock)
    }

    /// Receives one incoming frame without blocking; `None` when nothing is waiting. Frames we
    /// sent ourselves (PACKET_OUTGOING) are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: as above, all-zero sockaddr_ll is valid.
            let mut from: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
            let mut len = core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `from`/`len` describe a
            // valid, writable sockaddr buffer.
            let n = unsafe {
                libc::recvfrom(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(n as usize));
        }
    }

    /// Sends one frame. Returns false when the socket has no buffer (back-pressure).
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        // SAFETY: `frame` is valid for reads of `frame.len()` bytes.
        let n = unsafe {
            libc::send(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => Ok(false),
                _ => Err(e),
            };
        }
        Ok(true)
    }

    /// Waits up to `timeout_ms` for a frame to arrive.
    pub fn wait(&self, timeout_ms: i32) {
        let mut p = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd.
        unsafe {
            libc::poll(&mut p, 1, timeout_ms);
        }
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: we own `fd` and close it once.
        unsafe {
            libc::close(self.fd);
        }
    }
}
