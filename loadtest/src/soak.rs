//! The churn soak (`--scenario churn --cycles N`): the server's resident
//! memory, open fds, tokio tasks and peer, track and subscription gauges,
//! read before any peer joined (the baseline), after every
//! [`CHECKPOINT_CYCLES`] finished cycles and once everyone has left (the
//! end); the curve for the report, and the `--max-rss-growth` and
//! `--require-clean-end` verdicts.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::Cli;
use crate::report::Verdict;
use crate::scenario::ServerReadings;
use crate::server_metrics::{ServerSnapshot, Source};

/// The server is read after every this many finished cycles.
pub const CHECKPOINT_CYCLES: u64 = 500;
/// RSS may always grow this much, whatever `--max-rss-growth` says: a few
/// allocator arenas or a grown hash map are not a leak on a ~20 MiB server.
pub const RSS_GROWTH_FLOOR_BYTES: f64 = 5.0 * 1_048_576.0;
/// Open fds at the end may exceed the baseline by this many: a signaling
/// socket whose close the server has not finished processing when it is read.
pub const FD_TOLERANCE: f64 = 2.0;
/// Tokio tasks at the end may exceed the baseline by this many: the task of
/// a connection still closing (each WebSocket and HTTP connection is one).
pub const TASK_TOLERANCE: f64 = 2.0;
/// After everyone left, the end reading waits at most this long for the
/// server to be clean.
const SETTLE: Duration = Duration::from_secs(10);

/// One reading of the curve.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SoakPoint {
    /// `baseline`, the number of finished cycles, or `end`.
    pub at: String,
    /// Finished cycles at the reading.
    pub cycles: u64,
    /// Seconds into the run.
    pub t: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
    /// Open file descriptors (`process_open_fds`).
    pub open_fds: Option<f64>,
    /// Alive tokio tasks (`sfu_tokio_alive_tasks`).
    pub tasks: Option<f64>,
    /// `sfu_peers`.
    pub peers: Option<f64>,
    /// `sfu_tracks`, audio and video.
    pub tracks: Option<f64>,
    /// `sfu_subscriptions`.
    pub subscriptions: Option<f64>,
}

impl SoakPoint {
    fn new(at: String, cycles: u64, s: &ServerSnapshot) -> Self {
        Self {
            at,
            cycles,
            t: s.t,
            rss_mib: s.rss_bytes / 1_048_576.0,
            open_fds: s.open_fds,
            tasks: s.tasks,
            peers: s.peers,
            tracks: s.tracks,
            subscriptions: s.subscriptions,
        }
    }
}

/// The soak's curve and what it says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    /// Cycles asked for.
    pub cycles_planned: u64,
    /// Cycles finished (peers that joined, stayed and left).
    pub cycles_done: u64,
    /// Baseline, every checkpoint, end.
    pub points: Vec<SoakPoint>,
    /// RSS after the first checkpoint, MiB (the growth reference).
    pub rss_reference_mib: Option<f64>,
    /// RSS at the end, MiB.
    pub rss_end_mib: Option<f64>,
    /// End − reference, percent of the reference.
    pub rss_growth_pct: Option<f64>,
    /// Growth allowed by `--max-rss-growth`: the larger of that share of
    /// the reference and 5 MiB, MiB.
    pub rss_growth_allowed_mib: Option<f64>,
    /// End − baseline open fds.
    pub fds_delta: Option<f64>,
    /// End − baseline tokio tasks.
    pub tasks_delta: Option<f64>,
}

