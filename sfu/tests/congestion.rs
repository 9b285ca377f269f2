//! A subscriber whose downlink cannot carry a video without simulcast, on a
//! virtual clock: its video pauses (counted as `congested` drops) while its
//! audio and the other subscribers' video go on, and resumes from a
//! keyframe once its estimate has room again.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use sfu::core::{DropReason, Signal};

/// Sends `for_how_long` of 20 ms steps: a video packet (about 1 Mbit/s)
/// and an audio packet each.
fn send(sim: &mut Sim, alice: usize, seq: &mut u16, for_how_long: Duration) {
    let steps = for_how_long.as_millis() / 20;
    for _ in 0..steps {
        *seq = seq.wrapping_add(1);
        let ts = u32::from(*seq) * 1800;
        sim.send_video(alice, *seq, ts, &[0x5a; 2_500]);
        sim.send_audio(alice, *seq, 40);
        sim.advance(Duration::from_millis(20));
    }
}

fn count(sim: &Sim, i: usize, kind: RtpCodecKind) -> usize {
    sim.clients[i]
        .received
        .iter()
        .filter(|r| r.kind == kind)
        .count()
}

#[test]
fn a_starved_downlink_pauses_video_keeps_audio_and_recovers() {
    let mut sim = Sim::new();
    let alice = sim.add_client("alice", true);
    // Bob and Carol negotiate no TWCC, so their REMB sets their estimate.
    sim.twcc = false;
    let bob = sim.add_client("bob", false);
    let carol = sim.add_client("carol", false);
    sim.join(alice, "room");
    sim.join(bob, "room");
    sim.join(carol, "room");
    sim.connect_all();
    let mut seq = 0u16;
    send(&mut sim, alice, &mut seq, Duration::from_secs(1));
    sim.send_remb(bob, 5_000_000.0);
    sim.send_remb(carol, 5_000_000.0);
    send(&mut sim, alice, &mut seq, Duration::from_secs(2));
    assert!(count(&sim, bob, RtpCodecKind::Video) > 100, "Bob decodes");

    // Bob's downlink collapses to about 50 kbit/s.
    sim.send_remb(bob, 50_000.0);
    send(&mut sim, alice, &mut seq, Duration::from_secs(1));
    assert!(
        sim.clients[bob]
            .signals
            .iter()
            .any(|s| matches!(s, Signal::VideoPaused { paused: true, .. })),
        "Bob is told his video paused"
    );
    let (bob_video, bob_audio, carol_video) = (
        count(&sim, bob, RtpCodecKind::Video),
        count(&sim, bob, RtpCodecKind::Audio),
        count(&sim, carol, RtpCodecKind::Video),
    );
    let congested = sim.dropped(DropReason::Congested);
    send(&mut sim, alice, &mut seq, Duration::from_secs(2));
    assert_eq!(count(&sim, bob, RtpCodecKind::Video), bob_video, "no video");
    assert!(
        count(&sim, bob, RtpCodecKind::Audio) >= bob_audio + 95,
        "audio goes on"
    );
    assert!(
        count(&sim, carol, RtpCodecKind::Video) >= carol_video + 95,
        "Carol is not affected"
    );
    assert!(
        sim.dropped(DropReason::Congested) >= congested + 95,
        "the held-back video is counted"
    );

    // A 200 kbit/s estimate is plenty for audio but not for 1 Mbit/s of
    // video: Bob stays paused.
    sim.send_remb(bob, 200_000.0);
    send(&mut sim, alice, &mut seq, Duration::from_secs(4));
    assert_eq!(count(&sim, bob, RtpCodecKind::Video), bob_video);

    // Bob's downlink is back: video resumes, from a keyframe.
    let keyframes = sim.clients[alice].keyframes_sent;
    sim.send_remb(bob, 5_000_000.0);
    send(&mut sim, alice, &mut seq, Duration::from_secs(8));
    assert!(
        sim.clients[bob]
            .signals
            .iter()
            .any(|s| matches!(s, Signal::VideoPaused { paused: false, .. })),
        "Bob is told his video resumed"
    );
    assert!(count(&sim, bob, RtpCodecKind::Video) > bob_video + 100);
    assert!(
        sim.clients[alice].keyframes_sent > keyframes,
        "a keyframe was asked for"
    );
}
