//! CPU per forwarded packet in the core, without sockets: one publisher's
//! SRTP video datagrams go into `Core::handle_datagram` and come out as one
//! encrypted datagram per subscriber from `Core::poll_transmit`.
//!
//! `cargo bench -p sfu --bench fanout`; the throughput figure is forwarded
//! packets per second.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::Sim;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sfu::core::CoreConfig;

fn connected_room(subscribers: usize, count_rtcp: bool) -> (Sim, usize, std::net::SocketAddr) {
    let mut config = CoreConfig::new(common::SFU_ADDR.parse().unwrap());
    config.count_rtcp = count_rtcp;
    let mut sim = Sim::connected(config, subscribers);
    sim.send_frames(0, 0, 5);
    let addr = sim.clients[0].addr;
    (sim, 0, addr)
}

fn fanout(c: &mut Criterion) {
    run(c, "fanout", true, &[1, 10, 50]);
    // The same without counting RTCP by type and media on the wire, to
    // show what that costs.
    run(c, "fanout_without_rtcp_count", false, &[50]);
}

fn run(c: &mut Criterion, name: &str, count_rtcp: bool, sizes: &[usize]) {
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    for &subscribers in sizes {
        let (mut sim, publisher, addr) = connected_room(subscribers, count_rtcp);
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

criterion_group!(benches, fanout);
criterion_main!(benches);
