//! The heartbeat: every third of the TTL, a node writes its registration
//! with its current load, renews the directory entries of the rooms it is
//! home to (claiming back any Redis lost), releases the rooms that ended
//! here, and reads the other nodes. While Redis is away the beat fails,
//! `sfu_cluster_redis_up` drops to 0, and calls here go on; the first beat
//! that succeeds again puts the node and its rooms back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use prometheus::Registry;
use sfu::core::Snapshot;
use sfu::worker::WorkerHandle;
use tokio::sync::watch;

use super::Cluster;
use crate::calls::is_private_room;

/// The load figures between two beats.
struct Load {
    at: Instant,
    cpu_seconds: f64,
    packets_out: u64,
}

/// This process's CPU seconds, from the process collector in `registry`.
fn cpu_seconds(registry: &Registry) -> f64 {
    registry
        .gather()
        .iter()
        .find(|family| family.name() == "process_cpu_seconds_total")
        .and_then(|family| family.get_metric().first())
        .map_or(0.0, |metric| metric.get_counter().get_value())
}

fn packets_out(snapshot: &Snapshot) -> u64 {
    let out = &snapshot.counters.rtp_out;
    out.audio_packets + out.video_packets
}

/// Runs the heartbeat until `stop` turns true, then unregisters the node
/// and releases its rooms (a clean shutdown frees them at once).
pub fn spawn_heartbeat(
    cluster: Arc<Cluster>,
    worker: WorkerHandle,
    registry: Registry,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = cluster.ttl / 3;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Load {
            at: Instant::now(),
            cpu_seconds: cpu_seconds(&registry),
            packets_out: 0,
        };
        let mut up = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let Ok(snapshot) = worker.snapshot().await else {
                continue;
            };
            let rooms = match worker.rooms().await {
                Ok(rooms) => rooms,
                Err(_) => continue,
            };
            let now = Load {
                at: Instant::now(),
                cpu_seconds: cpu_seconds(&registry),
                packets_out: packets_out(&snapshot),
            };
            let secs = now.at.duration_since(last.at).as_secs_f64().max(1e-3);
            let cpu = ((now.cpu_seconds - last.cpu_seconds) / secs).max(0.0);
            let pps = now.packets_out.saturating_sub(last.packets_out) as f64 / secs;
            last = now;
            // Participants here, link Peers not counted: the load that
            // placement and cascading compare.
            let people: HashMap<String, usize> = rooms
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        r.participants.iter().filter(|p| !p.relay).count(),
                    )
                })
                .collect();
            cluster.bridges.stop_unused(&people);
            // The rooms this node is home to: not the private rooms of 1:1
            // calls, nor the rooms it links to another home, nor rooms
            // left to link Peers that it is not home to (a satellite's
            // room while its link closes).
            let local: HashSet<String> = rooms
                .into_iter()
                .map(|r| r.name)
                .filter(|name| !is_private_room(name) && !cluster.bridges.is_satellite(name))
                .filter(|name| people.get(name).copied().unwrap_or(0) > 0 || cluster.is_home(name))
                .collect();
            let participants = snapshot.peers.saturating_sub(snapshot.relay_peers);
            let ok = cluster
                .beat(participants, local, cpu, pps)
                .await
                .map_err(|err| {
                    if up {
                        tracing::warn!(%err, "cluster heartbeat failed; calls here go on");
                    }
                })
                .is_ok();
            if ok && !up {
                tracing::info!("Redis is back; this node and its rooms are registered again");
            }
            up = ok;
            cluster.metrics.redis_up.set(i64::from(ok));
            if !ok {
                cluster.metrics.heartbeat_failures.inc();
            }
        }
        cluster.leave().await;
    })
}

impl Cluster {
    /// One beat; `local` are the rooms with Peers here.
    async fn beat(
        &self,
        peers: u64,
        local: HashSet<String>,
        cpu: f64,
        pps: f64,
    ) -> Result<(), redis::RedisError> {
        let record = self.record(peers, local.len() as u64, cpu, pps);
        self.directory.register(&record).await?;
        let draining = self.draining.load(Ordering::Relaxed);
        let now = Instant::now();
        let (renew, release) = {
            let mut homed = self.homed.lock().map_err(|_| poisoned())?;
            for room in &local {
                // A draining node takes no new rooms; a room it kept (no
                // node could take it) stays its own.
                if !draining || homed.contains_key(room) {
                    homed.insert(room.clone(), now);
                }
            }
            // A room claimed for a join a moment ago counts as ours for a
            // beat even before its first Peer is in.
            let release: Vec<String> = homed
                .iter()
                .filter(|(room, seen)| {
                    !local.contains(*room) && now.duration_since(**seen) >= self.ttl / 3
                })
                .map(|(room, _)| room.clone())
                .collect();
            for room in &release {
                homed.remove(room);
            }
            (homed.keys().cloned().collect::<Vec<_>>(), release)
        };
        for room in &release {
            self.directory.release(room, &self.me).await?;
        }
        let lost = self.directory.renew(&self.me, &renew).await?;
        for room in lost {
            self.metrics.conflicts.inc();
            tracing::warn!(room, "the directory gives a room held here to another node");
        }
        let homed = self.homed.lock().map(|h| h.len()).unwrap_or(0);
        self.metrics
            .rooms_homed
            .set(i64::try_from(homed).unwrap_or(i64::MAX));
        let mut nodes = self.directory.nodes().await?;
        if let Some(me) = nodes.iter_mut().find(|n| n.id == self.me) {
            *me = record;
        }
        self.set_view(nodes);
        Ok(())
    }

    /// A clean shutdown: the registration and this node's rooms go at once.
    async fn leave(&self) {
        let rooms: Vec<String> = self
            .homed
            .lock()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default();
        for room in rooms {
            let _ = self.directory.release(&room, &self.me).await;
        }
        if let Err(err) = self.directory.unregister(&self.me).await {
            tracing::warn!(%err, "could not unregister from the cluster");
        }
    }
}

fn poisoned() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "cluster state lock poisoned"))
}
