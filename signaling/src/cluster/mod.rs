//! Cluster mode (`--redis-url`): several `sfu-server` nodes share one
//! Redis for their state, and a client may connect to any of them.
//!
//! - Each node registers itself (id, signaling URL, media addresses, load,
//!   draining) with a TTL its heartbeat renews (`heartbeat.rs`).
//! - The room directory maps a room to its home node; entries change only
//!   through atomic scripts (`directory.rs`).
//! - A join for a room homed elsewhere, or a new room that belongs on a
//!   less-loaded node, gets a `redirect` with a signed routing token
//!   (`tokens.rs`); the web client follows it (`route.rs`).
//! - A dead node's rooms are taken over when its participants come back
//!   through a live node; a draining node hands its rooms over first.
//!
//! Without `--redis-url` there is no `Cluster` and the server is a single
//! node with in-memory state, as before.

pub mod bridge;
pub mod directory;
mod heartbeat;
mod route;
pub mod tokens;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub use directory::{Directory, NodeRecord};
pub use heartbeat::spawn_heartbeat;
pub use route::Route;

use crate::auth::Keys;
use crate::metrics::register;

/// What cluster mode needs from the command line.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// This node's id, unique in the cluster.
    pub node_id: String,
    /// This node's signaling base URL as clients and other nodes reach it.
    pub node_url: String,
    /// How long a registration or directory entry lives without a
    /// heartbeat; heartbeats come every third of it.
    pub ttl: Duration,
    /// A node with this many participants (or more) takes no more for the
    /// rooms it is home to: newcomers go to a less-loaded node, which
    /// links the room to it (cascading). 0: never.
    pub cascade_peers: u64,
    /// Keep a newcomer on the node it reached (the closest), linked to the
    /// room's home, while this node is under `cascade_peers`.
    pub cascade_local: bool,
    /// The IP the bridges' connections bind to.
    pub bind_ip: std::net::IpAddr,
}

/// Why the cluster could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis cannot be reached (or failed).
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// No node takes new rooms (all draining or unreachable).
    #[error("no node in the cluster accepts new rooms")]
    NoNode,
}

