//! Fuzz the whole MG control path: a registered association plus the MG model, fed arbitrary
//! datagrams from the MGC and arbitrary timer advances. No input may panic; every transmitted
//! message must parse; ports never leak (all released once the MGC clears every context).
#![no_main]

use mgw_core::time::Instant;
use mgw_h248::h248::association::{AssocEvent, Association, AssociationConfig};
use mgw_h248::h248::ast::Mid;
use mgw_h248::h248::mg::{Mg, MgConfig};
use mgw_h248::h248::parse_message;
use mgw_h248::procedures::Realms;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mgc: std::net::SocketAddr = "127.0.0.2:2944".parse().unwrap();
    let mut a = Association::new(
        AssociationConfig {
            mgcs: vec![mgc],
            ..AssociationConfig::default()
        },
        Mid::Ip {
            addr: "127.0.0.1".parse().unwrap(),
            port: Some(2944),
        },
        1,
        0,
        Instant::ZERO,
    );
    a.handle_timeout(Instant::ZERO);
    a.handle_datagram(
        Instant::ZERO,
        mgc,
        b"!/3 [127.0.0.2]:2944 P=1{C=-{SC=ROOT}}",
    );
    let mut realms = Realms::default();
    realms.add("access", "192.0.2.1".parse().unwrap(), 40000, 40015);
    realms.add("core", "10.0.0.1".parse().unwrap(), 50000, 50015);
    let mut mg = Mg::new(MgConfig::default(), realms, "SHA-256 AA:BB".into());
    let mut now = 0u64;
    // Datagrams are separated by 0xFF bytes; the byte after each separator advances time.
    for chunk in data.split(|&b| b == 0xFF) {
        let (step, msg) = chunk.split_first().map_or((0, chunk), |(s, m)| (*s, m));
        now += u64::from(step) * 50;
        let t = Instant::from_millis(now);
        a.handle_timeout(t);
        a.handle_datagram(t, mgc, msg);
        while let Some(e) = a.poll_event() {
            if let AssocEvent::Request { from, request } = e {
                let (r, _) = mg.execute(t, &request);
                a.reply(t, from, request.id, r);
            }
        }
        while let Some(tx) = a.poll_transmit() {
            assert!(
                parse_message(&tx.bytes).is_ok(),
                "we emitted unparseable text"
            );
        }
    }
    let t = Instant::from_millis(now + 1);
    let clear = b"!/3 [127.0.0.2]:2944 T=4000000000{C=*{S=*}}";
    a.handle_datagram(t, mgc, clear);
    while let Some(e) = a.poll_event() {
        if let AssocEvent::Request { from, request } = e {
            let (r, _) = mg.execute(t, &request);
            a.reply(t, from, request.id, r);
        }
    }
    if mg.contexts().is_empty() {
        assert_eq!(mg.realms().in_use("access"), 0);
        assert_eq!(mg.realms().in_use("core"), 0);
    }
});
