//! State-machine tests, smoltcp style: grouped by state, a virtual clock, and `send!`/`recv!`
//! macros that play the peer against one [`Stack`].

use super::*;
use mgw_core::time::Instant;
use mgw_core::wire::{IpAddress, Ipv4Address, TcpFlags, TcpOptions, TcpRepr};

const LOCAL: IpAddress = IpAddress::V4(Ipv4Address([10, 0, 0, 1]));
const REMOTE: IpAddress = IpAddress::V4(Ipv4Address([10, 0, 0, 2]));
const LPORT: u16 = 80;
const RPORT: u16 = 40_000;
const RISN: u32 = 100_000;

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const FIN: TcpFlags = TcpFlags::FIN;
const RST: TcpFlags = TcpFlags::RST;
const PSH: TcpFlags = TcpFlags::PSH;

#[derive(Debug, Clone)]
struct Out {
    dst: IpAddress,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

#[derive(Default)]
struct Cap {
    segs: Vec<Out>,
    refuse: bool,
}

impl SegmentSink for Cap {
    fn transmit(&mut self, _src: IpAddress, dst: IpAddress, seg: &TcpRepr<'_>) -> bool {
        if self.refuse {
            return false;
        }
        self.segs.push(Out {
            dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            options: seg.options,
            payload: seg.payload.to_vec(),
        });
        true
    }
}

struct H {
    s: Stack,
    now: Instant,
    cap: Cap,
    /// Our ISS as learnt from our SYN or SYN-ACK.
    iss: u32,
    conn: Option<ConnId>,
}

fn cfg() -> Config {
    Config {
        max_connections: 8,
        syn_backlog: 4,
        send_buffer: 8192,
        recv_buffer: 4096,
        mss: 1000,
        timestamps: false,
        delayed_ack: None,
        min_rto: core::time::Duration::from_millis(200),
        initial_rto: core::time::Duration::from_millis(1000),
        max_syn_retries: 3,
        max_retries: 4,
        time_wait: core::time::Duration::from_secs(10),
        ..Config::default()
    }
}

fn seg(seq: u32, ack: u32, flags: TcpFlags, payload: &'static [u8]) -> TcpRepr<'static> {
    TcpRepr {
        src_port: RPORT,
        dst_port: LPORT,
        seq,
        ack,
        flags,
        window: 8192,
        urgent: 0,
        options: TcpOptions::default(),
        payload,
    }
}

impl H {
    fn new(c: Config) -> H {
        H {
            s: Stack::new(c).unwrap(),
            now: Instant::from_millis(1_000),
            cap: Cap::default(),
            iss: 0,
            conn: None,
        }
    }

    /// Runs timers (at most 100), answering each zero-window probe (an ACK at `iss`) with `z`,
    /// until the stack frees the connection; asserts it did and returns how long that took.
    fn answer_probes_until_freed(&mut self, z: &TcpRepr<'_>) -> core::time::Duration {
        let start = self.now;
        for _ in 0..100 {
            if self.s.connection_count() == 0 {
                break;
            }
            self.run_timer();
            let iss = self.iss;
            if self.take().iter().any(|o| o.flags == ACK && o.seq == iss) {
                self.send_seg(z);
            }
        }
        assert_eq!(self.s.connection_count(), 0);
        self.now.saturating_duration_since(start)
    }

    fn send_seg(&mut self, seg: &TcpRepr<'_>) {
        self.s
            .on_segment(self.now, REMOTE, LOCAL, seg, &mut self.cap);
    }
    fn poll(&mut self) {
        self.s.poll(self.now, &mut self.cap);
    }
    fn take(&mut self) -> Vec<Out> {
        self.poll();
        core::mem::take(&mut self.cap.segs)
    }
    fn recv_one(&mut self) -> Out {
        let mut v = self.take();
        assert!(!v.is_empty(), "expected a segment, got none");
        let o = v.remove(0);
        self.cap.segs = v;
        o
    }
    fn advance_ms(&mut self, ms: u64) {
        self.now += core::time::Duration::from_millis(ms);
        self.poll();
    }
    /// Jumps to the next deadline.
    /// The wheel reports a lower bound for far deadlines, so step until something happens.
    fn run_timer(&mut self) {
        let before = *self.s.counters();
        for _ in 0..64 {
            let t = self.s.poll_timeout().expect("a deadline");
            self.now = self.now.max(t);
            self.poll();
            if !self.cap.segs.is_empty() || *self.s.counters() != before {
                return;
            }
        }
        panic!("no timer did anything");
    }
    fn events(&mut self) -> Vec<EventKind> {
        let mut v = Vec::new();
        while let Some(e) = self.s.poll_event() {
            v.push(e.kind);
        }
        v
    }
    fn state(&self) -> State {
        self.s.state(self.conn.unwrap()).unwrap()
    }

    /// LISTEN → SYN-RECEIVED.
    fn syn_received(c: Config) -> H {
        let mut h = H::new(c);
        h.s.listen(LOCAL, LPORT).unwrap();
        let mut syn = seg(RISN, 0, SYN, b"");
        syn.options.mss = Some(1000);
        send!(h, syn);
        let o = recv!(h, flags = SYN.with(ACK), ack = RISN + 1);
        h.iss = o.seq;
        h
    }

    /// LISTEN → ESTABLISHED (passive).
    fn established(c: Config) -> H {
        let mut h = H::syn_received(c);
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b""));
        let e = h.s.poll_event().expect("Accepted");
        assert!(matches!(e.kind, EventKind::Accepted { .. }), "{e:?}");
        assert!(h.s.poll_event().is_none());
        let id = e.conn;
        assert_eq!(h.s.state(id), Ok(State::Established));
        h.conn = Some(id);
        h
    }
}

macro_rules! send {
    ($h:expr, $seg:expr) => {
        $h.send_seg(&$seg)
    };
}

macro_rules! recv {
    ($h:expr, nothing) => {{
        let v = $h.take();
        assert!(v.is_empty(), "expected nothing, got {v:?}");
    }};
    ($h:expr $(, $field:ident = $val:expr)* ) => {{
        let o = $h.recv_one();
        $( recv!(@check o, $field, $val); )*
        o
    }};
    (@check $o:ident, flags, $v:expr) => { assert_eq!($o.flags, $v, "flags of {:?}", $o) };
    (@check $o:ident, seq, $v:expr) => { assert_eq!($o.seq, $v, "seq of {:?}", $o) };
    (@check $o:ident, ack, $v:expr) => { assert_eq!($o.ack, $v, "ack of {:?}", $o) };
    (@check $o:ident, window, $v:expr) => { assert_eq!($o.window, $v, "window of {:?}", $o) };
    (@check $o:ident, payload, $v:expr) => { assert_eq!(&$o.payload[..], &$v[..], "payload of {:?}", $o) };
}
use {recv, send};

// ============================================================================================
// LISTEN
// ============================================================================================
mod listen {
    use super::*;

    #[test]
    fn syn_gets_syn_ack_with_options() {
        let mut h = H::new(Config {
            timestamps: true,
            ..cfg()
        });
        h.s.listen(LOCAL, LPORT).unwrap();
        let mut syn = seg(RISN, 0, SYN, b"");
        syn.options.mss = Some(1200);
        syn.options.window_scale = Some(7);
        syn.options.sack_permitted = true;
        syn.options.timestamps = Some((5, 0));
        send!(h, syn);
        let o = recv!(h, flags = SYN.with(ACK), ack = RISN + 1);
        assert_eq!(o.options.mss, Some(1000));
        assert_eq!(o.options.window_scale, Some(0));
        assert!(o.options.sack_permitted);
        assert_eq!(o.options.timestamps.map(|t| t.1), Some(5));
        assert_eq!(o.dst, REMOTE);
        assert_eq!(h.s.connection_count(), 1);
    }

