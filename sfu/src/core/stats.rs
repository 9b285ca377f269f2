//! Counters of one Worker's core. Plain integers, written only by the
//! Worker's thread; the control plane reads a copy (`Snapshot`) on scrape.

use super::forwarder::DropReason;
use super::histogram::{
    Histogram, BANDWIDTH_BOUNDS, FORWARD_LATENCY_BOUNDS, JITTER_BOUNDS, JOIN_TIME_BOUNDS,
    LOSS_BOUNDS, RTT_BOUNDS,
};
use super::ids::MediaKind;
use super::rtcp_count::RtcpCounts;
use super::LeaveReason;

/// Packets and bytes, split by media kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KindCounters {
    /// Audio RTP packets.
    pub audio_packets: u64,
    /// Audio RTP bytes (header and payload).
    pub audio_bytes: u64,
    /// Video RTP packets.
    pub video_packets: u64,
    /// Video RTP bytes (header and payload).
    pub video_bytes: u64,
}

impl KindCounters {
    /// Counts one packet of `bytes` bytes.
    pub fn add(&mut self, kind: MediaKind, bytes: usize) {
        match kind {
            MediaKind::Audio => {
                self.audio_packets += 1;
                self.audio_bytes += bytes as u64;
            }
            MediaKind::Video => {
                self.video_packets += 1;
                self.video_bytes += bytes as u64;
            }
        }
    }
}

/// ICE-TCP connections and their send queues, counted by the Worker's
/// loop (which owns the connections) and added to its snapshots.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TcpCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at accept because too many were open.
    pub refused: u64,
    /// Connections closed because they never passed an ICE check.
    pub unverified: u64,
    /// Packets dropped because a connection's send queue was full.
    pub send_dropped: u64,
    /// Connections open now.
    pub open: u64,
}

/// Everything the core counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// RTP received from publishers (after SRTP).
    pub rtp_in: KindCounters,
    /// RTP handed to subscribers' connections.
    pub rtp_out: KindCounters,
    /// Packets not forwarded to one subscriber, by reason (index: `DropReason::ALL`).
    pub dropped: [u64; DropReason::ALL.len()],
    /// Datagrams received on the shared socket.
    pub datagrams_in: u64,
    /// Datagrams that matched no Peer (unknown ufrag or 5-tuple).
    pub datagrams_unrouted: u64,
    /// Datagrams `rtc` rejected (bad DTLS, SRTP auth failure, ...).
    pub datagrams_rejected: u64,
    /// Packets resent to subscribers from a Track's cache, answering NACKs.
    pub retransmissions: u64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests_sent: u64,
    /// Keyframe requests suppressed by the per-Track throttle.
    pub keyframe_requests_throttled: u64,
    /// PLI/FIR received from subscribers.
    pub keyframe_requests_received: u64,
    /// Peers that joined.
    pub joins: u64,
    /// Peers that left, by `LeaveReason::ALL` index.
    pub leaves: [u64; LeaveReason::ALL.len()],
    /// Connections that came up, by transport: udp, tcp, relay.
    pub ice_connections: [u64; 3],
    /// Simulcast target-layer changes of subscriptions (including pauses).
    pub layer_changes: u64,
    /// Layer switches carried out at a keyframe.
    pub layer_switches: u64,
    /// Dynacast messages sent to publishers.
    pub dynacast_changes: u64,
    /// DTLS ClientHellos dropped after the ServerHello went out (`dtls_guard`).
    pub dtls_repeats_dropped: u64,
    /// RTP from Peers not allowed to publish, dropped (`permissions.rs`).
    pub rtp_unpermitted: u64,
    /// Panics contained by the Worker (`containment.rs`).
    pub panics: u64,
    /// Datagrams and frames dropped before or instead of reaching a Peer's
    /// connection, by reason (index: `InboundDrop::ALL`).
    pub inbound_dropped: [u64; InboundDrop::ALL.len()],
}

