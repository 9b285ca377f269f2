//! `fanout --slow-subscribers N --slow-bind-ip IP`: the first N subscribers
//! bind their PeerConnections to IP, whose downlink the caller throttles
//! (for example with `tc` on that address, as `loadtest/ci-slow.sh` does).
//! Their tracks are left out of the report's loss, latency and frame
//! figures, and so out of the thresholds, which then say whether the
//! *other* subscribers were disturbed; the slow ones get a figure set of
//! their own here.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::Percentiles;
use crate::stats::{Kind, TrackEntry};

/// What the slow subscribers received.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SlowReport {
    /// How many peers were slow.
    pub peers: u64,
    /// Packets their receivers expected.
    pub expected: u64,
    /// Distinct packets they received.
    pub received: u64,
    /// Expected but never received.
    pub lost: u64,
    /// lost / expected, percent.
    pub loss_pct: f64,
    /// Audio packets: expected, and lost, percent.
    pub audio_expected: u64,
    /// Lost audio, percent of the audio expected.
    pub audio_loss_pct: f64,
    /// End-to-end latency of what they received, ms.
    pub latency_ms: Percentiles,
    /// Video frames expected and received complete.
    pub frames_expected: u64,
    /// Video frames received complete.
    pub frames_complete: u64,
}

/// Adds up the slow subscribers' tracks.
#[derive(Default)]
pub struct SlowTally {
    report: SlowReport,
    audio_lost: u64,
    latency: Option<Histogram<u32>>,
}

impl SlowTally {
    /// Counts one of their tracks.
    pub fn add(&mut self, t: &TrackEntry) {
        let s = &t.stats;
        let r = &mut self.report;
        r.expected += s.seq.expected();
        r.received += s.seq.received();
        r.lost += s.seq.lost();
        match t.kind {
            Kind::Audio => {
                r.audio_expected += s.seq.expected();
                self.audio_lost += s.seq.lost();
            }
            Kind::Video => {
                r.frames_expected += s.frames.expected();
                r.frames_complete += s.frames.complete();
            }
        }
        merge(&mut self.latency, &s.latency);
    }

    /// The report, for `peers` slow peers.
    pub fn finish(mut self, peers: u64) -> SlowReport {
        let r = &mut self.report;
        r.peers = peers;
        r.loss_pct = pct(r.lost, r.expected);
        r.audio_loss_pct = pct(self.audio_lost, r.audio_expected);
        if let Some(h) = &self.latency {
            r.latency_ms = Percentiles::from_us(h);
        }
        self.report
    }
}

/// Adds `h` into `into` (a copy of the first one seen).
pub fn merge(into: &mut Option<Histogram<u32>>, h: &Histogram<u32>) {
    match into {
        Some(total) => {
            // Same bounds for every track's histogram: cannot fail.
            let _ = total.add(h);
        }
        None => *into = Some(h.clone()),
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
