//! Per-Peer budget for forwarded media, so that a subscriber whose downlink
//! cannot keep up gets only what its connection can carry, without
//! touching anyone else.
//!
//! Each Peer has a token bucket filled at [`BUDGET_FACTOR`] times its
//! bandwidth estimate (GCC from its TWCC feedback, or its REMB), deep
//! enough for a keyframe ([`MIN_BURST_BYTES`], or [`BURST`] at that rate).
//! A forwarded video packet the bucket cannot cover is dropped *before* it
//! reaches `rtc`; audio always goes (it may take the bucket below zero), so
//! video is what a slow downlink loses, never audio first. The core counts
//! each drop (`over_budget`) and asks the publisher for a keyframe, at most
//! once per [`KEYFRAME_BACKOFF`] per subscriber, so that one hopeless
//! downlink does not make a publisher send keyframes to everyone all the
//! time.
//!
//! Why before `rtc`, and not a queue of encrypted datagrams: `rtc` gives
//! every packet it sends a transport-wide sequence number, so a datagram
//! dropped after that is reported lost in the subscriber's TWCC feedback.
//! GCC then lowers the estimate, the budget shrinks and drops more: a
//! spiral that took a healthy 5-person room (3.4 Mbit/s per subscriber,
//! above 2.5 times GCC's 1 Mbit/s start) down to GCC's 100 kbit/s floor and
//! 18% loss. Dropped before `rtc`, a packet is never sent, so the estimate
//! follows only what the network did to what was sent, and climbs while
//! the downlink keeps up.
//!
//! The factor is large because there is no queue to smooth bursts: a
//! subscriber whose estimate fits its media is never limited. A Peer
//! without an estimate yet is not limited.

use std::time::{Duration, Instant};

/// The budget is this many times the bandwidth estimate.
pub const BUDGET_FACTOR: f64 = 4.0;
/// The bucket holds this long at the budget rate...
pub const BURST: Duration = Duration::from_millis(100);
/// ...and never less than this: a keyframe goes out at once.
pub const MIN_BURST_BYTES: f64 = 64_000.0;
/// After a drop, a keyframe is asked for at most this often per subscriber.
pub const KEYFRAME_BACKOFF: Duration = Duration::from_secs(2);
/// A subscriber that had video dropped this recently is still behind: its
/// NACKs are not answered (a resend would only take budget from new media).
pub const BEHIND_FOR: Duration = Duration::from_millis(500);

/// One Peer's budget (see the module docs).
#[derive(Debug, Default)]
pub struct Budget {
    /// Bytes per second; `None` before the first estimate (no limit).
    rate: Option<f64>,
    tokens: f64,
    refilled_at: Option<Instant>,
    /// When video was last dropped for it.
    dropped_at: Option<Instant>,
    /// When a keyframe was last asked for after drops.
    keyframe_at: Option<Instant>,
}

impl Budget {
    /// Sets the rate from a bandwidth estimate in bits per second.
    pub fn set_estimate(&mut self, bps: f64) {
        if bps.is_finite() && bps > 0.0 {
            self.rate = Some(bps * BUDGET_FACTOR / 8.0);
        }
    }

    fn depth(rate: f64) -> f64 {
        (rate * BURST.as_secs_f64()).max(MIN_BURST_BYTES)
    }

    /// Whether a forwarded packet of `size` bytes may go now. Audio always
    /// may; video only within the budget.
    pub fn admit(&mut self, now: Instant, size: usize, audio: bool) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let elapsed = self
            .refilled_at
            .map(|t| now.saturating_duration_since(t).as_secs_f64())
            .unwrap_or(f64::INFINITY);
        self.tokens = (self.tokens + rate * elapsed).min(Self::depth(rate));
        self.refilled_at = Some(now);
        let size = size as f64;
        if audio || self.tokens >= size {
            self.tokens -= size;
            return true;
        }
        self.dropped_at = Some(now);
        false
    }

    /// Whether video was dropped for it within [`BEHIND_FOR`].
    pub fn is_behind(&self, now: Instant) -> bool {
        self.dropped_at
            .is_some_and(|t| now.saturating_duration_since(t) < BEHIND_FOR)
    }

    /// After a drop: whether to ask for a keyframe now (at most once per
    /// [`KEYFRAME_BACKOFF`]).
    pub fn keyframe_due(&mut self, now: Instant) -> bool {
        let due = self
            .keyframe_at
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_BACKOFF);
        if due {
            self.keyframe_at = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_until_an_estimate_and_a_keyframe_fits_at_once() {
        let mut p = Budget::default();
        let now = Instant::now();
        assert!((0..1000).all(|_| p.admit(now, 1200, false)), "no estimate");
        p.set_estimate(1_000_000.0);
        // 64 kB of burst: a 50-packet keyframe goes at once.
        assert!((0..50).all(|_| p.admit(now, 1200, false)));
        assert!(!p.is_behind(now));
    }

    #[test]
    fn a_slow_downlink_loses_video_beyond_its_budget_and_never_audio() {
        let mut p = Budget::default();
        // 100 kbit/s estimate: 400 kbit/s budget, 50 kB/s.
        p.set_estimate(100_000.0);
        let t0 = Instant::now();
        let (mut video, mut audio) = (0u32, 0u32);
        // 1 Mbit/s of video and 48 kbit/s of audio for 10 s, 20 ms steps.
        for step in 0..500u32 {
            let now = t0 + Duration::from_millis(u64::from(step) * 20);
            video += u32::from(p.admit(now, 1250, false));
            video += u32::from(p.admit(now, 1250, false));
            audio += u32::from(p.admit(now, 120, true));
        }
        assert_eq!(audio, 500, "every audio packet");
        // 10 s at 50 kB/s, less the audio, plus the first burst.
        let expected = (10.0 * 50_000.0 - 500.0 * 120.0 + MIN_BURST_BYTES) / 1250.0;
        assert!(
            (f64::from(video) - expected).abs() < 10.0,
            "{video} video packets, about {expected:.0} expected"
        );
        let end = t0 + Duration::from_secs(10);
        assert!(p.is_behind(end));
        assert!(p.keyframe_due(end));
        assert!(!p.keyframe_due(end + Duration::from_secs(1)), "backoff");
        assert!(p.keyframe_due(end + KEYFRAME_BACKOFF));
    }
}
