//! Who is in which Room, and what they publish and receive: join and leave,
//! publishing a Track, and creating or removing Subscriptions.

use std::time::Instant;

use rtc::peer_connection::event::RTCTrackEventInit;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{
    RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId, RTCRtpTransceiverInit,
};
use rtc::sdp::extmap::AUDIO_LEVEL_URI;

use super::forwarder::Forwarder;
use super::ids::{MediaKind, PeerId, TrackId};
use super::peer::Peer;
use super::peer_config::build_peer_connection;
use super::rate_limit::InboundLimiter;
use super::subscription::{sender_track, Subscription};
use super::track::Track;
use super::{Core, CoreError, Joined, LeaveReason, Participant, Signal};

impl Core {
    /// Adds a participant to `room` (creating it), and tells the others.
    /// `room` and `name` are validated by the caller.
    pub fn join(&mut self, now: Instant, room: &str, name: &str) -> Result<Joined, CoreError> {
        let (ufrag, pwd) = self.fresh_credentials();
        self.join_with_credentials(now, room, name, ufrag, pwd)
    }

    /// ICE credentials for a new Peer, its ufrag unused.
    pub(super) fn fresh_credentials(&self) -> (String, String) {
        let ufrag = loop {
            let candidate = rtc::ice::rand::generate_ufrag();
            if !self.by_ufrag.contains_key(&candidate) {
                break candidate;
            }
        };
        (ufrag, rtc::ice::rand::generate_pwd())
    }

    /// [`Core::join`] with the SFU-side ICE credentials given rather than
    /// drawn: for the fuzz targets and tests, whose STUN requests must
    /// carry a known ufrag and a valid MESSAGE-INTEGRITY. `ufrag` must not
    /// be in use.
    #[doc(hidden)]
    pub fn join_with_credentials(
        &mut self,
        now: Instant,
        room: &str,
        name: &str,
        ufrag: String,
        pwd: String,
    ) -> Result<Joined, CoreError> {
        self.join_peer(now, room, name, (ufrag, pwd), None, None)
    }

    /// Adds a Peer of a node-to-node link (`relay.rs`): a hidden sink or a
    /// ghost of a participant of the other node.
    pub fn join_relay(
        &mut self,
        now: Instant,
        room: &str,
        name: &str,
        relay: super::relay::Relay,
    ) -> Result<Joined, CoreError> {
        let credentials = self.fresh_credentials();
        self.join_peer(now, room, name, credentials, None, Some(relay))
    }

    /// Adds a Peer: a participant, or a WHIP/WHEP session (`session`, with
    /// `true` for a WHEP viewer), which `media_consent.rs` sets up (ICE
    /// timeouts, SRTP profiles) and which, as a viewer, is hidden: not
    /// announced to the room nor listed to newcomers.
    pub(super) fn join_peer(
        &mut self,
        now: Instant,
        room: &str,
        name: &str,
        (ufrag, pwd): (String, String),
        session: Option<bool>,
        relay: Option<super::relay::Relay>,
    ) -> Result<Joined, CoreError> {
        if self.by_ufrag.contains_key(&ufrag) {
            return Err(CoreError::Rtc("ufrag in use".to_owned()));
        }
        // Every Peer's liveness is the core's (`media_consent.rs`), not
        // `rtc`'s: `rtc` would time out a client that moved its checks to
        // another candidate pair (webrtc-rs note 23).
        let (ice_timeout, srtp_profiles) = match session {
            Some(_) => self.session_connection(),
            None => (
                super::media_consent::ICE_TIMEOUT,
                self.config.srtp_profiles.clone(),
            ),
        };
        let hidden = session == Some(true) || relay.is_some_and(|r| r.hidden);
        let link = relay.map(|r| r.link);
        let pc = build_peer_connection(now, &ufrag, &pwd, ice_timeout, &srtp_profiles)
            .map_err(|e| CoreError::Rtc(e.to_string()))?;
        let id = PeerId(self.next_peer);
        self.next_peer += self.config.ids.step.max(1);

        let participants = self.participants(room, link);
        let members = self.room_peers(room);
        self.by_ufrag.insert(ufrag.clone(), id);
        let mut peer = Peer::new(id, name.to_owned(), room.to_owned(), ufrag, pc, now);
        peer.inbound = InboundLimiter::new(self.config.inbound_limits);
        peer.hidden = hidden;
        peer.link = link;
        self.peers.insert(id, peer);
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .peers
            .push(id);
        self.counters.joins += 1;
        for member in members.into_iter().filter(|_| !hidden) {
            self.emit(
                member,
                Signal::ParticipantJoined {
                    peer_id: id,
                    name: name.to_owned(),
                },
            );
        }
        tracing::info!(peer = %id, room, "joined");
        Ok(Joined {
            peer_id: id,
            participants,
        })
    }

