//! The control plane of the SFU: HTTP and WebSocket signaling on axum,
//! `/metrics`, `/healthz`, and the embedded web client. `sfu-server`
//! (`main.rs`) parses the command line and calls [`start`].

pub mod api;
pub mod auth;
pub mod calls;
pub mod client;
pub mod cluster;
pub mod config;
pub mod ice_servers;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod ratelimit;
pub mod resume;
pub mod room_messages;
pub mod security;
pub mod tls;
pub mod token_api;
pub mod token_cli;
pub mod web;
pub mod whip;
pub mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sfu::worker::{Worker, WorkerConfig, WorkerHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;
use ice_servers::IceServers;
use metrics::Metrics;
use protocol::IceServer;

/// What every request handler shares.
pub struct AppState {
    /// The media Worker.
    pub worker: WorkerHandle,
    /// Control-plane metrics.
    pub metrics: Metrics,
    /// ICE servers handed to clients in `joined`.
    pub ice_servers: IceServers,
    /// Flips to `true` when the server shuts down; sessions close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// The admin API's bearer token.
    pub admin_token: String,
    /// Set when the server stops accepting joins.
    pub draining: AtomicBool,
    /// Flips to `true` when a drain starts; sessions tell their clients to
    /// migrate.
    pub drain: watch::Sender<bool>,
    /// How long a drain lets existing calls go on.
    pub drain_timeout: Duration,
    /// Personal call IDs, 1:1 calls and their private rooms.
    pub calls: Arc<calls::CallRegistry>,
    /// How long a session whose socket was lost waits for a resume.
    pub resume_grace: Duration,
    /// Those sessions, by resume token.
    pub parked: resume::Parked<ws::Session>,
    /// Access tokens, dev mode and allowed origins.
    pub security: security::Security,
    /// Limits on what one client may send or hold.
    pub limits: limits::Limits,
    /// Open signaling connections per client IP.
    pub ip_connections: Arc<limits::IpConnections>,
    /// WHIP and WHEP sessions.
    pub whip: whip::Whip,
    /// Web clients publish their camera as simulcast (`joined.simulcast`).
    pub simulcast: bool,
    /// Cluster mode (`--redis-url`): this node's part in the cluster.
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl AppState {
    /// Counts one refusal by `limit`.
    pub fn limit_hit(&self, limit: limits::Limit) {
        self.metrics
            .limit_rejections
            .with_label_values(&[limit.label()])
            .inc();
    }
}

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ws", get(ws::handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .merge(whip::routes(state.clone()))
        .merge(
            api::routes()
                .merge(token_api::routes())
                .layer(state.security.cors()),
        )
        .fallback(web::static_file)
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.worker.snapshot().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "media worker not responding\n",
        ),
    }
}

/// Ready to accept joins: the media Worker answers (so its UDP socket is
/// bound and its thread running) and the server is not draining.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    match state.worker.snapshot().await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "media worker not responding\n",
        ),
    }
}

async fn metrics_handler(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.worker.snapshot().await {
        Ok(snapshot) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            state.metrics.render(&snapshot),
        ),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("media worker not responding: {err}\n"),
        ),
    }
}

/// A running server.
pub struct Server {
    /// Where HTTP and WebSocket signaling listen.
    pub http_addr: SocketAddr,
    /// Whether that is HTTPS and WSS (`--tls-cert`).
    pub https: bool,
    /// Where plain HTTP is redirected to HTTPS, if it is.
    pub redirect_addr: Option<SocketAddr>,
    /// The first media Worker's bound UDP address (Worker k is on its
    /// port + k).
    pub udp_addr: SocketAddr,
    /// How many media Workers run.
    pub workers: usize,
    /// The (first) UDP address advertised in ICE candidates.
    pub public_addr: SocketAddr,
    /// The media Worker's bound ICE-TCP address, if ICE-TCP is on.
    pub tcp_addr: Option<SocketAddr>,
    /// The admin API's bearer token (generated when not configured).
    pub admin_token: String,
    /// Dev mode: anyone can mint access tokens with `POST /api/token`.
    pub dev_mode: bool,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl AppState {
    /// Starts draining: `/readyz` fails, joins are refused, and every
    /// session is told to migrate (in a cluster, its room is first handed
    /// to another node, and the session is sent there). Returns `false` if
    /// already draining.
    pub async fn start_drain(&self) -> bool {
        if self.draining.swap(true, Ordering::Relaxed) {
            return false;
        }
        tracing::info!(deadline_secs = self.drain_timeout.as_secs(), "draining");
        if let Some(cluster) = &self.cluster {
            let moved = cluster.hand_over_rooms().await;
            tracing::info!(rooms = moved, "rooms handed to other nodes");
        }
        self.drain.send_replace(true);
        true
    }
}

impl Server {
    /// The key and secret access tokens are checked with.
    pub fn keys(&self) -> &auth::Keys {
        &self.state.security.auth.keys
    }

