//! The core forwarding real `rtc` peers' media, on a virtual clock.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Sim;
use sfu::core::{CoreConfig, DropReason, Signal};

/// Sends `count` video packets from client `i`, starting at `seq`, one
/// 3000-tick frame each, with the packet index in the payload.
fn send_run(sim: &mut Sim, i: usize, seq: u16, count: u16, first_index: u32) {
    for k in 0..count {
        let index = first_index + u32::from(k);
        let mut payload = vec![0u8; 100];
        payload[..4].copy_from_slice(&index.to_be_bytes());
        sim.send_video(i, seq.wrapping_add(k), 90_000 + index * 3000, &payload);
        sim.advance(Duration::from_millis(5));
    }
}

fn index_of(r: &common::Received) -> u32 {
    let p = &r.payload[common::PREFIX..];
    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
}

/// Asserts that received packets are in order, with contiguous sequence
/// numbers (mod 2^16) and timestamps that keep the publisher's spacing.
fn assert_continuous(received: &[common::Received]) {
    for pair in received.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(
            b.header.sequence_number,
            a.header.sequence_number.wrapping_add(1),
            "sequence gap"
        );
        let frames = index_of(b) - index_of(a);
        assert_eq!(
            b.header.timestamp.wrapping_sub(a.header.timestamp),
            frames * 3000,
            "timestamp jump"
        );
        assert_eq!(a.header.ssrc, b.header.ssrc);
    }
}

#[test]
fn forwards_to_every_subscriber_with_its_own_ssrc() {
    let mut sim = Sim::new();
    let publisher = sim.add_client("alice", true);
    let subscribers: Vec<usize> = (0..4)
        .map(|i| sim.add_client(&format!("sub{i}"), false))
        .collect();
    let alice = sim.join(publisher, "room");
    for &s in &subscribers {
        sim.join(s, "room");
    }
    sim.connect_all();
    // Tracks are published when their first packet arrives.
    send_run(&mut sim, publisher, 100, 1, 0);
    sim.advance(Duration::from_millis(200));
    send_run(&mut sim, publisher, 101, 200, 1);

    let mut ssrcs = HashSet::new();
    for &s in &subscribers {
        let got = sim.video_from(s, alice);
        assert!(
            got.len() >= 200,
            "subscriber {s} got {} of 201 packets",
            got.len()
        );
        assert_continuous(&got);
        assert_eq!(index_of(got.last().unwrap()), 200);
        assert_ne!(
            got[0].header.ssrc, 1001,
            "the publisher's SSRC must be rewritten"
        );
        ssrcs.insert(got[0].header.ssrc);
    }
    assert_eq!(
        ssrcs.len(),
        subscribers.len(),
        "each subscription has its own SSRC"
    );
    let snap = sim.core.snapshot();
    assert_eq!(snap.peers, 5);
    assert_eq!(snap.rooms, 1);
    assert_eq!(snap.video_tracks, 1);
    assert_eq!(snap.subscriptions, 4);
    assert!(snap.counters.rtp_out.video_packets >= 4 * 200);
    assert_eq!(
        snap.histograms.join_time.count, 4,
        "one join time per subscriber"
    );
    assert_eq!(
        snap.counters.ice_connections,
        [5, 0, 0],
        "five UDP connections"
    );
}

