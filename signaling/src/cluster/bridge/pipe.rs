//! One Track across a link: the RTP a sink receives, written to the ghost
//! that publishes it on the other node, and the keyframe requests that
//! ghost receives, sent back to the sink's node (which asks the
//! publisher). Packets keep their sequence numbers and timestamps; the
//! SSRC and payload type become the ghost's own, and header extensions
//! are dropped, except the audio level, which is written again with the
//! ghost's negotiated id (the far node's active speaker needs it).

use std::sync::Arc;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
use rtc::shared::marshal::MarshalSize;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

use super::RelayMetrics;
use crate::client::peer::is_keyframe_request;

/// Which way media crosses the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the room's home to this node.
    In,
    /// From this node to the home.
    Out,
}

impl Direction {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// A ghost's copy of a remote track.
pub struct LocalTrack {
    /// The track.
    pub track: Arc<TrackLocalStaticRTP>,
    /// Its id (the remote track's).
    pub track_id: String,
    /// Its SSRC.
    pub ssrc: u32,
    /// Its codec's MIME type.
    mime_type: String,
}

/// A track added to a ghost, waiting for its negotiation to finish.
pub struct PendingPipe {
    /// What the sink receives.
    pub remote: Arc<dyn TrackRemote>,
    /// What the ghost sends.
    pub local: LocalTrack,
    /// The ghost's sender.
    pub sender: Arc<dyn RtpSender>,
    /// The audio level extension id on the sink's connection.
    pub audio_level: Option<u8>,
    /// Which way it crosses.
    pub direction: Direction,
}

/// Adds a copy of `remote` (same codec, id and stream) to `pc`.
pub async fn add_local_track(
    pc: &Arc<dyn PeerConnection>,
    remote: &Arc<dyn TrackRemote>,
) -> Result<(LocalTrack, Arc<dyn RtpSender>), String> {
    let ssrc_in = remote.ssrcs().await.first().copied().unwrap_or(0);
    let codec = remote
        .codec(ssrc_in)
        .await
        .ok_or("remote track without a codec")?;
    let ssrc = rand::random::<u32>();
    let track_id = remote.track_id().await;
    let mime_type = codec.mime_type.clone();
    let track = MediaStreamTrack::new(
        remote.stream_id().await,
        track_id.clone(),
        remote.label().await,
        remote.kind().await,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec,
            ..Default::default()
        }],
    );
    let track = Arc::new(TrackLocalStaticRTP::new(track));
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .map_err(|e| format!("add track: {e}"))?;
    Ok((
        LocalTrack {
            track,
            track_id,
            ssrc,
            mime_type,
        },
        sender,
    ))
}

/// Carries one track until either end goes away.
pub async fn run(pipe: PendingPipe, metrics: Arc<RelayMetrics>) {
    let direction = pipe.direction.label();
    let Ok(params) = pipe.sender.get_parameters().await else {
        return;
    };
    let Some(payload_type) = params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| {
            c.rtp_codec
                .mime_type
                .eq_ignore_ascii_case(&pipe.local.mime_type)
        })
        .map(|c| c.payload_type)
    else {
        tracing::warn!(track = %pipe.local.track_id, mime = %pipe.local.mime_type, "codec not negotiated on the link");
        return;
    };
    let media_ssrc = pipe.remote.ssrcs().await.first().copied().unwrap_or(0);
    let feedback = tokio::spawn(carry_keyframe_requests(
        Arc::clone(&pipe.local.track),
        Arc::clone(&pipe.remote),
        media_ssrc,
        Arc::clone(&metrics),
        direction,
    ));
    let tracks = metrics.tracks.with_label_values(&[direction]);
    let bytes = metrics.bytes.with_label_values(&[direction]);
    let packets = metrics.packets.with_label_values(&[direction]);
    tracks.inc();
    tracing::debug!(track = %pipe.local.track_id, direction, payload_type, "relaying a track");
    while let Some(event) = pipe.remote.poll().await {
        let mut packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let level = pipe
            .audio_level
            .and_then(|id| packet.header.get_extension(id))
            .and_then(|data| data.first().copied());
        let size = packet.header.marshal_size() + packet.payload.len();
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        packet.header.ssrc = pipe.local.ssrc;
        packet.header.payload_type = payload_type;
        let sent = match level {
            Some(byte) => {
                let level = [HeaderExtension::AudioLevel(AudioLevelExtension {
                    level: byte & 0x7f,
                    voice: byte & 0x80 != 0,
                })];
                pipe.local
                    .track
                    .write_rtp_with_extensions(packet, &level)
                    .await
            }
            None => pipe.local.track.write_rtp(packet).await,
        };
        if sent.is_err() {
            break;
        }
        bytes.inc_by(size as u64);
        packets.inc();
    }
    tracks.dec();
    tracing::debug!(track = %pipe.local.track_id, direction, "track relay ended");
    feedback.abort();
}

/// Sends a PLI for the remote track whenever the ghost's node asks the
/// ghost for a keyframe.
async fn carry_keyframe_requests(
    local: Arc<TrackLocalStaticRTP>,
    remote: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    metrics: Arc<RelayMetrics>,
    direction: &'static str,
) {
    let counter = metrics.keyframe_requests.with_label_values(&[direction]);
    while let Some(event) = local.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if !packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
            continue;
        }
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if remote.write_rtcp(vec![Box::new(pli)]).await.is_err() {
            return;
        }
        counter.inc();
    }
}
