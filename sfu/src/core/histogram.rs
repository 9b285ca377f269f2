//! A fixed-bucket histogram kept by the Worker's thread alone, exported as a
//! Prometheus histogram at scrape time.

/// Bucket upper bounds (seconds) for the SFU's forwarding latency.
pub const FORWARD_LATENCY_BOUNDS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_2, 0.000_4, 0.000_8, 0.001_6, 0.003_2, 0.006_4, 0.012_8,
    0.025_6, 0.051_2,
];
/// Bucket upper bounds (seconds) for join time.
pub const JOIN_TIME_BOUNDS: &[f64] = &[
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];
/// Bucket upper bounds (seconds) for round-trip time.
pub const RTT_BOUNDS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0];
/// Bucket upper bounds (seconds) for interarrival jitter.
pub const JITTER_BOUNDS: &[f64] = &[0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
/// Bucket upper bounds (bits per second) for bandwidth estimates.
pub const BANDWIDTH_BOUNDS: &[f64] = &[
    50e3, 100e3, 200e3, 300e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 3e6, 5e6, 10e6, 20e6,
];
/// Bucket upper bounds (fraction 0–1) for packet loss.
pub const LOSS_BOUNDS: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

/// Counts of observations per bucket, plus their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the buckets, ascending; a last `+Inf` bucket is implied.
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative); one more than `bounds`.
    pub counts: Vec<u64>,
    /// Sum of all observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one value. NaN is ignored.
    pub fn observe(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        let bucket = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// Adds another histogram with the same bounds.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// Cumulative counts per bound, as Prometheus exports them (without `+Inf`).
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut running = 0;
        self.bounds.iter().zip(&self.counts).map(move |(b, c)| {
            running += c;
            (*b, running)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(h.counts, vec![2, 1, 1]);
        assert_eq!(h.count, 4);
        assert_eq!(h.sum, 6.0);
        assert_eq!(h.cumulative().collect::<Vec<_>>(), vec![(1.0, 2), (2.0, 3)]);
        let mut g = h.clone();
        g.merge(&h);
        assert_eq!(g.counts, vec![4, 2, 2]);
    }
}
