//! Demultiplexing of the shared UDP port: STUN is routed by the SFU-side ICE
//! ufrag in its USERNAME, everything else by the 5-tuple pinned after a
//! verified ICE check.

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::is_stun_message;

/// Whether a datagram is STUN (RFC 7983 demultiplexing plus the magic cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    is_stun_message(datagram)
}

/// The SFU-side ufrag of a STUN request: the part of USERNAME before the
/// colon (`<receiver ufrag>:<sender ufrag>`). `None` when the datagram is not
/// STUN, is truncated, or carries no USERNAME. Walks the attributes in
/// place: no allocation, so garbage from unknown addresses is cheap.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun_message(datagram) {
        return None;
    }
    // Only a request's USERNAME names the receiver first. Some agents
    // (libnice) echo the request's USERNAME in their responses, whose first
    // half is then *their* ufrag: responses go by the pinned address.
    let class = u16::from_be_bytes([datagram[0], datagram[1]]) & STUN_CLASS_MASK;
    if class != 0 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(HEADER_LEN..HEADER_LEN + length)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == ATTR_USERNAME.value() {
            let text = std::str::from_utf8(value).ok()?;
            let local = text.split(':').next()?;
            return (!local.is_empty()).then_some(local);
        }
        let padded = (4 + len).div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

/// The STUN header: type, length, magic cookie, transaction id.
const HEADER_LEN: usize = 20;
/// The class bits of the STUN message type (0: request).
const STUN_CLASS_MASK: u16 = 0x0110;

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{Message, Setter, TransactionId, BINDING_REQUEST};
    use rtc::stun::textattrs::TextAttribute;

    fn binding_request(username: Option<&str>) -> Vec<u8> {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(BINDING_REQUEST), Box::new(TransactionId::new())];
        if let Some(u) = username {
            setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, u.to_owned())));
        }
        m.build(&setters).expect("a binding request builds");
        m.raw
    }

    #[test]
    fn extracts_local_ufrag() {
        let raw = binding_request(Some("sfuU:browserU"));
        assert!(is_stun(&raw));
        assert_eq!(stun_local_ufrag(&raw), Some("sfuU"));
    }

    #[test]
    fn a_response_echoing_username_is_routed_by_address() {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(rtc::stun::message::BINDING_SUCCESS),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, "clientU:sfuU".to_owned())),
        ];
        m.build(&setters).expect("a binding response builds");
        assert!(is_stun(&m.raw));
        assert_eq!(stun_local_ufrag(&m.raw), None);
    }

    #[test]
    fn no_username_is_none() {
        assert_eq!(stun_local_ufrag(&binding_request(None)), None);
    }

    #[test]
    fn garbage_is_not_stun() {
        assert!(!is_stun(&[0x80, 0x60, 0, 1, 2, 3]));
        assert_eq!(stun_local_ufrag(&[0u8; 3]), None);
        // Looks like STUN by its first byte and cookie, but is truncated.
        let mut raw = binding_request(Some("a:b"));
        raw.truncate(22);
        assert_eq!(stun_local_ufrag(&raw), None);
    }
}