/// The soak section of a finished run, when it counted cycles.
pub fn build(cli: &Cli, r: &ServerReadings, cycles_done: u64) -> Option<SoakReport> {
    let planned = cli.cycles?;
    let mut points = Vec::new();
    if let Some(b) = &r.before {
        points.push(SoakPoint::new("baseline".into(), 0, b));
    }
    for (cycles, s) in &r.checkpoints {
        points.push(SoakPoint::new(cycles.to_string(), *cycles, s));
    }
    if let Some(a) = &r.after {
        points.push(SoakPoint::new("end".into(), cycles_done, a));
    }
    let reference = r.checkpoints.first().map(|(_, s)| s.rss_bytes);
    let end = r.after.as_ref().map(|s| s.rss_bytes);
    let mut soak = SoakReport {
        cycles_planned: planned,
        cycles_done,
        rss_reference_mib: reference.map(|b| b / 1_048_576.0),
        rss_end_mib: end.map(|b| b / 1_048_576.0),
        ..SoakReport::default()
    };
    if let (Some(reference), Some(end)) = (reference, end) {
        soak.rss_growth_pct = (reference > 0.0).then(|| (end - reference) * 100.0 / reference);
        soak.rss_growth_allowed_mib = cli
            .max_rss_growth
            .map(|pct| allowed_growth(reference, pct) / 1_048_576.0);
    }
    let delta = |f: fn(&ServerSnapshot) -> Option<f64>| match (&r.before, &r.after) {
        (Some(b), Some(a)) => Some(f(a)? - f(b)?),
        _ => None,
    };
    soak.fds_delta = delta(|s| s.open_fds);
    soak.tasks_delta = delta(|s| s.tasks);
    soak.points = points;
    Some(soak)
}

/// Bytes RSS may grow over `reference` under `--max-rss-growth pct`.
pub fn allowed_growth(reference: f64, pct: f64) -> f64 {
    (reference * pct / 100.0).max(RSS_GROWTH_FLOOR_BYTES)
}

/// The verdicts of `--max-rss-growth` and `--require-clean-end`; a figure
/// that was not measured fails.
pub fn verdicts(cli: &Cli, soak: Option<&SoakReport>) -> Vec<Verdict> {
    let mut out = Vec::new();
    let end = soak.and_then(|s| s.points.last().filter(|p| p.at == "end"));
    if let Some(pct) = cli.max_rss_growth {
        let growth = soak.and_then(|s| Some((s.rss_end_mib? - s.rss_reference_mib?, s)));
        out.push(Verdict {
            name: "max-rss-growth % (or 5 MiB)".into(),
            limit: pct,
            actual: growth.and_then(|(_, s)| s.rss_growth_pct),
            passed: growth
                .is_some_and(|(g, s)| s.rss_growth_allowed_mib.is_some_and(|allowed| g <= allowed)),
        });
    }
    if cli.require_clean_end {
        for (name, value) in [
            ("clean-end peers", end.and_then(|p| p.peers)),
            ("clean-end tracks", end.and_then(|p| p.tracks)),
            ("clean-end subscriptions", end.and_then(|p| p.subscriptions)),
        ] {
            out.push(Verdict {
                name: name.into(),
                limit: 0.0,
                actual: value,
                passed: value == Some(0.0),
            });
        }
        for (name, value, tolerance) in [
            (
                "clean-end fds over baseline",
                soak.and_then(|s| s.fds_delta),
                FD_TOLERANCE,
            ),
            (
                "clean-end tasks over baseline",
                soak.and_then(|s| s.tasks_delta),
                TASK_TOLERANCE,
            ),
        ] {
            out.push(Verdict {
                name: name.into(),
                limit: tolerance,
                actual: value,
                passed: value.is_some_and(|v| v.abs() <= tolerance),
            });
        }
    }
    out
}

/// Whether an end reading is clean against the baseline.
pub fn is_clean(end: &ServerSnapshot, baseline: Option<&ServerSnapshot>) -> bool {
    let zero = |v: Option<f64>| v.is_none_or(|v| v == 0.0);
    let near = |e: Option<f64>, b: Option<f64>, tol: f64| match (e, b) {
        (Some(e), Some(b)) => e - b <= tol,
        _ => true,
    };
    zero(end.peers)
        && zero(end.tracks)
        && zero(end.subscriptions)
        && near(
            end.open_fds,
            baseline.and_then(|b| b.open_fds),
            FD_TOLERANCE,
        )
        && near(end.tasks, baseline.and_then(|b| b.tasks), TASK_TOLERANCE)
}

