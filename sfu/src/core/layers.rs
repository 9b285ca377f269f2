//! Simulcast layers: the encodings of one published video (rids `q`, `h`,
//! `f`, lowest to highest), and the per-Subscription [`LayerSelector`] that
//! picks which one a subscriber receives.
//!
//! The selector picks the highest layer that fits both the subscriber's
//! budget (its bandwidth estimate, shared among its videos, with headroom)
//! and what it asked for (the rendered size of its tile, or an explicit
//! maximum). It moves down at once when the budget falls, and up only after
//! the higher layer has fit for [`UPGRADE_HOLD`], so an estimate that
//! oscillates does not make it flap. When not even the lowest layer fits,
//! the subscriber's video pauses (audio goes on), and it resumes once the
//! lowest layer fits with room to spare for [`UPGRADE_HOLD`].

use std::time::{Duration, Instant};

use super::dedup::SeqWindow;
use super::nack_cache::PacketCache;

/// A higher layer must fit this long before the selector moves up to it.
pub const UPGRADE_HOLD: Duration = Duration::from_secs(3);
/// A layer's bitrate times this must fit in the budget (headroom for
/// bursts and the estimate's error).
pub const HEADROOM: f64 = 1.15;
/// To resume paused video, the lowest layer needs this much more room.
pub const RESUME_HEADROOM: f64 = 1.5;
/// A layer that has sent nothing for this long is not offered to
/// subscribers (its publisher stopped it, or its uplink cannot carry it).
pub const LAYER_STALE: Duration = Duration::from_secs(2);

/// What each layer is assumed to need before its bitrate has been
/// measured, by rank (`q`, `h`, `f`), in bits per second.
pub const NOMINAL_BITRATES: [f64; 3] = [150_000.0, 500_000.0, 1_500_000.0];

/// The rank of a rid: `q` < `h` < `f`; the single layer of a video without
/// simulcast (no rid) is rank 0; unknown rids rank after the known ones.
pub fn rank(rid: &str) -> u8 {
    match rid {
        "" | "q" | "l" | "low" | "0" => 0,
        "h" | "m" | "mid" | "1" => 1,
        "f" | "high" | "2" => 2,
        _ => 3,
    }
}

/// One encoding of a Track as the publisher sends it.
#[derive(Debug)]
pub struct Layer {
    /// Its RTP stream id (`q`, `h`, `f`), empty without simulcast.
    pub rid: String,
    /// Its SSRC.
    pub ssrc: u32,
    /// Recent sequence numbers, to drop duplicates.
    pub arrivals: SeqWindow,
    /// Recent packets, to answer subscribers' NACKs.
    pub cache: PacketCache,
    /// RTP bytes received since the last bitrate sample.
    pub bytes: u64,
    /// Its measured bitrate, in bits per second (0 until measured).
    pub bitrate: f64,
    /// When its last packet arrived.
    pub last_packet: Option<Instant>,
    /// When a keyframe was last requested for it.
    pub last_keyframe_request: Option<Instant>,
}

impl Layer {
    /// A layer with nothing received yet.
    pub fn new(rid: String, ssrc: u32, cache_slots: usize) -> Self {
        Self {
            rid,
            ssrc,
            arrivals: SeqWindow::default(),
            cache: PacketCache::new(cache_slots),
            bytes: 0,
            bitrate: 0.0,
            last_packet: None,
            last_keyframe_request: None,
        }
    }

    /// The bitrate to plan with: the measured one, or a nominal one by
    /// rank before a measurement exists.
    pub fn planning_bitrate(&self) -> f64 {
        if self.bitrate > 0.0 {
            self.bitrate
        } else {
            NOMINAL_BITRATES[usize::from(rank(&self.rid).min(2))]
        }
    }

    /// Whether it sent something recently.
    pub fn is_live(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_STALE)
    }
}

/// What the selector knows of one layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerInfo {
    /// Bits per second it needs.
    pub bitrate: f64,
    /// It can be received now (live, or resumable at the publisher).
    pub available: bool,
}

