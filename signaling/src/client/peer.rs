//! The `webrtc` side of a client of our server: the PeerConnection set-up
//! shared by `sfu-loadtest`'s synthetic peers and the cluster's bridge
//! (bound to one local address, no mDNS, browser-like ICE check pacing,
//! `rtc`'s default interceptors plus delivery of keyframe requests), and
//! the offer/answer steps over [`Signaling`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use sfu::core::deliver_rtcp::DeliverRtcp;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};

use super::Signaling;

/// The audio level header extension (RFC 6464).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Time between ICE connectivity checks (a browser's pace; `rtc`'s 200 ms
/// default would dominate connect times).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Whether an RTCP packet asks for a keyframe.
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// Offers the audio level extension on audio m-lines.
pub fn with_audio_level(engine: &mut MediaEngine) -> Result<(), String> {
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(|e| format!("audio level extension: {e}"))
}

/// A PeerConnection bound to `bind_ip` with `engine`'s codecs, whose
/// events go to `handler`. Keyframe requests reach its local tracks'
/// `poll()` (`rtc`'s chain keeps inbound RTCP to itself otherwise).
pub async fn peer_connection(
    bind_ip: IpAddr,
    mut engine: MediaEngine,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, String> {
    let registry = Registry::new().with(Slot::from(14_000), DeliverRtcp::new(is_keyframe_request));
    let registry = register_default_interceptors(registry, &mut engine)
        .map_err(|e| format!("interceptors: {e}"))?;
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), None)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec![format!("{bind_ip}:0")])
        .build()
        .await
        .map_err(|e| format!("peer connection: {e}"))?;
    Ok(Arc::new(pc))
}

/// Creates our offer, sets it as the local description and sends it.
pub async fn send_offer(pc: &Arc<dyn PeerConnection>, sig: &mut Signaling) -> Result<(), String> {
    let offer = pc
        .create_offer(None)
        .await
        .map_err(|e| format!("create offer: {e}"))?;
    pc.set_local_description(offer)
        .await
        .map_err(|e| format!("set local offer: {e}"))?;
    let sdp = pc
        .local_description()
        .await
        .ok_or("no local description after setting it")?
        .sdp;
    sig.offer(&sdp).await.map_err(|e| e.to_string())
}

/// Applies the server's answer to our offer.
pub async fn apply_answer(pc: &Arc<dyn PeerConnection>, sdp: String) -> Result<(), String> {
    let answer = RTCSessionDescription::answer(sdp).map_err(|e| format!("bad answer: {e}"))?;
    pc.set_remote_description(answer)
        .await
        .map_err(|e| format!("apply answer: {e}"))
}

/// Applies a server-initiated offer and sends our answer.
pub async fn answer_offer(
    pc: &Arc<dyn PeerConnection>,
    sig: &mut Signaling,
    sdp: String,
) -> Result<(), String> {
    let offer = RTCSessionDescription::offer(sdp).map_err(|e| format!("bad offer: {e}"))?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| format!("apply server offer: {e}"))?;
    let answer = pc
        .create_answer(None)
        .await
        .map_err(|e| format!("create answer: {e}"))?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| format!("set local answer: {e}"))?;
    let sdp = pc.local_description().await.ok_or("no local answer")?.sdp;
    sig.answer(&sdp).await.map_err(|e| e.to_string())
}