/// Reads the server until it is clean (see [`is_clean`]) or [`SETTLE`]
/// has passed; the last reading.
pub async fn read_end(
    source: &Source,
    baseline: Option<&ServerSnapshot>,
    t: impl Fn() -> f64,
) -> Result<ServerSnapshot, String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let s = source.read(t()).await?;
        if is_clean(&s, baseline) || Instant::now() >= deadline {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The soak section of the text report.
pub fn text(soak: &SoakReport) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    let mut out = format!(
        "\n  soak: {} of {} cycles; the server at the baseline, every {CHECKPOINT_CYCLES} cycles and the end:\n  {:<9} {:>8} {:>10} {:>6} {:>6} {:>6} {:>7} {:>6}\n",
        soak.cycles_done,
        soak.cycles_planned,
        "at",
        "t s",
        "RSS MiB",
        "fds",
        "tasks",
        "peers",
        "tracks",
        "subs"
    );
    for p in &soak.points {
        out += &format!(
            "  {:<9} {:>8.1} {:>10.1} {:>6} {:>6} {:>6} {:>7} {:>6}\n",
            p.at,
            p.t,
            p.rss_mib,
            f(p.open_fds),
            f(p.tasks),
            f(p.peers),
            f(p.tracks),
            f(p.subscriptions)
        );
    }
    let g =
        |v: Option<f64>, unit: &str| v.map_or_else(|| "-".to_owned(), |v| format!("{v:+.1}{unit}"));
    out += &format!(
        "  RSS end vs after {CHECKPOINT_CYCLES} cycles {}; fds {} and tasks {} vs baseline\n",
        match (soak.rss_end_mib, soak.rss_reference_mib) {
            (Some(e), Some(r)) => format!("{:+.1} MiB ({})", e - r, g(soak.rss_growth_pct, "%")),
            _ => "-".to_owned(),
        },
        g(soak.fds_delta, ""),
        g(soak.tasks_delta, "")
    );
    out
}

