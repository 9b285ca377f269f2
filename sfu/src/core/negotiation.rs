//! The offer/answer exchange with each client. The client offers once to
//! publish; after that the SFU offers whenever a Peer's Subscriptions change,
//! with at most one offer outstanding. If the client offers while ours is
//! out, the SFU is the polite side: it rolls back and answers.

use std::time::Instant;

use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
use rtc::rtp_transceiver::RTCRtpTransceiverId;
use rtc::sdp::extmap::TRANSPORT_CC_URI;

use super::ids::{MediaKind, PeerId, TrackId};
use super::peer_config::{host_candidate, tcp_candidate};
use super::simulcast_sdp::keep_simulcast_receivers;
use super::{Core, CoreError, Signal};

/// Relay candidates remembered per Peer, at most.
const MAX_RELAY_ADDRS: usize = 16;

/// The address of a `typ relay` candidate line (RFC 8839 §5.1:
/// `candidate:<foundation> <component> <transport> <priority> <address>
/// <port> typ <type> ...`), or `None` for other types.
pub(super) fn relay_address(candidate: &str) -> Option<std::net::SocketAddr> {
    let fields: Vec<&str> = candidate.split_whitespace().collect();
    if fields.get(6) != Some(&"typ") || fields.get(7) != Some(&"relay") {
        return None;
    }
    let ip: std::net::IpAddr = fields.get(4)?.parse().ok()?;
    let port: u16 = fields.get(5)?.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, port))
}

