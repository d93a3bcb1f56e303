//! The per-worker stack: connection table, listeners, timer wheel, rings, events, counters.
//!
//! All memory is taken in [`Stack::new`]. Segment arrival is one keyed hash and one probe
//! sequence in the open-addressing table; timers are one wheel entry per connection.

use crate::conn::{flag, ChallengeBudget, Ctx, Disposition, EventQueue, Tcb};
use crate::isn::{self, FourTuple};
use crate::seq::SeqNumber;
use crate::state::State;
use crate::table::IndexTable;
use crate::timer::{tick_ceil, tick_floor, TimerWheel, TICK_NANOS};
use crate::{
    syncookie, Config, ConfigError, ConnError, ConnId, ConnectError, Counters, Event, EventKind,
    ListenError, ListenerId, SegmentSink,
};
use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address, Ipv6Address, TcpFlags, TcpOptions, TcpRepr};
use std::collections::VecDeque;

/// Most segments one connection sends per output pass (keeps one bulk flow from starving the
/// rest of a burst); a connection that hits it stays queued.
const MAX_BURST: usize = 64;

/// What one connection slot costs in TCP state (its send and receive rings come on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFootprint {
    /// The transmission control block.
    pub tcb: usize,
    /// Its share of the open-addressing table.
    pub table: usize,
    /// Its timer-wheel link.
    pub timer: usize,
    /// Its share of the free list and work queues.
    pub queues: usize,
    /// The sum.
    pub total: usize,
}

#[derive(Debug, Clone, Copy)]
struct Listener {
    addr: IpAddress,
    port: u16,
    hash: u32,
    used: bool,
    /// Cookie epoch ([`syncookie::epoch`]) of the last cookie this listener sent, if any:
    /// cookies are checked only while one could still be valid (Linux's recent-overflow test).
    cookie_epoch: Option<u64>,
}

/// One worker's TCP. See the crate documentation for the model.
#[derive(Debug)]
pub struct Stack {
    cfg: Config,
    /// Flow-table hash key, derived from `cfg.secret`.
    table_key: [u8; 16],
    tcbs: Vec<Tcb>,
    free: Vec<u32>,
    table: IndexTable,
    listeners: Vec<Listener>,
    listener_table: IndexTable,
    wheel: TimerWheel,
    fired: Vec<u32>,
    outq: VecDeque<u32>,
    events: EventQueue,
    counters: Counters,
    sbufs: Vec<u8>,
    rbufs: Vec<u8>,
    ooo_total: u64,
    syn_backlog: u32,
    challenge: ChallengeBudget,
}

fn hash32(h: u64) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let v = (h ^ (h >> 32)) as u32;
    v
}

fn unspecified_like(a: &IpAddress) -> IpAddress {
    match a {
        IpAddress::V4(_) => IpAddress::V4(Ipv4Address::UNSPECIFIED),
        IpAddress::V6(_) => IpAddress::V6(Ipv6Address::UNSPECIFIED),
    }
}

/// The per-connection context over the stack's shared state: a macro, not a method, so that
/// it borrows those fields only and the caller can still hold `&mut self.tcbs[i]`.
macro_rules! conn_ctx {
    ($stack:ident, $now:expr, $id:expr) => {
        Ctx {
            now: $now,
            cfg: &$stack.cfg,
            counters: &mut $stack.counters,
            events: &mut $stack.events,
            ooo_total: &mut $stack.ooo_total,
            challenge: &mut $stack.challenge,
            id: $id,
        }
    };
}

