//! Padding-only packets (a browser's bandwidth probes) on a virtual clock:
//! they take no sequence number on a subscriber's leg, a probe lost on the
//! publisher's leg leaves the subscriber no hole, and a lost video packet
//! keeps its number for the retransmission, even behind a burst of probes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;
use sfu::core::{DropReason, PeerId};

/// A one-packet VP8 frame with a 15-bit picture id (X, S, partition 0; I;
/// M), a keyframe or a delta frame.
fn vp8_frame(picture: u16, keyframe: bool) -> Vec<u8> {
    let mut p = vec![
        0x90,
        0x80,
        0x80 | (picture >> 8) as u8,
        picture as u8,
        if keyframe { 0x00 } else { 0x01 },
    ];
    p.extend_from_slice(&[0x5a; 100]);
    p
}

/// What client `sub` got of `publisher`'s video from picture 2 on (its
/// stream starts at that keyframe).
fn from_picture_2(sim: &Sim, sub: usize, publisher: PeerId) -> Vec<common::Received> {
    let got = sim.video_from(sub, publisher);
    let first = got
        .iter()
        .position(|r| r.payload.get(3) == Some(&2))
        .unwrap();
    got[first..].to_vec()
}

#[test]
fn padding_is_dropped_and_lost_probes_leave_no_hole() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    let step = Duration::from_millis(10);
    // A first keyframe makes Alice's track known, and Bob subscribes.
    sim.send_raw_video(publisher, 1, 90_000, true, &vp8_frame(1, true));
    sim.advance(Duration::from_millis(200));
    // What Alice sends next: (seq, picture, keyframe); None is padding.
    // Missing numbers are lost on her uplink: 7 (a probe between pictures
    // 3 and 4) and 10 (picture 5's only packet).
    let sent: [(u16, Option<(u16, bool)>); 10] = [
        (2, Some((2, true))),
        (3, None),
        (4, None),
        (5, Some((3, false))),
        (6, None),
        (8, None),
        (9, Some((4, false))),
        (11, Some((6, false))),
        (12, Some((7, false))),
        (13, None),
    ];
    for (seq, frame) in sent {
        let ts = 90_000 + u32::from(seq) * 3000;
        match frame {
            Some((picture, keyframe)) => {
                sim.send_raw_video(publisher, seq, ts, true, &vp8_frame(picture, keyframe))
            }
            None => sim.send_raw_video(publisher, seq, ts, false, &[]),
        }
        sim.advance(step);
    }
    let bob_got = |sim: &Sim| from_picture_2(sim, sub, alice);
    let got = bob_got(&sim);
    let seqs: Vec<u16> = got.iter().map(|r| r.header.sequence_number).collect();
    assert!(
        got.iter().all(|r| !r.payload.is_empty()),
        "no padding reached Bob"
    );
    assert_eq!(seqs.len(), 5, "pictures 2, 3, 4, 6, 7: {seqs:?}");
    let base = seqs[0];
    // Pictures 2, 3, 4 in a row (the lost probe left no hole), then a hole
    // for picture 5 (seq 10), then 6 and 7.
    let expected: Vec<u16> = [0u16, 1, 2, 4, 5]
        .iter()
        .map(|k| base.wrapping_add(*k))
        .collect();
    assert_eq!(seqs, expected);
    assert_eq!(sim.dropped(DropReason::Padding), 5, "five probes arrived");

    // Alice's retransmission of seq 10 fills Bob's hole.
    let ts = 90_000 + 10 * 3000;
    sim.send_raw_video(publisher, 10, ts, true, &vp8_frame(5, false));
    sim.advance(step);
    let got = bob_got(&sim);
    let last = got.last().unwrap();
    assert_eq!(last.header.sequence_number, base.wrapping_add(3));
    assert_eq!(last.payload[3], 5, "picture 5");
}

#[test]
fn a_retransmission_behind_a_burst_of_probes_is_accepted() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    // Probes go out in bursts of 20 per 5 ms step of the virtual clock (its
    // smallest): the retransmission comes about 100 ms after the loss.
    let send = |sim: &mut Sim, seq: u16, picture: Option<u16>| {
        let ts = 90_000 + u32::from(seq) * 3000;
        match picture {
            Some(p) => sim.send_raw_video(publisher, seq, ts, true, &vp8_frame(p, p <= 2)),
            None => sim.send_raw_video(publisher, seq, ts, false, &[]),
        }
        if seq.is_multiple_of(20) || picture.is_some() {
            sim.advance(Duration::from_millis(5));
        }
    };
    // A first keyframe makes Alice's track known and Bob subscribes; his
    // stream starts at the next keyframe, picture 2.
    send(&mut sim, 1, Some(1));
    sim.advance(Duration::from_millis(200));
    send(&mut sim, 2, Some(2));
    // Seq 3 (picture 3) is lost; picture 4, then 200 probes, picture 5.
    send(&mut sim, 4, Some(4));
    for seq in 5..205 {
        send(&mut sim, seq, None);
    }
    send(&mut sim, 205, Some(5));
    // The retransmission of seq 3 comes 202 numbers behind the newest:
    // beyond `rtc`'s default SRTP replay window of 64, which drops it
    // without a word, and within ours (`peer_config::SRTP_REPLAY_WINDOW`).
    send(&mut sim, 3, Some(3));
    let got = sim.video_from(sub, alice);
    let pictures: Vec<u8> = got
        .iter()
        .filter_map(|r| r.payload.get(3).copied())
        .collect();
    assert_eq!(pictures, [2, 4, 5, 3], "picture 3 in its reserved number");
    let seq_of = |p: u8| {
        got.iter()
            .find(|r| r.payload.get(3) == Some(&p))
            .map(|r| r.header.sequence_number)
            .unwrap()
    };
    assert_eq!(seq_of(3), seq_of(2).wrapping_add(1));
    assert_eq!(seq_of(4), seq_of(2).wrapping_add(2));
}