    /// The client asked to leave, or its signaling socket closed.
    pub fn leave(&mut self, now: Instant, id: PeerId) -> Result<(), CoreError> {
        self.disconnect(now, id, LeaveReason::Normal)
    }

    /// Removes a Peer for `reason`, freeing everything it holds.
    pub fn disconnect(
        &mut self,
        now: Instant,
        id: PeerId,
        reason: LeaveReason,
    ) -> Result<(), CoreError> {
        if !self.peers.contains_key(&id) {
            return Err(CoreError::UnknownPeer);
        }
        self.remove_peer(now, id, reason);
        self.flush(now);
        Ok(())
    }

    /// The participants of `room` as a newcomer of `link` sees them.
    fn participants(&self, room: &str, link: Option<super::relay::LinkId>) -> Vec<Participant> {
        self.room_peers(room)
            .into_iter()
            .filter_map(|id| self.peers.get(&id))
            .filter(|p| !p.hidden && (link.is_none() || p.link != link))
            .map(|p| Participant {
                peer_id: p.id,
                name: p.name.clone(),
                muted: p
                    .published
                    .values()
                    .filter(|t| self.tracks.get(t).is_some_and(|t| t.muted))
                    .copied()
                    .collect(),
                tracks: p
                    .published
                    .values()
                    .filter_map(|t| self.tracks.get(t))
                    .map(|t| (t.id, t.kind))
                    .collect(),
            })
            .collect()
    }

    /// Frees everything a Peer holds: its Tracks (and everyone's
    /// Subscriptions to them), its own Subscriptions, its demux entries and
    /// its connection.
    pub(super) fn remove_peer(&mut self, now: Instant, id: PeerId, reason: LeaveReason) {
        // Its Tracks go first, while the Peer still names their room.
        let published: Vec<TrackId> = match self.peers.get(&id) {
            Some(peer) => peer.published.values().copied().collect(),
            None => return,
        };
        for track in published {
            self.unpublish(now, track);
        }
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        self.by_ufrag.remove(&peer.ufrag);
        self.routes.remove_peer(id);
        for track in peer.subscriptions.keys() {
            if let Some(track) = self.tracks.get_mut(track) {
                track.subscribers.retain(|p| *p != id);
            }
        }
        if let Err(err) = rtc::sansio::Protocol::close(&mut peer.pc) {
            tracing::debug!(peer = %id, %err, "close failed");
        }
        while let Some(out) = rtc::sansio::Protocol::poll_write(&mut peer.pc) {
            self.transmits.push_back(super::Transmit {
                destination: out.transport.peer_addr,
                protocol: out.transport.transport_protocol,
                data: out.message,
                received_at: None,
                media: false,
            });
        }
        let remaining = match self.rooms.get_mut(&peer.room) {
            Some(room) => {
                if room.remove(id) {
                    self.rooms.remove(&peer.room);
                    Vec::new()
                } else {
                    room.peers.clone()
                }
            }
            None => Vec::new(),
        };
        let link = peer.link;
        for member in remaining.into_iter().filter(|_| !peer.hidden) {
            // (Gone already, so `emit` cannot tell its link.)
            let same_link = link.is_some() && self.peers.get(&member).and_then(|m| m.link) == link;
            if !same_link {
                self.emit(member, Signal::ParticipantLeft { peer_id: id });
            }
        }
        self.counters.leave(reason);
        tracing::info!(peer = %id, room = %peer.room, ?reason, "left");
    }