#[test]
fn operator_figures_come_from_real_rtcp() {
    use sfu::core::rtcp_count::RtcpKind;
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    let bob = sim.peer(sub);
    // Six seconds of 50 packets per second: receiver and sender reports flow.
    send_run(&mut sim, publisher, 1, 1, 0);
    sim.advance(Duration::from_millis(200));
    for k in 0..30 {
        send_run(&mut sim, publisher, 2 + k * 10, 10, 1 + u32::from(k) * 10);
        sim.advance(Duration::from_millis(150));
    }
    let snap = sim.core.snapshot();
    let idx = |k: RtcpKind| RtcpKind::ALL.iter().position(|x| *x == k).unwrap();
    assert!(
        snap.rtcp.rtcp_in[idx(RtcpKind::Rr)] > 0,
        "receiver reports counted: {:?}",
        snap.rtcp
    );
    assert!(
        snap.rtcp.rtcp_out[idx(RtcpKind::Sr)] > 0,
        "sender reports counted: {:?}",
        snap.rtcp
    );
    assert!(
        snap.rtcp.rtcp_out[idx(RtcpKind::Pli)] > 0,
        "our PLI counted: {:?}",
        snap.rtcp
    );
    assert!(snap.rtcp.rtp_out_wire >= snap.counters.rtp_out.video_packets);
    assert_eq!(snap.retransmissions(), 0, "no loss, no retransmission");
    assert!(
        snap.histograms.subscriber_loss.count > 0,
        "loss sampled from receiver reports"
    );

    let now = sim.now;
    let bob_stats = sim.core.participant(now, bob).unwrap();
    assert!(bob_stats.connected);
    assert!(
        bob_stats.quality.bitrate_out > 0.0,
        "{:?}",
        bob_stats.quality
    );
    assert_eq!(bob_stats.quality.loss, Some(0.0));
    let estimate = bob_stats
        .quality
        .bandwidth_estimate
        .expect("a bandwidth estimate from Bob's TWCC feedback");
    assert!(estimate > 0.0, "{estimate}");
    assert!(snap.histograms.subscriber_bandwidth.count > 0);
    let alice_stats = sim.core.participant(now, alice).unwrap();
    assert!(
        alice_stats.quality.bitrate_in > 0.0,
        "{:?}",
        alice_stats.quality
    );
    assert_eq!(
        alice_stats.tracks.len(),
        1,
        "only video was sent, so only video is published"
    );
    let rooms = sim.core.rooms(now);
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].participants.len(), 2);

    sim.core.kick(now, bob).unwrap();
    sim.pump();
    assert!(sim.clients[sub]
        .signals
        .iter()
        .any(|s| matches!(s, Signal::Removed { .. })));
    assert_eq!(
        sim.core.snapshot().counters.leaves,
        [0, 0, 1, 0, 0],
        "one kick"
    );
    assert_eq!(sim.core.close_room(now, "room"), 1);
    assert_eq!(sim.core.snapshot().peers, 0);
}

#[test]
fn late_subscriber_gets_continuous_stream_and_a_keyframe_request() {
    let mut sim = Sim::new();
    let publisher = sim.add_client("alice", true);
    let early = sim.add_client("bob", false);
    let alice = sim.join(publisher, "room");
    sim.join(early, "room");
    sim.connect_all();
    send_run(&mut sim, publisher, 5000, 100, 0);
    let requests_before = sim.core.snapshot().counters.keyframe_requests_sent;

    // Carol joins mid-stream, long after the last keyframe request.
    sim.advance(Duration::from_secs(1));
    let late = sim.add_client("carol", false);
    sim.join(late, "room");
    sim.connect_all();
    send_run(&mut sim, publisher, 5100, 100, 100);

    let got = sim.video_from(late, alice);
    assert!(got.len() >= 95, "late subscriber got {} packets", got.len());
    assert!(
        index_of(&got[0]) >= 100,
        "nothing from before the join is replayed"
    );
    assert_continuous(&got);
    let requests_after = sim.core.snapshot().counters.keyframe_requests_sent;
    assert!(
        requests_after > requests_before,
        "a keyframe was requested for the late subscriber"
    );
    assert_continuous(&sim.video_from(early, alice));
}

#[test]
fn sequence_wraparound_is_seamless_end_to_end() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    send_run(&mut sim, publisher, 65_400, 1, 0);
    sim.advance(Duration::from_millis(200));
    send_run(&mut sim, publisher, 65_401, 300, 1);
    let got = sim.video_from(sub, alice);
    assert!(got.len() >= 300, "got {}", got.len());
    assert_continuous(&got);
    let drops = sim.core.snapshot().counters.dropped;
    let too_old = DropReason::ALL
        .iter()
        .position(|r| *r == DropReason::TooOld)
        .unwrap();
    assert_eq!(drops[too_old], 0);
}

#[test]
fn leaving_frees_tracks_subscriptions_and_routes() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    let bob = sim.peer(sub);
    send_run(&mut sim, publisher, 1, 20, 0);
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.core.snapshot().subscriptions, 1);

    sim.leave(publisher);
    let snap = sim.core.snapshot();
    assert_eq!(snap.peers, 1);
    assert_eq!(snap.video_tracks + snap.audio_tracks, 0);
    assert_eq!(snap.subscriptions, 0);
    assert_eq!(snap.counters.leaves, [1, 0, 0, 0, 0], "one normal leave");
    let signals = &sim.clients[sub].signals;
    assert!(signals.contains(&Signal::ParticipantLeft { peer_id: alice }));
    assert!(signals
        .iter()
        .any(|s| matches!(s, Signal::TrackUnpublished { peer_id, .. } if *peer_id == alice)));
    // Bob's connection was renegotiated to drop the senders.
    let offers = signals
        .iter()
        .filter(|s| matches!(s, Signal::Offer { .. }))
        .count();
    assert!(
        offers >= 2,
        "one offer to add the tracks, one to remove them; got {offers}"
    );

    // Datagrams from Alice's old address reach no one.
    let unrouted = sim.core.snapshot().counters.datagrams_unrouted;
    let alice_addr = sim.clients[publisher].addr;
    sim.core.handle_datagram(
        sim.now,
        alice_addr,
        bytes::BytesMut::from(&[0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1][..]),
    );
    assert_eq!(
        sim.core.snapshot().counters.datagrams_unrouted,
        unrouted + 1
    );

    sim.leave(sub);
    let snap = sim.core.snapshot();
    assert_eq!((snap.peers, snap.rooms), (0, 0));
    assert!(sim.core.room_peers("room").is_empty());
    let _ = bob;
}