/// Why an inbound datagram (or ICE-TCP frame) was dropped by the core
/// (`sfu_inbound_dropped_packets_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundDrop {
    /// Not STUN, from an address no Peer has pinned.
    UnknownAddress,
    /// STUN whose USERNAME names no Peer's ufrag (or has none).
    UnknownUfrag,
    /// `rtc` refused it: failed STUN integrity, bad DTLS, SRTP
    /// authentication failure or replay, RTP before DTLS completed.
    Rejected,
    /// A DTLS ClientHello repeated after our ServerHello (`dtls_guard`).
    DtlsRepeat,
    /// Over its Peer's inbound bitrate or packet-rate cap (`rate_limit`).
    RateLimit,
    /// An RTCP packet about SSRCs its Peer does not send or receive
    /// (`rtcp_check`), counted per packet.
    ForeignRtcp,
}

impl InboundDrop {
    /// Every reason, in counter order.
    pub const ALL: [InboundDrop; 6] = [
        InboundDrop::UnknownAddress,
        InboundDrop::UnknownUfrag,
        InboundDrop::Rejected,
        InboundDrop::DtlsRepeat,
        InboundDrop::RateLimit,
        InboundDrop::ForeignRtcp,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundDrop::UnknownAddress => "unknown_address",
            InboundDrop::UnknownUfrag => "unknown_ufrag",
            InboundDrop::Rejected => "rejected",
            InboundDrop::DtlsRepeat => "dtls_repeat",
            InboundDrop::RateLimit => "rate_limit",
            InboundDrop::ForeignRtcp => "foreign_rtcp",
        }
    }
}

impl Counters {
    /// Counts one Peer leaving.
    pub fn leave(&mut self, reason: LeaveReason) {
        self.leaves_by(reason, 1);
    }

    /// Counts `n` Peers leaving.
    pub fn leaves_by(&mut self, reason: LeaveReason, n: u64) {
        if let Some(i) = LeaveReason::ALL.iter().position(|r| *r == reason) {
            self.leaves[i] += n;
        }
    }

    /// Counts one inbound datagram (or RTCP packet) dropped.
    pub fn drop_inbound(&mut self, reason: InboundDrop) {
        self.inbound_dropped[reason as usize] += 1;
    }

    /// Counts one dropped packet.
    pub fn drop(&mut self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason) {
            self.dropped[i] += 1;
        }
    }
}

/// Counters plus the current sizes, as the control plane sees them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// Rooms with at least one Peer.
    pub rooms: u64,
    /// Connected or connecting Peers.
    pub peers: u64,
    /// Of those, Peers of node-to-node links (`relay.rs`).
    pub relay_peers: u64,
    /// Published audio Tracks.
    pub audio_tracks: u64,
    /// Published video Tracks.
    pub video_tracks: u64,
    /// Subscriptions (one Track delivered to one Peer).
    pub subscriptions: u64,
    /// The running totals.
    pub counters: Counters,
    /// RTCP by type, and RTP on the wire.
    pub rtcp: RtcpCounts,
    /// The distributions.
    pub histograms: Histograms,
    /// ICE-TCP connections (filled in by the Worker's loop).
    pub ice_tcp: TcpCounters,
    /// Simulcast video Subscriptions by the layer forwarded now: q, h, f.
    pub video_layers: [u64; 3],
    /// Video Subscriptions paused for lack of bandwidth.
    pub paused_videos: u64,
}

/// The distributions a Worker keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Histograms {
    /// Datagram received to forwarded datagram sent, sampled (seconds).
    pub forward_latency: Histogram,
    /// Signaling join to the first packet forwarded to the Peer (seconds).
    pub join_time: Histogram,
    /// Subscribers' round-trip time from their receiver reports (seconds).
    pub subscriber_rtt: Histogram,
    /// Subscribers' interarrival jitter from their receiver reports (seconds).
    pub subscriber_jitter: Histogram,
    /// Subscribers' fraction lost from their receiver reports (0–1).
    pub subscriber_loss: Histogram,
    /// Subscribers' downlink bandwidth estimate (bits/s), sampled every 2 s.
    pub subscriber_bandwidth: Histogram,
}