    #[test]
    fn no_option_offered_means_none_used() {
        let mut h = H::new(cfg());
        h.s.listen(LOCAL, LPORT).unwrap();
        send!(h, seg(RISN, 0, SYN, b""));
        let o = recv!(h, flags = SYN.with(ACK));
        assert_eq!(o.options.window_scale, None);
        assert!(!o.options.sack_permitted);
        assert_eq!(o.options.timestamps, None);
    }

    #[test]
    fn ack_gets_rst_and_rst_is_ignored() {
        let mut h = H::new(Config {
            syn_cookies: false,
            ..cfg()
        });
        h.s.listen(LOCAL, LPORT).unwrap();
        send!(h, seg(RISN, 555, ACK, b""));
        recv!(h, flags = RST, seq = 555);
        send!(h, seg(RISN, 0, RST, b""));
        recv!(h, nothing);
        assert_eq!(h.s.connection_count(), 0);
    }

    #[test]
    fn no_listener_gets_rst_ack() {
        let mut h = H::new(cfg());
        send!(h, seg(RISN, 0, SYN, b""));
        recv!(h, flags = RST.with(ACK), seq = 0, ack = RISN + 1);
        assert_eq!(h.s.counters().no_listener, 1);
    }

    #[test]
    fn wildcard_listener_matches() {
        let mut h = H::new(cfg());
        h.s.listen(IpAddress::V4(Ipv4Address::UNSPECIFIED), LPORT)
            .unwrap();
        assert_eq!(
            h.s.listen(IpAddress::V4(Ipv4Address::UNSPECIFIED), LPORT),
            Err(ListenError::InUse)
        );
        send!(h, seg(RISN, 0, SYN, b""));
        recv!(h, flags = SYN.with(ACK));
    }

    #[test]
    fn ipv6_handshake_and_default_mss() {
        use mgw_core::wire::Ipv6Address;
        let l6 = IpAddress::V6(Ipv6Address([
            0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ]));
        let r6 = IpAddress::V6(Ipv6Address([
            0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        ]));
        let mut s = Stack::new(Config { mss: 1400, ..cfg() }).unwrap();
        let mut cap = Cap::default();
        let now = Instant::from_millis(1);
        s.listen(IpAddress::V6(Ipv6Address::UNSPECIFIED), LPORT)
            .unwrap();
        s.on_segment(now, r6, l6, &seg(RISN, 0, SYN, b""), &mut cap);
        let sa = cap.segs.pop().expect("SYN-ACK");
        assert_eq!(sa.flags, SYN.with(ACK));
        assert_eq!(sa.dst, r6);
        s.on_segment(now, r6, l6, &seg(RISN + 1, sa.seq + 1, ACK, b""), &mut cap);
        let id = s.poll_event().expect("Accepted").conn;
        // No MSS option from the peer: RFC 9293 §3.7.1's IPv6 default of 1220 caps segments.
        s.send(id, &[1u8; 3000]).unwrap();
        s.poll(now, &mut cap);
        assert_eq!(cap.segs[0].payload.len(), 1220);
        assert_eq!(s.tuple(id).unwrap().remote_addr, r6);
    }

    #[test]
    fn local_mss_is_advertised_and_caps_what_is_sent() {
        // A realm with a 1,400-byte MTU: MSS 1,360 on its address, `mss` elsewhere.
        let c = Config {
            mss: 1000,
            local_mss: vec![(LOCAL, 1360)],
            ..cfg()
        };
        let other = IpAddress::V4(Ipv4Address([10, 0, 1, 1]));
        let mut s = Stack::new(c).unwrap();
        let mut cap = Cap::default();
        let now = Instant::from_millis(1);
        s.listen(LOCAL, LPORT).unwrap();
        let mut syn = seg(RISN, 0, SYN, b"");
        syn.options.mss = Some(1460);
        s.on_segment(now, REMOTE, LOCAL, &syn, &mut cap);
        let sa = cap.segs.pop().expect("SYN-ACK");
        assert_eq!(sa.options.mss, Some(1360));
        s.on_segment(
            now,
            REMOTE,
            LOCAL,
            &seg(RISN + 1, sa.seq + 1, ACK, b""),
            &mut cap,
        );
        let id = s.poll_event().expect("Accepted").conn;
        s.send(id, &[1u8; 3000]).unwrap();
        s.poll(now, &mut cap);
        assert_eq!(
            cap.segs[0].payload.len(),
            1360,
            "min(ours, the peer's 1460)"
        );
        cap.segs.clear();
        // An active open from the realm's address advertises it too; another address keeps
        // `mss`.
        s.connect(now, (LOCAL, 5000), (REMOTE, RPORT)).unwrap();
        s.connect(now, (other, 5001), (REMOTE, RPORT)).unwrap();
        s.poll(now, &mut cap);
        let mss: Vec<_> = cap.segs.iter().map(|o| o.options.mss).collect();
        assert_eq!(mss, vec![Some(1360), Some(1000)]);
    }

    #[test]
    fn full_table_refuses_and_counts() {
        let mut h = H::new(Config {
            max_connections: 2,
            syn_backlog: 10,
            ..cfg()
        });
        h.s.listen(LOCAL, LPORT).unwrap();
        for p in 0..3u16 {
            let mut s = seg(RISN, 0, SYN, b"");
            s.src_port = 1000 + p;
            send!(h, s);
        }
        assert_eq!(h.take().len(), 2);
        assert_eq!(h.s.counters().table_full_refusals, 1);
        assert_eq!(h.s.connection_count(), 2);
    }

    #[test]
    fn syn_cookies_when_backlog_full() {
        let mut h = H::new(Config {
            syn_backlog: 1,
            ..cfg()
        });
        h.s.listen(LOCAL, LPORT).unwrap();
        send!(h, seg(RISN, 0, SYN, b""));
        recv!(h, flags = SYN.with(ACK));
        // Backlog full: the next SYN gets a stateless cookie.
        let mut s = seg(7_000, 0, SYN, b"");
        s.src_port = 999;
        s.options.mss = Some(1460);
        send!(h, s);
        let o = recv!(h, flags = SYN.with(ACK), ack = 7_001);
        assert_eq!(h.s.counters().syn_cookies_sent, 1);
        assert_eq!(h.s.connection_count(), 1);
        // The completing ACK (with data) creates the connection.
        let mut a = seg(7_001, o.seq.wrapping_add(1), ACK.with(PSH), b"hello");
        a.src_port = 999;
        send!(h, a);
        assert_eq!(h.s.counters().syn_cookies_accepted, 1);
        let ev = h.events();
        assert!(
            matches!(ev[..], [EventKind::Accepted { .. }, EventKind::Readable]),
            "{ev:?}"
        );
        let o2 = recv!(h, flags = ACK, ack = 7_006);
        assert_eq!(o2.seq, o.seq.wrapping_add(1));
        // A forged cookie gets RST.
        let mut f = seg(9_001, 12_345, ACK, b"");
        f.src_port = 998;
        send!(h, f);
        recv!(h, flags = RST, seq = 12_345);
        assert_eq!(h.s.counters().syn_cookies_rejected, 1);
    }