impl Stack {
    /// Allocates everything the worker will ever use.
    ///
    /// # Errors
    /// [`ConfigError::BadSize`] if a capacity or buffer size is zero, a buffer is over 1 GiB, or
    /// the MSS is under 64.
    pub fn new(cfg: Config) -> Result<Stack, ConfigError> {
        let n = cfg.max_connections as usize;
        if n == 0
            || cfg.send_buffer == 0
            || cfg.recv_buffer < 2
            || cfg.send_buffer > 1 << 30
            || cfg.recv_buffer > 1 << 30
            || cfg.mss < 64
            || cfg.local_mss.iter().any(|&(_, m)| m < 64)
            || cfg.max_listeners == 0
        {
            return Err(ConfigError::BadSize);
        }
        let sbytes = n
            .checked_mul(cfg.send_buffer as usize)
            .ok_or(ConfigError::BadSize)?;
        let rbytes = n
            .checked_mul(cfg.recv_buffer as usize)
            .ok_or(ConfigError::BadSize)?;
        let mut free = Vec::with_capacity(n);
        #[allow(clippy::cast_possible_truncation)]
        for i in (0..n).rev() {
            free.push(i as u32);
        }
        let unspec = IpAddress::V4(Ipv4Address::UNSPECIFIED);
        Ok(Stack {
            tcbs: vec![Tcb::empty(); n],
            free,
            table: IndexTable::new(n),
            listeners: vec![
                Listener {
                    addr: unspec,
                    port: 0,
                    hash: 0,
                    used: false,
                    cookie_epoch: None,
                };
                cfg.max_listeners as usize
            ],
            listener_table: IndexTable::new(cfg.max_listeners as usize),
            wheel: TimerWheel::new(n, 0),
            fired: Vec::with_capacity(n),
            outq: VecDeque::with_capacity(n),
            events: EventQueue::new(cfg.event_capacity as usize),
            counters: Counters::default(),
            sbufs: vec![0; sbytes],
            rbufs: vec![0; rbytes],
            ooo_total: 0,
            syn_backlog: 0,
            challenge: ChallengeBudget::default(),
            table_key: isn::table_key(&cfg.secret),
            cfg,
        })
    }

    /// Bytes of TCP state each connection slot costs, apart from its rings.
    pub fn state_bytes_per_connection() -> MemoryFootprint {
        let tcb = core::mem::size_of::<Tcb>();
        // The table has at least 2 slots of 8 bytes per connection (load factor <= 1/2).
        let table = 2 * core::mem::size_of::<u64>();
        let timer = TimerWheel::link_bytes();
        // Free list, output queue and fired list hold one u32 per slot each.
        let queues = 3 * core::mem::size_of::<u32>();
        MemoryFootprint {
            tcb,
            table,
            timer,
            queues,
            total: tcb + table + timer + queues,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Connections in the table (TIME-WAIT included).
    pub fn connection_count(&self) -> usize {
        self.tcbs.len() - self.free.len()
    }

    /// Out-of-order bytes held across the worker.
    pub fn reassembly_bytes(&self) -> u64 {
        self.ooo_total
    }

    /// The next event for the control plane.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// When to call [`Stack::poll`] next. A time at or before now means "now"; `None` means no
    /// timer is armed and nothing waits to be sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.outq.is_empty() {
            return Some(Instant::ZERO);
        }
        self.wheel
            .next_deadline()
            .map(|t| Instant::from_nanos(t.saturating_mul(TICK_NANOS)))
    }

    // ---- listeners -------------------------------------------------------------------------

    /// Starts listening on `addr:port` (an unspecified address matches every local address).
    ///
    /// # Errors
    /// [`ListenError::InUse`] if already listening there, [`ListenError::TableFull`] when every
    /// listener slot is used.
    pub fn listen(&mut self, addr: IpAddress, port: u16) -> Result<ListenerId, ListenError> {
        if self.listener_index(&addr, port).is_some() {
            return Err(ListenError::InUse);
        }
        let slot = self
            .listeners
            .iter()
            .position(|l| !l.used)
            .ok_or(ListenError::TableFull)?;
        let hash = hash32(isn::listen_hash(&self.cfg.secret, &addr, port));
        self.listeners[slot] = Listener {
            addr,
            port,
            hash,
            used: true,
            cookie_epoch: None,
        };
        #[allow(clippy::cast_possible_truncation)]
        let id = slot as u32;
        self.listener_table.insert(hash, id);
        Ok(ListenerId(id))
    }

