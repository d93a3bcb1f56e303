//! Fuzzes the steering peek (Ethernet → IPv4 → TCP/UDP destination port) and owner lookup that
//! every received frame goes through on a multi-worker port: no input may panic, and a frame
//! gets an owner only if it is IPv4 TCP/UDP, unfragmented, to a steered address and owned port.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_core::wire::{Ipv4Address, Ipv4Packet};
use mgw_worker::steer::peek_ipv4_l4_dst;
use mgw_worker::Steering;
use std::sync::{Arc, OnceLock};

const GW: Ipv4Address = Ipv4Address([192, 0, 2, 1]);

fn steering() -> &'static Arc<Steering<Vec<u8>>> {
    static S: OnceLock<Arc<Steering<Vec<u8>>>> = OnceLock::new();
    S.get_or_init(|| {
        let s = Steering::new(&[GW], 2, 4);
        for port in (0..=u16::MAX).step_by(3) {
            let _ = s.claim(GW, port, usize::from(port % 2));
        }
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let s = steering();
    match peek_ipv4_l4_dst(data) {
        Some((dst, port)) => {
            let ip = Ipv4Packet::new_checked(&data[14..]).expect("peek checked it");
            assert_eq!(ip.dst_addr(), dst);
            assert!(!ip.is_fragment());
            let owner = s.owner_of_frame(data);
            let want = (dst == GW && port % 3 == 0).then_some(usize::from(port % 2));
            assert_eq!(owner, want);
        }
        None => assert_eq!(s.owner_of_frame(data), None),
    }
});
