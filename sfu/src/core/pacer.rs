//! Per-Peer pacing of outgoing media, so that a subscriber whose downlink
//! cannot keep up is held to what its connection can carry, in a queue of
//! its own, without touching anyone else.
//!
//! Each Peer's SRTP media leaves through a token bucket filled at
//! [`PACING_FACTOR`] times the Peer's bandwidth estimate (GCC from its TWCC
//! feedback, or its REMB). The bucket is deep enough for a keyframe
//! ([`MIN_BURST_BYTES`], or [`BURST`] at the pacing rate), so a subscriber
//! whose estimate fits its media never waits: media goes straight out, and
//! nothing is classified or queued. Only what the bucket cannot cover
//! waits in the Peer's queue, which is bounded by [`MAX_QUEUE_DELAY`] at
//! the pacing rate (and [`MAX_QUEUE_PACKETS`]). Past that bound the oldest
//! video packet is dropped first; audio goes only when no video is left.
//! The streams that lost video are handed to the core, which asks their
//! publishers for a keyframe (at most once per [`KEYFRAME_BACKOFF`] per
//! stream, so one hopeless downlink does not make a publisher send
//! keyframes to everyone all the time). RTCP, DTLS and STUN are never
//! paced. Before its first estimate a Peer is not paced.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::forwarder::DropReason;
use super::ids::MediaKind;
use super::subscription::Subscription;
use super::{Core, PeerId, Transmit};

/// The pacing rate is this many times the bandwidth estimate: headroom for
/// the estimate's error and for bursts (libwebrtc paces its own sending at
/// the same factor).
pub const PACING_FACTOR: f64 = 2.5;
/// The bucket holds this long at the pacing rate...
pub const BURST: Duration = Duration::from_millis(100);
/// ...and never less than this: a keyframe goes out at once.
pub const MIN_BURST_BYTES: f64 = 64_000.0;
/// Media waiting longer than this at the pacing rate is dropped.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_millis(300);
/// And never more than this many packets wait.
pub const MAX_QUEUE_PACKETS: usize = 512;
/// A stream that lost video to the queue gets a keyframe requested at most
/// this often.
pub const KEYFRAME_BACKOFF: Duration = Duration::from_secs(2);

/// What the core knows about an outgoing media datagram, found only when
/// it has to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaOf {
    /// The SSRC in its cleartext RTP header.
    pub ssrc: u32,
    /// Audio (kept over video when something must go).
    pub audio: bool,
}

#[derive(Debug)]
struct Queued {
    transmit: Transmit,
    media: MediaOf,
}

/// One Peer's pacer (see the module docs).
#[derive(Debug, Default)]
pub struct Pacer {
    /// Bytes per second; `None` before the first estimate (not paced).
    rate: Option<f64>,
    tokens: f64,
    refilled_at: Option<Instant>,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// Video streams (SSRCs) that lost packets here since the core last
    /// looked.
    lost_video: Vec<u32>,
    /// When each stream last had a keyframe asked for after drops.
    keyframe_asked: Vec<(u32, Instant)>,
}

