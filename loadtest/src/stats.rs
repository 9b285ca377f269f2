//! The run's shared measurements: every peer's record (join, connect, first
//! frame, failure), every received track's [`TrackStats`], send counters,
//! and a once-a-second time series for the live display and the HTML plots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::media::{now_ns, Parsed};
use crate::track_stats::{TrackStats, MAX_LATENCY_US};

/// Locks a mutex, recovering the data if a panicking thread poisoned it
/// (the counters stay meaningful either way).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Opus-sized audio.
    Audio,
    /// VP8 video.
    Video,
}

/// One synthetic participant, as the report sees it.
#[derive(Debug, Clone, Default)]
pub struct PeerRecord {
    /// `room/name`.
    pub label: String,
    /// The server's id for it, once joined.
    pub peer_id: Option<String>,
    /// Whether it publishes media.
    pub publishes: bool,
    /// Whether it should receive media from others.
    pub expects_media: bool,
    /// When it opened its signaling socket.
    pub started_ns: u64,
    /// When `joined` arrived.
    pub joined_ns: Option<u64>,
    /// When its PeerConnection reached `connected`.
    pub connected_ns: Option<u64>,
    /// Join time: first frame minus max(join, publisher start), in ms.
    pub join_ms: Option<f64>,
    /// When it left (churn, or the end of the run).
    pub left_ns: Option<u64>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// The run ended before it connected or got its first frame; it
    /// counts neither as a success nor as a failure.
    pub cut_off: bool,
    /// A slow subscriber (`--slow-subscribers`): bound to `--slow-bind-ip`
    /// and reported apart.
    pub slow: bool,
}

impl PeerRecord {
    /// Whether it joined, connected and (if it should) got a first frame.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
            && self.connected_ns.is_some()
            && (!self.expects_media || self.join_ms.is_some())
    }
}

/// One received track: who sent it, who got it, and its stats.
#[derive(Debug)]
pub struct TrackEntry {
    /// Index of the receiving peer in [`Collector::peers`].
    pub subscriber: usize,
    /// The publisher's peer id (the track's media stream id).
    pub publisher: String,
    /// Audio or video.
    pub kind: Kind,
    /// The measurements.
    pub stats: TrackStats,
}

/// One point of the time series, a second apart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// Peers connected.
    pub peers: u64,
    /// Peers failed so far.
    pub failed: u64,
    /// Packets sent per second (all publishers).
    pub tx_pps: f64,
    /// Packets received per second (all subscribers, new packets).
    pub rx_pps: f64,
    /// Payload bits received per second.
    pub rx_bps: f64,
    /// Loss in this interval, percent of expected packets.
    pub loss_pct: f64,
    /// Latency percentiles of packets received in this interval, ms.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub latency_p99_ms: Option<f64>,
}

/// Shared state of a run.
pub struct Collector {
    /// When the run started.
    pub start: Instant,
    peers: Mutex<Vec<Arc<Mutex<PeerRecord>>>>,
    tracks: Mutex<Vec<Arc<Mutex<TrackEntry>>>>,
    /// First send time of each publisher, by peer id.
    publishers: Mutex<HashMap<String, u64>>,
    latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
    /// RTP packets handed to the stack by publishers.
    pub sent_packets: AtomicU64,
    /// Their payload bytes.
    pub sent_bytes: AtomicU64,
    /// Keyframe requests (PLI) sent by subscribers.
    pub plis_sent: AtomicU64,
    /// Keyframe requests (PLI/FIR) received by publishers.
    pub plis_received: AtomicU64,
    /// Keyframes sent.
    pub keyframes_sent: AtomicU64,
    /// Packets that did not carry our stamp.
    pub unparsed: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    frozen: AtomicBool,
    series: Mutex<Vec<Sample>>,
    last_sample: Mutex<(f64, u64, u64, u64, u64, u64)>,
}

