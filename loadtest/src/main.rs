//! `sfu-loadtest`: synthetic WebRTC peers that load `sfu-server` the way
//! real calls do, and a report people can read.
//!
//! Each peer is a `webrtc` PeerConnection bound to one local address (no
//! STUN, no mDNS) that joins over the server's WebSocket signaling (or a
//! Janus VideoRoom's HTTP API), publishes stamped VP8 and Opus-sized RTP and
//! measures what it receives. Modules: [`cli`] (flags), [`scenario`] (who
//! joins when), [`peer`] (one participant against `sfu-server`), [`janus`]
//! (the same against Janus), [`connection`] (its PeerConnection),
//! [`http`] (a small HTTP client), [`publish`] and [`receive`] (media
//! tasks; the `/ws` client and the PeerConnection set-up are
//! `signaling::client`'s),
//! [`media`] (payloads), [`track_stats`] and [`stats`] (measurements),
//! [`server_metrics`] (the server's CPU and memory), [`soak`] (the churn
//! soak's curve and verdicts), [`report`], [`table`]
//! and [`html`] (output), [`progress`] (live display). See README.md.
//!
//! Exit status: 0 when every threshold holds, 1 when one is broken (or no
//! peer succeeded), 2 for bad flags or an unreachable server, 3 when the
//! report cannot be written, 130 when interrupted with Ctrl-C (after a
//! partial report).

mod cli;
mod connection;
mod html;
mod http;
mod janus;
mod media;
mod peer;
mod progress;
mod publish;
mod receive;
mod report;
mod scenario;
mod server_metrics;
mod slow;
mod soak;
mod stats;
mod table;
mod tokens;
mod track_stats;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::sync::watch;

use cli::{Cli, Target};
use peer::RunContext;
use publish::MediaConfig;
use server_metrics::Source;
use stats::Collector;

/// Where the server is, derived from `--url`.
struct Endpoints {
    /// `host:port`.
    authority: String,
    /// The URL's path (Janus's API base, e.g. `/janus`).
    path: String,
    /// The server's address, resolved.
    addr: SocketAddr,
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("sfu-loadtest: {message}");
    ExitCode::from(2)
}

/// `host:port` and path of an `http://` URL.
fn endpoints(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| format!("--url `{url}` must start with http:// (https is not supported)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("--url `{url}` has no host"));
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.trim_end_matches('/').to_owned()))
}

/// The local address packets to `server` leave from (no packet is sent:
/// connecting a UDP socket only picks the route).
fn local_ip_towards(server: SocketAddr) -> Result<IpAddr, String> {
    let any: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = std::net::UdpSocket::bind(any).map_err(|e| e.to_string())?;
    socket.connect(server).map_err(|e| e.to_string())?;
    Ok(socket.local_addr().map_err(|e| e.to_string())?.ip())
}

