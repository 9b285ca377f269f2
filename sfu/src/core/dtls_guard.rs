//! A workaround for `rtc`'s DTLS server: a ClientHello that arrives while
//! the server waits for the client's next flight (after it sent its
//! ServerHello ... ServerHelloDone) clears the server's retransmission
//! timer, and nothing re-sends the server's flight again. Browsers repeat
//! their ClientHello quickly (Chromium after about 100 ms) when the server's
//! flight is lost, so one lost datagram left the call stuck in
//! "connecting" (docs/ARCHITECTURE.md, webrtc-rs notes). Once the server's
//! ServerHello has gone out, the core drops every ClientHello record (any
//! fragment: Chromium's ClientHello, with its post-quantum key share, spans
//! two datagrams) before `rtc` sees it; `rtc`'s own timer then re-sends its
//! flight. Before that, ClientHellos pass: a repeated first ClientHello is
//! how a lost HelloVerifyRequest, which has no timer, gets answered again.

/// DTLS record header: type (1), version (2), epoch (2), sequence (6),
/// length (2); the handshake message (or fragment) header follows.
const RECORD_HEADER: usize = 13;
/// Record content type: handshake.
const HANDSHAKE: u8 = 22;
/// Handshake message type: ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Handshake message type: ServerHello.
const SERVER_HELLO: u8 = 2;

/// The handshake message type of an unencrypted (epoch 0) handshake record
/// at the start of `datagram`.
fn handshake_type(datagram: &[u8]) -> Option<u8> {
    if datagram.len() <= RECORD_HEADER || datagram[0] != HANDSHAKE || datagram[3..5] != [0, 0] {
        return None;
    }
    Some(datagram[RECORD_HEADER])
}

/// Whether `datagram` starts with (a fragment of) a ClientHello.
pub fn is_client_hello(datagram: &[u8]) -> bool {
    handshake_type(datagram) == Some(CLIENT_HELLO)
}

/// Whether `datagram` starts with (a fragment of) a ServerHello.
pub fn is_server_hello(datagram: &[u8]) -> bool {
    handshake_type(datagram) == Some(SERVER_HELLO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u8, message_type: u8) -> Vec<u8> {
        let mut d = vec![HANDSHAKE, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 1, 0, 12];
        d.extend_from_slice(&[message_type, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        d
    }

    #[test]
    fn recognises_hellos_in_the_clear_only() {
        assert!(is_client_hello(&record(0, CLIENT_HELLO)));
        assert!(is_server_hello(&record(0, SERVER_HELLO)));
        assert!(!is_client_hello(&record(0, SERVER_HELLO)));
        assert!(!is_client_hello(&record(1, CLIENT_HELLO)), "encrypted");
        assert!(!is_client_hello(&[HANDSHAKE, 0xfe, 0xfd]), "truncated");
        assert!(!is_client_hello(&[0x80, 0x60, 0, 1]), "RTP");
    }
}
