//! Rooms that span nodes (cascading). When a participant of a room whose
//! home node is full is placed on this node instead, this node runs a
//! *bridge* for the room: a `webrtc` client that joins the room on both
//! nodes, with ordinary WebRTC connections (`core::relay`):
//!
//! - one hidden *sink* per node, subscribed to what that node's own
//!   participants publish;
//! - one *ghost* per participant of the other node, which publishes that
//!   participant's tracks (what the sink on the other node receives) under
//!   its name, and carries its chat.
//!
//! So each Track crosses the link once per node pair, whatever the number
//! of subscribers behind it, and keyframe requests, NACKs (answered hop by
//! hop from each side's cache) and bandwidth feedback ride the same
//! connections as a browser's would. `run.rs` drives one bridge,
//! `link_peer.rs` one of its Peers, `pipe.rs` the packets of one Track.
//!
//! A bridge that fails (its home died, say) looks the room up again after
//! a second: it links to the room's new home, or ends if this node became
//! the home. It ends when the room has no participant of its own here.

mod link_peer;
mod pipe;
mod run;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::watch;

use super::NodeRecord;
use crate::auth::Keys;
use crate::metrics::register;

/// How long a failed bridge waits before it looks the room up again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a new bridge lives without a participant of its own here.
const GRACE: Duration = Duration::from_secs(5);

/// The link id of the bridge `node` runs for `room` (FNV-1a): the same
/// on both nodes, distinct between satellites of one home.
pub fn link_id(node: &str, room: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain([0]).chain(room.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// What crosses this node's links, by direction: `in` (from a room's home
/// to here) and `out` (from here to the home).
pub struct RelayMetrics {
    /// Bridges running here.
    pub bridges: IntGauge,
    /// Tracks being relayed now.
    pub tracks: IntGaugeVec,
    /// RTP bytes relayed (payload and header).
    pub bytes: IntCounterVec,
    /// RTP packets relayed.
    pub packets: IntCounterVec,
    /// Keyframe requests carried back to the publisher's side, by the
    /// direction of the media they ask about.
    pub keyframe_requests: IntCounterVec,
}

impl RelayMetrics {
    /// Registers them in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let vec = |name: &str, help: &str| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), &["direction"]).expect("valid metric"),
            )
        };
        Self {
            bridges: register(
                registry,
                IntGauge::new(
                    "sfu_cluster_bridges",
                    "Rooms this node links to their home node (cascading)",
                )
                .expect("valid metric"),
            ),
            tracks: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "sfu_cluster_relayed_tracks",
                        "Tracks crossing a node-to-node link now: in (home to here), out (here to home)",
                    ),
                    &["direction"],
                )
                .expect("valid metric"),
            ),
            bytes: vec(
                "sfu_cluster_relay_bytes_total",
                "RTP bytes carried over node-to-node links (inter-node bitrate)",
            ),
            packets: vec(
                "sfu_cluster_relay_packets_total",
                "RTP packets carried over node-to-node links",
            ),
            keyframe_requests: vec(
                "sfu_cluster_relay_keyframe_requests_total",
                "Keyframe requests carried over a link to the publisher's node",
            ),
        }
    }
}

/// Where this node's bridges connect from.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The cluster's keys (access and relay tokens).
    pub keys: Keys,
    /// This node's id.
    pub me: String,
    /// This node's signaling WebSocket URL.
    pub ws_url: String,
    /// The IP the bridges' connections bind to.
    pub bind_ip: IpAddr,
}

struct Running {
    home: String,
    stop: watch::Sender<bool>,
    since: Instant,
}

/// The bridges of this node, by room.
pub struct Bridges {
    config: BridgeConfig,
    metrics: Arc<RelayMetrics>,
    running: Mutex<HashMap<String, Running>>,
}

impl Bridges {
    /// None running yet.
    pub fn new(config: BridgeConfig, registry: &Registry) -> Self {
        Self {
            config,
            metrics: Arc::new(RelayMetrics::new(registry)),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node links `room` to another home.
    pub fn is_satellite(&self, room: &str) -> bool {
        self.running.lock().is_ok_and(|r| r.contains_key(room))
    }

    /// The rooms linked, with their home node.
    pub fn rooms(&self) -> Vec<(String, String)> {
        let mut rooms: Vec<(String, String)> = self
            .running
            .lock()
            .map(|r| {
                r.iter()
                    .map(|(room, b)| (room.clone(), b.home.clone()))
                    .collect()
            })
            .unwrap_or_default();
        rooms.sort();
        rooms
    }

    /// Links `room` to `home`, unless a bridge to it runs already.
    pub fn ensure(self: &Arc<Self>, room: &str, home: &NodeRecord, cluster: &Arc<super::Cluster>) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if running.get(room).is_some_and(|b| b.home == home.id) {
            return;
        }
        if let Some(old) = running.remove(room) {
            old.stop.send_replace(true);
        }
        let (stop, stopped) = watch::channel(false);
        running.insert(
            room.to_owned(),
            Running {
                home: home.id.clone(),
                stop,
                since: Instant::now(),
            },
        );
        self.metrics
            .bridges
            .set(i64::try_from(running.len()).unwrap_or(i64::MAX));
        tracing::info!(room, home = %home.id, "linking the room to its home node");
        tokio::spawn(supervise(
            Arc::clone(self),
            Arc::clone(cluster),
            room.to_owned(),
            home.clone(),
            stopped,
        ));
    }

    /// Ends the bridges of rooms that have no participant of their own
    /// here any more (`people`: each room's participants here, link Peers
    /// not counted). A bridge younger than [`GRACE`] is kept: its first
    /// participant may still be joining.
    pub fn stop_unused(&self, people: &HashMap<String, usize>) {
        let idle: Vec<String> = self
            .running
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|(room, b)| {
                        people.get(*room).copied().unwrap_or(0) == 0 && b.since.elapsed() >= GRACE
                    })
                    .map(|(room, _)| room.clone())
                    .collect()
            })
            .unwrap_or_default();
        for room in idle {
            self.stop(&room);
        }
    }

    /// Ends `room`'s bridge, if it has one.
    pub fn stop(&self, room: &str) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if let Some(bridge) = running.remove(room) {
            tracing::info!(room, home = %bridge.home, "link to the home node ends");
            bridge.stop.send_replace(true);
        }
        self.metrics
            .bridges
            .set(i64::try_from(running.len()).unwrap_or(i64::MAX));
    }
}

/// Runs `room`'s bridge to `home` until it is stopped; after a failure,
/// follows the room to its new home (or ends if this node is the home).
async fn supervise(
    bridges: Arc<Bridges>,
    cluster: Arc<super::Cluster>,
    room: String,
    mut home: NodeRecord,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let result = run::run_bridge(
            &bridges.config,
            &bridges.metrics,
            &room,
            &home,
            stopped.clone(),
        )
        .await;
        if *stopped.borrow() {
            return;
        }
        if let Err(err) = result {
            tracing::warn!(room, home = %home.id, %err, "link to the home node failed");
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = stopped.changed() => return,
        }
        match cluster.home_after_link_failure(&room, &home).await {
            Some(next) => {
                if next.id != home.id {
                    tracing::info!(room, from = %home.id, to = %next.id, "the room's home moved");
                    if let Ok(mut running) = bridges.running.lock() {
                        if let Some(bridge) = running.get_mut(&room) {
                            bridge.home.clone_from(&next.id);
                        }
                    }
                }
                home = next;
            }
            None => {
                bridges.stop(&room);
                return;
            }
        }
    }
}
