//! The human-readable report printed on stdout at the end of a run.

use std::fmt::Write;

use crate::report::{Percentiles, Report};

/// Tracks listed individually, worst first.
const WORST_TRACKS: usize = 10;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"))
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1} MiB", v / 1_048_576.0))
}

fn percentiles(p: &Percentiles) -> String {
    if p.count == 0 {
        return "-".to_owned();
    }
    format!(
        "p50 {}  p95 {}  p99 {}  max {}  (n={})",
        ms(p.p50),
        ms(p.p95),
        ms(p.p99),
        ms(p.max),
        p.count
    )
}

/// Renders the report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "sfu-loadtest {} against {} ({}){}: {:.1} s at full load, {:.1} s in all",
        format!("{:?}", r.scenario).to_lowercase(),
        r.url,
        format!("{:?}", r.target).to_lowercase(),
        if r.interrupted {
            " [INTERRUPTED, partial]"
        } else {
            ""
        },
        r.steady_s,
        r.elapsed_s
    );
    let p = &r.peers;
    let _ = writeln!(
        w,
        "  peers        {} attempted, {} ok, {} failed, {} cut off by the end ({:.1}% join success)",
        p.attempted, p.succeeded, p.failed, p.cut_off, p.join_success_pct
    );
    let _ = writeln!(w, "  join time    {}", percentiles(&r.join_time_ms));
    let _ = writeln!(w, "  connect      {}", percentiles(&r.connect_time_ms));
    let _ = writeln!(w, "  latency      {}", percentiles(&r.latency_ms));
    let k = &r.packets;
    let _ = writeln!(
        w,
        "  loss         {:.3}% ({} of {} expected; {} received, {} duplicates, {} sent){}",
        k.loss_pct,
        k.lost,
        k.expected,
        k.received,
        k.duplicates,
        k.sent,
        r.jitter_ms_mean
            .map_or_else(String::new, |j| format!(", jitter {j:.2} ms mean"))
    );
    if let Some(slow) = &r.slow_subscribers {
        let _ = writeln!(
            w,
            "  slow         {} subscriber(s), reported apart from the figures above: \
             loss {:.2}% (audio {:.2}%), {} of {} video frames complete, latency {}",
            slow.peers,
            slow.loss_pct,
            slow.audio_loss_pct,
            slow.frames_complete,
            slow.frames_expected,
            percentiles(&slow.latency_ms)
        );
    }
    if r.frames_expected > 0 {
        let _ = writeln!(
            w,
            "  frames       {} of {} video frames complete ({:.2}%)",
            r.frames_complete,
            r.frames_expected,
            r.frames_complete as f64 * 100.0 / r.frames_expected as f64
        );
    }
    let _ = writeln!(
        w,
        "  keyframes    {} sent; {} PLIs sent by subscribers, {} received by publishers",
        r.keyframes_sent, r.plis_sent, r.plis_received
    );
    let s = &r.server;
    let _ = writeln!(
        w,
        "  server CPU   {} s over the full-load window ({} cores), {} packets forwarded{} -> {} CPU per forwarded packet",
        s.cpu_seconds.map_or("-".into(), |v| format!("{v:.2}")),
        s.cpu_cores.map_or("-".into(), |v| format!("{v:.2}")),
        s.forwarded_packets
            .map_or("-".into(), |v| format!("{v:.0}")),
        if s.forwarded_counted_by_server {
            ""
        } else {
            " (counted at receivers)"
        },
        s.cpu_us_per_forwarded_packet
            .map_or("-".into(), |v| format!("{v:.1} µs"))
    );
    if let (Some(p50), Some(p99)) = (s.forward_latency_p50_us, s.forward_latency_p99_us) {
        let _ = writeln!(
            w,
            "  forwarding   p50 {p50:.0} µs  p99 {p99:.0} µs  (server histogram, datagram in to out, n={})",
            s.forward_latency_samples.unwrap_or(0.0)
        );
    }
    let _ = writeln!(
        w,
        "  server RSS   {} before, {} loaded, {} after -> {} per peer ({} peers)",
        mib(s.rss_before_bytes),
        mib(s.rss_loaded_bytes),
        mib(s.rss_after_bytes),
        s.rss_per_peer_bytes
            .map_or("-".into(), |v| format!("{:.0} KiB", v / 1024.0)),
        s.peers_loaded.map_or("-".into(), |v| format!("{v:.0}")),
    );
    if let Some(cores) = s.load_generator_cpu_cores {
        let _ = writeln!(
            w,
            "  load gen CPU {cores:.2} cores during full load (same machine)"
        );
    }
    if let Some(after) = s.peers_after {
        let _ = writeln!(
            w,
            "  leak check   server counts {after:.0} peers after everyone left"
        );
    }
    if let Some(e) = &s.error {
        let _ = writeln!(w, "  server read  error: {e}");
    }
    let _ = writeln!(w, "  source       {}", s.source);
    for f in p.failures.iter().take(20) {
        let _ = writeln!(w, "  FAILED       {}: {}", f.peer, f.reason);
    }
    if p.failures.len() > 20 {
        let _ = writeln!(w, "  ... and {} more failures", p.failures.len() - 20);
    }

    let mut worst: Vec<_> = r.tracks.iter().collect();
    worst.sort_by(|a, b| {
        b.loss_pct.total_cmp(&a.loss_pct).then(
            b.latency_ms
                .p99
                .unwrap_or(0.0)
                .total_cmp(&a.latency_ms.p99.unwrap_or(0.0)),
        )
    });
    if !worst.is_empty() {
        let _ = writeln!(
            w,
            "\n  {} received tracks; worst {} by loss, then p99 latency:",
            r.tracks.len(),
            worst.len().min(WORST_TRACKS)
        );
        let _ = writeln!(
            w,
            "  {:<22} {:<10} {:<5} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9} {:>13}",
            "subscriber",
            "publisher",
            "kind",
            "received",
            "loss%",
            "jitter",
            "p50",
            "p99",
            "max",
            "frames"
        );
        for t in worst.iter().take(WORST_TRACKS) {
            let frames = if t.frames_expected > 0 && t.kind == crate::stats::Kind::Video {
                format!("{}/{}", t.frames_complete, t.frames_expected)
            } else {
                "-".to_owned()
            };
            let _ = writeln!(
                w,
                "  {:<22} {:<10} {:<5} {:>9} {:>7.3} {:>5.2} ms {:>9} {:>9} {:>9} {:>13}",
                t.subscriber,
                t.publisher,
                format!("{:?}", t.kind).to_lowercase(),
                t.received,
                t.loss_pct,
                t.jitter_ms,
                ms(t.latency_ms.p50),
                ms(t.latency_ms.p99),
                ms(t.latency_ms.max),
                frames
            );
        }
    }
    if let Some(soak) = &r.soak {
        w.push_str(&crate::soak::text(soak));
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(w, "\n  thresholds:");
        for v in &r.thresholds {
            let _ = writeln!(
                w,
                "    {:<30} limit {:<10} actual {:<10} {}",
                v.name,
                v.limit,
                v.actual.map_or("none".into(), |a| format!("{a:.3}")),
                if v.passed { "ok" } else { "BROKEN" }
            );
        }
    }
    let broken = r.thresholds.iter().filter(|v| !v.passed).count();
    let _ = writeln!(
        w,
        "\nresult: {}",
        match (r.interrupted, broken) {
            (true, _) => "INTERRUPTED (partial report)".to_owned(),
            (false, 0) if r.passed => "PASS".to_owned(),
            (false, 0) => "FAIL (no peer succeeded)".to_owned(),
            (false, n) => format!(
                "FAIL ({n} threshold{} broken)",
                if n == 1 { "" } else { "s" }
            ),
        }
    );
    out
}
