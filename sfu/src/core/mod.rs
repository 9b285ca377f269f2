//! The sans-IO core of one Worker: its Rooms, Peers, Tracks and
//! Subscriptions, with no sockets, no threads and no tokio. Time comes in as
//! `now`; datagrams come in through [`Core::handle_datagram`] and go out
//! through [`Core::poll_transmit`]; messages for a participant's signaling
//! socket go out through [`Core::poll_output`].
//!
//! The packet path through it: `handle_datagram` (`ingress.rs`) → demux (STUN by ufrag,
//! else by 5-tuple) → the Peer's `rtc` connection (ICE, DTLS, SRTP, RTCP) →
//! an RTP packet of a Track → for each Subscription, `Forwarder::forward` →
//! the subscriber's `rtc` sender encrypts → `poll_transmit`.

mod admin;
pub mod audio_level;
pub mod budget;
pub mod codecs;
pub mod containment;
pub mod dedup;
pub mod deliver_rtcp;
pub mod demux;
pub mod dtls_guard;
mod fanout_step;
pub mod forwarder;
pub mod histogram;
pub mod ids;
mod ingress;
pub mod keyframe;
pub mod layers;
mod media;
mod media_consent;
mod membership;
pub mod nack_cache;
mod negotiation;
pub mod peer;
pub mod peer_config;
mod permissions;
pub mod picture;
pub mod quality;
pub mod rate_limit;
pub mod relay;
pub mod renumber;
mod reports;
pub mod room;
mod room_events;
pub mod routes;
pub mod rtcp_check;
pub mod rtcp_count;
mod simulcast;
mod simulcast_sdp;
pub mod stats;
pub mod subscription;
pub mod track;
pub mod viewer;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;
use rtc::shared::TransportProtocol;

pub use admin::{ParticipantStats, RoomStats, VideoStats};
pub use forwarder::{DropReason, Forwarder};
pub use ids::{MediaKind, PeerId, TrackId};
pub use permissions::Permissions;
pub use stats::{Counters, Histograms, InboundDrop, Snapshot};

use peer::Peer;
use room::Room;
use routes::Routes;
use rtcp_count::RtcpCounts;
use track::Track;

/// Settings of a core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The UDP addresses advertised as host candidates: the shared UDP
    /// port on each public address (several when the SFU has, say, an
    /// IPv4 and an IPv6 address). Never empty. `rtc` is told a datagram
    /// arrived on the first of them of the sender's address family.
    pub udp_addrs: Vec<SocketAddr>,
    /// The ICE-TCP (passive, RFC 6544) addresses advertised, at a lower
    /// priority than UDP so that browsers use them only when UDP fails.
    /// Empty when ICE-TCP is off.
    pub tcp_addrs: Vec<SocketAddr>,
    /// A Peer whose client stops answering is removed after this long
    /// (ICE consent freshness, RFC 7675).
    pub consent_timeout: Duration,
    /// Count RTCP datagrams by type and media datagrams on the wire
    /// (`sfu_rtcp_packets_total`, `sfu_retransmissions_total`). On by
    /// default; off only to measure what the counting costs.
    pub count_rtcp: bool,
    /// Caps on each Peer's inbound bitrate and packet rate.
    pub inbound_limits: rate_limit::InboundLimits,
    /// Packets each Track keeps to answer subscribers' NACKs.
    pub cache_sizes: track::CacheSizes,
    /// The SRTP protection profiles a client may choose from
    /// ([`peer_config::DEFAULT_SRTP_PROFILES`]: AES-128-GCM only). `rtc`
    /// takes the first of the client's list that is also here.
    pub srtp_profiles: Vec<rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile>,
    /// The Peer and Track ids this core hands out: `first`, then every
    /// `step`-th, so that the cores of several Workers never share one
    /// (and a Peer id tells which Worker holds the Peer).
    pub ids: IdSpace,
    /// Subscriber Peers encrypted for per step of a fan-out
    /// (`fanout_step.rs`): a received datagram's handling stops after this
    /// many, and [`Core::continue_fanout`] does the next ones, so that the
    /// driver sends between steps. `None`: all at once.
    pub fanout_step: Option<usize>,
}

