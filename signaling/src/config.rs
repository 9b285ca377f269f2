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
    /// binds the same IP unless --media-bind-ip says otherwise.
    #[arg(long, env = "SFU_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// IP the media sockets (UDP and ICE-TCP) bind. Defaults to the IP of
    /// --bind.
    #[arg(long, env = "SFU_MEDIA_BIND_IP")]
    pub media_bind_ip: Option<IpAddr>,

    /// UDP port shared by every participant's media (0 picks a free port).
    #[arg(long, env = "SFU_UDP_PORT", default_value_t = 7882)]
    pub udp_port: u16,

    /// TCP port for ICE-TCP, the fallback when UDP is blocked (0 picks a
    /// free port).
    #[arg(long, env = "SFU_TCP_PORT", default_value_t = 7881)]
    pub tcp_port: u16,

    /// Turn ICE-TCP off.
    #[arg(long, env = "SFU_NO_ICE_TCP")]
    pub no_ice_tcp: bool,

    /// Media Workers: threads that each hold whole rooms, with their own
    /// UDP and ICE-TCP ports (Worker k on --udp-port + k and --tcp-port +
    /// k). 0: one per CPU core.
    #[arg(long, env = "SFU_WORKERS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=64))]
    pub workers: u32,

    /// Tell web clients to publish their camera as one encoding instead of
    /// three simulcast layers (`joined.simulcast` is false).
    #[arg(long, env = "SFU_NO_SIMULCAST")]
    pub no_simulcast: bool,

    /// Addresses advertised to browsers in ICE candidates: the server's
    /// public addresses when it sits behind 1:1 NAT (a cloud VM with a
    /// private address). Several may be given, IPv4 and IPv6, comma
    /// separated (if the flag is repeated, the last one counts). Defaults
    /// to the media bind IP; required when that is 0.0.0.0, unless
    /// --stun-server discovers it.
    #[arg(long, alias = "nat-1to1", env = "SFU_PUBLIC_IP", value_delimiter = ',',
          action = clap::ArgAction::Set, overrides_with = "public_ip")]
    pub public_ip: Vec<IpAddr>,

    /// A STUN server (host:port) asked once at start-up for the public
    /// address, when --public-ip is not given. There is no default.
    #[arg(long, env = "SFU_STUN_SERVER")]
    pub stun_server: Option<String>,

    /// TURN (or STUN) server URLs handed to clients, e.g.
    /// `turn:turn.example.com:3478?transport=udp`, `turns:...:5349`.
    /// Comma separated or repeated.
    #[arg(long, env = "SFU_TURN_URL", value_delimiter = ',')]
    pub turn_url: Vec<String>,

    /// Static TURN username (with --turn-password).
    #[arg(long, env = "SFU_TURN_USERNAME")]
    pub turn_username: Option<String>,

    /// Static TURN password (with --turn-username).
    #[arg(long, env = "SFU_TURN_PASSWORD", hide_env_values = true)]
    pub turn_password: Option<String>,

    /// Shared secret with the TURN server (coturn's --static-auth-secret):
    /// each join gets ephemeral credentials under the TURN REST scheme.
    #[arg(long, env = "SFU_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// How long ephemeral TURN credentials stay valid, in seconds.
    #[arg(long, env = "SFU_TURN_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=7 * 24 * 3600))]
    pub turn_ttl_secs: u64,

    /// Seconds a participant whose signaling socket dropped (without a
    /// close) keeps its media and its place, waiting for the client to
    /// resume on a new socket. Capped at 3 s while the participant is in a
    /// 1:1 call, so a lost caller ends the call within 10 s. 0 turns
    /// resume off.
    #[arg(long, env = "SFU_RESUME_GRACE_SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub resume_grace_secs: u64,

    /// On SIGTERM, SIGINT or `POST /api/drain`: seconds the server keeps
    /// serving the calls it has (refusing new joins, and telling clients to
    /// migrate) before it closes every session and exits.
    #[arg(long, env = "SFU_DRAIN_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_timeout_secs: u64,

    /// Seconds without a packet from a client before its media
    /// connection is declared dead and its participant removed (ICE
    /// consent freshness).
    #[arg(long, env = "SFU_CONSENT_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(2..=300))]
    pub consent_timeout_secs: u64,

    /// Packets each video layer keeps to answer subscribers' NACKs
    /// (1,024: over 1 s of video at 8 Mbit/s, and 3 s or more under the
    /// padding probes a browser adds under loss).
    #[arg(long, env = "SFU_NACK_CACHE_VIDEO_PACKETS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(16..=32_768))]
    pub nack_cache_video_packets: u32,

    /// Packets each audio track keeps to answer subscribers' NACKs (64:
    /// 1.28 s of 20 ms Opus).
    #[arg(long, env = "SFU_NACK_CACHE_AUDIO_PACKETS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(8..=32_768))]
    pub nack_cache_audio_packets: u32,

    /// Cap on each participant's inbound media bitrate in kbit/s (all its
    /// datagrams, before decryption); the excess is dropped and counted in
    /// sfu_inbound_dropped_packets_total{reason="rate_limit"}. 0: no cap.
    #[arg(long, env = "SFU_MAX_PEER_INBOUND_KBPS", default_value_t = 20_000)]
    pub max_peer_inbound_kbps: u32,

    /// Cap on each participant's inbound datagrams per second; the excess
    /// is dropped and counted like --max-peer-inbound-kbps. 0: no cap.
    #[arg(long, env = "SFU_MAX_PEER_INBOUND_PPS", default_value_t = 5_000)]
    pub max_peer_inbound_pps: u32,

    /// Bearer token for the admin API under /api. When unset, a random one
    /// is generated at start-up and printed.
    #[arg(long, env = "SFU_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// API key that access tokens name as their issuer (`iss`). With
    /// --api-secret; without both the server runs in dev mode (only on a
    /// loopback bind, or with --dev).
    #[arg(long, env = "SFU_API_KEY", global = true)]
    pub api_key: Option<String>,

    /// Secret access tokens are signed with (HS256).
    #[arg(long, env = "SFU_API_SECRET", hide_env_values = true, global = true)]
    pub api_secret: Option<String>,

    /// Dev mode: `POST /api/token` mints access tokens for anyone. Implied
    /// when no --api-key/--api-secret is set and --bind is loopback. Never
    /// on a public server.
    #[arg(long, env = "SFU_DEV", value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,

    /// Origins (scheme://host[:port]) browsers may open /ws and call /api
    /// from, comma separated; `*` allows any. Same-origin is always
    /// allowed, and in dev mode also http://localhost:* and
    /// http://127.0.0.1:*.
    #[arg(long, env = "SFU_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origin: Vec<String>,

    /// Seconds an unanswered 1:1 call rings before it times out.
    #[arg(long, env = "SFU_RING_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub ring_timeout_secs: u64,

    /// Largest signaling message a client may send, in bytes.
    #[arg(long, env = "SFU_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1024 * 1024))]
    pub max_message_bytes: usize,

    /// Signaling messages per second one connection may send (bursts of
    /// four times as many pass); the excess is dropped, and a connection
    /// that keeps flooding is closed.
    #[arg(long, env = "SFU_MAX_MESSAGES_PER_SEC", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_messages_per_sec: u32,

    /// Open signaling connections from one IP address.
    #[arg(long, env = "SFU_MAX_CONNECTIONS_PER_IP", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: u32,

    /// Participants on this node; joins beyond it are refused.
    #[arg(long, env = "SFU_MAX_PEERS", default_value_t = 2000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_peers: usize,

    /// Tracks (media sections that send) one participant's offer may
    /// carry.
    #[arg(long, env = "SFU_MAX_TRACKS_PER_PEER", default_value_t = 16,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=512))]
    pub max_tracks_per_peer: usize,

    /// Largest SDP offer or answer, in bytes.
    #[arg(long, env = "SFU_MAX_SDP_BYTES", default_value_t = 60_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1024 * 1024))]
    pub max_sdp_bytes: usize,

    /// Most lines in an SDP offer or answer.
    #[arg(long, env = "SFU_MAX_SDP_LINES", default_value_t = 3000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(10..=100_000))]
    pub max_sdp_lines: usize,

    /// ICE candidates a client may trickle per offer or answer.
    #[arg(long, env = "SFU_MAX_CANDIDATES_PER_OFFER", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_candidates_per_offer: u32,

    /// Seconds a signaling socket may stay open without joining a room,
    /// registering a call ID or resuming a session.
    #[arg(long, env = "SFU_JOIN_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub join_timeout_secs: u64,

    /// PEM certificate chain: serve HTTPS and WSS (with --tls-key). The
    /// files are reloaded on SIGHUP and when they change.
    #[arg(long, env = "SFU_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "SFU_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// With TLS on: also listen for plain HTTP here (for example
    /// 0.0.0.0:80) and redirect every request to HTTPS.
    #[arg(long, env = "SFU_REDIRECT_HTTP_BIND", requires = "tls_cert")]
    pub redirect_http_bind: Option<SocketAddr>,

    /// Cluster mode: the Redis (`redis://host:port/db`) that holds the
    /// cluster's nodes and room directory. Every node of a cluster names
    /// the same Redis and the same --api-key and --api-secret. Without it
    /// the server is a single node.
    #[arg(long, env = "SFU_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// This node's id in the cluster (default: random).
    #[arg(long, env = "SFU_NODE_ID")]
    pub node_id: Option<String>,

    /// The URL clients and other nodes reach this node's signaling at,
    /// e.g. `https://sfu-2.example.org` (default: `http://` and the bound
    /// address).
    #[arg(long, env = "SFU_NODE_URL")]
    pub node_url: Option<String>,

    /// Seconds a node's registration and its rooms' directory entries
    /// live without a heartbeat (one every third of it): how long after a
    /// node dies the cluster forgets it.
    #[arg(long, env = "SFU_CLUSTER_TTL_SECS", default_value_t = 6,
          value_parser = clap::value_parser!(u64).range(2..=300))]
    pub cluster_ttl_secs: u64,

    /// Cascading: a node with this many participants (or more) takes no
    /// more for the rooms it is home to; newcomers are placed on a
    /// less-loaded node, which links the room to its home. 0 turns
    /// cascading off (a room's participants all go to its home).
    #[arg(long, env = "SFU_CASCADE_PEERS", default_value_t = 0)]
    pub cascade_peers: u64,

    /// Cascading: a newcomer to a room homed on another node stays on the
    /// node it reached (the one closest to it, behind GeoDNS or anycast),
    /// which links the room to its home; unless this node carries
    /// --cascade-peers participants or more.
    #[arg(long, env = "SFU_CASCADE_LOCAL")]
    pub cascade_local: bool,

    /// A task other than serving (`token`).
    #[command(subcommand)]
    pub command: Option<crate::token_cli::Command>,

    /// Log format.
    #[arg(long, env = "SFU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// Loopback on free ports, with `admin_token` as the admin token: what
    /// in-process tests run. Dev mode, with a random API secret unless the
    /// test sets `api_key` and `api_secret`.
    pub fn loopback(admin_token: &str) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            media_bind_ip: None,
            udp_port: 0,
            tcp_port: 0,
            no_ice_tcp: false,
            no_simulcast: false,
            workers: 1,
            public_ip: Vec::new(),
            stun_server: None,
            turn_url: Vec::new(),
            turn_username: None,
            turn_password: None,
            turn_secret: None,
            turn_ttl_secs: 3600,
            consent_timeout_secs: 15,
            nack_cache_video_packets: 1024,
            nack_cache_audio_packets: 64,
            max_peer_inbound_kbps: 20_000,
            max_peer_inbound_pps: 5_000,
            resume_grace_secs: 20,
            drain_timeout_secs: 30,
            admin_token: Some(admin_token.to_owned()),
            ring_timeout_secs: 30,
            api_key: None,
            api_secret: None,
            dev: true,
            allowed_origin: Vec::new(),
            command: None,
            max_message_bytes: 64 * 1024,
            max_messages_per_sec: 50,
            max_connections_per_ip: 256,
            max_peers: 2000,
            max_tracks_per_peer: 16,
            max_sdp_bytes: 60_000,
            max_sdp_lines: 3000,
            max_candidates_per_offer: 64,
            join_timeout_secs: 10,
            tls_cert: None,
            tls_key: None,
            redirect_http_bind: None,
            redis_url: None,
            node_id: None,
            node_url: None,
            cluster_ttl_secs: 6,
            cascade_peers: 0,
            cascade_local: false,
            log_format: LogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ips_are_comma_separated_and_the_last_flag_counts() {
        let c = Config::parse_from(["sfu-server", "--public-ip", "192.0.2.1,2001:db8::1"]);
        assert_eq!(c.public_ip.len(), 2);
        let c = Config::parse_from([
            "sfu-server",
            "--public-ip",
            "192.0.2.1",
            "--nat-1to1",
            "198.51.100.7",
        ]);
        assert_eq!(c.public_ip, vec!["198.51.100.7".parse::<IpAddr>().unwrap()]);
    }
}