#[test]
fn garbage_datagrams_are_counted_not_fatal() {
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    let stranger = "203.0.113.9:4000".parse().unwrap();
    for len in [0usize, 1, 12, 100, 1500] {
        sim.core.handle_datagram(
            sim.now,
            stranger,
            bytes::BytesMut::from(&vec![0x80u8; len][..]),
        );
    }
    // Garbage from a pinned address goes to `rtc`, which rejects it.
    let alice_addr = sim.clients[publisher].addr;
    for len in [1usize, 13, 200] {
        sim.core.handle_datagram(
            sim.now,
            alice_addr,
            bytes::BytesMut::from(&vec![0x90u8; len][..]),
        );
    }
    let c = sim.core.snapshot().counters;
    assert_eq!(c.datagrams_unrouted, 5);
    send_run(&mut sim, publisher, 1, 30, 0);
    sim.advance(Duration::from_millis(100));
    send_run(&mut sim, publisher, 31, 30, 30);
    assert!(sim.video_from(sub, alice).len() >= 30, "media still flows");
}

/// Every video codec `rtc` negotiates is forwarded, with the payload type
/// the subscriber's leg chose for that exact codec (profile included).
#[test]
fn forwards_h264_vp9_and_av1_with_the_subscribers_payload_type() {
    use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
    let codecs = [
        (
            "video/H264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        (
            "video/H264",
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        ),
        ("video/VP9", "profile-id=0"),
        ("video/AV1", "profile-id=0"),
    ];
    for (mime, fmtp) in codecs {
        let mut sim = Sim::new();
        let codec = RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: vec![],
        };
        let publisher = sim.add_client_with("alice", Some(codec));
        let sub = sim.add_client("bob", false);
        let alice = sim.join(publisher, "room");
        sim.join(sub, "room");
        sim.connect_all();
        send_run(&mut sim, publisher, 1, 1, 0);
        sim.advance(Duration::from_millis(200));
        send_run(&mut sim, publisher, 2, 50, 1);
        let got = sim.video_from(sub, alice);
        assert!(got.len() >= 50, "{mime} {fmtp}: got {}", got.len());
        assert_continuous(&got);
        // The payload type on Bob's leg must name the same codec and profile.
        let pt = got[0].header.payload_type;
        let c = &mut sim.clients[sub];
        let receiver = c.receivers.iter().map(|(r, _)| *r).find(|r| {
            c.pc.rtp_receiver(*r).is_some_and(|r| {
                r.track().kind() == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video
            })
        });
        let mut receiver = c.pc.rtp_receiver(receiver.unwrap()).unwrap();
        let negotiated = receiver
            .get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|p| p.payload_type == pt)
            .map(|p| {
                (
                    p.rtp_codec.mime_type.clone(),
                    p.rtp_codec.sdp_fmtp_line.clone(),
                )
            })
            .unwrap();
        assert!(
            negotiated.0.eq_ignore_ascii_case(mime),
            "{mime}: got {negotiated:?}"
        );
        assert_eq!(
            negotiated.1, fmtp,
            "{mime}: payload type {pt} names {negotiated:?}"
        );
    }
}