    /// A SYN on a fresh port while the backlog (1) is held by `holder`: the listener overflows
    /// and answers with a cookie, which is returned.
    fn overflow_cookie(h: &mut H, holder: u16, port: u16, peer_isn: u32) -> u32 {
        let mut s = seg(RISN, 0, SYN, b"");
        s.src_port = holder;
        send!(h, s);
        let mut s = seg(peer_isn, 0, SYN, b"");
        s.src_port = port;
        s.options.mss = Some(1460);
        send!(h, s);
        let v = h.take();
        let o = v
            .iter()
            .find(|o| o.ack == peer_isn.wrapping_add(1))
            .expect("a SYN-ACK for the overflowing SYN");
        o.seq
    }

    #[test]
    fn cookie_refused_by_listener_that_never_overflowed() {
        // The ACK carries a cookie that is valid for this secret (as one was for the old fixed
        // secret, computed offline), but this listener never sent a cookie: Linux checks
        // cookies only after a recent listen-queue overflow, and so do we.
        let c = cfg();
        let mut h = H::new(c.clone());
        h.s.listen(LOCAL, LPORT).unwrap();
        let t = FourTuple {
            local_addr: LOCAL,
            local_port: LPORT,
            remote_addr: REMOTE,
            remote_port: RPORT,
        };
        let cookie = syncookie::encode(&c.secret, &t, RISN, 1460, h.now);
        send!(h, seg(RISN + 1, cookie.wrapping_add(1), ACK, b"inject"));
        recv!(h, flags = RST, seq = cookie.wrapping_add(1));
        assert_eq!(h.s.connection_count(), 0);
        assert_eq!(h.s.counters().syn_cookies_accepted, 0);
        assert!(h.events().is_empty());
    }

    #[test]
    fn cookie_from_a_past_rotation_window_is_refused() {
        let mut h = H::new(Config {
            syn_backlog: 1,
            ..cfg()
        });
        h.s.listen(LOCAL, LPORT).unwrap();
        let old = overflow_cookie(&mut h, 1000, RPORT, 7_000);
        // 32 cookie periods (32 x 64 s) later the listener overflows again, so cookies are
        // being checked; the old cookie's 5-bit counter field has come round to the same value,
        // but its epoch is long past and it must be refused.
        h.now += core::time::Duration::from_secs(32 * 64);
        let mut s = seg(RISN, 0, SYN, b"");
        s.src_port = 1002;
        send!(h, s);
        let fresh = h.take();
        assert!(
            fresh
                .iter()
                .any(|o| o.flags == SYN.with(ACK) && o.ack == RISN + 1),
            "{fresh:?}"
        );
        assert!(h.s.counters().syn_cookies_sent >= 2);
        let mut a = seg(7_001, old.wrapping_add(1), ACK, b"");
        a.src_port = RPORT;
        send!(h, a);
        recv!(h, flags = RST, seq = old.wrapping_add(1));
        assert_eq!(h.s.counters().syn_cookies_accepted, 0);
        assert!(h.s.counters().syn_cookies_rejected >= 1);
    }

    #[test]
    fn cookie_valid_for_current_and_previous_period_only() {
        let mut h = H::new(Config {
            syn_backlog: 1,
            ..cfg()
        });
        h.s.listen(LOCAL, LPORT).unwrap();
        let c1 = overflow_cookie(&mut h, 1000, 2000, 7_000);
        // 70 s later (next period): still good.
        h.now += core::time::Duration::from_secs(70);
        let mut a = seg(7_001, c1.wrapping_add(1), ACK, b"");
        a.src_port = 2000;
        send!(h, a);
        assert_eq!(h.s.counters().syn_cookies_accepted, 1);
        h.take();
        // A cookie sent now and answered 200 s later (two periods on) is refused, even though
        // the listener overflowed again meanwhile.
        let c2 = overflow_cookie(&mut h, 1001, 2001, 8_000);
        h.now += core::time::Duration::from_secs(200);
        overflow_cookie(&mut h, 1003, 2003, 9_000);
        let mut a = seg(8_001, c2.wrapping_add(1), ACK, b"");
        a.src_port = 2001;
        send!(h, a);
        recv!(h, flags = RST, seq = c2.wrapping_add(1));
        assert_eq!(h.s.counters().syn_cookies_accepted, 1);
    }
}

// ============================================================================================
// SYN-SENT
// ============================================================================================
mod syn_sent {
    use super::*;

    fn connect(c: Config) -> H {
        let mut h = H::new(c);
        let id = h.s.connect(h.now, (LOCAL, LPORT), (REMOTE, RPORT)).unwrap();
        h.conn = Some(id);
        let o = recv!(h, flags = SYN);
        assert_eq!(o.options.mss, Some(1000));
        h.iss = o.seq;
        assert_eq!(h.state(), State::SynSent);
        h
    }

    #[test]
    fn syn_ack_establishes() {
        let mut h = connect(cfg());
        let mut sa = seg(RISN, h.iss + 1, SYN.with(ACK), b"");
        sa.options.mss = Some(500);
        send!(h, sa);
        recv!(h, flags = ACK, seq = h.iss + 1, ack = RISN + 1);
        assert_eq!(h.state(), State::Established);
        assert_eq!(h.events(), vec![EventKind::Connected]);
        // The peer's MSS caps our segments.
        h.s.send(h.conn.unwrap(), &[7u8; 1200]).unwrap();
        let o = recv!(h, flags = ACK, seq = h.iss + 1);
        assert_eq!(o.payload.len(), 500);
    }

    #[test]
    fn rst_with_acceptable_ack_refuses() {
        let mut h = connect(cfg());
        send!(h, seg(0, h.iss + 1, RST.with(ACK), b""));
        assert_eq!(
            h.events(),
            vec![EventKind::ConnectFailed {
                reason: ConnectFailure::Refused
            }]
        );
        assert_eq!(h.s.connection_count(), 0);
    }

    #[test]
    fn rst_without_ack_or_bad_ack_is_ignored() {
        let mut h = connect(cfg());
        send!(h, seg(0, 0, RST, b""));
        send!(h, seg(0, h.iss + 5, RST.with(ACK), b""));
        assert_eq!(h.state(), State::SynSent);
        assert!(h.events().is_empty());
    }

    #[test]
    fn unacceptable_ack_gets_rst() {
        let mut h = connect(cfg());
        send!(h, seg(RISN, h.iss + 9, SYN.with(ACK), b""));
        recv!(h, flags = RST, seq = h.iss + 9);
        assert_eq!(h.state(), State::SynSent);
    }

    #[test]
    fn simultaneous_open() {
        let mut h = connect(cfg());
        send!(h, seg(RISN, 0, SYN, b""));
        recv!(h, flags = SYN.with(ACK), seq = h.iss, ack = RISN + 1);
        assert_eq!(h.state(), State::SynReceived);
        // The peer's SYN-ACK (its SYN again, now acknowledging ours).
        send!(h, seg(RISN, h.iss + 1, SYN.with(ACK), b""));
        assert_eq!(h.state(), State::Established);
        assert_eq!(h.events(), vec![EventKind::Connected]);
    }

