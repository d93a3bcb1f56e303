//! Fuzz the TLS record deframer/opener (mgw_tls::record): arbitrary bytes as received
//! ciphertext, for TLS 1.2 (GCM and ChaCha layouts) and TLS 1.3.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mgw_tls::record::fuzz_open_records(data);
    let _ = mgw_tls::record::RecordHeader::parse(data);
});
