//! The report: everything a run measured, as a serialisable structure
//! (`--json`), a human table on stdout, and the threshold verdicts that
//! decide the exit status.

use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Cli, Scenario, Target};
use crate::scenario::RunOutcome;
use crate::server_metrics::{server_report, ServerReport};
use crate::slow::{merge, SlowReport, SlowTally};
use crate::soak::SoakReport;
use crate::stats::{Kind, Sample};

/// Percentiles of a distribution, milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Values measured.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn from_us<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Self {
            count: h.len(),
            p50: Some(ms(h.value_at_quantile(0.50))),
            p95: Some(ms(h.value_at_quantile(0.95))),
            p99: Some(ms(h.value_at_quantile(0.99))),
            max: Some(ms(h.max())),
        }
    }

    /// From raw millisecond values (nearest-rank).
    pub fn from_ms(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Self {
            count: v.len() as u64,
            p50: Some(rank(0.50)),
            p95: Some(rank(0.95)),
            p99: Some(rank(0.99)),
            max: v.last().copied(),
        }
    }
}

/// Peer outcomes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Peers {
    /// Peers in the scenario's plan (churners not included).
    pub planned: u64,
    /// Peers started (churners included).
    pub attempted: u64,
    /// Of those, peers that published media.
    pub publishers: u64,
    /// Joined, connected and (if receiving) got a first frame.
    pub succeeded: u64,
    /// Failed, with a reason each.
    pub failed: u64,
    /// Cut off by the end of the run before they got going (not counted).
    pub cut_off: u64,
    /// succeeded / (attempted − cut_off), percent.
    pub join_success_pct: f64,
    /// One entry per failed peer.
    pub failures: Vec<Failure>,
}

/// One failed peer.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// `room/name`.
    pub peer: String,
    /// What went wrong.
    pub reason: String,
}

/// Packet accounting over all received tracks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Packets {
    /// Sent by publishers.
    pub sent: u64,
    /// Their payload bytes.
    pub sent_bytes: u64,
    /// Expected by receivers (first to last counter seen, per track).
    pub expected: u64,
    /// Distinct packets received.
    pub received: u64,
    /// Expected but never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicates: u64,
    /// Packets without our stamp.
    pub unparsed: u64,
    /// lost / expected, percent.
    pub loss_pct: f64,
}

/// One received track.
#[derive(Debug, Clone, Serialize)]
pub struct TrackReport {
    /// The receiving peer (`room/name`).
    pub subscriber: String,
    /// The publisher's peer id.
    pub publisher: String,
    /// Audio or video.
    pub kind: Kind,
    /// Distinct packets received.
    pub received: u64,
    /// Expected.
    pub expected: u64,
    /// Loss, percent.
    pub loss_pct: f64,
    /// RFC 3550 jitter, ms.
    pub jitter_ms: f64,
    /// End-to-end latency, ms.
    pub latency_ms: Percentiles,
    /// Frames expected (video: from the first frame start seen).
    pub frames_expected: u64,
    /// Frames received complete.
    pub frames_complete: u64,
    /// Keyframes received complete.
    pub keyframes_complete: u64,
}

/// A threshold and whether the run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Which flag.
    pub name: String,
    /// Its limit.
    pub limit: f64,
    /// The measured value (`None`: nothing measured, which fails).
    pub actual: Option<f64>,
    /// Met.
    pub passed: bool,
}

