//! Fuzzes every wire view on one input: as an Ethernet frame, and at each layer as if the bytes
//! were that header. No accessor may panic after `new_checked`, and a `Repr` that parses must
//! emit and parse back to itself.
#![no_main]

use mgw_core::wire::tcp::ChecksumCheck;
use mgw_core::wire::*;

fn tcp(data: &[u8]) {
    let a = IpAddress::V4(Ipv4Address([10, 0, 0, 1]));
    if let Ok(p) = TcpPacket::new_checked(data) {
        let _ = (
            p.payload(),
            p.options(),
            p.flags(),
            p.verify_checksum(&a, &a),
        );
        if let Ok(r) = TcpRepr::parse(&p, &a, &a, ChecksumCheck::Skip) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &a, &a)
                .expect("sized buffer");
            let q = TcpPacket::new_checked(&buf[..]).expect("own output is well formed");
            let back =
                TcpRepr::parse(&q, &a, &a, ChecksumCheck::Verify).expect("own output parses");
            assert_eq!(
                (back.seq, back.ack, back.flags, back.payload),
                (r.seq, r.ack, r.flags, r.payload)
            );
        }
    }
}

fn udp(data: &[u8]) {
    let a = IpAddress::V4(Ipv4Address([10, 0, 0, 1]));
    if let Ok(p) = UdpPacket::new_checked(data) {
        let _ = (p.payload(), UdpRepr::parse(&p, &a, &a, true));
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = EthernetRepr::parse(&f);
        let payload = f.payload();
        if let Ok(p) = ArpPacket::new_checked(payload) {
            let _ = ArpRepr::parse(&p);
        }
        if let Ok(p) = Ipv4Packet::new_checked(payload) {
            let _ = (Ipv4Repr::parse(&p, true), p.is_fragment());
            tcp(p.payload());
            udp(p.payload());
            if let Ok(i) = Icmpv4Packet::new_checked(p.payload()) {
                let _ = Icmpv4Repr::parse(&i);
            }
        }
        if let Ok(p) = Ipv6Packet::new_checked(payload) {
            let _ = Ipv6Repr::parse(&p);
            tcp(p.payload());
        }
    }
    tcp(data);
    udp(data);
});
