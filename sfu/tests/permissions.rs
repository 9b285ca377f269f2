//! A Peer's media permissions (from its access token): one that may not
//! publish never gets a Track and its RTP is dropped and counted; one that
//! may not subscribe gets no Subscriptions.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;
use sfu::core::Permissions;

fn send(sim: &mut Sim, i: usize, count: u16) {
    for k in 0..count {
        sim.send_video(i, 100 + k, 90_000 + u32::from(k) * 3000, &[0u8; 100]);
        sim.advance(Duration::from_millis(5));
    }
}

#[test]
fn a_peer_that_may_not_publish_gets_no_track() {
    let mut sim = Sim::new();
    let publisher = sim.add_client("mallory", true);
    let viewer = sim.add_client("bob", false);
    let mallory = sim.join(publisher, "room");
    sim.join(viewer, "room");
    sim.core.set_permissions(
        mallory,
        Permissions {
            publish: false,
            subscribe: true,
        },
    );
    sim.connect_all();
    send(&mut sim, publisher, 50);
    sim.advance(Duration::from_millis(200));
    send(&mut sim, publisher, 50);
    assert!(sim.video_from(viewer, mallory).is_empty());
    let snap = sim.core.snapshot();
    assert_eq!(snap.video_tracks, 0);
    assert_eq!(snap.subscriptions, 0);
    assert!(
        snap.counters.rtp_unpermitted > 0,
        "dropped RTP is counted: {}",
        snap.counters.rtp_unpermitted
    );
}

#[test]
fn a_peer_that_may_not_subscribe_gets_nothing() {
    let mut sim = Sim::new();
    let publisher = sim.add_client("alice", true);
    let blind = sim.add_client("bob", false);
    let seeing = sim.add_client("carol", false);
    let alice = sim.join(publisher, "room");
    let bob = sim.join(blind, "room");
    sim.join(seeing, "room");
    sim.core.set_permissions(
        bob,
        Permissions {
            publish: true,
            subscribe: false,
        },
    );
    sim.connect_all();
    send(&mut sim, publisher, 50);
    sim.advance(Duration::from_millis(200));
    send(&mut sim, publisher, 50);
    assert!(sim.video_from(blind, alice).is_empty());
    assert!(!sim.video_from(seeing, alice).is_empty());
    let snap = sim.core.snapshot();
    assert_eq!(snap.video_tracks, 1);
    assert_eq!(snap.subscriptions, 1, "only carol subscribes");
    assert_eq!(snap.counters.rtp_unpermitted, 0);
}
