//! Receiving: reads one remote track's RTP, accounts every packet, and
//! asks for a keyframe (PLI) the way a decoder would: when the stream has
//! not started with a keyframe, or a frame was lost.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::media::{parse_opus, parse_vp8};
use crate::stats::{lock, Collector, Kind, PeerRecord};

/// A decoder waits this long for a keyframe before asking for one.
const FIRST_KEYFRAME_PATIENCE: Duration = Duration::from_millis(300);
/// At most one PLI per track this often.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// Reads `track` until it ends, accounting into `collector` for the peer
/// at `index`.
pub async fn read_track(
    track: Arc<dyn TrackRemote>,
    collector: Arc<Collector>,
    index: usize,
    peer: Arc<Mutex<PeerRecord>>,
) {
    let kind = match track.kind().await {
        RtpCodecKind::Video => Kind::Video,
        _ => Kind::Audio,
    };
    // The SFU names each forwarded stream after its publisher.
    let publisher = track.stream_id().await;
    let entry = collector.add_track(index, publisher, kind);
    let media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mut first_packet: Option<Instant> = None;
    let mut last_pli: Option<Instant> = None;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            if matches!(event, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        let payload = &packet.payload;
        let parsed = match kind {
            Kind::Video => parse_vp8(payload),
            Kind::Audio => parse_opus(payload),
        };
        let Some(parsed) = parsed else {
            collector.unparsed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(recorded) = collector.on_packet(&entry, &peer, &parsed, payload.len()) else {
            continue; // frozen: the run is ending
        };
        if kind != Kind::Video {
            continue;
        }
        let now = Instant::now();
        let started = *first_packet.get_or_insert(now);
        let decodable = lock(&entry).stats.frames.decodable();
        let waiting = !decodable && now.duration_since(started) >= FIRST_KEYFRAME_PATIENCE;
        let due = last_pli.is_none_or(|t| now.duration_since(t) >= PLI_INTERVAL);
        if (recorded.frame.broken || waiting) && due {
            last_pli = Some(now);
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: if media_ssrc != 0 {
                    media_ssrc
                } else {
                    packet.header.ssrc
                },
            };
            if track.write_rtcp(vec![Box::new(pli)]).await.is_ok() {
                collector.plis_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