    /// A publisher's track started arriving: make it a Track and subscribe
    /// everyone else in the room to it.
    pub(super) fn publish(&mut self, now: Instant, id: PeerId, init: RTCTrackEventInit) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.permissions.publish {
            tracing::info!(peer = %id, track = %init.track_id, "track refused: may not publish");
            return;
        }
        if let Some(track_id) = peer.published.get(&init.track_id).copied() {
            // Another layer of a simulcast track.
            if let Some(track) = self.tracks.get_mut(&track_id) {
                if track.layer_of(init.ssrc).is_none() {
                    let rid = init.rid.clone().unwrap_or_default();
                    track.add_layer(rid.clone(), init.ssrc);
                    tracing::info!(peer = %id, track = %track_id, rid, "simulcast layer");
                }
            }
            return;
        }
        let Some(mut receiver) = peer.pc.rtp_receiver(init.receiver_id) else {
            return;
        };
        let audio_level_extension = receiver
            .get_parameters()
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|e| e.uri == AUDIO_LEVEL_URI)
            .and_then(|e| u8::try_from(e.id).ok());
        let track = receiver.track();
        let kind = match track.kind() {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return,
        };
        let Some(codec) = track.codec(init.ssrc).cloned() else {
            tracing::warn!(peer = %id, track = %init.track_id, "track without a codec");
            return;
        };
        let track_id = TrackId(self.next_track);
        self.next_track += self.config.ids.step.max(1);
        peer.published.insert(init.track_id.clone(), track_id);
        let room = peer.room.clone();
        let muted = peer.muted.contains(&init.track_id);
        let rid = init.rid.clone().unwrap_or_default();
        let mut track = Track::new(
            track_id,
            id,
            init.track_id,
            init.receiver_id,
            kind,
            codec,
            init.ssrc,
            rid,
            now,
            self.config.cache_sizes,
        );
        track.muted = muted;
        track.audio_level_extension = audio_level_extension;
        self.tracks.insert(track_id, track);
        tracing::info!(peer = %id, track = %track_id, kind = kind.as_str(), "track published");
        for member in self.room_peers(&room) {
            if member == id {
                continue;
            }
            self.emit(
                member,
                Signal::TrackPublished {
                    peer_id: id,
                    track_id,
                    kind,
                },
            );
            if muted {
                // Muted before its first packet: say so right away.
                self.emit(
                    member,
                    Signal::TrackMuted {
                        peer_id: id,
                        track_id,
                        muted: true,
                    },
                );
            }
            self.subscribe(now, member, track_id);
            self.maybe_offer(now, member);
        }
    }

    /// A Track ended: remove every Subscription to it and renegotiate.
    pub(super) fn unpublish(&mut self, now: Instant, track_id: TrackId) {
        let Some(track) = self.tracks.remove(&track_id) else {
            return;
        };
        let room = match self.peers.get_mut(&track.publisher) {
            Some(publisher) => {
                publisher.published.remove(&track.rtc_track_id);
                Some(publisher.room.clone())
            }
            None => None,
        };
        // And those whose reused sender waits for their answer (`subscribe`).
        let mut subscribers = track.subscribers.clone();
        for member in room
            .as_deref()
            .map(|r| self.room_peers(r))
            .unwrap_or_default()
        {
            let pending = self
                .peers
                .get(&member)
                .is_some_and(|p| p.subscriptions.contains_key(&track_id));
            if pending && !subscribers.contains(&member) {
                subscribers.push(member);
            }
        }
        for subscriber in &subscribers {
            let Some(peer) = self.peers.get_mut(subscriber) else {
                continue;
            };
            if peer.viewer.is_some() {
                // Its slot stays, idle until another Track feeds it.
                continue;
            }
            if let Some(mut sub) = peer.subscriptions.remove(&track_id) {
                peer.subscription_by_local_id.remove(&sub.local_track_id);
                // The sender stays, inactive, for the next Track of its kind
                // (`subscribe`), so that the m-lines do not pile up.
                if let Some(mut transceiver) = peer
                    .pc
                    .rtp_transceiver(RTCRtpTransceiverId::from(sub.sender_id))
                {
                    transceiver.set_direction(RTCRtpTransceiverDirection::Inactive);
                }
                sub.layer = None;
                sub.target = None;
                sub.reused = false;
                peer.spare.push(sub);
                peer.needs_offer = true;
            }
        }
        for subscriber in &subscribers {
            if self.is_viewer(*subscriber) {
                self.detach_slot(*subscriber, track_id);
                self.refresh_viewer(now, *subscriber);
            }
            self.maybe_offer(now, *subscriber);
        }
        let members = room.map(|r| self.room_peers(&r)).unwrap_or_default();
        for member in members {
            if member != track.publisher {
                self.emit(
                    member,
                    Signal::TrackUnpublished {
                        peer_id: track.publisher,
                        track_id,
                    },
                );
            }
        }
    }

    /// Adds a sender for `track_id` to `subscriber`'s connection, or gives
    /// it a spare one of an ended Subscription. The caller renegotiates
    /// (`maybe_offer`).
    pub(super) fn subscribe(&mut self, now: Instant, subscriber: PeerId, track_id: TrackId) {
        if self.is_viewer(subscriber) {
            // A viewer's slots choose their own sources (`viewer.rs`).
            self.refresh_viewer(now, subscriber);
            return;
        }
        let publisher = match self.tracks.get(&track_id) {
            Some(track) => track.publisher,
            None => return,
        };
        if self.linked(subscriber, publisher) {
            // What came over a link never goes back over it.
            return;
        }
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&subscriber) else {
            return;
        };
        if !peer.negotiated_once
            || !peer.permissions.subscribe
            || peer.subscriptions.contains_key(&track_id)
        {
            return;
        }
        let local_track_id = track_id.to_string();
        // A spare sender of the same kind and codec (its m-line offers only
        // the codec it was created with) takes the Track under its own SSRC
        // (webrtc-rs note 20): the m-line gets the new msid, and the
        // Forwarder goes on numbering from where it stopped.
        // Not for a link's sink: its bridge learns of a Track from a new
        // remote track, which a reused sender would not raise.
        let spare = peer.spare.iter().position(|s| {
            peer.link.is_none()
                && s.kind == track.kind
                && s.codec
                    .mime_type
                    .eq_ignore_ascii_case(&track.codec.mime_type)
                && s.codec.sdp_fmtp_line == track.codec.sdp_fmtp_line
        });
        let mut ssrc: u32 = match spare {
            Some(index) => peer.spare[index].forwarder.out_ssrc(),
            None => rand::random(),
        };
        let track_on = |ssrc: u32| {
            sender_track(
                track.publisher.to_string(),
                &local_track_id,
                track.kind,
                ssrc,
                track.codec.clone(),
            )
        };
        if let Some(index) = spare {
            let mut sub = peer.spare.swap_remove(index);
            // `rtc` hands out a sender only while its direction sends.
            if let Some(mut transceiver) = peer
                .pc
                .rtp_transceiver(RTCRtpTransceiverId::from(sub.sender_id))
            {
                transceiver.set_direction(RTCRtpTransceiverDirection::Sendonly);
            }
            let replaced = peer
                .pc
                .rtp_sender(sub.sender_id)
                .map(|mut sender| sender.replace_track(track_on(ssrc)));
            match replaced {
                Some(Ok(())) => {
                    sub.track = track_id;
                    sub.local_track_id = local_track_id.clone();
                    sub.codec = track.codec.clone();
                    sub.layer = track.video_codec.is_none().then_some(track.order[0]);
                    sub.target = Some(track.order[0]);
                    sub.selector = Default::default();
                    sub.max_level = Some(usize::MAX);
                    sub.reused = true;
                    tracing::debug!(peer = %subscriber, track = %track_id, "sender reused");
                    // Not among the Track's subscribers (nothing is forwarded
                    // to it) until the client's answer turns the m-line back
                    // on: what the client would get before that is lost, the
                    // keyframe first (`handle_answer`).
                    peer.subscriptions.insert(track_id, sub);
                    peer.subscription_by_local_id
                        .insert(local_track_id, track_id);
                    peer.needs_offer = true;
                    return;
                }
                _ => {
                    tracing::warn!(peer = %subscriber, track = %track_id, "cannot reuse sender");
                    // Left out of the spares, inactive: a new sender is
                    // added instead.
                    if let Some(mut transceiver) = peer
                        .pc
                        .rtp_transceiver(RTCRtpTransceiverId::from(sub.sender_id))
                    {
                        transceiver.set_direction(RTCRtpTransceiverDirection::Inactive);
                    }
                    ssrc = rand::random();
                }
            }
        }
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![],
            send_encodings: vec![],
        };
        let transceiver = match peer
            .pc
            .add_transceiver_from_track(track_on(ssrc), Some(init))
        {
            Ok(t) => t,
            Err(err) => {
                tracing::warn!(peer = %subscriber, track = %track_id, %err, "cannot add sender");
                return;
            }
        };
        peer.subscriptions.insert(
            track_id,
            Subscription {
                track: track_id,
                kind: track.kind,
                sender_id: RTCRtpSenderId::from(transceiver),
                local_track_id: local_track_id.clone(),
                codec: track.codec.clone(),
                forwarder: Forwarder::new(
                    ssrc,
                    rand::random(),
                    rand::random(),
                    track.codec.clock_rate,
                ),
                // Audio, and video we cannot find keyframes in, start at
                // once; other video at the first keyframe of its target,
                // which the next selection round may change.
                layer: track.video_codec.is_none().then_some(track.order[0]),
                target: Some(track.order[0]),
                selector: Default::default(),
                max_level: Some(usize::MAX),
                switches: 0,
                last_forward_at: None,
                reused: false,
            },
        );
        peer.subscription_by_local_id
            .insert(local_track_id, track_id);
        peer.needs_offer = true;
        track.subscribers.push(subscriber);
        if track.kind == MediaKind::Video {
            self.select_layers(now, subscriber);
        }
    }

    /// Subscribes a Peer that just finished its first negotiation to every
    /// Track already in its room.
    pub(super) fn subscribe_to_room(&mut self, now: Instant, id: PeerId) {
        let Some(room) = self.peers.get(&id).map(|p| p.room.clone()) else {
            return;
        };
        let tracks: Vec<TrackId> = self
            .room_peers(&room)
            .into_iter()
            .filter(|p| *p != id)
            .filter_map(|p| self.peers.get(&p))
            .flat_map(|p| p.published.values().copied())
            .collect();
        for track in tracks {
            self.subscribe(now, id, track);
        }
    }
}
