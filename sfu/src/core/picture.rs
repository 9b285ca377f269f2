//! Frame boundaries and picture ids in VP8 and VP9 payload descriptors.
//!
//! The Forwarder uses them to tell a hole in a publisher's sequence numbers
//! that held only padding (bandwidth probes, which nobody can resend) from
//! one that held video: when the packet before the hole ended a frame and
//! the packet after it starts the next picture, no video is missing, and
//! the subscriber's numbering can close over the hole (`renumber.rs`).
//! Only the payload descriptor is read; a payload too short to tell, or a
//! codec without picture ids (H.264, AV1), gives `None`.

use super::keyframe::VideoCodec;

/// A VP8 or VP9 picture id, 7 or 15 bits wide (RFC 7741 §4.2, RFC 9628 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureId {
    value: u16,
    wide: bool,
}

impl PictureId {
    /// A picture id; `wide` is the 15-bit form (M bit set).
    pub fn new(value: u16, wide: bool) -> Self {
        let mask = if wide { 0x7fff } else { 0x7f };
        Self {
            value: value & mask,
            wide,
        }
    }

    /// Whether this is the picture right after `previous`, across the wrap.
    pub fn follows(self, previous: PictureId) -> bool {
        let mask = if self.wide { 0x7fff } else { 0x7f };
        self.wide == previous.wide && self.value == (previous.value.wrapping_add(1) & mask)
    }
}

/// What a video packet says about the frame it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The picture the packet belongs to.
    pub picture: PictureId,
    /// The packet is the first of its frame.
    pub starts_frame: bool,
}

impl VideoCodec {
    /// The picture id and frame start of a packet, for codecs whose
    /// descriptor carries them (VP8 and VP9 with the I bit set).
    pub fn frame_info(self, payload: &[u8]) -> Option<FrameInfo> {
        match self {
            Self::Vp8 => vp8_frame_info(payload),
            Self::Vp9 => vp9_frame_info(payload),
            Self::H264 | Self::Av1 => None,
        }
    }
}

/// Reads a one- or two-byte picture id at `p[at]` (M bit = two bytes).
fn picture_id_at(p: &[u8], at: usize) -> Option<PictureId> {
    let first = *p.get(at)?;
    if first & 0x80 != 0 {
        let second = *p.get(at + 1)?;
        Some(PictureId::new(
            u16::from(first & 0x7f) << 8 | u16::from(second),
            true,
        ))
    } else {
        Some(PictureId::new(u16::from(first), false))
    }
}

/// VP8: X bit, then the extension byte's I bit, then the picture id; a
/// frame starts at the S bit of partition 0.
fn vp8_frame_info(p: &[u8]) -> Option<FrameInfo> {
    let first = *p.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let ext = *p.get(1)?;
    if ext & 0x80 == 0 {
        return None;
    }
    Some(FrameInfo {
        picture: picture_id_at(p, 2)?,
        starts_frame: first & 0x10 != 0 && first & 0x07 == 0,
    })
}

/// VP9: the I bit, then the picture id right after the first byte; a frame
/// (one spatial layer's) starts at the B bit.
fn vp9_frame_info(p: &[u8]) -> Option<FrameInfo> {
    let first = *p.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    Some(FrameInfo {
        picture: picture_id_at(p, 1)?,
        starts_frame: first & 0x08 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_wide_and_narrow_picture_ids() {
        // X, S, partition 0; I; M + 15-bit id 0x1234.
        let wide = [0x90, 0x80, 0x80 | 0x12, 0x34, 0x00];
        let info = VideoCodec::Vp8.frame_info(&wide).unwrap();
        assert_eq!(info.picture, PictureId::new(0x1234, true));
        assert!(info.starts_frame);
        // X, not S; I; 7-bit id 5.
        let narrow = [0x80, 0x80, 0x05, 0x00];
        let info = VideoCodec::Vp8.frame_info(&narrow).unwrap();
        assert_eq!(info.picture, PictureId::new(5, false));
        assert!(!info.starts_frame);
        // S set but partition 1 is not a frame start.
        assert!(
            !VideoCodec::Vp8
                .frame_info(&[0x91, 0x80, 0x05])
                .unwrap()
                .starts_frame
        );
    }

    #[test]
    fn vp8_without_picture_id_or_too_short() {
        assert_eq!(VideoCodec::Vp8.frame_info(&[0x10, 0x00]), None);
        assert_eq!(VideoCodec::Vp8.frame_info(&[0x90, 0x40, 0x00]), None);
        assert_eq!(VideoCodec::Vp8.frame_info(&[0x90, 0x80, 0x80]), None);
        assert_eq!(VideoCodec::Vp8.frame_info(&[]), None);
    }

    #[test]
    fn vp9_picture_id_and_frame_start() {
        // I, B; M + id 0x7fff.
        let info = VideoCodec::Vp9.frame_info(&[0x88, 0xff, 0xff]).unwrap();
        assert_eq!(info.picture, PictureId::new(0x7fff, true));
        assert!(info.starts_frame);
        assert_eq!(VideoCodec::Vp9.frame_info(&[0x08, 0x01]), None);
        assert_eq!(VideoCodec::H264.frame_info(&[0x65]), None);
    }

    #[test]
    fn follows_across_the_wrap_and_not_across_widths() {
        let wide = |v| PictureId::new(v, true);
        let narrow = |v| PictureId::new(v, false);
        assert!(wide(0).follows(wide(0x7fff)));
        assert!(wide(8).follows(wide(7)));
        assert!(!wide(9).follows(wide(7)));
        assert!(narrow(0).follows(narrow(127)));
        assert!(!narrow(8).follows(wide(7)));
    }
}
