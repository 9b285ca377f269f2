//! Command-line flags and environment variables of `sfu-server`.

use std::net::{IpAddr, SocketAddr};

use clap::{Parser, ValueEnum};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A WebRTC SFU: every call relayed through this server.
#[derive(Debug, Clone, Parser)]
#[command(name = "sfu-server", version, about)]
pub struct Config {
    /// Address for HTTP, WebSocket signaling and the web client. Media
    /// binds the same IP.
    #[arg(long, env = "SFU_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// UDP port shared by every participant's media (0 picks a free port).
    #[arg(long, env = "SFU_UDP_PORT", default_value_t = 7882)]
    pub udp_port: u16,

    /// Address advertised to browsers in ICE candidates. Defaults to the
    /// bind IP; required when binding 0.0.0.0 or behind 1:1 NAT.
    #[arg(long, env = "SFU_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// Bearer token for the admin API under /api. When unset, a random one
    /// is generated at start-up and printed.
    #[arg(long, env = "SFU_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Seconds an unanswered 1:1 call rings before it times out.
    #[arg(long, env = "SFU_RING_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub ring_timeout_secs: u64,

    /// Log format.
    #[arg(long, env = "SFU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// Loopback on free ports, with `admin_token` as the admin token: what
    /// in-process tests run.
    pub fn loopback(admin_token: &str) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            udp_port: 0,
            public_ip: None,
            admin_token: Some(admin_token.to_owned()),
            ring_timeout_secs: 30,
            log_format: LogFormat::Text,
        }
    }
}
