//! End to end: the `mgwd` binary (`mgwd run`) on a veth with real peers in a namespace
//! (issue 6, "It must show").
//!
//! The test creates a veth pair: `mg<pid>` stays in the root namespace without an IP address and
//! is mgwd's AF_PACKET port (realms `access` 10.79.0.1/16 and `core` 10.79.1.1/16); its peer sits
//! in namespace `mgwp<pid>` with the UE's address 10.79.0.2/16 and the core's 10.79.1.2/16. The
//! test itself is the MGC (H.248 text over loopback UDP). The UE is `openssl s_client` (TLS, and
//! DTLS 1.2 for T.38), the core is the namespace's kernel TCP/UDP (a python3 script). mgwd writes
//! a pcap of its port, which tshark checks at the end.
//!
//! Everything happens in one `#[test]`, sequentially, bounded in time; the lab is removed on drop,
//! also when an assertion fails. Skips (printing why) without root, ip, openssl, python3 or
//! tshark, unless `MGW_REQUIRE_PEERS=1`.

mod support;

use mgw_app::msrp::{ByteRange, MsrpSend};
use mgw_app::udptl::{ErrorRecovery, IfpList, UdptlRepr};
use mgw_h248::h248::ast::StatisticsParameter;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::lab::{Backend, Lab, CORE, UE};
use support::{run, wait_until};

/// Add with an MSRP session: the UE over TLS (it connects: `a=setup:active`, fingerprint
/// `ue_fp`), the core over TCP (it listens on `core_port`: `a=setup:passive`). Both sides
/// declare CEMA (RFC 6714), so the MG relays the bytes unchanged.
fn msrp_add_body(ue_fp: &str, core_port: u16) -> String {
    msrp_add_body_with(ue_fp, core_port, true)
}

/// As [`msrp_add_body`]; without `cema` the MG is the MSRP hop on each leg and rewrites paths.
fn msrp_add_body_with(ue_fp: &str, core_port: u16, cema: bool) -> String {
    let cema = if cema { "\na=msrp-cema" } else { "" };
    let access = format!(
        "v=0\nc=IN IP4 {UE}\nm=message 9 TCP/TLS/MSRP *\na=setup:active\na=accept-types:text/plain\n\
         a=path:{UE_PATH}\na=fingerprint:{ue_fp}{cema}"
    );
    let core = format!(
        "v=0\nc=IN IP4 {CORE}\nm=message {core_port} TCP/MSRP *\na=setup:passive\na=accept-types:text/plain\n\
         a=path:{}{cema}",
        core_path(core_port)
    );
    format!(
        "C=${{A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=access,ipnapt/latch=ON}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\na=fingerprint:$\n}},R{{\n{access}\n}}}}}},E=1{{tcp/ef,tls/ef,tls/sr}}}},\
         A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}},R{{\n{core}\n}}}}}},E=2{{tcp/ef,tcp/pc}}}}}}"
    )
}

/// Add with a T.38 session: the UE over DTLS from `ue_port`, the core over plain UDPTL.
fn t38_add_body(ue_fp: &str, ue_port: u16, core_port: u16) -> String {
    let access = format!(
        "v=0\nc=IN IP4 {UE}\nm=image {ue_port} UDP/TLS/UDPTL t38\na=setup:active\na=tls-id:e2e1\n\
         a=T38FaxVersion:0\na=T38FaxUdpEC:t38UDPRedundancy\na=fingerprint:{ue_fp}"
    );
    let core = format!(
        "v=0\nc=IN IP4 {CORE}\nm=image {core_port} udptl t38\na=T38FaxVersion:0\na=T38FaxUdpEC:t38UDPRedundancy"
    );
    format!(
        "C=${{A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=access,ipnapt/latch=ON}},L{{\nv=0\nc=IN IP4 $\nm=image $ UDP/TLS/UDPTL t38\na=fingerprint:$\n}},R{{\n{access}\n}}}}}},E=1{{dtls/ef,dtls/sr}}}},\
         A=$ {{M{{ST=1{{O{{MO=SR,ipdc/realm=core}},L{{\nv=0\nc=IN IP4 $\nm=image $ udptl t38\n}},R{{\n{core}\n}}}}}}}}}}"
    )
}

