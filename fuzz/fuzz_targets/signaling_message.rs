//! Fuzz target `signaling_message`: see `signaling::protocol::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    signaling::protocol::fuzzing::client_message(data);
});
