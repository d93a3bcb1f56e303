//! Fuzz the H.248 text parser: no input may panic, and whatever parses must re-emit to text that
//! parses back to the same tree (in both styles).
#![no_main]

use mgw_h248::h248::{emit, parse_message, Style};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mgw_h248::h248::parse::salvage_request_ids(data);
    if let Ok(m) = parse_message(data) {
        for style in [Style::Pretty, Style::Compact] {
            let text = emit(&m, style);
            let back = parse_message(text.as_bytes()).expect("emitted text must parse");
            assert_eq!(back, m);
        }
    }
});
