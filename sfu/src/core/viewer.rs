//! Viewers: Peers that receive a room on the m-lines *they* offered and are
//! never sent an offer (WHEP players). A WHEP player offers a fixed set of
//! `recvonly` sections (typically one audio, one video) and has no channel
//! for renegotiation, so each of its sections becomes a [`Slot`]: a sender
//! attached to the client's own transceiver, fed by one room Track at a
//! time. Which Track feeds a slot changes without renegotiation: when the
//! active speaker changes, when the chosen participant leaves or comes
//! back, when a Track ends.
//!
//! While a slot has a source, its Subscription lives in the Peer's
//! `subscriptions` under that Track, exactly like any other subscriber's,
//! so the packet path, NACKs, keyframe requests, layer selection and
//! congestion control treat it the same. Switching moves the Subscription
//! (and its Forwarder, whose numbering stays continuous across sources) to
//! the new Track with no layer forwarded yet: video then waits for a
//! keyframe of the new source, which is asked for at once. An idle slot
//! keeps its Subscription here.

use std::time::Instant;

use rtc::rtp_transceiver::RTCRtpSenderId;

use super::forwarder::Forwarder;
use super::ids::{MediaKind, PeerId, TrackId};
use super::negotiation::negotiated_payload_type;
use super::peer::Peer;
use super::subscription::{sender_track, Subscription};
use super::{Core, CoreError};

/// What a viewer watches, and its slots.
#[derive(Debug, Default)]
pub struct Viewer {
    /// The participant asked for, by display name or id (`p<n>`); `None`:
    /// the room's active speaker.
    pub choice: Option<String>,
    /// One per section the client offered to receive on, in SDP order.
    pub slots: Vec<Slot>,
}

/// One section a viewer receives on.
#[derive(Debug)]
pub struct Slot {
    /// Audio or video.
    pub kind: MediaKind,
    /// Its sender, on the client's own transceiver.
    pub sender_id: RTCRtpSenderId,
    /// The local track id of that sender.
    pub local_track_id: String,
    /// The Track feeding it now; its Subscription is then in the Peer's
    /// `subscriptions` under that Track.
    pub source: Option<TrackId>,
    /// The Subscription while no Track feeds the slot.
    pub idle: Option<Subscription>,
}

/// Senders attached to a viewer's offered sections, at most.
const MAX_SLOTS: usize = 16;

/// Gives each of the client's receive-only audio and video sections that
/// has no sender yet a sender of our own, before the answer is created:
/// `rtc`'s `add_track` takes the first transceiver of the kind without a
/// sender, which is the client's offered one. The answer then sends on
/// the client's m-lines, with our SSRC, and needs no renegotiation later.
pub(super) fn attach_senders(peer: &mut Peer) -> Result<(), CoreError> {
    let Some(viewer) = peer.viewer.as_mut() else {
        return Ok(());
    };
    let Some(offer) = peer.pc.remote_description().map(|d| d.sdp.clone()) else {
        return Ok(());
    };
    let mut open: Vec<MediaKind> = Vec::new();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let offered = receiving_sections(&offer, kind);
        let have = viewer.slots.iter().filter(|s| s.kind == kind).count();
        open.extend(std::iter::repeat_n(kind, offered.saturating_sub(have)));
    }
    for kind in open {
        if viewer.slots.len() >= MAX_SLOTS {
            break;
        }
        let index = viewer.slots.len();
        let ssrc: u32 = rand::random();
        let local_track_id = format!("{}-{index}", kind.as_str());
        // No codec: every codec both sides support stays negotiated, so a
        // later source may use any of them.
        let track = sender_track(
            "sfu".to_owned(),
            &local_track_id,
            kind,
            ssrc,
            Default::default(),
        );
        let sender_id = peer
            .pc
            .add_track(track)
            .map_err(|e| CoreError::Rtc(e.to_string()))?;
        let clock_rate = match kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        };
        viewer.slots.push(Slot {
            kind,
            sender_id,
            local_track_id: local_track_id.clone(),
            source: None,
            idle: Some(Subscription {
                track: TrackId(0),
                kind,
                sender_id,
                local_track_id,
                codec: Default::default(),
                forwarder: Forwarder::new(ssrc, rand::random(), rand::random(), clock_rate),
                layer: None,
                target: None,
                selector: Default::default(),
                max_level: Some(usize::MAX),
                switches: 0,
                last_forward_at: None,
                reused: false,
            }),
        });
    }
    Ok(())
}