#[test]
fn subscriber_losses_are_repaired_from_the_track_cache() {
    use sfu::core::rtcp_count::RtcpKind;
    let (mut sim, publisher, sub) = Sim::pair();
    let alice = sim.peer(publisher);
    send_run(&mut sim, publisher, 1, 1, 0);
    sim.advance(Duration::from_millis(200));
    send_run(&mut sim, publisher, 2, 20, 1);

    // The next five media datagrams to Bob are lost on his downlink.
    sim.downlink_loss = Some((sub, 5));
    send_run(&mut sim, publisher, 22, 60, 21);
    sim.advance(Duration::from_millis(500));

    let got = sim.video_from(sub, alice);
    let mut indexes: Vec<u32> = got.iter().map(index_of).collect();
    indexes.sort();
    indexes.dedup();
    assert!(
        indexes.len() >= 80,
        "Bob has {} distinct packets",
        indexes.len()
    );
    for k in 1..=80 {
        assert!(indexes.contains(&k), "packet {k} was never repaired");
    }
    let snap = sim.core.snapshot();
    let nack = RtcpKind::ALL
        .iter()
        .position(|k| *k == RtcpKind::Nack)
        .unwrap();
    assert!(snap.rtcp.rtcp_in[nack] > 0, "Bob's NACKs arrived");
    assert!(
        snap.retransmissions() >= 5,
        "retransmissions {}",
        snap.retransmissions()
    );
    assert_eq!(
        snap.rtcp.rtcp_out[nack], 0,
        "no NACK went to Alice: her uplink lost nothing"
    );
}

#[test]
fn a_subscriber_without_twcc_is_estimated_from_its_remb() {
    let mut sim = Sim::new();
    let alice = sim.add_client("alice", true);
    sim.twcc = false;
    let bob = sim.add_client("bob", false);
    sim.join(alice, "room");
    let bob_id = sim.join(bob, "room");
    sim.connect_all();
    sim.send_frames(alice, 1, 50);
    sim.send_remb(bob, 250_000.0);
    sim.advance(Duration::from_secs(3));
    let stats = sim.core.participant(sim.now, bob_id).unwrap();
    assert_eq!(
        stats.quality.bandwidth_estimate,
        Some(250_000.0),
        "REMB, not the idle congestion controller's starting value"
    );
    sim.send_remb(bob, 1_500_000.0);
    sim.advance(Duration::from_secs(3));
    let stats = sim.core.participant(sim.now, bob_id).unwrap();
    assert_eq!(stats.quality.bandwidth_estimate, Some(1_500_000.0));
}

#[test]
fn a_fanout_in_steps_reaches_every_subscriber_a_step_at_a_time() {
    let mut config = CoreConfig::new(common::SFU_ADDR.parse().unwrap());
    config.fanout_step = Some(3);
    let mut sim = Sim::connected(config, 10);
    let alice = sim.peer(0);
    // Published at the first packet; the subscribers' keyframe requests
    // make the next one a keyframe.
    send_run(&mut sim, 0, 100, 1, 0);
    sim.advance(Duration::from_millis(200));
    send_run(&mut sim, 0, 101, 3, 1);

    // One packet by hand: each step encrypts for at most 3 subscribers.
    let datagram = sim.video_datagrams(0, 104, 1).remove(0);
    let source = sim.clients[0].addr;
    sim.core.handle_datagram(sim.now, source, datagram);
    let mut per_step = Vec::new();
    loop {
        let mut media = 0;
        while let Some(t) = sim.core.poll_transmit() {
            if t.media {
                assert!(
                    t.received_at.is_some(),
                    "every step's copies carry the arrival"
                );
                media += 1;
            }
        }
        per_step.push(media);
        if !sim.core.fanout_unfinished() {
            break;
        }
        sim.core.continue_fanout(sim.now);
    }
    assert!(per_step.len() >= 4, "steps: {per_step:?}");
    assert!(per_step.iter().all(|&n| n <= 3), "steps: {per_step:?}");
    assert_eq!(per_step.iter().sum::<usize>(), 10, "steps: {per_step:?}");
    assert!(!sim.core.fanout_unfinished());

    // A datagram arriving while a fan-out is unfinished finishes it first.
    let first = sim.video_datagrams(0, 105, 1).remove(0);
    let second = sim.video_datagrams(0, 106, 1).remove(0);
    sim.core.handle_datagram(sim.now, source, first);
    assert!(sim.core.fanout_unfinished());
    sim.core.handle_datagram(sim.now, source, second);
    let mut media = 0;
    while sim.core.continue_fanout(sim.now) {}
    while let Some(t) = sim.core.poll_transmit() {
        media += usize::from(t.media);
    }
    assert_eq!(media, 20, "both packets reach all 10 subscribers");

    // Through the simulation (which takes every step), the rest arrives
    // whole and in order.
    send_run(&mut sim, 0, 107, 50, 7);
    for s in 1..=10 {
        let got = sim.video_from(s, alice);
        // (The hand-made packets, repaired by NACK meanwhile, are left out.)
        let after: Vec<_> = got
            .into_iter()
            .filter(|r| (7..57).contains(&index_of(r)))
            .collect();
        assert_eq!(after.len(), 50, "subscriber {s}");
        assert_continuous(&after);
    }
}
