//! Identifiers of Peers and Tracks, as the core and the signaling protocol name them.

use std::fmt;

/// One participant's connection to the SFU. Shown to clients as `p<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// One published source (a microphone or a camera). Shown to clients as `t<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl std::str::FromStr for TrackId {
    type Err = ();

    /// Parses `t<n>`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let digits = s.strip_prefix('t').ok_or(())?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        digits.parse().map(TrackId).map_err(|_| ())
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// An audio track (Opus).
    Audio,
    /// A video track (VP8, VP9, H.264, AV1).
    Video,
}

impl MediaKind {
    /// `"audio"` or `"video"`, as in SDP and in the signaling protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_round_trip() {
        assert_eq!("t42".parse::<TrackId>(), Ok(TrackId(42)));
        assert_eq!(TrackId(7).to_string().parse::<TrackId>(), Ok(TrackId(7)));
        for bad in [
            "",
            "t",
            "42",
            "t-1",
            "t1x",
            "p3",
            "t99999999999999999999999",
        ] {
            assert!(bad.parse::<TrackId>().is_err(), "{bad}");
        }
    }
}
