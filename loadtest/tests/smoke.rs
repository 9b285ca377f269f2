//! Smoke tests of the `sfu-loadtest` binary against an in-process
//! `sfu-server` on loopback: a `room` run (2 rooms × 3 peers, 10 s) that
//! must pass with no failed peer, under 1% loss, with latency percentiles
//! and a CPU-per-packet figure; the same load with a threshold it cannot
//! meet, which must exit non-zero; and bad flags, which must exit 2 with
//! one line on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sfu-loadtest");

async fn start_server() -> signaling::Server {
    // Parsed like the binary's flags, so that new settings keep their defaults.
    let config = signaling::Config::try_parse_from([
        "sfu-server",
        "--bind",
        "127.0.0.1:0",
        "--udp-port",
        "0",
        "--tcp-port",
        "0",
    ])
    .expect("valid server flags");
    signaling::start(config).await.expect("server starts")
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sfu-loadtest-{}-{name}", std::process::id()))
}

/// Runs the binary off the async runtime (the server lives on it).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .output()
            .expect("sfu-loadtest runs")
    })
    .await
    .expect("runner thread")
}

fn room_args(url: &str, duration: &str, json: &Path) -> Vec<String> {
    [
        "--url",
        url,
        "--scenario",
        "room",
        "--rooms",
        "2",
        "--peers",
        "3",
        "--duration",
        duration,
        "--ramp",
        "20",
        "--no-progress",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([json.display().to_string()])
    .collect()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("JSON report written");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("JSON report parses")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_smoke_run_passes_and_an_impossible_threshold_fails() {
    let server = start_server().await;
    let url = format!("http://{}", server.http_addr);

    let json = temp_file("room.json");
    let mut args = room_args(&url, "10s", &json);
    args.extend(["--max-loss", "1%", "--min-join-success", "100%"].map(String::from));
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let r = read_json(&json);
    assert_eq!(r["peers"]["attempted"], 6, "{r}");
    assert_eq!(r["peers"]["failed"], 0, "{}", describe(&out));
    assert_eq!(r["peers"]["succeeded"], 6);
    let loss = r["packets"]["loss_pct"].as_f64().expect("loss");
    assert!(loss < 1.0, "loss {loss}%");
    assert!(r["packets"]["received"].as_u64().expect("received") > 1_000);
    for p in ["p50", "p95", "p99", "max"] {
        let latency = r["latency_ms"][p].as_f64();
        assert!(
            latency.is_some_and(|v| v > 0.0),
            "latency {p} in {}",
            r["latency_ms"]
        );
        assert!(r["join_time_ms"][p].as_f64().is_some(), "join time {p}");
    }
    // Every peer receives audio and video from the two others in its room.
    let tracks = r["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 6 * 2 * 2, "received tracks");
    assert!(tracks.iter().all(|t| t["received"].as_u64() > Some(0)));
    let cpu = r["server"]["cpu_us_per_forwarded_packet"].as_f64();
    assert!(
        cpu.is_some_and(|v| v > 0.0),
        "CPU per packet in {}",
        r["server"]
    );
    assert!(
        r["server"]["rss_per_peer_bytes"].is_number(),
        "{}",
        r["server"]
    );
    assert_eq!(r["server"]["peers_after"], 0.0, "everyone left");
    assert_eq!(r["passed"], true);

    let json = temp_file("impossible.json");
    let mut args = room_args(&url, "3s", &json);
    args.extend(["--max-p99-latency", "0ms"].map(String::from));
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let r = read_json(&json);
    assert_eq!(r["passed"], false);
    assert_eq!(r["thresholds"][0]["passed"], false, "{}", r["thresholds"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN"));

    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server stops")
        .expect("cleanly");
}

/// A production server (API key and secret, no dev minter): peers join
/// with tokens minted locally from `--api-key`/`--api-secret`, and without
/// them the run reports that it cannot get tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_servers_take_locally_minted_tokens() {
    let config = signaling::Config::try_parse_from([
        "sfu-server",
        "--bind",
        "127.0.0.1:0",
        "--udp-port",
        "0",
        "--tcp-port",
        "0",
        "--api-key",
        "load-key",
        "--api-secret",
        "load-secret",
    ])
    .expect("valid server flags");
    let server = signaling::start(config).await.expect("server starts");
    assert!(!server.dev_mode);
    let url = format!("http://{}", server.http_addr);
    let json = temp_file("production.json");
    let mut args = room_args(&url, "2s", &json);
    args.extend(["--api-key", "load-key", "--token-secret", "load-secret"].map(String::from));
    let out = run(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(read_json(&json)["passed"], true);

    let json = temp_file("no-token.json");
    let mut args = room_args(&url, "1s", &json);
    args.extend(["--min-join-success", "100%"].map(String::from));
    let out = run(args).await;
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--api-key"), "{text}");
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server stops")
        .expect("cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_2_with_one_line() {
    let server = start_server().await;
    let url = format!("http://{}", server.http_addr);
    let cases: [(&[&str], &str); 5] = [
        (&["--duration", "-5s"], "negative"),
        (&["--scenario", "storm"], "storm"),
        (&["--max-loss", "lots"], "--max-loss"),
        (&["--url", "http://127.0.0.1:1"], "cannot reach"),
        (&["--simulcast"], "not supported yet"),
    ];
    for (flags, expected) in cases {
        let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        if !flags.contains(&"--url") {
            args.extend(["--url".to_owned(), url.clone()]);
        }
        let out = run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", describe(&out));
        assert_eq!(stderr.trim_end().lines().count(), 1, "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{flags:?}: no report");
    }
    server.shutdown().await.expect("server stops");
}