impl Default for Histograms {
    fn default() -> Self {
        Self {
            forward_latency: Histogram::new(FORWARD_LATENCY_BOUNDS),
            join_time: Histogram::new(JOIN_TIME_BOUNDS),
            subscriber_rtt: Histogram::new(RTT_BOUNDS),
            subscriber_jitter: Histogram::new(JITTER_BOUNDS),
            subscriber_loss: Histogram::new(LOSS_BOUNDS),
            subscriber_bandwidth: Histogram::new(BANDWIDTH_BOUNDS),
        }
    }
}

impl Histograms {
    /// Adds another Worker's distributions.
    pub fn merge(&mut self, other: &Histograms) {
        self.forward_latency.merge(&other.forward_latency);
        self.join_time.merge(&other.join_time);
        self.subscriber_rtt.merge(&other.subscriber_rtt);
        self.subscriber_jitter.merge(&other.subscriber_jitter);
        self.subscriber_loss.merge(&other.subscriber_loss);
        self.subscriber_bandwidth.merge(&other.subscriber_bandwidth);
    }
}

impl Snapshot {
    /// Adds another Worker's snapshot into this one.
    pub fn merge(&mut self, other: &Snapshot) {
        self.rooms += other.rooms;
        for (x, y) in self.video_layers.iter_mut().zip(other.video_layers) {
            *x += y;
        }
        self.paused_videos += other.paused_videos;
        let (t, o) = (&mut self.ice_tcp, &other.ice_tcp);
        t.accepted += o.accepted;
        t.refused += o.refused;
        t.unverified += o.unverified;
        t.send_dropped += o.send_dropped;
        t.open += o.open;
        self.peers += other.peers;
        self.relay_peers += other.relay_peers;
        self.audio_tracks += other.audio_tracks;
        self.video_tracks += other.video_tracks;
        self.subscriptions += other.subscriptions;
        let (a, b) = (&mut self.counters, &other.counters);
        for (x, y) in [(&mut a.rtp_in, &b.rtp_in), (&mut a.rtp_out, &b.rtp_out)] {
            x.audio_packets += y.audio_packets;
            x.audio_bytes += y.audio_bytes;
            x.video_packets += y.video_packets;
            x.video_bytes += y.video_bytes;
        }
        for (x, y) in a.dropped.iter_mut().zip(b.dropped.iter()) {
            *x += y;
        }
        a.datagrams_in += b.datagrams_in;
        a.datagrams_unrouted += b.datagrams_unrouted;
        a.datagrams_rejected += b.datagrams_rejected;
        a.keyframe_requests_sent += b.keyframe_requests_sent;
        a.retransmissions += b.retransmissions;
        a.keyframe_requests_throttled += b.keyframe_requests_throttled;
        a.keyframe_requests_received += b.keyframe_requests_received;
        a.joins += b.joins;
        a.layer_changes += b.layer_changes;
        a.layer_switches += b.layer_switches;
        a.dynacast_changes += b.dynacast_changes;
        a.dtls_repeats_dropped += b.dtls_repeats_dropped;
        a.rtp_unpermitted += b.rtp_unpermitted;
        a.panics += b.panics;
        for (x, y) in a.inbound_dropped.iter_mut().zip(b.inbound_dropped.iter()) {
            *x += y;
        }
        for (x, y) in a.leaves.iter_mut().zip(b.leaves.iter()) {
            *x += y;
        }
        for (x, y) in a.ice_connections.iter_mut().zip(b.ice_connections.iter()) {
            *x += y;
        }
        for (x, y) in self.rtcp.rtcp_in.iter_mut().zip(other.rtcp.rtcp_in.iter()) {
            *x += y;
        }
        for (x, y) in self
            .rtcp
            .rtcp_out
            .iter_mut()
            .zip(other.rtcp.rtcp_out.iter())
        {
            *x += y;
        }
        self.rtcp.rtp_out_wire += other.rtcp.rtp_out_wire;
        self.histograms.merge(&other.histograms);
    }

    /// Packets resent to subscribers answering their NACKs.
    pub fn retransmissions(&self) -> u64 {
        self.counters.retransmissions
    }
}