/// How many `kind` sections of an SDP offer ask to receive (`recvonly` or
/// `sendrecv`, the default) and are not rejected (port 0).
pub fn receiving_sections(sdp: &str, kind: MediaKind) -> usize {
    let prefix = match kind {
        MediaKind::Audio => "m=audio ",
        MediaKind::Video => "m=video ",
    };
    let mut count = 0;
    let mut section: Option<bool> = None; // this kind, receiving
    for line in sdp.lines().map(str::trim) {
        if line.starts_with("m=") {
            count += usize::from(section.take() == Some(true));
            if let Some(rest) = line.strip_prefix(prefix) {
                let rejected = rest.split_whitespace().next() == Some("0");
                section = Some(!rejected);
            }
        } else if let Some(receiving) = section.as_mut() {
            if line == "a=sendonly" || line == "a=inactive" {
                *receiving = false;
            }
        }
    }
    count + usize::from(section == Some(true))
}

impl Core {
    /// Makes Peer `id` a viewer (before its first offer): it receives on
    /// the sections it offers, fed by `choice` (a participant's name or
    /// id) or by the room's active speaker.
    pub fn make_viewer(&mut self, id: PeerId, choice: Option<String>) -> Result<(), CoreError> {
        let peer = self.peers.get_mut(&id).ok_or(CoreError::UnknownPeer)?;
        if peer.negotiated_once {
            return Err(CoreError::Rtc("already negotiated".to_owned()));
        }
        peer.viewer = Some(Viewer {
            choice,
            slots: Vec::new(),
        });
        Ok(())
    }

    /// Whether Peer `id` is a viewer.
    pub(super) fn is_viewer(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_some_and(|p| p.viewer.is_some())
    }

    /// Re-chooses the sources of every viewer in `room`.
    pub(super) fn refresh_viewers(&mut self, now: Instant, room: &str) {
        let viewers: Vec<PeerId> = self
            .room_peers(room)
            .into_iter()
            .filter(|p| self.is_viewer(*p))
            .collect();
        for viewer in viewers {
            self.refresh_viewer(now, viewer);
        }
    }

    /// The participant a viewer watches now: its choice (if present), else
    /// the active speaker, else whoever feeds it already, else the first
    /// participant who publishes.
    fn viewed_peer(&self, id: PeerId) -> Option<PeerId> {
        let peer = self.peers.get(&id)?;
        let viewer = peer.viewer.as_ref()?;
        let members: Vec<PeerId> = self
            .room_peers(&peer.room)
            .into_iter()
            .filter(|p| *p != id && !self.is_viewer(*p))
            .collect();
        let publishes = |p: &PeerId| self.peers.get(p).is_some_and(|p| !p.published.is_empty());
        if let Some(choice) = &viewer.choice {
            return members.into_iter().find(|p| {
                self.peers
                    .get(p)
                    .is_some_and(|m| m.name == *choice || m.id.to_string() == *choice)
            });
        }
        let speaker = self.rooms.get(&peer.room).and_then(|r| r.speaker.active);
        let current = viewer
            .slots
            .iter()
            .filter_map(|s| s.source)
            .filter_map(|t| self.tracks.get(&t))
            .map(|t| t.publisher)
            .next();
        speaker
            .filter(|p| members.contains(p) && publishes(p))
            .or(current.filter(|p| members.contains(p)))
            .or_else(|| members.iter().copied().find(publishes))
    }

    /// Chooses the Track feeding each slot of viewer `id`, and switches
    /// the slots whose source changed. A slot takes the watched
    /// participant's first Track of its kind; if that participant has none
    /// (an audio-only speaker), it keeps its source, or, when no one was
    /// chosen, takes anyone's.
    pub(super) fn refresh_viewer(&mut self, now: Instant, id: PeerId) {
        let watched = self.viewed_peer(id);
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let Some(viewer) = peer.viewer.as_ref() else {
            return;
        };
        if !peer.negotiated_once {
            return;
        }
        let chosen = viewer.choice.is_some();
        let room_tracks: Vec<TrackId> = {
            let mut all: Vec<TrackId> = self
                .room_peers(&peer.room)
                .into_iter()
                .filter(|p| *p != id)
                .filter_map(|p| self.peers.get(&p))
                .flat_map(|p| p.published.values().copied())
                .collect();
            all.sort();
            all
        };
        let mut wanted: Vec<Option<TrackId>> = Vec::new();
        let mut taken: Vec<TrackId> = Vec::new();
        for slot in &viewer.slots {
            let of_kind = |t: &TrackId, publisher: Option<PeerId>| {
                self.tracks.get(t).is_some_and(|t| {
                    t.kind == slot.kind && publisher.is_none_or(|p| t.publisher == p)
                })
            };
            let mine = room_tracks
                .iter()
                .copied()
                .filter(|t| !taken.contains(t))
                .find(|t| watched.is_some_and(|w| of_kind(t, Some(w))));
            let keep = slot
                .source
                .filter(|t| self.tracks.contains_key(t) && !taken.contains(t))
                .filter(|t| !chosen || self.tracks.get(t).map(|t| t.publisher) == watched);
            let anyone = (!chosen)
                .then(|| {
                    room_tracks
                        .iter()
                        .copied()
                        .filter(|t| !taken.contains(t))
                        .find(|t| of_kind(t, None))
                })
                .flatten();
            let choice = mine.or(keep).or(anyone);
            if let Some(t) = choice {
                taken.push(t);
            }
            wanted.push(choice);
        }
        for (index, want) in wanted.into_iter().enumerate() {
            self.set_slot_source(now, id, index, want);
        }
    }

