//! A Peer: one participant's `rtc` connection, with the Tracks it publishes,
//! its Subscriptions and the state of its offer/answer exchange.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rtc::peer_connection::RTCPeerConnection;

use super::ids::{PeerId, TrackId};
use super::quality::{Quality, SampleBase};
use super::subscription::Subscription;

/// One participant.
pub struct Peer {
    /// What it may do (publish, subscribe).
    pub permissions: super::Permissions,
    /// Our id for it.
    pub id: PeerId,
    /// The display name given at join.
    pub name: String,
    /// The room it is in.
    pub room: String,
    /// The SFU-side ICE username fragment; STUN for this Peer carries it.
    pub ufrag: String,
    /// The `rtc` connection.
    pub pc: RTCPeerConnection,
    /// When it joined.
    pub joined_at: Instant,
    /// The client has sent its first offer and got our answer; until then no
    /// Subscriptions are added (they would be attached to the client's own
    /// send transceivers).
    pub negotiated_once: bool,
    /// A server offer is out and its answer has not come back.
    pub awaiting_answer: bool,
    /// The client's last description applied, as it sent it (what `rtc`
    /// holds may have lines removed by `simulcast_sdp`).
    pub remote_sdp: Option<String>,
    /// Subscriptions changed since the last offer.
    pub needs_offer: bool,
    /// Tracks it publishes, by `rtc`'s track id on its connection.
    pub published: HashMap<String, TrackId>,
    /// Its Subscriptions, by the Track delivered.
    pub subscriptions: HashMap<TrackId, Subscription>,
    /// The same Subscriptions, by the local track id RTCP names them by.
    pub subscription_by_local_id: HashMap<String, TrackId>,
    /// Ended Subscriptions whose senders (m-lines, now inactive) wait to
    /// carry the next Track of their kind and codec (`membership.rs`).
    pub spare: Vec<Subscription>,
    /// ICE and DTLS are up: SRTP can be sent.
    pub connected: bool,
    /// A packet has been forwarded to it (its join time is recorded).
    pub first_forwarded: bool,
    /// RTP bytes received from it.
    pub bytes_in: u64,
    /// RTP bytes forwarded to it.
    pub bytes_out: u64,
    /// Its latest live figures.
    pub quality: Quality,
    /// Byte counts at the last sample.
    pub sample_base: SampleBase,
    /// Its own track ids (as in its SDP) that it muted; applied to its
    /// Tracks whenever they appear.
    pub muted: HashSet<String>,
    /// Queued for a drain of its connection's output.
    pub dirty: bool,
    /// Addresses of the TURN relay candidates it trickled: media from one
    /// of them is relayed.
    pub relay_addrs: Vec<std::net::SocketAddr>,
    /// Its last SDP negotiated transport-wide congestion control; without
    /// it, its downlink estimate comes from its REMB messages.
    pub twcc: bool,
    /// Its DTLS ServerHello has gone out: ClientHellos are dropped from
    /// then on (`dtls_guard`).
    pub server_hello_sent: bool,
    /// Its inbound caps (`rate_limit`).
    pub inbound: super::rate_limit::InboundLimiter,
    /// Set for a viewer (WHEP): it receives on the sections it offered and
    /// is never sent an offer (`viewer.rs`).
    pub viewer: Option<super::viewer::Viewer>,
    /// When its connection's next timer is due, as last asked of `rtc`
    /// (the core's timer set holds the same instant).
    pub timer: Option<Instant>,
    /// When something authenticated last arrived from it.
    pub last_inbound: Instant,
    /// Not announced to the room nor listed to newcomers (a WHEP viewer,
    /// a link's sink).
    pub hidden: bool,
    /// The node-to-node link it belongs to, if any (`relay.rs`).
    pub link: Option<super::relay::LinkId>,
    /// Holds its outgoing media to what its downlink carries (`budget.rs`).
    pub budget: super::budget::Budget,
}

impl Peer {
    /// A new Peer that has not negotiated yet.
    pub fn new(
        id: PeerId,
        name: String,
        room: String,
        ufrag: String,
        pc: RTCPeerConnection,
        now: Instant,
    ) -> Self {
        Self {
            id,
            name,
            room,
            ufrag,
            pc,
            joined_at: now,
            negotiated_once: false,
            awaiting_answer: false,
            remote_sdp: None,
            needs_offer: false,
            published: HashMap::new(),
            subscriptions: HashMap::new(),
            subscription_by_local_id: HashMap::new(),
            spare: Vec::new(),
            connected: false,
            first_forwarded: false,
            bytes_in: 0,
            bytes_out: 0,
            quality: Quality::default(),
            sample_base: SampleBase::new(now),
            muted: HashSet::new(),
            dirty: false,
            relay_addrs: Vec::new(),
            twcc: false,
            permissions: super::Permissions::default(),
            server_hello_sent: false,
            inbound: super::rate_limit::InboundLimiter::default(),
            viewer: None,
            timer: None,
            last_inbound: now,
            hidden: false,
            link: None,
            budget: super::budget::Budget::default(),
        }
    }
}
