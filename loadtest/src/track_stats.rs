//! Per-track receive accounting: exact loss from the stamped packet
//! counter (duplicates and reordering included), frame completeness,
//! RFC 3550 interarrival jitter and an end-to-end latency histogram.

use hdrhistogram::Histogram;

use crate::media::Stamp;

/// Latencies are recorded in microseconds up to this (60 s).
pub const MAX_LATENCY_US: u64 = 60_000_000;
/// How far before the first packet a late packet may still be placed.
const MAX_REBASE: u32 = 4_096;
/// How far ahead of the newest packet a packet may jump (about three hours
/// of video); anything further is not ours to account for.
const MAX_JUMP: u32 = 1 << 20;
/// A frame this many frames older than the newest one is given up on.
const FRAME_PATIENCE: u32 = 3;

/// Which packets of one track arrived, by the sender's packet counter.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    base: Option<u32>,
    /// Highest counter seen, relative to `base`.
    highest: u32,
    bits: Vec<u64>,
    received: u64,
    duplicates: u64,
    stray: u64,
}

impl SeqTracker {
    /// Records one packet; `true` if it is new (not a duplicate).
    pub fn record(&mut self, seq: u32) -> bool {
        let base = *self.base.get_or_insert(seq);
        if seq < base {
            if base - seq > MAX_REBASE {
                self.stray += 1;
                return false;
            }
            self.rebase(seq);
        }
        let base = self.base.unwrap_or(seq);
        let offset = seq - base;
        if offset > self.highest.saturating_add(MAX_JUMP) {
            self.stray += 1;
            return false;
        }
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return false;
        }
        self.bits[word] |= 1 << bit;
        self.received += 1;
        self.highest = self.highest.max(offset);
        true
    }

    fn rebase(&mut self, new_base: u32) {
        let Some(old) = self.base else { return };
        let shift = old - new_base;
        let mut bits = vec![0u64; (((self.highest + shift) / 64) + 1) as usize];
        for (w, word) in self.bits.iter().enumerate() {
            for b in 0..64 {
                if word & (1 << b) != 0 {
                    let at = (w as u32) * 64 + b + shift;
                    bits[(at / 64) as usize] |= 1 << (at % 64);
                }
            }
        }
        self.bits = bits;
        self.highest += shift;
        self.base = Some(new_base);
    }

    /// Packets the sender sent between the first and the newest one seen.
    pub fn expected(&self) -> u64 {
        self.base.map_or(0, |_| u64::from(self.highest) + 1)
    }

    /// Distinct packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets received more than once (retransmissions that raced the original).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets lost: expected but never received.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
}

/// What one packet did to frame assembly.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameEvent {
    /// A frame just became complete; `Some(true)` for a keyframe.
    pub completed: Option<bool>,
    /// The stream just became undecodable (a frame was lost), so a
    /// keyframe is needed.
    pub broken: bool,
}

/// Reassembles frames from stamped packets, like a decoder would.
#[derive(Debug, Default, Clone)]
pub struct FrameTracker {
    first: Option<u32>,
    highest: u32,
    /// Frames in progress: (frame, packets received, packets in frame, keyframe).
    pending: Vec<(u32, u16, u16, bool)>,
    complete: u64,
    keyframes: u64,
    decodable: bool,
}

impl FrameTracker {
    /// Records one new (not duplicate) packet.
    pub fn record(&mut self, stamp: &Stamp) -> FrameEvent {
        let mut event = FrameEvent::default();
        // Frames are counted from the first frame whose start we saw.
        let first = match self.first {
            Some(first) => first,
            None if stamp.index == 0 => *self.first.insert(stamp.frame),
            None => return event,
        };
        if stamp.frame < first {
            return event;
        }
        self.highest = self.highest.max(stamp.frame);
        match self.pending.iter_mut().find(|f| f.0 == stamp.frame) {
            Some(frame) => frame.1 += 1,
            None => self
                .pending
                .push((stamp.frame, 1, stamp.count.max(1), stamp.keyframe)),
        }
        if let Some(pos) = self.pending.iter().position(|f| f.1 >= f.2) {
            let (_, _, _, key) = self.pending.swap_remove(pos);
            self.complete += 1;
            if key {
                self.keyframes += 1;
                self.decodable = true;
            }
            event.completed = Some(key);
        }
        let cutoff = self.highest.saturating_sub(FRAME_PATIENCE);
        let before = self.pending.len();
        self.pending.retain(|f| f.0 >= cutoff);
        if self.pending.len() < before && self.decodable {
            self.decodable = false;
            event.broken = true;
        }
        event
    }

