//! The receiving half: placing segment text into the receive ring, reassembly, ACK policy
//! (RFC 9293 §3.10.7.4 seventh check, §3.8.6.3 delayed ACKs; RFC 5681 §4.2; RFC 2018).
//!
//! Out-of-order text is written straight into the ring at its final offset; only the ranges are
//! remembered. So reassembly costs no memory beyond the ring, and the per-connection and
//! per-worker bounds limit how much of the rings may hold out-of-order data at once.

use crate::conn::{flag, insert_range, ranges_bytes, Ctx, Tcb, OOO_RANGES};
use crate::seq::SeqNumber;
use crate::{Config, EventKind};
use mgw_core::time::Instant;
use mgw_core::wire::TcpOptions;

/// Copies `data` into ring `ring` starting at ring offset `pos`, wrapping at the end.
pub(crate) fn ring_write(ring: &mut [u8], pos: usize, data: &[u8]) {
    let cap = ring.len();
    if cap == 0 {
        return;
    }
    let pos = pos % cap;
    let first = data.len().min(cap - pos);
    ring[pos..pos + first].copy_from_slice(&data[..first]);
    let rest = data.len() - first;
    if rest > 0 {
        ring[..rest].copy_from_slice(&data[first..]);
    }
}

impl Tcb {
    /// Accepts segment text starting at `seq` (already known to overlap the window).
    pub fn receive_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        seq: SeqNumber,
        payload: &[u8],
        has_fin: bool,
        rbuf: &mut [u8],
    ) {
        let cap = ctx.cfg.recv_buffer;
        let mut seq = seq;
        let mut data = payload;
        if seq < self.rcv_nxt {
            let skip = self.rcv_nxt.since(seq) as usize;
            if skip >= data.len() {
                self.ack_now();
                return;
            }
            data = &data[skip..];
            seq = self.rcv_nxt;
        }
        let off = seq.since(self.rcv_nxt);
        let space = cap.saturating_sub(self.rbuf_len);
        if off >= space {
            ctx.counters.dropped_out_of_window += 1;
            self.ack_now();
            return;
        }
        let len = (data.len() as u64).min(u64::from(space - off));
        #[allow(clippy::cast_possible_truncation)]
        let len = len as u32;
        let data = &data[..len as usize];
        let pos = (self.rbuf_head + self.rbuf_len) as usize + off as usize;

        if off > 0 {
            // Out of order: RFC 5681 §4.2 wants an immediate (duplicate) ACK with SACK blocks.
            ctx.counters.ooo_segments += 1;
            self.ack_now();
            let before = self.ooo_bytes;
            if before + len > ctx.cfg.reassembly_per_connection
                || *ctx.ooo_total + u64::from(len) > ctx.cfg.reassembly_per_worker
            {
                ctx.counters.reassembly_drops += 1;
                return;
            }
            if !insert_range::<OOO_RANGES>(&mut self.ooo, &mut self.ooo_len, seq, seq + len) {
                ctx.counters.reassembly_drops += 1;
                return;
            }
            ring_write(rbuf, pos, data);
            self.ooo_bytes = ranges_bytes(&self.ooo[..usize::from(self.ooo_len)]);
            *ctx.ooo_total =
                (*ctx.ooo_total + u64::from(self.ooo_bytes)).saturating_sub(u64::from(before));
            self.last_ooo = seq;
            ctx.counters.bytes_in += u64::from(len);
            return;
        }

        ring_write(rbuf, pos, data);
        ctx.counters.bytes_in += u64::from(len);
        let was_empty = self.rbuf_len == 0;
        self.rcv_nxt = self.rcv_nxt + len;
        self.rbuf_len += len;
        if self.ooo_len > 0 {
            self.merge_ooo(ctx);
        }
        if was_empty && self.rbuf_len > 0 && !self.has(flag::APP_GONE) {
            ctx.event(EventKind::Readable);
        }
        // ACK policy: quick-ACK at the start, every second segment, or after the delay.
        self.segs_unacked = self.segs_unacked.saturating_add(1);
        match ctx.cfg.delayed_ack {
            Some(d) if self.quickack == 0 && self.segs_unacked < 2 && !has_fin => {
                if self.delack_at == Instant::FAR_FUTURE {
                    self.delack_at = ctx.now + d;
                }
            }
            _ => {
                self.quickack = self.quickack.saturating_sub(1);
                self.ack_now();
            }
        }
    }

    /// Pulls every out-of-order range that now touches `rcv_nxt` into the in-order part.
    fn merge_ooo(&mut self, ctx: &mut Ctx<'_>) {
        let before = self.ooo_bytes;
        let mut keep = 0usize;
        let n = usize::from(self.ooo_len);
        for i in 0..n {
            let (l, r) = self.ooo[i];
            if l <= self.rcv_nxt {
                if r > self.rcv_nxt {
                    let ext = r.since(self.rcv_nxt);
                    self.rcv_nxt = r;
                    self.rbuf_len += ext;
                }
            } else {
                self.ooo[keep] = (l, r);
                keep += 1;
            }
        }
        #[allow(clippy::cast_possible_truncation)]
        {
            self.ooo_len = keep as u8;
        }
        self.ooo_bytes = ranges_bytes(&self.ooo[..keep]);
        *ctx.ooo_total = ctx
            .ooo_total
            .saturating_sub(u64::from(before - self.ooo_bytes.min(before)));
        // A hole was filled: acknowledge at once (RFC 5681 §4.2).
        self.ack_now();
    }

    /// SACK blocks for an outgoing segment: the block with the newest data first (RFC 2018 §4).
    pub fn add_sack_blocks(&self, o: &mut TcpOptions) {
        if !self.has(flag::SACK_OK) || self.ooo_len == 0 {
            return;
        }
        let blocks = &self.ooo[..usize::from(self.ooo_len)];
        let first = blocks
            .iter()
            .position(|&(l, r)| l <= self.last_ooo && self.last_ooo < r)
            .unwrap_or(0);
        o.push_sack((blocks[first].0 .0, blocks[first].1 .0));
        for (i, &(l, r)) in blocks.iter().enumerate() {
            if i != first {
                o.push_sack((l.0, r.0));
            }
        }
    }

    /// The application consumed `n` bytes: free them and maybe announce the larger window.
    pub fn on_consume(&mut self, cfg: &Config, n: u32) -> bool {
        let n = n.min(self.rbuf_len);
        self.rbuf_head = (self.rbuf_head + n) % cfg.recv_buffer.max(1);
        self.rbuf_len -= n;
        let cap = self.rcv_window_capacity(cfg);
        let free = cap.saturating_sub(self.rbuf_len);
        let candidate = self.rcv_nxt + free;
        let threshold = (cap / 2).min(u32::from(cfg.mss));
        let advertised = if self.rcv_adv > self.rcv_nxt {
            self.rcv_adv.since(self.rcv_nxt)
        } else {
            0
        };
        // Window update when the window grew usefully and the peer may be limited by it.
        if candidate > self.rcv_adv
            && candidate.since(self.rcv_adv) >= threshold
            && advertised < cap / 2
            && self.state.can_receive()
        {
            self.ack_now();
            return true;
        }
        false
    }
}