/// The UE's MSRP URI (its `a=path`).
const UE_PATH: &str = "msrps://10.79.0.2:9/ue;tcp";

/// The core's MSRP URI.
fn core_path(port: u16) -> String {
    format!("msrp://{CORE}:{port}/core;tcp")
}

/// An MSRP SEND request (RFC 4975 §7.1.1) with the given paths, complete in one chunk.
fn msrp_send_paths(tid: &str, to: &str, from: &str, body: &str) -> Vec<u8> {
    let mid = format!("m{tid}");
    MsrpSend::new(tid, to, from, &mid)
        .byte_range(ByteRange::whole(body.len() as u64))
        .body("text/plain", body.as_bytes())
        .to_vec()
        .expect("a valid SEND")
}

/// Case 1b: MSRP without CEMA: the MG is the MSRP hop on each leg (RFC 4975 §8.1, its own
/// `a=path` in each Local SDP). The UE addresses the MG's access URI; the core receives the same
/// messages addressed from the MG's core URI to the core's URI, and the core's 200 OKs reach the
/// UE addressed back to the UE from the MG's access URI.
fn msrp_relay_rewritten(lab: &mut Lab) {
    let core_port = 31_005;
    let (mut core, core_out) = lab.core_peer("tcp", core_port, "answer");
    let added = lab.add(&msrp_add_body_with(&lab.ue_fp.clone(), core_port, false));
    let mgw_access = support::sdp_path(&added.access_sdp).expect("a=path in the access Local SDP");
    let mgw_core = support::sdp_path(&added.core_sdp).expect("a=path in the core Local SDP");
    assert_ne!(mgw_access, mgw_core, "one MG URI per leg");
    let mut ue = lab.ue(added.access_local, None);
    let (mut sent, mut expected) = (Vec::new(), Vec::new());
    let bodies = ["rewritten hello", "and a second one"];
    for (i, text) in bodies.iter().enumerate() {
        let tid = format!("e2e1btid{i}");
        let m = msrp_send_paths(&tid, &mgw_access, UE_PATH, text);
        ue.write(&m);
        sent.extend_from_slice(&m);
        expected.extend(msrp_send_paths(
            &tid,
            &core_path(core_port),
            &mgw_core,
            text,
        ));
    }
    let arrived = wait_until(Duration::from_secs(10), || {
        read(&core_out).len() >= expected.len()
    });
    let got = read(&core_out);
    assert!(
        arrived && got == expected,
        "the core received the UE's messages with rewritten paths:\n{}\nexpected:\n{}\nmgwd: {}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected),
        lab.log()
    );
    let want = format!("To-Path: {UE_PATH}\r\nFrom-Path: {mgw_access}\r\n");
    assert!(
        ue.wait_stdout(Duration::from_secs(10), |o| count(o, want.as_bytes())
            == bodies.len()),
        "the UE got {} 200 OK addressed to it from the MG: {}",
        bodies.len(),
        String::from_utf8_lossy(&ue.stdout())
    );
    let stats = lab.subtract(added.context);
    eprintln!(
        "e2e case 1b (MSRP paths rewritten): {} bytes from the UE, {} to the core",
        sent.len(),
        got.len()
    );
    assert_eq!(stat(&stats, &added.access, "nt/or"), sent.len() as u64);
    assert_eq!(stat(&stats, &added.core, "nt/os"), got.len() as u64);
    core.kill();
}

