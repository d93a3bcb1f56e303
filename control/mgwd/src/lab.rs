//! `mgwd lab`: the whole gateway in one process, on in-memory ports.
//!
//! - **Data plane:** one worker thread (`Worker` on a `mem` port: edge, userspace TCP, TLS and
//!   DTLS sessions, MSRP/BFCP/UDPTL awareness).
//! - **Control plane:** the real control thread (`Gateway` over the H.248 `Server`), bound to
//!   UDP on 127.0.0.1.
//! - **MGC:** an embedded MGC on the main thread that speaks H.248 text over loopback UDP: it
//!   answers the MG's ServiceChange, Adds one context per session (access and core
//!   terminations with SDP), reads each reply's Local SDP for the port, and Subtracts at the end.
//! - **Peers:** a simulated host on the other end of the `mem` link, carrying the UEs and the
//!   core peers on the same TCP stack: MSRP chat over TLS (UE) ↔ plain TCP (core), BFCP over TLS
//!   ↔ TCP, and T.38 UDPTL over DTLS ↔ plain UDP.
//!
//! With `--netns` (`lab/netns.rs`) the worker drives one end of a veth through AF_PACKET and the peers
//! are the Linux kernel's TCP and UDP sockets in a network namespace on the other end: the UEs
//! speak TLS with rustls and DTLS with dimpl over them. Everything else (MGC, H.248, view,
//! summary and its checks) is the same code.
//!
//! It shows a live view once a second and ends with a summary (`--json` for JSON only).

mod netns;

use crate::gateway::{Awareness, Gateway};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use hdrhistogram::Histogram;
use mgw_app::bfcp;
use mgw_app::msrp::{ByteRange, MsrpConfig, MsrpEvent, MsrpParser, MsrpResponse, MsrpSend};
use mgw_core::buf::Pool;
use mgw_core::edge::{EdgeConfig, InterfaceAddr};
use mgw_core::link::LinkModel;
use mgw_core::port::{Node, Port};
use mgw_core::time::{monotonic_now, Clock, Instant};
use mgw_core::wire::{EthernetAddress, IpAddress, Ipv4Address};
use mgw_h248::h248::association::AssociationConfig;
use mgw_h248::h248::ast::{
    CommandReply, ContextId, MessageBody, Mid, ReplyResult, Transaction, TransactionReply,
};
use mgw_h248::h248::mg::MgConfig;
use mgw_h248::procedures::Realms;
use mgw_h248::server::{Server, ServerConfig, ServerEvent, TransportKind};
use mgw_ports::mem::{pair, MemConfig, MemPort};
use mgw_tcp::{ConnId, EventKind};
use mgw_tls::dtls::DtlsOutput;
use mgw_tls::{
    DtlsConfig, DtlsEvent, DtlsSession, HashFunction, Identity, PeerFingerprints, SecurityRole,
    TlsContext, TlsSettings,
};
use mgw_worker::peer::{TcpHost, TlsPeer};
use mgw_worker::{channel, Doorbell, Worker, WorkerConfig, WorkerEnd, WorkerStats};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

const GW_ACCESS: Ipv4Address = Ipv4Address([10, 10, 0, 1]);
const GW_CORE: Ipv4Address = Ipv4Address([10, 20, 0, 1]);
const UE: Ipv4Address = Ipv4Address([10, 10, 0, 2]);
const CORE: Ipv4Address = Ipv4Address([10, 20, 0, 2]);

/// Options of `mgwd lab`.
#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// How long traffic runs, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Print one JSON summary at the end instead of the live view.
    #[arg(long)]
    pub json: bool,
    /// Sessions per kind, e.g. `msrp=8,bfcp=2,t38=2`.
    #[arg(long, default_value = "msrp=8,bfcp=2,t38=2")]
    pub sessions: String,
    /// MSRP chat body size in bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Requests each session keeps outstanding.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Loss probability on the simulated wire, each way (0..0.5).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// One-way delay of the simulated wire, in microseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_us: u64,
    /// H.248 transactions the embedded MGC keeps in flight while it sets up and tears down
    /// the sessions (1: one Add at a time).
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// While traffic runs, also set up and tear down this many extra MSRP calls per second
    /// (each an Add of two legs, then its Subtract; they carry no traffic).
    #[arg(long, default_value_t = 0)]
    pub churn: u32,
    /// Put the peers in a network namespace on the Linux kernel's TCP/UDP stack, reached over
    /// a veth that the worker drives through AF_PACKET (needs root).
    #[arg(long)]
    pub netns: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    msrp: usize,
    bfcp: usize,
    t38: usize,
}

fn parse_sessions(s: &str) -> Result<Counts> {
    let mut c = Counts::default();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--sessions: `{part}` is not kind=N"))?;
        let n: usize = v
            .trim()
            .parse()
            .map_err(|_| anyhow!("--sessions: `{v}` is not a number"))?;
        if n > 1000 {
            bail!("--sessions: {n} {k} sessions is more than the lab's 1000 per kind");
        }
        match k.trim() {
            "msrp" => c.msrp = n,
            "bfcp" => c.bfcp = n,
            "t38" => c.t38 = n,
            other => bail!("--sessions: unknown kind `{other}` (msrp, bfcp, t38)"),
        }
    }
    Ok(c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Msrp,
    Bfcp,
    T38,
}

/// Live counters shared by the peers thread and the view.
#[derive(Default)]
struct Live {
    up_msgs: [AtomicU64; 3],
    down_msgs: [AtomicU64; 3],
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
    handshakes: AtomicU64,
    errors: AtomicU64,
    /// MSRP frames whose To-Path was not the receiver's own URI.
    msrp_path_errors: AtomicU64,
}

fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Msrp => 0,
        Kind::Bfcp => 1,
        Kind::T38 => 2,
    }
}

// ------------------------------------------------------------------------------------------
// The embedded MGC.

struct Mgc {
    sock: UdpSocket,
    mg: SocketAddr,
    mid: String,
    next_id: u32,
}