    /// Resolves when a drain has started (by `POST /api/drain`).
    pub async fn drain_requested(&self) {
        let mut rx = self.state.drain.subscribe();
        let _ = rx.wait_for(|draining| *draining).await;
    }

    /// Drains: refuses joins, tells clients to migrate, lets the calls
    /// here go on until every participant has left or the drain timeout
    /// is over, then shuts down.
    /// `cut_short` ends the wait early (a second stop signal).
    pub async fn drain_and_shutdown(
        self,
        cut_short: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.state.start_drain().await;
        let deadline = tokio::time::Instant::now() + self.state.drain_timeout;
        tokio::select! {
            () = self.wait_drained(deadline) => {}
            () = cut_short => tracing::info!("drain cut short"),
        }
        self.shutdown().await
    }

    async fn wait_drained(&self, deadline: tokio::time::Instant) {
        loop {
            let peers = self.state.worker.snapshot().await.map(|s| s.peers);
            if matches!(peers, Ok(0) | Err(_)) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::info!(peers = ?peers.ok(), "drain deadline reached");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops accepting, closes every session with 1001, and waits (for
    /// the cluster heartbeat to unregister this node too).
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.state.draining.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        if let Some(heartbeat) = self.heartbeat {
            let _ = tokio::time::timeout(Duration::from_secs(3), heartbeat).await;
        }
        self.task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// This node's part in the cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<cluster::Cluster>> {
        self.state.cluster.as_ref()
    }
}

/// Binds the HTTP listener and the media sockets and starts serving.
pub async fn start(config: Config) -> std::io::Result<Server> {
    let metrics = Metrics::new();
    let metrics_registry = metrics.registry().clone();
    let metrics_registry = &metrics_registry;
    let security = security::Security::new(&config, metrics.registry())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let dev_mode = security.auth.dev;
    let ice_servers = IceServers::from_config(&config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let media_ip = config.media_bind_ip.unwrap_or(config.bind.ip());
    let public_ips = public_ips(&config, media_ip).await?;
    let worker = Worker::spawn(WorkerConfig {
        udp_bind: SocketAddr::new(media_ip, config.udp_port),
        tcp_bind: (!config.no_ice_tcp).then_some(SocketAddr::new(media_ip, config.tcp_port)),
        public_ips,
        consent_timeout: Duration::from_secs(config.consent_timeout_secs),
        inbound_limits: sfu::core::rate_limit::InboundLimits {
            max_kbps: config.max_peer_inbound_kbps,
            max_pps: config.max_peer_inbound_pps,
        },
        cache_sizes: sfu::core::track::CacheSizes {
            video: config.nack_cache_video_packets as usize,
            audio: config.nack_cache_audio_packets as usize,
        },
        workers: match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        },
    })?;
    let tls_files = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let tls_config = match &tls_files {
        Some(files) => Some(files.load().await?),
        None => None,
    };
    let listener = TcpListener::bind(config.bind).await?;
    let http_addr = listener.local_addr()?;
    let redirect = match config.redirect_http_bind {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("--redirect-http-bind {addr}: {e}"))
        })?),
        None => None,
    };
    let redirect_addr = redirect.as_ref().map(|l| l.local_addr()).transpose()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let handle = worker.handle;
    let (udp_addr, public_addr, tcp_addr) =
        (handle.udp_addr(), handle.public_addr(), handle.tcp_addr());
    let admin_token = config.admin_token.clone().unwrap_or_else(random_token);
    // An empty URL (an unset variable in compose) is no cluster.
    let cluster = match config.redis_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(url) => Some(Arc::new(
            join_cluster(
                &config,
                url,
                &security,
                http_addr,
                tls_config.is_some(),
                &handle,
                metrics_registry,
            )
            .await?,
        )),
        None => None,
    };
    let heartbeat = cluster.as_ref().map(|c| {
        cluster::spawn_heartbeat(
            c.clone(),
            handle.clone(),
            metrics_registry.clone(),
            shutdown_rx.clone(),
        )
    });
    let state = Arc::new(AppState {
        worker: handle,
        metrics,
        security,
        ice_servers,
        shutdown: shutdown_rx.clone(),
        admin_token: admin_token.clone(),
        draining: AtomicBool::new(false),
        calls: Arc::new(calls::CallRegistry::new(Duration::from_secs(
            config.ring_timeout_secs,
        ))),
        resume_grace: Duration::from_secs(config.resume_grace_secs),
        parked: Default::default(),
        drain: watch::channel(false).0,
        drain_timeout: Duration::from_secs(config.drain_timeout_secs),
        limits: limits::Limits::from_config(&config),
        ip_connections: Default::default(),
        whip: whip::Whip::new(metrics_registry),
        simulcast: !config.no_simulcast,
        cluster,
    });
    let app = router(state.clone());
    if let Some(redirect) = redirect {
        let stop = shutdown_rx.clone();
        tokio::spawn(async move {
            if let Err(err) = tls::serve_redirect(redirect, http_addr.port(), stop).await {
                tracing::error!(%err, "HTTP to HTTPS redirect stopped");
            }
        });
    }
    let mut stop = shutdown_rx;
    let https = tls_config.is_some();
    let task = match (tls_files, tls_config) {
        (Some(files), Some(tls_config)) => {
            files.spawn_reloader(tls_config.clone(), stop.clone());
            tokio::spawn(tls::serve(listener, app, tls_config, stop))
        }
        _ => tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .await
        }),
    };
    Ok(Server {
        http_addr,
        https,
        redirect_addr,
        udp_addr,
        workers: state.worker.workers(),
        public_addr,
        tcp_addr,
        admin_token,
        dev_mode,
        state,
        shutdown: shutdown_tx,
        task,
        heartbeat,
    })
}

