//! Arbitrary segments, time jumps and application calls against one mgw-tcp stack
//! (see mgw_tcp::fuzzing): no input may panic or break the stack's invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mgw_tcp::fuzzing::run(data);
});
