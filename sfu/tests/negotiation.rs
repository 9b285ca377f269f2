//! Renegotiation and keyframe requests against real `rtc` peers.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use sfu::core::Signal;

#[test]
fn subscriber_keyframe_requests_are_coalesced_per_track() {
    let mut sim = Sim::new();
    let publisher = sim.add_client("alice", true);
    let subs: Vec<usize> = (0..5)
        .map(|i| sim.add_client(&format!("s{i}"), false))
        .collect();
    sim.join(publisher, "room");
    for &s in &subs {
        sim.join(s, "room");
    }
    sim.connect_all();
    sim.send_frames(publisher, 1, 10);
    sim.advance(Duration::from_secs(1));
    let before = sim.core.snapshot().counters;

    // Every subscriber asks for a keyframe at the same moment, twice.
    for _ in 0..2 {
        for &s in &subs {
            sim.send_pli(s);
        }
    }
    let after = sim.core.snapshot().counters;
    assert!(after.keyframe_requests_received - before.keyframe_requests_received >= 10);
    assert_eq!(
        after.keyframe_requests_sent - before.keyframe_requests_sent,
        1,
        "one PLI upstream"
    );

    // After the throttle interval, the next request goes through.
    sim.advance(Duration::from_millis(600));
    sim.send_pli(subs[0]);
    assert_eq!(
        sim.core.snapshot().counters.keyframe_requests_sent - before.keyframe_requests_sent,
        2
    );
}

#[test]
fn client_offer_during_server_offer_is_answered_and_server_reoffers() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    let bob = sim.peer(sub);

    // Bob holds the server's offer (tracks being added) and makes his own.
    sim.clients[sub].auto_answer = false;
    sim.send_frames(publisher, 1, 3);
    assert_eq!(
        sim.clients[sub].held_offers.len(),
        1,
        "the server offered Alice's tracks"
    );
    let now = sim.now;
    let c = &mut sim.clients[sub];
    c.pc.add_transceiver_from_kind(RtpCodecKind::Video, None)
        .unwrap();
    let offer = c.pc.create_offer(None).unwrap();
    c.pc.set_local_description(now, offer.clone()).unwrap();
    c.auto_answer = true;
    c.held_offers.clear();
    sim.core.handle_offer(now, bob, offer.sdp).unwrap();
    sim.pump();

    let signals = &sim.clients[sub].signals;
    let answer_at = signals
        .iter()
        .rposition(|s| matches!(s, Signal::Answer { .. }))
        .unwrap();
    let reoffer_at = signals
        .iter()
        .rposition(|s| matches!(s, Signal::Offer { .. }))
        .unwrap();
    assert!(
        reoffer_at > answer_at,
        "the server re-offers after answering"
    );

    sim.send_frames(publisher, 4, 50);
    let got = sim.video_from(sub, alice);
    assert!(
        got.len() >= 45,
        "media flows after the glare; got {}",
        got.len()
    );
}

#[test]
fn answer_without_offer_and_bad_sdp_are_refused_without_harm() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    let bob = sim.peer(sub);
    let now = sim.now;
    assert!(sim.core.handle_answer(now, bob, "v=0".into()).is_err());
    assert!(sim.core.handle_offer(now, bob, "garbage".into()).is_err());
    let bogus = RTCSessionDescription::offer("v=0\r\n".into());
    if let Ok(bogus) = bogus {
        assert!(sim.core.handle_offer(now, bob, bogus.sdp).is_err());
    }
    sim.send_frames(publisher, 1, 40);
    assert!(sim.video_from(sub, alice).len() >= 35);
}

#[test]
fn muting_stops_forwarding_and_tells_the_room() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    let bob = sim.peer(sub);
    sim.send_frames(publisher, 1, 20);
    let before = sim.video_from(sub, alice).len();
    assert!(before >= 15);

    // Alice mutes her camera (by its track id in her SDP).
    let now = sim.now;
    let track = sim
        .core
        .set_track_muted(now, alice, "alice-video", true)
        .unwrap();
    assert!(track.is_some());
    sim.pump();
    assert!(sim.clients[sub].signals.iter().any(
        |s| matches!(s, Signal::TrackMuted { peer_id, muted: true, .. } if *peer_id == alice)
    ));
    sim.send_frames(publisher, 21, 20);
    assert_eq!(
        sim.video_from(sub, alice).len(),
        before,
        "nothing forwarded while muted"
    );

    let requests = sim.core.snapshot().counters.keyframe_requests_sent;
    sim.advance(Duration::from_millis(600));
    let now = sim.now;
    sim.core
        .set_track_muted(now, alice, "alice-video", false)
        .unwrap();
    sim.pump();
    assert!(
        sim.core.snapshot().counters.keyframe_requests_sent > requests,
        "unmute asks for a keyframe"
    );
    sim.send_frames(publisher, 41, 20);
    assert!(
        sim.video_from(sub, alice).len() >= before + 15,
        "forwarding resumes"
    );

    // A message goes to everyone else in the room.
    assert_eq!(sim.core.broadcast(bob, "hello".into()).unwrap(), 1);
    sim.pump();
    assert!(sim.clients[publisher].signals.iter().any(
        |s| matches!(s, Signal::Message { from, payload, .. } if *from == bob && payload == "hello")
    ));
}