fn latency_histogram() -> Histogram<u64> {
    // Constant bounds within hdrhistogram's limits: cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid constant histogram bounds")
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// An empty collector; the run's clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            peers: Mutex::default(),
            tracks: Mutex::default(),
            publishers: Mutex::default(),
            latency: Mutex::new((latency_histogram(), latency_histogram())),
            sent_packets: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            plis_sent: AtomicU64::new(0),
            plis_received: AtomicU64::new(0),
            keyframes_sent: AtomicU64::new(0),
            unparsed: AtomicU64::new(0),
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
            series: Mutex::default(),
            last_sample: Mutex::default(),
        }
    }

    /// Registers a peer; returns its index and its shared record.
    pub fn add_peer(&self, record: PeerRecord) -> (usize, Arc<Mutex<PeerRecord>>) {
        let record = Arc::new(Mutex::new(record));
        let mut peers = lock(&self.peers);
        peers.push(Arc::clone(&record));
        (peers.len() - 1, record)
    }

    /// Registers a received track.
    pub fn add_track(
        &self,
        subscriber: usize,
        publisher: String,
        kind: Kind,
    ) -> Arc<Mutex<TrackEntry>> {
        let entry = Arc::new(Mutex::new(TrackEntry {
            subscriber,
            publisher,
            kind,
            stats: TrackStats::default(),
        }));
        lock(&self.tracks).push(Arc::clone(&entry));
        entry
    }

    /// Notes a publisher's first packet (its media start time).
    pub fn publisher_started(&self, peer_id: &str) {
        lock(&self.publishers)
            .entry(peer_id.to_owned())
            .or_insert_with(now_ns);
    }

    /// Stops accounting received packets (the run is ending; what arrives
    /// while peers close is not measured).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Whether [`Collector::freeze`] was called.
    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Accounts one received packet of a track; returns what it did to the
    /// track (or `None` while frozen).
    pub fn on_packet(
        &self,
        track: &Mutex<TrackEntry>,
        peer: &Mutex<PeerRecord>,
        parsed: &Parsed,
        len: usize,
    ) -> Option<crate::track_stats::Recorded> {
        if self.frozen() {
            return None;
        }
        let arrival = now_ns();
        let (recorded, kind, publisher) = {
            let mut entry = lock(track);
            let recorded = entry.stats.record(&parsed.stamp, len, arrival);
            (recorded, entry.kind, entry.publisher.clone())
        };
        if !recorded.new {
            return Some(recorded);
        }
        self.rx_packets.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
        {
            let mut latency = lock(&self.latency);
            let us = recorded.latency_us.clamp(1, MAX_LATENCY_US);
            latency.0.saturating_record(us);
            latency.1.saturating_record(us);
        }
        let first_frame = match kind {
            Kind::Video => recorded.frame.completed == Some(true),
            Kind::Audio => true,
        };
        if first_frame {
            let mut peer = lock(peer);
            if peer.join_ms.is_none() {
                let published = lock(&self.publishers).get(&publisher).copied();
                let from = published.unwrap_or(0).max(peer.started_ns);
                peer.join_ms = Some(arrival.saturating_sub(from) as f64 / 1e6);
            }
        }
        Some(recorded)
    }

    /// A snapshot of every peer record.
    pub fn peers(&self) -> Vec<PeerRecord> {
        lock(&self.peers).iter().map(|p| lock(p).clone()).collect()
    }

    /// Runs `f` over every track entry.
    pub fn for_each_track(&self, mut f: impl FnMut(&TrackEntry)) {
        for track in lock(&self.tracks).iter() {
            f(&lock(track));
        }
    }

    /// The whole run's latency histogram (microseconds).
    pub fn latency(&self) -> Histogram<u64> {
        lock(&self.latency).0.clone()
    }

    /// The time series so far.
    pub fn series(&self) -> Vec<Sample> {
        lock(&self.series).clone()
    }

    /// Takes one sample of the time series (call about once a second).
    pub fn sample(&self) -> Sample {
        let t = self.start.elapsed().as_secs_f64();
        let (mut expected, mut received) = (0u64, 0u64);
        self.for_each_track(|track| {
            expected += track.stats.seq.expected();
            received += track.stats.seq.received();
        });
        let (mut connected, mut failed) = (0, 0);
        for peer in lock(&self.peers).iter() {
            let peer = lock(peer);
            if peer.failure.is_some() {
                failed += 1;
            } else if peer.connected_ns.is_some() && peer.left_ns.is_none() {
                connected += 1;
            }
        }
        let (p50, p99) = {
            let mut latency = lock(&self.latency);
            let interval = &mut latency.1;
            let quantiles = (!interval.is_empty()).then(|| {
                (
                    interval.value_at_quantile(0.5) as f64 / 1e3,
                    interval.value_at_quantile(0.99) as f64 / 1e3,
                )
            });
            interval.reset();
            (quantiles.map(|q| q.0), quantiles.map(|q| q.1))
        };
        let tx = self.sent_packets.load(Ordering::Relaxed);
        let rx = self.rx_packets.load(Ordering::Relaxed);
        let rx_bytes = self.rx_bytes.load(Ordering::Relaxed);
        let mut last = lock(&self.last_sample);
        let dt = (t - last.0).max(1e-3);
        let d_expected = expected.saturating_sub(last.4);
        let d_received = received.saturating_sub(last.5);
        let sample = Sample {
            t,
            peers: connected,
            failed,
            tx_pps: tx.saturating_sub(last.1) as f64 / dt,
            rx_pps: rx.saturating_sub(last.2) as f64 / dt,
            rx_bps: rx_bytes.saturating_sub(last.3) as f64 * 8.0 / dt,
            loss_pct: if d_expected > 0 {
                d_expected.saturating_sub(d_received) as f64 * 100.0 / d_expected as f64
            } else {
                0.0
            },
            latency_p50_ms: p50,
            latency_p99_ms: p99,
        };
        *last = (t, tx, rx, rx_bytes, expected, received);
        lock(&self.series).push(sample.clone());
        sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Stamp;

    fn parsed(seq: u32, send_ns: u64, keyframe: bool) -> Parsed {
        Parsed {
            stamp: Stamp {
                seq,
                send_ns,
                frame: seq,
                index: 0,
                count: 1,
                keyframe,
            },
            vp8_keyframe: Some(keyframe),
        }
    }

    #[test]
    fn join_time_counts_from_the_later_of_join_and_publish() {
        let c = Collector::new();
        let (index, peer) = c.add_peer(PeerRecord {
            label: "r/p".into(),
            expects_media: true,
            started_ns: now_ns(),
            connected_ns: Some(now_ns()),
            ..PeerRecord::default()
        });
        let track = c.add_track(index, "p1".into(), Kind::Video);
        std::thread::sleep(std::time::Duration::from_millis(20));
        c.publisher_started("p1");
        // An interframe first: not a first frame yet.
        c.on_packet(&track, &peer, &parsed(0, now_ns(), false), 100);
        assert!(lock(&peer).join_ms.is_none());
        c.on_packet(&track, &peer, &parsed(1, now_ns(), true), 100);
        let join = lock(&peer).join_ms.expect("first keyframe sets join time");
        assert!(
            join < 20.0,
            "measured from the publisher's start, got {join} ms"
        );
        assert!(lock(&peer).succeeded());
    }

    #[test]
    fn samples_report_interval_loss_and_rates() {
        let c = Collector::new();
        let (index, peer) = c.add_peer(PeerRecord::default());
        let track = c.add_track(index, "p1".into(), Kind::Audio);
        for seq in [0, 1, 2, 4] {
            c.on_packet(&track, &peer, &parsed(seq, now_ns(), false), 80);
        }
        let s = c.sample();
        assert!(
            (s.loss_pct - 20.0).abs() < 1e-9,
            "1 of 5 lost: {}",
            s.loss_pct
        );
        assert!(s.latency_p50_ms.is_some());
        // Nothing new: no loss, no latency in the next interval.
        let s = c.sample();
        assert_eq!(s.loss_pct, 0.0);
        assert_eq!(s.latency_p99_ms, None);
        c.freeze();
        assert!(c
            .on_packet(&track, &peer, &parsed(5, now_ns(), false), 80)
            .is_none());
        assert_eq!(c.series().len(), 2);
    }
}
