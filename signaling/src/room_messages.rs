//! What participants send each other through their room: chat text and
//! track metadata ("this video track is a screen share").
//!
//! Signaling validates each request, encodes it as a [`RoomMessage`] and
//! hands it to the media Worker's `broadcast`, which relays it to every other
//! participant of the room in order with their other signals; each
//! recipient's session decodes it back into a protocol message. Clients never
//! send raw payloads, so everything relayed was written by this module.

use serde::{Deserialize, Serialize};

/// Longest chat message, in UTF-8 bytes.
pub const MAX_CHAT_BYTES: usize = 4096;
/// Longest client track id accepted (`MediaStreamTrack.id` is a UUID).
pub const MAX_TRACK_ID_CHARS: usize = 128;

/// What a video track shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackSource {
    /// The participant's camera (the default).
    Camera,
    /// A screen, window or tab being shared.
    Screen,
}

/// A payload relayed to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RoomMessage {
    /// Chat text.
    Chat {
        /// The text, validated by [`validate_chat`].
        text: String,
    },
    /// What the sender's track `track_id` (`t<n>`) shows.
    TrackSource {
        /// The SFU's track id.
        track_id: String,
        /// Camera or screen.
        source: TrackSource,
    },
}

impl RoomMessage {
    /// The payload handed to the Worker.
    pub fn encode(&self) -> String {
        // Plain strings and unit enums: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The message in a relayed payload, if it is one of ours.
    pub fn decode(payload: &str) -> Option<Self> {
        match serde_json::from_str(payload) {
            Ok(message) => Some(message),
            Err(err) => {
                tracing::warn!(%err, "relayed room message not understood");
                None
            }
        }
    }
}

/// Checks chat text: not blank, at most [`MAX_CHAT_BYTES`], and no control
/// characters other than newline and tab. Returns the error code and a
/// message on failure.
pub fn validate_chat(text: &str) -> Result<(), (&'static str, String)> {
    if text.len() > MAX_CHAT_BYTES {
        return Err((
            "chat_too_long",
            format!(
                "chat messages are at most {MAX_CHAT_BYTES} bytes; this one has {}",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(("bad_chat", "chat message is empty".to_owned()));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err((
            "bad_chat",
            "chat message contains control characters".to_owned(),
        ));
    }
    Ok(())
}

/// Checks a client track id (as in its SDP `msid`): 1–128 printable ASCII
/// characters without spaces.
pub fn validate_track_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_TRACK_ID_CHARS
        && id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "trackId must be 1 to {MAX_TRACK_ID_CHARS} printable characters without spaces"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let chat = RoomMessage::Chat {
            text: "hi <script>".into(),
        };
        assert_eq!(chat.encode(), r#"{"kind":"chat","text":"hi <script>"}"#);
        assert_eq!(RoomMessage::decode(&chat.encode()), Some(chat));
        let source = RoomMessage::TrackSource {
            track_id: "t4".into(),
            source: TrackSource::Screen,
        };
        assert_eq!(
            source.encode(),
            r#"{"kind":"trackSource","trackId":"t4","source":"screen"}"#
        );
        assert_eq!(RoomMessage::decode(&source.encode()), Some(source));
        assert_eq!(RoomMessage::decode("{}"), None);
    }

    #[test]
    fn validates_chat() {
        assert!(validate_chat("hello\nworld").is_ok());
        assert!(validate_chat(&"é".repeat(MAX_CHAT_BYTES / 2)).is_ok());
        assert_eq!(
            validate_chat(&"é".repeat(MAX_CHAT_BYTES / 2 + 1))
                .unwrap_err()
                .0,
            "chat_too_long"
        );
        assert_eq!(validate_chat("  \n").unwrap_err().0, "bad_chat");
        assert_eq!(validate_chat("a\u{7}b").unwrap_err().0, "bad_chat");
    }

    #[test]
    fn validates_track_ids() {
        assert!(validate_track_id("0b9d1c2e-6a8f-4c1e-9a55-3f0e8d2a7b61").is_ok());
        assert!(validate_track_id("").is_err());
        assert!(validate_track_id("a b").is_err());
        assert!(validate_track_id(&"a".repeat(129)).is_err());
    }
}
