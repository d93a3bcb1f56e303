//! The MSRP-over-TLS → worker → TCP workload of `relay_bench`, `msrp_rewrite_bench` and
//! `dpdk_bench`'s relay section: simulated UEs (TLS clients on our TCP stack) keep MSRP SEND
//! requests queued towards the gateway's access legs, and the core side (plain TCP listeners)
//! drains what the gateway relays.

use mgw_app::msrp::MsrpSend;
use mgw_core::port::Port;
use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address};
use mgw_tcp::{ConnId, EventKind};
use mgw_tls::{PeerFingerprints, SecurityRole, TlsContext};
use mgw_worker::flow::MsrpRoute;
use mgw_worker::peer::{TcpHost, TlsPeer};
use mgw_worker::{Application, ContextProgram, LegProgram, TcpRole, Transport};
use std::io::Write as _;
use std::net::SocketAddr;

/// The gateway's address.
pub const GW: Ipv4Address = Ipv4Address([10, 8, 0, 1]);
/// The UEs' address.
pub const UE: Ipv4Address = Ipv4Address([10, 8, 0, 2]);
/// The core's address.
pub const CORE: Ipv4Address = Ipv4Address([10, 8, 0, 3]);
/// The URI the UEs address (the gateway's access `a=path`).
pub const GW_ACCESS_URI: &str = "msrps://10.8.0.1:2855/gw;tcp";
/// The UEs' URI.
pub const UE_URI: &str = "msrps://10.8.0.2:9/ue;tcp";

/// MSRP SEND number `seq` (RFC 4975 §7.1.1) from the UE to the gateway, complete in one chunk:
/// transaction id and Message-ID `b` + `seq` in 10 digits, no Byte-Range.
pub fn msrp_send(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    write_msrp_send(seq, body, &mut m);
    m
}

/// Appends [`msrp_send`] `seq` to `out` without allocating (beyond `out`'s growth).
pub fn write_msrp_send(seq: u64, body: &[u8], out: &mut Vec<u8>) {
    // `format!("b{seq:010}")`, in a stack buffer: `b` and at most 20 digits.
    let mut tid = [0u8; 21];
    let unused = {
        let mut w = &mut tid[..];
        write!(w, "b{seq:010}").expect("21 bytes hold b and a u64");
        w.len()
    };
    let tid = &tid[..tid.len() - unused];
    MsrpSend::new(tid, GW_ACCESS_URI, UE_URI, tid)
        .body("text/plain", body)
        .write(out)
        .expect("a SEND with a valid transaction id");
}

/// Context `i`: the UE's TLS leg (gateway port 2000 + i, passive, verified by `ue_fp`) ↔ the
/// core's TCP leg (gateway port 40000 + i, active to the core's port 30000 + i), aware MSRP;
/// `routes` are the legs' MSRP rewriting routes (`None`: paths pass unchanged).
pub fn context(
    i: usize,
    ue_fp: PeerFingerprints,
    routes: [Option<MsrpRoute>; 2],
) -> ContextProgram {
    let leg = |local: SocketAddr, remote, transport, open, role, fps, msrp| LegProgram {
        local,
        remote,
        transport,
        tcp_role: open,
        establish_now: true,
        latching: true,
        security_role: role,
        peer_fingerprints: fps,
        msrp,
    };
    let [access, core] = routes;
    ContextProgram {
        context: i as u32,
        generation: 1,
        application: Application::Msrp,
        aware: true,
        legs: [
            leg(
                SocketAddr::from((GW.0, 2000 + i as u16)),
                None,
                Transport::TlsTcp,
                TcpRole::Passive,
                SecurityRole::Server,
                ue_fp,
                access,
            ),
            leg(
                SocketAddr::from((GW.0, 40_000 + i as u16)),
                Some(SocketAddr::from((CORE.0, 30_000 + i as u16))),
                Transport::Tcp,
                TcpRole::Active,
                SecurityRole::Client,
                PeerFingerprints::new(),
                core,
            ),
        ],
    }
}

