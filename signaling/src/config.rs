//! Command-line flags and environment variables of `sfu-server`.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;

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
}
