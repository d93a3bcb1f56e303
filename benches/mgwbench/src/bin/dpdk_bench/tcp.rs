//! The TCP stack's per-core packet rate on DPDK ports.
//!
//! Every received frame takes the gateway's full receive path: `rx_burst` → [`Edge::ingress`]
//! (Ethernet, IPv4 header checksum) → TCP checksum verified in software → [`Stack::on_segment`]
//! (RFC 9293 segment processing: sequence and ACK checks, receive ring, send ring release,
//! congestion control, ACK generation) → segments out through a sink that allocates an mbuf,
//! serialises TCP with its checksum, prepends IPv4 and Ethernet ([`Edge::encap_ipv4`]) →
//! `tx_burst`. That is what `mgw_worker::peer::TcpHost` and the worker do, written out here so
//! that one burst can be processed at a time (net_null's RX never runs dry).
//!
//! - **net_null** (one port, RX source and TX sink): the load generator is in the same loop.
//!   Each mbuf net_null hands out is overwritten with a crafted segment of a virtual peer (an
//!   established connection: a real handshake with the stack first), with its checksums; the
//!   crafting time is measured and left out of the stack's time. (a) ACK-only: the stack sends
//!   64-byte messages (Nagle off: one segment each) and every crafted ACK acknowledges the next
//!   one, so each ACK releases send ring space and the application writes the next message;
//!   (b) small data: crafted in-order 64-byte data segments; the stack ACKs per its delayed-ACK
//!   policy and the application reads everything after each burst.
//! - **net_ring** (two ports joined back to back by two `rte_ring`s, `rte_eth_from_rings`): two
//!   stacks, one connection, ARP resolved over the ring, 64-byte messages A → B, both stacks on
//!   this one core taking turns. B receives data segments, A receives ACK-only segments; each
//!   host's time is measured separately.

use super::{round3, CpuShare};
use mgw_core::buf::PacketBuffer;
use mgw_core::edge::{Edge, EdgeConfig, Egress, Ingress};
use mgw_core::port::{Batch, Port, BURST};
use mgw_core::time::{monotonic_now, Instant};
use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{
    IpAddress, IpProtocol, Ipv4Address, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};
use mgw_ports::dpdk::{DpdkQueue, Mbuf};
use mgw_tcp::{ConnId, EventKind, SegmentSink, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant as Wall};

const A: Ipv4Address = Ipv4Address([10, 0, 0, 1]);
const B: Ipv4Address = Ipv4Address([10, 0, 0, 2]);
const PORT_A: u16 = 40_000;
const PORT_B: u16 = 443;
/// Application message (and segment payload) size.
const MSG: usize = 64;

/// The stack settings of every host here: 256 KiB rings, MSS 1460, window scaling and SACK,
/// no timestamps (the crafted peer does not echo them), Nagle off, 40 ms delayed ACK.
pub fn config() -> mgw_tcp::Config {
    mgw_tcp::Config {
        max_connections: 16,
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        timestamps: false,
        ..mgw_tcp::Config::default()
    }
}

/// The IP layer under a stack: serialises a segment into a fresh mbuf and frames it.
struct Sink<'a> {
    q: &'a mut DpdkQueue,
    edge: &'a mut Edge,
    tx: &'a mut Batch<Mbuf>,
    now: Instant,
    failed: &'a mut u64,
}

impl SegmentSink for Sink<'_> {
    fn transmit(&mut self, src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        let (IpAddress::V4(s), IpAddress::V4(d)) = (src, dst) else {
            *self.failed += 1;
            return true;
        };
        if self.tx.is_full() {
            self.q.tx_burst(self.tx);
            if self.tx.is_full() {
                return false;
            }
        }
        let Some(mut b) = self.q.alloc() else {
            return false;
        };
        let Some(room) = b.append(seg.buffer_len()) else {
            *self.failed += 1;
            return true;
        };
        if seg
            .emit(&mut TcpPacket::new_unchecked(room), &src, &dst)
            .is_err()
        {
            *self.failed += 1;
            return true;
        }
        match self
            .edge
            .encap_ipv4(self.now, &mut b, s, d, IpProtocol::Tcp)
        {
            Egress::Ready => {
                let _ = self.tx.push(b);
            }
            _ => *self.failed += 1,
        }
        true
    }
}

