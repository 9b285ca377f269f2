//! A Track: one published source, received from its publisher's Peer and
//! fanned out to every Subscription of it. A simulcast video has one
//! [`Layer`] per encoding; anything else has one layer.

use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::audio_level::Loudness;
use super::ids::{MediaKind, PeerId, TrackId};
use super::keyframe::VideoCodec;
use super::layers::{rank, Layer};
use super::nack_cache::{AUDIO_SLOTS, VIDEO_SLOTS};

/// At most one keyframe request per layer of a Track in this interval,
/// whatever the number of subscribers asking.
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
    /// Its encodings, in the order they appeared (indexes stay valid).
    pub layers: Vec<Layer>,
    /// Indexes into `layers`, lowest quality first.
    pub order: Vec<usize>,
    /// When the layers' bitrates were last sampled.
    pub sampled_at: Instant,
    /// Per layer: paused at the publisher by dynacast (nobody receives it).
    pub dynacast_off: Vec<bool>,
    /// A link ghost's video: the demand last told to it (`relay.rs`).
    pub link_demand: Option<Option<usize>>,
    /// Per layer: since when nobody receives it.
    pub unwanted_since: Vec<Option<Instant>>,
    /// Peers subscribed to it. Each has a Subscription keyed by this Track's id.
    pub subscribers: Vec<PeerId>,
    /// The publisher muted it: nothing is forwarded.
    pub muted: bool,
    /// Its codec, if it is video we can find keyframes in.
    pub video_codec: Option<VideoCodec>,
    /// The id of the `ssrc-audio-level` extension on the publisher's leg.
    pub audio_level_extension: Option<u8>,
    /// Smoothed audio level, for the active speaker.
    pub loudness: Loudness,
    /// Packets kept per layer to answer NACKs.
    pub cache_sizes: CacheSizes,
}

/// How many packets each Track keeps to answer NACKs, per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Per video layer.
    pub video: usize,
    /// Per audio Track.
    pub audio: usize,
}

impl Default for CacheSizes {
    fn default() -> Self {
        Self {
            video: VIDEO_SLOTS,
            audio: AUDIO_SLOTS,
        }
    }
}

impl Track {
    /// A Track with no subscribers yet, whose first packet came on `ssrc`
    /// (of simulcast layer `rid`, empty without simulcast).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: TrackId,
        publisher: PeerId,
        rtc_track_id: String,
        receiver_id: RTCRtpReceiverId,
        kind: MediaKind,
        codec: RTCRtpCodec,
        ssrc: u32,
        rid: String,
        now: Instant,
        cache_sizes: CacheSizes,
    ) -> Self {
        let video_codec = match kind {
            MediaKind::Video => VideoCodec::from_mime(&codec.mime_type),
            MediaKind::Audio => None,
        };
        let mut track = Self {
            id,
            publisher,
            rtc_track_id,
            receiver_id,
            kind,
            codec,
            layers: Vec::new(),
            order: Vec::new(),
            sampled_at: now,
            dynacast_off: Vec::new(),
            link_demand: None,
            unwanted_since: Vec::new(),
            subscribers: Vec::new(),
            muted: false,
            video_codec,
            audio_level_extension: None,
            loudness: Loudness::default(),
            cache_sizes,
        };
        track.add_layer(rid, ssrc);
        track
    }

    /// Adds an encoding (another simulcast layer); returns its index.
    pub fn add_layer(&mut self, rid: String, ssrc: u32) -> usize {
        if let Some(i) = self.layer_of(ssrc) {
            return i;
        }
        let slots = match self.kind {
            MediaKind::Video => self.cache_sizes.video,
            MediaKind::Audio => self.cache_sizes.audio,
        };
        self.layers.push(Layer::new(rid, ssrc, slots));
        self.dynacast_off.push(false);
        self.unwanted_since.push(None);
        let index = self.layers.len() - 1;
        self.order.push(index);
        let layers = &self.layers;
        self.order.sort_by_key(|&i| (rank(&layers[i].rid), i));
        index
    }

    /// The layer whose SSRC is `ssrc`.
    pub fn layer_of(&self, ssrc: u32) -> Option<usize> {
        // At most three layers: a scan beats a map.
        self.layers.iter().position(|l| l.ssrc == ssrc)
    }

    /// The position of layer `index` in quality order (0 = lowest).
    pub fn level_of(&self, index: usize) -> Option<usize> {
        self.order.iter().position(|&i| i == index)
    }

    /// Whether it has several layers.
    pub fn is_simulcast(&self) -> bool {
        self.layers.len() > 1
    }

    /// Whether a keyframe request for layer `index` may go to the
    /// publisher now; if so, it is recorded as sent.
    pub fn take_keyframe_request(&mut self, now: Instant, index: usize) -> bool {
        if self.kind != MediaKind::Video {
            return false;
        }
        let Some(layer) = self.layers.get_mut(index) else {
            return false;
        };
        match layer.last_keyframe_request {
            Some(last) if now.saturating_duration_since(last) < KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                layer.last_keyframe_request = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(kind: MediaKind, rid: &str) -> Track {
        Track::new(
            TrackId(1),
            PeerId(1),
            "x".into(),
            RTCRtpReceiverId::default(),
            kind,
            RTCRtpCodec::default(),
            1,
            rid.into(),
            Instant::now(),
            CacheSizes::default(),
        )
    }

    #[test]
    fn every_layer_keeps_the_configured_number_of_packets() {
        let sizes = CacheSizes {
            video: 16,
            audio: 8,
        };
        let mut t = Track::new(
            TrackId(1),
            PeerId(1),
            "x".into(),
            RTCRtpReceiverId::default(),
            MediaKind::Video,
            RTCRtpCodec::default(),
            1,
            "q".into(),
            Instant::now(),
            sizes,
        );
        let h = t.add_layer("h".into(), 2);
        for layer in [0, h] {
            for seq in 0..20u16 {
                let mut packet = rtc::rtp::packet::Packet::default();
                packet.header.sequence_number = seq;
                t.layers[layer].cache.insert(&packet);
            }
            assert!(t.layers[layer].cache.get(3).is_none(), "16 kept, not 20");
            assert!(t.layers[layer].cache.get(4).is_some());
        }
    }

    #[test]
    fn keyframe_requests_are_throttled_per_layer() {
        let mut t = track(MediaKind::Video, "h");
        let q = t.add_layer("q".into(), 2);
        let t0 = Instant::now();
        assert!(t.take_keyframe_request(t0, 0));
        assert!(!t.take_keyframe_request(t0 + Duration::from_millis(100), 0));
        assert!(
            t.take_keyframe_request(t0 + Duration::from_millis(100), q),
            "another layer"
        );
        assert!(!t.take_keyframe_request(t0 + Duration::from_millis(499), 0));
        assert!(t.take_keyframe_request(t0 + Duration::from_millis(500), 0));
    }

    #[test]
    fn audio_never_requests_keyframes() {
        let mut t = track(MediaKind::Audio, "");
        assert!(!t.take_keyframe_request(Instant::now(), 0));
    }

    #[test]
    fn layers_keep_their_indexes_and_sort_by_quality() {
        let mut t = track(MediaKind::Video, "f");
        let q = t.add_layer("q".into(), 20);
        let h = t.add_layer("h".into(), 30);
        assert_eq!((q, h), (1, 2));
        assert_eq!(t.add_layer("h".into(), 30), h, "known SSRC");
        assert_eq!(t.order, vec![q, h, 0]);
        assert_eq!(t.level_of(0), Some(2));
        assert_eq!(t.layer_of(20), Some(q));
        assert!(t.is_simulcast());
    }
}
