//! BFCP for the end-to-end test (RFC 8855 messages, RFC 8856 SDP): the client's messages, the
//! H.248 Add bodies, and the python3 peers of `bfcp_peer.py` (a floor control server on kernel
//! TCP or UDP, a client over TLS with a client certificate or over kernel UDP) on top of the
//! lead's [`Lab`].
//!
//! The client's messages come from the writers of `mgw_app::bfcp` (`MessageWriter` and one
//! function per primitive); what checks them is independent of the gateway's codec: the python3
//! peers decode and log every message byte by byte, and tshark decodes the capture.

#![allow(dead_code)] // each test binary that includes `support` uses part of it

use super::lab::{Lab, CORE, UE};
use super::{Added, Proc};
use mgw_app::bfcp as mgw_bfcp;
use mgw_h248::h248::ast::{CommandReply, ContextId, ReplyResult};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const BFCP_PEER_PY: &str = include_str!("bfcp_peer.py");

/// The conference, user and floor of every session (SDP `a=confid`, `a=userid`, `a=floorid`).
pub const CONF: u32 = 0x1a2b_3c4d;
/// `a=userid`.
pub const USER: u16 = 7;
/// `a=floorid`.
pub const FLOOR: u16 = 3;

/// Primitives (RFC 8855 §5.1, Table 1).
pub mod primitive {
    /// FloorRequest: a participant asks for a floor.
    pub const FLOOR_REQUEST: u8 = 1;
    /// FloorRelease: a participant gives a floor up.
    pub const FLOOR_RELEASE: u8 = 2;
    /// FloorRequestStatus: the server's status of a floor request.
    pub const FLOOR_REQUEST_STATUS: u8 = 4;
    /// Hello: checks that the peer is alive.
    pub const HELLO: u8 = 11;
    /// HelloAck: the answer to Hello.
    pub const HELLO_ACK: u8 = 12;
    /// FloorRequestStatusAck: acknowledges a FloorRequestStatus (unreliable transports only).
    pub const FLOOR_REQUEST_STATUS_ACK: u8 = 14;
    /// Goodbye: the sender is leaving.
    pub const GOODBYE: u8 = 16;
    /// GoodbyeAck: the answer to Goodbye.
    pub const GOODBYE_ACK: u8 = 17;
}

/// The common header of the client's messages (RFC 8855 §5.1): version `ver` (1 over TCP/TLS,
/// 2 over UDP/DTLS), [`CONF`], transaction `tid`, [`USER`], R clear.
fn ids(ver: u8, tid: u16) -> mgw_bfcp::Header {
    mgw_bfcp::Header::new(ver, CONF, tid, USER)
}

/// What a writer of `mgw_app::bfcp` appends to an empty buffer.
fn written(write: impl FnOnce(&mut Vec<u8>) -> Result<usize, mgw_bfcp::BfcpError>) -> Vec<u8> {
    let mut m = Vec::new();
    write(&mut m).expect("a valid BFCP message");
    m
}

/// Hello (§5.3.11): the common header alone.
pub fn hello(ver: u8, tid: u16) -> Vec<u8> {
    written(|m| mgw_bfcp::hello(m, &ids(ver, tid)))
}

/// FloorRequest (§5.3.1) for [`FLOOR`], with a PARTICIPANT-PROVIDED-INFO (type 8, padded).
pub fn floor_request(ver: u8, tid: u16) -> Vec<u8> {
    let request = mgw_bfcp::FloorRequest {
        participant_provided_info: Some(b"slides, please"),
        ..mgw_bfcp::FloorRequest::new(&[FLOOR])
    };
    written(|m| mgw_bfcp::floor_request(m, &ids(ver, tid), &request))
}

/// FloorRelease (§5.3.2) of floor request `frid`.
pub fn floor_release(ver: u8, tid: u16, frid: u16) -> Vec<u8> {
    written(|m| mgw_bfcp::floor_release(m, &ids(ver, tid), frid))
}

/// Goodbye (§5.3.16).
pub fn goodbye(ver: u8, tid: u16) -> Vec<u8> {
    written(|m| mgw_bfcp::goodbye(m, &ids(ver, tid)))
}

/// Datagrams a gateway that validates BFCP must drop (RFC 8855 §5.1, §5.2), each different:
/// a runt shorter than the common header, Payload Length promising more than the datagram
/// holds, an attribute whose Length is below 2, and an unknown version.
pub fn malformed() -> Vec<Vec<u8>> {
    let mut truncated = floor_request(2, 90);
    truncated[3] += 2;
    let bad_attr = malformed_attribute(2, 91);
    let mut bad_version = hello(2, 92);
    bad_version[0] = 5 << 5;
    vec![
        vec![0x40, 0x0b, 0, 0, 0, 0, 0],
        truncated,
        bad_attr,
        bad_version,
    ]
}

