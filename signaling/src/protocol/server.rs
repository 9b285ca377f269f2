//! Server → client messages of the `/ws` protocol, and the conversion of the
//! media plane's [`Signal`]s into them.

use serde::Serialize;
use sfu::core::{Participant, Signal};

use crate::room_messages::{RoomMessage, TrackSource};

/// A track as listed in `joined`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// `t<n>`.
    pub track_id: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Its publisher muted it (nothing is forwarded).
    pub muted: bool,
}

/// A participant as listed in `joined`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    /// `p<n>`.
    pub peer_id: String,
    /// Display name.
    pub name: String,
    /// What it publishes.
    pub tracks: Vec<TrackInfo>,
}

impl From<&Participant> for ParticipantInfo {
    fn from(p: &Participant) -> Self {
        Self {
            peer_id: p.peer_id.to_string(),
            name: p.name.clone(),
            tracks: p
                .tracks
                .iter()
                .map(|(id, kind)| TrackInfo {
                    track_id: id.to_string(),
                    kind: kind.as_str(),
                    muted: p.muted.contains(id),
                })
                .collect(),
        }
    }
}

/// An ICE server for the client's `RTCPeerConnection`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (static, or `<expiry>:<identity>` when ephemeral).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Why a call ended (`callEnded.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// The callee declined.
    Declined,
    /// The caller cancelled before an answer.
    Cancelled,
    /// Nobody answered within the ring timeout.
    Timeout,
    /// The callee was already in a call or a room.
    Busy,
    /// A party hung up.
    Hangup,
    /// A party's connection closed or stopped answering.
    Disconnected,
}

/// A message to the client.
#[derive(Debug, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    /// The join succeeded.
    Joined {
        /// The room.
        room: String,
        /// The client's id.
        peer_id: String,
        /// Who is already there.
        participants: Vec<ParticipantInfo>,
        /// ICE servers for the client.
        ice_servers: Vec<IceServer>,
        /// Presented in `resume` on a new socket if this one drops.
        resume_token: String,
        /// Whether to publish the camera as simulcast layers.
        simulcast: bool,
        /// In a cluster: the signaling URLs of the nodes that take joins,
        /// this one first, for the client to try if this node is lost.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<String>,
    },
    /// A `resume` succeeded: the session continues on this socket. The
    /// messages queued while it was away follow.
    Resumed {
        /// The room.
        room: String,
        /// The client's id (unchanged).
        peer_id: String,
    },
    /// The SFU's answer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A server-initiated offer.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// Someone entered.
    ParticipantJoined {
        /// Who.
        peer_id: String,
        /// Display name.
        name: String,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        peer_id: String,
    },
    /// A track started.
    TrackPublished {
        /// The publisher.
        peer_id: String,
        /// The track.
        track_id: String,
        /// `audio` or `video`.
        kind: &'static str,
    },
    /// A track ended.
    TrackUnpublished {
        /// The publisher.
        peer_id: String,
        /// The track.
        track_id: String,
    },
    /// A publisher muted or unmuted a track.
    TrackMuted {
        /// The publisher.
        peer_id: String,
        /// The track.
        track_id: String,
        /// Muted now.
        muted: bool,
    },
    /// The room's active speaker changed.
    ActiveSpeaker {
        /// Who speaks now.
        peer_id: String,
    },
    /// What a publisher's track shows (its camera or its screen).
    TrackSource {
        /// The publisher.
        peer_id: String,
        /// The track (`t<n>`).
        track_id: String,
        /// `camera` or `screen`.
        source: TrackSource,
    },
    /// A chat message from another participant of the room.
    Chat {
        /// The sender's peer id.
        from: String,
        /// The sender's display name.
        name: String,
        /// The text (at most 4 KiB; render it as text, never as HTML).
        text: String,
    },
    /// The reply to `register`: this socket holds `callId`.
    Registered {
        /// The personal call ID.
        call_id: String,
    },
    /// The caller's confirmation that `to` is being rung.
    Calling {
        /// The call.
        call: String,
        /// The called ID.
        to: String,
        /// Its display name.
        name: String,
    },
    /// An incoming call.
    Ring {
        /// The call.
        call: String,
        /// The caller's ID.
        from: String,
        /// The caller's display name.
        name: String,
    },
    /// The call was answered: both parties join `room`.
    CallAccepted {
        /// The call.
        call: String,
        /// The private room.
        room: String,
        /// The other party's ID.
        peer: String,
        /// The other party's display name.
        name: String,
    },
    /// The call is over (or never started).
    CallEnded {
        /// The call.
        call: String,
        /// Why.
        reason: EndReason,
    },
    /// Someone called while this client was busy.
    MissedCall {
        /// The caller's ID.
        from: String,
        /// The caller's display name.
        name: String,
    },
    /// The reply to `leave`.
    Left,
    /// This client's video of a Track paused for lack of bandwidth (audio
    /// goes on), or resumed.
    VideoPaused {
        /// The SFU's track id.
        track_id: String,
        /// Paused now.
        paused: bool,
    },
    /// Dynacast: keep encoding only these simulcast layers of one of this
    /// client's own tracks (nobody receives the others).
    PublishLayers {
        /// The client's own `MediaStreamTrack.id`.
        track_id: String,
        /// The rids to keep active.
        active: Vec<String>,
    },
    /// Cluster cascading, to a link's ghost only: the highest layer any
    /// subscriber on this node wants of one of its videos.
    VideoDemand {
        /// The ghost's own track id.
        track_id: String,
        /// `q`, `h` or `f`; null: nobody here shows it.
        max_layer: Option<&'static str>,
    },
    /// This server is draining (it is being restarted or taken out of
    /// service): reconnect, which lands on another server when there is
    /// one. Calls here may go on until the deadline.
    Migrate {
        /// For people.
        reason: String,
        /// Seconds until the server closes every session.
        deadline_secs: u64,
    },
    /// In a cluster: go to another node. The client opens a socket to
    /// `url` and sends its `join` again there, with `routingToken`. Sent
    /// instead of `joined` when the room lives elsewhere (or belongs on a
    /// less-loaded node), and to every participant of a room a draining
    /// node handed over.
    Redirect {
        /// The room.
        room: String,
        /// The node's id.
        node: String,
        /// Its signaling WebSocket URL.
        url: String,
        /// Proof for that node that it is to take this join.
        routing_token: String,
        /// home, placement, failover, raced or drain.
        reason: &'static str,
    },
    /// The reply to `ping`.
    Pong,
    /// A request failed.
    Error {
        /// Machine-readable code (docs/signaling.md).
        code: &'static str,
        /// For people.
        message: String,
        /// The `type` of the request that failed, when it parsed.
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<&'static str>,
    },
}