/// Everything, as written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `sfu-loadtest`.
    pub tool: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The scenario.
    pub scenario: Scenario,
    /// The server kind.
    pub target: Target,
    /// The server's URL.
    pub url: String,
    /// The command line.
    pub command: String,
    /// Ctrl-C cut it short: figures are partial.
    pub interrupted: bool,
    /// Start of the full-load window, seconds into the run.
    pub steady_start_s: f64,
    /// Full-load window, seconds.
    pub steady_s: f64,
    /// Whole run, seconds.
    pub elapsed_s: f64,
    /// Peer outcomes.
    pub peers: Peers,
    /// Join time, ms: from the later of joining and the publisher's first
    /// packet, to the first complete video frame (audio: first packet).
    pub join_time_ms: Percentiles,
    /// Signaling join to PeerConnection connected, ms.
    pub connect_time_ms: Percentiles,
    /// End-to-end latency of all packets, ms (the slow subscribers' left
    /// out, see `slow_subscribers`).
    pub latency_ms: Percentiles,
    /// Mean RFC 3550 jitter over tracks, ms.
    pub jitter_ms_mean: Option<f64>,
    /// Packet accounting (the slow subscribers' left out).
    pub packets: Packets,
    /// `fanout --slow-subscribers`: what the slow subscribers got.
    pub slow_subscribers: Option<SlowReport>,
    /// Video frames expected by receivers.
    pub frames_expected: u64,
    /// Video frames received complete.
    pub frames_complete: u64,
    /// PLIs sent by subscribers.
    pub plis_sent: u64,
    /// PLIs received by publishers.
    pub plis_received: u64,
    /// Keyframes sent by publishers.
    pub keyframes_sent: u64,
    /// The server's figures.
    pub server: ServerReport,
    /// Per received track.
    pub tracks: Vec<TrackReport>,
    /// Once a second.
    pub timeseries: Vec<Sample>,
    /// `churn --cycles`: the server over the soak.
    pub soak: Option<SoakReport>,
    /// The thresholds given.
    pub thresholds: Vec<Verdict>,
    /// All thresholds met, some peer succeeded, and not interrupted.
    pub passed: bool,
}

/// Builds the report of a finished run.
pub fn build(cli: &Cli, outcome: &RunOutcome, server_source: String) -> Report {
    let c = &outcome.collector;
    let records = c.peers();
    let mut peers = Peers {
        planned: outcome.planned_peers as u64,
        ..Peers::default()
    };
    let (mut join, mut connect) = (Vec::new(), Vec::new());
    for p in &records {
        peers.attempted += 1;
        peers.publishers += u64::from(p.publishes);
        if let Some(reason) = &p.failure {
            peers.failed += 1;
            peers.failures.push(Failure {
                peer: p.label.clone(),
                reason: reason.clone(),
            });
        } else if p.cut_off {
            peers.cut_off += 1;
        } else if p.succeeded() {
            peers.succeeded += 1;
        }
        join.extend(p.join_ms);
        if let (Some(joined), Some(connected)) = (p.joined_ns, p.connected_ns) {
            connect.push(connected.saturating_sub(joined) as f64 / 1e6);
        }
    }
    let counted = peers.attempted - peers.cut_off;
    peers.join_success_pct = if counted > 0 {
        peers.succeeded as f64 * 100.0 / counted as f64
    } else {
        0.0
    };

    let mut packets = Packets {
        sent: c.sent_packets.load(Ordering::Relaxed),
        sent_bytes: c.sent_bytes.load(Ordering::Relaxed),
        unparsed: c.unparsed.load(Ordering::Relaxed),
        ..Packets::default()
    };
    let (mut frames_expected, mut frames_complete) = (0, 0);
    let mut tracks = Vec::new();
    let mut jitters = Vec::new();
    let slow_peers = records.iter().filter(|p| p.slow).count() as u64;
    let mut slow = SlowTally::default();
    let mut regular_latency = None;
    c.for_each_track(|t| {
        let s = &t.stats;
        tracks.push(track_report(&records, t));
        if records.get(t.subscriber).is_some_and(|p| p.slow) {
            slow.add(t);
            return;
        }
        if slow_peers > 0 {
            merge(&mut regular_latency, &s.latency);
        }
        packets.expected += s.seq.expected();
        packets.received += s.seq.received();
        packets.lost += s.seq.lost();
        packets.duplicates += s.seq.duplicates();
        if t.kind == Kind::Video {
            frames_expected += s.frames.expected();
            frames_complete += s.frames.complete();
        }
        jitters.push(s.jitter.ms());
    });
    packets.loss_pct = pct(packets.lost, packets.expected);

    let server = server_report(outcome, server_source);
    let mut report = Report {
        tool: "sfu-loadtest",
        version: env!("CARGO_PKG_VERSION"),
        scenario: cli.scenario,
        target: cli.target,
        url: cli.url.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        interrupted: outcome.interrupted,
        steady_start_s: outcome.steady_start.as_secs_f64(),
        steady_s: outcome.steady.as_secs_f64(),
        elapsed_s: outcome.elapsed.as_secs_f64(),
        peers,
        join_time_ms: Percentiles::from_ms(&join),
        connect_time_ms: Percentiles::from_ms(&connect),
        latency_ms: match (slow_peers, &regular_latency) {
            (0, _) => Percentiles::from_us(&c.latency()),
            (_, Some(h)) => Percentiles::from_us(h),
            (_, None) => Percentiles::default(),
        },
        jitter_ms_mean: (!jitters.is_empty())
            .then(|| jitters.iter().sum::<f64>() / jitters.len() as f64),
        packets,
        slow_subscribers: (slow_peers > 0).then(|| slow.finish(slow_peers)),
        frames_expected,
        frames_complete,
        plis_sent: c.plis_sent.load(Ordering::Relaxed),
        plis_received: c.plis_received.load(Ordering::Relaxed),
        keyframes_sent: c.keyframes_sent.load(Ordering::Relaxed),
        server,
        tracks,
        timeseries: c.series(),
        soak: crate::soak::build(cli, &outcome.server, outcome.cycles_done),
        thresholds: Vec::new(),
        passed: true,
    };
    report.thresholds = verdicts(cli, &report);
    report.passed = !report.interrupted
        && report.peers.succeeded > 0
        && report.thresholds.iter().all(|v| v.passed);
    report
}