    /// Frames the sender produced from the first one seen to the newest.
    pub fn expected(&self) -> u64 {
        self.first
            .map_or(0, |first| u64::from(self.highest - first) + 1)
    }

    /// Frames received complete.
    pub fn complete(&self) -> u64 {
        self.complete
    }

    /// Keyframes received complete.
    pub fn keyframes(&self) -> u64 {
        self.keyframes
    }

    /// Whether a decoder would be showing pictures: a keyframe arrived and
    /// no frame has been lost since.
    pub fn decodable(&self) -> bool {
        self.decodable
    }
}

/// RFC 3550 §6.4.1 interarrival jitter, on send and arrival times.
#[derive(Debug, Default, Clone)]
pub struct Jitter {
    last_transit_ns: Option<i128>,
    jitter_ns: f64,
}

impl Jitter {
    /// Feeds one packet's transit time (arrival − send).
    pub fn record(&mut self, transit_ns: i128) {
        if let Some(last) = self.last_transit_ns {
            let d = (transit_ns - last).abs() as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_transit_ns = Some(transit_ns);
    }

    /// The current estimate, in milliseconds.
    pub fn ms(&self) -> f64 {
        self.jitter_ns / 1e6
    }
}

/// Everything measured about one received track.
#[derive(Debug, Clone)]
pub struct TrackStats {
    /// The packet counter accounting.
    pub seq: SeqTracker,
    /// Frame assembly (video) or packet counting (audio).
    pub frames: FrameTracker,
    /// Interarrival jitter.
    pub jitter: Jitter,
    /// End-to-end latency of new packets, in microseconds.
    pub latency: Histogram<u32>,
    /// Payload bytes received (new packets).
    pub bytes: u64,
}

impl Default for TrackStats {
    fn default() -> Self {
        Self {
            seq: SeqTracker::default(),
            frames: FrameTracker::default(),
            jitter: Jitter::default(),
            latency: new_track_histogram(),
            bytes: 0,
        }
    }
}

/// A 2-significant-digit histogram of microseconds, small enough to keep
/// one per track.
pub fn new_track_histogram() -> Histogram<u32> {
    // Bounds are constants within hdrhistogram's limits, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid constant histogram bounds")
}

/// What [`TrackStats::record`] learned from one packet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The packet was new (not a duplicate or stray).
    pub new: bool,
    /// Its latency in microseconds, when new.
    pub latency_us: u64,
    /// Frame assembly news.
    pub frame: FrameEvent,
}