    /// Stops a listener (connections it accepted stay).
    pub fn unlisten(&mut self, id: ListenerId) {
        if let Some(l) = self.listeners.get_mut(id.0 as usize) {
            if l.used {
                l.used = false;
                let h = l.hash;
                self.listener_table.remove(h, id.0);
            }
        }
    }

    fn listener_index(&self, addr: &IpAddress, port: u16) -> Option<u32> {
        let hash = hash32(isn::listen_hash(&self.cfg.secret, addr, port));
        let ls = &self.listeners;
        self.listener_table.find(hash, |i| {
            let l = &ls[i as usize];
            l.used && l.port == port && l.addr == *addr
        })
    }

    fn find_listener(&self, addr: &IpAddress, port: u16) -> Option<u32> {
        self.listener_index(addr, port)
            .or_else(|| self.listener_index(&unspecified_like(addr), port))
    }

    // ---- connections -------------------------------------------------------------------------

    fn id(&self, idx: u32) -> ConnId {
        ConnId {
            index: idx,
            generation: self.tcbs[idx as usize].generation,
        }
    }

    fn lookup(&self, t: &FourTuple, hash: u32) -> Option<u32> {
        let tcbs = &self.tcbs;
        self.table.find(hash, |i| tcbs[i as usize].tuple == *t)
    }

    fn tuple_hash(&self, t: &FourTuple) -> u32 {
        hash32(isn::table_hash(&self.table_key, t))
    }

    fn check(&self, id: ConnId) -> Result<usize, ConnError> {
        let t = self
            .tcbs
            .get(id.index as usize)
            .ok_or(ConnError::InvalidHandle)?;
        if t.generation != id.generation || t.state == State::Closed || t.has(flag::APP_GONE) {
            return Err(ConnError::InvalidHandle);
        }
        Ok(id.index as usize)
    }

    fn allocate(&mut self, now: Instant, t: FourTuple, hash: u32, iss: Option<u32>) -> Option<u32> {
        let idx = self.free.pop()?;
        let iss = iss.unwrap_or_else(|| isn::initial_sequence_number(&self.cfg.secret, &t, now));
        let tsoff = isn::timestamp_offset(&self.cfg.secret, &t);
        let tcb = &mut self.tcbs[idx as usize];
        tcb.generation = tcb.generation.wrapping_add(1);
        tcb.init(&self.cfg, t, hash, iss, tsoff);
        self.table.insert(hash, idx);
        self.counters.connections_opened += 1;
        Some(idx)
    }

    fn free_slot(&mut self, idx: u32) {
        let tcb = &mut self.tcbs[idx as usize];
        if tcb.state == State::Closed {
            return;
        }
        self.table.remove(tcb.hash, idx);
        self.wheel.cancel(idx);
        if tcb.has(flag::IN_BACKLOG) {
            self.syn_backlog = self.syn_backlog.saturating_sub(1);
        }
        self.ooo_total = self.ooo_total.saturating_sub(u64::from(tcb.ooo_bytes));
        tcb.state = State::Closed;
        tcb.flags = 0;
        tcb.generation = tcb.generation.wrapping_add(1);
        self.free.push(idx);
        self.counters.connections_closed += 1;
    }

    fn queue(&mut self, idx: u32) {
        let tcb = &mut self.tcbs[idx as usize];
        if !tcb.has(flag::QUEUED) {
            tcb.set(flag::QUEUED);
            self.outq.push_back(idx);
        }
    }

    fn rearm(&mut self, idx: u32) {
        let d = self.tcbs[idx as usize].deadline();
        if d == Instant::FAR_FUTURE {
            self.wheel.cancel(idx);
        } else {
            let t = tick_ceil(d);
            if self.wheel.armed_at(idx) != Some(t) {
                self.wheel.schedule(idx, t);
            }
        }
    }

