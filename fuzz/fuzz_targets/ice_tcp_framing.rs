//! Fuzz target `ice_tcp_framing`: see `sfu::fuzzing::ice_tcp_framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu::fuzzing::ice_tcp_framing(data);
});
