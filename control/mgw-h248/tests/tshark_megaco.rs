//! Every message the codec emits must decode in tshark's `megaco` dissector with no malformed
//! packet and no expert error. The messages are written into a classic pcap (Ethernet/IPv4/UDP to
//! port 2944) and run through `tshark`.
//!
//! Skips when tshark is missing, unless `MGW_REQUIRE_PEERS=1`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mgw_core::time::Instant as T;
use mgw_h248::h248::association::{AssocEvent, Association, AssociationConfig};
use mgw_h248::h248::ast::{Mid, PropertyParm};
use mgw_h248::h248::mg::{Mg, MgConfig};
use mgw_h248::h248::transaction::TransactionConfig;
use mgw_h248::h248::{emit, parse_message, Style};
use mgw_h248::procedures::Realms;

const SEEDS: &[&str] = &[
    include_str!("../../../fuzz/corpus-seed/h248/sc_restart.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/sc_reply_compact.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/sc_reply_mgcid.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/add_tls_msrp.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/add_reply.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/notify.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/reply_errors.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/pending_ack.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/modify_subtract.txt"),
    include_str!("../../../fuzz/corpus-seed/h248/t38_dtls.txt"),
];

fn require_peers() -> bool {
    std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Internet checksum over `data`.
fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A classic pcap (LINKTYPE_ETHERNET) with one UDP datagram per payload, 127.0.0.1:2944 ↔ :2945.
fn pcap(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, p) in payloads.iter().enumerate() {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let ip_len = 20 + 8 + p.len();
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&(i as u16).to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let c = csum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let (sp, dp) = if i % 2 == 0 {
            (2945u16, 2944u16)
        } else {
            (2944, 2945)
        };
        f.extend_from_slice(&sp.to_be_bytes());
        f.extend_from_slice(&dp.to_be_bytes());
        f.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]); // checksum optional over IPv4
        f.extend_from_slice(p);
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    out
}

