//! Entry point of the `signaling_message` fuzz target (`fuzz/`) and of the
//! corpus regression test (`signaling/tests/fuzz_corpus.rs`): a client text
//! frame through the parser and the checks a parsed message passes before
//! it reaches a Worker, without a server. Not part of the API; it must
//! never panic, whatever the bytes.

use crate::calls::normalize_call_id;
use crate::protocol::{parse_client_message, validate_name, validate_room, ClientMessage};
use crate::room_messages::{validate_chat, validate_track_id, RoomMessage};

/// Parses `data` (lossily as UTF-8, as a WebSocket text frame would have
/// been refused otherwise) and validates what parsed.
pub fn client_message(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // A room message relayed to others is decoded from the same text.
    let _ = RoomMessage::decode(&text);
    let Ok(message) = parse_client_message(&text) else {
        return;
    };
    match message {
        ClientMessage::Join { room, name, .. } => {
            let _ = validate_room(&room);
            let _ = validate_name(&name);
            let _ = crate::calls::is_private_room(&room);
        }
        ClientMessage::Register { name, call_id, .. } => {
            if let Some(name) = name {
                let _ = validate_name(&name);
            }
            if let Some(id) = call_id {
                let _ = normalize_call_id(&id);
            }
        }
        ClientMessage::Call { to, .. } => {
            let _ = normalize_call_id(&to);
        }
        ClientMessage::Chat { text, .. } => {
            let _ = validate_chat(&text);
        }
        ClientMessage::Mute { track_id, .. } | ClientMessage::TrackSource { track_id, .. } => {
            let _ = validate_track_id(&track_id);
        }
        ClientMessage::VideoPreference { track_id, .. } => {
            let _ = validate_track_id(&track_id);
        }
        _ => {}
    }
}