    #[test]
    fn syn_retransmits_with_backoff_then_fails() {
        let mut h = connect(cfg());
        let mut gaps = Vec::new();
        let mut last = h.now;
        for _ in 0..3 {
            h.run_timer();
            recv!(h, flags = SYN, seq = h.iss);
            gaps.push((h.now - last).as_millis());
            last = h.now;
        }
        assert_eq!(gaps, vec![1000, 2000, 4000]);
        h.run_timer();
        assert_eq!(
            h.events(),
            vec![EventKind::ConnectFailed {
                reason: ConnectFailure::TimedOut
            }]
        );
        assert_eq!(h.s.connection_count(), 0);
        assert_eq!(h.s.poll_timeout(), None);
    }

    #[test]
    fn connect_timeout_bounds_the_active_open_not_the_syn_count() {
        // 2.5 s: SYNs at 0, 1 s (RTO doubling to 2 s would be at 3 s), fails at 2.5 s.
        let mut h = connect(Config {
            connect_timeout: Some(core::time::Duration::from_millis(2500)),
            ..cfg()
        });
        let start = h.now;
        h.run_timer();
        recv!(h, flags = SYN, seq = h.iss);
        assert_eq!((h.now - start).as_millis(), 1000);
        h.run_timer();
        recv!(h, nothing);
        assert_eq!((h.now - start).as_millis(), 2500);
        assert_eq!(
            h.events(),
            vec![EventKind::ConnectFailed {
                reason: ConnectFailure::TimedOut
            }]
        );
        assert_eq!(h.s.connection_count(), 0);
        assert_eq!(h.s.poll_timeout(), None);
        // A long timeout keeps trying past max_syn_retries (3 here): 1+2+4+8 s of SYNs.
        let mut h = connect(Config {
            connect_timeout: Some(core::time::Duration::from_secs(20)),
            ..cfg()
        });
        let start = h.now;
        for _ in 0..4 {
            h.run_timer();
            recv!(h, flags = SYN, seq = h.iss);
        }
        assert_eq!((h.now - start).as_millis(), 15_000);
        assert!(h.events().is_empty());
        h.run_timer();
        assert_eq!((h.now - start).as_millis(), 20_000);
        assert_eq!(
            h.events(),
            vec![EventKind::ConnectFailed {
                reason: ConnectFailure::TimedOut
            }]
        );
        // Once connected the timeout is gone.
        let mut h = connect(Config {
            connect_timeout: Some(core::time::Duration::from_millis(2500)),
            ..cfg()
        });
        send!(h, seg(RISN, h.iss + 1, SYN.with(ACK), b""));
        assert_eq!(h.events(), vec![EventKind::Connected]);
        h.take();
        h.advance_ms(5000);
        assert_eq!(h.state(), State::Established);
        assert!(h.events().is_empty());
    }

    #[test]
    fn close_in_syn_sent_deletes() {
        let mut h = connect(cfg());
        h.s.close(h.conn.unwrap()).unwrap();
        assert_eq!(h.events(), vec![EventKind::Closed]);
        assert_eq!(h.s.connection_count(), 0);
        assert_eq!(h.s.state(h.conn.unwrap()), Err(ConnError::InvalidHandle));
    }

    #[test]
    fn connect_errors() {
        let mut h = connect(Config {
            max_connections: 1,
            ..cfg()
        });
        assert_eq!(
            h.s.connect(h.now, (LOCAL, LPORT), (REMOTE, RPORT)),
            Err(ConnectError::InUse)
        );
        assert_eq!(
            h.s.connect(h.now, (LOCAL, LPORT + 1), (REMOTE, RPORT)),
            Err(ConnectError::TableFull)
        );
    }
}

// ============================================================================================
// SYN-RECEIVED
// ============================================================================================
mod syn_received {
    use super::*;

    #[test]
    fn ack_establishes_with_data() {
        let mut h = H::syn_received(cfg());
        send!(h, seg(RISN + 1, h.iss + 1, ACK.with(PSH), b"abc"));
        let ev = h.events();
        assert!(
            matches!(ev[..], [EventKind::Accepted { .. }, EventKind::Readable]),
            "{ev:?}"
        );
        recv!(h, flags = ACK, ack = RISN + 4);
    }

    #[test]
    fn rst_returns_to_listen_silently() {
        let mut h = H::syn_received(cfg());
        send!(h, seg(RISN + 1, 0, RST, b""));
        assert_eq!(h.s.connection_count(), 0);
        assert!(h.events().is_empty());
        // The listener still answers.
        send!(h, seg(RISN + 50, 0, SYN, b""));
        recv!(h, flags = SYN.with(ACK));
    }

    #[test]
    fn duplicate_syn_resends_syn_ack() {
        let mut h = H::syn_received(cfg());
        send!(h, seg(RISN, 0, SYN, b""));
        recv!(h, flags = SYN.with(ACK), seq = h.iss, ack = RISN + 1);
    }

    #[test]
    fn bad_ack_gets_rst() {
        let mut h = H::syn_received(cfg());
        send!(h, seg(RISN + 1, h.iss + 100, ACK, b""));
        recv!(h, flags = RST, seq = h.iss + 100);
    }

    #[test]
    fn syn_ack_retransmits_then_gives_up() {
        let mut h = H::syn_received(cfg());
        for _ in 0..3 {
            h.run_timer();
            recv!(h, flags = SYN.with(ACK), seq = h.iss);
        }
        h.run_timer();
        assert_eq!(h.s.connection_count(), 0);
        assert!(h.events().is_empty());
    }
}

// ============================================================================================
// ESTABLISHED
// ============================================================================================
mod established {
    use super::*;