/// A FloorRequest whose Payload Length is right but whose FLOOR-ID attribute claims a Length of
/// 1, below its own 2-octet header (RFC 8855 §5.2).
pub fn malformed_attribute(ver: u8, tid: u16) -> Vec<u8> {
    let mut m = floor_request(ver, tid);
    m[13] = 1;
    m
}

/// The common header's fields as tshark prints them: (Ver, R, primitive, transaction ID).
pub fn header(m: &[u8]) -> (u8, bool, u8, u16) {
    (
        m[0] >> 5,
        m[0] & 0x10 != 0,
        m[1],
        u16::from_be_bytes([m[8], m[9]]),
    )
}

/// Hex, as the peers print it.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The messages a peer printed with `word` (`sent`, `recv`, `bad`), in order.
pub fn logged(p: &Proc, word: &str) -> Vec<Vec<u8>> {
    String::from_utf8_lossy(&p.stdout())
        .lines()
        .filter_map(|l| l.strip_prefix(word)?.strip_prefix(' '))
        .map(unhex)
        .collect()
}

/// H.248 Add of a BFCP session: the UE (floor participant, `a=floorctrl:c-only`) on the access
/// side over `ue_proto` from `ue_port` with `extra` attributes, the floor control server on the
/// core side over `core_proto` at `core_port` (RFC 8856 attributes on both).
pub fn add_body(
    ue_proto: &str,
    ue_port: u16,
    extra: &str,
    core_proto: &str,
    core_port: u16,
    events: (&str, &str),
) -> String {
    let bfcp = format!("a=confid:{CONF}\na=userid:{USER}\na=floorid:{FLOOR} mstrm:10");
    let access = format!(
        "v=0\nc=IN IP4 {UE}\nm=application {ue_port} {ue_proto} *\na=floorctrl:c-only\n{bfcp}{extra}"
    );
    let core = format!(
        "v=0\nc=IN IP4 {CORE}\nm=application {core_port} {core_proto} *\na=floorctrl:s-only\n{bfcp}{}",
        if core_proto.starts_with("TCP") {
            "\na=setup:passive"
        } else {
            ""
        }
    );
    let fp = if ue_proto.contains("TLS") {
        "\na=fingerprint:$"
    } else {
        ""
    };
    let ev = |id: u32, e: &str| {
        if e.is_empty() {
            String::new()
        } else {
            format!(",E={id}{{{e}}}")
        }
    };
    format!(
        "C=${{A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=access,ipnapt/latch=ON}},L{{\nv=0\nc=IN IP4 $\nm=application $ {ue_proto} *{fp}\n}},R{{\n{access}\n}}}}}}{}}},\
         A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=application $ {core_proto} *\n}},R{{\n{core}\n}}}}}}{}}}}}",
        ev(1, events.0),
        ev(2, events.1),
    )
}

/// What an Add created, with the access Local SDP's `a=fingerprint` (the gateway's certificate,
/// which the UE checks).
pub struct BfcpAdded {
    /// Context, terminations and Local addresses.
    pub added: Added,
    /// `SHA-256 AA:BB:…` from the access termination's Local SDP, if any.
    pub gw_fingerprint: Option<String>,
}

/// Sends `body` (an Add of two terminations) and reads the reply.
///
/// # Panics
/// The MG refusing it, or a reply without the Local SDP of both terminations.
pub fn add(lab: &mut Lab, body: &str) -> BfcpAdded {
    let reply = match lab.mgc.transact(body) {
        Ok(r) => r,
        Err(e) => panic!("{e}\nmgwd stderr:\n{}", lab.mgwd.stderr()),
    };
    let ReplyResult::Actions(actions) = reply.result else {
        panic!("Add refused: {:?}", reply.result);
    };
    let a = actions.first().expect("an action in the Add reply");
    assert!(a.error.is_none(), "Add refused: {:?}", a.error);
    let ContextId::Id(context) = a.context else {
        panic!("Add reply without a context id");
    };
    let mut terms = Vec::new();
    for r in &a.replies {
        let CommandReply::Add(x) = r else {
            panic!("unexpected reply {r:?}");
        };
        let local = x
            .audit
            .media
            .as_ref()
            .and_then(|m| m.streams.first())
            .and_then(|s| s.local.clone())
            .expect("Add reply with Local SDP");
        terms.push((x.termination.0.clone(), local));
    }
    assert_eq!(
        terms.len(),
        2,
        "Add reply with both terminations: {terms:?}"
    );
    let fp = terms[0]
        .1
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=fingerprint:"))
        .map(str::to_owned);
    let addr = |sdp: &str| super::local_addr(sdp).expect("Local SDP address");
    BfcpAdded {
        added: Added {
            context,
            access: terms[0].0.clone(),
            core: terms[1].0.clone(),
            access_local: addr(&terms[0].1),
            core_local: addr(&terms[1].1),
            access_sdp: terms[0].1.clone(),
            core_sdp: terms[1].1.clone(),
        },
        gw_fingerprint: fp,
    }
}