fn track_report(records: &[crate::stats::PeerRecord], t: &crate::stats::TrackEntry) -> TrackReport {
    let s = &t.stats;
    TrackReport {
        subscriber: records
            .get(t.subscriber)
            .map(|p| p.label.clone())
            .unwrap_or_default(),
        publisher: t.publisher.clone(),
        kind: t.kind,
        received: s.seq.received(),
        expected: s.seq.expected(),
        loss_pct: pct(s.seq.lost(), s.seq.expected()),
        jitter_ms: s.jitter.ms(),
        latency_ms: Percentiles::from_us(&s.latency),
        frames_expected: s.frames.expected(),
        frames_complete: s.frames.complete(),
        keyframes_complete: s.frames.keyframes(),
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn verdicts(cli: &Cli, r: &Report) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut check = |name: &str, limit: f64, actual: Option<f64>, ok: fn(f64, f64) -> bool| {
        out.push(Verdict {
            name: name.to_owned(),
            limit,
            actual,
            passed: actual.is_some_and(|a| ok(a, limit)),
        });
    };
    if let Some(limit) = cli.max_loss {
        let actual = (r.packets.expected > 0).then_some(r.packets.loss_pct);
        check("max-loss %", limit, actual, |a, l| a <= l);
    }
    if let Some(limit) = cli.max_p99_latency {
        let limit_ms = limit.as_secs_f64() * 1e3;
        check("max-p99-latency ms", limit_ms, r.latency_ms.p99, |a, l| {
            a <= l
        });
    }
    if let Some(limit) = cli.max_cpu_per_packet {
        check(
            "max-cpu-per-packet µs",
            limit,
            r.server.cpu_us_per_forwarded_packet,
            |a, l| a <= l,
        );
    }
    if let Some(limit) = cli.min_join_success {
        let actual = (r.peers.attempted > 0).then_some(r.peers.join_success_pct);
        check("min-join-success %", limit, actual, |a, l| a >= l);
    }
    out.extend(crate::soak::verdicts(cli, r.soak.as_ref()));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::media::{now_ns, Parsed, Stamp};
    use crate::scenario::ServerReadings;
    use crate::server_metrics::ServerSnapshot;
    use crate::stats::{Collector, PeerRecord};

    fn outcome() -> RunOutcome {
        let c = Arc::new(Collector::new());
        let (index, peer) = c.add_peer(PeerRecord {
            label: "room-0/peer-1".into(),
            expects_media: true,
            started_ns: now_ns(),
            joined_ns: Some(now_ns()),
            connected_ns: Some(now_ns()),
            ..PeerRecord::default()
        });
        c.add_peer(PeerRecord {
            label: "room-0/peer-2".into(),
            failure: Some("media connection failed (ICE/DTLS)".into()),
            ..PeerRecord::default()
        });
        let track = c.add_track(index, "p1".into(), Kind::Video);
        for seq in [0, 1, 3] {
            let stamp = Stamp {
                seq,
                send_ns: now_ns(),
                frame: seq,
                index: 0,
                count: 1,
                keyframe: true,
            };
            let parsed = Parsed {
                stamp,
                vp8_keyframe: Some(true),
            };
            c.on_packet(&track, &peer, &parsed, 1_000);
        }
        c.sample();
        let snap = |t, cpu, rss, fwd| ServerSnapshot {
            t,
            cpu_seconds: cpu,
            rss_bytes: rss,
            forwarded_packets: Some(fwd),
            peers: Some(2.0),
            ..ServerSnapshot::default()
        };
        RunOutcome {
            collector: c,
            server: ServerReadings {
                before: Some(snap(0.0, 0.5, 10e6, 0.0)),
                steady_start: Some(snap(0.0, 1.0, 11e6, 0.0)),
                steady_end: Some(snap(1.0, 2.0, 12e6, 100_000.0)),
                after: Some(ServerSnapshot {
                    peers: Some(0.0),
                    ..snap(2.0, 2.1, 11e6, 100_000.0)
                }),
                ..ServerReadings::default()
            },
            interrupted: false,
            steady_start: Duration::ZERO,
            steady: Duration::from_secs(1),
            elapsed: Duration::from_secs(2),
            planned_peers: 2,
            cycles_done: 0,
        }
    }

    #[test]
    fn json_shape_and_verdicts() {
        let cli = Cli::try_parse_from([
            "sfu-loadtest",
            "--max-loss",
            "1%",
            "--max-p99-latency",
            "50ms",
            "--min-join-success",
            "50%",
        ])
        .expect("flags");
        let report = build(&cli, &outcome(), "test".into());
        let j = serde_json::to_value(&report).expect("serialises");
        assert_eq!(j["scenario"], "room");
        assert_eq!(j["target"], "sfu");
        assert_eq!(j["peers"]["attempted"], 2);
        assert_eq!(j["peers"]["succeeded"], 1);
        assert_eq!(j["peers"]["failures"][0]["peer"], "room-0/peer-2");
        assert_eq!(j["peers"]["join_success_pct"], 50.0);
        assert_eq!(j["packets"]["expected"], 4);
        assert_eq!(j["packets"]["lost"], 1);
        assert_eq!(j["packets"]["loss_pct"], 25.0);
        for p in ["p50", "p95", "p99", "max"] {
            assert!(j["latency_ms"][p].is_number(), "latency {p}");
            assert!(j["join_time_ms"][p].is_number(), "join {p}");
        }
        assert_eq!(j["tracks"][0]["kind"], "video");
        assert_eq!(j["tracks"][0]["subscriber"], "room-0/peer-1");
        assert_eq!(j["server"]["cpu_us_per_forwarded_packet"], 10.0);
        assert_eq!(j["server"]["forwarded_counted_by_server"], true);
        assert_eq!(j["server"]["rss_per_peer_bytes"], 1e6);
        assert_eq!(j["server"]["peers_after"], 0.0);
        assert!(j["timeseries"].as_array().is_some_and(|s| s.len() == 1));
        let verdicts: Vec<(&str, bool)> = j["thresholds"]
            .as_array()
            .expect("thresholds")
            .iter()
            .map(|v| (v["name"].as_str().unwrap_or(""), v["passed"] == true))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("max-loss %", false),
                ("max-p99-latency ms", true),
                ("min-join-success %", true)
            ]
        );
        assert_eq!(j["passed"], false, "25% loss breaks --max-loss 1%");
    }

    #[test]
    fn percentiles_by_rank() {
        let p = Percentiles::from_ms(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(
            (p.count, p.p50, p.p99, p.max),
            (5, Some(3.0), Some(5.0), Some(5.0))
        );
        assert_eq!(Percentiles::from_ms(&[]), Percentiles::default());
    }
}