    #[test]
    fn receives_in_order_data() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b"hello "));
        send!(h, seg(RISN + 7, h.iss + 1, ACK, b"world"));
        let v = h.take();
        assert_eq!(v.last().unwrap().ack, RISN + 12);
        let mut buf = [0u8; 64];
        let n = h.s.recv(h.conn.unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello world");
        assert_eq!(h.events(), vec![EventKind::Readable]);
    }

    #[test]
    fn sends_data_and_retransmits_on_rto_with_backoff() {
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        assert_eq!(h.s.send(id, b"ping").unwrap(), 4);
        recv!(h, flags = ACK.with(PSH), seq = h.iss + 1, payload = b"ping");
        h.run_timer();
        recv!(h, flags = ACK.with(PSH), seq = h.iss + 1, payload = b"ping");
        let t1 = h.now;
        h.run_timer();
        recv!(h, seq = h.iss + 1);
        // The handshake gave an RTT sample of ~0, so RTO = min RTO (200 ms), doubled.
        assert_eq!((h.now - t1).as_millis(), 400);
        assert_eq!(h.s.counters().retransmits, 2);
        send!(h, seg(RISN + 1, h.iss + 5, ACK, b""));
        assert_eq!(h.s.poll_timeout(), None);
    }

    #[test]
    fn retransmission_never_extends_past_what_was_sent() {
        // Regression (found by the simulator): a window-limited segment's retransmission must
        // not carry new octets, or the receiver's ACK would run ahead of snd_max.
        let mut h = H::established(cfg());
        let mut w = seg(RISN + 1, h.iss + 1, ACK, b"");
        w.window = 500;
        send!(h, w);
        h.s.send(h.conn.unwrap(), &[3u8; 2000]).unwrap();
        let o = recv!(h, seq = h.iss + 1);
        assert_eq!(o.payload.len(), 500);
        recv!(h, nothing);
        // Three duplicate ACKs: fast retransmit of the first segment, still 500 octets.
        for _ in 0..3 {
            send!(h, w);
        }
        let o = recv!(h, seq = h.iss + 1);
        assert_eq!(o.payload.len(), 500);
        assert_eq!(h.s.counters().fast_retransmits, 1);
    }

    #[test]
    fn gives_up_after_max_retries() {
        let mut h = H::established(cfg());
        h.s.send(h.conn.unwrap(), b"x").unwrap();
        recv!(h, payload = b"x");
        for _ in 0..4 {
            h.run_timer();
            recv!(h, payload = b"x");
        }
        h.run_timer();
        recv!(h, flags = RST);
        assert_eq!(h.events(), vec![EventKind::TimedOut]);
        assert_eq!(h.s.connection_count(), 0);
    }

    #[test]
    fn out_of_window_gets_duplicate_ack() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 1 + 10_000, h.iss + 1, ACK, b"far"));
        recv!(h, flags = ACK, ack = RISN + 1);
        send!(h, seg(RISN - 100, h.iss + 1, ACK, b"old"));
        recv!(h, flags = ACK, ack = RISN + 1);
        assert_eq!(h.s.counters().dropped_out_of_window, 2);
    }

    #[test]
    fn rst_exact_resets_in_window_challenges_outside_drops() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 5, 0, RST, b""));
        recv!(h, flags = ACK, ack = RISN + 1);
        assert_eq!(h.s.counters().challenge_acks, 1);
        send!(h, seg(RISN + 1_000_000, 0, RST, b""));
        recv!(h, nothing);
        assert_eq!(h.state(), State::Established);
        send!(h, seg(RISN + 1, 0, RST, b""));
        assert_eq!(h.events(), vec![EventKind::Reset]);
        assert_eq!(h.s.connection_count(), 0);
    }

    #[test]
    fn syn_gets_challenge_ack() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 1, 0, SYN, b""));
        recv!(h, flags = ACK, ack = RISN + 1, seq = h.iss + 1);
        assert_eq!(h.state(), State::Established);
    }

    #[test]
    fn challenge_acks_are_rate_limited() {
        let mut h = H::established(Config {
            challenge_ack_limit: 2,
            ..cfg()
        });
        for _ in 0..5 {
            send!(h, seg(RISN + 1, 0, SYN, b""));
        }
        assert_eq!(h.take().len(), 2);
        assert_eq!(h.s.counters().challenge_acks_suppressed, 3);
    }

    #[test]
    fn ack_of_unsent_data_is_acked_and_dropped() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 1, h.iss + 1000, ACK, b"zz"));
        recv!(h, flags = ACK, ack = RISN + 1);
        assert_eq!(h.s.recv_available(h.conn.unwrap()), Ok(0));
    }

    #[test]
    fn out_of_order_data_is_sacked_then_reassembled() {
        let mut h = H::syn_received_sack();
        send!(h, seg(RISN + 4, h.iss + 1, ACK, b"def"));
        let o = recv!(h, flags = ACK, ack = RISN + 1);
        assert_eq!(o.options.sack(), &[(RISN + 4, RISN + 7)]);
        send!(h, seg(RISN + 10, h.iss + 1, ACK, b"jkl"));
        let o = recv!(h, flags = ACK, ack = RISN + 1);
        // Newest block first (RFC 2018 §4).
        assert_eq!(
            o.options.sack(),
            &[(RISN + 10, RISN + 13), (RISN + 4, RISN + 7)]
        );
        assert_eq!(h.s.reassembly_bytes(), 6);
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b"abc"));
        let o = recv!(h, flags = ACK, ack = RISN + 7);
        assert_eq!(o.options.sack(), &[(RISN + 10, RISN + 13)]);
        send!(h, seg(RISN + 7, h.iss + 1, ACK, b"ghi"));
        recv!(h, flags = ACK, ack = RISN + 13);
        let mut buf = [0u8; 32];
        let n = h.s.recv(h.conn.unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"abcdefghijkl");
        assert_eq!(h.s.reassembly_bytes(), 0);
    }

    #[test]
    fn reassembly_bound_per_connection() {
        let mut h = H::established(Config {
            reassembly_per_connection: 4,
            ..cfg()
        });
        send!(h, seg(RISN + 4, h.iss + 1, ACK, b"def"));
        send!(h, seg(RISN + 10, h.iss + 1, ACK, b"jkl"));
        assert_eq!(h.s.counters().reassembly_drops, 1);
        assert_eq!(h.s.reassembly_bytes(), 3);
    }

    #[test]
    fn reassembly_bound_per_worker_spans_connections() {
        let mut h = H::established(Config {
            reassembly_per_worker: 5,
            ..cfg()
        });
        // A second connection from another port.
        let mut syn = seg(RISN, 0, SYN, b"");
        syn.src_port = RPORT + 1;
        send!(h, syn);
        let iss2 = recv!(h, flags = SYN.with(ACK)).seq;
        let mut a = seg(RISN + 1, iss2 + 1, ACK, b"");
        a.src_port = RPORT + 1;
        send!(h, a);
        // Three out-of-order bytes on each: the worker bound (5) lets only the first in.
        send!(h, seg(RISN + 4, h.iss + 1, ACK, b"def"));
        let mut o2 = seg(RISN + 4, iss2 + 1, ACK, b"def");
        o2.src_port = RPORT + 1;
        send!(h, o2);
        assert_eq!(h.s.reassembly_bytes(), 3);
        assert_eq!(h.s.counters().reassembly_drops, 1);
        // Filling the first hole releases the worker budget.
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b"abc"));
        assert_eq!(h.s.reassembly_bytes(), 0);
        assert_eq!(h.s.recv_available(h.conn.unwrap()), Ok(6));
    }

    #[test]
    fn event_queue_overflow_is_counted() {
        let mut h = H::established(Config {
            event_capacity: 1,
            ..cfg()
        });
        let id = h.conn.unwrap();
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b"x"));
        let mut b = [0u8; 4];
        h.s.recv(id, &mut b).unwrap();
        send!(h, seg(RISN + 2, h.iss + 1, ACK, b"y"));
        assert_eq!(h.events(), vec![EventKind::Readable]);
        assert_eq!(h.s.counters().events_dropped, 1);
    }

    #[test]
    fn window_closes_as_ring_fills_and_reopens_on_read() {
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        static DATA: [u8; 1000] = [1; 1000];
        let mut seq = RISN + 1;
        for _ in 0..4 {
            send!(h, seg(seq, h.iss + 1, ACK, &DATA));
            seq += 1000;
        }
        let v = h.take();
        let last = v.last().unwrap();
        assert_eq!(last.ack, seq);
        // 4096-byte ring, 4000 used: the edge never moves left, so 96 bytes remain offered,
        // and the freed space is under the SWS threshold, so the edge does not move right.
        assert_eq!(last.window, 96);
        send!(h, seg(seq, h.iss + 1, ACK, &DATA[..96]));
        seq += 96;
        recv!(h, flags = ACK, ack = seq, window = 0);
        // Data into a zero window is not accepted but its ACK is processed.
        send!(h, seg(seq, h.iss + 1, ACK, &DATA));
        recv!(h, flags = ACK, ack = seq, window = 0);
        let mut buf = [0u8; 3000];
        assert_eq!(h.s.recv(id, &mut buf).unwrap(), 3000);
        // A window update goes out.
        let o = recv!(h, flags = ACK, ack = seq);
        assert!(o.window >= 2000, "window {}", o.window);
    }

    #[test]
    fn zero_window_from_peer_triggers_persist_probes() {
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        let mut z = seg(RISN + 1, h.iss + 1, ACK, b"");
        z.window = 0;
        send!(h, z);
        h.s.send(id, b"blocked").unwrap();
        recv!(h, nothing);
        h.run_timer();
        recv!(h, flags = ACK, seq = h.iss);
        assert_eq!(h.s.counters().persist_probes, 1);
        // Peer opens its window in answer.
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b""));
        recv!(h, payload = b"blocked");
    }

    #[test]
    fn zero_window_peer_that_never_opens_is_aborted_after_probe_limit() {
        // RFC 9293 §3.8.6.1 lets the sender abort a connection whose window stays shut
        // (RFC 6429): a peer answering every probe with a zero window must not hold a slot and
        // its rings for ever.
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        let mut z = seg(RISN + 1, h.iss + 1, ACK, b"");
        z.window = 0;
        send!(h, z);
        h.s.send(id, b"blocked").unwrap();
        recv!(h, nothing);
        let mut probes = 0u32;
        for _ in 0..200 {
            if h.s.connection_count() == 0 {
                break;
            }
            h.run_timer();
            for o in h.take() {
                if o.flags == ACK && o.seq == h.iss {
                    probes += 1;
                    send!(h, z);
                } else {
                    assert_eq!(o.flags, RST, "{o:?}");
                }
            }
        }
        assert_eq!(
            h.s.connection_count(),
            0,
            "still there after {probes} probes"
        );
        assert_eq!(probes, u32::from(Config::default().max_persist_probes));
        assert_eq!(h.events(), vec![EventKind::TimedOut]);
        assert_eq!(h.s.send(id, b"x"), Err(ConnError::InvalidHandle));
    }

    #[test]
    fn zero_window_probe_count_restarts_when_the_window_opens() {
        let mut h = H::established(Config {
            max_persist_probes: 3,
            ..cfg()
        });
        let id = h.conn.unwrap();
        let mut z = seg(RISN + 1, h.iss + 1, ACK, b"");
        z.window = 0;
        send!(h, z);
        h.s.send(id, b"a").unwrap();
        for _ in 0..2 {
            h.run_timer();
            recv!(h, flags = ACK, seq = h.iss);
            send!(h, z);
        }
        // The window opens: "a" goes, is acked, the window shuts again with more to send.
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b""));
        recv!(h, payload = b"a");
        let mut z2 = seg(RISN + 1, h.iss + 2, ACK, b"");
        z2.window = 0;
        send!(h, z2);
        h.s.send(id, b"b").unwrap();
        for _ in 0..3 {
            h.run_timer();
            recv!(h, flags = ACK, seq = h.iss + 1);
            send!(h, z2);
        }
        // Three fresh probes went unanswered by an open window: now it gives up.
        h.run_timer();
        recv!(h, flags = RST);
        assert_eq!(h.events(), vec![EventKind::TimedOut]);
        assert_eq!(h.s.connection_count(), 0);
    }

    #[test]
    fn fast_retransmit_on_three_duplicate_acks() {
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        h.s.send(id, &[9u8; 5000]).unwrap();
        let v = h.take();
        assert_eq!(v.len(), 5);
        // One new ACK, then three duplicates.
        for _ in 0..4 {
            send!(h, seg(RISN + 1, h.iss + 1001, ACK, b""));
        }
        let o = recv!(h, seq = h.iss + 1001);
        assert_eq!(o.payload.len(), 1000);
        assert_eq!(h.s.counters().fast_retransmits, 1);
    }

    #[test]
    fn sack_recovery_retransmits_only_holes() {
        let mut h = H::syn_received_sack();
        let id = h.conn.unwrap();
        h.s.send(id, &[9u8; 6000]).unwrap();
        assert_eq!(h.take().len(), 6);
        // Segments 2 and 4 lost: the peer SACKs 3, 5, 6.
        let base = h.iss + 1;
        let sacks = [
            vec![(base + 2000, base + 3000)],
            vec![(base + 4000, base + 5000), (base + 2000, base + 3000)],
            vec![(base + 4000, base + 6000), (base + 2000, base + 3000)],
        ];
        for s in &sacks {
            let mut a = seg(RISN + 1, base + 1000, ACK, b"");
            for &b in s {
                a.options.push_sack(b);
            }
            send!(h, a);
        }
        let v = h.take();
        let seqs: Vec<u32> = v
            .iter()
            .filter(|o| !o.payload.is_empty())
            .map(|o| o.seq)
            .collect();
        assert_eq!(seqs, vec![base + 1000, base + 3000]);
    }

    #[test]
    fn eifel_undoes_a_spurious_fast_retransmit() {
        let mut h = H::syn_received_ts();
        let id = h.conn.unwrap();
        h.s.send(id, &[1u8; 4000]).unwrap();
        let v = h.take();
        assert!(v.len() >= 4);
        let t0 = v[0].options.timestamps.unwrap().0;
        h.advance_ms(10);
        // The first segment is only late: three duplicates, then the fast retransmit.
        for i in 0..3 {
            let mut d = seg(RISN + 1, h.iss + 1, ACK, b"");
            d.options.timestamps = Some((102 + i, t0));
            send!(h, d);
        }
        let r = recv!(h, seq = h.iss + 1);
        assert!(r.options.timestamps.unwrap().0 > t0);
        assert_eq!(h.s.counters().fast_retransmits, 1);
        // The original arrives: the ACK echoes its (older) TSval, so the retransmission was
        // spurious (RFC 3522) and the reduction is undone.
        let mut a = seg(RISN + 1, h.iss + 4001, ACK, b"");
        a.options.timestamps = Some((110, t0));
        send!(h, a);
        assert_eq!(h.s.counters().spurious_retransmits, 1);
    }

    #[test]
    fn paws_drops_old_timestamps() {
        let mut h = H::syn_received_ts();
        let mut d = seg(RISN + 1, h.iss + 1, ACK, b"new");
        d.options.timestamps = Some((200, 0));
        send!(h, d);
        recv!(h, ack = RISN + 4);
        let mut old = seg(RISN + 4, h.iss + 1, ACK, b"old");
        old.options.timestamps = Some((150, 0));
        send!(h, old);
        recv!(h, ack = RISN + 4);
        assert_eq!(h.s.counters().dropped_paws, 1);
    }

    #[test]
    fn delayed_ack_every_second_segment_or_timer() {
        let mut h = H::established(Config {
            delayed_ack: Some(core::time::Duration::from_millis(40)),
            quickack_segments: 0,
            ..cfg()
        });
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b"a"));
        recv!(h, nothing);
        send!(h, seg(RISN + 2, h.iss + 1, ACK, b"b"));
        recv!(h, ack = RISN + 3);
        send!(h, seg(RISN + 3, h.iss + 1, ACK, b"c"));
        recv!(h, nothing);
        h.advance_ms(39);
        recv!(h, nothing);
        h.advance_ms(1);
        recv!(h, ack = RISN + 4);
    }

    #[test]
    fn sink_back_pressure_retries_on_next_poll() {
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        h.cap.refuse = true;
        h.s.send(id, b"later").unwrap();
        h.poll();
        assert!(h.s.counters().sink_refusals > 0);
        assert!(h.s.poll_timeout().is_some());
        h.cap.refuse = false;
        recv!(h, payload = b"later");
    }

    #[test]
    fn send_ring_limits_and_writable_event() {
        let mut h = H::established(Config {
            send_buffer: 1500,
            ..cfg()
        });
        let id = h.conn.unwrap();
        assert_eq!(h.s.send(id, &[1u8; 2000]).unwrap(), 1500);
        assert_eq!(h.s.send_space(id), Ok(0));
        h.take();
        send!(h, seg(RISN + 1, h.iss + 1001, ACK, b""));
        assert_eq!(h.events(), vec![EventKind::Writable]);
        assert_eq!(h.s.send_space(id), Ok(1000));
    }

    #[test]
    fn keepalive_probes_then_times_out() {
        let mut h = H::established(Config {
            keepalive: Some(Keepalive {
                idle: core::time::Duration::from_secs(10),
                interval: core::time::Duration::from_secs(1),
                probes: 2,
            }),
            ..cfg()
        });
        h.run_timer();
        recv!(h, flags = ACK, seq = h.iss);
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b""));
        h.run_timer();
        recv!(h, flags = ACK, seq = h.iss);
        h.run_timer();
        recv!(h, flags = ACK, seq = h.iss);
        h.run_timer();
        recv!(h, flags = RST);
        assert_eq!(h.events(), vec![EventKind::TimedOut]);
    }

    #[test]
    fn abort_sends_rst() {
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        h.s.abort(id, &mut h.cap).unwrap();
        recv!(h, flags = RST, seq = h.iss + 1);
        assert_eq!(h.events(), vec![EventKind::Closed]);
        assert_eq!(h.s.send(id, b"x"), Err(ConnError::InvalidHandle));
    }
}

