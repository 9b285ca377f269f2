//! The SDP a WHIP or WHEP client sends, read just enough to refuse what
//! cannot work before the media Worker sees it: the content type, an offer
//! that is not SDP, an offer with no codec the SFU supports, and the
//! trickle-ICE fragments (RFC 8840) of `PATCH`. Everything else is left to
//! `rtc`'s parser.

/// The content type of an SDP offer and answer.
pub const SDP: &str = "application/sdp";
/// The content type of a `PATCH` (RFC 8840).
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// Encoding names (`a=rtpmap:<pt> <name>/<rate>`) of the codecs the SFU
/// negotiates (`sfu/src/core/codecs.rs`), lower case.
const SUPPORTED: [&str; 9] = [
    "opus", "g722", "pcmu", "pcma", "vp8", "vp9", "h264", "av1", "h265",
];

/// Whether a `Content-Type` value names `expected` (parameters and case
/// ignored).
pub fn is_content_type(value: Option<&str>, expected: &str) -> bool {
    value
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Why an offer is refused before the Worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferError {
    /// Not an SDP session description (400).
    Malformed(String),
    /// No audio or video section with a codec the SFU supports (422).
    NoCodec,
}

/// Checks that `sdp` looks like an SDP offer with at least one audio or
/// video section offering a codec we support.
pub fn check_offer(sdp: &str) -> Result<(), OfferError> {
    let mut lines = sdp.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("v=0") {
        return Err(OfferError::Malformed(
            "not an SDP session description: the first line must be v=0".to_owned(),
        ));
    }
    let mut media = 0usize;
    let mut in_av = false;
    let mut usable = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            media += 1;
            in_av = m.starts_with("audio ") || m.starts_with("video ");
        } else if let (true, Some(map)) = (in_av, line.strip_prefix("a=rtpmap:")) {
            let name = map
                .split_whitespace()
                .nth(1)
                .and_then(|enc| enc.split('/').next())
                .unwrap_or_default()
                .to_ascii_lowercase();
            usable |= SUPPORTED.contains(&name.as_str());
        } else if line.len() > 1 && line.as_bytes()[1] != b'=' {
            return Err(OfferError::Malformed(format!(
                "not an SDP line: {:?}",
                line.chars().take(40).collect::<String>()
            )));
        }
    }
    if media == 0 {
        return Err(OfferError::Malformed(
            "the offer has no media section".to_owned(),
        ));
    }
    if !usable {
        return Err(OfferError::NoCodec);
    }
    Ok(())
}

/// The first `a=<attribute>:` value of an SDP (session or media level).
pub fn attribute<'a>(sdp: &'a str, attribute: &str) -> Option<&'a str> {
    let prefix = format!("a={attribute}:");
    sdp.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

/// One candidate of a trickle-ICE fragment, with the section it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragCandidate {
    /// The `candidate:...` attribute value (without `a=`).
    pub candidate: String,
    /// The `a=mid` of its section, if given.
    pub mid: Option<String>,
    /// The index of its section in the fragment.
    pub mline_index: Option<u16>,
}

/// A `PATCH` body (RFC 8840 `application/trickle-ice-sdpfrag`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    /// `a=ice-ufrag`, if given.
    pub ufrag: Option<String>,
    /// `a=ice-pwd`, if given.
    pub pwd: Option<String>,
    /// The candidates, in order.
    pub candidates: Vec<FragCandidate>,
    /// `a=end-of-candidates` was given.
    pub end_of_candidates: bool,
}

/// Parses a trickle-ICE fragment: only `a=` and `m=` lines are allowed.
pub fn parse_fragment(body: &str) -> Result<Fragment, String> {
    let mut fragment = Fragment::default();
    let mut section: Option<u16> = None;
    let mut mid: Option<String> = None;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            section = Some(section.map_or(0, |s| s.saturating_add(1)));
            mid = None;
        } else if let Some(value) = line.strip_prefix("a=mid:") {
            mid = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            fragment.ufrag = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("a=ice-pwd:") {
            fragment.pwd = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("a=candidate:") {
            if value.split_whitespace().count() < 8 {
                return Err(format!("malformed candidate line: {line:?}"));
            }
            fragment.candidates.push(FragCandidate {
                candidate: format!("candidate:{}", value.trim()),
                mid: mid.clone(),
                mline_index: section,
            });
        } else if line == "a=end-of-candidates" {
            fragment.end_of_candidates = true;
        } else if !line.starts_with("a=") {
            return Err(format!(
                "not a trickle-ICE fragment line: {:?}",
                line.chars().take(40).collect::<String>()
            ));
        }
    }
    match (&fragment.ufrag, &fragment.pwd) {
        (Some(_), None) | (None, Some(_)) => {
            Err("a=ice-ufrag and a=ice-pwd go together".to_owned())
        }
        _ => Ok(fragment),
    }
}