    /// Active open from `local` to `remote`; the SYN leaves on the next [`Stack::poll`].
    ///
    /// # Errors
    /// [`ConnectError::InUse`] if the 4-tuple exists, [`ConnectError::TableFull`] if no slot
    /// is free.
    pub fn connect(
        &mut self,
        now: Instant,
        local: (IpAddress, u16),
        remote: (IpAddress, u16),
    ) -> Result<ConnId, ConnectError> {
        let t = FourTuple {
            local_addr: local.0,
            local_port: local.1,
            remote_addr: remote.0,
            remote_port: remote.1,
        };
        let hash = self.tuple_hash(&t);
        if self.lookup(&t, hash).is_some() {
            return Err(ConnectError::InUse);
        }
        let Some(idx) = self.allocate(now, t, hash, None) else {
            self.counters.table_full_refusals += 1;
            return Err(ConnectError::TableFull);
        };
        let tcb = &mut self.tcbs[idx as usize];
        tcb.open_active(&self.cfg);
        if let Some(t) = self.cfg.connect_timeout {
            tcb.connect_at = now + t;
        }
        self.queue(idx);
        Ok(self.id(idx))
    }

    /// A TCP segment for us arrived (`src`/`dst` from the IP header; the IP layer has parsed and
    /// checksum-verified it). Replies go out through `sink` right away.
    pub fn on_segment(
        &mut self,
        now: Instant,
        src: IpAddress,
        dst: IpAddress,
        seg: &TcpRepr<'_>,
        sink: &mut impl SegmentSink,
    ) {
        self.counters.segments_in += 1;
        let t = FourTuple {
            local_addr: dst,
            local_port: seg.dst_port,
            remote_addr: src,
            remote_port: seg.src_port,
        };
        let hash = self.tuple_hash(&t);
        if let Some(idx) = self.lookup(&t, hash) {
            let tcb = &self.tcbs[idx as usize];
            let is_syn = seg.flags.contains(TcpFlags::SYN)
                && !seg.flags.intersects(TcpFlags::ACK.with(TcpFlags::RST));
            if tcb.state == State::TimeWait && is_syn && self.time_wait_reusable(tcb, seg) {
                // RFC 9293 §3.10.7.4 / RFC 6191: a new SYN may reopen a TIME-WAIT pair.
                self.counters.time_wait_reused += 1;
                self.free_slot(idx);
            } else {
                self.process(idx, now, seg, sink);
                return;
            }
        }
        self.on_listener_segment(now, t, hash, seg, sink);
    }

    fn time_wait_reusable(&self, tcb: &Tcb, seg: &TcpRepr<'_>) -> bool {
        if tcb.has(flag::TS_OK) {
            if let Some((tsval, _)) = seg.options.timestamps {
                #[allow(clippy::cast_possible_wrap)]
                return (tsval.wrapping_sub(tcb.ts_recent) as i32) > 0;
            }
        }
        SeqNumber(seg.seq) > tcb.rcv_nxt
    }

    fn process(&mut self, idx: u32, now: Instant, seg: &TcpRepr<'_>, sink: &mut impl SegmentSink) {
        let id = self.id(idx);
        let rcap = self.cfg.recv_buffer as usize;
        let i = idx as usize;
        let rbuf = &mut self.rbufs[i * rcap..(i + 1) * rcap];
        let tcb = &mut self.tcbs[i];
        let mut ctx = conn_ctx!(self, now, id);
        if tcb.state.is_synchronized() && tcb.state != State::TimeWait {
            tcb.arm_keepalive(&ctx);
        }
        let d = tcb.on_segment(&mut ctx, seg, rbuf);
        self.finish(idx, now, d, sink);
    }

