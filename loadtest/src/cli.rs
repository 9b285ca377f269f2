//! The command line: flags, and the parsers for their values (durations
//! like `30s`, bitrates like `800k`, thresholds like `1%` and `50ms`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// What kind of load to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// N concurrent 1:1 calls (`--calls`), both sides publishing.
    Calls,
    /// R rooms (`--rooms`) of M participants (`--peers`), all publishing.
    Room,
    /// One publisher to N receive-only subscribers (`--subscribers`).
    Fanout,
    /// Peers joining and leaving a room with one publisher, at `--ramp`
    /// joins per second, each staying `--lifetime`, at most `--peers` at once.
    Churn,
}

/// Which server to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Our `sfu-server` (WebSocket signaling on `/ws`, `/metrics`).
    Sfu,
    /// A Janus VideoRoom over Janus's HTTP API (`--url` is its base,
    /// e.g. `http://127.0.0.1:8088/janus`; `fanout` only); CPU and memory
    /// come from /proc.
    Janus,
}

/// Load-test an SFU with synthetic WebRTC peers.
#[derive(Debug, Clone, Parser)]
#[command(name = "sfu-loadtest", version, about)]
pub struct Cli {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// Another node of a cluster (repeatable): peers connect to --url and
    /// these in turn, and follow the server's redirects. Server figures
    /// (CPU, memory, metrics) are those of --url's node.
    #[arg(long = "node-url", value_name = "URL")]
    pub node_urls: Vec<String>,

    /// The load pattern.
    #[arg(long, value_enum, default_value = "room")]
    pub scenario: Scenario,

    /// Which server `--url` points at.
    #[arg(long, value_enum, default_value = "sfu")]
    pub target: Target,

    /// How long to measure at full load, after every peer has joined
    /// (e.g. `30s`, `2m`, `500ms`; a bare number is seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Duration,

    /// Joins per second while peers are being added.
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate, allow_hyphen_values = true)]
    pub ramp: f64,

    /// Video bitrate per publisher (e.g. `800k`, `1.5M`, `1200000`).
    #[arg(long, default_value = "800k", value_parser = parse_bitrate, allow_hyphen_values = true)]
    pub video_bitrate: u64,

    /// Video frame rate.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,

    /// Time between periodic keyframes.
    #[arg(long, default_value = "2s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub keyframe_interval: Duration,

    /// Publish audio only (no video).
    #[arg(long)]
    pub audio_only: bool,

    /// Publish three simulcast layers (not supported yet: the server does
    /// not forward simulcast).
    #[arg(long)]
    pub simulcast: bool,

    /// `calls`: number of concurrent 1:1 calls.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub calls: u32,

    /// `room`: number of rooms.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rooms: u32,

    /// `room`: participants per room; `churn`: peers present at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub peers: u32,

    /// `fanout`: number of subscribers.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub subscribers: u32,

    /// `churn`: how long each churning peer stays: one duration (`5s`) or
    /// a range (`1s..5s`, uniform random per peer).
    #[arg(long, default_value = "5s", value_parser = parse_lifetime, allow_hyphen_values = true)]
    pub lifetime: Lifetime,

    /// `churn`: start this many churners (cycles of join, stay, leave),
    /// then end the run when all have left (instead of after --duration);
    /// the server is read every 500 finished cycles (the soak curve).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub cycles: Option<u64>,

    /// `churn`: spread churners over this many rooms (`churn-0`, ...), each
    /// with its own publishing anchor, so media grows with the peers present
    /// rather than with their square. 1 keeps one room, `churn`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub churn_rooms: u32,

    /// Fail (exit 1) if packet loss exceeds this (e.g. `1%`).
    #[arg(long, value_parser = parse_percent, allow_hyphen_values = true)]
    pub max_loss: Option<f64>,

    /// Fail (exit 1) if the 99th percentile end-to-end latency exceeds
    /// this (e.g. `50ms`).
    #[arg(long, value_parser = parse_latency, allow_hyphen_values = true)]
    pub max_p99_latency: Option<Duration>,

    /// Fail (exit 1) if the server used more CPU than this per forwarded
    /// packet over the full-load window (e.g. `9us`; a bare number is
    /// microseconds).
    #[arg(long, value_parser = parse_cpu_per_packet, allow_hyphen_values = true)]
    pub max_cpu_per_packet: Option<f64>,

    /// Fail (exit 1) if fewer peers than this joined successfully
    /// (e.g. `99%`).
    #[arg(long, value_parser = parse_percent, allow_hyphen_values = true)]
    pub min_join_success: Option<f64>,

    /// Fail (exit 1) if the server's RSS at the end of a `--cycles` run
    /// exceeds its RSS after the first 500 cycles by more than this share
    /// or 5 MiB, whichever is larger (e.g. `5%`).
    #[arg(long, value_parser = parse_percent, allow_hyphen_values = true)]
    pub max_rss_growth: Option<f64>,

    /// Fail (exit 1) unless, once everyone has left a `--cycles` run, the
    /// server counts no peers, tracks or subscriptions, and its open fds and
    /// tokio tasks are within 2 of their values before the run.
    #[arg(long)]
    pub require_clean_end: bool,

    /// The server's API key: with --api-secret, peers' access tokens are
    /// minted here. Without them they are asked of a dev-mode server
    /// (`POST /api/token`).
    #[arg(long, env = "SFU_API_KEY")]
    pub api_key: Option<String>,

    /// The server's API secret (see --api-key).
    #[arg(
        long,
        alias = "token-secret",
        env = "SFU_API_SECRET",
        hide_env_values = true
    )]
    pub api_secret: Option<String>,

    /// Write the machine-readable report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write a self-contained HTML report with plots here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Read the server's CPU and memory from /proc/PID instead of
    /// `/metrics` (required for `--target janus` unless one `janus`
    /// process is running).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Local address for the peers' media sockets (default: the address
    /// the server is reached from, e.g. 127.0.0.1 for a server on loopback).
    #[arg(long, value_name = "IP")]
    pub bind_ip: Option<std::net::IpAddr>,

    /// `fanout`: how many of the subscribers are slow. They bind
    /// `--slow-bind-ip`, whose downlink the caller throttles (for example
    /// with `tc`); loss, latency and the thresholds then cover the other
    /// peers, and the slow ones are reported apart.
    #[arg(long, default_value_t = 0)]
    pub slow_subscribers: u32,

    /// The local address slow subscribers bind (with `--slow-subscribers`).
    #[arg(long, value_name = "IP")]
    pub slow_bind_ip: Option<std::net::IpAddr>,

    /// No live progress display.
    #[arg(long)]
    pub no_progress: bool,
}

