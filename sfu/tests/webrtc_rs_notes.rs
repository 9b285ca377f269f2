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

/// Note 11: the application cannot send RTX. A sender whose encoding has an
/// RTX SSRC refuses a packet on that SSRC (it accepts only the encodings'
/// own SSRCs), so a retransmission can only go out on the media SSRC.
#[test]
fn a_sender_refuses_its_own_rtx_ssrc() {
    use rtc::media_stream::MediaStreamTrack;
    use rtc::rtp::header::Header;
    use rtc::rtp::packet::Packet;
    use rtc::rtp_transceiver::rtp_sender::{
        RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
    };
    use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

    const MEDIA: u32 = 0x1111;
    const RTX: u32 = 0x2222;
    let mut sim = Sim::new();
    let alice = sim.add_client("alice", false);
    let track = MediaStreamTrack::new(
        "stream".into(),
        "video".into(),
        "video".into(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(MEDIA),
                rtx: Some(RTCRtpRtxParameters { ssrc: RTX }),
                ..Default::default()
            },
            active: true,
            codec: common::vp8(),
            ..Default::default()
        }],
    );
    let pc = &mut sim.clients[alice].pc;
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        streams: vec![],
        send_encodings: vec![],
    };
    let transceiver = pc.add_transceiver_from_track(track, Some(init)).unwrap();
    let mut sender = pc.rtp_sender(RTCRtpSenderId::from(transceiver)).unwrap();
    let packet = |ssrc| Packet {
        header: Header {
            version: 2,
            payload_type: 97,
            ssrc,
            ..Default::default()
        },
        payload: bytes::Bytes::from_static(&[0, 1, 0x5a]),
    };
    let err = sender
        .write_rtp(sim.now, packet(RTX))
        .expect_err("an RTX packet is refused");
    assert!(
        matches!(err, rtc::shared::error::Error::ErrSenderWithNoSSRCs),
        "{err:?}"
    );
    let media = sender.write_rtp(sim.now, packet(MEDIA));
    assert!(
        !matches!(media, Err(rtc::shared::error::Error::ErrSenderWithNoSSRCs)),
        "the media SSRC passes that check: {media:?}"
    );
}