/// An MSRP SEND request (RFC 4975 §7.1.1) from the UE to the gateway's URI, complete in one
/// chunk.
fn msrp_send(tid: &str, gw: SocketAddr, body: &str) -> Vec<u8> {
    msrp_send_paths(tid, &format!("msrps://{gw}/gw;tcp"), UE_PATH, body)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn stat(st: &[(String, Vec<StatisticsParameter>)], term: &str, name: &str) -> u64 {
    st.iter()
        .find(|(t, _)| t == term)
        .and_then(|(_, s)| s.iter().find(|p| p.name == name))
        .and_then(|p| p.values.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Case 1: MSRP over TLS (UE) ↔ TCP (core): the bytes arrive unchanged, the answers come back.
fn msrp_relay(lab: &mut Lab) -> (u16, SocketAddr) {
    let core_port = 31_001;
    let (mut core, core_out) = lab.core_peer("tcp", core_port, "answer");
    let body = msrp_add_body(&lab.ue_fp.clone(), core_port);
    let added = lab.add(&body);
    let mut ue = lab.ue(added.access_local, None);
    let mut sent = Vec::new();
    // The last body spans several TLS records and TCP segments.
    let big: String = (0..20_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let bodies = [
        "hello core",
        "second message",
        "third, with a longer body: ünïcödé",
        big.as_str(),
    ];
    for (i, text) in bodies.iter().enumerate() {
        let m = msrp_send(&format!("e2e1tid{i}"), added.access_local, text);
        ue.write(&m);
        sent.extend_from_slice(&m);
    }
    let arrived = wait_until(Duration::from_secs(10), || {
        read(&core_out).len() >= sent.len()
    });
    let got = read(&core_out);
    assert!(
        arrived && got == sent,
        "the core received exactly what the UE sent ({} of {} bytes):\n{:.2000}\ns_client stderr: {}\nmgwd stderr: {}",
        got.len(),
        sent.len(),
        String::from_utf8_lossy(&got),
        ue.stderr(),
        lab.mgwd.stderr()
    );
    assert!(
        ue.wait_stdout(Duration::from_secs(10), |o| count(o, b" 200 OK\r\n")
            == bodies.len()),
        "the UE got the core's {} 200 OK: {}",
        bodies.len(),
        String::from_utf8_lossy(&ue.stdout())
    );
    for i in 0..bodies.len() {
        assert!(count(&ue.stdout(), format!("MSRP e2e1tid{i} 200 OK").as_bytes()) == 1);
    }
    let stats = lab.subtract(added.context);
    eprintln!(
        "e2e case 1 (MSRP TLS<->TCP): {} bytes relayed; Subtract statistics {stats:?}",
        sent.len()
    );
    // The Subtract reply is held until the worker released the legs, so it carries their
    // final counters: everything the UE sent came in on the access leg and left on the core leg.
    let n = sent.len() as u64;
    assert_eq!(stat(&stats, &added.access, "nt/or"), n, "{stats:?}");
    assert_eq!(stat(&stats, &added.core, "nt/os"), n, "{stats:?}");
    assert!(
        ue.wait_exit(Duration::from_secs(5)).is_some(),
        "the UE's TLS session ends after Subtract"
    );
    assert!(
        core.wait_stdout(Duration::from_secs(5), |o| o.ends_with(b"eof\n")),
        "the core's TCP connection is closed after Subtract: {}",
        String::from_utf8_lossy(&core.stdout())
    );
    core.kill();
    (core_port, added.access_local)
}

/// Case 2: the UE's certificate does not match the Remote SDP fingerprint: the handshake fails,
/// nothing reaches the core, the MGC gets `tls/ef`.
fn fingerprint_mismatch(lab: &mut Lab) {
    let core_port = 31_002;
    let (_core, core_out) = lab.core_peer("tcp", core_port, "answer");
    let body = msrp_add_body(&lab.other_fp.clone(), core_port);
    let added = lab.add(&body);
    let mut ue = lab.ue(added.access_local, None);
    ue.write(&msrp_send("e2e2tid0", added.access_local, "must not pass"));
    if let Err(e) = lab.wait_notify(&added.access, "tls/ef", Duration::from_secs(10)) {
        panic!(
            "{e}\ns_client stderr: {}\nmgwd stderr: {}",
            ue.stderr(),
            lab.mgwd.stderr()
        );
    }
    let status = ue.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| !s.success()),
        "s_client fails the handshake: {status:?}, stderr {}",
        ue.stderr()
    );
    assert!(
        ue.stderr().to_lowercase().contains("alert"),
        "s_client reports the TLS alert: {}",
        ue.stderr()
    );
    assert!(ue.stdout().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        read(&core_out).is_empty(),
        "the core received nothing: {:?}",
        String::from_utf8_lossy(&read(&core_out))
    );
    lab.subtract(added.context);
    eprintln!(
        "e2e case 2 (fingerprint mismatch): tls/ef notified; s_client: {}",
        ue.stderr()
            .lines()
            .find(|l| l.contains("alert"))
            .unwrap_or("")
    );
}

/// Case 3a: the core resets its connection mid-transfer: `tcp/pc` on the core termination and
/// the UE's TLS session ends.
fn core_reset(lab: &mut Lab) {
    let core_port = 31_003;
    let (core, _core_out) = lab.core_peer("tcp", core_port, "rst");
    let body = msrp_add_body(&lab.ue_fp.clone(), core_port);
    let added = lab.add(&body);
    let mut ue = lab.ue(added.access_local, None);
    let m = msrp_send("e2e3tid0", added.access_local, "the core resets after this");
    ue.write(&m);
    assert!(
        core.wait_stdout(Duration::from_secs(10), |o| o.ends_with(b"rst\n")),
        "the core peer got the request and reset: {} {}",
        String::from_utf8_lossy(&core.stdout()),
        core.stderr()
    );
    if let Err(e) = lab.wait_notify(&added.core, "tcp/pc", Duration::from_secs(10)) {
        panic!("{e}\nmgwd stderr: {}", lab.mgwd.stderr());
    }
    // Until Subtract the UE may still write: the gateway has released the context, so this
    // must not bring it back.
    let status = ue.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "the UE's TLS session ends when the core resets; s_client stderr: {}",
        ue.stderr()
    );
    // The worker released the context before the Subtract, so its statistics are in the reply:
    // the request went UE -> access leg -> core leg -> core.
    let stats = lab.subtract(added.context);
    let n = m.len() as u64;
    assert_eq!(stat(&stats, &added.access, "nt/or"), n, "{stats:?}");
    assert_eq!(stat(&stats, &added.core, "nt/os"), n, "{stats:?}");
    eprintln!(
        "e2e case 3a (core RST): tcp/pc notified, s_client ended ({status:?}); Subtract statistics {stats:?}"
    );
}

/// Case 3b: Subtract while the UE is connected: the UE sees its session closed.
fn subtract_mid_session(lab: &mut Lab) {
    let core_port = 31_004;
    let (core, core_out) = lab.core_peer("tcp", core_port, "answer");
    let body = msrp_add_body(&lab.ue_fp.clone(), core_port);
    let added = lab.add(&body);
    let mut ue = lab.ue(added.access_local, None);
    let m = msrp_send("e2e4tid0", added.access_local, "before the Subtract");
    ue.write(&m);
    assert!(
        ue.wait_stdout(Duration::from_secs(10), |o| count(
            o,
            b"MSRP e2e4tid0 200 OK"
        ) == 1),
        "the session is up: {} / {}",
        String::from_utf8_lossy(&ue.stdout()),
        ue.stderr()
    );
    let stats = lab.subtract(added.context);
    let status = ue.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some(),
        "s_client sees the session closed after Subtract; stderr {}",
        ue.stderr()
    );
    assert!(
        core.wait_stdout(Duration::from_secs(5), |o| o.ends_with(b"eof\n")),
        "the core's connection is closed too: {}",
        String::from_utf8_lossy(&core.stdout())
    );
    assert_eq!(read(&core_out), m);
    eprintln!("e2e case 3b (Subtract mid-session): s_client ended ({status:?}); Subtract statistics {stats:?}");
}