/// Cluster mode: connects to Redis and registers this node. Every node
/// must share the API key and secret (routing tokens and access tokens
/// are checked on every node), so a random dev secret is refused.
async fn join_cluster(
    config: &Config,
    redis_url: &str,
    security: &security::Security,
    http_addr: SocketAddr,
    https: bool,
    worker: &WorkerHandle,
    registry: &prometheus::Registry,
) -> std::io::Result<cluster::Cluster> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    if config.api_secret.is_none() {
        return Err(invalid(
            "cluster mode (--redis-url) needs the same --api-key and --api-secret on every node"
                .to_owned(),
        ));
    }
    let node_url = match &config.node_url {
        Some(url) => url.clone(),
        None if http_addr.ip().is_unspecified() => {
            return Err(invalid(format!(
                "cluster mode: set --node-url, the URL clients and other nodes reach this node at \
                 (it listens on {http_addr})"
            )))
        }
        None => format!("{}://{http_addr}", if https { "https" } else { "http" }),
    };
    let media = (0..worker.workers())
        .map(|k| {
            let mut addr = worker.public_addr();
            addr.set_port(addr.port().wrapping_add(k as u16));
            addr.to_string()
        })
        .collect();
    let cluster_config = cluster::ClusterConfig {
        redis_url: redis_url.to_owned(),
        node_id: config
            .node_id
            .clone()
            .unwrap_or_else(|| random_token()[..8].to_owned()),
        node_url,
        ttl: Duration::from_secs(config.cluster_ttl_secs),
        cascade_peers: config.cascade_peers,
        cascade_local: config.cascade_local,
        bind_ip: match config.media_bind_ip.unwrap_or(config.bind.ip()) {
            ip if ip.is_unspecified() => worker.public_addr().ip(),
            ip => ip,
        },
    };
    cluster::Cluster::connect(&cluster_config, security.auth.keys.clone(), media, registry)
        .await
        .map_err(|m| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, m))
}

/// The addresses to advertise: `--public-ip`, else the one a STUN server
/// sees (`--stun-server`), else none (the Worker advertises its bind IP).
async fn public_ips(config: &Config, media_ip: IpAddr) -> std::io::Result<Vec<IpAddr>> {
    if !config.public_ip.is_empty() {
        return Ok(config.public_ip.clone());
    }
    let Some(server) = &config.stun_server else {
        return Ok(Vec::new());
    };
    let ip = sfu::io::stun_discovery::discover_public_ip(media_ip, server, Duration::from_secs(5))
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("public IP discovery via {server}: {e}"))
        })?;
    tracing::info!(%ip, %server, "public IP discovered");
    Ok(vec![ip])
}

/// The ICE servers for a client joining as `identity` now.
pub fn ice_servers_for(state: &AppState, identity: &str) -> Vec<IceServer> {
    state.ice_servers.for_join(identity, SystemTime::now())
}

/// 128 random bits as hex.
fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
