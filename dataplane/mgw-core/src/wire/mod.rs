//! Typed zero-copy wire views, smoltcp style.
//!
//! Every header gets a `Packet<T: AsRef<[u8]>>` view over caller-owned bytes (a pool buffer or,
//! later, a DPDK mbuf's data room) and a `Repr` value type:
//! - `Packet::new_checked` = `new_unchecked` + `check_len`; after it no accessor can panic, whatever
//!   the bytes are. Getters need `AsRef<[u8]>`, setters `AsMut<[u8]>`.
//! - `Repr::parse` validates fields (and checksums, where the caller asks), `Repr::emit` writes a
//!   header into a view, `Repr::header_len`/`buffer_len` say how many bytes that takes.
//! - Protocol numbers are enums with an `Unknown(n)` arm, so a strange value is data, not a panic.
//!
//! We write these in-house rather than take `smoltcp::wire` or `etherparse`; see
//! docs/ARCHITECTURE.md ("Wire views") for why.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use core::fmt;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use ipv4::{IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Address, Ipv6Packet, Ipv6Repr};
pub use tcp::{TcpFlags, TcpOptions, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// Why a view or a `Repr` refused some bytes. Small and `Copy`: the fast path counts these, it
/// never formats them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// Fewer bytes than the header (or a length field) says there are.
    Truncated,
    /// A field holds a value this protocol forbids (bad version, header length, option length...).
    Malformed,
    /// The checksum does not match.
    Checksum,
    /// The buffer given to `emit` is too small for what is to be written.
    BufferTooSmall,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::Malformed => "malformed header",
            WireError::Checksum => "bad checksum",
            WireError::BufferTooSmall => "buffer too small",
        })
    }
}

impl std::error::Error for WireError {}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, WireError>;

/// An IP address of either family, as the pseudo-header and the flow key need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpAddress {
    /// An IPv4 address (RFC 791).
    V4(Ipv4Address),
    /// An IPv6 address (RFC 8200).
    V6(Ipv6Address),
}

impl From<Ipv4Address> for IpAddress {
    fn from(a: Ipv4Address) -> Self {
        IpAddress::V4(a)
    }
}

impl From<Ipv6Address> for IpAddress {
    fn from(a: Ipv6Address) -> Self {
        IpAddress::V6(a)
    }
}

impl From<std::net::IpAddr> for IpAddress {
    fn from(a: std::net::IpAddr) -> Self {
        match a {
            std::net::IpAddr::V4(v4) => IpAddress::V4(Ipv4Address(v4.octets())),
            std::net::IpAddr::V6(v6) => IpAddress::V6(Ipv6Address(v6.octets())),
        }
    }
}

impl From<IpAddress> for std::net::IpAddr {
    fn from(a: IpAddress) -> Self {
        match a {
            IpAddress::V4(v4) => std::net::IpAddr::from(v4.0),
            IpAddress::V6(v6) => std::net::IpAddr::from(v6.0),
        }
    }
}

impl fmt::Display for IpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpAddress::V4(a) => a.fmt(f),
            IpAddress::V6(a) => a.fmt(f),
        }
    }
}
