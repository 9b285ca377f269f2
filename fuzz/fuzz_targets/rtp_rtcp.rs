//! Fuzz target `rtp_rtcp`: see `sfu::fuzzing::rtp_rtcp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu::fuzzing::rtp_rtcp(data);
});
