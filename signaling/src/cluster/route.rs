//! Where a join goes: here, or to another node with a `redirect`.
//!
//! 1. A valid routing token naming this node: claim the room (it was placed
//!    here by the node that redirected the client) unless another live
//!    node got it first.
//! 2. The room has a home: here, or a redirect there if that node is
//!    registered and answers a TCP connect on its signaling port.
//! 3. No home, or a dead one: the least-loaded node that takes new rooms
//!    (not draining, answering). This node claims the room itself when it
//!    is that node; otherwise the client is sent there with a routing
//!    token. A room taken from a dead home counts as a takeover.
//!
//! Cascading (`--cascade-peers N`): when the home of an existing room
//! carries N participants or more, a newcomer is placed on a node that
//! carries fewer (this one, the node the client reached, first) as a
//! *satellite*: it joins there, and that node links the room to its home
//! (`bridge/`). With `--cascade-local`, a newcomer stays on the node it
//! reached (the closest to it) whatever the home's load, while that node
//! is under N.
//!
//! A draining node hands each of its rooms to the least-loaded other node
//! first (`hand_over_rooms`), so that all of a room's participants move
//! to the same place.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;

use super::{tokens, Cluster, ClusterError, NodeRecord};

/// How long a reachability probe of another node's signaling port waits.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// Where a join goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Here: this node is (now) the room's home.
    Local,
    /// Here, as a satellite of the room's home (cascading): the caller
    /// links the room to it.
    Satellite {
        /// The room's home.
        home: NodeRecord,
    },
    /// Elsewhere.
    Redirect {
        /// The node.
        node: NodeRecord,
        /// Why: home, placement, failover, raced, cascade or drain.
        reason: &'static str,
        /// For `cascade`: the room's home, which `node` is to link to.
        home: Option<String>,
    },
}

/// Whether `node` answers on its signaling port.
async fn reachable(node: &NodeRecord) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(node.authority())).await,
        Ok(Ok(_))
    )
}

impl Cluster {
    /// Routes a join of `identity` to `room`, with the routing token the
    /// client brought from a redirect, if any.
    pub async fn route(
        &self,
        room: &str,
        identity: &str,
        token: Option<&str>,
    ) -> Result<Route, ClusterError> {
        let draining = self.draining.load(Ordering::Relaxed);
        if let Some(token) = token.filter(|_| !draining) {
            match tokens::verify(&self.keys, token, identity, room, &self.me) {
                Ok(claims) => match claims.home {
                    None => return self.claim_here(room, None).await,
                    Some(home) => {
                        if let Some(route) = self.satellite_of(room, &home).await? {
                            return Ok(route);
                        }
                    }
                },
                Err(err) => tracing::debug!(%err, room, "routing token not honoured"),
            }
        }
        let mut dead = None;
        if let Some(owner) = self.directory.lookup(room).await? {
            if owner.node == self.me {
                if !draining {
                    self.home(room);
                    return Ok(Route::Local);
                }
            } else if owner.registered {
                if let Some(node) = self.node(&owner.node).await? {
                    if reachable(&node).await {
                        if let Some(route) = self.cascade(&node).await? {
                            return Ok(route);
                        }
                        return Ok(Route::Redirect {
                            node,
                            reason: "home",
                            home: None,
                        });
                    }
                    tracing::warn!(node = %owner.node, room, "home node registered but unreachable");
                }
                dead = Some(owner.node);
            } else {
                dead = Some(owner.node);
            }
        }
        self.place(room, dead).await
    }

    /// The registered nodes, read from Redis now (the view too).
    async fn read_nodes(&self) -> Result<Vec<NodeRecord>, ClusterError> {
        let nodes = self.directory.nodes().await?;
        self.set_view(nodes.clone());
        Ok(nodes)
    }

    /// A new room, or one whose home `dead` is gone: the least-loaded node.
    async fn place(&self, room: &str, dead: Option<String>) -> Result<Route, ClusterError> {
        let draining = self.draining.load(Ordering::Relaxed);
        let nodes = self.read_nodes().await?;
        let mut candidates: Vec<NodeRecord> = nodes
            .into_iter()
            .filter(|n| !n.draining && Some(&n.id) != dead.as_ref())
            .filter(|n| !(draining && n.id == self.me))
            .collect();
        if !draining && !candidates.iter().any(|n| n.id == self.me) {
            // Not registered right now (a heartbeat lapsed): still a choice.
            candidates.push(self.record(u64::MAX, u64::MAX, 0.0, 0.0));
        }
        // Least peers, then fewest rooms, then this node (no redirect).
        candidates.sort_by_key(|n| (n.peers, n.rooms, n.id != self.me, n.id.clone()));
        for node in candidates {
            if node.id == self.me {
                return self.claim_here(room, dead.as_deref()).await;
            }
            if reachable(&node).await {
                let reason = if dead.is_some() {
                    "failover"
                } else {
                    "placement"
                };
                return Ok(Route::Redirect {
                    node,
                    reason,
                    home: None,
                });
            }
        }
        Err(ClusterError::NoNode)
    }

    /// Claims `room` for this node (over `dead`, if it names the old home).
    async fn claim_here(&self, room: &str, dead: Option<&str>) -> Result<Route, ClusterError> {
        let owner = self.directory.claim(room, &self.me, dead).await?;
        if owner == self.me {
            if dead.is_some() {
                self.metrics.takeovers.inc();
                tracing::info!(room, old_home = dead, "took the room over");
            }
            // A satellite that became the home needs no link any more.
            self.bridges.stop(room);
            self.home(room);
            return Ok(Route::Local);
        }
        match self.node(&owner).await? {
            Some(node) => Ok(Route::Redirect {
                node,
                reason: "raced",
                home: None,
            }),
            // Claimed by a node that vanished meanwhile: take it.
            None => Box::pin(self.claim_here(room, Some(&owner))).await,
        }
    }

