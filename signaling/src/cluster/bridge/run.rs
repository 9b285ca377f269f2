//! One bridge: a sink on each node, and a ghost on each node for every
//! participant the other node's sink reports. It runs until stopped, or
//! until a sink fails (its node died, or dropped it), which ends the
//! bridge with an error for the supervisor to act on.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::link_peer::{Command, LinkContext, LinkEvent, LinkPeer, Side, Target};
use super::{link_id, BridgeConfig, RelayMetrics};
use crate::cluster::tokens::RelayRole;
use crate::cluster::NodeRecord;

/// The name a sink joins with (never shown: sinks are hidden).
const SINK_NAME: &str = "relay";

/// Runs the bridge of `room` between this node and `home` until `stop`.
pub async fn run_bridge(
    config: &BridgeConfig,
    metrics: &Arc<RelayMetrics>,
    room: &str,
    home: &NodeRecord,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let ctx = Arc::new(LinkContext {
        keys: config.keys.clone(),
        room: room.to_owned(),
        link: link_id(&config.me, room),
        bind_ip: config.bind_ip,
        metrics: Arc::clone(metrics),
    });
    let targets = [
        Target {
            side: Side::Home,
            node: home.id.clone(),
            url: home.ws_url(),
        },
        Target {
            side: Side::Here,
            node: config.me.clone(),
            url: config.ws_url.clone(),
        },
    ];
    let target = |side: Side| &targets[usize::from(side == Side::Here)];
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let sinks: Vec<LinkPeer> = targets
        .iter()
        .map(|t| LinkPeer::spawn(&ctx, t, RelayRole::Sink, SINK_NAME, &events_tx))
        .collect();
    // Ghosts by (the side they live on, the peer id they stand for there).
    let mut ghosts: HashMap<(Side, String), LinkPeer> = HashMap::new();
    let result = loop {
        let (side, event) = tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            event = events.recv() => match event {
                Some(event) => event,
                None => break Ok(()),
            },
        };
        let far = side.other();
        match event {
            LinkEvent::Participant { peer, name } => {
                ghosts.entry((far, peer)).or_insert_with(|| {
                    LinkPeer::spawn(&ctx, target(far), RelayRole::Ghost, &name, &events_tx)
                });
            }
            LinkEvent::Left { peer } => {
                if let Some(ghost) = ghosts.remove(&(far, peer)) {
                    tokio::spawn(ghost.close());
                }
            }
            // A track of no participant (no msid stream): nobody to stand for.
            LinkEvent::Track { peer, .. } if peer.is_empty() => {
                tracing::warn!(room, "a linked track names no participant; not relayed");
            }
            LinkEvent::Track {
                peer,
                track,
                audio_level,
            } => {
                let ghost = ghosts.entry((far, peer.clone())).or_insert_with(|| {
                    LinkPeer::spawn(&ctx, target(far), RelayRole::Ghost, &peer, &events_tx)
                });
                ghost.send(Command::AddTrack { track, audio_level });
            }
            LinkEvent::Unpublished { peer, track } => {
                if let Some(ghost) = ghosts.get(&(far, peer)) {
                    ghost.send(Command::RemoveTrack(track));
                }
            }
            LinkEvent::Chat { peer, text } => {
                if let Some(ghost) = ghosts.get(&(far, peer)) {
                    ghost.send(Command::Chat(text));
                }
            }
            LinkEvent::Demand { track, max_layer } => {
                // From a ghost: the sink on the other node asks its home.
                tracing::debug!(room, track, ?max_layer, "layer demand over the link");
                let sink = &sinks[usize::from(far == Side::Here)];
                sink.send(Command::Prefer { track, max_layer });
            }
            LinkEvent::Down { reason } => {
                break Err(format!("{side:?} side: {reason}"));
            }
        }
    };
    let closing: Vec<_> = sinks
        .into_iter()
        .chain(ghosts.into_values())
        .map(|peer| tokio::spawn(peer.close()))
        .collect();
    for close in closing {
        let _ = close.await;
    }
    result
}
