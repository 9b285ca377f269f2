//! The Forwarder's rewrite of one packet's header for one subscriber
//! (`core::forwarder`): SSRC, payload type, sequence number (renumbered so
//! that dropped padding leaves no gap) and timestamp. This is the per
//! subscriber work of the fan-out before `rtc` encrypts.
//!
//! `cargo bench -p sfu --bench forwarder`

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtc::rtp::header::Header;
use sfu::core::forwarder::PacketInfo;
use sfu::core::Forwarder;

fn forwarder(c: &mut Criterion) {
    let mut f = Forwarder::new(0xabcd_ef01, 1000, 90_000, 90_000);
    f.set_payload_type(96);
    let mut seq: u16 = 0;
    let mut group = c.benchmark_group("forwarder");
    group.throughput(Throughput::Elements(1));
    group.bench_function("forward", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            // A 30 fps video, 4 packets a frame.
            let mut header = Header {
                version: 2,
                payload_type: 100,
                sequence_number: seq,
                timestamp: u32::from(seq / 4).wrapping_mul(3000),
                ssrc: 0x1234_5678,
                marker: seq % 4 == 3,
                ..Default::default()
            };
            let info = PacketInfo {
                marker: header.marker,
                ..PacketInfo::default()
            };
            let result = f.forward(std::hint::black_box(&mut header), info);
            std::hint::black_box((result, header.sequence_number))
        })
    });
    group.finish();
}

criterion_group!(benches, forwarder);
criterion_main!(benches);
