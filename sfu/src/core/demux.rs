//! Demultiplexing of the shared UDP port: STUN is routed by the SFU-side ICE
//! ufrag in its USERNAME, everything else by the 5-tuple pinned after a
//! verified ICE check.

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{is_stun_message, Message};
use rtc::stun::textattrs::TextAttribute;

/// Whether a datagram is STUN (RFC 7983 demultiplexing plus the magic cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    is_stun_message(datagram)
}

/// The SFU-side ufrag of a STUN request: the part of USERNAME before the
/// colon (`<receiver ufrag>:<sender ufrag>`). `None` when the datagram is not
/// STUN, does not parse, or carries no USERNAME.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<String> {
    if !is_stun_message(datagram) {
        return None;
    }
    let mut message = Message::new();
    message.unmarshal_binary(datagram).ok()?;
    let username = TextAttribute::get_from_as(&message, ATTR_USERNAME).ok()?;
    let local = username.text.split(':').next()?;
    (!local.is_empty()).then(|| local.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{Setter, TransactionId, BINDING_REQUEST};

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
        assert_eq!(stun_local_ufrag(&raw).as_deref(), Some("sfuU"));
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