/// A host: one DPDK queue, its edge and a TCP stack.
pub struct Host {
    q: DpdkQueue,
    edge: Edge,
    tcp: Stack,
    rx: Batch<Mbuf>,
    tx: Batch<Mbuf>,
    /// Segments the IP layer could not send (no route, unresolved, full port).
    tx_failed: u64,
    /// Frames not delivered to TCP (edge drops, bad TCP header or checksum).
    rx_dropped: u64,
    /// Frames `tx_burst` did not take (dropped: TCP retransmits).
    tx_full: u64,
}

impl Host {
    fn new(q: DpdkQueue, addr: Ipv4Address) -> Host {
        let edge = Edge::new(EdgeConfig::single(q.mac(), addr, 24));
        Host {
            q,
            edge,
            tcp: Stack::new(config()).expect("valid TCP config"),
            rx: Batch::new(BURST),
            tx: Batch::new(BURST * 4),
            tx_failed: 0,
            rx_dropped: 0,
            tx_full: 0,
        }
    }

    fn io(&mut self, now: Instant) -> (&mut Stack, Sink<'_>) {
        (
            &mut self.tcp,
            Sink {
                q: &mut self.q,
                edge: &mut self.edge,
                tx: &mut self.tx,
                now,
                failed: &mut self.tx_failed,
            },
        )
    }

    /// One received frame through the edge into TCP.
    fn deliver(&mut self, now: Instant, f: Mbuf) {
        match self.edge.ingress(now, f) {
            Ingress::Reply(b) => {
                let _ = self.tx.push(b);
            }
            Ingress::Deliver {
                protocol: IpProtocol::Tcp,
                src,
                dst,
                buf,
            } => {
                let Ok(p) = TcpPacket::new_checked(buf.as_ref()) else {
                    self.rx_dropped += 1;
                    return;
                };
                let Ok(seg) = TcpRepr::parse(&p, &src, &dst, ChecksumCheck::Verify) else {
                    self.rx_dropped += 1;
                    return;
                };
                let (tcp, mut sink) = self.io(now);
                tcp.on_segment(now, src, dst, &seg, &mut sink);
            }
            _ => self.rx_dropped += 1,
        }
    }

    /// Runs the stack's output (queued data, ACKs, timers), ARP, and transmits.
    fn flush(&mut self, now: Instant) {
        let (tcp, mut sink) = self.io(now);
        tcp.poll(now, &mut sink);
        while let Some(req) = self.edge.poll_arp(now, || self.q.alloc()) {
            let _ = self.tx.push(req);
        }
        if !self.tx.is_empty() {
            self.q.tx_burst(&mut self.tx);
            self.tx_full += self.tx.len() as u64;
            self.tx.clear();
        }
    }

    /// One RX burst (at most [`BURST`] frames) processed, then output. Returns frames received.
    fn step(&mut self, now: Instant) -> usize {
        let n = self.q.rx_burst(&mut self.rx);
        let mut rx = std::mem::replace(&mut self.rx, Batch::new(0));
        for f in rx.drain() {
            self.deliver(now, f);
        }
        self.rx = rx;
        self.flush(now);
        n
    }

    fn counters(&self) -> Value {
        let c = self.tcp.counters();
        json!({
            "segments_in": c.segments_in,
            "segments_out": c.segments_out,
            "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out,
            "retransmits": c.retransmits,
            "dropped_out_of_window": c.dropped_out_of_window,
            "bad_checksum": c.bad_checksum,
            "rx_dropped_before_tcp": self.rx_dropped,
            "tx_failed": self.tx_failed,
            "tx_ring_full_dropped": self.tx_full,
        })
    }
}

