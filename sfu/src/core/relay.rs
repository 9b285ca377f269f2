//! Peers of a node-to-node link (cluster cascading, `signaling`'s
//! `cluster/bridge`). When one room spans two nodes, the far node's bridge
//! joins the room on both nodes with ordinary WebRTC connections:
//!
//! - a *sink*, hidden from the room, that subscribes to what the room's
//!   participants on this node publish;
//! - one *ghost* per participant of the other node, publishing that
//!   participant's tracks under its name.
//!
//! The Peers of one bridge carry one [`LinkId`], and the core keeps them
//! apart: a Peer never subscribes to, nor hears of, a Peer of its own
//! link. So what came over a link never goes back over it, and each
//! Track crosses each link once, however many subscribers wait on the far
//! side. Everything else (forwarding, NACK answers, keyframe requests,
//! layer choice, bandwidth) is the ordinary Peer machinery, plus one
//! signal: a ghost's video is told how much of it the subscribers here
//! want (`Signal::VideoDemand`), which the other node's sink asks its home
//! for, so that a far subscriber's layer choice reaches the publisher.

use super::ids::{MediaKind, PeerId};

/// One node-to-node link, as its Peers are tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub u64);

/// How a Peer takes part in a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// The link.
    pub link: LinkId,
    /// A sink: neither announced to the room nor listed to newcomers.
    pub hidden: bool,
}

impl super::Signal {
    /// The Peer a signal is about, when it is about one of the room's
    /// participants.
    pub fn subject(&self) -> Option<PeerId> {
        match self {
            Self::ParticipantJoined { peer_id, .. }
            | Self::ParticipantLeft { peer_id }
            | Self::TrackPublished { peer_id, .. }
            | Self::TrackUnpublished { peer_id, .. }
            | Self::TrackMuted { peer_id, .. }
            | Self::ActiveSpeaker { peer_id } => Some(*peer_id),
            Self::Message { from, .. } => Some(*from),
            _ => None,
        }
    }
}

impl super::Core {
    /// Whether `a` and `b` are Peers of the same link.
    pub(super) fn linked(&self, a: PeerId, b: PeerId) -> bool {
        let link = |id| self.peers.get(&id).and_then(|p| p.link);
        matches!((link(a), link(b)), (Some(x), Some(y)) if x == y)
    }

    /// Tells each link ghost the most any subscriber here wants of each
    /// video it publishes, when that changed (`Signal::VideoDemand`).
    pub(super) fn link_demand(&mut self) {
        let super::Core { tracks, peers, .. } = self;
        let mut demands = Vec::new();
        for track in tracks.values_mut() {
            let ghost = peers
                .get(&track.publisher)
                .is_some_and(|p| p.link.is_some() && !p.hidden);
            if !ghost || track.kind != MediaKind::Video {
                continue;
            }
            let demand = track
                .subscribers
                .iter()
                .filter_map(|s| peers.get(s)?.subscriptions.get(&track.id))
                .map(|sub| sub.max_level)
                .max()
                .flatten();
            if track.link_demand != Some(demand) {
                track.link_demand = Some(demand);
                demands.push((track.publisher, track.rtc_track_id.clone(), demand));
            }
        }
        for (ghost, track, max_level) in demands {
            self.emit(ghost, super::Signal::VideoDemand { track, max_level });
        }
    }

    /// Peers of a link now (sinks and ghosts).
    pub fn relay_peers(&self) -> u64 {
        self.peers.values().filter(|p| p.link.is_some()).count() as u64
    }
}