/// Ids `first`, `first + step`, `first + 2 * step`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSpace {
    /// The first id (at least 1).
    pub first: u64,
    /// The distance between two ids (at least 1).
    pub step: u64,
}

impl Default for IdSpace {
    fn default() -> Self {
        Self { first: 1, step: 1 }
    }
}

/// How long a silent client keeps its Peer by default.
pub const DEFAULT_CONSENT_TIMEOUT: Duration = Duration::from_secs(15);

impl CoreConfig {
    /// The default settings for a core advertising one UDP address,
    /// `public_addr`, and no ICE-TCP.
    pub fn new(public_addr: SocketAddr) -> Self {
        Self {
            udp_addrs: vec![public_addr],
            tcp_addrs: Vec::new(),
            consent_timeout: DEFAULT_CONSENT_TIMEOUT,
            count_rtcp: true,
            inbound_limits: rate_limit::InboundLimits::default(),
            cache_sizes: track::CacheSizes::default(),
            srtp_profiles: peer_config::DEFAULT_SRTP_PROFILES.to_vec(),
            ids: IdSpace::default(),
            fanout_step: None,
        }
    }

    /// The advertised address of `protocol` that `rtc` is told a packet
    /// from `source` arrived on: the first of the same address family, or
    /// else the first.
    fn local_addr(&self, protocol: TransportProtocol, source: SocketAddr) -> Option<SocketAddr> {
        let addrs = match protocol {
            TransportProtocol::TCP => &self.tcp_addrs,
            _ => &self.udp_addrs,
        };
        addrs
            .iter()
            .find(|a| a.is_ipv4() == source.is_ipv4())
            .or(addrs.first())
            .copied()
    }
}

/// A datagram to send on the shared socket.
#[derive(Debug)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// Over UDP, or over the ICE-TCP connection from `destination`.
    pub protocol: TransportProtocol,
    /// What.
    pub data: BytesMut,
    /// When the datagram that caused it arrived, if one did (for the
    /// forwarding-latency histogram).
    pub received_at: Option<Instant>,
    /// It is SRTP media (not SRTCP, DTLS or STUN).
    pub media: bool,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Its id.
    pub peer_id: PeerId,
    /// Its display name.
    pub name: String,
    /// The Tracks it publishes.
    pub tracks: Vec<(TrackId, MediaKind)>,
    /// Those of them it has muted.
    pub muted: Vec<TrackId>,
}

/// The answer to a successful join.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The new Peer's id.
    pub peer_id: PeerId,
    /// Everyone already in the room.
    pub participants: Vec<Participant>,
}

/// Why a Peer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The client left or closed its signaling socket.
    Normal,
    /// Its media connection was up and then lost (ICE consent timed out).
    Timeout,
    /// An administrator removed it.
    Kicked,
    /// Its media connection never came up (ICE or DTLS failed), or its
    /// signaling could not keep up.
    Error,
    /// Handling its input panicked, or the Worker started over after a
    /// panic (`containment.rs`).
    Fault,
}

impl LeaveReason {
    /// Every reason, in counter order.
    pub const ALL: [LeaveReason; 5] = [
        LeaveReason::Normal,
        LeaveReason::Timeout,
        LeaveReason::Kicked,
        LeaveReason::Error,
        LeaveReason::Fault,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Normal => "normal",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Kicked => "kicked",
            LeaveReason::Error => "error",
            LeaveReason::Fault => "fault",
        }
    }
}

