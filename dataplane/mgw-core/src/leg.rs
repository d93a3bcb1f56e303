//! The words both planes use for a context's legs: which leg, its transport, the application it
//! carries, and the roles the MG takes on it. The control plane derives them from SDP and H.248
//! properties; the worker's programs and events carry them unchanged.

/// One of the two legs (terminations) of a context, in the order the MGC added them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first termination (by convention the access side).
    A,
    /// The second termination (by convention the core side).
    B,
}

impl Side {
    /// The other leg.
    pub const fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for A, 1 for B.
    pub const fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// The bearer transport of a leg (TS 29.334), from the SDP `m=` proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    TlsTcp,
    /// Plain UDP.
    Udp,
    /// DTLS over UDP.
    DtlsUdp,
}

impl Transport {
    /// True for the TCP-based transports.
    pub const fn is_tcp(self) -> bool {
        matches!(self, Transport::Tcp | Transport::TlsTcp)
    }
    /// True for the secured transports (TLS and DTLS).
    pub const fn is_secure(self) -> bool {
        matches!(self, Transport::TlsTcp | Transport::DtlsUdp)
    }
}

/// The application a leg carries, and so what the relay checks of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Application {
    /// A byte stream or datagrams passed unchanged (`TCP`, `TCP/TLS`).
    Opaque,
    /// MSRP (RFC 4975): framing checked, messages counted, paths rewritten when not CEMA.
    Msrp,
    /// BFCP (RFC 8855): common header and attributes checked.
    Bfcp,
    /// T.38 over UDPTL: sequence, IFP and error recovery checked, loss counted.
    Udptl,
}

/// The MG's TCP role on a leg (RFC 4145 `a=setup`, resolved against the remote's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRole {
    /// The MG connects (the remote said passive).
    Active,
    /// The MG listens and accepts (the remote said active, or TCP merge behind NAT).
    Passive,
}

/// The MG's (D)TLS role on a leg: the `a=setup` active side is the client (RFC 8842).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityRole {
    /// The MG is the (D)TLS client.
    Client,
    /// The MG is the (D)TLS server.
    Server,
}
