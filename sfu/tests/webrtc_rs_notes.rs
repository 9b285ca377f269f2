//! Reproductions of `rtc` behaviour the SFU works around (see
//! docs/ARCHITECTURE.md, "webrtc-rs notes").

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;

/// Note 1: with `register_default_interceptors` alone, inbound RTCP never
/// reaches the application. The simulated clients use exactly that chain:
/// the SFU's PLIs reach the publisher's connection, yet its `poll_read`
/// yields no RTCP. The SFU's own chain marks PLI/FIR, and it does see the
/// subscribers' PLIs.
#[test]
fn default_chain_swallows_inbound_pli() {
    let mut sim = Sim::new();
    // Alice's chain is the default one alone; she never hears PLIs, so the
    // test makes every frame a keyframe.
    sim.deliver_rtcp = false;
    let publisher = sim.add_client("alice", true);
    sim.deliver_rtcp = true;
    let sub = sim.add_client("bob", false);
    sim.join(publisher, "room");
    sim.join(sub, "room");
    sim.connect_all();
    for k in 0..10u16 {
        sim.clients[publisher].keyframe_pending = true;
        sim.send_video(publisher, k, u32::from(k) * 3000, &[0u8; 40]);
        sim.advance(Duration::from_millis(20));
    }
    sim.advance(Duration::from_secs(1));
    sim.send_pli(sub);
    let counters = sim.core.snapshot().counters;
    assert!(
        counters.keyframe_requests_received >= 1,
        "the SFU's marked chain delivers PLI"
    );
    assert!(
        counters.keyframe_requests_sent >= 1,
        "the SFU sent PLI upstream"
    );
    assert_eq!(
        sim.clients[publisher].rtcp_read, 0,
        "the default chain delivered none of them"
    );
}