/// A message for one participant's signaling socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The SFU's answer to the client's offer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A server-initiated renegotiation.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// Someone entered the room.
    ParticipantJoined {
        /// Who.
        peer_id: PeerId,
        /// Their display name.
        name: String,
    },
    /// Someone left the room.
    ParticipantLeft {
        /// Who.
        peer_id: PeerId,
    },
    /// A Track started arriving at the SFU.
    TrackPublished {
        /// Its publisher.
        peer_id: PeerId,
        /// The Track.
        track_id: TrackId,
        /// Audio or video.
        kind: MediaKind,
    },
    /// A Track ended.
    TrackUnpublished {
        /// Its publisher.
        peer_id: PeerId,
        /// The Track.
        track_id: TrackId,
    },
    /// The core removed this Peer (its connection failed); the socket should close.
    Closed {
        /// Why, for people.
        reason: String,
    },
    /// A publisher muted or unmuted a Track.
    TrackMuted {
        /// The publisher.
        peer_id: PeerId,
        /// The Track.
        track_id: TrackId,
        /// Muted now.
        muted: bool,
    },
    /// A message from another participant of the room, relayed as is.
    Message {
        /// Who sent it.
        from: PeerId,
        /// Their display name.
        name: String,
        /// What they sent (validated by the control plane).
        payload: String,
    },
    /// The room's active speaker changed.
    ActiveSpeaker {
        /// Who speaks now.
        peer_id: PeerId,
    },
    /// An administrator removed this Peer; the socket should close.
    Removed {
        /// Why, for people.
        reason: String,
    },
    /// This subscriber's video of a Track paused for lack of bandwidth, or
    /// resumed.
    VideoPaused {
        /// The Track.
        track_id: TrackId,
        /// Paused now.
        paused: bool,
    },
    /// To a link's ghost (`relay.rs`): the most any subscriber here wants
    /// of one of the videos it publishes, for the other node's sink to
    /// ask its home for. Sent when it changes.
    VideoDemand {
        /// The ghost's own track id (as in its SDP).
        track: String,
        /// The highest quality level wanted (0 = lowest; `None`: nobody
        /// here shows it).
        max_level: Option<usize>,
    },
    /// Dynacast: the simulcast layers of one of this publisher's tracks
    /// that someone receives; the others should stop being encoded.
    PublishLayers {
        /// The publisher's own track id (as in its SDP).
        track: String,
        /// The rids to keep sending.
        active: Vec<String>,
    },
}

/// A [`Signal`] addressed to a Peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The recipient.
    pub peer: PeerId,
    /// The message.
    pub signal: Signal,
}

/// What a control-plane request to the core can fail with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    /// No such Peer (it left, or never joined).
    #[error("unknown peer")]
    UnknownPeer,
    /// The SDP does not parse or cannot be applied.
    #[error("bad SDP: {0}")]
    BadSdp(String),
    /// The ICE candidate does not parse.
    #[error("bad ICE candidate: {0}")]
    BadCandidate(String),
    /// An answer came with no offer outstanding.
    #[error("no offer is outstanding")]
    NoOfferOutstanding,
    /// The Peer receives no such Track.
    #[error("unknown track")]
    UnknownTrack,
    /// `rtc` failed in a way that is not the client's fault.
    #[error("media engine: {0}")]
    Rtc(String),
    /// The room was placed on another Worker meanwhile; ask again.
    #[error("room is on another media worker")]
    RoomElsewhere,
}

/// A map keyed by the core's own ids ([`PeerId`], [`TrackId`]).
type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Hashes the core's own sequential ids with one multiply (as FxHash does).
/// The core assigns them; nobody outside chooses them, so SipHash's
/// protection against chosen keys buys nothing, and the packet path looks
/// Peers up several times per subscriber per packet.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(Self::K);
    }
}

