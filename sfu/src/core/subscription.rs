//! A Subscription: one Track delivered to one Peer, with its own sender on
//! that Peer's connection and its own Forwarder.

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::forwarder::Forwarder;
use super::ids::{MediaKind, TrackId};

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
    /// Video from a codec we can parse is held back until a keyframe starts,
    /// so the subscriber never gets frames it cannot decode.
    pub awaiting_keyframe: bool,
}