/// `sdp` with every `a=ice-ufrag` and `a=ice-pwd` replaced, and its
/// candidates dropped (an ICE restart starts gathering over).
pub fn with_ice_credentials(sdp: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
        } else if trimmed.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
        } else if trimmed.starts_with("a=candidate:") || trimmed == "a=end-of-candidates" {
            continue;
        } else {
            out.push_str(trimmed);
            out.push_str("\r\n");
        }
    }
    out
}

/// The fragment answering an ICE restart: the SFU's credentials and
/// candidates from its new answer (RFC 9725 §4.3.2).
pub fn answer_fragment(answer: &str) -> String {
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in answer.lines().map(str::trim) {
        let keep = line.starts_with("a=ice-ufrag:")
            || line.starts_with("a=ice-pwd:")
            || line.starts_with("a=ice-lite")
            || line.starts_with("a=candidate:")
            || line == "a=end-of-candidates";
        // Bundled sections repeat the same lines; say each once.
        if keep && seen.insert(line.to_owned()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 OPUS/48000/2\r\n\
        a=candidate:1 1 UDP 2122260223 127.0.0.1 5000 typ host\r\n";

    #[test]
    fn content_types() {
        assert!(is_content_type(Some("application/sdp"), SDP));
        assert!(is_content_type(Some("Application/SDP; charset=utf-8"), SDP));
        assert!(!is_content_type(Some("text/plain"), SDP));
        assert!(!is_content_type(None, SDP));
    }

    #[test]
    fn offers() {
        assert_eq!(check_offer(OFFER), Ok(()));
        assert!(matches!(
            check_offer("hello"),
            Err(OfferError::Malformed(_))
        ));
        assert!(matches!(
            check_offer("v=0\r\nthis is not sdp\r\n"),
            Err(OfferError::Malformed(_))
        ));
        assert!(matches!(
            check_offer("v=0\r\ns=-\r\n"),
            Err(OfferError::Malformed(_))
        ));
        let no_codec = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 MPV/90000\r\n";
        assert_eq!(check_offer(no_codec), Err(OfferError::NoCodec));
        let data_only = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(check_offer(data_only), Err(OfferError::NoCodec));
    }

    #[test]
    fn fragments() {
        let body = "a=ice-ufrag:new1\r\na=ice-pwd:newpassword0123456789\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n\
            a=candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n";
        let f = parse_fragment(body).expect("parses");
        assert_eq!(f.ufrag.as_deref(), Some("new1"));
        assert_eq!(f.candidates.len(), 1);
        assert_eq!(f.candidates[0].mid.as_deref(), Some("0"));
        assert_eq!(f.candidates[0].mline_index, Some(0));
        assert!(f.end_of_candidates);
        assert!(parse_fragment("v=0\r\n").is_err());
        assert!(parse_fragment("a=candidate:1 1 udp\r\n").is_err());
        assert!(parse_fragment("a=ice-ufrag:x\r\n").is_err());
    }

    #[test]
    fn restart_rewrites_credentials() {
        let sdp = with_ice_credentials(OFFER, "zz", "yy");
        assert_eq!(attribute(&sdp, "ice-ufrag"), Some("zz"));
        assert_eq!(attribute(&sdp, "ice-pwd"), Some("yy"));
        assert!(!sdp.contains("a=candidate"));
        let frag = answer_fragment(OFFER);
        assert!(frag.contains("a=ice-ufrag:abcd\r\n"));
        assert!(frag.contains("a=candidate:1 1 UDP"));
    }
}
