//! The media path inside the core: RTP from a publisher fanned out to its
//! Track's Subscriptions, and keyframe requests from subscribers turned into
//! throttled PLIs to the publisher.

use std::time::Instant;

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp::packet::Packet as RtpPacket;
use rtc::shared::marshal::MarshalSize;

use super::audio_level::level_of;
use super::dedup::Arrival;
use super::forwarder::{DropReason, PacketInfo};
use super::ids::{MediaKind, PeerId, TrackId};
use super::quality::Transport;
use super::rtcp_check;
use super::stats::InboundDrop;
use super::Core;

/// A video layer silent this long and then back gets a keyframe request.
/// Longer than the gaps of a slow screen share, shorter than any outage
/// people notice.
pub const STALL_KEYFRAME_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl Core {
    /// One RTP packet of a publisher's track: forward it to every subscriber.
    pub(super) fn on_rtp(
        &mut self,
        now: Instant,
        publisher: PeerId,
        rtc_track_id: &str,
        mut packet: RtpPacket,
    ) {
        let Core {
            peers,
            tracks,
            counters,
            histograms,
            dirty,
            ..
        } = self;
        let Some(track_id) = peers
            .get(&publisher)
            .and_then(|p| p.published.get(rtc_track_id))
            .copied()
        else {
            if peers
                .get(&publisher)
                .is_some_and(|p| !p.permissions.publish)
            {
                counters.rtp_unpermitted += 1;
            }
            return;
        };
        let Some(track) = tracks.get_mut(&track_id) else {
            return;
        };
        let Some(layer_index) = track.layer_of(packet.header.ssrc) else {
            // RTX, or a layer `rtc` has not announced yet.
            return;
        };
        let layer = &mut track.layers[layer_index];
        match layer.arrivals.arrive(packet.header.sequence_number) {
            Arrival::New => {}
            Arrival::Duplicate => {
                counters.drop(DropReason::Duplicate);
                return;
            }
            Arrival::TooOld => {
                counters.drop(DropReason::TooOld);
                return;
            }
        }
        let size_in = packet.header.marshal_size() + packet.payload.len();
        layer.bytes += size_in as u64;
        // A layer that comes back after a stall (the publisher's path was
        // cut) left its subscribers with a hole no retransmission fills in
        // time: ask for a fresh keyframe at once rather than wait for
        // theirs.
        let resumed = layer
            .last_packet
            .is_some_and(|t| now.saturating_duration_since(t) >= STALL_KEYFRAME_AFTER);
        layer.last_packet = Some(now);
        if let Some(level) = track
            .audio_level_extension
            .and_then(|id| level_of(&packet.header, id))
        {
            track.loudness.observe(now, level);
        }
        // Extension ids differ per leg; none are forwarded yet.
        packet.header.extension = false;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        if !track.muted {
            track.layers[layer_index].cache.insert(&packet);
        }
        let track = &*track;
        if track.subscribers.is_empty() {
            counters.drop(DropReason::NoSubscriber);
            return;
        }
        let keyframe_start = track
            .video_codec
            .is_some_and(|codec| codec.is_keyframe_start(&packet.payload));
        let info = PacketInfo {
            padding_only: packet.payload.is_empty(),
            marker: packet.header.marker,
            frame: track
                .video_codec
                .and_then(|codec| codec.frame_info(&packet.payload)),
        };
        let mut needs_keyframe = false;
        counters.rtp_in.add(track.kind, size_in);
        if let Some(p) = peers.get_mut(&publisher) {
            p.bytes_in += size_in as u64;
        }
        if track.muted {
            for _ in &track.subscribers {
                counters.drop(DropReason::Muted);
            }
            return;
        }
        for subscriber in &track.subscribers {
            let Some(peer) = peers.get_mut(subscriber) else {
                continue;
            };
            let Some(sub) = peer.subscriptions.get_mut(&track.id) else {
                continue;
            };
            if sub.layer != Some(layer_index) {
                if sub.target != Some(layer_index) {
                    // Another layer than this subscriber's, or none: its
                    // downlink cannot carry even the lowest.
                    if sub.selector.paused() && track.order.first() == Some(&layer_index) {
                        counters.drop(DropReason::Congested);
                    }
                    continue;
                }
                // The target layer: start or switch at its keyframe.
                if !keyframe_start && track.video_codec.is_some() {
                    if sub.layer.is_none() {
                        counters.drop(DropReason::AwaitingKeyframe);
                    }
                    needs_keyframe = true;
                    continue;
                }
                if sub.layer.is_some() {
                    sub.switches += 1;
                    counters.layer_switches += 1;
                }
                let gap = sub
                    .last_forward_at
                    .map(|t| now.saturating_duration_since(t))
                    .unwrap_or_default();
                sub.forwarder.switch_source_after(gap);
                sub.layer = Some(layer_index);
            }
            if !peer.connected {
                counters.drop(DropReason::NotConnected);
                continue;
            }
            let mut out = packet.clone();
            if let Err(reason) = sub.forwarder.forward(&mut out.header, info) {
                counters.drop(reason);
                continue;
            }
            let size = out.header.marshal_size() + out.payload.len();
            if !peer.budget.admit(now, size, track.kind == MediaKind::Audio) {
                // Beyond its downlink's budget (`budget.rs`): dropped before
                // `rtc` numbers it, and a keyframe asked for now and then.
                counters.drop(DropReason::OverBudget);
                if peer.budget.keyframe_due(now) {
                    needs_keyframe = true;
                }
                continue;
            }
            let sent = peer
                .pc
                .rtp_sender(sub.sender_id)
                .map(|mut sender| sender.write_rtp(now, out).is_ok())
                .unwrap_or(false);
            if !sent {
                counters.drop(DropReason::SendFailed);
                continue;
            }
            sub.last_forward_at = Some(now);
            counters.rtp_out.add(track.kind, size);
            peer.bytes_out += size as u64;
            if !peer.first_forwarded {
                peer.first_forwarded = true;
                let join_time = now.saturating_duration_since(peer.joined_at);
                histograms.join_time.observe(join_time.as_secs_f64());
            }
            if !peer.dirty {
                peer.dirty = true;
                dirty.push(*subscriber);
            }
        }
        if needs_keyframe || (resumed && track.kind == MediaKind::Video) {
            // Throttled per layer: asking on every held-back packet is free.
            self.request_keyframe(now, track_id, layer_index);
        }
    }

    /// RTCP the interceptors delivered: keyframe requests, NACKs, REMB and
    /// receiver reports from a subscriber, sender reports from a publisher.
    /// Each packet is checked and resolved by its own SSRCs, not by the
    /// track `rtc` filed the compound under (`rtcp_check`); one naming
    /// streams this Peer neither receives nor sends is dropped and counted.
    pub(super) fn on_rtcp(
        &mut self,
        now: Instant,
        id: PeerId,
        _local_track_id: &str,
        packets: &[Box<dyn rtc::rtcp::Packet>],
    ) {
        for p in packets {
            let foreign = {
                let Some(peer) = self.peers.get(&id) else {
                    return;
                };
                let tracks = &self.tracks;
                let receives = |ssrc: u32| {
                    peer.subscriptions
                        .values()
                        .any(|s| s.forwarder.out_ssrc() == ssrc)
                };
                let publishes = |ssrc: u32| {
                    peer.published
                        .values()
                        .filter_map(|t| tracks.get(t))
                        .any(|t| t.layer_of(ssrc).is_some())
                };
                rtcp_check::is_foreign(p.as_ref(), &receives, &publishes)
            };
            if foreign {
                self.counters.drop_inbound(InboundDrop::ForeignRtcp);
                continue;
            }
            let any = p.as_any();
            if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                self.on_receiver_report(now, id, rr);
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                if let Some(track) = self.subscription_by_ssrc(id, nack.media_ssrc) {
                    self.on_nack(now, id, track, nack);
                }
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.quality.remb = Some(f64::from(remb.bitrate));
                }
            } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                self.keyframe_wanted(now, id, pli.media_ssrc);
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                for entry in &fir.fir {
                    self.keyframe_wanted(now, id, entry.ssrc);
                }
            }
        }
    }

    /// The Track of subscriber `id`'s Subscription sent to it as `ssrc`.
    fn subscription_by_ssrc(&self, id: PeerId, ssrc: u32) -> Option<TrackId> {
        self.peers
            .get(&id)?
            .subscriptions
            .values()
            .find(|s| s.forwarder.out_ssrc() == ssrc)
            .map(|s| s.track)
    }

    /// Subscriber `id` asked for a keyframe of the stream it gets as `ssrc`.
    fn keyframe_wanted(&mut self, now: Instant, id: PeerId, ssrc: u32) {
        let Some((track, layer)) = self.peers.get(&id).and_then(|p| {
            let sub = p
                .subscriptions
                .values()
                .find(|s| s.forwarder.out_ssrc() == ssrc)?;
            Some((sub.track, sub.layer.or(sub.target)?))
        }) else {
            return;
        };
        self.counters.keyframe_requests_received += 1;
        self.request_keyframe(now, track, layer);
    }

    /// A subscriber lost packets: resend them from the Track's cache, as
    /// they were first sent. The NACK goes no further: the publisher's leg
    /// has its own loss recovery.
    fn on_nack(&mut self, now: Instant, id: PeerId, track_id: TrackId, nack: &TransportLayerNack) {
        let Core {
            peers,
            tracks,
            counters,
            dirty,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        let (Some(sub), Some(track)) = (peer.subscriptions.get(&track_id), tracks.get(&track_id))
        else {
            return;
        };
        if peer.budget.is_behind(now) {
            // Its downlink is already behind: a resend would only take
            // budget from new media.
            for pair in &nack.nacks {
                for _ in *pair {
                    counters.drop(DropReason::TooLateForRetransmission);
                }
            }
            return;
        }
        let mut sent = false;
        for pair in &nack.nacks {
            for out_seq in *pair {
                let cached = sub
                    .layer
                    .and_then(|layer| track.layers.get(layer))
                    .zip(sub.forwarder.original_seq(out_seq))
                    .and_then(|(layer, seq)| layer.cache.get(seq));
                let Some(cached) = cached else {
                    counters.drop(DropReason::TooLateForRetransmission);
                    continue;
                };
                let mut packet = cached.clone();
                if !sub
                    .forwarder
                    .rewrite_retransmission(&mut packet.header, out_seq)
                {
                    counters.drop(DropReason::TooLateForRetransmission);
                    continue;
                }
                let ok = peer
                    .pc
                    .rtp_sender(sub.sender_id)
                    .is_some_and(|mut s| s.write_rtp(now, packet).is_ok());
                if ok {
                    counters.retransmissions += 1;
                    sent = true;
                } else {
                    counters.drop(DropReason::SendFailed);
                }
            }
        }
        if sent && !peer.dirty {
            peer.dirty = true;
            dirty.push(id);
        }
    }

    /// ICE and DTLS just came up: start forwarding, and ask for keyframes
    /// for every video this Peer receives so it can start decoding.
    pub(super) fn on_connected(&mut self, now: Instant, id: PeerId) {
        let transport = self.transport_of(now, id);
        let slot = Transport::ALL
            .iter()
            .position(|t| *t == transport)
            .unwrap_or(0);
        self.counters.ice_connections[slot] += 1;
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.connected = true;
        peer.quality.transport = Some(transport);
        let videos: Vec<(TrackId, usize)> = peer
            .subscriptions
            .values()
            .filter(|s| s.kind == MediaKind::Video)
            .filter_map(|s| Some((s.track, s.target?)))
            .collect();
        for (track, layer) in videos {
            self.request_keyframe(now, track, layer);
        }
    }

    /// Asks a Track's publisher for a keyframe of one layer, at most once
    /// per `KEYFRAME_REQUEST_INTERVAL`.
    pub(super) fn request_keyframe(&mut self, now: Instant, track_id: TrackId, layer: usize) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if !track.take_keyframe_request(now, layer) {
            self.counters.keyframe_requests_throttled += 1;
            return;
        }
        let Some(media_ssrc) = track.layers.get(layer).map(|l| l.ssrc) else {
            return;
        };
        let (publisher, receiver_id) = (track.publisher, track.receiver_id);
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(mut receiver) = peer.pc.rtp_receiver(receiver_id) else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        match receiver.write_rtcp(now, vec![Box::new(pli)]) {
            Ok(()) => {
                self.counters.keyframe_requests_sent += 1;
                self.mark_dirty(publisher);
            }
            Err(err) => tracing::debug!(peer = %publisher, %err, "PLI not sent"),
        }
    }
}