impl Mgc {
    fn recv_text(&self, until: StdInstant) -> Result<Option<String>> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = until.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) if from == self.mg => {
                    return Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned()))
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits for the MG's ServiceChange and accepts it.
    fn accept_registration(&mut self) -> Result<()> {
        let until = StdInstant::now() + Duration::from_secs(10);
        while let Some(text) = self.recv_text(until)? {
            if let Some(id) = request_id(&text)
                .filter(|_| text.contains("SC=ROOT") || text.contains("ServiceChange=ROOT"))
            {
                let reply = format!("!/3 {} P={id}{{C=-{{SC=ROOT}}}}", self.mid);
                self.sock.send_to(reply.as_bytes(), self.mg)?;
                return Ok(());
            }
        }
        bail!("the MG did not register within 10 s")
    }

    /// Sends the transactions of `bodies`, keeping at most `inflight` of them unanswered, and
    /// returns their replies in the order of `bodies`. Records each one's time from sending
    /// to its reply in `latency` (µs). Pending is answered by waiting; Notify requests that
    /// arrive meanwhile are acknowledged; a request unanswered for a second is sent again
    /// (H.248.1 Annex D.1: the same transaction id, so the MG answers it once). Fails when no
    /// reply comes for 10 s.
    fn pipeline(
        &mut self,
        bodies: impl Iterator<Item = String>,
        inflight: usize,
        latency: &mut Histogram<u64>,
    ) -> Result<Vec<TransactionReply>> {
        struct Out {
            slot: usize,
            text: String,
            sent: StdInstant,
            last_tx: StdInstant,
        }
        let mut bodies = bodies.peekable();
        let mut waiting: HashMap<u32, Out> = HashMap::new();
        let mut replies: Vec<Option<TransactionReply>> = Vec::new();
        let mut progress = StdInstant::now();
        while bodies.peek().is_some() || !waiting.is_empty() {
            while waiting.len() < inflight.max(1) {
                let Some(body) = bodies.next() else { break };
                self.next_id += 1;
                let id = self.next_id;
                let text = format!("!/3 {} T={id}{{{body}}}", self.mid);
                self.sock.send_to(text.as_bytes(), self.mg)?;
                let now = StdInstant::now();
                waiting.insert(
                    id,
                    Out {
                        slot: replies.len(),
                        text,
                        sent: now,
                        last_tx: now,
                    },
                );
                replies.push(None);
            }
            if progress.elapsed() > Duration::from_secs(10) {
                bail!(
                    "no reply from the MG for 10 s ({} unanswered)",
                    waiting.len()
                );
            }
            for o in waiting.values_mut() {
                if o.last_tx.elapsed() > Duration::from_secs(1) {
                    self.sock.send_to(o.text.as_bytes(), self.mg)?;
                    o.last_tx = StdInstant::now();
                }
            }
            let Some(text) = self.recv_text(StdInstant::now() + Duration::from_millis(50))? else {
                continue;
            };
            let msg = mgw_h248::h248::parse_message(text.as_bytes())
                .map_err(|e| anyhow!("MG sent bad H.248: {e}"))?;
            let MessageBody::Transactions(ts) = msg.body else {
                continue;
            };
            for t in ts {
                match t {
                    Transaction::Reply(r) => {
                        if let Some(o) = waiting.remove(&r.id) {
                            record_duration(latency, o.sent.elapsed());
                            progress = StdInstant::now();
                            replies[o.slot] = Some(r);
                        }
                    }
                    Transaction::Pending(_) => progress = StdInstant::now(),
                    Transaction::Request(req) => {
                        // A Notify: acknowledge it with an empty reply.
                        let ack = format!("!/3 {} P={}{{C=-{{N=ROOT}}}}", self.mid, req.id);
                        self.sock.send_to(ack.as_bytes(), self.mg)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(replies.into_iter().flatten().collect())
    }

    /// The Add of a context for session `i` of `kind`: an access leg towards the UE (secured,
    /// latching) and a core leg towards the core peer.
    fn add_body(kind: Kind, i: usize, ue_fp: &str) -> String {
        let core_port = 30_000 + i as u16;
        let (access, core, events) = match kind {
            Kind::Msrp => (
                format!(
                    "v=0\nc=IN IP4 {UE}\nm=message 9 TCP/TLS/MSRP *\na=setup:active\na=accept-types:text/plain\n\
                     a=path:{}\na=fingerprint:{ue_fp}",
                    ue_msrp_path(i)
                ),
                format!(
                    "v=0\nc=IN IP4 {CORE}\nm=message {core_port} TCP/MSRP *\na=setup:passive\na=accept-types:text/plain\n\
                     a=path:{}",
                    core_msrp_path(i)
                ),
                "tcp/ef,tls/ef,tls/sr",
            ),
            Kind::Bfcp => (
                format!(
                    "v=0\nc=IN IP4 {UE}\nm=application 9 TCP/TLS/BFCP *\na=setup:active\na=floorctrl:c-only\n\
                     a=confid:1\na=userid:{i}\na=fingerprint:{ue_fp}"
                ),
                format!(
                    "v=0\nc=IN IP4 {CORE}\nm=application {core_port} TCP/BFCP *\na=setup:passive\na=floorctrl:s-only\n\
                     a=confid:1\na=userid:{i}"
                ),
                "tcp/ef,tls/ef,tls/sr",
            ),
            Kind::T38 => (
                format!(
                    "v=0\nc=IN IP4 {UE}\nm=image {} UDP/TLS/UDPTL t38\na=setup:active\na=tls-id:lab{i}\n\
                     a=T38FaxVersion:0\na=T38FaxUdpEC:t38UDPRedundancy\na=fingerprint:{ue_fp}",
                    32_000 + i
                ),
                format!("v=0\nc=IN IP4 {CORE}\nm=image {} udptl t38\na=T38FaxVersion:0\na=T38FaxUdpEC:t38UDPRedundancy", 34_000 + i),
                "dtls/ef,dtls/sr",
            ),
        };
        let (proto_l_a, proto_l_c) = match kind {
            Kind::Msrp => (
                "m=message $ TCP/TLS/MSRP *\na=fingerprint:$",
                "m=message $ TCP/MSRP *",
            ),
            Kind::Bfcp => (
                "m=application $ TCP/TLS/BFCP *\na=fingerprint:$",
                "m=application $ TCP/BFCP *",
            ),
            Kind::T38 => (
                "m=image $ UDP/TLS/UDPTL t38\na=fingerprint:$",
                "m=image $ udptl t38",
            ),
        };
        format!(
            "C=${{A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=access,ipnapt/latch=ON}},L{{\nv=0\nc=IN IP4 $\n{proto_l_a}\n}},R{{\n{access}\n}}}}}},E=1{{{events}}}}},\
             A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\n{proto_l_c}\n}},R{{\n{core}\n}}}}}},E=2{{{events}}}}}}}"
        )
    }

    /// The Add of churn call `i`: an MSRP context whose legs both wait for the peer to connect
    /// (the access leg as a session's, the core peer active too), so it needs no peer.
    fn churn_body(i: usize, ue_fp: &str) -> String {
        format!(
            "C=${{A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=access,ipnapt/latch=ON}},L{{\nv=0\nc=IN IP4 $\n\
             m=message $ TCP/TLS/MSRP *\na=fingerprint:$\n}},R{{\nv=0\nc=IN IP4 {UE}\n\
             m=message 9 TCP/TLS/MSRP *\na=setup:active\na=accept-types:text/plain\na=path:{}\n\
             a=fingerprint:{ue_fp}\n}}}}}}}},\
             A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}},\
             R{{\nv=0\nc=IN IP4 {CORE}\nm=message 9 TCP/MSRP *\na=setup:active\n\
             a=accept-types:text/plain\na=path:msrp://{CORE}:9/churn{i};tcp\n}}}}}}}}}}",
            ue_msrp_path(i)
        )
    }

    /// The context id of an Add's reply and its access leg as the Local SDP describes it
    /// (where the UE connects, the MG's MSRP URI).
    fn added(reply: TransactionReply) -> Result<(u32, GwLeg)> {
        let ReplyResult::Actions(actions) = reply.result else {
            bail!("Add refused: {:?}", reply.result)
        };
        let a = actions.first().ok_or_else(|| anyhow!("empty Add reply"))?;
        if let Some(e) = &a.error {
            bail!("Add refused: {} {:?}", e.code, e.text);
        }
        let ContextId::Id(ctx) = a.context else {
            bail!("Add reply without a context id")
        };
        let Some(CommandReply::Add(access_reply)) = a.replies.first() else {
            bail!("Add reply without the access termination")
        };
        let local = access_reply
            .audit
            .media
            .as_ref()
            .and_then(|m| m.streams.first())
            .and_then(|s| s.local.clone())
            .ok_or_else(|| anyhow!("Add reply without Local SDP"))?;
        let msrp_path = local
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=path:"))
            .map(|p| p.trim().to_string());
        if msrp_path.as_deref() == Some("") {
            bail!("Add reply with an empty a=path");
        }
        Ok((
            ctx,
            GwLeg {
                addr: local_addr(&local)?,
                msrp_path,
            },
        ))
    }

    /// True when a Subtract's reply carries the subtracted terminations, not an error.
    fn subtracted(reply: &TransactionReply) -> bool {
        matches!(&reply.result, ReplyResult::Actions(a)
            if a.iter().all(|a| a.error.is_none() && !a.replies.is_empty()))
    }
}

/// The gateway's access leg of one session, from the Add reply's Local SDP.
#[derive(Debug, Clone)]
struct GwLeg {
    /// Where the UE connects or sends.
    addr: SocketAddr,
    /// MSRP: the URI the MG's Local SDP `a=path` gives (RFC 4975 §8.1), if any: the UE's To-Path.
    msrp_path: Option<String>,
}

fn request_id(text: &str) -> Option<u32> {
    let msg = mgw_h248::h248::parse_message(text.as_bytes()).ok()?;
    let MessageBody::Transactions(ts) = msg.body else {
        return None;
    };
    ts.into_iter().find_map(|t| match t {
        Transaction::Request(r) => Some(r.id),
        _ => None,
    })
}

/// The address in an SDP answer's `c=` and `m=` lines.
fn local_addr(sdp: &str) -> Result<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .ok_or_else(|| anyhow!("Local SDP without c=: {sdp}"))?;
    let port = sdp
        .lines()
        .find_map(|l| {
            l.strip_prefix("m=")
                .and_then(|m| m.split_whitespace().nth(1))
        })
        .ok_or_else(|| anyhow!("Local SDP without m=: {sdp}"))?;
    Ok(SocketAddr::new(ip.trim().parse()?, port.parse()?))
}

// ------------------------------------------------------------------------------------------
// What the peers say, whatever carries it.

/// The UE's URI of session `i`, as the MGC's Remote SDP `a=path` gives it.
fn ue_msrp_path(i: usize) -> String {
    format!("msrps://{UE}:9/ue{i};tcp")
}

/// The core's URI of session `i`, as the MGC's Remote SDP `a=path` gives it.
fn core_msrp_path(i: usize) -> String {
    format!("msrp://{CORE}:{}/core{i};tcp", core_port(Kind::Msrp, i))
}

/// Whether the To-Path of the frame `p` just parsed is `own` (RFC 4975 §7.3: a receiver takes
/// only what is addressed to it).
fn addressed_to(p: &MsrpParser, own: &str) -> bool {
    p.frame()
        .to_path
        .is_some_and(|s| mgw_app::msrp::paths_equivalent(&p.head()[s.range()], own.as_bytes()))
}

/// A SEND from `from_path` to `to_path` (RFC 4975 §7.1.1) carrying `body` whole; the
/// transaction id is also the Message-ID.
///
/// # Panics
/// When the frame would not parse, which the lab's transaction ids, bodies and paths (its own,
/// or a non-empty `a=path` from the MG) never make it.
fn msrp_send(tid: &str, to_path: &str, from_path: &str, body: &[u8]) -> Vec<u8> {
    MsrpSend::new(tid, to_path, from_path, tid)
        .byte_range(ByteRange::whole(body.len() as u64))
        .body("text/plain", body)
        .to_vec()
        .expect("a SEND from the lab's ids, paths and body")
}

/// The 200 OK to the request `p` just parsed whole: To-Path is the first URI of the request's
/// From-Path, From-Path the first URI of its To-Path, the receiver's own (RFC 4975 §7.2).
/// `None` when a path names no URI: there is no one to answer.
fn msrp_ok(p: &MsrpParser) -> Option<Vec<u8>> {
    let head = p.head();
    let first = |span: Option<mgw_app::msrp::Span>| {
        span.and_then(|s| mgw_app::msrp::path_uris(&head[s.range()]).next())
    };
    let (to, from) = (first(p.frame().from_path)?, first(p.frame().to_path)?);
    MsrpResponse::ok(p.transaction_id(), to, from).to_vec().ok()
}

/// A BFCP FloorRequest (RFC 8855 §5.3.1) for `floor`, version 1 (over TCP).
fn bfcp_floor_request(conf: u32, tid: u16, user: u16, floor: u16) -> Vec<u8> {
    let mut m = Vec::new();
    bfcp::floor_request(
        &mut m,
        &bfcp::Header::new(1, conf, tid, user),
        &bfcp::FloorRequest::new(&[floor]),
    )
    .expect("a FloorRequest for one floor");
    m
}

/// The answer a floor chair gives: FloorRequestStatus (RFC 8855 §5.3.4), same ids, version 1.
/// The common header alone: the UE counts answers without reading them, so the lab leaves out
/// the FLOOR-REQUEST-INFORMATION a real one carries.
fn bfcp_status(conf: u32, tid: u16, user: u16) -> Vec<u8> {
    let mut m = Vec::new();
    let h = bfcp::Header::new(1, conf, tid, user);
    bfcp::MessageWriter::new(&mut m, &h, bfcp::Primitive::FloorRequestStatus)
        .finish()
        .expect("a common header");
    m
}

/// The length of the BFCP message at the front of `b` (RFC 8855 §5.1: 12-byte common header,
/// Payload Length in 4-octet units), if all of it is there.
fn bfcp_frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 12 {
        return None;
    }
    let len = 12 + 4 * usize::from(u16::from_be_bytes([b[2], b[3]]));
    (b.len() >= len).then_some(len)
}

fn udptl_packet(seq: u16) -> Vec<u8> {
    use mgw_app::udptl::{ErrorRecovery, IfpList, UdptlRepr};
    let ifp = [0x00u8, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70].repeat(20);
    let prev = [0x11u8; 40];
    let items: [&[u8]; 1] = [&prev];
    let r = UdptlRepr {
        seq_number: seq,
        primary_ifp: &ifp,
        error_recovery: ErrorRecovery::Redundancy(IfpList::Items(if seq == 0 {
            &[]
        } else {
            &items
        })),
    };
    let mut out = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// Records `d` in a histogram of [`new_rtt`] (nanoseconds, at least 1).
fn record_duration(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

/// p50, p99, p99.9 and max of a histogram of [`new_rtt`], in µs.
fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let us = |ns: u64| ns as f64 / 1000.0;
    json!({
        "p50": us(h.value_at_quantile(0.5)),
        "p99": us(h.value_at_quantile(0.99)),
        "p999": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
        "samples": h.len(),
    })
}

fn record_rtt(rtt: &mut Histogram<u64>, now: Instant, t0: Instant) {
    record_duration(rtt, now.saturating_duration_since(t0));
}

/// The application side of one MSRP or BFCP session, the same on every wire: the core frames
/// each request and answers it (MSRP 200 OK, BFCP FloorRequestStatus); the UE keeps `window`
/// requests outstanding, counts the answers and measures round trips.
struct Exchange {
    kind: Kind,
    i: usize,
    /// MSRP: where the UE sends (the URI of the MG's Local SDP).
    to_path: String,
    /// MSRP: the MG gave its own URI, so it rewrites paths between the legs and the core must
    /// see its own URI as To-Path.
    rewrites: bool,
    /// Core side: BFCP bytes not yet framed.
    core_rx: Vec<u8>,
    core_parser: MsrpParser,
    /// UE side: BFCP bytes not yet framed.
    ue_rx: Vec<u8>,
    ue_parser: MsrpParser,
    /// Send times of requests not yet answered, oldest first.
    outstanding: VecDeque<Instant>,
    seq: u64,
}

impl Exchange {
    /// Session `i` of `kind`; `gw_path` is the MSRP URI of the MG's Local SDP, if it gave one.
    fn new(kind: Kind, i: usize, gw_path: Option<&str>) -> Self {
        Exchange {
            kind,
            i,
            rewrites: gw_path.is_some(),
            to_path: gw_path.map_or_else(|| format!("msrps://{GW_ACCESS}/s{i};tcp"), str::to_owned),
            core_rx: Vec::new(),
            core_parser: MsrpParser::new(MsrpConfig::default()),
            ue_rx: Vec::new(),
            ue_parser: MsrpParser::new(MsrpConfig::default()),
            outstanding: VecDeque::new(),
            seq: 0,
        }
    }

    /// The core received `data` from the gateway; returns the answers it sends back (each one
    /// a request that made it UE→core).
    fn core_received(&mut self, data: &[u8], live: &Live) -> Vec<Vec<u8>> {
        live.up_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut answers = Vec::new();
        match self.kind {
            Kind::Msrp => {
                let mut feed = self.core_parser.feed(data);
                loop {
                    match feed.next_event() {
                        Ok(Some(MsrpEvent::End { .. })) => {
                            let p = feed.parser();
                            if self.rewrites && !addressed_to(p, &core_msrp_path(self.i)) {
                                live.msrp_path_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            match msrp_ok(p) {
                                Some(ok) => answers.push(ok),
                                None => {
                                    live.errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => {
                            live.errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
            Kind::Bfcp => {
                self.core_rx.extend_from_slice(data);
                while let Some(len) = bfcp_frame_len(&self.core_rx) {
                    let r = &self.core_rx;
                    let conf = u32::from_be_bytes([r[4], r[5], r[6], r[7]]);
                    let tid = u16::from_be_bytes([r[8], r[9]]);
                    let user = u16::from_be_bytes([r[10], r[11]]);
                    answers.push(bfcp_status(conf, tid, user));
                    self.core_rx.drain(..len);
                }
            }
            Kind::T38 => {}
        }
        live.up_msgs[kind_index(self.kind)].fetch_add(answers.len() as u64, Ordering::Relaxed);
        answers
    }

    /// The UE received plaintext `data`: counts the answers in it and their round trips.
    fn ue_received(&mut self, data: &[u8], now: Instant, rtt: &mut Histogram<u64>, live: &Live) {
        if data.is_empty() {
            return;
        }
        live.down_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut answered = 0u64;
        match self.kind {
            Kind::Msrp => {
                let mut feed = self.ue_parser.feed(data);
                while let Ok(Some(ev)) = feed.next_event() {
                    if matches!(ev, MsrpEvent::End { .. }) {
                        answered += 1;
                        if !addressed_to(feed.parser(), &ue_msrp_path(self.i)) {
                            live.msrp_path_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Kind::Bfcp => {
                self.ue_rx.extend_from_slice(data);
                while let Some(len) = bfcp_frame_len(&self.ue_rx) {
                    self.ue_rx.drain(..len);
                    answered += 1;
                }
            }
            Kind::T38 => {}
        }
        for _ in 0..answered {
            if let Some(t0) = self.outstanding.pop_front() {
                record_rtt(rtt, now, t0);
            }
        }
        live.down_msgs[kind_index(self.kind)].fetch_add(answered, Ordering::Relaxed);
    }

    /// The next request, if fewer than `window` are outstanding; call [`Exchange::sent`] once
    /// it is on its way.
    fn next_request(&mut self, window: usize, body: &[u8]) -> Option<Vec<u8>> {
        if self.outstanding.len() >= window {
            return None;
        }
        self.seq += 1;
        Some(match self.kind {
            Kind::Msrp => msrp_send(
                &format!("s{}m{}", self.i, self.seq),
                &self.to_path,
                &ue_msrp_path(self.i),
                body,
            ),
            _ => bfcp_floor_request(1, self.seq as u16, self.i as u16, 1),
        })
    }

    fn sent(&mut self, now: Instant) {
        self.outstanding.push_back(now);
    }
}

/// The application side of one T.38 session: the UE sends UDPTL pages over DTLS, the core's
/// fax endpoint answers each packet with one of its own.
struct FaxApp {
    up: bool,
    seq: u16,
    outstanding: VecDeque<Instant>,
    deadline: Instant,
}

impl FaxApp {
    fn new() -> Self {
        FaxApp {
            up: false,
            seq: 0,
            outstanding: VecDeque::new(),
            deadline: Instant::ZERO,
        }
    }

    /// The core received a UDPTL packet: its answer.
    fn core_answer(d: &[u8], live: &Live) -> Vec<u8> {
        live.up_msgs[2].fetch_add(1, Ordering::Relaxed);
        live.up_bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
        let seq = u16::from_be_bytes([
            d.first().copied().unwrap_or(0),
            d.get(1).copied().unwrap_or(0),
        ]);
        udptl_packet(seq)
    }

    /// Runs the UE's DTLS session after input or a timeout: transmits through `tx`, counts
    /// handshakes, answers and errors.
    fn drive(
        &mut self,
        dtls: &mut DtlsSession,
        now: Instant,
        rtt: &mut Histogram<u64>,
        live: &Live,
        mut tx: impl FnMut(&[u8]),
    ) {
        if now >= self.deadline {
            let _ = dtls.handle_timeout(now);
        }
        let mut buf = [0u8; 2048];
        loop {
            match dtls.poll(&mut buf) {
                DtlsOutput::Transmit(d) => tx(d),
                DtlsOutput::Data(d) => {
                    live.down_msgs[2].fetch_add(1, Ordering::Relaxed);
                    live.down_bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                    if let Some(t0) = self.outstanding.pop_front() {
                        record_rtt(rtt, now, t0);
                    }
                }
                DtlsOutput::Event(DtlsEvent::Established { .. }) => {
                    self.up = true;
                    live.handshakes.fetch_add(1, Ordering::Relaxed);
                }
                DtlsOutput::Event(DtlsEvent::Failed { .. }) => {
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
                DtlsOutput::Event(_) => {}
                DtlsOutput::BufferTooSmall { .. } => break,
                DtlsOutput::Wait(t) => {
                    self.deadline = t;
                    break;
                }
            }
        }
    }

    /// Sends the next page datagram if the window has room (one per call, so at most one per
    /// poll round per session).
    fn send_page(
        &mut self,
        dtls: &mut DtlsSession,
        now: Instant,
        window: usize,
        mut tx: impl FnMut(&[u8]),
    ) {
        // A lost datagram is given up after 200 ms (UDPTL is not retransmitted).
        while self
            .outstanding
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > Duration::from_millis(200))
        {
            self.outstanding.pop_front();
        }
        if !self.up || self.outstanding.len() >= window {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        if dtls.send(&udptl_packet(self.seq)).is_ok() {
            self.outstanding.push_back(now);
            let mut buf = [0u8; 2048];
            while let DtlsOutput::Transmit(d) = dtls.poll(&mut buf) {
                tx(d);
            }
        }
    }
}

/// What every kind of peers gets: the sessions (kind and the gateway address the MGC learned
/// for it), the UEs' identity, the MG's fingerprint, the traffic shape and the shared flags.
struct PeerCtx {
    plan: Vec<Kind>,
    ue_id: Identity,
    mg_fp: mgw_tls::Fingerprint,
    body: Vec<u8>,
    window: usize,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    traffic: Arc<AtomicBool>,
}

fn new_rtt() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The UE's core-side port for session `i` (the core listens or binds there).
fn core_port(kind: Kind, i: usize) -> u16 {
    match kind {
        Kind::T38 => 34_000 + i as u16,
        _ => 30_000 + i as u16,
    }
}

/// The UE's T.38 port for session `i`.
fn ue_fax_port(i: usize) -> u16 {
    32_000 + i as u16
}

// ------------------------------------------------------------------------------------------
// The in-memory wire: the peers are a simulated host (our own TCP stack) on the other end.

struct StreamSession {
    ex: Exchange,
    gw: SocketAddr,
    ue_local: SocketAddr,
    core_port: u16,
    ue_conn: Option<ConnId>,
    ue: Option<TlsPeer>,
    core_conn: Option<ConnId>,
    handshake_counted: bool,
}

struct FaxSession {
    gw: SocketAddr,
    ue_local: SocketAddr,
    core_local: SocketAddr,
    dtls: DtlsSession,
    app: FaxApp,
}

struct Peers {
    host: TcpHost<MemPort>,
    streams: Vec<StreamSession>,
    faxes: Vec<FaxSession>,
    ue_tls: TlsContext,
    mg_fp: PeerFingerprints,
    body: Vec<u8>,
    window: usize,
    rtt: Histogram<u64>,
    live: Arc<Live>,
}

impl Peers {
    fn step(&mut self, now: Instant, traffic: bool) {
        self.host.poll(now);
        let mut events = Vec::new();
        while let Some(e) = self.host.tcp.poll_event() {
            events.push(e);
        }
        for e in events {
            for s in self.streams.iter_mut() {
                match e.kind {
                    EventKind::Connected if s.ue_conn == Some(e.conn) => {
                        s.ue = TlsPeer::client(&self.ue_tls, e.conn, self.mg_fp, now).ok();
                    }
                    EventKind::Accepted { .. }
                        if s.core_conn.is_none()
                            && self
                                .host
                                .tcp
                                .tuple(e.conn)
                                .is_ok_and(|t| t.local_port == s.core_port) =>
                    {
                        s.core_conn = Some(e.conn);
                    }
                    EventKind::Reset | EventKind::TimedOut | EventKind::ConnectFailed { .. }
                        if s.ue_conn == Some(e.conn) || s.core_conn == Some(e.conn) =>
                    {
                        self.live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
        for i in 0..self.streams.len() {
            self.stream_step(i, now, traffic);
        }
        for i in 0..self.faxes.len() {
            self.fax_step(i, now, traffic);
        }
        self.host.flush();
    }

    fn stream_step(&mut self, i: usize, now: Instant, traffic: bool) {
        let s = &mut self.streams[i];
        if s.ue_conn.is_none() {
            let local = (IpAddress::from(s.ue_local.ip()), s.ue_local.port());
            let gw = (IpAddress::from(s.gw.ip()), s.gw.port());
            s.ue_conn = self.host.tcp.connect(now, local, gw).ok();
        }
        let Some(ue) = s.ue.as_mut() else { return };
        ue.drive(&mut self.host.tcp, now);
        if ue.is_established() && !s.handshake_counted {
            s.handshake_counted = true;
            self.live.handshakes.fetch_add(1, Ordering::Relaxed);
        }
        // Core side: frame requests, answer each.
        if let Some(c) = s.core_conn {
            let mut buf = [0u8; 16384];
            while let Ok(n @ 1..) = self.host.tcp.recv(c, &mut buf) {
                for a in s.ex.core_received(&buf[..n], &self.live) {
                    let _ = self.host.tcp.send(c, &a);
                }
            }
        }
        // UE side: count answers, measure round trips, keep the window full.
        let got = std::mem::take(&mut ue.received);
        s.ex.ue_received(&got, now, &mut self.rtt, &self.live);
        if traffic && ue.is_established() {
            while let Some(msg) = s.ex.next_request(self.window, &self.body) {
                if ue.send(&mut self.host.tcp, &msg) < msg.len() {
                    // The whole request must go at once (the window ensures room); stop here.
                    break;
                }
                s.ex.sent(now);
            }
        }
    }

    fn fax_step(&mut self, i: usize, now: Instant, traffic: bool) {
        // Datagrams for this session's UE (DTLS) and core (plain UDPTL, echoed back).
        let mut mine = Vec::new();
        self.host.udp_in.retain(|(from, to, d)| {
            let f = &self.faxes[i];
            if *to == f.ue_local || *to == f.core_local {
                mine.push((*from, *to, d.clone()));
                false
            } else {
                true
            }
        });
        let f = &mut self.faxes[i];
        for (from, to, d) in mine {
            if to == f.ue_local {
                let _ = f.dtls.handle_datagram(&d, now);
            } else {
                let answer = FaxApp::core_answer(&d, &self.live);
                self.host.send_udp(f.core_local, from, &answer);
            }
        }
        let host = &mut self.host;
        let (ue_local, gw) = (f.ue_local, f.gw);
        f.app
            .drive(&mut f.dtls, now, &mut self.rtt, &self.live, |d| {
                host.send_udp(ue_local, gw, d);
            });
        if traffic {
            f.app.send_page(&mut f.dtls, now, self.window, |d| {
                host.send_udp(ue_local, gw, d);
            });
        }
    }
}

type WorkerResult = (WorkerStats, mgw_tcp::Counters);
type PeersResult = Result<Histogram<u64>>;

/// The worker's configuration: both realms' addresses on one interface with MAC `mac`.
fn worker_config(mac: EthernetAddress, mg_id: &Identity) -> Result<WorkerConfig> {
    let mut edge = EdgeConfig::single(mac, GW_ACCESS, 16);
    edge.addrs.push(InterfaceAddr {
        addr: GW_CORE,
        prefix_len: 16,
    });
    let mut wcfg = WorkerConfig::new(edge);
    wcfg.max_contexts = 4096;
    // Every TCP access leg listens until its UE connects: room for all of them at once (the
    // stack's default is 16 listeners).
    wcfg.tcp.max_listeners = 4096;
    wcfg.tcp.max_connections = 8192;
    // RFC 6528: the lab's gateway is a real stack on a (memory) network; its ISN, cookie and
    // flow-table secret comes from the OS like `mgwd run`'s, never the public test secret.
    wcfg.tcp.secret = crate::run::urandom::<16>().context("TCP secret")?;
    wcfg.tls = Some(TlsContext::new(TlsSettings::default(), mg_id.clone())?);
    wcfg.dtls = Some(DtlsConfig::new(mg_id, 1200, Duration::from_secs(10))?);
    Ok(wcfg)
}

fn spawn_worker<P>(
    port: P,
    cfg: WorkerConfig,
    ring: WorkerEnd,
    stop: &Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<WorkerResult>>
where
    P: Port + Send + 'static,
    P::Buffer: Send,
{
    let worker = Worker::new(port, cfg, ring).map_err(|e| anyhow!("worker: {e}"))?;
    let stop = Arc::clone(stop);
    Ok(std::thread::Builder::new()
        .name("mgwd-worker-0".into())
        .spawn(move || {
            let mut w = worker;
            let mut idle = 0;
            while !stop.load(Ordering::Relaxed) {
                let busy = w.run_once(monotonic_now());
                crate::poll::PollPolicy::LAB.after_poll(&mut idle, busy);
            }
            (w.stats(), w.tcp_counters())
        })?)
}

/// Starts the peers once every session's gateway address is known.
type StartPeers = Box<dyn FnOnce(Vec<GwLeg>) -> Result<std::thread::JoinHandle<PeersResult>>>;

/// How the worker reaches the peers: the in-memory link or a veth into a namespace.
struct Wire {
    /// One line for the view.
    describe: String,
    /// `mem` or `netns`.
    kind: &'static str,
    worker: std::thread::JoinHandle<WorkerResult>,
    start_peers: StartPeers,
    /// Lives until the lab ends (the namespace lab network, removed on drop).
    _keep: Option<Box<dyn std::any::Any>>,
}

/// The in-memory wire and the simulated host on its far end.
fn mem_wire(args: &LabArgs, mg_id: &Identity, ring: WorkerEnd, ctx: PeerCtx) -> Result<Wire> {
    let pool = Pool::new(32_768, 2048);
    pool.prefill();
    let model = LinkModel {
        loss: args.loss,
        delay: Duration::from_micros(args.delay_us),
        mtu: 1514,
        ..LinkModel::ideal()
    };
    let mem = MemConfig {
        a_to_b: model.clone(),
        b_to_a: model,
        seed: 7,
        queue_len: 16_384,
        mac_a: EthernetAddress([2, 0x6d, 0x67, 0x77, 0x64, 1]),
        mac_b: EthernetAddress([2, 0x6d, 0x67, 0x77, 0x64, 2]),
    };
    let (wport, pport) = pair(&pool, &Clock::Monotonic, &mem);
    let worker = spawn_worker(wport, worker_config(mem.mac_a, mg_id)?, ring, &ctx.stop)?;
    let start_peers: StartPeers = Box::new(move |gws: Vec<GwLeg>| {
        let dtls_ue = DtlsConfig::new(&ctx.ue_id, 1200, Duration::from_secs(10))?;
        let mut streams = Vec::new();
        let mut faxes = Vec::new();
        for (i, (kind, gw)) in ctx.plan.iter().copied().zip(gws).enumerate() {
            match kind {
                Kind::Msrp | Kind::Bfcp => streams.push(StreamSession {
                    ex: Exchange::new(kind, i, gw.msrp_path.as_deref()),
                    gw: gw.addr,
                    ue_local: SocketAddr::from((UE.0, 40_000 + i as u16)),
                    core_port: core_port(kind, i),
                    ue_conn: None,
                    ue: None,
                    core_conn: None,
                    handshake_counted: false,
                }),
                Kind::T38 => faxes.push(FaxSession {
                    gw: gw.addr,
                    ue_local: SocketAddr::from((UE.0, ue_fax_port(i))),
                    core_local: SocketAddr::from((CORE.0, core_port(kind, i))),
                    dtls: DtlsSession::new(
                        &dtls_ue,
                        SecurityRole::Client,
                        PeerFingerprints::one(ctx.mg_fp),
                        &format!("lab{i}"),
                        monotonic_now(),
                    )?,
                    app: FaxApp::new(),
                }),
            }
        }
        // One host holding every UE and core address.
        let mut pedge = EdgeConfig::single(mem.mac_b, UE, 16);
        pedge.addrs.push(InterfaceAddr {
            addr: CORE,
            prefix_len: 16,
        });
        let mut host = TcpHost::new(
            pport,
            pedge,
            mgw_tcp::Config {
                max_connections: 8192,
                max_listeners: 4096,
                ..mgw_tcp::Config::with_secret(crate::run::urandom::<16>()?)
            },
        )
        .map_err(|e| anyhow!("peer stack: {e}"))?;
        for s in &streams {
            host.tcp
                .listen(IpAddress::V4(CORE), s.core_port)
                .map_err(|e| anyhow!("core listener: {e:?}"))?;
        }
        let peers = Peers {
            host,
            streams,
            faxes,
            ue_tls: TlsContext::new(TlsSettings::default(), ctx.ue_id)?,
            mg_fp: PeerFingerprints::one(ctx.mg_fp),
            body: ctx.body,
            window: ctx.window,
            rtt: new_rtt(),
            live: ctx.live,
        };
        let (stop, traffic) = (ctx.stop, ctx.traffic);
        Ok(std::thread::Builder::new()
            .name("lab-peers".into())
            .spawn(move || {
                let mut p = peers;
                let mut idle = 0;
                while !stop.load(Ordering::Relaxed) {
                    let now = monotonic_now();
                    p.step(now, traffic.load(Ordering::Relaxed));
                    let busy = p.host.poll_at().is_some_and(|t| t <= monotonic_now());
                    crate::poll::PollPolicy::LAB.after_poll(&mut idle, busy);
                }
                Ok(p.rtt)
            })?)
    });
    Ok(Wire {
        describe: "in-memory wire, simulated peers".into(),
        kind: "mem",
        worker,
        start_peers,
        _keep: None,
    })
}

// ------------------------------------------------------------------------------------------

/// Runs the lab.
///
/// # Errors
/// Bad arguments, not root with `--netns`, or a part of the gateway or of the lab network
/// failing to start.
pub fn run(args: &LabArgs) -> Result<()> {
    let counts = parse_sessions(&args.sessions)?;
    if counts.msrp + counts.bfcp + counts.t38 == 0 {
        bail!("--sessions: nothing to run");
    }
    if !(0.0..0.5).contains(&args.loss) {
        bail!("--loss {} out of range: 0 <= loss < 0.5", args.loss);
    }
    if args.size == 0 || args.size > 60_000 {
        bail!("--size {} out of range: 1..=60000", args.size);
    }
    if args.window == 0 || args.window > 64 {
        bail!("--window {} out of range: 1..=64", args.window);
    }
    if args.netns {
        netns::require_root()?;
    }
    // Ctrl-C (or SIGTERM) ends the traffic early; the lab still tears down through H.248 and
    // removes its network.
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&interrupted))?;

    // Identities: the MG's, and one shared by the UEs.
    let mg_id =
        Identity::generate_self_signed("mgwd lab").context("generating the MG certificate")?;
    let ue_id =
        Identity::generate_self_signed("lab UE").context("generating the UE certificate")?;
    let mg_fp = mg_id.fingerprint(HashFunction::Sha256);
    let ue_fp = ue_id.fingerprint(HashFunction::Sha256);
    let plan: Vec<Kind> = std::iter::repeat_n(Kind::Msrp, counts.msrp)
        .chain(std::iter::repeat_n(Kind::Bfcp, counts.bfcp))
        .chain(std::iter::repeat_n(Kind::T38, counts.t38))
        .collect();

    // The worker and the wire to the peers.
    let live = Arc::new(Live::default());
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = Arc::new(AtomicBool::new(true));
    let (ctl_end, w_end) = channel(4096, 8192);
    // The worker wakes the control thread when it acknowledges a command (issue 15).
    let doorbell = Arc::new(Doorbell::new());
    let w_end = w_end.with_doorbell(Arc::clone(&doorbell));
    let ctx = PeerCtx {
        plan: plan.clone(),
        ue_id,
        mg_fp,
        body: (0..args.size).map(|k| b"mgwd lab chat "[k % 14]).collect(),
        window: args.window,
        live: Arc::clone(&live),
        stop: Arc::clone(&stop),
        traffic: Arc::clone(&traffic),
    };
    // Whatever happens from here on, the threads are told to stop when `run` returns.
    let _stop_on_exit = StopOnDrop(Arc::clone(&stop));
    let wire = if args.netns {
        netns::wire(args, &mg_id, w_end, ctx)?
    } else {
        mem_wire(args, &mg_id, w_end, ctx)?
    };
    let Wire {
        describe,
        kind: wire_kind,
        worker: w_thread,
        start_peers,
        _keep: lab_network,
    } = wire;

    // The control thread, bound to loopback, registered with the embedded MGC.
    let mgc_sock = UdpSocket::bind("127.0.0.1:0")?;
    let mgc_addr = mgc_sock.local_addr()?;
    let mut realms = Realms::default();
    realms.add("access", IpAddr::from(GW_ACCESS.0), 20_000, 29_999);
    realms.add("core", IpAddr::from(GW_CORE.0), 20_000, 29_999);
    let server = Server::bind(
        ServerConfig {
            bind: "127.0.0.1:0".parse()?,
            transport: TransportKind::Udp,
            mid: Mid::Ip {
                addr: IpAddr::from([127, 0, 0, 1]),
                port: None,
            },
            association: AssociationConfig {
                mgcs: vec![mgc_addr],
                max_avalanche_delay: Duration::from_millis(20),
                ..AssociationConfig::default()
            },
            mg: MgConfig::default(),
            defer_replies: true,
        },
        realms,
        mg_fp.to_string(),
        0x6d67_7764_6c61_6221,
    )?;
    let mg_addr = server.local_addr()?;
    let gateway = Arc::new(Mutex::new(
        Gateway::new(
            server,
            vec![ctl_end],
            Awareness {
                msrp: true,
                bfcp: true,
                udptl: true,
            },
        )
        .with_doorbell(doorbell),
    ));
    let c_thread = {
        let (stop, gw) = (Arc::clone(&stop), Arc::clone(&gateway));
        std::thread::Builder::new()
            .name("mgwd-control".into())
            .spawn(move || -> Result<Vec<ServerEvent>> {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    // The lock is only shared with the final summary; the data plane never sees it.
                    let mut g = gw.lock().map_err(|_| anyhow!("control state poisoned"))?;
                    seen.extend(g.poll(Duration::from_millis(2))?);
                }
                Ok(seen)
            })?
    };

    // The MGC registers the MG and sets up every session.
    let mut mgc = Mgc {
        sock: mgc_sock,
        mg: mg_addr,
        mid: format!("[127.0.0.1]:{}", mgc_addr.port()),
        next_id: 1000,
    };
    let setup_started = StdInstant::now();
    mgc.accept_registration()?;
    let ue_fp_text = ue_fp.to_string();
    let mut setup_latency = new_rtt();
    let adds_started = StdInstant::now();
    let replies = mgc
        .pipeline(
            plan.iter()
                .enumerate()
                .map(|(i, kind)| Mgc::add_body(*kind, i, &ue_fp_text)),
            args.inflight,
            &mut setup_latency,
        )
        .context("setting up the sessions")?;
    let adds_s = adds_started.elapsed().as_secs_f64();
    if replies.len() != plan.len() {
        bail!("{} of {} Adds answered", replies.len(), plan.len());
    }
    let mut contexts = Vec::new();
    let mut gws = Vec::new();
    for (i, (reply, kind)) in replies.into_iter().zip(&plan).enumerate() {
        let (ctx, gw) =
            Mgc::added(reply).with_context(|| format!("setting up {kind:?} session {i}"))?;
        contexts.push(ctx);
        gws.push(gw);
    }
    let setup_ms = setup_started.elapsed().as_secs_f64() * 1e3;
    let p_thread = start_peers(gws)?;

    // The live view, and the churn calls.
    let mut churn = Churn::new(args.churn, plan.len());
    let started = StdInstant::now();
    let mut last = [0u64; 8];
    let mut out = std::io::stdout();
    let mut next_frame = Duration::from_secs(1);
    while started.elapsed() < Duration::from_secs(args.seconds)
        && !interrupted.load(Ordering::Relaxed)
        && !p_thread.is_finished()
    {
        if churn.rate > 0 {
            churn.step(&mut mgc, &ue_fp_text, started.elapsed(), args.inflight)?;
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if args.json || started.elapsed() < next_frame {
            continue;
        }
        next_frame += Duration::from_secs(1);
        let now = [
            live.up_msgs[0].load(Ordering::Relaxed),
            live.down_msgs[0].load(Ordering::Relaxed),
            live.up_msgs[1].load(Ordering::Relaxed),
            live.down_msgs[1].load(Ordering::Relaxed),
            live.up_msgs[2].load(Ordering::Relaxed),
            live.down_msgs[2].load(Ordering::Relaxed),
            live.up_bytes.load(Ordering::Relaxed),
            live.down_bytes.load(Ordering::Relaxed),
        ];
        let d: Vec<u64> = now.iter().zip(last.iter()).map(|(a, b)| a - b).collect();
        last = now;
        let _ = write!(
            out,
            "\x1b[2J\x1b[H mgwd lab  t={:>3}s   worker 1, control 1, MGC on 127.0.0.1 (H.248 text/UDP)\n\
             \x20wire: {describe}\n\n\
             sessions   msrp {:>4} (TLS↔TCP)   bfcp {:>4} (TLS↔TCP)   t38 {:>4} (DTLS↔UDP)\n\
             handshakes {:>4}   errors {:>4}\n\n\
             msg/s      msrp  UE→core {:>8}  core→UE {:>8}\n\
             \x20          bfcp  UE→core {:>8}  core→UE {:>8}\n\
             \x20          t38   UE→core {:>8}  core→UE {:>8}\n\
             Gbit/s     UE→core {:>8.4}   core→UE {:>8.4}\n",
            started.elapsed().as_secs(),
            counts.msrp,
            counts.bfcp,
            counts.t38,
            live.handshakes.load(Ordering::Relaxed),
            live.errors.load(Ordering::Relaxed),
            d[0],
            d[1],
            d[2],
            d[3],
            d[4],
            d[5],
            d[6] as f64 * 8e-9,
            d[7] as f64 * 8e-9,
        );
        let _ = out.flush();
    }
    let traffic_secs = started.elapsed().as_secs_f64();
    // Tears down the churn calls still up.
    churn.subtract_live(&mut mgc, args.inflight)?;
    traffic.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));

    // Teardown through H.248: Subtract every context.
    let mut teardown_latency = new_rtt();
    let subtracts_started = StdInstant::now();
    let subtract_ok = mgc
        .pipeline(
            contexts.iter().map(|ctx| format!("C={ctx}{{S=*}}")),
            args.inflight,
            &mut teardown_latency,
        )
        .map(|r| r.iter().filter(|r| Mgc::subtracted(r)).count())
        .unwrap_or(0);
    let subtracts_s = subtracts_started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let rtt = p_thread
        .join()
        .map_err(|_| anyhow!("peer thread panicked"))??;
    let (wstats, tcp) = w_thread
        .join()
        .map_err(|_| anyhow!("worker thread panicked"))?;
    let seen = c_thread
        .join()
        .map_err(|_| anyhow!("control thread panicked"))??;
    let gstats = gateway
        .lock()
        .map_err(|_| anyhow!("control state poisoned"))?
        .stats();
    // The lab network goes before the summary is printed, so a reader of the summary finds
    // the host as it was.
    drop(lab_network);

    let msgs = |a: &[AtomicU64; 3], k: usize| a[k].load(Ordering::Relaxed);
    let up_bytes = live.up_bytes.load(Ordering::Relaxed);
    let down_bytes = live.down_bytes.load(Ordering::Relaxed);
    let q = |x: f64| rtt.value_at_quantile(x) as f64 / 1000.0;
    let sessions = counts.msrp + counts.bfcp + counts.t38;
    let summary = json!({
        "wire": wire_kind,
        "interrupted": interrupted.load(Ordering::Relaxed),
        "seconds": traffic_secs,
        "sessions": { "msrp": counts.msrp, "bfcp": counts.bfcp, "t38": counts.t38 },
        "setup": {
            "h248_adds": contexts.len(),
            "ms": setup_ms,
            "inflight": args.inflight,
            "contexts_per_s": contexts.len() as f64 / adds_s.max(1e-9),
            "add_latency_us": latency_json(&setup_latency),
        },
        "churn": churn.summary(traffic_secs),
        "teardown": {
            "h248_subtracts": contexts.len(),
            "contexts_per_s": contexts.len() as f64 / subtracts_s.max(1e-9),
            "subtract_latency_us": latency_json(&teardown_latency),
        },
        "messages": {
            "msrp": { "ue_to_core": msgs(&live.up_msgs, 0), "core_to_ue": msgs(&live.down_msgs, 0) },
            "bfcp": { "ue_to_core": msgs(&live.up_msgs, 1), "core_to_ue": msgs(&live.down_msgs, 1) },
            "t38": { "ue_to_core": msgs(&live.up_msgs, 2), "core_to_ue": msgs(&live.down_msgs, 2) },
        },
        "messages_per_s": (0..3).map(|k| msgs(&live.up_msgs, k) + msgs(&live.down_msgs, k)).sum::<u64>() as f64 / traffic_secs,
        "gbps": { "ue_to_core": up_bytes as f64 * 8.0 / traffic_secs / 1e9, "core_to_ue": down_bytes as f64 * 8.0 / traffic_secs / 1e9 },
        "round_trip_us": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "samples": rtt.len() },
        "handshakes": live.handshakes.load(Ordering::Relaxed),
        "errors": live.errors.load(Ordering::Relaxed),
        "msrp_path_errors": live.msrp_path_errors.load(Ordering::Relaxed),
        "gateway": {
            "contexts_installed": gstats.installed,
            "contexts_released": gstats.released,
            "secure_up": gstats.secure_up,
            "secure_failed": gstats.secure_failed,
            "tcp_failed": gstats.tcp_failed,
            "notifies": gstats.notifies,
            "registered": seen.iter().any(|e| matches!(e, ServerEvent::Registered { .. })),
        },
        "worker": {
            "relayed_datagrams": wstats.relayed,
            "app_errors": wstats.app_errors,
            "tx_failed": wstats.tx_failed,
            "tcp_segments_in": tcp.segments_in,
            "tcp_segments_out": tcp.segments_out,
            "tcp_retransmits": tcp.retransmits,
        },
        "checks": {
            "registered": seen.iter().any(|e| matches!(e, ServerEvent::Registered { .. })),
            "all_handshakes": live.handshakes.load(Ordering::Relaxed) as usize == sessions,
            "msrp_traffic": counts.msrp == 0 || (msgs(&live.up_msgs, 0) > 0 && msgs(&live.down_msgs, 0) > 0),
            "bfcp_traffic": counts.bfcp == 0 || (msgs(&live.up_msgs, 1) > 0 && msgs(&live.down_msgs, 1) > 0),
            "t38_traffic": counts.t38 == 0 || (msgs(&live.up_msgs, 2) > 0 && msgs(&live.down_msgs, 2) > 0),
            "all_subtracted": subtract_ok == contexts.len(),
            "all_released": gstats.released as usize == contexts.len() + churn.subtracted,
            "churn_all_answered": churn.added == churn.calls && churn.subtracted == churn.calls,
            "msrp_paths": live.msrp_path_errors.load(Ordering::Relaxed) == 0,
            "no_errors": live.errors.load(Ordering::Relaxed) == 0 && gstats.secure_failed == 0 && gstats.tcp_failed == 0,
        },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("\nsummary:\n{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// Calls set up and torn down while traffic runs (`--churn`): each tick adds the calls due by
/// then and subtracts those the previous tick added, through the pipelining MGC.
struct Churn {
    /// Calls per second.
    rate: u32,
    /// The index of the next call (after the sessions', for unique MSRP paths).
    next: usize,
    /// Calls whose Add was sent.
    calls: usize,
    /// Adds answered with a context; Subtracts answered without an error.
    added: usize,
    subtracted: usize,
    /// Contexts added and not yet subtracted.
    live: Vec<u32>,
    add_latency: Histogram<u64>,
    subtract_latency: Histogram<u64>,
}

impl Churn {
    fn new(rate: u32, first: usize) -> Churn {
        Churn {
            rate,
            next: first,
            calls: 0,
            added: 0,
            subtracted: 0,
            live: Vec::new(),
            add_latency: new_rtt(),
            subtract_latency: new_rtt(),
        }
    }

    /// Subtracts the calls the last step added, then adds the calls due at `elapsed`; waits a
    /// little when nothing is due.
    fn step(
        &mut self,
        mgc: &mut Mgc,
        ue_fp: &str,
        elapsed: Duration,
        inflight: usize,
    ) -> Result<()> {
        self.subtract_live(mgc, inflight)?;
        let due = (elapsed.as_secs_f64() * f64::from(self.rate)) as usize;
        let n = due.saturating_sub(self.calls).min(inflight.max(1) * 16);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
            return Ok(());
        }
        let first = self.next;
        self.next += n;
        self.calls += n;
        let replies = mgc.pipeline(
            (first..first + n).map(|i| Mgc::churn_body(i, ue_fp)),
            inflight,
            &mut self.add_latency,
        )?;
        for r in replies {
            if let Ok((ctx, _)) = Mgc::added(r) {
                self.added += 1;
                self.live.push(ctx);
            }
        }
        Ok(())
    }

    fn subtract_live(&mut self, mgc: &mut Mgc, inflight: usize) -> Result<()> {
        if self.live.is_empty() {
            return Ok(());
        }
        let replies = mgc.pipeline(
            self.live.drain(..).map(|c| format!("C={c}{{S=*}}")),
            inflight,
            &mut self.subtract_latency,
        )?;
        self.subtracted += replies.iter().filter(|r| Mgc::subtracted(r)).count();
        Ok(())
    }

    fn summary(&self, secs: f64) -> serde_json::Value {
        json!({
            "calls_per_s_asked": self.rate,
            "calls": self.calls,
            "calls_per_s": self.calls as f64 / secs.max(1e-9),
            "added": self.added,
            "subtracted": self.subtracted,
            "add_latency_us": latency_json(&self.add_latency),
            "subtract_latency_us": latency_json(&self.subtract_latency),
        })
    }
}

/// Sets the flag when dropped: the lab's threads stop also when `run` returns early.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_gateway_tcp_secret_is_drawn_per_start() {
        let id = Identity::generate_self_signed("lab-test").unwrap();
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let a = worker_config(mac, &id).unwrap().tcp.secret;
        let b = worker_config(mac, &id).unwrap().tcp.secret;
        assert_ne!(a, b);
        assert_ne!(a, mgw_tcp::Config::TEST_SECRET);
    }

    fn rtt_and_live() -> (Histogram<u64>, Live) {
        (new_rtt(), Live::default())
    }

    /// Feeds `data` in pieces of `chunk` bytes to the core; returns every answer.
    fn core_in_chunks(ex: &mut Exchange, data: &[u8], chunk: usize, live: &Live) -> Vec<Vec<u8>> {
        data.chunks(chunk)
            .flat_map(|c| ex.core_received(c, live))
            .collect()
    }

    // --- MSRP: a SEND framed across TCP reads gets exactly one 200 OK, which the UE counts.

    #[test]
    fn msrp_send_split_across_reads_is_answered_once() {
        let (mut rtt, live) = rtt_and_live();
        let mut ex = Exchange::new(Kind::Msrp, 3, None);
        let req = ex
            .next_request(4, b"hello over a kernel socket")
            .expect("window open");
        ex.sent(Instant::from_millis(1));
        for chunk in [1, 7, 64, req.len()] {
            let answers = core_in_chunks(&mut ex, &req, chunk, &live);
            assert_eq!(answers.len(), 1, "chunk {chunk}");
            let text = String::from_utf8_lossy(&answers[0]).into_owned();
            assert!(text.starts_with("MSRP s3m1 200 OK\r\n"), "{text}");
            assert!(text.ends_with("-------s3m1$\r\n"), "{text}");
        }
        assert_eq!(live.up_msgs[0].load(Ordering::Relaxed), 4);
        // Without a URI from the MG the UE keeps the lab's own.
        assert!(String::from_utf8_lossy(&req).contains("To-Path: msrps://10.10.0.1/s3;tcp\r\n"));
        // The UE gets the 200 OK in two reads: one answer, one round trip.
        let ok = core_in_chunks(
            &mut Exchange::new(Kind::Msrp, 3, None),
            &req,
            req.len(),
            &live,
        )
        .remove(0);
        let (a, b) = ok.split_at(10);
        ex.ue_received(a, Instant::from_millis(2), &mut rtt, &live);
        assert_eq!(live.down_msgs[0].load(Ordering::Relaxed), 0);
        ex.ue_received(b, Instant::from_millis(5), &mut rtt, &live);
        assert_eq!(live.down_msgs[0].load(Ordering::Relaxed), 1);
        assert_eq!(rtt.len(), 1);
        assert_eq!(rtt.max(), rtt.highest_equivalent(4_000_000));
        assert!(ex.outstanding.is_empty());
        assert_eq!(live.errors.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn msrp_paths_follow_the_sdp_and_the_request() {
        let live = Live::default();
        let gw = "msrps://10.10.0.1:20004/7f3a9c;tcp";
        let mut ex = Exchange::new(Kind::Msrp, 5, Some(gw));
        let req = ex.next_request(1, b"x").expect("window open");
        let text = String::from_utf8_lossy(&req).into_owned();
        // RFC 4975 §7.1: To-Path is the peer's a=path, From-Path the UE's own.
        assert!(text.contains(&format!("To-Path: {gw}\r\n")), "{text}");
        assert!(
            text.contains("From-Path: msrps://10.10.0.2:9/ue5;tcp\r\n"),
            "{text}"
        );
        // What the core sees after a path-rewriting MG; the answer mirrors it (§7.2: To-Path
        // is the first From-Path URI, From-Path the receiver's own).
        let seen = msrp_send(
            "tx01",
            "msrp://10.20.0.2:30005/core5;tcp",
            "msrp://10.20.0.1:20005/9b2c;tcp msrps://10.10.0.2:9/ue5;tcp",
            b"x",
        );
        let ok = ex.core_received(&seen, &live).remove(0);
        assert_eq!(
            String::from_utf8_lossy(&ok),
            "MSRP tx01 200 OK\r\nTo-Path: msrp://10.20.0.1:20005/9b2c;tcp\r\n\
             From-Path: msrp://10.20.0.2:30005/core5;tcp\r\n-------tx01$\r\n"
        );
        assert_eq!(live.msrp_path_errors.load(Ordering::Relaxed), 0);
        // A frame the MG did not readdress to the core is counted (§7.3).
        let stray = msrp_send("tx02", gw, "msrps://10.10.0.2:9/ue5;tcp", b"x");
        assert_eq!(ex.core_received(&stray, &live).len(), 1);
        assert_eq!(live.msrp_path_errors.load(Ordering::Relaxed), 1);
        // The UE takes answers addressed to it, and counts others.
        let mut ue = Exchange::new(Kind::Msrp, 5, Some(gw));
        let mut rtt = new_rtt();
        let to_ue = MsrpResponse::ok("tx03", "msrps://10.10.0.2:9/ue5;tcp", "x")
            .to_vec()
            .map(String::from_utf8)
            .expect("a valid 200")
            .expect("ASCII");
        ue.ue_received(to_ue.as_bytes(), Instant::from_millis(1), &mut rtt, &live);
        assert_eq!(live.msrp_path_errors.load(Ordering::Relaxed), 1);
        let to_other = to_ue.replace("ue5", "ue6");
        ue.ue_received(
            to_other.as_bytes(),
            Instant::from_millis(1),
            &mut rtt,
            &live,
        );
        assert_eq!(live.msrp_path_errors.load(Ordering::Relaxed), 2);
        assert_eq!(live.down_msgs[0].load(Ordering::Relaxed), 2);
    }

    // --- BFCP: framing by the common header's Payload Length (RFC 8855 §5.1), whatever the
    // segmentation.

    #[test]
    fn bfcp_requests_and_answers_split_across_reads_are_framed() {
        let (mut rtt, live) = rtt_and_live();
        let mut ex = Exchange::new(Kind::Bfcp, 2, None);
        let mut wire = Vec::new();
        for t in 0..3u64 {
            wire.extend(ex.next_request(3, &[]).expect("window open"));
            ex.sent(Instant::from_millis(t));
        }
        assert!(ex.next_request(3, &[]).is_none(), "window of 3 is full");
        // FloorRequest: 12-byte header + FLOOR-ID (4).
        assert_eq!(wire.len(), 3 * 16);
        let answers = core_in_chunks(&mut ex, &wire, 5, &live);
        assert_eq!(answers.len(), 3);
        for (t, a) in answers.iter().enumerate() {
            // FloorRequestStatus echoing conference 1, transaction t+1, user 2.
            assert_eq!(a[1], 4);
            assert_eq!(u16::from_be_bytes([a[8], a[9]]), t as u16 + 1);
            assert_eq!(u16::from_be_bytes([a[10], a[11]]), 2);
        }
        let back: Vec<u8> = answers.concat();
        for c in back.chunks(7) {
            ex.ue_received(c, Instant::from_millis(10), &mut rtt, &live);
        }
        assert_eq!(live.down_msgs[1].load(Ordering::Relaxed), 3);
        assert_eq!(rtt.len(), 3);
        assert!(ex.outstanding.is_empty());
        assert!(ex.next_request(3, &[]).is_some(), "window open again");
    }

    #[test]
    fn bfcp_frame_len_needs_the_whole_message() {
        let m = bfcp_floor_request(1, 1, 1, 1);
        assert_eq!(bfcp_frame_len(&m[..11]), None);
        assert_eq!(bfcp_frame_len(&m[..15]), None);
        assert_eq!(bfcp_frame_len(&m), Some(16));
        assert_eq!(bfcp_frame_len(&bfcp_status(1, 1, 1)), Some(12));
    }

    /// The MGC's Adds are valid H.248 (the MG would answer 400 otherwise).
    #[test]
    fn the_mgcs_adds_parse() {
        for body in [
            Mgc::add_body(Kind::Msrp, 3, "SHA-256 AA:BB"),
            Mgc::add_body(Kind::Bfcp, 4, "SHA-256 AA:BB"),
            Mgc::add_body(Kind::T38, 5, "SHA-256 AA:BB"),
            Mgc::churn_body(6, "SHA-256 AA:BB"),
        ] {
            let text = format!("!/3 [127.0.0.1]:2944 T=9{{{body}}}");
            if let Err(e) = mgw_h248::h248::parse_message(text.as_bytes()) {
                panic!("{e}\n{text}");
            }
        }
    }

    #[test]
    fn sessions_flag_parses_and_refuses() {
        let c = parse_sessions("msrp=2,bfcp=1,t38=1").expect("valid");
        assert_eq!((c.msrp, c.bfcp, c.t38), (2, 1, 1));
        assert!(parse_sessions("sip=1").is_err());
        assert!(parse_sessions("msrp").is_err());
        assert!(parse_sessions("msrp=1001").is_err());
    }
}