/// The state of one Worker's rooms.
pub struct Core {
    config: CoreConfig,
    peers: IdMap<PeerId, Peer>,
    rooms: HashMap<String, Room>,
    tracks: IdMap<TrackId, Track>,
    by_ufrag: HashMap<String, PeerId>,
    routes: Routes,
    next_peer: u64,
    next_track: u64,
    transmits: VecDeque<Transmit>,
    outputs: VecDeque<Output>,
    dirty: Vec<PeerId>,
    counters: Counters,
    histograms: Histograms,
    rtcp: RtcpCounts,
    /// When the next quality sample is due.
    next_sample: Instant,
    /// When the rooms' active speakers are next decided.
    next_speaker_check: Instant,
    /// When layers are next chosen (simulcast and dynacast).
    next_layer_round: Instant,
    /// Arrival time of the datagram being handled, stamped on what it causes.
    ingress: Option<Instant>,
    /// A fan-out stopped after a step: the arrival time of its datagram
    /// (`fanout_step.rs`).
    unfinished: Option<Instant>,
    /// Wall-clock NTP time, for round-trip times from receiver reports.
    wall_clock: reports::WallClock,
    /// RTP packets `rtc` has handed over (wrapping): a media datagram that
    /// does not move it was discarded inside `rtc`.
    rtp_yielded: u32,
    /// Every Peer's next `rtc` timer, earliest first, so that the driver's
    /// question "when next?" (once per loop turn) does not ask each of
    /// hundreds of connections. An entry whose Peer is gone, or whose
    /// `Peer::timer` differs, is stale and skipped when it comes due.
    timers: BTreeSet<(Instant, PeerId)>,
    /// Draining forwarded media only: a subscriber that was just written
    /// RTP is not asked for its timer again, once per packet. Writing RTP
    /// moves no `rtc` timer forward except the sender-report timer, armed
    /// by a stream's first packet; that one is picked up at the
    /// subscriber's next inbound datagram (receiver reports, TWCC feedback
    /// and consent checks come every few hundred ms) or sampling round.
    fanout_flush: bool,
    /// RTCP messages `rtc` has handed over (wrapping), likewise.
    rtcp_yielded: u32,
}

impl Core {
    /// An empty core.
    pub fn new(config: CoreConfig, now: Instant) -> Self {
        let first_id = config.ids.first.max(1);
        Self {
            config,
            peers: IdMap::default(),
            rooms: HashMap::new(),
            tracks: IdMap::default(),
            by_ufrag: HashMap::new(),
            routes: Routes::default(),
            next_peer: first_id,
            next_track: first_id,
            transmits: VecDeque::new(),
            outputs: VecDeque::new(),
            dirty: Vec::new(),
            counters: Counters::default(),
            histograms: Histograms::default(),
            rtcp: RtcpCounts::default(),
            next_sample: now + quality::SAMPLE_INTERVAL,
            next_speaker_check: now + audio_level::SPEAKER_INTERVAL,
            next_layer_round: now + simulcast::LAYER_INTERVAL,
            ingress: None,
            unfinished: None,
            wall_clock: reports::WallClock::new(now),
            rtp_yielded: 0,
            timers: BTreeSet::new(),
            fanout_flush: false,
            rtcp_yielded: 0,
        }
    }

