//! Keyframe management against real `rtc` peers: coalesced PLIs, and no
//! delta frames before a subscriber's first keyframe.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{codec_prefix, Sim};
use sfu::core::{CoreConfig, DropReason};

#[test]
fn fifty_subscribers_plis_within_100ms_make_one_upstream_pli() {
    let mut sim = Sim::connected(CoreConfig::new(common::SFU_ADDR.parse().unwrap()), 50);
    let (publisher, subs) = (0, (1..=50).collect::<Vec<usize>>());
    sim.send_frames(publisher, 1, 20);
    sim.advance(Duration::from_secs(1));
    let before = sim.core.snapshot().counters;
    for (k, &s) in subs.iter().enumerate() {
        sim.send_pli(s);
        // 50 PLIs spread over 98 ms.
        if k % 10 == 9 {
            sim.advance(Duration::from_millis(20));
        }
    }
    let after = sim.core.snapshot().counters;
    assert_eq!(
        after.keyframe_requests_received - before.keyframe_requests_received,
        50
    );
    assert_eq!(
        after.keyframe_requests_sent - before.keyframe_requests_sent,
        1,
        "exactly one upstream PLI"
    );
}

#[test]
fn no_delta_frame_reaches_a_subscriber_before_a_keyframe() {
    let mut sim = Sim::new();
    let publisher = sim.add_client("alice", true);
    let early = sim.add_client("bob", false);
    let alice = sim.join(publisher, "room");
    sim.join(early, "room");
    sim.connect_all();
    sim.send_frames(publisher, 1, 30);

    // Carol joins while Alice sends only delta frames; Alice's encoder
    // ignores PLIs for now.
    let plis_before = sim.clients[publisher].plis_received;
    let late = sim.add_client("carol", false);
    sim.join(late, "room");
    sim.connect_all();
    let held_before = sim.dropped(DropReason::AwaitingKeyframe);
    for k in 0..20u16 {
        sim.clients[publisher].keyframe_pending = false;
        sim.send_video(publisher, 31 + k, (31 + u32::from(k)) * 3000, &[7u8; 50]);
        sim.advance(Duration::from_millis(10));
    }
    assert!(
        sim.video_from(late, alice).is_empty(),
        "no delta frame before a keyframe"
    );
    assert!(sim.dropped(DropReason::AwaitingKeyframe) >= held_before + 20);
    assert!(
        sim.clients[publisher].plis_received > plis_before,
        "the SFU asked Alice for a keyframe"
    );

    // Alice now honours the request: Carol starts exactly at the keyframe.
    sim.clients[publisher].keyframe_pending = true;
    sim.send_frames(publisher, 51, 20);
    let got = sim.video_from(late, alice);
    assert_eq!(got.len(), 20, "everything from the keyframe on");
    assert_eq!(
        got[0].payload[..2],
        codec_prefix("video/VP8", true),
        "first packet is a keyframe start"
    );
    // Bob, already decoding, saw every packet but the one that published
    // the track (his subscription to it did not exist yet).
    assert_eq!(sim.video_from(early, alice).len(), 69);
}

#[test]
fn a_video_back_from_a_stall_gets_a_keyframe_request_at_once() {
    let (mut sim, alice, _bob) = Sim::pair();
    sim.send_frames(alice, 1, 30);
    sim.advance(Duration::from_millis(600));
    let before = sim.clients[alice].plis_received;
    // Alice's path is cut for 2.5 s; nothing asks for a keyframe meanwhile.
    sim.advance(Duration::from_millis(2_500));
    assert_eq!(sim.clients[alice].plis_received, before);
    sim.send_frames(alice, 31, 1);
    assert_eq!(
        sim.clients[alice].plis_received,
        before + 1,
        "her first packet after the stall brings a PLI back"
    );
    // A normal gap between frames does not.
    sim.advance(Duration::from_millis(600));
    sim.send_frames(alice, 32, 5);
    assert_eq!(sim.clients[alice].plis_received, before + 1);
}