impl From<redis::RedisError> for ClusterError {
    fn from(err: redis::RedisError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// The cluster's metrics.
pub struct ClusterMetrics {
    /// 1 while Redis answers this node.
    pub redis_up: IntGauge,
    /// Nodes registered, as last read.
    pub nodes: IntGauge,
    /// Rooms this node is the home of.
    pub rooms_homed: IntGauge,
    /// Clients sent to another node, by reason.
    pub redirects: IntCounterVec,
    /// Joins refused because Redis could not be reached.
    pub unavailable: IntCounter,
    /// Rooms claimed from a node that was gone or unreachable.
    pub takeovers: IntCounter,
    /// Rooms held here that the directory gives to another node.
    pub conflicts: IntCounter,
    /// Heartbeats that failed.
    pub heartbeat_failures: IntCounter,
    /// Each registered node's load as last read: `peers` (participants),
    /// `rooms`, `cpu` (cores) and `pps` (packets forwarded per second).
    pub node_load: GaugeVec,
}

impl ClusterMetrics {
    fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            register(registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let counter = |name: &str, help: &str| {
            register(registry, IntCounter::new(name, help).expect("valid metric"))
        };
        Self {
            redis_up: gauge("sfu_cluster_redis_up", "1 while Redis answers this node"),
            nodes: gauge("sfu_cluster_nodes", "Nodes registered in the cluster"),
            rooms_homed: gauge("sfu_cluster_rooms_homed", "Rooms whose home is this node"),
            redirects: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "sfu_cluster_redirects_total",
                        "Clients sent to another node: home (the room lives there), \
                         placement (a new room goes there), failover (its home died), \
                         raced (another node claimed it first), drain (this node drains)",
                    ),
                    &["reason"],
                )
                .expect("valid metric"),
            ),
            unavailable: counter(
                "sfu_cluster_unavailable_total",
                "Joins refused because Redis could not be reached",
            ),
            takeovers: counter(
                "sfu_cluster_takeovers_total",
                "Rooms claimed from a node that was gone or unreachable",
            ),
            conflicts: counter(
                "sfu_cluster_directory_conflicts_total",
                "Rooms held here that the directory gives to another node",
            ),
            heartbeat_failures: counter(
                "sfu_cluster_heartbeat_failures_total",
                "Heartbeats (registration and directory renewal) that failed",
            ),
            node_load: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "sfu_cluster_node_load",
                        "Each node's registered load: peers (participants), rooms, cpu (cores), \
                         pps (RTP packets forwarded per second)",
                    ),
                    &["node", "figure"],
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// This node's part in the cluster.
pub struct Cluster {
    me: String,
    url: String,
    directory: Directory,
    /// Routing tokens are signed with these (the cluster's shared secret).
    keys: Keys,
    ttl: Duration,
    started: u64,
    /// The nodes as last read from Redis.
    view: RwLock<Vec<NodeRecord>>,
    /// Rooms this node claimed and renews, with when each was last
    /// claimed or seen with Peers here.
    homed: Mutex<HashMap<String, Instant>>,
    /// Set while draining: the heartbeat says so and renews nothing.
    draining: AtomicBool,
    /// Where each room of a draining node was handed over to.
    migrations: Mutex<HashMap<String, NodeRecord>>,
    /// Media addresses, for the registration.
    media: Vec<String>,
    /// `ClusterConfig::cascade_peers`.
    cascade_peers: u64,
    /// `ClusterConfig::cascade_local`.
    cascade_local: bool,
    /// The rooms this node links to their home node.
    pub bridges: Arc<bridge::Bridges>,
    /// The metrics.
    pub metrics: ClusterMetrics,
}

impl Cluster {
    /// Connects to Redis and registers this node. Fails with a clear
    /// message when Redis cannot be reached: a node that was asked to be
    /// part of a cluster does not start alone.
    pub async fn connect(
        config: &ClusterConfig,
        keys: Keys,
        media: Vec<String>,
        registry: &Registry,
    ) -> Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| {
            format!("cluster: cannot reach Redis at {}: {e}", config.redis_url)
        };
        let client = redis::Client::open(config.redis_url.as_str()).map_err(|e| fail(&e))?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let manager = tokio::time::timeout(
            Duration::from_secs(10),
            client.get_connection_manager_with_config(manager_config),
        )
        .await
        .map_err(|_| fail(&"timed out"))?
        .map_err(|e| fail(&e))?;
        let ttl_ms = u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX);
        let url = config.node_url.trim_end_matches('/').to_owned();
        let bridges = Arc::new(bridge::Bridges::new(
            bridge::BridgeConfig {
                keys: keys.clone(),
                me: config.node_id.clone(),
                ws_url: NodeRecord::ws_url_of(&url),
                bind_ip: config.bind_ip,
            },
            registry,
        ));
        let cluster = Self {
            me: config.node_id.clone(),
            url,
            directory: Directory::new(manager, ttl_ms),
            keys,
            ttl: config.ttl,
            started: unix_now(),
            view: RwLock::new(Vec::new()),
            homed: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            migrations: Mutex::new(HashMap::new()),
            media,
            cascade_peers: config.cascade_peers,
            cascade_local: config.cascade_local,
            bridges,
            metrics: ClusterMetrics::new(registry),
        };
        let me = cluster.record(0, 0, 0.0, 0.0);
        cluster
            .directory
            .register(&me)
            .await
            .map_err(|e| fail(&e))?;
        let nodes = cluster.directory.nodes().await.map_err(|e| fail(&e))?;
        cluster.set_view(nodes);
        cluster.metrics.redis_up.set(1);
        tracing::info!(node = %cluster.me, url = %cluster.url, redis = %config.redis_url, "joined the cluster");
        Ok(cluster)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.me
    }

    /// The directory, for `/api/cluster` and tests.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The nodes as last read.
    pub fn view(&self) -> Vec<NodeRecord> {
        self.view.read().map(|v| v.clone()).unwrap_or_default()
    }

    fn set_view(&self, nodes: Vec<NodeRecord>) {
        self.metrics
            .nodes
            .set(i64::try_from(nodes.len()).unwrap_or(i64::MAX));
        // Nodes that left drop out of the load gauges.
        self.metrics.node_load.reset();
        for node in &nodes {
            for (figure, value) in [
                ("peers", node.peers as f64),
                ("rooms", node.rooms as f64),
                ("cpu", node.cpu),
                ("pps", node.pps),
            ] {
                self.metrics
                    .node_load
                    .with_label_values(&[node.id.as_str(), figure])
                    .set(value);
            }
        }
        if let Ok(mut view) = self.view.write() {
            *view = nodes;
        }
    }

    /// The signaling WebSocket URLs of the nodes that take joins, this one
    /// first: where a client goes when its node is lost.
    pub fn fallback_urls(&self) -> Vec<String> {
        let mut urls = vec![self.record(0, 0, 0.0, 0.0).ws_url()];
        for node in self.view() {
            if node.id != self.me && !node.draining {
                urls.push(node.ws_url());
            }
        }
        urls
    }

    /// This node's registration with the given load.
    fn record(&self, peers: u64, rooms: u64, cpu: f64, pps: f64) -> NodeRecord {
        NodeRecord {
            id: self.me.clone(),
            url: self.url.clone(),
            media: self.media.clone(),
            peers,
            rooms,
            cpu,
            pps,
            draining: self.draining.load(Ordering::Relaxed),
            started: self.started,
        }
    }

    /// Signs a routing token for `identity` in `room` to `node` (as a
    /// satellite of `home`, for a cascaded room).
    pub fn routing_token(
        &self,
        identity: &str,
        room: &str,
        node: &str,
        home: Option<&str>,
    ) -> String {
        tokens::sign(&self.keys, identity, room, node, home)
    }

    /// Checks a relay token for `room` at this node.
    pub fn verify_relay(
        &self,
        token: &str,
        room: &str,
    ) -> Result<tokens::RelayClaims, tokens::RouteTokenError> {
        tokens::verify_relay(&self.keys, token, room, &self.me)
    }

    /// Where a draining node sent `room`, if it did.
    pub fn migration_target(&self, room: &str) -> Option<NodeRecord> {
        self.migrations.lock().ok()?.get(room).cloned()
    }

    /// Whether this node claimed `room` and renews it.
    pub fn is_home(&self, room: &str) -> bool {
        self.homed.lock().is_ok_and(|h| h.contains_key(room))
    }

    fn home(&self, room: &str) {
        if let Ok(mut homed) = self.homed.lock() {
            homed.insert(room.to_owned(), Instant::now());
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
