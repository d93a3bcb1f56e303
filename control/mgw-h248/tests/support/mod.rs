//! Set-up shared by the server tests: a free loopback address and a server configuration.
// Each test binary uses the part it needs.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use mgw_h248::h248::association::AssociationConfig;
use mgw_h248::h248::ast::Mid;
use mgw_h248::h248::mg::MgConfig;
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::server::{ServerConfig, TransportKind};

/// A loopback UDP address no socket holds right now (bound, read, released).
pub fn free_loopback_addr() -> SocketAddr {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// A server on `bind` whose mId is that address, registering with `mgcs` after at most 1 ms,
/// with `transaction` as the transaction layer's settings (`reliable` is set for TCP) and the
/// MG model's defaults.
pub fn config(
    bind: SocketAddr,
    transport: TransportKind,
    mgcs: Vec<SocketAddr>,
    transaction: TransactionConfig,
    defer_replies: bool,
) -> ServerConfig {
    ServerConfig {
        bind,
        transport,
        mid: Mid::Ip {
            addr: bind.ip(),
            port: Some(bind.port()),
        },
        association: AssociationConfig {
            mgcs,
            max_avalanche_delay: Duration::from_millis(1),
            transaction: TransactionConfig {
                reliable: transport == TransportKind::Tcp,
                ..transaction
            },
            ..AssociationConfig::default()
        },
        mg: MgConfig::default(),
        defer_replies,
    }
}
