//! A subscriber whose downlink cannot keep up, on a virtual clock: it gets
//! its video only within its own budget (four times its estimate), all of
//! its audio, a keyframe is asked for after the drops, and another
//! subscriber of the same Track gets everything.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use sfu::core::DropReason;

/// Sends `for_how_long` of 20 ms steps from Alice: 2,500 bytes of video
/// (about 1 Mbit/s) and an audio packet each.
fn send(sim: &mut Sim, alice: usize, seq: &mut u16, for_how_long: Duration) {
    for _ in 0..for_how_long.as_millis() / 20 {
        *seq = seq.wrapping_add(1);
        sim.send_video(alice, *seq, u32::from(*seq) * 1800, &[0x5a; 1_200]);
        *seq = seq.wrapping_add(1);
        sim.send_video(alice, *seq, u32::from(*seq) * 1800, &[0x5a; 1_200]);
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
fn a_slow_subscriber_is_held_to_its_budget_and_keeps_its_audio() {
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
    assert_eq!(sim.dropped(DropReason::OverBudget), 0, "plenty of room");

    // Bob's downlink falls to 100 kbit/s: his budget is 400 kbit/s.
    sim.send_remb(bob, 100_000.0);
    sim.advance(Duration::from_millis(600));
    let before = |sim: &Sim| {
        (
            count(sim, bob, RtpCodecKind::Video),
            count(sim, bob, RtpCodecKind::Audio),
            count(sim, carol, RtpCodecKind::Video),
            count(sim, carol, RtpCodecKind::Audio),
        )
    };
    let (bob_video, bob_audio, carol_video, carol_audio) = before(&sim);
    let keyframes = sim.clients[alice].keyframes_sent;
    send(&mut sim, alice, &mut seq, Duration::from_secs(4));
    sim.advance(Duration::from_millis(500));
    let (bob_video2, bob_audio2, carol_video2, carol_audio2) = before(&sim);

    // Carol got every packet of the 4 s; Bob got all the audio and about
    // what 400 kbit/s carries of the video.
    assert_eq!(carol_video2 - carol_video, 400, "Carol's video");
    assert_eq!(carol_audio2 - carol_audio, 200, "Carol's audio");
    assert_eq!(bob_audio2 - bob_audio, 200, "no audio of Bob's dropped");
    let bob_got = bob_video2 - bob_video;
    assert!(
        (100..300).contains(&bob_got),
        "Bob's video is held to his budget: {bob_got} of 400"
    );
    let dropped = sim.dropped(DropReason::OverBudget);
    // What Bob did not get was dropped and counted, about once (his NACKs
    // go unanswered while he is over budget; the count of what he got
    // includes a few resends from before).
    assert!(
        (380..=460).contains(&(dropped as usize + bob_got)),
        "{dropped} dropped, {bob_got} received"
    );
    assert!(
        sim.clients[alice].keyframes_sent > keyframes,
        "a keyframe was asked for after the drops"
    );
}