/// The cleartext SSRC of an SRTP packet (bytes 8 to 11 of its header).
pub fn ssrc_of(datagram: &[u8]) -> Option<u32> {
    let bytes = datagram.get(8..12)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

impl Pacer {
    /// Sets the rate from a bandwidth estimate in bits per second.
    pub fn set_estimate(&mut self, bps: f64) {
        if bps.is_finite() && bps > 0.0 {
            self.rate = Some(bps * PACING_FACTOR / 8.0);
        }
    }

    /// The pacing rate in bits per second, if paced.
    pub fn rate_bps(&self) -> Option<f64> {
        self.rate.map(|r| r * 8.0)
    }

    /// Packets waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn depth(rate: f64) -> f64 {
        (rate * BURST.as_secs_f64()).max(MIN_BURST_BYTES)
    }

    fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else {
            return;
        };
        let elapsed = self
            .refilled_at
            .map(|t| now.saturating_duration_since(t).as_secs_f64())
            .unwrap_or(f64::INFINITY);
        self.tokens = (self.tokens + rate * elapsed).min(Self::depth(rate));
        self.refilled_at = Some(now);
    }

    /// A media datagram to send: returns it if it may go now, or keeps it
    /// (`media_of` tells audio from video, and is asked only then). Returns
    /// how many packets the bound made it drop.
    pub fn offer(
        &mut self,
        now: Instant,
        transmit: Transmit,
        media_of: impl FnOnce(&[u8]) -> MediaOf,
        out: &mut VecDeque<Transmit>,
    ) -> usize {
        let Some(rate) = self.rate else {
            out.push_back(transmit);
            return 0;
        };
        self.refill(now);
        let size = transmit.data.len() as f64;
        if self.queue.is_empty() && self.tokens >= size {
            self.tokens -= size;
            out.push_back(transmit);
            return 0;
        }
        let media = media_of(&transmit.data);
        self.queued_bytes += transmit.data.len();
        self.queue.push_back(Queued { transmit, media });
        self.enforce_bound(rate)
    }

    /// Sends what the bucket now covers, in order.
    pub fn release(&mut self, now: Instant, out: &mut VecDeque<Transmit>) {
        self.refill(now);
        while let Some(front) = self.queue.front() {
            let size = front.transmit.data.len() as f64;
            if self.tokens < size && self.tokens < Self::depth(self.rate.unwrap_or(0.0)) {
                break;
            }
            self.tokens -= size;
            if let Some(q) = self.queue.pop_front() {
                self.queued_bytes -= q.transmit.data.len();
                out.push_back(q.transmit);
            }
        }
    }

    /// When the next waiting packet may go, if one waits.
    pub fn next_release(&self) -> Option<Instant> {
        let front = self.queue.front()?;
        let rate = self.rate?;
        let missing = (front.transmit.data.len() as f64 - self.tokens).max(0.0);
        Some(self.refilled_at? + Duration::from_secs_f64(missing / rate))
    }

    /// Drops the oldest video (audio only when no video waits) until the
    /// queue is within its bound; returns how many went.
    fn enforce_bound(&mut self, rate: f64) -> usize {
        let max_bytes = (rate * MAX_QUEUE_DELAY.as_secs_f64()) as usize;
        let mut dropped = 0;
        while self.queue.len() > MAX_QUEUE_PACKETS
            || (self.queued_bytes > max_bytes && self.queue.len() > 1)
        {
            let victim = self.queue.iter().position(|q| !q.media.audio).unwrap_or(0);
            let Some(q) = self.queue.remove(victim) else {
                break;
            };
            self.queued_bytes -= q.transmit.data.len();
            if !q.media.audio && !self.lost_video.contains(&q.media.ssrc) {
                self.lost_video.push(q.media.ssrc);
            }
            dropped += 1;
        }
        dropped
    }

    /// The video streams that lost packets here and are due a keyframe
    /// request (each at most once per [`KEYFRAME_BACKOFF`]).
    pub fn take_keyframe_wanted(&mut self, now: Instant) -> Vec<u32> {
        if self.lost_video.is_empty() {
            return Vec::new();
        }
        self.keyframe_asked
            .retain(|(_, at)| now.saturating_duration_since(*at) < KEYFRAME_BACKOFF);
        let mut due = Vec::new();
        for ssrc in self.lost_video.drain(..) {
            if !self.keyframe_asked.iter().any(|(s, _)| *s == ssrc) {
                self.keyframe_asked.push((ssrc, now));
                due.push(ssrc);
            }
        }
        due
    }
}

/// How the core sees an outgoing media datagram of a Peer: by its SSRC,
/// the Subscription it belongs to (unknown streams count as video).
pub(super) fn media_of(
    subscriptions: &std::collections::HashMap<super::TrackId, Subscription>,
    datagram: &[u8],
) -> MediaOf {
    let ssrc = ssrc_of(datagram).unwrap_or(0);
    let audio = subscriptions
        .values()
        .find(|s| s.forwarder.out_ssrc() == ssrc)
        .is_some_and(|s| s.kind == MediaKind::Audio);
    MediaOf { ssrc, audio }
}

