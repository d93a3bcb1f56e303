//! Interop with the Linux kernel's TCP: two network namespaces joined by a veth, our stack on one
//! end through an AF_PACKET socket, a python3 peer on the other. Both directions and both roles,
//! 100 MB each with matching SHA-256 (10 MB in unoptimised builds; `MGW_TCP_INTEROP_MB`
//! overrides), then all four again under loss 5%, delay 20 ms, reorder 10% with 2 MB each (at 5%
//! loss each way and a 40 ms RTT a NewReno/CUBIC sender manages 1-4 Mbit/s, so 100 MB would take
//! many minutes). The impairment is `tc netem` where the kernel has it, else the same model
//! in-process on our side of the raw socket. Kernel-initiated and our closes are both exercised.
//!
//! Skips (with a printed reason) when not root or tools are missing, unless MGW_REQUIRE_PEERS=1.
//! Everything runs sequentially in one test: namespaces are global state.

mod support;

use dataplane::sim::{Link, LinkModel};
use dataplane::time::{monotonic_now, Instant};
use dataplane::wire::tcp::ChecksumCheck;
use dataplane::wire::{
    EtherType, EthernetFrame, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket,
    TcpRepr,
};
use mgw_tcp::{Config, ConnId, EventKind, SegmentSink, Stack};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::afpacket::RawSocket;
use support::netns::{missing_prerequisite, InNetns, Lab};
use support::wire::{ipv4_frame, v4};

const OURS: Ipv4Address = Ipv4Address([10, 77, 0, 1]);
const KERNEL: Ipv4Address = Ipv4Address([10, 77, 0, 2]);

const PEER: &str = r#"
import socket, sys, hashlib, time
mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
block = bytes((i * 7 + (i >> 8)) & 0xff for i in range(1 << 20))
if mode.startswith('serve'):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(1)
    print('listening', flush=True)
    c, _ = l.accept()
else:
    print('connecting', flush=True)
    c = None
    for i in range(200):
        try:
            c = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            time.sleep(0.05)
c.settimeout(120)
if mode.endswith('send'):
    left = n
    while left:
        k = min(left, len(block))
        c.sendall(block[:k])
        left -= k
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    print('sent', n, flush=True)
else:
    h = hashlib.sha256()
    got = 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        h.update(d)
        got += len(d)
    print(got, h.hexdigest(), flush=True)
c.close()
"#;

fn pattern(n: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..1usize << 20)
        .map(|i| ((i * 7 + (i >> 8)) & 0xff) as u8)
        .collect();
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let k = (n - v.len()).min(block.len());
        v.extend_from_slice(&block[..k]);
    }
    v
}

struct RawSink<'a> {
    sock: &'a RawSocket,
    buf: [u8; 2048],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    /// In-process impairment towards the kernel (when `tc netem` is unavailable).
    impair: Option<(&'a mut Link, Instant)>,
}

impl SegmentSink for RawSink<'_> {
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        self.buf[0..6].copy_from_slice(&self.dst_mac);
        self.buf[6..12].copy_from_slice(&self.src_mac);
        self.buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let n = ipv4_frame(v4(src), v4(dst), seg, &mut self.buf[14..]);
        if let Some((link, now)) = self.impair.as_mut() {
            link.send(*now, &self.buf[..14 + n]);
            return true;
        }
        self.sock.send(&self.buf[..14 + n]).unwrap_or(false)
    }
}

/// Kills the peer if the test bails out early.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Case {
    /// The kernel connects and sends; it closes first.
    KernelConnectsAndSends,
    /// The kernel connects and receives; we close first.
    KernelConnectsAndReceives,
    /// We connect and send; we close first.
    WeConnectAndSend,
    /// We connect and receive; the kernel closes first.
    WeConnectAndReceive,
}

impl Case {
    fn python_mode(self) -> &'static str {
        match self {
            Case::KernelConnectsAndSends => "connect-send",
            Case::KernelConnectsAndReceives => "connect-recv",
            Case::WeConnectAndSend => "serve-recv",
            Case::WeConnectAndReceive => "serve-send",
        }
    }
    fn we_send(self) -> bool {
        matches!(
            self,
            Case::KernelConnectsAndReceives | Case::WeConnectAndSend
        )
    }
    fn we_connect(self) -> bool {
        matches!(self, Case::WeConnectAndSend | Case::WeConnectAndReceive)
    }
}

