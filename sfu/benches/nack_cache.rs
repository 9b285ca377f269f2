//! The per-Track packet cache that answers NACKs (`core::nack_cache`):
//! what keeping one forwarded packet costs (done once per packet from the
//! publisher, whatever the fan-out), and what finding one for a NACK costs,
//! hit and miss.
//!
//! `cargo bench -p sfu --bench nack_cache`

#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use sfu::core::nack_cache::{PacketCache, VIDEO_SLOTS};

/// A video packet as the core holds it: header plus a shared 1,100-byte
/// payload (inserting clones the `Bytes`, not the payload).
fn packet(seq: u16) -> Packet {
    Packet {
        header: Header {
            version: 2,
            payload_type: 96,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3000,
            ssrc: 0x1234_5678,
            ..Default::default()
        },
        payload: Bytes::from(vec![0x5au8; 1100]),
    }
}

fn nack_cache(c: &mut Criterion) {
    let mut group = c.benchmark_group("nack_cache");
    group.throughput(Throughput::Elements(1));

    // A full cache: every insert replaces (and drops) an older packet, the
    // steady state of a live Track.
    let packets: Vec<Packet> = (0..4096u16).map(packet).collect();
    let mut cache = PacketCache::new(VIDEO_SLOTS);
    for p in &packets {
        cache.insert(p);
    }
    let mut i = 0usize;
    group.bench_function("insert", |b| {
        b.iter(|| {
            cache.insert(std::hint::black_box(&packets[i % packets.len()]));
            i += 1;
        })
    });

    // Lookups of held packets (the last 1,024 inserted) and of ones that
    // have left the ring.
    let mut cache = PacketCache::new(VIDEO_SLOTS);
    for p in &packets {
        cache.insert(p);
    }
    let mut seq = 4096u16 - VIDEO_SLOTS as u16;
    group.bench_function("lookup_hit", |b| {
        b.iter(|| {
            let found = cache.get(std::hint::black_box(seq)).is_some();
            seq = if seq == 4095 {
                4096 - VIDEO_SLOTS as u16
            } else {
                seq + 1
            };
            found
        })
    });
    let mut seq = 0u16;
    group.bench_function("lookup_miss", |b| {
        b.iter(|| {
            let found = cache.get(std::hint::black_box(seq)).is_some();
            seq = (seq + 1) % (4096 - VIDEO_SLOTS as u16);
            found
        })
    });
    group.finish();
}

criterion_group!(benches, nack_cache);
criterion_main!(benches);