impl Core {
    /// The client's offer: apply it and queue our answer (a `Signal::Answer`),
    /// followed by an offer of our own if its Subscriptions changed.
    pub fn handle_offer(&mut self, now: Instant, id: PeerId, sdp: String) -> Result<(), CoreError> {
        #[cfg(feature = "fault-injection")]
        super::containment::fault::check_offer(&sdp);
        let peer = self.peers.get_mut(&id).ok_or(CoreError::UnknownPeer)?;
        let twcc = sdp.contains(TRANSPORT_CC_URI);
        let kept = keep_simulcast_receivers(peer.remote_sdp.as_deref(), &sdp).into_owned();
        let offer =
            RTCSessionDescription::offer(kept).map_err(|e| CoreError::BadSdp(e.to_string()))?;
        if peer.awaiting_answer {
            let rollback =
                RTCSessionDescription::rollback(None).map_err(|e| CoreError::Rtc(e.to_string()))?;
            peer.pc
                .set_local_description(now, rollback)
                .map_err(|e| CoreError::Rtc(e.to_string()))?;
            peer.awaiting_answer = false;
            peer.needs_offer = true;
        }
        if let Err(err) = peer.pc.set_remote_description(now, offer) {
            // If our own offer was rolled back, it must still go out.
            self.maybe_offer(now, id);
            self.flush(now);
            return Err(CoreError::BadSdp(err.to_string()));
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return Err(CoreError::UnknownPeer);
        };
        peer.remote_sdp = Some(sdp);
        peer.twcc = twcc;
        let first = !peer.negotiated_once;
        if first {
            let udp = self.config.udp_addrs.iter().map(|a| host_candidate(*a));
            let tcp = self.config.tcp_addrs.iter().map(|a| tcp_candidate(*a));
            for candidate in udp.chain(tcp) {
                let candidate = candidate.map_err(|e| CoreError::Rtc(e.to_string()))?;
                peer.pc
                    .add_local_candidate(candidate)
                    .map_err(|e| CoreError::Rtc(e.to_string()))?;
            }
        }
        // A viewer's offered sections get our senders (`viewer.rs`).
        super::viewer::attach_senders(peer)?;
        let answer = peer
            .pc
            .create_answer(None)
            .map_err(|e| CoreError::BadSdp(e.to_string()))?;
        peer.pc
            .set_local_description(now, answer)
            .map_err(|e| CoreError::Rtc(e.to_string()))?;
        let sdp = peer
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| CoreError::Rtc("no local description after answering".to_owned()))?;
        peer.negotiated_once = true;
        // A published track whose m-line no longer sends (the client removed
        // or stopped it) is unpublished: `rtc` reports no track end for it.
        let ended: Vec<TrackId> = peer
            .published
            .values()
            .filter_map(|t| self.tracks.get(t))
            .filter(|t| {
                let transceiver = RTCRtpTransceiverId::from(t.receiver_id);
                peer.pc
                    .rtp_transceiver(transceiver)
                    .is_none_or(|tr| !tr.current_direction().has_recv())
            })
            .map(|t| t.id)
            .collect();
        self.emit(id, Signal::Answer { sdp });
        for track in ended {
            self.unpublish(now, track);
        }
        if first {
            self.subscribe_to_room(now, id);
        }
        self.maybe_offer(now, id);
        self.mark_dirty(id);
        self.flush(now);
        Ok(())
    }

    /// The client's answer to our offer.
    pub fn handle_answer(
        &mut self,
        now: Instant,
        id: PeerId,
        sdp: String,
    ) -> Result<(), CoreError> {
        let peer = self.peers.get_mut(&id).ok_or(CoreError::UnknownPeer)?;
        if !peer.awaiting_answer {
            return Err(CoreError::NoOfferOutstanding);
        }
        let twcc = sdp.contains(TRANSPORT_CC_URI);
        let kept = keep_simulcast_receivers(peer.remote_sdp.as_deref(), &sdp).into_owned();
        let answer =
            RTCSessionDescription::answer(kept).map_err(|e| CoreError::BadSdp(e.to_string()))?;
        peer.pc
            .set_remote_description(now, answer)
            .map_err(|e| CoreError::BadSdp(e.to_string()))?;
        peer.remote_sdp = Some(sdp);
        peer.awaiting_answer = false;
        peer.twcc = twcc;

        // Senders that just became live learn the payload type the client
        // chose for their codec.
        let mut started: Vec<(TrackId, usize)> = Vec::new();
        let mut reused: Vec<TrackId> = Vec::new();
        for sub in peer.subscriptions.values_mut() {
            // Only once the answer is to an offer with the m-line sending
            // (one made after the reuse).
            if sub.reused
                && peer
                    .pc
                    .rtp_transceiver(RTCRtpTransceiverId::from(sub.sender_id))
                    .is_some_and(|t| t.current_direction().has_send())
            {
                sub.reused = false;
                // A reused sender: the client receives on it again, from
                // where its numbering stopped.
                let gap = sub
                    .last_forward_at
                    .map(|t| now.saturating_duration_since(t))
                    .unwrap_or_default();
                sub.forwarder.switch_source_after(gap);
                reused.push(sub.track);
                if let (MediaKind::Video, Some(layer)) = (sub.kind, sub.target) {
                    started.push((sub.track, layer));
                }
            }
            if sub.forwarder.is_negotiated() {
                continue;
            }
            let Some(mut sender) = peer.pc.rtp_sender(sub.sender_id) else {
                continue;
            };
            let payload_type =
                negotiated_payload_type(&sender.get_parameters().rtp_parameters.codecs, &sub.codec);
            match payload_type {
                Some(pt) => {
                    sub.forwarder.set_payload_type(pt);
                    if let (MediaKind::Video, Some(layer)) = (sub.kind, sub.target) {
                        started.push((sub.track, layer));
                    }
                }
                None => {
                    tracing::warn!(peer = %id, track = %sub.track, codec = %sub.codec.mime_type, "subscriber did not accept the codec")
                }
            }
        }
        // Forwarding to a reused sender starts now (`Core::subscribe`).
        for track in &reused {
            if let Some(track) = self.tracks.get_mut(track) {
                if !track.subscribers.contains(&id) {
                    track.subscribers.push(id);
                }
            }
        }
        if !reused.is_empty() {
            self.select_layers(now, id);
        }
        // A new subscriber needs a keyframe to start decoding.
        for (track, layer) in started {
            self.request_keyframe(now, track, layer);
        }
        self.maybe_offer(now, id);
        self.mark_dirty(id);
        self.flush(now);
        Ok(())
    }

    /// A trickled candidate from the client.
    pub fn add_ice_candidate(
        &mut self,
        now: Instant,
        id: PeerId,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), CoreError> {
        let peer = self.peers.get_mut(&id).ok_or(CoreError::UnknownPeer)?;
        if candidate.candidate.is_empty() {
            // End of candidates.
            return Ok(());
        }
        let relay = relay_address(&candidate.candidate);
        peer.pc
            .add_remote_candidate(candidate)
            .map_err(|e| CoreError::BadCandidate(e.to_string()))?;
        if let Some(addr) = relay {
            if peer.relay_addrs.len() < MAX_RELAY_ADDRS {
                peer.relay_addrs.push(addr);
            }
        }
        self.mark_dirty(id);
        self.flush(now);
        Ok(())
    }

    /// Sends a server offer if this Peer's Subscriptions changed and no
    /// offer is outstanding.
    pub(super) fn maybe_offer(&mut self, now: Instant, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.negotiated_once || peer.awaiting_answer || !peer.needs_offer {
            return;
        }
        let offer = match peer.pc.create_offer(None) {
            Ok(offer) => offer,
            Err(err) => {
                tracing::warn!(peer = %id, %err, "create_offer failed");
                return;
            }
        };
        if let Err(err) = peer.pc.set_local_description(now, offer) {
            tracing::warn!(peer = %id, %err, "set_local_description(offer) failed");
            return;
        }
        let Some(sdp) = peer.pc.local_description().map(|d| d.sdp) else {
            return;
        };
        peer.awaiting_answer = true;
        peer.needs_offer = false;
        self.emit(id, Signal::Offer { sdp });
        self.mark_dirty(id);
    }
}

