//! Demultiplexing a datagram on the shared port to its Peer
//! (`core::demux`, `core::routes`): a STUN binding request by the SFU ufrag
//! in its USERNAME, and SRTP by the pinned (protocol, address), with 1,000
//! Peers' addresses pinned. This is the routing step alone, before `rtc`.
//!
//! `cargo bench -p sfu --bench demux`

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtc::shared::TransportProtocol;
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{Message, Setter, TransactionId, BINDING_REQUEST};
use rtc::stun::textattrs::TextAttribute;
use sfu::core::demux;
use sfu::core::routes::Routes;
use sfu::core::PeerId;

const PEERS: u64 = 1000;

fn addr(i: u64) -> SocketAddr {
    // Spread over addresses and ports, as clients behind NATs are.
    let ip = std::net::Ipv4Addr::new(198, 51, (i / 250) as u8, (i % 250) as u8 + 1);
    SocketAddr::new(ip.into(), 50_000 + (i % 7_000) as u16)
}

/// A browser's binding request: USERNAME, plus the attributes a browser
/// puts before it would not change the walk much, so only those after it
/// are left out.
fn binding_request(username: &str) -> Vec<u8> {
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
    ];
    m.build(&setters).unwrap();
    m.raw
}

fn demux_bench(c: &mut Criterion) {
    let now = Instant::now();
    let mut by_ufrag: HashMap<String, PeerId> = HashMap::new();
    let mut routes = Routes::default();
    for i in 0..PEERS {
        by_ufrag.insert(format!("sfu{i:05}"), PeerId(i));
        routes.pin((TransportProtocol::UDP, addr(i)), PeerId(i), now);
    }
    let stun = binding_request("sfu00421:brwsrUfr");
    // An SRTP video packet's first bytes (RTP version 2, PT 96); demux looks
    // at the first byte only.
    let mut srtp = vec![0u8; 1200];
    srtp[0] = 0x90;
    srtp[1] = 96;
    let source = addr(421);

    let mut group = c.benchmark_group("demux");
    group.throughput(Throughput::Elements(1));
    group.bench_function("stun_by_ufrag", |b| {
        b.iter(|| {
            let d = std::hint::black_box(&stun[..]);
            let ufrag = demux::stun_local_ufrag(d);
            ufrag.and_then(|u| by_ufrag.get(u).copied())
        })
    });
    group.bench_function("srtp_by_address", |b| {
        b.iter(|| {
            let d = std::hint::black_box(&srtp[..]);
            if demux::is_stun(d) {
                None
            } else {
                routes.lookup(&(TransportProtocol::UDP, std::hint::black_box(source)), now)
            }
        })
    });
    group.finish();
}

criterion_group!(benches, demux_bench);
criterion_main!(benches);