/// The virtual peer of the net_null runs: crafts its segments into mbufs.
struct Crafter {
    edge: Edge,
    iss: u32,
    /// Next sequence number the peer sends.
    snd_nxt: u32,
    /// What the peer acknowledges next.
    rcv_nxt: u32,
    payload: [u8; MSG],
}

impl Crafter {
    /// Overwrites `m` with the peer's segment `seg` (checksums filled, headers prepended).
    fn craft(&mut self, now: Instant, m: &mut Mbuf, seg: &TcpRepr<'_>) -> bool {
        m.reset();
        let Some(room) = m.append(seg.buffer_len()) else {
            return false;
        };
        if seg
            .emit(
                &mut TcpPacket::new_unchecked(room),
                &IpAddress::V4(A),
                &IpAddress::V4(B),
            )
            .is_err()
        {
            return false;
        }
        self.edge.encap_ipv4(now, m, A, B, IpProtocol::Tcp) == Egress::Ready
    }

    fn seg<'a>(&self, flags: TcpFlags, payload: &'a [u8]) -> TcpRepr<'a> {
        TcpRepr {
            src_port: PORT_A,
            dst_port: PORT_B,
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags,
            window: 65_535,
            urgent: 0,
            options: TcpOptions::default(),
            payload,
        }
    }
}

/// The first TCP segment in `b`'s transmit batch, parsed: (seq, flags).
fn sent_segment(f: &Mbuf) -> Option<(u32, TcpFlags)> {
    let bytes = f.as_ref();
    // Ethernet (14) + IPv4 without options (20), as the edge emits.
    let p = TcpPacket::new_checked(bytes.get(34..)?).ok()?;
    Some((p.seq_number(), p.flags()))
}

/// Handshake of the virtual peer A with host B listening on 443, through the full receive path:
/// SYN crafted into an mbuf from the pool, the SYN-ACK read from B's transmit batch, the ACK
/// crafted. Returns (crafter, B's connection).
fn handshake(host: &mut Host, now: Instant) -> Result<(Crafter, ConnId), String> {
    host.tcp
        .listen(IpAddress::V4(B), PORT_B)
        .map_err(|e| e.to_string())?;
    let mut edge = Edge::new(EdgeConfig::single(
        mgw_core::wire::EthernetAddress([2, 0, 0, 0, 0, 0xa]),
        A,
        24,
    ));
    edge.add_neighbor(now, B, host.q.mac());
    host.edge.add_neighbor(
        now,
        A,
        mgw_core::wire::EthernetAddress([2, 0, 0, 0, 0, 0xa]),
    );
    let mut c = Crafter {
        edge,
        iss: 7_000_000,
        snd_nxt: 7_000_000,
        rcv_nxt: 0,
        payload: [0x42; MSG],
    };
    let mut syn = c.seg(TcpFlags::SYN, &[]);
    syn.options.mss = Some(1460);
    syn.options.window_scale = Some(7);
    syn.options.sack_permitted = true;
    let mut m = host.q.alloc().ok_or("pool empty")?;
    if !c.craft(now, &mut m, &syn) {
        return Err("cannot craft SYN".into());
    }
    host.deliver(now, m);
    let (tcp, mut sink) = host.io(now);
    tcp.poll(now, &mut sink);
    let (b_iss, flags) = host
        .tx
        .iter()
        .find_map(sent_segment)
        .ok_or("no SYN-ACK from the stack")?;
    if !(flags.contains(TcpFlags::SYN) && flags.contains(TcpFlags::ACK)) {
        return Err(format!("expected SYN-ACK, got flags {flags:?}"));
    }
    host.flush(now);
    c.snd_nxt = c.iss.wrapping_add(1);
    c.rcv_nxt = b_iss.wrapping_add(1);
    let ack = c.seg(TcpFlags::ACK, &[]);
    let mut m = host.q.alloc().ok_or("pool empty")?;
    if !c.craft(now, &mut m, &ack) {
        return Err("cannot craft ACK".into());
    }
    host.deliver(now, m);
    host.flush(now);
    while let Some(e) = host.tcp.poll_event() {
        if let EventKind::Accepted { .. } = e.kind {
            return Ok((c, e.conn));
        }
    }
    Err("the stack did not accept the crafted handshake".into())
}