/// The payload type a leg negotiated for `codec`: the same MIME type and
/// format parameters (an H.264 profile or packetization mode is a different
/// codec), else the same MIME type.
pub(super) fn negotiated_payload_type(
    negotiated: &[RTCRtpCodecParameters],
    codec: &RTCRtpCodec,
) -> Option<u8> {
    let same_mime =
        |p: &&RTCRtpCodecParameters| p.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type);
    negotiated
        .iter()
        .filter(same_mime)
        .find(|p| p.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line)
        .or_else(|| negotiated.iter().find(same_mime))
        .map(|p| p.payload_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mime: &str, fmtp: &str, payload_type: u8) -> RTCRtpCodecParameters {
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.into(),
                clock_rate: 90_000,
                sdp_fmtp_line: fmtp.into(),
                ..Default::default()
            },
            payload_type,
        }
    }

    #[test]
    fn prefers_the_exact_profile() {
        let leg = [
            params("video/H264", "packetization-mode=0", 100),
            params("video/H264", "packetization-mode=1", 102),
            params("video/VP8", "", 96),
        ];
        let want = params("video/h264", "packetization-mode=1", 0).rtp_codec;
        assert_eq!(negotiated_payload_type(&leg, &want), Some(102));
        let other = params("video/H264", "profile-level-id=640c1f", 0).rtp_codec;
        assert_eq!(negotiated_payload_type(&leg, &other), Some(100));
        let missing = params("video/AV1", "", 0).rtp_codec;
        assert_eq!(negotiated_payload_type(&leg, &missing), None);
    }

    #[test]
    fn relay_candidates_are_recognised() {
        let relay =
            "candidate:1 1 udp 41885439 203.0.113.1 49160 typ relay raddr 192.0.2.2 rport 5000";
        assert_eq!(
            relay_address(relay),
            Some("203.0.113.1:49160".parse().unwrap())
        );
        let host = "candidate:2 1 udp 2122260223 192.0.2.2 5000 typ host";
        assert_eq!(relay_address(host), None);
        assert_eq!(relay_address("candidate:x typ relay"), None);
        assert_eq!(relay_address(""), None);
    }
}