fn run_bounded(args: &[&str]) -> String {
    let mut child = Command::new("tshark")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tshark");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tshark timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FP: &str = "SHA-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

/// Everything the MG side emits in a scripted session: ServiceChange, Pending, replies with
/// Local SDP, errors and statistics, Notify, TransactionResponseAck, Graceful ServiceChange.
fn mg_session(style: Style) -> Vec<Vec<u8>> {
    let mgc: std::net::SocketAddr = "127.0.0.2:2944".parse().unwrap();
    let mut a = Association::new(
        AssociationConfig {
            mgcs: vec![mgc],
            profile: Some("ETSI_IMS_ALG/1".into()),
            service_change_port: Some(2944),
            transaction: TransactionConfig {
                style,
                ..TransactionConfig::default()
            },
            ..AssociationConfig::default()
        },
        Mid::Ip {
            addr: "127.0.0.1".parse().unwrap(),
            port: Some(2944),
        },
        1,
        0,
        T::ZERO,
    );
    let mut realms = Realms::default();
    realms.add("access", "192.0.2.1".parse().unwrap(), 40000, 40100);
    realms.add("core", "10.0.0.1".parse().unwrap(), 50000, 50100);
    let mut mg = Mg::new(MgConfig::default(), realms, FP.into());
    let mut out = Vec::new();
    let mut t = 0u64;
    let mut step = |a: &mut Association, mg: &mut Mg, input: Option<&str>, delay_reply: bool| {
        t += 10;
        let now = T::from_millis(t);
        match input {
            Some(i) => a.handle_datagram(now, mgc, i.as_bytes()),
            None => a.handle_timeout(now),
        }
        if delay_reply {
            a.handle_timeout(T::from_millis(t + 150));
        }
        while let Some(e) = a.poll_event() {
            if let AssocEvent::Request { from, request } = e {
                let (r, _) = mg.execute(now, &request);
                a.reply(now, from, request.id, r);
            }
        }
        std::iter::from_fn(|| a.poll_transmit())
            .map(|x| x.bytes)
            .collect::<Vec<_>>()
    };
    out.extend(step(&mut a, &mut mg, None, false));
    out.extend(step(
        &mut a,
        &mut mg,
        Some("!/3 [127.0.0.2]:2944 P=1{C=-{SC=ROOT{SV{V=3}}}}"),
        false,
    ));
    // A slow Add: Pending, then the reply with both Local SDPs.
    out.extend(step(&mut a, &mut mg, Some(SEEDS[3]), true));
    out.extend(step(
        &mut a,
        &mut mg,
        Some("!/3 [127.0.0.2]:2944 T=43{C=1{MF=ip/1{M{ST=1{O{MO=SO}}}},AV=ip/2{AT{M,SA}}}}"),
        false,
    ));
    out.extend(step(
        &mut a,
        &mut mg,
        Some("!/3 [127.0.0.2]:2944 T=44{C=99{MF=ip/1}}"),
        false,
    ));
    out.extend(step(
        &mut a,
        &mut mg,
        Some("!/3 [127.0.0.2]:2944 T=45{C=1{Bogus}}"),
        false,
    ));
    out.extend(step(
        &mut a,
        &mut mg,
        Some("!/3 [127.0.0.2]:2944 T=46{C=-{AV=ROOT{AT{PG}}}}"),
        false,
    ));
    // Notify, answered with ImmAckRequired: the MG acknowledges.
    let notify = mg.observe(
        "ip/1",
        "tcp/ef",
        vec![PropertyParm::eq("cause", "timeout")],
        Some("20261124T02301500".into()),
    );
    let id = a
        .send_request(T::from_millis(500), vec![notify.expect("armed")])
        .unwrap();
    out.extend(std::iter::from_fn(|| a.poll_transmit()).map(|x| x.bytes));
    out.extend(step(
        &mut a,
        &mut mg,
        Some(&format!("!/3 [127.0.0.2]:2944 P={id}{{IA,C=1{{N=ip/1}}}}")),
        false,
    ));
    out.extend(step(
        &mut a,
        &mut mg,
        Some("!/3 [127.0.0.2]:2944 T=47{C=1{S=*}}"),
        false,
    ));
    a.shutdown(T::from_millis(900), Some(Duration::from_secs(5)));
    out.extend(std::iter::from_fn(|| a.poll_transmit()).map(|x| x.bytes));
    out
}

#[test]
fn mg_session_covers_every_kind_of_message() {
    let all: Vec<String> = mg_session(Style::Compact)
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    let joined = all.join("\n");
    for needle in [
        "SC=ROOT{SV{MT=RS",
        "PN=42{}",
        "P=42{C=1{A=ip/1{M{ST=1{L{",
        "ER=411",
        "ER=400",
        "PG{",
        "OE=2{20261124T02301500:tcp/ef",
        "K{",
        "SA{nt/os=0",
        "MT=GR",
    ] {
        assert!(joined.contains(needle), "{needle} missing in {joined}");
    }
}

#[test]
fn emitted_messages_decode_cleanly_in_tshark() {
    if !have("tshark") {
        assert!(!require_peers(), "tshark missing and MGW_REQUIRE_PEERS=1");
        eprintln!("SKIP: tshark not installed");
        return;
    }
    let mut payloads = Vec::new();
    for s in SEEDS {
        let m = parse_message(s.as_bytes()).expect("seed parses");
        for style in [Style::Pretty, Style::Compact] {
            payloads.push(emit(&m, style).into_bytes());
        }
    }
    payloads.extend(mg_session(Style::Pretty));
    payloads.extend(mg_session(Style::Compact));
    let dir = std::env::temp_dir().join(format!("mgw-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join("megaco.pcap");
    std::fs::write(&file, pcap(&payloads)).unwrap();
    let f = file.to_str().unwrap();

    // Every frame must be dissected as megaco.
    let proto = run_bounded(&[
        "-r",
        f,
        "-d",
        "udp.port==2944,megaco",
        "-T",
        "fields",
        "-e",
        "frame.protocols",
    ]);
    let lines: Vec<&str> = proto.lines().collect();
    assert_eq!(lines.len(), payloads.len(), "{proto}");
    for (i, l) in lines.iter().enumerate() {
        assert!(l.contains("megaco"), "frame {} not megaco: {l}", i + 1);
    }
    // No malformed frames.
    let malformed = run_bounded(&[
        "-r",
        f,
        "-d",
        "udp.port==2944,megaco",
        "-Y",
        "_ws.malformed",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]);
    if let Some(first) = malformed.lines().next() {
        let filter = format!("frame.number=={first}");
        let verbose = run_bounded(&[
            "-r",
            f,
            "-d",
            "udp.port==2944,megaco",
            "-Y",
            &filter,
            "-V",
            "-x",
        ]);
        panic!("malformed frames: {malformed}\n{verbose}");
    }
    // No expert info of severity warning or error.
    let expert = run_bounded(&[
        "-r",
        f,
        "-d",
        "udp.port==2944,megaco",
        "-Y",
        "_ws.expert",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ]);
    if !expert.trim().is_empty() {
        let verbose = run_bounded(&["-r", f, "-d", "udp.port==2944,megaco", "-V"]);
        panic!("expert warnings/errors:\n{expert}\n{verbose}");
    }
    // The dissector saw the transactions (spot check a few fields).
    let fields = run_bounded(&[
        "-r",
        f,
        "-d",
        "udp.port==2944,megaco",
        "-T",
        "fields",
        "-e",
        "megaco.transid",
        "-e",
        "megaco.context",
    ]);
    assert!(fields.contains("42"), "{fields}");
    let _ = std::fs::remove_dir_all(&dir);
}