    fn finish(&mut self, idx: u32, now: Instant, d: Disposition, sink: &mut impl SegmentSink) {
        let i = idx as usize;
        {
            let tcb = &mut self.tcbs[i];
            if tcb.has(flag::IN_BACKLOG) && tcb.state != State::SynReceived {
                tcb.clear(flag::IN_BACKLOG);
                self.syn_backlog = self.syn_backlog.saturating_sub(1);
            }
        }
        match d {
            Disposition::Keep => {
                self.output(idx, now, sink);
                self.rearm(idx);
            }
            Disposition::KeepAndRst(seq) => {
                let t = self.tcbs[i].tuple;
                self.send_rst(&t, seq, None, sink);
                self.output(idx, now, sink);
                self.rearm(idx);
            }
            Disposition::Free => self.free_slot(idx),
            Disposition::FreeAndRst => {
                let t = self.tcbs[i].tuple;
                let seq = self.tcbs[i].snd_max.0;
                self.send_rst(&t, seq, None, sink);
                self.free_slot(idx);
            }
        }
    }

    fn send_rst(&mut self, t: &FourTuple, seq: u32, ack: Option<u32>, sink: &mut impl SegmentSink) {
        let flags = if ack.is_some() {
            TcpFlags::RST.with(TcpFlags::ACK)
        } else {
            TcpFlags::RST
        };
        let repr = TcpRepr {
            src_port: t.local_port,
            dst_port: t.remote_port,
            seq,
            ack: ack.unwrap_or(0),
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        if sink.transmit(t.local_addr, t.remote_addr, &repr) {
            self.counters.segments_out += 1;
            self.counters.rst_out += 1;
        } else {
            self.counters.sink_refusals += 1;
        }
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection gets a RST (unless it is one).
    fn reset_unknown(&mut self, t: &FourTuple, seg: &TcpRepr<'_>, sink: &mut impl SegmentSink) {
        if seg.flags.contains(TcpFlags::RST) {
            return;
        }
        if seg.flags.contains(TcpFlags::ACK) {
            self.send_rst(t, seg.ack, None, sink);
        } else {
            let len = u32::try_from(seg.segment_len()).unwrap_or(0);
            self.send_rst(t, 0, Some(seg.seq.wrapping_add(len)), sink);
        }
    }

    fn on_listener_segment(
        &mut self,
        now: Instant,
        t: FourTuple,
        hash: u32,
        seg: &TcpRepr<'_>,
        sink: &mut impl SegmentSink,
    ) {
        let Some(lidx) = self.find_listener(&t.local_addr, t.local_port) else {
            self.counters.no_listener += 1;
            self.reset_unknown(&t, seg, sink);
            return;
        };
        // RFC 9293 §3.10.7.2, LISTEN: first RST (ignore), then ACK (reset), then SYN.
        if seg.flags.contains(TcpFlags::RST) {
            return;
        }
        if seg.flags.contains(TcpFlags::ACK) {
            // RFC 4987 §3.6 cookies are only looked at while this listener has recently sent
            // some (as Linux does): otherwise every stray ACK would be a free guess at one.
            let recent = self.listeners[lidx as usize]
                .cookie_epoch
                .is_some_and(|e| e + 1 >= syncookie::epoch(now));
            if !seg.flags.contains(TcpFlags::SYN) && self.cfg.syn_cookies && recent {
                if let Some(mss) = syncookie::decode(&self.cfg.secret, &t, seg.ack, seg.seq, now) {
                    self.accept_cookie(now, t, hash, seg, mss, lidx, sink);
                    return;
                }
                self.counters.syn_cookies_rejected += 1;
            }
            self.send_rst(&t, seg.ack, None, sink);
            return;
        }
        if !seg.flags.contains(TcpFlags::SYN) {
            return;
        }
        if self.free.is_empty() {
            self.counters.table_full_refusals += 1;
            return;
        }
        if self.syn_backlog >= self.cfg.syn_backlog {
            if self.cfg.syn_cookies {
                self.listeners[lidx as usize].cookie_epoch = Some(syncookie::epoch(now));
                self.send_cookie(now, &t, seg, sink);
            } else {
                self.counters.syn_backlog_drops += 1;
            }
            return;
        }
        let Some(idx) = self.allocate(now, t, hash, None) else {
            self.counters.table_full_refusals += 1;
            return;
        };
        self.tcbs[idx as usize].open_passive(&self.cfg, seg, lidx);
        self.syn_backlog += 1;
        self.output(idx, now, sink);
        self.rearm(idx);
    }

    fn send_cookie(
        &mut self,
        now: Instant,
        t: &FourTuple,
        seg: &TcpRepr<'_>,
        sink: &mut impl SegmentSink,
    ) {
        let peer_mss = seg.options.mss.unwrap_or(536);
        let cookie = syncookie::encode(&self.cfg.secret, t, seg.seq, peer_mss, now);
        let repr = TcpRepr {
            src_port: t.local_port,
            dst_port: t.remote_port,
            seq: cookie,
            ack: seg.seq.wrapping_add(1),
            flags: TcpFlags::SYN.with(TcpFlags::ACK),
            window: u16::try_from(self.cfg.recv_buffer.min(65_535)).unwrap_or(u16::MAX),
            urgent: 0,
            options: TcpOptions {
                mss: Some(self.cfg.mss_for(t.local_addr)),
                ..TcpOptions::default()
            },
            payload: &[],
        };
        if sink.transmit(t.local_addr, t.remote_addr, &repr) {
            self.counters.segments_out += 1;
            self.counters.syn_cookies_sent += 1;
        } else {
            self.counters.sink_refusals += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn accept_cookie(
        &mut self,
        now: Instant,
        t: FourTuple,
        hash: u32,
        seg: &TcpRepr<'_>,
        mss: u16,
        lidx: u32,
        sink: &mut impl SegmentSink,
    ) {
        let Some(idx) = self.allocate(now, t, hash, Some(seg.ack.wrapping_sub(1))) else {
            self.counters.table_full_refusals += 1;
            return;
        };
        self.counters.syn_cookies_accepted += 1;
        self.tcbs[idx as usize].open_from_cookie(&self.cfg, seg, mss, lidx);
        let id = self.id(idx);
        self.events.push(
            &mut self.counters,
            id,
            EventKind::Accepted {
                listener: ListenerId(lidx),
            },
        );
        // The completing ACK may carry data: run it through ESTABLISHED.
        self.process(idx, now, seg, sink);
    }

    /// Sends what connection `idx` has to send.
    fn output(&mut self, idx: u32, now: Instant, sink: &mut impl SegmentSink) {
        let i = idx as usize;
        let scap = self.cfg.send_buffer as usize;
        let mut sent = 0;
        while let Some(plan) = self.tcbs[i].plan(&self.cfg, now) {
            if sent == MAX_BURST {
                self.queue(idx);
                break;
            }
            let tcb = &mut self.tcbs[i];
            let syn = plan.flags.contains(TcpFlags::SYN);
            let window = tcb.window_field(&self.cfg, syn);
            let payload: &[u8] = if plan.len > 0 {
                let off = plan.seq.since(tcb.sbuf_seq);
                let pos = ((tcb.sbuf_head + off) % self.cfg.send_buffer) as usize;
                let base = i * scap;
                &self.sbufs[base + pos..base + pos + plan.len as usize]
            } else {
                &[]
            };
            let repr = TcpRepr {
                src_port: tcb.tuple.local_port,
                dst_port: tcb.tuple.remote_port,
                seq: plan.seq.0,
                ack: if plan.flags.contains(TcpFlags::ACK) {
                    tcb.rcv_nxt.0
                } else {
                    0
                },
                flags: plan.flags,
                window,
                urgent: 0,
                options: plan.options,
                payload,
            };
            if !sink.transmit(tcb.tuple.local_addr, tcb.tuple.remote_addr, &repr) {
                self.counters.sink_refusals += 1;
                self.queue(idx);
                break;
            }
            self.counters.segments_out += 1;
            self.counters.bytes_out += u64::from(plan.len);
            if tcb.is_retransmission(&plan) {
                self.counters.retransmits += 1;
            }
            tcb.commit(&self.cfg, now, &plan);
            sent += 1;
        }
        self.tcbs[i].update_persist(&self.cfg, now);
        self.tcbs[i].update_close_timer(&self.cfg, now);
    }

    /// Runs due timers and sends whatever is queued (data the app sent, retries after sink
    /// back-pressure). Call at least at [`Stack::poll_timeout`].
    pub fn poll(&mut self, now: Instant, sink: &mut impl SegmentSink) {
        let mut fired = core::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.advance(tick_floor(now), &mut fired);
        for &idx in &fired {
            let i = idx as usize;
            if self.tcbs[i].state == State::Closed {
                continue;
            }
            let id = self.id(idx);
            let mut ctx = conn_ctx!(self, now, id);
            let d = self.tcbs[i].on_timer(&mut ctx);
            self.finish(idx, now, d, sink);
        }
        self.fired = fired;
        let n = self.outq.len();
        for _ in 0..n {
            let Some(idx) = self.outq.pop_front() else {
                break;
            };
            let tcb = &mut self.tcbs[idx as usize];
            tcb.clear(flag::QUEUED);
            if tcb.state == State::Closed {
                continue;
            }
            self.output(idx, now, sink);
            self.rearm(idx);
        }
    }

    /// Debug dump of a connection's TCB (tests and diagnostics only; allocates).
    #[doc(hidden)]
    pub fn debug_tcb(&self, index: u32) -> String {
        self.tcbs
            .get(index as usize)
            .map(|t| format!("{t:?}"))
            .unwrap_or_default()
    }

    // ---- application API -------------------------------------------------------------------

    /// The connection's state.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn state(&self, id: ConnId) -> Result<State, ConnError> {
        Ok(self.tcbs[self.check(id)?].state)
    }

    /// The connection's 4-tuple.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn tuple(&self, id: ConnId) -> Result<FourTuple, ConnError> {
        Ok(self.tcbs[self.check(id)?].tuple)
    }

    /// Queues as much of `data` as fits in the send ring; returns how much that was. The data
    /// leaves on the next [`Stack::poll`]. When this returns less than asked, a `Writable`
    /// event follows once space frees.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle, [`ConnError::InvalidState`] after
    /// `close` or once the connection can no longer send.
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        let i = self.check(id)?;
        let scap = self.cfg.send_buffer as usize;
        let tcb = &mut self.tcbs[i];
        if !tcb.state.can_send() || tcb.has(flag::FIN_QUEUED) {
            return Err(ConnError::InvalidState);
        }
        let n = tcb.app_send(&mut self.sbufs[i * scap..(i + 1) * scap], data);
        if n > 0 {
            self.queue(id.index);
        }
        Ok(n)
    }

    /// Free space in the send ring.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn send_space(&self, id: ConnId) -> Result<usize, ConnError> {
        let t = &self.tcbs[self.check(id)?];
        Ok((self.cfg.send_buffer - t.sbuf_len) as usize)
    }