/// A UDPTL packet (T.38 §9.1) whose primary IFP is a real T.38 IFP: a `t30-indicator`
/// (ITU-T T.38 ASN.1, aligned PER: no data field, choice 0, not extended, 4-bit value, pad),
/// cycling through CNG, CED, V.21 preamble and no-signal, which tshark decodes as t38.
fn udptl_packet(seq: u16) -> Vec<u8> {
    let ifp = [[0x02], [0x04], [0x06], [0x00]][usize::from(seq % 4)];
    let r = UdptlRepr {
        seq_number: seq,
        primary_ifp: &ifp,
        error_recovery: ErrorRecovery::Redundancy(IfpList::Items(&[])),
    };
    let mut out = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut out).expect("emit UDPTL");
    out.truncate(n);
    out
}

/// The core's UDPTL port in case 4.
const T38_CORE_PORT: u16 = 34_001;
/// The UE's DTLS port in case 4.
const T38_UE_PORT: u16 = 32_001;

/// Case 4: T.38 UDPTL over DTLS 1.2 (UE) ↔ plain UDPTL (core).
fn t38_relay(lab: &mut Lab) -> SocketAddr {
    let (ue_port, core_port) = (T38_UE_PORT, T38_CORE_PORT);
    let (_core, core_out) = lab.core_peer("udp", core_port, "");
    let body = t38_add_body(&lab.ue_fp.clone(), ue_port, core_port);
    let added = lab.add(&body);
    let mut ue = lab.ue(added.access_local, Some(ue_port));
    let packets: Vec<Vec<u8>> = (0..4).map(udptl_packet).collect();
    // One stdin write per DTLS record: s_client sends what one read() returns.
    for p in &packets {
        ue.write(p);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Plain UDPTL from the gateway's core address (its Local SDP), in order, unchanged.
    let want: String = packets
        .iter()
        .map(|p| format!("{} {}\n", added.core_local, hex(p)))
        .collect();
    let ok = wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(&read(&core_out)).lines().count() >= packets.len()
    });
    let got = String::from_utf8_lossy(&read(&core_out)).into_owned();
    assert!(
        ok && got == want,
        "the core received the UDPTL datagrams unchanged from the gateway's core address:\n got {got}\nwant {want}\ns_client stderr: {}\nmgwd stderr: {}",
        ue.stderr(),
        lab.mgwd.stderr()
    );
    lab.subtract(added.context);
    eprintln!(
        "e2e case 4 (T.38 DTLS<->UDPTL): {} datagrams relayed",
        packets.len()
    );
    added.access_local
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Case 5: tshark reads mgwd's capture: no malformed packet, TLS on the access port, MSRP on
/// the core port.
fn tshark_checks(pcap: &Path, core_port: u16, access: SocketAddr, dtls: Option<SocketAddr>) {
    let mut decode = vec![
        "-d".to_string(),
        format!("tcp.port=={core_port},msrp"),
        "-d".to_string(),
        format!("tcp.port=={},tls", access.port()),
        // Case 4's core: the plain UDPTL the gateway sends decodes as T.38.
        "-d".to_string(),
        format!("udp.port=={T38_CORE_PORT},t38"),
    ];
    if dtls.is_some() {
        // By the UE's port: the gateway's two legs may share a port number (one per realm
        // address), and tshark tries the lower port of a datagram first.
        decode.extend(["-d".to_string(), format!("udp.port=={T38_UE_PORT},dtls")]);
    }
    let p = pcap.to_string_lossy();
    // `timeout`: every child is bounded in time.
    let mut args = vec!["timeout", "30", "tshark", "-n", "-r", &p];
    args.extend(decode.iter().map(String::as_str));
    let mut malformed = args.clone();
    malformed.extend(["-Y", "_ws.malformed"]);
    let out = run(&malformed).expect("tshark");
    assert!(
        out.trim().is_empty(),
        "malformed packets in the capture:\n{out}"
    );
    let mut protos = args.clone();
    protos.extend(["-T", "fields", "-e", "frame.protocols", "-e", "tcp.port"]);
    let out = run(&protos).expect("tshark");
    let tls = out
        .lines()
        .filter(|l| l.contains(":tls") && l.contains(&access.port().to_string()))
        .count();
    let msrp = out
        .lines()
        .filter(|l| l.contains(":msrp") && l.contains(&core_port.to_string()))
        .count();
    let dtls_frames = out.lines().filter(|l| l.contains(":dtls")).count();
    eprintln!(
        "e2e case 5 (tshark): {} frames, {tls} TLS on access port {}, {msrp} MSRP on core port {core_port}, {dtls_frames} DTLS",
        out.lines().count(),
        access.port()
    );
    assert!(tls > 0, "TLS decoded on the access port:\n{out}");
    assert!(msrp >= 2, "MSRP decoded on the core port:\n{out}");
    // Case 1's first SEND and first 200 OK decode as MSRP. tshark's MSRP dissector shows only
    // the first MSRP message of a TCP segment (tshark 4), and the UE's SENDs (and, by
    // Nagle, the core's later answers) may share one, so only the first of each is sure to show.
    let mut lines = args.clone();
    lines.extend([
        "-Y",
        "msrp",
        "-T",
        "fields",
        "-e",
        "msrp.request.line",
        "-e",
        "msrp.response.line",
    ]);
    let out = run(&lines).expect("tshark");
    let lines: Vec<&str> = out.split([',', '\t', '\n']).map(str::trim).collect();
    for w in ["MSRP e2e1tid0 SEND", "MSRP e2e1tid0 200 OK"] {
        assert!(
            lines.contains(&w),
            "`{w}` decoded in the capture: {lines:?}"
        );
    }
    if dtls.is_some() {
        assert!(dtls_frames > 0, "DTLS decoded on the access port:\n{out}");
    }
    let mut t38 = args.clone();
    t38.extend([
        "-Y",
        "t38.t30_indicator",
        "-T",
        "fields",
        "-e",
        "udp.dstport",
        "-e",
        "t38.t30_indicator",
    ]);
    let out = run(&t38).expect("tshark");
    let to_core: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with(&T38_CORE_PORT.to_string()))
        .collect();
    eprintln!("e2e case 5 (tshark): T.38 IFPs to the core: {to_core:?}");
    assert_eq!(
        to_core.len(),
        4,
        "the core's plain UDPTL decodes as T.38 (4 t30-indicators):\n{out}"
    );
}

