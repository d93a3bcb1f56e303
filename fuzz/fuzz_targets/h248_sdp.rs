//! Fuzz the SDP parser and the eMEDIASEC procedures: arbitrary Local/Remote SDP text and
//! properties never panic, and every Local SDP answer parses back.
#![no_main]

use mgw_h248::h248::ast::{PropertyParm, StreamMode};
use mgw_h248::procedures::{derive_leg, LegInput, Realms};
use mgw_h248::sdp::Sdp;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{0}');
    let local = parts.next().filter(|s| !s.is_empty());
    let remote = parts.next().filter(|s| !s.is_empty());
    let props: Vec<PropertyParm> = parts
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| PropertyParm::eq(n, v))
        .collect();
    if let Some(l) = local {
        if let Ok(s) = Sdp::parse(l) {
            assert_eq!(Sdp::parse(&s.to_text("\n")).ok(), Some(s));
        }
    }
    let mut realms = Realms::default();
    realms.add("access", "192.0.2.1".parse().unwrap(), 40000, 40003);
    if let Ok(out) = derive_leg(
        &LegInput {
            local,
            remote,
            properties: &props,
            mode: StreamMode::SendRecv,
            previous: None,
            local_is_ours: false,
        },
        &mut realms,
        "SHA-256 AA:BB",
    ) {
        assert!(Sdp::parse(&out.local_sdp).is_ok());
    }
});
