//! The server's side of the measurement: CPU seconds, resident memory,
//! forwarded packets and connected peers, read from `sfu-server`'s
//! Prometheus `/metrics`, or from `/proc/PID` for any other server.

use std::collections::HashMap;

use serde::Serialize;

use crate::scenario::RunOutcome;
use crate::stats::Sample;

/// One reading of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerSnapshot {
    /// Seconds since the run started.
    pub t: f64,
    /// CPU seconds used by the server process so far.
    pub cpu_seconds: f64,
    /// Its resident memory, bytes.
    pub rss_bytes: f64,
    /// RTP packets it forwarded so far (sum over kinds), if it says.
    pub forwarded_packets: Option<f64>,
    /// Peers connected, if it says.
    pub peers: Option<f64>,
    /// Open file descriptors (`process_open_fds`), if it says.
    pub open_fds: Option<f64>,
    /// Alive tokio tasks (`sfu_tokio_alive_tasks`), if it says.
    pub tasks: Option<f64>,
    /// Published tracks, audio and video (`sfu_tracks`), if it says.
    pub tracks: Option<f64>,
    /// Subscriptions (`sfu_subscriptions`), if it says.
    pub subscriptions: Option<f64>,
    /// Its forwarding-latency histogram (`sfu_forward_latency_seconds`,
    /// datagram in to datagram out, sampled by the server): cumulative
    /// counts at [`FORWARD_LATENCY_BOUNDS`] and at +Inf, if it says.
    pub forward_latency: Option<[f64; FORWARD_LATENCY_BUCKETS]>,
}

/// The upper bounds (seconds) of `sfu-server`'s forwarding-latency
/// buckets, before +Inf.
pub const FORWARD_LATENCY_BOUNDS: [f64; FORWARD_LATENCY_BUCKETS - 1] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_2, 0.000_4, 0.000_8, 0.001_6, 0.003_2, 0.006_4, 0.012_8,
    0.025_6, 0.051_2,
];
/// Its buckets, +Inf included.
pub const FORWARD_LATENCY_BUCKETS: usize = 13;

/// The cumulative bucket counts of `sfu_forward_latency_seconds`, if the
/// exposition has every one of its buckets.
fn forward_latency_buckets(text: &str) -> Option<[f64; FORWARD_LATENCY_BUCKETS]> {
    let mut counts = [f64::NAN; FORWARD_LATENCY_BUCKETS];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("sfu_forward_latency_seconds_bucket{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Some(le) = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("le=\""))
            .and_then(|l| l.strip_suffix('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let index = if le == "+Inf" {
            Some(FORWARD_LATENCY_BUCKETS - 1)
        } else {
            le.parse::<f64>().ok().and_then(|b| {
                FORWARD_LATENCY_BOUNDS
                    .iter()
                    .position(|x| (x - b).abs() < 1e-12)
            })
        };
        if let Some(i) = index {
            counts[i] = value;
        }
    }
    counts.iter().all(|c| c.is_finite()).then_some(counts)
}

/// The `q` quantile (0–1) of the observations between two readings of a
/// cumulative histogram over `bounds` (+Inf last), interpolated linearly
/// within its bucket as Prometheus's `histogram_quantile` does; in the
/// +Inf bucket, the last finite bound. `None` without observations.
pub fn histogram_quantile(bounds: &[f64], before: &[f64], after: &[f64], q: f64) -> Option<f64> {
    let delta: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let total = *delta.last()?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (i, &count) in delta.iter().enumerate() {
        let Some(&upper) = bounds.get(i) else {
            return bounds.last().copied();
        };
        if count >= rank {
            let in_bucket = count - lower_count;
            let share = if in_bucket > 0.0 {
                (rank - lower_count) / in_bucket
            } else {
                1.0
            };
            return Some(lower_bound + (upper - lower_bound) * share);
        }
        lower_bound = upper;
        lower_count = count;
    }
    bounds.last().copied()
}

/// Where server figures come from: `sfu-server`'s Prometheus `/metrics`
/// (forwarded packets, peers, and CPU and memory unless a pid is known),
/// and `/proc/PID` of the server process when it runs on this machine
/// (CPU with 10 ms resolution, where the exported
/// `process_cpu_seconds_total` only counts whole seconds).
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// `host:port` and path of the Prometheus endpoint.
    pub prometheus: Option<(String, String)>,
    /// The server's process id.
    pub pid: Option<u32>,
}

