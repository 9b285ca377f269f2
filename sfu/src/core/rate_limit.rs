//! Per-Peer inbound caps: token buckets for bytes and packets, checked for
//! every datagram (or ICE-TCP frame) that arrives from one of the Peer's
//! ICE-checked addresses, before `rtc` decrypts it. A Peer over its cap
//! loses its own excess (`InboundDrop::RateLimit`); nothing it sends can
//! take more of the Worker than that. Plain arithmetic, no allocation.
//!
//! STUN from addresses the Peer has not pinned is not charged to it:
//! anyone who saw its ufrag could otherwise spend its budget. Such checks
//! end at `rtc`'s MESSAGE-INTEGRITY check.

use std::time::Instant;

/// The caps of one Peer's inbound traffic. Zero means no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// Kilobits per second (datagram payload bytes, as received).
    pub max_kbps: u32,
    /// Datagrams per second.
    pub max_pps: u32,
}

/// Default bitrate cap: far above a simulcast camera plus screen share.
pub const DEFAULT_MAX_KBPS: u32 = 20_000;
/// Default packet-rate cap.
pub const DEFAULT_MAX_PPS: u32 = 5_000;
/// A bucket holds this many seconds of its rate: a keyframe burst passes.
const BURST_SECONDS: f64 = 0.5;

impl Default for InboundLimits {
    fn default() -> Self {
        Self {
            max_kbps: DEFAULT_MAX_KBPS,
            max_pps: DEFAULT_MAX_PPS,
        }
    }
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. A `rate` of zero admits everything.
    pub fn new(rate: f64) -> Self {
        let burst = (rate * BURST_SECONDS).max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
    }

    fn unlimited(&self) -> bool {
        self.rate <= 0.0
    }
}

/// Both buckets of one Peer.
#[derive(Debug, Clone)]
pub struct InboundLimiter {
    bytes: TokenBucket,
    packets: TokenBucket,
}

impl InboundLimiter {
    /// Buckets for `limits`, full.
    pub fn new(limits: InboundLimits) -> Self {
        Self {
            bytes: TokenBucket::new(f64::from(limits.max_kbps) * 1000.0 / 8.0),
            packets: TokenBucket::new(f64::from(limits.max_pps)),
        }
    }

    /// Whether a datagram of `len` bytes arriving at `now` fits both caps;
    /// it is charged only if it does.
    pub fn admit(&mut self, now: Instant, len: usize) -> bool {
        self.bytes.refill(now);
        self.packets.refill(now);
        let len = len as f64;
        let bytes_ok = self.bytes.unlimited() || self.bytes.tokens >= len;
        let packets_ok = self.packets.unlimited() || self.packets.tokens >= 1.0;
        if !(bytes_ok && packets_ok) {
            return false;
        }
        if !self.bytes.unlimited() {
            self.bytes.tokens -= len;
        }
        if !self.packets.unlimited() {
            self.packets.tokens -= 1.0;
        }
        true
    }
}

impl Default for InboundLimiter {
    fn default() -> Self {
        Self::new(InboundLimits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn packet_rate_is_capped_after_the_burst() {
        let t0 = Instant::now();
        let mut l = InboundLimiter::new(InboundLimits {
            max_kbps: 0,
            max_pps: 100,
        });
        // The burst (half a second's worth) passes at once...
        let burst = (0..1000).filter(|_| l.admit(t0, 100)).count();
        assert_eq!(burst, 50);
        // ...then 100 a second.
        let mut admitted = 0;
        for ms in 1..=1000u64 {
            let now = t0 + Duration::from_millis(ms);
            admitted += (0..10).filter(|_| l.admit(now, 100)).count();
        }
        assert!((99..=101).contains(&admitted), "{admitted}");
    }

    #[test]
    fn bitrate_is_capped() {
        let t0 = Instant::now();
        let mut l = InboundLimiter::new(InboundLimits {
            max_kbps: 800, // 100,000 bytes a second
            max_pps: 0,
        });
        let mut bytes = 0;
        for ms in 0..2000u64 {
            let now = t0 + Duration::from_millis(ms);
            bytes += (0..10).filter(|_| l.admit(now, 1000)).count() * 1000;
        }
        // Burst of 50,000 plus 2 s at 100,000 a second.
        assert!((245_000..=255_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn zero_means_no_cap() {
        let t0 = Instant::now();
        let mut l = InboundLimiter::new(InboundLimits {
            max_kbps: 0,
            max_pps: 0,
        });
        assert!((0..100_000).all(|_| l.admit(t0, 1500)));
    }
}
