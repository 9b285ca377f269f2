//! A Room: the Peers that see and hear each other.

use super::audio_level::SpeakerState;
use super::ids::PeerId;

/// Membership of one room. The forwarding table itself lives on the Tracks
/// (Track → subscribers), so that a packet needs one lookup.
#[derive(Debug, Default)]
pub struct Room {
    /// Peers in join order.
    pub peers: Vec<PeerId>,
    /// Who speaks, and who might take over.
    pub speaker: SpeakerState,
}

impl Room {
    /// Removes a Peer; returns whether the room is now empty.
    pub fn remove(&mut self, peer: PeerId) -> bool {
        self.peers.retain(|p| *p != peer);
        self.peers.is_empty()
    }
}
