//! `sfu-server`: parses flags, starts signaling and the media Worker, and
//! runs until SIGINT or SIGTERM.

use std::io::Write;

use clap::Parser;
use signaling::config::LogFormat;
use signaling::Config;
use tracing_subscriber::EnvFilter;

/// Our own logs at info; the WebRTC stack's only when something is wrong.
const DEFAULT_LOG_FILTER: &str =
    "info,rtc=warn,rtc_ice=warn,rtc_dtls=error,rtc_sctp=warn,rtc_srtp=warn";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    if let Some(signaling::token_cli::Command::Token(args)) = &config.command {
        return match signaling::token_cli::mint(&config, args) {
            Ok(token) => {
                println!("{token}");
                std::process::ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("sfu-server token: {err}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    let generated_token = config.admin_token.is_none();
    let stop = match StopSignals::install() {
        Ok(stop) => stop,
        Err(err) => {
            eprintln!("sfu-server: cannot listen for signals: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = match signaling::start(config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("sfu-server: cannot start: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut banner = format!(
        "sfu-server listening on {}://{}\nmedia on udp {} (advertised as {})\n",
        if server.https { "https" } else { "http" },
        server.http_addr,
        server.udp_addr,
        server.public_addr
    );
    if let Some(redirect) = server.redirect_addr {
        banner.push_str(&format!("plain HTTP on {redirect} redirects to HTTPS\n"));
    }
    if let Some(tcp) = server.tcp_addr {
        banner.push_str(&format!("ice-tcp on tcp {tcp}\n"));
    }
    if server.workers > 1 {
        banner.push_str(&format!(
            "{} media workers: worker k on the udp and ice-tcp ports above + k\n",
            server.workers
        ));
    }
    if let Some(cluster) = server.cluster() {
        banner.push_str(&format!(
            "cluster node {} with {} node(s) registered\n",
            cluster.node_id(),
            cluster.view().len()
        ));
    }
    if server.dev_mode {
        banner.push_str(
            "WARNING: DEV MODE: anyone can mint access tokens (POST /api/token); \
             set --api-key and --api-secret for production\n",
        );
        tracing::warn!(
            "dev mode: anyone can mint access tokens with POST /api/token; \
             never run dev mode on a public server"
        );
    }
    if generated_token {
        banner.push_str(&format!(
            "admin API token (generated; set --admin-token to fix it): {}\n",
            server.admin_token
        ));
    }
    // Whoever started us may have stopped reading stdout; that is no
    // reason to stop serving.
    let mut stdout = std::io::stdout();
    let _ = stdout
        .write_all(banner.as_bytes())
        .and_then(|()| stdout.flush());
    let mut stop = stop;
    tokio::select! {
        () = stop.wait() => tracing::info!("stop signal: draining, then shutting down"),
        () = server.drain_requested() => tracing::info!("drain requested: draining, then shutting down"),
    }
    // A second signal cuts the drain short.
    match server.drain_and_shutdown(stop.wait()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sfu-server: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// SIGINT and SIGTERM, listened for from start-up on, so that a signal
/// that arrives while the server starts still shuts it down cleanly.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
