//! The kernel-interop cases, shared by the test binaries that differ only in the wire:
//! `kernel_interop` (dataplane's AF_PACKET port) and `kernel_interop_dpdk` (a DPDK queue on a
//! `net_af_packet` vdev). Our `mgw_tcp::Stack` sits on one end of the lab's veth and reaches it
//! only through a `mgw_core::port::Port` (rx_burst / alloc / tx_burst); a python3 peer on the
//! kernel's TCP sits on the other end. Both roles and both directions, every byte checked by
//! SHA-256 on the receiving side, and both close orders (we close first when we send, the
//! kernel closes first when it sends).

use super::netns::Lab;
use super::wire::{ipv4_frame, v4};
use mgw_core::buf::PacketBuffer;
use mgw_core::link::{Link, LinkModel};
use mgw_core::port::{Batch, Port, BURST};
use mgw_core::time::{monotonic_now, Instant};
use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{
    EtherType, EthernetFrame, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket,
    TcpRepr,
};
use mgw_tcp::{Config, ConnId, EventKind, SegmentSink, Stack};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Our stack's address (not configured on the interface: the kernel there must stay silent).
pub const OURS_IP: &str = "10.77.0.1";
/// The kernel peer's address.
pub const KERNEL_IP: &str = "10.77.0.2";
const OURS: Ipv4Address = Ipv4Address([10, 77, 0, 1]);
const KERNEL: Ipv4Address = Ipv4Address([10, 77, 0, 2]);
const ETH_HEADER: usize = 14;

/// True when MGW_REQUIRE_PEERS=1: a missing peer or prerequisite fails instead of skipping.
pub fn require_peers() -> bool {
    std::env::var("MGW_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Prints why `test` is skipped, or fails it under MGW_REQUIRE_PEERS=1.
pub fn skip(test: &str, why: &str) {
    assert!(!require_peers(), "MGW_REQUIRE_PEERS=1 but {why}");
    eprintln!("SKIP {test}: {why}");
}

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

/// The byte stream both sides agree on (the peer script builds the same 1 MiB block).
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

/// Kills the peer if the test bails out early.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Who opens and who sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Case {
    /// The kernel connects and sends; it closes first.
    KernelConnectsAndSends,
    /// The kernel connects and receives; we close first.
    KernelConnectsAndReceives,
    /// We connect and send; we close first.
    WeConnectAndSend,
    /// We connect and receive; the kernel closes first.
    WeConnectAndReceive,
}

/// Every case, in the order the suites run them.
pub const CASES: [Case; 4] = [
    Case::KernelConnectsAndSends,
    Case::KernelConnectsAndReceives,
    Case::WeConnectAndSend,
    Case::WeConnectAndReceive,
];

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

/// Writes an Ethernet + IPv4 + TCP frame of exactly `out.len()` bytes.
fn write_frame(
    out: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddress,
    dst: IpAddress,
    seg: &TcpRepr<'_>,
) {
    out[0..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&src_mac);
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4_frame(v4(src), v4(dst), seg, &mut out[ETH_HEADER..]);
}

/// Queues one ready frame for the port; flushes the TX batch when it is full. False when the
/// port has no room or no buffer (the caller keeps or loses the frame, as with a NIC).
fn queue_frame<P: Port>(port: &mut P, tx: &mut Batch<P::Buffer>, frame: &[u8]) -> bool {
    let Some(mut b) = slot(port, tx) else {
        return false;
    };
    let Some(room) = b.append(frame.len()) else {
        return false;
    };
    room.copy_from_slice(frame);
    tx.push(b).is_ok()
}

/// A fresh buffer for the TX batch, after a flush if the batch is full.
fn slot<P: Port>(port: &mut P, tx: &mut Batch<P::Buffer>) -> Option<P::Buffer> {
    if tx.is_full() {
        port.tx_burst(tx);
        if tx.is_full() {
            return None;
        }
    }
    port.alloc()
}

/// The stack's segment sink on a port: each segment is framed straight into a buffer of the
/// port's pool and queued in a TX batch that goes out with `tx_burst`.
struct PortSink<'a, P: Port> {
    port: &'a mut P,
    tx: &'a mut Batch<P::Buffer>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    /// In-process impairment towards the kernel (when `tc netem` is unavailable).
    impair: Option<(&'a mut Link, Instant)>,
    scratch: &'a mut [u8; 2048],
}

impl<P: Port> SegmentSink for PortSink<'_, P> {
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        let len = ETH_HEADER + 20 + seg.buffer_len();
        if len > self.port.max_frame() {
            panic!(
                "the stack built a {len}-byte frame for a port of {}",
                self.port.max_frame()
            );
        }
        if let Some((link, now)) = self.impair.as_mut() {
            let f = &mut self.scratch[..len];
            write_frame(f, self.src_mac, self.dst_mac, src, dst, seg);
            link.send(*now, f);
            return true;
        }
        let Some(mut b) = slot(self.port, self.tx) else {
            return false;
        };
        let Some(room) = b.append(len) else {
            return false;
        };
        write_frame(room, self.src_mac, self.dst_mac, src, dst, seg);
        self.tx.push(b).is_ok()
    }
}

