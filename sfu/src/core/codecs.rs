//! The codecs every Peer negotiates: those `rtc` registers by default,
//! without RTX. Publishers then resend NACKed packets on the media SSRC
//! itself, which is what `rtc`'s NACK generator watches: with RTX, the
//! repairs arrive on another SSRC, the generator never sees them arrive,
//! and it NACKs the same packets again and again (docs/ARCHITECTURE.md,
//! webrtc-rs notes). The SFU itself never sends RTX (`rtc` cannot).

use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_AV1, MIME_TYPE_G722, MIME_TYPE_H264, MIME_TYPE_HEVC, MIME_TYPE_OPUS,
    MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_VP8, MIME_TYPE_VP9,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::shared::error::Error as RtcError;

/// Audio: MIME type, clock rate, channels, fmtp, payload type.
const AUDIO: [(&str, u32, u16, &str, u8); 4] = [
    (MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1", 111),
    (MIME_TYPE_G722, 8_000, 0, "", 9),
    (MIME_TYPE_PCMU, 8_000, 0, "", 0),
    (MIME_TYPE_PCMA, 8_000, 0, "", 8),
];

/// Video: MIME type, fmtp, payload type (all at 90 kHz).
const VIDEO: [(&str, &str, u8); 10] = [
    (MIME_TYPE_VP8, "", 96),
    (MIME_TYPE_VP9, "profile-id=0", 98),
    (MIME_TYPE_VP9, "profile-id=1", 100),
    (
        MIME_TYPE_H264,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        102,
    ),
    (
        MIME_TYPE_H264,
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
        127,
    ),
    (
        MIME_TYPE_H264,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        125,
    ),
    (
        MIME_TYPE_H264,
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        108,
    ),
    (
        MIME_TYPE_H264,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032",
        123,
    ),
    (MIME_TYPE_AV1, "profile-id=0", 41),
    (MIME_TYPE_HEVC, "", 126),
];

/// Registers the codecs above (video with goog-remb, ccm fir, nack and
/// nack pli feedback).
pub fn register_codecs(media_engine: &mut MediaEngine) -> Result<(), RtcError> {
    for (mime_type, clock_rate, channels, fmtp, payload_type) in AUDIO {
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: mime_type.to_owned(),
                    clock_rate,
                    channels,
                    sdp_fmtp_line: fmtp.to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type,
            },
            RtpCodecKind::Audio,
        )?;
    }
    let feedback: Vec<RTCPFeedback> = [
        ("goog-remb", ""),
        ("ccm", "fir"),
        ("nack", ""),
        ("nack", "pli"),
    ]
    .iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: (*typ).to_owned(),
        parameter: (*parameter).to_owned(),
    })
    .collect();
    for (mime_type, fmtp, payload_type) in VIDEO {
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: mime_type.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: fmtp.to_owned(),
                    rtcp_feedback: feedback.clone(),
                },
                payload_type,
            },
            RtpCodecKind::Video,
        )?;
    }
    Ok(())
}
