//! Fuzzes the BFCP interworking transaction layer (RFC 8855 §8 across transports): any
//! sequence of messages both ways and timer turns. Checked: no panic; acknowledgements never
//! cross to the reliable side; what is relayed there has R clear; what leaves on the
//! unreliable side for a server-initiated message has a non-zero Transaction ID; the tables
//! stay within their bounds.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use mgw_app::bfcp::{
    Packet, Primitive, ToUnreliable, TransactionConfig, TransactionStats, Transactions,
};
use mgw_core::time::Instant;

fuzz_target!(|data: &[u8]| {
    let cfg = TransactionConfig {
        requests: 3,
        answers: 3,
        max_stored: 64,
        ..TransactionConfig::default()
    };
    let mut x = Transactions::new(
        cfg,
        u16::from_be_bytes([
            data.first().copied().unwrap_or(0),
            data.get(1).copied().unwrap_or(1),
        ]),
    );
    let mut st = TransactionStats::default();
    let mut now = Instant::ZERO;
    let mut reply = [0u8; 128];
    let mut out = [0u8; 128];
    for op in data.chunks(6) {
        let [kind, prim, tid_hi, tid_lo, units, dt] = match *op {
            [a, b, c, d, e, f] => [a, b, c, d, e, f],
            _ => break,
        };
        now += Duration::from_millis(u64::from(dt) * 16);
        // A whole message: header, then `units` zero units (some too large to keep).
        let units = units % 24;
        let mut m = vec![0u8; 12 + 4 * usize::from(units)];
        m[0] = if kind & 1 == 0 { 0x20 } else { 0x40 } | (kind & 0x10);
        m[1] = prim % 20;
        m[3] = units;
        m[8] = tid_hi % 4;
        m[9] = tid_lo;
        if kind & 0x80 != 0 {
            // Raw bytes instead: whatever the op holds.
            m.truncate(usize::from(units) % 12);
        }
        match kind % 3 {
            0 => {
                let before = Packet::new_checked(&m[..]).map(|p| p.transaction_id()).ok();
                if x.to_unreliable(now, &mut m, &mut st) == ToUnreliable::Send {
                    let p = Packet::new_checked(&m[..]).unwrap();
                    assert!(!matches!(
                        p.primitive(),
                        Primitive::FloorRequestStatusAck | Primitive::FloorStatusAck
                    ));
                    if before == Some(0)
                        && matches!(
                            p.primitive(),
                            Primitive::FloorRequestStatus
                                | Primitive::FloorStatus
                                | Primitive::Goodbye
                        )
                    {
                        assert_ne!(p.transaction_id(), 0);
                    }
                }
            }
            1 => {
                let v = x.from_unreliable(now, &mut m, &mut reply, &mut st);
                assert!(v.reply <= reply.len());
                if v.relay {
                    let p = Packet::new_checked(&m[..]).unwrap();
                    assert!(!p.responder());
                    assert!(!matches!(
                        p.primitive(),
                        Primitive::FloorRequestStatusAck | Primitive::FloorStatusAck
                    ));
                }
            }
            _ => while x.poll_retransmit(now, &mut out, &mut st).is_some() {},
        }
        assert!(x.waiting() <= cfg.requests);
        assert!(x.poll_timeout() == Instant::FAR_FUTURE || x.waiting() > 0);
    }
});