impl Core {
    /// After a Peer's datagrams went through its pacer: counts what the
    /// queue's bound dropped, remembers a Peer with packets waiting, and
    /// asks for keyframes for the videos that lost packets.
    pub(super) fn after_pacing(&mut self, now: std::time::Instant, id: PeerId, dropped: usize) {
        for _ in 0..dropped {
            self.counters.drop(DropReason::QueueFull);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.pacer.queued() > 0 && !self.paced.contains(&id) {
            self.paced.push(id);
        }
        if dropped == 0 {
            return;
        }
        let wanted: Vec<(super::TrackId, usize)> = peer
            .pacer
            .take_keyframe_wanted(now)
            .into_iter()
            .filter_map(|ssrc| {
                let sub = peer
                    .subscriptions
                    .values()
                    .find(|s| s.forwarder.out_ssrc() == ssrc)?;
                Some((sub.track, sub.layer.or(sub.target)?))
            })
            .collect();
        for (track, layer) in wanted {
            self.request_keyframe(now, track, layer);
        }
    }

    /// Sends what the paced Peers' buckets now cover.
    pub(super) fn release_paced(&mut self, now: std::time::Instant) {
        let Core {
            peers,
            paced,
            transmits,
            ..
        } = self;
        paced.retain(|id| match peers.get_mut(id) {
            Some(peer) => {
                peer.pacer.release(now, transmits);
                peer.pacer.queued() > 0
            }
            None => false,
        });
    }

    /// When the next paced packet may go.
    pub(super) fn next_paced_release(&self) -> Option<std::time::Instant> {
        self.paced
            .iter()
            .filter_map(|id| self.peers.get(id)?.pacer.next_release())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rtc::shared::TransportProtocol;

    fn packet(ssrc: u32, len: usize) -> Transmit {
        let mut data = BytesMut::zeroed(len.max(12));
        data[8..12].copy_from_slice(&ssrc.to_be_bytes());
        Transmit {
            destination: "192.0.2.1:5000".parse().unwrap(),
            protocol: TransportProtocol::UDP,
            data,
            received_at: None,
            media: true,
        }
    }

    const AUDIO: u32 = 1;
    const VIDEO: u32 = 2;

    fn kind(data: &[u8]) -> MediaOf {
        let ssrc = ssrc_of(data).unwrap();
        MediaOf {
            ssrc,
            audio: ssrc == AUDIO,
        }
    }

    #[test]
    fn unpaced_until_an_estimate_and_within_the_bucket_at_once() {
        let mut p = Pacer::default();
        let mut out = VecDeque::new();
        let now = Instant::now();
        for _ in 0..100 {
            p.offer(now, packet(VIDEO, 1200), |_| unreachable!(), &mut out);
        }
        assert_eq!(out.len(), 100, "no estimate: nothing waits");
        p.set_estimate(1_000_000.0);
        out.clear();
        // 64 kB of burst: a 50-packet keyframe goes at once, unclassified.
        for _ in 0..50 {
            p.offer(now, packet(VIDEO, 1200), |_| unreachable!(), &mut out);
        }
        assert_eq!(out.len(), 50);
        assert_eq!(p.queued(), 0);
    }

    #[test]
    fn a_slow_downlink_queues_then_drops_oldest_video_and_keeps_audio() {
        let mut p = Pacer::default();
        // 100 kbit/s estimate: 250 kbit/s pacing, 31 kB per second.
        p.set_estimate(100_000.0);
        let mut out = VecDeque::new();
        let t0 = Instant::now();
        let mut dropped = 0;
        let mut sent_audio = 0;
        // 1 Mbit/s of video and 48 kbit/s of audio for 3 s, 20 ms steps.
        for step in 0..150u32 {
            let now = t0 + Duration::from_millis(u64::from(step) * 20);
            p.release(now, &mut out);
            for _ in 0..2 {
                dropped += p.offer(now, packet(VIDEO, 1250), kind, &mut out);
            }
            dropped += p.offer(now, packet(AUDIO, 120), kind, &mut out);
            sent_audio += out
                .iter()
                .filter(|t| ssrc_of(&t.data) == Some(AUDIO))
                .count();
            out.clear();
        }
        assert!(
            dropped > 100,
            "video beyond the pacing rate is dropped: {dropped}"
        );
        assert!(
            p.queue.iter().any(|q| q.media.audio),
            "audio still waits its turn"
        );
        let bound = (250_000.0 / 8.0 * MAX_QUEUE_DELAY.as_secs_f64()) as usize;
        assert!(
            p.queued_bytes <= bound + 1250,
            "{} > {bound}",
            p.queued_bytes
        );
        let waiting_audio = p.queue.iter().filter(|q| q.media.audio).count();
        assert_eq!(sent_audio + waiting_audio, 150, "no audio dropped");
        assert_eq!(p.take_keyframe_wanted(t0), vec![VIDEO]);
        let later = t0 + Duration::from_millis(500);
        p.offer(later, packet(VIDEO, 60_000), kind, &mut out);
        p.offer(later, packet(VIDEO, 60_000), kind, &mut out);
        assert!(
            p.take_keyframe_wanted(later).is_empty(),
            "within the backoff"
        );
    }

    #[test]
    fn the_next_release_is_when_the_bucket_covers_the_front() {
        let mut p = Pacer::default();
        p.set_estimate(80_000.0); // 25 kB/s
        let mut out = VecDeque::new();
        let t0 = Instant::now();
        p.offer(t0, packet(VIDEO, 64_000), kind, &mut out);
        assert_eq!(out.len(), 1);
        p.offer(t0, packet(VIDEO, 1_000), kind, &mut out);
        assert_eq!(p.queued(), 1);
        let at = p.next_release().unwrap();
        assert!(
            at > t0 && at <= t0 + Duration::from_millis(41),
            "{:?}",
            at - t0
        );
        p.release(at, &mut out);
        assert_eq!((out.len(), p.queued()), (2, 0));
    }
}
