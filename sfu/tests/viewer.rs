//! Viewers (WHEP): a client that offers one recvonly audio and one recvonly
//! video section, never renegotiates, and receives the active speaker or
//! a chosen participant. Its sources switch at a keyframe of the new one,
//! on the same SSRC with continuous sequence numbers.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Sim, PREFIX};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use sfu::core::{PeerId, Signal};

/// A client with one recvonly audio and one recvonly video section.
fn add_viewer(sim: &mut Sim, name: &str) -> usize {
    let v = sim.add_client(name, false);
    let recvonly = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Recvonly,
        streams: vec![],
        send_encodings: vec![],
    };
    sim.clients[v]
        .pc
        .add_transceiver_from_kind(RtpCodecKind::Video, Some(recvonly))
        .unwrap();
    v
}

/// Joins a viewer watching `choice` (or the active speaker).
fn join_viewer(sim: &mut Sim, v: usize, room: &str, choice: Option<&str>) -> PeerId {
    let name = sim.clients[v].name.clone();
    let joined = sim.core.join(sim.now, room, &name).unwrap();
    sim.core
        .make_viewer(joined.peer_id, choice.map(str::to_owned))
        .unwrap();
    let client = &mut sim.clients[v];
    client.peer_id = Some(joined.peer_id);
    let offer = client.pc.create_offer(None).unwrap();
    client
        .pc
        .set_local_description(sim.now, offer.clone())
        .unwrap();
    sim.core
        .handle_offer(sim.now, joined.peer_id, offer.sdp)
        .unwrap();
    sim.pump();
    joined.peer_id
}

/// 20 ms of media from each of `talkers`: audio at its level, and one
/// video frame whose payload names the publisher (`marker`).
fn tick(sim: &mut Sim, seq: &mut u16, talkers: &[(usize, u8, u8)]) {
    for &(client, level, marker) in talkers {
        sim.send_audio(client, *seq, level);
        sim.send_video(client, *seq, u32::from(*seq) * 1800, &[marker]);
    }
    *seq = seq.wrapping_add(1);
    sim.advance(Duration::from_millis(20));
}

/// The publisher marker of each video packet the viewer got, in order.
fn video_markers(sim: &Sim, v: usize) -> Vec<u8> {
    sim.clients[v]
        .received
        .iter()
        .filter(|r| r.kind == RtpCodecKind::Video)
        .filter_map(|r| r.payload.get(PREFIX).copied())
        .collect()
}

fn no_offers(sim: &Sim, v: usize) -> bool {
    !sim.clients[v]
        .signals
        .iter()
        .any(|s| matches!(s, Signal::Offer { .. }))
}

#[test]
fn a_viewer_follows_the_active_speaker_without_renegotiation() {
    let mut sim = Sim::new();
    let a = sim.add_client("alice", true);
    let b = sim.add_client("bob", true);
    sim.join(a, "room");
    sim.join(b, "room");
    let v = add_viewer(&mut sim, "player");
    let viewer = join_viewer(&mut sim, v, "room", None);
    sim.connect_all();
    let mut seq = 1u16;

    // Alice talks: the viewer gets her video and audio.
    for _ in 0..100 {
        tick(&mut sim, &mut seq, &[(a, 25, b'A'), (b, 110, b'B')]);
    }
    let markers = video_markers(&sim, v);
    assert!(
        markers.iter().filter(|m| **m == b'A').count() > 20,
        "{markers:?}"
    );
    assert!(!markers.contains(&b'B'), "only the speaker");
    let audio = sim.clients[v]
        .received
        .iter()
        .filter(|r| r.kind == RtpCodecKind::Audio)
        .count();
    assert!(audio > 20, "audio {audio}");

    // Bob takes over: the viewer switches to him, at his keyframe, on the
    // same SSRC with continuous sequence numbers.
    let before = sim.clients[v].received.len();
    let keyframes_before = sim.clients[b].keyframes_sent;
    for _ in 0..150 {
        tick(&mut sim, &mut seq, &[(a, 110, b'A'), (b, 20, b'B')]);
    }
    let markers = video_markers(&sim, v);
    let first_b = markers
        .iter()
        .position(|m| *m == b'B')
        .expect("Bob's video arrives");
    assert!(
        markers[first_b..].iter().all(|m| *m == b'B'),
        "no going back"
    );
    assert!(
        sim.clients[b].keyframes_sent > keyframes_before,
        "a keyframe was asked of the new source"
    );
    let video: Vec<_> = sim.clients[v].received[before..]
        .iter()
        .filter(|r| r.kind == RtpCodecKind::Video)
        .collect();
    let ssrcs: std::collections::HashSet<u32> = sim.clients[v]
        .received
        .iter()
        .filter(|r| r.kind == RtpCodecKind::Video)
        .map(|r| r.header.ssrc)
        .collect();
    assert_eq!(
        ssrcs.len(),
        1,
        "one outgoing video stream across the switch"
    );
    let first_of_b = video
        .iter()
        .find(|r| r.payload.get(PREFIX) == Some(&b'B'))
        .unwrap();
    assert_eq!(
        &first_of_b.payload[..PREFIX],
        &common::codec_prefix("video/VP8", true),
        "the new source starts with a keyframe"
    );
    for pair in video.windows(2) {
        assert_eq!(
            pair[1].header.sequence_number,
            pair[0].header.sequence_number.wrapping_add(1),
            "continuous sequence numbers"
        );
    }
    assert!(no_offers(&sim, v), "a viewer is never sent an offer");
    let stats = sim.core.participant(sim.now, viewer).unwrap();
    assert_eq!(stats.subscriptions, 2);
}