fn handle_frame(now: Instant, frame: &[u8], stack: &mut Stack, sink: &mut RawSink<'_>) {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return;
    };
    if eth.ethertype() != EtherType::Ipv4 {
        return;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return;
    };
    let Ok(ipr) = Ipv4Repr::parse(&ip, true) else {
        return;
    };
    if ipr.dst_addr != OURS || ipr.protocol != IpProtocol::Tcp {
        return;
    }
    let (src, dst) = (IpAddress::V4(ipr.src_addr), IpAddress::V4(ipr.dst_addr));
    let Ok(tp) = TcpPacket::new_checked(ip.payload()) else {
        return;
    };
    match TcpRepr::parse(&tp, &src, &dst, ChecksumCheck::Verify) {
        Ok(seg) => stack.on_segment(now, src, dst, &seg, sink),
        Err(e) => panic!("kernel sent a TCP segment we cannot parse: {e}"),
    }
}

fn run_case(
    lab: &Lab,
    case: Case,
    bytes: usize,
    port: u16,
    limit: Duration,
    impair: Option<&LinkModel>,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let data = pattern(bytes);
    let mut peer = Peer(
        Command::new("timeout")
            .args([
                format!("{}", limit.as_secs() + 10).as_str(),
                "ip",
                "netns",
                "exec",
                lab.kernel.as_str(),
                "python3",
                "-c",
                PEER,
                case.python_mode(),
                if case.we_connect() {
                    "10.77.0.2"
                } else {
                    "10.77.0.1"
                },
                port.to_string().as_str(),
                bytes.to_string().as_str(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn python3: {e}"))?,
    );
    let mut out = BufReader::new(peer.0.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).map_err(|e| e.to_string())?;

    let _inside = InNetns::enter(&lab.ours)?;
    let sock = RawSocket::open(&lab.ours_if).map_err(|e| format!("AF_PACKET: {e}"))?;
    let mut stack = Stack::new(Config {
        max_connections: 4,
        send_buffer: 1 << 20,
        recv_buffer: 1 << 20,
        mss: 1460,
        ..Config::default()
    })
    .map_err(|e| e.to_string())?;
    let mut to_kernel = impair.map(|m| Link::new(m.clone(), u64::from(port)));
    let mut from_kernel = impair.map(|m| Link::new(m.clone(), u64::from(port) + 1));
    let mut wire = [0u8; 2048];
    let mut conn: Option<ConnId> = None;
    if case.we_connect() {
        conn = Some(
            stack
                .connect(
                    monotonic_now(),
                    (IpAddress::V4(OURS), 40_000 + port % 1000),
                    (IpAddress::V4(KERNEL), port),
                )
                .map_err(|e| e.to_string())?,
        );
    } else {
        stack
            .listen(IpAddress::V4(OURS), port)
            .map_err(|e| e.to_string())?;
    }
    let mut rx = vec![0u8; 65536];
    let mut sent = 0usize;
    let mut closed_sent = false;
    let mut hasher = Sha256::new();
    let mut got = 0usize;
    let mut peer_closed = false;
    let mut closed = false;
    loop {
        let now = monotonic_now();
        let mut sink = RawSink {
            sock: &sock,
            buf: [0; 2048],
            src_mac: lab.ours_mac,
            dst_mac: lab.kernel_mac,
            impair: to_kernel.as_mut().map(|l| (l, now)),
        };
        let mut any = false;
        for _ in 0..1024 {
            match sock.recv(&mut rx).map_err(|e| e.to_string())? {
                Some(n) => {
                    any = true;
                    match from_kernel.as_mut() {
                        Some(l) => {
                            l.send(now, &rx[..n]);
                        }
                        None => handle_frame(now, &rx[..n], &mut stack, &mut sink),
                    }
                }
                None => break,
            }
        }
        if let Some(l) = from_kernel.as_mut() {
            while let Some(f) = l.recv(now) {
                let n = f.as_ref().len();
                wire[..n].copy_from_slice(f.as_ref());
                handle_frame(now, &wire[..n], &mut stack, &mut sink);
            }
        }
        stack.poll(now, &mut sink);
        while let Some(e) = stack.poll_event() {
            match e.kind {
                EventKind::Connected | EventKind::Accepted { .. } => conn = Some(e.conn),
                EventKind::PeerClosed => peer_closed = true,
                EventKind::Closed => closed = true,
                EventKind::Readable | EventKind::Writable => {}
                other => return Err(format!("{case:?}: unexpected {other:?}")),
            }
        }
        if let (Some(id), false) = (conn, closed) {
            if case.we_send() {
                while sent < data.len() {
                    match stack.send(id, &data[sent..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sent += n,
                    }
                }
                if sent == data.len() && !closed_sent {
                    stack.close(id).map_err(|e| e.to_string())?;
                    closed_sent = true;
                }
            }
            if let Ok((a, b)) = stack.peek(id) {
                let n = a.len() + b.len();
                if n > 0 {
                    hasher.update(a);
                    hasher.update(b);
                    got += n;
                    stack.consume(id, n).map_err(|e| e.to_string())?;
                }
            }
            if !case.we_send() && peer_closed && !closed_sent {
                stack.close(id).map_err(|e| e.to_string())?;
                closed_sent = true;
            }
        }
        stack.poll(now, &mut sink);
        if let Some(l) = to_kernel.as_mut() {
            while let Some(f) = l.recv(now) {
                let _ = sock.send(f.as_ref());
            }
        }
        if closed {
            break;
        }
        if started.elapsed() > limit {
            return Err(format!(
                "{case:?}: not done after {limit:?}: sent {sent}, got {got}, peer_closed {peer_closed}; {:?}",
                stack.counters()
            ));
        }
        if !any {
            sock.wait(1);
        }
    }
    drop(_inside);
    // The kernel's verdict.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while peer.0.try_wait().map_err(|e| e.to_string())?.is_none() {
        if std::time::Instant::now() > deadline {
            return Err(format!("{case:?}: python peer did not exit"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut rest = String::new();
    out.read_to_string(&mut rest).map_err(|e| e.to_string())?;
    let mut err = String::new();
    if let Some(mut e) = peer.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let want = hex::encode(Sha256::digest(&data));
    if case.we_send() {
        let expect = format!("{bytes} {want}");
        if rest.trim() != expect {
            return Err(format!(
                "{case:?}: kernel got {rest:?}, expected {expect:?}; stderr {err}"
            ));
        }
    } else {
        let have = hex::encode(hasher.finalize());
        if got != bytes || have != want {
            return Err(format!(
                "{case:?}: we got {got} bytes {have}, expected {bytes} {want}"
            ));
        }
        if rest.trim() != format!("sent {bytes}") {
            return Err(format!("{case:?}: peer said {rest:?}; stderr {err}"));
        }
    }
    let c = stack.counters();
    eprintln!(
        "{case:?}: {bytes} bytes in {:.2?} ({:.0} Mbit/s); segments in {} out {}, retransmits {} (timeouts {}, fast {}), bad checksums {}",
        started.elapsed(),
        bytes as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e6,
        c.segments_in,
        c.segments_out,
        c.retransmits,
        c.rto_expirations,
        c.fast_retransmits,
        c.bad_checksum
    );
    Ok(())
}

#[test]
fn kernel_interop() {
    let require = std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    if let Some(why) = missing_prerequisite() {
        assert!(!require, "MGW_REQUIRE_PEERS=1 but {why}");
        eprintln!("SKIP kernel_interop: {why}");
        return;
    }
    let mb: usize = std::env::var("MGW_TCP_INTEROP_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(mgw_tcp_optimized) { 100 } else { 10 });
    let lab = Lab::new("10.77.0.1", "10.77.0.2").expect("lab");
    let cases = [
        Case::KernelConnectsAndSends,
        Case::KernelConnectsAndReceives,
        Case::WeConnectAndSend,
        Case::WeConnectAndReceive,
    ];
    for (i, &case) in cases.iter().enumerate() {
        run_case(
            &lab,
            case,
            mb << 20,
            7000 + i as u16,
            Duration::from_secs(120),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    // Loss 5%, delay 20 ms, reordering 10%, both directions. With `tc netem` when the kernel has
    // it; otherwise (e.g. a VM kernel without sch_netem) the same model runs in-process on our
    // side of the AF_PACKET socket via dataplane::sim::Link, so the kernel's TCP still sees loss,
    // delay and reordering in both directions.
    let model = match lab.netem(Some("loss 5% delay 20ms reorder 10%")) {
        Ok(()) => None,
        Err(e) => {
            eprintln!(
                "tc netem unavailable ({}); impairing in-process instead",
                e.trim()
            );
            Some(LinkModel {
                loss: 0.05,
                reorder: 0.10,
                delay: Duration::from_millis(20),
                mtu: 1514,
                queue_limit: 8192,
                ..LinkModel::ideal()
            })
        }
    };
    for (i, &case) in cases.iter().enumerate() {
        run_case(
            &lab,
            case,
            2 << 20,
            7100 + i as u16,
            Duration::from_secs(180),
            model.as_ref(),
        )
        .unwrap_or_else(|e| panic!("impaired: {e}"));
    }
}
