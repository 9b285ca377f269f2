//! Fuzz target `demux`: see `sfu::fuzzing::demux`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu::fuzzing::demux(data);
});
