//! Finding the first packet of a keyframe in each video codec's RTP
//! payload, so that a new subscriber gets no delta frames it cannot decode.
//! Only the payload descriptor and the first bytes of the codec header are
//! read; a payload too short to tell is not a keyframe.

/// The video codecs whose keyframes the core can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// RFC 7741.
    Vp8,
    /// RFC 9628.
    Vp9,
    /// RFC 6184 (packetization modes 0 and 1).
    H264,
    /// The AV1 RTP payload format (AOMedia).
    Av1,
}

impl VideoCodec {
    /// The codec for a MIME type such as `video/VP8`; `None` for audio and
    /// codecs we do not parse (their packets are never held back).
    pub fn from_mime(mime: &str) -> Option<Self> {
        let name = mime.rsplit('/').next()?;
        if name.eq_ignore_ascii_case("VP8") {
            Some(Self::Vp8)
        } else if name.eq_ignore_ascii_case("VP9") {
            Some(Self::Vp9)
        } else if name.eq_ignore_ascii_case("H264") {
            Some(Self::H264)
        } else if name.eq_ignore_ascii_case("AV1") {
            Some(Self::Av1)
        } else {
            None
        }
    }

    /// Whether `payload` starts a keyframe: from this packet on, a decoder
    /// that has seen nothing before can decode.
    pub fn is_keyframe_start(self, payload: &[u8]) -> bool {
        match self {
            Self::Vp8 => vp8_keyframe_start(payload),
            Self::Vp9 => vp9_keyframe_start(payload),
            Self::H264 => h264_keyframe_start(payload),
            Self::Av1 => av1_keyframe_start(payload),
        }
    }
}

/// VP8: the payload descriptor's S bit and partition 0, then the frame
/// tag's P bit clear (RFC 7741 §4.2, RFC 6386 §9.1).
fn vp8_keyframe_start(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start_of_partition || partition != 0 {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = p.get(at) else {
            return false;
        };
        at += 1;
        if ext & 0x80 != 0 {
            // PictureID: one byte, or two with the M bit.
            let Some(&pid) = p.get(at) else {
                return false;
            };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    p.get(at).is_some_and(|tag| tag & 0x01 == 0)
}

/// VP9: the B (start of frame) bit set and the P (inter-picture predicted)
/// bit clear in the payload descriptor.
fn vp9_keyframe_start(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b & 0x08 != 0 && b & 0x40 == 0)
}

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

/// H.264: an SPS or an IDR slice, alone, in a STAP-A, or starting an FU-A.
fn h264_keyframe_start(p: &[u8]) -> bool {
    let Some(&header) = p.first() else {
        return false;
    };
    let starts_keyframe = |nal_type: u8| nal_type == H264_IDR || nal_type == H264_SPS;
    match header & 0x1F {
        H264_STAP_A => {
            let mut at = 1;
            while at + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[at], p[at + 1]]));
                if size == 0 {
                    return false;
                }
                if starts_keyframe(p[at + 2] & 0x1F) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        H264_FU_A => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && starts_keyframe(fu & 0x1F)),
        nal_type => starts_keyframe(nal_type),
    }
}

/// AV1: the aggregation header's N bit (first packet of a coded video
/// sequence, which starts with a keyframe).
fn av1_keyframe_start(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_from_mime() {
        assert_eq!(VideoCodec::from_mime("video/VP8"), Some(VideoCodec::Vp8));
        assert_eq!(VideoCodec::from_mime("video/h264"), Some(VideoCodec::H264));
        assert_eq!(VideoCodec::from_mime("video/AV1"), Some(VideoCodec::Av1));
        assert_eq!(VideoCodec::from_mime("audio/opus"), None);
        assert_eq!(VideoCodec::from_mime("video/H265"), None);
    }

    #[test]
    fn vp8() {
        let k = VideoCodec::Vp8;
        assert!(
            k.is_keyframe_start(&[0x10, 0x00, 0, 0]),
            "S, PID 0, key frame tag"
        );
        assert!(!k.is_keyframe_start(&[0x10, 0x01, 0, 0]), "inter frame");
        assert!(!k.is_keyframe_start(&[0x00, 0x00]), "not a partition start");
        assert!(!k.is_keyframe_start(&[0x11, 0x00]), "partition 1");
        // Extended: I with 15-bit PictureID, L, T.
        assert!(k.is_keyframe_start(&[0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x00]));
        assert!(!k.is_keyframe_start(&[0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x01]));
        // 7-bit PictureID only.
        assert!(k.is_keyframe_start(&[0x90, 0x80, 0x05, 0x00]));
        assert!(!k.is_keyframe_start(&[0x90, 0x80]), "truncated");
        assert!(!k.is_keyframe_start(&[]));
    }

    #[test]
    fn vp9() {
        let k = VideoCodec::Vp9;
        assert!(k.is_keyframe_start(&[0x08]));
        assert!(!k.is_keyframe_start(&[0x48]), "inter-predicted");
        assert!(!k.is_keyframe_start(&[0x00]), "not a frame start");
    }

    #[test]
    fn h264() {
        let k = VideoCodec::H264;
        assert!(k.is_keyframe_start(&[0x65, 0x88]), "IDR");
        assert!(k.is_keyframe_start(&[0x67, 0x42]), "SPS");
        assert!(!k.is_keyframe_start(&[0x41, 0x9A]), "non-IDR slice");
        // STAP-A with SPS and PPS.
        assert!(k.is_keyframe_start(&[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE]));
        // STAP-A with SEI only.
        assert!(!k.is_keyframe_start(&[0x78, 0x00, 0x02, 0x06, 0x05]));
        // FU-A: start of an IDR, middle of an IDR, start of a non-IDR.
        assert!(k.is_keyframe_start(&[0x7C, 0x85, 0x00]));
        assert!(!k.is_keyframe_start(&[0x7C, 0x05, 0x00]));
        assert!(!k.is_keyframe_start(&[0x7C, 0x81, 0x00]));
        assert!(
            !k.is_keyframe_start(&[0x78, 0x00, 0x00]),
            "zero-size STAP-A unit"
        );
    }

    #[test]
    fn av1() {
        assert!(VideoCodec::Av1.is_keyframe_start(&[0x18]));
        assert!(!VideoCodec::Av1.is_keyframe_start(&[0x10]));
    }
}