impl H {
    fn syn_received_sack() -> H {
        let mut h = H::new(cfg());
        h.s.listen(LOCAL, LPORT).unwrap();
        let mut syn = seg(RISN, 0, SYN, b"");
        syn.options.sack_permitted = true;
        syn.options.mss = Some(1000);
        send!(h, syn);
        h.iss = recv!(h, flags = SYN.with(ACK)).seq;
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b""));
        h.conn = Some(h.s.poll_event().expect("Accepted").conn);
        h
    }

    fn syn_received_ts() -> H {
        let mut h = H::new(Config {
            timestamps: true,
            ..cfg()
        });
        h.s.listen(LOCAL, LPORT).unwrap();
        let mut syn = seg(RISN, 0, SYN, b"");
        syn.options.timestamps = Some((100, 0));
        send!(h, syn);
        let o = recv!(h, flags = SYN.with(ACK));
        h.iss = o.seq;
        let mut a = seg(RISN + 1, h.iss + 1, ACK, b"");
        a.options.timestamps = Some((101, o.options.timestamps.unwrap().0));
        send!(h, a);
        h.conn = Some(h.s.poll_event().expect("Accepted").conn);
        h
    }
}

// ============================================================================================
// FIN-WAIT-1, FIN-WAIT-2, CLOSING, TIME-WAIT
// ============================================================================================
mod fin_wait {
    use super::*;

