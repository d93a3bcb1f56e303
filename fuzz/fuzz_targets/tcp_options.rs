//! Raw TCP headers (options included) through parse and re-emit: no panic, and what parses
//! re-emits into a header that parses to the same values.
#![no_main]

use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::{IpAddress, Ipv4Address, TcpPacket, TcpRepr};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let a = IpAddress::V4(Ipv4Address([10, 0, 0, 1]));
    let b = IpAddress::V4(Ipv4Address([10, 0, 0, 2]));
    let Ok(p) = TcpPacket::new_checked(data) else {
        return;
    };
    let Ok(seg) = TcpRepr::parse(&p, &a, &b, ChecksumCheck::Skip) else {
        return;
    };
    let mut out = vec![0u8; seg.buffer_len()];
    let mut q = TcpPacket::new_unchecked(&mut out[..]);
    seg.emit(&mut q, &a, &b).expect("emit");
    let q = TcpPacket::new_checked(&out[..]).expect("re-parse view");
    let again = TcpRepr::parse(&q, &a, &b, ChecksumCheck::Verify).expect("re-parse");
    assert_eq!(again.seq, seg.seq);
    assert_eq!(again.flags, seg.flags);
    assert_eq!(again.payload, seg.payload);
});
