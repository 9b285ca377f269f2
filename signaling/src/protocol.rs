//! The JSON messages of the `/ws` signaling protocol (docs/signaling.md):
//! client messages and their validation here, server messages (and the
//! conversion of the media plane's signals into them) in [`server`].

#[doc(hidden)]
pub mod fuzzing;
mod server;

use serde::Deserialize;
use sfu::worker::RTCIceCandidateInit;

use crate::room_messages::TrackSource;
pub use server::{EndReason, IceServer, ParticipantInfo, ServerMessage, TrackInfo};

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
        /// The access token (or `?access_token=` on the /ws URL).
        #[serde(default)]
        token: Option<String>,
        /// In a cluster: `redirect.routingToken`, when the client was sent
        /// here by another node.
        #[serde(default)]
        routing_token: Option<String>,
        /// In a cluster: a node's bridge joining as a Peer of a
        /// node-to-node link (signed by the cluster).
        #[serde(default)]
        relay_token: Option<String>,
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
    /// Reserve a personal call ID (or rename the one this socket holds).
    Register {
        /// The display name callers and callees see.
        name: Option<String>,
        /// The ID to reserve (the one stored from an earlier visit); a fresh
        /// one when absent.
        call_id: Option<String>,
        /// The access token (or `?access_token=` on the /ws URL).
        #[serde(default)]
        token: Option<String>,
    },
    /// Ring the holder of a call ID.
    Call {
        /// The call ID to ring.
        to: String,
    },
    /// Answer a ringing call.
    Accept {
        /// The call (from `ring`).
        call: String,
    },
    /// Refuse a ringing call.
    Decline {
        /// The call.
        call: String,
    },
    /// Withdraw one's own ringing call.
    Cancel {
        /// The call.
        call: String,
    },
    /// End a call.
    Hangup {
        /// The call.
        call: String,
    },
    /// Chat text to everyone else in the room.
    Chat {
        /// At most 4 KiB.
        text: String,
    },
    /// Mute or unmute one of the client's published tracks.
    Mute {
        /// The client's `MediaStreamTrack.id` (as in its SDP `msid`).
        track_id: String,
        /// Muted from now on.
        muted: bool,
    },
    /// How a received video is shown, so the server can pick its simulcast
    /// layer: the tile's rendered size in device pixels (0 by 0 when
    /// hidden), and optionally the highest layer wanted.
    VideoPreference {
        /// The SFU's track id (`t<n>`).
        track_id: String,
        /// Rendered width in device pixels.
        width: u32,
        /// Rendered height in device pixels.
        height: u32,
        /// `q`, `h` or `f`: never more than this layer.
        #[serde(default)]
        max_layer: Option<String>,
    },
    /// Take over a session whose socket dropped: its Peer, room, call ID
    /// and the messages that arrived meanwhile. Must be the first message
    /// of a socket (before `join` or `register`).
    Resume {
        /// `joined.resumeToken` of that session.
        token: String,
        /// The access token (or `?access_token=` on the /ws URL).
        #[serde(default)]
        access_token: Option<String>,
    },
    /// Says what one of the client's tracks shows.
    TrackSource {
        /// The client's `MediaStreamTrack.id`.
        track_id: String,
        /// `camera` or `screen`.
        source: TrackSource,
    },
}

/// Every `type` a client may send.
pub const CLIENT_TYPES: [&str; 17] = [
    "join",
    "offer",
    "answer",
    "candidate",
    "leave",
    "ping",
    "register",
    "call",
    "accept",
    "decline",
    "cancel",
    "hangup",
    "chat",
    "mute",
    "trackSource",
    "resume",
    "videoPreference",
];

/// Every `code` an `error` message may carry (docs/signaling.md).
pub const ERROR_CODES: [&str; 35] = [
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
    "rate_limited",
    "bad_call_id",
    "id_taken",
    "already_registered",
    "not_registered",
    "unknown_id",
    "self_call",
    "call_in_progress",
    "no_such_call",
    "private_room",
    "bad_chat",
    "chat_too_long",
    "bad_track",
    "resume_failed",
    "draining",
    "unauthorized",
    "forbidden",
    "room_not_found",
    "limit_exceeded",
    "server_full",
    "join_timeout",
];

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
    fn parses_call_chat_and_media_messages() {
        assert!(matches!(
            parse_client_message(r#"{"type":"register","name":"A","callId":"ABCDEFG"}"#),
            Ok(ClientMessage::Register {
                name: Some(_),
                call_id: Some(_),
                ..
            })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"register"}"#),
            Ok(ClientMessage::Register {
                name: None,
                call_id: None,
                token: None
            })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"call","to":"ABCDEFG"}"#),
            Ok(ClientMessage::Call { .. })
        ));
        for kind in ["accept", "decline", "cancel", "hangup"] {
            let text = format!(r#"{{"type":"{kind}","call":"c1"}}"#);
            assert!(parse_client_message(&text).is_ok(), "{kind}");
        }
        assert!(matches!(
            parse_client_message(r#"{"type":"chat","text":"hi"}"#),
            Ok(ClientMessage::Chat { .. })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"mute","trackId":"x","muted":true}"#),
            Ok(ClientMessage::Mute { muted: true, .. })
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"trackSource","trackId":"x","source":"screen"}"#),
            Ok(ClientMessage::TrackSource {
                source: TrackSource::Screen,
                ..
            })
        ));
        assert_eq!(
            parse_client_message(r#"{"type":"trackSource","trackId":"x","source":"tv"}"#)
                .unwrap_err()
                .code,
            "bad_json"
        );
        assert_eq!(
            parse_client_message(r#"{"type":"call"}"#).unwrap_err().code,
            "bad_json"
        );
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