    fn fin_wait_1() -> H {
        let mut h = H::established(cfg());
        h.s.close(h.conn.unwrap()).unwrap();
        recv!(h, flags = FIN.with(ACK), seq = h.iss + 1);
        assert_eq!(h.state(), State::FinWait1);
        h
    }

    #[test]
    fn fin_wait_1_ack_goes_to_fin_wait_2() {
        let mut h = fin_wait_1();
        send!(h, seg(RISN + 1, h.iss + 2, ACK, b""));
        assert_eq!(h.state(), State::FinWait2);
        // Half-close: data still arrives.
        send!(h, seg(RISN + 1, h.iss + 2, ACK, b"more"));
        recv!(h, ack = RISN + 5);
        assert_eq!(h.s.recv_available(h.conn.unwrap()), Ok(4));
    }

    #[test]
    fn fin_wait_1_fin_retransmits() {
        let mut h = fin_wait_1();
        h.run_timer();
        recv!(h, flags = FIN.with(ACK), seq = h.iss + 1);
    }

    #[test]
    fn fin_wait_1_fin_ack_goes_to_time_wait() {
        let mut h = fin_wait_1();
        send!(h, seg(RISN + 1, h.iss + 2, FIN.with(ACK), b""));
        recv!(h, flags = ACK, ack = RISN + 2);
        assert_eq!(h.events(), vec![EventKind::PeerClosed, EventKind::Closed]);
        assert_eq!(h.s.connection_count(), 1);
        assert_eq!(h.s.state(h.conn.unwrap()), Err(ConnError::InvalidHandle));
    }

    #[test]
    fn closing_simultaneous_close() {
        let mut h = fin_wait_1();
        send!(h, seg(RISN + 1, h.iss + 1, FIN.with(ACK), b""));
        recv!(h, flags = ACK, ack = RISN + 2);
        assert_eq!(h.state(), State::Closing);
        send!(h, seg(RISN + 2, h.iss + 2, ACK, b""));
        assert_eq!(h.events(), vec![EventKind::PeerClosed, EventKind::Closed]);
        assert_eq!(h.s.connection_count(), 1);
    }

    #[test]
    fn fin_wait_2_fin_goes_to_time_wait_then_closed() {
        let mut h = fin_wait_1();
        send!(h, seg(RISN + 1, h.iss + 2, ACK, b""));
        send!(h, seg(RISN + 1, h.iss + 2, FIN.with(ACK), b""));
        recv!(h, flags = ACK, ack = RISN + 2);
        assert_eq!(h.events(), vec![EventKind::PeerClosed, EventKind::Closed]);
        // TIME-WAIT: a retransmitted FIN is acknowledged again; RST is ignored (RFC 1337).
        h.advance_ms(5_000);
        send!(h, seg(RISN + 1, h.iss + 2, FIN.with(ACK), b""));
        recv!(h, flags = ACK, ack = RISN + 2);
        send!(h, seg(RISN + 2, 0, RST, b""));
        assert_eq!(h.s.connection_count(), 1);
        // 2 MSL (10 s here) after the last FIN the TCB is gone.
        h.advance_ms(9_999);
        assert_eq!(h.s.connection_count(), 1);
        h.advance_ms(2);
        assert_eq!(h.s.connection_count(), 0);
        assert_eq!(h.s.poll_timeout(), None);
    }

    #[test]
    fn fin_wait_2_times_out_when_peer_never_fins() {
        // Linux tcp_fin_timeout: a peer that acknowledges our FIN but never sends its own does
        // not keep a released connection's slot: after `fin_wait2_timeout` (60 s) it is reset
        // and freed.
        let mut h = H::established(cfg());
        h.s.release(h.conn.unwrap(), &mut h.cap).unwrap();
        recv!(h, flags = FIN.with(ACK), seq = h.iss + 1);
        send!(h, seg(RISN + 1, h.iss + 2, ACK, b""));
        h.take();
        h.advance_ms(59_900);
        assert_eq!(h.s.connection_count(), 1);
        h.advance_ms(200);
        recv!(h, flags = RST, seq = h.iss + 2);
        assert_eq!(h.s.connection_count(), 0);
        assert_eq!(h.s.counters().timeouts, 1);
        assert!(
            h.events().is_empty(),
            "a released handle hears nothing more"
        );
        assert_eq!(h.s.poll_timeout(), None);
    }