impl Source {
    /// Reads the server once.
    pub async fn read(&self, t: f64) -> Result<ServerSnapshot, String> {
        let mut snapshot = ServerSnapshot {
            t,
            ..ServerSnapshot::default()
        };
        if let Some((authority, path)) = &self.prometheus {
            let body = crate::http::get(authority, path).await?;
            snapshot = from_prometheus(&body, t)?;
        }
        if let Some(pid) = self.pid {
            let proc = read_proc(pid, t)?;
            snapshot.cpu_seconds = proc.cpu_seconds;
            snapshot.rss_bytes = proc.rss_bytes;
        }
        Ok(snapshot)
    }

    /// Where the figures come from, for the report.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(pid) = self.pid {
            parts.push(format!("CPU and RSS from /proc/{pid}"));
        }
        if let Some((authority, path)) = &self.prometheus {
            parts.push(format!("counters from http://{authority}{path}"));
        }
        parts.join("; ")
    }
}

/// Sums of every series of each metric name in a Prometheus text exposition.
pub fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut sums = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let value_part = match rest.strip_prefix('{') {
            Some(labels) => labels.rsplit_once('}').map(|(_, v)| v).unwrap_or(""),
            None => rest,
        };
        if let Some(value) = value_part
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *sums.entry(name.to_owned()).or_insert(0.0) += value;
        }
    }
    sums
}

fn from_prometheus(text: &str, t: f64) -> Result<ServerSnapshot, String> {
    let m = parse_prometheus(text);
    let need = |name: &str| {
        m.get(name)
            .copied()
            .ok_or_else(|| format!("/metrics has no `{name}`"))
    };
    Ok(ServerSnapshot {
        t,
        cpu_seconds: need("process_cpu_seconds_total")?,
        rss_bytes: need("process_resident_memory_bytes")?,
        forwarded_packets: Some(need("sfu_rtp_packets_out_total")?),
        peers: m.get("sfu_peers").copied(),
        open_fds: m.get("process_open_fds").copied(),
        tasks: m.get("sfu_tokio_alive_tasks").copied(),
        tracks: m.get("sfu_tracks").copied(),
        subscriptions: m.get("sfu_subscriptions").copied(),
        forward_latency: forward_latency_buckets(text),
    })
}

/// The process listening on TCP `port` of this machine, found through
/// `/proc/net/tcp{,6}` and the processes' open sockets (needs permission
/// to read the server's `/proc/PID/fd`, e.g. the same user).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        inodes.extend(listening_inodes(&text, port));
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Inodes of sockets listening on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let listening = *f.get(3)? == "0A";
            let port_matches = u16::from_str_radix(local_port, 16).ok()? == port;
            (listening && port_matches).then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

/// Clock ticks per second for /proc CPU times (USER_HZ; 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

pub fn read_proc(pid: u32, t: f64) -> Result<ServerSnapshot, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    parse_proc(&stat, &status, t)
}

/// CPU (utime + stime) from `/proc/PID/stat`, VmRSS from `/proc/PID/status`.
pub fn parse_proc(stat: &str, status: &str, t: f64) -> Result<ServerSnapshot, String> {
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 overall, so 12 and 13 after it.
    let after = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| "bad /proc stat".to_owned())
    };
    let cpu_seconds = (tick(11)? + tick(12)?) / CLOCK_TICKS;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or("no VmRSS in /proc status")?;
    Ok(ServerSnapshot {
        t,
        cpu_seconds,
        rss_bytes: rss_kib * 1024.0,
        ..ServerSnapshot::default()
    })
}