async fn resolve(cli: &Cli) -> Result<Endpoints, String> {
    let (authority, mut path) = endpoints(&cli.url)?;
    if cli.target == Target::Janus && path.is_empty() {
        path = "/janus".to_owned();
    }
    let addr = tokio::net::lookup_host(&authority)
        .await
        .map_err(|e| format!("cannot resolve `{authority}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{authority}` resolves to nothing"))?;
    let probe = match cli.target {
        Target::Sfu => "/healthz".to_owned(),
        Target::Janus => format!("{path}/info"),
    };
    http::get(&authority, &probe)
        .await
        .map_err(|e| format!("cannot reach the server at {}: {e}", cli.url))?;
    Ok(Endpoints {
        authority,
        path,
        addr,
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            return usage_error(cli::one_line(&err));
        }
    };
    if cli.simulcast {
        return usage_error(
            "--simulcast is not supported yet: sfu-server does not forward simulcast layers",
        );
    }
    if cli.target == Target::Janus && cli.scenario != cli::Scenario::Fanout {
        return usage_error("--target janus supports --scenario fanout only");
    }
    if cli.slow_subscribers > 0 {
        if cli.scenario != cli::Scenario::Fanout {
            return usage_error("--slow-subscribers needs --scenario fanout");
        }
        if cli.slow_bind_ip.is_none() {
            return usage_error("--slow-subscribers needs --slow-bind-ip");
        }
        if cli.slow_subscribers > cli.subscribers {
            return usage_error("--slow-subscribers cannot exceed --subscribers");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sfu-loadtest: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let endpoints = match resolve(&cli).await {
        Ok(e) => e,
        Err(e) => return usage_error(e),
    };
    let bind_ip = match cli
        .bind_ip
        .map_or_else(|| local_ip_towards(endpoints.addr), Ok)
    {
        Ok(ip) => ip,
        Err(e) => return usage_error(format!("no local address towards {}: {e}", endpoints.addr)),
    };
    let source = Source {
        prometheus: (cli.target == Target::Sfu)
            .then(|| (endpoints.authority.clone(), "/metrics".to_owned())),
        // A server on this machine is measured through /proc as well.
        pid: cli.server_pid.or_else(|| {
            let local = endpoints.addr.ip().is_loopback() || endpoints.addr.ip() == bind_ip;
            local
                .then(|| server_metrics::pid_listening_on(endpoints.addr.port()))
                .flatten()
        }),
    };
    if source.prometheus.is_none() && source.pid.is_none() {
        return usage_error("cannot find the server process to measure; give --server-pid");
    }
    let source_name = source.describe();
    let janus = match cli.target {
        Target::Sfu => None,
        Target::Janus => {
            match janus::JanusRoom::create(&endpoints.authority, &endpoints.path, 1).await {
                Ok(room) => Some(Arc::new(room)),
                Err(e) => return usage_error(format!("cannot create a Janus VideoRoom: {e}")),
            }
        }
    };

    let (interrupt_tx, interrupt_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nsfu-loadtest: interrupted; stopping peers for a partial report (Ctrl-C again quits now)");
            let _ = interrupt_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let mut ws_urls = vec![format!("ws://{}/ws", endpoints.authority)];
    for url in &cli.node_urls {
        match self::endpoints(url) {
            Ok((authority, _)) => ws_urls.push(format!("ws://{authority}/ws")),
            Err(e) => return usage_error(format!("--node-url: {e}")),
        }
    }
    let (stop_media_tx, stop_media_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let fps = cli.fps;
    let ctx = RunContext {
        collector: Arc::new(Collector::new()),
        ws_urls,
        tokens: tokens::TokenSource::new(
            cli.api_key.as_deref(),
            cli.api_secret.as_deref(),
            &endpoints.authority,
        ),
        janus,
        bind_ip,
        slow_bind_ip: cli.slow_bind_ip,
        media: MediaConfig {
            video_bitrate: cli.video_bitrate,
            fps,
            keyframe_every: ((cli.keyframe_interval.as_secs_f64() * f64::from(fps)).round() as u32)
                .max(1),
            audio_only: cli.audio_only,
        },
        stop_media: stop_media_rx,
        stop: stop_rx,
    };
    let outcome = scenario::run(&cli, ctx, source, stop_media_tx, stop_tx, interrupt_rx).await;
    let report = report::build(&cli, &outcome, source_name);
    print!("{}", table::render(&report));
    if let Some(path) = &cli.json {
        let json = match serde_json::to_string_pretty(&report) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("sfu-loadtest: cannot encode the JSON report: {e}");
                return ExitCode::from(3);
            }
        };
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("sfu-loadtest: cannot write {}: {e}", path.display());
            return ExitCode::from(3);
        }
    }
    if let Some(path) = &cli.html {
        if let Err(e) = std::fs::write(path, html::render(&report)) {
            eprintln!("sfu-loadtest: cannot write {}: {e}", path.display());
            return ExitCode::from(3);
        }
    }
    if report.interrupted {
        ExitCode::from(130)
    } else if !report.passed || report.peers.succeeded == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            endpoints("http://127.0.0.1:8080"),
            Ok(("127.0.0.1:8080".into(), "".into()))
        );
        assert_eq!(
            endpoints("http://localhost/"),
            Ok(("localhost:80".into(), "".into()))
        );
        assert_eq!(
            endpoints("http://127.0.0.1:8088/janus/"),
            Ok(("127.0.0.1:8088".into(), "/janus".into()))
        );
        assert!(endpoints("https://example.org").is_err());
        assert!(endpoints("127.0.0.1:8080").is_err());
        assert!(endpoints("http://").is_err());
    }

    #[test]
    fn loopback_routes_from_loopback() {
        let ip = local_ip_towards("127.0.0.1:9".parse().expect("addr")).expect("route");
        assert!(ip.is_loopback());
    }
}
