//! A token bucket per signaling socket and kind of request (calls, chat,
//! media state), so one client cannot flood others or the media Worker.

use std::time::{Duration, Instant};

/// Allows bursts of `capacity` requests, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(capacity: u32, per_second: f64) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_second,
            tokens: f64::from(capacity),
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; `false` if the bucket is empty.
    pub fn allow_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes one token now.
    pub fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    /// How long until the next token, for error messages.
    pub fn retry_after(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, 2.0);
        limiter.last = start;
        assert!(limiter.allow_at(start));
        assert!(limiter.allow_at(start));
        assert!(limiter.allow_at(start));
        assert!(!limiter.allow_at(start));
        assert!(limiter.retry_after() <= Duration::from_millis(500));
        assert!(!limiter.allow_at(start + Duration::from_millis(400)));
        assert!(limiter.allow_at(start + Duration::from_millis(500)));
        // Long idle refills only up to the capacity.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| limiter.allow_at(later)));
        assert!(!limiter.allow_at(later));
    }
}
