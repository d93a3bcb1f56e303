//! Shared test support: framing TCP segments in IPv4, the two-namespace lab, and the kernel
//! interop cases that run over any `mgw_core::port::Port`.
#![allow(dead_code)]

pub mod wire {
    use mgw_core::wire::{
        IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
    };

    /// Writes `seg` from `src` to `dst` as an IPv4 packet into `buf`; returns its length.
    pub fn ipv4_frame(
        src: Ipv4Address,
        dst: Ipv4Address,
        seg: &TcpRepr<'_>,
        buf: &mut [u8],
    ) -> usize {
        let tl = seg.buffer_len();
        let total = 20 + tl;
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::Tcp,
            payload_len: tl,
            hop_limit: 64,
            dscp_ecn: 0,
        };
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..total]);
        ip.emit(&mut p).expect("ip emit");
        let mut t = TcpPacket::new_unchecked(&mut buf[20..total]);
        seg.emit(&mut t, &IpAddress::V4(src), &IpAddress::V4(dst))
            .expect("tcp emit");
        total
    }

    pub fn v4(a: IpAddress) -> Ipv4Address {
        match a {
            IpAddress::V4(v) => v,
            IpAddress::V6(_) => panic!("IPv4 only here"),
        }
    }
}

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod interop;
pub mod netns;