/// Which crafted segments the net_null peer sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NullMode {
    /// Pure ACKs of the stack's 64-byte messages.
    AckOnly,
    /// In-order 64-byte data segments.
    SmallData,
}

/// The stack on a net_null queue, fed crafted segments for `d`.
pub fn null_run(q: DpdkQueue, mode: NullMode, d: Duration) -> Result<Value, String> {
    let mut host = Host::new(q, B);
    let now = monotonic_now();
    let (mut c, conn) = handshake(&mut host, now)?;
    // AckOnly: keep 64 messages in flight; every ACK acknowledges the oldest one.
    let mut sent_msgs = 0u64;
    if mode == NullMode::AckOnly {
        for _ in 0..64 {
            if host.tcp.send(conn, &c.payload).map_err(|e| e.to_string())? != MSG {
                return Err("send ring full at start".into());
            }
            sent_msgs += 1;
            let (tcp, mut sink) = host.io(now);
            tcp.poll(now, &mut sink);
        }
        host.flush(now);
    }
    let c0 = *host.tcp.counters();
    let mut craft_time = Duration::ZERO;
    let mut stack_time = Duration::ZERO;
    let (mut frames, mut crafted, mut read, mut acked_msgs) = (0u64, 0u64, 0u64, 0u64);
    let cpu = CpuShare::start();
    let start = Wall::now();
    'outer: loop {
        for _ in 0..256 {
            let now = monotonic_now();
            let t0 = Wall::now();
            let n = host.q.rx_burst(&mut host.rx);
            let t1 = Wall::now();
            frames += n as u64;
            let mut rx = std::mem::replace(&mut host.rx, Batch::new(0));
            for m in rx.iter_mut() {
                let ok = match mode {
                    NullMode::SmallData => {
                        let payload = c.payload;
                        let seg = c.seg(TcpFlags::ACK.with(TcpFlags::PSH), &payload);
                        let ok = c.craft(now, m, &seg);
                        c.snd_nxt = c.snd_nxt.wrapping_add(MSG as u32);
                        ok
                    }
                    NullMode::AckOnly => {
                        // Acknowledge the next message still in flight (never a duplicate ACK).
                        if acked_msgs < sent_msgs {
                            acked_msgs += 1;
                            c.rcv_nxt = c.rcv_nxt.wrapping_add(MSG as u32);
                        }
                        let seg = c.seg(TcpFlags::ACK, &[]);
                        c.craft(now, m, &seg)
                    }
                };
                crafted += u64::from(ok);
            }
            let t2 = Wall::now();
            for m in rx.drain() {
                host.deliver(now, m);
            }
            host.rx = rx;
            match mode {
                NullMode::SmallData => {
                    // The application reads everything that arrived.
                    let (x, y) = host.tcp.peek(conn).map_err(|e| e.to_string())?;
                    let k = x.len() + y.len();
                    host.tcp.consume(conn, k).map_err(|e| e.to_string())?;
                    read += k as u64;
                    host.flush(now);
                }
                NullMode::AckOnly => {
                    // One new message per acknowledged one, each its own segment.
                    while sent_msgs < acked_msgs + 64 {
                        if host.tcp.send(conn, &c.payload).unwrap_or(0) != MSG {
                            break;
                        }
                        sent_msgs += 1;
                        let (tcp, mut sink) = host.io(now);
                        tcp.poll(now, &mut sink);
                    }
                    host.flush(now);
                }
            }
            let t3 = Wall::now();
            craft_time += t2 - t1;
            stack_time += (t1 - t0) + (t3 - t2);
        }
        if start.elapsed() >= d {
            break 'outer;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let share = cpu.share();
    let c1 = *host.tcp.counters();
    let seg_in = c1.segments_in - c0.segments_in;
    let seg_out = c1.segments_out - c0.segments_out;
    let st = stack_time.as_secs_f64() * share;
    let mut v = json!({
        "segments_in": seg_in,
        "segments_out": seg_out,
        "frames_from_net_null": frames,
        "crafted": crafted,
        "thread_on_cpu_share": round3(share),
        "stack_cpu_s": round3(st),
        "crafting_cpu_s": round3(craft_time.as_secs_f64() * share),
        "wall_s": round3(wall),
        "stack_mpps_in": round3(seg_in as f64 / st / 1e6),
        "stack_mpps_in_plus_out": round3((seg_in + seg_out) as f64 / st / 1e6),
        "wall_mpps_in_with_generator": round3(seg_in as f64 / wall / 1e6),
        "counters": host.counters(),
    });
    match mode {
        NullMode::SmallData => {
            let sent_bytes = u64::from(c.snd_nxt.wrapping_sub(c.iss.wrapping_add(1)));
            v["payload_bytes_read_by_app"] = json!(read);
            v["payload_bytes_crafted"] = json!(sent_bytes);
            v["stack_gbit_per_s_payload"] = json!(round3(read as f64 * 8.0 / st / 1e9));
        }
        NullMode::AckOnly => {
            v["messages_acked"] = json!(acked_msgs);
            v["messages_sent"] = json!(sent_msgs);
        }
    }
    // Real TCP work on every frame: each crafted segment reached the stack and was accepted.
    let c = host.tcp.counters();
    let ok = seg_in > 0
        && seg_in == crafted
        && c.bad_checksum == 0
        && c.dropped_out_of_window == 0
        && host.rx_dropped == 0
        && match mode {
            NullMode::SmallData => read == v["payload_bytes_crafted"].as_u64().unwrap_or(0),
            NullMode::AckOnly => acked_msgs == crafted,
        };
    if !ok {
        return Err(format!("the stack did not take every crafted segment: {v}"));
    }
    Ok(v)
}

/// Two stacks on a back-to-back ring pair: A connects to B, then sends 64-byte messages for `d`.
pub fn ring_run(qa: DpdkQueue, qb: DpdkQueue, d: Duration) -> Result<Value, String> {
    let mut a = Host::new(qa, A);
    let mut b = Host::new(qb, B);
    b.tcp
        .listen(IpAddress::V4(B), PORT_B)
        .map_err(|e| e.to_string())?;
    // ARP first (a SYN dropped for want of it costs a 1 s RTO); B learns A from the request.
    let arp = Wall::now();
    while a.edge.resolve(monotonic_now(), B).is_none() {
        if arp.elapsed() > Duration::from_secs(2) {
            return Err("ARP over net_ring did not resolve in 2 s".into());
        }
        let now = monotonic_now();
        a.step(now);
        b.step(now);
    }
    let now = monotonic_now();
    let ca = a
        .tcp
        .connect(now, (IpAddress::V4(A), PORT_A), (IpAddress::V4(B), PORT_B))
        .map_err(|e| e.to_string())?;
    let (mut connected, mut cb) = (false, None);
    let hs = Wall::now();
    while !(connected && cb.is_some()) {
        if hs.elapsed() > Duration::from_secs(5) {
            return Err("handshake over net_ring did not complete in 5 s".into());
        }
        let now = monotonic_now();
        a.step(now);
        b.step(now);
        while let Some(e) = a.tcp.poll_event() {
            connected |= e.kind == EventKind::Connected;
        }
        while let Some(e) = b.tcp.poll_event() {
            if let EventKind::Accepted { .. } = e.kind {
                cb = Some(e.conn);
            }
        }
    }
    let cb = cb.ok_or("no accept")?;
    let handshake_ms = hs.elapsed().as_secs_f64() * 1e3;
    let msg = [0x42u8; MSG];
    let (a0, b0) = (*a.tcp.counters(), *b.tcp.counters());
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    let (mut msgs, mut read) = (0u64, 0u64);
    let cpu = CpuShare::start();
    let start = Wall::now();
    loop {
        for _ in 0..256 {
            let now = monotonic_now();
            let t0 = Wall::now();
            // A: 32 messages, each its own segment (Nagle off), then ACKs in and output.
            for _ in 0..BURST {
                if a.tcp.send(ca, &msg).unwrap_or(0) != MSG {
                    break;
                }
                msgs += 1;
                let (tcp, mut sink) = a.io(now);
                tcp.poll(now, &mut sink);
            }
            a.step(now);
            let t1 = Wall::now();
            // B: data in, the application reads all, ACKs out.
            b.step(now);
            if let Ok((x, y)) = b.tcp.peek(cb) {
                let k = x.len() + y.len();
                let _ = b.tcp.consume(cb, k);
                read += k as u64;
            }
            b.flush(now);
            let t2 = Wall::now();
            ta += t1 - t0;
            tb += t2 - t1;
        }
        if start.elapsed() >= d {
            break;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let share = cpu.share();
    // Take what is still in the rings, so that the pool count after the run shows leaks only.
    for _ in 0..64 {
        let now = monotonic_now();
        if a.step(now) + b.step(now) == 0 {
            break;
        }
    }
    if let Ok((x, y)) = b.tcp.peek(cb) {
        let k = x.len() + y.len();
        let _ = b.tcp.consume(cb, k);
        read += k as u64;
    }
    if read != msgs * MSG as u64 {
        return Err(format!(
            "B read {read} bytes of the {} A sent",
            msgs * MSG as u64
        ));
    }
    let (a1, b1) = (*a.tcp.counters(), *b.tcp.counters());
    let (ta, tb) = (ta.as_secs_f64() * share, tb.as_secs_f64() * share);
    let b_in = b1.segments_in - b0.segments_in;
    let b_out = b1.segments_out - b0.segments_out;
    let a_in = a1.segments_in - a0.segments_in;
    let a_out = a1.segments_out - a0.segments_out;
    let data_bytes = b1.bytes_in - b0.bytes_in;
    Ok(json!({
        "cores": "1 (both stacks take turns on it)",
        "arp_and_handshake_ms": round3(handshake_ms),
        "wall_s": round3(wall),
        "thread_on_cpu_share": round3(share),
        "messages_sent": msgs,
        "payload_bytes_read_by_app": read,
        "receiver_b": {
            "what": "receives data segments, sends ACKs",
            "segments_in": b_in,
            "segments_out": b_out,
            "avg_payload_per_segment_in": round3(data_bytes as f64 / b_in.max(1) as f64),
            "cpu_s": round3(tb),
            "mpps_in": round3(b_in as f64 / tb / 1e6),
            "mpps_in_plus_out": round3((b_in + b_out) as f64 / tb / 1e6),
            "counters": b.counters(),
        },
        "sender_a": {
            "what": "sends 64-byte data segments, receives ACK-only segments",
            "segments_in": a_in,
            "segments_out": a_out,
            "cpu_s": round3(ta),
            "mpps_in": round3(a_in as f64 / ta / 1e6),
            "mpps_in_plus_out": round3((a_in + a_out) as f64 / ta / 1e6),
            "counters": a.counters(),
        },
        "wall_mpps_both_directions": round3((b_in + a_in) as f64 / wall / 1e6),
        "wall_gbit_per_s_payload": round3(read as f64 * 8.0 / wall / 1e9),
    }))
}
