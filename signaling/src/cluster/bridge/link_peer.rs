//! One Peer of a bridge on one node: a sink or a ghost, each a `webrtc`
//! PeerConnection signaled over the node's own `/ws` like any client,
//! joined with a relay token (`tokens.rs`) that makes it a Peer of the
//! bridge's link.
//!
//! A sink reports the room as its node sees it (participants coming and
//! going, their tracks, their chat); a ghost takes commands (publish this
//! remote track, stop publishing one, say this in the chat) and
//! renegotiates as a browser adding a track would.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

use super::pipe::{self, Direction, PendingPipe};
use super::RelayMetrics;
use crate::auth::{Grants, Keys, TokenRequest};
use crate::client::peer::{
    answer_offer, apply_answer, peer_connection, send_offer, with_audio_level, AUDIO_LEVEL_URI,
};
use crate::client::{ServerMsg, Signaling};
use crate::cluster::tokens::{sign_relay, RelayRole};

/// How long a Peer waits for its node to say goodbye.
const LEAVE_WAIT: Duration = Duration::from_secs(1);
/// How long its connection may take to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which node of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The room's home node.
    Home,
    /// This node.
    Here,
}

impl Side {
    /// The node at the other end.
    pub fn other(self) -> Self {
        match self {
            Self::Home => Self::Here,
            Self::Here => Self::Home,
        }
    }

    /// The direction of media that ends on this side.
    pub fn direction_into(self) -> Direction {
        match self {
            Self::Here => Direction::In,
            Self::Home => Direction::Out,
        }
    }
}

/// A node a Peer joins.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which end.
    pub side: Side,
    /// Its id (relay tokens name it).
    pub node: String,
    /// Its signaling WebSocket URL.
    pub url: String,
}

/// What a bridge shares with its Peers.
pub struct LinkContext {
    /// Signs access and relay tokens.
    pub keys: Keys,
    /// The room.
    pub room: String,
    /// The link id.
    pub link: u64,
    /// Where connections bind.
    pub bind_ip: IpAddr,
    /// The relay metrics.
    pub metrics: Arc<RelayMetrics>,
}

/// What a Peer tells its bridge.
pub enum LinkEvent {
    /// A participant of the sink's node (in `joined`, or `participantJoined`).
    Participant { peer: String, name: String },
    /// It left.
    Left { peer: String },
    /// The sink receives one of its tracks (with the audio level
    /// extension id of the sink's connection, if negotiated).
    Track {
        peer: String,
        track: Arc<dyn TrackRemote>,
        audio_level: Option<u8>,
    },
    /// It stopped publishing a track.
    Unpublished { peer: String, track: String },
    /// It said something in the chat.
    Chat { peer: String, text: String },
    /// A ghost's node wants at most this layer of one of its videos
    /// (`None`: none).
    Demand {
        track: String,
        max_layer: Option<String>,
    },
    /// The Peer's signaling or connection failed.
    Down { reason: String },
}

/// What a bridge tells a ghost.
pub enum Command {
    /// Publish this track (received by the other side's sink).
    AddTrack {
        track: Arc<dyn TrackRemote>,
        audio_level: Option<u8>,
    },
    /// Stop publishing the track of this id.
    RemoveTrack(String),
    /// Say this in the chat.
    Chat(String),
    /// A sink: ask for at most this layer of a track it receives.
    Prefer {
        track: String,
        max_layer: Option<String>,
    },
}

/// A running Peer.
pub struct LinkPeer {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl LinkPeer {
    /// Starts a Peer of `role` named `name` on `target`; its events go to
    /// `events` tagged with the target's side.
    pub fn spawn(
        ctx: &Arc<LinkContext>,
        target: &Target,
        role: RelayRole,
        name: &str,
        events: &mpsc::UnboundedSender<(Side, LinkEvent)>,
    ) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let (ctx, target, name, events) = (
            Arc::clone(ctx),
            target.clone(),
            name.to_owned(),
            events.clone(),
        );
        let task = tokio::spawn(async move {
            let side = target.side;
            if let Err(reason) = session(&ctx, &target, role, &name, &events, rx).await {
                let _ = events.send((side, LinkEvent::Down { reason }));
            }
        });
        Self { commands, task }
    }