/// The layer choice of one Subscription.
#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    target: Option<usize>,
    /// Since when a higher choice (the index) has fit.
    better_since: Option<(usize, Instant)>,
    /// The selector has paused the video for lack of bandwidth.
    paused: bool,
    started: bool,
}

impl LayerSelector {
    /// The layer to receive, or `None` for no video.
    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// Whether video is paused for lack of bandwidth.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Decides the layer at `now`. `layers` are lowest first; `budget` is
    /// the bits per second this subscription may use (`None`: no estimate
    /// yet, so no limit); `max_layer` caps the choice (`None`: the
    /// subscriber wants no video, as for a hidden tile). Returns the new
    /// target if it changed.
    pub fn select(
        &mut self,
        now: Instant,
        layers: &[LayerInfo],
        budget: Option<f64>,
        max_layer: Option<usize>,
    ) -> Option<Option<usize>> {
        let before = self.target;
        let Some(max_layer) = max_layer else {
            // No video wanted: stop at once; when it is wanted again, the
            // first choice is taken at once too.
            self.target = None;
            self.better_since = None;
            self.paused = false;
            self.started = false;
            return (before != self.target).then_some(self.target);
        };
        let allowed = layers
            .iter()
            .enumerate()
            .take(max_layer.saturating_add(1))
            .filter(|(_, l)| l.available);
        let fits = |headroom: f64, l: &LayerInfo| budget.is_none_or(|b| l.bitrate * headroom <= b);
        let lowest = allowed.clone().next();
        // `None`: not even the lowest fits, so pause (or stay paused).
        let wanted = allowed
            .filter(|(_, l)| fits(HEADROOM, l))
            .map(|(i, _)| i)
            .next_back();
        if !self.started {
            // The first choice is taken at once.
            self.started = true;
            self.target = wanted;
            self.paused = wanted.is_none() && lowest.is_some();
            return (before != self.target).then_some(self.target);
        }
        match (self.target, wanted) {
            // Down (or to a pause): at once.
            (Some(cur), Some(w)) if w < cur => self.set(Some(w)),
            (Some(_), None) => {
                self.paused = lowest.is_some();
                self.set(None);
            }
            // Up, or out of a pause: only after it has fit for a while; a
            // pause ends only with extra room.
            (cur, Some(w)) if cur.is_none_or(|c| w > c) => {
                let resumable =
                    cur.is_some() || lowest.is_some_and(|(_, l)| fits(RESUME_HEADROOM, l));
                match self.better_since {
                    Some((i, since)) if i == w && resumable => {
                        if now.saturating_duration_since(since) >= UPGRADE_HOLD {
                            self.paused = false;
                            self.set(Some(w));
                        }
                    }
                    _ if resumable => self.better_since = Some((w, now)),
                    _ => self.better_since = None,
                }
            }
            // The current choice is still the best: nothing pending.
            _ => self.better_since = None,
        }
        (before != self.target).then_some(self.target)
    }

    /// Forgets the pending upgrade and the pause, so that the next choice
    /// is taken at once: the subscriber's wishes changed (a tile grew), and
    /// waiting to see the estimate hold is for estimates, not for wishes.
    pub fn restart(&mut self) {
        self.started = false;
        self.better_since = None;
    }