impl TrackStats {
    /// Accounts for one received packet of `len` payload bytes that
    /// arrived at `arrival_ns`.
    pub fn record(&mut self, stamp: &Stamp, len: usize, arrival_ns: u64) -> Recorded {
        if !self.seq.record(stamp.seq) {
            return Recorded::default();
        }
        let transit = i128::from(arrival_ns) - i128::from(stamp.send_ns);
        self.jitter.record(transit);
        let latency_us = u64::try_from(transit.max(0) / 1_000).unwrap_or(u64::MAX);
        self.latency
            .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
        self.bytes += len as u64;
        Recorded {
            new: true,
            latency_us,
            frame: self.frames.record(stamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seq: u32, frame: u32, index: u16, count: u16, keyframe: bool) -> Stamp {
        Stamp {
            seq,
            send_ns: 1_000_000,
            frame,
            index,
            count,
            keyframe,
        }
    }

    #[test]
    fn loss_counts_gaps_not_duplicates() {
        let mut t = SeqTracker::default();
        for seq in [100, 101, 103, 103, 104, 107] {
            t.record(seq);
        }
        assert_eq!(t.expected(), 8, "100..=107");
        assert_eq!(t.received(), 5);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.lost(), 3, "102, 105, 106");
    }

    #[test]
    fn reordered_and_late_packets_fill_gaps() {
        let mut t = SeqTracker::default();
        for seq in [10, 12, 11, 13] {
            assert!(t.record(seq));
        }
        assert_eq!((t.expected(), t.lost()), (4, 0));
        // A packet from before the first one seen moves the base back.
        assert!(t.record(8));
        assert_eq!((t.expected(), t.received(), t.lost()), (6, 5, 1));
        assert!(!t.record(12), "still a duplicate after rebasing");
        assert!(!t.record(u32::MAX), "an absurd jump forward is a stray");
        assert_eq!(t.expected(), 6);
    }

    #[test]
    fn rebase_keeps_every_bit() {
        let mut t = SeqTracker::default();
        for seq in (10_000..10_200).step_by(3) {
            t.record(seq);
        }
        let received = t.received();
        t.record(9_990);
        assert_eq!(t.received(), received + 1);
        for seq in (10_000..10_200).step_by(3) {
            assert!(!t.record(seq), "{seq} was already there");
        }
        assert!(!t.record(10), "too far back: stray, not placed");
    }

    #[test]
    fn long_runs_without_loss() {
        let mut t = SeqTracker::default();
        for seq in 0..100_000 {
            t.record(seq);
        }
        assert_eq!((t.expected(), t.lost(), t.duplicates()), (100_000, 0, 0));
    }

    #[test]
    fn frames_complete_and_break() {
        let mut f = FrameTracker::default();
        // Start mid-frame: ignored until a frame start.
        assert_eq!(f.record(&stamp(0, 4, 2, 3, false)), FrameEvent::default());
        // Keyframe 5 in three packets, out of order.
        f.record(&stamp(1, 5, 0, 3, true));
        f.record(&stamp(3, 5, 2, 3, true));
        let e = f.record(&stamp(2, 5, 1, 3, true));
        assert_eq!(e.completed, Some(true));
        assert!(f.decodable());
        // Frame 6 loses a packet; frames 7..=10 arrive whole, and by then
        // frame 6 is given up on.
        f.record(&stamp(4, 6, 0, 2, false));
        let mut broke = false;
        for (i, frame) in (7..=10).enumerate() {
            let e = f.record(&stamp(10 + i as u32, frame, 0, 1, false));
            assert_eq!(e.completed, Some(false));
            broke |= e.broken;
        }
        assert!(broke, "losing frame 6 breaks decoding");
        assert!(!f.decodable());
        assert_eq!((f.expected(), f.complete(), f.keyframes()), (6, 5, 1));
        // The next keyframe repairs it.
        f.record(&stamp(20, 11, 0, 1, true));
        assert!(f.decodable());
    }

    #[test]
    fn latency_and_jitter() {
        let mut t = TrackStats::default();
        let mut s = stamp(0, 0, 0, 1, false);
        // Constant 2 ms transit: no jitter.
        for i in 0..10u32 {
            s.seq = i;
            s.frame = i;
            s.send_ns = u64::from(i) * 20_000_000;
            let r = t.record(&s, 100, s.send_ns + 2_000_000);
            assert!(r.new);
            assert_eq!(r.latency_us, 2_000);
        }
        assert!(t.jitter.ms() < 1e-9);
        assert_eq!(t.latency.len(), 10);
        let p50 = t.latency.value_at_quantile(0.5);
        assert!((1_980..=2_020).contains(&p50), "p50 {p50}");
        // Alternating 2 ms / 6 ms transit converges towards 4 ms of jitter.
        for i in 10..400u32 {
            s.seq = i;
            s.send_ns = u64::from(i) * 20_000_000;
            let transit = if i % 2 == 0 { 2_000_000 } else { 6_000_000 };
            t.record(&s, 100, s.send_ns + transit);
        }
        assert!(
            (t.jitter.ms() - 4.0).abs() < 0.3,
            "jitter {}",
            t.jitter.ms()
        );
        // A duplicate is not counted twice.
        let r = t.record(&s, 100, s.send_ns + 1);
        assert!(!r.new);
        assert_eq!(t.bytes, 400 * 100);
    }
}
