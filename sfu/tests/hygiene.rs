//! Media-plane hygiene on the virtual clock: what the core does with
//! datagrams from strangers, forged ICE checks, replayed SRTP, RTP before
//! DTLS, RTCP about other peers' streams, and a peer that floods.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::Sim;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::shared::TransportProtocol;
use sfu::core::rate_limit::InboundLimits;
use sfu::core::{CoreConfig, InboundDrop, Signal};
use sfu::fuzzing;

fn inbound(sim: &Sim, reason: InboundDrop) -> u64 {
    sim.core.snapshot().counters.inbound_dropped[reason as usize]
}

/// `a=<name>:<value>` of an SDP.
fn sdp_attr(sdp: &str, name: &str) -> String {
    let prefix = format!("a={name}:");
    sdp.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .expect("the attribute is present")
        .trim()
        .to_owned()
}

/// The SFU's ICE ufrag and password for client `i`, and the client's ufrag.
fn credentials(sim: &Sim, i: usize) -> (String, String, String) {
    let c = &sim.clients[i];
    let answer = c
        .signals
        .iter()
        .find_map(|s| match s {
            Signal::Answer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .expect("the client got an answer");
    let local = c.pc.local_description().expect("the client offered").sdp;
    (
        sdp_attr(&answer, "ice-ufrag"),
        sdp_attr(&answer, "ice-pwd"),
        sdp_attr(&local, "ice-ufrag"),
    )
}

#[test]
fn strangers_are_dropped_cheaply_and_counted_by_reason() {
    let (mut sim, alice, bob) = Sim::pair();
    sim.send_frames(alice, 1, 5);
    let before = sim.video_from(bob, sim.peer(alice)).len();
    let stranger: SocketAddr = "203.0.113.50:4000".parse().unwrap();
    let (address, ufrag) = (
        inbound(&sim, InboundDrop::UnknownAddress),
        inbound(&sim, InboundDrop::UnknownUfrag),
    );
    for k in 0..1000u32 {
        let mut garbage = vec![0x80u8, 0x60];
        garbage.extend_from_slice(&k.to_be_bytes());
        sim.core
            .handle_datagram(sim.now, stranger, BytesMut::from(&garbage[..]));
    }
    let nobody = fuzzing::binding_request("nobody:x", "some password of 22+ chars");
    for _ in 0..10 {
        sim.core
            .handle_datagram(sim.now, stranger, BytesMut::from(&nobody[..]));
    }
    // Truncated STUN (header only, length pointing past the end).
    let mut truncated = nobody.clone();
    truncated.truncate(24);
    sim.core
        .handle_datagram(sim.now, stranger, BytesMut::from(&truncated[..]));
    assert!(
        sim.core.poll_transmit().is_none(),
        "nothing answers strangers"
    );
    assert_eq!(inbound(&sim, InboundDrop::UnknownAddress) - address, 1000);
    assert_eq!(inbound(&sim, InboundDrop::UnknownUfrag) - ufrag, 11);
    assert!(!sim.core.is_routed(TransportProtocol::UDP, stranger));
    sim.send_frames(alice, 6, 5);
    assert_eq!(sim.video_from(bob, sim.peer(alice)).len(), before + 5);
}

#[test]
fn a_check_with_bad_message_integrity_creates_no_route() {
    let (mut sim, _alice, bob) = Sim::pair();
    let (sfu_ufrag, sfu_pwd, client_ufrag) = credentials(&sim, bob);
    let username = format!("{sfu_ufrag}:{client_ufrag}");
    let attacker: SocketAddr = "203.0.113.66:5000".parse().unwrap();
    let rejected = inbound(&sim, InboundDrop::Rejected);
    let forged = fuzzing::binding_request(&username, "not-the-password-at-all");
    sim.core
        .handle_datagram(sim.now, attacker, BytesMut::from(&forged[..]));
    assert!(
        sim.core.poll_transmit().is_none(),
        "no answer to a forged check"
    );
    assert!(!sim.core.is_routed(TransportProtocol::UDP, attacker));
    assert_eq!(inbound(&sim, InboundDrop::Rejected) - rejected, 1);
    // The same check signed with the right password is answered and pins.
    let genuine = fuzzing::binding_request(&username, &sfu_pwd);
    sim.core
        .handle_datagram(sim.now, attacker, BytesMut::from(&genuine[..]));
    assert!(sim.core.is_routed(TransportProtocol::UDP, attacker));
}

#[test]
fn a_replayed_srtp_packet_is_forwarded_once() {
    let (mut sim, alice, bob) = Sim::pair();
    sim.send_frames(alice, 1, 5);
    let before = sim.video_from(bob, sim.peer(alice)).len();
    let datagram = sim.video_datagrams(alice, 6, 1).remove(0);
    let from = sim.clients[alice].addr;
    let rejected = inbound(&sim, InboundDrop::Rejected);
    for _ in 0..3 {
        sim.core.handle_datagram(sim.now, from, datagram.clone());
        sim.pump();
    }
    assert_eq!(sim.video_from(bob, sim.peer(alice)).len(), before + 1);
    // rtc's SRTP replay window (64 packets, on by default) refuses the
    // copies before they are decrypted; the Track's duplicate window
    // (`dedup`) would catch any that got through.
    assert_eq!(inbound(&sim, InboundDrop::Rejected) - rejected, 2);
}

#[test]
fn no_rtp_is_accepted_before_dtls_completes() {
    let mut h = fuzzing::Harness::new(None).expect("the offer applies");
    h.pin_client();
    let client: SocketAddr = fuzzing::CLIENT_ADDR.parse().unwrap();
    assert!(h.core.is_routed(TransportProtocol::UDP, client));
    // A plain RTP packet (VP8, the SSRC of the offer) from the checked
    // address, before any DTLS handshake.
    let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 0];
    rtp.extend_from_slice(&1_197_503_924u32.to_be_bytes());
    rtp.extend_from_slice(&[0x10, 0x00, 0x9d, 0x01, 0x2a, 0, 0, 0, 0]);
    for _ in 0..10 {
        h.core
            .handle_datagram(h.now, client, BytesMut::from(&rtp[..]));
    }
    let snapshot = h.core.snapshot();
    assert_eq!(snapshot.counters.rtp_in.video_packets, 0);
    assert_eq!(snapshot.video_tracks, 0, "no Track appears");
    assert_eq!(
        snapshot.counters.inbound_dropped[InboundDrop::Rejected as usize],
        10
    );
    while let Some(out) = h.core.poll_output() {
        assert!(
            !matches!(out.signal, Signal::TrackPublished { .. }),
            "{out:?}"
        );
    }
}

#[test]
fn rtcp_about_other_peers_streams_is_dropped_and_counted() {
    let mut sim = Sim::connected(CoreConfig::new(common::SFU_ADDR.parse().unwrap()), 2);
    let (alice, bob, carol) = (0, 1, 2);
    sim.send_frames(alice, 1, 20);
    sim.advance(Duration::from_secs(1));
    let bob_ssrc = sim.clients[bob].receivers[0].1;
    let carol_ssrc = sim.clients[carol].receivers[0].1;
    let alice_ssrc = sim.clients[alice].video_sender.unwrap().1;
    assert_ne!(bob_ssrc, carol_ssrc);
    let snapshot = sim.core.snapshot().counters;
    let (foreign, keyframes, retransmissions) = (
        snapshot.inbound_dropped[InboundDrop::ForeignRtcp as usize],
        snapshot.keyframe_requests_received,
        snapshot.retransmissions,
    );
    // Bob's compound starts with a genuine receiver report (so `rtc` files
    // it under his own track), then asks about Carol's stream and Alice's
    // uplink stream.
    let now = sim.now;
    let (receiver, _) = sim.clients[bob].receivers[0];
    let compound: Vec<Box<dyn rtc::rtcp::Packet>> = vec![
        Box::new(ReceiverReport {
            ssrc: 1,
            reports: vec![ReceptionReport {
                ssrc: bob_ssrc,
                ..Default::default()
            }],
            ..Default::default()
        }),
        Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: carol_ssrc,
        }),
        Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: alice_ssrc,
        }),
        Box::new(TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: carol_ssrc,
            nacks: vec![NackPair {
                packet_id: 5,
                lost_packets: 0xffff,
            }],
        }),
    ];
    sim.clients[bob]
        .pc
        .rtp_receiver(receiver)
        .unwrap()
        .write_rtcp(now, compound)
        .unwrap();
    sim.pump();
    // Alice sends a sender report for her stream and one for Bob's.
    let (sender, _) = sim.clients[alice].video_sender.unwrap();
    let reports: Vec<Box<dyn rtc::rtcp::Packet>> = vec![
        Box::new(SenderReport {
            ssrc: alice_ssrc,
            ..Default::default()
        }),
        Box::new(SenderReport {
            ssrc: bob_ssrc,
            ..Default::default()
        }),
    ];
    sim.clients[alice]
        .pc
        .rtp_sender(sender)
        .unwrap()
        .write_rtcp(now, reports)
        .unwrap();
    sim.pump();
    let after = sim.core.snapshot().counters;
    assert_eq!(
        after.inbound_dropped[InboundDrop::ForeignRtcp as usize] - foreign,
        4,
        "two PLIs, a NACK and a sender report"
    );
    assert_eq!(after.keyframe_requests_received, keyframes);
    assert_eq!(after.retransmissions, retransmissions);
    // Bob's own keyframe request still works.
    sim.advance(Duration::from_millis(600));
    sim.send_pli(bob);
    assert_eq!(
        sim.core.snapshot().counters.keyframe_requests_received,
        keyframes + 1
    );
}