#[test]
fn mgwd_relays_real_peers_on_a_veth() {
    if !mgw_core::testkit::require(
        "mgwd_relays_real_peers_on_a_veth",
        &["ip", "openssl", "python3", "tshark"],
        true,
    ) {
        return;
    }
    all_cases(&Backend::AfPacket);
}

/// The same cases with one interface per realm (access and core on two veths, as a two-port
/// server has them): one worker drives both through one `MultiPort`.
#[test]
fn mgwd_with_one_port_per_realm_relays_real_peers() {
    if !mgw_core::testkit::require(
        "mgwd_with_one_port_per_realm_relays_real_peers",
        &["ip", "openssl", "python3", "tshark"],
        true,
    ) {
        return;
    }
    all_cases(&Backend::AfPacketPerRealm);
}

/// Case 6: the Prometheus endpoint shows the workers' and the control glue's counters (and,
/// on DPDK, the ports' xstats). Workers publish every 1,024 polls, so give them a moment.
fn metrics_scrape(lab: &Lab, backend: &Backend) {
    let value = |body: &str, prefix: &str| -> u64 {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let mut body = String::new();
    let ok = wait_until(Duration::from_secs(5), || {
        body = lab.scrape();
        value(&body, "mgwd_worker_relayed_total") > 0
    });
    assert!(ok, "workers' counters published:\n{body}");
    assert!(value(&body, "mgwd_worker_installs_total") >= 6, "{body}");
    assert!(value(&body, "mgwd_gateway_installed_total") >= 6, "{body}");
    assert!(value(&body, "mgwd_gateway_secure_up_total") >= 2, "{body}");
    if matches!(backend, Backend::Dpdk { .. } | Backend::DpdkPerRealm { .. }) {
        assert!(
            value(
                &body,
                "mgwd_port_xstat{port=\"0\",name=\"rx_good_packets\"}"
            ) > 0,
            "the DPDK port's xstats:\n{body}"
        );
    }
    eprintln!(
        "e2e case 6 (metrics): {} lines, relayed {}",
        body.lines().count(),
        value(&body, "mgwd_worker_relayed_total")
    );
}

/// Every case in order on one `mgwd run`; returns mgwd's log.
fn all_cases(backend: &Backend) -> String {
    let started = Instant::now();
    let mut lab = Lab::up(backend);
    let (core_port, access) = msrp_relay(&mut lab);
    msrp_relay_rewritten(&mut lab);
    fingerprint_mismatch(&mut lab);
    core_reset(&mut lab);
    subtract_mid_session(&mut lab);
    let dtls = t38_relay(&mut lab);
    metrics_scrape(&lab, backend);
    lab.stop();
    tshark_checks(&lab.pcap(), core_port, access, Some(dtls));
    eprintln!("e2e ({backend:?}): done in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(120));
    lab.log()
}

/// The same cases with mgwd on DPDK: `net_af_packet` on the veth (`--no-huge --no-pci
/// --no-shconf`), two workers on two queue pairs. The kernel spreads the frames over the
/// queues by flow hash, contexts alternate between the workers, so frames reach the worker
/// not owning their leg and are redirected in software; the log's final worker counters prove it.
#[cfg(feature = "dpdk")]
#[test]
fn mgwd_on_dpdk_with_two_workers_relays_real_peers() {
    if !mgw_core::testkit::require(
        "mgwd_on_dpdk_with_two_workers_relays_real_peers",
        &["ip", "openssl", "python3", "tshark", "mergecap"],
        true,
    ) {
        return;
    }
    let log = all_cases(&Backend::Dpdk { workers: 2 });
    assert!(log.contains("DPDK port started"), "{log}");
    assert!(log.contains("workers=2"), "{log}");
    let redirected: u64 = log
        .split("redirected_in=")
        .skip(1)
        .filter_map(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    eprintln!("e2e on DPDK: {redirected} frames redirected between the workers");
    assert!(
        redirected > 0,
        "frames were redirected between workers:\n{log}"
    );
}

/// DPDK with one `net_af_packet` device per realm (the two-port server layout), two workers:
/// each worker drives a queue pair of both devices.
#[cfg(feature = "dpdk")]
#[test]
fn mgwd_on_dpdk_with_a_port_per_realm_relays_real_peers() {
    if !mgw_core::testkit::require(
        "mgwd_on_dpdk_with_a_port_per_realm_relays_real_peers",
        &["ip", "openssl", "python3", "tshark", "mergecap"],
        true,
    ) {
        return;
    }
    let log = all_cases(&Backend::DpdkPerRealm { workers: 2 });
    assert_eq!(log.matches("DPDK port started").count(), 2, "{log}");
}

/// DPDK on `net_tap` (the tap's kernel side in the peers' namespace): the driver advertises
/// TCP/UDP checksum offloads, so mgwd writes pseudo-header sums only and the driver completes
/// them; the kernel peers accepting every case proves the offload path.
#[cfg(feature = "dpdk")]
#[test]
fn mgwd_on_dpdk_tap_uses_checksum_offloads() {
    if !mgw_core::testkit::require(
        "mgwd_on_dpdk_tap_uses_checksum_offloads",
        &["ip", "openssl", "python3", "tshark"],
        true,
    ) {
        return;
    }
    let log = all_cases(&Backend::DpdkTap);
    assert!(
        log.contains("driver=\"net_tap\"") || log.contains("driver=net_tap"),
        "{log}"
    );
    assert!(log.contains("tx_l4_checksum_offload=true"), "{log}");
}