impl ServerMessage {
    /// An `error` message.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            request: None,
        }
    }

    /// The protocol message for a media-plane signal; `None` for a relayed
    /// room message this server did not write (it writes them all).
    pub fn from_signal(signal: Signal) -> Option<Self> {
        Some(match signal {
            Signal::Answer { sdp } => ServerMessage::Answer { sdp },
            Signal::Offer { sdp } => ServerMessage::Offer { sdp },
            Signal::ParticipantJoined { peer_id, name } => ServerMessage::ParticipantJoined {
                peer_id: peer_id.to_string(),
                name,
            },
            Signal::ParticipantLeft { peer_id } => ServerMessage::ParticipantLeft {
                peer_id: peer_id.to_string(),
            },
            Signal::TrackPublished {
                peer_id,
                track_id,
                kind,
            } => ServerMessage::TrackPublished {
                peer_id: peer_id.to_string(),
                track_id: track_id.to_string(),
                kind: kind.as_str(),
            },
            Signal::TrackUnpublished { peer_id, track_id } => ServerMessage::TrackUnpublished {
                peer_id: peer_id.to_string(),
                track_id: track_id.to_string(),
            },
            Signal::Closed { reason } => ServerMessage::error("media_failed", reason),
            Signal::Removed { reason } => ServerMessage::error("kicked", reason),
            Signal::VideoPaused { track_id, paused } => ServerMessage::VideoPaused {
                track_id: track_id.to_string(),
                paused,
            },
            Signal::PublishLayers { track, active } => ServerMessage::PublishLayers {
                track_id: track,
                active,
            },
            Signal::VideoDemand { track, max_level } => ServerMessage::VideoDemand {
                track_id: track,
                max_layer: max_level.map(|level| match level {
                    0 => "q",
                    1 => "h",
                    _ => "f",
                }),
            },
            Signal::ActiveSpeaker { peer_id } => ServerMessage::ActiveSpeaker {
                peer_id: peer_id.to_string(),
            },
            Signal::TrackMuted {
                peer_id,
                track_id,
                muted,
            } => ServerMessage::TrackMuted {
                peer_id: peer_id.to_string(),
                track_id: track_id.to_string(),
                muted,
            },
            Signal::Message {
                from,
                name,
                payload,
            } => match RoomMessage::decode(&payload)? {
                RoomMessage::Chat { text } => ServerMessage::Chat {
                    from: from.to_string(),
                    name,
                    text,
                },
                RoomMessage::TrackSource { track_id, source } => ServerMessage::TrackSource {
                    peer_id: from.to_string(),
                    track_id,
                    source,
                },
            },
        })
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: every field is a
        // string, number, list or struct of those.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"serialization"}"#.to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu::core::PeerId;

    #[test]
    fn server_messages_are_camel_case() {
        let json = ServerMessage::ParticipantJoined {
            peer_id: "p1".into(),
            name: "A".into(),
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"participantJoined","peerId":"p1","name":"A"}"#
        );
        assert_eq!(ServerMessage::Pong.to_json(), r#"{"type":"pong"}"#);
        let ended = ServerMessage::CallEnded {
            call: "c1".into(),
            reason: EndReason::Busy,
        };
        assert_eq!(
            ended.to_json(),
            r#"{"type":"callEnded","call":"c1","reason":"busy"}"#
        );
        let accepted = ServerMessage::CallAccepted {
            call: "c1".into(),
            room: "call-x".into(),
            peer: "ABCDEFG".into(),
            name: "Bob".into(),
        };
        assert_eq!(
            accepted.to_json(),
            r#"{"type":"callAccepted","call":"c1","room":"call-x","peer":"ABCDEFG","name":"Bob"}"#
        );
    }

    #[test]
    fn room_messages_become_chat_and_track_source() {
        let from = PeerId(7);
        let chat = Signal::Message {
            from,
            name: "A".into(),
            payload: RoomMessage::Chat {
                text: "<b>hi</b>".into(),
            }
            .encode(),
        };
        assert_eq!(
            ServerMessage::from_signal(chat).unwrap().to_json(),
            r#"{"type":"chat","from":"p7","name":"A","text":"<b>hi</b>"}"#
        );
        let source = Signal::Message {
            from,
            name: "A".into(),
            payload: RoomMessage::TrackSource {
                track_id: "t3".into(),
                source: TrackSource::Screen,
            }
            .encode(),
        };
        assert_eq!(
            ServerMessage::from_signal(source).unwrap().to_json(),
            r#"{"type":"trackSource","peerId":"p7","trackId":"t3","source":"screen"}"#
        );
        let foreign = Signal::Message {
            from,
            name: "A".into(),
            payload: "not ours".into(),
        };
        assert!(ServerMessage::from_signal(foreign).is_none());
    }
}
