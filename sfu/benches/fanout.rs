//! CPU per forwarded packet in the core, without sockets: one publisher's
//! SRTP video datagrams go into `Core::handle_datagram` and come out as one
//! encrypted datagram per subscriber from `Core::poll_transmit`.
//!
//! `cargo bench -p sfu --bench fanout`; the throughput figure is forwarded
//! packets per second. Sizes 1, 10, 100 and 1,000 subscriptions; every
//! forwarded packet is SRTP-encrypted for its subscriber. The 1,000 case
//! takes about a minute to set up (1,001 DTLS handshakes in memory).
//!
//! `poll_timeout` measures what the driver pays on every loop turn to learn
//! when the core's next timer is due, with 100 and 1,000 Peers connected.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::Sim;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use sfu::core::CoreConfig;

/// The SRTP protection profile of every leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Srtp {
    /// AEAD AES-128-GCM (the SFU's default).
    Gcm,
    /// AES-CM-128 with HMAC-SHA1-80.
    AesCm,
}

fn unlimited() -> sfu::core::rate_limit::InboundLimits {
    sfu::core::rate_limit::InboundLimits {
        max_kbps: u32::MAX,
        max_pps: u32::MAX,
    }
}

fn connected_room(
    subscribers: usize,
    count_rtcp: bool,
    srtp: Srtp,
) -> (Sim, usize, std::net::SocketAddr) {
    let mut config = CoreConfig::new(common::SFU_ADDR.parse().unwrap());
    config.count_rtcp = count_rtcp;
    if srtp == Srtp::AesCm {
        // The simulated clients list AES-128-GCM first; offering them only
        // AES-CM is what makes them take it (as Chrome does whenever the
        // SFU accepts it).
        config.srtp_profiles = vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80];
    }
    // The clock stands still while packets go in: no inbound cap, or the
    // publisher's token bucket would empty after a second's worth.
    config.inbound_limits = unlimited();
    let mut sim = Sim::connected(config, subscribers);
    sim.send_frames(0, 0, 5);
    let addr = sim.clients[0].addr;
    (sim, 0, addr)
}

fn fanout(c: &mut Criterion) {
    run(c, "fanout", true, Srtp::Gcm, &[1, 10, 100, 1000]);
    // The same without counting RTCP by type and media on the wire, to
    // show what that costs.
    run(c, "fanout_without_rtcp_count", false, Srtp::Gcm, &[100]);
    // What the SRTP profile costs: both legs AES-CM instead of GCM.
    run(c, "fanout_aes_cm", true, Srtp::AesCm, &[100]);
}

fn poll_timeout(c: &mut Criterion) {
    let mut group = c.benchmark_group("poll_timeout");
    for &subscribers in &[100usize, 1000] {
        let (mut sim, _, _) = connected_room(subscribers, true, Srtp::Gcm);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers + 1),
            &subscribers,
            |b, _| b.iter(|| std::hint::black_box(sim.core.poll_timeout())),
        );
    }
    group.finish();
}

fn run(c: &mut Criterion, name: &str, count_rtcp: bool, srtp: Srtp, sizes: &[usize]) {
    let mut group = c.benchmark_group(name);
    for &subscribers in sizes {
        // One sample of 1,000 subscribers is milliseconds; fewer samples
        // keep the run short.
        group.sample_size(if subscribers >= 1000 { 10 } else { 20 });
        let (mut sim, publisher, addr) = connected_room(subscribers, count_rtcp, srtp);
        let mut seq: u16 = 100;
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, &n| {
                b.iter_custom(|iters| {
                    let datagrams = sim.video_datagrams(publisher, seq, iters as usize);
                    seq = seq.wrapping_add(iters as u16);
                    let now = sim.now;
                    let start = Instant::now();
                    let mut sent = 0usize;
                    for d in datagrams {
                        sim.core.handle_datagram(now, addr, d);
                        while sim.core.poll_transmit().is_some() {
                            sent += 1;
                        }
                    }
                    let elapsed = start.elapsed();
                    assert!(
                        sent >= iters as usize * n,
                        "every packet reached every subscriber"
                    );
                    elapsed
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, fanout, poll_timeout);
criterion_main!(benches);
