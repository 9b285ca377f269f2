//! Fuzz target `sdp`: see `sfu::fuzzing::sdp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu::fuzzing::sdp(data);
});
