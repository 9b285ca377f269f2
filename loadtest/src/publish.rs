//! Publishing: the local tracks of a synthetic peer, and the tasks that
//! send their RTP (VP8 frames at the target bitrate and frame rate, Opus-
//! sized audio every 20 ms with the audio-level extension) and answer
//! keyframe requests with keyframes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{interval, MissedTickBehavior};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::rtp_transceiver::RtpSender;

use crate::media::{now_ns, AudioSource, VideoSource, AUDIO_PACKETS_PER_SECOND};
use crate::stats::{Collector, Kind};
use signaling::client::peer::is_keyframe_request;

/// VP8 as browsers offer it.
pub fn vp8() -> RTCRtpCodec {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            fb("goog-remb", ""),
            fb("ccm", "fir"),
            fb("nack", ""),
            fb("nack", "pli"),
        ],
    }
}

/// Opus as browsers offer it.
pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// What a publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct MediaConfig {
    /// Video bits per second.
    pub video_bitrate: u64,
    /// Video frames per second.
    pub fps: u32,
    /// Frames between periodic keyframes.
    pub keyframe_every: u32,
    /// No video.
    pub audio_only: bool,
}

/// One local track and its sender.
pub struct LocalTrack {
    /// Audio or video.
    pub kind: Kind,
    /// The track.
    pub track: Arc<TrackLocalStaticRTP>,
    /// Its SSRC.
    pub ssrc: u32,
    /// Its sender, once added to the connection.
    pub sender: Option<Arc<dyn RtpSender>>,
}

impl LocalTrack {
    /// A new track of `kind` in media stream `stream_id`.
    pub fn new(kind: Kind, stream_id: &str) -> Self {
        let ssrc = rand::random::<u32>();
        let (codec, codec_kind, name) = match kind {
            Kind::Audio => (opus(), RtpCodecKind::Audio, "audio"),
            Kind::Video => (vp8(), RtpCodecKind::Video, "video"),
        };
        let track = MediaStreamTrack::new(
            stream_id.to_owned(),
            format!("{stream_id}-{name}"),
            name.to_owned(),
            codec_kind,
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
        Self {
            kind,
            track: Arc::new(TrackLocalStaticRTP::new(track)),
            ssrc,
            sender: None,
        }
    }

    /// Starts sending (after the connection is up): the media task and the
    /// keyframe-request listener. Both end when `stop` turns true. Audio
    /// carries the audio-level extension if `audio_level` (negotiated).
    pub async fn start(
        &self,
        collector: Arc<Collector>,
        peer_id: String,
        media: MediaConfig,
        audio_level: bool,
        stop: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, String> {
        let sender = self.sender.as_ref().ok_or("track was never added")?;
        let params = sender
            .get_parameters()
            .await
            .map_err(|e| format!("sender parameters: {e}"))?;
        let payload_type = params
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or("no codec negotiated for our track")?;
        let out = Outlet {
            track: Arc::clone(&self.track),
            collector,
            ssrc: self.ssrc,
            payload_type,
            peer_id,
        };
        let keyframe_wanted = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        match self.kind {
            Kind::Video => {
                tasks.push(tokio::spawn(listen_for_plis(
                    Arc::clone(&self.track),
                    Arc::clone(&out.collector),
                    Arc::clone(&keyframe_wanted),
                    stop.clone(),
                )));
                tasks.push(tokio::spawn(send_video(out, media, keyframe_wanted, stop)));
            }
            Kind::Audio => tasks.push(tokio::spawn(send_audio(out, audio_level, stop))),
        }
        Ok(tasks)
    }
}

/// Where a sending task writes, and what it counts.
struct Outlet {
    track: Arc<TrackLocalStaticRTP>,
    collector: Arc<Collector>,
    ssrc: u32,
    payload_type: u8,
    peer_id: String,
}

impl Outlet {
    fn packet(&self, seq: u16, timestamp: u32, marker: bool, payload: Bytes) -> Packet {
        Packet {
            header: Header {
                version: 2,
                marker,
                payload_type: self.payload_type,
                sequence_number: seq,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload,
        }
    }

    fn count(&self, len: usize) {
        self.collector.sent_packets.fetch_add(1, Ordering::Relaxed);
        self.collector
            .sent_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
    }
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

async fn send_video(
    out: Outlet,
    media: MediaConfig,
    keyframe_wanted: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut source = VideoSource::new(media.video_bitrate, media.fps, media.keyframe_every);
    let mut tick = interval(Duration::from_secs_f64(1.0 / f64::from(media.fps.max(1))));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (start, ts_base) = (Instant::now(), rand::random::<u32>());
    let mut seq = rand::random::<u16>();
    out.collector.publisher_started(&out.peer_id);
    while !stopped(&stop) {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let force = keyframe_wanted.swap(false, Ordering::Relaxed);
        let frame = source.next_frame(force, now_ns());
        if frame.keyframe {
            out.collector.keyframes_sent.fetch_add(1, Ordering::Relaxed);
        }
        let timestamp = ts_base.wrapping_add((start.elapsed().as_secs_f64() * 90_000.0) as u32);
        let last = frame.payloads.len().saturating_sub(1);
        for (i, payload) in frame.payloads.into_iter().enumerate() {
            let len = payload.len();
            let packet = out.packet(seq, timestamp, i == last, payload);
            seq = seq.wrapping_add(1);
            if out.track.write_rtp(packet).await.is_err() {
                return; // the connection is gone
            }
            out.count(len);
        }
    }
}

async fn send_audio(out: Outlet, audio_level: bool, mut stop: watch::Receiver<bool>) {
    let mut source = AudioSource::default();
    let period = Duration::from_secs(1) / AUDIO_PACKETS_PER_SECOND;
    let mut tick = interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (start, ts_base) = (Instant::now(), rand::random::<u32>());
    let mut seq = rand::random::<u16>();
    let level = audio_level.then_some([HeaderExtension::AudioLevel(AudioLevelExtension {
        level: 30,
        voice: true,
    })]);
    out.collector.publisher_started(&out.peer_id);
    while !stopped(&stop) {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let payload = source.next_packet(now_ns());
        let len = payload.len();
        let timestamp = ts_base.wrapping_add((start.elapsed().as_secs_f64() * 48_000.0) as u32);
        let packet = out.packet(seq, timestamp, false, payload);
        seq = seq.wrapping_add(1);
        // The level goes out only if the extension was negotiated.
        let sent = match &level {
            Some(level) => out.track.write_rtp_with_extensions(packet, level).await,
            None => out.track.write_rtp(packet).await,
        };
        if sent.is_err() {
            return; // the connection is gone
        }
        out.count(len);
    }
}

async fn listen_for_plis(
    track: Arc<TrackLocalStaticRTP>,
    collector: Arc<Collector>,
    keyframe_wanted: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            event = track.poll() => event,
            _ = stop.changed() => return,
        };
        match event {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    collector.plis_received.fetch_add(1, Ordering::Relaxed);
                    keyframe_wanted.store(true, Ordering::Relaxed);
                }
            }
            Some(_) => {}
            None => return,
        }
    }
}
