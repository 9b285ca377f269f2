//! A session in cluster mode: where its `join` goes (here, or a
//! `redirect` to the room's node), and where a draining node sends it.

use sfu::core::relay::{LinkId, Relay};

use crate::calls::is_private_room;
use crate::cluster::tokens::RelayRole;
use crate::cluster::{ClusterError, NodeRecord, Route};
use crate::protocol::ServerMessage;

use super::Session;

impl Session {
    /// Routes a `join` of `room` in a cluster. `true`: join here. `false`:
    /// the client was sent elsewhere, or told why it cannot join (queued).
    /// Without a cluster, and for the private rooms of 1:1 calls (which
    /// live on the node of the call registry that made them), always here.
    pub(super) async fn route_join(&mut self, room: &str, routing_token: Option<&str>) -> bool {
        let Some(cluster) = self.state.cluster.clone() else {
            return true;
        };
        if is_private_room(room) {
            return true;
        }
        let identity = self.identity();
        match cluster.route(room, &identity, routing_token).await {
            Ok(Route::Local) => true,
            Ok(Route::Satellite { home }) => {
                cluster.bridges.ensure(room, &home, &cluster);
                true
            }
            Ok(Route::Redirect { node, reason, home }) => {
                self.redirect(room, &node, reason, home.as_deref());
                false
            }
            Err(ClusterError::Unavailable(err)) => {
                // Calls already here go on without Redis: a room with Peers
                // on this node is joined here.
                if self.room_here(room).await {
                    tracing::info!(room, %err, "Redis unavailable; joining the room held here");
                    return true;
                }
                cluster.metrics.unavailable.inc();
                tracing::warn!(room, %err, "join refused: cluster unavailable");
                self.error(
                    "cluster_unavailable",
                    "the cluster's state store cannot be reached, so this room cannot be \
                     placed; try again shortly",
                );
                false
            }
            Err(err @ ClusterError::NoNode) => {
                self.error("server_busy", err.to_string());
                false
            }
        }
    }

    /// A `join` with a relay token: a Peer of a node-to-node link
    /// (`core::relay`), joined here whatever the directory says. `Err`
    /// (queued): the token is refused, or this node is no cluster node.
    pub(super) fn relay_join(&mut self, room: &str, token: &str) -> Result<Relay, ()> {
        let Some(cluster) = self.state.cluster.clone() else {
            self.error("unauthorized", "relay joins are for cluster nodes");
            return Err(());
        };
        match cluster.verify_relay(token, room) {
            Ok(claims) => Ok(Relay {
                link: LinkId(claims.link),
                hidden: claims.role == RelayRole::Sink,
            }),
            Err(err) => {
                self.state
                    .security
                    .auth_failures
                    .with_label_values(&["bad_relay_token"])
                    .inc();
                self.error("unauthorized", err.to_string());
                Err(())
            }
        }
    }

    /// The access token's identity (the connection number without one).
    fn identity(&self) -> String {
        self.access
            .as_ref()
            .map_or_else(|| format!("conn-{}", self.conn), |a| a.sub.clone())
    }

    async fn room_here(&self, room: &str) -> bool {
        match self.state.worker.rooms().await {
            Ok(rooms) => rooms.iter().any(|r| r.name == room),
            Err(_) => false,
        }
    }

    /// Queues a `redirect` to `node` (a satellite of `home`, for a
    /// cascaded room).
    fn redirect(
        &mut self,
        room: &str,
        node: &NodeRecord,
        reason: &'static str,
        home: Option<&str>,
    ) {
        let Some(cluster) = &self.state.cluster else {
            return;
        };
        cluster.count_redirect(reason);
        tracing::info!(room, to = %node.id, reason, "redirect");
        let routing_token = cluster.routing_token(&self.identity(), room, &node.id, home);
        self.outbox.push(ServerMessage::Redirect {
            room: room.to_owned(),
            node: node.id.clone(),
            url: node.ws_url(),
            routing_token,
            reason,
        });
    }

    /// A draining node handed this session's room to another node: sends
    /// the client there. `false` if it did not (no cluster, no room, or no
    /// node took the room): the plain `migrate` applies.
    pub(super) fn redirect_migrating(&mut self) -> bool {
        let (Some(cluster), Some(room)) = (self.state.cluster.clone(), self.room.clone()) else {
            return false;
        };
        match cluster.migration_target(&room) {
            Some(node) => {
                self.redirect(&room, &node, "drain", None);
                true
            }
            None => false,
        }
    }
}
