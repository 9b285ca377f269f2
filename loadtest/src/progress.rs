//! The live display: once a second, a sample of the run (peers connected
//! and failed, packets per second, loss, latency) on an indicatif spinner
//! when stderr is a terminal, or as a plain line every few seconds when it
//! is not (CI logs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::stats::{Collector, Sample};

/// Plain-text status lines this often when not on a terminal.
const PLAIN_EVERY: u64 = 5;

/// Samples the collector every second until `done` turns true, showing
/// progress unless `quiet`. `phase` names what the run is doing.
pub fn spawn(
    collector: Arc<Collector>,
    planned_peers: usize,
    quiet: bool,
    phase: watch::Receiver<&'static str>,
    mut done: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = done.changed() => break,
            }
            let sample = collector.sample();
            let line = status_line(&sample, planned_peers, *phase.borrow());
            n += 1;
            match &bar {
                Some(bar) => bar.set_message(line),
                None if !quiet && n >= PLAIN_EVERY => {
                    n = 0;
                    eprintln!("[{:>5.0}s] {line}", sample.t);
                }
                None => {}
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    })
}

/// One human line about the last second.
pub fn status_line(s: &Sample, planned_peers: usize, phase: &str) -> String {
    let latency = match (s.latency_p50_ms, s.latency_p99_ms) {
        (Some(p50), Some(p99)) => format!("latency p50 {p50:.1} ms p99 {p99:.1} ms"),
        _ => "latency -".to_owned(),
    };
    format!(
        "{phase}: peers {}/{planned_peers} connected, {} failed | tx {:.0} pkt/s rx {:.0} pkt/s ({:.1} Mbit/s) | loss {:.2}% | {latency}",
        s.peers,
        s.failed,
        s.tx_pps,
        s.rx_pps,
        s.rx_bps / 1e6,
        s.loss_pct,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_reads_well() {
        let s = Sample {
            t: 3.0,
            peers: 5,
            failed: 1,
            tx_pps: 100.0,
            rx_pps: 400.0,
            rx_bps: 2_500_000.0,
            loss_pct: 0.25,
            latency_p50_ms: Some(1.25),
            latency_p99_ms: Some(4.0),
        };
        let line = status_line(&s, 6, "steady");
        assert!(
            line.starts_with("steady: peers 5/6 connected, 1 failed"),
            "{line}"
        );
        assert!(line.contains("rx 400 pkt/s (2.5 Mbit/s)"), "{line}");
        assert!(line.contains("loss 0.25%"), "{line}");
        assert!(line.contains("p99 4.0 ms"), "{line}");
    }
}
