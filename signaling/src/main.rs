//! `sfu-server`: parses flags, starts signaling and the media Worker, and
//! runs until SIGINT or SIGTERM.

use clap::Parser;
use signaling::Config;
use tracing_subscriber::EnvFilter;

/// Our own logs at info; the WebRTC stack's only when something is wrong.
const DEFAULT_LOG_FILTER: &str =
    "info,rtc=warn,rtc_ice=warn,rtc_dtls=error,rtc_sctp=warn,rtc_srtp=warn";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    let server = match signaling::start(config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("sfu-server: cannot start: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("sfu-server listening on http://{}", server.http_addr);
    println!(
        "media on udp {} (advertised as {})",
        server.udp_addr, server.public_addr
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    match server.shutdown().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sfu-server: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(%err, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