/// The soak's charts for the HTML report: RSS, and fds and tasks, over time.
pub fn charts(soak: &SoakReport) -> [String; 2] {
    use crate::html::{line_chart, Line};
    let points = |f: fn(&SoakPoint) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        soak.points.iter().map(|p| (p.t, f(p))).collect()
    };
    [
        line_chart(
            "Soak: server RSS at baseline, every 500 cycles, end",
            "MiB",
            None,
            &[Line {
                label: "RSS",
                color: "#2b6cb0",
                points: points(|p| Some(p.rss_mib)),
            }],
        ),
        line_chart(
            "Soak: server fds and tokio tasks",
            "count",
            None,
            &[
                Line {
                    label: "open fds",
                    color: "#718096",
                    points: points(|p| p.open_fds),
                },
                Line {
                    label: "tokio tasks",
                    color: "#dd6b20",
                    points: points(|p| p.tasks),
                },
                Line {
                    label: "peers",
                    color: "#2f855a",
                    points: points(|p| p.peers),
                },
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const MIB: f64 = 1_048_576.0;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sfu-loadtest").chain(args.iter().copied()))
            .expect("valid flags")
    }

    fn snap(rss_mib: f64, fds: f64, tasks: f64, peers: f64) -> ServerSnapshot {
        ServerSnapshot {
            rss_bytes: rss_mib * MIB,
            open_fds: Some(fds),
            tasks: Some(tasks),
            peers: Some(peers),
            tracks: Some(peers * 2.0),
            subscriptions: Some(peers * 4.0),
            ..ServerSnapshot::default()
        }
    }

    fn readings(reference_mib: f64, end: ServerSnapshot) -> ServerReadings {
        ServerReadings {
            before: Some(snap(10.0, 20.0, 8.0, 0.0)),
            checkpoints: vec![
                (500, snap(reference_mib, 70.0, 60.0, 51.0)),
                (1000, snap(reference_mib + 1.0, 70.0, 60.0, 51.0)),
            ],
            after: Some(end),
            ..ServerReadings::default()
        }
    }

    #[test]
    fn the_curve_and_clean_end() {
        let cli = cli(&[
            "--scenario",
            "churn",
            "--cycles",
            "1000",
            "--max-rss-growth",
            "5%",
            "--require-clean-end",
        ]);
        let soak = build(&cli, &readings(40.0, snap(41.0, 21.0, 10.0, 0.0)), 1000)
            .expect("cycles were counted");
        let at: Vec<&str> = soak.points.iter().map(|p| p.at.as_str()).collect();
        assert_eq!(at, ["baseline", "500", "1000", "end"]);
        assert_eq!(soak.rss_growth_pct, Some(2.5));
        assert_eq!(soak.rss_growth_allowed_mib, Some(5.0), "the 5 MiB floor");
        assert_eq!((soak.fds_delta, soak.tasks_delta), (Some(1.0), Some(2.0)));
        let v = verdicts(&cli, Some(&soak));
        assert_eq!(v.len(), 6);
        assert!(v.iter().all(|v| v.passed), "{v:?}");
        let text = text(&soak);
        assert!(
            text.contains("baseline") && text.contains("+1.0 MiB (+2.5%)"),
            "{text}"
        );
        assert!(charts(&soak).iter().all(|c| c.starts_with("<svg")));
        assert!(build(
            &super::tests::cli(&["--scenario", "churn"]),
            &readings(1.0, snap(1.0, 1.0, 1.0, 0.0)),
            0
        )
        .is_none());
    }

    #[test]
    fn growth_uses_the_larger_allowance() {
        assert_eq!(allowed_growth(40.0 * MIB, 5.0), 5.0 * MIB);
        assert_eq!(allowed_growth(200.0 * MIB, 5.0), 10.0 * MIB);
        let cli = cli(&["--cycles", "1000", "--max-rss-growth", "5%"]);
        // 200 MiB → 211 MiB: 5.5%, over both 10 MiB and 5 MiB.
        let soak = build(&cli, &readings(200.0, snap(211.0, 20.0, 8.0, 0.0)), 1000).expect("soak");
        let v = verdicts(&cli, Some(&soak));
        assert_eq!((v.len(), v[0].passed), (1, false));
        // 40 MiB → 44 MiB: 10%, but under the 5 MiB floor.
        let soak = build(&cli, &readings(40.0, snap(44.0, 20.0, 8.0, 0.0)), 1000).expect("soak");
        assert!(verdicts(&cli, Some(&soak))[0].passed);
    }

    #[test]
    fn dirty_or_unmeasured_ends_fail() {
        let cli = cli(&["--cycles", "1000", "--require-clean-end"]);
        let mut end = snap(40.0, 23.0, 11.0, 0.0);
        end.subscriptions = Some(1.0);
        let soak = build(&cli, &readings(40.0, end), 1000).expect("soak");
        let failed: Vec<String> = verdicts(&cli, Some(&soak))
            .into_iter()
            .filter(|v| !v.passed)
            .map(|v| v.name)
            .collect();
        assert_eq!(
            failed,
            [
                "clean-end subscriptions",
                "clean-end fds over baseline",
                "clean-end tasks over baseline"
            ]
        );
        assert!(verdicts(&cli, None).iter().all(|v| !v.passed));
        let base = snap(10.0, 20.0, 8.0, 0.0);
        assert!(is_clean(&snap(10.0, 22.0, 10.0, 0.0), Some(&base)));
        assert!(!is_clean(&snap(10.0, 23.0, 8.0, 0.0), Some(&base)));
        assert!(!is_clean(&snap(10.0, 20.0, 8.0, 1.0), Some(&base)));
    }
}
