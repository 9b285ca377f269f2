//! A workaround for `rtc`'s DTLS server: a repeated ClientHello that
//! arrives while the server waits for the client's next flight cancels the
//! server's retransmission timer, and nothing re-sends the server's flight
//! again. Browsers repeat their ClientHello quickly (Chromium after about
//! 100 ms) when the server's flight is lost, so one lost datagram left the
//! call stuck in "connecting" (docs/ARCHITECTURE.md, webrtc-rs notes).
//! `rtc` always answers a first ClientHello with a HelloVerifyRequest, and
//! sends its real flight (ServerHello ... ServerHelloDone) in answer to the
//! second ClientHello, the one carrying the cookie. The core drops a repeat
//! of a cookie-carrying ClientHello already handed to `rtc`; `rtc`'s own
//! timer then re-sends its flight. A repeated first ClientHello (its
//! HelloVerifyRequest was lost, and that flight has no timer) goes through.

use std::hash::{DefaultHasher, Hash, Hasher};

/// DTLS record header: type (1), version (2), epoch (2), sequence (6),
/// length (2).
const RECORD_HEADER: usize = 13;
/// Record content type: handshake.
const HANDSHAKE: u8 = 22;
/// Handshake message type: ClientHello.
const CLIENT_HELLO: u8 = 1;

/// Handshake message header: type (1), length (3), sequence (2), fragment
/// offset (3), fragment length (3).
const MESSAGE_HEADER: usize = 12;
/// ClientHello body up to the session id: version (2), random (32).
const BEFORE_SESSION_ID: usize = 34;

/// A digest of the ClientHello message in `datagram`, if it starts with an
/// unencrypted (epoch 0) handshake record carrying a ClientHello with a
/// cookie; the record's own header (whose sequence number changes on every
/// resend) is left out.
pub fn client_hello_digest(datagram: &[u8]) -> Option<u64> {
    if datagram.len() <= RECORD_HEADER
        || datagram[0] != HANDSHAKE
        || datagram[3..5] != [0, 0]
        || datagram[RECORD_HEADER] != CLIENT_HELLO
    {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[11], datagram[12]]));
    let message = datagram.get(RECORD_HEADER..RECORD_HEADER + length)?;
    let session_id_at = MESSAGE_HEADER + BEFORE_SESSION_ID;
    let session_id_len = usize::from(*message.get(session_id_at)?);
    let cookie_len = *message.get(session_id_at + 1 + session_id_len)?;
    if cookie_len == 0 {
        return None;
    }
    let mut hasher = DefaultHasher::new();
    message.hash(&mut hasher);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record with `cookie` (empty for none).
    fn hello(record_seq: u8, cookie: &[u8]) -> Vec<u8> {
        let mut message = vec![CLIENT_HELLO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&[0xfe, 0xfd]);
        message.extend_from_slice(&[9; 32]);
        message.push(0); // no session id
        message.push(cookie.len() as u8);
        message.extend_from_slice(cookie);
        message.extend_from_slice(&[0, 2, 0xc0, 0x2b, 1, 0]);
        let mut d = vec![HANDSHAKE, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, record_seq];
        d.extend_from_slice(&(message.len() as u16).to_be_bytes());
        d.extend_from_slice(&message);
        d
    }

    #[test]
    fn a_resent_client_hello_with_a_cookie_has_the_same_digest() {
        let first = client_hello_digest(&hello(1, &[7; 20])).unwrap();
        assert_eq!(
            client_hello_digest(&hello(2, &[7; 20])),
            Some(first),
            "resent"
        );
        assert_ne!(
            client_hello_digest(&hello(3, &[8; 20])),
            Some(first),
            "another cookie"
        );
    }

    #[test]
    fn other_packets_have_no_digest() {
        assert_eq!(client_hello_digest(&hello(1, &[])), None, "no cookie yet");
        let mut encrypted = hello(1, &[7; 20]);
        encrypted[4] = 1; // epoch 1
        assert_eq!(client_hello_digest(&encrypted), None);
        let mut server_hello = hello(1, &[7; 20]);
        server_hello[RECORD_HEADER] = 2;
        assert_eq!(client_hello_digest(&server_hello), None);
        assert_eq!(client_hello_digest(&[HANDSHAKE, 0, 0]), None);
        let mut truncated = hello(1, &[7; 20]);
        truncated.truncate(40);
        assert_eq!(client_hello_digest(&truncated), None);
    }
}