    /// Cascading: a newcomer to a room whose `home` is full goes to a node
    /// with room to spare, this one first. `None`: no cascading (it is
    /// off, the home is not full, or no node has room).
    async fn cascade(&self, home: &NodeRecord) -> Result<Option<Route>, ClusterError> {
        let limit = self.cascade_peers;
        if self.draining.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if self.cascade_local {
            let mine = self.view().into_iter().find(|n| n.id == self.me);
            let peers = mine.map_or(0, |n| n.peers);
            if limit == 0 || peers < limit {
                return Ok(Some(Route::Satellite { home: home.clone() }));
            }
        }
        if limit == 0 || home.peers < limit {
            return Ok(None);
        }
        let mut candidates: Vec<NodeRecord> = self
            .read_nodes()
            .await?
            .into_iter()
            .filter(|n| n.id != home.id && !n.draining && n.peers < limit)
            .collect();
        candidates.sort_by_key(|n| (n.id != self.me, n.peers, n.id.clone()));
        for node in candidates {
            if node.id == self.me {
                return Ok(Some(Route::Satellite { home: home.clone() }));
            }
            if reachable(&node).await {
                return Ok(Some(Route::Redirect {
                    node,
                    reason: "cascade",
                    home: Some(home.id.clone()),
                }));
            }
        }
        Ok(None)
    }

    /// A redirected newcomer for a satellite of `home`: here, if `home` is
    /// still the room's live home.
    async fn satellite_of(&self, room: &str, home: &str) -> Result<Option<Route>, ClusterError> {
        match self.directory.lookup(room).await? {
            Some(owner) if owner.node == home && owner.registered => {
                Ok(self.node(home).await?.map(|home| Route::Satellite { home }))
            }
            _ => Ok(None),
        }
    }

    /// After a satellite's link failed: the room's home now, or `None`
    /// when this node is the home (it claimed the room from a dead home,
    /// or nobody holds it). Redis unavailable: the same home, tried again.
    pub async fn home_after_link_failure(
        &self,
        room: &str,
        current: &NodeRecord,
    ) -> Option<NodeRecord> {
        let owner = match self.directory.lookup(room).await {
            Ok(owner) => owner,
            Err(_) => return Some(current.clone()),
        };
        let mut dead = None;
        if let Some(owner) = owner {
            if owner.node == self.me {
                return None;
            }
            if owner.registered {
                if let Ok(Some(node)) = self.node(&owner.node).await {
                    if reachable(&node).await {
                        return Some(node);
                    }
                }
            }
            dead = Some(owner.node);
        }
        match self.claim_here(room, dead.as_deref()).await {
            Ok(Route::Redirect { node, .. }) => Some(node),
            Ok(_) => None,
            Err(_) => Some(current.clone()),
        }
    }

    /// Node `id`'s record: from the view, or read again.
    async fn node(&self, id: &str) -> Result<Option<NodeRecord>, ClusterError> {
        if let Some(node) = self.view().into_iter().find(|n| n.id == id) {
            return Ok(Some(node));
        }
        Ok(self.read_nodes().await?.into_iter().find(|n| n.id == id))
    }

    /// Counts a redirect the session sends.
    pub fn count_redirect(&self, reason: &'static str) {
        self.metrics.redirects.with_label_values(&[reason]).inc();
    }

    /// Starts draining: says so in the registration, and hands every room
    /// homed here to the least-loaded other node. Returns how many rooms
    /// found a new home; the others stay here until their calls end.
    pub async fn hand_over_rooms(&self) -> usize {
        self.draining.store(true, Ordering::Relaxed);
        let rooms: Vec<String> = self
            .homed
            .lock()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default();
        // The registration says "draining" at once, not at the next beat.
        let mine = self.view().into_iter().find(|n| n.id == self.me);
        let record = match mine {
            Some(n) => self.record(n.peers, n.rooms, n.cpu, n.pps),
            None => self.record(0, 0, 0.0, 0.0),
        };
        if let Err(err) = self.directory.register(&record).await {
            tracing::warn!(%err, "could not mark this node draining in Redis");
        }
        let Ok(nodes) = self.directory.nodes().await else {
            tracing::warn!("Redis unavailable: rooms stay here until their calls end");
            return 0;
        };
        let mut targets: Vec<NodeRecord> = Vec::new();
        for node in nodes {
            if node.id != self.me && !node.draining && reachable(&node).await {
                targets.push(node);
            }
        }
        let mut moved = 0;
        for room in rooms {
            // Spread the rooms: count each one given to a node as its load.
            targets.sort_by_key(|n| (n.peers, n.rooms, n.id.clone()));
            let Some(target) = targets.first_mut() else {
                break;
            };
            match self.directory.hand_over(&room, &self.me, &target.id).await {
                Ok(true) => {
                    tracing::info!(room, to = %target.id, "room handed over");
                    target.rooms += 1;
                    if let Ok(mut m) = self.migrations.lock() {
                        m.insert(room.clone(), target.clone());
                    }
                    if let Ok(mut homed) = self.homed.lock() {
                        homed.remove(&room);
                    }
                    moved += 1;
                }
                Ok(false) => {
                    tracing::warn!(room, "room not ours in the directory; not handed over")
                }
                Err(err) => tracing::warn!(room, %err, "hand-over failed"),
            }
        }
        moved
    }
}