/// Server figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerReport {
    /// Where they came from (`/metrics` or `/proc/PID`).
    pub source: String,
    /// The first error reading them, if any.
    pub error: Option<String>,
    /// CPU seconds during the full-load window.
    pub cpu_seconds: Option<f64>,
    /// CPU cores busy on average during it.
    pub cpu_cores: Option<f64>,
    /// Packets forwarded during it (server count, or receivers' count when
    /// the server does not say).
    pub forwarded_packets: Option<f64>,
    /// Whether `forwarded_packets` is the server's own count.
    pub forwarded_counted_by_server: bool,
    /// Server CPU microseconds per forwarded packet.
    pub cpu_us_per_forwarded_packet: Option<f64>,
    /// Packets our subscribers received during the window (the same
    /// measure for every target).
    pub received_packets: Option<f64>,
    /// Server CPU microseconds per packet our subscribers received: the
    /// figure to compare servers by.
    pub cpu_us_per_received_packet: Option<f64>,
    /// Resident memory before any peer joined, bytes.
    pub rss_before_bytes: Option<f64>,
    /// At the end of full load.
    pub rss_loaded_bytes: Option<f64>,
    /// After everyone left.
    pub rss_after_bytes: Option<f64>,
    /// Peers connected at full load (server count, or ours).
    pub peers_loaded: Option<f64>,
    /// (rss_loaded − rss_before) / peers_loaded, bytes.
    pub rss_per_peer_bytes: Option<f64>,
    /// Peers the server still counts after everyone left (leak check).
    pub peers_after: Option<f64>,
    /// CPU cores the load generator itself used during full load (it
    /// shares the machine with the server).
    pub load_generator_cpu_cores: Option<f64>,
    /// The server's own forwarding latency (datagram in to datagram out)
    /// over the full-load window, from its histogram, microseconds: median.
    pub forward_latency_p50_us: Option<f64>,
    /// The same, 99th percentile.
    pub forward_latency_p99_us: Option<f64>,
    /// Observations behind them (the server samples 1 forwarded datagram in 8).
    pub forward_latency_samples: Option<f64>,
}

/// The server's figures over a finished run's full-load window.
pub fn server_report(outcome: &RunOutcome, source: String) -> ServerReport {
    let r = &outcome.server;
    let mut s = ServerReport {
        source,
        error: r.error.clone(),
        rss_before_bytes: r.before.map(|b| b.rss_bytes),
        rss_loaded_bytes: r.steady_end.map(|b| b.rss_bytes),
        rss_after_bytes: r.after.map(|b| b.rss_bytes),
        peers_after: r.after.and_then(|b| b.peers),
        ..ServerReport::default()
    };
    if let (Some(a), Some(b)) = r.load_generator {
        s.load_generator_cpu_cores =
            (b.t > a.t).then(|| (b.cpu_seconds - a.cpu_seconds) / (b.t - a.t));
    }
    if let (Some(a), Some(b)) = (r.steady_start, r.steady_end) {
        let cpu = b.cpu_seconds - a.cpu_seconds;
        s.cpu_seconds = Some(cpu);
        s.cpu_cores = (b.t > a.t).then(|| cpu / (b.t - a.t));
        let forwarded = match (a.forwarded_packets, b.forwarded_packets) {
            (Some(x), Some(y)) => {
                s.forwarded_counted_by_server = true;
                Some(y - x)
            }
            // Not the server's own count: what our receivers got in that
            // window is the closest measure (the same for every target).
            _ => window_received(&outcome.collector.series(), a.t, b.t),
        };
        s.forwarded_packets = forwarded;
        s.received_packets = window_received(&outcome.collector.series(), a.t, b.t);
        s.cpu_us_per_received_packet = s
            .received_packets
            .filter(|f| *f > 0.0)
            .map(|f| cpu * 1e6 / f);
        s.cpu_us_per_forwarded_packet = forwarded.filter(|f| *f > 0.0).map(|f| cpu * 1e6 / f);
        if let (Some(x), Some(y)) = (a.forward_latency, b.forward_latency) {
            let q = |q| histogram_quantile(&FORWARD_LATENCY_BOUNDS, &x, &y, q).map(|v| v * 1e6);
            s.forward_latency_p50_us = q(0.5);
            s.forward_latency_p99_us = q(0.99);
            s.forward_latency_samples =
                Some(y[FORWARD_LATENCY_BUCKETS - 1] - x[FORWARD_LATENCY_BUCKETS - 1]);
        }
        s.peers_loaded = b.peers.or_else(|| {
            outcome
                .collector
                .series()
                .iter()
                .rev()
                .find(|x| x.t <= b.t)
                .map(|x| x.peers as f64)
        });
    }
    if let (Some(before), Some(loaded), Some(peers)) =
        (s.rss_before_bytes, s.rss_loaded_bytes, s.peers_loaded)
    {
        s.rss_per_peer_bytes = (peers > 0.0).then(|| (loaded - before) / peers);
    }
    s
}