    /// Sends a command (dropped if the Peer has ended).
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// Leaves: the node is told, and the connection closed.
    pub async fn close(self) {
        drop(self.commands);
        let mut task = self.task;
        if tokio::time::timeout(LEAVE_WAIT * 3, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Callbacks of the connection's driver, turned into channel sends.
struct Handler {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    states: mpsc::UnboundedSender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(candidate) = event.candidate.to_json() {
            let _ = self.candidates.send(candidate);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.states.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

struct Connection {
    pc: Arc<dyn PeerConnection>,
    candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    states: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

async fn connection(bind_ip: IpAddr) -> Result<Connection, String> {
    let (candidates_tx, candidates) = mpsc::unbounded_channel();
    let (states_tx, states) = mpsc::unbounded_channel();
    let (tracks_tx, tracks) = mpsc::unbounded_channel();
    let handler = Arc::new(Handler {
        candidates: candidates_tx,
        states: states_tx,
        tracks: tracks_tx,
    });
    let mut engine = MediaEngine::default();
    engine
        .register_default_codecs()
        .map_err(|e| format!("codecs: {e}"))?;
    with_audio_level(&mut engine)?;
    // Keyframe requests reach a ghost's tracks (to be carried back).
    let pc = peer_connection(bind_ip, engine, handler).await?;
    Ok(Connection {
        pc,
        candidates,
        states,
        tracks,
    })
}

/// The audio level extension id in an SDP, if negotiated.
fn audio_level_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let id = id.split('/').next()?;
        (uri.trim() == AUDIO_LEVEL_URI).then(|| id.parse().ok())?
    })
}

fn access_token(ctx: &LinkContext, role: RelayRole) -> Result<String, String> {
    let identity = format!("relay-{:016x}-{}", ctx.link, rand::random::<u32>());
    ctx.keys
        .mint(&TokenRequest {
            room: ctx.room.clone(),
            identity,
            name: String::new(),
            grants: Grants {
                can_publish: role == RelayRole::Ghost,
                can_subscribe: role == RelayRole::Sink,
                can_publish_data: true,
                room_admin: false,
                room_create: true,
            },
            ttl: Duration::from_secs(3600),
        })
        .map_err(|e| e.to_string())
}

/// Sleeps until `deadline` (forever without one).
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The negotiation state of a Peer's connection.
struct Negotiation {
    /// Our offer is out, waiting for its answer.
    offering: bool,
    /// Something changed meanwhile: offer again after the answer.
    again: bool,
    /// Candidates that came before the answer.
    early: Vec<RTCIceCandidateInit>,
}

/// Our tracks changed: offer now, or once the offer out is answered.
async fn renegotiate(
    pc: &Arc<dyn PeerConnection>,
    sig: &mut Signaling,
    nego: &mut Negotiation,
) -> Result<(), String> {
    if nego.offering {
        nego.again = true;
    } else {
        send_offer(pc, sig).await?;
        nego.offering = true;
    }
    Ok(())
}

async fn session(
    ctx: &Arc<LinkContext>,
    target: &Target,
    role: RelayRole,
    name: &str,
    events: &mpsc::UnboundedSender<(Side, LinkEvent)>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> Result<(), String> {
    let side = target.side;
    let emit = |event: LinkEvent| {
        let _ = events.send((side, event));
    };
    let mut sig = Signaling::connect(&target.url)
        .await
        .map_err(|e| e.to_string())?;
    let token = access_token(ctx, role)?;
    let relay = sign_relay(&ctx.keys, &ctx.room, &target.node, ctx.link, role);
    let joined = sig
        .join_following(&ctx.room, name, &token, json!({ "relayToken": relay }))
        .await
        .map_err(|e| e.to_string())?;
    if let (RelayRole::Sink, ServerMsg::Joined { participants, .. }) = (role, joined) {
        for p in participants {
            emit(LinkEvent::Participant {
                peer: p.peer_id,
                name: p.name,
            });
        }
    }
    let mut conn = connection(ctx.bind_ip).await?;
    let pc = Arc::clone(&conn.pc);
    let mut nego = Negotiation {
        offering: false,
        again: false,
        early: Vec::new(),
    };
    // Until its connection's deadline is set, a Peer has made no offer.
    let mut connect_by = None;
    if role == RelayRole::Sink {
        // An offer needs an m-line: a receive-only one, as a browser
        // without a camera sends. (A ghost offers with its first track:
        // its audio would take such a placeholder over, and the node's
        // `rtc` would raise no track for it, webrtc-rs note 24.)
        pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| format!("add transceiver: {e}"))?;
        send_offer(&pc, &mut sig).await?;
        nego.offering = true;
        connect_by = Some(tokio::time::Instant::now() + CONNECT_TIMEOUT);
    }
    // Tracks added, waiting for the answer; then for the connection.
    let mut pending: Vec<PendingPipe> = Vec::new();
    let mut answered: Vec<PendingPipe> = Vec::new();
    let mut pipes: Vec<JoinHandle<()>> = Vec::new();
    let mut senders: HashMap<String, Arc<dyn webrtc::rtp_transceiver::RtpSender>> = HashMap::new();
    let mut connected = false;
    let result = loop {
        tokio::select! {
            () = sleep_until_some(connect_by), if !connected && connect_by.is_some() => {
                break Err(format!("not connected within {CONNECT_TIMEOUT:?}"));
            }
            command = commands.recv() => match command {
                Some(Command::AddTrack { track, audio_level }) => {
                    let (local, sender) = match pipe::add_local_track(&pc, &track).await {
                        Ok(added) => added,
                        Err(err) => break Err(err),
                    };
                    senders.insert(local.track_id.clone(), Arc::clone(&sender));
                    pending.push(PendingPipe { remote: track, local, sender, audio_level, direction: side.direction_into() });
                    if let Err(err) = renegotiate(&pc, &mut sig, &mut nego).await {
                        break Err(err);
                    }
                    connect_by.get_or_insert_with(|| tokio::time::Instant::now() + CONNECT_TIMEOUT);
                }
                Some(Command::RemoveTrack(id)) => {
                    if let Some(sender) = senders.remove(&id) {
                        let _ = pc.remove_track(&sender).await;
                        if let Err(err) = renegotiate(&pc, &mut sig, &mut nego).await {
                            break Err(err);
                        }
                    }
                }
                Some(Command::Chat(text)) => {
                    if let Err(err) = sig.chat(&text).await {
                        break Err(err.to_string());
                    }
                }
                Some(Command::Prefer { track, max_layer }) => {
                    if let Err(err) = sig.video_preference(&track, max_layer.as_deref()).await {
                        break Err(err.to_string());
                    }
                }
                None => break Ok(()),
            },
            Some(candidate) = conn.candidates.recv() => {
                if let Err(err) = sig.candidate(Some(&candidate)).await {
                    break Err(err.to_string());
                }
            }
            Some(state) = conn.states.recv() => match state {
                RTCPeerConnectionState::Connected => {
                    connected = true;
                    for p in answered.drain(..) {
                        pipes.push(tokio::spawn(pipe::run(p, Arc::clone(&ctx.metrics))));
                    }
                }
                RTCPeerConnectionState::Failed => break Err("media connection failed".to_owned()),
                _ => {}
            },
            Some(track) = conn.tracks.recv() => {
                if role == RelayRole::Sink {
                    let audio_level = pc.current_remote_description().await.and_then(|d| audio_level_id(&d.sdp));
                    let peer = track.stream_id().await;
                    let id = track.track_id().await;
                    tracing::debug!(%peer, track = %id, "the sink receives a track");
                    emit(LinkEvent::Track { peer, track, audio_level });
                }
            }
            msg = sig.recv() => {
                let msg = match msg {
                    Ok(msg) => msg,
                    Err(err) => break Err(err.to_string()),
                };
                match on_message(&pc, &mut sig, &mut nego, msg, role, &emit).await {
                    Ok(true) => {
                        // Packets written before DTLS is up would be lost.
                        answered.append(&mut pending);
                        if connected {
                            for p in answered.drain(..) {
                                pipes.push(tokio::spawn(pipe::run(p, Arc::clone(&ctx.metrics))));
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(err) => break Err(err),
                }
            }
        }
    };
    for p in pipes {
        p.abort();
    }
    let _ = sig.leave(LEAVE_WAIT).await;
    let _ = pc.close().await;
    sig.close().await;
    result
}

/// Handles one server message; `Ok(true)` when our offer was answered.
async fn on_message(
    pc: &Arc<dyn PeerConnection>,
    sig: &mut Signaling,
    nego: &mut Negotiation,
    msg: ServerMsg,
    role: RelayRole,
    emit: &impl Fn(LinkEvent),
) -> Result<bool, String> {
    match msg {
        ServerMsg::Answer { sdp } => {
            apply_answer(pc, sdp).await?;
            for c in nego.early.drain(..) {
                let _ = pc.add_ice_candidate(c).await;
            }
            nego.offering = false;
            if nego.again {
                nego.again = false;
                send_offer(pc, sig).await?;
                nego.offering = true;
            }
            return Ok(true);
        }
        ServerMsg::Offer { sdp } => answer_offer(pc, sig, sdp).await?,
        ServerMsg::Candidate { candidate: Some(c) } => {
            if nego.offering && pc.remote_description().await.is_none() {
                nego.early.push(c);
            } else {
                let _ = pc.add_ice_candidate(c).await;
            }
        }
        ServerMsg::ParticipantJoined { peer_id, name } if role == RelayRole::Sink => {
            emit(LinkEvent::Participant {
                peer: peer_id,
                name,
            });
        }
        ServerMsg::ParticipantLeft { peer_id } if role == RelayRole::Sink => {
            emit(LinkEvent::Left { peer: peer_id });
        }
        ServerMsg::TrackUnpublished { peer_id, track_id } if role == RelayRole::Sink => {
            emit(LinkEvent::Unpublished {
                peer: peer_id,
                track: track_id,
            });
        }
        ServerMsg::Chat { from, text, .. } if role == RelayRole::Sink => {
            emit(LinkEvent::Chat { peer: from, text });
        }
        ServerMsg::VideoDemand {
            track_id,
            max_layer,
        } if role == RelayRole::Ghost => {
            emit(LinkEvent::Demand {
                track: track_id,
                max_layer,
            });
        }
        // (A refused offer shows as a connection that never comes up.)
        // A preference for a track that has just ended is no news.
        ServerMsg::Error { code, message } if code == "bad_track" => {
            tracing::debug!(%code, %message, "a link Peer's request failed");
        }
        ServerMsg::Error { code, message } => {
            tracing::warn!(%code, %message, "a link Peer's request failed");
        }
        ServerMsg::Redirect { .. } => return Err("the node sent the link elsewhere".to_owned()),
        _ => {}
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_level_extension_id() {
        let sdp = "v=0\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
                   a=extmap:1/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        assert_eq!(audio_level_id(sdp), Some(1));
        assert_eq!(audio_level_id("v=0\r\n"), None);
    }
}
