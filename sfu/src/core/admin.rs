//! What the admin API sees and does: rooms with their participants and
//! tracks, one participant's live figures, kicking a participant and
//! closing a room.

use std::time::Instant;

use super::ids::{MediaKind, PeerId, TrackId};
use super::quality::Quality;
use super::{Core, CoreError, LeaveReason, Signal};

/// One video Subscription's simulcast state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoStats {
    /// The Track received.
    pub track_id: TrackId,
    /// The rid of the layer forwarded now (empty without simulcast).
    pub layer: Option<String>,
    /// The rid of the layer it is switching to, or keeps.
    pub target: Option<String>,
    /// Layer switches so far.
    pub switches: u64,
    /// Paused for lack of bandwidth.
    pub paused: bool,
}

/// One participant as an operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantStats {
    /// Its id.
    pub peer_id: PeerId,
    /// Its display name.
    pub name: String,
    /// Its room.
    pub room: String,
    /// Seconds since it joined.
    pub joined_secs: f64,
    /// ICE and DTLS are up.
    pub connected: bool,
    /// What it publishes.
    pub tracks: Vec<(TrackId, MediaKind)>,
    /// How many Tracks it receives.
    pub subscriptions: usize,
    /// The layer state of each video it receives.
    pub video: Vec<VideoStats>,
    /// Its live figures.
    pub quality: Quality,
    /// A Peer of a node-to-node link (`relay.rs`), not a person here.
    pub relay: bool,
}

/// One room as an operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomStats {
    /// The room's name.
    pub name: String,
    /// Its participants, in join order.
    pub participants: Vec<ParticipantStats>,
}

impl Core {
    /// Whether `room` has a Peer here.
    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// Peers here now (participants and WHIP/WHEP sessions).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Every room with its participants.
    pub fn rooms(&self, now: Instant) -> Vec<RoomStats> {
        let mut rooms: Vec<RoomStats> = self
            .rooms
            .iter()
            .map(|(name, room)| RoomStats {
                name: name.clone(),
                participants: room
                    .peers
                    .iter()
                    .filter_map(|id| self.participant(now, *id))
                    .collect(),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    /// One participant's figures.
    pub fn participant(&self, now: Instant, id: PeerId) -> Option<ParticipantStats> {
        let peer = self.peers.get(&id)?;
        let mut tracks: Vec<(TrackId, MediaKind)> = peer
            .published
            .values()
            .filter_map(|t| self.tracks.get(t))
            .map(|t| (t.id, t.kind))
            .collect();
        tracks.sort();
        let rid = |track: TrackId, layer: Option<usize>| {
            let t = self.tracks.get(&track)?;
            Some(t.layers.get(layer?)?.rid.clone())
        };
        let mut video: Vec<VideoStats> = peer
            .subscriptions
            .values()
            .filter(|s| s.kind == MediaKind::Video)
            .map(|s| VideoStats {
                track_id: s.track,
                layer: rid(s.track, s.layer),
                target: rid(s.track, s.target),
                switches: s.switches,
                paused: s.paused(),
            })
            .collect();
        video.sort_by_key(|v| v.track_id);
        Some(ParticipantStats {
            peer_id: id,
            name: peer.name.clone(),
            room: peer.room.clone(),
            joined_secs: now.saturating_duration_since(peer.joined_at).as_secs_f64(),
            connected: peer.connected,
            tracks,
            subscriptions: peer.subscriptions.len(),
            video,
            quality: peer.quality.clone(),
            relay: peer.link.is_some(),
        })
    }

    /// Removes a participant; its signaling socket is told why and closed.
    pub fn kick(&mut self, now: Instant, id: PeerId) -> Result<(), CoreError> {
        if !self.peers.contains_key(&id) {
            return Err(CoreError::UnknownPeer);
        }
        self.emit(
            id,
            Signal::Removed {
                reason: "removed by an administrator".to_owned(),
            },
        );
        self.remove_peer(now, id, LeaveReason::Kicked);
        self.flush(now);
        Ok(())
    }

    /// Removes every participant of a room; returns how many there were.
    pub fn close_room(&mut self, now: Instant, room: &str) -> usize {
        let peers = self.room_peers(room);
        for id in &peers {
            let _ = self.kick(now, *id);
        }
        peers.len()
    }
}