#[test]
fn a_track_the_publisher_stops_sending_is_unpublished() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    sim.send_frames(publisher, 1, 10);
    assert_eq!(sim.core.snapshot().video_tracks, 1);

    // Alice removes her camera and renegotiates.
    let now = sim.now;
    let c = &mut sim.clients[publisher];
    let (sender, _) = c.video_sender.take().unwrap();
    c.pc.remove_track(sender).unwrap();
    let offer = c.pc.create_offer(None).unwrap();
    c.pc.set_local_description(now, offer.clone()).unwrap();
    sim.core.handle_offer(now, alice, offer.sdp).unwrap();
    sim.pump();

    assert_eq!(sim.core.snapshot().video_tracks, 0);
    assert_eq!(
        sim.core.snapshot().subscriptions,
        0,
        "Bob's video subscription is gone"
    );
    assert!(sim.clients[sub]
        .signals
        .iter()
        .any(|s| matches!(s, Signal::TrackUnpublished { peer_id, .. } if *peer_id == alice)));
}

/// Turns on a microphone for receive-only client `i`: on its offered
/// receive-only audio m-line (`add_track` takes it over, as a browser's
/// `addTrack` does) or on an m-line of its own; re-offers, and sends 50
/// audio packets.
fn microphone_on(sim: &mut Sim, i: usize, own_m_line: bool) {
    use rtc::media_stream::MediaStreamTrack;
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
    use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

    let now = sim.now;
    let id = sim.peer(i);
    let ssrc = 4242 + i as u32;
    let c = &mut sim.clients[i];
    let track = MediaStreamTrack::new(
        format!("{i}-stream"),
        format!("{i}-mic"),
        format!("{i}-mic"),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: common::codec(RtpCodecKind::Audio),
            ..Default::default()
        }],
    );
    let sender = if own_m_line {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendrecv,
            streams: vec![],
            send_encodings: vec![],
        };
        let transceiver = c.pc.add_transceiver_from_track(track, Some(init)).unwrap();
        c.pc.rtp_transceiver(transceiver).unwrap().sender().unwrap()
    } else {
        c.pc.add_track(track).unwrap()
    };
    c.audio_sender = Some((sender, ssrc));
    let offer = c.pc.create_offer(None).unwrap();
    c.pc.set_local_description(now, offer.clone()).unwrap();
    sim.core.handle_offer(now, id, offer.sdp).unwrap();
    sim.pump();
    for seq in 1..50 {
        sim.send_audio(i, seq, 30);
        sim.advance(Duration::from_millis(20));
    }
}

/// webrtc-rs note 24: an m-line a client offered receive-only, which its
/// `add_track` later takes over to send, never becomes a Track; a track on
/// an m-line of its own does. (Browsers' `addTrack` takes over such an
/// m-line too; the web client's screen share and the cluster's ghosts add
/// m-lines of their own.)
#[test]
fn a_receive_only_m_line_taken_over_to_send_is_no_track() {
    let (mut sim, _alice, bob) = Sim::pair();
    let carol = sim.add_client("carol", false);
    sim.join(carol, "room");
    sim.connect_all();
    let before = sim.core.snapshot().audio_tracks;
    microphone_on(&mut sim, carol, true);
    assert_eq!(
        sim.core.snapshot().audio_tracks,
        before + 1,
        "a microphone on an m-line of its own is a Track"
    );
    microphone_on(&mut sim, bob, false);
    assert_eq!(
        sim.core.snapshot().audio_tracks,
        before + 1,
        "the taken-over m-line's audio is no Track (if this fails, rtc now \
         raises it: note 24 and its workarounds can go)"
    );
}
