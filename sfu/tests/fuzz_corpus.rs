//! Every checked-in fuzz corpus file (`fuzz/corpus/<target>/`) through the
//! same entry points the cargo-fuzz targets call (`sfu::fuzzing`), on
//! stable Rust without sanitizers: a crash found by fuzzing, once its input
//! is added to the corpus, stays fixed.

use std::path::PathBuf;
use std::time::Instant;

use sfu::fuzzing;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    files
}

fn run(target: &str, entry: fn(&[u8])) {
    let started = Instant::now();
    let files = corpus(target);
    for (path, data) in &files {
        let result = std::panic::catch_unwind(|| entry(data));
        assert!(result.is_ok(), "{target}: {} panicked", path.display());
    }
    println!(
        "{target}: {} inputs in {:?}",
        files.len(),
        started.elapsed()
    );
}

#[test]
fn demux_corpus() {
    run("demux", fuzzing::demux);
    run("demux", fuzzing::demux_fresh);
}

#[test]
fn sdp_corpus() {
    run("sdp", fuzzing::sdp);
}

#[test]
fn ice_tcp_framing_corpus() {
    run("ice_tcp_framing", fuzzing::ice_tcp_framing);
}

#[test]
fn rtp_rtcp_corpus() {
    run("rtp_rtcp", fuzzing::rtp_rtcp);
}

/// The harness itself: the seed binding request passes the ICE agent's
/// integrity check and pins the client's address, so the fuzzer starts
/// past the STUN stage.
#[test]
fn harness_pins_the_client() {
    let mut h = fuzzing::Harness::new(None).expect("the Chromium offer applies");
    h.pin_client();
    let client = fuzzing::CLIENT_ADDR.parse().expect("valid address");
    assert!(h
        .core
        .is_routed(rtc::shared::TransportProtocol::UDP, client));
}
