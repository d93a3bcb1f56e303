//! A driver that turns arbitrary bytes into a conversation with one [`Stack`]: segments built
//! from the input (some relative to what the stack last sent, so they reach the synchronized
//! states), time jumps, and application calls. Used by the `tcp_stack` fuzz target and by a
//! seeded robustness test; the only property checked is "no panic, no broken invariant".

use crate::{Config, ConnId, EventKind, SegmentSink, Stack};
use core::time::Duration;
use mgw_core::time::Instant;
use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{IpAddress, Ipv4Address, TcpFlags, TcpOptions, TcpPacket, TcpRepr};

const LOCAL: IpAddress = IpAddress::V4(Ipv4Address([10, 0, 0, 1]));
const REMOTE: IpAddress = IpAddress::V4(Ipv4Address([10, 0, 0, 2]));

#[derive(Default)]
struct Last {
    seq: u32,
    ack: u32,
    count: u64,
}

impl SegmentSink for Last {
    fn transmit(&mut self, _s: IpAddress, _d: IpAddress, seg: &TcpRepr<'_>) -> bool {
        self.seq = seg
            .seq
            .wrapping_add(u32::try_from(seg.segment_len()).unwrap_or(0));
        self.ack = seg.ack;
        self.count += 1;
        // Refuse now and then to exercise back-pressure.
        self.count % 17 != 0
    }
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// Runs one conversation. Panics only on a broken invariant (a bug).
pub fn run(data: &[u8]) {
    let cfg = Config {
        max_connections: 4,
        syn_backlog: 2,
        send_buffer: 2048,
        recv_buffer: 2048,
        mss: 536,
        event_capacity: 64,
        keepalive: Some(crate::Keepalive {
            idle: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            probes: 2,
        }),
        time_wait: Duration::from_secs(2),
        ..Config::default()
    };
    let Ok(mut s) = Stack::new(cfg) else { return };
    let _ = s.listen(LOCAL, 80);
    let mut now = Instant::from_millis(1000);
    let mut sink = Last::default();
    let mut conns: Vec<ConnId> = Vec::new();
    if let Ok(c) = s.connect(now, (LOCAL, 5000), (REMOTE, 6000)) {
        conns.push(c);
    }
    s.poll(now, &mut sink);
    let mut inp = Input(data);
    let mut buf = [0u8; 4096];
    while let Some(op) = inp.byte() {
        match op % 6 {
            // A raw segment, parsed like the IP layer would (checksum skipped).
            0 => {
                let len = usize::from(inp.byte().unwrap_or(0)) * 2;
                let raw = inp.take(len);
                if let Ok(p) = TcpPacket::new_checked(raw) {
                    if let Ok(seg) = TcpRepr::parse(&p, &REMOTE, &LOCAL, ChecksumCheck::Skip) {
                        s.on_segment(now, REMOTE, LOCAL, &seg, &mut sink);
                    }
                }
            }
            // A plausible segment relative to what the stack last sent.
            1 | 2 => {
                let (Some(f), Some(dseq), Some(dack), Some(win), Some(plen)) =
                    (inp.byte(), inp.u16(), inp.u16(), inp.u16(), inp.byte())
                else {
                    break;
                };
                let port_pick = inp.byte().unwrap_or(0);
                let (src_port, dst_port) = if port_pick & 1 == 0 {
                    (6000, 5000)
                } else {
                    (7000 + u16::from(port_pick >> 6), 80)
                };
                let mut options = TcpOptions::default();
                if f & 0x80 != 0 {
                    options.mss = Some(win);
                    options.window_scale = Some(f & 0x0f);
                    options.sack_permitted = true;
                }
                if f & 0x40 != 0 {
                    let v = inp.u32().unwrap_or(0);
                    options.timestamps = Some((v, v));
                }
                if port_pick & 2 != 0 {
                    let l = sink.seq.wrapping_add(u32::from(dseq));
                    options.push_sack((l, l.wrapping_add(u32::from(dack))));
                }
                let payload = inp.take(usize::from(plen));
                let seg = TcpRepr {
                    src_port,
                    dst_port,
                    seq: sink.ack.wrapping_add(u32::from(dseq)).wrapping_sub(1 << 15),
                    ack: sink.seq.wrapping_add(u32::from(dack)).wrapping_sub(1 << 15),
                    flags: TcpFlags(f & 0x3f),
                    window: win,
                    urgent: 0,
                    options,
                    payload,
                };
                s.on_segment(now, REMOTE, LOCAL, &seg, &mut sink);
            }
            // Time passes.
            3 => {
                let ms = u64::from(inp.byte().unwrap_or(0)) * u64::from(inp.byte().unwrap_or(1));
                now += Duration::from_millis(ms);
                s.poll(now, &mut sink);
            }
            // The application acts on one of its connections.
            4 => {
                let Some(&id) =
                    conns.get(usize::from(inp.byte().unwrap_or(0)) % conns.len().max(1))
                else {
                    continue;
                };
                match inp.byte().unwrap_or(0) % 5 {
                    0 => {
                        let n = usize::from(inp.byte().unwrap_or(0)) * 16;
                        let _ = s.send(id, &buf[..n.min(buf.len())]);
                    }
                    1 => {
                        let _ = s.recv(id, &mut buf);
                    }
                    2 => {
                        let _ = s.close(id);
                    }
                    3 => {
                        let _ = s.abort(id, &mut sink);
                    }
                    _ => {
                        if let Ok((a, b)) = s.peek(id) {
                            let n = a.len() + b.len();
                            let _ = s.consume(id, n / 2);
                        }
                    }
                }
            }
            _ => {
                if let Ok(c) = s.connect(
                    now,
                    (LOCAL, 5001 + u16::from(inp.byte().unwrap_or(0))),
                    (REMOTE, 6000),
                ) {
                    conns.push(c);
                }
            }
        }
        while let Some(e) = s.poll_event() {
            if matches!(e.kind, EventKind::Accepted { .. } | EventKind::Connected)
                && conns.len() < 16
            {
                conns.push(e.conn);
            }
        }
        s.poll(now, &mut sink);
        assert!(s.connection_count() <= 4);
    }
    // Whatever happened, time heals: everything eventually closes or keeps a deadline.
    for c in &conns {
        let _ = s.abort(*c, &mut sink);
    }
    for _ in 0..64 {
        match s.poll_timeout() {
            Some(t) => {
                now = now.max(t) + Duration::from_millis(1);
                s.poll(now, &mut sink);
            }
            None => break,
        }
    }
    assert_eq!(
        s.connection_count(),
        0,
        "connections left after aborts and timeouts"
    );
    assert_eq!(s.reassembly_bytes(), 0);
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_conversations_never_panic() {
        let mut rng = mgw_core::rng::Rng::new(42);
        let n = if cfg!(mgw_tcp_optimized) {
            20_000
        } else {
            2_000
        };
        let mut data = vec![0u8; 600];
        for _ in 0..n {
            let len = rng.below(600) as usize;
            rng.fill(&mut data[..len]);
            super::run(&data[..len]);
        }
    }
}