#[test]
fn a_flooding_peer_is_capped_and_the_others_go_on() {
    let mut config = CoreConfig::new(common::SFU_ADDR.parse().unwrap());
    config.inbound_limits = InboundLimits {
        max_kbps: 2_000,
        max_pps: 400,
    };
    let mut sim = Sim::with_config(config);
    let alice = sim.add_client("alice", true);
    let mallory = sim.add_client("mallory", true);
    let bob = sim.add_client("bob", false);
    for i in [alice, mallory, bob] {
        sim.join(i, "room");
    }
    sim.connect_all();
    sim.send_frames(alice, 1, 5);
    sim.send_frames(mallory, 1, 5);
    let alice_before = sim.video_from(bob, sim.peer(alice)).len();
    let mallory_before = sim.video_from(bob, sim.peer(mallory)).len();
    let limited = inbound(&sim, InboundDrop::RateLimit);
    let from = sim.clients[mallory].addr;
    // One virtual second: Mallory sends 5,000 valid SRTP packets
    // (1,100-byte VP8) and 5,000 garbage datagrams from her checked
    // address; Alice sends 50 frames.
    let flood = sim.video_datagrams(mallory, 100, 5_000);
    let mut flood = flood.into_iter();
    for frame in 0..50u16 {
        for _ in 0..100 {
            if let Some(d) = flood.next() {
                sim.core.handle_datagram(sim.now, from, d);
            }
            sim.core
                .handle_datagram(sim.now, from, BytesMut::from(&[0x99u8; 200][..]));
        }
        sim.pump();
        let seq = 6 + frame;
        sim.send_video(alice, seq, u32::from(seq) * 3000, &[7u8; 50]);
        sim.advance(Duration::from_millis(20));
    }
    let dropped = inbound(&sim, InboundDrop::RateLimit) - limited;
    let alice_got = sim.video_from(bob, sim.peer(alice)).len() - alice_before;
    let mallory_got = sim.video_from(bob, sim.peer(mallory)).len() - mallory_before;
    println!("rate-limited datagrams from mallory: {dropped}; bob got {alice_got} of alice's 50, {mallory_got} of mallory's 5,000");
    assert_eq!(alice_got, 50, "Alice's video is untouched");
    // 400 packets a second, 200 burst, and 250 kB/s (125 kB burst).
    assert!(dropped >= 9_000, "{dropped}");
    assert!(mallory_got <= 400, "{mallory_got}");
}
