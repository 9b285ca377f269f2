//! The `sfu-server` binary as an operator runs it: it prints where it
//! listens, serves, and exits 0 on SIGTERM and SIGINT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(extra_env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfu-server"));
    cmd.args(["--bind", "127.0.0.1:0"])
        .env_remove("SFU_UDP_PORT")
        .env_remove("SFU_PUBLIC_IP")
        .env("SFU_TCP_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("sfu-server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let url = first
        .strip_prefix("sfu-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let media = lines.next().expect("a second line").expect("utf-8");
    assert!(media.starts_with("media on udp 127.0.0.1:"), "{media}");
    (child, url)
}

fn get(url: &str, path: &str) -> String {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn signal_and_wait(mut child: Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after {signal}: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "no exit within 5 s of {signal}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_and_exits_cleanly_on_sigterm() {
    let (child, url) = spawn(&[("SFU_UDP_PORT", "0")]);
    assert!(get(&url, "/healthz").contains("200 OK"));
    assert!(get(&url, "/metrics").contains("sfu_peers 0"));
    signal_and_wait(child, "TERM");
}

#[test]
fn exits_cleanly_on_sigint() {
    let (child, url) = spawn(&[("SFU_UDP_PORT", "0")]);
    assert!(get(&url, "/").contains("<!doctype html>"));
    signal_and_wait(child, "INT");
}

#[test]
fn refuses_unspecified_media_address_without_public_ip() {
    let output = Command::new(env!("CARGO_BIN_EXE_sfu-server"))
        .args(["--bind", "0.0.0.0:0", "--udp-port", "0", "--dev"])
        .env_remove("SFU_PUBLIC_IP")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("public IP"), "{stderr}");
}

/// Not loopback, no API key and secret, no `--dev`: the server refuses to
/// start rather than run an open dev server.
#[test]
fn refuses_to_start_open_to_the_network_without_keys() {
    let output = Command::new(env!("CARGO_BIN_EXE_sfu-server"))
        .args(["--bind", "0.0.0.0:0", "--udp-port", "0", "--tcp-port", "0"])
        .env_remove("SFU_API_KEY")
        .env_remove("SFU_API_SECRET")
        .env_remove("SFU_DEV")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--api-key") && stderr.contains("--dev"),
        "{stderr}"
    );
}

/// The zero-config run is dev mode, and says so loudly.
#[test]
fn zero_config_is_dev_mode_and_says_so() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfu-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--udp-port",
            "0",
            "--tcp-port",
            "0",
        ])
        .env_remove("SFU_API_KEY")
        .env_remove("SFU_API_SECRET")
        .env_remove("SFU_PUBLIC_IP")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let warned = BufReader::new(stdout)
        .lines()
        .take(5)
        .map_while(Result::ok)
        .any(|l| l.contains("WARNING: DEV MODE") && l.contains("anyone can mint"));
    assert!(warned, "no dev mode warning in the banner");
    signal_and_wait(child, "TERM");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfu-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--udp-port",
            "0",
            "--tcp-port",
            "0",
            "--log-format",
            "json",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    assert!(first.starts_with("sfu-server listening on "), "{first}");
    let stderr = child.stderr.take().unwrap();
    signal_and_wait(child, "TERM");
    let mut lines = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value.get("level").is_some() && value.get("timestamp").is_some(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines >= 1, "shutting down logs at least one line");
}

/// SIGTERM with a participant in a room: `/readyz` fails at once, the
/// client is told to migrate, and the process exits 0 at the drain
/// deadline although the participant never leaves; a second SIGTERM is
/// not needed.
#[test]
fn sigterm_drains_then_exits_within_the_deadline() {
    use tungstenite::Message;
    let (child, url) = spawn(&[
        ("SFU_UDP_PORT", "0"),
        ("SFU_DRAIN_TIMEOUT_SECS", "2"),
        ("SFU_API_KEY", "k"),
        ("SFU_API_SECRET", "s"),
    ]);
    let host = url.trim_start_matches("http://").to_owned();
    let (mut ws, _) = tungstenite::connect(format!("ws://{host}/ws")).unwrap();
    let token = signaling::auth::Keys::new("k", b"s".to_vec())
        .mint(&signaling::auth::TokenRequest {
            room: "drain".to_owned(),
            identity: "stays".to_owned(),
            name: String::new(),
            grants: signaling::auth::Grants::dev_default(),
            ttl: Duration::from_secs(600),
        })
        .unwrap();
    ws.send(Message::text(
        serde_json::json!({"type": "join", "room": "drain", "name": "Stays", "token": token})
            .to_string(),
    ))
    .unwrap();
    let joined = ws.read().unwrap().into_text().unwrap();
    assert!(joined.contains(r#""type":"joined""#), "{joined}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let migrate = loop {
        match ws.read().unwrap() {
            Message::Text(text) if text.contains("migrate") => break text,
            _ => continue,
        }
    };
    assert!(migrate.contains(r#""deadlineSecs":2"#), "{migrate}");
    assert!(
        get(&url, "/readyz").contains("503"),
        "not ready while draining"
    );
    let mut child = child;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status: {status}");
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(6),
            "no exit within the 2 s drain deadline (and slack)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "the call was kept until the deadline"
    );
}