    /// Feeds slot `index` of viewer `id` from `source` (or nothing).
    fn set_slot_source(&mut self, now: Instant, id: PeerId, index: usize, source: Option<TrackId>) {
        let current = self
            .peers
            .get(&id)
            .and_then(|p| p.viewer.as_ref())
            .and_then(|v| v.slots.get(index))
            .map(|s| s.source);
        let Some(current) = current else {
            return;
        };
        if current == source {
            return;
        }
        if let Some(old) = current {
            self.detach_slot(id, old);
        }
        if let Some(new) = source {
            self.attach_slot(now, id, index, new);
        }
    }

    /// Takes a viewer's Subscription to `track` back into its slot (the
    /// Track ended, or the slot switches away from it).
    pub(super) fn detach_slot(&mut self, id: PeerId, track: TrackId) {
        if let Some(t) = self.tracks.get_mut(&track) {
            t.subscribers.retain(|p| *p != id);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(mut sub) = peer.subscriptions.remove(&track) else {
            return;
        };
        peer.subscription_by_local_id.remove(&sub.local_track_id);
        sub.layer = None;
        sub.target = None;
        let Some(viewer) = peer.viewer.as_mut() else {
            return;
        };
        if let Some(slot) = viewer
            .slots
            .iter_mut()
            .find(|s| s.sender_id == sub.sender_id)
        {
            slot.source = None;
            slot.idle = Some(sub);
        }
        tracing::debug!(peer = %id, %track, "viewer slot detached");
    }

    /// Feeds an idle slot from `track`, if the client's section negotiated
    /// the Track's codec; video starts at the Track's next keyframe, which
    /// is asked for now.
    fn attach_slot(&mut self, now: Instant, id: PeerId, index: usize, track_id: TrackId) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.subscriptions.contains_key(&track_id) {
            return;
        }
        let Some(slot) = peer.viewer.as_mut().and_then(|v| v.slots.get_mut(index)) else {
            return;
        };
        let Some(mut sub) = slot.idle.take() else {
            return;
        };
        let payload_type = peer.pc.rtp_sender(sub.sender_id).and_then(|mut sender| {
            negotiated_payload_type(&sender.get_parameters().rtp_parameters.codecs, &track.codec)
        });
        let Some(payload_type) = payload_type else {
            tracing::info!(peer = %id, track = %track_id, codec = %track.codec.mime_type, "viewer did not negotiate the codec");
            if let Some(slot) = peer.viewer.as_mut().and_then(|v| v.slots.get_mut(index)) {
                slot.idle = Some(sub);
            }
            return;
        };
        sub.forwarder.set_payload_type(payload_type);
        sub.track = track_id;
        sub.codec = track.codec.clone();
        sub.layer = None;
        sub.target = track.order.first().copied();
        sub.selector = Default::default();
        let target = sub.target;
        if let Some(slot) = peer.viewer.as_mut().and_then(|v| v.slots.get_mut(index)) {
            slot.source = Some(track_id);
        }
        peer.subscription_by_local_id
            .insert(sub.local_track_id.clone(), track_id);
        peer.subscriptions.insert(track_id, sub);
        track.subscribers.push(id);
        let (kind, connected) = (track.kind, peer.connected);
        tracing::debug!(peer = %id, track = %track_id, "viewer slot attached");
        if kind == MediaKind::Video {
            self.select_layers(now, id);
            let target = self
                .peers
                .get(&id)
                .and_then(|p| p.subscriptions.get(&track_id))
                .and_then(|s| s.target)
                .or(target);
            if let (true, Some(layer)) = (connected, target) {
                self.request_keyframe(now, track_id, layer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_receiving_sections() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
        assert_eq!(receiving_sections(sdp, MediaKind::Audio), 1);
        assert_eq!(receiving_sections(sdp, MediaKind::Video), 2);
        assert_eq!(receiving_sections("garbage", MediaKind::Video), 0);
    }
}