#[test]
fn a_chosen_participant_is_followed_out_and_back() {
    let mut sim = Sim::new();
    let a = sim.add_client("alice", true);
    let b = sim.add_client("bob", true);
    sim.join(a, "room");
    sim.join(b, "room");
    let v = add_viewer(&mut sim, "fan");
    let viewer = join_viewer(&mut sim, v, "room", Some("bob"));
    sim.connect_all();
    let mut seq = 1u16;

    // Alice is louder, but the fan chose Bob.
    for _ in 0..60 {
        tick(&mut sim, &mut seq, &[(a, 20, b'A'), (b, 100, b'B')]);
    }
    let markers = video_markers(&sim, v);
    assert!(
        markers.contains(&b'B') && !markers.contains(&b'A'),
        "{markers:?}"
    );

    // Bob leaves: nothing is forwarded, the slots stay.
    sim.leave(b);
    let received = sim.clients[v].received.len();
    for _ in 0..30 {
        tick(&mut sim, &mut seq, &[(a, 20, b'A')]);
    }
    assert_eq!(
        sim.clients[v].received.len(),
        received,
        "nothing while Bob is away"
    );
    assert_eq!(
        sim.core.participant(sim.now, viewer).unwrap().subscriptions,
        0
    );

    // Bob comes back on a new connection: the fan gets him again.
    let b2 = sim.add_client("bob", true);
    sim.join(b2, "room");
    sim.connect_all();
    for _ in 0..60 {
        tick(&mut sim, &mut seq, &[(a, 20, b'A'), (b2, 100, b'B')]);
    }
    let markers = video_markers(&sim, v);
    assert!(!markers.contains(&b'A'), "never Alice");
    assert!(
        markers.iter().filter(|m| **m == b'B').count() > 60,
        "Bob again: {markers:?}"
    );
    assert!(no_offers(&sim, v));
    assert_eq!(
        sim.core.participant(sim.now, viewer).unwrap().subscriptions,
        2
    );

    // The viewer leaves: its Subscriptions go with it.
    let subs = sim.core.snapshot().subscriptions;
    sim.leave(v);
    assert_eq!(sim.core.snapshot().subscriptions, subs - 2);
}

#[test]
fn a_viewer_gets_the_simulcast_layer_its_estimate_allows() {
    let mut sim = Sim::new();
    let a = sim.add_simulcast_client("alice");
    // No TWCC for the viewer: its REMB sets its estimate.
    sim.twcc = false;
    let v = add_viewer(&mut sim, "player");
    sim.join(a, "room");
    join_viewer(&mut sim, v, "room", None);
    sim.connect_all();
    let sizes = [("q", 190), ("h", 625), ("f", 1_200)];
    let (mut seq, mut ts) = (1u16, 0u32);
    let mut send = |sim: &mut Sim, d: Duration, keyframe: bool| {
        for step in 0..d.as_millis() / 10 {
            for (rid, size) in sizes {
                sim.send_layer(a, rid, seq, ts, size, keyframe && step == 0);
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(900);
            sim.advance(Duration::from_millis(10));
        }
    };
    let last_video_size = |sim: &Sim| {
        sim.clients[v]
            .received
            .iter()
            .rev()
            .find(|r| r.kind == RtpCodecKind::Video)
            .map_or(0, |r| r.payload.len())
    };
    send(&mut sim, Duration::from_millis(200), true);
    sim.send_remb(v, 5_000_000.0);
    send(&mut sim, Duration::from_secs(8), false);
    assert_eq!(last_video_size(&sim), 1_200, "plenty: f");
    sim.send_remb(v, 300_000.0);
    send(&mut sim, Duration::from_millis(2_500), false);
    assert_eq!(last_video_size(&sim), 190, "a low estimate: q");
    assert!(no_offers(&sim, v));
}