fn split_number(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(end);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` does not start with a number"))?;
    if !value.is_finite() {
        return Err(format!("`{s}` is not a finite number"));
    }
    if value < 0.0 {
        return Err("must not be negative".to_owned());
    }
    Ok((value, unit.trim()))
}

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds; must be > 0.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (value, unit) = split_number(s)?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s, m or h)")),
    };
    if seconds <= 0.0 {
        return Err("must be greater than zero".to_owned());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// A latency threshold: like [`parse_duration`] but a bare number is
/// milliseconds and zero is allowed.
pub fn parse_latency(s: &str) -> Result<Duration, String> {
    let (value, unit) = split_number(s)?;
    if value == 0.0 {
        return Ok(Duration::ZERO);
    }
    if unit.is_empty() {
        return parse_duration(&format!("{value}ms"));
    }
    parse_duration(s)
}

/// CPU time per packet in microseconds: `9us`, `9µs`, or a bare number; > 0.
pub fn parse_cpu_per_packet(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let number = t
        .strip_suffix("us")
        .or_else(|| t.strip_suffix("µs"))
        .unwrap_or(t)
        .trim();
    match number.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a CPU time per packet (e.g. `9us`)")),
    }
}

/// `1%`, `0.5%`, or a bare number meaning percent; 0–100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let (value, unit) = split_number(s)?;
    if !(unit.is_empty() || unit == "%") {
        return Err(format!("unknown unit `{unit}` (use %)"));
    }
    if value > 100.0 {
        return Err("must be at most 100%".to_owned());
    }
    Ok(value)
}

/// `800k`, `1.5M`, `2mbps`, `1200000`: bits per second, 10 kbit/s – 100 Mbit/s.
pub fn parse_bitrate(s: &str) -> Result<u64, String> {
    let (value, unit) = split_number(s)?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .trim_end_matches("bit/s")
        .trim_end_matches("bps")
        .trim_end_matches("b/s");
    let bits = match unit {
        "" => value,
        "k" => value * 1e3,
        "m" => value * 1e6,
        other => return Err(format!("unknown unit `{other}` (use k or M)")),
    };
    if !(10e3..=100e6).contains(&bits) {
        return Err("must be between 10k and 100M bit/s".to_owned());
    }
    Ok(bits as u64)
}

/// How long a churner stays: uniform in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Shortest stay.
    pub min: Duration,
    /// Longest stay.
    pub max: Duration,
}

impl Lifetime {
    /// The stay at `u` in [0, 1) of the range.
    pub fn at(&self, u: f64) -> Duration {
        self.min + (self.max - self.min).mul_f64(u.clamp(0.0, 1.0))
    }

    /// A uniformly random stay.
    pub fn pick(&self) -> Duration {
        self.at(rand::random::<f64>())
    }
}

/// `5s` (always 5 s) or `1s..5s` (uniform between); each side as in
/// [`parse_duration`].
pub fn parse_lifetime(s: &str) -> Result<Lifetime, String> {
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (parse_duration(a)?, parse_duration(b)?),
        None => {
            let d = parse_duration(s)?;
            (d, d)
        }
    };
    if min > max {
        return Err(format!("`{s}`: the range must not run backwards"));
    }
    Ok(Lifetime { min, max })
}

/// Joins per second: a positive number.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let (value, unit) = split_number(s)?;
    if !(unit.is_empty() || unit == "/s") {
        return Err(format!("unknown unit `{unit}`"));
    }
    if value <= 0.0 {
        return Err("must be greater than zero".to_owned());
    }
    Ok(value)
}

/// A clap error as one line: the message and, if any, the possible values.
pub fn one_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    parts.join(" ").trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("-5s"), Err("must not be negative".into()));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn thresholds() {
        assert_eq!(parse_percent("1%"), Ok(1.0));
        assert_eq!(parse_percent("0.5%"), Ok(0.5));
        assert_eq!(parse_percent("99"), Ok(99.0));
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("1‰").is_err());
        assert_eq!(parse_cpu_per_packet("9us"), Ok(9.0));
        assert_eq!(parse_cpu_per_packet("2.5µs"), Ok(2.5));
        assert_eq!(parse_cpu_per_packet("9"), Ok(9.0));
        assert!(parse_cpu_per_packet("0").is_err());
        assert!(parse_cpu_per_packet("9ms").is_err());
        assert_eq!(parse_latency("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_latency("50"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_latency("0.2s"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_latency("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_latency("0"), Ok(Duration::ZERO));
        assert!(parse_latency("-3ms").is_err());
    }

    #[test]
    fn lifetimes() {
        let fixed = parse_lifetime("5s").expect("one value");
        assert_eq!(
            (fixed.min, fixed.max),
            (Duration::from_secs(5), Duration::from_secs(5))
        );
        assert_eq!(fixed.pick(), Duration::from_secs(5));
        let range = parse_lifetime("1s..5s").expect("a range");
        assert_eq!(range.at(0.0), Duration::from_secs(1));
        assert_eq!(range.at(0.5), Duration::from_secs(3));
        assert!((0..100).all(|_| (range.min..=range.max).contains(&range.pick())));
        assert_eq!(
            parse_lifetime("500ms..2").map(|l| (l.min, l.max)),
            Ok((Duration::from_millis(500), Duration::from_secs(2)))
        );
        assert!(parse_lifetime("5s..1s").is_err());
        assert!(parse_lifetime("1s..").is_err());
        assert!(parse_lifetime("0..1s").is_err());
        let cli = Cli::try_parse_from([
            "sfu-loadtest",
            "--scenario",
            "churn",
            "--cycles",
            "500",
            "--lifetime",
            "1s..5s",
            "--max-rss-growth",
            "5%",
            "--require-clean-end",
        ])
        .expect("valid");
        assert_eq!(cli.cycles, Some(500));
        assert_eq!(cli.max_rss_growth, Some(5.0));
        assert!(cli.require_clean_end);
        assert!(Cli::try_parse_from(["sfu-loadtest", "--cycles", "0"]).is_err());
    }

    #[test]
    fn bitrates_and_rates() {
        assert_eq!(parse_bitrate("800k"), Ok(800_000));
        assert_eq!(parse_bitrate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_bitrate("2mbps"), Ok(2_000_000));
        assert_eq!(parse_bitrate("1200000"), Ok(1_200_000));
        assert!(parse_bitrate("5").is_err());
        assert!(parse_bitrate("1G").is_err());
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
    }

    #[test]
    fn bad_flags_become_one_line() {
        let err = Cli::try_parse_from(["sfu-loadtest", "--duration", "-5s"]).expect_err("negative");
        let line = one_line(&err);
        assert!(!line.contains('\n'));
        assert!(
            line.contains("--duration") && line.contains("negative"),
            "{line}"
        );
        let err =
            Cli::try_parse_from(["sfu-loadtest", "--scenario", "storm"]).expect_err("unknown");
        let line = one_line(&err);
        assert!(line.contains("storm") && line.contains("fanout"), "{line}");
        let cli = Cli::try_parse_from([
            "sfu-loadtest",
            "--max-loss",
            "1%",
            "--max-p99-latency",
            "50ms",
        ])
        .expect("valid");
        assert_eq!(cli.max_loss, Some(1.0));
        assert_eq!(cli.max_p99_latency, Some(Duration::from_millis(50)));
    }
}
