//! A Subscription: one Track delivered to one Peer, with its own sender on
//! that Peer's connection, its own Forwarder, and, for video, the layer it
//! receives and the selector that picks it.

use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::forwarder::Forwarder;
use super::ids::{MediaKind, TrackId};
use super::layers::LayerSelector;

/// One Track delivered to one Peer.
#[derive(Debug)]
pub struct Subscription {
    /// The Track delivered.
    pub track: TrackId,
    /// Audio or video (the Track's).
    pub kind: MediaKind,
    /// The sender on the subscriber's connection.
    pub sender_id: RTCRtpSenderId,
    /// The track id of that sender on the subscriber's connection; RTCP about
    /// it (PLI, FIR) arrives under this id.
    pub local_track_id: String,
    /// The publisher's codec, to find the payload type the subscriber
    /// negotiated for it.
    pub codec: RTCRtpCodec,
    /// Rewrites each packet for this subscriber.
    pub forwarder: Forwarder,
    /// The layer (index into the Track's layers) being forwarded; `None`
    /// before the first keyframe of the target, and while video is off.
    /// Video from a codec we can parse starts, and switches layers, only
    /// at a keyframe, so the subscriber never gets frames it cannot decode.
    pub layer: Option<usize>,
    /// The layer to forward next (switched to at its next keyframe);
    /// `None`: no video (paused, or not wanted).
    pub target: Option<usize>,
    /// Picks `target` from the subscriber's budget and wishes.
    pub selector: LayerSelector,
    /// The highest quality level (0 = lowest) the subscriber asked for;
    /// `None`: no video (a hidden tile). Unlimited by default.
    pub max_level: Option<usize>,
    /// Layer switches so far.
    pub switches: u64,
    /// When a packet was last forwarded (to advance timestamps across a
    /// switch or a pause by the time that passed).
    pub last_forward_at: Option<Instant>,
    /// The sender was reused for this Track (an m-line another Track's
    /// Subscription had) and the client has not answered yet: nothing is
    /// forwarded (it is not among the Track's subscribers) until it does.
    pub reused: bool,
}

impl Subscription {
    /// Whether the subscriber gets nothing because of its bandwidth.
    pub fn paused(&self) -> bool {
        self.selector.paused()
    }
}

/// The track a Subscription's sender carries: one encoding on `ssrc`, in
/// stream `stream_id`, with `codec` (the default codec leaves every codec
/// both sides support negotiated).
pub(super) fn sender_track(
    stream_id: String,
    track_id: &str,
    kind: MediaKind,
    ssrc: u32,
    codec: RTCRtpCodec,
) -> MediaStreamTrack {
    let kind = match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    };
    MediaStreamTrack::new(
        stream_id,
        track_id.to_owned(),
        track_id.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec,
            ..Default::default()
        }],
    )
}
