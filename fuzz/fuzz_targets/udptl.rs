//! Fuzzes UDPTL parsing and per-flow accounting; checks emit(parse(x)) round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_app::udptl::{ErrorRecovery, UdptlConfig, UdptlFlow, UdptlRepr};

fuzz_target!(|data: &[u8]| {
    let cfg = UdptlConfig {
        max_datagram: 4096,
        max_entries: 16,
    };
    if let Ok(r) = UdptlRepr::parse(data, &cfg) {
        // An empty open type is re-sent as one zero octet (X.691 §10.1), so only values without
        // empty IFPs survive unchanged.
        let empty_ifp = r.primary_ifp.is_empty()
            || matches!(r.error_recovery, ErrorRecovery::Redundancy(l) if l.iter().any(<[u8]>::is_empty));
        if !empty_ifp {
            let mut out = vec![0u8; r.buffer_len()];
            let n = r.emit(&mut out).expect("buffer_len is enough");
            // Re-encoding may normalise length forms; the value must survive.
            assert_eq!(UdptlRepr::parse(&out[..n], &cfg), Ok(r));
        }
    }
    let mut flow = UdptlFlow::new(cfg);
    for d in data.split(|&b| b == 0xff) {
        let _ = flow.on_datagram(d);
    }
});
