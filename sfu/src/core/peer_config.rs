//! How each Peer's `rtc` connection is set up: ICE-lite with our own
//! credentials, DTLS server role, the codecs we forward, and the
//! interceptor chain: `rtc`'s reports, NACK generator and congestion
//! control, and our marker that lets the feedback the core acts on reach it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::{
    CongestionControlBuilder, Gcc, NackGeneratorBuilder, GCC_MAX_BITRATE, GCC_MIN_BITRATE,
};
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind, TYPE_RTCP_FB_NACK,
};
use rtc::sdp::extmap::AUDIO_LEVEL_URI;
use rtc::shared::error::Error as RtcError;

use super::deliver_rtcp::DeliverRtcp;

/// ICE timing for every Peer. `rtc` calls a connection disconnected after
/// this long without a packet from the client (at most; less for short
/// consent timeouts), and failed after the rest of the consent timeout.
const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(4);
const ICE_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// `rtc`'s (disconnected, failed) timeouts for a consent timeout: failure,
/// which removes the Peer, comes `consent_timeout` after the last packet
/// (their sum), and at least 2 s in.
pub fn ice_timeouts(consent_timeout: Duration) -> (Duration, Duration) {
    let total = consent_timeout.max(Duration::from_secs(2));
    let disconnected = ICE_DISCONNECTED_TIMEOUT.min(total / 3);
    (disconnected, total - disconnected)
}

/// A packet lost on a publisher's uplink is NACKed at most this many
/// times (100 ms apart): enough for a retransmission to get through a lossy
/// path, and a bound on what one hole can cost. Without a bound, `rtc`'s
/// generator asks for a packet forever when the retransmission never
/// reaches it (for example one dropped as an SRTP replay).
pub const MAX_NACKS_PER_PACKET: u16 = 4;

/// How far behind the newest packet of a stream an inbound SRTP packet may
/// be and still be accepted (the replay window, in packets). `rtc`'s default
/// is 64, too short for retransmissions without RTX: they come on the media
/// SSRC a round trip and a NACK interval after the loss, and a browser
/// probing its bandwidth with padding sends hundreds of packets per second
/// on that SSRC, so a retransmission 150 ms late can be 64 numbers behind.
/// Rejected as a replay, it left a hole no NACK could fill and the
/// subscribers' pictures frozen until a keyframe. libwebrtc's receivers use
/// 1,024 as well; the window costs 128 bytes per inbound stream.
pub const SRTP_REPLAY_WINDOW: usize = 1024;

/// Where each subscriber's bandwidth estimate starts, in bits per second:
/// a typical camera layer, so that a constrained downlink shows as the
/// estimate falling and a free one as it holding or rising.
pub const INITIAL_BANDWIDTH_ESTIMATE: f64 = 1_000_000.0;

/// The SRTP protection profiles the SFU accepts by default: AEAD AES-128-GCM
/// only. It costs about a quarter of AES-CM-128 with HMAC-SHA1-80 per packet
/// (BENCHMARKS.md, "SRTP profile"). `rtc`'s DTLS server takes the first
/// profile in the *client's* list that it also supports, and Chrome lists
/// `SRTP_AES128_CM_SHA1_80` before the GCM profiles (libwebrtc negotiates
/// GCM only with a peer that lacks AES-CM), so accepting AES-CM as well
/// would mean AES-CM with every Chromium-based browser. Chrome, Firefox,
/// Safari and `webrtc-rs` all offer AES-128-GCM. A client that offers no
/// GCM profile fails its DTLS handshake (`CoreConfig::srtp_profiles` adds
/// AES-CM back for such clients).
pub const DEFAULT_SRTP_PROFILES: [SrtpProtectionProfile; 1] =
    [SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm];

/// Builds the `rtc` connection of one Peer.
///
/// `ufrag` and `pwd` are the SFU side's ICE credentials; the ufrag is what the
/// UDP demultiplexer routes STUN by. `srtp_profiles` are the SRTP protection
/// profiles accepted (empty: `rtc`'s default list).
pub fn build_peer_connection(
    now: Instant,
    ufrag: &str,
    pwd: &str,
    consent_timeout: Duration,
    srtp_profiles: &[SrtpProtectionProfile],
) -> Result<RTCPeerConnection, RtcError> {
    let (disconnected, failed) = ice_timeouts(consent_timeout);
    let mut media_engine = MediaEngine::default();
    super::codecs::register_codecs(&mut media_engine)?;
    // The default chain (NACK responder and generator, RTCP reports, TWCC
    // receiver) plus our marker, application-ward of all of them, so that
    // keyframe requests and receiver reports from subscribers reach the core.
    // `rtc`'s default chain without its NACK responder: the SFU answers
    // subscribers' NACKs from one cache per Track instead of a send buffer
    // per connection. The NACK generator stays, so publishers are NACKed.
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_NACK.to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    configure_simulcast_extension_headers(&mut media_engine)?;
    // Publishers' audio levels, for the active speaker.
    media_engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    let registry = Registry::new()
        .with(Slot::from(14_000), DeliverRtcp::new(is_feedback))
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
                .build(),
        );
    // Transport-wide congestion control both ways: TWCC sequence numbers on
    // what we send and feedback on what we receive, and a GCC estimator per
    // connection fed by the subscriber's TWCC feedback. Its estimate is the
    // subscriber's downlink (`quality.rs`). No pacer in `rtc`: forwarding
    // must not queue (the core's own `budget.rs` drops instead).
    let estimator = Gcc::new(INITIAL_BANDWIDTH_ESTIMATE, GCC_MIN_BITRATE, GCC_MAX_BITRATE);
    let registry = configure_twcc(registry, &mut media_engine)?.with(
        Slot::CongestionControl,
        CongestionControlBuilder::new(estimator).build(),
    );
    let registry = configure_rtcp_reports(registry);

    let setting_engine = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_credentials(ufrag.to_owned(), pwd.to_owned())
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_srtp_protection_profiles(srtp_profiles.to_vec())
        .with_srtp_replay_protection_window(SRTP_REPLAY_WINDOW)
        .with_ice_timeouts(
            Some(disconnected),
            Some(failed),
            Some(ICE_KEEPALIVE_INTERVAL),
        )
        .build();

    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(setting_engine)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
}

/// A host candidate the SFU advertises: the shared UDP port on one public
/// address.
pub fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, RtcError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    RTCIceCandidate::from(&candidate).to_json()
}

/// A passive ICE-TCP host candidate (RFC 6544) on one public address. Its
/// type preference is below every UDP host candidate's, so browsers pick
/// it only when UDP fails.
pub fn tcp_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, RtcError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "tcp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type: TcpType::Passive,
    }
    .new_candidate_host()?;
    RTCIceCandidate::from(&candidate).to_json()
}

/// What the core acts on or checks: keyframe requests (PLI, FIR), NACKs,
/// receiver reports and REMB from subscribers, sender reports from
/// publishers (`rtcp_check`). Everything else stays inside `rtc`.
pub fn is_feedback(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>()
        || any.is::<FullIntraRequest>()
        || any.is::<ReceiverReport>()
        || any.is::<TransportLayerNack>()
        || any.is::<ReceiverEstimatedMaximumBitrate>()
        || any.is::<rtc::rtcp::sender_report::SenderReport>()
}