    /// In-order bytes ready to read.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn recv_available(&self, id: ConnId) -> Result<usize, ConnError> {
        Ok(self.tcbs[self.check(id)?].rbuf_len as usize)
    }

    /// Zero-copy view of the readable bytes: two slices because the ring may wrap.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn peek(&self, id: ConnId) -> Result<(&[u8], &[u8]), ConnError> {
        let i = self.check(id)?;
        let t = &self.tcbs[i];
        let cap = self.cfg.recv_buffer as usize;
        let ring = &self.rbufs[i * cap..(i + 1) * cap];
        let head = t.rbuf_head as usize;
        let len = t.rbuf_len as usize;
        let first = len.min(cap - head);
        Ok((&ring[head..head + first], &ring[..len - first]))
    }

    /// Marks `n` peeked bytes as read; the receive window opens accordingly.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn consume(&mut self, id: ConnId, n: usize) -> Result<(), ConnError> {
        let i = self.check(id)?;
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if self.tcbs[i].on_consume(&self.cfg, n) {
            self.queue(id.index);
        }
        let tcb = &mut self.tcbs[i];
        if tcb.has(flag::CLOSE_PENDING) && tcb.rbuf_len == 0 {
            let mut ctx = conn_ctx!(self, Instant::ZERO, id);
            tcb.app_finished(&mut ctx);
            if tcb.state == State::LastAck && tcb.fin_acked() {
                self.free_slot(id.index);
            }
        }
        Ok(())
    }

    /// Copies readable bytes into `buf` and consumes them.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        let (a, b) = self.peek(id)?;
        let n1 = a.len().min(buf.len());
        buf[..n1].copy_from_slice(&a[..n1]);
        let n2 = b.len().min(buf.len() - n1);
        buf[n1..n1 + n2].copy_from_slice(&b[..n2]);
        self.consume(id, n1 + n2)?;
        Ok(n1 + n2)
    }

    /// Closes our sending direction (FIN after the queued data). Reading stays possible until
    /// the peer's FIN; the handle lives until `Closed`.
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn close(&mut self, id: ConnId) -> Result<(), ConnError> {
        let i = self.check(id)?;
        let mut ctx = conn_ctx!(self, Instant::ZERO, id);
        match self.tcbs[i].app_close(&mut ctx) {
            Disposition::Free | Disposition::FreeAndRst => self.free_slot(id.index),
            _ => self.queue(id.index),
        }
        Ok(())
    }

    /// Closes and gives up the handle, like closing a socket descriptor (a full close, where
    /// [`Stack::close`] is a half close): queued data and the FIN still go out and the
    /// connection finishes closing on its own, with no further events. Its life is bounded:
    /// FIN-WAIT-2 by [`Config::fin_wait2_timeout`], the whole close by
    /// [`Config::close_timeout`], a shut peer window by [`Config::max_persist_probes`].
    /// RFC 1122 §4.2.2.13: if received data is still unread, or new data arrives later, the
    /// peer is reset instead (the data is lost and it should know).
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn release(&mut self, id: ConnId, sink: &mut impl SegmentSink) -> Result<(), ConnError> {
        let i = self.check(id)?;
        if self.tcbs[i].rbuf_len > 0 {
            let t = self.tcbs[i].tuple;
            let seq = self.tcbs[i].snd_max.0;
            self.send_rst(&t, seq, None, sink);
            self.free_slot(id.index);
            return Ok(());
        }
        if self.tcbs[i].state == State::SynSent && self.tcbs[i].sbuf_len == 0 {
            // RFC 9293 §3.10.4: nothing sent yet, just delete the TCB.
            self.free_slot(id.index);
            return Ok(());
        }
        let mut ctx = conn_ctx!(self, Instant::ZERO, id);
        let tcb = &mut self.tcbs[i];
        // The app is gone: no events from here on (APP_GONE), timers bound the rest (ORPHAN).
        tcb.set(flag::APP_GONE | flag::ORPHAN);
        tcb.clear(flag::CLOSE_PENDING | flag::WANT_WRITABLE);
        match tcb.app_close(&mut ctx) {
            Disposition::Free | Disposition::FreeAndRst => self.free_slot(id.index),
            _ => self.queue(id.index),
        }
        Ok(())
    }

    /// Aborts with RST (RFC 9293 §3.10.5); the handle is gone at once (a `Closed` event follows).
    ///
    /// # Errors
    /// [`ConnError::InvalidHandle`] for a stale handle.
    pub fn abort(&mut self, id: ConnId, sink: &mut impl SegmentSink) -> Result<(), ConnError> {
        let i = self.check(id)?;
        let t = self.tcbs[i].tuple;
        if self.tcbs[i].state != State::SynSent {
            let seq = self.tcbs[i].snd_max.0;
            self.send_rst(&t, seq, None, sink);
        }
        self.events.push(&mut self.counters, id, EventKind::Closed);
        self.free_slot(id.index);
        Ok(())
    }
}