fn script(lab: &Lab) -> PathBuf {
    let p = lab.dir.join("bfcp_peer.py");
    if !p.exists() {
        std::fs::write(&p, BFCP_PEER_PY).expect("write bfcp_peer.py");
    }
    p
}

/// Starts a peer of `bfcp_peer.py` in the namespace and waits for `ready`.
fn peer(lab: &Lab, name: &str, args: &[String]) -> Proc {
    let mut cmd = lab.net.exec("timeout");
    cmd.args(["45", "python3"]).arg(script(lab)).args(args);
    let p = Proc::spawn(name, cmd);
    let ok = p.wait_stdout(Duration::from_secs(10), |o| {
        o.starts_with(b"ready\n") || o.windows(6).any(|w| w == b"ready\n")
    });
    assert!(
        ok,
        "{name} did not start: {}{}",
        String::from_utf8_lossy(&p.stdout()),
        p.stderr()
    );
    p
}

/// The floor control server at [`CORE`]:`port` over kernel `tcp` or `udp`.
pub fn server(lab: &Lab, transport: &str, port: u16) -> Proc {
    peer(
        lab,
        &format!("BFCP server {transport} {port}"),
        &[format!("server-{transport}"), CORE.into(), port.to_string()],
    )
}

/// The UE over TLS to `gw`, presenting the lab's UE certificate and requiring the gateway's to
/// have `gw_fp` (`sha-256 AA:…`).
pub fn client_tls(lab: &Lab, gw: SocketAddr, gw_fp: &str) -> Proc {
    // RFC 8122 §5: the hash function's name is case-insensitive.
    let hex = match gw_fp.split_once(' ') {
        Some((hash, hex)) if hash.eq_ignore_ascii_case("sha-256") => hex,
        _ => panic!("a SHA-256 fingerprint, got {gw_fp}"),
    };
    peer(
        lab,
        "BFCP client TLS",
        &[
            "client-tls".into(),
            gw.ip().to_string(),
            gw.port().to_string(),
            lab.ue_crt.to_string_lossy().into_owned(),
            lab.ue_key.to_string_lossy().into_owned(),
            hex.into(),
        ],
    )
}

/// The UE over kernel UDP from [`UE`]:`port` to `gw`.
pub fn client_udp(lab: &Lab, port: u16, gw: SocketAddr) -> Proc {
    peer(
        lab,
        "BFCP client UDP",
        &[
            "client-udp".into(),
            UE.into(),
            port.to_string(),
            gw.ip().to_string(),
            gw.port().to_string(),
        ],
    )
}

/// As [`client_udp`], but the UE loses the first copy of each server-initiated message (logs it
/// as `lost`, does not acknowledge it), so the other end must retransmit (RFC 8855 §8.3.1).
pub fn client_udp_lossy(lab: &Lab, port: u16, gw: SocketAddr) -> Proc {
    peer(
        lab,
        "BFCP client UDP (lossy)",
        &[
            "client-udp-lossy".into(),
            UE.into(),
            port.to_string(),
            gw.ip().to_string(),
            gw.port().to_string(),
        ],
    )
}

/// Has the client send `m` (one TLS write or one datagram).
pub fn send(client: &mut Proc, m: &[u8]) {
    client.write(format!("{}\n", hex(m)).as_bytes());
}

/// Whole messages at the front of a byte stream (RFC 8855 §5.1: 12-octet common header, then
/// Payload Length 4-octet units), e.g. what `openssl s_client` printed of DTLS records.
pub fn split_messages(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while b.len() >= 12 {
        let n = 12 + 4 * usize::from(u16::from_be_bytes([b[2], b[3]]));
        if b.len() < n {
            break;
        }
        out.push(b[..n].to_vec());
        b = &b[n..];
    }
    out
}

/// FloorRequestStatusAck (§5.3.14): a client's acknowledgement over an unreliable transport
/// of the server-initiated FloorRequestStatus `m` (same IDs, R set).
pub fn floor_request_status_ack(m: &[u8]) -> Vec<u8> {
    let (ver, _, _, tid) = header(m);
    written(|a| mgw_bfcp::floor_request_status_ack(a, &ids(ver, tid).with_responder(true)))
}
