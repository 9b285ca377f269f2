//! The JSON messages of the `/ws` signaling protocol (docs/signaling.md),
//! and the conversion of the media plane's [`Signal`]s into them.

use serde::{Deserialize, Serialize};
use sfu::core::{Participant, Signal};
use sfu::worker::RTCIceCandidateInit;

/// Largest text frame accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest room name and display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ClientMessage {
    /// Enter a room.
    Join {
        /// The room name.
        room: String,
        /// The display name.
        name: String,
    },
    /// The client's SDP offer.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// The client's SDP answer to a server offer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A trickled candidate; `null` ends the candidates.
    Candidate {
        /// The candidate, as `RTCIceCandidate.toJSON()`.
        candidate: Option<RTCIceCandidateInit>,
    },
    /// Leave the room.
    Leave,
    /// Keep-alive.
    Ping,
}

/// Every `type` a client may send.
pub const CLIENT_TYPES: [&str; 6] = ["join", "offer", "answer", "candidate", "leave", "ping"];

/// Every `code` an `error` message may carry (docs/signaling.md).
pub const ERROR_CODES: [&str; 14] = [
    "bad_json",
    "unknown_type",
    "binary_not_supported",
    "not_joined",
    "already_joined",
    "bad_room",
    "bad_name",
    "bad_sdp",
    "bad_candidate",
    "too_big",
    "media_failed",
    "kicked",
    "server_busy",
    "internal",
];

/// A track as listed in `joined`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// `t<n>`.
    pub track_id: String,
    /// `audio` or `video`.
    pub kind: &'static str,
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
                })
                .collect(),
        }
    }
}

/// An ICE server for the client's `RTCPeerConnection`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
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
    /// Application data another participant sent to the room.
    Message {
        /// The sender.
        from: String,
        /// The sender's display name.
        name: String,
        /// What they sent.
        payload: String,
    },
    /// The reply to `leave`.
    Left,
    /// The reply to `ping`.
    Pong,
    /// A request failed.
    Error {
        /// Machine-readable code (docs/signaling.md).
        code: &'static str,
        /// For people.
        message: String,
    },
}

impl ServerMessage {
    /// An `error` message.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }

    /// The protocol message for a media-plane signal.
    pub fn from_signal(signal: Signal) -> Self {
        match signal {
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
            } => ServerMessage::Message {
                from: from.to_string(),
                name,
                payload,
            },
        }
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

/// Why a client frame was not understood.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    /// `bad_json` or `unknown_type`.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

/// Parses a client text frame.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError {
        code: "bad_json",
        message: e.to_string(),
    })?;
    let kind = value.get("type").and_then(|t| t.as_str());
    match kind {
        Some(kind) if CLIENT_TYPES.contains(&kind) => {}
        Some(kind) => {
            return Err(ParseError {
                code: "unknown_type",
                message: format!("unknown message type {kind:?}"),
            })
        }
        None => {
            return Err(ParseError {
                code: "unknown_type",
                message: "missing string field \"type\"".to_owned(),
            })
        }
    }
    serde_json::from_value(value).map_err(|e| ParseError {
        code: "bad_json",
        message: e.to_string(),
    })
}

/// Checks a room name: 1–64 characters of `[A-Za-z0-9_.-]`.
pub fn validate_room(room: &str) -> Result<(), String> {
    if room.is_empty() || room.chars().count() > MAX_NAME_CHARS {
        return Err(format!("room must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if !room
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("room may contain only letters, digits, '_', '.' and '-'".to_owned());
    }
    Ok(())
}

/// Checks a display name: 1–64 characters, no control characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_client_type() {
        assert!(matches!(
            parse_client_message(r#"{"type":"join","room":"a","name":"b"}"#),
            Ok(ClientMessage::Join { .. })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"offer","sdp":"x"}"#),
            Ok(ClientMessage::Offer { .. })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"answer","sdp":"x"}"#),
            Ok(ClientMessage::Answer { .. })
        ));
        assert!(matches!(
            parse_client_message(
                r#"{"type":"candidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#
            ),
            Ok(ClientMessage::Candidate { candidate: Some(_) })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"candidate","candidate":null}"#),
            Ok(ClientMessage::Candidate { candidate: None })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"leave"}"#),
            Ok(ClientMessage::Leave)
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        ));
    }

    #[test]
    fn classifies_errors() {
        assert_eq!(
            parse_client_message("not json").unwrap_err().code,
            "bad_json"
        );
        assert_eq!(
            parse_client_message(r#"{"type":"dance"}"#)
                .unwrap_err()
                .code,
            "unknown_type"
        );
        assert_eq!(
            parse_client_message(r#"{"room":"x"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(
            parse_client_message(r#"[1,2]"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(
            parse_client_message(r#"{"type":"join","room":5}"#)
                .unwrap_err()
                .code,
            "bad_json"
        );
    }

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
    }

    #[test]
    fn validates_rooms_and_names() {
        assert!(validate_room("daily-standup_1.x").is_ok());
        assert!(validate_room("").is_err());
        assert!(validate_room("a b").is_err());
        assert!(validate_room(&"a".repeat(65)).is_err());
        assert!(validate_name("Zoë").is_ok());
        assert!(validate_name("  ").is_err());
        assert!(validate_name("a\nb").is_err());
    }
}