/// Packets received during (t0, t1], from the per-second series.
fn window_received(series: &[Sample], t0: f64, t1: f64) -> Option<f64> {
    let mut prev_t = 0.0;
    let mut total = 0.0;
    let mut any = false;
    for s in series {
        let (from, to) = (prev_t, s.t);
        prev_t = s.t;
        let overlap = (to.min(t1) - from.max(t0)).max(0.0);
        if overlap > 0.0 {
            total += s.rx_pps * overlap;
            any = true;
        }
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 2.5e7
sfu_peers 7
process_open_fds 31
sfu_tokio_alive_tasks 12
sfu_tracks{kind=\"audio\"} 3
sfu_tracks{kind=\"video\"} 2
sfu_subscriptions 9
sfu_rtp_packets_out_total{kind=\"audio\"} 1000
sfu_rtp_packets_out_total{kind=\"video\"} 3000
sfu_rtp_bytes_out_total{kind=\"video\"} 99
";

    #[test]
    fn sums_labelled_series() {
        let m = parse_prometheus(SCRAPE);
        assert_eq!(m["sfu_rtp_packets_out_total"], 4000.0);
        assert_eq!(m["process_resident_memory_bytes"], 25_000_000.0);
        let s = from_prometheus(SCRAPE, 1.0).expect("complete");
        assert_eq!(s.cpu_seconds, 12.5);
        assert_eq!(s.forwarded_packets, Some(4000.0));
        assert_eq!(s.peers, Some(7.0));
        assert_eq!(s.open_fds, Some(31.0));
        assert_eq!(s.tasks, Some(12.0));
        assert_eq!(s.tracks, Some(5.0));
        assert_eq!(s.subscriptions, Some(9.0));
        assert!(from_prometheus("sfu_peers 1\n", 0.0).is_err());
    }

    #[test]
    fn listening_sockets() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0
   1: 0100007F:1F90 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0
   2: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0
";
        assert_eq!(listening_inodes(table, 8080), vec![4242]);
        assert_eq!(listening_inodes(table, 80), vec![4444]);
        assert!(listening_inodes(table, 81).is_empty());
    }

    #[tokio::test]
    async fn finds_our_own_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
    }

    #[test]
    fn proc_files() {
        let stat = "1234 (janus (x)) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9 0 100 200 300";
        let status = "Name:\tjanus\nVmRSS:\t   20480 kB\n";
        let s = parse_proc(stat, status, 0.0).expect("parses");
        assert_eq!(s.cpu_seconds, 4.0);
        assert_eq!(s.rss_bytes, 20_971_520.0);
    }

    fn latency_scrape(counts: [u64; FORWARD_LATENCY_BUCKETS]) -> String {
        let mut text = String::new();
        for (i, c) in counts.iter().enumerate() {
            let le = FORWARD_LATENCY_BOUNDS
                .get(i)
                .map_or("+Inf".to_owned(), |b| b.to_string());
            text.push_str(&format!(
                "sfu_forward_latency_seconds_bucket{{le=\"{le}\"}} {c}\n"
            ));
        }
        text
    }

    #[test]
    fn forwarding_latency_quantiles_come_from_the_window() {
        // Before: 100 fast observations. In the window: 50 more at most
        // 25 µs, 40 in (25, 50] µs, 10 in (100, 200] µs.
        let before = forward_latency_buckets(&latency_scrape([100; 13])).expect("all buckets");
        let after = forward_latency_buckets(&latency_scrape([
            150, 190, 190, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200,
        ]))
        .expect("all buckets");
        let p50 = histogram_quantile(&FORWARD_LATENCY_BOUNDS, &before, &after, 0.5).unwrap();
        assert!((p50 - 25e-6).abs() < 1e-9, "{p50}");
        let p99 = histogram_quantile(&FORWARD_LATENCY_BOUNDS, &before, &after, 0.99).unwrap();
        assert!((p99 - 190e-6).abs() < 1e-9, "{p99}");
        assert_eq!(
            histogram_quantile(&FORWARD_LATENCY_BOUNDS, &after, &after, 0.5),
            None
        );
        assert!(forward_latency_buckets("sfu_peers 1\n").is_none());
    }
}
