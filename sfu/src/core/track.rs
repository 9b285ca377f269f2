//! A Track: one published source, received from its publisher's Peer and
//! fanned out to every Subscription of it.

use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::audio_level::Loudness;
use super::dedup::SeqWindow;
use super::ids::{MediaKind, PeerId, TrackId};
use super::keyframe::VideoCodec;
use super::nack_cache::{PacketCache, AUDIO_SLOTS, VIDEO_SLOTS};

/// At most one keyframe request per Track in this interval, whatever the
/// number of subscribers asking.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// One published source.
#[derive(Debug)]
pub struct Track {
    /// Our id for it (`t<n>`).
    pub id: TrackId,
    /// Who publishes it.
    pub publisher: PeerId,
    /// The track id `rtc` reports its packets under, on the publisher's connection.
    pub rtc_track_id: String,
    /// The publisher connection's receiver for it (to send PLI upstream).
    pub receiver_id: RTCRtpReceiverId,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec the publisher sends.
    pub codec: RTCRtpCodec,
    /// The SSRC of the media stream (RTX and other layers are not forwarded yet).
    pub media_ssrc: u32,
    /// Peers subscribed to it. Each has a Subscription keyed by this Track's id.
    pub subscribers: Vec<PeerId>,
    /// The publisher muted it: nothing is forwarded.
    pub muted: bool,
    /// Its codec, if it is video we can find keyframes in.
    pub video_codec: Option<VideoCodec>,
    /// Recent sequence numbers, to drop duplicates.
    pub arrivals: SeqWindow,
    /// Recent packets, to answer subscribers' NACKs.
    pub cache: PacketCache,
    /// The id of the `ssrc-audio-level` extension on the publisher's leg.
    pub audio_level_extension: Option<u8>,
    /// Smoothed audio level, for the active speaker.
    pub loudness: Loudness,
    last_keyframe_request: Option<Instant>,
}

impl Track {
    /// A Track with no subscribers yet.
    pub fn new(
        id: TrackId,
        publisher: PeerId,
        rtc_track_id: String,
        receiver_id: RTCRtpReceiverId,
        kind: MediaKind,
        codec: RTCRtpCodec,
        media_ssrc: u32,
    ) -> Self {
        let video_codec = match kind {
            MediaKind::Video => VideoCodec::from_mime(&codec.mime_type),
            MediaKind::Audio => None,
        };
        Self {
            id,
            publisher,
            rtc_track_id,
            receiver_id,
            kind,
            codec,
            media_ssrc,
            subscribers: Vec::new(),
            muted: false,
            video_codec,
            arrivals: SeqWindow::default(),
            audio_level_extension: None,
            loudness: Loudness::default(),
            cache: PacketCache::new(match kind {
                MediaKind::Video => VIDEO_SLOTS,
                MediaKind::Audio => AUDIO_SLOTS,
            }),
            last_keyframe_request: None,
        }
    }

    /// Whether a keyframe request may go to the publisher now; if so, it is
    /// recorded as sent.
    pub fn take_keyframe_request(&mut self, now: Instant) -> bool {
        if self.kind != MediaKind::Video {
            return false;
        }
        match self.last_keyframe_request {
            Some(last) if now.saturating_duration_since(last) < KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                self.last_keyframe_request = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(kind: MediaKind) -> Track {
        Track::new(
            TrackId(1),
            PeerId(1),
            "x".into(),
            RTCRtpReceiverId::default(),
            kind,
            RTCRtpCodec::default(),
            1,
        )
    }

    #[test]
    fn keyframe_requests_are_throttled() {
        let mut t = track(MediaKind::Video);
        let t0 = Instant::now();
        assert!(t.take_keyframe_request(t0));
        assert!(!t.take_keyframe_request(t0 + Duration::from_millis(100)));
        assert!(!t.take_keyframe_request(t0 + Duration::from_millis(499)));
        assert!(t.take_keyframe_request(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn audio_never_requests_keyframes() {
        let mut t = track(MediaKind::Audio);
        assert!(!t.take_keyframe_request(Instant::now()));
    }
}