fn handle_frame<P: Port>(
    now: Instant,
    frame: &[u8],
    stack: &mut Stack,
    sink: &mut PortSink<'_, P>,
) {
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
    // Checksums are verified in software: neither wire here offloads them (the lab turns veth
    // offloads off; net_af_packet advertises no checksum offload).
    match TcpRepr::parse(&tp, &src, &dst, ChecksumCheck::Verify) {
        Ok(seg) => stack.on_segment(now, src, dst, &seg, sink),
        Err(e) => panic!("kernel sent a TCP segment we cannot parse: {e}"),
    }
}

/// Runs one case on `port` (already open on the lab's `ours_if`); returns its wall time.
/// `tcp_port` keeps cases apart.
///
/// # Errors
/// A description of what went wrong: a wrong digest, a stuck transfer, an unexpected event.
pub fn run_case<P: Port>(
    lab: &Lab,
    port: &mut P,
    case: Case,
    bytes: usize,
    tcp_port: u16,
    limit: Duration,
    impair: Option<&LinkModel>,
) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    let data = pattern(bytes);
    let stats_before = port.stats();
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
                    KERNEL_IP
                } else {
                    OURS_IP
                },
                tcp_port.to_string().as_str(),
                bytes.to_string().as_str(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn python3: {e}"))?,
    );
    let mut out = BufReader::new(peer.0.stdout.take().ok_or("no peer stdout")?);
    let mut first = String::new();
    out.read_line(&mut first).map_err(|e| e.to_string())?;

    let mut stack = Stack::new(Config {
        max_connections: 4,
        send_buffer: 1 << 20,
        recv_buffer: 1 << 20,
        mss: 1460,
        ..Config::default()
    })
    .map_err(|e| e.to_string())?;
    let mut to_kernel = impair.map(|m| Link::new(m.clone(), u64::from(tcp_port)));
    let mut from_kernel = impair.map(|m| Link::new(m.clone(), u64::from(tcp_port) + 1));
    let mut conn: Option<ConnId> = None;
    if case.we_connect() {
        conn = Some(
            stack
                .connect(
                    monotonic_now(),
                    (IpAddress::V4(OURS), 40_000 + tcp_port % 1000),
                    (IpAddress::V4(KERNEL), tcp_port),
                )
                .map_err(|e| e.to_string())?,
        );
    } else {
        stack
            .listen(IpAddress::V4(OURS), tcp_port)
            .map_err(|e| e.to_string())?;
    }
    let (src_mac, dst_mac) = (port.mac().0, lab.kernel_mac);
    let mut rx: Batch<P::Buffer> = Batch::new(BURST);
    let mut tx: Batch<P::Buffer> = Batch::new(BURST);
    let mut scratch = [0u8; 2048];
    let mut sent = 0usize;
    let mut closed_sent = false;
    let mut hasher = Sha256::new();
    let mut got = 0usize;
    let mut peer_closed = false;
    let mut closed = false;
    let mut idle = 0u32;
    loop {
        let now = monotonic_now();
        let mut busy = false;
        {
            let mut sink = PortSink {
                port: &mut *port,
                tx: &mut tx,
                src_mac,
                dst_mac,
                impair: to_kernel.as_mut().map(|l| (l, now)),
                scratch: &mut scratch,
            };
            // Up to 32 bursts per round, then the application gets its turn.
            for _ in 0..32 {
                let n = sink.port.rx_burst(&mut rx);
                busy |= n > 0;
                for b in rx.drain() {
                    match from_kernel.as_mut() {
                        Some(l) => {
                            l.send(now, b.as_ref());
                        }
                        None => handle_frame(now, b.as_ref(), &mut stack, &mut sink),
                    }
                }
                if n < BURST {
                    break;
                }
            }
            if let Some(l) = from_kernel.as_mut() {
                while let Some(f) = l.recv(now) {
                    handle_frame(now, f.as_ref(), &mut stack, &mut sink);
                }
            }
            stack.poll(now, &mut sink);
        }
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
        {
            let mut sink = PortSink {
                port: &mut *port,
                tx: &mut tx,
                src_mac,
                dst_mac,
                impair: to_kernel.as_mut().map(|l| (l, now)),
                scratch: &mut scratch,
            };
            stack.poll(now, &mut sink);
        }
        if let Some(l) = to_kernel.as_mut() {
            while let Some(f) = l.recv(now) {
                // A full port loses the frame, as a NIC would; TCP repairs it.
                let _ = queue_frame(port, &mut tx, f.as_ref());
            }
        }
        if !tx.is_empty() {
            busy |= port.tx_burst(&mut tx) > 0;
            // What the port did not take stays queued for the next round.
            busy |= !tx.is_empty();
        }
        if closed {
            break;
        }
        if started.elapsed() > limit {
            return Err(format!(
                "{case:?}: not done after {limit:?}: sent {sent}, got {got}, peer_closed {peer_closed}; {:?}; port {:?}",
                stack.counters(),
                port.stats()
            ));
        }
        // A polled port has no readiness to wait on: spin (yielding the core to the peer) while
        // frames flow, and back off to short sleeps when nothing has happened for a while.
        if busy {
            idle = 0;
        } else {
            idle = idle.saturating_add(1);
            if idle < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
    // The last ACK (of the kernel's FIN) may still wait for room in the port.
    let flush_until = std::time::Instant::now() + Duration::from_secs(1);
    while !tx.is_empty() && std::time::Instant::now() < flush_until {
        port.tx_burst(&mut tx);
        std::thread::yield_now();
    }
    if !tx.is_empty() {
        return Err(format!("{case:?}: the port never took {} frames", tx.len()));
    }
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
    let elapsed = started.elapsed();
    let c = stack.counters();
    let s = port.stats();
    eprintln!(
        "{case:?}: {bytes} bytes in {elapsed:.2?} ({:.0} Mbit/s); segments in {} out {}, retransmits {} (timeouts {}, fast {}), bad checksums {}; port rx {} tx {} tx_full {} dropped {}",
        bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6,
        c.segments_in,
        c.segments_out,
        c.retransmits,
        c.rto_expirations,
        c.fast_retransmits,
        c.bad_checksum,
        s.rx_packets - stats_before.rx_packets,
        s.tx_packets - stats_before.tx_packets,
        s.tx_full - stats_before.tx_full,
        s.dropped - stats_before.dropped,
    );
    if c.bad_checksum != 0 {
        return Err(format!(
            "{case:?}: {} segments with bad checksums",
            c.bad_checksum
        ));
    }
    Ok(elapsed)
}

/// Runs all four cases with `bytes` each, then all four under loss 5%, delay 20 ms and reorder
/// 10% (both directions) with `impaired_bytes` each. The impairment is `tc netem` on both veth
/// ends where the kernel has it; otherwise (e.g. a VM kernel without sch_netem) the same model
/// runs in-process on our side of the port via `mgw_core::link::Link`, so the kernel's TCP still
/// sees loss, delay and reordering in both directions. `netem: false` goes in-process at once,
/// for a port whose transmissions bypass the qdisc (netem would impair one direction only).
/// `label` names the wire in messages.
///
/// # Panics
/// On any failed case (this is a test helper).
pub fn run_suite<P: Port>(
    label: &str,
    lab: &Lab,
    port: &mut P,
    bytes: usize,
    impaired_bytes: usize,
    netem: bool,
) {
    let t = std::time::Instant::now();
    for (i, &case) in CASES.iter().enumerate() {
        run_case(
            lab,
            port,
            case,
            bytes,
            7000 + i as u16,
            Duration::from_secs(120),
            None,
        )
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    }
    let clean = t.elapsed();
    let netem_result = if netem {
        lab.netem(Some("loss 5% delay 20ms reorder 10%"))
    } else {
        Err("our transmissions bypass the qdisc".into())
    };
    let model = match netem_result {
        Ok(()) => {
            eprintln!("{label}: impairing with tc netem on both veth ends");
            None
        }
        Err(e) => {
            eprintln!(
                "{label}: not using tc netem ({}); impairing in-process instead",
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
    for (i, &case) in CASES.iter().enumerate() {
        run_case(
            lab,
            port,
            case,
            impaired_bytes,
            7100 + i as u16,
            Duration::from_secs(180),
            model.as_ref(),
        )
        .unwrap_or_else(|e| panic!("{label} impaired: {e}"));
    }
    if netem {
        let _ = lab.netem(None);
    }
    eprintln!(
        "{label}: 4 x {bytes} bytes clean in {clean:.2?}, 4 x {impaired_bytes} bytes impaired in {:.2?}",
        t.elapsed() - clean
    );
}
