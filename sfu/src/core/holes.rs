//! Subscriber sequence numbers reserved for packets lost upstream, waiting
//! for them (`renumber.rs` reserves them).
//!
//! A retransmission from the publisher usually fills such a number within
//! a round trip or two. One that never comes leaves a hole nobody can fill:
//! a padding probe lost upstream whose hole could not be told from video
//! (the publisher keeps no padding to resend), or media whose every
//! retransmission was lost too. The subscriber NACKs that number in vain,
//! and a receiver that assembles frames by sequence number waits on it
//! until the next keyframe. So a number that has waited [`FILL_AFTER`] is
//! given up: the Forwarder sends a padding-only packet under it, which a
//! receiver takes as the missing number, and a copy of the lost packet
//! that still arrives later is dropped rather than sent twice under one
//! number.
//!
//! Only video numbers are filled. An audio receiver assembles nothing
//! across packets and conceals a lost one at once (no NACK is negotiated
//! for audio), so padding under an audio number would only hide the loss
//! from its statistics.
//!
//! The waiting numbers sit in a ring of [`CAPACITY`], allocated once, at a
//! Subscription's first hole (most never have one); when it is full the
//! oldest is forgotten and stays a hole, as it would have without this
//! ring.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a reserved number waits for its packet before it is given up:
/// well past the SFU's own repair of the publisher's leg (four NACKs 100 ms
/// apart, `peer_config::MAX_NACKS_PER_PACKET`, and a publisher round trip
/// for the last retransmission to arrive), with room for a Worker that is
/// behind on its input: a flood of datagrams can hold a retransmission in
/// the socket buffer for hundreds of milliseconds, and padding sent under
/// a number whose packet then arrives breaks that frame for good.
pub const FILL_AFTER: Duration = Duration::from_millis(1500);

/// How many reserved numbers wait at once per Subscription. 5% loss on a
/// publisher sending 300 packets per second (video and padding probes)
/// reserves at most about 22 within [`FILL_AFTER`], and usually far fewer:
/// most lost probes need no number at all.
pub const CAPACITY: usize = 32;

/// One reserved number: the subscriber's `out`, the publisher's extended
/// number `ext` it waits for, and since when.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    out: u16,
    ext: i64,
    since: Instant,
}

/// The reserved numbers of one Subscription, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Holes {
    waiting: VecDeque<Waiting>,
}

impl Holes {
    /// Number `out` was reserved at `now` for publisher number `ext`.
    pub fn wait(&mut self, out: u16, ext: i64, now: Instant) {
        if self.waiting.capacity() == 0 {
            // The one allocation, at the first hole.
            self.waiting.reserve_exact(CAPACITY);
        }
        if self.waiting.len() == CAPACITY {
            // Never grown past its first allocation.
            self.waiting.pop_front();
        }
        self.waiting.push_back(Waiting {
            out,
            ext,
            since: now,
        });
    }

    /// Publisher number `ext` arrived and went into its reserved number.
    pub fn filled(&mut self, ext: i64) {
        self.waiting.retain(|w| w.ext != ext);
    }

    /// The oldest number that has waited [`FILL_AFTER`], taken out of the
    /// ring: the subscriber's number and the publisher's.
    pub fn take_due(&mut self, now: Instant) -> Option<(u16, i64)> {
        let oldest = self.waiting.front()?;
        if now.saturating_duration_since(oldest.since) < FILL_AFTER {
            return None;
        }
        self.waiting.pop_front().map(|w| (w.out, w.ext))
    }

    /// Forgets every waiting number (the source changed).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_due_after_fill_after_and_only_once() {
        let t0 = Instant::now();
        let mut h = Holes::default();
        h.wait(7, 107, t0);
        h.wait(9, 109, t0 + Duration::from_millis(100));
        assert_eq!(h.take_due(t0 + FILL_AFTER - Duration::from_millis(1)), None);
        assert_eq!(h.take_due(t0 + FILL_AFTER), Some((7, 107)));
        assert_eq!(h.take_due(t0 + FILL_AFTER), None, "9 waits 100 ms more");
        assert_eq!(
            h.take_due(t0 + FILL_AFTER + Duration::from_millis(100)),
            Some((9, 109))
        );
        assert_eq!(h.take_due(t0 + FILL_AFTER * 10), None);
    }

    #[test]
    fn a_filled_number_is_never_due() {
        let t0 = Instant::now();
        let mut h = Holes::default();
        h.wait(7, 107, t0);
        h.wait(8, 108, t0);
        h.filled(107);
        assert_eq!(h.take_due(t0 + FILL_AFTER), Some((8, 108)));
        assert_eq!(h.take_due(t0 + FILL_AFTER), None);
    }

    #[test]
    fn a_full_ring_forgets_the_oldest_without_growing() {
        let t0 = Instant::now();
        let mut h = Holes::default();
        assert_eq!(h.waiting.capacity(), 0, "nothing allocated before a hole");
        h.wait(0, 0, t0);
        let capacity = h.waiting.capacity();
        for i in 1..(CAPACITY as u16 + 5) {
            h.wait(i, i64::from(i), t0);
        }
        assert_eq!(h.waiting.capacity(), capacity);
        assert_eq!(h.take_due(t0 + FILL_AFTER), Some((5, 5)));
        h.clear();
        assert_eq!(h.take_due(t0 + FILL_AFTER), None);
    }
}