    #[test]
    fn half_closed_fin_wait_2_the_app_still_holds_has_no_timeout() {
        // `close` is a half close: the app still reads, the peer may send for as long as it
        // likes (RFC 9293 §3.6). Only a released connection is bounded.
        let mut h = fin_wait_1();
        send!(h, seg(RISN + 1, h.iss + 2, ACK, b""));
        assert_eq!(h.state(), State::FinWait2);
        h.advance_ms(600_000);
        assert_eq!(h.state(), State::FinWait2);
        send!(h, seg(RISN + 1, h.iss + 2, ACK, b"late"));
        assert_eq!(h.s.recv_available(h.conn.unwrap()), Ok(4));
    }

    #[test]
    fn fin_wait_1_zero_window_is_freed_after_close_timeout() {
        // Released with data queued and the peer's window stays shut: the close is bounded by
        // `close_timeout` (120 s) even before the probe limit would end it.
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        let mut z = seg(RISN + 1, h.iss + 1, ACK, b"");
        z.window = 0;
        send!(h, z);
        h.s.send(id, b"unsent").unwrap();
        h.s.release(id, &mut h.cap).unwrap();
        h.take();
        let took = h.answer_probes_until_freed(&z);
        assert!(
            took <= core::time::Duration::from_millis(120_100),
            "{took:?}"
        );
        assert_eq!(h.s.counters().timeouts, 1);
    }

    #[test]
    fn data_after_release_gets_rst() {
        // RFC 1122 §4.2.2.13: new data for a connection nobody will read resets it.
        let mut h = H::established(cfg());
        h.s.release(h.conn.unwrap(), &mut h.cap).unwrap();
        recv!(h, flags = FIN.with(ACK), seq = h.iss + 1);
        send!(h, seg(RISN + 1, h.iss + 2, ACK, b"nobody reads this"));
        recv!(h, flags = RST, seq = h.iss + 2);
        assert_eq!(h.s.connection_count(), 0);
    }

    #[test]
    fn time_wait_reuse_by_newer_syn() {
        let mut h = fin_wait_1();
        send!(h, seg(RISN + 1, h.iss + 2, FIN.with(ACK), b""));
        h.take();
        // An old-sequence SYN is just acknowledged...
        send!(h, seg(RISN, 0, SYN, b""));
        recv!(h, flags = ACK);
        // ...a SYN beyond rcv_nxt opens a new connection (the listener still stands).
        send!(h, seg(RISN + 100_000, 0, SYN, b""));
        recv!(h, flags = SYN.with(ACK), ack = RISN + 100_001);
        assert_eq!(h.s.counters().time_wait_reused, 1);
    }
}

// ============================================================================================
// CLOSE-WAIT, LAST-ACK
// ============================================================================================
mod close_wait {
    use super::*;

    #[test]
    fn peer_fin_then_our_close() {
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        send!(h, seg(RISN + 1, h.iss + 1, ACK.with(FIN), b"bye"));
        recv!(h, flags = ACK, ack = RISN + 5);
        assert_eq!(h.state(), State::CloseWait);
        assert_eq!(h.events(), vec![EventKind::Readable, EventKind::PeerClosed]);
        // We may still send in CLOSE-WAIT.
        h.s.send(id, b"last words").unwrap();
        recv!(h, payload = b"last words");
        h.s.close(id).unwrap();
        assert_eq!(h.state(), State::LastAck);
        recv!(h, flags = FIN.with(ACK), seq = h.iss + 11);
        // LAST-ACK: the ACK of our FIN closes, but "bye" is unread: the handle stays readable.
        send!(h, seg(RISN + 5, h.iss + 12, ACK, b""));
        assert!(h.events().is_empty());
        assert_eq!(h.s.connection_count(), 1);
        let mut buf = [0u8; 8];
        assert_eq!(h.s.recv(id, &mut buf), Ok(3));
        assert_eq!(h.events(), vec![EventKind::Closed]);
        assert_eq!(h.s.connection_count(), 0);
    }

    #[test]
    fn out_of_order_fin_waits_for_the_data() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 4, h.iss + 1, ACK.with(FIN), b"def"));
        assert_eq!(h.state(), State::Established);
        send!(h, seg(RISN + 1, h.iss + 1, ACK, b"abc"));
        assert_eq!(h.state(), State::CloseWait);
        let v = h.take();
        assert_eq!(v.last().unwrap().ack, RISN + 8);
    }

    #[test]
    fn last_ack_retransmits_fin() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 1, h.iss + 1, ACK.with(FIN), b""));
        h.take();
        h.s.close(h.conn.unwrap()).unwrap();
        recv!(h, flags = FIN.with(ACK));
        h.run_timer();
        recv!(h, flags = FIN.with(ACK), seq = h.iss + 1);
        send!(h, seg(RISN + 2, 0, RST, b""));
        assert_eq!(h.events(), vec![EventKind::PeerClosed, EventKind::Closed]);
    }

    #[test]
    fn release_with_unread_data_resets_and_frees_at_once() {
        // LAST-ACK used to wait for a read that never came when the app closed with data
        // unread (the worker forgets a leg's connection when it tears the context down).
        // RFC 1122 §4.2.2.13: closing with received data pending resets the connection.
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        send!(h, seg(RISN + 1, h.iss + 1, ACK.with(FIN), b"bye"));
        h.take();
        h.events();
        h.s.release(id, &mut h.cap).unwrap();
        recv!(h, flags = RST, seq = h.iss + 1);
        assert_eq!(h.s.connection_count(), 0);
        assert!(h.events().is_empty());
        assert_eq!(h.s.recv_available(id), Err(ConnError::InvalidHandle));
    }

    #[test]
    fn last_ack_never_acked_is_freed_after_close_timeout() {
        // The peer's window stays shut, so our data and FIN never go and LAST-ACK is never
        // acknowledged; the peer answers every probe (RFC 1122 would keep it open for ever).
        let mut h = H::established(cfg());
        let id = h.conn.unwrap();
        let mut z = seg(RISN + 1, h.iss + 1, ACK.with(FIN), b"");
        z.window = 0;
        send!(h, z);
        h.take();
        assert_eq!(h.events(), vec![EventKind::PeerClosed]);
        h.s.send(id, b"reply").unwrap();
        h.s.release(id, &mut h.cap).unwrap();
        h.take();
        let mut z = seg(RISN + 2, h.iss + 1, ACK, b"");
        z.window = 0;
        let took = h.answer_probes_until_freed(&z);
        assert!(
            took <= core::time::Duration::from_millis(120_100),
            "{took:?}"
        );
        assert!(took >= core::time::Duration::from_secs(119), "{took:?}");
        assert_eq!(h.s.counters().timeouts, 1);
        assert!(h.events().is_empty());
    }

    #[test]
    fn released_last_ack_frees_when_our_fin_is_acked() {
        let mut h = H::established(cfg());
        send!(h, seg(RISN + 1, h.iss + 1, ACK.with(FIN), b""));
        h.take();
        h.s.release(h.conn.unwrap(), &mut h.cap).unwrap();
        recv!(h, flags = FIN.with(ACK), seq = h.iss + 1);
        send!(h, seg(RISN + 2, h.iss + 2, ACK, b""));
        assert_eq!(h.s.connection_count(), 0);
        assert_eq!(h.s.poll_timeout(), None);
    }
}
