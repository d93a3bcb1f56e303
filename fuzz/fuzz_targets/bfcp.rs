//! Fuzzes BFCP views, the TCP stream framer, UDP reassembly and fragmentation.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use mgw_app::bfcp::{
    attributes, Fragmenter, Packet, Reassembler, ReassemblyConfig, Repr, StreamFramer,
};
use mgw_core::time::Instant;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (
            p.primitive(),
            p.fragment_offset(),
            p.fragment_length(),
            p.payload().len(),
        );
        if let Ok(r) = Repr::parse(&p) {
            let mut out = vec![0u8; r.buffer_len()];
            assert_eq!(r.emit(&mut out), Ok(data.len()));
            // emit(parse(x)) == x, except the reserved bits, which are sent as zero.
            assert_eq!(out[0], data[0] & 0xf8);
            assert_eq!(out[1..], data[1..]);
        }
    }
    for a in attributes(data).flatten() {
        let _ = (a.kind(), a.mandatory(), a.value().len());
    }
    let cut = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    let mut fr = StreamFramer::new(1024);
    for chunk in [&data[..cut], &data[cut..]] {
        let mut f = fr.feed(chunk);
        loop {
            match f.next_message() {
                Ok(Some(m)) => {
                    let _ = f.bytes(m).len();
                }
                Ok(None) => break,
                Err(_) => {
                    if f.next_message().is_err() {
                        break;
                    }
                }
            }
        }
    }
    let mut re = Reassembler::new(ReassemblyConfig {
        slots: 2,
        max_message: 1024,
        timeout: Duration::from_millis(10),
    });
    for (i, d) in data.chunks(40).enumerate() {
        let _ = re.push(Instant::from_millis(i as u64), d);
    }
    if let Ok(mut f) = Fragmenter::new(data, 20 + cut % 64) {
        let mut out = [0u8; 128];
        while let Some(Ok(_)) = f.next_fragment(&mut out) {}
    }
});