    /// Counts a datagram the IO driver dropped after the core let it go
    /// (`DropReason::SocketFull`).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.counters.drop(reason);
    }

    /// Records one forwarding latency: from a datagram's arrival to the
    /// send of a datagram it caused.
    pub fn observe_forward_latency(&mut self, latency: std::time::Duration) {
        self.histograms
            .forward_latency
            .observe(latency.as_secs_f64());
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// How many datagrams wait in [`Core::poll_transmit`].
    pub fn pending_transmits(&self) -> usize {
        self.transmits.len()
    }

    /// The next signaling message for a participant, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Core::handle_timeout`] must be called next: the earliest
    /// Peer timer, or the core's own sampling round while anyone is there
    /// (the other rounds ride on whichever comes first). Cheap (no Peer is
    /// visited): the driver asks on every loop turn.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let peer = self.timers.first().map(|(t, _)| *t);
        let own = (!self.peers.is_empty()).then_some(self.next_sample);
        peer.into_iter().chain(own).min()
    }

    /// Asks `rtc` when Peer `id`'s connection next needs
    /// `handle_timeout`, and files it in `timers`.
    fn refresh_timer(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let next = peer.pc.poll_timeout();
        if next != peer.timer {
            if let Some(old) = peer.timer {
                self.timers.remove(&(old, id));
            }
            if let Some(new) = next {
                self.timers.insert((new, id));
            }
            peer.timer = next;
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_sample {
            // Every Peer's timer asked afresh: a timer that moved without a
            // drain (a command on its connection) is found here at the latest.
            let ids: Vec<PeerId> = self.peers.keys().copied().collect();
            for id in ids {
                self.refresh_timer(id);
            }
            let expired = self.routes.expire(now);
            if expired > 0 {
                tracing::debug!(expired, "stale addresses unpinned");
            }
            self.sample_quality(now);
            self.next_sample = now + quality::SAMPLE_INTERVAL;
        }
        if now >= self.next_speaker_check {
            self.update_speakers(now);
            self.next_speaker_check = now + audio_level::SPEAKER_INTERVAL;
        }
        if now >= self.next_layer_round {
            self.expire_media_consent(now);
            self.layer_round(now);
            self.next_layer_round = now + simulcast::LAYER_INTERVAL;
        }
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(peer) = self.peers.get_mut(&id) {
                if peer.timer == Some(at) {
                    // Asked again after its drain below.
                    peer.timer = None;
                    due.push(id);
                }
            }
        }
        for id in due {
            if let Some(peer) = self.peers.get_mut(&id) {
                if let Err(err) = peer.pc.handle_timeout(now) {
                    tracing::debug!(peer = %id, %err, "timeout handling failed");
                }
                self.mark_dirty(id);
            }
        }
        self.flush(now);
    }

    /// Counters and current sizes.
    pub fn snapshot(&self) -> Snapshot {
        let (mut audio_tracks, mut video_tracks) = (0, 0);
        for track in self.tracks.values() {
            match track.kind {
                MediaKind::Audio => audio_tracks += 1,
                MediaKind::Video => video_tracks += 1,
            }
        }
        let (mut video_layers, mut paused_videos) = ([0u64; 3], 0u64);
        for sub in self.peers.values().flat_map(|p| p.subscriptions.values()) {
            if sub.paused() {
                paused_videos += 1;
            }
            let rank = sub
                .layer
                .zip(self.tracks.get(&sub.track))
                .filter(|(_, t)| t.is_simulcast())
                .and_then(|(l, t)| t.layers.get(l))
                .map(|l| usize::from(layers::rank(&l.rid).min(2)));
            if let Some(rank) = rank {
                video_layers[rank] += 1;
            }
        }
        Snapshot {
            video_layers,
            paused_videos,
            rooms: self.rooms.len() as u64,
            peers: self.peers.len() as u64,
            relay_peers: self.relay_peers(),
            audio_tracks,
            video_tracks,
            subscriptions: self
                .peers
                .values()
                .map(|p| p.subscriptions.len() as u64)
                .sum(),
            counters: self.counters.clone(),
            rtcp: self.rtcp.clone(),
            histograms: self.histograms.clone(),
            ice_tcp: stats::TcpCounters::default(),
        }
    }

    /// The Peers of a room, in join order (empty if there is no such room).
    pub fn room_peers(&self, room: &str) -> Vec<PeerId> {
        self.rooms
            .get(room)
            .map(|r| r.peers.clone())
            .unwrap_or_default()
    }

    fn mark_dirty(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn emit(&mut self, peer: PeerId, signal: Signal) {
        // A Peer of a link never hears of its own link's Peers (`relay.rs`).
        if signal
            .subject()
            .is_some_and(|subject| self.linked(peer, subject))
        {
            return;
        }
        self.outputs.push_back(Output { peer, signal });
    }

    /// Drains every Peer whose connection has pending output (the rest of
    /// an unfinished fan-out included).
    fn flush(&mut self, now: Instant) {
        self.drain_dirty(now, usize::MAX);
        self.unfinished = None;
    }

    /// Drains at most `limit` of the Peers whose connections have pending
    /// output; returns whether none is left.
    fn drain_dirty(&mut self, now: Instant, limit: usize) -> bool {
        // While a datagram is handled, the Peers drained here are the ones
        // it made the core write to (its own connection was drained first).
        self.fanout_flush = self.ingress.is_some();
        let mut drained = 0;
        while drained < limit {
            let Some(id) = self.dirty.pop() else {
                break;
            };
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.dirty = false;
            }
            let _ = self.drain(now, id, None);
            drained += 1;
        }
        self.fanout_flush = false;
        self.dirty.is_empty()
    }

    /// Takes everything one Peer's connection has produced: application
    /// messages (RTP to forward, RTCP to act on), events, and datagrams.
    /// Returns whether `pin` was pinned.
    fn drain(&mut self, now: Instant, id: PeerId, pin: Option<routes::RouteKey>) -> bool {
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return false;
            };
            let Some(msg) = peer.pc.poll_read() else {
                break;
            };
            match msg.message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    self.rtp_yielded = self.rtp_yielded.wrapping_add(1);
                    self.on_rtp(now, id, &track_id, packet)
                }
                RTCMessage::RtcpPacket(track_id, packets) => {
                    self.rtcp_yielded = self.rtcp_yielded.wrapping_add(1);
                    self.on_rtcp(now, id, &track_id, &packets)
                }
                _ => {}
            }
        }
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return false;
            };
            let Some(event) = peer.pc.poll_event() else {
                break;
            };
            self.on_event(now, id, event);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let mut pinned = false;
        while let Some(out) = peer.pc.poll_write() {
            if !peer.server_hello_sent && dtls_guard::is_server_hello(&out.message) {
                peer.server_hello_sent = true;
            }
            let destination = out.transport.peer_addr;
            let protocol = out.transport.transport_protocol;
            if pin == Some((protocol, destination)) {
                pinned = true;
            }
            let media = if self.config.count_rtcp {
                self.rtcp.count_out(&out.message)
            } else {
                rtcp_count::classify(&out.message) == rtcp_count::DatagramKind::Media
            };
            self.transmits.push_back(Transmit {
                destination,
                protocol,
                data: out.message,
                received_at: self.ingress,
                media,
            });
        }
        if let (true, Some(key)) = (pinned, pin) {
            self.routes.pin(key, id, now);
            tracing::debug!(peer = %id, protocol = ?key.0, addr = %key.1, "address pinned");
        }
        if !self.fanout_flush {
            self.refresh_timer(id);
        }
        pinned
    }

    fn on_event(&mut self, now: Instant, id: PeerId, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.publish(now, id, init);
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                let track = self
                    .peers
                    .get(&id)
                    .and_then(|p| p.published.get(&track_id))
                    .copied();
                if let Some(track) = track {
                    self.unpublish(now, track);
                }
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                tracing::debug!(peer = %id, %state, "connection state");
                // Under media consent, `rtc` calls a client that sends no
                // STUN (or sends it on another pair) disconnected and then
                // connected again at its next check: no new connection.
                let again = self.peers.get(&id).is_some_and(|p| p.connected);
                if matches!(state, RTCPeerConnectionState::Connected) && !again {
                    self.on_connected(now, id);
                }
                if matches!(state, RTCPeerConnectionState::Failed) {
                    let was_connected = self.peers.get(&id).is_some_and(|p| p.connected);
                    let (reason, text) = if was_connected {
                        (LeaveReason::Timeout, "media connection lost")
                    } else {
                        (LeaveReason::Error, "media connection failed")
                    };
                    self.emit(
                        id,
                        Signal::Closed {
                            reason: text.to_owned(),
                        },
                    );
                    self.remove_peer(now, id, reason);
                }
            }
            _ => {}
        }
    }
}