    fn set(&mut self, target: Option<usize>) {
        self.target = target;
        self.better_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: f64 = 150_000.0;
    const H: f64 = 500_000.0;
    const F: f64 = 1_500_000.0;

    fn layers() -> [LayerInfo; 3] {
        [Q, H, F].map(|bitrate| LayerInfo {
            bitrate,
            available: true,
        })
    }

    #[test]
    fn ranks_order_the_usual_rids() {
        assert!(rank("q") < rank("h") && rank("h") < rank("f"));
        assert_eq!(rank(""), 0);
        assert!(rank("x") > rank("f"));
    }

    #[test]
    fn starts_at_the_best_layer_that_fits() {
        let mut s = LayerSelector::default();
        let t0 = Instant::now();
        assert_eq!(s.select(t0, &layers(), Some(5e6), Some(2)), Some(Some(2)));
        let mut s = LayerSelector::default();
        assert_eq!(
            s.select(t0, &layers(), Some(700_000.0), Some(2)),
            Some(Some(1))
        );
        let mut s = LayerSelector::default();
        assert_eq!(
            s.select(t0, &layers(), None, Some(0)),
            Some(Some(0)),
            "asked for q"
        );
    }

    #[test]
    fn downgrades_within_one_round_of_the_estimate_dropping() {
        let mut s = LayerSelector::default();
        let t0 = Instant::now();
        s.select(t0, &layers(), Some(5e6), Some(2));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(
            s.select(t1, &layers(), Some(300_000.0), Some(2)),
            Some(Some(0))
        );
    }

    #[test]
    fn upgrades_only_after_the_estimate_has_been_stable() {
        let mut s = LayerSelector::default();
        let t0 = Instant::now();
        s.select(t0, &layers(), Some(300_000.0), Some(2));
        assert_eq!(s.target(), Some(0));
        let mut t = t0;
        // f first fits at t0 + 0.5 s; it must keep fitting for 3 s.
        for _ in 0..6 {
            t += Duration::from_millis(500);
            assert_eq!(
                s.select(t, &layers(), Some(5e6), Some(2)),
                None,
                "held back"
            );
        }
        t += Duration::from_millis(500);
        assert_eq!(s.select(t, &layers(), Some(5e6), Some(2)), Some(Some(2)));
    }

    #[test]
    fn an_oscillating_estimate_does_not_flap() {
        let mut s = LayerSelector::default();
        let t0 = Instant::now();
        s.select(t0, &layers(), Some(700_000.0), Some(2));
        assert_eq!(s.target(), Some(1));
        let mut changes = 0;
        let mut t = t0;
        // Every second the estimate swings between "h fits" and "f fits".
        for i in 0..40 {
            t += Duration::from_millis(500);
            let budget = if (i / 2) % 2 == 0 { 5e6 } else { 700_000.0 };
            if s.select(t, &layers(), Some(budget), Some(2)).is_some() {
                changes += 1;
            }
        }
        assert_eq!(changes, 0, "never held f long enough to move up");
        assert_eq!(s.target(), Some(1));
    }

    #[test]
    fn pauses_when_nothing_fits_and_resumes_with_room_to_spare() {
        let mut s = LayerSelector::default();
        let t0 = Instant::now();
        s.select(t0, &layers(), Some(5e6), Some(2));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(
            s.select(t1, &layers(), Some(100_000.0), Some(2)),
            Some(None)
        );
        assert!(s.paused());
        // Just enough for q, but not with resume headroom: stays paused.
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_millis(500);
            assert_eq!(s.select(t, &layers(), Some(200_000.0), Some(2)), None);
        }
        for _ in 0..6 {
            t += Duration::from_millis(500);
            s.select(t, &layers(), Some(300_000.0), Some(2));
        }
        assert_eq!(s.target(), None, "q has fit with room for 2.5 s only");
        t += Duration::from_millis(500);
        s.select(t, &layers(), Some(300_000.0), Some(2));
        assert_eq!(s.target(), Some(0));
        assert!(!s.paused());
    }

    #[test]
    fn a_hidden_tile_gets_no_video_at_once_and_unavailable_layers_are_skipped() {
        let mut s = LayerSelector::default();
        let t0 = Instant::now();
        s.select(t0, &layers(), Some(5e6), Some(2));
        assert_eq!(s.select(t0, &layers(), Some(5e6), None), Some(None));
        assert!(!s.paused(), "not a pause for bandwidth");
        let mut only_q = layers();
        only_q[1].available = false;
        only_q[2].available = false;
        let mut s = LayerSelector::default();
        assert_eq!(s.select(t0, &only_q, Some(5e6), Some(2)), Some(Some(0)));
    }
}
