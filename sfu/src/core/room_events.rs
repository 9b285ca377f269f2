//! What participants tell their room through the SFU: a Track muted or
//! unmuted (which also stops or resumes its forwarding), and messages
//! relayed to everyone else in the room (chat and other application data).

use std::time::Instant;

use super::ids::{MediaKind, PeerId, TrackId};
use super::{Core, CoreError, Signal};

impl Core {
    /// The publisher muted or unmuted its track `client_track_id` (the track
    /// id in its own SDP). Forwarding stops while muted, and the others are
    /// told. A track not published yet is muted when it appears. Returns the
    /// Track, if it exists yet.
    pub fn set_track_muted(
        &mut self,
        now: Instant,
        id: PeerId,
        client_track_id: &str,
        muted: bool,
    ) -> Result<Option<TrackId>, CoreError> {
        let peer = self.peers.get_mut(&id).ok_or(CoreError::UnknownPeer)?;
        if muted {
            peer.muted.insert(client_track_id.to_owned());
        } else {
            peer.muted.remove(client_track_id);
        }
        let room = peer.room.clone();
        let Some(track_id) = peer.published.get(client_track_id).copied() else {
            return Ok(None);
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return Ok(None);
        };
        if track.muted == muted {
            return Ok(Some(track_id));
        }
        track.muted = muted;
        let kind = track.kind;
        for member in self.room_peers(&room) {
            if member != id {
                self.emit(
                    member,
                    Signal::TrackMuted {
                        peer_id: id,
                        track_id,
                        muted,
                    },
                );
            }
        }
        if !muted && kind == MediaKind::Video {
            // Subscribers need a keyframe of each layer they get to resume
            // decoding.
            let layers = self.tracks.get(&track_id).map_or(0, |t| t.layers.len());
            for layer in 0..layers {
                self.request_keyframe(now, track_id, layer);
            }
            self.flush(now);
        }
        Ok(Some(track_id))
    }

    /// Relays `payload` from a participant to everyone else in its room.
    /// The caller validates the payload (size, rate, content).
    pub fn broadcast(&mut self, id: PeerId, payload: String) -> Result<usize, CoreError> {
        let peer = self.peers.get(&id).ok_or(CoreError::UnknownPeer)?;
        let (room, name) = (peer.room.clone(), peer.name.clone());
        let members: Vec<PeerId> = self
            .room_peers(&room)
            .into_iter()
            .filter(|m| *m != id)
            .collect();
        for member in &members {
            self.emit(
                *member,
                Signal::Message {
                    from: id,
                    name: name.clone(),
                    payload: payload.clone(),
                },
            );
        }
        Ok(members.len())
    }
}