/// The UEs and the core of one run, on the peers' TCP stack.
pub struct MsrpLoad {
    ue_ctx: TlsContext,
    gw_fp: PeerFingerprints,
    ues: Vec<Option<TlsPeer>>,
    ue_conns: Vec<ConnId>,
    core_conns: Vec<ConnId>,
    body: Vec<u8>,
    seq: u64,
    buf: Vec<u8>,
    /// The request being queued, written over for each one.
    msg: Vec<u8>,
    /// Requests the UEs have queued.
    pub sent_msgs: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Bytes the core has read.
    pub core_bytes: u64,
}

impl MsrpLoad {
    /// Listens on the core's ports and connects `sessions` UEs (they start TLS, with `ue_ctx`,
    /// verifying the gateway by `gw_fp`, once connected). Bodies are `body_len` bytes.
    ///
    /// # Errors
    /// The peers' stack refuses a listen or a connect.
    pub fn start<P: Port>(
        peers: &mut TcpHost<P>,
        sessions: usize,
        body_len: usize,
        ue_ctx: TlsContext,
        gw_fp: PeerFingerprints,
        now: Instant,
    ) -> Result<MsrpLoad, String> {
        let mut ue_conns = Vec::with_capacity(sessions);
        for i in 0..sessions {
            peers
                .tcp
                .listen(IpAddress::V4(CORE), 30_000 + i as u16)
                .map_err(|e| e.to_string())?;
            let c = peers
                .tcp
                .connect(
                    now,
                    (IpAddress::V4(UE), 50_000 + i as u16),
                    (IpAddress::V4(GW), 2000 + i as u16),
                )
                .map_err(|e| e.to_string())?;
            ue_conns.push(c);
        }
        Ok(MsrpLoad {
            ue_ctx,
            gw_fp,
            ues: (0..sessions).map(|_| None).collect(),
            ue_conns,
            core_conns: Vec::new(),
            body: (0..body_len).map(|k| b'a' + (k % 26) as u8).collect(),
            seq: 0,
            buf: vec![0u8; 256 * 1024],
            msg: Vec::new(),
            sent_msgs: 0,
            sent_bytes: 0,
            core_bytes: 0,
        })
    }

    /// One turn of the peers at `now`: TCP events (a connected UE starts TLS, the core accepts),
    /// each UE's TLS, ~64 KiB of requests kept queued per established UE, and the core drained.
    /// The caller then flushes and polls the peers and the worker.
    pub fn step<P: Port>(&mut self, peers: &mut TcpHost<P>, now: Instant) {
        while let Some(ev) = peers.tcp.poll_event() {
            match ev.kind {
                EventKind::Connected => {
                    if let Some(i) = self.ue_conns.iter().position(|c| *c == ev.conn) {
                        self.ues[i] = TlsPeer::client(&self.ue_ctx, ev.conn, self.gw_fp, now).ok();
                    }
                }
                EventKind::Accepted { .. } => self.core_conns.push(ev.conn),
                _ => {}
            }
        }
        for u in self.ues.iter_mut().flatten() {
            u.drive(&mut peers.tcp, now);
            u.received.clear();
            while u.is_established() && peers.tcp.send_space(u.conn).unwrap_or(0) > 64 * 1024 {
                self.seq += 1;
                self.msg.clear();
                write_msrp_send(self.seq, &self.body, &mut self.msg);
                if u.send(&mut peers.tcp, &self.msg) < self.msg.len() {
                    break;
                }
                self.sent_msgs += 1;
                self.sent_bytes += self.msg.len() as u64;
            }
        }
        for &c in &self.core_conns {
            while let Ok(n @ 1..) = peers.tcp.recv(c, &mut self.buf) {
                self.core_bytes += n as u64;
            }
        }
    }

    /// UEs whose TLS session is established.
    pub fn established(&self) -> usize {
        self.ues
            .iter()
            .flatten()
            .filter(|u| u.is_established())
            .count()
    }

    /// Core connections accepted.
    pub fn core_connections(&self) -> usize {
        self.core_conns.len()
    }

    /// Bytes of one request as the UEs send it.
    pub fn message_len(&self) -> usize {
        msrp_send(1, &self.body).len()
    }
}
